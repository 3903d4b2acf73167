/**
 * The age of the event waiting longest for Odoo (`stats().oldestPendingAgeSeconds`, QUEUE_STALE's
 * trigger) right after that event leaves the queue. The status model polls it at any moment; a
 * value that still counted a delivered event made a quiet queue look stale (found as a flaky
 * governance test: an invoice waiting for its slot, the order before it delivered, and the poll
 * read the order's age of 20 minutes).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const MINUTE = 60_000;
const tmp = useTempStore('lgw-oldest-', { pruneIntervalMs: 0, minFreeBytes: 0 });

afterEach(() => {
  vi.useRealTimers();
});

describe('the oldest waiting event', () => {
  it('is no longer counted once its delivery has been written', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.parse('2026-03-02T10:01:00Z') });
    const store = await tmp.open();
    const { eventIds } = await store.commit(inboundMessage('OLD1'), [resultValidated('OLD-ORDER', 'k-OLD1')]);
    vi.setSystemTime(Date.now() + 20 * MINUTE);
    expect(store.stats().oldestPendingAgeSeconds, 'waiting 20 min before its delivery').toBe(20 * 60);
    const [lease] = await store.lease({ limit: 10 });
    await store.complete(lease!, [{ eventId: eventIds[0]!, outcome: 'delivered' }]);
    // Read at once, as a status poll may: nothing waits any more.
    expect(store.stats()).toMatchObject({ pending: 0, oldestPendingAgeSeconds: 0 });
  });

  it('is no longer counted once an operator discarded it', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.parse('2026-03-02T10:01:00Z') });
    const store = await tmp.open();
    const { eventIds } = await store.commit(inboundMessage('OLD2'), [resultValidated('OLD-ORDER-2', 'k-OLD2')]);
    vi.setSystemTime(Date.now() + 20 * MINUTE);
    expect(store.stats().oldestPendingAgeSeconds).toBe(20 * 60);
    await store.discard(eventIds[0]!, 'it-staff', 'entered twice in the LIS');
    expect(store.stats()).toMatchObject({ pending: 0, oldestPendingAgeSeconds: 0 });
  });

  it('still counts the next oldest event once the oldest is delivered', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.parse('2026-03-02T10:01:00Z') });
    const store = await tmp.open();
    const first = await store.commit(inboundMessage('OLD3'), [resultValidated('OLD-A', 'k-OLD3')]);
    vi.setSystemTime(Date.now() + 5 * MINUTE);
    await store.commit(inboundMessage('OLD4'), [resultValidated('OLD-B', 'k-OLD4')]);
    vi.setSystemTime(Date.now() + 20 * MINUTE);
    const leases = await store.lease({ limit: 10 });
    const a = leases.find((l) => l.partitionKey === 'order:OLD-A')!;
    await store.complete(a, [{ eventId: first.eventIds[0]!, outcome: 'delivered' }]);
    // OLD-B was leased, not delivered: it still waits for Odoo, for 20 minutes now.
    await vi.waitFor(() => expect(store.stats().oldestPendingAgeSeconds).toBe(20 * 60));
  });
});
