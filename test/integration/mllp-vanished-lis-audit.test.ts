import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { repoRoot } from '../fixtures/hl7/helpers.ts';
import { GATEWAY_ADDRESS, type JsonChild, type NetnsPair, netnsPair } from '../fixtures/net/netns-pair.ts';

/**
 * A LIS that vanishes without closing (power cut, cable pulled, its VM stopped: no FIN, no RST) in
 * the instant the gateway's ACK is on the wire. TCP keepalive sends no probe while sent bytes wait
 * for their acknowledgement, so the kernel retransmits the ACK for about 15 minutes (tcp_retries2)
 * before it gives up: all that time the socket held a slot of maxConnections and the link showed
 * the LIS connected (hl7/README.md "A LIS that vanishes").
 *
 * Real kernels on both sides: the gateway's MLLP endpoint in a network namespace of its own, the
 * LIS in another, joined by a veth pair whose far end is set down (test/fixtures/net/netns-pair.ts).
 * The LIS ends its message with FS and no CR: the gateway answers it after END_CR_GRACE_MS (1 s),
 * by which time the LIS's link is down, so the ACK is surely the one on the wire. The bound is
 * shortened (`peerAckMs`, an option of the endpoint) so the test runs in seconds.
 */
const PEER_ACK_MS = 1_500;
const gatewayChild = path.join(repoRoot, 'test/fixtures/net/gateway-child.ts');
const peerChild = path.join(repoRoot, 'test/fixtures/net/tcp-peer-child.ts');
const VT = '0b';
const FS = '1c';
const CR = '0d';
const message = (id: string): string =>
  Buffer.from(`MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ORU^R01^ORU_R01|${id}|P|2.5\rPID|1||MRN-${id}\rOBR|1|ACC-${id}||GLU^Glucose\rOBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F\r`, 'latin1').toString('hex');

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The LIS connected to the gateway; `since`: the index of the gateway's first event from then on. */
async function gatewayAndLis(): Promise<{ pair: NetnsPair; gw: JsonChild; lis: JsonChild; since: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lgw-mllp-vanished-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const pair = await netnsPair();
  cleanups.push(() => pair.close());
  const gw = pair.gateway(gatewayChild, ['mllp', dir, GATEWAY_ADDRESS, String(PEER_ACK_MS)]);
  const ready = await gw.waitFor('the MLLP listener', (e) => e.event === 'ready');
  const lis = pair.peer(peerChild, ['connect', GATEWAY_ADDRESS, String(ready.port)]);
  await lis.waitFor('the LIS connected', (e) => e.event === 'connected');
  const up = await gw.waitFor('the link connected', (e) => e.event === 'state' && e.state === 'connected' && e.connections === 1);
  return { pair, gw, lis, since: gw.events.indexOf(up) + 1 };
}

describe('a LIS that vanishes while the ACK is on the wire (power cut, cable pulled)', () => {
  /**
   * User sees: the LIS lost power right after sending a result. Its connection stayed "connected"
   * for about 15 minutes and kept its slot: with the limit reached, the LIS that came back was
   * refused. Promise: once the LIS has acknowledged nothing the gateway sent for `peerAckMs`
   * (60 s by default), the connection is closed with the reason in the log, the link no longer
   * counts it, and the LIS that comes back is served (here the limit is one connection).
   */
  it('the connection is closed, the link shows it gone, and the slot is free for the LIS that comes back', async () => {
    const { pair, gw, lis, since } = await gatewayAndLis();
    lis.send({ cmd: 'write', conn: 0, hex: VT + message('M1') + FS });
    await lis.waitFor('the message handed to the kernel', (e) => e.event === 'written');
    await pair.cut();

    const gone = await gw.waitFor('the connection dropped', (e) => e.event === 'state' && e.connections === 0, 20_000, since);
    expect(gone.state).toBe('listening');
    const warning = await gw.waitFor('the reason logged', (e) => e.event === 'log' && e.level === 'warn' && /acknowledged nothing/.test(String(e.msg)));
    expect(warning.msg).toMatch(/the LIS acknowledged nothing the gateway sent for \d+ s \(switched off, or its cable pulled\?\): connection closed/);
    expect(warning.remote).toMatch(/^10\.201\.0\.2:\d+$/);
    // The ACK was the one on the wire: it never reached the LIS.
    expect(lis.events.filter((e) => e.event === 'data')).toEqual([]);

    await pair.mend();
    const from = lis.events.length;
    lis.send({ cmd: 'connect' });
    await lis.waitFor('the LIS connected again', (e) => e.event === 'connected' && e.conn === 1, 30_000, from);
    lis.send({ cmd: 'write', conn: 1, hex: VT + message('M1') + FS + CR });
    const reply = await lis.waitFor('the ACK on the new connection', (e) => e.event === 'data' && e.conn === 1, 30_000, from);
    expect(Buffer.from(String(reply.hex), 'hex').toString('latin1')).toMatch(/MSA\|AA\|M1/);
  }, 60_000);

  /**
   * A LIS whose program is slow, or reads its socket only when it next sends, is alive: its TCP
   * stack acknowledges the ACK at once. Its connection stays, however long it keeps quiet.
   */
  it('a LIS that is there but reads nothing keeps its connection', async () => {
    const { gw, lis, since } = await gatewayAndLis();
    lis.send({ cmd: 'pause', conn: 0 });
    lis.send({ cmd: 'write', conn: 0, hex: VT + message('M2') + FS + CR });
    await new Promise((r) => setTimeout(r, PEER_ACK_MS * 4));
    expect(gw.events.slice(since).filter((e) => e.event === 'state').map((e) => e.connections)).not.toContain(0);
    expect(gw.events.filter((e) => e.event === 'log' && e.level === 'warn').map((e) => e.msg)).toEqual([]);
  }, 60_000);
});
