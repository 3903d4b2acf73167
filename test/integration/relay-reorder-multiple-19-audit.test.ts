/**
 * The reorder rule's "Multiple" as each Odoo version has it: ≤18 `qty_multiple` (a quantity in the
 * product's unit, 0: not rounded), 19 `replenishment_uom_id` (a unit or packaging: the quantity is
 * rounded up to whole ones of it; unset: not rounded; 19 has no `qty_multiple`). The real store in
 * a temp dir, reference data pulled from the Odoo emulator over HTTP ('lab-demo' seed: TIP-200,
 * untracked tips, min 20 / max 60 in WH/Stock/Lab, 40 on hand; DIL-CBC, a diluent in litres, 8 L),
 * the stock watch called directly.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { StockThresholdBreachedData } from '../../gateway/src/events/types.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StockWatch } from '../../gateway/src/relay/stock-watch.ts';
import { makeRig, startEmulator, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, idOf, productId, rfqLines, thresholdBreached } from '../fixtures/relay/helpers.ts';
import type { OdooEmulator, OdooVersion } from '../odoo-emulator/index.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** A rig on `started`'s emulator (closed with it); the relay started unless `start` is false. */
async function relayOn(started: { emu: OdooEmulator; url: string }, version: OdooVersion = 19, start = true): Promise<Rig> {
  const r = await makeRig(version, { emu: started, start });
  const close = r.close.bind(r);
  r.close = async () => {
    await close();
    await started.emu.close();
  };
  return r;
}

/** A rig on `started`'s emulator, reference data pulled, and a stock watch over it. */
async function watched(version: OdooVersion, started: { emu: OdooEmulator; url: string }): Promise<{ rig: Rig; watch: StockWatch }> {
  const r = await relayOn(started, version, false);
  await r.client.connect();
  await r.relay.refreshReference();
  return { rig: r, watch: new StockWatch({ store: r.store, ref: r.relay.reference, log: silentLogger, clock: Date.now }) };
}

const suggested = (drafts: Array<{ data: unknown }>, code: string): number[] =>
  drafts.map((d) => d.data as StockThresholdBreachedData).filter((d) => d.productCode === code).map((d) => d.suggestedQuantity);

const tipsRule = (emu: OdooEmulator): number => idOf(emu, 'stock.warehouse.orderpoint', [['product_id', '=', productId(emu, 'TIP-200')]]);

describe('Odoo 19 reorder rules: no qty_multiple, the Multiple is a unit (replenishment_uom_id)', () => {
  /** What a developer sees: the emulator refuses qty_multiple on 19 the way a real 19 server does. */
  it('reading qty_multiple is an Invalid field ValueError on 19, and replenishment_uom_id is one on 17', async () => {
    const s19 = await startEmulator(19);
    const s17 = await startEmulator(17);
    try {
      expect(() => s19.emu.call('stock.warehouse.orderpoint', 'search_read', [[], ['id', 'qty_multiple']])).toThrow(/Invalid field 'qty_multiple' on model 'stock.warehouse.orderpoint'/);
      expect(() => s17.emu.call('stock.warehouse.orderpoint', 'search_read', [[], ['id', 'replenishment_uom_id']])).toThrow(/Invalid field 'replenishment_uom_id'/);
    } finally {
      await s19.emu.close();
      await s17.emu.close();
    }
  });

  /**
   * The tips are bought by the box of 10 and the buyer set the reorder rule's Multiple to the box.
   * 35 used (5 left, below 20): up to 60 is 55, in whole boxes 60, as Odoo 19's own rule orders.
   * The gateway read no Multiple on 19 and took Odoo ≤18's default (1), so it ordered 55 tips
   * (5.5 boxes) where the buyer's rule says whole boxes.
   */
  it('a Multiple of a box of 10 rounds the top-up up to whole boxes, as Odoo 19 computes it', async () => {
    const started = await startEmulator(19);
    const emu = started.emu;
    const units = emu.records('uom.uom', [['name', '=', 'Units']])[0]!;
    const box = emu.call('uom.uom', 'create', [{ name: 'Box of 10', relative_factor: 10, relative_uom_id: units['id'] }]) as number;
    emu.call('stock.warehouse.orderpoint', 'write', [[tipsRule(emu)], { replenishment_uom_id: box }]);
    const r = await watched(19, started);
    rig = r.rig;
    expect(rig.relay.reference.refused).toEqual([]);
    await rig.commit([consumableUsed('an-1', 'TIP-200', 35, 1)]);
    const drafts = await r.watch.check();
    // Odoo 19's own computation, with the same 35 taken from its stock.
    const lab = idOf(emu, 'stock.location', [['name', '=', 'Lab']]);
    const pid = productId(emu, 'TIP-200');
    const [quant] = emu.records('stock.quant', [['product_id', '=', pid], ['location_id', '=', lab]]);
    emu.call('stock.quant', 'write', [[quant!.id], { quantity: Number(quant!['quantity']) - 35 }]);
    expect(emu.records('stock.warehouse.orderpoint', [['id', '=', tipsRule(emu)]])[0]!['qty_to_order']).toBe(60);
    expect(suggested(drafts, 'TIP-200')).toEqual([60]);
  });

  /**
   * No Multiple on the rule: Odoo 19 orders the exact quantity ("If it is not set, it is not
   * rounded"). The diluent (8 L, min 10, max 12.5) needs 4.5 L; the gateway rounded it up to 5 L
   * with the ≤18 default multiple of 1 it assumed for the field 19 does not have.
   */
  it('without a Multiple the exact quantity is ordered', async () => {
    const started = await startEmulator(19);
    const emu = started.emu;
    emu.call('stock.warehouse.orderpoint', 'create', [
      {
        product_id: productId(emu, 'DIL-CBC'),
        location_id: idOf(emu, 'stock.location', [['name', '=', 'Lab']]),
        warehouse_id: idOf(emu, 'stock.warehouse', [['code', '=', 'WH']]),
        product_min_qty: 10,
        product_max_qty: 12.5,
        trigger: 'manual',
      },
    ]);
    expect(emu.records('stock.warehouse.orderpoint', [['product_id', '=', productId(emu, 'DIL-CBC')]])[0]!['qty_to_order']).toBe(4.5);
    const r = await watched(19, started);
    rig = r.rig;
    expect(suggested(await r.watch.check(), 'DIL-CBC')).toEqual([4.5]);
  });

  /** A Multiple that is the product's own unit does not round (Odoo: only another unit does). */
  it("a Multiple in the product's own unit leaves the quantity as it is", async () => {
    const started = await startEmulator(19);
    const emu = started.emu;
    const units = emu.records('uom.uom', [['name', '=', 'Units']])[0]!;
    emu.call('stock.warehouse.orderpoint', 'write', [[tipsRule(emu)], { replenishment_uom_id: units['id'] }]);
    const r = await watched(19, started);
    rig = r.rig;
    await rig.commit([consumableUsed('an-1', 'TIP-200', 35, 1)]);
    expect(suggested(await r.watch.check(), 'TIP-200')).toEqual([55]);
  });
});

describe("Odoo 19: a rule's own Multiple and the vendor line's unit", () => {
  /** The glucose cartridges, stocked one by one, bought from DiagSupply by the box of 10 (the vendor line's unit). */
  const boxVendor = (emu: OdooEmulator): number => {
    const units = emu.records('uom.uom', [['name', '=', 'Units']])[0]!;
    const box = emu.call('uom.uom', 'create', [{ name: 'Box of 10', relative_factor: 10, relative_uom_id: units['id'] }]) as number;
    const tmpl = emu.records('product.product', [['id', '=', productId(emu, 'RGT-GLU')]])[0]!['product_tmpl_id'] as number;
    emu.call('product.supplierinfo', 'write', [[idOf(emu, 'product.supplierinfo', [['product_tmpl_id', '=', tmpl]])], { product_uom_id: box }]);
    return units['id'] as number;
  };
  const gluRule = (emu: OdooEmulator): number => idOf(emu, 'stock.warehouse.orderpoint', [['product_id', '=', productId(emu, 'RGT-GLU')]]);

  /**
   * The buyer set the rule's Multiple to Units (single cartridges may be bought): Odoo 19 rounds
   * to the rule's Multiple and only falls back to the vendor line's unit when the rule has none,
   * so 12 cartridges are 1.2 boxes. The gateway rounded them up to 2 boxes whatever the rule said.
   */
  it('a rule whose Multiple is set is not rounded again to whole vendor units', async () => {
    const started = await startEmulator(19);
    const units = boxVendor(started.emu);
    started.emu.call('stock.warehouse.orderpoint', 'write', [[gluRule(started.emu)], { replenishment_uom_id: units }]);
    rig = await relayOn(started);
    await rig.commit([thresholdBreached('RGT-GLU', 12)]);
    await rig.waitDrained();
    expect(rfqLines(started.emu, 'RGT-GLU').map((l) => l['product_qty'])).toEqual([1.2]);
  });

  it('a rule without a Multiple is rounded up to whole vendor units, as before', async () => {
    const started = await startEmulator(19);
    boxVendor(started.emu);
    rig = await relayOn(started);
    await rig.commit([thresholdBreached('RGT-GLU', 12)]);
    await rig.waitDrained();
    expect(rfqLines(started.emu, 'RGT-GLU').map((l) => l['product_qty'])).toEqual([2]);
  });
});

describe('Odoo 17: qty_multiple as before', () => {
  it('a qty_multiple of 10 rounds the top-up up to tens', async () => {
    const started = await startEmulator(17);
    started.emu.call('stock.warehouse.orderpoint', 'write', [[tipsRule(started.emu)], { qty_multiple: 10 }]);
    const r = await watched(17, started);
    rig = r.rig;
    await rig.commit([consumableUsed('an-1', 'TIP-200', 35, 1)]);
    expect(suggested(await r.watch.check(), 'TIP-200')).toEqual([60]);
  });
});
