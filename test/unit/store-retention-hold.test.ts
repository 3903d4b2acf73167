/**
 * Retention and the billing hold (store README "Retention"): the billing events of an order not
 * billed in full stay past `store.retentionDays`. Two things an operator relies on besides that:
 * retention's minute pass stays light while such orders pile up, and `store.maxDeliveredEvents`
 * bounds what is kept on disk. Real LevelDB in a temp dir; `prune(now)` driven by hand at later
 * instants, as the store's minute timer runs it; counts, no timings.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import type { RetentionHold } from '../../gateway/src/store/types.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;
const tmp = useTempStore('lgw-retention-hold-', { pruneIntervalMs: 0, minFreeBytes: 0 });

afterEach(() => {
  vi.useRealTimers();
});

/** A hold over validated results that keeps every accession in `open` and counts its questions. */
function countingHold(open: Set<string>): RetentionHold & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    types: ['result.validated'],
    keep: async (correlationId) => {
      asked.push(correlationId);
      return open.has(correlationId);
    },
  };
}

/** One result per accession, each leased and delivered; returns the accessions. */
async function deliverResults(store: EventStore, prefix: string, count: number): Promise<string[]> {
  const accessions: string[] = [];
  for (let i = 0; i < count; i++) {
    const acc = `${prefix}-${i}`;
    accessions.push(acc);
    await store.commit(inboundMessage(`${prefix}${i}`), [resultValidated(acc, `k-${prefix}-${i}`)]);
  }
  for (;;) {
    const leases = await store.lease({ limit: 100 });
    if (leases.length === 0) break;
    for (const l of leases) await store.complete(l, l.events.map((e) => ({ eventId: e.event.id, outcome: 'delivered' as const })));
  }
  return accessions;
}

/** Retention to its end at `now`, pass after pass (the minute timer's work when nothing is new). */
async function pruneAll(store: EventStore, now: number): Promise<void> {
  for (let pass = 0; pass < 100 && (await store.prune(now)) > 0; pass++);
}

describe('retention hold: the minute pass', () => {
  // What the lab's IT sees: orders that are never billed in full (a test never resulted, a send-out
  // whose report comes on paper) pile up for up to store.deadLetterRetentionDays (180 days), and
  // every minute retention walked all of their billing events again from the head of the index,
  // reading each event and asking the hold (which reads the whole order) again, under the queue
  // lock the relay's leases and deliveries wait for. The work of every pass grew with the number of
  // open orders, although nothing about them had changed since the pass a minute before.
  // Store README "Retention": "Work per pass is bounded so a large prune never stalls intake".
  it('a pass a minute later does not ask again about the orders it has just kept', async () => {
    const open = new Set<string>();
    const hold = countingHold(open);
    const store = await tmp.open({ retentionHold: hold });
    const accessions = await deliverResults(store, 'HOLD', 12);
    for (const a of accessions) open.add(a);

    const t0 = Date.now() + 31 * DAY_MS;
    await pruneAll(store, t0);
    expect(hold.asked.sort(), 'the first pass past the age asks once per open order').toEqual([...accessions].sort());
    expect(store.stats().delivered, 'every open order keeps its billing events').toBe(12);

    hold.asked.length = 0;
    await pruneAll(store, t0 + MINUTE_MS);
    expect(hold.asked, 'nothing changed for them: the next minute asks nobody').toEqual([]);
    expect(store.stats().delivered).toBe(12);
  });

  // The hold is still asked again, and an order billed meanwhile loses its events: within the
  // recheck period the README names, not never.
  it('an order billed in full after it was kept loses its billing events at the next sweep', async () => {
    const open = new Set<string>();
    const hold = countingHold(open);
    const store = await tmp.open({ retentionHold: hold });
    const accessions = await deliverResults(store, 'BILL', 4);
    for (const a of accessions) open.add(a);

    const t0 = Date.now() + 31 * DAY_MS;
    await pruneAll(store, t0);
    expect(store.stats().delivered).toBe(4);

    // Two of the orders are billed in full.
    open.delete(accessions[0]!);
    open.delete(accessions[1]!);
    hold.asked.length = 0;
    await pruneAll(store, t0 + 2 * 3_600_000);
    expect(hold.asked.sort(), 'asked again about every order it kept').toEqual([...accessions].sort());
    const left = (await store.listEvents({ state: 'delivered', limit: 100 })).map((e) => e.event.correlationId).sort();
    expect(left, 'the billed orders went, the open ones stay').toEqual([accessions[2], accessions[3]]);
    expect(store.stats().delivered).toBe(2);
  });

  // New events past the age are still pruned by the minute passes between two sweeps.
  it('events that reach the age after a sweep go at the next minute', async () => {
    const open = new Set<string>();
    const hold = countingHold(open);
    const store = await tmp.open({ retentionHold: hold });
    const held = await deliverResults(store, 'OLD', 3);
    for (const a of held) open.add(a);
    const t0 = Date.now() + 31 * DAY_MS;
    await pruneAll(store, t0);

    // Delivered a day after the others (past the age of 30 days at t0 plus a minute), billed: nothing
    // holds them; the pass a minute after the sweep finds them past the age.
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: Date.now() + DAY_MS });
    const billed = await deliverResults(store, 'NEW', 3);
    vi.useRealTimers();
    expect(store.stats().delivered).toBe(6);
    hold.asked.length = 0;
    await pruneAll(store, t0 + MINUTE_MS);
    expect(hold.asked.sort(), 'asked about the new ones only').toEqual([...billed].sort());
    const left = (await store.listEvents({ state: 'delivered', limit: 100 })).map((e) => e.event.correlationId).sort();
    expect(left).toEqual([...held].sort());
  });
});

describe('retention hold: store.maxDeliveredEvents', () => {
  // What the lab's IT sees: store.maxDeliveredEvents (README.md: delivered events are pruned "…
  // or beyond this many") is the bound they size the disk by, and GET /api/status shows
  // queue.delivered. Events the billing hold kept were stepped over without counting against the
  // cap, so a site whose orders are rarely billed in full (a LIS that never sends some finals)
  // kept every one of them for 180 days, beyond the cap, while the cap promised otherwise.
  it('events the hold keeps count against the cap: beyond it the oldest go', async () => {
    const open = new Set<string>();
    const hold = countingHold(open);
    const store = await tmp.open({ retentionHold: hold, retention: { maxDeliveredEvents: 5 } });
    const accessions = await deliverResults(store, 'CAP', 8);
    for (const a of accessions) open.add(a);

    await pruneAll(store, Date.now() + 31 * DAY_MS);
    expect(store.stats().delivered, 'no more than the cap is kept').toBe(5);
    const left = (await store.listEvents({ state: 'delivered', limit: 100 })).map((e) => e.event.correlationId).sort();
    expect(left, 'the newest five stay').toEqual(accessions.slice(3).sort());
  });

  it('young events the hold keeps count against the cap too', async () => {
    const open = new Set<string>();
    const hold = countingHold(open);
    const store = await tmp.open({ retentionHold: hold, retention: { maxDeliveredEvents: 5 } });
    const accessions = await deliverResults(store, 'YCAP', 8);
    for (const a of accessions) open.add(a);

    await pruneAll(store, Date.now());
    expect(store.stats().delivered).toBe(5);
  });
});
