/**
 * Order download (analyzers[].pushOrders) of an order the LIS placed on several tubes, through a
 * real gateway: an OML^O21 over MLLP into a real LevelDB store, the download over a real TCP
 * socket to the E1381 analyzer simulator.
 *
 * The lab's day: one accession, serum for ALT (tube SST-…) and fluoride plasma for glucose (tube
 * FLU-…), both run on the same chemistry analyzer. The analyzer's worklist must hold each test
 * under the tube it is to be run on: the host query has answered that way for a while (the
 * fluoride tube gets GLU, the serum tube ALT: lis-variety-audit.test.ts), but the download put
 * both tests under the order's first tube. The technician saw the analyzer run glucose on the
 * serum tube (no glycolysis inhibitor: a falsely low result) and find no order for the fluoride
 * tube at all.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { connectAnalyzer, msa, nextSession, orderRecords, orm } from '../fixtures/order-download.ts';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } }, pushOrders: true };

const hl7 = (...segments: string[]): Buffer => Buffer.from(segments.join('\r') + '\r', 'latin1');

/** An OML^O21 of one accession with one test per tube: `[test, tube]` pairs. */
function twoTubeOrder(controlId: string, accession: string, lines: Array<[string, string]>, orderControl = 'NW'): Buffer {
  return hl7(
    `MSH|^~\\&|LIS|LAB|GW|LAB|20261206080000||OML^O21^OML_O21|${controlId}|P|2.5.1`,
    'PID|1||MRN-T1^^^LAB^MR',
    ...lines.flatMap(([test, tube], i) => [
      `ORC|${orderControl}|${accession}||||||||20261206075500|||||||||||CLINIC-A`,
      `OBR|${i + 1}|${accession}||${test}^${test}^L`,
      `SPM|${i + 1}|${tube}||SER^Serum^HL70487|||||||||||||20261206070000|20261206073000`,
    ]),
  );
}

/** O records of a download as [O.3 specimen, O.5 tests, O.12 action]. */
const orders = (text: string): Array<[string, string, string]> => orderRecords(text).map((o) => [o[2] ?? '', o[4] ?? '', o[11] ?? '']);

describe('order download of an order on several tubes', () => {
  let gateway: Gateway;
  let stop: () => Promise<void>;
  let lis: MllpClient;
  let analyzer: { sim: AnalyzerSim; socket: net.Socket };

  beforeAll(async () => {
    ({ gateway, stop } = await startTestGateway('order-tubes', { analyzers: [CHEM] }));
    analyzer = await connectAnalyzer(gateway, 'chem-1');
    lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
  });

  afterAll(async () => {
    analyzer?.socket.destroy();
    await lis?.close().catch(() => undefined);
    await stop?.();
  });

  it('each test is downloaded under the tube the LIS ordered it on (serum ALT, fluoride GLU)', async () => {
    expect(msa(await lis.send(twoTubeOrder('TT-1', 'ACC-TT-1', [['ALT', 'SST-TT-1'], ['GLU', 'FLU-TT-1']])))).toBe('MSA|AA|TT-1');
    const download = await nextSession(analyzer.sim);
    expect(download).not.toBe('');
    // Before: [['SST-TT-1', '^^^ALT\\^^^GLU', 'N']] — glucose run on the serum tube, the fluoride tube unknown.
    expect(orders(download)).toEqual([
      ['SST-TT-1', '^^^ALT', 'N'],
      ['FLU-TT-1', '^^^GLU', 'N'],
    ]);
  });

  it('a cancel of one test reaches the analyzer under the tube it was downloaded under', async () => {
    while ((await nextSession(analyzer.sim, 500)) !== '');
    expect(msa(await lis.send(twoTubeOrder('TC-1', 'ACC-TC-1', [['ALT', 'SST-TC-1'], ['GLU', 'FLU-TC-1']])))).toBe('MSA|AA|TC-1');
    expect(orders(await nextSession(analyzer.sim))).toEqual([
      ['SST-TC-1', '^^^ALT', 'N'],
      ['FLU-TC-1', '^^^GLU', 'N'],
    ]);
    // The LIS cancels the glucose (ORM^O01 CA naming the test, no tube).
    expect(msa(await lis.send(orm('TC-2', 'ACC-TC-1', ['GLU'], 'CA')))).toBe('MSA|AA|TC-2');
    // Before: the cancel named the serum tube, which has no glucose: the fluoride tube still ran it.
    expect(orders(await nextSession(analyzer.sim))).toEqual([['FLU-TC-1', '^^^GLU', 'C']]);
  });

  it('an order of one tube is downloaded as it always was: one O record under its tube', async () => {
    while ((await nextSession(analyzer.sim, 500)) !== '');
    expect(msa(await lis.send(orm('T1-1', 'ACC-T1-1', ['ALT', 'GLU'])))).toBe('MSA|AA|T1-1');
    // orm() names no SPM: the accession is the tube.
    expect(orders(await nextSession(analyzer.sim))).toEqual([['ACC-T1-1', '^^^ALT\\^^^GLU', 'N']]);
  });
});
