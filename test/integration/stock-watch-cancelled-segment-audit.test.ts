/**
 * The stock watch and the runs of a consumption picking cancelled in Odoo whose head an operator
 * discarded (d49f6cc).
 *
 * A segment's picking is created and left unvalidated (Odoo's row locks until its head is a dead
 * letter); the stock keeper cancels the picking in Odoo, and an operator discards the head. The
 * consumption rule then keeps to the cancellation: the runs after the head are delivered unbooked,
 * with a note. Until the relay has done so they are still unresolved in the store, and the watch
 * counts unresolved consumption as still to come: counted, those runs (booked nowhere and never to
 * be) took the lab below its minimum on paper, a false breach and a draft RFQ. The watch must walk
 * them as the rule does.
 * The real store in a temp dir, the relay, the Odoo 17 emulator over HTTP ('lab-demo' seed:
 * TIP-200 40 on hand in WH/Stock/Lab, minimum 20, maximum 60).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../gateway/src/log.ts';
import { CONSUMPTION_ORIGIN_PREFIX } from '../../gateway/src/relay/rules/consumable-used.ts';
import { StockWatch } from '../../gateway/src/relay/stock-watch.ts';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, productId, rfqLines, waitFor } from '../fixtures/relay/helpers.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

let n = 0;
const pickingsOf = (analyzer: string): unknown[][] => [['origin', '=', `${CONSUMPTION_ORIGIN_PREFIX}${analyzer}`]];

/**
 * Three runs of 12 tips on `analyzer`, one segment: its picking is created, Odoo refuses every
 * validation until the head is dead; the picking is then cancelled in Odoo and the head discarded.
 * The relay is stopped before it posts again: the two runs after the head are still pending.
 */
async function cancelledThenDiscarded(analyzer: string): Promise<string[]> {
  rig = await makeRig(17, { relay: { maxAttempts: 3 } });
  rig.emu.faults.next(Infinity, 'stock.picking', 'button_validate').lockError();
  const ids = await rig.commit([1, 2, 3].map(() => consumableUsed(analyzer, 'TIP-200', 12, ++n)));
  await waitFor(async () => (await rig!.store.getEvent(ids[0]!))?.state === 'dead');
  rig.emu.faults.clear();
  await rig.relay.stop();
  const [picking] = rig.emu.records('stock.picking', pickingsOf(analyzer));
  rig.emu.call('stock.picking', 'action_cancel', [[picking!.id]]);
  await rig.store.discard(ids[0]!, 'admin', 'picking cancelled in Odoo');
  for (const id of ids.slice(1)) expect((await rig.store.getEvent(id))?.state).toBe('pending');
  await rig.relay.refreshReference();
  // Nothing booked: 40 on hand, as Odoo holds it.
  expect(rig.relay.reference.onHand(productId(rig.emu, 'TIP-200'))).toBe(40);
  return ids;
}

const tips = (drafts: Array<{ data: unknown }>): unknown[] => drafts.map((d) => d.data).filter((d) => (d as { productCode: string }).productCode === 'TIP-200');

describe('the stock watch after a cancelled picking\'s head is discarded', () => {
  it('does not count the runs after the head as consumption to come: no false breach', async () => {
    await cancelledThenDiscarded('wc-a');
    const before = rfqLines(rig!.emu, 'TIP-200').length;
    const watch = new StockWatch({ store: rig!.store, ref: rig!.relay.reference, log: silentLogger, clock: Date.now });
    // Counted, the two runs of 12 would leave 16 against a minimum of 20.
    expect(tips(await watch.check())).toEqual([]);
    expect(rfqLines(rig!.emu, 'TIP-200')).toHaveLength(before);
  });

  it('a real fall below the minimum after them is raised with the lab\'s true estimate', async () => {
    await cancelledThenDiscarded('wc-b');
    // A run of 25 on another analyzer, not posted yet: 40 - 25 = 15 (not 40 - 24 - 25 = -9).
    await rig!.commit([consumableUsed('wc-b2', 'TIP-200', 25, ++n)]);
    const watch = new StockWatch({ store: rig!.store, ref: rig!.relay.reference, log: silentLogger, clock: Date.now });
    expect(tips(await watch.check())).toEqual([expect.objectContaining({ estimatedOnHand: 15, suggestedQuantity: 45 })]);
  });

  it('once the relay has delivered them unbooked, the watch raises nothing either', async () => {
    const ids = await cancelledThenDiscarded('wc-c');
    await rig!.relay.start();
    await rig!.waitDrained();
    for (const id of ids.slice(1)) expect((await rig!.store.getEvent(id))!.note).toMatch(/^not booked: /);
    const watch = new StockWatch({ store: rig!.store, ref: rig!.relay.reference, log: silentLogger, clock: Date.now });
    expect(tips(await watch.check())).toEqual([]);
  });
});
