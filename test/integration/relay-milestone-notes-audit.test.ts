import { afterEach, describe, expect, it } from 'vitest';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { milestone, orderCreated, partnerId, productId, resultValidated, waitFor } from '../fixtures/relay/helpers.ts';
import { noteMarker } from '../../gateway/src/relay/rules/milestone-notes.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';

/**
 * What the order's chatter shows of the lab's milestones (DESIGN.md §3: specimen received, test in
 * progress or completed → a note on the order's chatter), on the days an operator had to step in.
 */

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const fromLink = (e: DraftEvent, endpoint: string): DraftEvent => ({ ...e, idempotencyKey: `${endpoint}|${e.idempotencyKey}`, source: { ...e.source, endpoint } });
const chatterOf = (r: Rig, soId: number): string =>
  r.emu.records('mail.message', [['model', '=', 'sale.order'], ['res_id', '=', soId]]).map((m) => String(m['body'] ?? '')).join('\n');

describe('milestone notes when an operator steps in', () => {
  // The LIS sent a preliminary result (test.completed) before its order; the milestone was resolved
  // without a write, its note left to the order's rule. The order was dead-lettered (a test code
  // with no Odoo product); finance entered the sale order by hand and the operator discarded the
  // event, as the dead letter said. The final result then reached that sale order, but the
  // chatter never showed the completed test: the note had gone with the discarded order, without
  // a word to anyone.
  it("a milestone left to an order an operator discarded is noted on the sale order the accession's next event reaches", async () => {
    rig = await makeRig(17);
    const [early] = await rig.commit([milestone('test.completed', 'ACC-DS', 1)]);
    const [order] = await rig.commit([orderCreated('ACC-DS', 'CLINIC-A', ['GLU', 'NO-SUCH-TEST'])]);
    await rig.waitDrained();
    expect((await rig.store.getEvent(early!))?.state).toBe('delivered');
    expect((await rig.store.getEvent(order!))?.state).toBe('dead');

    // Finance enters the order by hand (the clinic's accession as its Customer Reference); the
    // operator discards the dead letter.
    const soId = rig.emu.call('sale.order', 'create', [{ partner_id: partnerId(rig.emu, 'CLINIC-A'), client_order_ref: 'ACC-DS', order_line: [[0, 0, { product_id: productId(rig.emu, 'GLU'), product_uom_qty: 1 }]] }]) as number;
    await rig.store.discard(order!, 'operator', 'entered by hand in Odoo');

    // The final result of the morning arrives.
    await rig.commit([resultValidated('ACC-DS', 'GLU')]);
    await rig.waitDrained();
    const line = rig.emu.records('sale.order.line', [['order_id', '=', soId]])[0]!;
    expect(line['qty_delivered']).toBe(1);
    const earlyEvent = (await rig.store.getEvent(early!))!;
    expect(chatterOf(rig, soId)).toContain(`lgw:${noteMarker(earlyEvent.event.idempotencyKey)}`);
  });

  // Two LIS links number their accessions alike (no hl7[].accessionPrefix). The second link's
  // order of ACC-CL, another clinic's patient, was dead-lettered ("enter this order by hand and
  // discard this event"); once the operator discarded it, that link's "specimen received" went on
  // the first clinic's sale order: another patient's specimen on its chatter. Results, cancellations
  // and invoices of that link are refused there (sale-orders.ts otherClientGuard); notes were not.
  it("a milestone from the LIS link whose order is another client's is never noted on this client's sale order", async () => {
    rig = await makeRig(17);
    await rig.commit([fromLink(orderCreated('ACC-CL', 'CLINIC-A', ['GLU']), 'lis-a')]);
    await rig.waitDrained();
    const so = rig.emu.records('sale.order', [['client_order_ref', '=', 'ACC-CL']])[0]!;
    const [other] = await rig.commit([fromLink(orderCreated('ACC-CL', 'CLINIC-B', ['CRP']), 'lis-b')]);
    const [note] = await rig.commit([fromLink(milestone('specimen.received', 'ACC-CL', 7), 'lis-b')]);
    // The dead order holds its partition: the note waits behind it.
    await waitFor(async () => (await rig!.store.getEvent(other!))?.state === 'dead');
    await rig.store.discard(other!, 'operator', 'entered by hand for Harbour Medical Centre');
    rig.relay.notify();
    await rig.waitDrained();
    const noted = (await rig.store.getEvent(note!))!;
    expect(chatterOf(rig, so.id as number)).not.toContain(`lgw:${noteMarker(noted.event.idempotencyKey)}`);
    expect(noted.state).toBe('dead');
    expect(noted.deadReason).toContain('ACC-CL');
  });
});

describe('milestone notes left to the order, two LIS links numbering alike', () => {
  // The second link's "specimen received" came before any order of ACC-SW, so it was left to the
  // order that followed. That was the FIRST link's order, for another clinic: its rule noted the
  // second link's specimen on the first clinic's sale order (and so would the first link's result,
  // sweeping the notes left behind).
  it("the order and the result of one link never note the other link's milestones", async () => {
    rig = await makeRig(17);
    const [note] = await rig.commit([fromLink(milestone('specimen.received', 'ACC-SW', 8), 'lis-b')]);
    await rig.commit([fromLink(orderCreated('ACC-SW', 'CLINIC-A', ['GLU']), 'lis-a')]);
    const [other] = await rig.commit([fromLink(orderCreated('ACC-SW', 'CLINIC-B', ['CRP']), 'lis-b')]);
    await waitFor(async () => (await rig!.store.getEvent(other!))?.state === 'dead');
    await rig.store.discard(other!, 'operator', 'entered by hand for Harbour Medical Centre');
    await rig.commit([fromLink(resultValidated('ACC-SW', 'GLU'), 'lis-a')]);
    await rig.waitDrained();
    const so = rig.emu.records('sale.order', [['origin', '=', 'lab-gateway ACC-SW']])[0]!;
    expect(rig.emu.records('sale.order.line', [['order_id', '=', so.id]])[0]!['qty_delivered']).toBe(1);
    const noted = (await rig.store.getEvent(note!))!;
    expect(chatterOf(rig, so.id as number)).not.toContain(`lgw:${noteMarker(noted.event.idempotencyKey)}`);
  });
});

describe('the sale order of an accession', () => {
  // Sales staff typed the clinic's own order number, 4711, into the Customer Reference of the
  // gateway's order of accession ACC-4700 (as the relay README expects them to). Weeks later the
  // lab's numbering reached 4711: the new patient's order, its notes, results and invoice all went
  // onto ACC-4700's sale order (found by that Customer Reference), and accession 4711 never had an
  // order of its own: the clinic was billed on the wrong order.
  it("an order whose Customer Reference staff set to the clinic's number is not another accession's order", async () => {
    rig = await makeRig(17);
    await rig.commit([orderCreated('ACC-4700', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();
    const first = rig.emu.records('sale.order', [['origin', '=', 'lab-gateway ACC-4700']])[0]!;
    rig.emu.call('sale.order', 'write', [[first.id], { client_order_ref: '4711' }]);

    await rig.commit([orderCreated('4711', 'CLINIC-A', ['CRP']), milestone('specimen.received', '4711', 3)]);
    await rig.waitDrained();
    const own = rig.emu.records('sale.order', [['origin', '=', 'lab-gateway 4711']]);
    expect(own).toHaveLength(1);
    expect(rig.emu.records('sale.order.line', [['order_id', '=', first.id]]).map((l) => l['product_id'])).toEqual([productId(rig.emu, 'GLU')]);
    expect(chatterOf(rig, first.id as number)).not.toContain('SP3');
    expect(chatterOf(rig, own[0]!.id as number)).toContain('SP3');
  });
});
