import { afterEach, describe, expect, it } from 'vitest';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, inbound, tempDir, waitFor } from '../fixtures/relay/helpers.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { StockWatch } from '../../gateway/src/relay/stock-watch.ts';
import type { ReferenceData } from '../../gateway/src/relay/reference-data.ts';
import { silentLogger } from '../../gateway/src/log.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const productId = (r: Rig, code: string): number => r.emu.records('product.product', [['default_code', '=', code]])[0]!.id as number;

describe('local replenishment check', () => {
  it('on-hand below the reorder point → one local stock.threshold_breached → one draft RFQ', async () => {
    rig = await makeRig(17, { relayOptions: { watchStock: true } });
    // Seed: RGT-CRP has 4 + 1 (expired lot) on hand against a minimum of 6.
    await waitFor(() => rig!.emu.count('purchase.order.line', [['product_id', '=', productId(rig!, 'RGT-CRP')]]) === 1);
    await rig.waitDrained();
    const local = await rig.store.listEvents({ type: 'stock.threshold_breached' });
    expect(local.map((e) => (e.event.data as { productCode: string }).productCode)).toEqual(['RGT-CRP']);
    expect(local[0]!.event.source.kind).toBe('local');
    // 15 max - 5 estimated = 10 suggested.
    expect((local[0]!.event.data as { suggestedQuantity: number }).suggestedQuantity).toBe(10);
    const [line] = rig.emu.records('purchase.order.line', [['product_id', '=', productId(rig, 'RGT-CRP')]]);
    expect(rig.emu.records('purchase.order', [['id', '=', line!['order_id']]])[0]!['state']).toBe('draft');
  });

  it('posted consumption lowers the estimate: crossing the minimum raises one breach, not one per check', async () => {
    rig = await makeRig(17, { relayOptions: { watchStock: true, stockWatchIntervalMs: 0 } });
    await rig.waitDrained();
    // TIP-200: 40 on hand, minimum 20.
    await rig.commit([consumableUsed('an-1', 'TIP-200', 15, 1)]);
    await rig.waitDrained();
    expect(rig.emu.count('purchase.order.line', [['product_id', '=', productId(rig, 'TIP-200')]])).toBe(0);
    await rig.commit([consumableUsed('an-1', 'TIP-200', 6, 2)]);
    await waitFor(() => rig!.emu.count('purchase.order.line', [['product_id', '=', productId(rig!, 'TIP-200')]]) === 1);
    await rig.commit([consumableUsed('an-1', 'TIP-200', 1, 3)]);
    await rig.waitDrained();
    await rig.relay.refreshReference();
    await rig.waitDrained();
    const breaches = (await rig.store.listEvents({ type: 'stock.threshold_breached' })).filter((e) => (e.event.data as { productCode: string }).productCode === 'TIP-200');
    expect(breaches).toHaveLength(1);
    expect(rig.emu.count('purchase.order.line', [['product_id', '=', productId(rig, 'TIP-200')]])).toBe(1);
  });
});

describe('unposted consumption', () => {
  it('is counted across more than one page of the store listing', async () => {
    const tmp = tempDir('relay-watch-');
    const store = await EventStore.open({ dataDir: tmp.dir, pruneIntervalMs: 0 });
    try {
      for (let b = 0; b < 6; b++) await store.commit(inbound(), Array.from({ length: 250 }, (_, i) => consumableUsed('an-p', 'TIP-200', 1, b * 250 + i)));
      const watch = new StockWatch({ store, ref: {} as ReferenceData, log: silentLogger, clock: Date.now });
      expect((await watch.unposted()).get('TIP-200')).toBe(1500);
    } finally {
      await store.close();
      tmp.cleanup();
    }
  });
});

describe('micro-batch sync mode', () => {
  it('consumption committed within one window becomes ONE picking', async () => {
    const windowMs = 1500;
    rig = await makeRig(17, { relay: { syncModes: { 'consumable.used': 'micro-batch' }, microBatchWindowMs: windowMs } });
    await waitFor(() => rig!.client.state === 'connected');
    const consumptionPickings = () => rig!.emu.records('stock.picking', [['origin', '=like', 'lab-gateway:cons:%']]);
    // The windows follow the wall clock. On a busy machine the five commits may spill into the
    // next window, which is not the case under test: then, once those are posted, five more go.
    let before = 0;
    for (let run = 0; ; run++) {
      expect(run, 'five commits within one window').toBeLessThan(5);
      // Start right after a window boundary so all five land in the same window.
      await new Promise((r) => setTimeout(r, windowMs - (Date.now() % windowMs) + 10));
      const startWindow = Math.floor(Date.now() / windowMs);
      for (let n = 0; n < 5; n++) {
        if (n > 0) await new Promise((r) => setTimeout(r, 40));
        await rig.commit([consumableUsed('an-9', 'TIP-200', 1, run * 5 + n)]);
      }
      if (Math.floor(Date.now() / windowMs) === startWindow) break;
      await rig.waitDrained();
      before = consumptionPickings().length;
    }
    await rig.waitDrained();
    const pickings = consumptionPickings();
    expect(pickings).toHaveLength(before + 1);
    const last = pickings.reduce((a, b) => (Number(b.id) > Number(a.id) ? b : a));
    const moves = rig.emu.records('stock.move', [['picking_id', '=', last.id]]);
    expect(moves.map((m) => String(m['origin']))).toEqual([expect.stringMatching(/^lab-gateway:cons:\w+:5$/)]);
  });
});
