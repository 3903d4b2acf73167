import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerHostQuery } from '../../gateway/src/astm/host-query.ts';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import { fieldText, parseAstmMessage } from '../../gateway/src/astm/records.ts';
import type { HostQuery } from '../../gateway/src/astm/types.ts';
import type { DraftEvent, OrderCreatedData } from '../../gateway/src/events/types.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import type { Profile } from '../../gateway/src/profiles/types.ts';
import { astmCtx, astmMsg, withConsumption } from '../fixtures/astm/consumption.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { corpusMessages } from '../fixtures/astm/corpus.ts';

/**
 * Audit of ASTM message -> canonical events through a firmware profile, and of the host query
 * answer. Result-version, rerun and consumption cases use small inline messages; the range query
 * is the LIS2-A2 Fig. 5 example read from the shared corpus. `storedAfter` mimics the store, which
 * skips an event whose idempotency key it already holds.
 */
const ctx = astmCtx;
const msg = astmMsg;
const of = <T extends DraftEvent['type']>(events: DraftEvent[], type: T) => events.filter((e): e is Extract<DraftEvent, { type: T }> => e.type === type);

/** Idempotency keys the store would keep after committing these messages in turn (it skips known keys). */
function storedAfter(...batches: DraftEvent[][]): DraftEvent[] {
  const seen = new Set<string>();
  const out: DraftEvent[] = [];
  for (const batch of batches) {
    for (const e of batch) {
      if (seen.has(e.idempotencyKey)) continue;
      seen.add(e.idempotencyKey);
      out.push(e);
    }
  }
  return out;
}


const used = (events: DraftEvent[]) =>
  of(events, 'consumable.used')
    .map((e) => `${e.data.productCode}:${e.data.testCode ?? 'run'}`)
    .sort();

describe('result versions: preliminary, correction, final', () => {
  it('a correction (R.9 = C) of a result with the same completion time is a new fact: its own key, no second consumption', () => {
    const profile = withConsumption();
    const head = ['P|1', 'O|1|S-100||^^^GLU|R'];
    const original = normalizeAstmMessage(msg('H|\\^&|M1', ...head, 'R|1|^^^GLU|5.0|mmol/L||||F||op||20260114090000', 'L|1|N'), ctx(profile));
    const corrected = normalizeAstmMessage(msg('H|\\^&|M2', ...head, 'R|1|^^^GLU|7.9|mmol/L||||C||op||20260114090000', 'L|1|N'), ctx(profile, '2026-01-14T12:30:00.000Z'));
    const kept = storedAfter(original.events, corrected.events);
    // The corrected value must reach Odoo; the store would skip it under the original's key.
    expect(of(kept, 'test.completed').map((e) => `${e.data.value}:${e.data.resultStatus}`)).toEqual(['5.0:F', '7.9:C']);
    // One measurement: one reagent draw.
    expect(used(kept)).toEqual(['DEAD:run', 'GLU-R1:GLU']);
  });

  it('a preliminary result (R.9 = P) then the final one with the same completion time: the final reaches the store, reagent counted once', () => {
    const profile = withConsumption();
    const head = ['P|1', 'O|1|S-101||^^^GLU|R'];
    const prelim = normalizeAstmMessage(msg('H|\\^&|M1', ...head, 'R|1|^^^GLU|5.0|mmol/L||||P||op||20260114090000', 'L|1|N'), ctx(profile));
    const final = normalizeAstmMessage(msg('H|\\^&|M2', ...head, 'R|1|^^^GLU|5.1|mmol/L||||F||op||20260114090000', 'L|1|N'), ctx(profile));
    const kept = storedAfter(prelim.events, final.events);
    expect(of(kept, 'test.completed').map((e) => `${e.data.value}:${e.data.resultStatus}`)).toEqual(['5.0:P', '5.1:F']);
    expect(used(kept)).toEqual(['DEAD:run', 'GLU-R1:GLU']);
  });
});

describe('reagent consumption exactly once per run', () => {
  it('a second message about the same run that lists a later test first does not count the earlier test again', () => {
    const profile = withConsumption();
    // CREA finished first and was sent alone; then GLU finished and the analyzer sent the
    // specimen's results in channel order, CREA again with R.9 = R (previously transmitted).
    const first = normalizeAstmMessage(msg('H|\\^&|M1', 'P|1', 'O|1|S-200||^^^GLU\\^^^CREA|R', 'R|1|^^^CREA|80|umol/L||||F||op|20260114085000|20260114090000', 'L|1|N'), ctx(profile));
    const second = normalizeAstmMessage(
      msg('H|\\^&|M2', 'P|1', 'O|1|S-200||^^^GLU\\^^^CREA|R', 'R|1|^^^GLU|5.0|mmol/L||||F||op|20260114090500|20260114091500', 'R|2|^^^CREA|80|umol/L||||R||op|20260114085000|20260114090000', 'L|1|N'),
      ctx(profile),
    );
    const kept = storedAfter(first.events, second.events);
    expect(of(kept, 'test.completed').map((e) => e.data.testCode)).toEqual(['CREA', 'GLU']);
    expect(used(kept)).toEqual(['CREA-R1:CREA', 'DEAD:run', 'GLU-R1:GLU']);
  });

  it('the same test measured twice in one order (automatic rerun at another time) draws reagent twice', () => {
    const profile = loadProfile('roche-cobas-e411');
    // cobas: TSH at dilution 1, then rerun at dilution 10 (8/10/not) twenty minutes later.
    const r = normalizeAstmMessage(
      msg('H|\\^&|||cobas-e411^1|||||host|RSUPL^REAL|P|1', 'P|1', 'O|1|S-300|1^0^1^^S1^SC|^^^8^1|R||20260114100000||||N', 'R|1|^^^8/1/not|>100|uIU/ml||||F||op||20260114101800', 'R|2|^^^8/10/not|142.5|uIU/ml||||F||op||20260114103800', 'L|1|N'),
      ctx(profile),
    );
    const results = of(r.events, 'test.completed');
    expect(results.map((e) => e.data.value)).toEqual(['>100', '142.5']);
    expect(new Set(results.map((e) => e.idempotencyKey)).size).toBe(2);
    const tsh = of(r.events, 'consumable.used').filter((e) => e.data.productCode === 'ROC-ELECSYS-TSH');
    expect(tsh).toHaveLength(2);
    expect(new Set(tsh.map((e) => e.idempotencyKey)).size).toBe(2);
  });

  it('a rerun reported without result time (key falls back on O.7, the order time) is not taken for the first run', () => {
    const profile = withConsumption();
    const order = 'O|1|S-400||^^^GLU|R|20260114080000';
    const first = normalizeAstmMessage(msg('H|\\^&|M1', 'P|1', order, 'R|1|^^^GLU|5.0|mmol/L||||F', 'L|1|N'), ctx(profile));
    const rerun = normalizeAstmMessage(msg('H|\\^&|M2', 'P|1', order, 'R|1|^^^GLU|9.4|mmol/L||H||F', 'L|1|N'), ctx(profile, '2026-01-14T13:00:00.000Z'));
    const kept = storedAfter(first.events, rerun.events);
    expect(of(kept, 'test.completed').map((e) => e.data.value)).toEqual(['5.0', '9.4']);
    expect(used(kept)).toEqual(['DEAD:run', 'DEAD:run', 'GLU-R1:GLU', 'GLU-R1:GLU']);
  });
});

describe('message structure (kept: passing, promises no other test pins)', () => {
  it('several O records for several specimens, one of them QC: each result keyed and correlated to its own specimen, only patients billable, consumption per run', () => {
    const profile = withConsumption();
    const r = normalizeAstmMessage(
      msg(
        'H|\\^&|M9',
        'P|1',
        'O|1|S-501||^^^GLU|R',
        'R|1|^^^GLU|5.0|mmol/L||||F||op|20260114090000|20260114090100',
        'P|2',
        'O|1|S-502||^^^GLU|R',
        'R|1|^^^GLU|5.0|mmol/L||||F||op|20260114090000|20260114090100',
        'P|3',
        'O|1|QC-LOT7||^^^GLU|R||||||Q',
        'R|1|^^^GLU|5.0|mmol/L||||F||op|20260114090000|20260114090100',
        'L|1|N',
      ),
      ctx(profile),
    );
    const results = of(r.events, 'test.completed');
    expect(results.map((e) => [e.correlationId, e.data.accession ?? null, e.data.runType, e.partitionKey])).toEqual([
      ['S-501', 'S-501', 'patient', 'order:S-501'],
      ['S-502', 'S-502', 'patient', 'order:S-502'],
      ['QC-LOT7', null, 'qc', 'specimen:QC-LOT7'],
    ]);
    // Same test, same value, same time on three specimens: three facts, three keys, nothing skipped.
    expect(new Set(r.events.map((e) => e.idempotencyKey)).size).toBe(r.events.length);
    expect(of(r.events, 'specimen.received').map((e) => e.correlationId)).toEqual(['S-501', 'S-502']);
    expect(of(r.events, 'consumable.used').map((e) => `${e.data.specimenId}:${e.data.productCode}:${e.data.runType}`)).toEqual([
      'S-501:GLU-R1:patient',
      'S-501:DEAD:patient',
      'S-502:GLU-R1:patient',
      'S-502:DEAD:patient',
      'QC-LOT7:GLU-R1:qc',
      'QC-LOT7:DEAD:qc',
    ]);
  });

  it('custom delimiters |@^\\ with \\F\\ \\S\\ \\R\\ \\E\\ escapes; C and M records between results detach nothing', () => {
    const r = normalizeAstmMessage(
      msg(
        'H|@^\\|URM-1||Analyzer^1|||||LIS||P|1394-97|20260114090200',
        'P|1',
        'O|1|S\\F\\7^rack 2||^^^GLU@^^^CREA|R',
        'C|1|I|order note\\S\\sample lipemic|G',
        'R|1|^^^GLU|<\\E\\2.0^L|mmol\\R\\L||||F||op||20260114090000',
        'C|1|I|below range\\F\\diluted|I',
        'M|1|CURVE|0.1@0.2@0.3',
        'R|2|^^^CREA|80|umol/L||||F||op||20260114090000',
        'L|1|N',
      ),
      ctx(loadProfile('generic-astm')),
    );
    expect(r.reject).toBeUndefined();
    expect(of(r.events, 'test.completed').map((e) => [e.data.specimenId, e.data.testCode, e.data.value, e.data.units])).toEqual([
      ['S|7', 'GLU', '<\\2.0^L', 'mmol@L'],
      ['S|7', 'CREA', '80', 'umol/L'],
    ]);
  });
});

describe('host query answer', () => {
  let dir: string;
  let store: EventStore;

  function orderCreated(data: OrderCreatedData): DraftEvent {
    return {
      type: 'order.created',
      occurredAt: '2026-01-14T07:00:00.000Z',
      receivedAt: '2026-01-14T07:00:00.000Z',
      idempotencyKey: `hl7|lis|LIS^LAB|MSG-${data.accession}|1|order.created`,
      correlationId: data.accession,
      partitionKey: `order:${data.accession}`,
      source: { kind: 'hl7', endpoint: 'lis', controlId: `MSG-${data.accession}` },
      data,
    };
  }

  async function fromLis(data: OrderCreatedData, searchTerms: string[]): Promise<void> {
    const controlId = `MSG-${data.accession}`;
    await store.commit(
      { kind: 'hl7', endpoint: 'lis', receivedAt: '2026-01-14T07:00:00.000Z', controlId, sender: 'LIS^LAB', messageType: 'ORM^O01', encoding: 'utf8', raw: Buffer.from(`MSH|^~\\&|LIS|LAB|||||ORM^O01|${controlId}|P|2.5`), status: 'accepted', dedupKey: `lis|LIS^LAB|${controlId}`, searchTerms },
      [orderCreated(data)],
    );
  }

  /** Commit an analyzer message the way the ASTM endpoint does (raw text, the normalizer's search terms and events). */
  async function fromAnalyzer(text: string, profile: Profile, receivedAt: string): Promise<HostQuery | undefined> {
    const r = normalizeAstmMessage(text, { analyzerId: 'an-q', endpoint: 'an-q', profile, receivedAt });
    expect(r.reject).toBeUndefined();
    await store.commit({ kind: 'astm', endpoint: 'an-q', receivedAt, encoding: 'latin1', raw: Buffer.from(text, 'latin1'), status: 'accepted', dedupKey: `astm|an-q|${text}`, searchTerms: r.searchTerms, messageType: r.messageType }, r.events);
    return r.hostQuery;
  }

  const specimensOf = (records: string[]) => {
    const m = parseAstmMessage(records.join('\r'));
    return m.patients.flatMap((p) => p.orders.map((o) => fieldText(o.record, 3, m.delimiters)));
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'astm-events-audit-'));
    store = await EventStore.open({ dataDir: dir });
  });

  afterAll(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('LIS2-A2 Fig. 5 range query ^032989325 … ^032989327 is answered for every specimen of the range, as in Fig. 6', async () => {
    const profile = loadProfile('generic-astm');
    await fromLis({ accession: '032989325', orderingClientRef: 'C-1', tests: [{ code: 'BUN' }, { code: 'ISE' }] }, ['032989325']);
    await fromLis({ accession: '032989326', orderingClientRef: 'C-1', priority: 'S', tests: [{ code: 'LIVER' }, { code: 'GLU' }] }, ['032989326']);
    await fromLis({ accession: '032989327', orderingClientRef: 'C-1', tests: [{ code: 'CHEM12' }] }, ['032989327']);
    const [fig5] = corpusMessages('clsi-lis2a2_fig5_standard-example.astm');
    const q = normalizeAstmMessage(fig5!, ctx(profile)).hostQuery!;
    const answer = await answerHostQuery(q, store, profile);
    expect(specimensOf(answer)).toEqual(['032989325', '032989326', '032989327']);
  });

  it('a tube barcode queried many times still finds its LIS order (the order message is older than the analyzer traffic naming the barcode)', async () => {
    const profile = loadProfile('roche-cobas-e411');
    // The LIS labels the tube BC-88 for accession ACC-88 (found through the message index).
    await fromLis({ accession: 'ACC-88', orderingClientRef: 'C-2', specimenId: 'BC-88', tests: [{ code: 'TSH' }] }, ['ACC-88', 'BC-88']);
    // A busy rack: the e411 asks for BC-88, cancels after 15 s and asks again (each a stored message).
    let last: HostQuery | undefined;
    for (let i = 0; i < 30; i++) {
      const at = `2026011408${String(i).padStart(2, '0')}00`;
      const seq = String(10 + i);
      last = await fromAnalyzer(`H|\\^&|||cobas-e411^1|||||host|TSREQ^REAL|P|1||||${at}\rQ|1|^^BC-88^${seq}^0^5^^S1^SC||ALL||||||||O\rL|1|N`, profile, '2026-01-14T08:00:00.000Z');
      await fromAnalyzer(`H|\\^&|||cobas-e411^1|||||host|TSREQ^REAL|P|1||||${at}\rQ|1|^^BC-88^${seq}^0^5^^S1^SC||ALL||||||||A\rL|1|N`, profile, '2026-01-14T08:00:15.000Z');
    }
    const answer = await answerHostQuery(last!, store, profile);
    const m = parseAstmMessage(answer.join('\r'));
    const o = m.patients[0]!.orders[0]!.record;
    expect(fieldText(o, 3, m.delimiters)).toBe('BC-88');
    expect(fieldText(o, 5, m.delimiters)).toBe('^^^8');
    expect(fieldText(o, 26, m.delimiters)).toBe('O');
  });
});
