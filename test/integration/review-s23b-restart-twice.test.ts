import { afterEach, describe, expect, it } from 'vitest';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { startEmulator } from '../fixtures/relay/harness.ts';
import { inbound, orderCreated, tempDir, waitFor } from '../fixtures/relay/helpers.ts';
import { exited, type SettleChild, spawnSettleChild } from '../fixtures/relay/settle-process.ts';

/**
 * A gateway killed while Odoo still runs a write it sent (kill -9, a power cut), then killed
 * again within the settle time of its restart (the power flickers, a watchdog restarts a process
 * that came up slowly): the events reopened at the first restart keep the due time that restart
 * gave them (the settle time after it), whatever the second start finds. Scaled down as in
 * test/integration/review-s23-crash-settle.test.ts: settle 8 s, the lease's first read answered
 * after 9 s, the write held by Odoo 6.5 s. Real relay processes (test/fixtures/relay/settle-child.ts).
 */
const SETTLE_MS = 8_000;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The relay process on `dataDir`, killed after the test. */
function spawnChild(dataDir: string, url: string): SettleChild {
  const started = spawnSettleChild(dataDir, url, SETTLE_MS);
  cleanups.push(async () => {
    started.child.kill('SIGKILL');
    await exited(started.child);
  });
  return started;
}

describe('a gateway killed twice within the settle time', () => {
  it('Odoo 17: the order a killed process was loading reaches Odoo once', async () => {
    const { emu, url } = await startEmulator(17);
    cleanups.push(() => emu.close());
    const tmp = tempDir('review-s23b-twice-');
    cleanups.push(tmp.cleanup);
    const store = await EventStore.open({ dataDir: tmp.dir, pruneIntervalMs: 0 });
    await store.commit(inbound(), [orderCreated('TWICE-1', 'CLINIC-A', ['GLU', 'CRP'])]);
    await store.close();

    emu.faults.next(1, 'sale.order', 'search_read').latency(9_000);
    emu.faults.next(1, 'sale.order', 'load').timeout(6_500);
    const held = (): ReturnType<typeof emu.calls.find> => emu.calls.find((c) => c.model === 'sale.order' && c.method === 'load' && c.fault === 'timeout');

    const first = spawnChild(tmp.dir, url);
    await waitFor(() => held() !== undefined, 30_000, 20);
    first.child.kill('SIGKILL');
    await exited(first.child);

    // Restarted, and killed again before the settle time has passed: it has sent nothing.
    const second = spawnChild(tmp.dir, url);
    await waitFor(() => second.stats() !== undefined, 15_000, 20);
    second.child.kill('SIGKILL');
    await exited(second.child);
    expect(held()?.ran, 'Odoo still runs the write the first process sent').toBeUndefined();
    expect(emu.calls.filter((c) => c.model === 'sale.order' && c.method === 'load')).toHaveLength(1);

    const third = spawnChild(tmp.dir, url);
    await waitFor(() => held()?.ran === true, 30_000, 20);
    await waitFor(() => {
      const s = third.stats();
      return s !== undefined && s['delivered'] === 1 && s['pending'] === 0 && s['retrying'] === 0 && s['inFlight'] === 0;
    }, 40_000, 50);
    const orders = emu.records('sale.order', [['client_order_ref', '=', 'TWICE-1']]);
    expect(orders).toHaveLength(1);
    expect(emu.records('sale.order.line', [['order_id', '=', orders[0]!.id]]), 'GLU and CRP once each').toHaveLength(2);
  }, 90_000);
});
