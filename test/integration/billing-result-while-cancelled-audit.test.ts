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

  /** A single-test cancellation of the quotation's only line cancels the quotation too (action_cancel): the same. */
  it('a result validated while the only test was cancelled does not mark the cancelled quotation\'s line delivered', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('WC-300', ['GLU'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(ormTimed('WC-300', ['GLU'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.settle('WC-300');
    expect(saleOrders(rig.emu, 'WC-300').map((o) => o['state'])).toEqual(['cancel']);
    await rig.receive(oru('WC-300', 'GLU', 'F', '5.4', WHILE_CANCELLED));
    await rig.settle('WC-300');
    expect(saleLines(rig.emu, 'WC-300').map((l) => [l.code, l.delivered])).toEqual([['GLU', 0]]);

    await rig.receive(ormTimed('WC-300', ['GLU'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.settle('WC-300');
    expect(deadReasons(await rig.events('WC-300'))).toEqual([]);
    expect(saleLines(rig.emu, 'WC-300').map((l) => [l.code, l.delivered]), 'the re-order waits for its own result').toEqual([['GLU', 0]]);
    expect(billed(rig.emu, 'WC-300')).toEqual([]);
  });

  /**
   * GLU validated at 09:50 (its line delivered), the whole order cancelled at 10:00 (the quotation
   * cancelled, its line still delivered: action_cancel keeps it), ordered again at 10:30: the
   * quotation comes back as a quotation, and its line must not come back delivered, "to invoice"
   * in Odoo before the re-ordered GLU is run; the re-order needs a result of its own.
   */
  it('a result validated before the whole order was cancelled does not come back delivered on the re-order', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('WC-400', ['GLU'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('WC-400', 'GLU', 'F', '5.4', '20260301095000'));
    await rig.settle('WC-400');
    expect(saleLines(rig.emu, 'WC-400').map((l) => [l.code, l.delivered])).toEqual([['GLU', 1]]);
    await rig.receive(ormTimed('WC-400', [], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.settle('WC-400');
    expect(saleOrders(rig.emu, 'WC-400').map((o) => o['state'])).toEqual(['cancel']);

    await rig.receive(ormTimed('WC-400', ['GLU'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.settle('WC-400');
    expect(deadReasons(await rig.events('WC-400'))).toEqual([]);
    expect(saleOrders(rig.emu, 'WC-400').map((o) => o['state'])).toEqual(['draft']);
    expect(saleLines(rig.emu, 'WC-400').map((l) => [l.code, l.qty, l.delivered]), 'the re-order waits for its own result').toEqual([['GLU', 1, 0]]);
    expect(billed(rig.emu, 'WC-400')).toEqual([]);

    await rig.receive(oru('WC-400', 'GLU', 'F', '5.1', '20260301113000'));
    await rig.settle('WC-400');
    expect(saleLines(rig.emu, 'WC-400').map((l) => [l.code, l.delivered])).toEqual([['GLU', 1]]);
    expect(billed(rig.emu, 'WC-400')).toEqual(['GLU']);
  });
});
