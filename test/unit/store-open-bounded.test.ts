/**
 * Invariant 5 of the store (store README): start-up does not scan the backlog. The reads `open()`
 * makes are counted at classic-level's own entry points (point reads, and the entries its
 * iterators yield) over a store with 400 queued events and over the same store with 4,000: the
 * counts must not grow with the backlog. Every read is counted while open() runs, keys-only
 * iterators too (a start-up that walked the queue's keys to count it is a scan all the same). The
 * key filter's background scan is not counted by construction: open() starts it and returns
 * without awaiting it, and its first chunk comes back from LevelDB's thread pool only after the
 * caller of open() has stopped counting; were open() to wait for it, it would be counted and fail
 * here, as start-up must not wait for it. A start-up that walked the queue, the due index or the
 * events (to rebuild counters, say) reads thousands more entries here and fails.
 */
import { ClassicLevel } from 'classic-level';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';

const tmp = useTempStore('lgw-open-bounded-', { pruneIntervalMs: 0, minFreeBytes: 0 });
afterEach(() => vi.restoreAllMocks());

interface NativeIterator {
  _next(): Promise<unknown>;
  _nextv(size: number, options: unknown): Promise<unknown[]>;
}
type Proto = Record<'_get' | '_getMany' | '_getSync' | '_iterator', (...args: unknown[]) => unknown>;

/** The entries read while `open` runs, and its result. */
async function countedOpen(open: () => Promise<EventStore>): Promise<{ store: EventStore; reads: number }> {
  let reads = 0;
  let counting = true;
  const proto = ClassicLevel.prototype as unknown as Proto;
  const wrap = (name: '_get' | '_getMany' | '_getSync', count: (args: unknown[]) => number): void => {
    const original = proto[name];
    vi.spyOn(proto, name).mockImplementation(function (this: unknown, ...args: unknown[]) {
      if (counting) reads += count(args);
      return original.apply(this, args);
    });
  };
  wrap('_get', () => 1);
  wrap('_getSync', () => 1);
  wrap('_getMany', (args) => (args[0] as unknown[]).length);
  const iterator = proto._iterator;
  vi.spyOn(proto, '_iterator').mockImplementation(function (this: unknown, ...args: unknown[]) {
    const it = iterator.apply(this, args) as NativeIterator;
    const next = it._next.bind(it);
    const nextv = it._nextv.bind(it);
    it._next = async () => {
      const entry = await next();
      if (counting && entry !== undefined) reads++;
      return entry;
    };
    it._nextv = async (size, o) => {
      const entries = await nextv(size, o);
      if (counting) reads += entries.length;
      return entries;
    };
    return it;
  });
  const store = await open();
  counting = false;
  vi.restoreAllMocks();
  return { store, reads };
}

/** `n` more messages, each with one result for its own order: `n` partitions, `n` queued events. */
async function queue(store: EventStore, from: number, n: number): Promise<void> {
  const commits: Promise<unknown>[] = [];
  for (let i = from; i < from + n; i++) commits.push(store.commit(inboundMessage(`B-${i}`), [resultValidated(`ACC-${i}`, `k-${i}`)]));
  await Promise.all(commits);
}

describe('start-up with a backlog', () => {
  it('reads as much with 4,000 queued events as with 400', async () => {
    let store = await tmp.open();
    await queue(store, 0, 400);
    await store.close();
    const small = await countedOpen(() => tmp.open());
    expect(small.store.stats().pending).toBe(400);
    await queue(small.store, 400, 3_600);
    await small.store.close();

    const large = await countedOpen(() => tmp.open());
    store = large.store;
    expect(store.stats().pending).toBe(4_000);
    expect(small.reads).toBeGreaterThan(0);
    // The same keys (counters, checkpoint, segments, open leases, the first chunk of the waiting
    // index for the oldest event's age): a scan of the backlog would read 3,600 entries more at least.
    expect(large.reads).toBeLessThanOrEqual(small.reads + 10);
    // And the store works: the oldest event is leased first.
    const [lease] = await store.lease({ limit: 1 });
    expect(lease?.events[0]?.event.idempotencyKey).toBe('k-0');
  });
});
