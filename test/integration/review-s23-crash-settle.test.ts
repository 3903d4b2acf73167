import { afterEach, describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { noteMarker } from '../../gateway/src/relay/rules/milestone-notes.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import type { OdooEmulator } from '../odoo-emulator/index.ts';
import { startEmulator } from '../fixtures/relay/harness.ts';
import { inbound, milestone, orderCreated, partnerId, tempDir, waitFor } from '../fixtures/relay/helpers.ts';
import { exited, type SettleChild, spawnSettleChild } from '../fixtures/relay/settle-process.ts';

/**
 * A gateway killed (kill -9, a power cut, the OOM killer) while Odoo still runs a write it sent
 * late in its lease. Leases are taken when a round starts; a round posts stage after stage, and a
 * slow Odoo (month-end reports, a backlog after an outage) answers each read late, so a lease's
 * write may leave long after the lease was taken. The store reopened a lease left open at the
 * crash due once the settle time (past Odoo's limit_time_real) had passed since the lease was
 * TAKEN: for a write sent later, the restarted gateway looked it up while Odoo was still running
 * it, found nothing and sent it again; Odoo then committed both. Finance saw the sale order's
 * lines twice (load() of the same external id adds its lines again, odoo-api.md D), the chatter
 * the same milestone twice. Now the settle time runs from the restart, after any write the
 * stopped process can have sent.
 *
 * Scaled down: settle 8 s (180 s in production), the lease's first read answered after 9 s, the
 * write held by Odoo 6.5 s. A real relay process, killed with SIGKILL once Odoo holds its write.
 */
const SETTLE_MS = 8_000;
const SLOW_READ_MS = 9_000;
const HELD_WRITE_MS = 6_500;

const spawnChild = (dataDir: string, url: string): SettleChild => spawnSettleChild(dataDir, url, SETTLE_MS);

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * Stores `events`, then runs a relay process whose lease's first `slowRead` call Odoo answers
 * only after SLOW_READ_MS (past the settle time) and whose `heldWrite` Odoo runs HELD_WRITE_MS
 * after receiving it; the process is killed once Odoo holds that write, and a new one started on
 * the same store. Resolves once the new one has delivered every event and Odoo has run the held
 * write, with the emulator to inspect.
 */
async function killedWhileOdooRunsItsWrite(version: 16 | 17 | 19, events: DraftEvent[], slowRead: [string, string], heldWrite: [string, string], prepare?: (emu: OdooEmulator) => void): Promise<OdooEmulator> {
  const { emu, url } = await startEmulator(version);
  cleanups.push(() => emu.close());
  const tmp = tempDir('review-s23-settle-');
  cleanups.push(tmp.cleanup);
  prepare?.(emu);
  const store = await EventStore.open({ dataDir: tmp.dir, pruneIntervalMs: 0 });
  await store.commit(inbound(), events);
  await store.close();

  emu.faults.next(1, ...slowRead).latency(SLOW_READ_MS);
  emu.faults.next(1, ...heldWrite).timeout(HELD_WRITE_MS);
  const held = (): ReturnType<typeof emu.calls.find> => emu.calls.find((c) => c.model === heldWrite[0] && c.method === heldWrite[1] && c.fault === 'timeout');

  const first = spawnChild(tmp.dir, url);
  cleanups.push(async () => {
    first.child.kill('SIGKILL');
    await exited(first.child);
  });
  await waitFor(() => held() !== undefined, 30_000, 20);
  first.child.kill('SIGKILL');
  await exited(first.child);
  expect(held()?.ran, 'Odoo still runs the write the killed process sent').toBeUndefined();

  const second = spawnChild(tmp.dir, url);
  cleanups.push(async () => {
    second.child.kill('SIGTERM');
    await exited(second.child);
  });
  await waitFor(() => held()?.ran === true, 30_000, 20);
  await waitFor(() => {
    const s = second.stats();
    return s !== undefined && s['delivered'] === events.length && s['pending'] === 0 && s['retrying'] === 0 && s['inFlight'] === 0;
  }, 40_000, 50);
  return emu;
}

describe('a gateway killed while Odoo still runs a write it sent late in its lease', () => {
  it.each([17, 19] as const)('Odoo %i: the order reaches Odoo once, each test line once', async (version) => {
    const emu = await killedWhileOdooRunsItsWrite(version, [orderCreated('SETTLE-1', 'CLINIC-A', ['GLU', 'CRP'])], ['sale.order', 'search_read'], ['sale.order', 'load']);
    const orders = emu.records('sale.order', [['client_order_ref', '=', 'SETTLE-1']]);
    expect(orders).toHaveLength(1);
    const lines = emu.records('sale.order.line', [['order_id', '=', orders[0]!.id]]);
    expect(lines.map((l) => (l['product_id'] as [number, string])[1]).sort(), 'GLU and CRP once each, not twice').toHaveLength(2);
  }, 90_000);

  it('Odoo 17: a milestone is noted once in the chatter', async () => {
    const note = milestone('specimen.received', 'SETTLE-2', 1);
    const emu = await killedWhileOdooRunsItsWrite(17, [note], ['sale.order', 'search_read'], ['sale.order', 'message_post'], (e) => {
      e.call('sale.order', 'create', [{ partner_id: partnerId(e, 'CLINIC-A'), client_order_ref: 'SETTLE-2', origin: 'lab-gateway SETTLE-2' }]);
    });
    const bodies = emu.records('mail.message', [['model', '=', 'sale.order'], ['body', 'ilike', 'lgw:']]).map((m) => String(m['body'])).join('\n');
    expect(bodies.split(`lgw:${noteMarker(note.idempotencyKey)}`).length - 1).toBe(1);
  }, 90_000);
});
