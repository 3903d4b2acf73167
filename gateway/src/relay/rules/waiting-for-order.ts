import type { OrderCreatedData } from '../../events/types.ts';
import type { StoredEvent } from '../../store/types.ts';
import { needsOperator, odooError } from '../odoo/odoo-error.ts';
import type { RuleContext } from './types.ts';

/**
 * How long a result, milestone or cancellation waits for the LIS's order that names it (from when
 * the gateway received it, or from an operator's last replay of it) before it is dead-lettered: a
 * day. Long enough for a LIS whose order interface was down for a night, or an add-on test's
 * order message sent hours later; short enough that a result nobody ordered (a test the LIS never
 * sends an order for) reaches the dead letters, where IT staff see it with its reason. While it
 * waits its retry is not due most of the time, and the queue's oldest-waiting age (the status's
 * stale-queue alarm) does not count it: without this bound it waited for ever, shown only among
 * the retrying events.
 * A constant, not a setting: config keys are a fixed contract (DESIGN.md §5).
 */
export const ORDER_WAIT_LIMIT_MS = 24 * 3600_000;

/**
 * The start of the last error of an event waiting for the LIS's order (waitingForItsOrder). The
 * status model counts the events whose retry says so (WAITING_FOR_ORDERS, status/README.md).
 */
export const WAITING_FOR_ORDER = 'waiting for its order from the LIS';

/** A relay error (an event's last error) saying the event waits for the LIS's order. */
export function waitsForLisOrder(error: string | undefined): boolean {
  return error !== undefined && error.includes(WAITING_FOR_ORDER);
}

/**
 * No order message of the accession in the store names `testCode` (any order message of the
 * accession when no test is given: a specimen milestone). The LIS validated the test before sending
 * its order, or an add-on test's order message comes later. Without a store, no.
 */
export async function noStoredOrderNames(ctx: RuleContext, accession: string, testCode?: string): Promise<boolean> {
  if (!ctx.events) return false;
  const orders = await ctx.events(accession, ['order.created']);
  return !orders.some((o) => o.event.type === 'order.created' && (testCode === undefined || (o.event.data as OrderCreatedData).tests.some((t) => t.code === testCode)));
}

/**
 * A result or milestone whose order (or add-on order message) the LIS has not sent yet waits for
 * it, not dead-lettered after relay.maxAttempts: when the order comes it is queued behind the
 * event in its partition, the event is then resolved without a write ("the order follows in the
 * queue") and the order's rule applies it (marks the line delivered, posts the note). Before, it
 * was retried until relay.maxAttempts (about 25 minutes with the default back-off) and
 * dead-lettered: the order that came later (the LIS's order interface down for an hour) was held
 * behind the dead letter with its results and invoice until an operator discarded it
 * (test/integration/relay-result-before-order-audit.test.ts).
 * The lab still sees it: among the queue's retrying events, its last error saying what it waits
 * for. Its attempts are charged as usual, so the back-off grows to its ceiling, until one retry
 * would be left; from then on it waits uncharged (the relay's `waitsForQueued`) at that pace, and
 * the retry kept is for its own write once the order has come.
 * After ORDER_WAIT_LIMIT_MS it is dead-lettered, its reason saying no order came: the order will
 * most likely never come, and a dead letter is what IT staff are alarmed about and look at.
 * A cancellation before its order waits the same way (order-cancelled.ts), its own write being
 * to a sale order of the accession entered in Odoo meanwhile.
 * `what` names what waits ("test", "specimen", "cancellation").
 */
export function waitingForItsOrder(ctx: RuleContext, e: StoredEvent, detail: string, what = 'test'): Error {
  if (ctx.now() - waitingSince(e) > ORDER_WAIT_LIMIT_MS) {
    return needsOperator(`no order from the LIS for this ${what} within 24 h: ${detail}`);
  }
  const charged = e.attempts + 2 < ctx.config.maxAttempts;
  return odooError('transient', `${WAITING_FOR_ORDER}: ${detail}`, charged ? {} : { waitsForQueued: true });
}

/**
 * Since when the event has waited (epoch ms): when the gateway received its message, or an
 * operator's last replay of it (a replay gives it another day: the operator expects the order now).
 * A time that cannot be read counts as now: it waits, never dead at once on a garbled stamp.
 */
export function waitingSince(e: StoredEvent): number {
  const times = [e.event.receivedAt, ...(e.audit ?? []).filter((a) => a.action === 'replay').map((a) => a.at)].map((t) => Date.parse(t)).filter((t) => Number.isFinite(t));
  return times.length > 0 ? Math.max(...times) : Number.POSITIVE_INFINITY;
}
