import { describe, expect, it } from 'vitest';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import type { Profile, RunTypeRule } from '../../gateway/src/profiles/types.ts';
import { corpusMessages } from '../fixtures/astm/corpus.ts';

/**
 * Run types decided on the sample id: the cobas c 111, ADVIA Centaur XP and UniCel DxH profiles.
 *
 * Small analyzers get whatever the technician types as the sample id, names included: the corpus
 * holds a cobas e 411 run of sample "pragya" and an Erba EM200 run of "Asha Singh". The c 111 and
 * Centaur profiles took any sample id starting with "cal", in any case, for a calibration; the DxH
 * profile took any id starting with "6C" (no separator) for a control. A run so classed has no
 * accession: no specimen receipt, no completed note on the patient's sale order, and its
 * consumption is booked as calibration or QC, never as the patient's.
 */

const ctx = (profile: Profile) => ({ analyzerId: 'an-1', endpoint: 'an-1', profile, receivedAt: '2026-01-14T12:00:00.000Z' });

const ofType = <T extends DraftEvent['type']>(events: DraftEvent[], type: T): Array<Extract<DraftEvent, { type: T }>> =>
  events.filter((e): e is Extract<DraftEvent, { type: T }> => e.type === type);

/** The one corpus message of a capture, with one text replaced (the sample id the technician typed). */
function corpusWith(file: string, from: string, to: string): string {
  const [text] = corpusMessages(file);
  expect(text, file).toContain(from);
  return text!.replace(from, to);
}

/** What a patient run of `id` must give: receipt and completed results on the order `id`, patient consumption. */
function expectPatientRun(text: string, profile: Profile, id: string): void {
  const r = normalizeAstmMessage(text, ctx(profile));
  expect(r.reject).toBeUndefined();
  const done = ofType(r.events, 'test.completed');
  expect(done.length, id).toBeGreaterThan(0);
  for (const e of done) {
    expect(e.data, id).toMatchObject({ specimenId: id, accession: id, runType: 'patient' });
    expect(e.partitionKey, id).toBe(`order:${id}`);
  }
  expect(ofType(r.events, 'specimen.received').map((e) => e.data.accession), id).toEqual([id]);
  const consumption = ofType(r.events, 'consumable.used');
  expect(consumption.length, id).toBeGreaterThan(0);
  expect(new Set(consumption.map((e) => e.data.runType)), id).toEqual(new Set(['patient']));
  expect(r.searchTerms.filter((t) => t.startsWith('runType:')), id).toEqual([]);
}

/** Keys of every event but the specimen receipt (whose presence follows the run type by design). */
const keys = (text: string, p: Profile): string[] =>
  normalizeAstmMessage(text, ctx(p))
    .events.filter((e) => e.type !== 'specimen.received')
    .map((e) => e.idempotencyKey);

describe('a sample id typed in by hand is a patient run, whatever letters it starts with', () => {
  /**
   * What the lab saw: a cobas c 111 run of the patient "Calvin" (typed in as the sample id, as
   * small labs do) was a calibration run: no receipt, no glucose note on Calvin's order, the
   * cuvettes and reagent booked as calibration. The c 111 never sends a calibration as an O/R
   * run: its host interface manual (v2.1, M.CR records) reports calibrations as manufacturer
   * records, and controls with O.12 = Q and the sample id "1000 + control code" (PNU 300 →
   * "1300"). The `^CAL` rule could only ever match a patient. The promise broken: DESIGN.md §3,
   * an analyzer's patient run goes to the order's chatter; consumption names the run it was.
   */
  it('cobas c 111: a sample named "Calvin" or "calcium-7" is a patient run', () => {
    for (const id of ['Calvin', 'calcium-7', 'CALLAHAN']) {
      expectPatientRun(corpusWith('roche_cobas-c111_result.frames', 'T20 10134GA D28', id), loadProfile('roche-cobas-c111'), id);
    }
  });

  /**
   * What the lab saw: on the ADVIA Centaur XP, a sample id "Caleb-0412" (the site types names for
   * walk-in patients) was a calibration: the vitamin D result never reached the order and the
   * ReadyPack was booked as calibration. No source on the Centaur shows a calibrator in the result
   * upload (the interface captures in the corpus are patient runs; controls carry O.12 = Q).
   */
  it('ADVIA Centaur XP: a sample id starting with "Cal" is a patient run', () => {
    for (const id of ['Caleb-0412', 'calloway', 'CAL2025']) {
      expectPatientRun(corpusWith('siemens_advia-centaur-xp_result_1.astm', '000004300798', id), loadProfile('siemens-advia-centaur-xp'), id);
    }
  });

  /**
   * What the lab saw: the DxH's accessions of a clinic are "6C" and digits (the clinic's prefix):
   * every CBC of that clinic was a QC run — no receipt, no CBC note on the order, the lyse and
   * diluent booked as QC. The rule `^(QC|CTRL|6C)` had no separator after the prefix.
   */
  it('UniCel DxH: an accession starting with 6C, QC or CTRL and going on with a digit or letter is a patient run', () => {
    for (const id of ['6C24011207', '6c0043', 'QCH77812', 'CTRLX-4']) {
      expectPatientRun(corpusWith('beckman_unicel-dxh_result_1.astm', '000004287888', id), loadProfile('beckman-unicel-dxh'), id);
    }
  });

  /** The analyzers' own marks still decide: O.12 = Q, and the DxH's control material named with a separator. */
  it('controls stay controls: c 111 "1300" with O.12 = Q, DxH "6C-CELL-CTRL-L2" without O.12', () => {
    const c111 = corpusWith('roche_cobas-c111_result.frames', 'T20 10134GA D28', '1300').replace('||||||N|', '||||||Q|');
    const r1 = normalizeAstmMessage(c111, ctx(loadProfile('roche-cobas-c111')));
    expect(ofType(r1.events, 'test.completed').map((e) => e.data.runType)).toEqual(['qc']);
    expect(ofType(r1.events, 'specimen.received')).toEqual([]);
    for (const id of ['6C-CELL-CTRL-L2', 'QC 2', 'CTRL_L1']) {
      const dxh = corpusWith('beckman_unicel-dxh_result_1.astm', '000004287888', id);
      const r = normalizeAstmMessage(dxh, ctx(loadProfile('beckman-unicel-dxh')));
      expect(new Set(ofType(r.events, 'test.completed').map((e) => e.data.runType)), id).toEqual(new Set(['qc']));
      expect(ofType(r.events, 'specimen.received'), id).toEqual([]);
    }
  });

  /**
   * The run type is no part of any key (firmware-profiles/README.md, "Keys never change for a
   * shipped profile"): the corpus captures and the runs above keep byte for byte the keys they had
   * under the rules as shipped, so a result stored before the change and resent after it is still
   * skipped, and its reagent not drawn twice.
   */
  it('the change of rules moves no key', () => {
    const shipped: Record<string, RunTypeRule[]> = {
      'roche-cobas-c111': [
        { runType: 'qc', when: [{ field: 'O.12', equals: 'Q' }] },
        { runType: 'qc', when: [{ field: 'O.4.1', pattern: '^(QC|CTRL|PNU|PPU)' }] },
        { runType: 'calibration', when: [{ field: 'O.4.1', pattern: '^CAL' }] },
      ],
      'siemens-advia-centaur-xp': [
        { runType: 'qc', when: [{ field: 'O.12', equals: 'Q' }] },
        { runType: 'qc', when: [{ field: 'P.3.1', pattern: '^(QC|CTRL)' }] },
        { runType: 'calibration', when: [{ field: 'O.3.1', pattern: '^CAL' }] },
      ],
      'beckman-unicel-dxh': [
        { runType: 'qc', when: [{ field: 'O.12', equals: 'Q' }] },
        { runType: 'qc', when: [{ field: 'O.3.1', pattern: '^(QC|CTRL|6C)' }] },
      ],
    };
    const texts: Array<[string, string]> = [
      ['roche-cobas-c111', corpusWith('roche_cobas-c111_result.frames', 'T20 10134GA D28', 'T20 10134GA D28')],
      ['roche-cobas-c111', corpusWith('roche_cobas-c111_result.frames', 'T20 10134GA D28', 'Calvin')],
      ['siemens-advia-centaur-xp', corpusWith('siemens_advia-centaur-xp_result_2.astm', '000004300817', '000004300817')],
      ['siemens-advia-centaur-xp', corpusWith('siemens_advia-centaur-xp_result_1.astm', '000004300798', 'Caleb-0412')],
      ['beckman-unicel-dxh', corpusWith('beckman_unicel-dxh_result_2.astm', '000004287934', '000004287934')],
      ['beckman-unicel-dxh', corpusWith('beckman_unicel-dxh_result_1.astm', '000004287888', '6C24011207')],
    ];
    for (const [name, text] of texts) {
      const now = loadProfile(name);
      const before: Profile = { ...now, runTypeRules: shipped[name]! };
      expect(keys(text, now).length, name).toBeGreaterThan(0);
      expect(keys(text, now), name).toEqual(keys(text, before));
    }
  });
});
