/**
 * An analyzer that speaks HL7 over MLLP (Mindray BS and BC series) goes through the same intake
 * as the LIS, with its profile's normalizer: the vendor's own example messages are acknowledged,
 * kept byte-exact and turned into results and reagent consumption mapped by the profile.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { GatewayError } from '../../gateway/src/errors.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { unwrapFrame, wrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const corpus = path.resolve(repo, '../shared/corpus/hl7');
const load = (f: string): Buffer => unwrapFrame(readFileSync(path.join(corpus, f)));

let gateway: Gateway;
let stop: () => Promise<void>;
let client: MllpClient;
let lis: MllpClient;
let bc: MllpClient;

beforeAll(async () => {
  ({ gateway, stop } = await startTestGateway('hl7an', {
    analyzers: [
      { id: 'bs-200', profile: 'mindray-bs-series', tcp: { listen: { host: '127.0.0.1', port: 0 } } },
      { id: 'bc-5380', profile: 'mindray-bc-5380', tcp: { listen: { host: '127.0.0.1', port: 0 } } },
    ],
  }));
  client = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().analyzers['bs-200']!.port! });
  bc = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().analyzers['bc-5380']!.port! });
  lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port! });
});

afterAll(async () => {
  await client?.close().catch(() => undefined);
  await lis?.close().catch(() => undefined);
  await bc?.close().catch(() => undefined);
  await stop?.();
});

/** An LIS order (ORM^O01 NW) for `accession` with canonical test codes. */
const orm = (controlId: string, accession: string, tests: string[], orderControl = 'NW'): Buffer =>
  Buffer.from(
    [
      `MSH|^~\\&|LIS|LAB|GW|LAB|20261125101500||ORM^O01|${controlId}|P|2.5`,
      'PID|1||MRN-42^^^LAB^MR',
      `ORC|${orderControl}|${accession}||${accession}|SC||||20261125101500||||||||||||CLINIC-A`,
      ...tests.map((t, i) => `OBR|${i + 1}|${accession}||${t}^${t}^L`),
      '',
    ].join('\r'),
  );
const segments = (frame: Buffer): string[] => frame.toString('latin1').split('\r').filter((l) => l !== '');

describe('Mindray BS over HL7/MLLP', () => {
  it('patient and QC results are acknowledged AA, kept byte-exact, and become events by the profile', async () => {
    const store = gateway.store!;
    for (const file of ['oru_r01_mindray-bs200_patient-result_vendor-manual.mllp', 'oru_r01_mindray-bs200_qc-result_vendor-manual.mllp']) {
      const raw = load(file);
      const controlId = raw.toString('latin1').split('\r')[0]!.split('|')[9]!;
      const ack = (await client.send(raw)).toString('latin1');
      expect(ack, file).toMatch(new RegExp(`MSA\\|AA\\|${controlId}`));
    }
    const messages = await store.listMessages({ endpoint: 'bs-200' });
    expect(messages).toHaveLength(2);
    const stored = await Promise.all(messages.map(async (m) => (await store.getMessage(m.id))!.raw));
    expect(stored.some((r) => r.equals(load('oru_r01_mindray-bs200_patient-result_vendor-manual.mllp')))).toBe(true);
    expect(stored.some((r) => r.equals(load('oru_r01_mindray-bs200_qc-result_vendor-manual.mllp')))).toBe(true);

    const events = (await Promise.all(messages.flatMap((m) => m.eventIds.map((id) => store.getEvent(id))))).map((e) => e!.event);
    const results = events.filter((e) => e.type === 'test.completed');
    const consumption = events.filter((e) => e.type === 'consumable.used');
    expect(results.length).toBeGreaterThan(0);
    expect(consumption.length).toBeGreaterThan(0);
    expect(events.every((e) => e.source.analyzer === 'bs-200')).toBe(true);
    // The QC run is recognised as QC: consumption counted, never billable.
    expect(results.some((e) => e.type === 'test.completed' && e.data.runType === 'qc')).toBe(true);
    expect(events.some((e) => e.type === 'result.validated' || e.type === 'invoice.eligible')).toBe(false);
    for (const e of consumption) if (e.type === 'consumable.used') expect(e.partitionKey).toBe(`reagent:bs-200:${e.data.productCode}`);
  });

  it('a host query (QRY^Q02) for a barcode the LIS ordered is answered QCK^Q02 OK, then DSR^Q03 with the analyzer\'s test numbers', async () => {
    const store = gateway.store!;
    // ALT and GLU are test numbers 1 and 3 of the profile; the vendor's query asks for 34567743.
    expect((await lis.send(orm('HQ-1', '34567743', ['ALT', 'GLU', 'TSH']))).toString('latin1')).toContain('MSA|AA|HQ-1');
    const query = load('qry_q02_mindray-bs200_host-query_vendor-manual.mllp');
    const [qck, dsr] = await client.request(query, 2);
    expect(segments(qck!)[0]).toMatch(/^MSH\|\^~\\&\|\|\|Manufacturer\|Model\|\d{14}\|\|QCK\^Q02\|/);
    expect(segments(qck!).slice(1)).toEqual(['MSA|AA|1|Message accepted|||0|', 'ERR|0|', 'QAK|SR|OK|']);
    const d = segments(dsr!);
    expect(d[0]).toContain('|DSR^Q03|');
    expect(d).toContain('QRD|20070723170707|R|D|1|||RD|34567743|OTH|||T|');
    expect(d).toContain('DSP|1||MRN-42|||');
    expect(d).toContain('DSP|21||34567743|||');
    // TSH is not on this analyzer: only its own tests go down.
    expect(d.filter((l) => /^DSP\|(29|3\d)\|/.test(l))).toEqual(['DSP|29||1^^^|||', 'DSP|30||3^^^|||']);
    expect(d.at(-1)).toBe('DSC||');

    // The analyzer's ACK^Q03 is kept and not answered (an acknowledgement is never acknowledged).
    const ackQ03 = load('ack_q03_mindray-bs200_vendor-manual.mllp');
    client.writeRaw(wrapFrame(ackQ03));
    // The query is kept byte-exact, with the answer it got as its acknowledgement.
    await expect.poll(async () => (await store.listMessages({ endpoint: 'bs-200', q: '34567743' })).length).toBeGreaterThanOrEqual(1);
    const kept = (await store.listMessages({ endpoint: 'bs-200', q: '34567743' })).find((m) => m.messageType?.startsWith('QRY'))!;
    const stored = (await store.getMessage(kept.id))!;
    expect(stored.raw.equals(query)).toBe(true);
    expect(stored.ack!.equals(Buffer.concat([qck!, dsr!].map((f) => Buffer.concat([Buffer.from([0x0b]), f, Buffer.from([0x1c, 0x0d])]))))).toBe(true);
    await expect.poll(async () => (await store.listMessages({ endpoint: 'bs-200' })).some((m) => m.messageType?.startsWith('ACK'))).toBe(true);
  });

  it('the same query again gets the orders as they are now (no replay of a stale answer); an unknown barcode gets QAK NF and nothing else', async () => {
    // The LIS cancels GLU; the analyzer asks again with the very same bytes (same control id).
    expect((await lis.send(orm('HQ-2', '34567743', ['GLU'], 'CA'))).toString('latin1')).toContain('MSA|AA|HQ-2');
    const [, dsr] = await client.request(load('qry_q02_mindray-bs200_host-query_vendor-manual.mllp'), 2);
    expect(segments(dsr!).filter((l) => /^DSP\|(29|3\d)\|/.test(l))).toEqual(['DSP|29||1^^^|||']);

    const unknown = Buffer.from('MSH|^~\\&|Manufacturer|Model|||20070723170707||QRY^Q02|2|P|2.3.1||||||ASCII|||\rQRD|20070723170707|R|D|2|||RD|NO-SUCH-TUBE|OTH|||T|\rQRF|BS-200|20070723170749|20070723170749|||RCT|COR|ALL||\r');
    const [nf] = await client.request(unknown, 1);
    expect(segments(nf!).slice(1)).toEqual(['MSA|AA|2|Message accepted|||0|', 'ERR|0|', 'QAK|SR|NF|']);
    // Nothing else follows the NF answer: the next reply on the connection is the next query's.
    const [next] = await client.request(unknown, 1);
    expect(segments(next!)[3]).toBe('QAK|SR|NF|');
  });

  it('a query the store cannot keep gets AE "store unavailable", not the answer; answered again once the store recovers', async () => {
    const store = gateway.store!;
    const query = load('qry_q02_mindray-bs200_host-query_vendor-manual.mllp');
    store.simulateWriteFailure(new GatewayError('GW_STORE_UNAVAILABLE', 'disk went away'));
    try {
      const refused = segments(await client.send(query));
      expect(refused.find((l) => l.startsWith('MSA|'))).toMatch(/^MSA\|AE\|1\|/);
      expect(refused.join('\r')).toContain('store unavailable');
      expect(refused.some((l) => l.startsWith('QAK') || l.startsWith('DSP'))).toBe(false);
    } finally {
      store.simulateWriteFailure(undefined);
    }
    await expect.poll(() => store.health, { timeout: 10_000 }).toBe('ok');
    const [qck] = await client.request(query, 2);
    expect(segments(qck!)).toContain('QAK|SR|OK|');
  });

  it('a query inside a batch is acknowledged like any member: the batch reply stays one well-formed frame', async () => {
    const qry = load('qry_q02_mindray-bs200_host-query_vendor-manual.mllp').toString('latin1').replace('|QRY^Q02|1|', '|QRY^Q02|B1|');
    const batch = Buffer.from(`BHS|^~\\&|Manufacturer|Model\r${qry}BTS|1\r`, 'latin1');
    const reply = segments(await client.send(batch));
    expect(reply[0]).toMatch(/^BHS\|/);
    expect(reply).toContain('MSA|AA|B1');
    expect(reply.some((l) => l.startsWith('QAK') || l.startsWith('DSP'))).toBe(false);
    expect(reply.join('\r')).not.toMatch(/[\x0b\x1c]/);
  });

  it('a query without a barcode is refused AR with an ERR naming QRD-8, and kept', async () => {
    const bad = Buffer.from('MSH|^~\\&|Manufacturer|Model|||20070723170707||QRY^Q02|3|P|2.3.1||||||ASCII|||\rQRD|20070723170707|R|D|3|||RD||OTH|||T|\r');
    const reply = (await client.send(bad)).toString('latin1');
    expect(reply).toContain('MSA|AR|3');
    expect(reply).toMatch(/ERR\|QRD\^1\^8\^101&Required field missing/);
    const kept = await gateway.store!.listMessages({ endpoint: 'bs-200', controlId: '3' });
    expect(kept.some((m) => m.status === 'rejected' && m.rejectReason === 'QRD-8 (the sample barcode) is empty')).toBe(true);
  });

  it('a BC-5380 worklist inquiry (ORM^O01, ORC-1 = RF) for an ordered sample is answered ORR^O02 AF; an unknown one MSA|AR', async () => {
    // WBC carries the CBC order in the BC-5380 profile.
    expect((await lis.send(orm('WL-1', 'SampleID1', ['WBC']))).toString('latin1')).toContain('MSA|AA|WL-1');
    const inquiry = readFileSync(path.join(corpus, 'orm_o01_mindray-bc5380_worklist-query_vendor-manual.hl7'));
    const orr = segments(await bc.send(inquiry));
    expect(orr[0]).toMatch(/\|ORR\^O02\|/);
    expect(orr[1]).toBe('MSA|AA|4');
    expect(orr).toContain('PID|1||MRN-42^^^');
    expect(orr).toContain('ORC|AF|SampleID1|||');
    expect(orr.find((l) => l.startsWith('OBR|'))).toMatch(/^OBR\|1\|SampleID1\|/);
    expect(orr.filter((l) => l.startsWith('OBX|')).map((l) => l.split('|')[5])).toEqual(['A', 'W', 'CBC']);

    const unknown = Buffer.from(inquiry.toString('utf8').replace('SampleID1', 'Invalid').replace('|ORM^O01|4|', '|ORM^O01|5|'));
    expect(segments(await bc.send(unknown)).slice(1)).toEqual(['MSA|AR|5']);
    // Both inquiries are kept, with the answers they got.
    const kept = await gateway.store!.listMessages({ endpoint: 'bc-5380' });
    expect(kept.filter((m) => m.messageType?.startsWith('ORM'))).toHaveLength(2);
  });
});
