import { describe, expect, it } from 'vitest';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import { rowIndexKeyOf } from '../../gateway/src/profiles/consumption-keys.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import type { Profile } from '../../gateway/src/profiles/types.ts';
import { astmCtx, astmMsg } from '../fixtures/astm/consumption.ts';

/**
 * Consumption of a test the profile does not map yet (`unmappedTests: report`) on an analyzer
 * that reports one measurement as several R records (Centaur: `^^^FT3^^^1^RLU`, `^^^FT3^^^1^DOSE`).
 * Regression: each aspect was a distinct test for the `test: "*"` rows, so an unmapped FT3 drew
 * two cuvettes and two acid/base doses where a mapped test draws one.
 */
const centaur: Profile = {
  ...loadProfile('siemens-advia-centaur-xp'),
  consumption: [
    { per: 'test', test: 'TSH', productCode: 'TSH-RP', quantity: 1, uom: 'Units' },
    { per: 'test', test: '*', productCode: 'CUVETTE', quantity: 1, uom: 'Units' },
    { per: 'run', productCode: 'WASH', quantity: 1.5, uom: 'mL' },
  ],
};

const consumption = (...results: string[]): DraftEvent[] =>
  normalizeAstmMessage(
    astmMsg('H|\\^&|||UIW_LIS', 'P|1|200311', 'O|1|S-1^0014^A||^^^TSH3UL\\^^^FT3|R||||||||||Serum', ...results, 'L|1|N'),
    astmCtx(centaur),
  ).events.filter((e) => e.type === 'consumable.used');
const cuvettes = (events: DraftEvent[]) => events.filter((e) => (e.data as { productCode: string }).productCode === 'CUVETTE');

describe('an unmapped test reported as several aspects', () => {
  it('draws the per-test rows once, on the test without its qualifiers', () => {
    const events = consumption(
      'R|1|^^^TSH3UL^^^1^RLU|45002|||||F||||20260302101201',
      'R|2|^^^TSH3UL^^^1^DOSE|1.82|uIU/mL||||F||||20260302101201',
      'R|3|^^^FT3^^^1^RLU|38810|||||F||||20260302101412',
      'R|4|^^^FT3^^^1^DOSE|3.10|pg/mL||||F||||20260302101412',
    );
    expect(cuvettes(events).map((e) => e.idempotencyKey)).toEqual([
      // The mapped test's key: the draw of the mapped test (its row-index form the one it always had).
      'astm|an-1|consumption|S-1|20260302101201|test|TSH|CUVETTE',
      'astm|an-1|consumption|S-1|20260302101412|test|FT3|CUVETTE',
    ]);
    expect(cuvettes(events).map((e) => rowIndexKeyOf(e))).toEqual([
      'astm|an-1|consumption|S-1|20260302101201|test|TSH|CUVETTE|1',
      'astm|an-1|consumption|S-1|20260302101412|test|FT3|CUVETTE|1',
    ]);
    expect(cuvettes(events).map((e) => (e.data as { testCode?: string }).testCode)).toEqual(['TSH', 'FT3']);
    expect(events.filter((e) => (e.data as { productCode: string }).productCode === 'WASH')).toHaveLength(1);
  });

  it('an unmapped aspect of a mapped test draws nothing more than the mapped test', () => {
    const events = consumption('R|1|^^^TSH3UL^^^1^INDX|0.4|||||F||||20260302101201', 'R|2|^^^TSH3UL^^^1^DOSE|1.82|uIU/mL||||F||||20260302101201');
    expect(cuvettes(events).map((e) => e.idempotencyKey)).toEqual(['astm|an-1|consumption|S-1|20260302101201|test|TSH|CUVETTE']);
  });

  it('aspects without a time of their own are still one measurement', () => {
    const events = consumption('R|1|^^^FT3^^^1^RLU|38810|||||F', 'R|2|^^^FT3^^^1^DOSE|3.10|pg/mL||||F');
    expect(cuvettes(events).map((e) => (e.data as { testCode?: string }).testCode)).toEqual(['FT3']);
  });

  it('each aspect is still passed on as its own result, marked unmapped', () => {
    const r = normalizeAstmMessage(
      astmMsg('H|\\^&', 'P|1', 'O|1|S-1||^^^FT3|R', 'R|1|^^^FT3^^^1^RLU|38810|||||F||||20260302101412', 'R|2|^^^FT3^^^1^DOSE|3.10|pg/mL||||F||||20260302101412', 'L|1|N'),
      astmCtx(centaur),
    );
    expect(r.events.filter((e) => e.type === 'test.completed').map((e) => (e.data as { testCode: string }).testCode)).toEqual(['FT3^RLU', 'FT3^DOSE']);
    expect(r.searchTerms).toEqual(expect.arrayContaining(['unmapped:FT3^RLU', 'unmapped:FT3^DOSE']));
  });
});
