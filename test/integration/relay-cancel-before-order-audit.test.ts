import { describe, expect, it } from 'vitest';
import { billed, billingRig, deadReasons, openLines, orm, oru, saleLines, saleOrders } from '../fixtures/relay/billing-rig.ts';

/**
 * A cancellation that reaches the gateway before the order it cancels: the LIS replays its queue
 * out of order after an outage, or two LIS interfaces (orders on one, cancellations on the other)
 * race. Real HL7 through the LIS normalizer, the gateway's invoice-eligibility derivation in a
 * LevelDB store, the relay, and the Odoo emulator over HTTP, as finance staff see Odoo.
 * The promise: a cancelled test is never billed, a done test is never left unbilled
 * (DESIGN.md §3, relay/README.md "Billing: each test exactly once, never a cancelled one").
 */

describe('a cancellation that arrives before its order', () => {
  /**
   * What finance saw: the LIS replayed its queue out of order; the ORC CA of accession C-100's TSH
   * arrived before the ORM that placed GLU and TSH, then both results. The TSH line was put on
   * the sale order and TSH was billed on the draft invoice, though the clinician had cancelled it.
   * Promise broken: a cancelled test is never billed.
   */
  it('the late order does not bill the test cancelled before it', async () => {
    const rig = await billingRig();
    await rig.receive(orm('C-100', ['TSH'], 'CA'));
    await rig.receive(orm('C-100', ['GLU', 'TSH']));
    await rig.receive(oru('C-100', 'GLU'));
    await rig.receive(oru('C-100', 'TSH'));
    await rig.settle('C-100');

    expect(deadReasons(await rig.events('C-100'))).toEqual([]);
    expect(saleOrders(rig.emu, 'C-100')).toHaveLength(1);
    expect(openLines(rig.emu, 'C-100'), 'TSH is not on the order').toEqual(['GLU']);
    expect(billed(rig.emu, 'C-100')).toEqual(['GLU']);
  });

  /**
   * What finance saw: as above, but the cancelled TSH was never run (no result): the order waited
   * for TSH for good, and GLU, done and validated, was never billed.
   * Promise broken: a done test is never left unbilled.
   */
  it('the tests done on the late order are billed without the cancelled one', async () => {
    const rig = await billingRig();
    await rig.receive(orm('C-200', ['TSH'], 'CA'));
    await rig.receive(orm('C-200', ['GLU', 'TSH']));
    await rig.receive(oru('C-200', 'GLU'));
    await rig.settle('C-200');

    expect(deadReasons(await rig.events('C-200'))).toEqual([]);
    expect(openLines(rig.emu, 'C-200')).toEqual(['GLU']);
    expect(billed(rig.emu, 'C-200')).toEqual(['GLU']);
  });

  /**
   * What finance saw: the cancellation of the whole order (an ORC CA with no OBR) came first; the
   * order that followed was put in Odoo as a live quotation and its tests were billed.
   * Promise broken: a cancelled test is never billed.
   */
  it('an order cancelled as a whole before it arrived is never billed', async () => {
    const rig = await billingRig();
    await rig.receive(orm('C-300', [], 'CA'));
    await rig.receive(orm('C-300', ['GLU', 'TSH']));
    await rig.receive(oru('C-300', 'GLU'));
    await rig.receive(oru('C-300', 'TSH'));
    await rig.settle('C-300');

    expect(deadReasons(await rig.events('C-300'))).toEqual([]);
    expect((await rig.events('C-300')).some((e) => e.event.type === 'invoice.eligible')).toBe(false);
    expect(saleOrders(rig.emu, 'C-300').map((o) => o['state']).filter((s) => s !== 'cancel'), 'no live quotation').toEqual([]);
    expect(billed(rig.emu, 'C-300')).toEqual([]);
  });

  /**
   * The test ordered again in a later message, after the late order that the cancellation
   * cancelled, is a new order: it is billed when its result is validated.
   */
  it('a test ordered again after the late order is billed', async () => {
    const rig = await billingRig();
    await rig.receive(orm('C-400', ['TSH'], 'CA'));
    await rig.receive(orm('C-400', ['GLU', 'TSH']));
    await rig.receive(orm('C-400', ['TSH'])); // the clinician asks for TSH again
    await rig.receive(oru('C-400', 'GLU'));
    await rig.receive(oru('C-400', 'TSH'));
    await rig.settle('C-400');

    expect(deadReasons(await rig.events('C-400'))).toEqual([]);
    expect(openLines(rig.emu, 'C-400')).toEqual(['GLU', 'TSH']);
    expect(billed(rig.emu, 'C-400')).toEqual(['GLU', 'TSH']);
  });

  /**
   * The whole order cancelled before it arrived, then ordered again by the LIS (ORC NW in a later
   * message): the new order is billed once its test is validated, on the one sale order.
   */
  it('an order cancelled as a whole before it arrived and then ordered again is billed for the new order', async () => {
    const rig = await billingRig();
    await rig.receive(orm('C-500', [], 'CA'));
    await rig.receive(orm('C-500', ['GLU', 'TSH']));
    await rig.settle('C-500');
    expect(saleOrders(rig.emu, 'C-500').map((o) => o['state'])).toEqual(['cancel']);
    await rig.receive(orm('C-500', ['GLU']));
    await rig.receive(oru('C-500', 'GLU'));
    await rig.settle('C-500');

    expect(deadReasons(await rig.events('C-500'))).toEqual([]);
    expect(saleOrders(rig.emu, 'C-500').map((o) => o['state'])).toEqual(['draft']);
    expect(openLines(rig.emu, 'C-500')).toEqual(['GLU']);
    expect(billed(rig.emu, 'C-500')).toEqual(['GLU']);
  });
});

/** The same message sent later in the day: MSH-7 and ORC-9 moved to `hhmm` (orm/oru use 09:30 / 09:25). */
const laterAt = (text: string, hhmm: string): string => text.replaceAll('20260301093000', `20260301${hhmm}00`).replaceAll('20260301092500', `20260301${hhmm}00`);

describe('a cancellation before any order the gateway saw, then a new order', () => {
  /**
   * The LIS cancelled TSH of an order placed before the gateway was installed (it never saw that
   * order) and the clinician ordered TSH again that afternoon: the new order, placed after the
   * cancellation, is not the order it cancelled. TSH is billed once validated.
   */
  it('an order placed after the cancellation is billed', async () => {
    const rig = await billingRig();
    await rig.receive(orm('C-900', ['TSH'], 'CA'));
    await rig.receive(laterAt(orm('C-900', ['TSH']), '1400'));
    await rig.receive(laterAt(oru('C-900', 'TSH'), '1500'));
    await rig.settle('C-900');

    expect(deadReasons(await rig.events('C-900'))).toEqual([]);
    expect(openLines(rig.emu, 'C-900')).toEqual(['TSH']);
    expect(billed(rig.emu, 'C-900')).toEqual(['TSH']);
  });

  /**
   * One message that cancels TSH and orders it again (ORC CA, then ORC NW; or RP then RO) for an
   * order the gateway never saw: the cancellation held the new order behind it until it was
   * dead-lettered, and TSH never reached the sale order.
   */
  it('a cancellation and a new order of the same test in one message: the new order is billed', async () => {
    const rig = await billingRig();
    const [msh, pid, ...cancelLines] = orm('C-950', ['TSH'], 'CA').split('\r');
    const orderLines = orm('C-950', ['TSH']).split('\r').slice(2);
    await rig.receive([msh, pid, ...cancelLines, ...orderLines].join('\r'));
    await rig.receive(oru('C-950', 'TSH'));
    await rig.settle('C-950');

    expect(deadReasons(await rig.events('C-950'))).toEqual([]);
    expect(openLines(rig.emu, 'C-950')).toEqual(['TSH']);
    expect(billed(rig.emu, 'C-950')).toEqual(['TSH']);
  });
});

describe('cancellations and the tests ordered again after them', () => {
  /**
   * What finance saw: accession C-600 was ordered for TSH alone; the clinician cancelled it and
   * asked for it again the same morning (ORM NW, CA, NW). The gateway cancelled the quotation
   * with the cancellation (its last test), and the new order found it cancelled: "already in
   * Odoo". TSH was run and validated, delivered on the cancelled quotation, and never invoiced:
   * the invoice was skipped as "order cancelled, nothing to invoice".
   * Promise broken: a done test is never left unbilled (DESIGN.md §3).
   */
  it('an order whose only test was cancelled and ordered again is billed', async () => {
    const rig = await billingRig();
    await rig.receive(orm('C-600', ['TSH']));
    await rig.receive(orm('C-600', ['TSH'], 'CA'));
    await rig.receive(orm('C-600', ['TSH']));
    await rig.receive(oru('C-600', 'TSH'));
    await rig.settle('C-600');

    expect(deadReasons(await rig.events('C-600'))).toEqual([]);
    expect(saleOrders(rig.emu, 'C-600').map((o) => o['state'])).toEqual(['draft']);
    expect(openLines(rig.emu, 'C-600')).toEqual(['TSH']);
    expect(billed(rig.emu, 'C-600')).toEqual(['TSH']);
  });

  /** The same when the order's tests were cancelled one by one and one of them ordered again. */
  it('an order whose tests were cancelled one by one and one ordered again bills that one only', async () => {
    const rig = await billingRig();
    await rig.receive(orm('C-700', ['GLU', 'TSH']));
    await rig.receive(orm('C-700', ['GLU'], 'CA'));
    await rig.receive(orm('C-700', ['TSH'], 'CA'));
    await rig.receive(orm('C-700', ['TSH']));
    await rig.receive(oru('C-700', 'TSH'));
    await rig.settle('C-700');

    expect(deadReasons(await rig.events('C-700'))).toEqual([]);
    expect(openLines(rig.emu, 'C-700')).toEqual(['TSH']);
    expect(billed(rig.emu, 'C-700')).toEqual(['TSH']);
  });

  /**
   * What finance saw: the LIS replayed a validated TSH result after the cancellation of TSH
   * (ORU F, then ORC CA, replayed as CA, ORU). The result found no line on the quotation (the
   * cancellation had taken it off), was retried until dead-lettered, and held back the order's
   * later events behind it: the CRP added to the order that afternoon never reached the sale
   * order, and its invoice waited for an operator.
   * Promise broken: a done test is never left unbilled; bad input never holds the rest back.
   */
  it('a result of a test cancelled on the quotation holds nothing back', async () => {
    const rig = await billingRig();
    await rig.receive(orm('C-800', ['GLU', 'TSH']));
    await rig.receive(orm('C-800', ['TSH'], 'CA'));
    await rig.receive(oru('C-800', 'TSH'));
    await rig.receive(oru('C-800', 'GLU'));
    await rig.receive(orm('C-800', ['CRP'])); // add-on
    await rig.receive(oru('C-800', 'CRP'));
    await rig.settle('C-800');

    expect(deadReasons(await rig.events('C-800'))).toEqual([]);
    expect(saleLines(rig.emu, 'C-800').map((l) => [l.code, l.qty, l.delivered]).sort()).toEqual([['CRP', 1, 1], ['GLU', 1, 1]]);
    expect(billed(rig.emu, 'C-800')).toEqual(['CRP', 'GLU']);
  });
});
