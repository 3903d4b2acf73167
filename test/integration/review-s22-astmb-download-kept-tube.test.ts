/**
 * Order download (analyzers[].pushOrders) of a tube whose own order comes after another
 * patient's order naming it: the LIS orders glucose on accession ACC-K-2 for patient MRN-99 with
 * the tube ACC-K-1 as its specimen (SPM-2: a mislabelled or reprinted barcode), and then the tube's
 * own order, ACC-K-1, ALT for patient MRN-1. Real gateway (real LevelDB in a temp dir), the orders
 * over real MLLP, the analyzer simulated over a real TCP socket.
 *
 * The host query gives the tube to ACC-K-1, whose number it carries, and leaves ACC-K-2 out
 * (host-query.ts tubeOrders, "One order keeps the tube"); results of the glucose go on no order.
 * Since 5590d62 the download looked the tube up too, but only took tests back when the order being
 * downloaded did not keep the tube: ACC-K-1 kept it, so the analyzer kept MRN-99's glucose under
 * MRN-1's tube and ran it on MRN-1's blood, no alert said so, and its result went on no order.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { connectAnalyzer, msa, nextSession, omlOnTube } from '../fixtures/order-download.ts';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } }, pushOrders: true };

/** The download's records as [P.3 patient, O.3 tube, O.5 tests, O.12 action] per O record. */
function orders(text: string): Array<[string, string, string, string]> {
  const out: Array<[string, string, string, string]> = [];
  let patient = '';
  for (const r of text.split(/\r|\n/)) {
    if (r.startsWith('P|')) patient = r.split('|')[3] ?? '';
    if (r.startsWith('O|')) {
      const o = r.split('|');
      out.push([patient, o[2] ?? '', o[4] ?? '', o[11] ?? '']);
    }
  }
  return out;
}

describe("order download of a tube another patient's order named first", () => {
  let gateway: Gateway;
  let stop: () => Promise<void>;
  let lis: MllpClient;
  let analyzer: { sim: AnalyzerSim; socket: net.Socket };
  const alerts: Array<{ severity: string; code: string; message: string }> = [];

  beforeAll(async () => {
    ({ gateway, stop } = await startTestGateway('s22-dl-kept-tube', { analyzers: [CHEM] }));
    gateway.telemetry.on('alert', (a: { severity: string; code: string; message: string }) => alerts.push(a));
    analyzer = await connectAnalyzer(gateway, CHEM.id);
    lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
  });

  afterAll(async () => {
    analyzer?.socket.destroy();
    await lis?.close().catch(() => undefined);
    await stop?.();
  });

  it("takes the other patient's tests back from the tube its own order keeps", { timeout: 60_000 }, async () => {
    expect(msa(await lis.send(omlOnTube('K-1', 'ACC-K-2', 'GLU', 'ACC-K-1', 'MRN-99')))).toBe('MSA|AA|K-1');
    // Alone, ACC-K-2 goes out under the tube it names, as it always did.
    expect(orders(await nextSession(analyzer.sim))).toEqual([['MRN-99', 'ACC-K-1', '^^^GLU', 'N']]);

    expect(msa(await lis.send(omlOnTube('K-2', 'ACC-K-1', 'ALT', 'ACC-K-1', 'MRN-1')))).toBe('MSA|AA|K-2');
    // An unrelated order afterwards: every download queued before it has gone out once it comes.
    expect(msa(await lis.send(omlOnTube('K-3', 'ACC-K-9', 'ALT', 'ACC-K-9', 'MRN-5')))).toBe('MSA|AA|K-3');
    const seen: Array<[string, string, string, string]> = [];
    for (let i = 0; i < 5; i++) {
      const got = orders(await nextSession(analyzer.sim));
      expect(got, 'a download within 3 s').not.toEqual([]);
      seen.push(...got);
      if (got.some((o) => o[1] === 'ACC-K-9')) break;
    }
    // The tube's own order goes out.
    expect(seen.filter((o) => o[0] === 'MRN-1')).toEqual([['MRN-1', 'ACC-K-1', '^^^ALT', 'N']]);
    // Before: nothing for MRN-99 — the analyzer kept their glucose under MRN-1's tube.
    expect(seen.filter((o) => o[0] === 'MRN-99')).toEqual([['MRN-99', 'ACC-K-1', '^^^GLU', 'C']]);
    const alert = alerts.find((a) => a.code === 'ACCESSION_COLLISION' && a.message.includes('ACC-K-1'));
    expect(alert?.message).toContain('ACC-K-1 keeps the tube');
  });

  it("leaves the add-on of the tube's own order on the analyzer when another patient's order names the tube", { timeout: 60_000 }, async () => {
    expect(msa(await lis.send(omlOnTube('M-1', 'ACC-M-1', 'ALT', 'ACC-M-1', 'MRN-2')))).toBe('MSA|AA|M-1');
    expect(orders(await nextSession(analyzer.sim))).toEqual([['MRN-2', 'ACC-M-1', '^^^ALT', 'N']]);
    // The physician adds glucose, placed by the LIS as a new order on the same tube, same patient.
    expect(msa(await lis.send(omlOnTube('M-2', 'ACC-M-2', 'GLU', 'ACC-M-1', 'MRN-2')))).toBe('MSA|AA|M-2');
    expect(orders(await nextSession(analyzer.sim))).toEqual([['MRN-2', 'ACC-M-1', '^^^GLU', 'N']]);
    // Another patient's order names the tube: it is held, and the tube stays ACC-M-1's with its add-on.
    expect(msa(await lis.send(omlOnTube('M-3', 'ACC-M-3', 'CREA', 'ACC-M-1', 'MRN-98')))).toBe('MSA|AA|M-3');
    expect(msa(await lis.send(omlOnTube('M-4', 'ACC-M-9', 'ALT', 'ACC-M-9', 'MRN-5')))).toBe('MSA|AA|M-4');
    const seen: Array<[string, string, string, string]> = [];
    for (let i = 0; i < 5; i++) {
      const got = orders(await nextSession(analyzer.sim));
      expect(got, 'a download within 3 s').not.toEqual([]);
      seen.push(...got);
      if (got.some((o) => o[1] === 'ACC-M-9')) break;
    }
    // Before: ['MRN-2', 'ACC-M-1', '^^^GLU', 'C'] — the add-on of the order keeping the tube cancelled.
    expect(seen.filter((o) => o[1] === 'ACC-M-1')).toEqual([]);
  });
});
