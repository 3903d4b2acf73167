/**
 * Order download (analyzers[].pushOrders) in a lab with two LIS systems (README.md "Two LIS
 * systems"): the hospital LIS (`lis`) and the outreach LIS (`outreach`, accessionPrefix OUT)
 * each number their own orders, so both print the barcode 12345, for two patients. Real gateway
 * (real LevelDB in a temp dir), the orders over real MLLP, the analyzer simulated over a real TCP
 * socket.
 *
 * The host query has answered such a tube "no order" with an ACCESSION_COLLISION alert for a
 * while (two-lis-qc-audit.test.ts): which patient's blood the analyzer holds under 12345 cannot be
 * told. The download did not ask: the hospital order (ALT, patient H-1) went out under tube 12345,
 * then the outreach order (GLU, patient O-9) went out under the same tube 12345. The analyzer held
 * both patients' tests for one barcode: whichever tube it scanned first ran the other patient's
 * test, and its result went on the order of the accession the barcode resolved to.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { connectAnalyzer, msa, nextSession, orderRecords } from '../fixtures/order-download.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import type net from 'node:net';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } }, pushOrders: true };

let seq = 0;
/** ORM^O01 NW from `app` for patient `mrn`, one ORC/OBR per test, no SPM (the accession is the tube). */
function orm(app: string, accession: string, tests: string[], mrn: string, clinic: string): Buffer {
  const id = `${app}-${++seq}`;
  const orc = `ORC|NW|${accession}|||||||20261207092500||||||||||||${clinic}`;
  return Buffer.from(
    [`MSH|^~\\&|${app}|${app}-FAC|GW|LAB|20261207093000||ORM^O01^ORM_O01|${id}|P|2.5.1`, `PID|1||${mrn}^^^${app}^MR`, ...tests.flatMap((t, i) => [orc, `OBR|${i + 1}|${accession}||${t}^${t} test`]), ''].join('\r'),
    'latin1',
  );
}

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

describe('order download of a barcode both LIS systems printed', () => {
  let gateway: Gateway;
  let stop: () => Promise<void>;
  let lis: MllpClient;
  let outreach: MllpClient;
  let analyzer: { sim: AnalyzerSim; socket: net.Socket };
  const alerts: Array<{ severity: string; code: string; message: string }> = [];

  beforeAll(async () => {
    ({ gateway, stop } = await startTestGateway('s22-dl-two-lis', {
      hl7: [
        { id: 'lis', listen: { host: '127.0.0.1', port: 0 } },
        { id: 'outreach', listen: { host: '127.0.0.1', port: 0 }, accessionPrefix: 'OUT' },
      ],
      analyzers: [CHEM],
    }));
    gateway.telemetry.on('alert', (a: { severity: string; code: string; message: string }) => alerts.push(a));
    analyzer = await connectAnalyzer(gateway, CHEM.id);
    lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
    outreach = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.outreach!.port });
  });

  afterAll(async () => {
    analyzer?.socket.destroy();
    await lis?.close().catch(() => undefined);
    await outreach?.close().catch(() => undefined);
    await stop?.();
  });

  it("the analyzer never holds two patients' tests under one barcode", async () => {
    expect(msa(await lis.send(orm('HIS', '12345', ['ALT'], 'H-1', 'CLINIC-A')))).toContain('MSA|AA|');
    // Alone, the hospital's order goes out as it always did.
    expect(orders(await nextSession(analyzer.sim))).toEqual([['H-1', '12345', '^^^ALT', 'N']]);

    expect(msa(await outreach.send(orm('OUT', '12345', ['GLU'], 'O-9', 'CLINIC-B')))).toContain('MSA|AA|');
    // An unrelated order afterwards: every download queued before it has gone out once it comes.
    expect(msa(await lis.send(orm('HIS', '77777', ['ALT'], 'H-2', 'CLINIC-A')))).toContain('MSA|AA|');
    const seen: Array<[string, string, string, string]> = [];
    for (let i = 0; i < 5; i++) {
      const got = orders(await nextSession(analyzer.sim));
      expect(got, 'a download within 3 s').not.toEqual([]);
      seen.push(...got);
      if (got.some((o) => o[1] === '77777')) break;
    }
    // Before: ['O-9', '12345', '^^^GLU', 'N'] — the outreach patient's glucose under the barcode the
    // analyzer already held the hospital patient's ALT for.
    expect(seen.filter((o) => o[1] === '12345' && o[3] !== 'C')).toEqual([]);
    // The hospital's ALT is taken back: the analyzer cannot tell whose tube 12345 it scans.
    expect(seen.filter((o) => o[1] === '12345' && o[3] === 'C')).toEqual([['H-1', '12345', '^^^ALT', 'C']]);
    expect(seen.filter((o) => o[1] === '77777')).toEqual([['H-2', '77777', '^^^ALT', 'N']]);
    const alert = alerts.find((a) => a.code === 'ACCESSION_COLLISION' && a.message.includes('12345'));
    expect(alert?.message).toContain('OUT-12345');
  });
});
