/**
 * A reagent consumption's identity is what its row of the profile's `consumption` table is, not
 * where the row stands. Until now each `consumable.used` key ended with the row's index in the
 * table: when IT added a row above, removed one or reordered the table, a run the analyzer sent
 * again (a resend of a message whose ACK it missed, a result the operator re-transmits) got new
 * keys for every row below the edit, the store took them as new, and the relay drew the reagent
 * from Odoo's stock a second time. Now a draw is known by its per, its test (or the run) and its
 * product, with an occurrence number only among the run's draws identical in those (two identical
 * rows are two draws, as before): profiles/consumption.ts. A draw an earlier release stored under
 * the row-index key is still found after the upgrade, while the store may hold such keys
 * (profiles/consumption-keys.ts).
 *
 * Real parts: the LevelDB store in a temp dir, the ASTM endpoint over TCP (and the HL7 analyzer
 * endpoint over MLLP) wired as gateway.ts wires them (normalize, resolveAnalyzerResult, commit).
 * The earlier release is the tree before this change (PREVIOUS, from `git archive`): its store and
 * endpoints take the first run on the same data dir.
 */
import { describe, expect, it } from 'vitest';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import type { ConsumptionRow, Profile } from '../../gateway/src/profiles/types.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { astmEndpoint, astmTakenByPrevious, bsMessage, consumptionRows, draws, hl7AnalyzerEndpoint, hl7TakenByPrevious, sendAstm, sendHl7 } from '../fixtures/consumption-runs.ts';
import { usePreviousRelease } from '../fixtures/previous-release.ts';

/** The tree before consumption keys stopped naming the row index (HEAD when this test was written). */
const PREVIOUS = '1c29f8b';

const prev = usePreviousRelease(PREVIOUS, 'lgw-s23-consumption-');

async function openStore(dir: string, extra: Record<string, unknown> = {}): Promise<EventStore> {
  const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0, ...extra });
  prev.cleanups.push(() => store.close());
  return store;
}

// ------------------------------------------------------------------ ASTM (generic profile)

const generic = loadProfile('generic-astm');
const row = consumptionRows;
const astmProfile = (...consumption: ConsumptionRow[]): Profile => ({ ...generic, consumption });

/** One run of GLU and CREA on specimen `specimen`, sent in a session at `h14` (a resend has another). */
const astmRun = (h14: string, specimen = 'S-1'): string[] => [
  `H|\\^&|||M1|||||||P|1|${h14}`,
  'P|1',
  `O|1|${specimen}||^^^GLU\\^^^CREA|R|20260114080000`,
  'R|1|^^^GLU|5.0|mmol/L||||F||op||20260114090000',
  'R|2|^^^CREA|80|umol/L||||F||op||20260114090000',
  'L|1|N',
];

describe('ASTM: a resend after the consumption table was edited', () => {
  it('a row inserted above, or the rows reordered: the resent run draws nothing more', async () => {
    const store = await openStore(await prev.dataDir());
    await sendAstm(astmEndpoint(store, astmProfile(row.glu, row.crea, row.dead)), store, astmRun('20260114090500'));
    const first = await draws(store);
    expect(first).toEqual(['S-1 CREA-R1 CREA', 'S-1 DEAD run', 'S-1 GLU-R1 GLU']);

    // IT adds a TSH reagent at the top of the table (not part of this run); the analyzer resends.
    await sendAstm(astmEndpoint(store, astmProfile(row.tsh, row.glu, row.crea, row.dead)), store, astmRun('20260114093000'));
    expect(await draws(store)).toEqual(first);

    // IT reorders the table, and removes the TSH row again; another resend.
    await sendAstm(astmEndpoint(store, astmProfile(row.dead, row.crea, row.glu)), store, astmRun('20260114100000'));
    expect(await draws(store)).toEqual(first);
  });

  it('a row limited to QC runs inserted above: a patient run resent draws nothing more', async () => {
    const store = await openStore(await prev.dataDir());
    await sendAstm(astmEndpoint(store, astmProfile(row.glu, row.crea, row.dead)), store, astmRun('20260114090500'));
    const first = await draws(store);
    await sendAstm(astmEndpoint(store, astmProfile(row.qcWash, row.glu, row.crea, row.dead)), store, astmRun('20260114093000'));
    expect(await draws(store)).toEqual(first);
  });

  it('two identical rows are two draws, once each; a resend, also after a row went between them, draws nothing more', async () => {
    const store = await openStore(await prev.dataDir());
    await sendAstm(astmEndpoint(store, astmProfile(row.glu, row.glu, row.dead)), store, astmRun('20260114090500'));
    const first = await draws(store);
    expect(first).toEqual(['S-1 DEAD run', 'S-1 GLU-R1 GLU', 'S-1 GLU-R1 GLU']);

    await sendAstm(astmEndpoint(store, astmProfile(row.glu, row.glu, row.dead)), store, astmRun('20260114093000'));
    expect(await draws(store)).toEqual(first);
    await sendAstm(astmEndpoint(store, astmProfile(row.glu, row.crea, row.dead, row.glu)), store, astmRun('20260114100000'));
    // The CREA row is new for this run: its one draw, nothing else.
    expect(await draws(store)).toEqual([...first, 'S-1 CREA-R1 CREA'].sort());
  });

  it('a new row draws once: on a new run with the others, on a resent run alone', async () => {
    const store = await openStore(await prev.dataDir());
    await sendAstm(astmEndpoint(store, astmProfile(row.glu, row.crea, row.dead)), store, astmRun('20260114090500'));
    const first = await draws(store);

    // A cuvette per test, added at the top.
    const edited = astmProfile(row.cuvette, row.glu, row.crea, row.dead);
    await sendAstm(astmEndpoint(store, edited), store, astmRun('20260114110000', 'S-2'));
    const second = await draws(store);
    expect(second).toEqual([...first, 'S-2 CREA-R1 CREA', 'S-2 CUVETTE CREA', 'S-2 CUVETTE GLU', 'S-2 DEAD run', 'S-2 GLU-R1 GLU'].sort());
    // The first run resent: its cuvettes (the row is new for it), nothing else.
    await sendAstm(astmEndpoint(store, edited), store, astmRun('20260114113000'));
    expect(await draws(store)).toEqual([...second, 'S-1 CUVETTE CREA', 'S-1 CUVETTE GLU'].sort());
    // And again: nothing more.
    await sendAstm(astmEndpoint(store, edited), store, astmRun('20260114120000'));
    await sendAstm(astmEndpoint(store, edited), store, astmRun('20260114120500', 'S-2'));
    expect(await draws(store)).toEqual([...second, 'S-1 CUVETTE CREA', 'S-1 CUVETTE GLU'].sort());
  });
});

// ------------------------------------------------------------------ HL7 analyzer (Mindray BS)

const mindray = loadProfile('mindray-bs-series');

const extraRow: ConsumptionRow = { per: 'test', test: 'TSH', productCode: 'MR-BS-TSH', quantity: 1, uom: 'Units' };

describe('HL7 analyzer: a resend after the consumption table was edited', () => {
  it('a row inserted above: the resent run draws nothing more', async () => {
    const store = await openStore(await prev.dataDir());
    const [ack] = await sendHl7(hl7AnalyzerEndpoint(store, mindray), [bsMessage('61', '20260114103000')]);
    expect(ack).toMatch(/MSA\|AA\|61/);
    const first = await draws(store);
    expect(first).toEqual(['B-2 MR-BS-ALT ALT', 'B-2 MR-BS-CUVETTE-WASH ALT', 'B-2 MR-BS-PROBE-WASH run']);

    const [again] = await sendHl7(hl7AnalyzerEndpoint(store, { ...mindray, consumption: [extraRow, ...mindray.consumption] }), [bsMessage('62', '20260114104500')]);
    expect(again).toMatch(/MSA\|AA\|62/);
    expect(await draws(store)).toEqual(first);
  });
});

// ------------------------------------------------------------------ upgrade

describe('upgrade: draws an earlier release stored under row-index keys', () => {
  it('ASTM: the run the earlier release took, resent after the upgrade, draws nothing more; a new run draws', async () => {
    const dir = await prev.dataDir();
    const profile = astmProfile(row.glu, row.crea, row.dead);
    await astmTakenByPrevious(prev.src, dir, profile, astmRun('20260114090500'));
    const store = await openStore(dir);
    const first = await draws(store);
    expect(first).toEqual(['S-1 CREA-R1 CREA', 'S-1 DEAD run', 'S-1 GLU-R1 GLU']);
    expect(store.mayHoldEarlierReleaseKeys()).toBe(true);

    // The analyzer resends the run after the upgrade (the table unchanged).
    await sendAstm(astmEndpoint(store, profile), store, astmRun('20260114093000'));
    expect(await draws(store)).toEqual(first);
    // A run first seen now draws, once.
    await sendAstm(astmEndpoint(store, profile), store, astmRun('20260114110000', 'S-2'));
    await sendAstm(astmEndpoint(store, profile), store, astmRun('20260114110500', 'S-2'));
    expect(await draws(store)).toEqual([...first, 'S-2 CREA-R1 CREA', 'S-2 DEAD run', 'S-2 GLU-R1 GLU'].sort());
  });

  it('HL7 analyzer: the run the earlier release took, resent after the upgrade, draws nothing more', async () => {
    const dir = await prev.dataDir();
    const [ack] = await hl7TakenByPrevious(prev.src, dir, mindray, [bsMessage('61', '20260114103000')]);
    expect(ack).toMatch(/MSA\|AA\|61/);
    const store = await openStore(dir);
    const first = await draws(store);
    expect(first).toEqual(['B-2 MR-BS-ALT ALT', 'B-2 MR-BS-CUVETTE-WASH ALT', 'B-2 MR-BS-PROBE-WASH run']);

    const [again] = await sendHl7(hl7AnalyzerEndpoint(store, mindray), [bsMessage('62', '20260114104500')]);
    expect(again).toMatch(/MSA\|AA\|62/);
    expect(await draws(store)).toEqual(first);
  });

  it('a store this release began is not looked up under row-index keys: no store read beyond the new key', async () => {
    const store = await openStore(await prev.dataDir());
    expect(store.mayHoldEarlierReleaseKeys()).toBe(false);
    const profile = astmProfile(row.glu, row.crea, row.dead);
    const asked: string[] = [];
    const used = store.idempotencyKeyUsed.bind(store);
    store.idempotencyKeyUsed = (key: string) => {
      asked.push(key);
      return used(key);
    };
    await sendAstm(astmEndpoint(store, profile), store, astmRun('20260114090500'));
    expect(asked.filter((k) => k.includes('|consumption|'))).toEqual([]);
    expect(await draws(store)).toEqual(['S-1 CREA-R1 CREA', 'S-1 DEAD run', 'S-1 GLU-R1 GLU']);
  });
});
