import { describeError } from '../errors.ts';
import { withEarlierKeys } from '../profiles/consumption-keys.ts';
import type { GatewayStore } from '../store/types.ts';
import type { NormalizeResult } from './types.ts';

/** What the look-up reads of the store (`idempotencyKeyUsed` where the store has it: pruned events count too). */
export type CalibrationKeyStore = Pick<GatewayStore, 'getEventByKey' | 'idempotencyKeyUsed'>;

/**
 * An undated calibration (cobas c 111 M.CR without a calibration time) that an earlier release
 * stored at another place than `M|1` keeps the keys it was stored under. Releases before a82316d
 * keyed such a calibration on a hash of its whole record, sequence number (M.2) included; its key
 * now hashes the record as if at `M|1`, so that the same calibration resent behind another one
 * draws nothing more. A calibration an earlier release stored at `M|2` or later therefore had a
 * new key after the upgrade, and the c 111 resending it (it resends a message it missed the ACK
 * of, or the operator sends the calibration again) drew its reagent, cuvette and cleaner from
 * stock a second time (test/integration/c111-calibration-upgrade-audit.test.ts).
 *
 * Before the commit, for each such calibration whose key now is not in the store, the forms an
 * earlier release may have made (normalize.ts `earlierPlaces`: the place it is sent at, then 2 to
 * 32) are looked up; the first one the store holds gives the calibration's events their keys, and
 * the store skips them as the resend they are. A look-up that fails keeps the keys of now, with a
 * warning (the commit decides whether the message is taken). The place `1` in the row-index form
 * (the release before this one) is consumption-keys.ts's, draw by draw (noteUndatedRun).
 */
export async function keepCalibrationKeysOfEarlierReleases<R extends Pick<NormalizeResult, 'events' | 'warnings' | 'earlierCalibrationKeys'>>(result: R, store: CalibrationKeyStore): Promise<R> {
  const calibrations = result.earlierCalibrationKeys;
  if (!calibrations || calibrations.length === 0) return result;
  const used = (key: string): Promise<boolean> => (store.idempotencyKeyUsed ? store.idempotencyKeyUsed(key) : store.getEventByKey(key).then((e) => e !== undefined));
  const renamed = new Map<string, string>();
  const warnings: string[] = [];
  for (const c of calibrations) {
    const first = c.keys[0];
    if (first === undefined) continue;
    try {
      if (await used(first)) continue;
      for (const form of c.earlier) {
        if (form[0] === undefined || !(await used(form[0]))) continue;
        c.keys.forEach((k, i) => {
          const earlier = form[i];
          if (earlier !== undefined) renamed.set(k, earlier);
        });
        break;
      }
    } catch (err) {
      warnings.push(`calibration keys of earlier releases not looked up (${describeError(err)}): keyed as now`);
    }
  }
  return withEarlierKeys(result, renamed, warnings);
}
