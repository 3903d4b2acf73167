import { afterEach, describe, expect, it } from 'vitest';
import { acc2WrittenWhileOff, analyzerConnects, downloadsOf, received } from '../fixtures/net/records-only-download-rig.ts';

/**
 * An order download written to a records-only TCP analyzer that restarts within the minute of
 * `silentPeerMs`: switched off (or its converter power-cycled) while idle, the download written to
 * it, and back on before the gateway dropped the connection for its silence. Its TCP stack, new,
 * answers the gateway's retransmission of the download with a reset; the connection ends there,
 * not by the silent-peer rule, and the download must still be known as never received.
 * Before, the connection just ended (ECONNRESET) and the download stayed sent: the analyzer never
 * got the order. The rig is that of astm-vanished-analyzer-download-resend-audit.test.ts.
 *
 * Real kernels on both sides (test/fixtures/net/netns-pair.ts): the gateway's endpoint and its
 * real OrderDownload on a real store in one namespace (test/fixtures/net/astm-order-download-
 * child.ts), the analyzer reduced to its socket in the other, the veth pair's far end set down
 * while the analyzer forgets its connection (tcp-peer-child.ts `reset`: its RST lost on the dead
 * link), then up again. `silentPeerMs` is the real minute: the reset comes well within it.
 */
const SILENT_PEER_MS = 60_000;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const connect = (): ReturnType<typeof analyzerConnects> => analyzerConnects({ prefix: 'lgw-astm-reset-', silentPeerMs: SILENT_PEER_MS, cleanups });

describe('an order download written to a records-only TCP analyzer that restarts within the minute', () => {
  /**
   * User sees: the analyzer's converter was power-cycled while idle; the order written to it in
   * those seconds was shown sent, the old connection ended with a reset when it came back, and the
   * analyzer never got the order. Promise: a download none of whose bytes the analyzer's TCP stack
   * acknowledged before its reset goes back to the outbox and reaches the analyzer once.
   */
  it('is put back when the reset ends the connection, and reaches the analyzer once on its new connection', async () => {
    const { pair, gw, analyzer } = await connect();

    // ACC-1 reaches the analyzer while it is on; then it is switched off, idle, and ACC-2 is written to it, shown sent.
    const since = await acc2WrittenWhileOff({ pair, gw, analyzer });
    // It restarts: its connection is forgotten (the reset it sends is lost on the dead link).
    analyzer.send({ cmd: 'reset', conn: 0 });
    await analyzer.waitFor('the analyzer forgot its connection', (e) => e.event === 'close' && e.conn === 0);
    // A few looks of the gateway at the unacknowledged bytes, then it is back on.
    await new Promise((r) => setTimeout(r, 12_000));
    await pair.mend();
    // The gateway's next retransmission is answered with a reset: the connection ends.
    const gone = await gw.waitFor('the connection reset', (e) => e.event === 'state' && e.connections === 0, 40_000, since);
    expect(gone.detail).toMatch(/ECONNRESET/);
    // ACC-2 is back in the outbox, failing, with the reason; an alert names it.
    const back = await gw.waitFor('ACC-2 back in the outbox', (e) => e.event === 'summary' && e.failing === 1, 10_000, since);
    expect(back).toMatchObject({ waiting: 1, failing: 1, lastErrorAccession: 'ACC-2' });
    expect(back.lastError).toMatch(/^not received by the analyzer: the analyzer reset the connection \(restarted\?\) after it acknowledged nothing for \d+ s/);
    expect(gw.events.slice(since).some((e) => e.event === 'alert' && /ACC-2/.test(e.message as string) && /not received by the analyzer/.test(e.message as string))).toBe(true);

    analyzer.send({ cmd: 'connect' });
    await analyzer.waitFor('connected again', (e) => e.event === 'connected' && e.conn === 1);
    await analyzer.waitFor('ACC-2 received', () => downloadsOf(received(analyzer, 1), 'ACC-2') >= 1, 10_000);
    await gw.waitFor('the outbox empty', (e) => e.event === 'summary' && e.waiting === 0 && e.failing === 0, 10_000, since);
    // A barrier, then once each.
    gw.send({ cmd: 'order', accession: 'ACC-3', codes: ['TSH'] });
    await analyzer.waitFor('ACC-3 received', () => downloadsOf(received(analyzer, 1), 'ACC-3') === 1, 10_000);
    expect(downloadsOf(received(analyzer), 'ACC-2')).toBe(1);
    expect(downloadsOf(received(analyzer), 'ACC-1')).toBe(1);
  }, 120_000);

  it('a download the analyzer acknowledged is not sent again when it later resets the connection', async () => {
    const { gw, analyzer } = await connect();
    gw.send({ cmd: 'order', accession: 'ACC-1', codes: ['TSH'] });
    await analyzer.waitFor('ACC-1 received', () => downloadsOf(received(analyzer, 0), 'ACC-1') === 1);
    // Its stack acknowledged ACC-1 at once; a few looks later it restarts and resets the connection.
    await new Promise((r) => setTimeout(r, 6_000));
    const since = gw.events.length;
    analyzer.send({ cmd: 'reset', conn: 0 });
    const gone = await gw.waitFor('the connection reset', (e) => e.event === 'state' && e.connections === 0, 10_000, since);
    expect(gone.detail).toMatch(/ECONNRESET/);
    analyzer.send({ cmd: 'connect' });
    await analyzer.waitFor('connected again', (e) => e.event === 'connected' && e.conn === 1);
    gw.send({ cmd: 'order', accession: 'ACC-3', codes: ['TSH'] });
    await analyzer.waitFor('ACC-3 received', () => downloadsOf(received(analyzer, 1), 'ACC-3') === 1, 10_000);
    expect(downloadsOf(received(analyzer), 'ACC-1')).toBe(1);
    expect(gw.events.slice(since).some((e) => e.event === 'alert')).toBe(false);
  }, 60_000);
});
