import net from 'node:net';
import { describe, expect, it } from 'vitest';
import type { StoredMessage } from '../../gateway/src/store/types.ts';
import { analyzerServer, useAstmTcpEndpoints, type TcpSide } from '../fixtures/astm-link/tcp-endpoint.ts';
import { until } from '../fixtures/gateway-process.ts';

/**
 * An analyzer on a records-only TCP link (E1394 records, no ENQ/ACK framing: `lowLevel:
 * records-only`) switched off, or its cable pulled, in the middle of a message: no FIN, no RST,
 * and no L record. Such a link sends the analyzer nothing per message, so when the gateway has
 * written nothing since, TCP keepalive closes the connection about 40 s later. But once the
 * gateway wrote to it (an order download, a host query answer) and the dead analyzer never
 * acknowledged those bytes, the kernel sends no keepalive probe and retransmits for about 15
 * minutes (tcp_retries2): measured on a veth pair whose far end went down, a download written
 * 5 s after the analyzer went dark left the link "connected" for as long as the run lasted, while
 * an idle one closed after 42 s. The E1381 link closes such a connection after `silentPeerMs`
 * (astm-silent-peer-audit); the records-only link had no such check.
 *
 * The analyzer here is a real TCP peer that stops sending mid-message (its socket stays open, its
 * kernel acknowledges what arrives): what the gateway's session sees of a dead analyzer either way.
 * The timers are shortened so the test runs in seconds (`frameTimeoutMs`, `silentPeerMs`).
 */
const QUICK = { lowLevel: 'records-only', frameTimeoutMs: 300, silentPeerMs: 1_500 };
const HALF = 'H|\\^&|||BS-240|||||||P|1\rP|1||PID-1\rO|1|S-1||^^^GLU\rR|1|^^^GLU|5.4|mmol/L\r';
const WHOLE = `${HALF}L|1|N\r`;

const { cleanups, endpoint: astmEndpoint } = useAstmTcpEndpoints('lgw-astm-ro-silent-', QUICK);

async function endpoint(id: string, tcp: TcpSide) {
  const { ep, states, store } = await astmEndpoint(id, tcp);
  const messages = async (): Promise<StoredMessage[]> => store.listMessages({ endpoint: id, limit: 10 });
  return { ep, states, messages };
}

describe('an analyzer on a records-only TCP link that goes silent mid-message', () => {
  /**
   * User sees: the gateway connects to the analyzer (tcp.connect); the analyzer was switched off
   * half-way through a run's results, just after the gateway had sent it an order. The tray showed
   * it connected for about 15 minutes and the gateway did not try to reach it again; the half
   * message was in the message browser as "incomplete message (receiver-timeout)". Promise: a link
   * that carries nothing is shown down and reconnected (ingress/astm README "Transports"), and
   * bad input is kept with a clear reason (DESIGN.md §2).
   */
  it('gateway as client: the half message is kept saying why, the link goes down and connects again', async () => {
    const { port, accepted } = await analyzerServer(cleanups);

    const { ep, states, messages } = await endpoint('ro-cli', { connect: { host: '127.0.0.1', port } });
    await ep.start();
    const first = await until('the gateway connected', () => accepted[0]);
    await until('the link up', () => states.some((s) => s.state === 'connected'));
    await ep.sendWorklist(['H|\\^&', 'P|1', 'O|1|S-2||^^^GLU', 'L|1|N']);
    first.write(HALF);
    // Silent from here on; its connection stays open.

    const kept = await until('the half message kept', async () => (await messages())[0]);
    expect({ status: kept.status, size: kept.size }).toEqual({ status: 'rejected', size: Buffer.byteLength(HALF, 'latin1') });
    expect(kept.rejectReason).toMatch(/no L record/);
    expect(kept.rejectReason).toMatch(/switched off|cable/);

    const down = await until('the link reported down', () => states.find((s) => s.state === 'disconnected'), 15_000);
    expect(down.detail).toMatch(/stopped in the middle of a message/);
    await until('the gateway connects again', () => accepted.length >= 2, 15_000);
    // Kept once: the close found nothing more to keep.
    expect(await messages()).toHaveLength(1);
  }, 40_000);

  /** The same with the analyzer connecting to the gateway (tcp.listen): its dead connection is closed. */
  it('gateway as server: the silent connection is closed', async () => {
    const { ep, messages } = await endpoint('ro-srv', { listen: { host: '127.0.0.1', port: 0 } });
    await ep.start();
    const socket = net.connect({ host: '127.0.0.1', port: ep.address()!.port });
    socket.on('error', () => undefined);
    cleanups.push(() => void socket.destroy());
    await new Promise<void>((r) => socket.once('connect', () => r()));
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.write(HALF);

    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the silent connection was kept')), 15_000))]);
    const kept = await until('the half message kept', async () => (await messages())[0]);
    expect(kept.status).toBe('rejected');
    expect(kept.rejectReason).toMatch(/no L record/);
  }, 40_000);

  /** An analyzer that ends its message keeps its link, however long it stays idle after its L record. */
  it('an analyzer idle after a whole message is not taken for silent', async () => {
    const { ep, states, messages } = await endpoint('ro-ok', { listen: { host: '127.0.0.1', port: 0 } });
    await ep.start();
    const socket = net.connect({ host: '127.0.0.1', port: ep.address()!.port });
    socket.on('error', () => undefined);
    cleanups.push(() => void socket.destroy());
    await new Promise<void>((r) => socket.once('connect', () => r()));
    let closed = false;
    socket.once('close', () => (closed = true));
    socket.write(WHOLE);
    await until('the message stored', async () => (await messages())[0]);
    await new Promise((r) => setTimeout(r, QUICK.silentPeerMs * 3));
    expect({ closed, states: states.map((s) => s.state), status: (await messages()).map((m) => m.status) }).toEqual({
      closed: false,
      states: expect.not.arrayContaining(['disconnected']),
      status: ['accepted'],
    });
  }, 40_000);
});
