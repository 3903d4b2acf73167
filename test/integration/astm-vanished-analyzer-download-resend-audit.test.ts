import { afterEach, describe, expect, it } from 'vitest';
import { type JsonChild, PEER_ADDRESS } from '../fixtures/net/netns-pair.ts';
import { acc2WrittenWhileOff, analyzerConnects, downloadsOf, received } from '../fixtures/net/records-only-download-rig.ts';

/**
 * An order download written to a records-only TCP analyzer switched off (or unplugged) while idle.
 * The link expects no answer: the download was marked sent the moment it was written. Since
 * 8fb403b the connection is dropped once the analyzer's TCP stack has acknowledged nothing for
 * `silentPeerMs`, but the download stayed "sent": the analyzer, back on, never got the order and
 * the technician had to type it in (ingress/astm README, astm README "Order download").
 *
 * Real kernels on both sides (test/fixtures/net/netns-pair.ts): the gateway's endpoint and its
 * real OrderDownload on a real store in one namespace (test/fixtures/net/astm-order-download-
 * child.ts), the analyzer reduced to its socket in the other, the veth pair's far end set down.
 * `silentPeerMs` is shortened so the test runs in seconds.
 */
const SILENT_PEER_MS = 1_500;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const connect = (): ReturnType<typeof analyzerConnects> => analyzerConnects({ prefix: 'lgw-astm-resend-', silentPeerMs: SILENT_PEER_MS, cleanups });

/**
 * Wait until the gateway's kernel has given up resolving the analyzer's address (neighbour
 * FAILED, a few seconds after the cut): until then the packets it sends wait in the neighbour's
 * queue and reach the analyzer the moment the link comes back. The minute's bound of a real
 * analyzer is far past that; the test's shortened one is not.
 */
async function analyzerUnreachable(gw: JsonChild): Promise<void> {
  for (let n = 0; ; n++) {
    if (n >= 200) throw new Error('the neighbour entry of the analyzer never failed');
    gw.send({ cmd: 'neighbour', address: PEER_ADDRESS, n });
    const answer = await gw.waitFor('the neighbour entry', (e) => e.event === 'neighbour' && e.n === n);
    if (/FAILED/.test(answer.text as string) || answer.text === '') return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const REASON = /the analyzer acknowledged nothing the gateway sent for \d+ s \(switched off, or its cable pulled\?\): connection closed/;
const NOT_RECEIVED = /^not received by the analyzer: the connection was closed after it acknowledged nothing for \d+ s/;

describe('an order download written to a records-only TCP analyzer switched off while idle', () => {
  /**
   * User sees: the analyzer was switched off while idle; the morning's first order went to it, was
   * shown sent, and the connection was dropped a minute later. The analyzer, back on, never got
   * the order. Promise: a download none of whose bytes the analyzer's TCP stack acknowledged before
   * the connection was dropped for it goes back to the outbox, shown failing with the reason, and
   * is sent again, once, when the analyzer connects; one it acknowledged is never sent again.
   */
  it('is put back, shown failing with the reason, and reaches the analyzer once when it connects again', async () => {
    const { pair, gw, analyzer } = await connect();

    // ACC-1 reaches the analyzer while it is on; then it is switched off, idle, and ACC-2 is written to it, shown sent.
    const since = await acc2WrittenWhileOff({ pair, gw, analyzer });

    // The connection is dropped for it; ACC-2 goes back to the outbox, failing, with the reason.
    const gone = await gw.waitFor('the connection closed', (e) => e.event === 'state' && e.connections === 0, 20_000, since);
    expect(gone.detail).toMatch(REASON);
    const back = await gw.waitFor('ACC-2 back in the outbox', (e) => e.event === 'summary' && e.failing === 1, 10_000, since);
    expect(back).toMatchObject({ waiting: 1, failing: 1, lastErrorAccession: 'ACC-2' });
    expect(back.lastError).toMatch(NOT_RECEIVED);
    expect(gw.events.slice(since).some((e) => e.event === 'alert' && /ACC-2/.test(e.message as string) && /not received by the analyzer/.test(e.message as string))).toBe(true);

    // Back on (after a while: a real analyzer takes longer than the test's bound to be dropped):
    // the analyzer connects again and receives ACC-2.
    await analyzerUnreachable(gw);
    await pair.mend();
    analyzer.send({ cmd: 'connect' });
    await analyzer.waitFor('connected again', (e) => e.event === 'connected' && e.conn === 1);
    await analyzer.waitFor('ACC-2 received', () => downloadsOf(received(analyzer, 1), 'ACC-2') >= 1, 10_000);
    const done = await gw.waitFor('the outbox empty', (e) => e.event === 'summary' && e.waiting === 0 && e.failing === 0, 10_000, gw.events.indexOf(back) + 1);
    expect(done.lastError).toBeNull();

    // A barrier: ACC-3 after it on the same connection. Then the old connection is shown gone to
    // the analyzer (its write is answered with a reset): nothing more can arrive on it.
    gw.send({ cmd: 'order', accession: 'ACC-3', codes: ['TSH'] });
    await analyzer.waitFor('ACC-3 received', () => downloadsOf(received(analyzer, 1), 'ACC-3') === 1, 10_000);
    analyzer.send({ cmd: 'write', conn: 0, hex: Buffer.from('H|\\^&\rL|1|N\r', 'latin1').toString('hex') });
    await analyzer.waitFor('the old connection reset', (e) => e.event === 'close' && e.conn === 0, 20_000);

    // Exactly once each: ACC-2 on the new connection only, ACC-1 (acknowledged) never again.
    expect(downloadsOf(received(analyzer), 'ACC-2')).toBe(1);
    expect(downloadsOf(received(analyzer, 0), 'ACC-2')).toBe(0);
    expect(downloadsOf(received(analyzer), 'ACC-1')).toBe(1);
    expect(downloadsOf(received(analyzer), 'ACC-3')).toBe(1);
  }, 90_000);
});
