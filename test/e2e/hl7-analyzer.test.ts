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
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { unwrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const corpus = path.resolve(repo, '../shared/corpus/hl7');
const load = (f: string): Buffer => unwrapFrame(readFileSync(path.join(corpus, f)));

let gateway: Gateway;
let stop: () => Promise<void>;
let client: MllpClient;

beforeAll(async () => {
  ({ gateway, stop } = await startTestGateway('hl7an', { analyzers: [{ id: 'bs-200', profile: 'mindray-bs-series', tcp: { listen: { host: '127.0.0.1', port: 0 } } }] }));
  client = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().analyzers['bs-200']!.port! });
});

afterAll(async () => {
  await client?.close().catch(() => undefined);
  await stop?.();
});

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
});
