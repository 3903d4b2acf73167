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
import { useLisLab } from '../fixtures/lis-rig.ts';
import { billed } from '../fixtures/relay/billing-rig.ts';
const { lab } = useLisLab();
const MSH = (type: string, id: string): string => `MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||${type}|${id}|P|2.5.1`;
function order(id: string, placer: string, filler: string, tests: string[], mrn: string | undefined): string {
  return [MSH('ORM^O01^ORM_O01', id), ...(mrn ? [`PID|1||${mrn}^^^LAB^MR`] : []), ...tests.flatMap((t, i) => [`ORC|NW|${placer}|${filler}||||||20260301092500||||||||||||CLINIC-A`, `OBR|${i + 1}|${placer}|${filler}|${t}^${t} test`])].join('\r');
}
function result(id: string, filler: string, t: string, mrn: string): string {
  return [MSH('ORU^R01^ORU_R01', id), `PID|1||${mrn}^^^LAB^MR`, `ORC|RE||${filler}`, `OBR|1||${filler}|${t}^${t} test|||20260301100000|||||||||||||||20260301110000|||F`, `OBX|1|NM|${t}^${t} test||5.4|mmol/L|||||F`].join('\r');
}
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
