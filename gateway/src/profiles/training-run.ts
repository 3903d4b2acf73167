import type { RunType } from '../events/types.ts';

/**
 * Processing ids of an analyzer that is not doing the lab's real work (LIS2-A2 §7.1.12 H.12, HL7
 * MSH-11, table 0103): `T` training, `D` debugging. `P` production, `Q` (a QC mark some analyzers
 * use), empty or anything else: the lab's work as before.
 */
const NOT_PRODUCTION = new Set(['T', 'D']);

/**
 * The run type of a run reported under `processingId`: a sample run (patient, rerun) while the
 * analyzer said training or debugging is a `training` run; QC and calibration keep their type
 * (never a patient's either way). A technician learning the analyzer on a real tube, or a service
 * engineer's run after a repair, put results on that accession's sale order and a specimen receipt
 * on its chatter, its reagent booked as patient consumption. As a training run it has no
 * accession and no receipt, and it still draws its consumption: the reagent is gone from the shelf
 * whatever mode the analyzer was in. Unlike a LIS's training traffic (hl7/processing-id.ts, refused
 * on a production gateway) it is taken: refusing it (NAK, AR) would have the analyzer resend it
 * and lose the stock movement. Run type is in no key, so the keys are those of the same run in
 * production.
 */
export function withProcessingId(runType: RunType, processingId: string): RunType {
  if (runType !== 'patient' && runType !== 'rerun') return runType;
  return NOT_PRODUCTION.has(processingId.trim().toUpperCase()) ? 'training' : runType;
}

/** The message browser's term for a training or debugging run (`processingId:T`), as for a LIS's; undefined otherwise. */
export function processingIdSearchTerm(processingId: string): string | undefined {
  const id = processingId.trim().toUpperCase();
  return NOT_PRODUCTION.has(id) ? `processingId:${id}` : undefined;
}
