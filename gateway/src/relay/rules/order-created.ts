import { describeError } from '../../errors.ts';
import { billingState, countedHistory } from '../../events/invoice-eligibility.ts';
import type { OrderCreatedData, OrderedTest } from '../../events/types.ts';
import type { OdooRef, StoredEvent } from '../../store/types.ts';
import { create, externalId, loadWithExternalIds, m2oId, read, searchRead, write, type OdooRecord } from '../odoo/odoo-calls.ts';
import { failureOf, mappingMissing, needsOperator, notSent, stopsTheLink } from '../odoo/odoo-error.ts';
import type { ProductRef } from '../reference-data.ts';
import { noteMilestonesLeftToTheOrder } from './milestone-notes.ts';
import { clientName, customerOf, isLockedOrder, isLockedOrderRefusal, lockedOrderChange, partnerOrNone, saleOrderOrigin, saleOrdersByAccession, SALE_LINE_FIELDS } from './sale-orders.ts';
import { fail, ok, type PostingRule, type RuleContext, type RuleResult } from './types.ts';

/**
 * order.created → a draft sale.order for the ordering client (partner by `ref`), one line per
 * billable test (product by `default_code`). Created with `load()` and the external id
 * `lab_gateway.so_<accession>` (record + xmlid in one transaction, odoo-api.md B.4), after a batch
 * look-up by `client_order_ref` that falls back to that external id for every miss (sales staff may
 * have typed their own "Customer Reference"; D: re-loading an existing xmlid duplicates its lines).
 *
 * A later order message for an accession whose sale order exists (an add-on test, a test ordered
 * again after a cancellation) adds lines only for the products the order does not have yet; a line
 * a cancellation set to quantity 0 on a confirmed order gets its quantity back. A plain resend
 * therefore changes nothing. All order messages of one accession in a batch are posted together.
 *
 * Results the LIS validated before their order reached Odoo (result.validated waits for its order,
 * see result-validated.ts) are marked delivered here, from the store's events before the order;
 * milestones that came before it (milestone-notes.ts) get their chatter note here.
 * Tests the LIS cancelled before the order message arrived stay off the sale order, and an order
 * message after the LIS's cancellations left nothing of the order open brings a cancelled
 * quotation back (orderPlan, completeOrder). Never confirmed unless relay.autoConfirm (DESIGN.md
 * §2: drafts only).
 */
export const orderCreatedRule: PostingRule = {
  name: 'order-created',
  types: ['order.created'],
  maxBatch: 100,
  crossPartition: true,
  async post(ctx, events) {
    const results = new Map<string, RuleResult>();
    const data = (e: StoredEvent): OrderCreatedData => e.event.data as OrderCreatedData;
    // The batch's order messages per accession, in partition order.
    const byAcc = new Map<string, StoredEvent[]>();
    for (const e of events) byAcc.set(data(e).accession, [...(byAcc.get(data(e).accession) ?? []), e]);
    const existing = await saleOrdersByAccession(ctx.odoo, [...byAcc.keys()]);
    const existingIds = [...existing.values()].map((so) => so.id);
    const existingLines = existingIds.length ? await searchRead(ctx.odoo, 'sale.order.line', [['order_id', 'in', existingIds]], SALE_LINE_FIELDS) : [];
    const toCreate: Array<{ accession: string; xmlid: string; vals: Record<string, unknown> }> = [];
    const uomField = ctx.odoo.fields.pick('sale.order.line', 'product_uom_id', 'product_uom') ?? 'product_uom';
    const lineVals = (product: ProductRef): Record<string, unknown> => ({ product_id: product.id, product_uom_qty: 1, ...(product.uomId ? { [uomField]: product.uomId } : {}) });
    // Accession → its sale order, once it is known to be in Odoo with every ordered test.
    const done = new Map<string, { ref: OdooRef; note?: string }>();
    // Accessions whose order messages leave nothing open (every test cancelled before they came).
    const closing = new Set<string>();
    const leftOutNotes = new Map<string, string>();
    // Accession → its tests validated before the batch's order messages (orderPlan).
    const validatedBefore = new Map<string, string[]>();
    const settle = (accession: string, outcome: RuleResult): void => {
      for (const e of byAcc.get(accession) ?? []) results.set(e.event.id, outcome);
    };

    // The link failed on one accession's calls (unreachable, 429, credentials refused): the
    // accessions after it are not tried (the next round, after the back-off, takes them). Before,
    // each was tried in turn, a call or more each, after a 429 "Retry-After" too.
    let linkFailure: { error: unknown } | undefined;
    for (const [accession, all] of byAcc) {
      if (linkFailure) break;
      try {
        // Another ordering client's order under the same number is never merged into it.
        const refused = await otherClientsOrders(ctx, accession, all, existing.get(accession));
        for (const [id, err] of refused) results.set(id, fail(err));
        const evs = all.filter((e) => !refused.has(e.event.id));
        if (evs.length === 0) {
          byAcc.delete(accession);
          continue;
        }
        byAcc.set(accession, evs);
        const tests = new Map<string, OrderedTest>();
        for (const e of evs) for (const t of data(e).tests) if (!tests.has(t.code)) tests.set(t.code, t);
        // Tests the LIS cancelled before these messages arrived stay off the order (orderPlan).
        const plan = await orderPlan(ctx, evs);
        validatedBefore.set(accession, plan.validated);
        const products: ProductRef[] = [];
        const closedProducts: ProductRef[] = [];
        for (const t of tests.values()) {
          const product = await ctx.ref.product(t.code);
          const into = plan.leftOut.has(t.code) ? closedProducts : products;
          if (!into.some((p) => p.id === product.id)) into.push(product);
        }
        if (plan.closed) closing.add(accession);
        const so = existing.get(accession);
        if (so) {
          const outcome = await completeOrder(ctx, so, accession, products, existingLines, lineVals, plan.reorder);
          done.set(accession, leftOutNote(plan) ? { ...outcome, note: [outcome.note, leftOutNote(plan)].filter(Boolean).join('; ') } : outcome);
          continue;
        }
        const d = data(evs[0]!);
        const partner = await ctx.ref.partner(d.orderingClientRef, 'ordering client', `order ${accession} names no ordering client (ORC-21, ORC-17 and OBR-16 are empty)`);
        const xmlid = externalId('so', accession).full;
        // An order every test of which was cancelled before it came is still put in Odoo, with its
        // lines, and cancelled below: as if the cancellation had come after it.
        const lines = plan.closed ? closedProducts : products;
        toCreate.push({ accession, xmlid, vals: { partner_id: partner.id, client_order_ref: accession, origin: saleOrderOrigin(accession), order_line: lines.map((p) => [0, 0, lineVals(p)]) } });
        if (leftOutNote(plan)) leftOutNotes.set(accession, leftOutNote(plan));
      } catch (err) {
        settle(accession, fail(err));
        if (stopsTheLink(err)) linkFailure = { error: err };
      }
    }
    if (linkFailure) {
      // Nothing more of this batch goes to Odoo: what was already done (an add-on line) is found
      // again by the next attempt's look-up; the rest was never sent.
      for (const [accession, evs] of byAcc) if (!results.has(evs[0]!.event.id)) settle(accession, fail(notSent(linkFailure.error)));
      return results;
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
        const note = leftOutNotes.get(rec.accession);
        if (typeof id === 'number') done.set(rec.accession, { ref: soRef(id, undefined, rec.accession, rec.xmlid), ...(note ? { note } : {}) });
        else settle(rec.accession, fail(id));
      });
    }

    // Orders the LIS cancelled before they arrived: the quotation is cancelled now.
    await cancelClosedOrders(ctx, closing, done, settle);

    // Results validated before the order: their lines are delivered now (absolute writes).
    try {
      await markValidatedDelivered(ctx, validatedBefore, done);
    } catch (err) {
      for (const accession of done.keys()) settle(accession, fail(err));
      done.clear();
    }
    // Milestones that came before the order: their notes go on its chatter now.
    // The sale order as the guard against another LIS's milestones reads it (a new one: its customer).
    const soOf = (accession: string): OdooRecord => {
      const ref = done.get(accession)!.ref;
      const created = toCreate.find((c) => c.accession === accession);
      return existing.get(accession) ?? { id: ref.id, name: ref.name ?? accession, partner_id: created?.vals['partner_id'] ?? false };
    };
    await postEarlierMilestones(ctx, byAcc, done, settle, soOf);
    for (const [accession, { ref, note }] of done) settle(accession, ok([ref], note));

    if (ctx.config.autoConfirm && done.size > 0) await confirmOrders(ctx, done, settle);
    return results;
  },
};

/**
 * The order messages of `evs` (one accession) that belong to another ordering client than the
 * accession's sale order (`so`), or, with no sale order yet, than the batch's first order naming a
 * client: each refused with a dead letter naming the accession and both clients, for an operator.
 * Two LIS links numbering their accessions alike (no `hl7[].accessionPrefix`) sent two patients'
 * orders as "12345": before, the second one's tests were added to the first one's sale order and
 * billed to the first clinic. An order naming no client, or a client with no Odoo partner, is
 * not compared (as before: the sale order's lines are completed, or the creation reports the
 * missing partner). When the store's earlier orders of the accession all name this order's
 * client, the gateway made the sale order for that client and a user changed its customer in
 * Odoo: not a collision, the order is completed as before.
 */
async function otherClientsOrders(ctx: RuleContext, accession: string, evs: StoredEvent[], so: OdooRecord | undefined): Promise<Map<string, Error>> {
  const refused = new Map<string, Error>();
  const refOf = (e: StoredEvent): string => (e.event.data as OrderCreatedData).orderingClientRef ?? '';
  const refs = [...new Set(evs.map(refOf).filter(Boolean))];
  if (refs.length === 0 || (so === undefined && refs.length === 1)) return refused;
  const partners = new Map<string, Awaited<ReturnType<typeof partnerOrNone>>>();
  for (const ref of refs) partners.set(ref, await partnerOrNone(ctx, ref));
  let owner: { id: number; name: string; what: string } | undefined;
  if (so) owner = { id: m2oId(so['partner_id']) ?? -1, name: customerOf(so), what: `sale order ${String(so['name'] ?? so.id)}` };
  else {
    const first = evs.find((e) => partners.get(refOf(e)) !== undefined);
    const p = first && partners.get(refOf(first));
    if (!first || !p) return refused;
    owner = { id: p.id, name: clientName(p, refOf(first)), what: `the order from ${first.event.source.endpoint} in the same batch` };
  }
  // The store's earlier orders are read only when an order's client differs from the owner's.
  let earlier: StoredEvent[] | undefined;
  for (const e of evs) {
    const ref = refOf(e);
    const partner = partners.get(ref);
    if (!partner || partner.id === owner.id) continue;
    earlier ??= so && ctx.events ? (await ctx.events(accession, ['order.created'])).filter((o) => o.event.type === 'order.created') : [];
    const before = earlier.filter((o) => o.event.id < e.event.id);
    if (before.length > 0 && before.every((o) => refOf(o) === ref)) continue;
    refused.set(
      e.event.id,
      needsOperator(
        `order ${accession} from ${e.event.source.endpoint} for ${clientName(partner, ref)} not added: ${owner.what} of accession ${accession} belongs to ${owner.name} — another client's order under the same number (two LIS links numbering their accessions alike?). Nothing was changed in Odoo. Give one LIS link hl7[].accessionPrefix (README.md "Two LIS systems"), enter this order by hand and discard this event`,
        { accession, endpoint: e.event.source.endpoint, partnerRef: ref },
      ),
    );
  }
  return refused;
}

/**
 * relay.autoConfirm (opt-in, DESIGN.md §2): confirm the batch's orders now in Odoo (`done`) that
 * are still quotations; action_confirm on a confirmed order raises (D), so the state is read first.
 * One call for all; when Odoo refuses it on its merits (the call is one transaction: nothing was
 * confirmed), each order is confirmed on its own, so the order Odoo refuses gets its own outcome —
 * a dead letter with Odoo's reason (the order stays a quotation in Odoo; a replay finds it and
 * confirms it) — and the others are delivered. Before, one refused order dead-lettered every order
 * of the batch, the ones just created included. A failure of the link or an ambiguous one applies
 * to every order of the call: the retry reads the states again. An order found confirmed after a
 * refusal (a user confirmed it meanwhile) is delivered (settleRefused).
 */
async function confirmOrders(ctx: RuleContext, done: Map<string, { ref: OdooRef }>, settle: (accession: string, outcome: RuleResult) => void): Promise<void> {
  const orders: Array<{ accession: string; id: number; name: string }> = [];
  try {
    const rows = await read(ctx.odoo, 'sale.order', [...new Set([...done.values()].map((d) => d.ref.id))], ['id', 'name', 'state']);
    for (const [accession, { ref }] of done) {
      const row = rows.find((r) => r.id === ref.id);
      if (row && (row['state'] === 'draft' || row['state'] === 'sent')) orders.push({ accession, id: ref.id, name: String(row['name'] ?? '') });
    }
  } catch (err) {
    for (const accession of done.keys()) settle(accession, fail(err));
    return;
  }
  if (orders.length === 0) return;
  const confirm = (ids: number[]): Promise<unknown> => ctx.odoo.call('sale.order', 'action_confirm', {}, { ids: [...new Set(ids)] });
  try {
    await confirm(orders.map((o) => o.id));
    return;
  } catch (err) {
    if (orders.length === 1 || failureOf(err) !== 'permanent') {
      await settleRefused(ctx, orders, err, settle);
      return;
    }
  }
  await Promise.all(
    orders.map(async (o) => {
      try {
        await confirm([o.id]);
      } catch (err) {
        await settleRefused(ctx, [o], err, settle);
      }
    }),
  );
}

/**
 * A refused action_confirm: an order a user confirmed in Odoo between the state read and the call
 * ("not in a state requiring confirmation") is what autoConfirm wanted, so it is delivered; the
 * states are read again after a permanent refusal, and only orders still quotations fail with it.
 * A failure of the link (or a read that fails) fails them all, as before: the retry reads again.
 */
async function settleRefused(ctx: RuleContext, orders: Array<{ accession: string; id: number; name: string }>, err: unknown, settle: (accession: string, outcome: RuleResult) => void): Promise<void> {
  let confirmed = new Set<number>();
  if (failureOf(err) === 'permanent') {
    try {
      const rows = await read(ctx.odoo, 'sale.order', orders.map((o) => o.id), ['id', 'state']);
      confirmed = new Set(rows.filter((r) => r['state'] === 'sale' || r['state'] === 'done').map((r) => r.id));
    } catch {
      /* the refusal stands for every order */
    }
  }
  for (const o of orders) if (!confirmed.has(o.id)) settle(o.accession, fail(refusedConfirm(o, err)));
}

/** A permanent refusal of action_confirm, worded for the dead-letter list; other failures as they are. */
function refusedConfirm(order: { accession: string; name: string }, err: unknown): unknown {
  if (failureOf(err) !== 'permanent') return err;
  const odoo = err instanceof Error ? err.message : String(err);
  return needsOperator(
    `sale order ${order.name || '?'} (accession ${order.accession}) is in Odoo as a quotation, but Odoo refused to confirm it (relay.autoConfirm): ${odoo}. Confirm it in Odoo, or fix the cause and replay this event`,
    { accession: order.accession, model: 'sale.order', method: 'action_confirm' },
  );
}

/**
 * The first order message after the LIS's cancellations left the order with nothing open (a
 * cancellation of the whole order, or of its last open test): the LIS ordered it again. Its
 * billing opens again (events/invoice-eligibility.ts), so the sale order the cancellation
 * cancelled must come back too. `withdrawn`: the codes the LIS ordered before that point, whose
 * lines a quotation brought back must not keep unless ordered again. Only the first such message
 * reopens, so a retry does the same and a later add-on leaves the order's lines alone.
 */
interface Reorder {
  withdrawn: Set<string>;
  /** Tests ordered again whose result counts for this order (billingState `validated`): their line keeps its delivered quantity. */
  counted: Set<string>;
}

/** What the batch's order messages of one accession put on its sale order (orderPlan). */
interface OrderPlan {
  /**
   * Codes of the batch's tests that stay closed: the LIS cancelled them (or the whole order)
   * before these messages arrived, which are the order that cancellation cancelled.
   */
  leftOut: Set<string>;
  /** Of `leftOut`, those the batch's messages resent after the gateway saw them cancelled (billingState `resends`), with that cancellation's time (epoch ms). */
  resent: Map<string, number>;
  /** Tests were left out and nothing of the accession is open: the quotation is cancelled. */
  closed: boolean;
  reorder: Reorder | undefined;
  /** Open tests whose result was validated (and not cancelled) before these messages: markValidatedDelivered. */
  validated: string[];
  /**
   * Tests these messages ordered again whose result, validated while they were cancelled, is not
   * counted for them (billingState `validatedWhileClosed`): they wait for a result of their own.
   */
  uncounted: string[];
}

/**
 * The accession's billing events walked as billing walks them (billingState, over the stored
 * `order.created` / `order.cancelled` / `result.validated` up to the batch's last order message,
 * read once per accession and batch): which of the batch's tests a cancellation that came before
 * them keeps closed, whether they order again after the LIS cancelled everything, and which open
 * tests were validated before them. Before, a cancellation that came before its order (a LIS
 * replaying its queue out of order, two interfaces racing) was retried until dead-lettered, and
 * the order that followed put the cancelled test on the sale order, where it was billed.
 */
async function orderPlan(ctx: RuleContext, evs: StoredEvent[]): Promise<OrderPlan> {
  if (!ctx.events) return { leftOut: new Set(), resent: new Map(), closed: false, reorder: undefined, validated: [], uncounted: [] };
  const accession = evs[0]!.event.correlationId;
  const ids = new Set(evs.map((e) => e.event.id));
  // With the events retention pruned, as billing remembers them (events/billing-memory.ts): a
  // resend of an order cancelled before the pruning stays a resend.
  const stored = (await countedHistory(ctx, accession, ['order.created', 'order.cancelled', 'result.validated'])).filter((s) => s.event.id <= evs.at(-1)!.event.id);
  const state = billingState(stored.map((s) => s.event));
  const leftOut = new Set<string>();
  const resent = new Map<string, number>();
  for (const e of evs) {
    for (const t of (e.event.data as OrderCreatedData).tests) {
      if (state.open.has(t.code)) continue;
      leftOut.add(t.code);
      const cancel = state.resends.get(t.code);
      if (cancel) resent.set(t.code, cancel.at);
    }
  }
  let reorder: Reorder | undefined;
  if (state.closedAt >= 0) {
    const firstAfter = stored.slice(state.closedAt + 1).find((s) => s.event.type === 'order.created');
    if (firstAfter && ids.has(firstAfter.event.id)) {
      const withdrawn = new Set<string>();
      for (const s of stored.slice(0, state.closedAt + 1)) if (s.event.type === 'order.created') for (const t of (s.event.data as OrderCreatedData).tests) withdrawn.add(t.code);
      reorder = { withdrawn, counted: new Set([...state.validated].filter((c) => state.open.has(c))) };
    }
  }
  // A result validated while a test was cancelled, not counted for the order that opens it again.
  const waiting = billingState(stored.filter((s) => s.event.id < evs[0]!.event.id).map((s) => s.event)).validatedWhileClosed;
  const uncounted = [...waiting.keys()].filter((c) => state.open.has(c) && !state.validated.has(c));
  return { leftOut, resent, closed: leftOut.size > 0 && state.open.size === 0, reorder, validated: [...state.validated].filter((c) => state.open.has(c)), uncounted };
}

/**
 * The order event's note on the tests it left off: cancelled before the order message arrived, or
 * (`resent`) a resend of the order a cancellation the gateway had already seen cancelled (its
 * ORC-9 before the cancellation's time): "TSH left off the order (a resend of the order the LIS
 * cancelled at 2026-03-01T10:00:00.000Z: ORC-9 before the cancellation)". And (`uncounted`) the
 * tests it orders again whose result, validated while they were cancelled, is not counted for
 * them: before, nothing told finance why such a re-order was never billed when the LIS sent no
 * new result (the result's own event said "nothing to deliver", the re-order "added TSH").
 */
function leftOutNote(plan: Pick<OrderPlan, 'leftOut' | 'resent' | 'uncounted'>): string {
  const notes: string[] = [];
  if (plan.uncounted.length === 1) notes.push(`${plan.uncounted[0]} ordered again: its result validated while it was cancelled is not counted; it waits for a result of its own`);
  else if (plan.uncounted.length > 1) notes.push(`${plan.uncounted.join(', ')} ordered again: their results validated while they were cancelled are not counted; they wait for results of their own`);
  const before = [...plan.leftOut].filter((c) => !plan.resent.has(c));
  if (before.length > 0) notes.push(`${before.join(', ')} left off the order (cancelled by the LIS before this order message arrived)`);
  const byTime = new Map<number, string[]>();
  for (const [code, at] of plan.resent) byTime.set(at, [...(byTime.get(at) ?? []), code]);
  for (const [at, codes] of byTime) {
    const when = Number.isNaN(at) ? '' : ` at ${new Date(at).toISOString()}`;
    notes.push(`${codes.join(', ')} left off the order (a resend of the order the LIS cancelled${when}: ORC-9 before the cancellation)`);
  }
  return notes.join('; ');
}

/**
 * The quotations of `closing` (orders every test of which the LIS cancelled before the order
 * came) are cancelled, as the cancellation would have done had it come after its order; a
 * confirmed order keeps its state (its lines for those tests were never added). A failure fails
 * that accession's events: the retry finds the order and cancels it.
 */
async function cancelClosedOrders(ctx: RuleContext, closing: Set<string>, done: Map<string, { ref: OdooRef; note?: string }>, settle: (accession: string, outcome: RuleResult) => void): Promise<void> {
  const accessions = [...closing].filter((a) => done.has(a));
  if (accessions.length === 0) return;
  try {
    const rows = await read(ctx.odoo, 'sale.order', accessions.map((a) => done.get(a)!.ref.id), ['id', 'state']);
    const open = rows.filter((r) => r['state'] === 'draft' || r['state'] === 'sent').map((r) => r.id);
    if (open.length > 0) await ctx.odoo.call('sale.order', 'action_cancel', {}, { ids: open, context: { disable_cancel_warning: true } });
    for (const a of accessions) {
      const entry = done.get(a)!;
      if (open.includes(entry.ref.id)) entry.note = [entry.note, 'quotation cancelled (the LIS cancelled the order before it arrived)'].filter(Boolean).join('; ');
    }
  } catch (err) {
    for (const a of accessions) {
      settle(a, fail(err));
      done.delete(a);
    }
  }
}

/**
 * The sale order exists: add the ordered products it has no line for, give a line a cancellation
 * set to 0 its quantity back.
 *
 * A cancelled sale order is brought back only when the LIS cancelled the whole order (or every
 * open test of it) and then ordered it again (`reorder`): `action_draft` makes the cancelled quotation a quotation again
 * with its lines (sale_order.py, 16–19: cancel/sent → draft), the lines of withdrawn tests not
 * ordered again are unlinked, and what the new order lacks is added; the tests are then billed
 * once when validated. Before, the order was "already in Odoo" on the cancelled quotation and its
 * tests were never billed, while the store counted them cancelled for good. A sale order cancelled
 * in Odoo otherwise (by a user) is not reopened: a test ordered for it is a dead letter for an
 * operator, a resend changes nothing, and it is never invoiced.
 */
async function completeOrder(
  ctx: RuleContext,
  so: OdooRecord,
  accession: string,
  products: ProductRef[],
  allLines: OdooRecord[],
  lineVals: (p: ProductRef) => Record<string, unknown>,
  reorder: Reorder | undefined,
): Promise<{ ref: OdooRef; note?: string }> {
  const name = String(so['name'] ?? '');
  const ref = soRef(so.id, name, accession);
  let lines = allLines.filter((l) => m2oId(l['order_id']) === so.id && !l['display_type']);
  const notes: string[] = [];
  if (reorder && String(so['state']) === 'cancel') {
    // Odoo refusing it on its merits (a customisation), or leaving the order cancelled, is for an
    // operator: nothing else was written, and a replay after the fix reopens it.
    const refused = (why: string): Error =>
      needsOperator(
        `sale order ${name || so.id} (accession ${accession}) was cancelled by the LIS and ordered again, but Odoo did not set it back to quotation (${why}): set it back to quotation in Odoo and replay this event`,
        { accession, model: 'sale.order', method: 'action_draft' },
      );
    try {
      await ctx.odoo.call('sale.order', 'action_draft', {}, { ids: [so.id] });
    } catch (err) {
      throw failureOf(err) === 'permanent' ? refused(describeError(err)) : err;
    }
    const [after] = await read(ctx.odoo, 'sale.order', [so.id], ['state']);
    if (after?.['state'] !== 'draft') throw refused(`still ${String(after?.['state'])} after action_draft`);
    so['state'] = 'draft';
    notes.push('cancelled quotation set back to quotation (the LIS ordered it again)');
  }
  if (reorder && (so['state'] === 'draft' || so['state'] === 'sent')) {
    const keep = new Set(products.map((p) => p.id));
    const withdrawn = new Set<number>();
    for (const code of reorder.withdrawn) {
      // A withdrawn test whose product is no longer mapped has no line to find: skip it.
      const product = await ctx.ref.product(code).catch((err: unknown) => {
        if (failureOf(err) === 'permanent') return undefined;
        throw err;
      });
      if (product) withdrawn.add(product.id);
    }
    const stale = lines.filter((l) => withdrawn.has(m2oId(l['product_id']) ?? -1) && !keep.has(m2oId(l['product_id']) ?? -1));
    if (stale.length > 0) {
      await ctx.odoo.call('sale.order.line', 'unlink', {}, { ids: stale.map((l) => l.id) });
      lines = lines.filter((l) => !stale.includes(l));
      notes.push(`removed withdrawn test line(s) not ordered again`);
    }
    // A cancelled quotation kept its lines delivered (action_cancel): a test ordered again needs a
    // result of its own, unless one counts for it (reorder.counted). Before, the line came back
    // delivered, "to invoice" in Odoo before the re-ordered test was run
    // (test/integration/billing-result-while-cancelled-audit.test.ts).
    const counted = new Set<number>();
    for (const code of reorder.counted) counted.add((await ctx.ref.product(code)).id);
    const undelivered = lines.filter((l) => keep.has(m2oId(l['product_id']) ?? -1) && !counted.has(m2oId(l['product_id']) ?? -1) && Number(l['qty_delivered'] ?? 0) !== 0);
    if (undelivered.length > 0) {
      await write(ctx.odoo, 'sale.order.line', undelivered.map((l) => l.id), { qty_delivered: 0 });
      notes.push(`delivered quantity of ${undelivered.length} re-ordered test line(s) set back to 0 (the re-order needs a result of its own)`);
    }
  }
  const open = new Set(lines.filter((l) => Number(l['product_uom_qty'] ?? 0) > 0).map((l) => m2oId(l['product_id'])));
  const missing = products.filter((p) => !open.has(p.id));
  if (missing.length === 0) return { ref, note: notes.length > 0 ? notes.join('; ') : String(so['state']) === 'cancel' ? 'already in Odoo (the sale order is cancelled there)' : 'already in Odoo' };
  if (String(so['state']) === 'cancel') {
    throw mappingMissing(
      `sale order ${name} (accession ${accession}) is cancelled in Odoo; tests ${missing.map((p) => p.code).join(', ')} ordered again are not on it: set it back to quotation in Odoo and replay this event`,
      { accession },
    );
  }
  const restore: number[] = [];
  const add: ProductRef[] = [];
  for (const p of missing) {
    const zero = lines.find((l) => m2oId(l['product_id']) === p.id);
    if (zero) restore.push(zero.id);
    else add.push(p);
  }
  // "Lock Confirmed Sales": Odoo adds lines to a locked order but refuses to give a line its
  // quantity back (sale_order_line.py `write`); nothing is written then, and the event says why.
  const restoredCodes = (): string => `tests ${missing.filter((p) => !add.includes(p)).map((p) => p.code).join(', ')} ordered again (their lines are at quantity 0)`;
  if (restore.length > 0 && isLockedOrder(so)) throw lockedOrderChange(so, accession, restoredCodes());
  if (add.length > 0) await create(ctx.odoo, 'sale.order.line', add.map((p) => ({ order_id: so.id, ...lineVals(p) })));
  if (restore.length > 0) {
    try {
      await write(ctx.odoo, 'sale.order.line', restore, { product_uom_qty: 1 });
    } catch (err) {
      throw isLockedOrderRefusal(err) ? lockedOrderChange(so, accession, restoredCodes()) : err;
    }
  }
  return { ref, note: [...notes, `added ${missing.map((p) => p.code).join(', ')} to the order in Odoo`].join('; ') };
}

/**
 * Notes of the milestones stored before the order in its partition that the milestone rule
 * resolved without a write because the sale order did not exist yet (milestone-notes.ts): no
 * sale order among their Odoo references. One note per order, lines already in its chatter (their
 * `[lgw:<hash>]` markers, read first) left out, so a retry posts nothing twice. A failure of the
 * link or an ambiguous one fails the order's events (the retry finds the order and the notes
 * posted); a refusal on the merits (the bot may not post in the chatter) does not keep the order
 * out of billing: it is delivered, and the note says which notes are missing.
 */
async function postEarlierMilestones(
  ctx: RuleContext,
  byAcc: Map<string, StoredEvent[]>,
  done: Map<string, { ref: OdooRef; note?: string }>,
  settle: (accession: string, outcome: RuleResult) => void,
  soOf: (accession: string) => OdooRecord,
): Promise<void> {
  if (done.size === 0) return;
  const targets = new Map([...done.keys()].map((accession) => [accession, { so: soOf(accession), before: byAcc.get(accession)!.at(-1)!.event }] as const));
  for (const [accession, r] of await noteMilestonesLeftToTheOrder(ctx, targets)) {
    if ('error' in r) {
      settle(accession, fail(r.error));
      done.delete(accession);
    } else {
      const entry = done.get(accession)!;
      entry.note = [entry.note, r.note].filter(Boolean).join('; ');
    }
  }
}

/**
 * Mark delivered the lines of tests whose result was validated (and not cancelled) before the
 * order (`validatedBefore`, from orderPlan's walk of the store).
 */
async function markValidatedDelivered(ctx: RuleContext, validatedBefore: Map<string, string[]>, done: Map<string, { ref: OdooRef }>): Promise<void> {
  if (done.size === 0) return;
  const wanted = new Map<number, Set<string>>(); // sale order id → validated test codes
  for (const [accession, { ref }] of done) {
    const codes = validatedBefore.get(accession) ?? [];
    if (codes.length > 0) wanted.set(ref.id, new Set(codes));
  }
  if (wanted.size === 0) return;
  const lines = await searchRead(ctx.odoo, 'sale.order.line', [['order_id', 'in', [...wanted.keys()]]], SALE_LINE_FIELDS);
  const writes = new Map<number, number[]>(); // quantity → line ids
  for (const [soId, codes] of wanted) {
    const productIds = new Set<number>();
    for (const code of codes) productIds.add((await ctx.ref.product(code)).id);
    for (const l of lines) {
      if (m2oId(l['order_id']) !== soId || !productIds.has(m2oId(l['product_id']) ?? -1)) continue;
      const qty = Number(l['product_uom_qty'] ?? 0);
      if (qty <= 0 || Number(l['qty_delivered'] ?? 0) === qty) continue;
      writes.set(qty, [...(writes.get(qty) ?? []), l.id]);
    }
  }
  for (const [qty, ids] of writes) await write(ctx.odoo, 'sale.order.line', ids, { qty_delivered: qty });
}

function soRef(id: number, name: string | undefined, accession: string, xmlid?: string): OdooRef {
  return { model: 'sale.order', id, externalId: xmlid ?? externalId('so', accession).full, ...(name ? { name } : {}) };
}
