/**
 * Two analyzers' consumption of one reagent posted in the same round, as after an outage: the real
 * store in a temp dir, the relay (relay.concurrency 4), the Odoo 17 emulator over HTTP. More than
 * one batch's worth (the rule takes 500 events a batch) is queued, so the round posts two batches.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, idOf, inbound, postedConsumption, productId, quantsByLotAt, receiveLot } from '../fixtures/relay/helpers.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe('consumption: FEFO across the batches of one round', () => {
  /**
   * The stock keeper found the first-expiring lot of the QC material at −300 in the lab and the
   * next lot untouched at 1000, after two analyzers' 600 runs (300 each, no lot reported) came in
   * from a night's outage: each of the round's two batches read the lots on its own and both took
   * the first lot's 300. Broke "expiring lots first when the analyzer does not say" and "no
   * deduction from the wrong lot": the lab holds 0 of the first lot and 700 of the next.
   */
  it("two batches of one round do not both take the first-expiring lot's stock", async () => {
    rig = await makeRig(17, { start: false });
    const emu = rig.emu;
    const pid = productId(emu, 'QC-NORM');
    const lab = idOf(emu, 'stock.location', [['name', '=', 'Lab']]);
    // The seeded lot Q24A900 (10, 60 days) emptied by a count; two new lots received.
    const [seeded] = emu.records('stock.quant', [['product_id', '=', pid], ['location_id', '=', lab]]);
    emu.call('stock.quant', 'write', [[seeded!.id as number], { quantity: 0 }]);
    receiveLot(emu, pid, 'Q25A001', lab, 300, 30);
    receiveLot(emu, pid, 'Q25B002', lab, 1000, 200);
    await rig.store.commit(inbound(), [
      ...Array.from({ length: 300 }, (_, i) => consumableUsed('an-1', 'QC-NORM', 1, i + 1)),
      ...Array.from({ length: 300 }, (_, i) => consumableUsed('an-2', 'QC-NORM', 1, 1000 + i)),
    ]);
    await rig.relay.start();
    await rig.waitDrained();
    expect(postedConsumption(emu).covered).toBe(600);
    const lots = quantsByLotAt(emu, pid, { internalOnly: true });
    expect(lots['Q25A001@Lab']).toBe(0);
    expect(lots['Q25B002@Lab']).toBe(700);
  });
});
