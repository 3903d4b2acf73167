import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { consumableUsedRule, CONSUMPTION_ORIGIN_PREFIX, segmentOrigin } from '../../gateway/src/relay/rules/consumable-used.ts';
import type { RuleContext } from '../../gateway/src/relay/rules/types.ts';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, postedConsumption } from '../fixtures/relay/helpers.ts';

/**
 * The consumption rule batches across partitions (one per analyzer and product), so the set of
 * events handed to it after a crash or an ambiguous answer can differ from the first attempt: other
 * partitions, new events behind the same heads, another order. Whatever the batch, an event already
 * in a picking is found (never posted twice) and an event never posted is posted (never skipped).
 * The rule is called directly, as the relay would after a crash, against the emulator and events
 * from a real store.
 */
let rig: Rig;
let ctx: RuleContext;
let n = 0;

beforeAll(async () => {
  rig = await makeRig(17, { start: false });
  await rig.client.connect();
  await rig.relay.refreshReference();
  ctx = { odoo: rig.client, ref: rig.relay.reference, config: rig.config, odooConfig: rig.odooConfig, log: silentLogger, now: Date.now };
});
afterAll(async () => {
  await rig?.close();
});

async function stored(drafts: DraftEvent[]): Promise<StoredEvent[]> {
  const ids = await rig.commit(drafts);
  return Promise.all(ids.map(async (id) => (await rig.store.getEvent(id))!));
}
const use = (analyzer: string, code: string, qty = 1, partitionKey?: string): DraftEvent => {
  const d = consumableUsed(analyzer, code, qty, 1000 + ++n);
  return partitionKey ? { ...d, partitionKey } : d;
};
async function post(events: StoredEvent[]): Promise<Map<string, { ok: boolean; note?: string }>> {
  const r = await consumableUsedRule.post(ctx, events);
  return new Map([...r].map(([k, v]) => [k, v.ok ? { ok: true, ...(v.note ? { note: v.note } : {}) } : { ok: false }]));
}
const productId = (code: string): number => rig.emu.records('product.product', [['default_code', '=', code]])[0]!.id as number;
function movedQty(analyzer: string, code: string): number {
  const pickings = rig.emu.records('stock.picking', [['origin', '=', `${CONSUMPTION_ORIGIN_PREFIX}${analyzer}`]]).map((p) => p.id);
  return rig.emu.records('stock.move', [['picking_id', 'in', pickings], ['product_id', '=', productId(code)]]).reduce((q, m) => q + Number(m['product_uom_qty']), 0);
}

describe('consumption identity across differing cross-partition batches', () => {
  it('one picking per analyzer per batch, one marked move per partition segment', async () => {
    const [a1, b1, c1] = await stored([use('id-1', 'RGT-GLU'), use('id-1', 'TIP-200'), use('id-2', 'TIP-200')]);
    const r = await post([a1!, b1!, c1!]);
    expect([...r.values()].every((x) => x.ok)).toBe(true);
    expect(rig.emu.count('stock.picking', [['origin', '=', `${CONSUMPTION_ORIGIN_PREFIX}id-1`]])).toBe(1);
    expect(rig.emu.count('stock.picking', [['origin', '=', `${CONSUMPTION_ORIGIN_PREFIX}id-2`]])).toBe(1);
    expect(rig.emu.count('stock.move', [['origin', '=', segmentOrigin(a1!.event.id, 1)]])).toBe(1);
    expect(rig.emu.count('stock.move', [['origin', '=', segmentOrigin(b1!.event.id, 1)]])).toBe(1);
  });

  it('a retry whose batch holds other partitions, new events behind posted heads and another order posts only what is new', async () => {
    const glu = await stored([use('id-3', 'RGT-GLU'), use('id-3', 'RGT-GLU')]);
    const tip = await stored([use('id-3', 'TIP-200', 2)]);
    // First attempt: both partitions in one batch; the answer is "lost" (we simply ignore it).
    await post([...glu, ...tip]);
    const before = postedConsumption(rig.emu);
    // After the crash: the partitions have new events, a new partition joins, the order differs.
    const glu2 = await stored([use('id-3', 'RGT-GLU')]);
    const cuv = await stored([use('id-3', 'CUV-01')]);
    const tip2 = await stored([use('id-3', 'TIP-200', 3)]);
    const retry = [...cuv, ...tip, ...tip2, ...glu, ...glu2];
    const r = await post(retry);
    expect(retry.map((e) => r.get(e.event.id)?.ok)).toEqual(retry.map(() => true));
    expect([...glu, ...tip].map((e) => r.get(e.event.id)?.note)).toEqual(['found in Odoo', 'found in Odoo', 'found in Odoo']);
    const after = postedConsumption(rig.emu);
    expect(after.duplicateHeads).toEqual([]);
    expect(after.covered - before.covered).toBe(3); // glu2, cuv, tip2
    expect(movedQty('id-3', 'RGT-GLU')).toBe(3);
    expect(movedQty('id-3', 'TIP-200')).toBe(5);
    expect(movedQty('id-3', 'CUV-01')).toBe(1);
    // And once more with the same events: nothing new at all.
    await post(retry);
    expect(postedConsumption(rig.emu).covered).toBe(after.covered);
  });

  it('a partition posted in consecutive segments (chunks) is found segment by segment', async () => {
    const ev = await stored([use('id-4', 'TIP-200'), use('id-4', 'TIP-200'), use('id-4', 'TIP-200'), use('id-4', 'TIP-200')]);
    await post(ev.slice(0, 1));
    await post(ev.slice(1, 3));
    const r = await post(ev);
    expect(ev.map((e) => r.get(e.event.id)?.note)).toEqual(['found in Odoo', 'found in Odoo', 'found in Odoo', undefined]);
    expect(movedQty('id-4', 'TIP-200')).toBe(4);
    expect(postedConsumption(rig.emu).duplicateHeads).toEqual([]);
  });

  it('a picking of the earlier per-analyzer scheme (marker on the picking) is found for events still queued under it', async () => {
    const legacyKey = 'consumption:id-5';
    const ev = await stored([use('id-5', 'TIP-200', 1, legacyKey), use('id-5', 'RGT-GLU', 1, legacyKey), use('id-5', 'TIP-200', 1, legacyKey)]);
    const type = rig.emu.records('stock.picking.type', [['sequence_code', '=', 'LAB']])[0]!.id;
    const lab = rig.emu.records('stock.location', [['name', '=', 'Lab']])[0]!.id;
    const cons = rig.emu.records('stock.location', [['name', '=', 'Lab Consumption']])[0]!.id;
    rig.emu.call('stock.picking', 'create', [{ picking_type_id: type, location_id: lab, location_dest_id: cons, origin: `${CONSUMPTION_ORIGIN_PREFIX}${ev[0]!.event.id}:2`, move_ids: [[0, 0, { name: 'old', product_id: productId('TIP-200'), product_uom_qty: 1, location_id: lab, location_dest_id: cons }]] }]);
    const r = await post(ev);
    expect(ev.map((e) => r.get(e.event.id)?.note)).toEqual(['found in Odoo', 'found in Odoo', undefined]);
    expect(r.get(ev[2]!.event.id)?.ok).toBe(true);
    expect(rig.emu.count('stock.move', [['origin', '=', segmentOrigin(ev[2]!.event.id, 1)]])).toBe(1);
  });

  it('a found picking Odoo will not validate holds back only its own partition', async () => {
    const [x] = await stored([use('id-7', 'TIP-200')]);
    const [y] = await stored([use('id-7', 'CUV-01')]);
    const type = rig.emu.records('stock.picking.type', [['sequence_code', '=', 'LAB']])[0]!.id;
    const lab = rig.emu.records('stock.location', [['name', '=', 'Lab']])[0]!.id;
    const cons = rig.emu.records('stock.location', [['name', '=', 'Lab Consumption']])[0]!.id;
    const picking = rig.emu.call('stock.picking', 'create', [{ picking_type_id: type, location_id: lab, location_dest_id: cons, origin: `${CONSUMPTION_ORIGIN_PREFIX}id-7`, move_ids: [[0, 0, { name: 'x', origin: segmentOrigin(x!.event.id, 1), product_id: productId('TIP-200'), product_uom_qty: 1, location_id: lab, location_dest_id: cons }]] }]) as number;
    rig.emu.call('stock.picking', 'action_cancel', [[picking]]);
    const r = await consumableUsedRule.post(ctx, [x!, y!]);
    const rx = r.get(x!.event.id);
    expect(rx?.ok).toBe(false);
    expect(String(rx && !rx.ok ? (rx.error as Error).message : '')).toMatch(/was cancelled in Odoo/);
    expect(r.get(y!.event.id)?.ok).toBe(true);
    expect(movedQty('id-7', 'CUV-01')).toBe(1);
  });

  it('a partition of the earlier scheme mixing products posts as one segment, its marker on each move', async () => {
    const legacyKey = 'consumption:id-6';
    const ev = await stored([use('id-6', 'TIP-200', 1, legacyKey), use('id-6', 'CUV-01', 1, legacyKey), use('id-6', 'TIP-200', 1, legacyKey)]);
    const first = await post(ev);
    expect(ev.map((e) => first.get(e.event.id)?.ok)).toEqual([true, true, true]);
    expect(movedQty('id-6', 'TIP-200')).toBe(2);
    expect(movedQty('id-6', 'CUV-01')).toBe(1);
    expect(rig.emu.count('stock.move', [['origin', '=', segmentOrigin(ev[0]!.event.id, 3)]])).toBe(2);
    // Retried with a new reagent partition of the same analyzer and a product the legacy segment holds.
    const [glu] = await stored([use('id-6', 'RGT-GLU')]);
    const [tip] = await stored([use('id-6', 'TIP-200')]);
    const again = await post([...ev, glu!, tip!]);
    expect(ev.map((e) => again.get(e.event.id)?.note)).toEqual(['found in Odoo', 'found in Odoo', 'found in Odoo']);
    expect(again.get(glu!.event.id)?.ok).toBe(true);
    expect(again.get(tip!.event.id)?.ok).toBe(true);
    expect(movedQty('id-6', 'TIP-200')).toBe(3);
    expect(postedConsumption(rig.emu).duplicateHeads).toEqual([]);
  });

  it('partitions of both schemes in one call: a product already in the picking waits for the next call', async () => {
    const [old] = await stored([use('id-8', 'TIP-200', 1, 'consumption:id-8')]);
    const [fresh] = await stored([use('id-8', 'TIP-200')]);
    const r = await post([old!, fresh!]);
    expect(r.get(old!.event.id)?.ok).toBe(true);
    expect(r.has(fresh!.event.id)).toBe(false);
    const r2 = await post([fresh!]);
    expect(r2.get(fresh!.event.id)?.ok).toBe(true);
    expect(movedQty('id-8', 'TIP-200')).toBe(2);
  });
});
