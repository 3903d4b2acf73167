import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { normalizeAnalyzerHl7 } from '../../gateway/src/profiles/hl7-analyzer-normalize.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import type { Profile } from '../../gateway/src/profiles/types.ts';
import { corpusMessages, fixturesDir } from '../fixtures/astm/corpus.ts';

/**
 * An analyzer in training or debugging mode: ASTM H.12 processing ID `T` (training) or `D`
 * (debugging) (LIS2-A2 §7.1.12; HL7 analyzers: MSH-11, table 0103).
 *
 * Lab staff learn the analyzer on real tubes (often a real accession, or one typed for practice),
 * and a service engineer runs it in debug mode after a repair. The gateway read H.12 for nothing
 * but a profile's QC mark: such runs were patient runs. Their results were noted on the sale
 * order of whatever accession the tube carried, a specimen receipt was recorded for it, and the
 * reagent was booked as patient consumption. A LIS's training traffic is refused on a production
 * gateway (hl7/processing-id.ts); an analyzer's run is different in one way: its reagent and
 * cartridges were really used, so its consumption must reach stock. It is a `training` run: no
 * accession, no receipt, consumption kept, searchable as `processingId:T` like the LIS's.
 */

const ctx = (profile: Profile) => ({ analyzerId: 'an-1', endpoint: 'an-1', profile, receivedAt: '2026-01-14T12:00:00.000Z' });

const ofType = <T extends DraftEvent['type']>(events: DraftEvent[], type: T): Array<Extract<DraftEvent, { type: T }>> =>
  events.filter((e): e is Extract<DraftEvent, { type: T }> => e.type === type);

/** The cobas e 411 corpus result (a patient run, sample 000009680), with H.12 set to `id`. */
function e411With(processingId: string): string {
  const [text] = corpusMessages('roche_cobas-e411_result_capture.bin');
  expect(text).toContain('|RSUPL^BATCH|P|1');
  return text!.replace('|RSUPL^BATCH|P|1', `|RSUPL^BATCH|${processingId}|1`);
}

describe('a training or debugging run of an analyzer is no patient run, and its reagent is still used', () => {
  /**
   * What the lab saw: a new technician's practice runs on the cobas e 411 (H.12 = T) on the tube
   * of accession 000009680 put "TSH completed" notes on that patient's sale order, a specimen
   * receipt on its chatter, and the ProCell and assay cups as patient consumption. The promise
   * broken: DESIGN.md §3, only patient runs go to an order; consumable.used names the run it was.
   */
  it('cobas e 411 with H.12 = T or D: no accession, no receipt, consumption booked as training', () => {
    for (const processingId of ['T', 'D']) {
      const r = normalizeAstmMessage(e411With(processingId), ctx(loadProfile('roche-cobas-e411')));
      expect(r.reject).toBeUndefined();
      const done = ofType(r.events, 'test.completed');
      expect(done.length, processingId).toBeGreaterThan(0);
      for (const e of done) {
        expect(e.data.runType, processingId).toBe('training');
        expect(e.data.accession, processingId).toBeUndefined();
        expect(e.partitionKey, processingId).toBe('specimen:000009680');
      }
      expect(ofType(r.events, 'specimen.received'), processingId).toEqual([]);
      const used = ofType(r.events, 'consumable.used');
      // The reagent was used: every row a patient run of the same tests draws, as training.
      const patient = ofType(normalizeAstmMessage(e411With('P'), ctx(loadProfile('roche-cobas-e411'))).events, 'consumable.used');
      expect(used.map((e) => [e.data.productCode, e.data.quantity]).sort(), processingId).toEqual(patient.map((e) => [e.data.productCode, e.data.quantity]).sort());
      expect(new Set(used.map((e) => e.data.runType)), processingId).toEqual(new Set(['training']));
      expect(r.searchTerms, processingId).toEqual(expect.arrayContaining([`processingId:${processingId}`, 'runType:training']));
    }
  });

  /** The keys stay those of the same run in production (run type is in no key): nothing is counted twice. */
  it('the keys of a training run are those the run had as a patient run', () => {
    const keys = (text: string): string[] =>
      normalizeAstmMessage(text, ctx(loadProfile('roche-cobas-e411')))
        .events.filter((e) => e.type !== 'specimen.received')
        .map((e) => e.idempotencyKey);
    expect(keys(e411With('T'))).toEqual(keys(e411With('P')));
  });

  /** A control run in training mode stays a control (QC is never a patient's either); P and Q are unchanged. */
  it('QC stays QC; production (P, empty) is a patient run as before', () => {
    const qcInTraining = e411With('T').replace('20191207171714||||N|', '20191207171714||||Q|');
    expect(qcInTraining).toContain('||||Q|');
    const qc = normalizeAstmMessage(qcInTraining, ctx(loadProfile('roche-cobas-e411')));
    expect(new Set(ofType(qc.events, 'test.completed').map((e) => e.data.runType))).toEqual(new Set(['qc']));
    for (const processingId of ['P', '']) {
      const r = normalizeAstmMessage(e411With(processingId), ctx(loadProfile('roche-cobas-e411')));
      expect(new Set(ofType(r.events, 'test.completed').map((e) => e.data.runType)), processingId).toEqual(new Set(['patient']));
      expect(ofType(r.events, 'specimen.received').length, processingId).toBe(1);
      expect(r.searchTerms.some((t) => t.startsWith('processingId:')), processingId).toBe(false);
    }
  });

  /**
   * The same for an HL7 analyzer: a Mindray BC-5380 in training mode (MSH-11 = T). Its CBC was a
   * patient run of the sample's accession; the profile's MSH-11 values know P and Q only.
   */
  it('Mindray BC-5380 with MSH-11 = T: a training run, reagent drawn, no accession', () => {
    const text = readFileSync(path.join(fixturesDir, 'mindray-bc-5380', 'patient-result.hl7'), 'utf8');
    expect(text).toContain('|ORU^R01|101|P|');
    const events = normalizeAnalyzerHl7(text.replace('|ORU^R01|101|P|', '|ORU^R01|101|T|'), ctx(loadProfile('mindray-bc-5380')));
    const done = ofType(events, 'test.completed');
    expect(done.length).toBeGreaterThan(0);
    for (const e of done) {
      expect(e.data.runType).toBe('training');
      expect(e.data.accession).toBeUndefined();
    }
    expect(ofType(events, 'specimen.received')).toEqual([]);
    const used = ofType(events, 'consumable.used');
    expect(used.length).toBeGreaterThan(0);
    expect(new Set(used.map((e) => e.data.runType))).toEqual(new Set(['training']));
  });
});
