/**
 * The LIS cancels a test the analyzer holds and orders it again a moment later (an LIS that sends
 * an edit of the order as a cancel and a new order). The order again is recorded while the cancel
 * is on the wire: the cancel was "not sent yet" as far as the document knew, so the order again
 * only withdrew it (the analyzer keeps the test it has). But the analyzer took the cancel: it
 * holds the test nowhere, and the order again must be downloaded.
 *
 * Real store in a temp dir; the link is the analyzer endpoint's interface, recording what would go
 * on the wire; the LIS's order again is committed while the cancel is on the wire.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OrderDownload } from '../../gateway/src/astm/order-download.ts';
import { orderEvents } from '../fixtures/order-download.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';

const { created, cancelled } = orderEvents('eeeeef', '2026-12-07T10:00:00.000Z');

let dir: string;
let store: EventStore;
let download: OrderDownload;
const wire: string[][] = [];
/** Runs while a download is on the wire (before the analyzer's acceptance is reported). */
let onWire: ((records: readonly string[]) => void) | undefined;
const link = {
  connections: 1,
  sendWorklist: async (records: readonly string[]) => {
    wire.push([...records]);
    onWire?.(records);
  },
};

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-s23e-reorder-'));
  store = await EventStore.open({ dataDir: dir });
  wire.length = 0;
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
  wire.flatMap((records) =>
    records
      .filter((r) => r.startsWith('O|'))
      .map((r) => {
        const f = r.split('|');
        return `${f[2]} ${f[11] || 'N'}`;
      }),
  );

describe('a test ordered again while its cancel is on the wire', () => {
  it('is downloaded again once the analyzer took the cancel', async () => {
    download.onCommitted([created('ACC-T', ['TSH'])]);
    await expect.poll(() => orders().length, { timeout: 5_000 }).toBe(1);
    onWire = (records) => {
      if (!records.some((r) => r.startsWith('O|') && r.split('|')[11] === 'C')) return;
      onWire = undefined;
      download.onCommitted([created('ACC-T', ['TSH'])]);
    };
    download.onCommitted([cancelled('ACC-T', ['TSH'])]);
    await expect.poll(() => orders().length, { timeout: 5_000 }).toBeGreaterThanOrEqual(2);
    // A barrier: another accession, sent once everything queued before it went.
    download.onCommitted([created('ACC-Z', ['TSH'])]);
    await expect.poll(() => orders().some((o) => o.startsWith('ACC-Z ')), { timeout: 5_000 }).toBe(true);
    await expect.poll(async () => (await store.listDocs('orderOutbox', { prefix: 'centaur-1\u0000' })).length, { timeout: 5_000 }).toBe(0);

    // Before: ['ACC-T N', 'ACC-T C'] — the analyzer took the cancel and never got TSH again.
    expect(orders().filter((o) => o.startsWith('ACC-T ')), 'the order again never reached the analyzer').toEqual(['ACC-T N', 'ACC-T C', 'ACC-T N']);
  });
});
