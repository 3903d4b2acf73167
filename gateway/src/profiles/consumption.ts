import { idempotencyKey, partitionKeys } from '../events/keys.ts';
import type { DraftEvent, EventDataMap, RunType } from '../events/types.ts';
import { noteRowIndexKey } from './consumption-keys.ts';
import type { ConsumptionRow, Profile } from './types.ts';

export interface RunContext {
  profile: Profile;
  analyzerId: string;
  specimenId: string;
  runType: RunType;
  /** Canonical codes of the tests of the run (distinct). */
  tests: string[];
  /** Deterministic run identity: the raw run time (or a record hash when the analyzer sent none). */
  runKey: string;
  /** ISO time of the run. */
  runAt: string;
  receivedAt: string;
  source: DraftEvent['source'];
  /** Prefix of the idempotency keys ('astm', 'hl7-analyzer'). */
  keyPrefix: string;
  /** Reagent name → lot, as the analyzer reported them in this message. */
  reagentLots?: ReadonlyMap<string, string>;
}

const splitTables = new WeakMap<Profile, { perTest: Profile; perRun: Profile }>();

/**
 * The profile's consumption table split by `per`, row positions kept (the row-index form of a
 * key an earlier release may hold is looked up with the row's index: consumption-keys.ts): rows
 * of the other kind are limited to no run type, so they yield nothing.
 * For a message whose results do not share one run identity: per-test rows go out once per
 * identity, per-run rows once for the run.
 */
export function splitConsumption(profile: Profile): { perTest: Profile; perRun: Profile } {
  let split = splitTables.get(profile);
  if (!split) {
    const only = (per: ConsumptionRow['per']): Profile => ({ ...profile, consumption: profile.consumption.map((row) => (row.per === per ? row : { ...row, runTypes: [] })) });
    split = { perTest: only('test'), perRun: only('run') };
    splitTables.set(profile, split);
  }
  return split;
}

/**
 * One run (patient, QC, calibration, rerun) × the profile's consumption table → `consumable.used`
 * drafts. Rows with `per: 'test'` apply once per matching distinct test, rows with `per: 'run'`
 * once per run (dead volume, wash) when their test (if any) is part of the run; rows limited to
 * some run types skip the others. Partition: reagent:<analyzer>:<product> (events/keys.ts), so that
 * a product missing in Odoo holds back only its own events; the relay still posts one analyzer's
 * micro-batch window as one stock picking.
 *
 * A draw's key names what it is, not where its row stands: the run (analyzer, specimen, run
 * identity), `per`, the test it is drawn for (`run` for a per-run row without one) and the
 * product; the second, third… draw of the run identical in those parts (two identical rows: two
 * draws) adds `x2`, `x3`…, counted in table order among the rows that draw in this run. Until
 * now the key ended with the row's index in the table: IT adding a row above, removing one or
 * reordering the table gave a run the analyzer sent again new keys for every row below the edit,
 * and the store took them as new, drawing the reagents from Odoo's stock a second time
 * (test/integration/review-s23-consumption-row-identity.test.ts). What the identity leaves out:
 * - `quantity` and `uom`: a correction of how much a row draws (the real dead volume measured, a
 *   unit fixed) changes what future runs draw, not which draw a resent run is; in the key, every
 *   run resent after the correction would draw the whole row again. The stored event keeps what
 *   was drawn then.
 * - `runTypes`: which runs a row applies to, not what it draws in one (and splitConsumption
 *   rewrites it). A row widened to QC draws for a QC run it did not draw for before: a new key,
 *   as it is a new draw; only rows drawing in this run are counted for `x<n>`, so a row limited to
 *   other run types inserted above changes nothing.
 * - the row's `test` selector (`*` or a code): the test the draw is for is in the key; a `*` row
 *   narrowed to the one test it meant draws what it drew, keyed alike.
 * - `reagent`, `deadVolume`, `note`: which lot is reported and how the row is described.
 * The product stays: another product is another draw (an Odoo product renamed in the table draws
 * again for a resent run). A row new to the table draws once for every run it applies to, a
 * resent one too.
 *
 * Each draft's key in the row-index form is noted (consumption-keys.ts), with its place among the
 * run's identical draws and the table's length: an analyzer endpoint looks it up before the commit
 * while the store may hold keys of an earlier release, at other indices too when the table was
 * edited since.
 */
export function consumptionDrafts(run: RunContext): DraftEvent[] {
  const out: DraftEvent[] = [];
  const drawn = new Map<string, number>();
  run.profile.consumption.forEach((row, rowIndex) => {
    if (row.runTypes && !row.runTypes.includes(run.runType)) return;
    const targets: Array<string | undefined> = [];
    if (row.per === 'test') {
      for (const t of run.tests) if (row.test === '*' || row.test === t) targets.push(t);
    } else if (row.test === undefined || row.test === '*' || run.tests.includes(row.test)) {
      targets.push(row.test === undefined || row.test === '*' ? undefined : row.test);
    }
    for (const testCode of targets) {
      const data: EventDataMap['consumable.used'] = {
        analyzer: run.analyzerId,
        productCode: row.productCode,
        quantity: row.quantity,
        uom: row.uom,
        runType: run.runType,
        specimenId: run.specimenId,
        runAt: run.runAt,
      };
      if (testCode !== undefined) data.testCode = testCode;
      const lot = row.reagent !== undefined ? run.reagentLots?.get(row.reagent.toUpperCase()) : undefined;
      if (lot) data.reagentLot = lot;
      const identity = [row.per, testCode ?? 'run', row.productCode] as const;
      const slot = identity.join('\u0000');
      const nth = (drawn.get(slot) ?? 0) + 1;
      drawn.set(slot, nth);
      const draft: DraftEvent = {
        type: 'consumable.used',
        occurredAt: run.runAt,
        receivedAt: run.receivedAt,
        idempotencyKey: idempotencyKey(run.keyPrefix, run.analyzerId, 'consumption', run.specimenId, run.runKey, ...identity, ...(nth > 1 ? [`x${nth}`] : [])),
        correlationId: run.specimenId,
        partitionKey: partitionKeys.reagent(run.analyzerId, row.productCode),
        source: run.source,
        data,
      };
      noteRowIndexKey(draft, run, { per: row.per, testCode, productCode: row.productCode }, rowIndex, nth, run.profile.consumption.length);
      out.push(draft);
    }
  });
  return out;
}
