import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { parseMessage } from '../../gateway/src/hl7/message.ts';
import { readMsh } from '../../gateway/src/hl7/msh.ts';
import type { Hl7NormalizeContext } from '../../gateway/src/hl7/normalizer.ts';
import { createAnalyzerHl7Normalizer, normalizeAnalyzerHl7 } from '../../gateway/src/profiles/hl7-analyzer-normalize.ts';
import { rowIndexKeyOf } from '../../gateway/src/profiles/consumption-keys.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import { fixturesDir, repoRoot } from '../fixtures/astm/corpus.ts';

/** Mindray analyzers speak HL7: their transcripts and the vendor-manual corpus samples. */
const hl7Corpus = path.resolve(repoRoot, '../shared/corpus/hl7');
const ctxFor = (name: string, receivedAt = '2026-01-14T12:00:00.000Z') => ({ analyzerId: `an-${name}`, endpoint: `ep-${name}`, profile: loadProfile(name), receivedAt });

function unwrap(text: string): string {
  return text.replace(/^\x0b/, '').replace(/\x1c\r?$/, '');
}

function byType(events: DraftEvent[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of events) out[e.type] = (out[e.type] ?? 0) + 1;
  return out;
}

for (const profileName of ['mindray-bs-series', 'mindray-bc-5380']) {
  describe(`${profileName} transcripts`, () => {
    const dir = path.join(fixturesDir, profileName);
    const files = readdirSync(dir).filter((f) => f.endsWith('.hl7'));
    it('has a patient and a QC transcript', () => {
      expect(files).toEqual(expect.arrayContaining(['patient-result.hl7', 'qc-result.hl7']));
    });
    for (const file of files) {
      it(`${file} normalizes as its .expect.json says`, () => {
        const text = readFileSync(path.join(dir, file), 'utf8');
        const expected = JSON.parse(readFileSync(path.join(dir, file.replace(/\.hl7$/, '.expect.json')), 'utf8')) as {
          events: Record<string, number>;
          testCodes: string[];
          runTypes: string[];
          consumption: string[];
          specimenIds: string[];
          values?: Record<string, string>;
          loinc?: Record<string, string>;
          units?: Record<string, string>;
        };
        const ctx = ctxFor(profileName);
        const events = normalizeAnalyzerHl7(text, ctx);
        expect(byType(events)).toEqual(expected.events);
        const results = events.flatMap((e) => (e.type === 'test.completed' ? [e] : []));
        expect(results.map((e) => e.data.testCode)).toEqual(expected.testCodes);
        expect([...new Set(results.map((e) => e.data.runType))]).toEqual(expected.runTypes);
        expect([...new Set(results.map((e) => e.data.specimenId))]).toEqual(expected.specimenIds);
        expect([...new Set(events.flatMap((e) => (e.type === 'consumable.used' ? [e.data.productCode] : [])))].sort()).toEqual([...expected.consumption].sort());
        for (const [code, v] of Object.entries(expected.values ?? {})) expect(results.find((e) => e.data.testCode === code)?.data.value).toBe(v);
        for (const [code, v] of Object.entries(expected.loinc ?? {})) expect(results.find((e) => e.data.testCode === code)?.data.loinc).toBe(v);
        for (const [code, v] of Object.entries(expected.units ?? {})) expect(results.find((e) => e.data.testCode === code)?.data.units).toBe(v);
        for (const e of events) {
          expect(e.source).toMatchObject({ kind: 'hl7', analyzer: ctx.analyzerId });
          if (e.type === 'consumable.used') expect(e.partitionKey).toBe(`reagent:${ctx.analyzerId}:${e.data.productCode}`);
          if (e.type === 'test.completed' && e.data.runType !== 'patient') expect(e.data.accession).toBeUndefined();
        }
        // Resent later (the BC-5380 resends after a missed ACK): same keys.
        expect(normalizeAnalyzerHl7(text.replace(/\r/g, '\n'), ctxFor(profileName, '2026-01-15T00:00:00.000Z')).map((e) => e.idempotencyKey)).toEqual(events.map((e) => e.idempotencyKey));
      });
    }
  });
}

describe('Mindray vendor-manual samples (corpus/hl7)', () => {
  it('BS-200 patient ORU: test number 2 → TP, sample barcode from OBR-2', () => {
    const text = unwrap(readFileSync(path.join(hl7Corpus, 'oru_r01_mindray-bs200_patient-result_vendor-manual.mllp'), 'latin1'));
    const events = normalizeAnalyzerHl7(text, ctxFor('mindray-bs-series'));
    const result = events.find((e) => e.type === 'test.completed');
    expect(result?.data).toMatchObject({ specimenId: '0000000002', testCode: 'TP', analyzerTestCode: '2', value: '5.000000', units: 'g/ml', runType: 'patient' });
  });

  it('BS-200 QC ORU (MSH-16 = 2, data in OBR): runType qc, placeholder test name reported unmapped', () => {
    const text = unwrap(readFileSync(path.join(hl7Corpus, 'oru_r01_mindray-bs200_qc-result_vendor-manual.mllp'), 'latin1'));
    const segments = text.split(/\r\n|\r|\n/).filter(Boolean);
    const message = parseMessage(readMsh(segments[0]!).header, segments);
    const notes: string[] = [];
    const normalize = createAnalyzerHl7Normalizer({ analyzerId: 'bs-1', profile: loadProfile('mindray-bs-series') });
    const ctx: Hl7NormalizeContext = { message, endpoint: 'bs-1', analyzer: 'bs-1', receivedAt: '2026-01-14T12:00:00.000Z', notes };
    const events = normalize(ctx);
    const result = events.find((e) => e.type === 'test.completed');
    expect(result?.data).toMatchObject({ specimenId: 'QUAL1/1111', testCode: 'test1', value: '0.11029', units: 'g/ml', runType: 'qc' });
    expect(events.some((e) => e.type === 'specimen.received')).toBe(false);
    expect(notes.join(' ')).toMatch(/"test1" has no mapping/);
  });

  it('host queries and worklist inquiries yield no events', () => {
    for (const [file, profile] of [
      ['qry_q02_mindray-bs200_host-query_vendor-manual.mllp', 'mindray-bs-series'],
      ['orm_o01_mindray-bc5380_worklist-query_vendor-manual.hl7', 'mindray-bc-5380'],
    ] as const) {
      const text = unwrap(readFileSync(path.join(hl7Corpus, file), 'latin1'));
      expect(normalizeAnalyzerHl7(text, ctxFor(profile))).toEqual([]);
    }
  });

  it('text that is not HL7 is refused with GW_HL7_PARSE', () => {
    expect(() => normalizeAnalyzerHl7('H|\\^&|||x\rL|1|N', ctxFor('mindray-bs-series'))).toThrow(/MSH/);
  });
});

describe('Mindray BS keys: result time, per-run rows, sample without barcode', () => {
  const bs = (o: { controlId: string; msh7: string; barcode: string; sampleNo: string; testNo: string; value: string; obr7?: string; obx14?: string; status?: string }): string =>
    [
      `MSH|^~\\&|Mindray|BS-200|||${o.msh7}||ORU^R01|${o.controlId}|P|2.3.1||||0||ASCII|||`,
      `PID|1|854||${o.sampleNo}|Anon||19830719000000|F`,
      `OBR|1|${o.barcode}|${o.sampleNo}|Mindray^BS-200|N||${o.obr7 ?? ''}||||||||serum`,
      `OBX|1|NM|${o.testNo}|t|${o.value}|U/L|-||||${o.status ?? 'F'}|||${o.obx14 ?? ''}||`,
    ].join('\r');
  const keysOf = (events: DraftEvent[], type: DraftEvent['type']) => events.filter((e) => e.type === type).map((e) => e.idempotencyKey);

  it('without OBX-14 and OBR-7 a result is keyed on a hash of OBX-3/5/6/8, not MSH-7: a resend in a new message has the same keys', () => {
    const first = normalizeAnalyzerHl7(bs({ controlId: '41', msh7: '20260114110000', barcode: 'B-1', sampleNo: '31', testNo: '1', value: '35.000000' }), ctxFor('mindray-bs-series'));
    const again = normalizeAnalyzerHl7(bs({ controlId: '57', msh7: '20260114113000', barcode: 'B-1', sampleNo: '31', testNo: '1', value: '35.000000' }), ctxFor('mindray-bs-series'));
    expect(keysOf(first, 'test.completed')).toEqual([expect.stringMatching(/^hl7-analyzer\|an-mindray-bs-series\|result\|B-1\|1\|rec:[0-9a-f]{16}$/)]);
    expect(again.map((e) => e.idempotencyKey)).toEqual(first.map((e) => e.idempotencyKey));
    expect(keysOf(first, 'consumable.used')).toContain('hl7-analyzer|an-mindray-bs-series|consumption|B-1|day:20260114|run|run|MR-BS-PROBE-WASH');
  });

  // A preliminary result (OBX-11 = P) and its final (F) shared one key: the final was skipped as a
  // resend, and Odoo kept the preliminary value. Each is now a fact of its own, as for ASTM
  // analyzers (R.9); a correction (C) is keyed by its content. The final's key is unchanged, and the
  // run draws its reagents once whatever reports it (consumption keys have no version part).
  it('a preliminary, its final and a correction get keys of their own; the final keeps its key and the run draws once', () => {
    const base = { msh7: '20260114103000', barcode: 'B-3', sampleNo: '33', testNo: '1', obr7: '20260114102500', obx14: '20260114102930' };
    const prelim = normalizeAnalyzerHl7(bs({ ...base, controlId: '71', value: '34.000000', status: 'P' }), ctxFor('mindray-bs-series'));
    const final = normalizeAnalyzerHl7(bs({ ...base, controlId: '72', value: '35.000000', status: 'F' }), ctxFor('mindray-bs-series'));
    const corrected = normalizeAnalyzerHl7(bs({ ...base, controlId: '73', value: '36.000000', status: 'C' }), ctxFor('mindray-bs-series'));
    const correctedAgain = normalizeAnalyzerHl7(bs({ ...base, controlId: '74', value: '36.000000', status: 'C' }), ctxFor('mindray-bs-series'));
    const keys = [prelim, final, corrected, correctedAgain].map((events) => keysOf(events, 'test.completed')[0]);
    expect(keys[1]).toBe('hl7-analyzer|an-mindray-bs-series|result|B-3|1|20260114102930');
    expect(keys[0]).toBe('hl7-analyzer|an-mindray-bs-series|result|B-3|1|20260114102930|P');
    expect(keys[2]).toMatch(/^hl7-analyzer\|an-mindray-bs-series\|result\|B-3\|1\|20260114102930\|C:[0-9a-f]{16}$/);
    expect(keys[3]).toBe(keys[2]);
    expect(new Set(keys.slice(0, 3)).size).toBe(3);
    expect(keysOf(prelim, 'consumable.used')).toEqual(keysOf(final, 'consumable.used'));
    expect(keysOf(corrected, 'consumable.used')).toEqual(keysOf(final, 'consumable.used'));
  });

  it('per-test rows keyed on the result time (OBX-14), per-run rows on the sample time (OBR-7)', () => {
    const events = normalizeAnalyzerHl7(bs({ controlId: '61', msh7: '20260114103000', barcode: 'B-2', sampleNo: '32', testNo: '1', value: '35.000000', obr7: '20260114102500', obx14: '20260114102930' }), ctxFor('mindray-bs-series'));
    expect(keysOf(events, 'test.completed')).toEqual(['hl7-analyzer|an-mindray-bs-series|result|B-2|1|20260114102930']);
    expect(keysOf(events, 'consumable.used')).toEqual([
      'hl7-analyzer|an-mindray-bs-series|consumption|B-2|20260114102930|test|ALT|MR-BS-ALT',
      'hl7-analyzer|an-mindray-bs-series|consumption|B-2|20260114102930|test|ALT|MR-BS-CUVETTE-WASH',
      'hl7-analyzer|an-mindray-bs-series|consumption|B-2|20260114102500|run|run|MR-BS-PROBE-WASH',
    ]);
    // The keys the releases before stored (the row's index last): looked up in the upgrade window.
    expect(events.filter((e) => e.type === 'consumable.used').map((e) => rowIndexKeyOf(e))).toEqual([
      'hl7-analyzer|an-mindray-bs-series|consumption|B-2|20260114102930|test|ALT|MR-BS-ALT|0',
      'hl7-analyzer|an-mindray-bs-series|consumption|B-2|20260114102930|test|ALT|MR-BS-CUVETTE-WASH|5',
      'hl7-analyzer|an-mindray-bs-series|consumption|B-2|20260114102500|run|run|MR-BS-PROBE-WASH|6',
    ]);
  });

  it('without a barcode (OBR-2 empty) the sample number is no accession: specimen <analyzer>:<sample no>, no order partition, no specimen.received', () => {
    const events = normalizeAnalyzerHl7(bs({ controlId: '71', msh7: '20260114120000', barcode: '', sampleNo: '33', testNo: '1', value: '88.000000', obx14: '20260114115900' }), ctxFor('mindray-bs-series'));
    const result = events.find((e) => e.type === 'test.completed');
    expect(result?.type === 'test.completed' && result.data.accession).toBe(undefined);
    expect([result?.correlationId, result?.partitionKey]).toEqual(['an-mindray-bs-series:33', 'specimen:an-mindray-bs-series:33']);
    expect(events.some((e) => e.type === 'specimen.received')).toBe(false);
    expect(events.filter((e) => e.type === 'consumable.used').length).toBeGreaterThan(0);
  });
});

describe('Mindray BS: a test number the profile does not map, a result that cannot be obtained', () => {
  const oru = (testNo: string, status = 'F'): Hl7NormalizeContext['message'] => {
    const segments = [
      'MSH|^~\\&|Mindray|BS-200|||20260302103000||ORU^R01|71|P|2.3.1||||0||ASCII|||',
      'PID|1|MRN-8841||12|||19830719000000|F',
      'OBR|1|260302-61|12|Mindray^BS-200|N||20260302102500||||||||serum',
      `OBX|1|NM|${testNo}|t|182.000000|U/L|-||||${status}|||20260302102930||`,
    ];
    return parseMessage(readMsh(segments[0]!).header, segments);
  };
  const normalize = createAnalyzerHl7Normalizer({ analyzerId: 'bs-1', profile: loadProfile('mindray-bs-series') });
  const ctxOf = (message: Hl7NormalizeContext['message']): Required<Pick<Hl7NormalizeContext, 'notes' | 'warnings' | 'searchTerms'>> & Hl7NormalizeContext => ({
    message,
    endpoint: 'bs-1',
    analyzer: 'bs-1',
    receivedAt: '2026-03-02T10:30:05.000Z',
    notes: [],
    warnings: [],
    searchTerms: [],
  });

  // Regression: the unmapped code was only a debug note; the message browser did not find it as
  // `unmapped:<code>` as `unmappedTests: report` promises (ASTM analyzers' messages had the term).
  it('an unmapped test number is reported as a warning and the search term unmapped:<code>; the result still goes on', () => {
    const ctx = ctxOf(oru('7'));
    const events = normalize(ctx);
    expect(events.filter((e) => e.type === 'test.completed').map((e) => (e.data as { testCode: string }).testCode)).toEqual(['7']);
    expect(ctx.searchTerms).toEqual(['unmapped:7']);
    expect(ctx.warnings.join(' ')).toMatch(/"7" has no mapping/);
    expect(ctx.notes).toEqual([]);
  });

  it('a mapped test number adds no search term and no warning', () => {
    const ctx = ctxOf(oru('1'));
    normalize(ctx);
    expect([ctx.searchTerms, ctx.warnings]).toEqual([[], []]);
  });

  // Regression: OBX-11 = X (results cannot be obtained) produced test.completed with no result,
  // while an ASTM R.9 = X does not. The run still used reagent: its consumption is drawn.
  it('OBX-11 X: no test.completed, a note, and the run still draws its reagents', () => {
    const ctx = ctxOf(oru('1', 'X'));
    const events = normalize(ctx);
    expect(events.some((e) => e.type === 'test.completed')).toBe(false);
    expect(ctx.notes.join(' ')).toMatch(/"1".*status X/);
    const final = normalize(ctxOf(oru('1')));
    const consumption = (list: DraftEvent[]) => list.filter((e) => e.type === 'consumable.used').map((e) => e.idempotencyKey);
    expect(consumption(events)).toEqual(consumption(final));
    expect(consumption(events).length).toBeGreaterThan(0);
  });
});
