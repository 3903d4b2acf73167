/**
 * a96337d: a cancel the outbox read before the analyzer took a host query answer under another
 * barcode (the label ACC-R downloaded, acc-r typed at the analyzer and answered by the case
 * fallback) is followed by a cancel under that barcode. That follow-up rewrote the test's tube to
 * the typed barcode, so the document no longer knew the label was ever a holder. When the first
 * cancel (under the label) then turns out never received (a records-only TCP link whose analyzer
 * acknowledged nothing, its connection dropped: the endpoint's `onUnreceived`), it is put back
 * under the barcodes the document knows: the typed one alone. The analyzer, back on, keeps TSH
 * under the label and runs the cancelled test on the tube when the label scans.
 *
 * Real store in a temp dir; the link is the analyzer endpoint's interface, recording what would go
 * on the wire and keeping each download's `onUnreceived`, called here as the endpoint calls them
 * at the close; the host query answer is taken as gateway.ts reports it (answeredByQuery) while the
 * cancel is on the wire.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OrderDownload, type UnreceivedDownload } from '../../gateway/src/astm/order-download.ts';
import { orderEvents } from '../fixtures/order-download.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';

const { created, cancelled } = orderEvents('eeeeee', '2026-12-07T10:00:00.000Z');

interface Sent {
  records: string[];
  onUnreceived?: (fate: UnreceivedDownload) => void;
}

let dir: string;
let store: EventStore;
let download: OrderDownload;
const wire: Sent[] = [];
/** Runs while a download is on the wire (before the analyzer's acceptance is reported). */
let onWire: ((records: readonly string[]) => void) | undefined;
const link = {
  connections: 1,
  sendWorklist: async (records: readonly string[], options?: { onUnreceived?(fate: UnreceivedDownload): void }) => {
    wire.push({ records: [...records], ...(options?.onUnreceived ? { onUnreceived: options.onUnreceived } : {}) });
    onWire?.(records);
  },
};

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-s23e-cancel-race-'));
  store = await EventStore.open({ dataDir: dir });
  wire.length = 0;
  link.connections = 1;
  onWire = undefined;
  download = new OrderDownload({ analyzerId: 'centaur-1', profile: loadProfile('siemens-advia-centaur-xp'), link, store, telemetry: new Telemetry(), log: silentLogger });
});

afterEach(async () => {
  await download.stop();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** O records sent so far, as `<specimen (O.3)> <action code (O.12), N when empty>`. */
const orders = (): string[] =>
  wire.flatMap((s) =>
    s.records
      .filter((r) => r.startsWith('O|'))
      .map((r) => {
        const f = r.split('|');
        return `${f[2]} ${f[11] || 'N'}`;
      }),
  );
const sendsOf = (specimen: string): Sent[] => wire.filter((s) => s.records.some((r) => r.startsWith('O|') && r.split('|')[2] === specimen));

const REASON = 'not received by the analyzer: the connection was closed after it acknowledged nothing for 60 s';

describe('a cancel followed under the typed barcode (a96337d), the first one lost on the connection', () => {
  it('the analyzer switched off after the cancel under the label: back on, it gets the cancel under the label and the typed barcode', async () => {
    download.onCommitted([created('ACC-R', ['TSH'])]);
    await expect.poll(() => sendsOf('ACC-R').length, { timeout: 5_000 }).toBe(1);

    // The LIS cancels TSH; while the cancel (under ACC-R, all the analyzer held then) is on the
    // wire, the analyzer takes the answer to acc-r typed at it (TSH under acc-r); then it goes off
    // and the connection drops before the cancel under acc-r could follow.
    onWire = (records) => {
      if (!records.some((r) => r.startsWith('O|') && r.split('|')[11] === 'C')) return;
      onWire = undefined;
      download.answeredByQuery({ specimenId: 'acc-r', accession: 'ACC-R', tests: [{ code: 'TSH' }] });
      link.connections = 0;
    };
    download.onCommitted([cancelled('ACC-R', ['TSH'])]);
    await expect.poll(() => sendsOf('ACC-R').length, { timeout: 5_000 }).toBe(2);
    const [, firstCancel] = sendsOf('ACC-R') as [Sent, Sent];
    // The document is written (the follow-up cancel queued) before the close is reported.
    await expect.poll(async () => (await store.listDocs('orderOutbox', { prefix: 'centaur-1\u0000' })).length, { timeout: 5_000 }).toBe(1);

    // The close: the cancel under the label never reached the analyzer.
    firstCancel.onUnreceived?.({ received: false, reason: REASON, connection: {} });
    // Back on.
    link.connections = 1;
    download.onLink();
    await expect.poll(() => orders().filter((o) => o.endsWith(' C')).length, { timeout: 5_000 }).toBeGreaterThanOrEqual(2);
    await expect.poll(async () => (await store.listDocs('orderOutbox', { prefix: 'centaur-1\u0000' })).length, { timeout: 5_000 }).toBe(0);

    const afterBack = orders().slice(2);
    // Before: only 'acc-r C' went; the analyzer kept TSH under ACC-R and ran it.
    expect([...new Set(afterBack.filter((o) => o.endsWith(' C')))].sort(), 'the cancel lost under the label was put back under the typed barcode alone').toEqual(['ACC-R C', 'acc-r C']);
    expect(afterBack.filter((o) => o.endsWith(' N')), 'nothing ordered again').toEqual([]);
  });

  it('both cancels lost on the connection (the analyzer switched off after the follow-up): back on, it gets the cancel under both barcodes', async () => {
    download.onCommitted([created('ACC-S', ['TSH'])]);
    await expect.poll(() => sendsOf('ACC-S').length, { timeout: 5_000 }).toBe(1);
    onWire = (records) => {
      if (!records.some((r) => r.startsWith('O|') && r.split('|')[11] === 'C')) return;
      onWire = undefined;
      download.answeredByQuery({ specimenId: 'acc-s', accession: 'ACC-S', tests: [{ code: 'TSH' }] });
    };
    download.onCommitted([cancelled('ACC-S', ['TSH'])]);
    // The cancel under the label, then its follow-up under the typed barcode.
    await expect.poll(() => sendsOf('acc-s').length, { timeout: 5_000 }).toBe(1);
    await expect.poll(async () => (await store.listDocs('orderOutbox', { prefix: 'centaur-1\u0000' })).length, { timeout: 5_000 }).toBe(0);
    const [, firstCancel] = sendsOf('ACC-S') as [Sent, Sent];
    const [followUp] = sendsOf('acc-s') as [Sent];

    // The close: neither reached the analyzer.
    link.connections = 0;
    const connection = {};
    firstCancel.onUnreceived?.({ received: false, reason: REASON, connection });
    followUp.onUnreceived?.({ received: false, reason: REASON, connection });
    await expect.poll(async () => (await store.listDocs('orderOutbox', { prefix: 'centaur-1\u0000' })).length, { timeout: 5_000 }).toBe(1);
    link.connections = 1;
    download.onLink();
    await expect.poll(async () => (await store.listDocs('orderOutbox', { prefix: 'centaur-1\u0000' })).length, { timeout: 5_000 }).toBe(0);

    const afterBack = orders().slice(3);
    expect([...new Set(afterBack.filter((o) => o.endsWith(' C')))].sort(), 'the cancel lost under the label was put back under the typed barcode alone').toEqual(['ACC-S C', 'acc-s C']);
    expect(afterBack.filter((o) => o.endsWith(' N')), 'nothing ordered again').toEqual([]);
  });
});
