import { addByExternalId, searchRead, type OdooRecord } from '../odoo/odoo-calls.ts';
import type { OdooApi } from '../odoo/odoo-client.ts';
import { mappingMissing, needsOperator } from '../odoo/odoo-error.ts';

/**
 * The lab order in Odoo is a sale.order whose `client_order_ref` is the accession (placer order
 * number): one order per accession, found by every later rule (order resend, cancel, delivered,
 * notes, invoice). Sales staff may type the clinic's own reference into "Customer Reference"
 * (`client_order_ref`) afterwards: an accession the reference search misses is looked up by the
 * order's external id `lab_gateway.so_<accession>` (one `check_object_reference` per miss), which
 * the gateway created with the order in one transaction and nobody edits.
 */
export const SALE_ORDER_FIELDS = ['id', 'name', 'state', 'partner_id', 'partner_invoice_id', 'client_order_ref', 'order_line', 'currency_id', 'fiscal_position_id', 'locked'];

const ORIGIN_PREFIX = 'lab-gateway ';

/** The source document (`origin`) of the gateway's sale order of an accession. */
export function saleOrderOrigin(accession: string): string {
  return ORIGIN_PREFIX + accession;
}

/**
 * The gateway's sale orders of `accessions`: by the reference or the source document (one call),
 * then, for each accession both missed, by its external id (one `check_object_reference` each,
 * side by side): the only key nobody edits. A new order pays that look-up too — skipping it when
 * the store held no earlier order message of the accession left a resend after a reinstall (or
 * after retention) free to load the order's lines a second time when both fields were edited.
 */
export async function saleOrdersByAccession(odoo: OdooApi, accessions: string[]): Promise<Map<string, OdooRecord>> {
  const unique = [...new Set(accessions)];
  const out = new Map<string, OdooRecord>();
  if (unique.length === 0) return out;
  // By the reference, or by the source document the gateway wrote (`origin`), which a user who
  // types their own Customer Reference leaves alone: one call either way.
  const wanted = new Set(unique);
  const rows = await searchRead(odoo, 'sale.order', ['|', ['client_order_ref', 'in', unique], ['origin', 'in', unique.map(saleOrderOrigin)]], [...SALE_ORDER_FIELDS, 'origin'], { order: 'id' });
  for (const row of rows) {
    const byRef = String(row['client_order_ref'] ?? '');
    const origin = String(row['origin'] ?? '');
    const acc = wanted.has(byRef) ? byRef : origin.startsWith(ORIGIN_PREFIX) ? origin.slice(ORIGIN_PREFIX.length) : undefined;
    if (acc !== undefined && wanted.has(acc) && !out.has(acc)) out.set(acc, row);
  }
  await addByExternalId(odoo, out, unique, 'so', 'sale.order', SALE_ORDER_FIELDS);
  return out;
}

/**
 * No sale order (yet) for the accession. Not permanent: the order may still be on its way (a LIS
 * that sends results before the order, or an order.created waiting for its own retry), so the event
 * is retried with the store's back-off and dead-lettered only after relay.maxAttempts.
 */
export function noSaleOrder(accession: string): Error {
  return mappingMissing(`accession ${accession} has no Odoo sale order (order.created not received yet, not delivered or dead-lettered)`, { accession, failure: 'transient' });
}

export const SALE_LINE_FIELDS = ['id', 'order_id', 'product_id', 'product_uom_qty', 'qty_delivered', 'qty_invoiced', 'state', 'display_type'];

/**
 * The order is locked by the Sales setting "Lock Confirmed Sales" (group
 * `sale.group_auto_done_setting`): 17+ `locked` (sale_order.py `action_confirm` → `action_lock`),
 * 16 state `done` (`action_done`). Odoo then refuses any write of a line's product, description,
 * price, unit, quantity or taxes (sale_order_line.py `write`, `_get_protected_fields`: UserError "It
 * is forbidden to modify the following fields in a locked order: …"), on every version. New lines,
 * delivered quantities (`qty_delivered`) and invoices are not refused.
 */
export function isLockedOrder(so: OdooRecord): boolean {
  return so['locked'] === true || so['state'] === 'done';
}

/** Odoo's refusal of a write on a locked order's lines (the order was locked after it was read). */
export function isLockedOrderRefusal(err: unknown): boolean {
  return err instanceof Error && err.message.includes('in a locked order');
}

/**
 * The dead letter for a change the lock forbids: never retried (it cannot succeed until someone
 * unlocks the order), and its reason names the setting and what to do.
 */
export function lockedOrderChange(so: OdooRecord, accession: string, change: string): Error {
  const name = String(so['name'] ?? so.id);
  return needsOperator(
    `sale order ${name} (accession ${accession}) is locked in Odoo (Sales setting "Lock Confirmed Sales"), which forbids changing its lines' quantities: ${change} not applied. Unlock the order in Odoo (Unlock button) and replay this event, or make the change by hand and discard it`,
    { accession, model: 'sale.order', id: so.id },
  );
}
