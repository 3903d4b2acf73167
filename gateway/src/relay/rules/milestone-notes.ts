import { createHash } from 'node:crypto';
import { describeError } from '../../errors.ts';
import { inStoredOrder } from '../../events/invoice-eligibility.ts';
import { partitionKeys } from '../../events/keys.ts';
import type { CanonicalEvent, EventType, SpecimenReceivedData, TestCompletedData, TestInProgressData } from '../../events/types.ts';
import type { OdooRef, StoredEvent } from '../../store/types.ts';
import { searchRead, type OdooRecord } from '../odoo/odoo-calls.ts';
import type { OdooApi } from '../odoo/odoo-client.ts';
import { failureOf, notSent, stopsTheLink } from '../odoo/odoo-error.ts';
import { noSaleOrder, otherClientGuard, saleOrdersByAccession } from './sale-orders.ts';
import { fail, ok, type PostingRule, type RuleContext, type RuleResult } from './types.ts';
import { noStoredOrderNames, waitingForItsOrder } from './waiting-for-order.ts';

/** The milestone types noted in the order's chatter. */
export const MILESTONE_TYPES = ['specimen.received', 'test.in_progress', 'test.completed'] as const satisfies readonly EventType[];

/**
 * specimen.received / test.in_progress / test.completed → a note in the order's chatter, batched:
 * ONE `message_post` per order per batch (window), one line per milestone. Each line carries a
 * marker `[lgw:<hash of the idempotency key>]`; every batch first reads the orders' messages and
 * drops the lines already posted, so a note never appears twice. No patient data and no
 * result values in the note: ids, codes and times only.
 *
 * A milestone can reach the gateway before its order (the LIS sends a preliminary result, ORU
 * OBX-11 P, before the ORM). Without a sale order it cannot be noted, and its order's
 * `order.created` comes after it in the same partition: failing it held the order back, retried
 * until it was dead-lettered, and the order never reached Odoo. When the store holds such a later
 * order message, the milestone is resolved without a write, and the order's rule posts its note
 * once the sale order exists (order-created.ts), so the chatter still shows it. When the store
 * holds no order message of the accession at all (the LIS sent the preliminary result before its
 * order), the milestone waits for that order, not dead-lettered after relay.maxAttempts: the order
 * comes after it in its partition and would be held behind its dead letter; after a day without
 * it, it is dead-lettered saying so (waiting-for-order.ts `waitingForItsOrder`). Otherwise (its
 * order was stored but never reached Odoo, or the milestone is of another partition and holds no
 * order back) a missing order is retried with the store's back-off and dead-lettered after
 * relay.maxAttempts.
 * When that order never posts (an operator discarded its dead letter and entered the sale order
 * by hand), the accession's next milestone or result that reaches the sale order notes them
 * (`milestonesLeftToTheOrder`); before, their note was lost without a word.
 *
 * A milestone from a LIS link whose order of the accession is another client's than the sale
 * order's (two LIS links numbering alike, sale-orders.ts `otherClientGuard`) is a dead letter:
 * another patient's specimen is never noted on this client's order.
 */
export const milestoneNotesRule: PostingRule = {
  name: 'milestone-notes',
  types: MILESTONE_TYPES,
  maxBatch: 500,
  crossPartition: true,
  async post(ctx, events) {
    const results = new Map<string, RuleResult>();
    const withOrder: Array<{ e: StoredEvent; accession: string }> = [];
    for (const e of events) {
      const accession = (e.event.data as { accession?: string }).accession;
      if (!accession) results.set(e.event.id, ok(undefined, 'no accession: nothing to note'));
      else withOrder.push({ e, accession });
    }
    if (withOrder.length === 0) return results;
    const orders = await saleOrdersByAccession(ctx.odoo, withOrder.map((w) => w.accession));
    // Look up before posting, always: one read per batch keeps every note exactly once whatever
    // happened to an earlier attempt.
    const posted = await notedMarkers(ctx.odoo, [...orders.values()].map((o) => o.id));
    const bySo = new Map<number, StoredEvent[]>();
    const accessionOf = new Map<number, { accession: string; so: OdooRecord }>();
    const orderEvents = new Map<string, StoredEvent[]>(); // the store's order.created per accession, read once a batch
    const otherClient = otherClientGuard(ctx);
    for (const { e, accession } of withOrder) {
      const so = orders.get(accession);
      if (!so) {
        // The order's own message comes after this one in the partition (the LIS sent the result
        // before the order): failing would hold it back for good. The order's rule posts the note.
        if (await orderFollows(ctx, e, accession, orderEvents)) results.set(e.event.id, ok(undefined, 'the order follows in the queue: the note is posted with it'));
        // No order message of the accession yet (a preliminary result sent before the order):
        // it waits for the order, which will come after it in its partition, for up to a day.
        else if (e.event.partitionKey === partitionKeys.order(accession) && (await noStoredOrderNames(ctx, accession))) {
          const what = e.event.type === 'specimen.received' ? 'specimen' : 'test';
          results.set(e.event.id, fail(waitingForItsOrder(ctx, e, `accession ${accession} has no Odoo sale order and no order message received names it`, what)));
        } else results.set(e.event.id, fail(noSaleOrder(accession)));
        continue;
      }
      if (posted.has(noteMarker(e.event.idempotencyKey))) {
        results.set(e.event.id, ok([{ model: 'sale.order', id: so.id, name: String(so['name'] ?? '') }], 'note already posted'));
        continue;
      }
      // Never on another LIS's order of the same number (another client's sale order).
      const foreign = await otherClient(e, accession, so, `the ${e.event.type} note`);
      if (foreign) {
        results.set(e.event.id, fail(foreign));
        continue;
      }
      bySo.set(so.id, [...(bySo.get(so.id) ?? []), e]);
      accessionOf.set(so.id, { accession, so });
    }
    // Milestones of these orders left to an order message that never posted (discarded by an
    // operator): noted first, in the same note.
    const inBatch = new Set(events.map((e) => e.event.id));
    for (const [soId, items] of bySo) {
      try {
        const { accession, so } = accessionOf.get(soId)!;
        const left = (await milestonesLeftToTheOrder(ctx, accession, so, items[0]!.event, otherClient)).filter((m) => !inBatch.has(m.event.id) && !posted.has(noteMarker(m.event.idempotencyKey)));
        if (left.length > 0) bySo.set(soId, [...left, ...items]);
      } catch (err) {
        for (const i of items) results.set(i.event.id, fail(err));
        bySo.delete(soId);
      }
    }
    // message_post acts on one record: one call per order, a few in parallel (bounded so a large
    // batch does not queue behind the HTTP agent's sockets and time out there).
    const queue = [...bySo];
    // The link failed (unreachable, 429 with Retry-After, credentials refused), or an operator's
    // pause or a stop halted the call limit: no further note is posted, and the orders not noted
    // yet are left for a later round (released, not charged). Before, the workers took the next order after any failure: a 429 on the first
    // note was followed by every other note of the batch (test/e2e/outage-night-audit.test.ts).
    let linkFailure: { error: unknown } | undefined;
    const post = async ([soId, items]: [number, StoredEvent[]]): Promise<void> => {
      try {
        const refs = await postMilestoneNote(ctx.odoo, soId, items);
        for (const i of items) if (inBatch.has(i.event.id)) results.set(i.event.id, ok(refs));
      } catch (err) {
        for (const i of items) if (inBatch.has(i.event.id)) results.set(i.event.id, fail(err));
        if (stopsTheLink(err)) linkFailure ??= { error: err };
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(NOTE_PARALLELISM, queue.length) }, async () => {
        for (let next = linkFailure ? undefined : queue.shift(); next; next = linkFailure ? undefined : queue.shift()) await post(next);
      }),
    );
    if (linkFailure) for (const [, items] of queue) for (const i of items) if (inBatch.has(i.event.id)) results.set(i.event.id, fail(notSent(linkFailure.error)));
    return results;
  },
};

const NOTE_PARALLELISM = 8;

/** The `[lgw:<hash>]` markers already in the chatter of these sale orders (one read). */
export async function notedMarkers(odoo: OdooApi, soIds: number[]): Promise<Set<string>> {
  const posted = new Set<string>();
  if (soIds.length === 0) return posted;
  const msgs = await searchRead(odoo, 'mail.message', [['model', '=', 'sale.order'], ['res_id', 'in', soIds], ['body', 'ilike', 'lgw:']], ['id', 'body']);
  for (const m of msgs) for (const match of String(m['body'] ?? '').matchAll(/lgw:([0-9a-f]{12})/g)) posted.add(match[1]!);
  return posted;
}

/** One note on the order's chatter, one line per milestone with its marker; the order and the message. */
export async function postMilestoneNote(odoo: OdooApi, soId: number, items: StoredEvent[]): Promise<OdooRef[]> {
  const body = noteBody(['Lab milestones', ...items.map((e) => `• ${describe(e)} [lgw:${noteMarker(e.event.idempotencyKey)}]`)]);
  // The new mail.message: its id over JSON-RPC (call_kw downgrades the record), `[id]` over
  // JSON-2 (Odoo 19 serialises a returned record as its id list, odoo-api.md A.4).
  const params = { body, message_type: 'comment', subtype_xmlid: 'mail.mt_note', ...(odoo.serverVersion >= 17 ? { body_is_html: true } : {}) };
  const answer = await odoo.call<unknown>('sale.order', 'message_post', params, { ids: [soId] });
  const msgId = messageIdOf(answer);
  return [{ model: 'sale.order', id: soId }, ...(msgId !== undefined ? [{ model: 'mail.message', id: msgId }] : [])];
}

/**
 * The milestones of `before`'s partition stored before it whose note was left to a later order
 * message (resolved without a write, `orderFollows`) and is not on a sale order: neither dead nor
 * discarded, and naming no sale order. The order's rule notes them once it has posted the sale
 * order (order-created.ts); when that order message never posts (an operator discarded its dead
 * letter and entered the sale order by hand), the accession's next milestone or result that reaches
 * the sale order does. Milestone types switched off (relay.rules) are never noted. Read from the
 * store; the chatter's markers decide what is posted.
 */
export async function milestonesLeftToTheOrder(ctx: RuleContext, accession: string, so: OdooRecord, before: CanonicalEvent, guard = otherClientGuard(ctx)): Promise<StoredEvent[]> {
  if (!ctx.events) return [];
  const types = MILESTONE_TYPES.filter((t) => ctx.config.rules[t] !== false);
  if (types.length === 0) return [];
  const stored = await ctx.events(accession, types);
  const left = inStoredOrder(
    stored.filter(
      (m) =>
        m.event.partitionKey === before.partitionKey &&
        m.event.id < before.id &&
        m.state !== 'dead' &&
        m.state !== 'discarded' &&
        !(m.odoo ?? []).some((r) => r.model === 'sale.order'),
    ),
  );
  // Never another LIS's milestone on this client's order (two LIS links numbering alike: its
  // order message was refused as another client's, its dead letter tells the operator).
  const out: StoredEvent[] = [];
  for (const m of left) if (!(await guard(m, accession, so, 'note'))) out.push(m);
  return out;
}

/**
 * Note the milestones left to the order (`milestonesLeftToTheOrder`) on each accession's sale order
 * (`targets`: the sale order and the event they came before), one note per order, lines already in
 * the chatter left out. Per accession: nothing when done, `error` when the note could not be posted
 * (the store or Odoo failed; the caller fails its events so that it is tried again), `note` when
 * Odoo refused it on its merits (said in the outcome, not retried).
 */
export async function noteMilestonesLeftToTheOrder(
  ctx: RuleContext,
  targets: Map<string, { so: OdooRecord; before: CanonicalEvent }>,
): Promise<Map<string, { error: unknown } | { note: string }>> {
  const out = new Map<string, { error: unknown } | { note: string }>();
  const pending = new Map<string, StoredEvent[]>();
  try {
    const guard = otherClientGuard(ctx);
    for (const [accession, t] of targets) {
      const left = await milestonesLeftToTheOrder(ctx, accession, t.so, t.before, guard);
      if (left.length > 0) pending.set(accession, left);
    }
  } catch (err) {
    for (const accession of targets.keys()) out.set(accession, { error: err });
    return out;
  }
  if (pending.size === 0) return out;
  let posted: Set<string>;
  try {
    posted = await notedMarkers(ctx.odoo, [...pending.keys()].map((a) => targets.get(a)!.so.id));
  } catch (err) {
    for (const accession of pending.keys()) out.set(accession, { error: err });
    return out;
  }
  await Promise.all(
    [...pending].map(async ([accession, list]) => {
      const left = list.filter((m) => !posted.has(noteMarker(m.event.idempotencyKey)));
      if (left.length === 0) return;
      try {
        await postMilestoneNote(ctx.odoo, targets.get(accession)!.so.id, left);
      } catch (err) {
        if (failureOf(err) !== 'permanent') {
          out.set(accession, { error: err });
          return;
        }
        ctx.log.warn('milestone notes before the order not posted', { accession, error: describeError(err) });
        out.set(accession, { note: `${left.length} milestone note(s) that came before the order not posted: ${describeError(err)}` });
      }
    }),
  );
  return out;
}

/**
 * A later `order.created` of the accession, not delivered yet, follows this milestone in the
 * order's partition, so it is posted after this one is resolved and finds it there
 * (order-created.ts `postEarlierMilestones`). A milestone of another partition (an analyzer's QC
 * run is keyed by specimen) holds no order back and keeps waiting for the sale order as before.
 */
async function orderFollows(ctx: RuleContext, e: StoredEvent, accession: string, cache: Map<string, StoredEvent[]>): Promise<boolean> {
  if (!ctx.events || e.event.partitionKey !== partitionKeys.order(accession)) return false;
  let orders = cache.get(accession);
  if (!orders) cache.set(accession, (orders = await ctx.events(accession, ['order.created'])));
  return orders.some((o) => o.event.id > e.event.id && o.event.partitionKey === e.event.partitionKey && o.state !== 'delivered' && o.state !== 'discarded');
}

/**
 * The note as HTML that reads exactly as its lines on every Odoo version: each line escaped, the
 * lines joined with `<br>`, in one paragraph. Odoo 16 stores a `message_post` body as HTML (a plain
 * text lost `<EDTA>` in a specimen id to the sanitizer and showed `&lt;` as `<`); 17+ escapes a
 * plain-text body and shows its line breaks as spaces (mail_thread.py `message_post`: 16 `'body':
 * body`, 17+ `'body': escape(body)`), so 17+ gets this HTML with `body_is_html` (17+, honoured for
 * internal users — the gateway's bot is one; 16 has no such parameter and is not sent it).
 */
export function noteBody(lines: string[]): string {
  return `<p>${lines.map(escapeHtml).join('<br>')}</p>`;
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** message_post's answer as the message id: a number, or a one-element id list (JSON-2). */
function messageIdOf(answer: unknown): number | undefined {
  const id = Array.isArray(answer) && answer.length === 1 ? (answer[0] as unknown) : answer;
  return typeof id === 'number' ? id : undefined;
}

export function noteMarker(idempotencyKey: string): string {
  return createHash('sha1').update(idempotencyKey).digest('hex').slice(0, 12);
}

function describe(e: StoredEvent): string {
  const at = e.event.occurredAt;
  switch (e.event.type) {
    case 'specimen.received': {
      const d = e.event.data as SpecimenReceivedData;
      return `${at} specimen ${d.specimenId}${d.specimenType ? ` (${d.specimenType})` : ''} received`;
    }
    case 'test.in_progress': {
      const d = e.event.data as TestInProgressData;
      return `${at} test ${d.testCode} in progress${d.specimenId ? ` on specimen ${d.specimenId}` : ''}`;
    }
    case 'test.completed': {
      const d = e.event.data as TestCompletedData;
      return `${at} test ${d.testCode} completed on specimen ${d.specimenId}${e.event.source.analyzer ? ` by ${e.event.source.analyzer}` : ''}${d.resultStatus ? ` (status ${d.resultStatus})` : ''}`;
    }
    default:
      return `${at} ${e.event.type}`;
  }
}
