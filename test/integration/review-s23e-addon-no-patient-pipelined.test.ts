/**
 * An add-on naming its order by the placer number alone and no patient (ORM^O01 without PID),
 * pipelined right behind its order on the same MLLP connection, while another patient's result
 * waits under the filler number the order carries (a daily sample number come round). A real
 * gateway (MLLP listener, LevelDB in a temp dir, the relay) posting to the Odoo emulator, the LIS a
 * raw TCP client writing both frames at once (hl7/order-numbers.ts, README "An add-on naming no
 * patient").
 *
 * GLU of MRN-77 and CRP of MRN-88 wait under LF-0042; order 70521 (MRN-77, GLU, LF-0042) and its
 * add-on CRP (70521 alone, no PID) come in one write. The add-on's look-up ran once the order's
 * commit was issued, before it was stored: compared with no patient, it got MRN-88's CRP, invoiced
 * on MRN-77's sale order 70521, and MRN-88's order 70522 got none. Now 70521 bills GLU, 70522 CRP.
 */
import { describe, expect, it } from 'vitest';
import { numberedOrder as order, numberedResult as result, pipelined, useLisLab } from '../fixtures/lis-rig.ts';
import { billed } from '../fixtures/relay/billing-rig.ts';

const { lab } = useLisLab();
describe('an add-on naming no patient pipelined right behind its order', () => {
  it("is not billed another patient's result waiting under its order's filler number", async () => {
    const l = await lab('s23e-addon-no-pid-pipelined');
    await l.send('lis', order('O-0', '70520', 'LF-0041', ['GLU'], 'MRN-77'));
    await l.send('lis', result('R-1', 'LF-0042', 'GLU', 'MRN-77'));
    await l.send('lis', result('R-2', 'LF-0042', 'CRP', 'MRN-88'));
    const port = l.gateway.addresses().hl7.lis!.port;
    const acks = await pipelined(port, [order('O-1', '70521', 'LF-0042', ['GLU'], 'MRN-77'), order('O-2', '70521', '', ['CRP'], undefined)]);
    expect(acks).toContain('MSA|AA|O-1');
    expect(acks).toContain('MSA|AA|O-2');
    await l.send('lis', order('O-3', '70522', 'LF-0042', ['CRP'], 'MRN-88'));
    await l.settled();
    expect(billed(l.emu, '70521')).toEqual(['GLU']);
    expect(billed(l.emu, '70522')).toEqual(['CRP']);
  }, 60_000);
});
