import { createHash } from 'node:crypto';
import type { SpecimenReceivedData, TestCompletedData, TestInProgressData } from '../../events/types.ts';
import type { StoredEvent } from '../../store/types.ts';
import { searchRead } from '../odoo/odoo-calls.ts';
import { noSaleOrder, saleOrdersByAccession } from './sale-orders.ts';
import { fail, ok, type PostingRule, type RuleResult } from './types.ts';

/**
 * specimen.received / test.in_progress / test.completed → a note in the order's chatter, batched:
 * ONE `message_post` per order per batch (window), one line per milestone. Each line carries a
 * marker `[lgw:<hash of the idempotency key>]`; every batch first reads the orders' messages and
 * drops the lines already posted, so a note never appears twice. No patient data and no
 * result values in the note: ids, codes and times only.
 */
export const milestoneNotesRule: PostingRule = {
  name: 'milestone-notes',
  types: ['specimen.received', 'test.in_progress', 'test.completed'],
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
    const posted = new Set<string>();
    if (orders.size > 0) {
      const msgs = await searchRead(ctx.odoo, 'mail.message', [['model', '=', 'sale.order'], ['res_id', 'in', [...orders.values()].map((o) => o.id)], ['body', 'ilike', 'lgw:']], ['id', 'body']);
      for (const m of msgs) for (const match of String(m['body'] ?? '').matchAll(/lgw:([0-9a-f]{12})/g)) posted.add(match[1]!);
    }
    const bySo = new Map<number, Array<{ e: StoredEvent; line: string }>>();
    for (const { e, accession } of withOrder) {
      const so = orders.get(accession);
      if (!so) {
        results.set(e.event.id, fail(noSaleOrder(accession)));
        continue;
      }
      const marker = noteMarker(e.event.idempotencyKey);
      if (posted.has(marker)) {
        results.set(e.event.id, ok([{ model: 'sale.order', id: so.id, name: String(so['name'] ?? '') }], 'note already posted'));
        continue;
      }
      const list = bySo.get(so.id) ?? [];
      list.push({ e, line: `${describe(e)} [lgw:${marker}]` });
      bySo.set(so.id, list);
    }
    // message_post acts on one record: one call per order, a few in parallel (bounded so a large
    // batch does not queue behind the HTTP agent's sockets and time out there).
    const queue = [...bySo];
    const post = async ([soId, items]: [number, Array<{ e: StoredEvent; line: string }>]): Promise<void> => {
      try {
        const body = noteBody(['Lab milestones', ...items.map((i) => `• ${i.line}`)]);
        // The new mail.message: its id over JSON-RPC (call_kw downgrades the record), `[id]` over
        // JSON-2 (Odoo 19 serialises a returned record as its id list, odoo-api.md A.4).
        const params = { body, message_type: 'comment', subtype_xmlid: 'mail.mt_note', ...(ctx.odoo.serverVersion >= 17 ? { body_is_html: true } : {}) };
        const answer = await ctx.odoo.call<unknown>('sale.order', 'message_post', params, { ids: [soId] });
        const msgId = messageIdOf(answer);
        for (const i of items) results.set(i.e.event.id, ok([{ model: 'sale.order', id: soId }, ...(msgId !== undefined ? [{ model: 'mail.message', id: msgId }] : [])]));
      } catch (err) {
        for (const i of items) results.set(i.e.event.id, fail(err));
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(NOTE_PARALLELISM, queue.length) }, async () => {
        for (let next = queue.shift(); next; next = queue.shift()) await post(next);
      }),
    );
    return results;
  },
};

const NOTE_PARALLELISM = 8;

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
