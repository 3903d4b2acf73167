/**
 * An order amended after its download: the LIS orders ALT on accession ACC-AO-1, the gateway
 * downloads it (O.12 = N, "new specimen"), then the physician adds glucose and the LIS sends the
 * order again with ALT and GLU. Real gateway (real LevelDB in a temp dir), the LIS over real MLLP,
 * the analyzer simulated over a real TCP socket.
 *
 * LIS2-A2 §8.4.12 (protocols.md §2.3, O.12): `N` is "new requests accompanying a new specimen",
 * `A` "add the requested tests to the existing specimen". The add-on went out as `N` under the
 * tube the analyzer already had an order for: an analyzer that keeps one order per specimen takes
 * it as the specimen's order again (ALT dropped, never run) or refuses the duplicate specimen
 * (the glucose never run).
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { connectAnalyzer, msa, nextSession, orderLines, orm } from '../fixtures/order-download.ts';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } }, pushOrders: true };

describe('a test added to an order the analyzer has', () => {
  let gateway: Gateway;
  let stop: () => Promise<void>;
  let lis: MllpClient;
  let analyzer: { sim: AnalyzerSim; socket: net.Socket };

  beforeAll(async () => {
    ({ gateway, stop } = await startTestGateway('s22-dl-add-on', { analyzers: [CHEM] }));
    analyzer = await connectAnalyzer(gateway, CHEM.id);
    lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
  });

  afterAll(async () => {
    analyzer?.socket.destroy();
    await lis?.close().catch(() => undefined);
    await stop?.();
  });

  it('is downloaded as tests added to the existing specimen (O.12 = A), not as a new specimen', async () => {
    expect(msa(await lis.send(orm('AO-1', 'ACC-AO-1', ['ALT'])))).toBe('MSA|AA|AO-1');
    expect(orderLines(await nextSession(analyzer.sim))).toEqual([['ACC-AO-1', '^^^ALT', 'N']]);
    expect(msa(await lis.send(orm('AO-2', 'ACC-AO-1', ['ALT', 'GLU'], 'XO')))).toBe('MSA|AA|AO-2');
    // Before: [['ACC-AO-1', '^^^GLU', 'N']] — a second "new specimen" ACC-AO-1.
    expect(orderLines(await nextSession(analyzer.sim))).toEqual([['ACC-AO-1', '^^^GLU', 'A']]);
  });

  it('a test ordered again after the cancel of every test of its specimen is a new order (N) again', async () => {
    expect(msa(await lis.send(orm('AO-3', 'ACC-AO-2', ['ALT'])))).toBe('MSA|AA|AO-3');
    expect(orderLines(await nextSession(analyzer.sim))).toEqual([['ACC-AO-2', '^^^ALT', 'N']]);
    expect(msa(await lis.send(orm('AO-4', 'ACC-AO-2', ['ALT'], 'CA')))).toBe('MSA|AA|AO-4');
    expect(orderLines(await nextSession(analyzer.sim))).toEqual([['ACC-AO-2', '^^^ALT', 'C']]);
    expect(msa(await lis.send(orm('AO-5', 'ACC-AO-2', ['GLU'])))).toBe('MSA|AA|AO-5');
    expect(orderLines(await nextSession(analyzer.sim))).toEqual([['ACC-AO-2', '^^^GLU', 'N']]);
  });
});
