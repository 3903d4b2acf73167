import { afterEach, describe, expect, it } from 'vitest';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { orderCancelled, orderCreated, partnerId, productId, resultValidated } from '../fixtures/relay/helpers.ts';

/**
 * Results the LIS validated before their order (ORU before ORM) are delivered without a write,
 * "the order follows in the queue: it marks the test delivered" (rules/result-validated.ts), and
 * the order's rule marks their lines delivered once it has posted the sale order. Some orders
 * never post: dead-lettered (a test code with no Odoo product), finance enters the sale order by
 * hand and the operator discards the event, as its reason allows. What then of those results?
 */

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** The sale order finance enters by hand for `accession`, one line per test; its id. */
function enterByHand(r: Rig, accession: string, tests: string[]): number {
  const lines = tests.map((code) => [0, 0, { product_id: productId(r.emu, code), product_uom_qty: 1 }]);
  return r.emu.call('sale.order', 'create', [{ partner_id: partnerId(r.emu, 'CLINIC-A'), client_order_ref: accession, order_line: lines }]) as number;
}

function deliveredByTest(r: Rig, soId: number): Record<string, unknown> {
  const codes = new Map(['GLU', 'CRP', 'TSH'].map((c) => [productId(r.emu, c), c]));
  return Object.fromEntries(r.emu.records('sale.order.line', [['order_id', '=', soId]]).map((l) => [codes.get(l['product_id'] as number), l['qty_delivered']]));
}

describe('results validated before an order that never posted', () => {
  it.each([17, 19] as const)("Odoo %i: the result is marked delivered on the hand-entered order when the accession's next result reaches it", async (version) => {
    // What finance saw: the glucose result, validated by the LIS before its order came, stayed
    // "delivered 0" on the sale order finance had entered by hand for the dead order, so Odoo's
    // "Create Invoice" (delivered quantities) left the test out and it was never billed; the
    // gateway's event list said "the order follows in the queue: it marks the test delivered",
    // which the discarded order never did. The CRP result, validated after, was delivered.
    // Broke: result.validated → the test's line marked delivered (DESIGN.md §3).
    rig = await makeRig(version);
    await rig.relay.pause();
    const [early] = await rig.commit([resultValidated('ACC-RL', 'GLU')]);
    const [order] = await rig.commit([orderCreated('ACC-RL', 'CLINIC-A', ['GLU', 'CRP', 'NO-SUCH-TEST'])]);
    await rig.relay.resume();
    await rig.waitDrained();
    expect((await rig.store.getEvent(early!))?.state).toBe('delivered');
    expect((await rig.store.getEvent(order!))?.state).toBe('dead');

    const soId = enterByHand(rig, 'ACC-RL', ['GLU', 'CRP']);
    await rig.store.discard(order!, 'operator', 'entered by hand in Odoo');
    await rig.commit([resultValidated('ACC-RL', 'CRP')]);
    await rig.waitDrained();
    expect(deliveredByTest(rig, soId)).toEqual({ GLU: 1, CRP: 1 });
  });

  it('a result of a test the LIS cancelled before its order is not marked delivered, though finance put the test on the order', async () => {
    // The LIS validated GLU, then cancelled it (a wrong tube), both before the order came; the
    // order was dead-lettered and finance entered it by hand from the paper requisition, GLU
    // included. Nothing of GLU is to be billed: CRP's result must not mark GLU's line delivered.
    rig = await makeRig(17);
    await rig.relay.pause();
    await rig.commit([resultValidated('ACC-RX', 'GLU')]);
    await rig.commit([orderCancelled('ACC-RX', ['GLU'])]);
    const [order] = await rig.commit([orderCreated('ACC-RX', 'CLINIC-A', ['GLU', 'CRP', 'NO-SUCH-TEST'])]);
    await rig.relay.resume();
    await rig.waitDrained();
    expect((await rig.store.getEvent(order!))?.state).toBe('dead');
    const soId = enterByHand(rig, 'ACC-RX', ['GLU', 'CRP']);
    await rig.store.discard(order!, 'operator', 'entered by hand in Odoo');
    await rig.commit([resultValidated('ACC-RX', 'CRP')]);
    await rig.waitDrained();
    expect(deliveredByTest(rig, soId)).toEqual({ GLU: 0, CRP: 1 });
  });
});
