import type { OrderCreatedData } from '../../events/types.ts';
import type { OdooRef, StoredEvent } from '../../store/types.ts';
import { externalId, loadWithExternalIds, lookupExternalId } from '../odoo/odoo-calls.ts';
import { failureOf } from '../odoo/odoo-error.ts';
import { saleOrdersByAccession } from './sale-orders.ts';
import { fail, ok, type PostingRule, type RuleResult } from './types.ts';

/**
 * order.created → a draft sale.order for the ordering client (partner by `ref`), one line per
 * billable test (product by `default_code`). Created with `load()` and the external id
 * `lab_gateway.so_<accession>` (record + xmlid in one transaction, odoo-api.md B.4), after a batch
 * look-up by `client_order_ref` (D: re-loading an existing xmlid duplicates its lines). Never
 * confirmed unless relay.autoConfirm (DESIGN.md §2: drafts only).
 */
export const orderCreatedRule: PostingRule = {
  name: 'order-created',
  types: ['order.created'],
  maxBatch: 100,
  crossPartition: true,
  async post(ctx, events) {
    const results = new Map<string, RuleResult>();
    const data = (e: StoredEvent): OrderCreatedData => e.event.data as OrderCreatedData;
    const existing = await saleOrdersByAccession(ctx.odoo, events.map((e) => data(e).accession));
    const toCreate: Array<{ event: StoredEvent; xmlid: string; vals: Record<string, unknown> }> = [];
    const pendingAcc = new Map<string, StoredEvent[]>();
    const uomField = ctx.odoo.fields.pick('sale.order.line', 'product_uom_id', 'product_uom') ?? 'product_uom';
    for (const e of events) {
      const d = data(e);
      const so = existing.get(d.accession);
      if (so) {
        results.set(e.event.id, ok([soRef(so.id, String(so['name'] ?? ''), d.accession)], 'already in Odoo'));
        continue;
      }
      if (e.ambiguous && !pendingAcc.has(d.accession)) {
        // The earlier attempt may have landed and someone may have edited client_order_ref since:
        // the external id is the exact answer (B.4).
        const xid = externalId('so', d.accession);
        const found = await lookupExternalId(ctx.odoo, xid.module, xid.name);
        if (found !== undefined) {
          results.set(e.event.id, ok([soRef(found, undefined, d.accession, xid.full)], 'found by external id'));
          continue;
        }
      }
      if (pendingAcc.has(d.accession)) {
        pendingAcc.get(d.accession)!.push(e);
        continue;
      }
      try {
        const partner = await ctx.ref.partner(d.orderingClientRef, 'ordering client', `order ${d.accession} names no ordering client (ORC-21, ORC-17 and OBR-16 are empty)`);
        const lines: unknown[] = [];
        for (const t of d.tests) {
          const product = await ctx.ref.product(t.code);
          lines.push([0, 0, { product_id: product.id, product_uom_qty: 1, ...(product.uomId ? { [uomField]: product.uomId } : {}) }]);
        }
        const xmlid = externalId('so', d.accession).full;
        toCreate.push({ event: e, xmlid, vals: { partner_id: partner.id, client_order_ref: d.accession, origin: `lab-gateway ${d.accession}`, order_line: lines } });
        pendingAcc.set(d.accession, [e]);
      } catch (err) {
        results.set(e.event.id, fail(err));
      }
    }
    if (toCreate.length > 0) {
      let ids: Array<number | Error> = [];
      try {
        ids = await loadWithExternalIds(ctx.odoo, 'sale.order', toCreate);
      } catch (err) {
        // One bad row fails the whole load: isolate it by loading one record at a time.
        if (toCreate.length === 1 || failureOf(err) !== 'permanent') ids = toCreate.map(() => err as Error);
        else {
          ids = [];
          for (const rec of toCreate) {
            try {
              ids.push((await loadWithExternalIds(ctx.odoo, 'sale.order', [rec]))[0]!);
            } catch (e2) {
              ids.push(e2 as Error);
            }
          }
        }
      }
      toCreate.forEach((rec, i) => {
        const id = ids[i];
        const d = data(rec.event);
        for (const e of pendingAcc.get(d.accession) ?? [rec.event]) {
          results.set(e.event.id, typeof id === 'number' ? ok([soRef(id, undefined, d.accession, rec.xmlid)]) : fail(id));
        }
      });
    }
    if (ctx.config.autoConfirm) {
      // Opt-in only (DESIGN.md §2). action_confirm on a confirmed order raises (D): check state.
      const fresh = await saleOrdersByAccession(ctx.odoo, events.map((e) => data(e).accession));
      const drafts = [...fresh.values()].filter((so) => so['state'] === 'draft' || so['state'] === 'sent').map((so) => so.id);
      if (drafts.length > 0) await ctx.odoo.call('sale.order', 'action_confirm', {}, { ids: drafts });
    }
    return results;
  },
};

function soRef(id: number, name: string | undefined, accession: string, xmlid?: string): OdooRef {
  return { model: 'sale.order', id, externalId: xmlid ?? externalId('so', accession).full, ...(name ? { name } : {}) };
}
