import type { RunType } from '../events/types.ts';
import { nonProductionKindOf } from '../hl7/processing-id.ts';

/**
 * The run type of a run reported under `processingId` (ASTM H.12 or HL7 MSH-11, first component;
 * table 0103, read by hl7/processing-id.ts): a sample run (patient, rerun) while the analyzer said
 * training (`T`) or debugging (`D`) is a `training` run; QC and calibration keep their type
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
  return nonProductionKindOf(processingId) === undefined ? runType : 'training';
}
