import { afterEach, describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { idempotencyKey, partitionKeys } from '../../gateway/src/events/keys.ts';
import { noteMarker } from '../../gateway/src/relay/rules/milestone-notes.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import type { OdooEmulator } from '../odoo-emulator/index.ts';
import { startEmulator } from '../fixtures/relay/harness.ts';
import { consumableUsed, inbound, invoiceEligible, milestone, orderCancelled, orderCreated, postedConsumption, resultValidated, tempDir, thresholdBreached, waitFor } from '../fixtures/relay/helpers.ts';
import { exited, type SettleChild, spawnSettleChild } from '../fixtures/relay/settle-process.ts';

/**
 * kill -9 in the window between Odoo committing a write and the gateway recording the delivery,
 * one window at a time: the emulator commits the chosen call and never answers it, the relay
 * process (test/fixtures/relay/settle-child.ts) is killed with SIGKILL once Odoo has run it, and a
 * new process on the same store must find what the lost attempt wrote, also when it wrote only a
 * part of a multi-call operation: the sale order and not the add-on's line; the picking and not
 * its validation; the invoice and not its posting; a line on the draft invoice; the RFQ and not
 * the gateway's record of it. test/e2e/relay-kill9.test.ts kills at random moments and cannot say
 * which window it hit; these hit each one. Finance, stock, purchasing and the chatter must hold
 * every fact once.
 */
/** The settle time of the relay processes (180 s in production). */
const SETTLE_MS = 800;
const ORDERS = 4;
const RUNS = 12;

const spawnChild = (dataDir: string, url: string, relay: object): SettleChild => spawnSettleChild(dataDir, url, SETTLE_MS, relay);

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * A lab's morning: orders (one with a test cancelled, two with an add-on test and its own
 * eligibility), milestones, results, invoice eligibilities (in their own partition), consumption
 * on two analyzers and two reorder breaches.
 */
function workload(): DraftEvent[] {
  const events: DraftEvent[] = [];
  for (let i = 0; i < ORDERS; i++) {
    const acc = `KC${i}`;
    events.push(orderCreated(acc, 'CLINIC-A', ['GLU', 'CRP', 'TSH']));
    if (i === 1) events.push(orderCancelled(acc, ['TSH']));
    const tests = i === 1 ? ['GLU', 'CRP'] : ['GLU', 'CRP', 'TSH'];
    events.push(milestone('specimen.received', acc, i), milestone('test.completed', acc, i), ...tests.map((t) => resultValidated(acc, t)));
    events.push({ ...invoiceEligible(acc, tests), partitionKey: partitionKeys.invoice(acc) });
    if (i % 2 === 0) {
      events.push({ ...orderCreated(acc, 'CLINIC-A', ['HBA1C']), idempotencyKey: idempotencyKey('lis', 'order', acc, 'add-on') });
      events.push(resultValidated(acc, 'HBA1C'));
      events.push({ ...invoiceEligible(acc, ['HBA1C']), idempotencyKey: idempotencyKey('lis', 'invoice', acc, 'add-on'), partitionKey: partitionKeys.invoice(acc) });
    }
  }
  for (let n = 0; n < RUNS; n++) events.push(consumableUsed(`kc-${n % 2}`, n % 3 ? 'TIP-200' : 'RGT-GLU', 1, n));
  events.push(thresholdBreached('RGT-TSH', 4), thresholdBreached('CAL-GLU', 3));
  return events;
}

/** Every business fact once: what the test found held twice (or missing), as readable lines. */
function twice(emu: OdooEmulator, events: DraftEvent[], opts: { posted: boolean; runs: number }): string[] {
  const bad: string[] = [];
  const productName = (v: unknown): string => (Array.isArray(v) ? String(v[1]) : String(v));
  for (let i = 0; i < ORDERS; i++) {
    const acc = `KC${i}`;
    const orders = emu.records('sale.order', [['client_order_ref', '=', acc]]);
    if (orders.length !== 1) bad.push(`${acc}: ${orders.length} sale orders`);
    for (const so of orders) {
      const seen = new Map<string, number>();
      for (const l of emu.records('sale.order.line', [['order_id', '=', so.id]])) {
        seen.set(productName(l['product_id']), (seen.get(productName(l['product_id'])) ?? 0) + 1);
        if (Number(l['qty_invoiced']) > Number(l['product_uom_qty'])) bad.push(`${acc}: ${productName(l['product_id'])} invoiced ${String(l['qty_invoiced'])} of ${String(l['product_uom_qty'])}`);
      }
      for (const [p, n] of seen) if (n > 1) bad.push(`${acc}: sale order line ${p} ×${n}`);
    }
    const invoices = emu.records('account.move', [['move_type', '=', 'out_invoice'], ['ref', '=', `lab-gateway ${acc}`]]).filter((m) => m['state'] !== 'cancel');
    const billed = new Map<string, number>();
    for (const m of invoices) {
      if (opts.posted && m['state'] !== 'posted') bad.push(`${acc}: invoice ${m.id} ${String(m['state'])}`);
      for (const l of emu.records('account.move.line', [['move_id', '=', m.id]])) {
        if (l['display_type'] && l['display_type'] !== 'product') continue;
        billed.set(productName(l['product_id']), (billed.get(productName(l['product_id'])) ?? 0) + Number(l['quantity']));
      }
    }
    for (const [p, q] of billed) if (q !== 1) bad.push(`${acc}: ${p} billed ${q}`);
  }
  const bodies = emu.records('mail.message', [['model', '=', 'sale.order'], ['body', 'ilike', 'lgw:']]).map((m) => String(m['body'])).join('\n');
  for (const e of events.filter((x) => x.type === 'specimen.received' || x.type === 'test.completed')) {
    const n = bodies.split(`lgw:${noteMarker(e.idempotencyKey)}`).length - 1;
    if (n !== 1) bad.push(`${e.correlationId}: ${e.type} noted ×${n}`);
  }
  const posted = postedConsumption(emu);
  if (posted.duplicateHeads.length > 0) bad.push(`consumption segments posted twice: ${posted.duplicateHeads.length}`);
  if (posted.covered !== opts.runs || posted.quantity !== opts.runs) bad.push(`consumption: ${posted.covered} runs in pickings, ${posted.quantity} units drawn, for ${opts.runs} runs`);
  if (!posted.pickings.every((p) => p['state'] === 'done')) bad.push('a consumption picking not done');
  for (const code of ['RGT-TSH', 'CAL-GLU']) {
    const pid = emu.records('product.product', [['default_code', '=', code]])[0]!.id;
    const n = emu.count('purchase.order.line', [['product_id', '=', pid]]);
    if (n !== 1) bad.push(`${code}: ${n} RFQ lines`);
  }
  return bad;
}

/**
 * Stores the morning, runs a relay process until Odoo has committed the `nth` `model.method` call
 * (never answered), kills it with SIGKILL, runs `between` on the stopped store, and drains the
 * queue with a new process. Resolves with the emulator and every event stored.
 */
async function killedAfterCommit(version: 16 | 17 | 19, model: string, method: string, nth: number, relay: object, between?: (store: EventStore) => Promise<DraftEvent[]>): Promise<{ emu: OdooEmulator; events: DraftEvent[] }> {
  const { emu, url } = await startEmulator(version);
  cleanups.push(() => emu.close());
  const tmp = tempDir('review-s23-kill-');
  cleanups.push(tmp.cleanup);
  const events = workload();
  let store = await EventStore.open({ dataDir: tmp.dir, pruneIntervalMs: 0 });
  await store.commit(inbound(), events);
  await store.close();
  emu.faults.script({ model, method }, [...Array.from({ length: nth - 1 }, () => 'ok' as const), { kind: 'timeout-after-commit' }]);
  const committed = (): boolean => emu.calls.some((c) => c.model === model && c.method === method && c.fault === 'timeout-after-commit' && c.ran === true);

  const first = spawnChild(tmp.dir, url, relay);
  cleanups.push(async () => {
    first.child.kill('SIGKILL');
    await exited(first.child);
  });
  await waitFor(committed, 30_000, 5);
  first.child.kill('SIGKILL');
  await exited(first.child);

  if (between) {
    store = await EventStore.open({ dataDir: tmp.dir, pruneIntervalMs: 0, ambiguousSettleMs: SETTLE_MS });
    events.push(...(await between(store)));
    await store.close();
  }
  const second = spawnChild(tmp.dir, url, relay);
  cleanups.push(async () => {
    second.child.kill('SIGTERM');
    await exited(second.child);
  });
  await waitFor(() => {
    const s = second.stats();
    return s !== undefined && s['delivered']! + s['deadLettered']! === events.length && s['pending'] === 0 && s['retrying'] === 0 && s['inFlight'] === 0;
  }, 40_000, 50);
  expect(second.stats()!['deadLettered'], 'no event dead-lettered').toBe(0);
  return { emu, events };
}

const POSTING = { autoConfirm: true, invoicing: true };
const DRAFTS = { autoConfirm: false, invoicing: true };

/** Odoo's version, the call Odoo commits and never answers (the nth of its kind), what it writes, the relay's settings. */
type Window = [version: 16 | 17 | 19, model: string, method: string, nth: number, what: string, relay: { autoConfirm: boolean; invoicing: boolean }];

describe('the gateway killed after Odoo committed a write, before the delivery was recorded', () => {
  it.each<Window>([
    [17, 'sale.order', 'load', 1, 'the sale orders (with their lines)', POSTING],
    [17, 'sale.order.line', 'create', 1, "an add-on test's line on its sale order", POSTING],
    [17, 'sale.order', 'action_confirm', 1, 'the confirmation of the sale orders', POSTING],
    [17, 'sale.order', 'message_post', 1, 'a milestone note', POSTING],
    [17, 'stock.picking', 'create', 1, 'a consumption picking, not validated yet', POSTING],
    [17, 'account.move', 'load', 1, 'an invoice, not posted yet', POSTING],
    [17, 'account.move', 'action_post', 1, "an invoice's posting", POSTING],
    [17, 'account.move', 'write', 1, "an add-on's line on the draft invoice", DRAFTS],
    [17, 'purchase.order', 'load', 1, 'a new RFQ with its first line', POSTING],
    [17, 'purchase.order.line', 'load', 1, 'an RFQ line on the draft RFQ', POSTING],
    [16, 'stock.picking', 'button_validate', 1, "a consumption picking's validation", POSTING],
    [16, 'account.move', 'write', 1, "an add-on's line on the draft invoice", DRAFTS],
    [19, 'sale.order', 'load', 1, 'the sale orders (with their lines)', POSTING],
    [19, 'stock.picking', 'button_validate', 1, "a consumption picking's validation", POSTING],
    [19, 'account.move', 'write', 1, "an add-on's line on the draft invoice", DRAFTS],
  ])('Odoo %i, %s.%s #%i committed (%s): every fact once', async (version, model, method, nth, _what, relay) => {
    const { emu, events } = await killedAfterCommit(version, model, method, nth, relay);
    expect(twice(emu, events, { posted: relay.autoConfirm, runs: RUNS })).toEqual([]);
  }, 90_000);

  // A micro-batch: one picking for the analyzers' window. Killed once Odoo validated it, before any
  // of its events was marked; before the restart more runs came, on the same reagents and on a new
  // one, so the batch the new process leases is another one. None of the first is drawn again.
  it('Odoo 17, the consumption picking validated, more runs stored before the restart: each run drawn once', async () => {
    const more = Array.from({ length: 6 }, (_, k) => consumableUsed(`kc-${k % 2}`, k % 3 ? 'TIP-200' : 'CUV-01', 1, 100 + k));
    const { emu, events } = await killedAfterCommit(17, 'stock.picking', 'button_validate', 1, POSTING, async (store) => {
      await store.commit(inbound(), more);
      return more;
    });
    expect(twice(emu, events, { posted: true, runs: RUNS + more.length })).toEqual([]);
  }, 90_000);
});
