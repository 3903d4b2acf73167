/**
 * `invoice.eligible` (DESIGN.md §3): an order becomes billable when every billable test it
 * ordered has a validated result. The gateway derives the event itself, at the moment the message
 * that completes the order (the last `result.validated`, a late `order.created`, or an
 * `order.cancelled` that takes away the last open test) is committed, in the same atomic batch.
 * Its idempotency key is `invoice-eligible|<accession>`, so an order is eligible once, whatever is
 * resent. A test added to the order afterwards (an add-on, a test ordered again after its
 * cancellation) makes the order eligible again once it is validated: `invoice-eligible|<accession>|<n>`
 * for the n-th time; the invoice rule then bills only the tests that eligibility brings (not those
 * an earlier one handed to billing, whatever finance did with them since) and of those only what the
 * sale order has not billed yet.
 * n counts the eligibilities still stored, and a key used before (its event pruned by retention,
 * the key kept as a tombstone) is stepped over (freshEligibilityKey). Retention keeps an order's
 * billing events until it is billed in full (billingRetention).
 *
 * What retention prunes, billing remembers (billing-memory.ts): retention writes a compact copy of
 * each billing event it prunes into the accession's memory (a local document, in the batch of the
 * deletions: billingRetention.remember), and every walk (this derivation, the retention hold, the
 * relay rules) reads the stored events plus the remembered ones no longer stored, in stored order.
 * The derivation only reads the memory (one point read): it writes nothing besides its events. Before, a test
 * billed and then named again by an order message after the pruning read as open with no result
 * (an add-on never invoiced), and a test cancelled, its order replayed by the LIS after the
 * pruning, was billed (test/integration/billing-retention-memory-audit.test.ts).
 *
 * The accession's events are walked in the order they were stored (billingState): an
 * `order.created` adds its tests (a test cancelled earlier is ordered again), an `order.cancelled`
 * takes its tests away together with their earlier validation (a re-ordered test needs a new
 * result), a `result.validated` validates its test whether or not the order is known yet. An
 * `order.cancelled` naming no test cancels the whole order: every test, validation and billing
 * goes. An `order.created` after it re-opens the order (the LIS ordered it again, ORC-1 NW): its
 * tests are open again, like a test cancelled and ordered again, and need a new result; the relay
 * brings the cancelled sale order back (rules/order-created.ts), so the order is billed once when
 * they are validated. Before, a whole-order cancellation was final here while the relay put the
 * lines back in Odoo: the re-ordered test was delivered and "to invoice" there, and never billed.
 *
 * A cancellation can arrive before the order it cancels: the LIS replays its queue out of order
 * after an outage, or orders and cancellations come over two interfaces that race. A cancellation
 * of a test no order of the accession has named yet (or of the whole order, before any order) is
 * kept waiting for that order (`cancelledBeforeOrder`, `wholeCancelBeforeOrder`): the first
 * `order.created` naming the test is the order it cancelled, and leaves the test closed (a
 * whole-order one closes that order's every test), unless it came in the cancellation's own
 * message or its own order time (placedAt: ORC-9, or an OBR-6 equal to its MSH-7) is after the
 * cancellation's (ORC-9, else MSH-7): that is the LIS ordering the test again (cancelledBy). MSH-7
 * alone does not say it: a replayed queue re-stamps it. Only an order message after the late one
 * orders the test again.
 * Before, the late order opened the cancelled test: it went on the sale order, was validated from
 * the replayed result and billed; without a result the order was never complete and its done
 * tests were never billed. The relay rules that decide which tests go on the sale order
 * (rules/order-created.ts `orderPlan`) and which results have nothing to deliver
 * (rules/result-validated.ts, testCancelled) take it from this same walk, not a walk of their own.
 *
 * A resend of a cancelled order. Once a cancellation closed a test the gateway had seen ordered
 * (or the whole order, or a late order it was waiting for), its time is kept (`cancelledAt`,
 * `wholeCancelledAt`): an order message placed strictly before it (its ORC-9, placedAt) is a
 * resend of the order cancelled (resendOf): a LIS whose ACK was lost in an outage replays it,
 * often under a new MSH-10, which intake rightly keeps as a new message. The test stays closed
 * (and an order cancelled as a whole stays cancelled); `resends` names them for the order event's
 * note. Equal or unknown times keep meaning "ordered again". Before, such a resend re-opened the
 * test: back on the sale order and billed (test/integration/billing-resend-after-cancel-audit.test.ts).
 * An order event's time is that of its lines: hl7/normalize-lis.ts splits a message's run of order
 * lines where a line's ORC-9 differs, so GLU placed at 09:20 and TSH ordered again at 10:30 on its
 * own ORC are two events and TSH is judged by 10:30 (before, one event timed by the first ORC took
 * TSH for a resend: test/integration/billing-multi-orc-order-time-audit.test.ts). A line without
 * ORC-9 is timed by the run it follows.
 * Limits: a cancellation without ORC-9 is timed by its MSH-7, which a replayed queue re-stamps, so
 * an order placed between the cancellation and that replay reads as placed before it.
 *
 * A cancellation replayed after a re-order (the mirror of a resend). An open test keeps the latest
 * order time (placedAt) of the order messages that named it since it was opened (`openedAt`); a
 * cancellation timed strictly before it (ORC-9, else MSH-7), not in that order's message, does not
 * close the test (laterOrder, `leftOpen`): GLU and TSH ordered at 09:20, TSH cancelled at 10:00,
 * ordered again at 10:30, the 10:00 cancellation replayed under a new MSH-10 leaves TSH open, and a
 * whole-order cancellation closes only the tests ordered at or before its time. The relay's
 * order.cancelled rule reads `leftOpen` and leaves those lines on the sale order. Equal and
 * unknown times still cancel. Before, the replay closed the re-ordered test: taken off the sale
 * order and never billed although the lab ran it
 * (test/integration/billing-cancel-replay-after-reorder-audit.test.ts). The rule holds whatever
 * arrives first: a cancellation that comes before an order placed after it does not cancel it
 * either (cancelledBy).
 *
 * A result of a cancelled test. A `result.validated` of a test closed by a cancellation (ordered,
 * then cancelled, or the whole order cancelled) is kept and counted for nothing
 * (`validatedWhileClosed`): an order that opens the test again needs its own result, unless that
 * result is timed (its occurredAt: OBR-22, else OBR-7) strictly after the re-order was placed
 * (ORC-9): the re-order's result that came before its order message (two LIS interfaces racing).
 * Before, a result validated after the cancellation made the re-ordered test billable at once.
 * A result stored after the re-order (the test open again) is the cancelled test's too, kept and
 * counted for nothing (`resultNotCounted`), when it is a replay of a result the gateway stored for
 * the test before that re-order (same report time OBR-22, same value: the LIS replaying its queue
 * under a new MSH-10) or when its report time (OBR-22) is strictly before the re-order's ORC-9. A
 * result without OBR-22 (timed by OBR-7, the tube's collection time, which an add-on or a re-order
 * run on the tube already drawn shares with the cancelled run) still counts, as does one of an
 * event stored before this release (no `timeFrom`). Before, the 09:50 result of a test cancelled at
 * 10:00 and ordered again at 10:30, replayed after the re-order, made it billable before the redraw
 * was run (test/integration/billing-result-replay-after-reorder-audit.test.ts).
 *
 * QC and calibration runs never produce `result.validated` (the analyzer normalizers mark them
 * `runType: qc|calibration` and only LIS validation bills), so they can never make an order
 * eligible. Cancelled tests are not required.
 */
import type { CanonicalEvent, DraftEvent, EventType, InvoiceEligibleData, OrderCancelledData, OrderCreatedData, OrderedTest, ResultValidatedData } from './types.ts';
import { idempotencyKey, partitionKeys } from './keys.ts';
import type { GatewayStore, RetentionHold, StoredEvent } from '../store/types.ts';
import { compareHl7Time, hl7Offset, hl7TimeToIso, inHl7Zone } from '../hl7/hl7-time.ts';
import { billingHistory, expireMemories, readMemory, rememberPruned, withMemory, type HistorySource } from './billing-memory.ts';
import { ATTACHED_NAMESPACE, type AttachedResult } from '../hl7/order-numbers.ts';

/** What a deriver reads of the store (`idempotencyKeyUsed` and `getDoc` where the store has them). */
export type DeriverStore = Pick<GatewayStore, 'eventsByCorrelation' | 'idempotencyKeyUsed'> & Partial<Pick<GatewayStore, 'getDoc'>>;

export interface EventDeriver {
  /** Correlation ids whose derivation must be serialised with this commit. */
  keys(drafts: readonly DraftEvent[]): string[];
  /**
   * Events to add to the commit (read what is stored; the store holds the keys' locks). A deriver
   * writes no documents with a commit: billing's memory is written by retention
   * (billingRetention.remember), and the store's derivation reads rely on that (#deriverView).
   */
  derive(drafts: readonly DraftEvent[], store: DeriverStore): Promise<DraftEvent[]>;
}

/** The event types that can change whether an order is billable. */
const BILLING_TYPES = ['order.created', 'order.cancelled', 'result.validated'] as const;
/** The events an accession's billing state is rebuilt from (billingState). */
export const BILLING_STATE_TYPES = [...BILLING_TYPES, 'invoice.eligible'] as const;

type BillingEvent = Pick<DraftEvent | CanonicalEvent, 'type' | 'data' | 'occurredAt' | 'source'>;

/** A cancellation that came before the order it cancels (see the header). */
export interface CancelBeforeOrder extends Moment {
  /** The inbound message it came in (store id; '' for an event not committed yet). */
  message: string;
}

/**
 * A time billing orders events by (see "Times the LIS wrote" below): epoch ms (NaN unknown) and,
 * for an event of the LIS normalizer, the HL7 DTM it was read from (`timeWritten`).
 */
export interface Moment {
  /** When (the event's occurredAt: ORC-9, else MSH-7 for an order fact; OBR-22 … for a result), epoch ms; NaN unknown. */
  at: number;
  /** The same time as the LIS wrote it (HL7 DTM, in the message's zone: timeZone written on it), when the event says it. */
  written?: string;
  /**
   * With `written`: `at` as the release before read it (the DTM as the LIS wrote it, without
   * offset in the gateway's zone), for comparing with an event that release stored.
   */
  asBefore?: number;
}

/**
 * Times the LIS wrote. Two times are compared as the LIS wrote them when both events carry them
 * (hl7/normalize-lis.ts keeps `timeWritten` on order.created, order.cancelled and
 * result.validated; hl7-time.ts compareHl7Time): at the coarser of the two precisions (an order at
 * 10:30:15 and a cancellation written 202603011030 are one time, neither before the other), and a
 * time written without an offset in the other's offset (the LIS's local time, whatever zone the
 * gateway runs in). Otherwise (an event stored before, or of another source) by epoch ms, the
 * other's as the release before read it (Moment.asBefore). Negative: `a` before `b`; positive: after; 0 one time; NaN unknown.
 * Before, a cancellation timed by an MSH-7 without offset, sent after a re-order whose ORC-9 had
 * -0500, read hours earlier in a gateway running in UTC: taken for a replay, the test stayed on the
 * sale order and was billed; and a cancellation written to the minute of the re-order read as
 * before it, with the same effect (test/integration/billing-lis-time-zone-audit.test.ts).
 */
function compareMoments(a: Moment, b: Moment): number {
  if (a.written !== undefined && b.written !== undefined) {
    const c = compareHl7Time(a.written, b.written);
    if (c !== undefined) return c;
  }
  // One stored by the release before (no timeWritten): both as that release read them, so that a
  // pair across the upgrade gets the decision it got before (the new event's occurredAt may now be
  // read in the message's zone, the old one's was not).
  if (a.written === undefined || b.written === undefined) return (a.asBefore ?? a.at) - (b.asBefore ?? b.at);
  return a.at - b.at;
}

/**
 * The DTM an event's time was read from (`timeWritten`, in the message's zone: `timeZone` written
 * on one without offset) and its time as the release before read it, when it is a DTM that names
 * occurredAt's instant or a local time.
 */
function writtenOf(e: BillingEvent): { written: string; asBefore: number } | undefined {
  // Optional fields of the order, cancellation and result data (events/types.ts); read from any event.
  const { timeWritten: w, timeZone: z } = e.data as { timeWritten?: unknown; timeZone?: unknown };
  if (typeof w !== 'string') return undefined;
  const zoned = typeof z === 'string' && /^[+-]\d{4}$/.test(z) ? inHl7Zone(w, z) : w;
  const iso = hl7TimeToIso(zoned);
  const before = hl7TimeToIso(w);
  if (iso === undefined || before === undefined) return undefined;
  // Written with an offset: it must name the event's instant (else it is not this time).
  if (hl7Offset(zoned) !== undefined && Date.parse(iso) !== Date.parse(e.occurredAt)) return undefined;
  return { written: zoned, asBefore: Date.parse(before) };
}

/** An event's Moment: occurredAt, with its timeWritten when it has one (writtenOf). */
function momentOf(e: BillingEvent): Moment {
  return { at: Date.parse(e.occurredAt), ...writtenOf(e) };
}

export interface BillingState {
  /** At least one order.created was seen. */
  ordered: boolean;
  /**
   * An order.cancelled named no test, and no order.created came after it (or the order it came
   * before, see wholeCancelBeforeOrder, has arrived and no other after it; a resend of the order
   * it cancelled, resendOf, does not count): the whole order is cancelled.
   */
  wholeOrderCancelled: boolean;
  /** Tests ordered and not cancelled since, by code, in the order they were first ordered. */
  open: Map<string, OrderedTest>;
  /** Every test code an order.created named (cancelled since or not). */
  everOrdered: Set<string>;
  /** Tests cancelled before any order named them, waiting for that order, by code (see the header). */
  cancelledBeforeOrder: Map<string, CancelBeforeOrder>;
  /** The whole order was cancelled before any order.created, waiting for that order. */
  wholeCancelBeforeOrder: CancelBeforeOrder | undefined;
  /**
   * The latest cancellation of each test it closed once an order named the test (a cancellation
   * of the test, or of the whole order), until an order message opens the test again: an order
   * message placed before it (ORC-9 earlier, resendOf) is a resend of the order it cancelled.
   */
  cancelledAt: Map<string, CancelBeforeOrder>;
  /** The whole-order cancellation in force (wholeOrderCancelled), for resendOf. */
  wholeCancelledAt: CancelBeforeOrder | undefined;
  /**
   * Tests the last order message naming them left closed as a resend of the order a cancellation
   * the gateway had already seen cancelled, with that cancellation (the order event's note).
   */
  resends: Map<string, CancelBeforeOrder>;
  /**
   * Each open test's latest order time: the latest placedAt (ORC-9) of the order messages that
   * named it since it was last opened, with that message. A cancellation timed strictly before it
   * does not close the test (laterOrder).
   */
  openedAt: Map<string, CancelBeforeOrder>;
  /**
   * Tests the last order.cancelled walked left open because an order placed strictly after its
   * time (openedAt) opened them: a cancellation the LIS replayed after ordering the test again, or
   * one that came late. By code, with that order's time (epoch ms). Empty when the last order
   * event walked was no such cancellation (rules/order-cancelled.ts reads it, walking up to its event).
   */
  leftOpen: Map<string, number>;
  /**
   * Results validated while their test was closed by a cancellation (everOrdered and not open, or
   * the whole order cancelled): kept, counted for nothing. By code, the latest result's time
   * (occurredAt; NaN unknown). An order that opens the test again counts it only when
   * that result is timed strictly after the order's placedAt (a result of the re-order that came
   * before its order message); otherwise the re-order needs a new result.
   */
  validatedWhileClosed: Map<string, Moment>;
  /**
   * Each test opened again after a cancellation closed it (the LIS ordered it again), with the
   * re-order's time (placedAt, NaN unknown) and the results of the test stored before it (a replay
   * of one of them counts for nothing). Until a cancellation takes the test off again.
   */
  reopenedAt: Map<string, Reopened>;
  /** Every result of each test walked so far: time and value (a replay after a re-order is told by them). */
  results: Map<string, StoredResult[]>;
  /**
   * Why the last event walked, a `result.validated`, counts for nothing (undefined when it counts,
   * or the last event was no result): its test was cancelled and not ordered again ('closed',
   * validatedWhileClosed), or ordered again after it and the result is the cancelled test's: a
   * replay of one stored before the re-order ('replay', with it) or reported (OBR-22) strictly
   * before the re-order's ORC-9 ('before-reorder'). rules/result-validated.ts reads it, walking up to its event.
   */
  resultNotCounted: ResultNotCounted | undefined;
  /**
   * Position (0-based, among the events walked) of the last order.created or order.cancelled
   * after which the accession was ordered and had no open test: the order ended cancelled there
   * (a whole-order cancellation, its last open test cancelled, or a late order every test of
   * which was cancelled before it arrived). -1 when it never did. An order.created after it orders
   * again (rules/order-created.ts brings back the sale order the cancellation cancelled).
   */
  closedAt: number;
  /** Test codes with a validated result not followed by a cancellation of that test. */
  validated: Set<string>;
  /** Test codes an `invoice.eligible` already billed, not cancelled since. */
  billed: Set<string>;
  /** How many `invoice.eligible` events were seen. */
  eligibleEvents: number;
}

/** A result walked: its time (occurredAt, as written), value, and the field its time came from. */
export interface StoredResult extends Moment {
  value: string | undefined;
  timeFrom: ResultValidatedData['timeFrom'];
}

/** A test the LIS ordered again after a cancellation (BillingState.reopenedAt). */
export interface Reopened extends Moment {
  /** Results of the test stored before the re-order. */
  before: StoredResult[];
}

export type ResultNotCounted =
  | { code: string; why: 'closed' }
  | { code: string; why: 'replay'; of: StoredResult; reorder: Reopened }
  | { code: string; why: 'before-reorder'; result: StoredResult; reorder: Reopened };

/** The inbound message an event came in (store id; '' for an event not committed yet). */
function messageOf(e: BillingEvent): string {
  return 'messageId' in e.source ? e.source.messageId : '';
}

function cancelOf(e: BillingEvent): CancelBeforeOrder {
  return { ...momentOf(e), message: messageOf(e) };
}

/**
 * When the LIS placed the order of an order message, as far as a replay cannot change it: ORC-9,
 * the order's transaction time, which a LIS replaying its outbound queue sends as it was. NaN when
 * the message does not say. The event's occurredAt is ORC-9, else MSH-7; its data's orderedAt is
 * ORC-9, else OBR-6. MSH-7 alone says nothing: a LIS replaying its queue after an outage re-stamps
 * it with the time it sends. OBR-6 (and TQ1-7) is the time the test is asked for (a timed draw hours
 * after the order), not when it was ordered, and OBR-7 is when the specimen was taken (an add-on on
 * a tube drawn the day before). The two agree when ORC-9 is there, or when the order's requested
 * time is its message's own time (a message sent as the order was placed): that is the order's time.
 */
function placedAt(order: BillingEvent): Moment {
  if (order.type !== 'order.created') return { at: NaN };
  const at = Date.parse(order.occurredAt);
  const orderedAt = (order.data as OrderCreatedData).orderedAt;
  if (orderedAt === undefined || Date.parse(orderedAt) !== at) return { at: NaN };
  return momentOf(order);
}

/**
 * `order` is the order `cancel` (which came before it) cancelled, unless the LIS clearly ordered
 * the test again: in the cancellation's own message (a CA line then an NW line of the same test is
 * a test cancelled, then ordered again), or with an order time of its own (placedAt: ORC-9) after
 * the cancellation's (ORC-9, else MSH-7): the LIS ordered the test again after cancelling an order
 * the gateway never saw (placed before the gateway was installed, or pruned by retention). An
 * order message without ORC-9 is the order cancelled whatever its MSH-7 says: before, a queue
 * replayed after an outage, its MSH-7 re-stamped, made the original order look placed after the
 * cancellation, and the cancelled test was billed (test/integration/billing-replay-restamp-audit.test.ts).
 * Unknown and equal times count as the late order.
 */
function cancelledBy(cancel: CancelBeforeOrder, order: BillingEvent): boolean {
  if (messageOf(order) === cancel.message) return false;
  return !(compareMoments(placedAt(order), cancel) > 0);
}

/**
 * `order` is a resend of an order `cancel` cancelled: not of the cancellation's own message, and
 * placed (ORC-9, placedAt) strictly before the cancellation's time (ORC-9, else MSH-7). A LIS
 * whose ACK was lost in an outage replays the order, often under a new MSH-10 (so intake keeps it
 * as a new message), but with the ORC-9 it was placed at. Equal and unknown times keep meaning
 * "ordered again": a LIS that sends no ORC-9, or one time for every line, orders a cancelled test
 * again with an NW. Before, such a resend re-opened the test the gateway had seen cancelled: back
 * on the sale order and billed (test/integration/billing-resend-after-cancel-audit.test.ts).
 */
function resendOf(cancel: CancelBeforeOrder, order: BillingEvent): boolean {
  if (messageOf(order) === cancel.message) return false;
  return compareMoments(placedAt(order), cancel) < 0;
}

/**
 * Keep `cancel` as the cancellation that closed `code` (cancelledAt), unless one that closed it
 * later (by its time) is kept already: an order placed before the later one was cancelled by it.
 */
function closeTest(state: BillingState, code: string, cancel: CancelBeforeOrder): void {
  const kept = state.cancelledAt.get(code);
  if (kept === undefined || Number.isNaN(kept.at) || compareMoments(cancel, kept) >= 0) state.cancelledAt.set(code, cancel);
}

/**
 * The order that opened `code` (or named it since) when it was placed strictly after `cancel`'s
 * time, not in the cancellation's own message: that cancellation does not cancel it (a
 * cancellation the LIS replayed after ordering the test again, or one that came late). Unknown
 * times (an order without ORC-9, a cancellation whose time does not parse) and equal times leave
 * the cancellation in force, as before.
 */
function laterOrder(state: BillingState, code: string, cancel: CancelBeforeOrder): CancelBeforeOrder | undefined {
  if (!state.open.has(code)) return undefined;
  const opened = state.openedAt.get(code);
  if (!opened || opened.message === cancel.message) return undefined;
  return compareMoments(opened, cancel) > 0 ? opened : undefined;
}

/** Keep `order`'s placedAt as `code`'s latest order time (openedAt), when it says one. */
function noteOrderTime(state: BillingState, code: string, order: BillingEvent): void {
  const placed = placedAt(order);
  if (Number.isNaN(placed.at)) return;
  const kept = state.openedAt.get(code);
  if (!kept || compareMoments(placed, kept) > 0) state.openedAt.set(code, { ...placed, message: messageOf(order) });
}

/**
 * `order` opened `code` again after a cancellation: a result validated while it was closed counts
 * for it only when timed strictly after the order was placed (its result, sent before its order
 * message); one timed before it, at its time, or either time unknown was the cancelled test's.
 */
function reopened(state: BillingState, code: string, order: BillingEvent): void {
  const resultAt = state.validatedWhileClosed.get(code);
  state.validatedWhileClosed.delete(code);
  if (resultAt !== undefined && compareMoments(resultAt, placedAt(order)) > 0) state.validated.add(code);
}

/**
 * Why a result of `code`, stored while the test is open after a re-order (reopenedAt), is the
 * cancelled test's and counts for nothing; undefined when it counts. Only a report time (OBR-22)
 * says so: a replay of a result stored before the re-order (the same OBR-22, as the LIS wrote
 * it, and the same value), or a report strictly before the re-order's ORC-9. Unknown and equal
 * times count; a result timed by OBR-7 (the tube's collection time) counts, as does an event of
 * the release before (no timeFrom).
 */
function cancelledTestsResult(state: BillingState, code: string, result: StoredResult): ResultNotCounted | undefined {
  const reorder = state.reopenedAt.get(code);
  if (!reorder || result.timeFrom !== 'OBR-22') return undefined;
  const of = reorder.before.find((r) => r.value === result.value && (r.timeFrom === undefined || r.timeFrom === 'OBR-22') && compareMoments(r, result) === 0);
  if (of) return { code, why: 'replay', of, reorder };
  if (compareMoments(result, reorder) < 0) return { code, why: 'before-reorder', result, reorder };
  return undefined;
}

/** A cancellation took `code` off: not open, nothing of it validated or billed. */
function forgetTest(state: BillingState, code: string): void {
  state.open.delete(code);
  state.reopenedAt.delete(code);
  state.openedAt.delete(code);
  state.validated.delete(code);
  state.validatedWhileClosed.delete(code);
  state.billed.delete(code);
}

/**
 * Walk an accession's events in the order they happened (see the header).
 *
 * Another LIS's order under the same number: two LIS links that number their accessions alike
 * (no `hl7[].accessionPrefix`, README.md "Two LIS systems") both send "12345". The order rule
 * refuses the second client's order (a dead letter; the sale order stays the first client's), so
 * its tests are not this accession's: an order naming another client than the accession's first
 * order, from another link, and every later billing event of that link, are left out of the walk.
 * Before, they were walked with the first client's: the outreach's TSH, never on the hospital's
 * sale order, held the hospital's order open, and its GLU, validated and delivered, was never
 * invoiced, with no dead letter of its own (test/integration/review-s22-billing-two-lis-collision.test.ts).
 * Links of one LIS (orders on one port, results on another) name one client and are walked as
 * before; an event whose link is unknown (remembered before links were) is walked as before.
 */
export function billingState(events: Iterable<BillingEvent>): BillingState {
  const state: BillingState = {
    ordered: false,
    wholeOrderCancelled: false,
    open: new Map(),
    everOrdered: new Set(),
    cancelledBeforeOrder: new Map(),
    wholeCancelBeforeOrder: undefined,
    cancelledAt: new Map(),
    wholeCancelledAt: undefined,
    resends: new Map(),
    openedAt: new Map(),
    leftOpen: new Map(),
    validatedWhileClosed: new Map(),
    reopenedAt: new Map(),
    results: new Map(),
    resultNotCounted: undefined,
    closedAt: -1,
    validated: new Set(),
    billed: new Set(),
    eligibleEvents: 0,
  };
  let position = -1;
  // The accession's client and the link of its first order (the sale order's: the order rule
  // refuses another client's order under the number), and the links found sending another's.
  // An order remembered by the release before 855bce3 has no link: its client is the owner's all
  // the same, and the owner's link is the first link found sending an order of that client. Until
  // then, a link sending another client's order is another LIS's (a link of the owner's LIS that
  // sends its client's order afterwards is the owner's again, from then on). Before, the owner was
  // the first order with a link: after the upgrade, the other LIS's order under the number, and
  // the owner's own link was left out of billing
  // (test/unit/review-s22-billing-memory-old-release.test.ts).
  let owner: { ref: string; endpoint: string | undefined } | undefined;
  const foreign = new Set<string>();
  for (const e of events) {
    position++;
    state.resultNotCounted = undefined;
    const endpoint = e.source.endpoint;
    if (e.type === 'order.created') {
      const ref = (e.data as OrderCreatedData).orderingClientRef ?? '';
      if (!ref) {
        // Names no client: not compared.
      } else if (!owner) owner = { ref, endpoint: endpoint || undefined };
      else if (ref === owner.ref) {
        if (owner.endpoint === undefined && endpoint) {
          owner.endpoint = endpoint;
          foreign.delete(endpoint);
        }
      } else if (endpoint && endpoint !== owner.endpoint) foreign.add(endpoint);
    }
    // Another LIS's order under the same number (two links numbering alike: anotherLisOrder).
    if (endpoint && foreign.has(endpoint)) continue;
    if (e.type === 'order.created') {
      const tests = (e.data as OrderCreatedData).tests;
      state.leftOpen = new Map();
      state.ordered = true;
      const whole = state.wholeCancelBeforeOrder;
      state.wholeCancelBeforeOrder = undefined;
      if (whole && cancelledBy(whole, e)) {
        // The order the LIS cancelled as a whole before it arrived: none of its tests is open.
        // Results stored before it were of that order too.
        state.cancelledBeforeOrder.clear();
        state.wholeOrderCancelled = true;
        state.wholeCancelledAt = whole;
        state.validated.clear();
        state.validatedWhileClosed.clear();
        for (const t of tests) {
          state.everOrdered.add(t.code);
          closeTest(state, t.code, whole);
          state.resends.delete(t.code);
        }
      } else if (state.wholeOrderCancelled && state.wholeCancelledAt && resendOf(state.wholeCancelledAt, e)) {
        // A resend of the order the LIS cancelled as a whole (placed before the cancellation):
        // the order stays cancelled, every test of it closed, a result of it not billed.
        const cancel = state.wholeCancelledAt;
        for (const t of tests) {
          state.everOrdered.add(t.code);
          closeTest(state, t.code, cancel);
          state.resends.set(t.code, cancel);
          state.validated.delete(t.code);
        }
      } else {
        // After a whole-order cancellation this is the LIS ordering again: only its tests are open.
        state.wholeOrderCancelled = false;
        state.wholeCancelledAt = undefined;
        for (const t of tests) {
          state.everOrdered.add(t.code);
          const cancel = state.cancelledBeforeOrder.get(t.code);
          state.cancelledBeforeOrder.delete(t.code);
          // The order a cancellation that came first cancelled: the test stays closed, and a
          // result stored before it was of that cancelled test.
          if (cancel && cancelledBy(cancel, e)) {
            state.validated.delete(t.code);
            closeTest(state, t.code, cancel);
            state.resends.delete(t.code);
            continue;
          }
          // A resend of the order a cancellation the gateway already saw cancelled: still closed.
          const seen = state.cancelledAt.get(t.code);
          if (seen && !state.open.has(t.code) && resendOf(seen, e)) {
            state.validated.delete(t.code);
            state.resends.set(t.code, seen);
            continue;
          }
          const closedBy = state.cancelledAt.get(t.code);
          state.cancelledAt.delete(t.code);
          state.resends.delete(t.code);
          if (!state.open.has(t.code)) {
            state.open.set(t.code, t);
            state.openedAt.delete(t.code);
            // Ordered again after a cancellation closed it: a result of the cancelled test that
            // comes after this order counts for nothing either (cancelledTestsResult).
            if (closedBy) state.reopenedAt.set(t.code, { ...placedAt(e), before: [...(state.results.get(t.code) ?? [])] });
            reopened(state, t.code, e);
          }
          noteOrderTime(state, t.code, e);
        }
      }
    } else if (e.type === 'order.cancelled') {
      const tests = (e.data as OrderCancelledData).tests;
      const cancel = cancelOf(e);
      state.leftOpen = new Map();
      // Open tests an order placed strictly after this cancellation opened: not cancelled by it.
      for (const code of tests.length === 0 ? state.open.keys() : tests.map((t) => t.code)) {
        const later = laterOrder(state, code, cancel);
        if (later) state.leftOpen.set(code, later.at);
      }
      if (tests.length === 0) {
        if (!state.ordered) state.wholeCancelBeforeOrder = cancel;
        else if (state.leftOpen.size === 0) {
          state.wholeOrderCancelled = true;
          state.wholeCancelledAt = cancel;
        }
        // Every test ordered before it is cancelled by it (a resend of any of its orders too);
        // with tests ordered after it (leftOpen), it cancels the rest only.
        for (const code of state.everOrdered) if (!state.leftOpen.has(code)) closeTest(state, code, cancel);
        const held = new Set([...state.open.keys(), ...state.validated, ...state.billed, ...state.validatedWhileClosed.keys()]);
        for (const code of held) if (!state.leftOpen.has(code)) forgetTest(state, code);
      }
      for (const t of tests) {
        if (state.leftOpen.has(t.code)) continue;
        if (!state.everOrdered.has(t.code)) state.cancelledBeforeOrder.set(t.code, cancel);
        else closeTest(state, t.code, cancel);
        forgetTest(state, t.code);
      }
    } else if (e.type === 'result.validated') {
      const d = e.data as ResultValidatedData;
      const code = d.testCode;
      const result: StoredResult = { ...momentOf(e), value: d.value, timeFrom: d.timeFrom };
      state.results.set(code, [...(state.results.get(code) ?? []), result]);
      // A result of a test the LIS cancelled and has not ordered again: kept, counted for nothing
      // (an order that opens the test again needs its own result, see validatedWhileClosed).
      if (state.ordered && !state.open.has(code) && (state.everOrdered.has(code) || state.wholeOrderCancelled)) {
        const kept = state.validatedWhileClosed.get(code);
        state.validatedWhileClosed.set(code, kept === undefined || Number.isNaN(kept.at) || compareMoments(result, kept) > 0 ? result : kept);
        state.resultNotCounted = { code, why: 'closed' };
      } else {
        // Ordered again since: a replay or an earlier report of the cancelled test's result counts for nothing.
        state.resultNotCounted = state.open.has(code) ? cancelledTestsResult(state, code, result) : undefined;
        if (!state.resultNotCounted) state.validated.add(code);
      }
    } else if (e.type === 'invoice.eligible') {
      state.eligibleEvents++;
      for (const t of (e.data as InvoiceEligibleData).tests) state.billed.add(t.code);
    }
    if ((e.type === 'order.created' || e.type === 'order.cancelled') && state.ordered && state.open.size === 0) state.closedAt = position;
  }
  return state;
}

/**
 * The LIS cancelled `code` (or the whole order) and has not ordered it again since: a result of
 * it has nothing to deliver. False for a test never named by an order or a cancellation (its
 * order may still come).
 */
export function testCancelled(state: BillingState, code: string): boolean {
  if (state.open.has(code)) return false;
  if (state.cancelledBeforeOrder.has(code) || state.wholeCancelBeforeOrder !== undefined) return true;
  // wholeOrderCancelled is only ever set once an order was seen.
  return state.everOrdered.has(code) || state.wholeOrderCancelled;
}

/**
 * Nothing is left to bill: the order is known and every open test was billed (or the order, or
 * every test of it, is cancelled). A later add-on opens it again.
 */
export function billedInFull(state: BillingState): boolean {
  return state.ordered && (state.wholeOrderCancelled || [...state.open.keys()].every((code) => state.billed.has(code)));
}

/**
 * The accession still needs its billing events: retention must not take them while it does
 * (see billingRetention). True while an order waits for results, while results wait for their
 * order, and while validated tests are not billed yet.
 */
export async function stillBilling(store: Pick<GatewayStore, 'eventsByCorrelation'> & Partial<Pick<GatewayStore, 'getDoc'>>, correlationId: string): Promise<boolean> {
  const stored = await store.eventsByCorrelation(correlationId, [...BILLING_STATE_TYPES]);
  if (stored.length === 0) return false;
  // With what billing remembers of events pruned before (billing-memory.ts).
  const memory = await readMemory(store.getDoc?.bind(store), correlationId);
  return !billedInFull(billingState(withMemory(stored, memory, correlationId).map((s) => s.event)));
}

/**
 * The accession's billing walk less the results attached to another order: a LIS result stored
 * under its own number (the filler number LF-9301) before its order came, then copied onto the
 * order that came carrying that number (70301: hl7/order-numbers.ts, README "A result that came
 * before its order"), is counted there, by its copy, and for nothing under LF-9301. Before, an
 * order message naming the order by its filler number only (a filler's change, ORC-1 XX without
 * ORC-2), taken for an order LF-9301, found that stored result: LF-9301 was eligible, the relay
 * marked its line delivered and invoiced it, and finance billed the one test twice
 * (test/integration/review-s23b-attached-own-number-order.test.ts). Only a result stored before
 * any live order of its link under the accession can have been attached (the look-up that keeps
 * it runs only then): an accession without one reads nothing more; each such result costs one
 * document read (and, when attached, one read of the other order's results and billing memory).
 */
export async function countedHere(walk: StoredEvent[], accession: string, read: HistorySource): Promise<StoredEvent[]> {
  if (!read.doc || !read.events) return walk;
  const ordered = new Set<string>();
  const out: StoredEvent[] = [];
  for (const s of walk) {
    if (s.event.type === 'order.created' && s.state !== 'discarded') ordered.add(s.event.source.endpoint);
    if (s.event.type === 'result.validated' && !ordered.has(s.event.source.endpoint) && ![undefined, accession].includes(await copiedTo(read, s))) continue;
    out.push(s);
  }
  return out;
}

/**
 * The order the stored result `s` was copied onto when that order came after it (the accession as
 * stored), or undefined: the document hl7/order-numbers.ts wrote names the order, whose billing
 * history holds the copy, stored (its key, not discarded) or, once retention pruned it, remembered
 * by billing (the same test, time and link: a memory keeps no keys). Before, a copy pruned with its
 * order billed in full left the stored result counting under its own number again
 * (test/integration/review-s23b-attached-own-number-order.test.ts), and the stored result, were it
 * replayed then, waited for an order that had come. A document without its copy (the order's
 * commit failed) names nothing. Read by countedHere and rules/result-validated.ts.
 */
export async function copiedTo(read: HistorySource, s: StoredEvent): Promise<string | undefined> {
  if (!read.doc || !read.events || s.event.type !== 'result.validated') return undefined;
  const moved = await read.doc<AttachedResult>(ATTACHED_NAMESPACE, s.event.id);
  if (!moved || typeof moved.accession !== 'string' || typeof moved.key !== 'string' || moved.accession === s.event.correlationId) return undefined;
  const d = s.event.data as ResultValidatedData;
  const there = await billingHistory(read, moved.accession, ['result.validated']);
  const found = there.some((x) =>
    x.event.idempotencyKey === ''
      ? (x.event.data as ResultValidatedData).testCode === d.testCode && x.event.occurredAt === s.event.occurredAt && x.event.source.endpoint === s.event.source.endpoint
      : x.event.idempotencyKey === moved.key && x.state !== 'discarded',
  );
  return found ? moved.accession : undefined;
}

/**
 * The accession's billing history (billing-memory.ts billingHistory) less the results attached to
 * another order (countedHere): what every relay rule walks.
 */
export async function countedHistory(source: HistorySource, accession: string, types: readonly EventType[]): Promise<StoredEvent[]> {
  return countedHere(await billingHistory(source, accession, types), accession, source);
}

/**
 * The store's retention hold (EventStoreOptions.retentionHold): an order's billing events stay
 * past `store.retentionDays` until the order is billed in full, so that a culture or send-out test
 * validated weeks after its order still finds the order, its other results and its earlier
 * eligibilities, and the order gets its draft invoice. Before, retention pruned the delivered
 * `order.created` after 30 days and the last result found no order: never billed, silently. The
 * dead-letter floor (`store.deadLetterRetentionDays`) bounds it: past it the events go, and a
 * result validated later finds no order (as before for such an order).
 */
export const billingRetention: RetentionHold = {
  types: BILLING_STATE_TYPES,
  keep: (correlationId, store) => stillBilling(store, correlationId),
  // What retention prunes of an accession's billing events is remembered in the same batch, and the
  // memory goes at the dead-letter floor (billing-memory.ts).
  remember: (correlationId, store) => rememberPruned(correlationId, store),
  expire: (before, store) => expireMemories(before, store),
};

/**
 * The tests the cancellation stored as `id` left open (billingState `leftOpen`: ordered strictly
 * after its time), walking the accession's stored billing events up to it as billing did when it
 * was committed; empty when `id` is not among `stored`. One definition for every rule that reads
 * it (rules/order-cancelled.ts, the lines it leaves on the order; rules/invoice-eligible.ts, the
 * tests it leaves on a waiting invoice).
 */
export function leftOpenBy(stored: readonly StoredEvent[], id: string): Map<string, number> {
  const upTo = inStoredOrder(stored).filter((s) => s.event.id <= id);
  if (upTo.at(-1)?.event.id !== id) return new Map();
  return billingState(upTo.map((s) => s.event)).leftOpen;
}

/**
 * Why the result stored as `id` counts for nothing (billingState `resultNotCounted`), walking the
 * accession's stored billing events up to it as billing did when it was committed; undefined when
 * it counts or `id` is not among `stored`. Read by rules/result-validated.ts, which then marks no
 * line delivered.
 */
export function resultNotCountedBy(stored: readonly StoredEvent[], id: string): ResultNotCounted | undefined {
  const upTo = inStoredOrder(stored).filter((s) => s.event.id <= id);
  if (upTo.at(-1)?.event.id !== id) return undefined;
  return billingState(upTo.map((s) => s.event)).resultNotCounted;
}

/** Stored events in the order they were stored (ids are time-ordered). */
export function inStoredOrder(stored: readonly StoredEvent[]): StoredEvent[] {
  return [...stored].sort((a, b) => (a.event.id < b.event.id ? -1 : a.event.id > b.event.id ? 1 : 0));
}

export const invoiceEligibility: EventDeriver = {
  keys(drafts) {
    const out = new Set<string>();
    for (const d of drafts) if ((BILLING_TYPES as readonly string[]).includes(d.type)) out.add(d.correlationId);
    return [...out];
  },

  async derive(drafts, store) {
    const derived: DraftEvent[] = [];
    for (const accession of this.keys(drafts)) {
      const stored = await store.eventsByCorrelation(accession, [...BILLING_STATE_TYPES]);
      // Read after the events (a pruning between the two reads is in the memory): billing-memory.ts.
      const memory = await readMemory(store.getDoc?.bind(store), accession);
      // The events stored, and those retention pruned as billing remembers them (billing-memory.ts).
      const walk = withMemory(stored, memory, accession);
      const drafted = drafts.filter((d) => d.correlationId === accession);
      // Nothing is billable before an order: without an order.created the walk ends not ordered
      // (a result whose order has not come yet), so such an accession is not walked.
      if (!walk.some((s) => s.event.type === 'order.created') && !drafted.some((d) => d.type === 'order.created')) continue;
      // Less the results attached to the order that came after them (countedHere).
      const here = await countedHere(walk, accession, {
        events: (c, t) => store.eventsByCorrelation(c, t),
        ...(store.getDoc ? { doc: <T>(ns: string, k: string) => store.getDoc!<T>(ns, k) } : {}),
      });
      const all: BillingEvent[] = [...here.map((s) => s.event), ...drafted];
      const state = billingState(all);
      if (!state.ordered || state.wholeOrderCancelled || state.open.size === 0) continue;
      if (![...state.open.keys()].every((code) => state.validated.has(code))) continue;
      // Billed already, unless a test was added (or ordered again) since the last invoice.eligible.
      if ([...state.open.keys()].every((code) => state.billed.has(code))) continue;
      const key = await freshEligibilityKey(store, accession, state.eligibleEvents);
      const trigger = drafts.find((d) => d.correlationId === accession && (BILLING_TYPES as readonly string[]).includes(d.type))!;
      const order = all.find((e) => e.type === 'order.created')!.data as OrderCreatedData;
      const data: InvoiceEligibleData = { accession, tests: [...state.open.values()], ...(order.orderingClientRef ? { orderingClientRef: order.orderingClientRef } : {}) };
      derived.push({
        type: 'invoice.eligible',
        occurredAt: trigger.occurredAt,
        receivedAt: trigger.receivedAt,
        idempotencyKey: key,
        correlationId: accession,
        partitionKey: partitionKeys.invoice(accession),
        source: trigger.source,
        data,
      });
    }
    // Billing's memory is written by retention when it prunes (billingRetention.remember), not here.
    return derived;
  },
};

/**
 * The key of the accession's next eligibility: `invoice-eligible|<accession>` for the first,
 * `invoice-eligible|<accession>|<n>` for the n-th. Counted from the eligibilities still stored
 * (retention keeps them while the order is not billed in full), then stepping over keys used
 * before: once an order billed in full had its events pruned, an add-on's eligibility counts none
 * and would take the first key again, whose tombstone made the store skip it as a duplicate (the
 * add-on was never billed).
 */
async function freshEligibilityKey(store: DeriverStore, accession: string, earlier: number): Promise<string> {
  const keyFor = (n: number): string => (n === 0 ? idempotencyKey('invoice-eligible', accession) : idempotencyKey('invoice-eligible', accession, n + 1));
  let n = earlier;
  while (store.idempotencyKeyUsed && (await store.idempotencyKeyUsed(keyFor(n)))) n++;
  return keyFor(n);
}
