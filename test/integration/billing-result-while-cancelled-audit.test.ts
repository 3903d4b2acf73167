import { describe, expect, it } from 'vitest';
import { billed, billingRig, deadReasons, oru, ormTimed, saleLines, saleOrders } from '../fixtures/relay/billing-rig.ts';

/**
 * A result validated while the LIS had cancelled the whole order (the tube was already on the
 * analyzer at 10:10, the order cancelled at 10:00): billing counts it for nothing, and the order
 * the LIS places again at 10:30 needs a result of its own (relay/README.md "A result of a
 * cancelled test"). A cancelled quotation keeps its lines at their quantity, and the result rule
 * marked the line delivered there; the re-order set the quotation back to draft with that line:
 * delivered, "to invoice" in Odoo once confirmed, before the re-ordered test was run, and billed
 * by Odoo's "Create Invoice" even if it never was. Real HL7 through the LIS normalizer, the
 * invoice-eligibility derivation in a LevelDB store, the relay and the Odoo emulator over HTTP.
 */

const ORDERED = '20260301092000';
const CANCELLED = '20260301100000';
const WHILE_CANCELLED = '20260301101000';
const AGAIN = '20260301103000';

describe('a result validated while the whole order was cancelled', () => {
  it('does not mark the line of the cancelled quotation delivered', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('WC-100', ['GLU'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(ormTimed('WC-100', [], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.settle('WC-100');
    await rig.receive(oru('WC-100', 'GLU', 'F', '5.4', WHILE_CANCELLED));
    await rig.settle('WC-100');
    expect(saleOrders(rig.emu, 'WC-100').map((o) => o['state'])).toEqual(['cancel']);
    expect(saleLines(rig.emu, 'WC-100').map((l) => [l.code, l.delivered])).toEqual([['GLU', 0]]);

    await rig.receive(ormTimed('WC-100', ['GLU'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.settle('WC-100');
    expect(deadReasons(await rig.events('WC-100'))).toEqual([]);
    expect(saleLines(rig.emu, 'WC-100').map((l) => [l.code, l.delivered]), 'the re-order waits for its own result').toEqual([['GLU', 0]]);
    expect(billed(rig.emu, 'WC-100')).toEqual([]);
  });

  /** Two interfaces racing: the re-order's own result (11:00, after the 10:30 re-order) came before its order message. */
  it("the re-order's own result, come before its order message, still counts for it", async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('WC-200', ['GLU'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(ormTimed('WC-200', [], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.settle('WC-200');
    await rig.receive(oru('WC-200', 'GLU'));
    await rig.settle('WC-200');
    await rig.receive(ormTimed('WC-200', ['GLU'], { msh7: '20260301113000', orc9: AGAIN }));
    await rig.settle('WC-200');

    expect(deadReasons(await rig.events('WC-200'))).toEqual([]);
    expect(saleLines(rig.emu, 'WC-200').map((l) => [l.code, l.delivered])).toEqual([['GLU', 1]]);
    expect(billed(rig.emu, 'WC-200')).toEqual(['GLU']);
  });
});
