/**
 * A full disk under LevelDB's own log. What the lab saw (mllp-disk-full-audit, now and then on a
 * loaded machine): a result the LIS got AE 207 "store unavailable" for, and then AA for when it
 * sent it again once the disk had room, was stored twice after the next restart: two events for
 * one order, a possible duplicate invoice line.
 *
 * The cause: LevelDB's append to its log failed (ENOSPC), which LevelDB returns for that write
 * only. Part of the record (or none of it) was in the log file, and LevelDB went on appending
 * after it. At the next open its log reader dropped everything from the tear to the end of that
 * file: the catch-up, the health probe's checkpoint and every batch after it. The checkpoint was
 * then the one from before the failed write, and the start-up replay of the message log applied
 * every batch record after it, the refused batch included (its message-log write had succeeded)
 * beside the resend's. Now nothing is written to LevelDB after a failed write until the health
 * probe has opened it again (store README, "Durability argument").
 *
 * Real parts: the store in a child process in a mount namespace of its own, on a real tmpfs
 * filled to the last byte by another program (test/fixtures/store/torn-wal-child.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { repoRoot } from '../fixtures/hl7/helpers.ts';
import { inTmpfs } from '../fixtures/store/in-tmpfs.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const child = path.join(repoRoot, 'test/fixtures/store/torn-wal-child.ts');
const dir = mkdtempSync(path.join(tmpdir(), 'lgw-torn-wal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  freeWhenFull: number;
  refused?: string;
  refusal: string;
  healthWhileFull: string;
  healthAfter: string;
  resent: string;
  acked: string[];
  beforeRestart: Record<string, number>;
  stored: Record<string, number>;
  healths: string[];
}

function expectExactlyOnce(r: Run): void {
  expect(r.freeWhenFull, 'the partition really was full').toBeLessThan(64 * 1024);
  expect(r.refused, `a message was refused while the disk was full (${r.healths.join(' | ')})`).toBeDefined();
  expect(r.refusal).toMatch(/GW_STORE_UNAVAILABLE/);
  expect(r.healthWhileFull).toBe('failed');
  expect(r.healthAfter, `health once the file was deleted (${r.healths.join(' | ')})`).toBe('ok');
  // Resent after its refusal, it is taken (as new: the refused write is not in LevelDB).
  expect(r.resent).toBe('accepted');
  const notOnce = (counts: Record<string, number>): string[] => r.acked.filter((id) => counts[id] !== 1);
  expect(notOnce(r.beforeRestart), 'acknowledged, not stored exactly once (before the restart)').toEqual([]);
  expect(notOnce(r.stored), 'acknowledged, not stored exactly once (after a restart)').toEqual([]);
  expect(Object.keys(r.stored).filter((id) => !r.acked.includes(id)), 'stored, never acknowledged').toEqual([]);
}

describe("LevelDB's log on a full disk", () => {
  it('a message refused because its LevelDB write failed, then resent, is stored once, also after a restart', async () => {
    const r = await inTmpfs<Run>(dir, child, ['held'], 'size=8m');
    expectExactlyOnce(r);
  }, 60_000);

  it('a message refused behind an acknowledged one whose LevelDB write failed, then resent, is stored once; the acknowledged one too', async () => {
    const r = await inTmpfs<Run>(dir, child, ['early'], 'size=8m');
    expect(r.refusal).toMatch(/an earlier batch failed/);
    expectExactlyOnce(r);
  }, 60_000);
});

describe('a LevelDB write failing while the health probe finishes', () => {
  // What the user sees: the store says it is healthy (GET /api/status, the tray), yet the next
  // message is answered AE 207 "store unavailable", and a batch answered at its commit point is not
  // caught up until some write has been refused.
  // Cause: a write that failed after the probe had opened LevelDB again and written its own batch
  // (a document: documents are written while the store is failed) set "LevelDB must be opened
  // again", and the probe went on to report 'ok'; later probes saw 'ok' and did nothing, while
  // every write was refused, until a refused one set 'failed' again. Fix: the probe reports 'ok' only with no failure pending, and
  // a probe also runs while one is pending.
  const tmp = useTempStore('lgw-torn-wal-probe-', { minFreeBytes: 0, pruneIntervalMs: 0, healthCheckIntervalMs: 20 });
  const proto = (createRequire(import.meta.url)('classic-level/chained-batch.js') as { ChainedBatch: { prototype: Record<string, (...args: unknown[]) => unknown> } }).ChainedBatch.prototype;
  const original = { put: proto._put as (...args: unknown[]) => unknown, write: proto._write as (...args: unknown[]) => unknown };
  const keysOf = new WeakMap<object, string[]>();
  const failing = new Set<string>();
  const levelIo = (): Error => Object.assign(new Error('IO error: No space left on device'), { code: 'LEVEL_IO_ERROR' });
  beforeEach(() => {
    proto._put = function (this: object, key: unknown, value: unknown) {
      const keys = keysOf.get(this) ?? [];
      keys.push(String(key));
      keysOf.set(this, keys);
      return original.put.call(this, key, value);
    };
    // A LevelDB write fails, as on a full disk, when its batch holds a document named in `failing`.
    proto._write = function (this: object, options: unknown) {
      if ((keysOf.get(this) ?? []).some((k) => [...failing].some((f) => k.includes(f)))) return Promise.reject(levelIo());
      return original.write.call(this, options);
    };
  });
  afterEach(() => {
    proto._put = original.put;
    proto._write = original.write;
    failing.clear();
  });

  it('is not reported healthy while LevelDB must be opened again; writes resume', async () => {
    const store = await tmp.open();
    await store.commit(inboundMessage('P1'), [resultValidated('ORDER-P1', 'k-P1')]);
    failing.add('first-failure');
    await expect(store.putDoc('test', 'first-failure', 1)).rejects.toThrow(/GW_STORE_UNAVAILABLE|could not commit/);
    expect(store.health).toBe('failed');
    failing.delete('first-failure');

    // The probe's own write (after LevelDB was opened again): a document queued behind it fails.
    let second: Promise<void> | undefined;
    store.interceptLevelWrites(() => {
      if (second) return;
      failing.add('during-probe');
      second = store.putDoc('test', 'during-probe', 2);
      second.catch(() => undefined);
    });
    await expect.poll(() => second !== undefined, { timeout: 30_000 }).toBe(true);
    await expect(second).rejects.toThrow();
    store.interceptLevelWrites(undefined);
    failing.clear();

    // Healthy again once the probe has opened LevelDB again, and then it takes writes.
    await expect.poll(() => store.health, { timeout: 30_000 }).toBe('ok');
    await store.putDoc('test', 'after', 3);
    expect(await store.getDoc('test', 'after')).toBe(3);
    expect((await store.commit(inboundMessage('P2'), [resultValidated('ORDER-P2', 'k-P2')])).duplicate).toBe(false);
  }, 60_000);
});
