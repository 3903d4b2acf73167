/**
 * cobas c 111: an undated calibration (M.CR without a calibration time, dated by its message) the
 * release before took (era 2: consumption keys ending with the row's index in the profile's table),
 * sent again from the analyzer's menu after IT edited the consumption table, which the upgrade is
 * what lets it do. Its draws must be found whatever the edit moved, within the upgrade window and
 * past it (the calibration's date does not tell it was taken before the upgrade).
 *
 * Real parts: the release before (PREVIOUS, from `git archive`) normalizes, resolves and commits
 * the calibration into a LevelDB data dir; this release opens the same dir and takes the re-send
 * as its analyzer endpoint does (normalizeAstmMessage, resolveAnalyzerResult, commit).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { resolveAnalyzerResult } from '../../gateway/src/astm/accessions.ts';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import { CONSUMPTION_KEY_ERA } from '../../gateway/src/profiles/consumption-keys.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import type { ConsumptionRow, Profile } from '../../gateway/src/profiles/types.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { unpackPreviousRelease } from '../fixtures/previous-release.ts';

/** The release before consumption keys stopped naming the row index (KEY_ERA 2). */
const PREVIOUS = '1c29f8b';

let work: string;
let prevSrc: string;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'lgw-s23c-calibration-table-'));
  prevSrc = await unpackPreviousRelease(PREVIOUS, work);
}, 120_000);

afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** ASTM time (local, as the analyzer sends it) of `ms`. */
function astmTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

const c111 = loadProfile('roche-cobas-c111');
const withTable = (consumption: ConsumptionRow[]): Profile => ({ ...c111, consumption });
const table = c111.consumption;
/** The profile's rows by product: ALB, GLU, CHOL, …, the cuvette (every test), the cleaner (per run). */
const row = (product: string): ConsumptionRow => table.find((r) => r.productCode === product)!;

const HEADER = (h14: string): string => `H|\\^&|||c111^Roche^c111^4.2.2.1730^1^13147|||||host|RSUPL^REAL|P|1|${h14}`;
/** An albumin calibration without a calibration time, at place `seq`. */
const albumin = (seq: number): string =>
  `M|${seq}|CR^BM^c111^1|413^ALB|64521301|g/L|BS^ALB||N^R|2||A^$SYS$||1.212000E+01^5.310000E-01|SD^^^65432101|0^0.0012^0.0011^0.0013^0^0\\45.3^0.4210^0.4205^0.4215^0^0`;
const message = (h14: string, ...records: string[]): string => [HEADER(h14), ...records, 'L|1|N'].join('\r');
const h14Of = (text: string): string => text.split('\r')[0]!.split('|').at(-1)!;
const inbound = (text: string, receivedAt: string) => ({
  kind: 'astm' as const,
  endpoint: 'c111-1',
  receivedAt,
  encoding: 'latin1',
  raw: Buffer.from(text, 'latin1'),
  status: 'accepted' as const,
  dedupKey: `astm|c111-1|${text.length}|${h14Of(text)}`,
  messageType: 'ASTM^CALIBRATION',
});

/** The release before takes the calibration `text` into `dir`, with the profile's table as shipped. */
async function takenByPrevious(dir: string, text: string): Promise<void> {
  const prevStore = await import(path.join(prevSrc, 'gateway/src/store/event-store.ts'));
  const prevNormalize = await import(path.join(prevSrc, 'gateway/src/astm/normalize.ts'));
  const prevAccessions = await import(path.join(prevSrc, 'gateway/src/astm/accessions.ts'));
  const old = await prevStore.EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
  try {
    const receivedAt = new Date(Date.now() - 3_600_000).toISOString();
    const result = await prevAccessions.resolveAnalyzerResult(prevNormalize.normalizeAstmMessage(text, { analyzerId: 'c111-1', endpoint: 'c111-1', profile: c111, receivedAt }), old);
    await old.commit(inbound(text, receivedAt), result.events);
  } finally {
    await old.close();
  }
}

/** This release takes `text` as the analyzer endpoint does, with `profile`; the ids of the events it stored. */
async function takenNow(store: EventStore, profile: Profile, text: string): Promise<string[]> {
  const receivedAt = new Date().toISOString();
  const result = await resolveAnalyzerResult(normalizeAstmMessage(text, { analyzerId: 'c111-1', endpoint: 'c111-1', profile, receivedAt }), store);
  return (await store.commit(inbound(text, receivedAt), result.events)).eventIds;
}

async function calibrationDraws(store: EventStore): Promise<string[]> {
  return (await store.listEvents({ type: 'consumable.used', limit: 100 })).flatMap((e) => (e.event.type === 'consumable.used' ? [e.event.data.productCode] : [])).sort();
}

describe('cobas c 111: an undated calibration the release before took, sent again after IT edited the table', () => {
  it('within the upgrade window, a row above the cuvette and the cleaner removed: nothing more drawn', async () => {
    const dir = await mkdtemp(path.join(work, 'data-'));
    await takenByPrevious(dir, message(astmTime(Date.now() - 3_600_000), albumin(1)));
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
    cleanups.push(() => store.close());
    expect(store.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(true);
    const first = await calibrationDraws(store);
    expect(first).toEqual(['ROC-C111-ALB', 'ROC-C111-CLEANER', 'ROC-C111-CUVETTE']);

    // IT drops the CHOL row (the lab no longer runs it): the cuvette and the cleaner move up one.
    // Before: the albumin row, unmoved, was found at its index, and the calibration's other draws
    // were keyed at their indices now, which the release before never used: the cuvette and the
    // cleaner were drawn from stock a second time.
    const edited = withTable(table.filter((r) => r.productCode !== 'ROC-C111-CHOL'));
    expect(await takenNow(store, edited, message(astmTime(Date.now()), albumin(1)))).toEqual([]);
    expect(await calibrationDraws(store)).toEqual(first);
  });

  it('past the upgrade window, a row added at the top: nothing more drawn; another calibration draws once', async () => {
    const dir = await mkdtemp(path.join(work, 'data-'));
    await takenByPrevious(dir, message(astmTime(Date.now() - 3_600_000), albumin(1)));
    // Past the window (retentionDays 0: over at once, as it is retentionDays after the upgrade).
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0, retention: { retentionDays: 0 } });
    cleanups.push(() => store.close());
    expect(store.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(false);
    const first = await calibrationDraws(store);

    // IT adds HbA1c's reagent at the top; the operator sends the calibration again 40 days later.
    // Before: the row-index form at M|1 was looked up at the indices of now alone (all moved), and
    // the calibration, dated by its message, was not looked up at other indices past the window:
    // its reagent, cuvette and cleaner were drawn a second time.
    const hba1c: ConsumptionRow = { per: 'test', test: 'HBA1C', productCode: 'ROC-C111-HBA1C', quantity: 1, uom: 'Units' };
    const edited = withTable([hba1c, ...table]);
    expect(await takenNow(store, edited, message(astmTime(Date.now() + 40 * 86_400_000), albumin(1)))).toEqual([]);
    expect(await calibrationDraws(store)).toEqual(first);

    // Another calibration (another lot: another record) draws once, with the table as it is.
    const other = albumin(1).replace('64521301', '64521302');
    expect((await takenNow(store, edited, message(astmTime(Date.now() + 41 * 86_400_000), other))).length).toBeGreaterThan(0);
    expect(await calibrationDraws(store)).toEqual([...first, 'ROC-C111-ALB', 'ROC-C111-CLEANER', 'ROC-C111-CUVETTE'].sort());
  });

  it('unedited, past the window: nothing more drawn (the case 2392ace covers)', async () => {
    const dir = await mkdtemp(path.join(work, 'data-'));
    await takenByPrevious(dir, message(astmTime(Date.now() - 3_600_000), albumin(1)));
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0, retention: { retentionDays: 0 } });
    cleanups.push(() => store.close());
    const first = await calibrationDraws(store);
    expect(await takenNow(store, c111, message(astmTime(Date.now() + 40 * 86_400_000), albumin(1)))).toEqual([]);
    expect(await calibrationDraws(store)).toEqual(first);
  });
});
