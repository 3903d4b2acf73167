import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../gateway/src/log.ts';
import { StockWatch } from '../../gateway/src/relay/stock-watch.ts';
import type { OdooEmulator, OdooVersion } from '../odoo-emulator/index.ts';
import { makeRig, startEmulator, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, idOf, inbound, productId, quantsByLotAt, receiveLot, waitFor } from '../fixtures/relay/helpers.ts';

/**
 * Consumption taken from the right quant (lot AND location), chosen from Odoo's stock as it is,
 * and a stock watch that neither counts consumption Odoo already holds nor forgets consumption it
 * does not: the real store, the relay and the Odoo emulator over HTTP ('lab-demo' seed: TIP-200 40
 * untracked in WH/Stock/Lab against a minimum of 20; RGT-GLU lot G24A101 ×12, +180 days).
 */
let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** Quantity per "lot@location" of a product, internal locations only (where the lab keeps stock). */
const quants = (emu: OdooEmulator, pid: number): Record<string, number> => quantsByLotAt(emu, pid, { internalOnly: true });

/** A storage location under WH/Stock/Lab (a fridge, a shelf). */
const childOfLab = (emu: OdooEmulator, name: string): number =>
  emu.call('stock.location', 'create', [{ name, usage: 'internal', location_id: idOf(emu, 'stock.location', [['name', '=', 'Lab']]) }]) as number;

/** A lot of `code` received into `locationId`. */
const receive = (emu: OdooEmulator, code: string, lot: string, locationId: number, qty: number, expiresInDays: number): number => receiveLot(emu, productId(emu, code), lot, locationId, qty, expiresInDays);

/** A rig whose relay starts once `prepare` has set Odoo up and `queued` events are in the store (one first batch). */
async function rigWith(version: OdooVersion, prepare: (emu: OdooEmulator) => void, queued: Parameters<Rig['commit']>[0] = []): Promise<Rig> {
  const started = await startEmulator(version);
  prepare(started.emu);
  const r = await makeRig(version, { emu: started, start: false });
  const close = r.close.bind(r);
  r.close = async () => {
    await close();
    await started.emu.close();
  };
  if (queued.length > 0) await r.store.commit(inbound(), queued);
  await r.relay.start();
  return r;
}

describe.each([16, 19] as const)('consumption from storage locations under the lab (Odoo %i)', (version) => {
  // Regression: every move line was written from WH/Stock/Lab itself; a lot kept in the fridge
  // went negative in the lab and stayed whole in the fridge.
  it('a lot the analyzer reported, kept in the fridge, is taken from the fridge; the local copy is debited there', async () => {
    let fridge = 0;
    rig = await rigWith(version, (emu) => {
      fridge = childOfLab(emu, 'Fridge');
      receive(emu, 'RGT-GLU', 'G25F300', fridge, 10, 120);
    });
    await waitFor(() => rig!.client.state === 'connected');
    await rig.commit([consumableUsed('bs-1', 'RGT-GLU', 3, 1, 'G25F300')]);
    await rig.waitDrained();
    const pid = productId(rig.emu, 'RGT-GLU');
    expect(quants(rig.emu, pid)).toEqual({ 'G24A101@Lab': 12, 'G23K044@Lab': 2, 'G25F300@Fridge': 7 });
    const lot = idOf(rig.emu, 'stock.lot', [['name', '=', 'G25F300']]);
    expect(rig.relay.reference.quantsOf(pid).filter((q) => q.lotId === lot)).toEqual([{ productId: pid, lotId: lot, locationId: fridge, quantity: 7 }]);
  });

  it('untracked tips kept on a shelf under the lab are taken from the shelf, then from the lab', async () => {
    rig = await rigWith(version, (emu) => {
      const shelf = childOfLab(emu, 'Shelf');
      // 40 tips in the lab (the seed's quant), 5 more on the shelf.
      emu.call('stock.quant', 'create', [{ product_id: productId(emu, 'TIP-200'), location_id: shelf, quantity: 5 }]);
    });
    await waitFor(() => rig!.client.state === 'connected');
    await rig.commit([consumableUsed('an-1', 'TIP-200', 42, 1)]);
    await rig.waitDrained();
    // 40 from the lab's quant (listed first), the other 2 from the shelf; nothing driven negative.
    expect(quants(rig.emu, productId(rig.emu, 'TIP-200'))).toEqual({ '-@Lab': 0, '-@Shelf': 3 });
  });
});

describe('lots chosen from Odoo stock as it is', () => {
  // Regression: the batch's reported lot was not subtracted before the next event chose FEFO; the
  // next event took the same (now empty) lot and drove it negative.
  it("a reported lot's consumption earlier in the batch is subtracted before a later event chooses FEFO", async () => {
    rig = await rigWith(
      17,
      (emu) => void receive(emu, 'RGT-GLU', 'G25A001', idOf(emu, 'stock.location', [['name', '=', 'Lab']]), 2, 20),
      [consumableUsed('c-1', 'RGT-GLU', 2, 1, 'G25A001'), consumableUsed('c-1', 'RGT-GLU', 1, 2)],
    );
    await rig.waitDrained();
    // One picking for both events (one batch), G25A001 (first to expire) emptied by the first.
    expect(rig.emu.count('stock.picking', [['origin', '=', 'lab-gateway:cons:c-1']])).toBe(1);
    expect(quants(rig.emu, productId(rig.emu, 'RGT-GLU'))).toEqual({ 'G24A101@Lab': 11, 'G23K044@Lab': 2, 'G25A001@Lab': 0 });
  });

  it("one read of the lab quants per batch, whatever the number of the batch's products", async () => {
    rig = await makeRig(17);
    await waitFor(() => rig!.client.state === 'connected');
    // The connection's reference pull reads the lab's quants too: counted only once it is over.
    await waitFor(() => rig!.relay.snapshot().referencePulledAt !== undefined);
    await rig.waitDrained();
    rig.emu.calls.length = 0;
    await rig.commit([consumableUsed('c-2', 'RGT-GLU', 1, 1), consumableUsed('c-2', 'RGT-HBA1C', 1, 2), consumableUsed('c-2', 'TIP-200', 1, 3), consumableUsed('c-2', 'RGT-CRP', 1, 4)]);
    await rig.waitDrained();
    expect(rig.emu.count('stock.picking', [['origin', '=', 'lab-gateway:cons:c-2']])).toBe(1);
    // The batch's reads come before its picking; the stock watch may read a product again after
    // the round (its own check, not the batch's), which is not counted here.
    const posted = rig.emu.calls.findIndex((c) => c.model === 'stock.picking' && c.method === 'create');
    expect(posted).toBeGreaterThan(0);
    expect(rig.emu.calls.slice(0, posted).filter((c) => c.model === 'stock.quant' && c.method === 'search_read')).toHaveLength(1);
  });
});

describe('stock watch: consumption in doubt', () => {
  it('a consumption whose answer was lost but that Odoo never took is counted; a look-up that fails holds the check, the next raises the breach', async () => {
    const r = await makeRig(17, { start: false });
    rig = r;
    await r.client.connect();
    await r.relay.refreshReference();
    const watch = new StockWatch({ store: r.store, ref: r.relay.reference, log: silentLogger, clock: Date.now });
    // 25 of the 40 tips used; the request was sent and no answer came (ambiguous, waiting to be
    // looked up), but Odoo never created the picking: 15 are left, below the minimum of 20.
    await r.commit([consumableUsed('an-doubt', 'TIP-200', 25, 1)]);
    const [lease] = await r.store.lease({ limit: 10, maxPerPartition: 10, sameTypeOnly: false });
    await r.store.complete(lease!, [{ eventId: lease!.events[0]!.event.id, outcome: 'retry', error: 'timeout after send', ambiguous: true, delayMs: 3_600_000 }]);
    const tips = (drafts: Awaited<ReturnType<StockWatch['check']>>): unknown[] =>
      drafts.filter((d) => (d.data as { productCode: string }).productCode === 'TIP-200').map((d) => d.data);
    // Odoo cannot be asked whether it holds that consumption: no breach yet, none forgotten either.
    r.emu.faults.next(1, 'stock.move', 'search_read').status(502);
    expect(tips(await watch.check())).toEqual([]);
    expect(r.emu.faults.pending()).toBe(0);
    // The next check finds nothing in Odoo: the consumption counts, the breach is raised once.
    expect(tips(await watch.check())).toEqual([{ productCode: 'TIP-200', estimatedOnHand: 15, reorderPoint: 20, suggestedQuantity: 45 }]);
    expect(tips(await watch.check())).toEqual([]);
  });
});

describe("emulator: Odoo's location rules for move lines", () => {
  it('a move line may take from a child of its move source; a view location holds no quant (ValidationError)', async () => {
    const { emu } = await startEmulator(17);
    try {
      const lab = idOf(emu, 'stock.location', [['name', '=', 'Lab']]);
      const wh = idOf(emu, 'stock.location', [['name', '=', 'WH']]);
      const dest = idOf(emu, 'stock.location', [['name', '=', 'Lab Consumption']]);
      const type = idOf(emu, 'stock.picking.type', [['name', '=', 'Lab Consumption']]);
      const shelf = childOfLab(emu, 'Shelf');
      const tips = productId(emu, 'TIP-200');
      emu.call('stock.quant', 'create', [{ product_id: tips, location_id: shelf, quantity: 5 }]);
      const picking = (from: number): number =>
        emu.call('stock.picking', 'create', [
          {
            picking_type_id: type,
            location_id: lab,
            location_dest_id: dest,
            move_ids: [[0, 0, { name: 'tips', product_id: tips, product_uom_qty: 2, location_id: lab, location_dest_id: dest }]],
            move_line_ids: [[0, 0, { product_id: tips, location_id: from, location_dest_id: dest, quantity: 2, picked: true }]],
          },
        ]) as number;
      const fromShelf = picking(shelf);
      emu.call('stock.picking', 'button_validate', [[fromShelf]], { context: { skip_backorder: true } });
      expect(emu.records('stock.picking', [['id', '=', fromShelf]])[0]!['state']).toBe('done');
      expect(quants(emu, tips)).toEqual({ '-@Lab': 40, '-@Shelf': 3 });
      const fromView = picking(wh);
      expect(() => emu.call('stock.picking', 'button_validate', [[fromView]], { context: { skip_backorder: true } })).toThrow(/location of type "view" \(WH\)/);
      expect(emu.records('stock.picking', [['id', '=', fromView]])[0]!['state']).not.toBe('done');
      expect(quants(emu, tips)).toEqual({ '-@Lab': 40, '-@Shelf': 3 });
    } finally {
      await emu.close();
    }
  });
});
