import type { ConsumableUsedData } from '../../events/types.ts';
import type { StoredEvent } from '../../store/types.ts';
import { create, read, searchRead } from '../odoo/odoo-calls.ts';
import { mappingMissing, odooError } from '../odoo/odoo-error.ts';
import { odooTime, type LotRef, type ProductRef } from '../reference-data.ts';
import { fail, ok, type PostingRule, type RuleContext, type RuleResult } from './types.ts';

/**
 * consumable.used → ONE consumption `stock.picking` per batch (one analyzer's window): lab location
 * → consumption location, one move per product, one move line per lot, created in one call with
 * picking-level `move_line_ids` (D: "consumption in two calls"; nested lines lose picking_id), then
 * `button_validate` and a re-read of `state` (a returned wizard dict means NOT done, B.1 step 4).
 *
 * Lots: the analyzer's lot when it gave one; otherwise FEFO from the pulled quants and lots at the
 * lab location, skipping expired lots. Identity: origin `lab-gateway:cons:<head event id>:<count>`;
 * the relay leases a partition's events FIFO, so a retry starts at the same head and the picking
 * found by that prefix covers exactly the first <count> events of the new batch.
 */
export const CONSUMPTION_ORIGIN_PREFIX = 'lab-gateway:cons:';

export const consumableUsedRule: PostingRule = {
  name: 'consumable-used',
  types: ['consumable.used'],
  maxBatch: 500,
  crossPartition: false,
  async post(ctx, events) {
    const results = new Map<string, RuleResult>();
    let rest = events;
    while (rest.length > 0) {
      const head = rest[0]!;
      const origin = `${CONSUMPTION_ORIGIN_PREFIX}${head.event.id}:`;
      // Always look up first, even for events never attempted: a link failure after the picking
      // was created (e.g. a proxy 504 on button_validate) releases the lease without marking it.
      {
        const found = await searchRead(ctx.odoo, 'stock.picking', [['origin', 'ilike', origin]], ['id', 'name', 'state', 'origin'], { limit: 1 });
        const picking = found[0];
        if (picking) {
          const count = Number(String(picking['origin']).slice(origin.length)) || 1;
          const covered = rest.slice(0, count);
          await ensureDone(ctx, picking.id, String(picking['state']));
          for (const e of covered) results.set(e.event.id, ok([{ model: 'stock.picking', id: picking.id, name: String(picking['name'] ?? '') }], 'found in Odoo'));
          rest = rest.slice(count);
          continue;
        }
      }
      // Resolve every line; stop at the first event that cannot be posted (FIFO: later events of
      // this analyzer wait behind it).
      const planned: Array<{ e: StoredEvent; product: ProductRef; lots: Array<{ lotId?: number; qty: number }> }> = [];
      const taken = new Map<number, number>();
      let failed: { e: StoredEvent; err: unknown } | undefined;
      for (const e of rest) {
        try {
          const d = e.event.data as ConsumableUsedData;
          const product = await ctx.ref.product(d.productCode, 'reagent/consumable');
          planned.push({ e, product, lots: await chooseLots(ctx, product, d, taken) });
        } catch (err) {
          failed = { e, err };
          break;
        }
      }
      if (planned.length > 0) {
        const picking = await createPicking(ctx, `${origin}${planned.length}`, planned);
        await ensureDone(ctx, picking.id, 'draft');
        for (const p of planned) {
          for (const l of p.lots) ctx.ref.consume(p.product.id, l.lotId, l.qty);
          results.set(p.e.event.id, ok([{ model: 'stock.picking', id: picking.id }]));
        }
      }
      if (failed) results.set(failed.e.event.id, fail(failed.err));
      break;
    }
    return results;
  },
};

/** FEFO (first expired, first out) over the lab location's lots, skipping expired ones. */
async function chooseLots(ctx: RuleContext, product: ProductRef, d: ConsumableUsedData, taken: Map<number, number>): Promise<Array<{ lotId?: number; qty: number }>> {
  if (product.tracking !== 'lot' && product.tracking !== 'serial') return [{ qty: d.quantity }];
  if (d.reagentLot) {
    const lot = await ctx.ref.lotByName(product.id, d.reagentLot, product.code);
    return [{ lotId: lot.id, qty: d.quantity }];
  }
  const now = ctx.now();
  const byExpiry = (a: { expiresAt?: string; id: number }, b: { expiresAt?: string; id: number }): number =>
    (a.expiresAt ? odooTime(a.expiresAt) : Infinity) - (b.expiresAt ? odooTime(b.expiresAt) : Infinity) || a.id - b.id;
  const usable = (): LotRef[] => ctx.ref.lotsOf(product.id).filter((l) => !l.expiresAt || odooTime(l.expiresAt) > now).sort(byExpiry);
  let unexpired = usable();
  if (unexpired.length === 0) {
    // The last pull may be stale or may have failed: ask Odoo before refusing.
    await ctx.ref.refreshProductStock(product.id);
    unexpired = usable();
  }
  if (unexpired.length === 0) {
    throw mappingMissing(`no unexpired lot of ${product.code} is known in Odoo (the analyzer reported no lot): receive a lot or send the lot with the result`, { productCode: product.code });
  }
  const onHand = ctx.ref.onHandByLot(product.id);
  const out: Array<{ lotId?: number; qty: number }> = [];
  let left = d.quantity;
  for (const lot of unexpired) {
    if (left <= 1e-9) break;
    const avail = (onHand.get(lot.id) ?? 0) - (taken.get(lot.id) ?? 0);
    if (avail <= 0) continue;
    const q = Math.min(left, avail);
    out.push({ lotId: lot.id, qty: q });
    taken.set(lot.id, (taken.get(lot.id) ?? 0) + q);
    left -= q;
  }
  // The reagent was used even if Odoo's last count says otherwise: book the rest on the last lot
  // drawn (or the first to expire) — Odoo allows the quant to go negative (D) and the stock count
  // gets corrected there; a consumption is never refused for lack of recorded stock.
  if (left > 1e-9) {
    const last = out[out.length - 1];
    if (last) last.qty += left;
    else out.push({ lotId: unexpired[0]!.id, qty: left });
    const lotId = (last ?? out[0]!).lotId!;
    taken.set(lotId, (taken.get(lotId) ?? 0) + left);
  }
  return out;
}

async function createPicking(ctx: RuleContext, origin: string, planned: Array<{ e: StoredEvent; product: ProductRef; lots: Array<{ lotId?: number; qty: number }> }>): Promise<{ id: number }> {
  const mapping = ctx.odooConfig.mapping;
  const src = await ctx.ref.location(mapping.labLocation, 'odoo.mapping.labLocation');
  const dest = await ctx.ref.location(mapping.consumptionLocation, 'odoo.mapping.consumptionLocation');
  const type = await ctx.ref.consumptionPickingType(src.id);
  const f = ctx.odoo.fields;
  const moveUom = f.pick('stock.move', 'product_uom', 'product_uom_id') ?? 'product_uom';
  const lineQty = f.pick('stock.move.line', 'quantity', 'qty_done') ?? 'quantity';
  const perProduct = new Map<number, { product: ProductRef; qty: number }>();
  const perLot = new Map<string, { product: ProductRef; lotId?: number; qty: number }>();
  for (const p of planned) {
    const pp = perProduct.get(p.product.id) ?? { product: p.product, qty: 0 };
    for (const l of p.lots) {
      pp.qty += l.qty;
      // Untracked products get a line too: from 17 on, once any move is `picked`, validation only
      // moves picked quantities (_pre_action_done_hook marks all moves picked only when none is).
      const key = `${p.product.id}:${l.lotId ?? ''}`;
      const pl = perLot.get(key) ?? { product: p.product, ...(l.lotId === undefined ? {} : { lotId: l.lotId }), qty: 0 };
      pl.qty += l.qty;
      perLot.set(key, pl);
    }
    perProduct.set(p.product.id, pp);
  }
  const round = (n: number): number => Math.round(n * 1e6) / 1e6;
  const moves = [...perProduct.values()].map(({ product, qty }) => [
    0,
    0,
    {
      // stock.move.name is required ≤18 and gone in 19 (B table): the field map drops it there.
      name: `Lab consumption ${product.code}`,
      product_id: product.id,
      product_uom_qty: round(qty),
      ...(product.uomId ? { [moveUom]: product.uomId } : {}),
      location_id: src.id,
      location_dest_id: dest.id,
    },
  ]);
  const lines = [...perLot.values()].map(({ product, lotId, qty }) => [
    0,
    0,
    {
      product_id: product.id,
      ...(product.uomId ? { product_uom_id: product.uomId } : {}),
      location_id: src.id,
      location_dest_id: dest.id,
      ...(lotId === undefined ? {} : { lot_id: lotId }),
      [lineQty]: round(qty),
      picked: true,
    },
  ]);
  const [id] = await create(ctx.odoo, 'stock.picking', [
    { picking_type_id: type.id, location_id: src.id, location_dest_id: dest.id, origin, move_ids: moves, ...(lines.length ? { move_line_ids: lines } : {}) },
  ]);
  return { id: id! };
}

/** button_validate until `state` reads 'done' (a wizard dict is not done; D: validating a done picking raises). */
async function ensureDone(ctx: RuleContext, pickingId: number, knownState: string): Promise<void> {
  if (knownState === 'done') return;
  if (knownState === 'cancel') throw odooError('permanent', `consumption picking ${pickingId} was cancelled in Odoo`);
  const answer = await ctx.odoo.call<unknown>('stock.picking', 'button_validate', {}, {
    ids: [pickingId],
    context: { skip_backorder: true, picking_ids_not_to_backorder: [pickingId], skip_expired: true },
  });
  const [after] = await read(ctx.odoo, 'stock.picking', [pickingId], ['state']);
  if (after?.['state'] !== 'done') {
    const wizard = answer && typeof answer === 'object' ? String((answer as Record<string, unknown>)['res_model'] ?? 'an action') : String(answer);
    throw odooError('transient', `consumption picking ${pickingId} is ${String(after?.['state'])} after button_validate (Odoo answered ${wizard})`, { odooName: 'button_validate' });
  }
}
