import { describe, expect, it } from 'vitest';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import { rowIndexKeyOf } from '../../gateway/src/profiles/consumption-keys.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import type { Profile } from '../../gateway/src/profiles/types.ts';
import { astmCtx, astmMsg, withConsumption } from '../fixtures/astm/consumption.ts';

/**
 * Idempotency keys of analyzer results and their consumption: the keys stores already hold for
 * final results must not change (a resend across an upgrade would count twice), versions of a
 * result (preliminary, correction) get keys of their own, reruns are told apart.
 */
const ctx = astmCtx;
const msg = astmMsg;
const keys = (events: DraftEvent[], type: DraftEvent['type']) => events.filter((e) => e.type === type).map((e) => e.idempotencyKey);
/** The keys the releases before gave the run's draws (the row's index last): looked up in the upgrade window. */
const rowIndexKeys = (events: DraftEvent[]) => events.filter((e) => e.type === 'consumable.used').map((e) => rowIndexKeyOf(e));


const run = (profile: Profile, ...results: string[]) => normalizeAstmMessage(msg('H|\\^&|M1', 'P|1', 'O|1|S-1||^^^GLU\\^^^CREA|R|20260114080000', ...results, 'L|1|N'), ctx(profile)).events;

describe('keys of final results stay as they were', () => {
  // Consumption keys name what a row draws, no longer its index in the table (profiles/consumption.ts):
  // the keys the releases before stored are the row-index form, looked up before the commit while
  // the store may hold them (profiles/consumption-keys.ts).
  it('a final result with a result time: test.completed keys are the same strings as before, consumption keys name the draw, their earlier form as before', () => {
    const events = run(withConsumption(), 'R|1|^^^GLU|5.0|mmol/L||||F||op||20260114090000', 'R|2|^^^CREA|80|umol/L||||F||op||20260114090000');
    expect(keys(events, 'test.completed')).toEqual(['astm|an-1|result|S-1|GLU|20260114090000', 'astm|an-1|result|S-1|CREA|20260114090000']);
    expect(keys(events, 'consumable.used')).toEqual([
      'astm|an-1|consumption|S-1|20260114090000|test|GLU|GLU-R1',
      'astm|an-1|consumption|S-1|20260114090000|test|CREA|CREA-R1',
      'astm|an-1|consumption|S-1|20260114090000|run|run|DEAD',
    ]);
    expect(rowIndexKeys(events)).toEqual([
      'astm|an-1|consumption|S-1|20260114090000|test|GLU|GLU-R1|0',
      'astm|an-1|consumption|S-1|20260114090000|test|CREA|CREA-R1|1',
      'astm|an-1|consumption|S-1|20260114090000|run|run|DEAD|2',
    ]);
  });

  it('resent as previously transmitted (R), operator verified (V) or without status: the final key', () => {
    const final = keys(run(withConsumption(), 'R|1|^^^GLU|5.0|mmol/L||||F||op||20260114090000'), 'test.completed');
    for (const status of ['R', 'V', '']) {
      const events = run(withConsumption(), `R|1|^^^GLU|5.0|mmol/L||||${status}||op||20260114090000`);
      expect(keys(events, 'test.completed'), status).toEqual(final);
    }
  });

  it('two corrections with other values are two facts; the same correction resent is one', () => {
    const c1 = keys(run(withConsumption(), 'R|1|^^^GLU|7.9|mmol/L||||C||op||20260114090000'), 'test.completed');
    const c1again = keys(run(withConsumption(), 'R|1|^^^GLU|7.9|mmol/L||||C||op||20260114090000'), 'test.completed');
    const c2 = keys(run(withConsumption(), 'R|1|^^^GLU|8.1|mmol/L||||C||op||20260114090000'), 'test.completed');
    expect(c1again).toEqual(c1);
    expect(c2).not.toEqual(c1);
    expect(c1[0]).toMatch(/^astm\|an-1\|result\|S-1\|GLU\|20260114090000\|C:[0-9a-f]{16}$/);
  });
});

describe('results without a result time', () => {
  it('the parameters of one test (several analyzer codes, one canonical test) are one measurement, and stay so when resent', () => {
    const base = withConsumption();
    const profile: Profile = {
      ...base,
      tests: { WBC: { code: 'CBC' }, RBC: { code: 'CBC' }, HGB: { code: 'CBC' } },
      consumption: [
        { per: 'test', test: 'CBC', productCode: 'LYSE', quantity: 1, uom: 'mL' },
        { per: 'run', productCode: 'DEAD', quantity: 0.05, uom: 'mL', deadVolume: true },
      ],
    };
    const records = ['R|1|^^^WBC|6.4|10*3/uL||||F', 'R|2|^^^RBC|4.5|10*6/uL||||F', 'R|3|^^^HGB|13.1|g/dL||||F'];
    const first = run(profile, ...records);
    expect(first.filter((e) => e.type === 'consumable.used').map((e) => e.type === 'consumable.used' && e.data.productCode)).toEqual(['LYSE', 'DEAD']);
    expect(new Set(keys(first, 'test.completed')).size).toBe(3);
    expect(run(profile, ...records).map((e) => e.idempotencyKey)).toEqual(first.map((e) => e.idempotencyKey));
  });

  it('the same analyzer code twice in one order without result times (a rerun at dilution) is two measurements', () => {
    const profile = loadProfile('roche-cobas-e411');
    const events = normalizeAstmMessage(
      msg('H|\\^&|||cobas-e411^1|||||host|RSUPL^REAL|P|1', 'P|1', 'O|1|S-3|1^0^1^^S1^SC|^^^8^1|R||20260114100000||||N||||1|||||||20260114104000', 'R|1|^^^8/1/not|>100|uIU/ml||||F||op', 'R|2|^^^8/10/not|142.5|uIU/ml||||F||op', 'L|1|N'),
      ctx(profile),
    ).events;
    expect(new Set(keys(events, 'test.completed')).size).toBe(2);
    const tsh = events.filter((e) => e.type === 'consumable.used' && e.data.productCode === 'ROC-ELECSYS-TSH');
    expect(new Set(tsh.map((e) => e.idempotencyKey)).size).toBe(2);
  });
});

describe('host query ranges', () => {
  it('Q.4 repeating Q.3 (Centaur) is one specimen, not a range; Fig. 5 is a range', () => {
    const centaur = normalizeAstmMessage(msg('H|\\^&|||UIW_LIS|||||LIS_ID||P||20260114082913', 'Q|1|^K403911^0024^A|^K403911^0024^A|ALL||||||||O', 'L|1|N'), ctx(loadProfile('siemens-advia-centaur-xp')));
    expect(centaur.hostQuery?.range).toBeUndefined();
    expect(centaur.hostQuery?.specimens.map((s) => s.specimenId)).toEqual(['K403911']);
    const fig5 = normalizeAstmMessage(msg('H|\\^&||PSWD|Harper Labs||||||P|1394-97|19890314', 'Q|1|^032989325|^032989327|ALL||||||||O', 'L|1|N'), ctx(loadProfile('generic-astm')));
    expect([fig5.hostQuery?.range?.from.specimenId, fig5.hostQuery?.range?.to.specimenId]).toEqual(['032989325', '032989327']);
  });
});

describe('results timed by the order (O.7): consumption', () => {
  const one = (profile: Profile, record: string) => normalizeAstmMessage(msg('H|\\^&|M1', 'P|1', 'O|1|S-7||^^^GLU|R|20260114080000', record, 'L|1|N'), ctx(profile)).events;

  it('the final draws, keyed on O.7 and a hash of R.3 and value (the run identity of 51d9ac5 unchanged; the row-index form as then)', () => {
    const events = one(withConsumption(), 'R|1|^^^GLU|5.0|mmol/L||||F');
    expect(keys(events, 'consumable.used')).toEqual([
      expect.stringMatching(/^astm\|an-1\|consumption\|S-7\|20260114080000~[0-9a-f]{16}\|test\|GLU\|GLU-R1$/),
      expect.stringMatching(/^astm\|an-1\|consumption\|S-7\|20260114080000~[0-9a-f]{16}\|run\|run\|DEAD$/),
    ]);
    expect(rowIndexKeys(events)).toEqual([
      expect.stringMatching(/^astm\|an-1\|consumption\|S-7\|20260114080000~[0-9a-f]{16}\|test\|GLU\|GLU-R1\|0$/),
      expect.stringMatching(/^astm\|an-1\|consumption\|S-7\|20260114080000~[0-9a-f]{16}\|run\|run\|DEAD\|2$/),
    ]);
  });

  it('a pending, preliminary, partial or corrected report draws nothing: the final counts the measurement once', () => {
    for (const record of ['R|1|^^^GLU||||||I', 'R|1|^^^GLU|5.0|mmol/L||||P', 'R|1|^^^GLU|5.0|mmol/L||||S', 'R|1|^^^GLU|7.9|mmol/L||||C']) {
      expect(keys(one(withConsumption(), record), 'consumable.used'), record).toEqual([]);
    }
  });
});
