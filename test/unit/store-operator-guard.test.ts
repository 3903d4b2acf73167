/**
 * An operator's replay or discard checks the state the operator saw together with the action,
 * under the store's queue lock (OperatorGuard). Checked before, in the HTTP server, the relay could
 * lease and fail the event in between: a discard sent with expectedState "pending" landed on an
 * event already attempted and now retrying, so the operator discarded what they had not looked at.
 */
import { describe, expect, it } from 'vitest';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const tmp = useTempStore('lgw-operator-guard-', { pruneIntervalMs: 0, minFreeBytes: 0, backoff: { initialMs: 60_000, maxMs: 60_000, multiplier: 1, jitter: 0 } });

describe("an operator's guard on replay and discard", () => {
  it('refuses a discard expecting "pending" once the relay has attempted the event (retrying now)', async () => {
    const store = await tmp.open();
    const { eventIds } = await store.commit(inboundMessage('OG1'), [resultValidated('OG-1', 'k-OG1')]);
    const id = eventIds[0]!;
    // The relay leases the event and Odoo fails it: retrying, in a minute.
    const [lease] = await store.lease({ limit: 10 });
    await store.complete(lease!, [{ eventId: id, outcome: 'retry', error: 'LockError' }]);
    await expect(store.discard(id, 'it-staff', 'ordered twice', { expected: 'pending' })).rejects.toThrow(/GW_STORE_STATE|is retrying, not pending/);
    expect((await store.getEvent(id))?.state).toBe('retrying');
    // Looked at again: discarded as it is now.
    expect((await store.discard(id, 'it-staff', 'ordered twice', { expected: 'retrying' })).state).toBe('discarded');
  });

  it('refuses a discard of a replayed event still waiting for Odoo unless its state is given', async () => {
    const store = await tmp.open();
    const { eventIds } = await store.commit(inboundMessage('OG2'), [resultValidated('OG-2', 'k-OG2')]);
    const id = eventIds[0]!;
    const [lease] = await store.lease({ limit: 10 });
    await store.complete(lease!, [{ eventId: id, outcome: 'dead', reason: 'ValidationError: no product GLU' }]);
    await store.replay(id, 'finance', 'product created in Odoo', { expected: 'dead' });
    await expect(store.discard(id, 'lab-manager', 'stale list')).rejects.toThrow(/was replayed by finance/);
    expect((await store.getEvent(id))?.state).toBe('pending');
    expect((await store.discard(id, 'lab-manager', 'really not wanted', { expected: 'pending' })).state).toBe('discarded');
  });
});
