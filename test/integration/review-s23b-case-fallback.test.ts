/**
 * A barcode's case fallback (a barcode the analyzer sends in lower case is looked up in upper case
 * while no LIS link numbers by case, 2213e3d) on an HL7 analyzer's host query (Mindray BS, QRY^Q02
 * over MLLP), and what the lab is told when a barcode's case variants collide. Real gateway (real
 * LevelDB in a temp dir, restarted on it), the LIS and the analyzer over real MLLP.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gateway } from '../../gateway/src/gateway.ts';
import { ACCESSION_CASE_NAMESPACE } from '../../gateway/src/hl7/accession-case.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import type { TelemetryEvents } from '../../gateway/src/telemetry.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';

const BS = { id: 'bs-200', profile: 'mindray-bs-series', tcp: { listen: { host: '127.0.0.1', port: 0 } } };

const hl7 = (...segments: string[]): Buffer => Buffer.from(segments.join('\r') + '\r', 'latin1');
const segments = (frame: Buffer): string[] => frame.toString('latin1').split('\r').filter((l) => l !== '');

/** An LIS order (ORM^O01) of `accession` for patient `mrn`, the accession being the tube. */
const orm = (controlId: string, accession: string, tests: string[], mrn: string): Buffer =>
  hl7(
    `MSH|^~\\&|LIS|LAB|GW|LAB|20261207101500||ORM^O01|${controlId}|P|2.5`,
    `PID|1||${mrn}^^^LAB^MR`,
    `ORC|NW|${accession}||${accession}|SC||||20261207101500||||||||||||CLINIC-A`,
    ...tests.map((t, i) => `OBR|${i + 1}|${accession}||${t}^${t}^L`),
  );

/** An OML^O21 of one accession, one test per tube, each tube received with its sample type: `[test, tube, type]`. */
const tubesOrder = (controlId: string, accession: string, lines: Array<[string, string, string]>, mrn: string): Buffer =>
  hl7(
    `MSH|^~\\&|LIS|LAB|GW|LAB|20261207080000||OML^O21^OML_O21|${controlId}|P|2.5.1`,
    `PID|1||${mrn}^^^LAB^MR`,
    ...lines.flatMap(([test, tube, type], i) => [
      `ORC|NW|${accession}||||||||20261207075500|||||||||||CLINIC-A`,
      `OBR|${i + 1}|${accession}||${test}^${test}^L`,
      `SPM|${i + 1}|${tube}||${type}^${type}^HL70487|||||||||||||20261207070000|20261207073000`,
    ]),
  );

/** The Mindray BS host query for `barcode` (QRD-8), as the vendor's manual lays it out. */
const qry = (controlId: string, barcode: string): Buffer =>
  hl7(
    `MSH|^~\\&|Manufacturer|Model|||20261207101000||QRY^Q02|${controlId}|P|2.3.1||||||ASCII|||`,
    `QRD|20261207101000|R|D|${controlId}|||RD|${barcode}|OTH|||T|`,
    'QRF|BS-200|20261207101000|20261207101000|||RCT|COR|ALL||',
  );

/** A gateway on `dir` with the LIS link and the BS analyzer (HL7 over MLLP), restartable on the same data. */
class Rig {
  gateway!: Gateway;
  lis!: MllpClient;
  analyzer!: MllpClient;
  readonly alerts: Array<TelemetryEvents['alert']> = [];
  #queries = 0;

  readonly id: string;
  readonly dir: string;

  constructor(id: string, dir: string) {
    this.id = id;
    this.dir = dir;
  }

  async start(): Promise<void> {
    this.gateway = new Gateway({ config: testGatewayConfig(this.id, this.dir, { analyzers: [BS] }), log: silentLogger });
    this.gateway.telemetry.on('alert', (a) => this.alerts.push(a));
    await this.gateway.start();
    this.lis = await MllpClient.connect({ host: '127.0.0.1', port: this.gateway.addresses().hl7.lis!.port });
    this.analyzer = await MllpClient.connect({ host: '127.0.0.1', port: this.gateway.addresses().analyzers['bs-200']!.port! });
  }

  async stop(): Promise<void> {
    await this.analyzer?.close().catch(() => undefined);
    await this.lis?.close().catch(() => undefined);
    await this.gateway?.stop(5_000);
  }

  async order(message: Buffer, controlId: string): Promise<void> {
    expect(segments(await this.lis.send(message))).toContain(`MSA|AA|${controlId}`);
  }

  /** The DSP lines of the answer to a host query for `barcode` (none: QAK NF, "no order"). */
  async query(barcode: string): Promise<string[]> {
    const id = `Q${++this.#queries}`;
    // QCK^Q02 alone when nothing is known (QAK NF), else QCK then DSR^Q03.
    const replies = await this.analyzer.exchange(qry(id, barcode), { more: (got) => got.length === 0 || (got.length === 1 && segments(got[0]!).includes('QAK|SR|OK|')) });
    const [qck, dsr] = replies;
    if (segments(qck!).includes('QAK|SR|NF|')) return [];
    return dsr ? segments(dsr).filter((l) => l.startsWith('DSP|')) : [];
  }
}

async function tempDir(id: string): Promise<string> {
  return mkdtemp(path.join(tmpdir(), `lgw-${id}-`));
}

describe('an HL7 analyzer\'s host query for a tube typed in lower case (a LIS numbering in upper case)', () => {
  let dir: string;
  let rig: Rig;

  beforeAll(async () => {
    dir = await tempDir('s23b-case-type');
    rig = new Rig('s23b-case-type', dir);
    await rig.start();
    // One order, two tubes: GLU on the urine tube TU1, ALT on the serum tube TS1 (received last).
    await rig.order(tubesOrder('TY-1', 'ORD-TY1', [['GLU', 'TU1', 'UR'], ['ALT', 'TS1', 'SER']], 'MRN-T'), 'TY-1');
  });

  afterAll(async () => {
    await rig?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the urine tube as labelled is answered with its test and sample type', async () => {
    const dsp = await rig.query('TU1');
    expect(dsp).toContain('DSP|26||UR|||');
    expect(dsp.filter((l) => /^DSP\|(29|3\d)\|/.test(l))).toEqual(['DSP|29||3^^^|||']);
  });

  it('typed tu1, it is answered with the urine tube\'s sample type, not the serum tube\'s', async () => {
    const dsp = await rig.query('tu1');
    expect(dsp.filter((l) => /^DSP\|(29|3\d)\|/.test(l))).toEqual(['DSP|29||3^^^|||']);
    // Before: DSP|26||SER, the urine tube run as serum.
    expect(dsp).toContain('DSP|26||UR|||');
  });
});

describe('case variants an earlier release stored (AB12 and ab12, no mark): what the lab is told', () => {
  let dir: string;
  let rig: Rig;

  beforeAll(async () => {
    dir = await tempDir('s23b-case-alert');
    rig = new Rig('s23b-case-alert', dir);
    await rig.start();
    await rig.order(orm('AL-1', 'AB12', ['ALT'], 'MRN-B'), 'AL-1');
    await rig.order(orm('AL-2', 'ab12', ['GLU'], 'MRN-C'), 'AL-2');
    await rig.stop();
    // The release that took these orders wrote no mark.
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0 });
    try {
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

  it('Ab12 is answered "no order", and the alert says the orders differ from the barcode by case, not that they share it', async () => {
    const before = rig.alerts.length;
    expect(await rig.query('Ab12')).toEqual([]);
    const alert = rig.alerts.slice(before).find((a) => a.code === 'ACCESSION_COLLISION');
    expect(alert).toBeDefined();
    expect(alert!.message).toContain('Ab12');
    expect(alert!.message).toContain('AB12, ab12');
    expect(alert!.message).toContain('only by case');
    // Before: "… share this barcode … two LIS systems numbering alike need hl7[].accessionPrefix on
    // one of them": neither order is the barcode, and a prefix changes nothing (one LIS link).
    expect(alert!.message).not.toContain('share this barcode');
    expect(alert!.message).not.toContain('accessionPrefix');
  });
});

describe('an upgraded store: a LIS numbering by case whose lower-case orders an earlier release took (no mark)', () => {
  let dir: string;
  let rig: Rig;

  beforeAll(async () => {
    dir = await tempDir('s23b-case-upgrade');
    rig = new Rig('s23b-case-upgrade', dir);
    await rig.start();
    // Patient C's order ab12 and patient D's order CD34, both pending when the lab upgraded.
    await rig.order(orm('UP-1', 'ab12', ['GLU'], 'MRN-C'), 'UP-1');
    await rig.order(orm('UP-2', 'CD34', ['ALT'], 'MRN-D'), 'UP-2');
    await rig.stop();
    // The release that took these orders wrote no mark.
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0 });
    try {
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

  it('the stored lower-case order ab12 is answered with its own test', async () => {
    expect((await rig.query('ab12')).filter((l) => /^DSP\|(29|3\d)\|/.test(l))).toEqual(['DSP|29||3^^^|||']);
  });

  it('that look-up showed the LIS numbers by case: cd34, whose order has not come yet, is not answered with CD34\'s tests', async () => {
    // Before: CD34's ALT (patient D) for the tube cd34 of another patient, until the LIS happened
    // to send another lower-case number.
    expect(await rig.query('cd34')).toEqual([]);
  });

  it('after a restart too', async () => {
    await rig.stop();
    await rig.start();
    expect(await rig.query('cd34')).toEqual([]);
  });
});
