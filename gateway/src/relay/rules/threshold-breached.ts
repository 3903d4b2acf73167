import type { StockThresholdBreachedData } from '../../events/types.ts';
import { externalId, loadWithExternalIds, lookupExternalId, m2oId, searchRead } from '../odoo/odoo-calls.ts';
import { mappingMissing } from '../odoo/odoo-error.ts';
import { fail, ok, type PostingRule, type RuleResult } from './types.ts';

/**
 * stock.threshold_breached → a draft RFQ (`purchase.order`), NEVER confirmed (button_confirm is a
 * human act), at most one open (draft/sent) per product: an open RFQ line for the product — ours or
 * a buyer's — means nothing is created. Vendor: the product's first supplier, else
 * odoo.mapping.defaultVendorRef. Created with `load()` and an external id.
 */
export const thresholdBreachedRule: PostingRule = {
  name: 'threshold-breached',
  types: ['stock.threshold_breached'],
  maxBatch: 50,
  crossPartition: true,
  async post(ctx, events) {
    const results = new Map<string, RuleResult>();
    const products = new Map<string, Awaited<ReturnType<typeof ctx.ref.product>>>();
    for (const e of events) {
      const d = e.event.data as StockThresholdBreachedData;
      try {
        products.set(d.productCode, await ctx.ref.product(d.productCode, 'reagent/consumable'));
      } catch (err) {
        results.set(e.event.id, fail(err));
      }
    }
    const ids = [...new Set([...products.values()].map((p) => p.id))];
    const open = ids.length ? await searchRead(ctx.odoo, 'purchase.order.line', [['product_id', 'in', ids], ['state', 'in', ['draft', 'sent']]], ['id', 'order_id', 'product_id']) : [];
    const openByProduct = new Map<number, number>();
    for (const l of open) {
      const pid = m2oId(l['product_id']);
      const oid = m2oId(l['order_id']);
      if (pid !== undefined && oid !== undefined && !openByProduct.has(pid)) openByProduct.set(pid, oid);
    }
    const uomField = ctx.odoo.fields.pick('purchase.order.line', 'product_uom_id', 'product_uom') ?? 'product_uom';
    for (const e of events) {
      if (results.has(e.event.id)) continue;
      const d = e.event.data as StockThresholdBreachedData;
      const product = products.get(d.productCode)!;
      try {
        // An ambiguous earlier attempt may have created the RFQ, and a buyer may have confirmed it
        // since (then it is no longer "open"): the external id answers exactly (B.4).
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
        const vendorId = await vendorOf(ctx, product.templateId, product.code);
        const xmlid = externalId('rfq', e.event.idempotencyKey).full;
        const date = new Date(ctx.now()).toISOString().slice(0, 19).replace('T', ' ');
        const [poId] = await loadWithExternalIds(ctx.odoo, 'purchase.order', [
          {
            xmlid,
            vals: {
              partner_id: vendorId,
              origin: `lab-gateway reorder ${d.productCode}`,
              order_line: [[0, 0, { product_id: product.id, name: product.name || product.code, product_qty: d.suggestedQuantity, ...(product.uomId ? { [uomField]: product.uomId } : {}), date_planned: date }]],
            },
          },
        ]);
        openByProduct.set(product.id, poId!);
        results.set(e.event.id, ok([{ model: 'purchase.order', id: poId!, externalId: xmlid }]));
      } catch (err) {
        results.set(e.event.id, fail(err));
      }
    }
    return results;
  },
};

async function vendorOf(ctx: Parameters<PostingRule['post']>[0], templateId: number | undefined, code: string): Promise<number> {
  if (templateId !== undefined && !ctx.odoo.fields.missing('product.supplierinfo')) {
    const sellers = await searchRead(ctx.odoo, 'product.supplierinfo', [['product_tmpl_id', '=', templateId]], ['id', 'partner_id'], { limit: 1, order: 'sequence, id' });
    const vendor = m2oId(sellers[0]?.['partner_id']);
    if (vendor !== undefined) return vendor;
  }
  const ref = ctx.odooConfig.mapping.defaultVendorRef;
  if (!ref) throw mappingMissing(`product ${code} has no vendor in Odoo and odoo.mapping.defaultVendorRef is not set`, { productCode: code });
  return (await ctx.ref.partner(ref, 'default vendor')).id;
}
