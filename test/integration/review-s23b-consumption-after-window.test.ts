/**
 * A run the release before the consumption keys changed (era 2: keys ending with the row's index
 * in the profile's table) took, sent again by the analyzer after the upgrade window: past
 * `retentionDays` after the upgrade. The idempotency keys of that release's draws stay in the store
 * for good (tombstones, also after retention pruned the events), so that release never drew a
 * resent run again, however late it came: a c 111 or an ASTM analyzer re-transmitting results
 * from its memory after a LIS outage, the operator re-sending one. Since e0bdc86 the row-index
 * form was looked up only within the window (KEY_ERA 3's `retentionDays`): past it the resent run
 * had new keys for every draw, and its reagents were taken from Odoo's stock a second time. Now a
 * draw of a run dated before the store's upgrade to era 3 (two days' margin for the analyzer's
 * clock) is looked up in the row-index form after the window too; a run dated after it never is,
 * nor any run on a store era 3 began.
 *
 * Real parts: the release before (PREVIOUS, from `git archive`) takes the run over TCP into a
 * LevelDB data dir; this release opens the same dir with `retentionDays: 0` (the window over at
 * once, as it is `retentionDays` after the upgrade) and takes the resend over TCP, the endpoint
 * wired as gateway.ts wires it (normalize, resolveAnalyzerResult, commit).
 */
import { describe, expect, it } from 'vitest';
import type { HostQuery } from '../../gateway/src/astm/normalize.ts';
import type { AstmEndpoint } from '../../gateway/src/ingress/astm/astm-endpoint.ts';
import { CONSUMPTION_KEY_ERA } from '../../gateway/src/profiles/consumption-keys.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import type { ConsumptionRow, Profile } from '../../gateway/src/profiles/types.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { astmCommittedByPrevious, astmCommittedNow, astmEndpoint, astmTakenByPrevious, astmTime, bsMessage, c111Albumin, c111Calibration, c111Message, consumptionRows, draws, hl7AnalyzerEndpoint, hl7TakenByPrevious, sendAstm, sendHl7 } from '../fixtures/consumption-runs.ts';
import { usePreviousRelease } from '../fixtures/previous-release.ts';

/** The release before consumption keys stopped naming the row index (KEY_ERA 2). */
const PREVIOUS = '1c29f8b';

const prev = usePreviousRelease(PREVIOUS, 'lgw-s23b-consumption-window-');

const generic = loadProfile('generic-astm');
const profile: Profile = { ...generic, consumption: [consumptionRows.glu, consumptionRows.crea, consumptionRows.dead] };

/** One run of GLU and CREA on `specimen` measured at `r13`, sent in a session at `h14` (a resend has another). */
const astmRun = (h14: string, r13: string, specimen = 'S-1'): string[] => [
  `H|\\^&|||M1|||||||P|1|${h14}`,
  'P|1',
  `O|1|${specimen}||^^^GLU\\^^^CREA|R|${r13}`,
  `R|1|^^^GLU|5.0|mmol/L||||F||op||${r13}`,
  `R|2|^^^CREA|80|umol/L||||F||op||${r13}`,
  'L|1|N',
];

describe('a run the release before took, resent past the upgrade window', () => {
  it('draws nothing more; a run measured after the upgrade draws once, and is not looked up in the row-index form', async () => {
    const dir = await prev.dataDir();
    const ranAt = astmTime(Date.now() - 3_600_000);
    await astmTakenByPrevious(prev.src, dir, profile, astmRun(astmTime(Date.now() - 3_000_000), ranAt));

    // This release, past the window (retentionDays 0: over at once, as it is retentionDays after the upgrade).
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0, retention: { retentionDays: 0 } });
    prev.cleanups.push(() => store.close());
    expect(store.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(false);
    const first = await draws(store);
    expect(first).toEqual(['S-1 CREA-R1 CREA', 'S-1 DEAD run', 'S-1 GLU-R1 GLU']);

    // The analyzer re-transmits the run from its memory.
    await sendAstm(astmEndpoint(store, profile), store, astmRun(astmTime(Date.now()), ranAt));
    expect(await draws(store)).toEqual(first);

    // A run measured three days after the upgrade: drawn once, its keys of now alone looked up.
    const asked: string[] = [];
    const used = store.idempotencyKeyUsed.bind(store);
    store.idempotencyKeyUsed = (key: string) => {
      asked.push(key);
      return used(key);
    };
    const later = astmTime(Date.now() + 3 * 86_400_000);
    await sendAstm(astmEndpoint(store, profile), store, astmRun(later, later, 'S-2'));
    expect(asked.filter((k) => k.includes('|consumption|'))).toEqual([]);
    expect(await draws(store)).toEqual([...first, 'S-2 CREA-R1 CREA', 'S-2 DEAD run', 'S-2 GLU-R1 GLU'].sort());
  });

  it('a store this release began: no row-index look-up, whatever the run date', async () => {
    const dir = await prev.dataDir();
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0, retention: { retentionDays: 0 } });
    prev.cleanups.push(() => store.close());
    const asked: string[] = [];
    const used = store.idempotencyKeyUsed.bind(store);
    store.idempotencyKeyUsed = (key: string) => {
      asked.push(key);
      return used(key);
    };
    const longAgo = astmTime(Date.now() - 90 * 86_400_000);
    await sendAstm(astmEndpoint(store, profile), store, astmRun(astmTime(Date.now()), longAgo));
    expect(asked.filter((k) => k.includes('|consumption|'))).toEqual([]);
    expect(await draws(store)).toEqual(['S-1 CREA-R1 CREA', 'S-1 DEAD run', 'S-1 GLU-R1 GLU']);
  });
});

// ------------------------------------------------------------------ cobas c 111: an undated calibration

/**
 * An undated calibration (c 111 M.CR without a calibration time) is dated by its message's
 * header: a re-send is dated when it is sent, so the run date does not tell it was taken before
 * the upgrade. Calibration-keys.ts looks its earlier forms up for good (an earlier release's
 * place, M|2 to M|32); the place the release before keyed it at, M|1, in the row-index form, is
 * one of them now. Before, past the window, the operator sending the calibration again from the
 * c 111's menu drew its reagent, cuvette and cleaner a second time.
 */
describe('cobas c 111: an undated calibration the release before took, sent again past the upgrade window', () => {
  const c111 = loadProfile('roche-cobas-c111');

  it('draws nothing more', async () => {
    const dir = await prev.dataDir();
    const taken = c111Message(astmTime(Date.now() - 3_600_000), c111Albumin(1));
    await astmCommittedByPrevious(prev.src, dir, c111Calibration(c111), taken, new Date(Date.now() - 3_600_000).toISOString());
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0, retention: { retentionDays: 0 } });
    prev.cleanups.push(() => store.close());
    const calibrationDraws = async (): Promise<string[]> =>
      (await store.listEvents({ type: 'consumable.used', limit: 100 })).flatMap((e) => (e.event.type === 'consumable.used' ? [e.event.data.productCode] : [])).sort();
    const first = await calibrationDraws();
    expect(first.length).toBeGreaterThan(0);

    // The operator sends the calibration again from the analyzer's menu, 40 days later (past the
    // window, and past the margin for a run date: the message is dated when it is sent).
    const again = c111Message(astmTime(Date.now() + 40 * 86_400_000), c111Albumin(1));
    expect(await astmCommittedNow(store, c111Calibration(c111), again)).toEqual([]);
    expect(await calibrationDraws()).toEqual(first);
  });
});

// ------------------------------------------------------------------ the table edited after the upgrade

/**
 * The upgrade is what lets IT edit a consumption table freely, and it may do so at once: a run the
 * release before took (row-index keys) and the analyzer sends again after the edit has its rows at
 * other indices. Before, only the row's index now was looked up: every row the edit moved drew its
 * reagent a second time. Now a draw not found there is looked up at the other indices the table
 * can have had, its earlier release's draws of the same per, test and product matched in table
 * order (the second identical row to the second).
 */
describe('a run the release before took, resent after IT edited the table', () => {
  const r = consumptionRows;

  async function takenByPreviousWith(dir: string, consumption: ConsumptionRow[], records: string[]): Promise<void> {
    await astmTakenByPrevious(prev.src, dir, { ...generic, consumption }, records);
  }

  function endpointWith(store: EventStore, consumption: ConsumptionRow[]): AstmEndpoint<HostQuery> {
    return astmEndpoint(store, { ...generic, consumption });
  }

  it('a row added at the top, the rows reordered, one removed: draws nothing more; a new run draws with the table as it is', async () => {
    const dir = await prev.dataDir();
    const ranAt = astmTime(Date.now() - 3_600_000);
    await takenByPreviousWith(dir, [r.glu, r.crea, r.cuvette, r.dead], astmRun(astmTime(Date.now() - 3_000_000), ranAt));
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
    prev.cleanups.push(() => store.close());
    expect(store.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(true);
    const first = await draws(store);
    expect(first).toEqual(['S-1 CREA-R1 CREA', 'S-1 CUVETTE CREA', 'S-1 CUVETTE GLU', 'S-1 DEAD run', 'S-1 GLU-R1 GLU']);

    // IT adds TSH at the top and moves the dead volume first; the analyzer resends the run.
    await sendAstm(endpointWith(store, [r.tsh, r.dead, r.crea, r.glu, r.cuvette]), store, astmRun(astmTime(Date.now()), ranAt));
    expect(await draws(store)).toEqual(first);
    // IT removes the TSH row again and the cuvettes; another resend.
    await sendAstm(endpointWith(store, [r.dead, r.glu, r.crea]), store, astmRun(astmTime(Date.now() + 60_000), ranAt));
    expect(await draws(store)).toEqual(first);

    // A run first seen now draws once, with the table as it is.
    await sendAstm(endpointWith(store, [r.dead, r.glu, r.crea]), store, astmRun(astmTime(Date.now()), ranAt, 'S-2'));
    expect(await draws(store)).toEqual([...first, 'S-2 CREA-R1 CREA', 'S-2 DEAD run', 'S-2 GLU-R1 GLU'].sort());
  });

  it('two identical rows moved apart, and a third added: the two draw nothing more, the third once', async () => {
    const dir = await prev.dataDir();
    const ranAt = astmTime(Date.now() - 3_600_000);
    await takenByPreviousWith(dir, [r.glu, r.crea, r.glu, r.dead], astmRun(astmTime(Date.now() - 3_000_000), ranAt));
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
    prev.cleanups.push(() => store.close());
    const first = await draws(store);
    expect(first).toEqual(['S-1 CREA-R1 CREA', 'S-1 DEAD run', 'S-1 GLU-R1 GLU', 'S-1 GLU-R1 GLU']);

    await sendAstm(endpointWith(store, [r.dead, r.glu, r.tsh, r.crea, r.glu]), store, astmRun(astmTime(Date.now()), ranAt));
    expect(await draws(store)).toEqual(first);
    await sendAstm(endpointWith(store, [r.glu, r.glu, r.glu, r.crea, r.dead]), store, astmRun(astmTime(Date.now() + 60_000), ranAt));
    expect(await draws(store)).toEqual([...first, 'S-1 GLU-R1 GLU'].sort());
  });

  /**
   * Two rows drawing the same product for the same test (x2), and IT removes the first: the run
   * drew both when it ran, so its resend draws nothing more (the remaining row takes the first
   * draw's key); a new run draws the one row left, with its own quantity.
   */
  it('of two identical rows, the first removed: a resend draws nothing more, a new run the row left', async () => {
    const store = await EventStore.open({ dataDir: await prev.dataDir(), pruneIntervalMs: 0, minFreeBytes: 0 });
    prev.cleanups.push(() => store.close());
    const second = { ...r.glu, quantity: 0.3, note: 'second pipetting' };
    const ranAt = astmTime(Date.now() - 3_600_000);
    await sendAstm(endpointWith(store, [r.glu, second, r.dead]), store, astmRun(astmTime(Date.now() - 3_000_000), ranAt));
    const first = await draws(store);
    expect(first).toEqual(['S-1 DEAD run', 'S-1 GLU-R1 GLU', 'S-1 GLU-R1 GLU']);
    await sendAstm(endpointWith(store, [second, r.dead]), store, astmRun(astmTime(Date.now()), ranAt));
    expect(await draws(store)).toEqual(first);
    await sendAstm(endpointWith(store, [second, r.dead]), store, astmRun(astmTime(Date.now()), ranAt, 'S-2'));
    const quantities = (await store.listEvents({ type: 'consumable.used', limit: 100 })).flatMap((e) =>
      e.event.type === 'consumable.used' && e.event.data.specimenId === 'S-2' && e.event.data.productCode === 'GLU-R1' ? [e.event.data.quantity] : [],
    );
    expect(quantities).toEqual([0.3]);
  });
});

// ------------------------------------------------------------------ HL7 analyzer (Mindray BS)

describe('HL7 analyzer: a run the release before took, resent after IT edited the table', () => {
  const mindray = loadProfile('mindray-bs-series');

  it('a row added at the top and the table reversed: the resent run (another control id) draws nothing more', async () => {
    const dir = await prev.dataDir();
    const [ack] = await hl7TakenByPrevious(prev.src, dir, mindray, [bsMessage('61', '20260114103000')]);
    expect(ack).toMatch(/MSA\|AA\|61/);
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
    prev.cleanups.push(() => store.close());
    const first = await draws(store);
    expect(first).toEqual(['B-2 MR-BS-ALT ALT', 'B-2 MR-BS-CUVETTE-WASH ALT', 'B-2 MR-BS-PROBE-WASH run']);

    const edited: Profile = { ...mindray, consumption: [{ per: 'test', test: 'TSH', productCode: 'MR-BS-TSH', quantity: 1, uom: 'Units' }, ...[...mindray.consumption].reverse()] };
    const [again] = await sendHl7(hl7AnalyzerEndpoint(store, edited), [bsMessage('62', '20260114104500')]);
    expect(again).toMatch(/MSA\|AA\|62/);
    expect(await draws(store)).toEqual(first);
  });
});
