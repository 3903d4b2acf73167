/**
 * The stock watch counts reagents already on their way (confirmed purchase orders whose receipt
 * has not been done) the way Odoo's own reorder rule does (`qty_forecast`: on hand + incoming):
 * a lab below its minimum with the ordered boxes still to come gets no second order.
 *
 * Was: the watch compared the lab's on-hand stock (minus unposted consumption) with the minimum,
 * and only a draft or sent RFQ line held a new breach back. Once the buyer confirmed the gateway's
 * RFQ, any lift of the lab's stock above the minimum (a count, a partial receipt) ended the
 * episode, and the next fall below it ordered the full amount again: the lab received its
 * reagents twice.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, countInLab, labLocationId, labOnHand, partnerId, productId, rfqLines, waitFor } from '../fixtures/relay/helpers.ts';
import type { OdooVersion } from '../odoo-emulator/index.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

type Row = Record<string, unknown> & { id: number };

const labId = (r: Rig): number => labLocationId(r.emu);

/** The breaches the watch raised for a product (local stock.threshold_breached events). */
async function breaches(r: Rig, code: string): Promise<Array<{ suggestedQuantity: number; estimatedOnHand: number }>> {
  const events = await r.store.listEvents({ type: 'stock.threshold_breached', limit: 100 });
  return events.filter((e) => (e.event.data as { productCode: string }).productCode === code).map((e) => e.event.data as { suggestedQuantity: number; estimatedOnHand: number });
}

/** Consumption of TIP-200 (untracked pipette tips) posted to Odoo, then the stock watch run. */
async function use(r: Rig, qty: number, n: number): Promise<void> {
  await r.commit([consumableUsed('an-1', 'TIP-200', qty, n)]);
  await r.waitDrained();
  // The scheduled pull (relay.referenceRefreshMs) runs the watch again with Odoo's stock as it is.
  await r.relay.refreshReference();
  await r.waitDrained();
}

/** The buyer confirms the RFQ that holds the product's line (Purchase > Confirm Order). */
function confirmRfq(r: Rig, code: string): number {
  const [line] = rfqLines(r.emu, code);
  const po = line!['order_id'] as number;
  r.emu.call('purchase.order', 'button_confirm', [[po]]);
  expect(r.emu.records('purchase.order', [['id', '=', po]])[0]!['state']).toBe('purchase');
  return po;
}

/** An inventory count of TIP-200 in the lab, applied by the stock manager (Physical Inventory). */
const countTips = (r: Rig, qty: number): void => countInLab(r.emu, 'TIP-200', qty);

const onHandTips = (r: Rig): number => labOnHand(r.emu, 'TIP-200');

describe.each([16, 17, 18, 19] as const)('stock forecast: goods on their way count (Odoo %i)', (version: OdooVersion) => {
  it('a count above the minimum before the confirmed order arrives: the next fall below it orders nothing more', async () => {
    rig = await makeRig(version, { relayOptions: { watchStock: true, stockWatchIntervalMs: 0 } });
    await rig.waitDrained();
    // TIP-200: 40 in the lab, reorder rule min 20 / max 60. 25 used: 15 left, 45 ordered.
    await use(rig, 25, 1);
    expect(rfqLines(rig.emu, 'TIP-200').map((l) => l['product_qty'])).toEqual([45]);
    confirmRfq(rig, 'TIP-200');
    // Before the 45 tips arrive, a count finds 30 in the lab (a box shelved elsewhere): above the minimum.
    countTips(rig, 30);
    await rig.relay.refreshReference();
    await rig.waitDrained();
    // 12 used: 18 in the lab, below the minimum, but 45 are on their way (forecast 63).
    await use(rig, 12, 2);
    expect(onHandTips(rig)).toBe(18);
    expect(rfqLines(rig.emu, 'TIP-200')).toHaveLength(1);
    expect(await breaches(rig, 'TIP-200')).toHaveLength(1);
  });

  it('a partial receipt into the lab: the rest still to come holds the next order back', async () => {
    rig = await makeRig(version, { relayOptions: { watchStock: true, stockWatchIntervalMs: 0 } });
    // This site receives straight into the lab (its Receipts operation type's destination).
    const inType = (rig.emu.records('stock.picking.type', [['code', '=', 'incoming']])[0] as Row).id;
    rig.emu.call('stock.picking.type', 'write', [[inType], { default_location_dest_id: labId(rig) }]);
    await rig.waitDrained();
    await use(rig, 25, 1);
    const po = confirmRfq(rig, 'TIP-200');
    // The vendor delivers 20 of the 45: received into the lab, the other 25 on a backorder.
    const [receipt] = rig.emu.records('stock.picking', [['purchase_id', '=', po]]) as Row[];
    const [move] = rig.emu.records('stock.move', [['picking_id', '=', receipt!.id]]) as Row[];
    rig.emu.call('stock.move', 'write', [[move!.id], version === 16 ? { quantity_done: 20 } : { quantity: 20, picked: true }]);
    const wizard = rig.emu.call('stock.picking', 'button_validate', [[receipt!.id]]) as { res_model?: string; context?: Record<string, unknown> };
    expect(wizard.res_model).toBe('stock.backorder.confirmation');
    const wid = rig.emu.call('stock.backorder.confirmation', 'create', [{ pick_ids: [[4, receipt!.id]] }], { context: wizard.context }) as number;
    rig.emu.call('stock.backorder.confirmation', 'process', [[wid]], { context: wizard.context });
    expect(onHandTips(rig)).toBe(35);
    await rig.relay.refreshReference();
    await rig.waitDrained();
    // 20 used: 15 in the lab, below the minimum; 25 still to come (forecast 40).
    await use(rig, 20, 2);
    expect(onHandTips(rig)).toBe(15);
    expect(rfqLines(rig.emu, 'TIP-200')).toHaveLength(1);
    expect(await breaches(rig, 'TIP-200')).toHaveLength(1);
  });

  it('the order tops up to the maximum from the forecast, in the rule\'s multiples', async () => {
    rig = await makeRig(version, { relayOptions: { watchStock: true, stockWatchIntervalMs: 0 } });
    const pid = productId(rig.emu, 'TIP-200');
    const [op] = rig.emu.records('stock.warehouse.orderpoint', [['product_id', '=', pid]]) as Row[];
    // ≤18 a Multiple Quantity of 10; 19 has no qty_multiple: its Multiple is a unit, a box of 10.
    if (version >= 19) {
      const units = rig.emu.records('uom.uom', [['name', '=', 'Units']])[0] as Row;
      const box = rig.emu.call('uom.uom', 'create', [{ name: 'Box of 10', relative_factor: 10, relative_uom_id: units.id }]) as number;
      rig.emu.call('stock.warehouse.orderpoint', 'write', [[op!.id], { replenishment_uom_id: box }]);
    } else rig.emu.call('stock.warehouse.orderpoint', 'write', [[op!.id], { qty_multiple: 10 }]);
    // A buyer's own order of 10 tips, confirmed, not received yet.
    const po = rig.emu.call('purchase.order', 'create', [{ partner_id: partnerId(rig.emu, 'VEND-LABCO'), order_line: [[0, 0, { product_id: pid, product_qty: 10 }]] }]) as number;
    rig.emu.call('purchase.order', 'button_confirm', [[po]]);
    await waitFor(() => rig!.client.state === 'connected');
    await rig.relay.refreshReference();
    await rig.waitDrained();
    // 35 used: 5 in the lab + 10 coming = 15 < 20. Up to 60: 45, in tens: 50.
    await use(rig, 35, 1);
    const [breach] = await breaches(rig, 'TIP-200');
    expect(breach?.suggestedQuantity).toBe(50);
    const lines = rfqLines(rig.emu, 'TIP-200').filter((l) => l['order_id'] !== po);
    expect(lines.map((l) => l['product_qty'])).toEqual([50]);
  });
});
