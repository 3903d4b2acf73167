/**
 * cobas c 111: an undated calibration (M.CR without a calibration time, dated by its message) the
 * release before took (era 2: consumption keys ending with the row's index in the profile's table),
 * sent again from the analyzer's menu after IT edited the consumption table, which the upgrade is
 * what lets it do. Its draws must be found whatever the edit moved, within the upgrade window and
 * past it (the calibration's date does not tell it was taken before the upgrade).
 *
 * Real parts: the release before (PREVIOUS, from `git archive`) normalizes, resolves and commits
 * the calibration into a LevelDB data dir; this release opens the same dir and takes the re-send
 * as its analyzer endpoint does (normalizeAstmMessage, resolveAnalyzerResult, commit).
 */
import { describe, expect, it } from 'vitest';
import { CONSUMPTION_KEY_ERA } from '../../gateway/src/profiles/consumption-keys.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import type { ConsumptionRow, Profile } from '../../gateway/src/profiles/types.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { astmCommittedByPrevious, astmCommittedNow, astmTime, c111Albumin, c111Calibration, c111Message } from '../fixtures/consumption-runs.ts';
import { usePreviousRelease } from '../fixtures/previous-release.ts';

/** The release before consumption keys stopped naming the row index (KEY_ERA 2). */
const PREVIOUS = '1c29f8b';

const prev = usePreviousRelease(PREVIOUS, 'lgw-s23c-calibration-table-');

const c111 = loadProfile('roche-cobas-c111');
const withTable = (consumption: ConsumptionRow[]): Profile => ({ ...c111, consumption });
const table = c111.consumption;
/** The profile's rows by product: ALB, GLU, CHOL, …, the cuvette (every test), the cleaner (per run). */
const row = (product: string): ConsumptionRow => table.find((r) => r.productCode === product)!;

/** The release before takes the calibration `text` into `dir`, with the profile's table as shipped, an hour ago. */
const takenByPrevious = (dir: string, text: string): Promise<void> =>
  astmCommittedByPrevious(prev.src, dir, c111Calibration(c111), text, new Date(Date.now() - 3_600_000).toISOString());

/** This release takes `text` as the analyzer endpoint does, with `profile`; the ids of the events it stored. */
const takenNow = (store: EventStore, profile: Profile, text: string): Promise<string[]> => astmCommittedNow(store, c111Calibration(profile), text);

async function calibrationDraws(store: EventStore): Promise<string[]> {
  return (await store.listEvents({ type: 'consumable.used', limit: 100 })).flatMap((e) => (e.event.type === 'consumable.used' ? [e.event.data.productCode] : [])).sort();
}

describe('cobas c 111: an undated calibration the release before took, sent again after IT edited the table', () => {
  it('within the upgrade window, a row above the cuvette and the cleaner removed: nothing more drawn', async () => {
    const dir = await prev.dataDir();
    await takenByPrevious(dir, c111Message(astmTime(Date.now() - 3_600_000), c111Albumin(1)));
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
    prev.cleanups.push(() => store.close());
    expect(store.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(true);
    const first = await calibrationDraws(store);
    expect(first).toEqual(['ROC-C111-ALB', 'ROC-C111-CLEANER', 'ROC-C111-CUVETTE']);

    // IT drops the CHOL row (the lab no longer runs it): the cuvette and the cleaner move up one.
    // Before: the albumin row, unmoved, was found at its index, and the calibration's other draws
    // were keyed at their indices now, which the release before never used: the cuvette and the
    // cleaner were drawn from stock a second time.
    const edited = withTable(table.filter((r) => r.productCode !== 'ROC-C111-CHOL'));
    expect(await takenNow(store, edited, c111Message(astmTime(Date.now()), c111Albumin(1)))).toEqual([]);
    expect(await calibrationDraws(store)).toEqual(first);
  });

  it('past the upgrade window, a row added at the top: nothing more drawn; another calibration draws once', async () => {
    const dir = await prev.dataDir();
    await takenByPrevious(dir, c111Message(astmTime(Date.now() - 3_600_000), c111Albumin(1)));
    // Past the window (retentionDays 0: over at once, as it is retentionDays after the upgrade).
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0, retention: { retentionDays: 0 } });
    prev.cleanups.push(() => store.close());
    expect(store.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(false);
    const first = await calibrationDraws(store);

    // IT adds HbA1c's reagent at the top; the operator sends the calibration again 40 days later.
    // Before: the row-index form at M|1 was looked up at the indices of now alone (all moved), and
    // the calibration, dated by its message, was not looked up at other indices past the window:
    // its reagent, cuvette and cleaner were drawn a second time.
    const hba1c: ConsumptionRow = { per: 'test', test: 'HBA1C', productCode: 'ROC-C111-HBA1C', quantity: 1, uom: 'Units' };
    const edited = withTable([hba1c, ...table]);
    expect(await takenNow(store, edited, c111Message(astmTime(Date.now() + 40 * 86_400_000), c111Albumin(1)))).toEqual([]);
    expect(await calibrationDraws(store)).toEqual(first);

    // Another calibration (another lot: another record) draws once, with the table as it is.
    const other = c111Albumin(1).replace('64521301', '64521302');
    expect((await takenNow(store, edited, c111Message(astmTime(Date.now() + 41 * 86_400_000), other))).length).toBeGreaterThan(0);
    expect(await calibrationDraws(store)).toEqual([...first, 'ROC-C111-ALB', 'ROC-C111-CLEANER', 'ROC-C111-CUVETTE'].sort());
  });

  it('unedited, past the window: nothing more drawn (the case 2392ace covers)', async () => {
    const dir = await prev.dataDir();
    await takenByPrevious(dir, c111Message(astmTime(Date.now() - 3_600_000), c111Albumin(1)));
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0, retention: { retentionDays: 0 } });
    prev.cleanups.push(() => store.close());
    const first = await calibrationDraws(store);
    expect(await takenNow(store, c111, c111Message(astmTime(Date.now() + 40 * 86_400_000), c111Albumin(1)))).toEqual([]);
    expect(await calibrationDraws(store)).toEqual(first);
  });
});
