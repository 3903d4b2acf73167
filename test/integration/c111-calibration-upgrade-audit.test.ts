import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { resolveAnalyzerResult } from '../../gateway/src/astm/accessions.ts';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { rowIndexKeyOf } from '../../gateway/src/profiles/consumption-keys.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

/**
 * A lab upgrading the gateway with undated cobas c 111 calibrations in its store (M.CR with no
 * calibration time in M.11). Releases before a82316d keyed such a calibration's stock draws on a
 * hash of its whole record (`rec:<first 16 hex of sha256(record)>~<ACN>`), its sequence number
 * M.2 included; the key now hashes the record as if at `M|1` (test/unit/astm-c111-calibration-key
 * .test.ts), which kept the keys of calibrations stored at `M|1`. One the earlier release stored
 * at `M|2` or later, resent after the upgrade (the c 111 resends a message it missed the ACK of;
 * the operator sends a calibration again from the analyzer's menu), got a new key and drew its
 * reagent, cuvette and cleaner from stock a second time: the stock keeper's on-hand figure fell
 * below what was on the shelf. The promise: DESIGN.md §2, each business fact lands once.
 *
 * The store is the real LevelDB one; the message goes the way the gateway takes it (gateway.ts
 * #addAstm: normalizeAstmMessage, resolveAnalyzerResult, store.commit). The earlier release's
 * store is written as that release wrote it: the same events, keyed by the whole record's hash,
 * and, as every release before consumption keys named the draw (profiles/consumption.ts), by the
 * row's index in the profile's table. The store reads as one an earlier release wrote
 * (`earlierReleaseKeys`), as it is after the upgrade.
 */
const tmp = useTempStore('lgw-c111-upgrade-', { pruneIntervalMs: 0, minFreeBytes: 0, earlierReleaseKeys: true });
const profile = loadProfile('roche-cobas-c111');

const HEADER = (h14: string): string => `H|\\^&|||c111^Roche^c111^4.2.2.1730^1^13147|||||host|RSUPL^REAL|P|1|${h14}`;
const albumin = (seq: number, reading = '0.4210'): string =>
  `M|${seq}|CR^BM^c111^1|413^ALB|64521301|g/L|BS^ALB||N^R|2||A^$SYS$||1.212000E+01^5.310000E-01|SD^^^65432101|0^0.0012^0.0011^0.0013^0^0\\45.3^${reading}^0.4205^0.4215^0^0`;
const glucose = (seq: number): string =>
  `M|${seq}|CR^BM^c111^1|767^GLU|71830402|mmol/L|BS^GLU||N^R|2||A^$SYS$||2.301000E+01^1.120000E-01|SD^^^65432101|0^0.0009^0.0008^0.0010^0^0\\12.9^0.6120^0.6117^0.6123^0^0`;
const message = (h14: string, ...records: string[]): string => [HEADER(h14), ...records, 'L|1|N'].join('\r');

/** The run identity an earlier release gave an undated calibration record: its whole text hashed. */
const earlierRun = (record: string, acn: string): string => `rec:${createHash('sha256').update(record).digest('hex').slice(0, 16)}~${acn}`;

function inbound(text: string) {
  return {
    kind: 'astm' as const,
    endpoint: 'c111-1',
    receivedAt: '2026-01-14T07:20:00.000Z',
    encoding: 'latin1',
    raw: Buffer.from(text, 'latin1'),
    status: 'accepted' as const,
    dedupKey: `astm|c111-1|${createHash('sha256').update(text).digest('hex')}`,
    messageType: 'ASTM^CALIBRATION',
  };
}

/** The earlier release's commit: today's events in their row-index form, each calibration keyed by its whole record. */
async function storedByEarlierRelease(store: EventStore, text: string, records: Array<{ record: string; acn: string }>): Promise<void> {
  const { events } = normalizeAstmMessage(text, { analyzerId: 'c111-1', endpoint: 'c111-1', profile, receivedAt: '2026-01-14T07:15:00.000Z' });
  const now = normalizeAstmMessage(message('x', ...records.map((r) => r.record.replace(/^M\|\d+\|/, 'M|1|'))), { analyzerId: 'c111-1', endpoint: 'c111-1', profile, receivedAt: '2026-01-14T07:15:00.000Z' });
  const earlier: DraftEvent[] = events.map((e) => {
    const stored = rowIndexKeyOf(e) ?? e.idempotencyKey;
    for (const { record, acn } of records) {
      const nowRun = now.events.find((n) => n.idempotencyKey.includes(`~${acn}|`))!.idempotencyKey.split('|')[4]!;
      if (stored.includes(`|${nowRun}|`)) return { ...e, idempotencyKey: stored.replace(`|${nowRun}|`, `|${earlierRun(record, acn)}|`) };
    }
    return { ...e, idempotencyKey: stored };
  });
  await store.commit(inbound(text), earlier);
}

/** What the gateway commits for a message now; returns how many events it wrote. */
async function receivedNow(store: EventStore, text: string): Promise<number> {
  const result = await resolveAnalyzerResult(normalizeAstmMessage(text, { analyzerId: 'c111-1', endpoint: 'c111-1', profile, receivedAt: '2026-01-14T08:00:00.000Z' }), store);
  const res = await store.commit(inbound(text), result.events);
  return res.eventIds.length;
}

const albuminDraws = async (store: EventStore): Promise<number> =>
  (await store.listEvents({ limit: 100 })).filter((e) => e.event.type === 'consumable.used' && e.event.data.productCode === 'ROC-C111-ALB').length;

describe('cobas c 111: undated calibrations an earlier release stored, resent after the upgrade', () => {
  it('one stored at M|2 and resent in the same place draws nothing more', async () => {
    const store = await tmp.open();
    await storedByEarlierRelease(store, message('20260114071502', glucose(1), albumin(2)), [
      { record: glucose(1), acn: '767' },
      { record: albumin(2), acn: '413' },
    ]);
    expect(await albuminDraws(store)).toBe(1);

    // The c 111 sends the message again in a new session (it missed the ACK): a new H.14.
    expect(await receivedNow(store, message('20260114080102', glucose(1), albumin(2)))).toBe(0);
    expect(await albuminDraws(store)).toBe(1);
  });

  it('one stored at M|2 and resent alone (M|1) or behind two others (M|3) draws nothing more', async () => {
    const store = await tmp.open();
    await storedByEarlierRelease(store, message('20260114071502', glucose(1), albumin(2)), [
      { record: glucose(1), acn: '767' },
      { record: albumin(2), acn: '413' },
    ]);
    expect(await receivedNow(store, message('20260114080102', albumin(1)))).toBe(0);
    expect(await receivedNow(store, message('20260114080503', glucose(1), glucose(2), albumin(3)))).toBe(0);
    expect(await albuminDraws(store)).toBe(1);
  });

  it('another calibration, and one first seen after the upgrade, still draw once each', async () => {
    const store = await tmp.open();
    await storedByEarlierRelease(store, message('20260114071502', glucose(1), albumin(2)), [
      { record: glucose(1), acn: '767' },
      { record: albumin(2), acn: '413' },
    ]);
    // A recalibration of albumin (other readings) is a new calibration.
    expect(await receivedNow(store, message('20260115070102', glucose(1), albumin(2, '0.4310')))).toBe(3);
    expect(await albuminDraws(store)).toBe(2);
    // Resent after the upgrade, it keeps the key it got now.
    expect(await receivedNow(store, message('20260115071102', albumin(1, '0.4310')))).toBe(0);
    expect(await albuminDraws(store)).toBe(2);
  });
});
