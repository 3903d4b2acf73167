/**
 * A barcode's case fallback (e56fcd0: a barcode the analyzer sends in lower case is looked up in
 * upper case when nothing is known under it as sent) must never give a tube another patient's
 * tests. Real gateway (real LevelDB in a temp dir, restarted on it), the LIS over real MLLP, the
 * analyzer simulated over a real TCP socket.
 *
 * A LIS whose accessions differ only by case (`ab12` and `AB12` are two patients' orders): before,
 * a query for `ab12` that came before ab12's own order was answered with AB12's tests (the tube of
 * one patient ran the other's), and its result went on AB12; an order of two tubes `tb9` and `TB9`
 * answered both tubes' tests for either. Now such a LIS is marked on its first number carrying a
 * lower-case letter (a store document, read at start) and its barcodes compare byte for byte; a
 * LIS that never sent one keeps the fallback. Orders stored before the mark existed (an earlier
 * release) whose case variants are ambiguous are answered "no order" with an alert.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gateway } from '../../gateway/src/gateway.ts';
import { ACCESSION_CASE_NAMESPACE } from '../../gateway/src/hl7/accession-case.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import type { TelemetryEvents } from '../../gateway/src/telemetry.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';
import { connectAnalyzer, msa, nextSession, orderRecords } from '../fixtures/order-download.ts';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } } };

const hl7 = (...segments: string[]): Buffer => Buffer.from(segments.join('\r') + '\r', 'latin1');

/** An LIS order (ORM^O01) of `accession` for patient `mrn`, the accession being the tube. */
const orm = (controlId: string, accession: string, tests: string[], mrn: string): Buffer =>
  hl7(
    `MSH|^~\\&|LIS|LAB|GW|LAB|20261207101500||ORM^O01|${controlId}|P|2.5`,
    `PID|1||${mrn}^^^LAB^MR`,
    `ORC|NW|${accession}||${accession}|SC||||20261207101500||||||||||||CLINIC-A`,
    ...tests.map((t, i) => `OBR|${i + 1}|${accession}||${t}^${t}^L`),
  );

/** An OML^O21 of one accession with one test per tube: `[test, tube]` pairs. */
const tubesOrder = (controlId: string, accession: string, lines: Array<[string, string]>, mrn: string): Buffer =>
  hl7(
    `MSH|^~\\&|LIS|LAB|GW|LAB|20261207080000||OML^O21^OML_O21|${controlId}|P|2.5.1`,
    `PID|1||${mrn}^^^LAB^MR`,
    ...lines.flatMap(([test, tube], i) => [
      `ORC|NW|${accession}||||||||20261207075500|||||||||||CLINIC-A`,
      `OBR|${i + 1}|${accession}||${test}^${test}^L`,
      `SPM|${i + 1}|${tube}||SER^Serum^HL70487|||||||||||||20261207070000|20261207073000`,
    ]),
  );

/** A gateway on `dir` with one LIS link and CHEM, the LIS and the analyzer connected; restartable on the same data. */
class Rig {
  gateway!: Gateway;
  lis!: MllpClient;
  analyzer!: { sim: AnalyzerSim; socket: net.Socket };
  readonly alerts: Array<TelemetryEvents['alert']> = [];

  readonly id: string;
  readonly dir: string;

  constructor(id: string, dir: string) {
    this.id = id;
    this.dir = dir;
  }

  async start(): Promise<void> {
    this.gateway = new Gateway({ config: testGatewayConfig(this.id, this.dir, { analyzers: [CHEM] }), log: silentLogger });
    this.gateway.telemetry.on('alert', (a) => this.alerts.push(a));
    await this.gateway.start();
    this.lis = await MllpClient.connect({ host: '127.0.0.1', port: this.gateway.addresses().hl7.lis!.port });
    this.analyzer = await connectAnalyzer(this.gateway, 'chem-1');
  }

  async stop(): Promise<void> {
    this.analyzer?.socket.destroy();
    await this.lis?.close().catch(() => undefined);
    await this.gateway?.stop(5_000);
  }

  async order(message: Buffer, controlId: string): Promise<void> {
    expect(msa(await this.lis.send(message))).toBe(`MSA|AA|${controlId}`);
  }

  /** The host query answer for `barcode` as [O.3, O.5] per O record, and the whole answer. */
  async query(barcode: string): Promise<{ orders: string[][]; text: string }> {
    await this.analyzer.sim.sendMessage(['H|\\^&|||CHEM^1|||||LIS||P|1|20261207101000', `Q|1|^${barcode}||ALL||||||||O`, 'L|1|N']);
    const text = await nextSession(this.analyzer.sim, 5_000);
    expect(text).toContain('L|1|');
    return { orders: orderRecords(text).map((o) => [o[2] ?? '', o[4] ?? '']), text };
  }

  async result(barcode: string, test: string, value: string): Promise<void> {
    await this.analyzer.sim.sendMessage(['H|\\^&|||CHEM^1|||||LIS||P|1|20261207103000', 'P|1', `O|1|${barcode}||^^^${test}|R||||||N`, `R|1|^^^${test}|${value}|U/L||N||F||||20261207102500`, 'L|1|N']);
  }

  async completed(accession: string): Promise<number> {
    return (await this.gateway.store!.eventsByCorrelation(accession, ['test.completed'])).length;
  }
}

async function tempDir(id: string): Promise<string> {
  return mkdtemp(path.join(tmpdir(), `lgw-${id}-`));
}

describe('a LIS whose accessions differ only by case (ab12 and AB12 are two patients)', () => {
  let dir: string;
  let rig: Rig;

  beforeAll(async () => {
    dir = await tempDir('s23-case-distinct');
    rig = new Rig('s23-case-distinct', dir);
    await rig.start();
    // The LIS numbers with lower-case letters (its first such order marks the link)…
    await rig.order(orm('CD-1', 'cd34', ['CRP'], 'MRN-A'), 'CD-1');
    // …and AB12 is patient B's order.
    await rig.order(orm('CD-2', 'AB12', ['ALT'], 'MRN-B'), 'CD-2');
  });

  afterAll(async () => {
    await rig?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a query for ab12 before its order arrived is answered "no order", not with AB12\'s tests', async () => {
    const { orders, text } = await rig.query('ab12');
    // Before: [['ab12', '^^^ALT']], patient B's ALT run on the tube of another patient.
    expect(orders).toEqual([]);
    expect(text).toContain('L|1|I');
  });

  it('a result for ab12 before its order stays under ab12, not on AB12', async () => {
    await rig.result('ab12', 'ALT', '44');
    await expect.poll(() => rig.completed('ab12'), { timeout: 5_000 }).toBe(1);
    // Before: the result went on patient B's order.
    expect(await rig.completed('AB12')).toBe(0);
  });

  it("ab12's own order, once it arrived, is answered with its own tests only", async () => {
    await rig.order(orm('CD-3', 'ab12', ['GLU'], 'MRN-C'), 'CD-3');
    expect((await rig.query('ab12')).orders).toEqual([['ab12', '^^^GLU']]);
    expect((await rig.query('AB12')).orders).toEqual([['AB12', '^^^ALT']]);
  });

  it('tubes tb9 and TB9 of one order are two tubes', async () => {
    await rig.order(tubesOrder('CD-4', 'ORD-T1', [['ALT', 'tb9'], ['GLU', 'TB9']], 'MRN-E'), 'CD-4');
    // Before: each tube was answered with both tubes' tests.
    expect((await rig.query('tb9')).orders).toEqual([['tb9', '^^^ALT']]);
    expect((await rig.query('TB9')).orders).toEqual([['TB9', '^^^GLU']]);
  });

  it('is still known to number by case after a restart, before it sends another lower-case number', async () => {
    await rig.stop();
    await rig.start();
    await rig.order(orm('CD-5', 'EF56', ['ALT'], 'MRN-D'), 'CD-5');
    // Before the mark: EF56's ALT for the tube ef56.
    const { orders, text } = await rig.query('ef56');
    expect(orders).toEqual([]);
    expect(text).toContain('L|1|I');
    await rig.result('ef56', 'ALT', '12');
    await expect.poll(() => rig.completed('ef56'), { timeout: 5_000 }).toBe(1);
    expect(await rig.completed('EF56')).toBe(0);
  });
});

describe('a LIS that never sent a lower-case number (labels printed upper case)', () => {
  let dir: string;
  let rig: Rig;

  beforeAll(async () => {
    dir = await tempDir('s23-case-upper');
    rig = new Rig('s23-case-upper', dir);
    await rig.start();
    await rig.order(orm('UC-1', 'ACC-UC-1', ['ALT'], 'MRN-F'), 'UC-1');
  });

  afterAll(async () => {
    await rig?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a barcode typed in lower case still finds its order, and its result goes on it', async () => {
    expect((await rig.query('acc-uc-1')).orders).toEqual([['acc-uc-1', '^^^ALT']]);
    await rig.result('acc-uc-1', 'ALT', '31');
    await expect.poll(() => rig.completed('ACC-UC-1'), { timeout: 5_000 }).toBe(1);
  });

  it('after a restart too (no mark is written for it)', async () => {
    await rig.stop();
    await rig.start();
    await rig.order(orm('UC-2', 'ACC-UC-2', ['GLU'], 'MRN-G'), 'UC-2');
    expect((await rig.query('acc-uc-2')).orders).toEqual([['acc-uc-2', '^^^GLU']]);
  });
});

describe('case variants stored before the mark existed (orders an earlier release took)', () => {
  let dir: string;
  let rig: Rig;

  beforeAll(async () => {
    dir = await tempDir('s23-case-earlier');
    rig = new Rig('s23-case-earlier', dir);
    await rig.start();
    await rig.order(orm('EV-1', 'AB12', ['ALT'], 'MRN-B'), 'EV-1');
    await rig.order(orm('EV-2', 'ab12', ['GLU'], 'MRN-C'), 'EV-2');
    await rig.stop();
    // The release that took these orders wrote no mark.
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0 });
    try {
      expect(await store.getDoc(ACCESSION_CASE_NAMESPACE, 'lis')).toBeDefined();
      await store.deleteDoc(ACCESSION_CASE_NAMESPACE, 'lis');
    } finally {
      await store.close();
    }
    await rig.start();
  });

  afterAll(async () => {
    await rig?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('Ab12 (AB12 and ab12 both stored) is answered "no order", and the lab is told', async () => {
    const before = rig.alerts.length;
    const { orders } = await rig.query('Ab12');
    // Before: AB12's ALT (patient B), though the tube may be ab12's (patient C).
    expect(orders).toEqual([]);
    expect(rig.alerts.slice(before).some((a) => a.code === 'ACCESSION_COLLISION' && a.message.includes('Ab12') && a.message.includes('AB12') && a.message.includes('ab12'))).toBe(true);
  });

  it('a result for Ab12 goes on neither', async () => {
    await rig.result('Ab12', 'ALT', '50');
    await expect.poll(() => rig.completed('Ab12'), { timeout: 5_000 }).toBe(1);
    expect(await rig.completed('AB12')).toBe(0);
    expect(await rig.completed('ab12')).toBe(0);
  });

  it('each barcode as sent still finds its own order', async () => {
    expect((await rig.query('ab12')).orders).toEqual([['ab12', '^^^GLU']]);
    expect((await rig.query('AB12')).orders).toEqual([['AB12', '^^^ALT']]);
  });
});
