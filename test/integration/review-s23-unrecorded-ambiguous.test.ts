import { afterEach, describe, expect, it } from 'vitest';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { orderCreated, waitFor } from '../fixtures/relay/helpers.ts';

/**
 * A write whose answer was lost (Odoo still runs it), and then the store fails to record that
 * outcome (an I/O error, a full disk for a moment). The relay's outcome said "ambiguous, look it
 * up after the settle time"; the store lost it with the failed write, and its health probe reopened
 * the lease due at once ("the relay had Odoo's answer"). The relay looked the order up while Odoo
 * still ran the first load, found nothing and loaded it again: Odoo committed both, and finance saw
 * the sale order's lines twice (load() of the same external id adds them again, odoo-api.md D).
 * Now the reopened lease keeps the due time the lost outcome asked for.
 *
 * Scaled down: the relay's settle time 8 s; Odoo runs the load 5 s after receiving it (the client
 * gives up after 300 ms); the store's probe runs every 2 s.
 */
let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const SETTLE_MS = 8_000;
const HELD_MS = 5_000;

describe('an ambiguous outcome the store could not record', () => {
  it('the order reaches Odoo once, each test line once', async () => {
    rig = await makeRig(17, { odoo: { timeoutMs: 300 }, relayOptions: { ambiguousSettleMs: SETTLE_MS } });
    const r = rig;
    await waitFor(() => r.client.state === 'connected');
    r.emu.faults.next(1, 'sale.order', 'load').timeout(HELD_MS);
    const [id] = await r.commit([orderCreated('UNREC-1', 'CLINIC-A', ['GLU', 'CRP'])]);
    const load = (): ReturnType<typeof r.emu.calls.find> => r.emu.calls.find((c) => c.model === 'sale.order' && c.method === 'load' && c.fault === 'timeout');
    await waitFor(() => load() !== undefined, 10_000, 5);
    // The next LevelDB write is the lease's completion (the client gives up on the load at 300 ms).
    let armed = true;
    r.store.interceptLevelWrites(() => {
      if (!armed) return;
      armed = false;
      throw new Error('EIO: simulated write error');
    });
    await waitFor(() => !armed && r.store.health === 'failed', 10_000, 5);
    r.store.interceptLevelWrites(undefined);
    expect(load()?.ran, 'Odoo still runs the first load').toBeUndefined();
    await waitFor(() => r.store.health === 'ok', 20_000);
    await waitFor(() => load()?.ran === true, 20_000);
    await waitFor(async () => (await r.store.getEvent(id!))?.state === 'delivered', 30_000);
    const orders = r.emu.records('sale.order', [['client_order_ref', '=', 'UNREC-1']]);
    expect(orders).toHaveLength(1);
    expect(r.emu.count('sale.order.line', [['order_id', '=', orders[0]!.id]]), 'GLU and CRP once each').toBe(2);
  }, 60_000);
});
