/**
 * A barcode's case fallback on an upgraded store (orders a release before the case marks took, no
 * mark): a LIS numbering by case whose lower-case order ab12 (patient C) is found only as the
 * lower case of a mixed-case barcode the analyzer sent (`Ab12`, typed with a capital: orders AB12
 * and ab12, the collision "differ only by case"). That look-up showed the LIS numbers by case as
 * surely as one finding ab12 as sent (e409587): it must mark the link, or a tube cd34 whose order
 * has not come yet is answered with CD34's tests (patient D's). Real gateway (real LevelDB in a
 * temp dir, restarted on it), the LIS and a Mindray BS analyzer over real MLLP.
 */
import { describe, expect, it } from 'vitest';
import { Hl7QueryRig, orm, useCaseRig } from '../fixtures/barcode-case-rig.ts';

describe('an upgraded store: a LIS numbering by case whose lower-case order is found only in a collision of a mixed-case barcode', () => {
  let rig: Hl7QueryRig;

  useCaseRig('s23c-case-collision', (id, dir) => (rig = new Hl7QueryRig(id, dir)), async () => {
    // Three patients' orders, pending when the lab upgraded: AB12 (B), ab12 (C), CD34 (D).
    await rig.order(orm('CC-1', 'AB12', ['ALT'], 'MRN-B'), 'CC-1');
    await rig.order(orm('CC-2', 'ab12', ['GLU'], 'MRN-C'), 'CC-2');
    await rig.order(orm('CC-3', 'CD34', ['ALT'], 'MRN-D'), 'CC-3');
    // The release that took these orders wrote no mark.
    await rig.withoutCaseMark();
  });

  it('Ab12 is answered "no order" (its case variants collide)', async () => {
    expect(await rig.query('Ab12')).toEqual([]);
    expect(rig.alerts.some((a) => a.code === 'ACCESSION_COLLISION')).toBe(true);
  });

  it("that look-up showed the LIS numbers by case: cd34, whose order has not come yet, is not answered with CD34's tests", async () => {
    // Before: CD34's ALT (patient D) for the tube cd34 of another patient, until the LIS happened
    // to send another lower-case number.
    expect(await rig.query('cd34')).toEqual([]);
  });

  it('after a restart too', async () => {
    await rig.stop();
    await rig.start();
    expect(await rig.query('cd34')).toEqual([]);
  });
});
