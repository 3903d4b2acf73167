import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';
import { Hl7Intake } from '../../gateway/src/ingress/mllp/hl7-intake.ts';
import { unwrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { corpusDir, endpointConfig, field, framesOf } from '../fixtures/hl7/helpers.ts';
import { MemoryIntakeStore } from '../fixtures/hl7/memory-store.ts';

/**
 * HL7 message → acknowledgement and → canonical events: the cases the other HL7 unit tests do not
 * reach (multi-order result messages, shared specimens, structured numeric values, the order of
 * events inside one partition, batches in enhanced acknowledgement mode).
 */

function normalize(text: string, endpoint = 'lis'): { events: DraftEvent[]; notes: string[] } {
  const raw = Buffer.from(text.replace(/\n/g, '\r'), 'latin1');
  const r = readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii');
  if (!r.message) throw new Error(r.problem?.text);
  const notes: string[] = [];
  const events = normalizeLis({ message: r.message, endpoint, receivedAt: '2024-03-01T10:00:00.000Z', notes });
  return { events, notes };
}

/** A segment from field number → value (HL7 numbering), so positions are explicit. */
function seg(name: string, fields: Record<number, string>): string {
  const max = Math.max(...Object.keys(fields).map(Number));
  return [name, ...Array.from({ length: max }, (_, i) => fields[i + 1] ?? '')].join('|');
}

const MSH = (type: string, id = 'M1', tail = '') => `MSH|^~\\&|LIS|LAB|GW|LAB|20240301093000||${type}|${id}|P|2.5.1${tail}`;
const PID = 'PID|1||MRN-77^^^LAB^MR';
const meta = { receivedAt: '2024-03-01T10:00:00.000Z', remoteAddress: '127.0.0.1:5000' };

function setup(overrides = {}) {
  const store = new MemoryIntakeStore();
  const intake = new Hl7Intake({ config: endpointConfig(overrides), store: store.asStore(), log: silentLogger });
  return { store, intake };
}

const data = (e: DraftEvent | undefined): Record<string, unknown> => (e?.data ?? {}) as unknown as Record<string, unknown>;

describe('results: each order of a multi-order message gets its own events', () => {
  it('OUL^R22 with two specimen/order groups (ORC after its OBR): the second order\'s results carry the second accession', () => {
    // OUL_R22: {SPECIMEN: SPM {OBX} {ORDER: OBR [ORC] {RESULT: OBX}}}: the ORC FOLLOWS its OBR.
    const { events } = normalize(
      [
        MSH('OUL^R22^OUL_R22', 'U-MULTI'),
        PID,
        'SPM|1|SP-A^||SER',
        'OBR|1|ACC-A||GLU^Glucose',
        'ORC|SC|ACC-A',
        'OBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F',
        'SPM|2|SP-B^||SER',
        'OBR|1|||NA^Sodium', // no OBR-2: the order number is in the ORC that follows
        'ORC|SC|ACC-B',
        'OBX|1|NM|NA^Sodium||140|mmol/L|||||F',
      ].join('\n'),
    );
    expect(events.map((e) => e.type)).toEqual(['result.validated', 'result.validated']);
    expect(events.map((e) => [e.correlationId, data(e)['testCode'], data(e)['specimenId']])).toEqual([
      ['ACC-A', 'GLU', 'SP-A'],
      ['ACC-B', 'NA', 'SP-B'],
    ]);
    expect(events[1]?.partitionKey).toBe('order:ACC-B');
  });

  it('OUL^R22: an OBR whose own OBR-2 names its order is not re-assigned to the previous group\'s ORC', () => {
    const { events } = normalize(
      [
        MSH('OUL^R22^OUL_R22', 'U-MULTI-2'),
        'SPM|1|SP-A^||SER',
        'OBR|1|ACC-A||GLU^Glucose',
        'ORC|SC|ACC-A',
        'OBX|1|NM|GLU^Glucose||5.4|mmol/L|||||P',
        'OBR|2|ACC-B||K^Potassium', // same specimen, second order, no ORC of its own
        'OBX|1|NM|K^Potassium||4.1|mmol/L|||||P',
      ].join('\n'),
    );
    expect(events.map((e) => [e.type, e.correlationId, data(e)['testCode']])).toEqual([
      ['test.completed', 'ACC-A', 'GLU'],
      ['test.completed', 'ACC-B', 'K'],
    ]);
  });

  it('ORU^R01: OBX without OBR under an ORC keeps the ORC\'s accession instead of being dropped', () => {
    const { events, notes } = normalize([MSH('ORU^R01^ORU_R01', 'R-NOOBR'), PID, 'ORC|RE|ACC-N|FIL-N', 'OBX|1|NM|GLU^Glucose||5.4|mmol/L|||||P'].join('\n'));
    expect(notes.filter((n) => n.includes('skipped'))).toEqual([]);
    expect(events.map((e) => [e.type, e.correlationId, data(e)['testCode']])).toEqual([['test.completed', 'ACC-N', 'GLU']]);
  });

  it('OUL^R24 (order-centric: OBR [ORC] {SPM {OBX} {SAC}} {result OBX}): the results after the specimen group are not dropped', () => {
    // OUL_R24 ORDER group: OBR, [ORC], …, {SPECIMEN: SPM, {OBX}, {CONTAINER: SAC, [INV]}}, {RESULT: OBX …}.
    // An OBX after SAC cannot belong to the SPECIMEN group: it is a result of the OBR.
    const { events } = normalize(
      [
        MSH('OUL^R24^OUL_R24', 'R24-1'),
        PID,
        'OBR|1|ACC-24||GLU^Glucose',
        'ORC|SC|ACC-24',
        'SPM|1|SP-24^||SER',
        'SAC|||SP-24',
        'OBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F',
      ].join('\n'),
    );
    expect(events.map((e) => [e.type, e.correlationId, data(e)['testCode'], data(e)['specimenId']])).toEqual([['result.validated', 'ACC-24', 'GLU', 'SP-24']]);
  });

  it('ORU^R01 with two ORC/OBR groups: results stay with their own order', () => {
    const { events } = normalize(
      [
        MSH('ORU^R01^ORU_R01', 'R-2ORD'),
        PID,
        'ORC|RE|ACC-1',
        'OBR|1|ACC-1||GLU^Glucose',
        'OBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F',
        'ORC|RE|ACC-2',
        'OBR|1|ACC-2||NA^Sodium',
        'OBX|1|NM|NA^Sodium||140|mmol/L|||||P',
        'OBX|2|NM|K^Potassium||4.0|mmol/L|||||C',
        'OBX|3|NM|CL^Chloride||||||||X',
      ].join('\n'),
    );
    expect(events.map((e) => [e.type, e.correlationId, data(e)['testCode'], data(e)['resultStatus'] ?? null])).toEqual([
      ['result.validated', 'ACC-1', 'GLU', null],
      ['test.completed', 'ACC-2', 'NA', 'P'],
      ['test.completed', 'ACC-2', 'K', 'C'],
    ]);
    expect(new Set(events.map((e) => e.idempotencyKey)).size).toBe(3);
  });
});

describe('result values', () => {
  it('OBX-2 SN (structured numeric, e.g. ">^300"): the value keeps the number, not only the comparator', () => {
    const { events } = normalize([MSH('ORU^R01^ORU_R01', 'R-SN'), 'ORC|RE|ACC-S', 'OBR|1|ACC-S||GLU^Glucose', 'OBX|1|SN|GLU^Glucose||>^300|mg/dL|||||P'].join('\n'));
    expect(events).toHaveLength(1);
    const value = String(data(events[0])['value'] ?? '');
    expect(value).toContain('300');
  });

  it('OBX-2 SN without a comparator ("^7.2"): the value is not lost', () => {
    const { events } = normalize([MSH('ORU^R01^ORU_R01', 'R-SN2'), 'ORC|RE|ACC-S2', 'OBR|1|ACC-S2||PH^pH', 'OBX|1|SN|PH^pH||^7.2||||||F'].join('\n'));
    expect(events.map((e) => e.type)).toEqual(['result.validated']);
    expect(String(data(events[0])['value'] ?? '')).toContain('7.2');
  });

  it('OBR-25 F with OBX F, F and one analyte N (not asked): the ordered test is validated (N/D/W/X make no event and must not block it)', () => {
    const { events } = normalize(
      [
        MSH('ORU^R01^ORU_R01', 'R-N'),
        'ORC|RE|ACC-N2',
        seg('OBR', { 1: '1', 2: 'ACC-N2', 4: 'CBC^Blood count', 22: '20240301095500', 25: 'F' }),
        'OBX|1|NM|WBC^WBC||6.1|10*9/L|||||F',
        'OBX|2|NM|HGB^Hemoglobin||140|g/L|||||F',
        'OBX|3|NM|RETIC^Reticulocytes||||||||N',
      ].join('\n'),
    );
    expect(events.map((e) => [e.type, data(e)['testCode']])).toEqual([['result.validated', 'CBC']]);
  });

  it('escape sequences in identifiers and values are decoded; "" reads as empty', () => {
    const { events } = normalize(
      [MSH('ORU^R01^ORU_R01', 'R-ESC'), 'ORC|RE|ACC\\T\\7|""', 'OBR|1|ACC\\T\\7|""|CBC\\S\\D^Blood count', 'OBX|1|ST|NOTE^Note||a\\F\\b\\E\\c||||||P'].join('\n'),
    );
    expect(events.map((e) => e.correlationId)).toEqual(['ACC&7']);
    expect(data(events[0])).toMatchObject({ testCode: 'NOTE', value: 'a|b\\c', specimenId: 'ACC&7' });
  });
});

describe('orders: idempotency keys never collide for different facts', () => {
  it('OML^O33: one SPM without id shared by two orders with a receipt time: two specimen.received with distinct keys', () => {
    const { events } = normalize(
      [
        MSH('OML^O33^OML_O33', 'O33-NOID'),
        PID,
        seg('SPM', { 1: '1', 4: 'BLD^Blood', 17: '20240301080000', 18: '20240301083000' }), // no SPM-2
        'ORC|NW|ACC-1',
        'OBR|1|ACC-1|FIL-1|GLU^Glucose',
        'ORC|NW|ACC-2',
        'OBR|1|ACC-2|FIL-2|NA^Sodium',
      ].join('\n'),
    );
    const received = events.filter((e) => e.type === 'specimen.received');
    expect(received.map((e) => e.correlationId).sort()).toEqual(['ACC-1', 'ACC-2']);
    // Two different facts (two orders' specimens) must not share a key: the store keeps the first
    // and silently skips the second.
    expect(new Set(received.map((e) => e.idempotencyKey)).size).toBe(2);
    expect(new Set(events.map((e) => e.idempotencyKey)).size).toBe(events.length);
  });

  it('…and through the intake into the real store, the second order\'s specimen.received is kept, not skipped as a known key', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lgw-hl7-audit-'));
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, healthCheckIntervalMs: 1000, minFreeBytes: 0 });
    try {
      const intake = new Hl7Intake({ config: endpointConfig(), store, log: silentLogger });
      const msg = [
        MSH('OML^O33^OML_O33', 'O33-NOID-2'),
        seg('SPM', { 1: '1', 4: 'BLD^Blood', 18: '20240301083000' }),
        'ORC|NW|ACC-1',
        'OBR|1|ACC-1|FIL-1|GLU^Glucose',
        'ORC|NW|ACC-2',
        'OBR|1|ACC-2|FIL-2|NA^Sodium',
      ].join('\r');
      const r = await intake.handleFrame(Buffer.from(msg + '\r'), meta);
      expect(field(framesOf(r.reply)[0], 'MSA', 1)).toBe('AA');
      const received = await store.listEvents({ type: 'specimen.received', limit: 10 });
      expect(received.map((e) => e.event.correlationId).sort()).toEqual(['ACC-1', 'ACC-2']);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('corpus OML^O33 multi-specimen: every order gets its own order.created with its own test and specimen', () => {
    const frame = unwrapFrame(readFileSync(path.join(corpusDir, 'oml_o33_multi-specimen_hl7apy.hl7')));
    const r = readInbound(frame, analyseBlock(frame).messages[0]!, 'ascii');
    const events = normalizeLis({ message: r.message!, endpoint: 'lis', receivedAt: meta.receivedAt, notes: [] });
    expect(events.map((e) => [e.correlationId, (data(e)['tests'] as Array<{ code: string }>).map((t) => t.code), data(e)['specimenId']])).toEqual([
      ['83428', ['TPO'], '100187400201'],
      ['83425', ['CA'], '100187400101'],
      ['83426', ['HDL'], '100187400101'],
      ['83427', ['LDL'], '100187400101'],
    ]);
    expect(new Set(events.map((e) => e.idempotencyKey)).size).toBe(4);
  });
});

describe('orders: events of one partition come in the order they happened', () => {
  // The relay posts a partition's events FIFO; the milestone note of a specimen.received or
  // test.in_progress looks up the sale order made by order.created, and a missing sale order is a
  // permanent failure (dead letter). The order must therefore come first in its partition.
  const inPartition = (events: DraftEvent[], key: string) => events.filter((e) => e.partitionKey === key).map((e) => e.type);

  it('OML^O21 new order with its specimen already received: order.created before specimen.received', () => {
    const { events } = normalize(
      [MSH('OML^O21^OML_O21', 'O21-RCV'), PID, 'ORC|NW|ACC-5', 'OBR|1|ACC-5||K^Potassium', seg('SPM', { 1: '1', 2: 'SP-55^', 4: 'BLD^Blood', 18: '20240301083000' })].join('\n'),
    );
    expect(inPartition(events, 'order:ACC-5')).toEqual(['order.created', 'specimen.received']);
  });

  it('ORM^O01 new order already in process (ORC-5 IP): order.created before test.in_progress', () => {
    const { events } = normalize([MSH('ORM^O01^ORM_O01', 'ORM-IP'), PID, seg('ORC', { 1: 'NW', 2: 'ACC-6', 5: 'IP' }), 'OBR|1|ACC-6||GLU^Glucose'].join('\n'));
    expect(inPartition(events, 'order:ACC-6')).toEqual(['order.created', 'test.in_progress']);
  });
});

describe('acknowledgements', () => {
  const oru = (id: string, tail = '') => `MSH|^~\\&|LIS|LAB|GW|LAB|20240301||ORU^R01|${id}|P|2.5${tail}\rORC|RE|ACC-${id}\rOBR|1|ACC-${id}||GLU\rOBX|1|NM|GLU||5|mmol/L|||||F\r`;

  it('a batch on an enhanced endpoint (MSH-15/16 AL): the reply is ONE well-formed MLLP block with every message acknowledged', async () => {
    const { store, intake } = setup({ ack: 'enhanced' });
    const block = `BHS|^~\\&|LIS|LAB|GW|LAB|2024||||B-ENH\r${oru('E-1', '|||AL|AL')}${oru('E-2', '|||AL|AL')}BTS|2\r`;
    const r = await intake.handleFrame(Buffer.from(block), meta);
    expect(store.messages.map((m) => m.message.controlId)).toEqual(['E-1', 'E-2']);
    // No MLLP framing byte may appear inside the block's content.
    const inner = r.reply!.subarray(1, r.reply!.length - 2);
    expect([...inner].filter((b) => b === 0x0b || b === 0x1c)).toEqual([]);
    const frames = framesOf(r.reply);
    expect(frames).toHaveLength(1);
    const reply = frames[0] ?? [];
    expect(reply[0]?.[0]).toBe('BHS');
    expect(reply.at(-1)?.[0]).toBe('BTS');
    const msas = reply.filter((s) => s[0] === 'MSA').map((s) => `${s[1]}:${s[2]}`);
    expect(msas).toEqual(['CA:E-1', 'AA:E-1', 'CA:E-2', 'AA:E-2']);
    expect(reply.at(-1)).toEqual(['BTS', String(reply.filter((s) => s[0] === 'MSH').length)]);
  });

  it('a batch with one bad member: that member gets AR with an ERR and its own MSA-2, the others AA', async () => {
    const { store, intake } = setup();
    const bad = 'MSH|^~\\&|LIS|LAB|GW|LAB|20240301||ORU^R01|X-2|P|2.5\rOBR|1|ACC||GLU\rpid|oops\r';
    const r = await intake.handleFrame(Buffer.from(`BHS|^~\\&|LIS|LAB|GW|LAB|2024||||B-MIX\r${oru('X-1')}${bad}${oru('X-3')}BTS|3\r`), meta);
    const reply = framesOf(r.reply)[0] ?? [];
    expect(reply.filter((s) => s[0] === 'MSA').map((s) => [s[1], s[2]])).toEqual([
      ['AA', 'X-1'],
      ['AR', 'X-2'],
      ['AA', 'X-3'],
    ]);
    const err = reply.find((s) => s[0] === 'ERR');
    expect(err?.[3]).toMatch(/^100\^/);
    expect(reply.find((s) => s[0] === 'BHS')?.[11]).toBe('B-MIX'); // BHS-12 = the received BHS-11
    expect(reply.filter((s) => s[0] === 'MSH').map((s) => s[9]).every((id, i, all) => id && all.indexOf(id) === i)).toBe(true);
    expect(store.messages.map((m) => m.message.status)).toEqual(['accepted', 'rejected', 'accepted']);
  });

  it('an empty batch (BHS, BTS-1 = 0: "zero or more messages", HL7 v2.5 §2.10.3) is acknowledged, not rejected AR', async () => {
    const { store, intake } = setup();
    const r = await intake.handleFrame(Buffer.from('BHS|^~\\&|LIS|LAB|GW|LAB|20240301||||B-EMPTY\rBTS|0\r'), meta);
    expect(r.results.map((x) => x.outcome)).not.toContain('rejected');
    expect(store.messages.map((m) => m.message.status)).not.toContain('rejected');
    const reply = framesOf(r.reply)[0] ?? [];
    expect(reply.filter((s) => s[0] === 'MSA').map((s) => s[1])).not.toContain('AR');
    expect(reply.map((s) => s[0])).toEqual(['BHS', 'BTS']);
    expect(reply.at(-1)).toEqual(['BTS', '0']);
  });

  it('a whitespace-only line after the last segment is a blank line (skipped like leading ones), not a segment that gets the message rejected AR', async () => {
    const { store, intake } = setup();
    const r = await intake.handleFrame(Buffer.from(`${oru('WS-1')} \r`), meta);
    expect(field(framesOf(r.reply)[0], 'MSA', 1)).toBe('AA');
    expect(store.messages[0]?.events.map((e) => e.type)).toEqual(['result.validated']);
  });

  it('MSH-12 2.3 … 2.8: MSA-2 echoes MSH-10 and MSH-9 has the form of the version', async () => {
    const { intake } = setup();
    const expected: Record<string, string> = { '2.3': 'ACK^O01', '2.3.1': 'ACK^O01^ACK', '2.4': 'ACK^O01^ACK', '2.5.1': 'ACK^O01^ACK', '2.6': 'ACK^O01^ACK', '2.7.1': 'ACK^O01^ACK', '2.8': 'ACK^O01^ACK' };
    for (const [v, type] of Object.entries(expected)) {
      const r = await intake.handleFrame(Buffer.from(`MSH|^~\\&|LIS|LAB|GW|LAB|20240301||ORM^O01|V-${v}|P|${v}\rORC|NW|A-${v}\rOBR|1|A-${v}||GLU\r`), meta);
      const ack = framesOf(r.reply)[0];
      expect([field(ack, 'MSH', 9), field(ack, 'MSH', 12), field(ack, 'MSA', 1), field(ack, 'MSA', 2)]).toEqual([type, v, 'AA', `V-${v}`]);
    }
  });
});
