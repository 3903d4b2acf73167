/**
 * Which vendor the buyer's draft RFQ goes to: the real store in a temp dir, the relay, the Odoo
 * emulator over HTTP ('lab-demo' seed: RGT-GLU bought from DiagSupply, its only vendor line; the
 * tests add LabCo's line after it).
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
