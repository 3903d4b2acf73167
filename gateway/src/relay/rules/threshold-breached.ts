import type { StockThresholdBreachedData } from '../../events/types.ts';
import type { StoredEvent } from '../../store/types.ts';
import { externalId, loadWithExternalIds, lookupExternalId, m2oId, searchRead, write } from '../odoo/odoo-calls.ts';
import { mappingMissing } from '../odoo/odoo-error.ts';
import type { ProductRef } from '../reference-data.ts';
import { noteMarker } from './milestone-notes.ts';
import { fail, ok, type PostingRule, type RuleContext, type RuleResult } from './types.ts';

/** Source document of the gateway's RFQs: `lab-gateway reorder <product codes>`. */
export const RFQ_ORIGIN_PREFIX = 'lab-gateway reorder';

/** The mark on an RFQ line the gateway wrote for a breach: `lgw:<hash of its idempotency key>`. */
export function rfqLineMarker(idempotencyKey: string): string {
  return `lgw:${noteMarker(idempotencyKey)}`;
}

/**
 * stock.threshold_breached → a line on a draft RFQ (`purchase.order`), NEVER confirmed
 * (button_confirm is a human act), one RFQ per vendor the way Odoo's own replenishment merges a
 * vendor's needs: the line is added (`write` of an `order_line` [0, 0, …] command) to the gateway's
 * open draft RFQ of the product's vendor (origin `lab-gateway reorder…`, state draft), and a new
 * RFQ is `load()`ed with an external id only when that vendor has none. The batch's breaches are
 * grouped by vendor: one write or one load per vendor. At most one open (draft/sent) line per
 * product: an open RFQ line for the product — ours or a buyer's — means nothing is written.
 * Vendor: the product's first supplier, else odoo.mapping.defaultVendorRef.
 *
 * Exactly once: every line the gateway writes carries its breach's marker (`[lgw:<hash>]` in the
 * line's description), and every attempt first searches the products' lines for the batch's
 * markers, whatever their order's state: a write or load whose answer was lost is found, not
 * written again.
 */
export const thresholdBreachedRule: PostingRule = {
  name: 'threshold-breached',
  types: ['stock.threshold_breached'],
  maxBatch: 50,
  crossPartition: true,
  async post(ctx, events) {
    const results = new Map<string, RuleResult>();
    const products = new Map<string, ProductRef>();
    for (const e of events) {
      const d = data(e);
      try {
        products.set(d.productCode, await ctx.ref.product(d.productCode, 'reagent/consumable'));
      } catch (err) {
        results.set(e.event.id, fail(err));
      }
    }
    const live = events.filter((e) => !results.has(e.event.id));
    if (live.length === 0) return results;
    const ids = [...new Set(live.map((e) => products.get(data(e).productCode)!.id))];

    // Lines already written for these breaches (an earlier attempt whose answer was lost), in any
    // state: a buyer may have confirmed the RFQ since.
    const markers = live.map((e) => ['name', 'ilike', rfqLineMarker(e.event.idempotencyKey)]);
    const markedLines = await searchRead(ctx.odoo, 'purchase.order.line', [['product_id', 'in', ids], ...anyOf(markers)], ['id', 'order_id', 'name']);
    const orderOfMarker = new Map<string, number>();
    for (const l of markedLines) {
      const oid = m2oId(l['order_id']);
      for (const match of String(l['name'] ?? '').matchAll(/lgw:[0-9a-f]{12}/g)) if (oid !== undefined) orderOfMarker.set(match[0], oid);
    }
    const open = await searchRead(ctx.odoo, 'purchase.order.line', [['product_id', 'in', ids], ['state', 'in', ['draft', 'sent']]], ['id', 'order_id', 'product_id']);
    const openByProduct = new Map<number, number>();
    for (const l of open) {
      const pid = m2oId(l['product_id']);
      const oid = m2oId(l['order_id']);
      if (pid !== undefined && oid !== undefined && !openByProduct.has(pid)) openByProduct.set(pid, oid);
    }

    /** Breaches to write, per vendor, in batch order; a later breach of a product planned already follows it. */
    const byVendor = new Map<number, Array<{ e: StoredEvent; product: ProductRef }>>();
    const planned = new Map<number, StoredEvent>();
    const followers = new Map<string, StoredEvent[]>();
    const vendors = new Map<number, Promise<number>>();
    for (const e of live) {
      const product = products.get(data(e).productCode)!;
      try {
        const oid = orderOfMarker.get(rfqLineMarker(e.event.idempotencyKey));
        if (oid !== undefined) {
          results.set(e.event.id, ok([{ model: 'purchase.order', id: oid }], 'RFQ line found by its marker'));
          continue;
        }
        // An RFQ loaded before lines carried markers: its external id answers exactly (B.4).
        if (e.ambiguous || e.attempts > 0) {
          const xid = externalId('rfq', e.event.idempotencyKey);
          const found = await lookupExternalId(ctx.odoo, xid.module, xid.name);
          if (found !== undefined) {
            results.set(e.event.id, ok([{ model: 'purchase.order', id: found, externalId: xid.full }], 'found by external id'));
            continue;
          }
        }
        const existing = openByProduct.get(product.id);
        if (existing !== undefined) {
          results.set(e.event.id, ok([{ model: 'purchase.order', id: existing }], 'an open RFQ for this product exists'));
          continue;
        }
        const first = planned.get(product.id);
        if (first) {
          followers.set(first.event.id, [...(followers.get(first.event.id) ?? []), e]);
          continue;
        }
        const key = product.templateId ?? -product.id;
        if (!vendors.has(key)) vendors.set(key, vendorOf(ctx, product.templateId, product.code));
        const vendorId = await vendors.get(key)!;
        planned.set(product.id, e);
        byVendor.set(vendorId, [...(byVendor.get(vendorId) ?? []), { e, product }]);
      } catch (err) {
        results.set(e.event.id, fail(err));
      }
    }

    if (byVendor.size > 0) {
      // The gateway's open draft RFQ of each vendor (the oldest, should there be several).
      const drafts = await searchRead(ctx.odoo, 'purchase.order', [['partner_id', 'in', [...byVendor.keys()]], ['state', '=', 'draft'], ['origin', '=like', `${RFQ_ORIGIN_PREFIX}%`]], ['id', 'partner_id', 'origin'], { order: 'id' });
      const draftOf = new Map<number, { id: number; origin: string }>();
      for (const po of drafts) {
        const vendor = m2oId(po['partner_id']);
        if (vendor !== undefined && !draftOf.has(vendor)) draftOf.set(vendor, { id: po.id, origin: typeof po['origin'] === 'string' ? po['origin'] : '' });
      }
      const uomField = ctx.odoo.fields.pick('purchase.order.line', 'product_uom_id', 'product_uom') ?? 'product_uom';
      const date = new Date(ctx.now()).toISOString().slice(0, 19).replace('T', ' ');
      const lineOf = ({ e, product }: { e: StoredEvent; product: ProductRef }): unknown[] => [
        0,
        0,
        {
          product_id: product.id,
          name: `${product.name || product.code} [${rfqLineMarker(e.event.idempotencyKey)}]`,
          product_qty: data(e).suggestedQuantity,
          ...(product.uomId ? { [uomField]: product.uomId } : {}),
          date_planned: date,
        },
      ];
      for (const [vendorId, items] of byVendor) {
        const codes = items.map((i) => i.product.code);
        try {
          const draft = draftOf.get(vendorId);
          if (draft) {
            // All of the vendor's lines in one write: one transaction, all or none.
            const missing = codes.filter((c) => !draft.origin.split(/[\s,]+/).includes(c));
            await write(ctx.odoo, 'purchase.order', [draft.id], { order_line: items.map(lineOf), ...(missing.length > 0 ? { origin: `${draft.origin}, ${missing.join(', ')}` } : {}) });
            for (const i of items) results.set(i.e.event.id, ok([{ model: 'purchase.order', id: draft.id }], 'line added to the open draft RFQ of the vendor'));
            continue;
          }
          const xmlid = externalId('rfq', items[0]!.e.event.idempotencyKey).full;
          const [poId] = await loadWithExternalIds(ctx.odoo, 'purchase.order', [
            { xmlid, vals: { partner_id: vendorId, origin: `${RFQ_ORIGIN_PREFIX} ${codes.join(', ')}`, order_line: items.map(lineOf) } },
          ]);
          items.forEach((i, n) => results.set(i.e.event.id, ok([{ model: 'purchase.order', id: poId!, ...(n === 0 ? { externalId: xmlid } : {}) }])));
        } catch (err) {
          for (const i of items) results.set(i.e.event.id, fail(err));
        }
      }
    }
    // A later breach of a product written in this batch: its line is that one.
    for (const [firstId, later] of followers) {
      const r = results.get(firstId);
      for (const e of later) results.set(e.event.id, r?.ok ? ok(r.odoo, 'an open RFQ for this product exists') : (r ?? fail(new Error('not posted'))));
    }
    return results;
  },
};

function data(e: StoredEvent): StockThresholdBreachedData {
  return e.event.data as StockThresholdBreachedData;
}

/** An OR of domain leaves in prefix notation. */
function anyOf(leaves: unknown[]): unknown[] {
  return [...Array.from({ length: leaves.length - 1 }, () => '|'), ...leaves];
}

async function vendorOf(ctx: RuleContext, templateId: number | undefined, code: string): Promise<number> {
  if (templateId !== undefined && !ctx.odoo.fields.missing('product.supplierinfo')) {
    const sellers = await searchRead(ctx.odoo, 'product.supplierinfo', [['product_tmpl_id', '=', templateId]], ['id', 'partner_id'], { limit: 1, order: 'sequence, id' });
    const vendor = m2oId(sellers[0]?.['partner_id']);
    if (vendor !== undefined) return vendor;
  }
  const ref = ctx.odooConfig.mapping.defaultVendorRef;
  if (!ref) throw mappingMissing(`product ${code} has no vendor in Odoo and odoo.mapping.defaultVendorRef is not set`, { productCode: code });
  return (await ctx.ref.partner(ref, 'default vendor')).id;
}
