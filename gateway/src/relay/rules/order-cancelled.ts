import type { OrderCancelledData } from '../../events/types.ts';
import { m2oId, searchRead, write } from '../odoo/odoo-calls.ts';
import { noSaleOrder, saleOrdersByAccession, SALE_LINE_FIELDS } from './sale-orders.ts';
import { fail, ok, type PostingRule, type RuleResult } from './types.ts';

/**
 * order.cancelled → the cancelled tests' lines leave the order. On a draft/sent order the lines are
 * unlinked (the whole order is cancelled when no test is named or no line would remain); on a
 * confirmed order the line quantity goes to 0 (Odoo refuses to delete confirmed lines). Idempotent
 * by construction: a second run finds no line to remove, or a cancelled order.
 */
export const orderCancelledRule: PostingRule = {
  name: 'order-cancelled',
  types: ['order.cancelled'],
  maxBatch: 50,
  crossPartition: true,
  async post(ctx, events) {
    const results = new Map<string, RuleResult>();
    const orders = await saleOrdersByAccession(ctx.odoo, events.map((e) => (e.event.data as OrderCancelledData).accession));
    for (const e of events) {
      const d = e.event.data as OrderCancelledData;
      try {
        const so = orders.get(d.accession);
        if (!so) throw noSaleOrder(d.accession);
        const ref = [{ model: 'sale.order', id: so.id, name: String(so['name'] ?? '') }];
        const state = String(so['state']);
        if (state === 'cancel') {
          results.set(e.event.id, ok(ref, 'order already cancelled'));
          continue;
        }
        const lines = await searchRead(ctx.odoo, 'sale.order.line', [['order_id', '=', so.id]], SALE_LINE_FIELDS);
        const codes = new Set(d.tests.map((t) => t.code));
        const productIds = new Set<number>();
        for (const code of codes) productIds.add((await ctx.ref.product(code)).id);
        const hit = d.tests.length === 0 ? lines : lines.filter((l) => productIds.has(m2oId(l['product_id']) ?? -1));
        const draft = state === 'draft' || state === 'sent';
        if (draft && (d.tests.length === 0 || hit.length === lines.length)) {
          // action_cancel on a draft order returns True (no wizard without invoices).
          await ctx.odoo.call('sale.order', 'action_cancel', {}, { ids: [so.id] });
        } else if (draft) {
          if (hit.length > 0) await ctx.odoo.call('sale.order.line', 'unlink', {}, { ids: hit.map((l) => l.id) });
        } else {
          const open = hit.filter((l) => Number(l['product_uom_qty'] ?? 0) !== 0);
          if (open.length > 0) await write(ctx.odoo, 'sale.order.line', open.map((l) => l.id), { product_uom_qty: 0 });
        }
        results.set(e.event.id, ok(ref));
      } catch (err) {
        results.set(e.event.id, fail(err));
      }
    }
    return results;
  },
};
