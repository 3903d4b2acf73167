/**
 * A purchase order confirmed since the last reference pull counts as goods on their way.
 *
 * The stock watch adds the receipts still to come of confirmed purchase orders to the lab's
 * estimate (the forecast, as Odoo's reorder rule does). They were read only at the reference pull
 * (relay.referenceRefreshMs, 15 min by default), while the lab's quants are read again before
 * every consumption batch. Was: the buyer confirmed the gateway's RFQ (45 tips, not received
 * yet), the stock keeper brought a box up from the main store (the lab back above its minimum:
 * the episode ended), and the next runs took the lab below its minimum again before the next
 * pull: the watch counted nothing on its way and raised a second breach, and the RFQ rule, which
 * holds a breach back only for an RFQ line still open (draft, sent, to approve), put a second
 * draft RFQ line of 43 tips: the lab ordered its tips twice.
 * Real store in a temp dir, real relay and stock watch, the Odoo emulator over HTTP.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, countInLab, labOnHand, rfqLines } from '../fixtures/relay/helpers.ts';
import type { OdooVersion } from '../odoo-emulator/index.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

async function breaches(r: Rig, code: string): Promise<Array<{ suggestedQuantity: number; incoming?: number }>> {
  const events = await r.store.listEvents({ type: 'stock.threshold_breached', limit: 100 });
  return events.filter((e) => (e.event.data as { productCode: string }).productCode === code).map((e) => e.event.data as { suggestedQuantity: number; incoming?: number });
}

let n = 0;
/**
 * Tips used on analyzer an-1, posted, and the stock watch that follows the round done: a second
 * commit (another reagent's run of 0, posting nothing) is posted only in a later round, after the
 * first round's check, and whatever that check raised is posted before the rig drains.
 */
async function use(r: Rig, qty: number): Promise<void> {
  await r.commit([consumableUsed('an-1', 'TIP-200', qty, ++n)]);
  await r.waitDrained();
  await r.commit([consumableUsed('an-2', 'RGT-GLU', 0, ++n)]);
  await r.waitDrained();
  await r.waitDrained();
}

const onHandTips = (r: Rig): number => labOnHand(r.emu, 'TIP-200');

const countTips = (r: Rig, qty: number): void => countInLab(r.emu, 'TIP-200', qty);

describe.each([16, 17, 19] as const)('goods ordered since the last pull (Odoo %i)', (version: OdooVersion) => {
  it('an RFQ confirmed after the pull holds the next breach back: no second order', async () => {
    rig = await makeRig(version, { relayOptions: { watchStock: true, stockWatchIntervalMs: 0 } });
    await rig.waitDrained();
    await rig.relay.refreshReference();
    // TIP-200: 40 in the lab, reorder rule min 20 / max 60. 25 used: 15 left, 45 ordered (draft RFQ).
    await use(rig, 25);
    const [line] = rfqLines(rig.emu, 'TIP-200');
    expect(line?.['product_qty']).toBe(45);
    // The buyer confirms it; no reference pull comes before what follows (15 minutes apart).
    rig.emu.call('purchase.order', 'button_confirm', [[line!['order_id'] as number]]);
    // The stock keeper brings a box up from the main store: 30 in the lab, above the minimum.
    countTips(rig, 30);
    // A run: the consumption batch reads the lab's quants again (30, then 29): the episode ends.
    await use(rig, 1);
    expect(onHandTips(rig)).toBe(29);
    // 12 more: 17 in the lab, below the minimum, but 45 are on their way (forecast 62).
    await use(rig, 12);
    expect(onHandTips(rig)).toBe(17);
    expect(rfqLines(rig.emu, 'TIP-200').map((l) => l['product_qty'])).toEqual([45]);
    expect(await breaches(rig, 'TIP-200')).toHaveLength(1);
  });
});
