import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { KeyFilter, type KeyIterator } from '../../gateway/src/store/key-filter.ts';
import { inboundMessage as message, specimenReceived as note } from '../fixtures/store/inbound.ts';


const randomKey = (): string => `!k!${randomBytes(12).toString('base64')}|${randomBytes(8).toString('hex')}`;

/** An iterator over fixed chunks of keys (the second chunk may be an error). */
function chunks(list: Array<string[] | Error>): () => KeyIterator & { closed: boolean } {
  return () => {
    let i = 0;
    const it = {
      closed: false,
      nextv: async (): Promise<string[]> => {
        const next = list[i++] ?? [];
        if (next instanceof Error) throw next;
        return next;
      },
      close: async (): Promise<void> => {
        it.closed = true;
      },
    };
    return it;
  };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 2_000 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(check()).toBe(true);
}

describe('KeyFilter', () => {
  it('never reports an added key absent, across every growth of 200k random keys', async () => {
    const filter = new KeyFilter();
    const keys: string[] = [];
    let lastBytes = filter.bytes;
    let growths = 0;
    for (let i = 0; i < 200_000; i++) {
      const key = randomKey();
      keys.push(key);
      filter.add(key);
      if (filter.bytes !== lastBytes) {
        growths++;
        lastBytes = filter.bytes;
        // Right after a rehash, every key added so far is still found.
        for (const k of keys) if (!filter.has(k)) throw new Error(`lost ${k} after growing to ${filter.bytes} bytes`);
      }
    }
    expect(growths).toBeGreaterThanOrEqual(6);
    expect(keys.every((k) => filter.has(k))).toBe(true);
    // The last growth moves in steps between turns of the event loop (see the next test).
    await until(() => !filter.growing);
    expect(keys.every((k) => filter.has(k))).toBe(true);
    // 4 bytes a slot at a load between 0.3 and 0.6.
    expect(filter.bytes / filter.size).toBeLessThanOrEqual(4 / 0.3);
    expect(filter.bytes / filter.size).toBeGreaterThanOrEqual(4 / 0.6);
    // False positives: about n / 2^32 per absent key.
    let falsePositives = 0;
    for (let i = 0; i < 200_000; i++) if (filter.has(randomKey())) falsePositives++;
    expect(falsePositives).toBeLessThan(200);
  });

  it('grows a large table in steps between turns of the event loop; every key is found during and after the move', async () => {
    const filter = new KeyFilter();
    const keys: string[] = [];
    const add = (): void => {
      const key = randomKey();
      keys.push(key);
      filter.add(key);
    };
    // Up to the growth from 2^17 slots to 2^18 (at a load of 0.6): done in steps.
    while (!(filter.growing && filter.bytes > 4 * (1 << 18)) && keys.length < 400_000) add();
    expect(filter.growing).toBe(true);
    expect(filter.bytes).toBe(4 * (1 << 17) + 4 * (1 << 18)); // both tables while moving
    // Not moved in one go: still growing after the add that started it and after one turn.
    await new Promise((r) => setImmediate(r));
    expect(filter.growing).toBe(true);
    expect(keys.every((k) => filter.has(k))).toBe(true);
    // Adds while moving (some of them resends of keys not moved yet) are found as well.
    for (let i = 0; i < 10_000; i++) add();
    for (const k of keys.slice(0, 1_000)) filter.add(k);
    expect(keys.every((k) => filter.has(k))).toBe(true);
    await until(() => !filter.growing);
    expect(filter.bytes).toBe(4 * (1 << 18)); // the old table is gone
    expect(keys.every((k) => filter.has(k))).toBe(true);
    // Each hash once (a resend added nothing; random 32-bit hashes may coincide a few times).
    expect(filter.size).toBeLessThanOrEqual(keys.length);
    expect(filter.size).toBeGreaterThan(keys.length - 20);
    let falsePositives = 0;
    for (let i = 0; i < 100_000; i++) if (filter.has(randomKey())) falsePositives++;
    expect(falsePositives).toBeLessThan(100);
  });

  it('answers "may contain" for everything until a fill has seen every key', async () => {
    const filter = new KeyFilter();
    filter.add('!d!known');
    expect(filter.mayContain('!d!anything')).toBe(true);
    await filter.fill([
      { prefix: '!d!', keys: chunks([['a', 'b'], ['c']]) },
      { prefix: '!k!', keys: chunks([['x']]) },
    ]);
    expect(filter.ready).toBe(true);
    for (const k of ['!d!known', '!d!a', '!d!b', '!d!c', '!k!x']) expect(filter.mayContain(k)).toBe(true);
    expect(filter.mayContain('!d!x')).toBe(false);
    expect(filter.mayContain('!k!a')).toBe(false);
  });

  it('stays incomplete when the scan fails, and closes the iterator', async () => {
    const filter = new KeyFilter();
    let iterator: (KeyIterator & { closed: boolean }) | undefined;
    const make = chunks([['a'], new Error('the database is closing')]);
    await filter.fill([{ prefix: '!d!', keys: () => (iterator = make()) }]);
    expect(filter.ready).toBe(false);
    expect(iterator?.closed).toBe(true);
    expect(filter.mayContain('!d!never-added')).toBe(true);
  });

  it('stops a running scan', async () => {
    const filter = new KeyFilter();
    let release: (() => void) | undefined;
    let closed = false;
    const scan = filter.fill([
      {
        prefix: '!d!',
        keys: () => ({
          nextv: () => new Promise<string[]>((r) => (release = () => r(['a']))),
          close: async () => void (closed = true),
        }),
      },
    ]);
    await new Promise((r) => setTimeout(r, 5));
    const stopped = filter.stop();
    release?.();
    await stopped;
    await scan;
    expect(closed).toBe(true);
    expect(filter.ready).toBe(false);
  });
});

describe('EventStore with its key filter', () => {
  const dirs: string[] = [];
  let dir: string;
  let store: EventStore | undefined;
  const open = (): Promise<EventStore> => EventStore.open({ dataDir: dir, pruneIntervalMs: 0, healthCheckIntervalMs: 60_000, minFreeBytes: 0 });
  const freshDir = async (): Promise<string> => {
    const d = await mkdtemp(path.join(tmpdir(), 'lgw-keyfilter-'));
    dirs.push(d);
    return d;
  };

  afterEach(async () => {
    await store?.close();
    store = undefined;
  });
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('detects a resent message before and after its scan finished, in a new store', async () => {
    dir = await freshDir();
    store = await open();
    // The scan of an empty store has not finished when open returns (it is never awaited).
    expect(store.keyFilterReady).toBe(false);
    const first = await store.commit(message('F1'), [note('F1', 'f1')]);
    expect((await store.commit(message('F1'), [note('F1', 'f1')])).duplicate).toBe(true);
    await until(() => store!.keyFilterReady);
    const again = await store.commit(message('F1'), [note('F1', 'f1')]);
    expect(again).toMatchObject({ duplicate: true, messageId: first.messageId });
    // Written after the scan: found through the filter's adds.
    await store.commit(message('F2'), [note('F2', 'f2')]);
    expect((await store.commit(message('F2'), [note('F2', 'f2')])).duplicate).toBe(true);
    expect(store.stats().pending).toBe(2);
  });

  it('skips an event key of an earlier message after a restart (found by the scan)', async () => {
    dir = await freshDir();
    store = await open();
    await store.commit(message('R1'), [note('R1', 'fact-r1')]);
    await store.close();
    store = await open();
    await until(() => store!.keyFilterReady);
    const later = await store.commit(message('R2'), [note('R1', 'fact-r1'), note('R1', 'fact-r2')]);
    expect(later).toMatchObject({ duplicate: false, skippedEvents: 1 });
    expect(later.eventIds).toHaveLength(1);
    expect(await store.commitLocal([note('R1', 'fact-r1'), note('R1', 'fact-r2')])).toEqual([]);
    expect((await store.commit(message('R1'), [])).duplicate).toBe(true);
  });

  it('keeps the count of a partition with events across a restart (FIFO, nothing stranded)', async () => {
    dir = await freshDir();
    store = await open();
    const first = await store.commit(message('P1'), [note('P1', 'p1-a')]);
    await store.close();
    store = await open();
    await until(() => store!.keyFilterReady);
    const second = await store.commit(message('P2'), [note('P1', 'p1-b')]);
    const local = await store.commitLocal([note('P1', 'p1-c')]);
    expect(store.stats().pending).toBe(3);
    const order: string[] = [];
    for (let round = 0; round < 3; round++) {
      const leases = await store.lease({ limit: 10 });
      expect(leases).toHaveLength(1);
      const lease = leases[0]!;
      expect(lease.events).toHaveLength(1);
      order.push(lease.events[0]!.event.id);
      await store.complete(lease, [{ eventId: lease.events[0]!.event.id, outcome: 'delivered' }]);
    }
    expect(order).toEqual([first.eventIds[0], second.eventIds[0], local[0]]);
    expect(await store.lease({ limit: 10 })).toEqual([]);
    expect(store.stats()).toMatchObject({ pending: 0, delivered: 3 });
  });

  it('finds a partition count written after the scan once the count cache is reloaded', async () => {
    dir = await freshDir();
    store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, healthCheckIntervalMs: 20, minFreeBytes: 0 });
    const s = store;
    await until(() => s.keyFilterReady);
    const first = await s.commit(message('Q1'), [note('Q', 'q-1')]);
    // A failed store reloads its counters from disk when it recovers, partition counts included.
    s.simulateWriteFailure(new Error('injected'));
    s.simulateWriteFailure(undefined);
    await until(() => s.health === 'ok');
    const second = await s.commit(message('Q2'), [note('Q', 'q-2')]);
    const order: string[] = [];
    for (let round = 0; round < 2; round++) {
      const [lease] = await s.lease({ limit: 10 });
      expect(lease?.events).toHaveLength(1);
      order.push(lease!.events[0]!.event.id);
      await s.complete(lease!, [{ eventId: lease!.events[0]!.event.id, outcome: 'delivered' }]);
    }
    expect(order).toEqual([first.eventIds[0], second.eventIds[0]]);
  });

  describe('with 20k messages already stored', () => {
    const existing = 20_000;
    let bigDir: string;

    beforeAll(async () => {
      dir = bigDir = await freshDir();
      const big = await open();
      for (let i = 0; i < existing; i += 1_000) {
        await Promise.all(Array.from({ length: 1_000 }, (_, j) => big.commit(message(`OLD${i + j}`), [note(`OLD${i + j}`, `old-${i + j}`)])));
      }
      await big.close();
    }, 60_000);

    beforeEach(() => {
      dir = bigDir;
    });

    it('detects old messages and events before the scan finished and after it', async () => {
      store = await open();
      expect(store.keyFilterReady).toBe(false);
      const early = await Promise.all(Array.from({ length: 50 }, (_, i) => store!.commit(message(`OLD${i * 397}`), [note(`OLD${i * 397}`, `old-${i * 397}`)])));
      expect(early.every((r) => r.duplicate)).toBe(true);
      await until(() => store!.keyFilterReady);
      const late = await Promise.all(Array.from({ length: 50 }, (_, i) => store!.commit(message(`OLD${i * 397 + 1}`), [note(`OLD${i * 397 + 1}`, `old-${i * 397 + 1}`)])));
      expect(late.every((r) => r.duplicate)).toBe(true);
      // Old events under new control ids: every one is skipped.
      const moved = await Promise.all(Array.from({ length: 50 }, (_, i) => store!.commit(message(`NEWID${i}`), [note(`OLD${i * 211}`, `old-${i * 211}`)])));
      expect(moved.map((r) => r.skippedEvents)).toEqual(moved.map(() => 1));
    });

    it('misses no key written while the scan runs', async () => {
      store = await open();
      const s = store;
      expect(s.keyFilterReady).toBe(false);
      // Queued while the scan has not seen everything: in small waves, so that some land while
      // each sublevel is being scanned.
      const during: string[] = [];
      for (let wave = 0; !s.keyFilterReady && wave < 200; wave++) {
        const ids = Array.from({ length: 20 }, (_, i) => `DURING${wave}-${i}`);
        await Promise.all(ids.map((id) => s.commit(message(id), [note(id, `during-${id}`)])));
        during.push(...ids);
      }
      expect(during.length).toBeGreaterThan(0);
      await until(() => s.keyFilterReady);
      const resent = await Promise.all(during.map((id) => s.commit(message(id), [note(id, `during-${id}`)])));
      expect(resent.filter((r) => !r.duplicate)).toEqual([]);
      const sameFacts = await Promise.all(during.map((id) => s.commit(message(`AGAIN-${id}`), [note(id, `during-${id}`)])));
      expect(sameFacts.filter((r) => r.skippedEvents !== 1)).toEqual([]);
      // One event each, none twice.
      expect(s.stats().pending).toBe(existing + during.length);
    }, 30_000);

    it('closes cleanly while the scan runs, and the next open scans again', async () => {
      const s = await open();
      expect(s.keyFilterReady).toBe(false);
      await s.close();
      expect(s.keyFilterReady).toBe(false);
      store = await open();
      await until(() => store!.keyFilterReady);
      expect((await store.commit(message('OLD7'), [note('OLD7', 'old-7')])).duplicate).toBe(true);
    });
  });
});
