import { describe, expect, it } from 'vitest';
import { billed, billingRig, deadReasons, openLines, ormTimed, oru, saleOrders } from '../fixtures/relay/billing-rig.ts';

/**
 * A LIS that replays its outbound queue after an outage re-stamps MSH-7 with the time it sends,
 * and this one leaves ORC-9 (the order's transaction time) empty. A cancellation that reached the
 * gateway before the replayed order (sent live over the LIS's second interface, or replayed out of
 * order) then looked older than the order it cancelled, and the order was taken for the LIS
 * ordering the test again. Real HL7 through the LIS normalizer, the gateway's invoice-eligibility
 * derivation in a LevelDB store, the relay and the Odoo emulator over HTTP, as finance sees Odoo.
 * The promise: a test the LIS cancelled is never billed unless the LIS clearly ordered it again
 * (relay/README.md "A cancellation before its order").
 */

const ORDERED = '20260301092000';
const CANCELLED = '20260301100000';
const REPLAYED = '20260301113000';

describe('an order replayed with MSH-7 re-stamped, after the cancellation that came first', () => {
  /**
   * What finance saw: the order interface was down from 09:00 to 11:30. GLU and TSH were ordered at
   * 09:20; the clinician cancelled TSH at 10:00, and that ORC CA came over the cancellation
   * interface at once. At 11:30 the LIS replayed its queue: the ORM came with MSH-7 11:30 and no
   * ORC-9. The gateway took it for an order placed after the cancellation: TSH went on the sale
   * order, was validated from the result the analyzer had already run, and was billed.
   */
  it('the replayed original order does not bill the test cancelled before it', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('R-100', ['TSH'], { control: 'CA', msh7: CANCELLED }));
    await rig.receive(ormTimed('R-100', ['GLU', 'TSH'], { msh7: REPLAYED, requested: ORDERED }));
    await rig.receive(oru('R-100', 'GLU'));
    await rig.receive(oru('R-100', 'TSH'));
    await rig.settle('R-100');

    expect(deadReasons(await rig.events('R-100'))).toEqual([]);
    expect(openLines(rig.emu, 'R-100'), 'TSH is not on the order').toEqual(['GLU']);
    expect(billed(rig.emu, 'R-100')).toEqual(['GLU']);
  });

  /** The same order replayed without any time of its own (no ORC-9, OBR-6, TQ1-7, OBR-7): MSH-7 alone says nothing. */
  it('an order carrying no time but MSH-7 is taken for the order the cancellation cancelled', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('R-200', ['TSH'], { control: 'CA', msh7: CANCELLED }));
    await rig.receive(ormTimed('R-200', ['GLU', 'TSH'], { msh7: REPLAYED }));
    await rig.receive(oru('R-200', 'GLU'));
    await rig.receive(oru('R-200', 'TSH'));
    await rig.settle('R-200');

    expect(deadReasons(await rig.events('R-200'))).toEqual([]);
    expect(openLines(rig.emu, 'R-200')).toEqual(['GLU']);
    expect(billed(rig.emu, 'R-200')).toEqual(['GLU']);
  });

  /**
   * The order cancelled as a whole (an ORC CA alone) while the order interface was down, the
   * order replayed later with MSH-7 re-stamped: before, a live quotation, both tests billed.
   */
  it('an order cancelled as a whole before its replay is never billed', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('R-300', [], { control: 'CA', msh7: CANCELLED }));
    await rig.receive(ormTimed('R-300', ['GLU', 'TSH'], { msh7: REPLAYED, requested: ORDERED }));
    await rig.receive(oru('R-300', 'GLU'));
    await rig.receive(oru('R-300', 'TSH'));
    await rig.settle('R-300');

    expect(deadReasons(await rig.events('R-300'))).toEqual([]);
    expect((await rig.events('R-300')).some((e) => e.event.type === 'invoice.eligible')).toBe(false);
    expect(saleOrders(rig.emu, 'R-300').map((o) => o['state']).filter((s) => s !== 'cancel'), 'no live quotation').toEqual([]);
    expect(billed(rig.emu, 'R-300')).toEqual([]);
  });

  /**
   * A requested time (OBR-6, TQ1-7) after the cancellation is the time the test is to be done, not
   * when it was ordered: a timed draw ordered at 09:20 for 12:00, cancelled at 10:00 and replayed
   * at 11:30 is still the order cancelled.
   */
  it('a requested time after the cancellation does not make the replayed order a new one', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('R-400', ['TSH'], { control: 'CA', msh7: CANCELLED }));
    await rig.receive(ormTimed('R-400', ['GLU', 'TSH'], { msh7: REPLAYED, requested: '20260301120000' }));
    await rig.receive(oru('R-400', 'GLU'));
    await rig.receive(oru('R-400', 'TSH'));
    await rig.settle('R-400');

    expect(deadReasons(await rig.events('R-400'))).toEqual([]);
    expect(openLines(rig.emu, 'R-400')).toEqual(['GLU']);
    expect(billed(rig.emu, 'R-400')).toEqual(['GLU']);
  });
});

describe('the LIS clearly ordering a test again after a cancellation the gateway saw first', () => {
  /**
   * The cancellation (no ORC-9) of a TSH ordered before the gateway was installed, and the
   * clinician's new order of TSH that afternoon, whose ORC-9 says 14:00: billed once validated.
   */
  it('an order whose ORC-9 is after the cancellation is billed', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('R-900', ['TSH'], { control: 'CA', msh7: CANCELLED }));
    await rig.receive(ormTimed('R-900', ['TSH'], { msh7: '20260301140000', orc9: '20260301140000', requested: '20260301140000' }));
    await rig.receive(oru('R-900', 'TSH'));
    await rig.settle('R-900');

    expect(deadReasons(await rig.events('R-900'))).toEqual([]);
    expect(openLines(rig.emu, 'R-900')).toEqual(['TSH']);
    expect(billed(rig.emu, 'R-900')).toEqual(['TSH']);
  });

  /**
   * A LIS that sends no ORC-9 but stamps the requested time (OBR-6) with the moment it sends the
   * order: a message whose OBR-6 is its own MSH-7 was sent as the order was placed, at 14:00, after
   * the cancellation: the test ordered again, billed once validated.
   */
  it('an order sent as it was placed (OBR-6 = MSH-7) after the cancellation is billed', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('R-920', ['TSH'], { control: 'CA', msh7: CANCELLED }));
    await rig.receive(ormTimed('R-920', ['TSH'], { msh7: '20260301140000', requested: '20260301140000' }));
    await rig.receive(oru('R-920', 'TSH'));
    await rig.settle('R-920');

    expect(deadReasons(await rig.events('R-920'))).toEqual([]);
    expect(openLines(rig.emu, 'R-920')).toEqual(['TSH']);
    expect(billed(rig.emu, 'R-920')).toEqual(['TSH']);
  });

  /** A replayed order whose ORC-9 kept its 09:20: the order cancelled, whatever MSH-7 says. */
  it('a replayed order whose ORC-9 is before the cancellation is the order cancelled', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('R-950', ['TSH'], { control: 'CA', msh7: CANCELLED }));
    await rig.receive(ormTimed('R-950', ['GLU', 'TSH'], { msh7: REPLAYED, orc9: ORDERED, requested: ORDERED }));
    await rig.receive(oru('R-950', 'GLU'));
    await rig.receive(oru('R-950', 'TSH'));
    await rig.settle('R-950');

    expect(deadReasons(await rig.events('R-950'))).toEqual([]);
    expect(openLines(rig.emu, 'R-950')).toEqual(['GLU']);
    expect(billed(rig.emu, 'R-950')).toEqual(['GLU']);
  });
});
