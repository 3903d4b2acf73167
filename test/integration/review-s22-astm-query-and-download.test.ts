/**
 * An analyzer that both asks for its tubes (host query) and gets orders pushed (pushOrders): the
 * order is in its outbox, not downloaded yet (the analyzer was busy and refused it: every frame
 * NAKed, retried in 60 s), when the technician loads the tube and the analyzer asks for it. Real
 * gateway (real LevelDB in a temp dir), the LIS over real MLLP, the analyzer simulated over a real
 * TCP socket.
 *
 * The query was answered with ALT, and the analyzer ran it. The outbox did not know: at its next
 * pass it downloaded ALT for the same tube again (a second worklist entry: the test run twice, the
 * reagent drawn twice), and a cancel of the LIS afterwards was never sent (the test counted as not
 * downloaded yet), so a cancelled test answered by the query was run anyway.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { connectAnalyzer, msa, nextSession, orderLines, orm, refuseSession, sessionsUntil } from '../fixtures/order-download.ts';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } }, pushOrders: true };

describe('a tube answered by host query while its order waits in the outbox', () => {
  let gateway: Gateway;
  let stop: () => Promise<void>;
  let lis: MllpClient;
  let analyzer: { sim: AnalyzerSim; socket: net.Socket };

  beforeAll(async () => {
    ({ gateway, stop } = await startTestGateway('s22-query-download', { analyzers: [CHEM] }));
    analyzer = await connectAnalyzer(gateway, CHEM.id);
    lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
  });

  afterAll(async () => {
    analyzer?.socket.destroy();
    await lis?.close().catch(() => undefined);
    await stop?.();
  });

  it('is not downloaded again, and a cancel afterwards reaches the analyzer', { timeout: 90_000 }, async () => {
    expect(msa(await lis.send(orm('QD-1', 'ACC-QD-1', ['ALT'])))).toBe('MSA|AA|QD-1');
    await refuseSession(analyzer.sim);
    // The tube is loaded: the analyzer asks, and is answered ALT.
    await analyzer.sim.sendMessage(['H|\\^&|||CHEM^1|||||LIS||P|1|20261207100000', 'Q|1|^ACC-QD-1||ALL||||||||O', 'L|1|N']);
    // The link starts its next session some seconds after the refused one (ingress/astm).
    expect(orderLines(await nextSession(analyzer.sim, 40_000))).toEqual([['ACC-QD-1', '^^^ALT', 'N']]);
    // Another order makes the outbox go out at once.
    expect(msa(await lis.send(orm('QD-2', 'ACC-QD-2', ['GLU'])))).toBe('MSA|AA|QD-2');
    const seen = await sessionsUntil(analyzer.sim, 'ACC-QD-2');
    // Before: ['ACC-QD-1', '^^^ALT', 'N'] again — a second worklist entry for the tube.
    expect(seen.filter((o) => o[0] === 'ACC-QD-1')).toEqual([]);
    // The LIS cancels the ALT: the analyzer, which has it from the query, gets the cancel.
    expect(msa(await lis.send(orm('QD-3', 'ACC-QD-1', ['ALT'], 'CA')))).toBe('MSA|AA|QD-3');
    expect(msa(await lis.send(orm('QD-4', 'ACC-QD-3', ['GLU'])))).toBe('MSA|AA|QD-4');
    const after = await sessionsUntil(analyzer.sim, 'ACC-QD-3');
    // Before: nothing for ACC-QD-1 — the cancel was dropped with the pending test.
    expect(after.filter((o) => o[0] === 'ACC-QD-1')).toEqual([['ACC-QD-1', '^^^ALT', 'C']]);
  });
});
