import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { listProfiles, loadProfile } from '../../gateway/src/profiles/load.ts';
import type { Profile } from '../../gateway/src/profiles/types.ts';
import { corpusFiles, corpusKind, corpusMessages, fixturesDir, globMatch } from '../fixtures/astm/corpus.ts';

/**
 * Every firmware profile × its transcripts (test/fixtures/astm/<profile>/*.astm with a sidecar
 * .expect.json) and × the corpus captures its corpusPatterns name, through the record parser and
 * the normalizer. The link-layer suite replays the same transcripts over a pty and TCP.
 */
interface Expect {
  profile: string;
  messageType: string;
  controlId?: string;
  events: Record<string, number>;
  testCodes: string[];
  runTypes: string[];
  consumption: string[];
  specimenIds?: string[];
  values?: Record<string, string>;
  units?: Record<string, string>;
  loinc?: Record<string, string>;
  hostQuery?: { specimens: string[]; statusCode: string; cancel: boolean };
  /** Product code → the lot the analyzer reported (null: none). */
  reagentLots?: Record<string, string | null>;
}

const ctx = (profile: Profile, receivedAt = '2026-01-14T12:00:00.000Z') => ({ analyzerId: `an-${profile.name}`, endpoint: `ep-${profile.name}`, profile, receivedAt });
const astmProfiles = listProfiles()
  .filter((p) => p.protocol !== 'hl7-mllp')
  .map((p) => loadProfile(p.name));

function countByType(events: DraftEvent[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of events) out[e.type] = (out[e.type] ?? 0) + 1;
  return out;
}

function completed(events: DraftEvent[]) {
  return events.flatMap((e) => (e.type === 'test.completed' ? [e] : []));
}

/** Invariants every normalization must keep, whatever the profile. */
function checkInvariants(events: DraftEvent[], profile: Profile, analyzerId: string): void {
  // Equal keys only for equal facts (Bio-Rad's variant capture repeats a result verbatim).
  const byKey = new Map<string, DraftEvent>();
  for (const e of events) {
    const seen = byKey.get(e.idempotencyKey);
    if (seen) expect(e.data, `two different facts share key ${e.idempotencyKey}`).toEqual(seen.data);
    byKey.set(e.idempotencyKey, e);
  }
  for (const e of events) {
    expect(['test.completed', 'specimen.received', 'consumable.used']).toContain(e.type);
    expect(e.source).toMatchObject({ kind: 'astm', analyzer: analyzerId });
    expect(e.correlationId).not.toBe('');
    if (e.type === 'consumable.used') {
      expect(e.partitionKey).toBe(`reagent:${analyzerId}:${e.data.productCode}`);
      expect(e.data.quantity).toBeGreaterThan(0);
      expect(profile.consumption.some((row) => row.productCode === e.data.productCode)).toBe(true);
    }
    if (e.type === 'test.completed' && (e.data.runType === 'qc' || e.data.runType === 'calibration')) {
      expect(e.data.accession, 'QC/calibration results carry no accession (never billable)').toBeUndefined();
    }
  }
}

describe('profile transcripts', () => {
  it('every ASTM profile ships a patient and a QC transcript', () => {
    expect(astmProfiles.map((p) => p.name)).toEqual(expect.arrayContaining(['generic-astm', 'sysmex-xn-l', 'roche-cobas-e411', 'horiba-yumizen-h500']));
    for (const p of astmProfiles) {
      const dir = path.join(fixturesDir, p.name);
      expect(existsSync(path.join(dir, 'patient-result.astm')), `${p.name}/patient-result.astm`).toBe(true);
      if (p.name !== 'generic-astm' || existsSync(path.join(dir, 'qc-result.astm'))) {
        expect(existsSync(path.join(dir, 'qc-result.astm')), `${p.name}/qc-result.astm`).toBe(true);
      }
    }
  });

  for (const profile of astmProfiles) {
    const dir = path.join(fixturesDir, profile.name);
    const transcripts = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.astm')) : [];
    describe(profile.name, () => {
      for (const file of transcripts) {
        it(`${file} normalizes as its .expect.json says`, () => {
          const text = readFileSync(path.join(dir, file), 'latin1');
          const expected = JSON.parse(readFileSync(path.join(dir, file.replace(/\.astm$/, '.expect.json')), 'utf8')) as Expect;
          expect(expected.profile).toBe(profile.name);
          const c = ctx(profile);
          const r = normalizeAstmMessage(text, c);
          expect(r.reject).toBeUndefined();
          expect(r.messageType).toBe(expected.messageType);
          if (expected.controlId) expect(r.controlId).toBe(expected.controlId);
          expect(countByType(r.events)).toEqual(expected.events);
          const results = completed(r.events);
          expect(results.map((e) => e.data.testCode)).toEqual(expected.testCodes);
          expect([...new Set(results.map((e) => e.data.runType))]).toEqual(expected.runTypes);
          const products = [...new Set(r.events.flatMap((e) => (e.type === 'consumable.used' ? [e.data.productCode] : [])))].sort();
          expect(products).toEqual([...expected.consumption].sort());
          if (expected.specimenIds) expect([...new Set(results.map((e) => e.data.specimenId))]).toEqual(expected.specimenIds);
          for (const [code, value] of Object.entries(expected.values ?? {})) expect(results.find((e) => e.data.testCode === code)?.data.value).toBe(value);
          for (const [code, units] of Object.entries(expected.units ?? {})) expect(results.find((e) => e.data.testCode === code)?.data.units).toBe(units);
          for (const [code, loinc] of Object.entries(expected.loinc ?? {})) expect(results.find((e) => e.data.testCode === code)?.data.loinc).toBe(loinc);
          for (const [product, lot] of Object.entries(expected.reagentLots ?? {})) {
            const used = r.events.find((e) => e.type === 'consumable.used' && e.data.productCode === product);
            expect(used?.type === 'consumable.used' ? (used.data.reagentLot ?? null) : 'missing', product).toBe(lot);
          }
          if (expected.hostQuery) {
            expect(r.hostQuery?.specimens.map((s) => s.specimenId)).toEqual(expected.hostQuery.specimens);
            expect(r.hostQuery?.statusCode).toBe(expected.hostQuery.statusCode);
            expect(r.hostQuery?.cancel).toBe(expected.hostQuery.cancel);
          } else {
            expect(r.hostQuery).toBeUndefined();
          }
          expect(r.warnings.filter((w) => w.includes('no mapping'))).toEqual([]);
          checkInvariants(r.events, profile, c.analyzerId);
          // A resend in a new session (another arrival time, same records) yields the same keys.
          const again = normalizeAstmMessage(text.replace(/\r/g, '\r\n'), ctx(profile, '2026-01-15T08:00:00.000Z'));
          expect(again.events.map((e) => e.idempotencyKey)).toEqual(r.events.map((e) => e.idempotencyKey));
        });
      }
    });
  }
});

describe('corpus captures per profile', () => {
  const generic = astmProfiles.find((p) => p.name === 'generic-astm')!;
  const files = corpusFiles().filter((f) => corpusKind(f) !== 'native');

  it('every ASTM capture of the corpus is claimed by exactly one profile', () => {
    expect(files.length, 'ASTM captures in the corpus').toBeGreaterThan(0);
    for (const f of files) {
      const owners = astmProfiles.filter((p) => p.corpusPatterns.some((pat) => globMatch(pat, f)));
      expect(owners.map((p) => p.name), f).toHaveLength(1);
    }
  });

  for (const f of files) {
    it(`${f} through its profile`, () => {
      const profile = astmProfiles.find((p) => p.corpusPatterns.some((pat) => globMatch(pat, f))) ?? generic;
      const messages = corpusMessages(f);
      expect(messages.length).toBeGreaterThan(0);
      for (const m of messages) {
        const c = ctx(profile);
        const r = normalizeAstmMessage(m, c);
        expect(r.reject, `${f} rejected`).toBeUndefined();
        checkInvariants(r.events, profile, c.analyzerId);
        const results = completed(r.events);
        if (/hostquery|fig5|fig8/.test(f)) {
          expect(r.messageType).toBe('ASTM^QUERY');
          expect(r.hostQuery?.specimens.length).toBeGreaterThan(0);
        } else if (/order/.test(f) || /fig6/.test(f)) {
          expect(r.messageType).toBe('ASTM^ORDER');
          expect(r.events).toEqual([]);
        } else {
          expect(r.messageType).toBe('ASTM^RESULT');
          expect(results.length).toBeGreaterThan(0);
          expect(r.warnings.filter((w) => w.includes('no mapping')), 'mapped profiles map every corpus code').toEqual([]);
          const runTypes = new Set(results.map((e) => e.data.runType));
          if (/_qc_/.test(f)) expect([...runTypes]).toEqual(['qc']);
          else expect([...runTypes]).toEqual(['patient']);
          if (profile.consumption.length > 0) expect(r.events.some((e) => e.type === 'consumable.used')).toBe(true);
        }
      }
    });
  }

  it('sysmex XN QC capture: 28 parameters, image paths and IP flags left out, consumption marked qc', () => {
    const profile = loadProfile('sysmex-xn-l');
    const [m] = corpusMessages('sysmex_xn-550_qc_capture.repaired.bin');
    const r = normalizeAstmMessage(m!, ctx(profile));
    const results = completed(r.events);
    expect(results).toHaveLength(28);
    expect(results.every((e) => e.data.specimenId === 'QC-82151403')).toBe(true);
    expect(results.some((e) => e.data.analyzerTestCode?.startsWith('SCAT_'))).toBe(false);
    expect(r.events.filter((e) => e.type === 'consumable.used').every((e) => e.type === 'consumable.used' && e.data.runType === 'qc')).toBe(true);
    expect(r.events.some((e) => e.type === 'specimen.received')).toBe(false);
  });

  it('Yumizen QC capture: reagent lots from the M REAGENT record go on the consumption events', () => {
    const profile = loadProfile('horiba-yumizen-h500');
    const [m] = corpusMessages('horiba_yumizen-h500_qc_result.frames');
    const used = normalizeAstmMessage(m!, ctx(profile)).events.flatMap((e) => (e.type === 'consumable.used' ? [[e.data.productCode, e.data.reagentLot ?? null]] : []));
    expect(Object.fromEntries(used)).toEqual({ 'HOR-YUM-DILUENT': '220729H1', 'HOR-YUM-LYSE': '221026M11', 'HOR-YUM-CLEANER': '221114I1', 'HOR-YUM-WHITEDIFF': null });
  });

  it('cobas e411 record split mid-field across ETB frames is rejoined (R.3 7/1/not → T4)', () => {
    const profile = loadProfile('roche-cobas-e411');
    const [m] = corpusMessages('roche_cobas-e411_multiframe_capture.bin');
    const results = completed(normalizeAstmMessage(m!, ctx(profile)).events);
    const t4 = results.find((e) => e.data.analyzerTestCode === '7');
    expect(t4?.data).toMatchObject({ testCode: 'T4', value: '9.61', units: 'ug/dl', specimenId: '000002327' });
    expect(results.find((e) => e.data.analyzerTestCode === '5')?.data.value).toBe('-1^0.282');
  });

  it('native (non-ASTM) outputs are rejected with a clear reason', () => {
    const natives = corpusFiles().filter((x) => corpusKind(x) === 'native');
    expect(natives.length, 'native captures in the corpus').toBeGreaterThan(0);
    for (const f of natives) {
      const [text] = corpusMessages(f);
      const r = normalizeAstmMessage(text!, ctx(generic));
      expect(r.reject, f).toMatch(/not a LIS2-A2 message: the first record must be H/);
      expect(r.events).toEqual([]);
    }
  });
});
