/**
 * Retention's own clock (store README, "Retention's clock"): the system clock, bounded so that a
 * clock wrong far ahead (a year mistyped, a hardware clock or a bad time source reading 2099)
 * deletes nothing before its time. Real LevelDB in a temp dir; only the box's clocks are faked
 * (Date, and performance.now() for the weeks the gateway has been running).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const DAY = 86_400_000;
const tmp = useTempStore('lgw-retention-clock-', { pruneIntervalMs: 0, minFreeBytes: 0 });

afterEach(() => {
  vi.useRealTimers();
});

type Store = Awaited<ReturnType<typeof tmp.open>>;

/** A result from the LIS, sent to Odoo at once: its event id and message id. */
async function deliveredResult(store: Store, controlId: string): Promise<{ eventId: string; messageId: string }> {
  const r = await store.commit(inboundMessage(controlId), [resultValidated(`ORD-${controlId}`, `k-${controlId}`)]);
  const [lease] = await store.lease({ limit: 1 });
  await store.complete(lease!, [{ eventId: r.eventIds[0]!, outcome: 'delivered' }]);
  return { eventId: r.eventIds[0]!, messageId: r.messageId };
}

describe("retention's clock after weeks of running", () => {
  // What the lab saw: the gateway had run for two months with its clock right when the clock
  // jumped to 2099 (a bad time source; an operator typing the wrong year). At the next minute,
  // retention deleted every result delivered in the last 30 days, and their messages: when the
  // clock was set right, the month's records were gone. Retention's clock may run "a day plus
  // twice the time the store has been open" past the newest data at start-up, meant for a box
  // that was switched off for weeks to catch up; after two months of running that allowance put
  // retention 61 days ahead of the real time at the first wrong reading. Promise broken: store
  // README, "Retention's clock" ("a clock that far ahead now deletes nothing before its time";
  // delivered events kept store.retentionDays, 30).
  it('deletes nothing early when the clock jumps years ahead after two months of running', async () => {
    const T = Date.now();
    vi.useFakeTimers({ toFake: ['Date', 'performance'], shouldAdvanceTime: true, now: T });
    const store = await tmp.open();
    const old = await deliveredResult(store, 'OLD1');

    // Two months of running, the clock right all along.
    vi.advanceTimersByTime(60 * DAY);
    const today = await deliveredResult(store, 'TODAY1');
    expect(await store.prune(), 'at the right time only the result from two months ago is past the 30 days').toBeGreaterThan(0);
    expect(await store.getEvent(old.eventId)).toBeUndefined();
    expect(await store.getEvent(today.eventId)).toMatchObject({ state: 'delivered' });

    vi.setSystemTime(Date.parse('2099-01-01T00:00:00Z')); // the clock jumps; the gateway runs on
    await store.prune();
    expect(await store.getEvent(today.eventId), 'delivered today: kept for 30 days').toMatchObject({ state: 'delivered' });
    expect((await store.getMessage(today.messageId))?.message.controlId, "delivered today: its message too").toBe('TODAY1');
  });

  // The allowance the rule above narrows is still there for what it was made for: a box switched
  // off for three weeks with its clock right catches up with retention within three weeks.
  it('still catches up after a box was switched off for three weeks', async () => {
    const T = Date.now();
    vi.useFakeTimers({ toFake: ['Date', 'performance'], shouldAdvanceTime: true, now: T });
    let store = await tmp.open();
    const old = await deliveredResult(store, 'OFF1');
    vi.advanceTimersByTime(20 * DAY);
    await deliveredResult(store, 'OFF2'); // the last result before the box was switched off
    await store.close();

    vi.advanceTimersByTime(21 * DAY); // switched off
    store = await tmp.open();
    await store.prune();
    expect(await store.getEvent(old.eventId), 'at start-up: 20 days plus a day past the stored data').toMatchObject({ state: 'delivered' });
    vi.advanceTimersByTime(10 * DAY);
    await store.prune();
    expect(await store.getEvent(old.eventId), 'delivered 51 days ago: caught up and gone').toBeUndefined();
  });
});
