/**
 * Order download (analyzers[].pushOrders) cut by a TCP reset: the analyzer (or its serial-to-LAN
 * converter) resets the connection in the middle of a download and connects again within a
 * minute. The order must reach it again on the new connection, exactly once, and the status must
 * say it waits meanwhile (not that the analyzer refused it, and not that it was sent).
 *
 * Real gateway, real LevelDB in a temp dir, real MLLP from the LIS, a simulated E1381 analyzer on
 * a real TCP socket that it resets (RST, resetAndDestroy) at a chosen point of the download.
 */
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { OrderDownloadSummary } from '../../gateway/src/astm/order-download.ts';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { ACK, ENQ, EOT, STX } from '../../gateway/src/ingress/astm/control-chars.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { sendOrder, startTestGateway } from '../fixtures/gateway.ts';
import { CENTAUR, connectAnalyzer, connections, nextSession, orderRecords, orm } from '../fixtures/order-download.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});


function summaryOf(gateway: Gateway): OrderDownloadSummary | undefined {
  return (gateway.statusModel?.toApiStatus().endpoints.find((e) => e.id === 'centaur-1') as { orderDownload?: OrderDownloadSummary } | undefined)?.orderDownload;
}

async function summaryWhen(gateway: Gateway, ready: (o: OrderDownloadSummary) => boolean, what: string): Promise<OrderDownloadSummary> {
  let last: OrderDownloadSummary | undefined;
  for (const until = Date.now() + 15_000; Date.now() < until; await new Promise((r) => setTimeout(r, 20))) {
    last = summaryOf(gateway);
    if (last && ready(last)) return last;
  }
  throw new Error(`the status never showed ${what} (last: ${JSON.stringify(last)})`);
}

/** Read the rest of one frame (… LF) after its STX was read; its text from the frame number on. */
async function restOfFrame(sim: AnalyzerSim): Promise<string> {
  let frame = '';
  for (let b = await sim.nextByte(5_000); b !== 0x0a; b = await sim.nextByte(5_000)) frame += String.fromCharCode(b);
  return frame;
}

async function startRig(id: string): Promise<{ gateway: Gateway; alerts: string[] }> {
  const { gateway, stop } = await startTestGateway(id, { analyzers: [CENTAUR] });
  cleanups.push(stop);
  const alerts: string[] = [];
  gateway.telemetry.on('alert', (a: { message: string }) => alerts.push(a.message));
  return { gateway, alerts };
}

describe('order download cut by a TCP reset, the analyzer back within a minute', () => {
  for (const cut of ['after its first frame was acknowledged', 'before the reply to its ENQ', 'after its last frame, before the ACK'] as const) {
    it(`a download reset ${cut} reaches the analyzer once on its new connection, and the status says it waits meanwhile`, async () => {
      const { gateway, alerts } = await startRig(`od-reset-${cut.split(' ')[0]}`);
      let analyzer: { sim: AnalyzerSim; socket: net.Socket } = await connectAnalyzer(gateway, 'centaur-1');
      const old = analyzer;
      cleanups.push(async () => void old.socket.destroy());
      await sendOrder(gateway, orm('RS-1', 'ACC-RS-1', ['TSH']));

      // The download starts; the analyzer resets the connection at the chosen point.
      expect(await analyzer.sim.nextByte(10_000)).toBe(ENQ);
      if (cut !== 'before the reply to its ENQ') {
        analyzer.sim.write([ACK]);
        expect(await analyzer.sim.nextByte(5_000)).toBe(STX);
        await restOfFrame(analyzer.sim);
        if (cut === 'after its last frame, before the ACK') {
          // Every frame but the last acknowledged; the last one read and then the reset.
          for (;;) {
            analyzer.sim.write([ACK]);
            expect(await analyzer.sim.nextByte(5_000)).toBe(STX);
            const frame = await restOfFrame(analyzer.sim);
            if (frame.includes('\x03') && /^\dL\|/.test(frame)) break;
          }
        }
      }
      analyzer.socket.resetAndDestroy();
      for (const until = Date.now() + 10_000; connections(gateway, 'centaur-1') > 0; await new Promise((r) => setTimeout(r, 20))) {
        if (Date.now() > until) throw new Error('the reset connection is still counted');
      }

      // Meanwhile: the order waits; it is not reported sent.
      const waiting = await summaryWhen(gateway, (o) => o.waiting === 1, 'the order waiting');
      expect(waiting.lastSentAt).toBeNull();

      // The analyzer connects again: the whole download, once.
      analyzer = await connectAnalyzer(gateway, 'centaur-1');
      const again = analyzer;
      cleanups.push(async () => void again.socket.destroy());
      const session = await nextSession(analyzer.sim, 10_000);
      expect(orderRecords(session).map((o) => [o[2], o[4]])).toEqual([['ACC-RS-1', '^^^TSH3UL']]);
      expect(session).toMatch(/^H\|.*\rL\|1\|N\r$/s);
      const sent = await summaryWhen(gateway, (o) => o.waiting === 0, 'the order sent');
      expect(sent).toMatchObject({ waiting: 0, failing: 0, lastError: null });
      expect(sent.lastSentAt).not.toBeNull();
      // Nothing more comes: not a second copy on the new connection.
      expect(await nextSession(analyzer.sim, 2_000)).toBe('');
      expect(alerts.filter((a) => /not accepted/.test(a)), 'a reset is no refusal').toEqual([]);
      expect(analyzer.sim.received.includes(EOT)).toBe(true);
    });
  }
});
