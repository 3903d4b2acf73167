import { idempotencyKey, partitionKeys } from '../events/keys.ts';
import type { DraftEvent, EventDataMap, RunType } from '../events/types.ts';
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
 * The profile's consumption table split by `per`, row positions kept (the row index is part of
 * the consumption key): rows of the other kind are limited to no run type, so they yield nothing.
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
 */
export function consumptionDrafts(run: RunContext): DraftEvent[] {
  const out: DraftEvent[] = [];
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
      out.push({
        type: 'consumable.used',
        occurredAt: run.runAt,
        receivedAt: run.receivedAt,
        idempotencyKey: idempotencyKey(run.keyPrefix, run.analyzerId, 'consumption', run.specimenId, run.runKey, row.per, testCode ?? 'run', row.productCode, rowIndex),
        correlationId: run.specimenId,
        partitionKey: partitionKeys.reagent(run.analyzerId, row.productCode),
        source: run.source,
        data,
      });
    }
  });
  return out;
}
