import type { OrderCreatedData } from '../../events/types.ts';
import type { StoredEvent } from '../../store/types.ts';
import { addByExternalId, m2oId, searchRead, type OdooRecord } from '../odoo/odoo-calls.ts';
import type { OdooApi } from '../odoo/odoo-client.ts';
import { failureOf, mappingMissing, needsOperator } from '../odoo/odoo-error.ts';
import type { PartnerRef } from '../reference-data.ts';
import type { RuleContext } from './types.ts';

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
  // The source document the gateway wrote names the order's accession: it decides. The Customer
  // Reference decides only for an order with no such source document (one entered by hand with
  // the accession, or made before the gateway wrote `origin`). Sales staff type the clinic's own
  // number there: a gateway order of another accession whose Customer Reference became "4711"
  // was taken for accession 4711's order, which then never got one of its own (its tests, notes
  // and invoice went onto the other patient's order).
  const byOrigin = new Set<string>();
  for (const row of rows) {
    const byRef = String(row['client_order_ref'] ?? '');
    const origin = String(row['origin'] ?? '');
    const ofOrigin = origin.startsWith(ORIGIN_PREFIX) ? origin.slice(ORIGIN_PREFIX.length) : undefined;
    if (ofOrigin !== undefined && wanted.has(ofOrigin) && !byOrigin.has(ofOrigin)) {
      out.set(ofOrigin, row);
      byOrigin.add(ofOrigin);
    } else if (wanted.has(byRef) && (ofOrigin === undefined || ofOrigin === byRef) && !out.has(byRef)) {
      out.set(byRef, row);
    }
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

/**
 * A later `order.created` of the accession (naming `testCode`, when given), not delivered or
 * discarded yet, follows `e` in the store: it is posted after `e` is resolved, so an event that
 * found no sale order (or no line) yet may leave its effect to it (a result, a cancellation that
 * came before its order) rather than hold it back in the partition.
 */
export async function orderFollows(ctx: RuleContext, e: StoredEvent, accession: string, testCode?: string): Promise<boolean> {
  if (!ctx.events) return false;
  const orders = await ctx.events(accession, ['order.created']);
  return orders.some(
    (o) =>
      o.event.type === 'order.created' &&
      o.event.id > e.event.id &&
      o.state !== 'delivered' &&
      o.state !== 'discarded' &&
      (testCode === undefined || (o.event.data as OrderCreatedData).tests.some((t) => t.code === testCode)),
  );
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

/** The sale order's customer as Odoo shows it (`partner_id` display name), else its id. */
export function customerOf(so: OdooRecord): string {
  const p = so['partner_id'];
  return Array.isArray(p) ? String(p[1] ?? p[0]) : String(p ?? '?');
}

/** `Harbour Medical Centre (CLINIC-B)`: an ordering client as a reason names it. */
export function clientName(partner: PartnerRef | undefined, ref: string): string {
  return partner?.name ? `${partner.name} (${ref})` : ref;
}

/**
 * The ordering client's partner, or undefined when its ref is empty or maps to no partner (a
 * permanent look-up failure): such an order cannot be compared with a sale order's customer, and
 * is treated as before. A failure of the link is thrown (the event is retried).
 */
export async function partnerOrNone(ctx: RuleContext, ref: string | undefined): Promise<PartnerRef | undefined> {
  if (!ref) return undefined;
  try {
    return await ctx.ref.partner(ref);
  } catch (err) {
    if (failureOf(err) === 'permanent') return undefined;
    throw err;
  }
}

/**
 * The guard against applying one LIS's result, cancellation or invoice to another LIS's order
 * (two `hl7[]` links whose accession numbers collide, no `hl7[].accessionPrefix`): a sale order is
 * found by its accession alone, so the outreach's result for its own "12345" found the hospital's
 * sale order 12345 and marked its test delivered, its cancel cancelled it.
 *
 * `check(event, accession, so, what)` returns the dead letter (permanent, for an operator) when
 * the accession's stored orders show a collision — `order.created` events naming more than one
 * ordering client — and the orders the event's own
 * endpoint sent for that accession name clients of which none is the sale order's customer.
 * Otherwise undefined, as before: one LIS whose sale order's customer a user changed in Odoo, a
 * result that came on another link than its order (orders on one port, results on another), an
 * endpoint that sent no order of the accession. The accession's orders are read once per batch.
 */
export function otherClientGuard(ctx: RuleContext): (event: StoredEvent, accession: string, so: OdooRecord, what: string) => Promise<Error | undefined> {
  const orders = new Map<string, Promise<StoredEvent[]>>();
  return async (event, accession, so, what) => {
    if (!ctx.events) return undefined;
    let read = orders.get(accession);
    if (!read) orders.set(accession, (read = ctx.events(accession, ['order.created'])));
    const stored = (await read).filter((o) => o.event.type === 'order.created');
    const refOf = (o: StoredEvent): string => (o.event.data as OrderCreatedData).orderingClientRef ?? '';
    const clients = new Set(stored.map(refOf).filter(Boolean));
    // One client: no collision, whichever links brought its orders (one LIS over a backup link
    // whose sale order's customer a user changed in Odoo must not be dead-lettered).
    if (clients.size < 2) return undefined;
    const endpoint = event.event.source.endpoint;
    const own = [...new Set(stored.filter((o) => o.event.source.endpoint === endpoint).map(refOf).filter(Boolean))];
    if (own.length === 0) return undefined;
    const customer = m2oId(so['partner_id']);
    const names: string[] = [];
    for (const ref of own) {
      const partner = await partnerOrNone(ctx, ref);
      if (partner && partner.id === customer) return undefined;
      names.push(clientName(partner, ref));
    }
    return needsOperator(
      `${what} of accession ${accession} from ${endpoint} not applied: that link's order ${accession} is for ${names.join(', ')}, but sale order ${String(so['name'] ?? so.id)} of accession ${accession} belongs to ${customerOf(so)} — two LIS links number their accessions alike. Give one of them hl7[].accessionPrefix (README.md "Two LIS systems"), apply this by hand in Odoo and discard this event`,
      { accession, endpoint, model: 'sale.order', id: so.id },
    );
  };
}
