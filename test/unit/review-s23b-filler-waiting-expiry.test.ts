/**
 * How long a result that came before its order waits for it (hl7/order-numbers.ts, README "A
 * result that came before its order": entries go after 7 days). A real store (LevelDB in a temp
 * dir); only Date is faked (the box's clock: timers run for real).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ResultOrderNumbers, WAITING_NAMESPACE } from '../../gateway/src/hl7/order-numbers.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { intake, lisEvents as events, lisOrder as order, lisResult as result, readHl7 as read } from '../fixtures/hl7/order-numbers-intake.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const DAY = 24 * 3_600_000;
const tmp = useTempStore('lgw-filler-waiting-expiry-', { pruneIntervalMs: 0, minFreeBytes: 0 });

afterEach(() => {
  vi.useRealTimers();
});

/** A message through the link's look-ups and into the store, as the intake takes it: the accessions of its results. */
async function take(store: EventStore, numbers: ResultOrderNumbers, t: string, id: string): Promise<string[]> {
  return (await intake(store, numbers, t, id)).events.filter((e) => e.type === 'result.validated').map((e) => e.correlationId);
}

describe('a result waiting for its order: 7 days', () => {
  /**
   * Before: a gateway that kept running past the 7 days held the result's number in memory for
   * good (only the store document dropped it): an order carrying that number a week or a month
   * later (a filler number come round again) was looked up and got the old dead-lettered result,
   * delivered and billed on it, while the same order after a restart got nothing. Now the entry
   * goes after 7 days in memory too; and a result coming again under a number kept keeps it 7
   * days from then (before, the first result's time: the later one's number went with it).
   */
  it('an order 8 days later gets nothing, restarted or not', async () => {
    const T = Date.now();
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: T });
    const store = await tmp.open();
    const numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    // The link has sent an order carrying a filler number: its results are looked up.
    expect(await take(store, numbers, order('O-0', '70500', 'LF-9500'), 'O-0')).toEqual([]);
    expect(await take(store, numbers, result('R-1', 'LF-9501'), 'R-1')).toEqual(['LF-9501']);
    for (let i = 0; i < 200 && (await store.getDoc<{ entries?: unknown[] }>(WAITING_NAMESPACE, 'lis'))?.entries?.length === undefined; i++) await new Promise((res) => setTimeout(res, 10));

    vi.setSystemTime(T + 8 * DAY);
    const later = read(order('O-1', '70501', 'LF-9501'));
    const restarted = new ResultOrderNumbers(store, 'lis');
    await restarted.ready();
    expect(restarted.needsLookup(later, events(later)), 'after a restart').toBe(false);
    expect(numbers.needsLookup(later, events(later)), 'without a restart').toBe(false);
    const draft = await numbers.attach({ events: events(later), searchTerms: [], warnings: [] }, later);
    expect(draft.events.filter((e) => e.type === 'result.validated')).toEqual([]);
  });

  it('a second result under the number 6 days after the first waits 7 days from its own time', async () => {
    const T = Date.now();
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: T });
    const store = await tmp.open();
    const numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    await take(store, numbers, order('O-0', '70510', 'LF-9510'), 'O-0');
    await take(store, numbers, result('R-1', 'LF-9511'), 'R-1');
    vi.setSystemTime(T + 6 * DAY);
    await take(store, numbers, result('R-2', 'LF-9511'), 'R-2');
    for (let i = 0; i < 200 && ((await store.getDoc<{ entries?: Array<{ at: number }> }>(WAITING_NAMESPACE, 'lis'))?.entries ?? []).every((w) => w.at < T + 6 * DAY); i++)
      await new Promise((res) => setTimeout(res, 10));
    vi.setSystemTime(T + 8 * DAY);
    const later = read(order('O-1', '70511', 'LF-9511'));
    const restarted = new ResultOrderNumbers(store, 'lis');
    await restarted.ready();
    expect(restarted.needsLookup(later, events(later)), 'after a restart').toBe(true);
    expect(numbers.needsLookup(later, events(later)), 'without a restart').toBe(true);
    const draft = await numbers.attach({ events: events(later), searchTerms: [], warnings: [] }, later);
    // The second result only: the first came 8 days ago.
    expect(draft.events.filter((e) => e.type === 'result.validated').map((e) => [e.correlationId, e.source.controlId])).toEqual([['70511', 'R-2']]);
  });
});
