/**
 * A working day of analyzers on the ASTM link, as the lab sees it: the whole gateway (real
 * LevelDB in a temp dir, real TCP sockets), analyzers simulated byte by byte (AnalyzerSim), the
 * LIS over MLLP. Each test demonstrates a fault the technician would meet and fails on the code
 * before its fix.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import type { TestCompletedData } from '../../gateway/src/events/types.ts';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { AnalyzerSim, framesForText } from '../fixtures/astm-link/analyzer-sim.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { CENTAUR, connectAnalyzer, connections, nextSession, orm } from '../fixtures/order-download.ts';

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`${what}: not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The analyzer codes of the test.completed events stored for `analyzerId`. */
async function completedCodes(gateway: Gateway, analyzerId: string): Promise<string[]> {
  const events = await gateway.store!.listEvents({ type: 'test.completed', limit: 100 });
  return events
    .filter((e) => e.event.source.kind === 'astm' && e.event.source.endpoint === analyzerId)
    .map((e) => (e.event.data as TestCompletedData).testCode)
    .sort();
}

describe('an analyzer that splits a long record with ETB frames of exactly 240 characters', () => {
  /*
   * What the technician saw: the analyzer's run of a specimen showed "transmitted" on its screen
   * (or "transmission error" on the last record), yet the LIS had only the first result of the
   * run; the sodium result after a long glucose result never reached the order, and the message
   * browser held a rejected "message" starting with R|2 and no header.
   * Promise broken: LIS1-A §6.3.1 (records over 240 characters are split into intermediate
   * frames, ETB, and an end frame), LIS2-A2 §5.5 (a message ends with its L record), DESIGN.md §2
   * "No acknowledged message is ever lost" — a half message was stored as a whole one and the
   * other half refused.
   * Cause: gateway/src/ingress/astm/e1381-session.ts #isMessageComplete looked at the end frame's
   * text alone first. The end frame of a split record starts in the middle of that record; when
   * the 240-character cut falls right before `L|` of a field (the unit "mmol/L|"), that text
   * reads as an L record, and the message was taken as complete one record after its R|1.
   */
  it('stores every result of the message, not a first half cut at a field that begins with L', async () => {
    const { gateway, stop } = await startTestGateway('day-etb-240', {
      analyzers: [{ id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } } }],
    });
    let socket: net.Socket | undefined;
    try {
      const conn = await connectAnalyzer(gateway, 'chem-1');
      socket = conn.socket;
      // R|1 is 261 characters with its CR: the first frame carries 240 (ETB), the end frame the
      // rest, which begins with "L||N||F" — the tail of "mmol/L||N||F".
      const head = 'R|1|^^^GLU^^';
      const pad = 'X'.repeat(240 - head.length - '|5.4|mmol/'.length);
      const r1 = `${head}${pad}|5.4|mmol/L||N||F||||20260311101500`;
      const text = ['H|\\^&|||chem^1|||||host||P|1', 'P|1||PAT-240', 'O|1|SID-240||^^^GLU\\^^^NA|R', r1, 'R|2|^^^NA|140|mmol/L||N||F||||20260311101500', 'L|1|N'].join('\r') + '\r';
      const frames = framesForText(text, { maxText: 240 });
      expect(frames[3]?.subarray(2, 2 + 240).toString('latin1')).toBe(r1.slice(0, 240)); // an ETB frame of exactly 240
      expect(frames[4]?.subarray(2, 9).toString('latin1')).toBe('L||N||F');
      const { replies } = await conn.sim.sendMessage(frames);
      expect(replies).toBe('<ACK>'.repeat(frames.length + 1));
      await until(async () => (await completedCodes(gateway, 'chem-1')).length >= 2, 'both results stored');
      expect(await completedCodes(gateway, 'chem-1')).toEqual(['GLU', 'NA']);
    } finally {
      socket?.destroy();
      await stop();
    }
  }, 30_000);
});

describe('an analyzer (or its serial-to-LAN converter) restarted without closing its old connection', () => {
  /*
   * What the technician saw: after the analyzer's LAN converter lost power for a moment, the
   * analyzer connected again and sent results, but the worklist the LIS ordered afterwards never
   * arrived at the analyzer; IT saw "order download … not accepted (send failed after 6 attempts:
   * no reply to ENQ)" and later "kept until the analyzer connects again" — while the analyzer was
   * connected and idle.
   * Promise broken: the order download is sent "when a connection opens" (astm/order-download.ts)
   * on the analyzer's connection; ingress/astm/README.md (TCP server: "An analyzer holds one
   * connection (two while it reconnects)").
   * Cause: gateway/src/ingress/astm/astm-endpoint.ts sendWorklist sent on the FIRST open
   * connection: the old one, which the restarted converter will never answer (a half-open TCP
   * connection stays open at the gateway until keep-alive or TCP retransmissions give up on it,
   * many minutes when a firewall drops its packets).
   */
  it('sends the order download on the connection the analyzer opened last, not on the stale one', async () => {
    const { gateway, stop } = await startTestGateway('day-stale-conn', { analyzers: [CENTAUR] });
    const sockets: net.Socket[] = [];
    const lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
    try {
      // The converter's first connection: it goes silent (power blip) without a FIN or RST.
      const stale = net.connect({ host: '127.0.0.1', port: gateway.addresses().analyzers['centaur-1']!.port! });
      sockets.push(stale);
      stale.on('error', () => undefined);
      const staleSim = new AnalyzerSim((b) => stale.write(b));
      stale.on('data', (d: Buffer) => staleSim.feed(d));
      await until(() => connections(gateway, 'centaur-1') === 1, 'first connection registered');
      // The converter is back and connects again.
      const fresh = await connectAnalyzer(gateway, 'centaur-1');
      sockets.push(fresh.socket);
      await until(() => connections(gateway, 'centaur-1') === 2, 'second connection registered');
      expect((await lis.send(orm('DAY-1', 'ACC-DAY-1', ['TSH']))).toString('latin1')).toContain('MSA|AA|DAY-1');
      const session = await nextSession(fresh.sim, 8_000);
      expect(session, `the download went to the stale connection (${staleSim.unread()}) and never to the analyzer's live one`).toContain('ACC-DAY-1');
    } finally {
      for (const s of sockets) s.destroy();
      await lis.close().catch(() => undefined);
      await stop();
    }
  }, 30_000);
});
