/**
 * An analyzer with pushOrders refuses an order download (every frame NAKed until the gateway
 * aborts the message), then asks for a tube (host query). Real gateway (real LevelDB in a temp
 * dir), the LIS over real MLLP, the analyzer simulated over a real TCP socket.
 *
 * After the aborted download the link held off its next ENQ for the busy delay (busyRetryMs, 10 s)
 * even once the analyzer had sent a whole message of its own: the query's answer waited out the
 * delay. A cobas e 411 cancels a query not answered within 15 s (protocols.md §2.4), so an answer
 * ~10 s late, behind anything else queued, was cancelled and the tube ran nothing. The site's
 * delay is set long here (overrides.nakRetryDelayMs: 10 min) so that waiting it out shows as no answer
 * at all; the analyzer's own message ends the hold-off as it ends a receiver interrupt's.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { connectAnalyzer, msa, nextSession, orderLines, orm, refuseSession } from '../fixtures/order-download.ts';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } }, pushOrders: true, overrides: { nakRetryDelayMs: 600_000 } };

describe('a host query right after a refused order download', () => {
  let gateway: Gateway;
  let stop: () => Promise<void>;
  let lis: MllpClient;
  let analyzer: { sim: AnalyzerSim; socket: net.Socket };

  beforeAll(async () => {
    ({ gateway, stop } = await startTestGateway('s22-answer-after-refusal', { analyzers: [CHEM] }));
    analyzer = await connectAnalyzer(gateway, CHEM.id);
    lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
  });

  afterAll(async () => {
    analyzer?.socket.destroy();
    await lis?.close().catch(() => undefined);
    await stop?.();
  });

  it('is answered once the analyzer has sent its query, not after the busy delay', { timeout: 60_000 }, async () => {
    expect(msa(await lis.send(orm('BZ-1', 'ACC-BZ-1', ['ALT'])))).toBe('MSA|AA|BZ-1');
    await refuseSession(analyzer.sim);
    // The technician loads the tube: the analyzer asks for it.
    await analyzer.sim.sendMessage(['H|\\^&|||CHEM^1|||||LIS||P|1|20261207100000', 'Q|1|^ACC-BZ-1||ALL||||||||O', 'L|1|N']);
    // Before: nothing for 10 minutes (the busy delay set by the refused download).
    expect(orderLines(await nextSession(analyzer.sim, 20_000))).toEqual([['ACC-BZ-1', '^^^ALT', 'N']]);
  });
});
