/**
 * Downloads a records-only TCP link reported sent and later learnt never received (their
 * connection dropped because the analyzer's TCP stack acknowledged nothing: the endpoint's
 * `onUnreceived`, one call per download lost on the connection, in the order they were written,
 * all with the same `connection`). When several downloads of one accession were lost together, each
 * one's test must be set back to what the analyzer holds, which is what it held before the first
 * of them: an order lost after a cancel that was lost too must not be sent again (the analyzer
 * still has the test: sent again, it runs it twice on the patient's sample).
 *
 * Real store in a temp dir; the link is the analyzer endpoint's interface, recording what would go
 * on the wire and keeping each download's `onUnreceived`, called here as the endpoint calls them at
 * the close (astm-endpoint.ts #unconfirmedOnClose).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OrderDownload, type OrderDownloadSummary, type UnreceivedDownload } from '../../gateway/src/astm/order-download.ts';
import type { CanonicalEvent } from '../../gateway/src/events/types.ts';
import { orderEvents } from '../fixtures/order-download.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';

const { created, cancelled } = orderEvents('bbbbbb', '2026-12-07T10:00:00.000Z');

interface Sent {
  records: string[];
  onUnreceived?: (fate: UnreceivedDownload) => void;
}

let dir: string;
let store: EventStore;
let download: OrderDownload;
let summary: OrderDownloadSummary | undefined;
const wire: Sent[] = [];
const link = { connections: 1, sendWorklist: async (records: readonly string[], options?: { onUnreceived?(fate: UnreceivedDownload): void }) => void wire.push({ records: [...records], ...(options?.onUnreceived ? { onUnreceived: options.onUnreceived } : {}) }) };

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-od-unreceived-'));
  store = await EventStore.open({ dataDir: dir });
  wire.length = 0;
  link.connections = 1;
  summary = undefined;
  download = new OrderDownload({ analyzerId: 'centaur-1', profile: loadProfile('siemens-advia-centaur-xp'), link, store, telemetry: new Telemetry(), log: silentLogger });
  download.onSummary((s) => (summary = s));
});

afterEach(async () => {
  await download.stop();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** O records sent so far (one test each here), as `<accession> <action code (O.12), N when empty>`. */
const orders = (): string[] =>
  wire.flatMap((s) =>
    s.records
      .filter((r) => r.startsWith('O|'))
      .map((r) => {
        const f = r.split('|');
        return `${f[2]} ${f[11] || 'N'}`;
      }),
  );
/** Sends so far naming `accession`. */
const sendsOf = (accession: string): Sent[] => wire.filter((s) => s.records.some((r) => r.startsWith('O|') && r.split('|')[2] === accession));

const REASON = 'not received by the analyzer: the connection was closed after it acknowledged nothing for 60 s';

/** The endpoint at the close: each download lost on the connection told, in the order written. */
function lostTogether(...sends: Sent[]): void {
  const connection = {};
  for (const s of sends) s.onUnreceived?.({ received: false, reason: REASON, connection });
}

/**
 * A barrier: an order of another accession, sent once everything queued before it in the outbox
 * went (a pass takes the outbox oldest first; what the close put back is queued before it).
 */
async function barrier(accession: string): Promise<void> {
  download.onCommitted([created(accession, ['TSH'])]);
  await expect.poll(() => sendsOf(accession).length, { timeout: 5_000 }).toBe(1);
}

describe('downloads of one accession lost together on a records-only TCP connection', () => {
  /**
   * User sees: TSH reached the analyzer; the LIS cancelled it, then ordered it again, while the
   * analyzer had just been switched off; both went on the dead connection, which was dropped.
   * Before: the cancel was found "not needed" (the test ordered again since) and the order was put
   * back and sent again when the analyzer came back: the analyzer, which never saw the cancel,
   * had TSH twice and ran it twice. Now: the analyzer still holds TSH, nothing is sent again.
   */
  it('a cancel and the order again, both lost: the analyzer still holds the test, nothing is sent again', async () => {
    download.onCommitted([created('ACC-A', ['TSH'])]);
    await expect.poll(() => sendsOf('ACC-A').length, { timeout: 5_000 }).toBe(1);
    download.onCommitted([cancelled('ACC-A', ['TSH'])]);
    await expect.poll(() => sendsOf('ACC-A').length, { timeout: 5_000 }).toBe(2);
    download.onCommitted([created('ACC-A', ['TSH'])]);
    await expect.poll(() => sendsOf('ACC-A').length, { timeout: 5_000 }).toBe(3);
    const [, cancel, again] = sendsOf('ACC-A') as [Sent, Sent, Sent];

    lostTogether(cancel, again);
    await barrier('ACC-Z');

    expect(orders().filter((o) => o.startsWith('ACC-A ')), 'TSH was ordered on the analyzer a second time').toEqual(['ACC-A N', 'ACC-A C', 'ACC-A N']);
    expect(summary).toMatchObject({ waiting: 0, failing: 0 });
  });

  /**
   * User sees: an order written to the analyzer switched off, cancelled by the LIS a few seconds
   * later (the cancel written to the dead connection too), both lost. Before: the cancel was put
   * back and sent to the analyzer once back on, for a test it never had, and the accession showed
   * failing until it went. Now nothing is sent: the analyzer never had the test.
   */
  it('an order and its cancel, both lost: neither is sent again', async () => {
    download.onCommitted([created('ACC-B', ['TSH'])]);
    await expect.poll(() => sendsOf('ACC-B').length, { timeout: 5_000 }).toBe(1);
    download.onCommitted([cancelled('ACC-B', ['TSH'])]);
    await expect.poll(() => sendsOf('ACC-B').length, { timeout: 5_000 }).toBe(2);
    const [order, cancel] = sendsOf('ACC-B') as [Sent, Sent];

    lostTogether(order, cancel);
    await barrier('ACC-Z');

    expect(orders().filter((o) => o.startsWith('ACC-B ')), 'a cancel went to the analyzer for a test it never had').toEqual(['ACC-B N', 'ACC-B C']);
    expect(summary).toMatchObject({ waiting: 0, failing: 0 });
  });

  /**
   * User sees: an order written to the analyzer switched off, cancelled by the LIS, both lost on
   * the dead connection; while the analyzer is still off the LIS orders the test again. Before:
   * the lost cancel was put back, and the order again then only "withdrew" it (an order after a
   * cancel not sent yet leaves the analyzer with the test it has): marked sent, never sent, and
   * the analyzer, which never had the test, never got it. Now it is sent when the analyzer
   * connects, once.
   */
  it('an order and its cancel lost, then the order again: sent once when the analyzer connects', async () => {
    download.onCommitted([created('ACC-C', ['TSH'])]);
    await expect.poll(() => sendsOf('ACC-C').length, { timeout: 5_000 }).toBe(1);
    download.onCommitted([cancelled('ACC-C', ['TSH'])]);
    await expect.poll(() => sendsOf('ACC-C').length, { timeout: 5_000 }).toBe(2);
    const [order, cancel] = sendsOf('ACC-C') as [Sent, Sent];

    // The dead connection dropped: nothing open until the analyzer is back.
    link.connections = 0;
    lostTogether(order, cancel);
    download.onCommitted([created('ACC-C', ['TSH'])]);

    link.connections = 1;
    download.onLink();
    await barrier('ACC-Z');

    expect(orders().filter((o) => o.startsWith('ACC-C ')), 'the order again never reached the analyzer').toEqual(['ACC-C N', 'ACC-C C', 'ACC-C N']);
    expect(summary).toMatchObject({ waiting: 0, failing: 0 });
  });

  /**
   * User sees: an order lost on the dead connection, cancelled by the LIS before the analyzer came
   * back (the cancel not sent: nothing is connected). Nothing is left to send, and nothing failed.
   * Before: the accession's document kept the failure all the same, and the next order of the
   * accession showed failing at once ("not received by the analyzer …") before it was ever sent.
   */
  it('an order lost and cancelled since: nothing waits, and a later order of the accession is not shown failing', async () => {
    download.onCommitted([created('ACC-D', ['TSH'])]);
    await expect.poll(() => sendsOf('ACC-D').length, { timeout: 5_000 }).toBe(1);
    const [order] = sendsOf('ACC-D') as [Sent];

    link.connections = 0;
    download.onCommitted([cancelled('ACC-D', ['TSH'])]);
    await expect.poll(() => summary?.waiting, { timeout: 5_000 }).toBe(1);
    lostTogether(order);
    await expect.poll(() => summary?.waiting, { timeout: 5_000 }).toBe(0);

    download.onCommitted([created('ACC-D', ['FT4'])]);
    await expect.poll(() => summary?.waiting, { timeout: 5_000 }).toBe(1);
    expect(summary, 'an order never sent shown failing').toMatchObject({ waiting: 1, failing: 0, lastError: null });
  });
});
