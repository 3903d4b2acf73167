import { describeError } from '../errors.ts';
import { idempotencyKey } from '../events/keys.ts';
import type { DraftEvent } from '../events/types.ts';
import type { GatewayStore } from '../store/types.ts';

/**
 * The key a `consumable.used` event had until consumption keys stopped naming the row's index in
 * the profile's `consumption` table (consumption.ts `consumptionDrafts`): the same parts, then the
 * product and the row's index. Every release before stored its draws under this form.
 */
export function rowIndexConsumptionKey(
  run: { keyPrefix: string; analyzerId: string; specimenId: string; runKey: string },
  per: 'test' | 'run',
  testCode: string | undefined,
  productCode: string,
  rowIndex: number,
): string {
  return idempotencyKey(run.keyPrefix, run.analyzerId, 'consumption', run.specimenId, run.runKey, per, testCode ?? 'run', productCode, rowIndex);
}

/** A run's parts of a consumption key (consumption.ts RunContext). */
type RunKeyParts = { keyPrefix: string; analyzerId: string; specimenId: string; runKey: string };

/**
 * What is noted of a draft: the key it was made with, its row-index form, and what finds the
 * earlier release's draw when the table was edited since (the same run, per, test and product at
 * another index; `nth`: the draft's place among the run's draws identical in those, `rows`: the
 * table's length now).
 */
interface RowIndexNote {
  now: string;
  earlier: string;
  slot: string;
  nth: number;
  rows: number;
  at: (rowIndex: number) => string;
  /** The run is dated by its message, not by the analyzer (noteUndatedRun): looked up whatever its date. */
  undated?: boolean;
}

/**
 * The row-index key of each draft consumptionDrafts made, by the draft's `data` object (with the
 * key it was made with, so that a draft whose key was changed since is not taken for it). The
 * steps between the normalizer and the commit (an analyzer's accession resolution, the HL7
 * intake's) copy an event to change its correlation or partition, never a consumption's `data`:
 * the note follows the event through both intakes, the ASTM one and the HL7 analyzer one, without
 * a field of its own in their results. Held weakly: gone with the event.
 */
const rowIndexKeys = new WeakMap<object, RowIndexNote>();

/** Notes the row-index form of a draft's key (consumptionDrafts): its row's index now, its place among identical draws, the table's length. */
export function noteRowIndexKey(
  draft: DraftEvent,
  run: RunKeyParts,
  draw: { per: 'test' | 'run'; testCode: string | undefined; productCode: string },
  rowIndex: number,
  nth: number,
  rows: number,
): void {
  const at = (i: number): string => rowIndexConsumptionKey(run, draw.per, draw.testCode, draw.productCode, i);
  const slot = [run.keyPrefix, run.analyzerId, run.specimenId, run.runKey, draw.per, draw.testCode ?? '', draw.productCode].join('\u0000');
  rowIndexKeys.set(draft.data, { now: draft.idempotencyKey, earlier: at(rowIndex), slot, nth, rows, at });
}

/** The row-index form of a consumption draft's key, when consumptionDrafts made it with the key it has. */
export function rowIndexKeyOf(event: DraftEvent): string | undefined {
  return noteOf(event)?.earlier;
}

/**
 * A draft of a run the analyzer gave no time for, dated by its message (an undated cobas c 111
 * calibration, astm/normalize.ts): its date does not tell whether the earlier release took it, so
 * past the upgrade window it is looked up whatever its date, as long as the store was upgraded
 * (keepConsumptionKeysOfEarlierReleases). Its run identity (a hash of the record) is the same in
 * every re-send.
 */
export function noteUndatedRun(draft: DraftEvent): void {
  const note = noteOf(draft);
  if (note !== undefined) note.undated = true;
}

function noteOf(event: DraftEvent): RowIndexNote | undefined {
  if (event.type !== 'consumable.used') return undefined;
  const noted = rowIndexKeys.get(event.data);
  return noted !== undefined && noted.now === event.idempotencyKey ? noted : undefined;
}

/**
 * How many indices beyond the table's length now a row may have had in the table the earlier
 * release keyed a run with (rows removed since).
 */
export const EDITED_TABLE_MARGIN = 16;

/**
 * The key era (store/event-store.ts KEY_ERA) from which consumption keys name what a row draws:
 * the store may hold row-index keys while `mayHoldEarlierReleaseKeys(CONSUMPTION_KEY_ERA)`, and
 * for good for runs dated before `earlierReleaseKeysBefore(CONSUMPTION_KEY_ERA)`.
 */
export const CONSUMPTION_KEY_ERA = 3;

/**
 * How much later than the store's upgrade a run may be dated and still be one the earlier release
 * took: the analyzer's clock is not the gateway's (set by hand, a time zone off, no time server).
 */
export const RUN_CLOCK_MARGIN_MS = 2 * 86_400_000;

/** What the look-up reads of the store (`idempotencyKeyUsed` where the store has it: pruned events count too). */
export type ConsumptionKeyStore = Pick<GatewayStore, 'getEventByKey' | 'idempotencyKeyUsed' | 'mayHoldEarlierReleaseKeys' | 'earlierReleaseKeysBefore'>;

/**
 * A draw an earlier release stored keeps the key it was stored under. Those releases ended a
 * consumption's key with its row's index in the profile's table; the key now names what the row
 * draws (consumption.ts). Without this, every run an earlier release took and the analyzer sends
 * again after the upgrade (a resend of a message whose ACK it missed, a result the operator
 * re-transmits) would have new keys for all its draws, and the relay would take its reagents from
 * Odoo's stock a second time (test/integration/review-s23-consumption-row-identity.test.ts).
 *
 * Looked up for a draw whose key of now the store does not hold: the row-index form with the
 * row's index in the table as it is now (most likely unchanged since the upgrade), else at the
 * other indices the table can have had (IT edited it since: below); when the store holds it, the
 * draw takes that key and the store skips it as the resend it is. When:
 * - while the store may hold keys of an earlier release (`mayHoldEarlierReleaseKeys` of
 *   CONSUMPTION_KEY_ERA: for `retentionDays` after the upgrade to it; not the HL7 fingerprints'
 *   window, which a store era 2 wrote may have closed), every draw;
 * - after that, a draw of a run dated before the upgrade (`earlierReleaseKeysBefore`, plus
 *   RUN_CLOCK_MARGIN_MS). The earlier release's keys stay in the store for good (tombstones after
 *   retention), and that release never drew a run again however late it was resent: an analyzer
 *   re-transmitting a run from its memory months after. Before, past the window such a resend drew
 *   every reagent of the run a second time (test/integration/review-s23b-consumption-after-window.test.ts).
 *   An undated run (dated when received) resent then is not found, but for an undated c 111
 *   calibration (noteUndatedRun), looked up whatever its date: its row-index form at M|1, at its
 *   rows' indices now and at the others (below). Before, calibration-keys.ts looked that form up
 *   at the indices of now alone and by position: a table edited since had the calibration's
 *   moved rows (the cuvette, the cleaner) drawn again, within the window too
 *   (test/integration/review-s23c-calibration-edited-table.test.ts).
 * Never on a store a release of era 3 began. Cost: one or two key look-ups per consumption event
 * looked up, and for a draw found at neither (a run first seen) the table's length and
 * EDITED_TABLE_MARGIN more per slot (the store's key filter answers an absent key without a read);
 * for a run dated after the upgrade past the window, a date compare. Before, a run the earlier
 * release took and the analyzer resent after IT edited the table (the upgrade is what lets it)
 * drew every moved row again (test/integration/review-s23b-consumption-after-window.test.ts). A look-up that fails keeps the keys of now, with a
 * warning (the commit decides whether the message is taken), as calibration-keys.ts does.
 */
export async function keepConsumptionKeysOfEarlierReleases<R extends { events: DraftEvent[]; warnings: string[] }>(result: R, store: ConsumptionKeyStore): Promise<R> {
  const inWindow = store.mayHoldEarlierReleaseKeys?.(CONSUMPTION_KEY_ERA) ?? true;
  const upgradedAt = inWindow ? undefined : store.earlierReleaseKeysBefore?.(CONSUMPTION_KEY_ERA);
  if (!inWindow && upgradedAt === undefined) return result;
  const forms = new Map<string, RowIndexNote>();
  for (const e of result.events) {
    const note = noteOf(e);
    if (note === undefined || note.earlier === e.idempotencyKey) continue;
    if (upgradedAt !== undefined && note.undated !== true && !(Date.parse(e.occurredAt) < upgradedAt + RUN_CLOCK_MARGIN_MS)) continue;
    forms.set(e.idempotencyKey, note);
  }
  if (forms.size === 0) return result;
  const used = (key: string): Promise<boolean> => (store.idempotencyKeyUsed ? store.idempotencyKeyUsed(key) : store.getEventByKey(key).then((e) => e !== undefined));
  const renamed = new Map<string, string>();
  const warnings: string[] = [];
  const failed = (now: string, err: unknown): void => void warnings.push(`consumption key ${now}: its earlier release's form not looked up (${describeError(err)}); keyed as now`);
  /** Draws found neither under their key of now nor at their row's index now, by slot. */
  const missing = new Map<string, Array<[string, RowIndexNote]>>();
  await Promise.all(
    [...forms].map(async ([now, note]) => {
      try {
        if (await used(now)) return;
        if (await used(note.earlier)) renamed.set(now, note.earlier);
        else missing.set(note.slot, [...(missing.get(note.slot) ?? []), [now, note]]);
      } catch (err) {
        failed(now, err);
      }
    }),
  );
  // Not at its row's index now: the table may have been edited since the earlier release took the
  // run (a row added above, one removed, the rows reordered). That release's draws of the same
  // run, per, test and product are looked up at every index the table can have had; the n-th of
  // them in table order is the n-th identical draw now (`x<n>`), as the order of identical rows
  // decides both. Only a slot with a draw not found costs this: a new run of the window (or dated
  // before the upgrade), the table's length and EDITED_TABLE_MARGIN look-ups per slot, the key
  // filter answering each absent key without a read.
  await Promise.all(
    [...missing.values()].map(async (drawsOfSlot) => {
      const first = drawsOfSlot[0]![1];
      try {
        const indices = Array.from({ length: first.rows + EDITED_TABLE_MARGIN }, (_, i) => i);
        const held = (await Promise.all(indices.map(async (i) => ((await used(first.at(i))) ? i : -1)))).filter((i) => i >= 0);
        if (held.length === 0) return;
        // Every draw of the slot in this run, found at its index now or not, takes the n-th held.
        for (const [now, note] of forms) {
          if (note.slot !== first.slot || !(renamed.has(now) || drawsOfSlot.some(([k]) => k === now))) continue;
          const index = held[note.nth - 1];
          if (index === undefined) renamed.delete(now);
          else renamed.set(now, note.at(index));
        }
      } catch (err) {
        for (const [now] of drawsOfSlot) failed(now, err);
      }
    }),
  );
  return withEarlierKeys(result, renamed, warnings);
}

/**
 * `result` with each event whose key `renamed` maps keyed as the earlier release keyed it (so the
 * store finds the draw it already holds), and `warnings` added; `result` itself when there is
 * neither. The consumption look-up above and the calibration one (astm/calibration-keys.ts) end
 * alike.
 */
export function withEarlierKeys<R extends { events: DraftEvent[]; warnings: string[] }>(result: R, renamed: ReadonlyMap<string, string>, warnings: string[]): R {
  if (renamed.size === 0 && warnings.length === 0) return result;
  return {
    ...result,
    events: result.events.map((e) => {
      const earlier = renamed.get(e.idempotencyKey);
      return earlier === undefined ? e : { ...e, idempotencyKey: earlier };
    }),
    warnings: [...result.warnings, ...warnings],
  };
}
