/**
 * A barcode's case fallback on an upgraded store (orders a release before the case marks took, no
 * mark): a LIS numbering by case whose lower-case order ab12 (patient C) is found only as the
 * lower case of a mixed-case barcode the analyzer sent (`Ab12`, typed with a capital: orders AB12
 * and ab12, the collision "differ only by case"). That look-up showed the LIS numbers by case as
 * surely as one finding ab12 as sent (e409587): it must mark the link, or a tube cd34 whose order
 * has not come yet is answered with CD34's tests (patient D's). Real gateway (real LevelDB in a
 * temp dir, restarted on it), the LIS and a Mindray BS analyzer over real MLLP.
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

describe('an upgraded store: a LIS numbering by case whose lower-case order is found only in a collision of a mixed-case barcode', () => {
  let dir: string;
  let rig: Rig;

  beforeAll(async () => {
    dir = await tempDir('s23c-case-collision');
    rig = new Rig('s23c-case-collision', dir);
    await rig.start();
    // Three patients' orders, pending when the lab upgraded: AB12 (B), ab12 (C), CD34 (D).
    await rig.order(orm('CC-1', 'AB12', ['ALT'], 'MRN-B'), 'CC-1');
    await rig.order(orm('CC-2', 'ab12', ['GLU'], 'MRN-C'), 'CC-2');
    await rig.order(orm('CC-3', 'CD34', ['ALT'], 'MRN-D'), 'CC-3');
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

  it('Ab12 is answered "no order" (its case variants collide)', async () => {
    expect(await rig.query('Ab12')).toEqual([]);
    expect(rig.alerts.some((a) => a.code === 'ACCESSION_COLLISION')).toBe(true);
  });

  it("that look-up showed the LIS numbers by case: cd34, whose order has not come yet, is not answered with CD34's tests", async () => {
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
