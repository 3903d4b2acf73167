/**
 * An analyzer that both asks for its tubes (host query) and gets orders pushed (pushOrders): the
 * order waits in the outbox (its download refused, every frame NAKed), the technician loads the
 * tube and the analyzer asks for it, and the analyzer refuses the answer too (every frame NAKed
 * until the gateway gives up). Real gateway (real LevelDB in a temp dir), the LIS over real MLLP,
 * the analyzer simulated over a real TCP socket.
 *
 * Since 7feae5d the tests of a query answer counted as downloaded once the answer was built, before
 * it was sent: an answer the analyzer never took left the order marked downloaded, and the outbox
 * never sent it (an ordered test never run, nothing said).
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { connectAnalyzer, msa, orm, refuseSession, sessionsUntil } from '../fixtures/order-download.ts';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } }, pushOrders: true };

describe('a host query answer the analyzer refused', () => {
  let gateway: Gateway;
  let stop: () => Promise<void>;
  let lis: MllpClient;
  let analyzer: { sim: AnalyzerSim; socket: net.Socket };

  beforeAll(async () => {
    ({ gateway, stop } = await startTestGateway('s22-query-refused', { analyzers: [CHEM] }));
    analyzer = await connectAnalyzer(gateway, CHEM.id);
    lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
  });

  afterAll(async () => {
    analyzer?.socket.destroy();
    await lis?.close().catch(() => undefined);
    await stop?.();
  });

  it('leaves its tests to download: the outbox sends them', { timeout: 120_000 }, async () => {
    expect(msa(await lis.send(orm('QR-1', 'ACC-QR-1', ['ALT'])))).toBe('MSA|AA|QR-1');
    expect(await refuseSession(analyzer.sim, { takeHeader: true })).toContain('ACC-QR-1');
    // The tube is loaded: the analyzer asks, and refuses the answer (every frame NAKed).
    await analyzer.sim.sendMessage(['H|\\^&|||CHEM^1|||||LIS||P|1|20261207100000', 'Q|1|^ACC-QR-1||ALL||||||||O', 'L|1|N']);
    const refused = await refuseSession(analyzer.sim, { ms: 40_000, takeHeader: true });
    // The refused session was the query's answer (a Q.. answer: its O record carries the tube).
    expect(refused).toContain('ACC-QR-1');
    // Another order makes the outbox go out at once: the ALT the analyzer never took goes with it.
    expect(msa(await lis.send(orm('QR-2', 'ACC-QR-2', ['GLU'])))).toBe('MSA|AA|QR-2');
    // The outbox goes oldest first: ACC-QR-1 (queued first) before ACC-QR-2.
    const seen = await sessionsUntil(analyzer.sim, 'ACC-QR-2', 40_000);
    // Before: no ACC-QR-1 ever again — the ALT counted as downloaded by the refused answer.
    expect(seen.filter((o) => o[0] === 'ACC-QR-1')).toEqual([['ACC-QR-1', '^^^ALT', 'N']]);
  });
});
