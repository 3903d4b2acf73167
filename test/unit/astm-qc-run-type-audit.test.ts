import { describe, expect, it } from 'vitest';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import type { Profile, RunTypeRule } from '../../gateway/src/profiles/types.ts';
import { corpusMessages } from '../fixtures/astm/corpus.ts';

/**
 * How the Abbott Afinion 2 profile tells a control run from a patient run.
 *
 * The Afinion 2 marks a control result in the header: H.12, the processing ID, is `Q` (quality
 * control results) instead of `P` (patient measurement results); its O.12 action code is always
 * `N`, and the patient ID field P.4 holds whatever ID was entered or scanned for the cartridge:
 * a patient's accession, or the control's own barcode (the vendor's connectivity manual lists
 * the two processing IDs; senaite.astm's Afinion 2 driver, built from it, reads H.12 as P/Q and
 * O.12 as the constant N). The profile as shipped looked at neither: it took O.12 = Q (never
 * sent) or a P.4 starting with QC, C1, C2 or CTRL, case-insensitive, for a control.
 */

const afinion = (): Profile => loadProfile('abbott-afinion-2');
const ctx = (profile: Profile) => ({ analyzerId: 'afinion-1', endpoint: 'afinion-1', profile, receivedAt: '2026-01-14T12:00:00.000Z' });

/** One Afinion 2 HbA1c result as the device sends it (the corpus capture's layout). */
function afinionMessage(o: { processingId: 'P' | 'Q'; id: string; seq?: number; value?: string; at?: string }): string {
  const at = o.at ?? '20260114091503';
  return [
    `H|\\^&|||Afinion 2 Analyzer^^AF20061122|||||||${o.processingId}|1|20260114091612`,
    `P|1||${o.id}|||||U`,
    `O|1||${o.seq ?? 7}|^^^HbA1c|||||||N||||^O||||||||^10228413||F`,
    `R|1|^^^HbA1c|${o.value ?? '6.1'}|%||||F||op7||${at}`,
    'L|1|N',
  ].join('\r');
}

const ofType = <T extends DraftEvent['type']>(events: DraftEvent[], type: T): Array<Extract<DraftEvent, { type: T }>> =>
  events.filter((e): e is Extract<DraftEvent, { type: T }> => e.type === type);

describe('Afinion 2: a control is what the device marks as one (H.12 = Q), nothing else', () => {
  /**
   * What the lab saw: its accessions are a letter and digits (C1002345: the clinic's prefix). The
   * HbA1c of that patient, run on the Afinion, was taken for a control: no specimen receipt and
   * no "HbA1c completed" note on the patient's order (the event had no accession, it went to
   * the partition of a specimen, not of the order), the message browser listed it under
   * runType:qc, and the cartridge was booked as QC consumption. The promise broken: DESIGN.md §3,
   * test.completed and specimen.received of an analyzer's patient run go to the order's chatter;
   * consumable.used states the run it belongs to (patient, QC, calibration).
   */
  it('a patient whose accession starts with C1 or C2 is a patient run: receipt, completion on the order, patient consumption', () => {
    for (const id of ['C1002345', 'C2000817', 'c1-4410', 'CTRL7']) {
      const r = normalizeAstmMessage(afinionMessage({ processingId: 'P', id }), ctx(afinion()));
      expect(r.reject).toBeUndefined();
      const [done] = ofType(r.events, 'test.completed');
      expect(done?.data, id).toMatchObject({ specimenId: id, accession: id, testCode: 'HBA1C', runType: 'patient' });
      expect(done?.partitionKey, id).toBe(`order:${id}`);
      expect(ofType(r.events, 'specimen.received').map((e) => e.data.accession), id).toEqual([id]);
      expect(ofType(r.events, 'consumable.used').map((e) => [e.data.productCode, e.data.runType]), id).toEqual([['ABT-AFINION-HBA1C-CART', 'patient']]);
      expect(r.searchTerms, id).not.toContain('runType:qc');
    }
  });

  /**
   * What the lab saw: the morning's control cartridge (H.12 = Q, the control's barcode in P.4)
   * became a patient's result: a specimen receipt and a completed HbA1c for an "accession" that is
   * the control's barcode, retried against Odoo for an order that does not exist until it was
   * dead-lettered, every day, and the control's cartridge counted as a patient's. The promise
   * broken: DESIGN.md §3, QC runs are never a patient's (no accession, never billable).
   */
  it('a control the Afinion marks with H.12 = Q is a QC run whatever its ID: no accession, no receipt, QC consumption', () => {
    const r = normalizeAstmMessage(afinionMessage({ processingId: 'Q', id: '1022841305125031', value: '5.4' }), ctx(afinion()));
    const done = ofType(r.events, 'test.completed');
    expect(done.map((e) => e.data.runType)).toEqual(['qc']);
    expect(done[0]!.data.accession).toBeUndefined();
    expect(done[0]!.partitionKey).toBe('specimen:1022841305125031');
    expect(ofType(r.events, 'specimen.received')).toEqual([]);
    expect(ofType(r.events, 'consumable.used').map((e) => [e.data.productCode, e.data.runType])).toEqual([['ABT-AFINION-HBA1C-CART', 'qc']]);
    expect(r.searchTerms).toContain('runType:qc');
  });

  /**
   * The run type is no part of any key (firmware-profiles/README.md, "Keys never change for a
   * shipped profile"): the corpus capture and the patient run above give byte for byte the keys
   * they had under the rules as shipped, so a result stored before the change and resent after
   * it is still skipped as a resend, and its cartridge is not counted twice.
   */
  it('the change of rules moves no key: the corpus capture and a C1 accession keep their keys', () => {
    const shippedRules: RunTypeRule[] = [
      { runType: 'qc', when: [{ field: 'O.12', equals: 'Q' }] },
      { runType: 'qc', when: [{ field: 'P.4.1', pattern: '^(QC|C[12]|CTRL)' }] },
    ];
    const now = afinion();
    const before: Profile = { ...now, runTypeRules: shippedRules };
    const [capture] = corpusMessages('abbott_afinion2_hba1c_result.frame');
    for (const text of [capture!, afinionMessage({ processingId: 'P', id: 'C1002345' }), afinionMessage({ processingId: 'Q', id: '1022841305125031' })]) {
      const keys = (p: Profile): string[] => normalizeAstmMessage(text, ctx(p)).events.filter((e) => e.type !== 'specimen.received').map((e) => e.idempotencyKey);
      expect(keys(now).length).toBeGreaterThan(0);
      expect(keys(now)).toEqual(keys(before));
    }
    // The corpus capture (H.12 = P, P.4 = 3643) is a patient run under both.
    const r = normalizeAstmMessage(capture!, ctx(now));
    expect(ofType(r.events, 'test.completed').map((e) => e.data.runType)).toEqual(['patient']);
  });
});
