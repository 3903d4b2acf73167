/**
 * The buyer's draft RFQ line as Odoo's own replenishment would write it (vendor, unit, quantity,
 * description; none for a reorder rule that does not buy): the real store in a temp dir, the
 * relay, the Odoo emulator over HTTP ('lab-demo' seed: RGT-GLU bought from DiagSupply, its only
 * vendor line; tests add LabCo's line after it).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { OdooVersion } from '../odoo-emulator/index.ts';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { idOf, inDays, partnerId, productId, rfqLines, thresholdBreached } from '../fixtures/relay/helpers.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe.each([17, 19] as const)('RFQ vendor: the one Odoo would buy from (Odoo %i)', (version: OdooVersion) => {
  /** The product's vendor lines after the buyer's edit: DiagSupply's first, then LabCo's. */
  async function rigWithVendors(edit: (rig: Rig, diagLine: number) => void): Promise<Rig> {
    const r = await makeRig(version);
    const pid = productId(r.emu, 'RGT-GLU');
    const tmpl = r.emu.records('product.product', [['id', '=', pid]])[0]!['product_tmpl_id'] as number;
    const diagLine = idOf(r.emu, 'product.supplierinfo', [['product_tmpl_id', '=', tmpl]]);
    r.emu.call('product.supplierinfo', 'create', [{ partner_id: partnerId(r.emu, 'VEND-LABCO'), product_tmpl_id: tmpl, price: 112, min_qty: 1, sequence: 2 }]);
    edit(r, diagLine);
    return r;
  }

  const rfqVendor = (r: Rig): unknown => {
    const [line] = rfqLines(r.emu, 'RGT-GLU');
    return r.emu.records('purchase.order', [['id', '=', line!['order_id']]])[0]!['partner_id'];
  };

  /**
   * The buyer ended DiagSupply's price list for the glucose cartridges yesterday (End Date) and
   * added LabCo's: the next shortage's draft RFQ still went to DiagSupply, at a price that no
   * longer holds. Odoo's own replenishment (_select_seller) skips a vendor line outside its dates.
   */
  it("a vendor line whose End Date has passed is not chosen: the RFQ goes to the vendor whose price holds", async () => {
    rig = await rigWithVendors((r, diagLine) => r.emu.call('product.supplierinfo', 'write', [[diagLine], { date_end: inDays(-1).slice(0, 10) }]));
    await rig.commit([thresholdBreached('RGT-GLU', 15)]);
    await rig.waitDrained();
    expect(rfqLines(rig.emu, 'RGT-GLU')).toHaveLength(1);
    expect(rfqVendor(rig)).toBe(partnerId(rig.emu, 'VEND-LABCO'));
  });

  /**
   * DiagSupply went out of business and the buyer archived the vendor: the draft RFQ was still
   * addressed to it. Odoo's replenishment only buys from active vendors (_prepare_sellers).
   */
  it('an archived vendor is not chosen', async () => {
    rig = await rigWithVendors((r) => r.emu.call('res.partner', 'write', [[partnerId(r.emu, 'VEND-DIAG')], { active: false }]));
    await rig.commit([thresholdBreached('RGT-GLU', 15)]);
    await rig.waitDrained();
    expect(rfqLines(rig.emu, 'RGT-GLU')).toHaveLength(1);
    expect(rfqVendor(rig)).toBe(partnerId(rig.emu, 'VEND-LABCO'));
  });
});

describe.each([17, 19] as const)("RFQ line: the vendor, quantity and unit Odoo's replenishment would write (Odoo %i)", (version: OdooVersion) => {
  const glu = (r: Rig): { pid: number; tmpl: number; diagLine: number } => {
    const pid = productId(r.emu, 'RGT-GLU');
    const tmpl = r.emu.records('product.product', [['id', '=', pid]])[0]!['product_tmpl_id'] as number;
    return { pid, tmpl, diagLine: idOf(r.emu, 'product.supplierinfo', [['product_tmpl_id', '=', tmpl]]) };
  };
  const addLabcoLine = (r: Rig, vals: Record<string, unknown> = {}): number => {
    const { tmpl } = glu(r);
    return r.emu.call('product.supplierinfo', 'create', [{ partner_id: partnerId(r.emu, 'VEND-LABCO'), product_tmpl_id: tmpl, price: 112, min_qty: 1, sequence: 2, ...vals }]) as number;
  };
  const onlyLine = (r: Rig): Record<string, unknown> => {
    const lines = rfqLines(r.emu, 'RGT-GLU');
    expect(lines).toHaveLength(1);
    return lines[0]!;
  };
  const vendorOfLine = (r: Rig, line: Record<string, unknown>): unknown => r.emu.records('purchase.order', [['id', '=', line['order_id']]])[0]!['partner_id'];
  const unitOf = (line: Record<string, unknown>): unknown => line[version >= 19 ? 'product_uom_id' : 'product_uom'];

  /**
   * The buyer set the glucose cartridges' reorder rule to buy from LabCo (the "Vendor" column of
   * the replenishment report: the rule's `supplier_id`), with DiagSupply still first on the
   * product's vendor list: the gateway's draft RFQ went to DiagSupply. Odoo's own replenishment
   * (_run_buy) takes the reorder rule's vendor before any other.
   */
  it("the reorder rule's own vendor gets the RFQ", async () => {
    rig = await makeRig(version);
    const labcoLine = addLabcoLine(rig);
    const op = idOf(rig.emu, 'stock.warehouse.orderpoint', [['product_id', '=', glu(rig).pid]]);
    rig.emu.call('stock.warehouse.orderpoint', 'write', [[op], { supplier_id: labcoLine }]);
    await rig.commit([thresholdBreached('RGT-GLU', 15)]);
    await rig.waitDrained();
    expect(vendorOfLine(rig, onlyLine(rig))).toBe(partnerId(rig.emu, 'VEND-LABCO'));
  });

  /**
   * DiagSupply sells the cartridges by 24 at least (its price line's minimum quantity): the
   * gateway's RFQ asked for 15, which the vendor refuses and the buyer had to correct by hand.
   * The line orders at least the vendor's minimum.
   */
  it("the vendor's minimum quantity is ordered at least", async () => {
    rig = await makeRig(version);
    rig.emu.call('product.supplierinfo', 'write', [[glu(rig).diagLine], { min_qty: 24 }]);
    await rig.commit([thresholdBreached('RGT-GLU', 15)]);
    await rig.waitDrained();
    const line = onlyLine(rig);
    expect(vendorOfLine(rig, line)).toBe(partnerId(rig.emu, 'VEND-DIAG'));
    expect(line['product_qty']).toBe(24);
  });

  /**
   * DiagSupply's minimum is 24, LabCo's 1, and 15 are needed: Odoo's _select_seller passes over a
   * price line whose minimum the quantity does not reach and buys from LabCo. The gateway sent
   * the RFQ to DiagSupply.
   */
  it("a vendor line whose minimum the need does not reach gives way to the next vendor's", async () => {
    rig = await makeRig(version);
    rig.emu.call('product.supplierinfo', 'write', [[glu(rig).diagLine], { min_qty: 24 }]);
    addLabcoLine(rig);
    await rig.commit([thresholdBreached('RGT-GLU', 15)]);
    await rig.waitDrained();
    const line = onlyLine(rig);
    expect(vendorOfLine(rig, line)).toBe(partnerId(rig.emu, 'VEND-LABCO'));
    expect(line['product_qty']).toBe(15);
  });

  /**
   * The lab's glucose cartridges are resupplied from the central store (the reorder rule's Route:
   * "Resupply Lab from WH", a rule pulling from WH/Stock): Odoo's replenishment makes an internal
   * transfer there, never a purchase. The gateway raised a draft RFQ to DiagSupply for stock the
   * lab already held in the warehouse, which purchasing confirmed: bought twice. The breach is
   * delivered without an RFQ, and its note says why.
   */
  it("a reorder rule whose route resupplies from another location gets no RFQ", async () => {
    rig = await makeRig(version);
    const stock = idOf(rig.emu, 'stock.location', [['name', '=', 'Stock']]);
    const lab = idOf(rig.emu, 'stock.location', [['name', '=', 'Lab']]);
    const internal = idOf(rig.emu, 'stock.picking.type', [['code', '=', 'internal'], ['name', '=', 'Internal Transfers'], ['active', 'in', [true, false]]]);
    const route = rig.emu.call('stock.route', 'create', [{ name: 'Resupply Lab from WH' }]) as number;
    rig.emu.call('stock.rule', 'create', [{ name: 'WH/Stock → Lab', action: 'pull', route_id: route, location_src_id: stock, location_dest_id: lab, picking_type_id: internal }]);
    const op = idOf(rig.emu, 'stock.warehouse.orderpoint', [['product_id', '=', glu(rig).pid]]);
    rig.emu.call('stock.warehouse.orderpoint', 'write', [[op], { route_id: route }]);
    const [id] = await rig.commit([thresholdBreached('RGT-GLU', 15)]);
    await rig.waitDrained();
    expect(rfqLines(rig.emu, 'RGT-GLU')).toHaveLength(0);
    const event = await rig.store.getEvent(id!);
    expect(event?.state).toBe('delivered');
    expect(event?.note).toContain('Resupply Lab from WH');
  });

  /** The reorder rule set to the Buy route explicitly: purchased as before. */
  it('a reorder rule on the Buy route gets its RFQ', async () => {
    rig = await makeRig(version);
    const op = idOf(rig.emu, 'stock.warehouse.orderpoint', [['product_id', '=', glu(rig).pid]]);
    rig.emu.call('stock.warehouse.orderpoint', 'write', [[op], { route_id: idOf(rig.emu, 'stock.route', [['name', '=', 'Buy']]) }]);
    await rig.commit([thresholdBreached('RGT-GLU', 15)]);
    await rig.waitDrained();
    expect(vendorOfLine(rig, onlyLine(rig))).toBe(partnerId(rig.emu, 'VEND-DIAG'));
  });

  /**
   * DiagSupply lists the cartridges under its own catalog number and name (the vendor line's
   * Vendor Product Code and Name): the RFQ the buyer sent carried only the lab's product name, and
   * DiagSupply's order desk had to ask which item was meant. Odoo's line reads
   * "[DS-4471] GLU cartridge 500T", the vendor's code and name (the product's own when the vendor
   * line has none).
   */
  it("the line's description names the vendor's product code and name", async () => {
    rig = await makeRig(version);
    rig.emu.call('product.supplierinfo', 'write', [[glu(rig).diagLine], { product_code: 'DS-4471', product_name: 'GLU cartridge 500T' }]);
    await rig.commit([thresholdBreached('RGT-GLU', 15), thresholdBreached('RGT-HBA1C', 8)]);
    await rig.waitDrained();
    expect(onlyLine(rig)['name']).toBe('[DS-4471] GLU cartridge 500T');
    expect(rfqLines(rig.emu, 'RGT-HBA1C')[0]!['name']).toBe('[RGT-HBA1C] HbA1c reagent kit (200 tests)');
  });

  /**
   * The lab stocks the cartridges one by one but buys them in boxes of 10 (the purchase unit:
   * the product's `uom_po_id` up to 18, the vendor line's unit on 19). The draft RFQ asked for
   * "20 Units" where Odoo's replenishment writes "2 Box of 10", in the vendor's unit and at the
   * vendor's price per box.
   */
  /**
   * The cartridges bought by the box of 10 (≤18: `rounding` of the box, whole boxes, 1; on 19
   * every unit rounds at the 'Product Unit' precision, 0.01, and the value written is not kept).
   */
  const buyByTheBox = (r: Rig): number => {
    const units = r.emu.records('uom.uom', [['name', '=', 'Units']])[0]!;
    const box = r.emu.call('uom.uom', 'create', [
      version >= 19
        ? { name: 'Box of 10', relative_factor: 10, relative_uom_id: units['id'], rounding: 1 }
        : { name: 'Box of 10', category_id: units['category_id'], factor: 0.1, uom_type: 'bigger', rounding: 1 },
    ]) as number;
    const { tmpl, diagLine } = glu(r);
    if (version >= 19) r.emu.call('product.supplierinfo', 'write', [[diagLine], { product_uom_id: box }]);
    else r.emu.call('product.template', 'write', [[tmpl], { uom_po_id: box }]);
    return box;
  };

  it("the quantity is in the vendor's unit", async () => {
    rig = await makeRig(version);
    const box = buyByTheBox(rig);
    await rig.commit([thresholdBreached('RGT-GLU', 20)]);
    await rig.waitDrained();
    const line = onlyLine(rig);
    expect(unitOf(line)).toBe(box);
    expect(line['product_qty']).toBe(2);
  });

  /**
   * 15 cartridges needed, bought by the box of 10 whose unit rounds to whole boxes: the RFQ asked
   * for 1.5 boxes, which no vendor ships. Odoo converts the need into the purchase unit rounded
   * half-up at that unit's rounding (`_compute_quantity(…, rounding_method='HALF-UP')`): 2 boxes.
   */
  it("the quantity in the vendor's unit is rounded as that unit says", async () => {
    rig = await makeRig(version);
    buyByTheBox(rig);
    await rig.commit([thresholdBreached('RGT-GLU', 15)]);
    await rig.waitDrained();
    expect(onlyLine(rig)['product_qty']).toBe(2);
  });

  /**
   * 12 cartridges by the box of 10. ≤18: half-up at the box's rounding (1), 1 box. 19: units no
   * longer round per unit (0.01 for all), and Odoo's reorder rule rounds its quantity up to whole
   * units of the vendor line's unit (`_get_replenishment_multiple_alternative`): 2 boxes, where
   * the gateway asked for 1.2.
   */
  it("12 needed by the box of 10: what each version's replenishment orders", async () => {
    rig = await makeRig(version);
    buyByTheBox(rig);
    await rig.commit([thresholdBreached('RGT-GLU', 12)]);
    await rig.waitDrained();
    expect(onlyLine(rig)['product_qty']).toBe(version >= 19 ? 2 : 1);
  });
});
