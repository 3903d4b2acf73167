import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { rowIndexKeyOf } from '../../gateway/src/profiles/consumption-keys.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import { astmCtx, astmMsg } from '../fixtures/astm/consumption.ts';

/**
 * The idempotency keys of an undated cobas c 111 calibration (M.CR with no calibration time in
 * M.11), a shipped profile. A release keyed such a calibration on a hash of its whole record
 * (`rec:<first 16 hex of sha256(record)>~<ACN>`); the stores of labs running it hold those keys.
 * A change that made the record's sequence number (M.2) empty before hashing gave every stored
 * undated calibration a new key: the c 111 resending one after the upgrade (it resends when it
 * missed the ACK) drew its reagent, cuvette and cleaner from stock a second time. The promise
 * broken: DESIGN.md §2, each business fact lands once, and a shipped profile's keys never change.
 */
const HEADER = 'H|\\^&|||c111^Roche^c111^4.2.2.1730^1^13147|||||host|RSUPL^REAL|P|1|20260114071502';
const albumin = (seq: number): string =>
  `M|${seq}|CR^BM^c111^1|413^ALB|64521301|g/L|BS^ALB||N^R|2||A^$SYS$||1.212000E+01^5.310000E-01|SD^^^65432101|0^0.0012^0.0011^0.0013^0^0\\45.3^0.4210^0.4205^0.4215^0^0`;
const glucose = (seq: number): string =>
  `M|${seq}|CR^BM^c111^1|767^GLU|71830402|mmol/L|BS^GLU||N^R|2||A^$SYS$||2.301000E+01^1.120000E-01|SD^^^65432101|0^0.0009^0.0008^0.0010^0^0\\12.9^0.6120^0.6117^0.6123^0^0`;

const albuminDraws = (...records: string[]): DraftEvent[] =>
  normalizeAstmMessage(astmMsg(HEADER, ...records, 'L|1|N'), astmCtx(loadProfile('roche-cobas-c111')))
    // The albumin calibration's rows (run identity `…~413`), not the glucose one's (`…~767`).
    .events.filter((e) => e.type === 'consumable.used' && e.idempotencyKey.includes('~413|'));
const keys = (...records: string[]): string[] => albuminDraws(...records).map((e) => e.idempotencyKey).sort();
/** The keys in the form the releases before stored them (the row's index last): looked up in the upgrade window. */
const rowIndexKeys = (...records: string[]): Array<string | undefined> => albuminDraws(...records).map((e) => rowIndexKeyOf(e)).sort();

describe('cobas c 111: the keys of an undated calibration', () => {
  it('an undated calibration at M|1 keeps the run identity the released hash of its whole record gave it', () => {
    // The released derivation, written out: the record as the c 111 sent it, hashed whole.
    const releasedRun = `rec:${createHash('sha256').update(albumin(1)).digest('hex').slice(0, 16)}~413`;
    expect(keys(albumin(1))).toEqual(
      [
        `astm|an-1|consumption|65432101|${releasedRun}|test|ALB|ROC-C111-ALB`,
        `astm|an-1|consumption|65432101|${releasedRun}|test|ALB|ROC-C111-CUVETTE`,
        `astm|an-1|consumption|65432101|${releasedRun}|run|run|ROC-C111-CLEANER`,
      ].sort(),
    );
    // The keys as that release stored them, the row's index last (profiles/consumption-keys.ts).
    expect(rowIndexKeys(albumin(1))).toEqual(
      [
        `astm|an-1|consumption|65432101|${releasedRun}|test|ALB|ROC-C111-ALB|0`,
        `astm|an-1|consumption|65432101|${releasedRun}|test|ALB|ROC-C111-CUVETTE|7`,
        `astm|an-1|consumption|65432101|${releasedRun}|run|run|ROC-C111-CLEANER|8`,
      ].sort(),
    );
  });

  it('the same calibration resent behind another (M|2) gets the keys it had at M|1', () => {
    const resent = keys(glucose(1), albumin(2));
    expect(resent).toHaveLength(3);
    expect(resent).toEqual(keys(albumin(1)));
  });
});
