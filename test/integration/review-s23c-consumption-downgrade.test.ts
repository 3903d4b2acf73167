/**
 * A store downgraded and upgraded again: this release (key era 3, consumption keys naming what a
 * row draws) opened it, then the release before (1c29f8b, era 2: keys ending with the row's index)
 * ran on it again for a while (a lab rolling back), then this release again. The release before
 * rewrites the store's `keyEra` record as its own (`{ version: 2, since, earlier }`), so era 3's
 * opening is made anew at the second upgrade: the runs the release before took while it ran again
 * are dated before it and looked up in the row-index form past the window, for good. Had era 3's
 * first opening been kept, a run the release before took during the rollback, re-sent by the
 * analyzer past the window, would have drawn its reagents a second time. No defect found; this
 * guards it.
 *
 * Real parts: the release before (PREVIOUS, from `git archive`) opens the same LevelDB data dir
 * and normalizes, resolves and commits the run as its analyzer endpoint does; so does this one.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CONSUMPTION_KEY_ERA } from '../../gateway/src/profiles/consumption-keys.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import type { Profile } from '../../gateway/src/profiles/types.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { type AstmTake, astmCommittedByPrevious, astmCommittedNow, astmTime, consumptionRows } from '../fixtures/consumption-runs.ts';
import { usePreviousRelease } from '../fixtures/previous-release.ts';

/** The release before consumption keys stopped naming the row index (KEY_ERA 2). */
const PREVIOUS = '1c29f8b';

const prev = usePreviousRelease(PREVIOUS, 'lgw-s23c-downgrade-');

afterEach(() => {
  vi.useRealTimers();
});

const DAY = 86_400_000;

const profile: Profile = { ...loadProfile('generic-astm'), consumption: [consumptionRows.glu, consumptionRows.dead] };

/** One GLU run on `specimen` measured at `r13`, sent in a session at `h14` (a resend has another). */
const run = (h14: string, r13: string, specimen: string): string =>
  [`H|\\^&|||M1|||||||P|1|${h14}`, 'P|1', `O|1|${specimen}||^^^GLU|R|${r13}`, `R|1|^^^GLU|5.0|mmol/L||||F||op||${r13}`, 'L|1|N'].join('\r');

const take: AstmTake = { analyzerId: 'an-1', profile, messageType: 'ASTM^RESULT' };

/** The release before opens `dir` and takes `text` (its own normalizer, resolution and store). */
const takenByPrevious = (dir: string, text: string): Promise<void> => astmCommittedByPrevious(prev.src, dir, take, text, new Date().toISOString());

const takenNow = (store: EventStore, text: string): Promise<string[]> => astmCommittedNow(store, take, text);

async function draws(store: EventStore): Promise<string[]> {
  return (await store.listEvents({ type: 'consumable.used', limit: 100 })).flatMap((e) => (e.event.type === 'consumable.used' ? [`${e.event.data.specimenId} ${e.event.data.productCode}`] : [])).sort();
}

describe('a store this release opened, then the release before (a rollback), then this release again', () => {
  it('a run the release before took during the rollback, re-sent past the window, draws nothing more', async () => {
    // The days pass on the gateway's clock (and the analyzer's): Date alone is faked.
    const start = Date.now();
    vi.useFakeTimers({ toFake: ['Date'], now: start });
    const dir = await prev.dataDir();
    await takenByPrevious(dir, run(astmTime(start - 7_200_000), astmTime(start - 7_200_000), 'S-1'));
    // The upgrade.
    const upgraded = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
    const firstUpgrade = upgraded.earlierReleaseKeysBefore(CONSUMPTION_KEY_ERA);
    expect(firstUpgrade).toBeDefined();
    await upgraded.close();
    // Five days later, the rollback: the release before takes S-2, measured then (past the margin
    // from the first upgrade).
    vi.setSystemTime(start + 5 * DAY);
    const ranAt = astmTime(start + 5 * DAY);
    await takenByPrevious(dir, run(ranAt, ranAt, 'S-2'));
    // Ten days after the first upgrade, this release again; past its window (retentionDays 0).
    vi.setSystemTime(start + 10 * DAY);
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0, retention: { retentionDays: 0 } });
    try {
      expect(store.mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)).toBe(false);
      expect(store.earlierReleaseKeysBefore(CONSUMPTION_KEY_ERA)).toBeGreaterThanOrEqual(start + 10 * DAY);
      const before = await draws(store);
      expect(before).toEqual(['S-1 DEAD', 'S-1 GLU-R1', 'S-2 DEAD', 'S-2 GLU-R1']);
      // The analyzer re-sends S-2 from its memory, a day on.
      vi.setSystemTime(start + 11 * DAY);
      expect(await takenNow(store, run(astmTime(start + 11 * DAY), ranAt, 'S-2'))).toEqual([]);
      expect(await draws(store)).toEqual(before);
    } finally {
      await store.close();
    }
  });
});
