import { afterEach, describe, expect, it } from 'vitest';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { orderCreated, waitFor } from '../fixtures/relay/helpers.ts';

/**
 * An event whose last allowed attempt lost its answer (Odoo slow: the write still running), and
 * an operator who replays the dead letter at once — Odoo answers again, the moment to replay. The
 * replay is looked up before anything is sent (the store marks it ambiguous), but the look-up ran
 * while Odoo still ran the last attempt's write: nothing found, the order loaded again, and Odoo
 * committed both; finance saw the sale order's lines twice (load() of the same external id adds
 * them again, odoo-api.md D). Now such an event is held for the settle time as any ambiguous retry
 * and dead-lettered then, without sending anything again: a replay's look-up finds what landed.
 *
 * Scaled down: relay.maxAttempts 1, settle 6 s, Odoo runs the load 4 s after receiving it (the
 * client gives up after 300 ms).
 */
let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe('a dead letter whose last attempt lost its answer, replayed at once', () => {
  it('the order reaches Odoo once, each test line once', async () => {
    rig = await makeRig(17, { odoo: { timeoutMs: 300 }, relay: { maxAttempts: 1 }, relayOptions: { ambiguousSettleMs: 6_000 } });
    const r = rig;
    await waitFor(() => r.client.state === 'connected');
    r.emu.faults.next(1, 'sale.order', 'load').timeout(4_000);
    const [id] = await r.commit([orderCreated('REPLAY-1', 'CLINIC-A', ['GLU', 'CRP'])]);
    await waitFor(async () => (await r.store.getEvent(id!))?.state === 'dead', 20_000, 20);
    expect((await r.store.getEvent(id!))?.deadReason).toMatch(/gave up after 1 attempts: GW_ODOO_AMBIGUOUS/);
    await r.store.replay(id!, 'operator', 'Odoo answers again');
    r.relay.notify();
    await waitFor(async () => (await r.store.getEvent(id!))?.state === 'delivered', 20_000, 20);
    await waitFor(() => r.emu.calls.some((c) => c.model === 'sale.order' && c.method === 'load' && c.fault === 'timeout' && c.ran === true), 20_000);
    const orders = r.emu.records('sale.order', [['client_order_ref', '=', 'REPLAY-1']]);
    expect(orders).toHaveLength(1);
    expect(r.emu.count('sale.order.line', [['order_id', '=', orders[0]!.id]]), 'GLU and CRP once each').toBe(2);
    expect(r.emu.calls.filter((c) => c.model === 'sale.order' && c.method === 'load'), 'the dead letter sent nothing again').toHaveLength(1);
  }, 60_000);
});
