import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { GatewayConfig } from '../config/types.ts';
import { displayUrl } from '../config/display-url.ts';
import { describeError } from '../errors.ts';
import { BILLING_STATE_TYPES, billingState, inStoredOrder, testCancelled, type BillingState } from '../events/invoice-eligibility.ts';
import type { OrderCreatedData } from '../events/types.ts';
import { m2oId, searchRead, type OdooRecord } from '../relay/odoo/odoo-calls.ts';
import { OdooClient } from '../relay/odoo/odoo-client.ts';
import { saleOrdersByAccession, SALE_LINE_FIELDS } from '../relay/rules/sale-orders.ts';
import { Sandbox, sandboxFile } from '../sandbox.ts';
import type { StoredEvent } from '../store/types.ts';
import { args, configFrom, UsageError, type CliContext } from './main.ts';
import { baseUrl, call } from './remote.ts';

/**
 * `lab-gateway reconcile [--since DAYS] [--json] [--config FILE]`: for the accessions of which
 * the gateway received a billing event (order, cancellation, validated result, eligibility) in the
 * last DAYS days (7), what the LIS sent (the store's
 * events) against what Odoo holds (the accession's sale order, its lines, their delivered and
 * invoiced quantities). Read-only on both sides. Exit 0 all agree, 1 any difference, 2 the store
 * or Odoo cannot be read (README.md, "reconcile: the LIS against Odoo").
 *
 * The store is read through the running gateway's status API (GET /api/events): LevelDB's lock
 * keeps it to the gateway's process, and reading it at rest would need the message log replayed
 * (event bodies live there), which only opening the store as the gateway does (a write) gives.
 */

export type DifferenceKind = 'order-missing' | 'order-cancelled' | 'not-delivered' | 'cancelled-line' | 'billed-twice' | 'not-invoiced';

export interface Difference {
  kind: DifferenceKind;
  test?: string;
  explanation: string;
  action: string;
}

export interface ReconcileReport {
  since: string;
  odoo: string;
  invoicing: boolean;
  /**
   * When the period reaches further back than `store.retentionDays`: the time before which the
   * store keeps only the orders not billed in full (billing's hold), so the orders received then and
   * billed in full were not checked. Absent when the store holds the whole period.
   */
  notCheckedBefore?: string;
  retentionDays: number;
  checked: number;
  agree: number;
  differ: number;
  orders: Array<{ accession: string; saleOrder?: string; differences: Difference[] }>;
  /**
   * Tests eligible for invoicing that finance credited in Odoo (a credit note linked to the line):
   * finance's decision, not a difference (the gateway does not bill them again either).
   */
  credited: Array<{ accession: string; saleOrder: string; test: string; creditNotes: string[] }>;
}

/** The store or Odoo could not be read: exit 2 with `message`. */
class Unreadable extends Error {}

const DAY_MS = 86_400_000;
const PAGE = 500;

export async function runReconcile(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = args(argv, { config: { type: 'string', short: 'c' }, since: { type: 'string' }, json: { type: 'boolean' } });
  const sinceText = values.since ?? '7';
  if (!/^[1-9][0-9]{0,4}$/.test(sinceText)) throw new UsageError(`--since must be a number of days, 1 or more (got "${sinceText}")`);
  const since = Date.now() - Number(sinceText) * DAY_MS;
  let config: GatewayConfig;
  try {
    config = configFrom(values.config, ctx);
  } catch (err) {
    ctx.err(`cannot reconcile: ${describeError(err)}`);
    return 2;
  }
  try {
    const report = await reconcile(config, values.config, since, Number(sinceText));
    if (values.json) ctx.out(JSON.stringify(report, null, 2));
    else printReport(report, ctx);
    return report.differ > 0 ? 1 : 0;
  } catch (err) {
    // Anything else that stops the report (the sandbox copy cannot be served, say) is no
    // difference found: exit 2 too, never 1.
    ctx.err(err instanceof Unreadable ? err.message : `cannot reconcile: ${describeError(err)}`);
    return 2;
  }
}

async function reconcile(config: GatewayConfig, configFile: string | undefined, since: number, days: number): Promise<ReconcileReport> {
  const api = baseUrl({ config: configFile });
  // Retention prunes delivered events past store.retentionDays once an order is billed in full:
  // before that time the store no longer holds every order of the period.
  const retainedFrom = since + Math.max(0, days - config.store.retentionDays) * DAY_MS;
  const store = new StoreOverApi(api);
  const accessions = await store.billedSince(since);
  const history = new Map<string, StoredEvent[]>();
  for (const acc of accessions) history.set(acc, await store.eventsOf(acc));
  const odoo = await openOdoo(config);
  try {
    const found = await odoo.read(accessions);
    const report: ReconcileReport = {
      since: new Date(since).toISOString(),
      odoo: odoo.label,
      invoicing: config.relay.invoicing,
      ...(since < retainedFrom ? { notCheckedBefore: new Date(retainedFrom).toISOString() } : {}),
      retentionDays: config.store.retentionDays,
      checked: accessions.length,
      agree: 0,
      differ: 0,
      orders: [],
      credited: [],
    };
    for (const acc of accessions) {
      const so = found.orders.get(acc);
      const credited: ReconcileReport['credited'] = [];
      const differences = compare(acc, history.get(acc) ?? [], so, so ? found.lines.get(so.id) ?? [] : [], config.relay.invoicing, credited);
      report.credited.push(...credited);
      if (differences.length === 0) report.agree++;
      else {
        report.differ++;
        report.orders.push({ accession: acc, ...(so ? { saleOrder: String(so['name'] ?? so.id) } : {}), differences });
      }
    }
    return report;
  } finally {
    await odoo.close();
  }
}

/** The running gateway's store, read over its status API (GET /api/events). */
class StoreOverApi {
  readonly base: string;

  constructor(base: string) {
    this.base = base;
  }

  async #get(query: string): Promise<{ events: StoredEvent[]; next: string | null }> {
    try {
      return (await call(`${this.base}/api/events?${query}`)) as { events: StoredEvent[]; next: string | null };
    } catch (err) {
      throw new Unreadable(`cannot read the store: ${describeError(err)}. The store is read through the running gateway's status API (LevelDB lets only the gateway's process open it): start the gateway, or name its configuration with --config, and run reconcile again.`);
    }
  }

  /**
   * Accessions with a billing event (an order, a cancellation, a validated result, an eligibility)
   * received since `since` (epoch ms), in the order received. Not only order.created: an order
   * placed before the period whose result, and so its invoice, came in it (a culture validated
   * weeks later) is billed in the period. Before, such an order was checked by no period after the
   * one it was placed in, when there was nothing to invoice yet.
   */
  async billedSince(since: number): Promise<string[]> {
    const out = new Set<string>();
    // Event ids begin with 12 hex digits of their receipt's milliseconds (ids.ts): the listing
    // starts there. One walk of every type (a type filter walks the same index once per type).
    let after: string | null = since.toString(16).padStart(12, '0');
    while (after !== null) {
      const page = await this.#get(`limit=${PAGE}&after=${encodeURIComponent(after)}`);
      for (const e of page.events) {
        if (!(BILLING_STATE_TYPES as readonly string[]).includes(e.event.type) || Date.parse(e.event.receivedAt) < since) continue;
        const acc = (e.event.data as Partial<OrderCreatedData>).accession ?? e.event.correlationId;
        if (acc) out.add(acc);
      }
      after = page.next;
    }
    return [...out];
  }

  /** Every stored event of the accession (all types, every state). */
  async eventsOf(accession: string): Promise<StoredEvent[]> {
    const out: StoredEvent[] = [];
    let after: string | null = '';
    while (after !== null) {
      const page = await this.#get(`correlationId=${encodeURIComponent(accession)}&limit=${PAGE}${after ? `&after=${encodeURIComponent(after)}` : ''}`);
      out.push(...page.events);
      after = page.next;
    }
    return out;
  }
}

interface SaleLine {
  code: string;
  qty: number;
  delivered: number;
  invoiced: number;
  /** Names of the credit notes (out_refund, not cancelled) among the line's invoice lines. */
  creditNotes: string[];
}

interface OdooSide {
  label: string;
  read(accessions: string[]): Promise<{ orders: Map<string, OdooRecord>; lines: Map<number, SaleLine[]> }>;
  close(): Promise<void>;
}

/**
 * The configured Odoo, or, without `odoo.url`, a copy of the sandbox file served by an emulator
 * of this process (the file itself is not opened for writing: the running gateway owns it).
 * Reads only: search_read, read and `check_object_reference`, as the relay finds an order.
 */
async function openOdoo(config: GatewayConfig): Promise<OdooSide> {
  let client: OdooClient;
  let label: string;
  let cleanup = async (): Promise<void> => undefined;
  if (config.odoo.url) {
    label = displayUrl(config.odoo.url);
    try {
      client = OdooClient.fromConfig(config.odoo);
    } catch (err) {
      throw new Unreadable(`cannot read Odoo at ${label}: ${describeError(err)}`);
    }
  } else {
    const file = sandboxFile(config.gateway.dataDir);
    label = `sandbox (${file})`;
    if (!existsSync(file)) throw new Unreadable(`cannot read Odoo: no sandbox records yet (${file} does not exist; start the gateway without odoo.url first)`);
    const copy = mkdtempSync(path.join(tmpdir(), 'lab-gateway-reconcile-'));
    mkdirSync(path.dirname(sandboxFile(copy)), { recursive: true });
    copyFileSync(file, sandboxFile(copy));
    const sandbox = new Sandbox(copy, config.odoo);
    await sandbox.start();
    client = sandbox.client(config.odoo);
    cleanup = async () => {
      await sandbox.close();
      rmSync(copy, { recursive: true, force: true });
    };
  }
  const close = async (): Promise<void> => {
    client.close();
    await cleanup();
  };
  const failed = (err: unknown): Unreadable => new Unreadable(`cannot read Odoo at ${label}: ${describeError(err)}`);
  try {
    await client.connect();
  } catch (err) {
    await close();
    throw failed(err);
  }
  return {
    label,
    close,
    async read(accessions) {
      try {
        const orders = new Map<string, OdooRecord>();
        for (let i = 0; i < accessions.length; i += 100) {
          for (const [acc, so] of await saleOrdersByAccession(client, accessions.slice(i, i + 100))) orders.set(acc, so);
        }
        const ids = [...new Set([...orders.values()].map((so) => so.id))];
        const rows: OdooRecord[] = [];
        for (let i = 0; i < ids.length; i += 200) rows.push(...(await searchRead(client, 'sale.order.line', [['order_id', 'in', ids.slice(i, i + 200)]], [...SALE_LINE_FIELDS, 'invoice_lines'], { order: 'id' })));
        // The credit notes among the lines' invoice lines (a test finance credited: qty_invoiced back to 0).
        const invoiceLineIds = [...new Set(rows.flatMap((l) => (Array.isArray(l['invoice_lines']) ? (l['invoice_lines'] as number[]) : [])))];
        const moveOfLine = new Map<number, number>();
        for (let i = 0; i < invoiceLineIds.length; i += 200) {
          for (const il of await searchRead(client, 'account.move.line', [['id', 'in', invoiceLineIds.slice(i, i + 200)]], ['id', 'move_id'])) {
            const move = m2oId(il['move_id']);
            if (move !== undefined) moveOfLine.set(il.id, move);
          }
        }
        const moveIds = [...new Set(moveOfLine.values())];
        const creditNoteName = new Map<number, string>();
        for (let i = 0; i < moveIds.length; i += 200) {
          for (const m of await searchRead(client, 'account.move', [['id', 'in', moveIds.slice(i, i + 200)]], ['id', 'name', 'move_type', 'state'])) {
            if (m['move_type'] === 'out_refund' && m['state'] !== 'cancel') creditNoteName.set(m.id, typeof m['name'] === 'string' && m['name'] !== '/' ? m['name'] : `credit note ${m.id} (draft)`);
          }
        }
        const productIds = [...new Set(rows.map((l) => m2oId(l['product_id'])).filter((id): id is number => id !== undefined))];
        const codes = new Map<number, string>();
        for (let i = 0; i < productIds.length; i += 200) {
          const products = await searchRead(client, 'product.product', [['id', 'in', productIds.slice(i, i + 200)]], ['id', 'default_code'], { context: { active_test: false } });
          for (const p of products) if (typeof p['default_code'] === 'string') codes.set(p.id, p['default_code']);
        }
        const lines = new Map<number, SaleLine[]>();
        for (const l of rows) {
          if (l['display_type']) continue;
          const so = m2oId(l['order_id']);
          const code = codes.get(m2oId(l['product_id']) ?? -1);
          if (so === undefined || code === undefined) continue;
          const list = lines.get(so) ?? [];
          const creditNotes = [...new Set((Array.isArray(l['invoice_lines']) ? (l['invoice_lines'] as number[]) : []).flatMap((id) => creditNoteName.get(moveOfLine.get(id) ?? -1) ?? []))];
          list.push({ code, qty: Number(l['product_uom_qty'] ?? 0), delivered: Number(l['qty_delivered'] ?? 0), invoiced: Number(l['qty_invoiced'] ?? 0), creditNotes });
          lines.set(so, list);
        }
        return { orders, lines };
      } catch (err) {
        throw failed(err);
      }
    },
  };
}

/** "queued (retrying, 3 attempts: <error>)" etc.: where the gateway's event stands, in words. */
function eventState(e: StoredEvent | undefined): string {
  if (!e) return 'not in the store';
  switch (e.state) {
    case 'pending':
    case 'inflight':
    case 'retrying':
      return `still queued in the gateway (${e.state}${e.attempts ? `, ${e.attempts} attempt(s)` : ''}${e.lastError ? `: ${e.lastError}` : ''})`;
    case 'dead':
      return `a dead letter in the gateway (${e.deadReason ?? e.lastError ?? 'no reason kept'})`;
    case 'discarded':
      return `discarded by an operator${e.audit?.length ? ` (${e.audit.at(-1)!.reason ?? e.audit.at(-1)!.action})` : ''}`;
    case 'delivered':
      return `delivered by the gateway${e.deliveredAt ? ` at ${e.deliveredAt}` : ''}`;
  }
}

/** What to do about an event in that state when Odoo lacks its effect. */
function actionFor(e: StoredEvent | undefined, whenDelivered: string, whenDiscarded = 'an operator discarded it on purpose; if it is billable after all, have the LIS send it again'): string {
  if (!e) return 'nothing in the gateway sends it: ask the LIS to send it again';
  switch (e.state) {
    case 'pending':
    case 'inflight':
    case 'retrying':
      return 'nothing to do if it goes out soon; if it stays queued, see `lab-gateway status` (Odoo reachable? relay paused?) and `lab-gateway events list`';
    case 'dead':
      return `fix the cause named, then \`lab-gateway events replay ${e.event.id}\``;
    case 'discarded':
      return whenDiscarded;
    case 'delivered':
      return whenDelivered;
  }
}

function latest(events: StoredEvent[], type: string, test?: string): StoredEvent | undefined {
  return events.filter((e) => e.event.type === type && (test === undefined || (e.event.data as { testCode?: string }).testCode === test)).at(-1);
}

/**
 * The differences of one accession: its stored events (every type) against its sale order and
 * lines (undefined / empty when Odoo has none).
 */
function compare(accession: string, stored: StoredEvent[], so: OdooRecord | undefined, lines: SaleLine[], invoicing: boolean, credited: ReconcileReport['credited']): Difference[] {
  const events = inStoredOrder(stored);
  const billing: BillingState = billingState(events.filter((e) => (BILLING_STATE_TYPES as readonly string[]).includes(e.event.type)).map((e) => e.event));
  const out: Difference[] = [];
  if (!so) {
    // Nothing is open (the LIS cancelled every test): nothing to bill, nothing to hold.
    if (billing.open.size === 0) return out;
    const order = latest(events, 'order.created');
    out.push({
      kind: 'order-missing',
      explanation: `the LIS sent order ${accession} (${[...billing.open.keys()].join(', ')}); Odoo has no sale order for it; the order is ${eventState(order)}${order?.state === 'delivered' ? ', so it is not in Odoo: deleted in Odoo?' : ''}`,
      action: actionFor(order, 'find out who deleted the sale order in Odoo and why; if the order stands, restore it in Odoo or have the LIS send the order again under a new message id'),
    });
    return out;
  }
  const name = String(so['name'] ?? so.id);
  const cancelledSo = so['state'] === 'cancel';
  // The LIS's order stands and its sale order is cancelled in Odoo: nothing of it is billed (the
  // gateway cancels a sale order only when the LIS cancels every test, and brings it back when the
  // LIS orders again). Before, every check skipped a cancelled sale order: exit 0.
  if (cancelledSo && billing.open.size > 0) {
    const order = latest(events, 'order.created');
    out.push({
      kind: 'order-cancelled',
      explanation: `the LIS's order ${accession} stands (${[...billing.open.keys()].join(', ')}), but its sale order ${name} is cancelled in Odoo, so none of it will be billed; the LIS's latest order message is ${eventState(order)}`,
      action: actionFor(order, `find out who cancelled ${name} in Odoo and why; if the order stands, set it back to a quotation in Odoo (Set to Quotation) so that it is billed, else have the LIS cancel the order`),
    });
    return out;
  }
  const byCode = new Map<string, SaleLine>();
  for (const l of lines) {
    const sum = byCode.get(l.code) ?? { code: l.code, qty: 0, delivered: 0, invoiced: 0, creditNotes: [] };
    sum.qty += l.qty;
    sum.delivered += l.delivered;
    sum.invoiced += l.invoiced;
    sum.creditNotes.push(...l.creditNotes);
    byCode.set(l.code, sum);
  }
  for (const code of billing.open.keys()) {
    if (!billing.validated.has(code)) continue;
    const line = byCode.get(code);
    if (line && line.delivered > 0) continue;
    const result = latest(events, 'result.validated', code);
    out.push({
      kind: 'not-delivered',
      test: code,
      explanation: `${code} was validated in the LIS (the result is ${eventState(result)}), but ${line ? `its line on ${name} is not marked delivered in Odoo` : `${name} has no line for it in Odoo`}`,
      action: actionFor(result, `the line was changed in Odoo after the gateway marked it: set its delivered quantity back to ${line?.qty || 1} in Odoo, or find out why it was taken off`),
    });
  }
  if (!cancelledSo) {
    // A line at quantity 0 that an invoice still bills is a cancelled test billed: the gateway
    // takes the line to 0 and leaves a posted invoice to finance (rules/order-cancelled.ts).
    for (const line of byCode.values()) {
      if ((line.qty <= 0 && line.invoiced <= 0) || billing.open.has(line.code) || !testCancelled(billing, line.code)) continue;
      const cancel = latest(events, 'order.cancelled');
      const billed = line.invoiced > 0;
      const credit = `issue a credit note for ${line.code} in Odoo (or take it off the draft invoice)${line.qty > 0 ? ' and set its line to 0' : ''}, unless the test was done and is billable`;
      out.push({
        kind: 'cancelled-line',
        test: line.code,
        explanation: `${line.code} was cancelled in the LIS, but ${billed ? `an invoice still bills it (${line.invoiced} invoiced on ${name}, line quantity ${line.qty})` : `${name} still has a line for it in Odoo (quantity ${line.qty})`}; the cancellation is ${eventState(cancel)}`,
        action: billed && cancel?.state !== 'dead' && cancel?.state !== 'pending' && cancel?.state !== 'inflight' && cancel?.state !== 'retrying'
          ? credit
          : actionFor(cancel, 'the line was added again in Odoo after the cancellation: remove it (or set its quantity to 0) unless the test was done and is billable'),
      });
    }
  }
  // The LIS orders a test once (the gateway's line has quantity 1, whatever resends and re-orders
  // came): more than 1 invoiced is a test billed twice, even when someone raised the line's
  // quantity in Odoo to match (measured against Odoo's own quantity, that read as agreeing).
  for (const line of byCode.values()) {
    if (line.invoiced <= 1) continue;
    out.push({
      kind: 'billed-twice',
      test: line.code,
      explanation: `${line.code} of ${name} is invoiced ${line.invoiced} times, but the LIS ordered it once${line.qty > 1 ? ` (its line's quantity in Odoo was raised to ${line.qty})` : ''}; counted over the invoice lines linked to the order line, drafts included, credit notes taken off`,
      action: `remove the extra line from a draft invoice, or issue a credit note for a posted one${line.qty > 1 ? `; and set the line's quantity back to 1 unless the test was really done ${line.qty} times` : ''}`,
    });
  }
  if (invoicing && !cancelledSo) {
    const eligible = latest(events, 'invoice.eligible');
    for (const code of billing.billed) {
      if (!billing.open.has(code)) continue;
      const line = byCode.get(code);
      if (line && line.invoiced > 0) continue;
      // Invoiced, then credited by finance: its decision (the gateway does not bill it again,
      // rules/invoice-eligible.ts); listed apart, not a difference. Before, it read as "the draft
      // invoice was deleted: create the invoice", asking finance to bill what it had waived.
      if (line && line.creditNotes.length > 0) {
        credited.push({ accession, saleOrder: name, test: code, creditNotes: line.creditNotes });
        continue;
      }
      out.push({
        kind: 'not-invoiced',
        test: code,
        explanation: `${code} is eligible for invoicing (relay.invoicing is on; the eligibility is ${eventState(eligible)}), but no invoice line in Odoo bills ${line ? `its line on ${name}` : `it (${name} has no line for it)`}`,
        // The gateway derives the eligibility itself, once: the LIS cannot send it again.
        action: actionFor(
          eligible,
          'the draft invoice (or its line) was deleted or cancelled in Odoo after the gateway made it: create the invoice from the sale order in Odoo, or find out why it was taken off',
          'an operator discarded the invoicing on purpose: if the test is billable, create the invoice from the sale order in Odoo (Create Invoice); if it is not, nothing to do',
        ),
      });
    }
  }
  return out;
}

function printReport(report: ReconcileReport, ctx: CliContext): void {
  ctx.out(`reconcile: orders with an order, cancellation, validated result or invoice eligibility the gateway received since ${report.since}, against ${report.odoo}${report.invoicing ? '' : ' (relay.invoicing off: invoices not expected)'}`);
  for (const o of report.orders) {
    ctx.out(`\n${o.accession}${o.saleOrder ? ` (${o.saleOrder})` : ''}:`);
    for (const d of o.differences) {
      ctx.out(`  - ${d.explanation}`);
      ctx.out(`    what to do: ${d.action}`);
    }
  }
  if (report.credited.length > 0) {
    ctx.out('\ncredited by finance in Odoo (a credit note; not a difference, the gateway does not bill them again):');
    for (const c of report.credited) ctx.out(`  ${c.accession} (${c.saleOrder}) ${c.test}: ${c.creditNotes.join(', ')}`);
  }
  // On the last line, where a script or a reader looks: a period partly pruned is no "all agree".
  const partial = report.notCheckedBefore
    ? `; orders received before ${report.notCheckedBefore} and billed in full have left the gateway's store (store.retentionDays: ${report.retentionDays}) and were not checked: reconcile that part of the period with Odoo's own reports, or use --since ${report.retentionDays} or less`
    : '';
  ctx.out(`\n${report.checked} orders checked, ${report.agree} in agreement, ${report.differ} with differences${partial}`);
}
