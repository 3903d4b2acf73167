/**
 * Batched sync modes after the system clock stepped back (NTP setting right a box that booted with
 * its clock two hours ahead; test/unit/clock-step-back.test.ts has the store's lease and ages).
 *
 * What the stock clerk saw: for four hours after the step (the due clock runs at half speed until
 * the system clock has caught up, wall-clock.ts), every analyzer run's consumption went to Odoo on
 * its own, one stock picking per run instead of one per analyzer per window. A new event's due time
 * was counted on the system clock (the end of its window two hours back) while the lease compares
 * due times with the due clock, two hours ahead: every batched event was due at once.
 * Promise broken: relay/sync-modes.ts and DESIGN.md §3, `consumable.used` "micro-batch (window
 * per site)": "every event of one window becomes due at the same instant and is leased together →
 * one picking per analyzer per window".
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { dueDelayFor } from '../../gateway/src/relay/sync-modes.ts';
import { consumableUsed, relayConfig } from '../fixtures/relay/helpers.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const HOUR = 3_600_000;
const WINDOW_MS = 600_000;
const tmp = useTempStore('lgw-clock-windows-', {
  pruneIntervalMs: 0,
  minFreeBytes: 0,
  dueDelayMs: dueDelayFor(relayConfig({ syncModes: { 'consumable.used': 'micro-batch' }, microBatchWindowMs: WINDOW_MS })),
});

afterEach(() => {
  vi.useRealTimers();
});

describe('micro-batch windows after the clock stepped back', () => {
  it("a run's consumption waits for the end of its window, and the window's runs are leased together", async () => {
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: Date.now() + 2 * HOUR });
    const store = await tmp.open();
    expect(await store.lease({ limit: 10 })).toEqual([]); // the store reads its clock (it does every second)
    vi.setSystemTime(Date.now() - 2 * HOUR); // NTP steps the clock back
    expect(await store.lease({ limit: 10 })).toEqual([]);

    await store.commit(inboundMessage('RUN1'), [consumableUsed('xn-1', 'CELLPACK', 1, 1)]);
    await store.commit(inboundMessage('RUN2'), [consumableUsed('xn-1', 'CELLPACK', 1, 2)]);
    expect(await store.lease({ limit: 10 }), 'the window is still open: nothing goes to Odoo yet').toEqual([]);

    const queued = await store.listEvents({ state: 'pending', limit: 10 });
    expect(queued).toHaveLength(2);
    expect(queued[0]!.dueAt, 'both runs of the window are due at the same instant').toBe(queued[1]!.dueAt);
    const leases = await store.lease({ limit: 10, maxPerPartition: 500, now: queued[0]!.dueAt });
    expect(leases.map((l) => l.events.length), 'one lease, one picking, for the two runs').toEqual([2]);
  });

  it('a near-real-time event is still due at once', async () => {
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: Date.now() + 2 * HOUR });
    const store = await tmp.open({ dueDelayMs: dueDelayFor(relayConfig()) });
    expect(await store.lease({ limit: 10 })).toEqual([]);
    vi.setSystemTime(Date.now() - 2 * HOUR);
    expect(await store.lease({ limit: 10 })).toEqual([]);
    const { eventIds } = await store.commit(inboundMessage('RUN3'), [consumableUsed('xn-1', 'CELLPACK', 1, 3)]);
    const leases = await store.lease({ limit: 10 });
    expect(leases.flatMap((l) => l.events.map((e) => e.event.id))).toEqual(eventIds);
  });
});
