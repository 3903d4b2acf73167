import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { normalizeAnalyzerHl7 } from '../../gateway/src/profiles/hl7-analyzer-normalize.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import { collectResultKeys, GOLDEN } from '../fixtures/keys/result-keys.ts';

/**
 * Result keys of a test reported twice in one message under one code and time (the `alt:` part,
 * profiles/result-alt-key.ts), and the keys that must not move with it. The gateway-level stories
 * are in test/integration/result-alt-key-audit.test.ts.
 */

const astmCtx = { analyzerId: 'afinion-1', endpoint: 'afinion-1', profile: loadProfile('abbott-afinion-2'), receivedAt: '2026-01-14T12:00:00.000Z' };
const bsCtx = { analyzerId: 'bs-1', endpoint: 'bs-1', profile: loadProfile('mindray-bs-series'), receivedAt: '2026-11-25T10:30:05.000Z' };
const resultKeys = (events: DraftEvent[]): Array<[string, string]> =>
  events.flatMap((e) => (e.type === 'test.completed' ? [[`${e.data.value} ${e.data.units ?? ''}`.trim(), e.idempotencyKey] as [string, string]] : []));
const sorted = (pairs: Array<[string, string]>) => [...pairs].sort((a, b) => (a[0] < b[0] ? -1 : 1));

/** An Afinion 2 HbA1c run with the given R records (R.3 onwards), one completion time. */
const afinion = (...results: string[]): string =>
  [
    'H|\\^&|||Afinion 2 Analyzer^^AF20095065|||||||P|1|20260114091612',
    'P|1||A2601147|||||U',
    'O|1||7|^^^HbA1c|||||||N||||^O||||||||^10233356||F',
    ...results.map((r, i) => `R|${i + 1}|${r}||||F||op7||20260114091503`),
    'L|1|N',
  ].join('\r');
const PERCENT = '^^^HbA1c|5.1|%';
const MMOL = '^^^HbA1c|32|mmol/mol';
const KEY = 'astm|afinion-1|result|A2601147|HbA1c|20260114091503';

describe('result keys that must not move', () => {
  // Stored keys are never migrated: a message stored before this change and resent after it must
  // find its results' keys. Every corpus capture, every profile transcript (ASTM and HL7) and the
  // Mindray vendor-manual ORUs give the keys recorded before the change (result-keys.golden.json).
  it('the corpus captures and the analyzer transcripts keep every result key', () => {
    const golden = JSON.parse(readFileSync(GOLDEN, 'utf8')) as Record<string, string[]>;
    expect(Object.keys(golden).length).toBeGreaterThan(70);
    expect(collectResultKeys()).toEqual(golden);
  });

  // The Afinion as it sends a dual-unit run (% first) keeps the keys commit 68c5c48 gave it.
  it('the Afinion dual-unit run in its own order keeps its keys: the bare key for %, alt: for mmol/mol', () => {
    expect(resultKeys(normalizeAstmMessage(afinion(PERCENT, MMOL), astmCtx).events)).toEqual([
      ['5.1 %', KEY],
      ['32 mmol/mol', `${KEY}|alt:86f3f1a37fba4eb6`],
    ]);
  });
});

describe('the alt: part is chosen by content, not by order', () => {
  // Review finding: the bare key went to whichever result came first, so a resend listing the
  // mmol/mol result first stored the % result a second time and skipped the mmol/mol one.
  it('ASTM: the % result (the units the profile maps for HbA1c) keeps the bare key whichever comes first', () => {
    const forward = resultKeys(normalizeAstmMessage(afinion(PERCENT, MMOL), astmCtx).events);
    const reversed = resultKeys(normalizeAstmMessage(afinion(MMOL, PERCENT), astmCtx).events);
    expect(sorted(reversed)).toEqual(sorted(forward));
  });

  it('ASTM: a verbatim repeat is one fact (one key); units matching none or several of them leave the bare key to the first', () => {
    const repeat = resultKeys(normalizeAstmMessage(afinion(MMOL, PERCENT, PERCENT), astmCtx).events);
    expect(repeat.map(([, k]) => k)).toEqual([`${KEY}|alt:86f3f1a37fba4eb6`, KEY, KEY]);
    // Neither in % (the profile's units): the first keeps the bare key, as before.
    const none = resultKeys(normalizeAstmMessage(afinion('^^^HbA1c|32|mmol/mol', '^^^HbA1c|6.2|mmol/L'), astmCtx).events);
    expect(none.map(([, k]) => k)).toEqual([KEY, expect.stringMatching(new RegExp(`^${KEY.replace(/\|/g, '\\|')}\\|alt:[0-9a-f]{16}$`))]);
    // Two different results in %: the first keeps the bare key, as before.
    const several = resultKeys(normalizeAstmMessage(afinion('^^^HbA1c|32|mmol/mol', '^^^HbA1c|5.1|%', '^^^HbA1c|5.2|%'), astmCtx).events);
    expect(several.map(([, k]) => k)).toEqual([KEY, expect.stringMatching(/\|alt:[0-9a-f]{16}$/), expect.stringMatching(/\|alt:[0-9a-f]{16}$/)]);
    expect(new Set(several.map(([, k]) => k)).size).toBe(3);
  });

  const bs = (...obx: string[]): string =>
    [
      'MSH|^~\\&|Mindray|BS-200|||20261125103000||ORU^R01|R-1|P|2.3.1||||0||ASCII|||',
      'PID|1|854||31|Anon||19830719000000|F',
      'OBR|1|BC-7731|31|Mindray^BS-200|N||20261125102500||||||||serum',
      ...obx.map((o, i) => `OBX|${i + 1}|NM|3|GLU|${o}|-||||F|||20261125102930||`),
    ].join('\r');
  const GLU_KEY = 'hl7-analyzer|bs-1|result|BC-7731|3|20261125102930';

  it('HL7 analyzer: two OBX of one code and OBX-14 get two keys, the mmol/L one (the profile units) the bare key in either order', () => {
    const forward = resultKeys(normalizeAnalyzerHl7(bs('5.4|mmol/L', '97|mg/dL'), bsCtx));
    expect(forward.map(([, k]) => k)).toEqual([GLU_KEY, expect.stringMatching(/\|alt:[0-9a-f]{16}$/)]);
    expect(sorted(resultKeys(normalizeAnalyzerHl7(bs('97|mg/dL', '5.4|mmol/L'), bsCtx)))).toEqual(sorted(forward));
    // One OBX per test (every Mindray transcript): the key it always had.
    expect(resultKeys(normalizeAnalyzerHl7(bs('5.4|mmol/L'), bsCtx)).map(([, k]) => k)).toEqual([GLU_KEY]);
  });
});
