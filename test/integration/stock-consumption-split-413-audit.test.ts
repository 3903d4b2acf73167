/**
 * A consumption batch posted again in halves after a web proxy's 413 (relay.ts #postChunk), one
 * of its segments already in Odoo.
 *
 * The consumption rule creates one picking per analyzer; a segment (the consecutive runs of one
 * partition in the call) is one move marked `lab-gateway:cons:<head>:<count>`. When the proxy in
 * front of Odoo refuses one analyzer's picking as too large, another analyzer's picking of the
 * same call may already be created and validated; the relay posts the whole call again in two
 * halves, looked up first. A half holding only the first part of the posted segment finds it by
 * its head and covers that part; the later part heads the next half, and its head's own marker is
 * found nowhere (d49f6cc's note: "a retry that posts only part of a segment … could post the later
 * part again").
 * The real store in a temp dir, the relay, the Odoo 17 emulator over HTTP behind an nginx-like
 * proxy refusing bodies over a limit (fixtures/relay/body-limit-proxy.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startBodyLimitProxy, type BodyLimitProxy } from '../fixtures/relay/body-limit-proxy.ts';
import { makeRig, startEmulator, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, productId } from '../fixtures/relay/helpers.ts';
import { CONSUMPTION_ORIGIN_PREFIX } from '../../gateway/src/relay/rules/consumable-used.ts';

let rig: Rig | undefined;
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await rig?.close();
  rig = undefined;
  for (const c of closers.splice(0).reverse()) await c();
});

let n = 0;
/** Ten runs of one tip on `tips` (one partition, one segment); one run of each of three reagents on `reagents` (three partitions, one picking of three moves). */
function batch(tips: string, reagents: string): ReturnType<typeof consumableUsed>[] {
  return [
    ...Array.from({ length: 10 }, () => consumableUsed(tips, 'TIP-200', 1, ++n)),
    ...['RGT-GLU', 'RGT-HBA1C', 'RGT-CRP'].map((code) => consumableUsed(reagents, code, 1, ++n)),
  ];
}

/** TIP-200 booked by `analyzer`'s pickings: done moves only. */
function tipsBooked(r: Rig, analyzer: string): number {
  const pickings = r.emu.records('stock.picking', [['origin', '=', `${CONSUMPTION_ORIGIN_PREFIX}${analyzer}`]]).map((p) => p.id);
  return r.emu.records('stock.move', [['picking_id', 'in', pickings], ['product_id', '=', productId(r.emu, 'TIP-200')], ['state', '=', 'done']]).reduce((q, m) => q + Number(m['product_uom_qty']), 0);
}

describe('a consumption batch split after a proxy 413, one analyzer\'s picking already validated', () => {
  it('the later part of that segment is found in Odoo, not booked again', async () => {
    const started = await startEmulator(17);
    closers.push(() => started.emu.close());
    const proxy: BodyLimitProxy = await startBodyLimitProxy(started.url, Infinity);
    closers.push(() => proxy.close());
    rig = await makeRig(17, { emu: { emu: started.emu, url: proxy.url }, relay: { maxAttempts: 3, concurrency: 8 } });
    await rig.waitDrained();
    // The sizes of such a batch's calls, let through: the three-reagent picking's create is the largest.
    const from = proxy.passed.length;
    const calls = rig.emu.calls.length;
    await rig.commit(batch('px-0', 'py-0'));
    await rig.waitDrained();
    const sizes = proxy.passed.slice(from);
    const methods = rig.emu.calls.slice(calls).map((c) => `${c.model}.${c.method}`);
    expect(methods).toHaveLength(sizes.length);
    const creates = sizes.filter((_, i) => methods[i] === 'stock.picking.create');
    expect(creates).toHaveLength(2);
    const large = Math.max(...creates);
    const others = Math.max(...sizes.filter((s) => s !== large));
    expect(large).toBeGreaterThan(others);
    expect(tipsBooked(rig, 'px-0')).toBe(10);
    // The proxy now refuses the three-reagent picking's create: the tips' picking passes.
    proxy.limit = Math.floor((large + others) / 2);
    const ids = await rig.commit(batch('px-1', 'py-1'));
    await rig.waitDrained();
    expect(proxy.refused.length).toBeGreaterThan(0);
    const states = await Promise.all(ids.map(async (id) => (await rig!.store.getEvent(id))!.state));
    expect(states.slice(0, 10)).toEqual(Array(10).fill('delivered'));
    // Each run of a tip booked once: 10, not 10 plus the later part of the segment again.
    expect(tipsBooked(rig, 'px-1')).toBe(10);
  });
});
