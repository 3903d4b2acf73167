import { afterEach, describe, expect, it } from 'vitest';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';

/**
 * The stock watch raises one breach per episode and keeps the episode's mark per reorder point
 * (`relay-stock` / `op:<id>`). Stock staff edit reorder points in Odoo: they point one at another
 * product, archive one over a closure and restore it later. The mark must describe the reorder
 * point as it is, or the product it now watches never gets its draft RFQ.
 */

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const productId = (r: Rig, code: string): number => r.emu.records('product.product', [['default_code', '=', code]])[0]!.id as number;
const orderpointOf = (r: Rig, code: string): number => r.emu.records('stock.warehouse.orderpoint', [['product_id', '=', productId(r, code)]])[0]!.id as number;
const breachesOf = async (r: Rig, code: string): Promise<number> =>
  (await r.store.listEvents({ type: 'stock.threshold_breached' })).filter((e) => (e.event.data as { productCode: string }).productCode === code).length;
const draftLinesOf = (r: Rig, code: string): number =>
  r.emu.records('purchase.order.line', [['product_id', '=', productId(r, code)]]).filter((l) => r.emu.records('purchase.order', [['id', '=', l['order_id']]])[0]!['state'] === 'draft').length;

/** The seeded CRP reagent (5 on hand against a minimum of 6) raises its breach and its draft RFQ at the first pull. */
async function crpBreachRaised(): Promise<Rig> {
  const r = await makeRig(17, { relayOptions: { watchStock: true } });
  await waitFor(() => draftLinesOf(r, 'RGT-CRP') === 1);
  await r.waitDrained();
  return r;
}

describe('stock watch marks follow the reorder point as Odoo holds it', () => {
  // Stock staff re-used the CRP reorder point for the TSH reagent (3 on hand, minimum now 5): the
  // mark of CRP's episode, kept under the reorder point's id, counted as TSH's breach already
  // raised, and TSH never got a draft RFQ while it ran out.
  it('a reorder point moved to another product raises that product\'s breach', async () => {
    rig = await crpBreachRaised();
    const op = orderpointOf(rig, 'RGT-CRP');
    rig.emu.call('stock.warehouse.orderpoint', 'write', [[op], { product_id: productId(rig, 'RGT-TSH'), product_min_qty: 5, product_max_qty: 10 }]);
    await rig.relay.refreshReference();
    await waitFor(() => draftLinesOf(rig!, 'RGT-TSH') === 1);
    expect(await breachesOf(rig, 'RGT-TSH')).toBe(1);
  });

  // Stock staff archived the CRP reorder point over the lab's closure; the RFQ was dropped and the
  // stock counted back up meanwhile. Restored, the reorder point kept the mark of the episode
  // that had ended while it was archived: the next fall below the minimum raised nothing.
  it('a reorder point archived while its episode ended gets its breach once restored', async () => {
    rig = await crpBreachRaised();
    const op = orderpointOf(rig, 'RGT-CRP');
    rig.emu.call('stock.warehouse.orderpoint', 'write', [[op], { active: false }]);
    const rfq = rig.emu.records('purchase.order.line', [['product_id', '=', productId(rig, 'RGT-CRP')]])[0]!['order_id'] as number;
    rig.emu.call('purchase.order', 'button_cancel', [[rfq]]);
    const quants = rig.emu.records('stock.quant', [['product_id', '=', productId(rig, 'RGT-CRP')]]).map((q) => q.id as number);
    rig.emu.call('stock.quant', 'write', [[quants[0]!], { quantity: 20 }]);
    await rig.relay.refreshReference();
    // Restored, and the lab is low again.
    rig.emu.call('stock.warehouse.orderpoint', 'write', [[op], { active: true }]);
    rig.emu.call('stock.quant', 'write', [[quants[0]!], { quantity: 2 }]);
    await rig.relay.refreshReference();
    await waitFor(() => draftLinesOf(rig!, 'RGT-CRP') === 1);
    expect(await breachesOf(rig, 'RGT-CRP')).toBe(2);
  });
});
