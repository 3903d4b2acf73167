/**
 * An RFQ the buyer confirms while a breach of its product waits to be posted holds that breach back.
 *
 * The stock watch counts no draft RFQ in its forecast: a breach raised while the product has an open
 * RFQ line is held back when it posts (the RFQ rule writes nothing while an open line of the
 * product exists). Was: a breach raised while the gateway's RFQ of 45 tips was still a draft (the
 * lab back above its minimum with a box brought up from the main store, then below it again) could
 * not reach Odoo at once (the lab's line to Odoo down); the buyer confirmed that RFQ meanwhile,
 * and when the breach posted no line was open any more: a second draft RFQ line of 43 tips, the
 * tips ordered twice.
 * Real store in a temp dir, real relay and stock watch, the Odoo emulator over HTTP.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, countInLab, rfqLines, waitFor } from '../fixtures/relay/helpers.ts';
import type { OdooVersion } from '../odoo-emulator/index.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

async function breaches(r: Rig, code: string): Promise<Array<{ state: string; suggestedQuantity: number }>> {
  const events = await r.store.listEvents({ type: 'stock.threshold_breached', limit: 100 });
  return events.filter((e) => (e.event.data as { productCode: string }).productCode === code).map((e) => ({ state: e.state, suggestedQuantity: (e.event.data as { suggestedQuantity: number }).suggestedQuantity }));
}

let n = 0;
/** Tips used on analyzer an-1, posted, and the stock watch of that round done (see stock-incoming-since-pull-audit). */
async function use(r: Rig, qty: number): Promise<void> {
  await r.commit([consumableUsed('an-1', 'TIP-200', qty, ++n)]);
  await r.waitDrained();
  await r.commit([consumableUsed('an-2', 'RGT-GLU', 0, ++n)]);
  await r.waitDrained();
  await r.waitDrained();
}

const countTips = (r: Rig, qty: number): void => countInLab(r.emu, 'TIP-200', qty);

describe.each([16, 17, 19] as const)('an RFQ confirmed while a breach waits (Odoo %i)', (version: OdooVersion) => {
  it('the breach raised while the RFQ was a draft orders nothing once it is confirmed', async () => {
    rig = await makeRig(version, { relayOptions: { watchStock: true, stockWatchIntervalMs: 0 } });
    await rig.waitDrained();
    await rig.relay.refreshReference();
    // TIP-200: 40 in the lab, min 20 / max 60. 25 used: 15 left, 45 ordered on a draft RFQ.
    await use(rig, 25);
    const [line] = rfqLines(rig.emu, 'TIP-200');
    expect(line?.['product_qty']).toBe(45);
    // A box brought up: 30 in the lab; a run reads it (29): the episode ends.
    countTips(rig, 30);
    await use(rig, 1);
    // The RFQ rule cannot reach Odoo for a while (its reads answered 503 by the front proxy).
    rig.emu.faults.inject({ match: { model: 'purchase.order.line', method: 'search_read' }, times: Infinity, action: { kind: 'status', status: 503 } });
    // 12 more: 17 in the lab; the RFQ is still a draft (nothing on its way): a second breach, waiting.
    await rig.commit([consumableUsed('an-1', 'TIP-200', 12, ++n)]);
    await waitFor(async () => (await breaches(rig!, 'TIP-200')).length === 2);
    // The buyer confirms the RFQ of 45 (Odoo keeps whole seconds: in a later second than the
    // breach's, as a person's confirmation is); then the link comes back.
    const raised = (await rig.store.listEvents({ type: 'stock.threshold_breached', limit: 100 })).map((e) => e.event.occurredAt.slice(0, 19)).sort().pop()!;
    await waitFor(() => new Date().toISOString().slice(0, 19) > raised, 5000, 20);
    rig.emu.call('purchase.order', 'button_confirm', [[line!['order_id'] as number]]);
    rig.emu.faults.clear();
    await rig.waitDrained();
    expect(rfqLines(rig.emu, 'TIP-200').map((l) => l['product_qty'])).toEqual([45]);
    expect((await breaches(rig, 'TIP-200')).map((b) => b.state)).toEqual(['delivered', 'delivered']);
  });
});
