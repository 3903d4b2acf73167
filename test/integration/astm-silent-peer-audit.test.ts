import { describe, expect, it } from 'vitest';
import { AnalyzerSim, framesForText } from '../fixtures/astm-link/analyzer-sim.ts';
import { connectTcpSim } from '../fixtures/astm-link/sim-wires.ts';
import { analyzerServer, useAstmTcpEndpoints } from '../fixtures/astm-link/tcp-endpoint.ts';
import { until } from '../fixtures/gateway-process.ts';

/**
 * An analyzer on a TCP link that goes silent without closing its connection: powered off, or its
 * cable pulled, right after its last frame. No FIN, no RST reaches the gateway. The gateway's ACK
 * of that frame is never acknowledged by the analyzer's TCP, and while sent bytes wait for their
 * acknowledgement the kernel sends no keepalive probe: it retransmits for tcp_retries2 (about
 * 15 minutes) before it gives up (measured on a veth pair whose far end went down: an idle
 * connection closed after 40 s by keepalive, one with the ACK in flight still open minutes
 * later). Meanwhile the technician's tray showed the analyzer connected while nothing arrived.
 *
 * The analyzer here is a real TCP peer that stops answering (its socket stays open, its kernel
 * acknowledges what arrives): what the gateway's ASTM session sees of a dead analyzer either way.
 * The link timers are shortened so the test runs in seconds (`receiverFrameMs`, `silentPeerMs`).
 */
const QUICK = { frameTimeoutMs: 300, silentPeerMs: 1_500 };
const MESSAGE = ['H|\\^&|||an-1', 'P|1||PID-1', 'O|1|S-1||^^^GLU', 'R|1|^^^GLU|5.4|mmol/L', 'L|1|N'].join('\r');

const { cleanups, endpoint } = useAstmTcpEndpoints('lgw-astm-silent-', QUICK);

/** The analyzer sends a whole message, gets its ACKs, and goes silent before its EOT. */
async function sendThenFallSilent(sim: AnalyzerSim): Promise<string> {
  const frames = framesForText(MESSAGE);
  sim.write([0x05]);
  const replies = [await sim.nextByte()];
  for (const f of frames) {
    sim.write(f);
    replies.push(await sim.nextByte());
  }
  return replies.map((b) => (b === 0x06 ? 'ACK' : b.toString(16))).join(' ');
}

describe('an analyzer on TCP that goes silent without closing (powered off, cable pulled)', () => {
  /**
   * User sees: gateway connects to the analyzer (tcp.connect); the analyzer lost power right after
   * its last frame. The tray showed it connected for about 15 minutes, and the gateway did not
   * try to reach it again. Promise: the tray shows a link that carries nothing as down (ingress/astm
   * README "A link that went down stays down on the status"); the TCP client reconnects.
   */
  it('gateway as client: the link goes down and the gateway connects again', async () => {
    const { port, accepted } = await analyzerServer(cleanups);

    const { ep, states } = await endpoint('an-cli', { connect: { host: '127.0.0.1', port } });
    await ep.start();
    const first = await until('the gateway connected', () => accepted[0]);
    const sim = new AnalyzerSim((b) => first.write(b));
    first.on('data', (b: Buffer) => sim.feed(b));
    await until('the link up', () => states.some((s) => s.state === 'connected'));

    expect(await sendThenFallSilent(sim)).toBe('ACK ACK ACK ACK ACK ACK');
    // The analyzer is silent from here on; its connection is still open.
    const down = await until('the link reported down', () => states.find((s) => s.state === 'disconnected'), 15_000);
    expect(down.detail).toMatch(/no answer from the analyzer/);
    await until('the gateway connects again', () => accepted.length >= 2, 15_000);
  }, 40_000);

  /**
   * The same with the analyzer connecting to the gateway (tcp.listen): its dead connection was
   * kept, counted as the analyzer's connection, and order downloads went to it.
   */
  it('gateway as server: the silent connection is closed', async () => {
    const { ep } = await endpoint('an-srv', { listen: { host: '127.0.0.1', port: 0 } });
    await ep.start();
    const { sim, socket } = await connectTcpSim(ep.address()!.port, cleanups);
    socket.on('error', () => undefined);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));

    expect(await sendThenFallSilent(sim)).toBe('ACK ACK ACK ACK ACK ACK');
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the silent connection was kept')), 15_000))]);
    expect(socket.destroyed || socket.readyState === 'closed').toBe(true);
  }, 40_000);

  /** An analyzer that answers keeps its link, however long it stays idle after its EOT. */
  it('an analyzer that ends its session properly is not taken for silent', async () => {
    const { ep, states } = await endpoint('an-ok', { listen: { host: '127.0.0.1', port: 0 } });
    await ep.start();
    const { sim, socket } = await connectTcpSim(ep.address()!.port, cleanups);
    let closed = false;
    socket.once('close', () => (closed = true));
    expect(await sendThenFallSilent(sim)).toBe('ACK ACK ACK ACK ACK ACK');
    sim.write([0x04]);
    await new Promise((r) => setTimeout(r, QUICK.silentPeerMs * 3));
    expect({ closed, states: states.map((s) => s.state) }).toEqual({ closed: false, states: expect.not.arrayContaining(['disconnected']) });
  }, 40_000);
});
