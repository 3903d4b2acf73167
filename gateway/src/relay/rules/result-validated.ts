import type { OrderCreatedData, ResultValidatedData } from '../../events/types.ts';
import { readMemory, remembersPruned, withMemory } from '../../events/billing-memory.ts';
import { BILLING_STATE_TYPES, billingState, copiedTo, countedHere, countedHistory, inStoredOrder, resultNotCountedBy, testCancelled, type ResultNotCounted } from '../../events/invoice-eligibility.ts';
import type { StoredEvent } from '../../store/types.ts';
import { m2oId, searchRead, write, type OdooRecord } from '../odoo/odoo-calls.ts';
import { mappingMissing } from '../odoo/odoo-error.ts';
import { noteMilestonesLeftToTheOrder } from './milestone-notes.ts';
import { noSaleOrder, orderFollows, otherClientGuard, saleOrdersByAccession, SALE_LINE_FIELDS } from './sale-orders.ts';
import { fail, ok, type PostingRule, type RuleContext, type RuleResult } from './types.ts';
import { noStoredOrderNames, waitingForItsOrder } from './waiting-for-order.ts';

/**
 * result.validated → billing readiness: the test's order line gets `qty_delivered` =
 * `product_uom_qty` (lab tests are service products whose delivered quantity is set manually).
 * An absolute write: running it twice changes nothing. All lines of the batch are read in one
 * call and written grouped by quantity.
 *
 * A result can reach the gateway before the order that asks for the test (the LIS sends the ORU
 * first, or the test is an add-on ordered in a later message). Its order events share the
 * result's partition and come after it, so failing would hold them back. When the store holds a
 * later, not yet delivered `order.created` naming the test, the result is resolved without a
 * write: that order's rule marks the line delivered when it posts it (order-created.ts). When no
 * order message in the store names the test at all, the result keeps waiting for it, not
 * dead-lettered after relay.maxAttempts; after a day without it, it is dead-lettered saying so
 * (waiting-for-order.ts `waitingForItsOrder`). Otherwise (its order was stored but never reached
 * Odoo) a missing order or line is retried with the store's back-off and dead-lettered after
 * relay.maxAttempts. A result of a test the LIS cancelled (the store's order messages say so)
 * whose line is gone is delivered without a write: nothing to deliver.
 *
 * A result from a LIS link whose order of that accession is another client's than the sale
 * order's (two LIS links numbering alike, sale-orders.ts `otherClientGuard`) is a dead letter:
 * it never marks the other patient's test delivered.
 *
 * Milestones and results that came before an order message that never posted (an operator
 * discarded its dead letter and entered the sale order by hand) are noted, and their lines marked
 * delivered, on the sale order a result reaches (milestone-notes.ts `milestonesLeftToTheOrder`,
 * `resultsLeftToTheOrder` below).
 *
 * A LIS result that came before its order under the order's other number (its filler number
 * LF-9301; the order 70301 carrying LF-9301 came later) gets a copy on that order when the order
 * comes (hl7/order-numbers.ts, README "A result that came before its order"); the stored result
 * is then delivered without a write, its note naming the order, whether or not a sale order
 * LF-9301 exists (entered by hand while it waited: before, that one's line was marked delivered
 * too, and the test was ready to invoice twice). Before 4a13a8d, it waited for an order LF-9301
 * and was dead-lettered after a day.
 */
export const resultValidatedRule: PostingRule = {
  name: 'result-validated',
  types: ['result.validated'],
  maxBatch: 200,
  crossPartition: true,
  async post(ctx, events) {
    const results = new Map<string, RuleResult>();
    const orders = await saleOrdersByAccession(ctx.odoo, events.map((e) => (e.event.data as ResultValidatedData).accession));
    const soIds = [...orders.values()].map((o) => o.id);
    const lines = soIds.length ? await searchRead(ctx.odoo, 'sale.order.line', [['order_id', 'in', soIds], ['display_type', '=', false]], SALE_LINE_FIELDS) : [];
    const writes = new Map<number, { qty: number; lineIds: Set<number>; eventIds: string[] }>();
    const refs = new Map<string, { so: number; name: string; line: number }>();
    const otherClient = otherClientGuard(ctx);
    // The accession's billing events, read once per batch (a result's own walk ends at it). Every
    // way a result counts for nothing starts at a cancellation: an accession the LIS never
    // cancelled anything of (nearly all) costs one look at its correlation index for the type,
    // no event bodies (eventsByCorrelation filters by the index's type before reading them), and
    // one read of billing's memory after it (a cancellation retention pruned: events/billing-memory.ts;
    // read again after the whole history when there is one).
    const billingEvents = new Map<string, Promise<StoredEvent[] | undefined>>();
    const read = async (events: NonNullable<RuleContext['events']>, accession: string): Promise<StoredEvent[] | undefined> => {
      // The events first, the memory after them: a pruning between the two reads is in the memory.
      const cancels = await events(accession, ['order.cancelled']);
      if (cancels.length === 0 && !remembersPruned(cancels, await readMemory(ctx.doc?.bind(ctx), accession), 'order.cancelled')) return undefined;
      const stored = await events(accession, [...BILLING_STATE_TYPES]);
      return countedHere(withMemory(stored, await readMemory(ctx.doc?.bind(ctx), accession), accession), accession, ctx);
    };
    const uncounted = async (e: StoredEvent, d: ResultValidatedData): Promise<ResultNotCounted | undefined> => {
      if (!ctx.events) return undefined;
      if (!billingEvents.has(d.accession)) billingEvents.set(d.accession, read(ctx.events, d.accession));
      const stored = await billingEvents.get(d.accession)!;
      return stored ? resultNotCountedBy(stored, e.event.id) : undefined;
    };
    for (const e of events) {
      const d = e.event.data as ResultValidatedData;
      try {
        // A result that came before its order, the order naming it by its other number: its copy
        // on that order (hl7/order-numbers.ts attachWaiting) is delivered there. Looked at before
        // any sale order of its own number: one entered by hand under LF-9301 while the result
        // waited (or another LIS's order of that number) had its line marked delivered beside the
        // copy's, the one test ready to invoice twice
        // (test/integration/review-s23b-attached-original.test.ts). One document read per result;
        // a copy retention pruned counts as stored (billing remembers it: copiedTo).
        const attached = await copiedTo(ctx, e);
        if (attached !== undefined) {
          results.set(e.event.id, ok(undefined, `attached to order ${attached}, which came after it carrying ${d.accession} as its other number: delivered and billed there`));
          continue;
        }
        const so = orders.get(d.accession);
        if (!so) {
          if (await orderFollows(ctx, e, d.accession, d.testCode)) {
            results.set(e.event.id, ok(undefined, (await notCountedByTheOrder(ctx, e, d)) ?? 'the order follows in the queue: it marks the test delivered'));
            continue;
          }
          if (await noStoredOrderNames(ctx, d.accession, d.testCode)) throw waitingForItsOrder(ctx, e, `accession ${d.accession} has no Odoo sale order and no order message received names test ${d.testCode}`);
          throw noSaleOrder(d.accession);
        }
        // Never on another LIS's order of the same number (another client's sale order).
        const foreign = await otherClient(e, d.accession, so, `result for test ${d.testCode}`);
        if (foreign) throw foreign;
        const product = await ctx.ref.product(d.testCode);
        const forProduct = lines.filter((l) => m2oId(l['order_id']) === so.id && m2oId(l['product_id']) === product.id);
        // A line a cancellation set to 0 is not billable: prefer the open one.
        const line = forProduct.find((l) => Number(l['product_uom_qty'] ?? 0) > 0) ?? forProduct[0];
        if (!line || Number(line['product_uom_qty'] ?? 0) <= 0) {
          if (await orderFollows(ctx, e, d.accession, d.testCode)) {
            const note = (await notCountedByTheOrder(ctx, e, d)) ?? 'the order message that adds this test follows in the queue: it marks the test delivered';
            results.set(e.event.id, ok([{ model: 'sale.order', id: so.id, name: String(so['name'] ?? '') }], note));
            continue;
          }
          if (line) {
            results.set(e.event.id, ok([{ model: 'sale.order.line', id: line.id }], 'test cancelled on the order: nothing to deliver'));
            continue;
          }
          // No line: the LIS cancelled the test (a quotation's line is unlinked; a test cancelled
          // before its order came was never put on it). Its result, sent before the cancellation
          // or replayed out of order, has nothing to deliver.
          if (await cancelledByTheLis(ctx, d)) {
            results.set(e.event.id, ok([{ model: 'sale.order', id: so.id, name: String(so['name'] ?? '') }], 'test cancelled by the LIS: nothing to deliver'));
            continue;
          }
          if (await noStoredOrderNames(ctx, d.accession, d.testCode)) throw waitingForItsOrder(ctx, e, `order ${String(so['name'] ?? so.id)} (accession ${d.accession}) has no line for test ${d.testCode} and no order message received names it`);
          throw mappingMissing(`order ${String(so['name'] ?? so.id)} (accession ${d.accession}) has no line for test ${d.testCode}`, { accession: d.accession, testCode: d.testCode, failure: 'transient' });
        }
        // A result billing counts for nothing (billingState `resultNotCounted`) marks no line:
        // - validated while the LIS had cancelled its test ('closed'): a cancelled quotation keeps
        //   its lines at their quantity (action_cancel) and the LIS's order placed again brings it
        //   back with them (order-created.ts action_draft); marked here, it came back delivered,
        //   "to invoice" in Odoo before the re-ordered test was run
        //   (test/integration/billing-result-while-cancelled-audit.test.ts);
        // - the cancelled test's result come after the LIS ordered the test again (a replay, or
        //   reported before the re-order): the re-ordered line waits for a result of its own
        //   (test/integration/billing-result-replay-after-reorder-audit.test.ts).
        const notCounted = await uncounted(e, d);
        if (notCounted && (notCounted.why !== 'closed' || String(so['state']) === 'cancel')) {
          results.set(e.event.id, ok([{ model: 'sale.order.line', id: line.id }], notCountedNote(notCounted)));
          continue;
        }
        const qty = Number(line['product_uom_qty'] ?? 1);
        refs.set(e.event.id, { so: so.id, name: String(so['name'] ?? ''), line: line.id });
        if (Number(line['qty_delivered'] ?? 0) === qty) {
          results.set(e.event.id, ok([{ model: 'sale.order.line', id: line.id }], 'already delivered'));
          continue;
        }
        const w = writes.get(qty) ?? { qty, lineIds: new Set(), eventIds: [] };
        w.lineIds.add(line.id);
        w.eventIds.push(e.event.id);
        writes.set(qty, w);
      } catch (err) {
        results.set(e.event.id, fail(err));
      }
    }
    for (const w of writes.values()) {
      try {
        await write(ctx.odoo, 'sale.order.line', [...w.lineIds], { qty_delivered: w.qty });
        for (const id of w.eventIds) {
          const r = refs.get(id)!;
          results.set(id, ok([{ model: 'sale.order', id: r.so, name: r.name }, { model: 'sale.order.line', id: r.line }]));
        }
      } catch (err) {
        for (const id of w.eventIds) results.set(id, fail(err));
      }
    }
    await deliverLeftResults(ctx, events, orders, results, otherClient);
    await noteLeftMilestones(ctx, events, orders, results);
    return results;
  },
};

/**
 * Results left to an order message that never posted: resolved without a write because a later
 * order message of the accession would mark their line delivered ("the order follows in the
 * queue"), and that order message never reached Odoo (dead-lettered, then discarded by an operator
 * who entered the sale order by hand). Results of `before`'s partition stored before it, delivered
 * without a line of their own, with no delivered `order.created` after them naming their test,
 * still validated (the LIS has not cancelled the test since, billingState), and passing
 * `otherClientGuard` as the results themselves do. Read from the store.
 */
async function resultsLeftToTheOrder(ctx: RuleContext, accession: string, so: OdooRecord, before: StoredEvent['event'], guard: ReturnType<typeof otherClientGuard>): Promise<string[]> {
  if (!ctx.events) return [];
  const stored = inStoredOrder(await ctx.events(accession, ['order.created', 'order.cancelled', 'result.validated']));
  const upTo = stored.filter((s) => s.event.id <= before.id);
  // Walked with the events retention pruned, as billing remembers them (events/billing-memory.ts).
  const history = (await countedHistory(ctx, accession, ['order.created', 'order.cancelled', 'result.validated'])).filter((s) => s.event.id <= before.id);
  const validated = billingState(history.map((s) => s.event)).validated;
  const codes: string[] = [];
  for (const r of upTo) {
    if (r.event.type !== 'result.validated' || r.event.id === before.id || r.event.partitionKey !== before.partitionKey || r.state !== 'delivered') continue;
    if ((r.odoo ?? []).some((x) => x.model === 'sale.order.line')) continue;
    const code = (r.event.data as ResultValidatedData).testCode;
    if (!validated.has(code) || codes.includes(code)) continue;
    // A delivered order message naming the test marked its line when it posted (order-created.ts).
    const posted = stored.some((o) => o.event.type === 'order.created' && o.event.id > r.event.id && o.event.partitionKey === r.event.partitionKey && o.state === 'delivered' && (o.event.data as OrderCreatedData).tests.some((t) => t.code === code));
    // Never another LIS's result on this client's order (two LIS links numbering alike).
    if (!posted && !(await guard(r, accession, so, `result for test ${code}`))) codes.push(code);
  }
  return codes;
}

/**
 * Mark delivered, on the sale order a batch's result reached, the lines of the results left to an
 * order message that never posted (`resultsLeftToTheOrder`). Before, their events said "the order
 * follows in the queue: it marks the test delivered", the order was discarded, and the line stayed
 * undelivered on the sale order finance entered by hand: Odoo's "Create Invoice" (delivered
 * quantities) left the test out (test/integration/relay-results-left-audit.test.ts). Absolute
 * writes; a failure fails the accession's results, whose retry changes nothing else. `guard`: the
 * batch's otherClientGuard, whose accession reads the results' own check already made.
 */
async function deliverLeftResults(
  ctx: RuleContext,
  events: StoredEvent[],
  orders: Map<string, OdooRecord>,
  results: Map<string, RuleResult>,
  guard: ReturnType<typeof otherClientGuard>,
): Promise<void> {
  const last = new Map<string, StoredEvent>(); // accession → its last result that reached its line
  for (const e of events) {
    const r = results.get(e.event.id);
    if (r?.ok && (r.odoo ?? []).some((x) => x.model === 'sale.order.line')) last.set((e.event.data as ResultValidatedData).accession, e);
  }
  for (const [accession, e] of last) {
    const so = orders.get(accession)!;
    const failAll = (err: unknown): void => {
      for (const x of events) if ((x.event.data as ResultValidatedData).accession === accession) results.set(x.event.id, fail(err));
    };
    try {
      const codes = await resultsLeftToTheOrder(ctx, accession, so, e.event, guard);
      // Results of this batch wrote their own line.
      const batchCodes = new Set(events.filter((x) => (x.event.data as ResultValidatedData).accession === accession).map((x) => (x.event.data as ResultValidatedData).testCode));
      const wanted = codes.filter((c) => !batchCodes.has(c));
      if (wanted.length === 0) continue;
      const productIds = new Set<number>();
      for (const code of wanted) productIds.add((await ctx.ref.product(code)).id);
      const lines = await searchRead(ctx.odoo, 'sale.order.line', [['order_id', '=', so.id], ['display_type', '=', false]], SALE_LINE_FIELDS);
      const writes = new Map<number, number[]>(); // quantity → line ids
      for (const l of lines) {
        const qty = Number(l['product_uom_qty'] ?? 0);
        if (!productIds.has(m2oId(l['product_id']) ?? -1) || l['state'] === 'cancel' || qty <= 0 || Number(l['qty_delivered'] ?? 0) === qty) continue;
        writes.set(qty, [...(writes.get(qty) ?? []), l.id]);
      }
      for (const [qty, ids] of writes) await write(ctx.odoo, 'sale.order.line', ids, { qty_delivered: qty });
    } catch (err) {
      failAll(err);
    }
  }
}

/**
 * The milestones left to an order message that never posted, noted on the sale order the batch's
 * results reached (each accession's last delivered result comes after them in the partition). A
 * note that could not be posted fails the accession's results: their write is absolute, the retry
 * changes nothing in Odoo and tries the note again.
 */
async function noteLeftMilestones(ctx: RuleContext, events: StoredEvent[], orders: Map<string, OdooRecord>, results: Map<string, RuleResult>): Promise<void> {
  const targets = new Map<string, { so: OdooRecord; before: StoredEvent['event'] }>();
  const byAccession = new Map<string, string[]>();
  for (const e of events) {
    const accession = (e.event.data as ResultValidatedData).accession;
    const so = orders.get(accession);
    const r = results.get(e.event.id);
    // Delivered with the sale order's line (not "the order follows", which leaves them to it).
    if (!so || !r?.ok || !(r.odoo ?? []).some((x) => x.model === 'sale.order.line')) continue;
    targets.set(accession, { so, before: e.event });
    byAccession.set(accession, [...(byAccession.get(accession) ?? []), e.event.id]);
  }
  if (targets.size === 0) return;
  for (const [accession, r] of await noteMilestonesLeftToTheOrder(ctx, targets)) {
    for (const id of byAccession.get(accession) ?? []) {
      const done = results.get(id)!;
      if ('error' in r) results.set(id, fail(r.error));
      else if (done.ok) results.set(id, ok(done.odoo, [done.note, r.note].filter(Boolean).join('; ')));
    }
  }
}

/**
 * The note of a result resolved without a write because order messages naming its test follow in
 * the queue, when none of them marks its line delivered (order-created.ts marks the tests
 * billingState counts validated and open at that order message): the test was cancelled when it
 * was validated and the order that follows orders it again (the re-order needs a result of its
 * own, invoice-eligibility.ts `validatedWhileClosed`), or the order that follows is the one a
 * cancellation that came first cancelled. Undefined when one of them marks it (the usual case: a
 * result come before its order). Before, the event said "it marks the test delivered" either way,
 * and finance read the re-ordered test as done while its line stayed undelivered
 * (test/integration/billing-cancel-replay-after-reorder-audit.test.ts).
 */
async function notCountedByTheOrder(ctx: RuleContext, e: StoredEvent, d: ResultValidatedData): Promise<string | undefined> {
  if (!ctx.events) return undefined;
  // With the events retention pruned, as billing remembers them (events/billing-memory.ts; those are delivered, never following).
  const stored = await countedHistory(ctx, d.accession, ['order.created', 'order.cancelled', 'result.validated']);
  const following = stored.filter(
    (o) => o.event.type === 'order.created' && o.event.id > e.event.id && o.state !== 'delivered' && o.state !== 'discarded' && (o.event.data as OrderCreatedData).tests.some((t) => t.code === d.testCode),
  );
  let reordered = false;
  for (const o of following) {
    const state = billingState(stored.filter((s) => s.event.id <= o.event.id).map((s) => s.event));
    if (!state.open.has(d.testCode)) continue;
    if (state.validated.has(d.testCode)) return undefined;
    reordered = true;
  }
  if (following.length === 0) return undefined;
  return reordered
    ? 'test cancelled by the LIS when this result was validated: not counted; the order message that follows in the queue orders it again and needs a result of its own'
    : 'test cancelled by the LIS: nothing to deliver (the order message that follows in the queue is the order it cancelled)';
}

/**
 * The event's note on a result billing counts for nothing (events/invoice-eligibility.ts
 * `resultNotCounted`): validated while its test was cancelled (an order that opens the test again
 * counts it only when it is timed after that order, and marks its line itself, order-created.ts
 * markValidatedDelivered), or the cancelled test's result come after the LIS ordered it again.
 */
function notCountedNote(n: ResultNotCounted): string {
  if (n.why === 'closed') return 'test cancelled by the LIS when this result was validated: not counted, nothing to deliver';
  const when = (at: number): string => (Number.isNaN(at) ? 'an unknown time' : new Date(at).toISOString());
  const reorder = Number.isNaN(n.reorder.at) ? 'the order the LIS placed again (no ORC-9)' : `the order the LIS placed again at ${when(n.reorder.at)}`;
  if (n.why === 'replay') {
    return `${n.code}: a replay of the result stored before the LIS ordered the test again (reported ${when(n.of.at)}, OBR-22, value ${n.of.value ?? '(none)'}): the cancelled test's, not counted for ${reorder}; it waits for a result of its own`;
  }
  return `${n.code}: reported at ${when(n.result.at)} (OBR-22), before the LIS ordered the test again at ${when(n.reorder.at)}: the cancelled test's result, not counted; the re-order waits for a result of its own`;
}

/**
 * The store's order messages of the accession say the LIS cancelled the result's test (or the
 * whole order) and did not order it again. Before, such a result found no line on a quotation
 * (the cancellation unlinks it) and was retried until dead-lettered, holding back every later
 * event of the order (an add-on test, its billing) behind it.
 */
async function cancelledByTheLis(ctx: RuleContext, d: ResultValidatedData): Promise<boolean> {
  if (!ctx.events) return false;
  // With the events retention pruned, as billing remembers them (events/billing-memory.ts).
  const stored = await countedHistory(ctx, d.accession, ['order.created', 'order.cancelled']);
  return testCancelled(billingState(stored.map((s) => s.event)), d.testCode);
}
