import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../gateway/src/log.ts';
import { CONSUMPTION_ORIGIN_PREFIX, segmentOrigin } from '../../gateway/src/relay/rules/consumable-used.ts';
import { StockWatch } from '../../gateway/src/relay/stock-watch.ts';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, postedConsumption, productId, rfqLines, waitFor } from '../fixtures/relay/helpers.ts';

/**
 * Consumption is micro-batched: one picking move covers several runs of a reagent, marked
 * `lab-gateway:cons:<head>:<count>`. When that picking is created but not validated (Odoo's row
 * locks, here until the head is a dead letter), only the head is failed and the runs after it wait
 * behind it. An operator then discards the head: the runs after it must still be booked exactly
 * once, whatever was done to the picking in Odoo (validated by hand, cancelled, left open), and the
 * stock watch must not count them again. The real store in a temp dir, the relay, the Odoo 17
 * emulator over HTTP ('lab-demo' seed: TIP-200 40 on hand in WH/Stock/Lab, minimum 20, maximum 60).
 */
let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

let n = 0;
const ANALYZER_PICKINGS = (analyzer: string): unknown[][] => [['origin', '=', `${CONSUMPTION_ORIGIN_PREFIX}${analyzer}`]];

/**
 * Three runs of 5 tips on `analyzer`, one partition, one segment: its picking is created, Odoo
 * refuses every validation (lock not available) until the head is dead-lettered. Resolves with the
 * three event ids and the picking's id; the lock faults are cleared.
 */
async function headDeadOnOpenPicking(analyzer: string): Promise<{ ids: string[]; picking: number }> {
  rig = await makeRig(17, { relay: { maxAttempts: 3 } });
  rig.emu.faults.next(Infinity, 'stock.picking', 'button_validate').lockError();
  const ids = await rig.commit([consumableUsed(analyzer, 'TIP-200', 5, ++n), consumableUsed(analyzer, 'TIP-200', 5, ++n), consumableUsed(analyzer, 'TIP-200', 5, ++n)]);
  await waitFor(async () => (await rig!.store.getEvent(ids[0]!))?.state === 'dead');
  rig.emu.faults.clear();
  const pickings = rig.emu.records('stock.picking', ANALYZER_PICKINGS(analyzer));
  expect(pickings.map((p) => p['state'])).not.toContain('done');
  expect(pickings).toHaveLength(1);
  expect(rig.emu.count('stock.move', [['origin', '=', segmentOrigin(ids[0]!, 3)]])).toBe(1);
  for (const id of ids.slice(1)) expect((await rig.store.getEvent(id))?.state).toBe('pending');
  return { ids, picking: pickings[0]!.id as number };
}

/** Tips booked by the analyzer's pickings in Odoo: done moves only. */
function tipsBooked(analyzer: string): number {
  const pickings = rig!.emu.records('stock.picking', ANALYZER_PICKINGS(analyzer)).map((p) => p.id);
  return rig!.emu.records('stock.move', [['picking_id', 'in', pickings], ['product_id', '=', productId(rig!.emu, 'TIP-200')], ['state', '=', 'done']]).reduce((q, m) => q + Number(m['product_uom_qty']), 0);
}

async function states(ids: string[]): Promise<string[]> {
  return Promise.all(ids.map(async (id) => (await rig!.store.getEvent(id))!.state));
}

describe('a discarded segment head: the runs after it are booked exactly once', () => {
  it('(a) the picking validated by hand in Odoo, then its head discarded: the runs after it are found in it, not posted again', async () => {
    const { ids, picking } = await headDeadOnOpenPicking('dh-a');
    rig!.emu.call('stock.picking', 'button_validate', [[picking]], { context: { skip_backorder: true } });
    expect(tipsBooked('dh-a')).toBe(15);
    await rig!.store.discard(ids[0]!, 'admin', 'picking validated by hand in Odoo');
    rig!.relay.notify();
    await rig!.waitDrained();
    expect(await states(ids)).toEqual(['discarded', 'delivered', 'delivered']);
    expect(tipsBooked('dh-a')).toBe(15);
    expect(rig!.emu.records('stock.picking', ANALYZER_PICKINGS('dh-a'))).toHaveLength(1);
    expect(postedConsumption(rig!.emu).covered).toBe(3);
    for (const id of ids.slice(1)) expect((await rig!.store.getEvent(id))!.note).toMatch(/found in Odoo/);
  });

  it('the picking still open in Odoo when its head is discarded: it is validated once, holding every run of it', async () => {
    const { ids } = await headDeadOnOpenPicking('dh-open');
    await rig!.store.discard(ids[0]!, 'admin', 'lock errors');
    rig!.relay.notify();
    await rig!.waitDrained();
    expect(await states(ids)).toEqual(['discarded', 'delivered', 'delivered']);
    expect(rig!.emu.records('stock.picking', ANALYZER_PICKINGS('dh-open')).map((p) => p['state'])).toEqual(['done']);
    expect(tipsBooked('dh-open')).toBe(15);
    expect(postedConsumption(rig!.emu).covered).toBe(3);
  });

  it('(b) the picking cancelled in Odoo, then its head discarded: none of its runs is booked, as Odoo says, and their notes say why', async () => {
    const { ids, picking } = await headDeadOnOpenPicking('dh-b');
    rig!.emu.call('stock.picking', 'action_cancel', [[picking]]);
    await rig!.store.replay(ids[0]!, 'admin');
    rig!.relay.notify();
    await waitFor(async () => (await rig!.store.getEvent(ids[0]!))?.state === 'dead');
    // The dead letter says what a discard does and how to have the runs booked instead.
    const reason = (await rig!.store.getEvent(ids[0]!))!.deadReason ?? '';
    expect(reason).toMatch(/cancelled in Odoo/);
    expect(reason).toMatch(/3 runs/);
    expect(reason).toMatch(/^consumption picking .* Discard this event/);
    expect(reason).toMatch(/delete the cancelled picking/);
    await rig!.store.discard(ids[0]!, 'admin', 'picking cancelled in Odoo');
    rig!.relay.notify();
    await rig!.waitDrained();
    expect(await states(ids)).toEqual(['discarded', 'delivered', 'delivered']);
    expect(tipsBooked('dh-b')).toBe(0);
    expect(rig!.emu.records('stock.picking', ANALYZER_PICKINGS('dh-b')).map((p) => p['state'])).toEqual(['cancel']);
    for (const id of ids.slice(1)) expect((await rig!.store.getEvent(id))!.note).toMatch(/^not booked: .* was cancelled in Odoo, and the event heading it .* was discarded/);
  });

  it('the picking cancelled in Odoo, then deleted there and its head replayed: every run booked once', async () => {
    const { ids, picking } = await headDeadOnOpenPicking('dh-del');
    rig!.emu.call('stock.picking', 'action_cancel', [[picking]]);
    rig!.emu.call('stock.picking', 'unlink', [[picking]]);
    await rig!.store.replay(ids[0]!, 'admin');
    rig!.relay.notify();
    await rig!.waitDrained();
    expect(await states(ids)).toEqual(['delivered', 'delivered', 'delivered']);
    expect(tipsBooked('dh-del')).toBe(15);
  });

  it('(c) the stock watch does not count the runs of a picking validated by hand again once its head is discarded: no false breach', async () => {
    const { ids, picking } = await headDeadOnOpenPicking('dh-c');
    rig!.emu.call('stock.picking', 'button_validate', [[picking]], { context: { skip_backorder: true } });
    // The relay is stopped before it posts again: the watch sees the runs after the head unresolved.
    await rig!.relay.stop();
    await rig!.store.discard(ids[0]!, 'admin', 'picking validated by hand in Odoo');
    await rig!.relay.refreshReference();
    const pid = productId(rig!.emu, 'TIP-200');
    // Odoo holds the three runs: 40 - 15 = 25 on hand, above the minimum of 20.
    expect(rig!.relay.reference.onHand(pid)).toBe(25);
    const before = rfqLines(rig!.emu, 'TIP-200').length;
    const watch = new StockWatch({ store: rig!.store, ref: rig!.relay.reference, log: silentLogger, clock: Date.now });
    expect((await watch.check()).filter((d) => (d.data as { productCode: string }).productCode === 'TIP-200')).toEqual([]);
    expect(rfqLines(rig!.emu, 'TIP-200')).toHaveLength(before);
  });
});
