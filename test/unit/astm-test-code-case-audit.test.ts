import { describe, expect, it } from 'vitest';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import { checkProfile } from '../../gateway/src/profiles/check.ts';
import { findTestMapping } from '../../gateway/src/profiles/test-mapping.ts';
import type { Profile } from '../../gateway/src/profiles/types.ts';
import { readFileSync } from 'node:fs';
import { repoRoot } from '../fixtures/astm/corpus.ts';
import path from 'node:path';

/**
 * An analyzer code sent in another case than the profile maps it (`Chol` for `CHOL`).
 *
 * The HL7 analyzer path (Mindray) has always matched codes case-insensitively; the ASTM path
 * compared them byte for byte. IT staff map the codes they read in the manual or a capture, and
 * expect the same profile to work for an analyzer (or a firmware) that writes `Chol` and `Trig`:
 * the profile's README promises that an unmapped code is reported, not that a mapped one is
 * missed for its case.
 */

const ctx = (profile: Profile) => ({ analyzerId: 'afinion-1', endpoint: 'afinion-1', profile, receivedAt: '2026-01-14T12:00:00.000Z' });

const ofType = <T extends DraftEvent['type']>(events: DraftEvent[], type: T): Array<Extract<DraftEvent, { type: T }>> =>
  events.filter((e): e is Extract<DraftEvent, { type: T }> => e.type === type);

/** An Afinion 2 lipid panel (one cartridge) with the codes written as given. */
function lipidPanel(codes: string[]): string {
  return [
    'H|\\^&|||Afinion 2 Analyzer^^AF20061122|||||||P|1|20260114141235',
    'P|1||PT-77120|||||U',
    'O|1||12|^^^Lipid|||||||N||||^O||||||||^10228413||F',
    ...codes.map((code, i) => `R|${i + 1}|^^^${code}|${(4.1 + i).toFixed(1)}|mmol/L||||F||op7||20260114140615`),
    'L|1|N',
  ].join('\r');
}

describe('ASTM test codes match the profile whatever their case, when the match is unambiguous', () => {
  /**
   * What the lab saw: the Afinion's lipid panel came in as `Chol`, `Trig`, `Hdl`. The profile maps
   * `CHOL`, `TRIG`, `HDL`: every result went on unmapped (`unmapped:Chol` in the message browser,
   * test code `Chol` on the order's note), and the lipid cartridge, drawn by the CHOL row of the
   * consumption table, was never deducted from stock: the shelf emptied with Odoo showing stock
   * and no reorder. The promise broken: DESIGN.md §3, each analyzer run × the profile's
   * consumption table → consumable.used.
   */
  it('Afinion 2 sending Chol, Trig, Hdl: canonical codes, the lipid cartridge drawn once, nothing unmapped', () => {
    const r = normalizeAstmMessage(lipidPanel(['Chol', 'Trig', 'Hdl']), ctx(loadProfile('abbott-afinion-2')));
    expect(ofType(r.events, 'test.completed').map((e) => [e.data.testCode, e.data.analyzerTestCode])).toEqual([
      ['CHOL', 'Chol'],
      ['TRIG', 'Trig'],
      ['HDL', 'Hdl'],
    ]);
    expect(ofType(r.events, 'consumable.used').map((e) => [e.data.productCode, e.data.testCode])).toEqual([['ABT-AFINION-LIPID-CART', 'CHOL']]);
    expect(r.searchTerms.filter((t) => t.startsWith('unmapped:'))).toEqual([]);
    expect(r.warnings.filter((w) => w.includes('no mapping'))).toEqual([]);
  });

  /**
   * The key of a result is built on the code as sent (`Chol`), so a result stored before the fix
   * and resent after it is still skipped as a resend.
   */
  it('the result keys keep the code as the analyzer sent it', () => {
    const [chol] = ofType(normalizeAstmMessage(lipidPanel(['Chol']), ctx(loadProfile('abbott-afinion-2'))).events, 'test.completed');
    expect(chol!.idempotencyKey).toContain('Chol');
    expect(chol!.idempotencyKey).not.toContain('CHOL');
  });

  /**
   * Two keys differing only in case name two tests (a site's `Hb` and `HB`): a code matching
   * neither exactly could be either, so it stays unmapped and reported, never guessed; an exact
   * match still wins. The same rule serves the HL7 analyzers, which took the first key found.
   */
  it('an ambiguous case-insensitive match is reported unmapped; an exact match wins', () => {
    const base = loadProfile('abbott-afinion-2');
    const profile: Profile = {
      ...base,
      tests: { ...base.tests, Chol: { code: 'CHOL-ALT', name: 'Cholesterol (second method)' } },
    };
    expect(findTestMapping(profile, 'CHOL')?.code).toBe('CHOL');
    expect(findTestMapping(profile, 'Chol')?.code).toBe('CHOL-ALT');
    expect(findTestMapping(profile, 'chol')).toBeUndefined();
    expect(findTestMapping(profile, 'trig')?.code).toBe('TRIG');
    const r = normalizeAstmMessage(lipidPanel(['chol']), ctx(profile));
    expect(ofType(r.events, 'test.completed').map((e) => e.data.testCode)).toEqual(['chol']);
    expect(r.searchTerms).toContain('unmapped:chol');
  });

  /** `profiles check` names such keys, so IT sees the ambiguity before the analyzer sends anything. */
  it('profiles check warns about analyzer codes that differ only in case', () => {
    const raw = JSON.parse(readFileSync(path.join(repoRoot, 'firmware-profiles/abbott-afinion-2.json'), 'utf8')) as { tests: Record<string, unknown> };
    raw.tests['Chol'] = { code: 'CHOL', name: 'Cholesterol' };
    const issues = checkProfile(raw, { fileName: 'abbott-afinion-2' }).filter((i) => i.path.startsWith('tests'));
    expect(issues).toContainEqual(expect.objectContaining({ severity: 'warning', path: 'tests.Chol', message: expect.stringMatching(/CHOL.*case/) }));
  });
});
