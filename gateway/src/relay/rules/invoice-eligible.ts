import type { InvoiceEligibleData } from '../../events/types.ts';
import { externalId, loadWithExternalIds, m2oId, read, searchRead } from '../odoo/odoo-calls.ts';
import { odooError } from '../odoo/odoo-error.ts';
import { noSaleOrder, saleOrdersByAccession, SALE_LINE_FIELDS } from './sale-orders.ts';
import { fail, ok, type PostingRule, type RuleResult } from './types.ts';

/**
 * invoice.eligible → a DRAFT customer invoice (`account.move`, move_type out_invoice) when the site
 * enables relay.invoicing; `action_post` only with relay.autoConfirm (DESIGN.md §2). Found again
 * by `ref` (D: a draft may already carry a name or '/', so never match on `name`), created with
 * `load()` and the external id `lab_gateway.inv_<accession>`.
 */
export const invoiceEligibleRule: PostingRule = {
  name: 'invoice-eligible',
  types: ['invoice.eligible'],
  maxBatch: 50,
  crossPartition: true,
  async post(ctx, events) {
    const results = new Map<string, RuleResult>();
    if (!ctx.config.invoicing) {
      for (const e of events) results.set(e.event.id, ok(undefined, 'invoicing disabled (relay.invoicing: false)'));
      return results;
    }
    const data = events.map((e) => e.event.data as InvoiceEligibleData);
    const refOf = (acc: string): string => `lab-gateway ${acc}`;
    const existing = await searchRead(ctx.odoo, 'account.move', [['move_type', '=', 'out_invoice'], ['ref', 'in', data.map((d) => refOf(d.accession))]], ['id', 'name', 'ref', 'state']);
    const byRef = new Map(existing.map((m) => [String(m['ref']), m]));
    const orders = await saleOrdersByAccession(ctx.odoo, data.map((d) => d.accession));
    const soIds = [...orders.values()].map((o) => o.id);
    const soLines = soIds.length ? await searchRead(ctx.odoo, 'sale.order.line', [['order_id', 'in', soIds]], [...SALE_LINE_FIELDS, 'price_unit', 'name']) : [];
    const created = new Set<string>();
    for (const e of events) {
      const d = e.event.data as InvoiceEligibleData;
      try {
        let move = byRef.get(refOf(d.accession));
        let id = move?.id;
        if (id === undefined && !created.has(d.accession)) {
          const so = orders.get(d.accession);
          if (!so) throw noSaleOrder(d.accession);
          const partnerId = m2oId(so['partner_id']) ?? (d.orderingClientRef ? (await ctx.ref.partner(d.orderingClientRef)).id : undefined);
          const lines: unknown[] = [];
          for (const t of d.tests) {
            const product = await ctx.ref.product(t.code);
            const sol = soLines.find((l) => m2oId(l['order_id']) === so.id && m2oId(l['product_id']) === product.id);
            lines.push([0, 0, { product_id: product.id, quantity: 1, ...(sol ? { price_unit: Number(sol['price_unit'] ?? 0) } : {}), name: product.name || t.code }]);
          }
          const xmlid = externalId('inv', d.accession).full;
          [id] = await loadWithExternalIds(ctx.odoo, 'account.move', [
            { xmlid, vals: { move_type: 'out_invoice', partner_id: partnerId, ref: refOf(d.accession), invoice_origin: String(so['name'] ?? d.accession), invoice_line_ids: lines } },
          ]);
          created.add(d.accession);
          move = undefined;
        }
        if (id === undefined) {
          results.set(e.event.id, ok(undefined, 'invoice created by an earlier event of this batch'));
          continue;
        }
        if (ctx.config.autoConfirm && (!move || move['state'] === 'draft')) {
          // action_post returns false in 17/18, maybe a wizard dict in 19 (B.3): re-read state.
          await ctx.odoo.call('account.move', 'action_post', {}, { ids: [id] });
          const [after] = await read(ctx.odoo, 'account.move', [id], ['state']);
          if (after?.['state'] !== 'posted') throw odooError('transient', `invoice ${id} is still ${String(after?.['state'])} after action_post`);
        }
        results.set(e.event.id, ok([{ model: 'account.move', id, externalId: externalId('inv', d.accession).full }]));
      } catch (err) {
        results.set(e.event.id, fail(err));
      }
    }
    return results;
  },
};
