import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerHostQuery, buildWorklist } from '../../gateway/src/astm/host-query.ts';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import { component, fieldRepeats, fieldText, parseAstmMessage } from '../../gateway/src/astm/records.ts';
import type { HostQuery } from '../../gateway/src/astm/types.ts';
import type { DraftEvent, OrderCreatedData } from '../../gateway/src/events/types.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import type { Profile } from '../../gateway/src/profiles/types.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';

/**
 * Host query against a real LevelDB store: order.created events committed as the LIS intake
 * would, then the analyzer's Q record answered and the answer parsed back with our own parser.
 */
let dir: string;
let store: EventStore;

function orderCreated(data: OrderCreatedData, position: number): DraftEvent {
  return {
    type: 'order.created',
    occurredAt: '2026-01-14T07:00:00.000Z',
    receivedAt: '2026-01-14T07:00:00.000Z',
    idempotencyKey: `hl7|lis|LIS^LAB|MSG-${data.accession}|${position}|order.created`,
    correlationId: data.accession,
    partitionKey: `order:${data.accession}`,
    source: { kind: 'hl7', endpoint: 'lis', controlId: `MSG-${data.accession}` },
    data,
  };
}

async function commitFromLis(controlId: string, events: DraftEvent[], searchTerms: string[]): Promise<void> {
  const r = await store.commit(
    { kind: 'hl7', endpoint: 'lis', receivedAt: '2026-01-14T07:00:00.000Z', controlId, sender: 'LIS^LAB', messageType: 'ORM^O01', encoding: 'utf8', raw: Buffer.from(`MSH|^~\\&|LIS|LAB|||||ORM^O01|${controlId}|P|2.5`), status: 'accepted', dedupKey: `lis|LIS^LAB|${controlId}`, searchTerms },
    events,
  );
  expect(r.eventIds).toHaveLength(events.length);
}

function queryOf(text: string, profile: Profile): HostQuery {
  const r = normalizeAstmMessage(text, { analyzerId: 'an1', endpoint: 'an1', profile, receivedAt: '2026-01-14T09:00:00.000Z' });
  expect(r.reject).toBeUndefined();
  expect(r.events).toEqual([]);
  if (!r.hostQuery) throw new Error('no host query');
  return r.hostQuery;
}

/** Parse our own answer back: it must be one valid H … L message. */
function parseAnswer(records: string[]) {
  for (const r of records) expect(r).not.toMatch(/[\r\n]/);
  const m = parseAstmMessage(records.join('\r'));
  expect(m.warnings).toEqual([]);
  expect(m.header.type).toBe('H');
  expect(m.terminator?.type).toBe('L');
  return m;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'host-query-'));
  store = await EventStore.open({ dataDir: dir });
  await commitFromLis('MSG-ACC-1001', [orderCreated({ accession: 'ACC-1001', orderingClientRef: 'CLINIC-7', patientId: 'MRN-1', specimenId: 'ACC-1001', priority: 'S', orderedAt: '2026-01-14T07:00:00.000Z', tests: [{ code: 'TSH' }, { code: 'FT4' }, { code: 'HBA1C' }] }, 1)], ['ACC-1001']);
  // The barcode on the tube differs from the accession: found through the message index.
  await commitFromLis('MSG-ACC-2002', [orderCreated({ accession: 'ACC-2002', orderingClientRef: 'CLINIC-7', specimenId: 'BC-77', tests: [{ code: 'VITD' }] }, 1)], ['ACC-2002', 'BC-77']);
  // Ordered, then one test cancelled by the LIS.
  await commitFromLis('MSG-ACC-3003', [orderCreated({ accession: 'ACC-3003', orderingClientRef: 'CLINIC-9', specimenId: 'ACC-3003', tests: [{ code: 'WBC' }, { code: 'NEUT%' }] }, 1)], ['ACC-3003']);
  await commitFromLis(
    'MSG-ACC-3003-CA',
    [
      {
        type: 'order.cancelled',
        occurredAt: '2026-01-14T07:05:00.000Z',
        receivedAt: '2026-01-14T07:05:00.000Z',
        idempotencyKey: 'hl7|lis|LIS^LAB|MSG-ACC-3003-CA|1|order.cancelled',
        correlationId: 'ACC-3003',
        partitionKey: 'order:ACC-3003',
        source: { kind: 'hl7', endpoint: 'lis' },
        data: { accession: 'ACC-3003', tests: [{ code: 'NEUT%' }] },
      },
    ],
    ['ACC-3003'],
  );
});

afterAll(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('host query answered from orders stored from the LIS', () => {
  it('cobas e411 TSREQ: the order download echoes the sample position and maps tests to channel numbers', async () => {
    const profile = loadProfile('roche-cobas-e411');
    const q = queryOf('H|\\^&|||cobas-e411^1|||||host|TSREQ^REAL|P|1\rQ|1|^^ACC-1001^91^0^3^^S1^SC||ALL||||||||O\rL|1|N\r', profile);
    const records = await answerHostQuery(q, store, profile);
    const m = parseAnswer(records);
    const d = m.delimiters;
    expect(fieldText(m.header, 5, d)).toBe('host');
    expect(fieldText(m.header, 10, d)).toBe('cobas-e411');
    expect(fieldText(m.header, 11, d)).toBe('TSDWN^REPLY');
    expect(records[1]).toBe('P|1||MRN-1');
    const o = m.patients[0]!.orders[0]!.record;
    expect(fieldText(o, 3, d)).toBe('ACC-1001');
    expect(fieldText(o, 4, d)).toBe('91^0^3^^S1^SC');
    // TSH → 8, FT4 → 10; HBA1C is not on this analyzer and is left out.
    expect(fieldRepeats(o, 5, d).map((r) => r[3])).toEqual(['8', '10']);
    expect(fieldText(o, 6, d)).toBe('S');
    expect(fieldText(o, 12, d)).toBe('A');
    expect(fieldText(o, 26, d)).toBe('O');
    expect(records.at(-1)).toBe('L|1|N');
    // The analyzer side of our own answer: an order message, no events.
    const back = normalizeAstmMessage(records.join('\r'), { analyzerId: 'an1', endpoint: 'an1', profile, receivedAt: '2026-01-14T09:00:00.000Z' });
    expect(back.messageType).toBe('ASTM^ORDER');
    expect(back.events).toEqual([]);
  });

  it('cobas e411 unknown sample: an O record without tests and O.26 = Z (Elecsys "no order")', async () => {
    const profile = loadProfile('roche-cobas-e411');
    const q = queryOf('H|\\^&|||cobas-e411^1|||||host|TSREQ^REAL|P|1\rQ|1|^^@192^192^0^5^^S1^SC||ALL||||||||O\rL|1|N', profile);
    const m = parseAnswer(await answerHostQuery(q, store, profile));
    const o = m.patients[0]!.orders[0]!.record;
    expect(fieldText(o, 3, m.delimiters)).toBe('@192');
    expect(fieldText(o, 4, m.delimiters)).toBe('192^0^5^^S1^SC');
    expect(fieldRepeats(o, 5, m.delimiters)).toEqual([]);
    expect(fieldText(o, 26, m.delimiters)).toBe('Z');
  });

  it('a cancel (Q.13 = A, cobas after 15 s) gets no answer', async () => {
    const profile = loadProfile('roche-cobas-e411');
    const q = queryOf('H|\\^&|||cobas-e411^1|||||host|TSREQ^REAL|P|1\rQ|1|^^ACC-1001^91^0^3^^S1^SC||ALL||||||||A\rL|1|N', profile);
    expect(q.cancel).toBe(true);
    expect(await answerHostQuery(q, store, profile)).toEqual([]);
  });

  it('standard LIS2-A2 unknown specimen: H then L|1|I (no information available)', async () => {
    const profile = loadProfile('generic-astm');
    const q = queryOf('H|\\^&|||Analyzer|||||LIS||P|LIS2-A2\rQ|1|^NOPE-1||ALL||||||||O\rL|1|N', profile);
    const records = await answerHostQuery(q, store, profile);
    expect(records).toHaveLength(2);
    const m = parseAnswer(records);
    expect(component(m.terminator!, 3, 1, m.delimiters)).toBe('I');
    expect(fieldText(m.header, 5, m.delimiters)).toBe('LIS');
    expect(fieldText(m.header, 10, m.delimiters)).toBe('Analyzer');
  });

  it('Centaur: a tube barcode found through the message index, answered with O.26 = O\\Q and L|1|F', async () => {
    const profile = loadProfile('siemens-advia-centaur-xp');
    const q = queryOf('H|\\^&|||UIW_LIS|||||LIS_ID||P||20260114082913\rQ|1|^BC-77^0024^A|^BC-77^0024^A|ALL||||||||O\rL|1|N', profile);
    expect(q.specimens.map((s) => s.specimenId)).toEqual(['BC-77']);
    const records = await answerHostQuery(q, store, profile);
    const m = parseAnswer(records);
    const o = m.patients[0]!.orders[0]!.record;
    expect(fieldText(o, 3, m.delimiters)).toBe('BC-77');
    expect(fieldRepeats(o, 5, m.delimiters).map((r) => r[3])).toEqual(['VitD']);
    expect(fieldRepeats(o, 26, m.delimiters).map((r) => r[0])).toEqual(['O', 'Q']);
    expect(records.at(-1)).toBe('L|1|F');
  });

  it('Sysmex XN: tests cancelled by the LIS are left out; codes go in component 5', async () => {
    const profile = loadProfile('sysmex-xn-l');
    const q = queryOf('H|\\^&|||    XN-350^00-24^31204^^^^BD812233||||||||E1394-97\rQ|1|^^          ACC-3003^B||||20260114102000||||||O\rL|1|N', profile);
    const m = parseAnswer(await answerHostQuery(q, store, profile));
    const o = m.patients[0]!.orders[0]!.record;
    expect(fieldRepeats(o, 5, m.delimiters)).toEqual([['', '', '', '', 'WBC']]);
    expect(fieldText(m.header, 10, m.delimiters)).toBe('XN-350');
  });

  it('DxH: the answer uses the analyzer’s own delimiters |\\!~', async () => {
    const profile = loadProfile('beckman-unicel-dxh');
    const q = queryOf('H|\\!~|(0:0-1#2, 571)||DxH|||||LIS||P|LIS2-A|20260114082630\rQ|1|!ACC-9999||ALL||||||||O\rL|1|N', profile);
    const records = await answerHostQuery(q, store, profile);
    expect(records[0]).toMatch(/^H\|\\!~\|/);
    expect(parseAnswer(records).terminator?.raw).toBe('L|1|I');
  });

  it('GeneXpert: unknown specimen answered with O.26 = Y in its |@^\\ delimiters', async () => {
    const profile = loadProfile('cepheid-genexpert');
    const q = queryOf('H|@^\\|URM-1||GeneXpert PC^GeneXpert^6.2|||||LIS||P|1394-97|20260114115515\rQ|1|^TB-404||ALL||||||||O\rL|1|N', profile);
    const m = parseAnswer(await answerHostQuery(q, store, profile));
    expect(m.delimiters).toEqual({ field: '|', repeat: '@', component: '^', escape: '\\' });
    expect(fieldText(m.patients[0]!.orders[0]!.record, 26, m.delimiters)).toBe('Y');
  });
});

describe('worklist push', () => {
  it('buildWorklist renders stored orders as one parseable message', async () => {
    const profile = loadProfile('roche-cobas-e411');
    const orders = (await store.eventsByCorrelation('ACC-1001', ['order.created'])).map((e) => e.event.data as OrderCreatedData);
    const records = buildWorklist(orders, profile, { sender: 'host', receiver: 'cobas-e411', now: new Date(2026, 0, 14, 9, 0, 0) });
    const m = parseAnswer(records);
    expect(fieldText(m.header, 14, m.delimiters)).toBe('20260114090000');
    expect(fieldRepeats(m.patients[0]!.orders[0]!.record, 5, m.delimiters).map((r) => r[3])).toEqual(['8', '10']);
    expect(records.at(-1)).toBe('L|1|N');
  });
});
