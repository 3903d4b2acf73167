/**
 * An add-on naming its order by the placer number alone and naming no patient (ORM^O01 without its
 * optional PATIENT group), while another patient's result waits under the filler number the order
 * came carrying (a daily sample number come round). Over MLLP into a whole gateway relaying to the
 * Odoo emulator (hl7/order-numbers.ts, README "An add-on naming the order by its accession alone").
 *
 * GLU of MRN-77 under LF-0042 came before order 70521 (MRN-77, GLU, LF-0042). Then CRP of MRN-88
 * under LF-0042 came before MRN-88's order 70522, and the add-on CRP for 70521 came naming 70521
 * alone, no PID. Before: MRN-88's CRP went on MRN-77's sale order 70521 and was invoiced there;
 * 70522's CRP, when it came, was never delivered nor billed. Now: 70521 billed GLU, 70522 CRP.
 */
import { describe, expect, it } from 'vitest';
import { numberedOrder as order, numberedResult as result, useLisLab } from '../fixtures/lis-rig.ts';
import { billed } from '../fixtures/relay/billing-rig.ts';
const { lab } = useLisLab();
describe('an add-on by placer only naming no patient', () => {
  it("is not billed another patient's result waiting under its order's filler number", async () => {
    const l = await lab('s23d-addon-no-pid');
    await l.send('lis', order('O-0', '70520', 'LF-0041', ['GLU'], 'MRN-77'));
    await l.send('lis', result('R-1', 'LF-0042', 'GLU', 'MRN-77'));
    await l.send('lis', order('O-1', '70521', 'LF-0042', ['GLU'], 'MRN-77'));
    await l.send('lis', result('R-2', 'LF-0042', 'CRP', 'MRN-88'));
    await l.send('lis', order('O-2', '70521', '', ['CRP'], undefined));
    await l.send('lis', order('O-3', '70522', 'LF-0042', ['CRP'], 'MRN-88'));
    await l.settled();
    expect(billed(l.emu, '70521')).toEqual(['GLU']);
    expect(billed(l.emu, '70522')).toEqual(['CRP']);
  }, 60_000);
});
