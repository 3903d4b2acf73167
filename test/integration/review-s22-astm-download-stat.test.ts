/**
 * A STAT order queued behind routine ones: the analyzer was off (night maintenance, a cable
 * swapped), the LIS sent the morning's routine orders, then an emergency-room STAT order. Real
 * gateway (real LevelDB in a temp dir), the LIS over real MLLP, the analyzer simulated over a real
 * TCP socket.
 *
 * The outbox went out oldest first, one session per accession: the STAT order waited for every
 * routine download queued before it (at 9600 baud, a few hundred sessions are minutes) while the
 * technician stood at the analyzer with the tube.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { connectAnalyzer, msa, nextSession, orderRecords } from '../fixtures/order-download.ts';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } }, pushOrders: true };

/** ORM^O01 NW of one test, priority in OBR-27.6 (R routine, S stat). */
const orm = (controlId: string, accession: string, test: string, priority: 'R' | 'S'): Buffer =>
  Buffer.from(
    [
      `MSH|^~\\&|LIS|LAB|GW|LAB|20261207050000||ORM^O01|${controlId}|P|2.5`,
      'PID|1||MRN-ST^^^LAB^MR',
      `ORC|NW|${accession}||${accession}|SC||||20261207050000||||||||||||CLINIC-A`,
      `OBR|1|${accession}||${test}^${test}^L|||||||||||||||||||||||^^^^^${priority}`,
      '',
    ].join('\r'),
  );

describe('the outbox of an analyzer back on', () => {
  let gateway: Gateway;
  let stop: () => Promise<void>;
  let lis: MllpClient;
  let analyzer: { sim: AnalyzerSim; socket: net.Socket } | undefined;

  beforeAll(async () => {
    ({ gateway, stop } = await startTestGateway('s22-dl-stat', { analyzers: [CHEM] }));
    lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
  });

  afterAll(async () => {
    analyzer?.socket.destroy();
    await lis?.close().catch(() => undefined);
    await stop?.();
  });

  it('sends the STAT orders first, then the routine ones oldest first', async () => {
    for (let i = 1; i <= 4; i++) expect(msa(await lis.send(orm(`R-${i}`, `ACC-R-${i}`, 'ALT', 'R')))).toBe(`MSA|AA|R-${i}`);
    expect(msa(await lis.send(orm('S-1', 'ACC-S-1', 'GLU', 'S')))).toBe('MSA|AA|S-1');
    expect(msa(await lis.send(orm('R-5', 'ACC-R-5', 'ALT', 'R')))).toBe('MSA|AA|R-5');
    // Every order is in the outbox before the analyzer comes back.
    const waiting = (): number => (gateway.statusModel?.toApiStatus().endpoints.find((e) => e.id === CHEM.id) as { orderDownload?: { waiting: number } } | undefined)?.orderDownload?.waiting ?? 0;
    await expect.poll(waiting, { timeout: 10_000 }).toBe(6);
    analyzer = await connectAnalyzer(gateway, CHEM.id);
    const sent: Array<[string, string]> = [];
    for (let i = 0; i < 6; i++) for (const o of orderRecords(await nextSession(analyzer.sim))) sent.push([o[2] ?? '', o[5] ?? '']);
    // Before: ACC-S-1 fifth, behind four routine downloads.
    expect(sent).toEqual([
      ['ACC-S-1', 'S'],
      ['ACC-R-1', 'R'],
      ['ACC-R-2', 'R'],
      ['ACC-R-3', 'R'],
      ['ACC-R-4', 'R'],
      ['ACC-R-5', 'R'],
    ]);
  });
});
