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
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../fixtures/hl7/helpers.ts';
import { inTmpfs } from '../fixtures/store/in-tmpfs.ts';

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
