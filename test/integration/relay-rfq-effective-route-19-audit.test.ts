/**
 * Odoo 19 reorder rules without a Route replenish by a computed one (`effective_route_id`): the
 * product's or its category's resupply route to the rule's location, else the warehouse's Buy when
 * the product has vendors. The real store in a temp dir, the relay, the Odoo emulator over HTTP
 * ('lab-demo' seed: RGT-GLU's reorder rule on WH/Stock/Lab, no Route, bought from DiagSupply).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { idOf, productId, rfqLines, thresholdBreached } from '../fixtures/relay/helpers.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** A route 'Resupply Lab from WH' (WH/Stock → WH/Stock/Lab, pull), given to RGT-GLU's product or category. */
function resupplyRoute(r: Rig, on: 'product' | 'category'): number {
  const stock = idOf(r.emu, 'stock.location', [['name', '=', 'Stock']]);
  const lab = idOf(r.emu, 'stock.location', [['name', '=', 'Lab']]);
  const internal = r.emu.records('stock.picking.type', [['code', '=', 'internal']], {})[0]?.['id'] ?? idOf(r.emu, 'stock.picking.type', []);
  const route = r.emu.call('stock.route', 'create', [{ name: 'Resupply Lab from WH' }]) as number;
  r.emu.call('stock.rule', 'create', [{ name: 'WH/Stock → Lab', action: 'pull', route_id: route, location_src_id: stock, location_dest_id: lab, picking_type_id: internal }]);
  const product = r.emu.records('product.product', [['id', '=', productId(r.emu, 'RGT-GLU')]])[0]!;
  if (on === 'product') r.emu.call('product.template', 'write', [[product['product_tmpl_id']], { route_ids: [[6, 0, [route]]] }]);
  else r.emu.call('product.category', 'write', [[product['categ_id']], { route_ids: [[6, 0, [route]]] }]);
  return route;
}

const ruleOf = (r: Rig): Record<string, unknown> => r.emu.records('stock.warehouse.orderpoint', [['product_id', '=', productId(r.emu, 'RGT-GLU')]])[0]!;

describe('Odoo 19: the route a reorder rule without a Route replenishes by', () => {
  /**
   * The cartridges are resupplied to the lab from the main store (the product's route), the lab's
   * reorder rule left without a Route: Odoo 19 computes that route and makes a transfer. The
   * gateway took an empty Route for "buy" and sent DiagSupply an RFQ for cartridges already on
   * the shelf downstairs.
   */
  it.each(['product', 'category'] as const)("a resupply route of the %s: no RFQ, the note names the route", async (on) => {
    rig = await makeRig(19);
    const route = resupplyRoute(rig, on);
    expect(ruleOf(rig)['route_id']).toBe(false);
    expect(ruleOf(rig)['effective_route_id']).toBe(route);
    await rig.commit([thresholdBreached('RGT-GLU', 15)]);
    await rig.waitDrained();
    expect(rfqLines(rig.emu, 'RGT-GLU')).toEqual([]);
    const [event] = await rig.store.listEvents({ type: 'stock.threshold_breached' });
    expect(event!.state).toBe('delivered');
    expect(event!.note).toContain("'Resupply Lab from WH'");
  });

  /** No route of the product's: 19 computes the warehouse's Buy (the product has a vendor), and the RFQ is written as before. */
  it("no route of the product's: the warehouse's Buy, an RFQ", async () => {
    rig = await makeRig(19);
    expect(ruleOf(rig)['effective_route_id']).toBe(idOf(rig.emu, 'stock.route', [['name', '=', 'Buy']]));
    await rig.commit([thresholdBreached('RGT-GLU', 15)]);
    await rig.waitDrained();
    expect(rfqLines(rig.emu, 'RGT-GLU').map((l) => l['product_qty'])).toEqual([15]);
  });

  /** The rule's own Route wins over the product's (effective_route_id is the Route when set). */
  it("the rule's Buy route wins over the product's resupply route", async () => {
    rig = await makeRig(19);
    resupplyRoute(rig, 'product');
    const buy = idOf(rig.emu, 'stock.route', [['name', '=', 'Buy']]);
    rig.emu.call('stock.warehouse.orderpoint', 'write', [[ruleOf(rig)['id']], { route_id: buy }]);
    expect(ruleOf(rig)['effective_route_id']).toBe(buy);
    await rig.commit([thresholdBreached('RGT-GLU', 15)]);
    await rig.waitDrained();
    expect(rfqLines(rig.emu, 'RGT-GLU').map((l) => l['product_qty'])).toEqual([15]);
  });
});
