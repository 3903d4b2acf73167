import { existsSync } from 'node:fs';
import path from 'node:path';
import { Level } from 'level';
import { describeError } from '../errors.ts';
import { levelOpenFailure } from './event-store.ts';
import type { GatewayStore, QueueStats } from './types.ts';

/**
 * The store read at rest: what `lab-gateway check` says of a data dir before any gateway starts on
 * it (the demo's store with a real Odoo set: relay/odoo-target.ts checkStoreUse). Opening the
 * store as the gateway does (EventStore.open) would create the data dir, replay the message log,
 * record the key era and prune segments; this reads the few keys check needs and writes none of
 * them, creates nothing, and leaves a store another process holds alone.
 *
 * It reads the keys as event-store.ts keeps them (README.md, "Key layout": `meta` `counts` and
 * `endpoints`, `doc` namespace␀key); test/unit/store-at-rest.test.ts reads stores EventStore wrote
 * through it, so a change of that layout fails there.
 */

/** What is read of a store at rest: its documents, its queue counters and its links' last messages. */
export type StoreAtRest = Pick<GatewayStore, 'getDoc' | 'stats'> & {
  /** Per endpoint id, the receive time (ISO) of its last message, as the store last wrote it. */
  lastMessageAt(): Readonly<Record<string, string>>;
};

/**
 * What readStoreAtRest found in the data dir:
 * - `none`: no store there (a data dir not made yet, or one where no gateway ran);
 * - `held`: another process has it open (LevelDB's lock: a gateway, or the demo, running on it);
 * - `unreadable`: LevelDB cannot open it or its counters cannot be read (`reason`: LevelDB's words);
 * - `store`: what `read` returned.
 */
export type StoreLook<T> = { found: 'none' } | { found: 'held' } | { found: 'unreadable'; reason: string } | { found: 'store'; value: T };

/** The queue counters as the store keeps them in `meta` `counts` (event-store.ts Counts). */
type StoredCounts = Partial<Record<'pending' | 'inflight' | 'retrying' | 'dead' | 'delivered' | 'discarded', number>>;

/**
 * Open the store under `<dataDir>/store` without creating anything, hand it to `read` and close it
 * again. The store is opened with LevelDB's lock for as long as `read` runs (LevelDB has no
 * read-only mode): a gateway starting on the same data dir in that instant is refused as locked.
 *
 * Counters and last messages are those of the last batch LevelDB applied; the oldest pending age
 * is not kept on disk (0). An error `read` throws is passed on, after the store is closed.
 */
export async function readStoreAtRest<T>(dataDir: string, read: (store: StoreAtRest) => Promise<T>): Promise<StoreLook<T>> {
  const location = path.join(dataDir, 'store');
  if (!existsSync(path.join(location, 'CURRENT'))) return { found: 'none' };
  const db = new Level<string, unknown>(location, { createIfMissing: false, keyEncoding: 'utf8', valueEncoding: 'json' });
  try {
    await db.open();
  } catch (err) {
    // LevelDB's exclusive lock, told as EventStore.open tells it.
    const failure = levelOpenFailure(err);
    return failure.locked ? { found: 'held' } : { found: 'unreadable', reason: failure.reason };
  }
  try {
    const meta = db.sublevel<string, unknown>('meta', { keyEncoding: 'utf8', valueEncoding: 'json' });
    const docs = db.sublevel<string, unknown>('doc', { keyEncoding: 'utf8', valueEncoding: 'json' });
    let counts: StoredCounts;
    let endpoints: Readonly<Record<string, string>>;
    try {
      counts = ((await meta.get('counts')) as StoredCounts | undefined) ?? {};
      endpoints = { ...((await meta.get('endpoints')) as Record<string, string> | undefined) };
    } catch (err) {
      return { found: 'unreadable', reason: describeError(err) };
    }
    const stats: QueueStats = {
      pending: counts.pending ?? 0,
      inFlight: counts.inflight ?? 0,
      retrying: counts.retrying ?? 0,
      deadLettered: counts.dead ?? 0,
      delivered: counts.delivered ?? 0,
      discarded: counts.discarded ?? 0,
      // A dead letter blocks its partition (EventStore.stats).
      blockedPartitions: counts.dead ?? 0,
      oldestPendingAgeSeconds: 0,
    };
    const store: StoreAtRest = {
      getDoc: async <D>(namespace: string, key: string) => (await docs.get(`${namespace}\x00${key}`)) as D | undefined,
      stats: () => ({ ...stats }),
      lastMessageAt: () => endpoints,
    };
    return { found: 'store', value: await read(store) };
  } finally {
    await db.close().catch(() => undefined);
  }
}
