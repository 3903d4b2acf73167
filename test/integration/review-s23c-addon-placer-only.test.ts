/**
 * An add-on naming its order by the placer number alone, the result of its test come before the
 * order under the filler number (hl7/order-numbers.ts, README "An add-on naming the order by its
 * accession alone"). Over MLLP into a whole gateway relaying to the Odoo emulator.
 *
 * A LIS whose results carry only the filler number: GLU and CRP results under LF-9301 come before
 * the order 70301 (GLU, filler LF-9301); GLU's is attached. The add-on CRP comes in an order
 * message naming 70301 only (ORC-3 empty). Before: nothing looked the waiting CRP result up, it
 * stayed under LF-9301 ("waiting for its order"), was dead-lettered after 24 h, CRP never billed
 * (the lab never settled). Now the add-on gets it: GLU and CRP billed once each on 70301.
 */
import { describe, expect, it } from 'vitest';
import { useLisLab } from '../fixtures/lis-rig.ts';
import { billed } from '../fixtures/relay/billing-rig.ts';
const { lab } = useLisLab();
const MSH = (type: string, id: string): string => `MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||${type}|${id}|P|2.5.1`;
function order(id: string, placer: string, filler: string, tests: string[]): string {
  return [MSH('ORM^O01^ORM_O01', id), 'PID|1||MRN-77^^^LAB^MR', ...tests.flatMap((t, i) => [`ORC|NW|${placer}|${filler}||||||20260301092500||||||||||||CLINIC-A`, `OBR|${i + 1}|${placer}|${filler}|${t}^${t} test`])].join('\r');
}
function result(id: string, filler: string, t: string): string {
  return [MSH('ORU^R01^ORU_R01', id), 'PID|1||MRN-77^^^LAB^MR', `ORC|RE||${filler}`, `OBR|1||${filler}|${t}^${t} test|||20260301100000|||||||||||||||20260301110000|||F`, `OBX|1|NM|${t}^${t} test||5.4|mmol/L|||||F`].join('\r');
}
describe('add-on by placer only', () => {
  it('bills the add-on whose result came before it under the filler number', async () => {
    const l = await lab('r3-addon');
    await l.send('lis', order('O-0', '70300', 'LF-9300', ['GLU']));
    await l.send('lis', result('R-1', 'LF-9301', 'GLU'));
    await l.send('lis', result('R-2', 'LF-9301', 'CRP'));
    await l.send('lis', order('O-1', '70301', 'LF-9301', ['GLU']));
    await l.send('lis', order('O-2', '70301', '', ['CRP']));
    // Before, this timed out: the CRP result under LF-9301 kept waiting.
    await l.settled();
    expect(billed(l.emu, '70301')).toEqual(['CRP', 'GLU']);
  }, 60_000);
});
