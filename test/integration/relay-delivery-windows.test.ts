import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../gateway/src/log.ts';
import { CONSUMPTION_ORIGIN_PREFIX } from '../../gateway/src/relay/rules/consumable-used.ts';
import { noteMarker } from '../../gateway/src/relay/rules/milestone-notes.ts';
import { StockWatch } from '../../gateway/src/relay/stock-watch.ts';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, milestone, orderCreated, postedConsumption, resultValidated, waitFor } from '../fixtures/relay/helpers.ts';

/**
 * The relay's crash and failure windows: a write Odoo runs after the client gave up on it, a
 * delivery the store could not record, a breach whose commit failed. Each test asserts on the
 * emulator's records (or the store's queue); each failed before its fix.
 */
let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** Exactly one sale order for `ref`, with exactly `count` lines, also after a late write had every chance to land. */
async function expectOneOrderWithLines(ref: string, count: number): Promise<void> {
  const lines = (): number => {
    const [so] = rig!.emu.records('sale.order', [['client_order_ref', '=', ref]]);
    return so ? rig!.emu.count('sale.order.line', [['order_id', '=', so.id]]) : 0;
  };
  await showsUp(() => lines() > count);
  expect(rig!.emu.count('sale.order', [['client_order_ref', '=', ref]])).toBe(1);
  expect(lines()).toBe(count);
}

/** Poll for a bad outcome for a while; returns whether it showed up (then the caller's assertion fails). */
async function showsUp(cond: () => boolean, ms = 8_000): Promise<boolean> {
  return waitFor(cond, ms, 50).then(
    () => true,
    () => false,
  );
}

/** The settle time these tests give an ambiguous write: longer than the emulator holds it (1.5 s). */
const SETTLE_MS = 3_000;

describe('a request the client gave up on still lands after the ambiguous retry', () => {
  // The emulator holds the request past the client's timeout (a busy worker, a proxy queue) and then
  // runs it. The relay classifies the timeout as ambiguous. Retried after the store's short backoff,
  // the look-up before resending could not see a request that had not run yet, so both landed; the
  // relay now waits out the settle time (RelayOptions.ambiguousSettleMs, 180 s by default, past
  // Odoo's limit_time_real) before the look-up.
  it('order.created: one sale order with exactly its lines', async () => {
    rig = await makeRig(17, { odoo: { timeoutMs: 300 }, relayOptions: { ambiguousSettleMs: SETTLE_MS } });
    await waitFor(() => rig!.client.state === 'connected');
    rig.emu.faults.next(1, 'sale.order', 'load').timeout(1_500);
    await rig.commit([orderCreated('LATE1', 'CLINIC-A', ['GLU', 'CRP'])]);
    await rig.waitDrained();
    await expectOneOrderWithLines('LATE1', 2);
  });

  it('milestone note: one chatter line per milestone', async () => {
    rig = await makeRig(17, { odoo: { timeoutMs: 300 }, relayOptions: { ambiguousSettleMs: SETTLE_MS } });
    await waitFor(() => rig!.client.state === 'connected');
    await rig.commit([orderCreated('LATE2', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();
    rig.emu.faults.next(1, 'sale.order', 'message_post').timeout(1_500);
    const note = milestone('specimen.received', 'LATE2', 1);
    await rig.commit([note]);
    await rig.waitDrained();
    const marker = `lgw:${noteMarker(note.idempotencyKey)}`;
    const copies = (): number => rig!.emu.records('mail.message', [['body', 'ilike', marker]]).length;
    await showsUp(() => copies() > 1);
    expect(copies()).toBe(1);
  });

  it('consumption: one picking, each segment once', async () => {
    rig = await makeRig(17, { odoo: { timeoutMs: 300 }, relayOptions: { ambiguousSettleMs: SETTLE_MS } });
    await waitFor(() => rig!.client.state === 'connected');
    rig.emu.faults.next(1, 'stock.picking', 'create').timeout(1_500);
    await rig.commit([consumableUsed('an-late', 'TIP-200', 2, 1)]);
    await rig.waitDrained();
    const pickings = (): number => rig!.emu.count('stock.picking', [['origin', '=', `${CONSUMPTION_ORIGIN_PREFIX}an-late`]]);
    await showsUp(() => pickings() > 1);
    expect(postedConsumption(rig.emu).duplicateHeads).toEqual([]);
    expect(pickings()).toBe(1);
  });
});

describe("a proxy's 504 to a write that Odoo still runs", () => {
  // The front proxy stops waiting (504) while Odoo goes on and commits the write. Taken as the link
  // being down, the event was released and retried after the link's short back-off: the look-up
  // found nothing yet and the resend created a second order. Now the event is ambiguous, held for
  // the settle time, and charged no attempt (an Odoo answering 504 for days dead-letters nothing).
  it('order.created: one sale order with exactly its lines, and no attempt charged for the 504', async () => {
    rig = await makeRig(17, { relayOptions: { ambiguousSettleMs: SETTLE_MS } });
    await waitFor(() => rig!.client.state === 'connected');
    rig.emu.faults.next(1, 'sale.order', 'load').statusThenRun(504, 1_500);
    const [id] = await rig.commit([orderCreated('PROXY1', 'CLINIC-A', ['GLU', 'CRP'])]);
    await waitFor(async () => (await rig!.store.getEvent(id!))?.state === 'retrying');
    const held = await rig.store.getEvent(id!);
    expect(held).toMatchObject({ ambiguous: true, attempts: 0 });
    await rig.waitDrained();
    await expectOneOrderWithLines('PROXY1', 2);
  });
});

describe('the store fails to record a delivery, then recovers by itself', () => {
  // Odoo took the sale order; the completion write fails (EIO); the store's probe brings it back.
  // The lease stayed in LevelDB with its event in flight and no due entry, and the in-memory lease
  // was gone: nothing leased the partition again until a restart. The probe now reopens it.
  it("the order's partition keeps flowing (later events of the order reach Odoo)", async () => {
    rig = await makeRig(17);
    await waitFor(() => rig!.client.state === 'connected');
    rig.emu.faults.next(1, 'sale.order', 'load').latency(400);
    const [createdId] = await rig.commit([orderCreated('STUCK1', 'CLINIC-A', ['GLU'])]);
    await waitFor(() => rig!.emu.calls.some((c) => c.model === 'sale.order' && c.method === 'load'));
    let armed = true;
    rig.store.interceptLevelWrites(() => {
      if (!armed) return;
      armed = false;
      throw new Error('EIO: simulated write error');
    });
    await waitFor(() => !armed && rig!.store.health === 'failed');
    rig.store.interceptLevelWrites(undefined);
    await waitFor(() => rig!.store.health === 'ok', 20_000);
    expect(rig.emu.count('sale.order', [['client_order_ref', '=', 'STUCK1']])).toBe(1);
    const [validatedId] = await rig.commit([resultValidated('STUCK1', 'GLU')]);
    const delivered = async (): Promise<boolean> => (await rig!.store.getEvent(validatedId!))?.state === 'delivered';
    await waitFor(delivered, 15_000).catch(() => undefined);
    expect((await rig.store.getEvent(createdId!))?.state).toBe('delivered');
    expect((await rig.store.getEvent(validatedId!))?.state).toBe('delivered');
    const [so] = rig.emu.records('sale.order', [['client_order_ref', '=', 'STUCK1']]);
    expect(rig.emu.records('sale.order.line', [['order_id', '=', so!.id]]).map((l) => l['qty_delivered'])).toEqual([1]);
  });
});

describe('stock watch: the episode marker and the breach event', () => {
  // check() wrote the "breach already raised" document, then committed the event. If the store
  // failed in between (or the process died there), the marker stayed without the event, and no
  // later check raised the breach again while stock stayed below the minimum: no RFQ, ever. Both
  // are now one atomic batch.
  it('a store failure at the breach commit does not lose the replenishment', async () => {
    rig = await makeRig(17, { start: false });
    await rig.client.connect();
    await rig.relay.reference.refresh();
    const watch = new StockWatch({ store: rig.store, ref: rig.relay.reference, log: silentLogger, clock: Date.now });
    let writes = 0;
    rig.store.interceptLevelWrites(() => {
      writes++;
      if (writes >= 2) throw new Error('EIO: simulated write error');
    });
    await watch.check();
    rig.store.interceptLevelWrites(undefined);
    await waitFor(() => rig!.store.health === 'ok', 20_000);
    // Stock is still below the reorder point: later checks must raise it.
    await watch.check();
    await watch.check();
    const breaches = (await rig.store.listEvents({ type: 'stock.threshold_breached' })).filter((e) => (e.event.data as { productCode: string }).productCode === 'RGT-CRP');
    expect(breaches).toHaveLength(1);
  });
});
