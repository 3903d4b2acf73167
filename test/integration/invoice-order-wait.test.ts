import { describe, expect, it, vi } from 'vitest';
import type { Outcome, StoredEvent } from '../../gateway/src/store/types.ts';
import type { OdooEmulator } from '../odoo-emulator/index.ts';
import { billingRig, invoices, orm, oru, productCode, saleLines, saleOrders, type BillingRig } from '../fixtures/relay/billing-rig.ts';

/**
 * `invoice.eligible` has a partition of its own (`invoice:<accession>`), so the store's FIFO no
 * longer puts it behind its order's `order.created`. The relay's invoice rule waits for the order's
 * earlier `order.created` / `order.cancelled` events itself (relay README, billing): while one is
 * still queued the invoice is retried without being charged an attempt; behind a dead letter it is
 * retried as usual and dead-lettered after relay.maxAttempts, naming the event to resolve first.
 */

const POLL = { timeout: 20_000, interval: 10 };

/** Every outcome the relay records, per event id, in the order the store received them. */
function recordOutcomes(rig: BillingRig): Map<string, Outcome[]> {
  const seen = new Map<string, Outcome[]>();
  const complete = rig.store.complete.bind(rig.store);
  vi.spyOn(rig.store, 'complete').mockImplementation(async (lease, outcomes) => {
    for (const o of outcomes) seen.set(o.eventId, [...(seen.get(o.eventId) ?? []), o]);
    return complete(lease, outcomes);
  });
  return seen;
}

async function eventOf(rig: BillingRig, accession: string, type: string): Promise<StoredEvent> {
  const e = (await rig.events(accession)).find((x) => x.event.type === type);
  if (!e) throw new Error(`no ${type} stored for ${accession}`);
  return e;
}

/** The product lines of the accession's customer invoices, with the order lines they bill. */
function invoiceLines(emu: OdooEmulator, accession: string): Array<{ move: number; code: string; quantity: number; price: number; saleLines: number[] }> {
  const ids = invoices(emu, accession).map((m) => m.id);
  return emu
    .records('account.move.line', [['move_id', 'in', ids]], { fields: ['move_id', 'product_id', 'quantity', 'price_unit', 'display_type', 'sale_line_ids'] })
    .filter((l) => !l['display_type'] || l['display_type'] === 'product')
    .map((l) => ({
      move: Array.isArray(l['move_id']) ? (l['move_id'][0] as number) : (l['move_id'] as number),
      code: productCode(emu, l['product_id']),
      quantity: Number(l['quantity']),
      price: Number(l['price_unit']),
      saleLines: ((l['sale_line_ids'] as number[] | undefined) ?? []).slice().sort((a, b) => a - b),
    }));
}

const invoiceWrites = (emu: OdooEmulator): number => emu.calls.filter((c) => c.model === 'account.move' && c.method !== undefined && ['load', 'create', 'write'].includes(c.method)).length;

describe('an invoice waits for its order (invoice partition of its own)', () => {
  it('waits uncharged while its order.created is still queued, then bills exactly the order\'s lines once', async () => {
    // Plenty of attempts for the order: it is held back by Odoo, not given up on.
    const rig = await billingRig({ maxAttempts: 1000 });
    const acc = 'W-100';
    // Odoo refuses the sale order's creation for a while (row lock: a transient failure of this event).
    rig.emu.faults.inject({ match: { model: 'sale.order', method: 'load' }, times: Infinity, action: { kind: 'lock' } });
    const outcomes = recordOutcomes(rig);

    await rig.receive(orm(acc, ['GLU', 'CRP']));
    await rig.receive(oru(acc, 'GLU'));
    await rig.receive(oru(acc, 'CRP'));
    const invoice = await eventOf(rig, acc, 'invoice.eligible');
    const order = await eventOf(rig, acc, 'order.created');
    expect(invoice.event.partitionKey).toBe(`invoice:${acc}`);
    expect(order.event.partitionKey).toBe(`order:${acc}`);
    expect(invoice.event.id > order.event.id, 'the invoice is stored after its order').toBe(true);

    const settled = rig.settle(acc);
    settled.catch(() => undefined);

    // The invoice becomes due and is tried several times while the order is still refused.
    await expect.poll(() => (outcomes.get(invoice.event.id) ?? []).length, POLL).toBeGreaterThanOrEqual(3);
    await expect.poll(async () => (await eventOf(rig, acc, 'order.created')).attempts, POLL).toBeGreaterThanOrEqual(2);

    // Meanwhile: the order is not delivered, the invoice is not charged, nothing is invoiced.
    const waiting = await eventOf(rig, acc, 'invoice.eligible');
    expect((await eventOf(rig, acc, 'order.created')).state).not.toBe('delivered');
    expect(waiting.state).not.toBe('delivered');
    expect(waiting.state).not.toBe('dead');
    expect(waiting.attempts, 'no attempt charged while the order is queued').toBe(0);
    expect(waiting.lastError).toMatch(/not in Odoo yet \(order\.created first\)/);
    const whileHeld = outcomes.get(invoice.event.id)!;
    for (const o of whileHeld) {
      expect(o).toMatchObject({ outcome: 'retry', free: true });
      expect(o.outcome === 'retry' ? o.error : '').toMatch(new RegExp(`accession ${acc}: \\d+ earlier event\\(s\\) of the order not in Odoo yet \\(order\\.created first\\)`));
    }
    expect(saleOrders(rig.emu, acc)).toHaveLength(0);
    expect(invoices(rig.emu, acc)).toHaveLength(0);
    expect(invoiceWrites(rig.emu), 'no invoice written in Odoo while the order waits').toBe(0);

    // Odoo takes the order again.
    rig.emu.faults.clear();
    await settled;

    const evs = await rig.events(acc);
    expect(evs.filter((e) => e.state !== 'delivered').map((e) => `${e.event.type}: ${e.state} ${e.lastError ?? ''}`)).toEqual([]);
    const done = await eventOf(rig, acc, 'invoice.eligible');
    expect(done.attempts, 'only the delivering attempt is counted').toBe(1);
    const all = outcomes.get(invoice.event.id)!;
    expect(all.at(-1)?.outcome).toBe('delivered');
    expect(all.slice(0, -1).every((o) => o.outcome === 'retry' && o.free === true)).toBe(true);

    // One sale order with the two tests, one draft invoice with exactly those lines, linked to them.
    expect(saleOrders(rig.emu, acc)).toHaveLength(1);
    const sol = saleLines(rig.emu, acc);
    expect(sol.map((l) => l.code).sort()).toEqual(['CRP', 'GLU']);
    const inv = invoices(rig.emu, acc);
    expect(inv).toHaveLength(1);
    expect(inv[0]!['state']).toBe('draft');
    const lines = invoiceLines(rig.emu, acc);
    expect(lines.map(({ code, quantity, price, saleLines: linked }) => ({ code, quantity, price, saleLines: linked })).sort((a, b) => a.code.localeCompare(b.code))).toEqual(
      sol.map((l) => ({ code: l.code, quantity: l.qty, price: l.price, saleLines: [l.id] })).sort((a, b) => a.code.localeCompare(b.code)),
    );
    expect(lines.every((l) => l.move === inv[0]!.id)).toBe(true);
    // Odoo counts the order's lines invoiced: nothing left for "Create Invoice".
    expect(saleLines(rig.emu, acc).map((l) => ({ code: l.code, invoiced: l.invoiced }))).toEqual(sol.map((l) => ({ code: l.code, invoiced: 1 })));
    expect(done.odoo?.[0]).toMatchObject({ model: 'account.move', id: inv[0]!.id });
  });

  it('behind a dead-lettered order.created it is charged each time and dead-lettered after relay.maxAttempts, naming the order event', async () => {
    const maxAttempts = 4;
    const rig = await billingRig({ maxAttempts });
    const acc = 'W-200';
    const outcomes = recordOutcomes(rig);

    // A test code with no Odoo product: the order is a dead letter (mapping missing) at once.
    await rig.receive(orm(acc, ['NOPROD-9']));
    await rig.receive(oru(acc, 'NOPROD-9'));
    const invoice = await eventOf(rig, acc, 'invoice.eligible');
    const order = await eventOf(rig, acc, 'order.created');
    expect(invoice.event.partitionKey).toBe(`invoice:${acc}`);

    await rig.settle(acc);

    const deadOrder = await eventOf(rig, acc, 'order.created');
    expect(deadOrder.state).toBe('dead');
    expect(deadOrder.deadReason).toMatch(/NOPROD-9/);

    const dead = await eventOf(rig, acc, 'invoice.eligible');
    expect(dead.state).toBe('dead');
    expect(dead.attempts, 'charged up to relay.maxAttempts').toBe(maxAttempts);
    // Readable, naming the event to resolve first.
    expect(dead.deadReason).toContain(`accession ${acc}`);
    expect(dead.deadReason).toContain(`order.created event ${order.event.id} is a dead letter`);
    expect(dead.deadReason).toMatch(/replay or discard it before this invoice/);
    expect(dead.deadReason).toMatch(new RegExp(`${maxAttempts} attempts`));

    // Each try behind the dead order was charged: maxAttempts − 1 charged retries, then dead.
    // (A try while the order was still in flight in the same round may have waited uncharged.)
    const all = outcomes.get(invoice.event.id)!;
    const charged = all.filter((o) => !(o.outcome === 'retry' && o.free === true));
    expect(charged.map((o) => o.outcome)).toEqual([...Array<string>(maxAttempts - 1).fill('retry'), 'dead']);
    for (const o of charged.slice(0, -1)) expect(o.outcome === 'retry' ? o.error : '').toContain(`order.created event ${order.event.id} is a dead letter`);
    expect(all.filter((o) => o.outcome === 'retry' && o.free === true).every((o) => o.outcome === 'retry' && /not in Odoo yet/.test(o.error))).toBe(true);

    expect(invoices(rig.emu, acc)).toHaveLength(0);
    expect(invoiceWrites(rig.emu)).toBe(0);
  });

  it('an order that exhausts its own attempts: the invoice waits uncharged until the order is dead, then is charged and dead-lettered', async () => {
    const maxAttempts = 3;
    const rig = await billingRig({ maxAttempts });
    const acc = 'W-300';
    // Odoo keeps refusing the sale order (row lock) until the order event gives up.
    rig.emu.faults.inject({ match: { model: 'sale.order', method: 'load' }, times: Infinity, action: { kind: 'lock' } });
    const outcomes = recordOutcomes(rig);

    await rig.receive(orm(acc, ['GLU']));
    await rig.receive(oru(acc, 'GLU'));
    const invoice = await eventOf(rig, acc, 'invoice.eligible');
    const order = await eventOf(rig, acc, 'order.created');

    await rig.settle(acc);

    const deadOrder = await eventOf(rig, acc, 'order.created');
    expect(deadOrder.state).toBe('dead');
    expect(deadOrder.deadReason).toMatch(new RegExp(`gave up after ${maxAttempts} attempts`));

    const dead = await eventOf(rig, acc, 'invoice.eligible');
    expect(dead.state).toBe('dead');
    expect(dead.attempts).toBe(maxAttempts);
    expect(dead.deadReason).toContain(`order.created event ${order.event.id} is a dead letter`);

    // Uncharged while the order was still retrying, charged only behind the dead letter.
    const all = outcomes.get(invoice.event.id)!;
    const free = all.filter((o) => o.outcome === 'retry' && o.free === true);
    const charged = all.filter((o) => !(o.outcome === 'retry' && o.free === true));
    expect(free.length, 'tried while the order was still queued').toBeGreaterThanOrEqual(1);
    expect(free.every((o) => o.outcome === 'retry' && /not in Odoo yet \(order\.created first\)/.test(o.error))).toBe(true);
    expect(charged.map((o) => o.outcome)).toEqual([...Array<string>(maxAttempts - 1).fill('retry'), 'dead']);
    const firstCharged = all.findIndex((o) => !(o.outcome === 'retry' && o.free === true));
    expect(all.slice(firstCharged).every((o) => !(o.outcome === 'retry' && o.free === true)), 'never uncharged again once the order is dead').toBe(true);

    expect(saleOrders(rig.emu, acc)).toHaveLength(0);
    expect(invoices(rig.emu, acc)).toHaveLength(0);
    expect(invoiceWrites(rig.emu)).toBe(0);
  });
});
