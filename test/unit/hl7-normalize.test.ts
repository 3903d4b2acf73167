import { describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import { hl7SearchTerms, normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';

function normalize(text: string, endpoint = 'lis'): { events: DraftEvent[]; notes: string[]; terms: string[] } {
  const raw = Buffer.from(text.replace(/\n/g, '\r'), 'latin1');
  const r = readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii');
  if (!r.message) throw new Error(r.problem?.text);
  const notes: string[] = [];
  const events = normalizeLis({ message: r.message, endpoint, receivedAt: '2024-03-01T10:00:00.000Z', notes });
  return { events, notes, terms: hl7SearchTerms(r.message) };
}

/** A segment from field number → value (HL7 numbering), so positions are explicit. */
function seg(name: string, fields: Record<number, string>): string {
  const max = Math.max(...Object.keys(fields).map(Number));
  return [name, ...Array.from({ length: max }, (_, i) => fields[i + 1] ?? '')].join('|');
}

const MSH = (type: string, id = 'M1') => `MSH|^~\\&|LIS|LAB|GW|LAB|20240301093000||${type}|${id}|P|2.5.1`;
const PID = 'PID|1||MRN-77^^^LAB^MR||DOE^JANE^Q||19700101|F|||1 Main St';

describe('LIS normalizer: orders', () => {
  const order = [
    MSH('ORM^O01^ORM_O01'),
    PID,
    seg('ORC', { 1: 'NW', 2: 'ACC-1', 3: 'FIL-1', 7: '^^^^^R', 9: '20240301092500', 12: 'DR1^House', 17: 'WARD^Ward 7', 21: 'CLINIC A^^C-17^^^^^^^ORG-42' }),
    seg('OBR', { 1: '1', 2: 'ACC-1', 3: 'FIL-1', 4: 'GLU^Glucose^LN', 7: '20240301090000', 16: 'DR1^House' }),
    'ORC|NW|ACC-1|FIL-1',
    'OBR|2|ACC-1|FIL-1|NA^Sodium^LN',
  ].join('\n');

  it('ORC-1 NW: one order.created per accession, one test per OBR-4', () => {
    const { events } = normalize(order);
    expect(events).toHaveLength(1);
    const e = events[0]!;
    expect(e.type).toBe('order.created');
    expect(e.correlationId).toBe('ACC-1');
    expect(e.partitionKey).toBe('order:ACC-1');
    expect(e.source).toEqual({ kind: 'hl7', endpoint: 'lis', controlId: 'M1' });
    if (e.type !== 'order.created') throw new Error('type');
    expect(e.data.tests).toEqual([
      { code: 'GLU', name: 'Glucose', codingSystem: 'LN', lineId: '1' },
      { code: 'NA', name: 'Sodium', codingSystem: 'LN', lineId: '2' },
    ]);
    expect(e.data.orderingClientRef).toBe('ORG-42'); // ORC-21.10
    expect(e.data.patientId).toBe('MRN-77');
    expect(e.data.fillerOrderNumber).toBe('FIL-1');
    expect(e.data.priority).toBe('R');
    expect(e.occurredAt).toBe(new Date(2024, 2, 1, 9, 25, 0).toISOString());
  });

  it('never puts patient names, birth dates or addresses in events', () => {
    const json = JSON.stringify(normalize(order).events);
    expect(json).not.toMatch(/DOE|JANE|19700101|Main St/);
  });

  it('orderingClientRef falls back to ORC-17, then the ordering provider id', () => {
    const a = normalize([MSH('ORM^O01'), seg('ORC', { 1: 'NW', 2: 'A2', 17: 'ENT-9^Entering org' }), 'OBR|1|A2||X^x'].join('\n')).events[0];
    const b = normalize([MSH('ORM^O01'), 'ORC|NW|A3', seg('OBR', { 1: '1', 2: 'A3', 4: 'X^x', 16: 'PRV-5^Smith' })].join('\n')).events[0];
    expect(a?.type === 'order.created' && a.data.orderingClientRef).toBe('ENT-9');
    expect(b?.type === 'order.created' && b.data.orderingClientRef).toBe('PRV-5');
  });

  it('accession falls back to the filler number when there is no placer number', () => {
    const e = normalize([MSH('ORM^O01'), 'ORC|NW||FIL-9', 'OBR|1|||X^x'].join('\n')).events[0];
    expect(e?.correlationId).toBe('FIL-9');
  });

  it('ORC-1 CA → order.cancelled; ORC-5 IP → test.in_progress', () => {
    const cancel = normalize([MSH('ORM^O01', 'M2'), 'ORC|CA|ACC-1', 'OBR|1|ACC-1||GLU^Glucose'].join('\n')).events;
    expect(cancel.map((e) => e.type)).toEqual(['order.cancelled']);
    const ip = normalize([MSH('ORM^O01', 'M3'), seg('ORC', { 1: 'SC', 2: 'ACC-1', 5: 'IP' }), 'OBR|1|ACC-1||GLU^Glucose'].join('\n')).events;
    expect(ip.map((e) => e.type)).toEqual(['test.in_progress']);
    expect(ip[0]?.type === 'test.in_progress' && ip[0].data.testCode).toBe('GLU');
  });

  it('OML^O21: an SPM with a received time (SPM-18) → specimen.received', () => {
    const { events } = normalize(
      [MSH('OML^O21^OML_O21'), PID, 'ORC|NW|ACC-5', 'OBR|1|ACC-5||K^Potassium', seg('SPM', { 1: '1', 2: 'SP-55^', 4: 'BLD^Blood', 17: '20240301080000', 18: '20240301083000' })].join('\n'),
    );
    // order.created first: the relay posts a partition's events in order, and the receipt note
    // needs the sale order that order.created makes.
    expect(events.map((e) => e.type)).toEqual(['order.created', 'specimen.received']);
    const s = events[1];
    if (s?.type !== 'specimen.received') throw new Error('type');
    expect(s.data).toMatchObject({ accession: 'ACC-5', specimenId: 'SP-55', specimenType: 'BLD' });
    expect(s.data.receivedAt).toBe(new Date(2024, 2, 1, 8, 30).toISOString());
    const o = events[0];
    expect(o?.type === 'order.created' && o.data.specimenId).toBe('SP-55');
  });
});

describe('LIS normalizer: results', () => {
  const oru = (obx: string[], obr25 = '') =>
    [MSH('ORU^R01^ORU_R01', 'R1'), PID, 'ORC|RE|ACC-7|FIL-7', seg('OBR', { 1: '1', 2: 'ACC-7', 3: 'FIL-7', 4: 'BMP^Basic panel', 7: '20240301090000', 22: '20240301095500', 25: obr25 }), ...obx].join('\n');

  it('all OBX final → one result.validated for the ordered test', () => {
    const { events } = normalize(oru(['OBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F', 'OBX|2|NM|NA^Sodium||140|mmol/L|||||F']));
    expect(events.map((e) => e.type)).toEqual(['result.validated']);
    const v = events[0];
    if (v?.type !== 'result.validated') throw new Error('type');
    expect(v.data).toMatchObject({ accession: 'ACC-7', specimenId: 'FIL-7', testCode: 'BMP' });
    expect(v.data.validatedAt).toBe(new Date(2024, 2, 1, 9, 55).toISOString());
  });

  it('OBR-25 F with empty OBX-11 → validated', () => {
    expect(normalize(oru(['OBX|1|NM|GLU^Glucose||5.4|mmol/L'], 'F')).events.map((e) => e.type)).toEqual(['result.validated']);
  });

  it('preliminary results → one test.completed per OBX with the analyte, value and units', () => {
    const { events } = normalize(oru(['OBX|1|NM|GLU^Glucose^LN||5.4|mmol/L|3.9-6.1|N|||P', 'OBX|2|NM|NA^Sodium||140|mmol/L|||||F', 'OBX|3|NM|K^Potassium||x||||||D']));
    expect(events.map((e) => e.type)).toEqual(['test.completed', 'test.completed']);
    const c = events[0];
    if (c?.type !== 'test.completed') throw new Error('type');
    expect(c.data).toMatchObject({ testCode: 'GLU', loinc: 'GLU', value: '5.4', units: 'mmol/L', abnormalFlags: 'N', resultStatus: 'P', runType: 'patient', specimenId: 'FIL-7' });
  });

  it('idempotency keys are deterministic per endpoint + sender + control id + position', () => {
    const msg = oru(['OBX|1|NM|GLU^Glucose||5.4|mmol/L|||||P', 'OBX|2|NM|NA^Sodium||140|mmol/L|||||P']);
    const a = normalize(msg).events.map((e) => e.idempotencyKey);
    const b = normalize(msg).events.map((e) => e.idempotencyKey);
    const other = normalize(msg, 'lis-2').events.map((e) => e.idempotencyKey);
    expect(a).toEqual(b);
    expect(new Set(a).size).toBe(2);
    expect(other.some((k) => a.includes(k))).toBe(false);
  });

  it('OUL^R22: specimen from SPM, specimen observations skipped', () => {
    const { events, notes } = normalize(
      [MSH('OUL^R22^OUL_R22', 'U1'), PID, 'SPM|1|SP-9^||SER', 'OBX|1|NM|VOL^Volume||2|mL', 'OBR|1|ACC-9||GLU^Glucose', 'ORC|SC|ACC-9', 'OBX|1|NM|GLU^Glucose||6.1|mmol/L|||||C'].join('\n'),
    );
    // A corrected result (OBX-11 C) also validates its test (the test.completed beside it as before).
    expect(events.map((e) => e.type)).toEqual(['result.validated', 'test.completed']);
    expect(events.map((e) => e.type === 'test.completed' || e.type === 'result.validated' ? e.data.specimenId : undefined)).toEqual(['SP-9', 'SP-9']);
    expect(notes.some((n) => n.includes('specimen observation'))).toBe(true);
  });

  it('search terms: control id, accession, filler number, specimen id', () => {
    expect(normalize([MSH('OUL^R22', 'U2'), 'SPM|1|SP-1^SP-F', 'OBR|1|ACC-1|FIL-1|X'].join('\n')).terms.sort()).toEqual(['ACC-1', 'FIL-1', 'SP-1', 'SP-F', 'U2']);
  });

  it('ADT produces no events', () => {
    expect(normalize([MSH('ADT^A01'), PID].join('\n')).events).toEqual([]);
  });
});
