/**
 * Analyzer orders and HL7 analyzer results, end to end through a real gateway (real LevelDB store
 * in a temp dir, real TCP/MLLP sockets, the E1381 analyzer simulator of test/fixtures):
 *
 * - order download (analyzers[].pushOrders): an LIS order reaches the analyzer once, a
 *   cancellation reaches it as a cancel, an order stored while the analyzer is away (or the
 *   gateway restarts) is not lost, a refused download does not vanish silently;
 * - Mindray BS / BC-5380 over HL7: reagent counted once per run (resends, one test per ORU), a
 *   result without a barcode not billed against someone else's order, QC recognised and its ACK
 *   echoing MSH-11.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../gateway/src/events/types.ts';
import { Gateway } from '../../gateway/src/gateway.ts';
import { ACK, ENQ, EOT, NAK, STX } from '../../gateway/src/ingress/astm/control-chars.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import type { TelemetryEvents } from '../../gateway/src/telemetry.ts';
import { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { startTestGateway, testGatewayConfig } from '../fixtures/gateway.ts';
import { CENTAUR, connectAnalyzer, connections, nextSession, orderRecords, orm } from '../fixtures/order-download.ts';

// ------------------------------------------------------------------------------------------------
// helpers

/** A gateway in `dir` (kept across restarts), relay off, ephemeral ports. */
async function gatewayAt(dir: string, id: string, sections: Record<string, unknown>): Promise<Gateway> {
  const config = testGatewayConfig(id, dir, sections);
  const gateway = new Gateway({ config, log: silentLogger });
  await gateway.start();
  return gateway;
}

/** Every event derived from the messages of one endpoint. */
async function eventsOf(gateway: Gateway, endpoint: string): Promise<CanonicalEvent[]> {
  const store = gateway.store!;
  const messages = await store.listMessages({ endpoint, limit: 1000 });
  const stored = await Promise.all(messages.flatMap((m) => m.eventIds.map((id) => store.getEvent(id))));
  return stored.flatMap((e) => (e ? [e.event] : []));
}

const consumptionOf = (events: CanonicalEvent[], specimenId: string, productCode?: string): CanonicalEvent[] =>
  events.filter((e) => e.type === 'consumable.used' && e.data.specimenId === specimenId && (productCode === undefined || e.data.productCode === productCode));

/**
 * A Mindray BS patient ORU^R01 (one test per message, MSH-16 = 0), shaped like the vendor's
 * example (corpus/hl7/oru_r01_mindray-bs200_patient-result_vendor-manual.mllp): OBR-2 barcode,
 * OBR-3 sample number, OBX-3 test number, OBX-14 the result time (empty in the vendor example).
 */
function bsOru(o: { controlId: string; msh7: string; barcode: string; sampleNo: string; testNo: string; name: string; value: string; units: string; obr7?: string; obx14?: string }): Buffer {
  return Buffer.from(
    [
      `MSH|^~\\&|Mindray|BS-200|||${o.msh7}||ORU^R01|${o.controlId}|P|2.3.1||||0||ASCII|||`,
      `PID|1|854||${o.sampleNo}|Anon||19830719000000|F`,
      `OBR|1|${o.barcode}|${o.sampleNo}|Mindray^BS-200|N||${o.obr7 ?? ''}||||||||serum`,
      `OBX|1|NM|${o.testNo}|${o.name}|${o.value}|${o.units}|-||||F|||${o.obx14 ?? ''}||`,
      '',
    ].join('\r'),
    'latin1',
  );
}

// ------------------------------------------------------------------------------------------------
// order download

describe('order download to an ASTM analyzer (pushOrders)', () => {
  let gateway: Gateway;
  let stop: () => Promise<void>;
  let lis: MllpClient;
  let analyzer: { sim: AnalyzerSim; socket: net.Socket };
  const alerts: Array<TelemetryEvents['alert']> = [];

  beforeAll(async () => {
    ({ gateway, stop } = await startTestGateway('orders-audit', { analyzers: [CENTAUR] }));
    gateway.telemetry.on('alert', (a) => alerts.push(a));
    analyzer = await connectAnalyzer(gateway, 'centaur-1');
    lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
  });

  afterAll(async () => {
    analyzer?.socket.destroy();
    await lis?.close().catch(() => undefined);
    await stop?.();
  });

  it('an order the LIS resends under a new control id is not downloaded to the analyzer a second time', async () => {
    expect((await lis.send(orm('RS-1', 'ACC-RS-1', ['TSH']))).toString('latin1')).toContain('MSA|AA|RS-1');
    const first = await nextSession(analyzer.sim);
    expect(orderRecords(first).map((o) => o[2])).toEqual(['ACC-RS-1']);

    // The LIS resends the very same order (its interface engine regenerates MSH-10), then orders
    // another specimen. The next download must be the new specimen, not the same order again.
    expect((await lis.send(orm('RS-2', 'ACC-RS-1', ['TSH']))).toString('latin1')).toContain('MSA|AA|RS-2');
    expect((await lis.send(orm('RS-3', 'ACC-RS-2', ['TSH']))).toString('latin1')).toContain('MSA|AA|RS-3');
    const next = await nextSession(analyzer.sim);
    expect(orderRecords(next).map((o) => o[2]), 'the analyzer received ACC-RS-1 twice: it will run TSH twice').toEqual(['ACC-RS-2']);
  });

  it('an LIS cancellation of a downloaded order is pushed to the analyzer as a cancel (O.12 = C)', async () => {
    // Drain whatever an earlier test may have left queued.
    while ((await nextSession(analyzer.sim, 500)) !== '');
    expect((await lis.send(orm('CX-1', 'ACC-CX-1', ['TSH']))).toString('latin1')).toContain('MSA|AA|CX-1');
    const download = await nextSession(analyzer.sim);
    expect(orderRecords(download).map((o) => o[2])).toEqual(['ACC-CX-1']);

    expect((await lis.send(orm('CX-2', 'ACC-CX-1', ['TSH'], 'CA'))).toString('latin1')).toContain('MSA|AA|CX-2');
    const cancel = await nextSession(analyzer.sim);
    const o = orderRecords(cancel).find((r) => r[2] === 'ACC-CX-1');
    expect(o, 'no cancel reached the analyzer: it still runs the cancelled test').toBeDefined();
    expect(o![11]).toBe('C');
  });

  it('an order download the analyzer refuses (every frame NAKed) is not dropped silently: an alert names the analyzer', async () => {
    while ((await nextSession(analyzer.sim, 500)) !== '');
    const before = alerts.length;
    expect((await lis.send(orm('NK-1', 'ACC-NK-1', ['TSH']))).toString('latin1')).toContain('MSA|AA|NK-1');
    // The analyzer accepts the link but refuses every frame until the gateway gives up (EOT).
    const sim = analyzer.sim;
    expect(await sim.nextByte(5_000)).toBe(ENQ);
    sim.write([ACK]);
    let refused = 0;
    for (;;) {
      const b = await sim.nextByte(5_000);
      if (b === EOT) break;
      if (b !== STX) continue;
      while ((await sim.nextByte(5_000)) !== 0x0a) {
        // the rest of the frame, up to its LF
      }
      refused++;
      sim.write([NAK]);
    }
    expect(refused).toBeGreaterThanOrEqual(1);
    // The order never reached the analyzer; the operator must hear of it.
    await expect
      .poll(() => alerts.slice(before).some((a) => a.endpoint === 'centaur-1' || a.message.includes('ACC-NK-1')), { timeout: 3_000 })
      .toBe(true);
  });
});

describe('order download when the analyzer is not connected', () => {
  it('an order stored while the analyzer is offline is downloaded when it connects', async () => {
    const { gateway, stop } = await startTestGateway('orders-offline', { analyzers: [CENTAUR] });
    let analyzer: { sim: AnalyzerSim; socket: net.Socket } | undefined;
    const lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
    try {
      expect(connections(gateway, 'centaur-1')).toBe(0);
      expect((await lis.send(orm('OF-1', 'ACC-OF-1', ['TSH']))).toString('latin1')).toContain('MSA|AA|OF-1');
      // Acknowledged to the LIS: the order is the gateway's to deliver.
      analyzer = await connectAnalyzer(gateway, 'centaur-1');
      const text = await nextSession(analyzer.sim);
      expect(orderRecords(text).map((o) => o[2]), 'the order acknowledged to the LIS never reached the analyzer').toEqual(['ACC-OF-1']);
      // Once, not again.
      expect(await nextSession(analyzer.sim, 1_000)).toBe('');
    } finally {
      analyzer?.socket.destroy();
      await lis.close().catch(() => undefined);
      await stop();
    }
  });

  it('an order not yet downloaded survives a gateway restart and goes out once the analyzer connects', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lgw-orders-restart-'));
    let analyzer: { sim: AnalyzerSim; socket: net.Socket } | undefined;
    let second: Gateway | undefined;
    try {
      const first = await gatewayAt(dir, 'orders-restart', { analyzers: [CENTAUR] });
      const lis = await MllpClient.connect({ host: '127.0.0.1', port: first.addresses().hl7.lis!.port });
      expect((await lis.send(orm('RT-1', 'ACC-RT-1', ['TSH']))).toString('latin1')).toContain('MSA|AA|RT-1');
      await lis.close().catch(() => undefined);
      await first.stop(5_000);

      second = await gatewayAt(dir, 'orders-restart', { analyzers: [CENTAUR] });
      analyzer = await connectAnalyzer(second, 'centaur-1');
      const text = await nextSession(analyzer.sim);
      expect(orderRecords(text).map((o) => o[2]), 'the order was lost across the restart').toEqual(['ACC-RT-1']);
    } finally {
      analyzer?.socket.destroy();
      await second?.stop(5_000);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// ------------------------------------------------------------------------------------------------
// HL7 analyzers

describe('Mindray analyzers over HL7/MLLP: runs, reagent, accessions', () => {
  let gateway: Gateway;
  let stop: () => Promise<void>;
  let bs: MllpClient;
  let bc: MllpClient;
  let lis: MllpClient;

  beforeAll(async () => {
    ({ gateway, stop } = await startTestGateway('hl7an-audit', {
      analyzers: [
        { id: 'bs-200', profile: 'mindray-bs-series', tcp: { listen: { host: '127.0.0.1', port: 0 } } },
        { id: 'bc-5380', profile: 'mindray-bc-5380', tcp: { listen: { host: '127.0.0.1', port: 0 } } },
      ],
    }));
    bs = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().analyzers['bs-200']!.port! });
    bc = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().analyzers['bc-5380']!.port! });
    lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port! });
  });

  afterAll(async () => {
    await bs?.close().catch(() => undefined);
    await bc?.close().catch(() => undefined);
    await lis?.close().catch(() => undefined);
    await stop?.();
  });

  it('a BS result sent again in a new message (new MSH-10 and MSH-7, no OBX-14 as in the vendor example) is not counted again', async () => {
    const result = { barcode: 'BS-RS-1', sampleNo: '31', testNo: '1', name: 'ALT', value: '35.000000', units: 'U/L' };
    expect((await bs.send(bsOru({ ...result, controlId: '41', msh7: '20260114110000' }))).toString('latin1')).toContain('MSA|AA|41');
    const once1 = await eventsOf(gateway, 'bs-200');
    const results1 = once1.filter((e) => e.type === 'test.completed' && e.data.specimenId === 'BS-RS-1');
    const reagent1 = consumptionOf(once1, 'BS-RS-1');
    expect(results1).toHaveLength(1);
    expect(reagent1.length).toBeGreaterThan(0);

    // The operator re-sends the sample's results from the analyzer (same run, same value).
    expect((await bs.send(bsOru({ ...result, controlId: '57', msh7: '20260114113000' }))).toString('latin1')).toContain('MSA|AA|57');
    const twice = await eventsOf(gateway, 'bs-200');
    expect(consumptionOf(twice, 'BS-RS-1').map((e) => (e.type === 'consumable.used' ? e.data.productCode : '')), 'reagent drawn twice for one run').toEqual(
      reagent1.map((e) => (e.type === 'consumable.used' ? e.data.productCode : '')),
    );
    expect(twice.filter((e) => e.type === 'test.completed' && e.data.specimenId === 'BS-RS-1')).toHaveLength(1);
  });

  it('a BS sample whose tests arrive one per ORU draws the per-run dead volume once, each test\'s reagent once', async () => {
    // One sample (barcode BS-DV-1, sampled 10:25), ALT and GLU measured, one ORU each.
    const sample = { barcode: 'BS-DV-1', sampleNo: '32', obr7: '20260114102500' };
    expect((await bs.send(bsOru({ ...sample, controlId: '61', msh7: '20260114103000', testNo: '1', name: 'ALT', value: '35.000000', units: 'U/L', obx14: '20260114102930' }))).toString('latin1')).toContain('MSA|AA|61');
    expect((await bs.send(bsOru({ ...sample, controlId: '62', msh7: '20260114103100', testNo: '3', name: 'GLU', value: '5.400000', units: 'mmol/L', obx14: '20260114103010' }))).toString('latin1')).toContain('MSA|AA|62');
    const events = await eventsOf(gateway, 'bs-200');
    expect(consumptionOf(events, 'BS-DV-1', 'MR-BS-ALT')).toHaveLength(1);
    expect(consumptionOf(events, 'BS-DV-1', 'MR-BS-GLU')).toHaveLength(1);
    // MR-BS-PROBE-WASH is the profile's per-run row (deadVolume: true): once for the sample.
    expect(consumptionOf(events, 'BS-DV-1', 'MR-BS-PROBE-WASH'), 'the per-run dead volume was drawn once per test').toHaveLength(1);
  });

  it('a BS result without a barcode (OBR-2 empty) is not attached to the LIS order whose accession equals the sample number', async () => {
    // The LIS has an order 33 for ALT (another patient's tube).
    expect((await lis.send(orm('ACC33-1', '33', ['ALT']))).toString('latin1')).toContain('MSA|AA|ACC33-1');
    // The BS measures a tube loaded without a barcode, at sample position/number 33.
    expect((await bs.send(bsOru({ controlId: '71', msh7: '20260114120000', barcode: '', sampleNo: '33', testNo: '1', name: 'ALT', value: '88.000000', units: 'U/L', obx14: '20260114115900' }))).toString('latin1')).toMatch(/MSA\|A[AER]\|71/);
    const events = await eventsOf(gateway, 'bs-200');
    const attached = events.filter((e) => e.type === 'test.completed' && (e.data.accession === '33' || e.correlationId === '33' || e.partitionKey === 'order:33'));
    expect(attached.map((e) => e.partitionKey), 'an unlabelled tube\'s result was reported on order 33').toEqual([]);
  });

  it('a BC-5380 QC run (MSH-11 = Q): ACK echoes Q, results are QC without accession, reagent counted once across a resend', async () => {
    const qc = (controlId: string, msh7: string): Buffer =>
      Buffer.from(
        [
          `MSH|^~\\&|BC-5380|Mindray|||${msh7}||ORU^R01|${controlId}|Q|2.3.1||||||UNICODE`,
          'OBR|1||QC-L1-2611|00003^QC Count^99MRC|||20260114065500',
          'OBX|1|NM|6690-2^WBC^LN||7.10|10*9/L|||||F',
          'OBX|2|NM|718-7^HGB^LN||128|g/L|||||F',
          'OBX|3|NM|770-8^NEU%^LN||58.0|%|||||F',
          '',
        ].join('\r'),
        'utf8',
      );
    const ack = (await bc.send(qc('301', '20260114070000'))).toString('utf8');
    const msh = ack.replace(/^\x0b/, '').split('\r')[0]!.split('|');
    expect(msh[10]).toBe('Q');
    expect(ack).toContain('MSA|AA|301');
    // The IPU skipped waiting and sends the run again in a new message.
    expect((await bc.send(qc('302', '20260114070030'))).toString('utf8')).toContain('MSA|AA|302');

    const events = await eventsOf(gateway, 'bc-5380');
    const results = events.filter((e) => e.type === 'test.completed' && e.data.specimenId === 'QC-L1-2611');
    expect(results.map((e) => (e.type === 'test.completed' ? e.data.testCode : '')).sort()).toEqual(['HGB', 'NEU%', 'WBC']);
    for (const e of results) if (e.type === 'test.completed') expect([e.data.runType, e.data.accession]).toEqual(['qc', undefined]);
    expect(events.some((e) => e.type === 'specimen.received' && e.correlationId === 'QC-L1-2611')).toBe(false);
    // Per-run rows of the profile: diluent and WBC lyse (WBC), LEO lyse (NEU%), probe cleanser: once each.
    expect(consumptionOf(events, 'QC-L1-2611').map((e) => (e.type === 'consumable.used' ? `${e.data.productCode}:${e.data.runType}` : '')).sort()).toEqual([
      'MR-BC-M53D-DILUENT:qc',
      'MR-BC-M53LEO-LYSE:qc',
      'MR-BC-M53LH-LYSE:qc',
      'MR-BC-PROBE-CLEANSER:qc',
    ]);
  });
});
