import { describe, expect, it } from 'vitest';
import { analyzerTestCode, normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { loadProfile, resolveProfile } from '../../gateway/src/profiles/load.ts';
import type { Profile } from '../../gateway/src/profiles/types.ts';

const ctx = (profile: Profile, receivedAt = '2026-01-14T12:00:00.000Z') => ({ analyzerId: 'an-1', endpoint: 'ep-1', profile, receivedAt });
const msg = (...records: string[]) => records.join('\r');
const of = <T extends DraftEvent['type']>(events: DraftEvent[], type: T) => events.filter((e): e is Extract<DraftEvent, { type: T }> => e.type === type);

describe('test codes', () => {
  it('a mapped profile passes an unknown code on unmapped, searchable and warned, never dropped', () => {
    const profile = loadProfile('roche-cobas-e411');
    const r = normalizeAstmMessage(msg('H|\\^&|||cobas-e411^1|||||host|RSUPL^REAL|P|1', 'P|1', 'O|1|S-1|1^0^1^^S1^SC|^^^999^1|R||20260114100000||||N', 'R|1|^^^999/1/not|12.5|U/l||N||F||op|||E1', 'R|2|^^^8/1/not|1.1|uIU/ml||N||F||op|||E1', 'L|1|N'), ctx(profile));
    const results = of(r.events, 'test.completed');
    expect(results.map((e) => [e.data.analyzerTestCode, e.data.testCode])).toEqual([
      ['999', '999'],
      ['8', 'TSH'],
    ]);
    expect(r.searchTerms).toContain('unmapped:999');
    expect(r.warnings.join(' ')).toMatch(/"999" has no mapping in profile "roche-cobas-e411"/);
    expect(r.runs[0]!.unmapped).toEqual(['999']);
    // Only the mapped test draws its reagent; the '*' rows count both determinations.
    const products = of(r.events, 'consumable.used').map((e) => `${e.data.productCode}:${e.data.testCode ?? 'run'}`);
    expect(products.filter((p) => p.startsWith('ROC-ELECSYS'))).toEqual(['ROC-ELECSYS-TSH:TSH']);
    expect(products.filter((p) => p.startsWith('ROC-ASSAYCUP'))).toEqual(['ROC-ASSAYCUP-TIP:999', 'ROC-ASSAYCUP-TIP:TSH']);
  });

  it('the generic profile passes codes through without warnings', () => {
    const r = normalizeAstmMessage(msg('H|\\^&', 'P|1', 'O|1|A-1||^^^ISE', 'R|1|^^^ISE^NA|139|mEq/L', 'R|2|^^^GLU|5.0|mmol/L', 'L|1|N'), ctx(loadProfile('generic-astm')));
    expect(of(r.events, 'test.completed').map((e) => e.data.testCode)).toEqual(['ISE^NA', 'GLU']);
    expect(r.warnings).toEqual([]);
    expect(of(r.events, 'consumable.used')).toEqual([]);
  });

  it('reads codes per layout: component, qualifiers, cut, LOINC, and a bare code', () => {
    const base = resolveProfile({ ...loadProfile('generic-astm') });
    const withLayout = (testId: Profile['fields']['testId']): Profile => ({ ...base, fields: { ...base.fields, testId } });
    expect(analyzerTestCode(['', '', '', 'VitD', '', '', '1', 'DOSE'], withLayout({ codeComponent: 4, qualifierComponents: [8] })).code).toBe('VitD^DOSE');
    expect(analyzerTestCode(['', '', '', '8/1/not'], withLayout({ codeComponent: 4, cutAt: '/' })).code).toBe('8');
    expect(analyzerTestCode(['', '', '', 'WBC', '804-5', '1'], withLayout({ codeComponent: 4, loincComponent: 5 }))).toEqual({ code: 'WBC', loinc: '804-5' });
    expect(analyzerTestCode(['', '', '', '', 'WBC', '1'], withLayout({ codeComponent: 5 })).code).toBe('WBC');
    expect(analyzerTestCode(['HBCT'], withLayout({ codeComponent: 4 })).code).toBe('HBCT');
  });
});

describe('runs, run types and billing', () => {
  it('QC runs (O.12 = Q) consume but carry no accession and no specimen receipt', () => {
    const profile = loadProfile('sysmex-xn-l');
    const r = normalizeAstmMessage(msg('H|\\^&|||XN-350', 'P|1', 'O|1||1^1^ QC-1^B|^^^^WBC|||||||Q', 'R|1|^^^^WBC^1|7.0|10*3/uL||N||F||||20260114063012', 'L|1|N'), ctx(profile));
    expect(of(r.events, 'specimen.received')).toEqual([]);
    expect(of(r.events, 'test.completed')[0]!.data).toMatchObject({ runType: 'qc', specimenId: 'QC-1' });
    expect(of(r.events, 'test.completed')[0]!.data.accession).toBeUndefined();
    expect(of(r.events, 'test.completed')[0]!.partitionKey).toBe('specimen:QC-1');
    expect(of(r.events, 'consumable.used').every((e) => e.data.runType === 'qc')).toBe(true);
    expect(r.searchTerms).toContain('runType:qc');
  });

  it('consumption rows limited to some run types skip the others; dead volume once per run', () => {
    const base = loadProfile('generic-astm');
    const profile: Profile = {
      ...base,
      consumption: [
        { per: 'test', test: '*', productCode: 'CUP', quantity: 1, uom: 'Units' },
        { per: 'test', test: 'GLU', productCode: 'GLU-R1', quantity: 0.2, uom: 'mL', runTypes: ['patient'] },
        { per: 'run', productCode: 'DEAD', quantity: 0.05, uom: 'mL', deadVolume: true },
      ],
    };
    const run = (o12: string) =>
      of(normalizeAstmMessage(msg('H|\\^&', 'P|1', `O|1|S-9||^^^GLU|R||||||${o12}`, 'R|1|^^^GLU|5|mmol/L||||F||||20260114090000', 'R|2|^^^CREA|80|umol/L||||F||||20260114090000', 'L|1|N'), ctx(profile)).events, 'consumable.used').map((e) => e.data.productCode);
    expect(run('N').sort()).toEqual(['CUP', 'CUP', 'DEAD', 'GLU-R1']);
    expect(run('Q').sort()).toEqual(['CUP', 'CUP', 'DEAD']);
  });

  it('two orders of two specimens: one receipt each, results correlated to their own accession', () => {
    const r = normalizeAstmMessage(
      msg('H|\\^&', 'P|1', 'O|1|A-1||^^^GLU', 'R|1|^^^GLU|5||||||||20260114090000', 'O|2|A-1||^^^CREA', 'R|1|^^^CREA|80||||||||20260114090100', 'P|2', 'O|1|A-2||^^^GLU', 'R|1|^^^GLU|6||||||||20260114090200', 'L|1|N'),
      ctx(loadProfile('generic-astm')),
    );
    expect(of(r.events, 'specimen.received').map((e) => e.correlationId)).toEqual(['A-1', 'A-2']);
    expect(of(r.events, 'test.completed').map((e) => `${e.correlationId}:${e.data.testCode}:${e.partitionKey}`)).toEqual(['A-1:GLU:order:A-1', 'A-1:CREA:order:A-1', 'A-2:GLU:order:A-2']);
  });

  it('an order without a specimen id still yields events, under a stable generated id, with a warning', () => {
    const text = msg('H|\\^&', 'P|1', 'O|1|||^^^GLU', 'R|1|^^^GLU|5||||||||20260114090000', 'L|1|N');
    const a = normalizeAstmMessage(text, ctx(loadProfile('generic-astm')));
    const b = normalizeAstmMessage(text, ctx(loadProfile('generic-astm')));
    expect(of(a.events, 'test.completed')[0]!.data.specimenId).toMatch(/^unidentified-[0-9a-f]{16}$/);
    expect(a.events.map((e) => e.idempotencyKey)).toEqual(b.events.map((e) => e.idempotencyKey));
    expect(a.warnings.join(' ')).toMatch(/no specimen id/);
  });
});

describe('result status', () => {
  it('R.9 = X (cannot be done) or I (pending) is not a completed test, but the run still consumes', () => {
    const profile = loadProfile('horiba-pentra-xlr');
    const r = normalizeAstmMessage(
      msg('H|\\^&|||ABX|||||||P|E1394-97|20260114121551', 'P|1', 'O|1|S9^00^00||^^^DIF', 'R|1|^^^BAS#^704-7^1|-----|1||HH||X||NNE||20260114121550', 'R|2|^^^NEU%^770-8^1|54.2|1||||I||NNE||20260114121550', 'L|1|N'),
      ctx(profile),
    );
    expect(of(r.events, 'test.completed')).toEqual([]);
    expect(r.warnings.join(' ')).toMatch(/"BAS#" has status X \(cannot be done\)/);
    expect(of(r.events, 'consumable.used').map((e) => e.data.productCode).sort()).toEqual(['HOR-ABX-BASOLYSE', 'HOR-ABX-CLEANER', 'HOR-ABX-EOSINOFIX']);
  });
});

describe('idempotency across sessions', () => {
  it('the same result resent with a new H.3 and H.14 keeps its keys; a rerun at another time does not', () => {
    const profile = loadProfile('siemens-advia-centaur-xp');
    const body = ['P|1|188875', 'O|1|000004300798^0014^A||^^^VitD|R', 'R|1|^^^VitD^^^1^DOSE|25.22|ng/mL||||F||||20260114085116|IRL1'];
    const first = normalizeAstmMessage(msg('H|\\^&|MSG-1||UIW_LIS|||||LIS_ID||P||20260114085120', ...body, 'L|1|N'), ctx(profile));
    const resent = normalizeAstmMessage(msg('H|\\^&|MSG-2||UIW_LIS|||||LIS_ID||P||20260114093000', ...body, 'L|1|N'), ctx(profile, '2026-01-14T09:30:00.000Z'));
    expect(resent.events.map((e) => e.idempotencyKey)).toEqual(first.events.map((e) => e.idempotencyKey));
    const rerun = normalizeAstmMessage(msg('H|\\^&|MSG-3', body[0]!, body[1]!, body[2]!.replace('20260114085116', '20260114101500'), 'L|1|N'), ctx(profile));
    const firstResult = of(first.events, 'test.completed')[0]!;
    const rerunResult = of(rerun.events, 'test.completed')[0]!;
    expect(rerunResult.idempotencyKey).not.toBe(firstResult.idempotencyKey);
    // Same day: the specimen was received once.
    expect(of(rerun.events, 'specimen.received')[0]!.idempotencyKey).toBe(of(first.events, 'specimen.received')[0]!.idempotencyKey);
    expect(firstResult.occurredAt).toBe(new Date(2026, 0, 14, 8, 51, 16).toISOString());
  });
});

describe('message level', () => {
  it('reports control id, sender and message type; Beckman ~ escapes decode in its own delimiters', () => {
    const r = normalizeAstmMessage(msg('H|\\!~|(0:0-1#2, 571)||DxH!1.0|||||LIS||P|LIS2-A|20260114082841', 'P|1', 'O|1|000004400777||!!!CD', 'R|1|!!!WBC!33256-9|7.4|10~S~9/L', 'R|2|!!!PLT!777-3|146!  H |10~S~9/L', 'L|1|N'), ctx(loadProfile('beckman-unicel-dxh')));
    expect(r).toMatchObject({ controlId: '(0:0-1#2, 571)', sender: 'DxH^1.0', messageType: 'ASTM^RESULT' });
    expect(of(r.events, 'test.completed')[0]!.data.units).toBe('10!9/L');
    // DxH puts the flag in a component of the value: components are trimmed and joined with ^.
    expect(of(r.events, 'test.completed')[1]!.data.value).toBe('146^H');
  });

  it('keeps every one of several Q records (the first in place, all in requests), without a warning', () => {
    // Before, only the first Q was answered ("2 Q records: only the first is answered"); the
    // answer to all of them is pinned in test/integration/host-query-multi.test.ts.
    const r = normalizeAstmMessage(msg('H|\\^&', 'Q|1|^S-1||ALL||||||||O', 'Q|2|^S-2||ALL||||||||O', 'L|1|N'), ctx(loadProfile('generic-astm')));
    expect(r.hostQuery?.specimens.map((s) => s.specimenId)).toEqual(['S-1']);
    expect(r.hostQuery?.requests?.map((q) => q.specimens.map((s) => s.specimenId))).toEqual([['S-1'], ['S-2']]);
    expect(r.warnings).toEqual([]);
  });

  it('reads the cobas e411 query: specimen in component 3, status O, tests ALL', () => {
    const r = normalizeAstmMessage(msg('H|\\^&|||cobas-e411^1|||||host|TSREQ^REAL|P|1', 'Q|1|^^000004^40^0^5^^S1^SC||ALL||||||||O', 'L|1|N'), ctx(loadProfile('roche-cobas-e411')));
    expect(r.hostQuery).toMatchObject({ specimens: [{ specimenId: '000004', components: ['', '', '000004', '40', '0', '5', '', 'S1', 'SC'] }], tests: 'ALL', statusCode: 'O', cancel: false });
    expect(r.hostQuery?.header).toMatchObject({ sender: ['cobas-e411', '1'], receiver: ['host'], comment: ['TSREQ', 'REAL'] });
  });

  it('rejects garbage and bad delimiters with the reason, never throwing', () => {
    const profile = loadProfile('generic-astm');
    expect(normalizeAstmMessage('', ctx(profile)).reject).toMatch(/empty/);
    expect(normalizeAstmMessage('H|AB1|x\rL|1', ctx(profile)).reject).toMatch(/alphanumeric/);
    expect(normalizeAstmMessage('\x02garbage\x03', ctx(profile))).toMatchObject({ events: [], messageType: 'ASTM', reject: expect.stringMatching(/first record must be H/) });
  });
});

describe('a result sent pending, then final', () => {
  it('consumes once: the pending report (status I, no R.13) and the final one share their consumption keys', () => {
    const profile = loadProfile('sysmex-xn-l');
    // Same run (started 10:00:00, R.12): first reported pending without a completion time, then final.
    const body = (status: string, completed: string) => ['P|1', 'O|1||^^S-77^B||^^^^WBC', `R|1|^^^^WBC^1|${status === 'I' ? '' : '7.1'}|10*3/uL||||${status}|||20260114100000|${completed}`];
    const pending = normalizeAstmMessage(msg('H|\\^&|||XN-350^00-22^11001^^^^12345678||||||||E1394-97|20260114100010', ...body('I', ''), 'L|1|N'), ctx(profile));
    const final = normalizeAstmMessage(msg('H|\\^&|||XN-350^00-22^11001^^^^12345678||||||||E1394-97|20260114100130', ...body('F', '20260114100125'), 'L|1|N'), ctx(profile, '2026-01-14T10:01:30.000Z'));
    const keys = (r: ReturnType<typeof normalizeAstmMessage>) => of(r.events, 'consumable.used').map((e) => e.idempotencyKey).sort();
    expect(keys(pending).length).toBeGreaterThan(0);
    expect(keys(final)).toEqual(keys(pending));
    // A rerun (another start) still consumes again.
    const rerun = normalizeAstmMessage(msg('H|\\^&', ...body('F', '20260114103025').map((r) => r.replace('20260114100000', '20260114103000')), 'L|1|N'), ctx(profile));
    expect(keys(rerun).filter((k) => keys(final).includes(k))).toEqual([]);
  });
});
