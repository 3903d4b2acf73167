import { describe, expect, it } from 'vitest';
import { billingRig, cancellationOf, deadReasons, openLines, orm, oru, saleOrders, waitingCancellation, type BillingRig } from '../fixtures/relay/billing-rig.ts';
import { partnerId, productId, waitFor } from '../fixtures/relay/helpers.ts';

/**
 * A cancellation whose order never comes through the gateway: the clinic's order came on paper and
 * sales staff typed it into Odoo by hand (Customer Reference = the accession), or it was placed
 * before the gateway was installed. Real HL7 through the LIS normalizer, a LevelDB store, the
 * relay and the Odoo emulator over HTTP, as finance staff see the sale order.
 * The promise (DESIGN.md §3, relay/README.md "A cancellation before its order"): a cancelled test
 * is never billed; what the gateway cannot do is put before an operator, never dropped.
 */

const MAX_ATTEMPTS = 3;

/** The sale order sales staff type in by hand, with the Customer Reference the accession. */
function handOrder(rig: BillingRig, accession: string, codes: string[]): number {
  const lines = codes.map((c) => [0, 0, { product_id: productId(rig.emu, c), product_uom_qty: 1 }]);
  return rig.emu.call('sale.order', 'create', [{ partner_id: partnerId(rig.emu, 'CLINIC-A'), client_order_ref: accession, order_line: lines }]) as number;
}

describe('a cancellation whose order is entered in Odoo by hand', () => {
  /**
   * What finance saw: the LIS cancelled TSH of H-100 (ORC CA); the gateway had no order of it
   * (the order came on paper) and delivered the cancellation at once without a write, "no order
   * of the cancelled test(s) yet". Sales staff then typed the order into Odoo with GLU and TSH:
   * the cancelled TSH stayed on the sale order, to be billed, and nothing said so.
   * Promise broken: a cancelled test is never billed.
   */
  it('waits for its order, then takes the cancelled test off the sale order typed in by hand', async () => {
    const rig = await billingRig({ maxAttempts: MAX_ATTEMPTS });
    await rig.settle();
    await rig.receive(orm('H-100', ['TSH'], 'CA'));
    const waiting = await waitingCancellation(rig, 'H-100', MAX_ATTEMPTS);
    expect(waiting.state, 'nothing in Odoo to cancel yet: it waits').toBe('retrying');
    expect(waiting.lastError).toMatch(/waiting for its order from the LIS: cancellation of test\(s\) TSH of accession H-100/);

    const so = handOrder(rig, 'H-100', ['GLU', 'TSH']);
    await waitFor(async () => cancellationOf(await rig.events('H-100'))?.state === 'delivered', 20_000, 10);

    expect(openLines(rig.emu, 'H-100'), 'TSH is taken off the order').toEqual(['GLU']);
    expect(cancellationOf(await rig.events('H-100'))?.odoo?.map((r) => r.id)).toEqual([so]);
    expect(deadReasons(await rig.events('H-100'))).toEqual([]);
  });

  /** The same with the whole order cancelled: the quotation typed in by hand is cancelled. */
  it('a whole-order cancellation cancels the quotation typed in by hand', async () => {
    const rig = await billingRig({ maxAttempts: MAX_ATTEMPTS });
    await rig.settle();
    await rig.receive(orm('H-200', [], 'CA'));
    expect((await waitingCancellation(rig, 'H-200', MAX_ATTEMPTS)).state).toBe('retrying');

    handOrder(rig, 'H-200', ['GLU', 'TSH']);
    await waitFor(async () => cancellationOf(await rig.events('H-200'))?.state === 'delivered', 20_000, 10);
    expect(saleOrders(rig.emu, 'H-200').map((o) => o['state'])).toEqual(['cancel']);
  });

  /**
   * No order ever: neither through the gateway nor in Odoo. After a day the cancellation is a dead
   * letter saying what to check, where IT staff see it (it was delivered without a word).
   */
  it('is a dead letter after 24 h without its order, saying what to check', async () => {
    let shift = 0;
    const rig = await billingRig({ maxAttempts: MAX_ATTEMPTS }, { clock: () => Date.now() + shift });
    await rig.settle();
    await rig.receive(orm('H-300', ['TSH'], 'CA'));
    expect((await waitingCancellation(rig, 'H-300', MAX_ATTEMPTS)).state).toBe('retrying');
    shift = 25 * 3600_000;
    await waitFor(async () => cancellationOf(await rig.events('H-300'))?.state === 'dead', 20_000, 10);
    expect(deadReasons(await rig.events('H-300'))).toEqual([expect.stringMatching(/^order\.cancelled: no order from the LIS for this cancellation within 24 h: .*entered in Odoo by hand.*discard this event/)]);
  });

  /** Unchanged: the LIS's order that comes after the cancellation leaves the test off, once. */
  it('the LIS order that comes later still leaves the cancelled test off and bills the rest', async () => {
    const rig = await billingRig({ maxAttempts: MAX_ATTEMPTS });
    await rig.settle();
    await rig.receive(orm('H-400', ['TSH'], 'CA'));
    expect((await waitingCancellation(rig, 'H-400', MAX_ATTEMPTS)).state).toBe('retrying');
    await rig.receive(orm('H-400', ['GLU', 'TSH']));
    await rig.receive(oru('H-400', 'GLU'));
    await rig.settle('H-400');
    expect(deadReasons(await rig.events('H-400'))).toEqual([]);
    expect(saleOrders(rig.emu, 'H-400')).toHaveLength(1);
    expect(openLines(rig.emu, 'H-400')).toEqual(['GLU']);
  });
});
