/**
 * The buyer's own "To Order" on a reorder rule (Odoo 18+: `qty_to_order_manual`): Odoo's
 * replenishment orders it (`qty_to_order`) instead of the computed quantity, then clears it. The
 * real store in a temp dir, the relay, the Odoo emulator over HTTP ('lab-demo' seed: RGT-GLU's
 * reorder rule on WH/Stock/Lab, bought from DiagSupply).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { OdooVersion } from '../odoo-emulator/index.ts';
import { makeRig, startEmulator, type Rig } from '../fixtures/relay/harness.ts';
import { idOf, productId, rfqLines, thresholdBreached } from '../fixtures/relay/helpers.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const ruleOf = (r: Rig): number => idOf(r.emu, 'stock.warehouse.orderpoint', [['product_id', '=', productId(r.emu, 'RGT-GLU')]]);

describe.each([18, 19] as const)("a reorder rule's manual quantity to order (Odoo %i)", (version: OdooVersion) => {
  /**
   * The buyer typed 30 in the glucose cartridges' "To Order" (a congress next month): Odoo's own
   * replenishment orders 30. The gateway's draft RFQ ordered the 15 of its own computation, and the
   * buyer's 30 stayed on the rule, to be ordered again by whoever next pressed "Order" in Odoo.
   */
  it("the RFQ line orders the buyer's quantity, as Odoo's replenishment does, and the rule's quantity is cleared", async () => {
    // What Odoo's replenishment orders for that rule (a second database with the same seed).
    const odoo = await startEmulator(version);
    try {
      const op = idOf(odoo.emu, 'stock.warehouse.orderpoint', [['product_id', '=', productId(odoo.emu, 'RGT-GLU')]]);
      odoo.emu.call('stock.warehouse.orderpoint', 'write', [[op], { qty_to_order_manual: 30 }]);
      odoo.emu.call('stock.warehouse.orderpoint', 'action_replenish', [[op]]);
      expect(rfqLines(odoo.emu, 'RGT-GLU').map((l) => l['product_qty'])).toEqual([30]);
    } finally {
      await odoo.emu.close();
    }

    rig = await makeRig(version);
    rig.emu.call('stock.warehouse.orderpoint', 'write', [[ruleOf(rig)], { qty_to_order_manual: 30 }]);
    await rig.commit([thresholdBreached('RGT-GLU', 15)]);
    await rig.waitDrained();
    expect(rfqLines(rig.emu, 'RGT-GLU').map((l) => l['product_qty'])).toEqual([30]);
    expect(rig.emu.records('stock.warehouse.orderpoint', [['id', '=', ruleOf(rig)]])[0]!['qty_to_order_manual']).toBe(0);
    const [event] = await rig.store.listEvents({ type: 'stock.threshold_breached' });
    expect(event!.state).toBe('delivered');
    expect(event!.note).toContain("manual quantity to order (30)");
  });

  it('without a manual quantity the computed one is ordered, and the rule is left as it is', async () => {
    rig = await makeRig(version);
    await rig.commit([thresholdBreached('RGT-GLU', 15)]);
    await rig.waitDrained();
    expect(rfqLines(rig.emu, 'RGT-GLU').map((l) => l['product_qty'])).toEqual([15]);
    expect(rig.emu.calls.filter((c) => c.model === 'stock.warehouse.orderpoint' && c.method === 'write')).toEqual([]);
  });
});

describe.each([16, 17] as const)('no manual quantity field (Odoo %i)', (version: OdooVersion) => {
  /** The field does not exist before 18: the rule is read without it, and the computed quantity is ordered. */
  it('the reorder rule is read without it and the computed quantity is ordered', async () => {
    rig = await makeRig(version);
    await rig.commit([thresholdBreached('RGT-GLU', 15)]);
    await rig.waitDrained();
    expect(rfqLines(rig.emu, 'RGT-GLU').map((l) => l['product_qty'])).toEqual([15]);
    const [event] = await rig.store.listEvents({ type: 'stock.threshold_breached' });
    expect(event!.state).toBe('delivered');
  });
});
