import type { InvoiceEligibleData, OrderCancelledData } from '../../events/types.ts';
import { BILLING_STATE_TYPES, billingState, inStoredOrder, leftOpenBy, countedHistory } from '../../events/invoice-eligibility.ts';
import { idempotencyKey, partitionKeys } from '../../events/keys.ts';
import type { StoredEvent } from '../../store/types.ts';
import { externalId, loadWithExternalIds, lookupExternalId, m2oId, read, searchRead, write, type OdooRecord } from '../odoo/odoo-calls.ts';
import { odooError } from '../odoo/odoo-error.ts';
import { changedSinceRead, gatewayInvoices, INVOICE_FIELDS, invoiceRef, isProductLine, openDraft } from './invoices.ts';
import { noSaleOrder, otherClientGuard, saleOrdersByAccession, SALE_LINE_FIELDS } from './sale-orders.ts';
import { fail, ok, type PostingRule, type RuleContext, type RuleResult } from './types.ts';

/**
 * invoice.eligible → a DRAFT customer invoice (`account.move`, move_type out_invoice) when the site
 * enables relay.invoicing; `action_post` only with relay.autoConfirm (DESIGN.md §2). Found again
 * by `ref` `lab-gateway <accession>`, else by the external id `lab_gateway.inv_<accession>` (finance
 * may have typed its own reference; invoices.ts), and created with `load()` and that external id
 * only when both miss.
 *
 * Its lines are the sale order's lines as they are NOW, not the test list frozen in the event: a
 * test cancelled since is no longer on the order (or has quantity 0) and is not billed; each line
 * bills what the order line has not billed yet (ordered − invoiced quantity) and copies its
 * description, unit price, discount, taxes and unit, and links to it (`sale_line_ids`), so that
 * Odoo counts it invoiced and "Create Invoice" on the order does not offer it again. The header
 * takes the order's invoice address, currency and fiscal position. A later eligibility of the
 * accession bills only the tests it brings (billedByEarlierEligibilities): a test finance credited
 * or took off an earlier invoice is "to invoice" again in Odoo, and is not the gateway's to bill again.
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
    const existing = await gatewayInvoices(ctx.odoo, data.map((d) => d.accession));
    const orders = await saleOrdersByAccession(ctx.odoo, data.map((d) => d.accession));
    const soIds = [...orders.values()].map((o) => o.id);
    const taxField = ctx.odoo.fields.pick('sale.order.line', 'tax_ids', 'tax_id') ?? 'tax_id';
    const uomField = ctx.odoo.fields.pick('sale.order.line', 'product_uom_id', 'product_uom') ?? 'product_uom';
    const lineFields = [...SALE_LINE_FIELDS, 'price_unit', 'name', 'discount', taxField, uomField];
    let soLines = soIds.length ? await searchRead(ctx.odoo, 'sale.order.line', [['order_id', 'in', soIds]], lineFields) : [];
    // After an invoice of this batch bills lines, their invoiced quantity is read again.
    const refresh = async (soId: number): Promise<void> => {
      const fresh = await searchRead(ctx.odoo, 'sale.order.line', [['order_id', '=', soId]], lineFields);
      soLines = [...soLines.filter((l) => m2oId(l['order_id']) !== soId), ...fresh];
    };
    // The gateway's invoice of each accession as this batch leaves it.
    const current = new Map<string, OdooRecord>(existing);
    const otherClient = otherClientGuard(ctx);
    for (const e of events) {
      const d = e.event.data as InvoiceEligibleData;
      try {
        // An eligibility made by another LIS's result under the same number (two LIS links
        // numbering alike) never invoices this sale order's client.
        const ofAccession = orders.get(d.accession);
        const foreign = ofAccession && (await otherClient(e, d.accession, ofAccession, 'invoice'));
        if (foreign) throw foreign;
        // What is billable now, from everything stored (a cancellation after the eligibility too).
        const now = await billableNow(ctx, e, d);
        if (now.wholeOrderCancelled || (now.codes.size === 0 && d.tests.length > 0)) {
          const so = orders.get(d.accession);
          const ref = so ? [{ model: 'sale.order', id: so.id, name: String(so['name'] ?? '') }] : undefined;
          results.set(e.event.id, ok(ref, now.wholeOrderCancelled ? 'order cancelled, nothing to invoice' : 'tests cancelled since, nothing to invoice'));
          continue;
        }
        // A test an earlier eligibility of the order handed to billing is finance's from then on.
        const toBill = new Set([...now.codes].filter((c) => !now.billedEarlier.has(c)));
        if (now.codes.size > 0 && toBill.size === 0) {
          const so = orders.get(d.accession);
          results.set(e.event.id, ok(so ? [{ model: 'sale.order', id: so.id, name: String(so['name'] ?? '') }] : undefined, `${leftToFinance(now.codes)}; nothing else to invoice`));
          continue;
        }
        // The order's line changes stored before this one reach Odoo first (as if in one partition).
        await earlierOrderEventsDelivered(ctx, e);
        const so = orders.get(d.accession);
        // A cancelled sale order is never invoiced (cancelled in Odoo by hand, or by a whole-order
        // cancellation a later re-order has not undone yet: that re-order's own eligibility bills it).
        if (so && String(so['state']) === 'cancel') {
          results.set(e.event.id, ok([{ model: 'sale.order', id: so.id, name: String(so['name'] ?? '') }], 'order cancelled, nothing to invoice'));
          continue;
        }
        // The first eligibility of an accession owns `inv_<accession>`; a later one (tests added
        // after the order was billed) owns an external id of its own, for an invoice of its own
        // when the first one is posted already.
        const first = e.event.idempotencyKey === idempotencyKey('invoice-eligible', d.accession);
        const xid = first ? externalId('inv', d.accession) : externalId('inv', e.event.idempotencyKey);
        let move = first ? current.get(d.accession) : undefined;
        if (!first) {
          const own = await lookupExternalId(ctx.odoo, xid.module, xid.name);
          if (own !== undefined) move = (await read(ctx.odoo, 'account.move', [own], INVOICE_FIELDS))[0];
        }
        let note: string | undefined = move ? 'found in Odoo' : undefined;
        // The invoice carries this event's external id (found by it, or created with it).
        let owned = move !== undefined;
        // The gateway's draft invoice of the accession takes what the order has not billed yet.
        const draft = move ?? current.get(d.accession);
        // (An invoice finance reset to draft keeps its lines: the tests get an invoice of their own.)
        if (draft && openDraft(draft) && so) {
          // A product already on the invoice is not added again, linked or not (an invoice drafted
          // before its lines carried sale_line_ids leaves the order's invoiced quantity at 0).
          const onInvoice = new Set((await searchRead(ctx.odoo, 'account.move.line', [['move_id', '=', draft.id]], ['id', 'product_id', 'display_type'])).filter(isProductLine).map((l) => m2oId(l['product_id'])));
          const lines = (await invoiceLines(ctx, toBill, so, soLines, taxField, uomField)).filter((l) => !onInvoice.has(l[2].product_id));
          if (lines.length > 0) {
            // Finance may have posted it since it was read: retried, the next attempt bills the tests on an invoice of their own.
            await write(ctx.odoo, 'account.move', [draft.id], { invoice_line_ids: lines }).catch(async (err: unknown) => {
              throw await changedSinceRead(ctx.odoo, draft.id, err);
            });
            await refresh(so.id);
            note = `added ${lines.length} line(s) to the draft invoice`;
          }
          if (!move) {
            move = draft;
            owned = first;
          }
        }
        let id = move?.id;
        if (id === undefined) {
          if (!so) throw noSaleOrder(d.accession);
          const lines = await invoiceLines(ctx, toBill, so, soLines, taxField, uomField);
          if (lines.length === 0 && d.tests.length > 0) {
            results.set(e.event.id, ok([{ model: 'sale.order', id: so.id, name: String(so['name'] ?? '') }], 'nothing left to invoice on the sale order'));
            continue;
          }
          const partnerId = m2oId(so['partner_invoice_id']) ?? m2oId(so['partner_id']) ?? (d.orderingClientRef ? (await ctx.ref.partner(d.orderingClientRef)).id : undefined);
          const currencyId = m2oId(so['currency_id']);
          const fiscalPositionId = m2oId(so['fiscal_position_id']);
          [id] = await loadWithExternalIds(ctx.odoo, 'account.move', [
            {
              xmlid: xid.full,
              vals: {
                move_type: 'out_invoice',
                partner_id: partnerId,
                ref: invoiceRef(d.accession),
                invoice_origin: String(so['name'] ?? d.accession),
                ...(currencyId !== undefined ? { currency_id: currencyId } : {}),
                ...(fiscalPositionId !== undefined ? { fiscal_position_id: fiscalPositionId } : {}),
                invoice_line_ids: lines,
              },
            },
          ]);
          owned = true;
          move = { id: id!, state: 'draft', ref: invoiceRef(d.accession) };
          current.set(d.accession, move);
          await refresh(so.id);
        }
        // Only a draft never posted is the gateway's to post: one finance reset to draft to correct
        // it (posted_before) is finance's to post again. Before, found again (a restored backup
        // delivering the eligibility once more), it was posted half corrected
        // (test/integration/review-s22-billing-autopost-reset.test.ts).
        if (ctx.config.autoConfirm && move!['state'] === 'draft' && !openDraft(move)) note = [note, 'not posted: finance reset it to draft to correct it'].filter(Boolean).join('; ');
        if (ctx.config.autoConfirm && openDraft(move)) {
          // action_post returns false in 17/18, maybe a wizard dict in 19 (B.3): re-read state.
          await ctx.odoo.call('account.move', 'action_post', {}, { ids: [id!] });
          const [after] = await read(ctx.odoo, 'account.move', [id!], ['state']);
          if (after?.['state'] !== 'posted') throw odooError('transient', `invoice ${id!} is still ${String(after?.['state'])} after action_post`);
          move!['state'] = 'posted';
        }
        // Which tests of the order this eligibility left to finance, on the event for an operator.
        const leftOut = [...now.codes].filter((c) => !toBill.has(c));
        if (leftOut.length > 0) note = [note, leftToFinance(leftOut)].filter(Boolean).join('; ');
        results.set(e.event.id, ok([{ model: 'account.move', id: id!, ...(owned ? { externalId: xid.full } : {}) }], note));
      } catch (err) {
        results.set(e.event.id, fail(err));
      }
    }
    return results;
  },
};

/**
 * invoice.eligible has a partition of its own (`invoice:<accession>`), so that an invoice waiting
 * for its scheduled slot never holds back the order's near-real-time events. It bills the sale
 * order's lines as they are when it posts, so the order's line changes stored before it (the
 * order, a cancellation, a test ordered again) must be in Odoo first: while one is still queued the invoice
 * is retried without being charged an attempt; behind a dead letter it is retried as usual and
 * dead-lettered after relay.maxAttempts, with a reason saying which event to resolve first.
 * A dead letter at the head of the order's partition (a result, a milestone) holds those events
 * too, and counts the same way.
 * The uncharged wait says when the order's partition is next tried (`queuedDueAt`: its head's
 * dueAt; none while the head is due or being delivered), and the relay makes the invoice due no
 * earlier. Before, it came due after the store's shortest back-off every time: an order refused
 * for an hour had its invoice leased and released every 2 s for that hour
 * (test/integration/invoice-order-wait-pace-audit.test.ts).
 */
async function earlierOrderEventsDelivered(ctx: RuleContext, e: StoredEvent): Promise<void> {
  if (!ctx.events) return;
  const accession = e.event.correlationId;
  const orderPartition = partitionKeys.order(accession);
  const queued = (await ctx.events(accession)).filter((x) => x.event.partitionKey === orderPartition && x.state !== 'delivered' && x.state !== 'discarded').sort((a, b) => (a.event.id < b.event.id ? -1 : 1));
  const earlier = queued.filter((x) => x.event.id < e.event.id && (x.event.type === 'order.created' || x.event.type === 'order.cancelled'));
  if (earlier.length === 0) return;
  // The partition's events up to the last of them, in the order the store delivers them.
  const ahead = queued.filter((x) => x.event.id <= earlier[earlier.length - 1]!.event.id);
  const dead = earlier.find((x) => x.state === 'dead') ?? ahead.find((x) => x.state === 'dead');
  if (dead) {
    throw odooError('transient', `accession ${accession}: the order's ${dead.event.type} event ${dead.event.id} is a dead letter; replay or discard it before this invoice`);
  }
  // The partition is tried next when its head is due; a head being delivered now: soon.
  const head = ahead[0]!;
  const queuedDueAt = head.state === 'inflight' ? undefined : head.dueAt;
  throw odooError('transient', `accession ${accession}: ${earlier.length} earlier event(s) of the order not in Odoo yet (${earlier[0]!.event.type} first); the invoice follows them`, {
    waitsForQueued: true,
    ...(queuedDueAt !== undefined ? { queuedDueAt } : {}),
  });
}

/**
 * The event's tests that are still billable when it posts: those no `order.cancelled` stored after
 * the eligibility took away (a cancellation naming no test takes them all). The eligibility was
 * derived when every open test was validated; its invoice slot comes later (the default sync mode
 * is scheduled), and meanwhile the LIS may withdraw a test or the whole order. The cancellation
 * reaches Odoo at once, but a quotation cancelled as a whole keeps its lines at their quantity
 * (action_cancel), so billing "the order's lines as they are" billed the withdrawn tests. A test
 * cancelled and then ordered again is not billed here either: its new result derives an
 * eligibility of its own (events/invoice-eligibility.ts), which bills it. Only later cancellations
 * are read, so an accession whose older events retention pruned is billed as before.
 * A later cancellation timed before the order that last opened a test (billing's `leftOpen`: one
 * the LIS replayed or sent late after ordering the test again) does not take it away, as it does
 * not in billing nor on the sale order (order-cancelled.ts). Before, it did: the re-ordered test,
 * run, validated and left on the order, was left off this invoice, and billing, counting it
 * handed to billing by this eligibility, derived no other: never billed
 * (test/integration/billing-replayed-cancel-pending-invoice-audit.test.ts).
 */
async function billableNow(ctx: RuleContext, e: StoredEvent, d: InvoiceEligibleData): Promise<{ codes: Set<string>; wholeOrderCancelled: boolean; billedEarlier: Set<string> }> {
  const codes = new Set(d.tests.map((t) => t.code));
  if (!ctx.events) return { codes, wholeOrderCancelled: false, billedEarlier: new Set() };
  let wholeOrderCancelled = false;
  // With the events retention pruned, as billing remembers them (events/billing-memory.ts).
  const stored = await countedHistory(ctx, e.event.correlationId, BILLING_STATE_TYPES);
  for (const c of inStoredOrder(stored)) {
    if (c.event.type !== 'order.cancelled') continue;
    if (c.event.id < e.event.id || c.event.partitionKey !== partitionKeys.order(e.event.correlationId)) continue;
    // Tests an order placed strictly after this cancellation's time opened stay: not cancelled by
    // it (billing's leftOpen, the one definition order-cancelled.ts reads too).
    const leftOpen = leftOpenBy(stored, c.event.id);
    const tests = (c.event.data as OrderCancelledData).tests;
    if (tests.length === 0) {
      if (leftOpen.size === 0) wholeOrderCancelled = true;
      else for (const code of [...codes]) if (!leftOpen.has(code)) codes.delete(code);
    }
    for (const t of tests) if (!leftOpen.has(t.code)) codes.delete(t.code);
  }
  if (wholeOrderCancelled) codes.clear();
  return { codes, wholeOrderCancelled, billedEarlier: billedByEarlierEligibilities(e, stored) };
}

/**
 * The tests an earlier `invoice.eligible` of the accession already handed to billing and the LIS
 * has not cancelled since (billingState's `billed`, over the events stored before this one). A
 * later eligibility (an add-on test validated) bills only the tests it brings: the others are on
 * an invoice already, or finance took them off one, by a credit note, a cancelled or deleted draft,
 * a line removed by hand. Odoo counts those as "to invoice" again (a credit note lowers
 * `qty_invoiced`), and before, the add-on's invoice billed them a second time. A test the LIS
 * cancelled and ordered again is no longer in `billed`, so its new result bills it again.
 */
function billedByEarlierEligibilities(e: StoredEvent, stored: readonly StoredEvent[]): Set<string> {
  const earlier = inStoredOrder(stored.filter((s) => s.event.id < e.event.id)).map((s) => s.event);
  return billingState(earlier).billed;
}

/**
 * The outcome note for tests an earlier eligibility already handed to billing: invoiced then, or
 * taken off by finance since (credit note, draft cancelled or deleted, line removed), or, when that
 * eligibility was discarded or delivered with invoicing off, left for finance to bill from the
 * order. Either way not the gateway's to bill again; the note says which.
 */
function leftToFinance(codes: Iterable<string>): string {
  return `not billed again (handed to billing by an earlier eligibility: ${[...codes].sort().join(', ')})`;
}

/** Invoice line commands for the order's current lines of the billable tests, each linked to its order line. */
type LineCommand = [0, 0, Record<string, unknown> & { product_id: number }];

async function invoiceLines(ctx: RuleContext, codes: ReadonlySet<string>, so: OdooRecord, soLines: OdooRecord[], taxField: string, uomField: string): Promise<LineCommand[]> {
  const wanted = new Set<number>();
  for (const code of codes) wanted.add((await ctx.ref.product(code)).id);
  const out: LineCommand[] = [];
  for (const sol of soLines) {
    // A line of a cancelled order keeps its quantity in Odoo (action_cancel leaves it): never billed.
    if (m2oId(sol['order_id']) !== so.id || sol['display_type'] || sol['state'] === 'cancel') continue;
    const productId = m2oId(sol['product_id']);
    if (productId === undefined || !wanted.has(productId)) continue;
    const quantity = Number(sol['product_uom_qty'] ?? 0) - Number(sol['qty_invoiced'] ?? 0);
    if (!(quantity > 0)) continue;
    const taxes = Array.isArray(sol[taxField]) ? (sol[taxField] as unknown[]).filter((x): x is number => typeof x === 'number') : [];
    const uom = m2oId(sol[uomField]);
    out.push([
      0,
      0,
      {
        product_id: productId,
        ...(typeof sol['name'] === 'string' && sol['name'] ? { name: sol['name'] } : {}),
        quantity,
        price_unit: Number(sol['price_unit'] ?? 0),
        discount: Number(sol['discount'] ?? 0),
        tax_ids: [[6, 0, taxes]],
        ...(uom !== undefined ? { product_uom_id: uom } : {}),
        sale_line_ids: [[6, 0, [sol.id]]],
      },
    ]);
  }
  return out;
}
