/**
 * The buyer's manual "To Order" (Odoo 18+ `qty_to_order_manual`) is cleared from the reorder rule
 * once the gateway's RFQ line ordered it, also when the line's answer was lost or the clearing
 * failed for a while: otherwise the next shortage orders the buyer's quantity a second time. The
 * real store in a temp dir, the relay, the Odoo emulator over HTTP ('lab-demo' seed: RGT-GLU's
 * reorder rule on WH/Stock/Lab, bought from DiagSupply).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { OdooVersion } from '../odoo-emulator/index.ts';
import { REF_NAMESPACE } from '../../gateway/src/relay/reference-data.ts';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { idOf, productId, rfqLines, thresholdBreached, waitFor } from '../fixtures/relay/helpers.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const ruleOf = (r: Rig): number => idOf(r.emu, 'stock.warehouse.orderpoint', [['product_id', '=', productId(r.emu, 'RGT-GLU')]]);
const manualOf = (r: Rig): unknown => r.emu.records('stock.warehouse.orderpoint', [['id', '=', ruleOf(r)]])[0]!['qty_to_order_manual'];

/** The next shortage, once the buyer confirmed the RFQ: what does its line order? */
async function nextShortageOrders(r: Rig): Promise<unknown[]> {
  r.emu.call('purchase.order', 'button_confirm', [[rfqLines(r.emu, 'RGT-GLU')[0]!['order_id'] as number]]);
  await r.commit([thresholdBreached('RGT-GLU', 15)]);
  await r.waitDrained();
  return rfqLines(r.emu, 'RGT-GLU').map((l) => l['product_qty']);
}

describe.each([18, 19] as const)("the buyer's manual quantity is ordered once (Odoo %i)", (version: OdooVersion) => {
  /**
   * The RFQ with the buyer's 30 cartridges was committed, its answer lost. The retry found the
   * line by its external id and was delivered without clearing the rule: the 30 stayed, and the
   * next shortage ordered 30 again.
   */
  it('a line whose answer was lost is found on the retry and the rule is cleared', async () => {
    rig = await makeRig(version);
    rig.emu.call('stock.warehouse.orderpoint', 'write', [[ruleOf(rig)], { qty_to_order_manual: 30 }]);
    rig.emu.faults.next(1, 'purchase.order', 'load').resetAfterCommit();
    await rig.commit([thresholdBreached('RGT-GLU', 15)]);
    await rig.waitDrained();
    expect(rig.emu.faults.log.map((f) => f.action)).toContain('reset-after-commit');
    expect(rfqLines(rig.emu, 'RGT-GLU').map((l) => l['product_qty'])).toEqual([30]);
    expect(manualOf(rig)).toBe(0);
    const [event] = await rig.store.listEvents({ type: 'stock.threshold_breached' });
    expect(event!.state).toBe('delivered');
    expect(event!.note).toContain('manual quantity to order (30)');
    expect(await nextShortageOrders(rig)).toEqual([30, 15]);
  });

  /** The clearing write met a proxy's 503: it was only logged, and the buyer's 30 stayed on the rule. */
  it('a clearing that failed is retried, without a second line', async () => {
    rig = await makeRig(version);
    rig.emu.call('stock.warehouse.orderpoint', 'write', [[ruleOf(rig)], { qty_to_order_manual: 30 }]);
    rig.emu.faults.next(1, 'stock.warehouse.orderpoint', 'write').status(503);
    await rig.commit([thresholdBreached('RGT-GLU', 15)]);
    await rig.waitDrained();
    expect(rig.emu.faults.log.map((f) => f.action)).toContain('status');
    expect(rfqLines(rig.emu, 'RGT-GLU').map((l) => l['product_qty'])).toEqual([30]);
    expect(manualOf(rig)).toBe(0);
    const [event] = await rig.store.listEvents({ type: 'stock.threshold_breached' });
    expect(event!.state).toBe('delivered');
    expect(await nextShortageOrders(rig)).toEqual([30, 15]);
  });

  /**
   * An attempt recorded the buyer's 30 and failed before its line was loaded (the record is what
   * such an attempt leaves in the store); before the retry the buyer made it 40. The retry ordered
   * 40, its answer lost, but the record still said 30: the attempt that found the line took the
   * 40 for a value typed since and left it on the rule, to be ordered again.
   */
  it('a retry that orders a quantity changed since an earlier attempt records it and clears it', async () => {
    rig = await makeRig(version);
    rig.emu.call('stock.warehouse.orderpoint', 'write', [[ruleOf(rig)], { qty_to_order_manual: 40 }]);
    const breach = thresholdBreached('RGT-GLU', 15);
    await rig.store.putDoc(REF_NAMESPACE, 'rfq-manual', { [breach.idempotencyKey]: { orderpoint: ruleOf(rig), qty: 30, at: new Date().toISOString() } });
    rig.emu.faults.next(1, 'purchase.order', 'load').resetAfterCommit();
    await rig.commit([breach]);
    await rig.waitDrained();
    expect(rig.emu.faults.log.map((f) => f.action)).toContain('reset-after-commit');
    expect(rfqLines(rig.emu, 'RGT-GLU').map((l) => l['product_qty'])).toEqual([40]);
    expect(manualOf(rig)).toBe(0);
    const [event] = await rig.store.listEvents({ type: 'stock.threshold_breached' });
    expect(event!.state).toBe('delivered');
    expect(event!.note).toContain('manual quantity to order (40)');
    expect(await rig.store.getDoc(REF_NAMESPACE, 'rfq-manual')).toEqual({});
  });

  /** Between the lost answer and the retry the buyer typed 40 for the next order: that is left alone. */
  it("a quantity the buyer typed since is left on the rule", async () => {
    rig = await makeRig(version, { relayOptions: { ambiguousSettleMs: 1500 } });
    rig.emu.call('stock.warehouse.orderpoint', 'write', [[ruleOf(rig)], { qty_to_order_manual: 30 }]);
    rig.emu.faults.next(1, 'purchase.order', 'load').resetAfterCommit();
    const [id] = await rig.commit([thresholdBreached('RGT-GLU', 15)]);
    await waitFor(async () => (await rig!.store.getEvent(id!))?.ambiguous === true);
    rig.emu.call('stock.warehouse.orderpoint', 'write', [[ruleOf(rig)], { qty_to_order_manual: 40 }]);
    await rig.waitDrained();
    expect(rfqLines(rig.emu, 'RGT-GLU').map((l) => l['product_qty'])).toEqual([30]);
    expect(manualOf(rig)).toBe(40);
    const event = await rig.store.getEvent(id!);
    expect(event!.state).toBe('delivered');
    expect(event!.note).toContain('changed since (40)');
  });
});
