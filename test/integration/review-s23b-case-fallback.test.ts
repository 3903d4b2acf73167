/**
 * A barcode's case fallback (a barcode the analyzer sends in lower case is looked up in upper case
 * while no LIS link numbers by case, 2213e3d) on an HL7 analyzer's host query (Mindray BS, QRY^Q02
 * over MLLP), and what the lab is told when a barcode's case variants collide. Real gateway (real
 * LevelDB in a temp dir, restarted on it), the LIS and the analyzer over real MLLP.
 */
import { describe, expect, it } from 'vitest';
import { Hl7QueryRig, orm, tubesOrder, useCaseRig } from '../fixtures/barcode-case-rig.ts';

describe('an HL7 analyzer\'s host query for a tube typed in lower case (a LIS numbering in upper case)', () => {
  let rig: Hl7QueryRig;

  useCaseRig('s23b-case-type', (id, dir) => (rig = new Hl7QueryRig(id, dir)), async () => {
    // One order, two tubes: GLU on the urine tube TU1, ALT on the serum tube TS1 (received last).
    await rig.order(tubesOrder('TY-1', 'ORD-TY1', [['GLU', 'TU1', 'UR'], ['ALT', 'TS1', 'SER']], 'MRN-T'), 'TY-1');
  });

  it('the urine tube as labelled is answered with its test and sample type', async () => {
    const dsp = await rig.query('TU1');
    expect(dsp).toContain('DSP|26||UR|||');
    expect(dsp.filter((l) => /^DSP\|(29|3\d)\|/.test(l))).toEqual(['DSP|29||3^^^|||']);
  });

  it('typed tu1, it is answered with the urine tube\'s sample type, not the serum tube\'s', async () => {
    const dsp = await rig.query('tu1');
    expect(dsp.filter((l) => /^DSP\|(29|3\d)\|/.test(l))).toEqual(['DSP|29||3^^^|||']);
    // Before: DSP|26||SER, the urine tube run as serum.
    expect(dsp).toContain('DSP|26||UR|||');
  });
});

describe('case variants an earlier release stored (AB12 and ab12, no mark): what the lab is told', () => {
  let rig: Hl7QueryRig;

  useCaseRig('s23b-case-alert', (id, dir) => (rig = new Hl7QueryRig(id, dir)), async () => {
    await rig.order(orm('AL-1', 'AB12', ['ALT'], 'MRN-B'), 'AL-1');
    await rig.order(orm('AL-2', 'ab12', ['GLU'], 'MRN-C'), 'AL-2');
    // The release that took these orders wrote no mark.
    await rig.withoutCaseMark();
  });

  it('Ab12 is answered "no order", and the alert says the orders differ from the barcode by case, not that they share it', async () => {
    const before = rig.alerts.length;
    expect(await rig.query('Ab12')).toEqual([]);
    const alert = rig.alerts.slice(before).find((a) => a.code === 'ACCESSION_COLLISION');
    expect(alert).toBeDefined();
    expect(alert!.message).toContain('Ab12');
    expect(alert!.message).toContain('AB12, ab12');
    expect(alert!.message).toContain('only by case');
    // Before: "… share this barcode … two LIS systems numbering alike need hl7[].accessionPrefix on
    // one of them": neither order is the barcode, and a prefix changes nothing (one LIS link).
    expect(alert!.message).not.toContain('share this barcode');
    expect(alert!.message).not.toContain('accessionPrefix');
  });
});

describe('an upgraded store: a LIS numbering by case whose lower-case orders an earlier release took (no mark)', () => {
  let rig: Hl7QueryRig;

  useCaseRig('s23b-case-upgrade', (id, dir) => (rig = new Hl7QueryRig(id, dir)), async () => {
    // Patient C's order ab12 and patient D's order CD34, both pending when the lab upgraded.
    await rig.order(orm('UP-1', 'ab12', ['GLU'], 'MRN-C'), 'UP-1');
    await rig.order(orm('UP-2', 'CD34', ['ALT'], 'MRN-D'), 'UP-2');
    // The release that took these orders wrote no mark.
    await rig.withoutCaseMark();
  });

  it('the stored lower-case order ab12 is answered with its own test', async () => {
    expect((await rig.query('ab12')).filter((l) => /^DSP\|(29|3\d)\|/.test(l))).toEqual(['DSP|29||3^^^|||']);
  });

  it('that look-up showed the LIS numbers by case: cd34, whose order has not come yet, is not answered with CD34\'s tests', async () => {
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
