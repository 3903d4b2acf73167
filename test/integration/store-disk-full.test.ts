/**
 * A disk-full night: another program fills the gateway's data partition. LevelDB's next memtable
 * flush cannot write its table file (ENOSPC); the store turns `failed` and intake answers
 * negatively, as DESIGN.md §2 wants. IT deletes the other program's files. Store README ("Disk
 * full and write errors"): "a failed store probes with a small synced write and resumes by
 * itself". What the lab saw: the gateway stayed failed — every LIS message and analyzer result
 * was refused (AE/NAK) all night and the status kept saying the store could not write
 * ("IO error: …ldb: No space left on device") although the disk had room again, until someone
 * restarted the service. LevelDB keeps a failed background write as an error for every later
 * write until the database is opened again, and the probe only wrote again.
 *
 * Real parts: the store in a child process in a mount namespace of its own, on a real tmpfs
 * with few inodes, so that LevelDB's own file creation fails as on a full disk
 * (test/fixtures/store/disk-full-child.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../fixtures/hl7/helpers.ts';
import { inTmpfs as inTmpfsIn } from '../fixtures/store/in-tmpfs.ts';

const child = path.join(repoRoot, 'test/fixtures/store/disk-full-child.ts');
const dir = mkdtempSync(path.join(tmpdir(), 'lgw-disk-full-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Night {
  switched: boolean;
  refused?: string;
  healthWhileFull: string;
  healthAfter: string;
  afterFreed: string;
  healths: string[];
  acked: number;
  missing: string[];
}

/**
 * The child on a 64 MiB tmpfs with 48 inodes (see inTmpfs).
 */
function night(): Promise<Night> {
  return inTmpfs<Night>(child, [], 'size=64m,nr_inodes=48');
}

/** The child `script` on a real tmpfs (test/fixtures/store/in-tmpfs.ts). */
function inTmpfs<T>(script: string, args: string[], mountOptions: string): Promise<T> {
  return inTmpfsIn<T>(dir, script, args, mountOptions);
}

describe('disk full, then space freed', () => {
  it('the store resumes by itself once the disk has room again, and keeps every message it acknowledged', async () => {
    const n = await night();
    // The disk really filled where it matters: LevelDB's flush, after acknowledged messages.
    expect(n.switched, 'LevelDB switched to a new memtable').toBe(true);
    expect(n.acked).toBeGreaterThan(100);
    expect(n.refused, 'intake was refused while the disk was full').toMatch(/GW_STORE|No space|IO error/);
    expect(n.healthWhileFull).toBe('failed');

    expect(n.healthAfter, `health once the files were deleted (${n.healths.join(' | ')})`).toBe('ok');
    expect(n.afterFreed, 'a new LIS message is accepted again').toBe('accepted');
    expect(n.missing, 'every acknowledged message is still there after a restart').toEqual([]);
  }, 60_000);
});

interface RetentionOnFullDisk {
  healthBefore: string;
  freeBefore: number;
  pruneError?: string;
  delivered: number;
  deletedDelivered: number;
  freeAfter: number;
  healthAfter: string;
  afterPrune: string;
  restart: string;
  owed: number;
  owedLost: string[];
}

const retentionChild = path.join(repoRoot, 'test/fixtures/store/retention-disk-full-child.ts');
/**
 * The retention child's partition. Its 30 message-log segments take 512 KiB each on disk (256 KiB
 * of records, zero-filled ahead by the log), 15.4 MiB before another program fills the rest: on a
 * 16 MiB tmpfs the free space dipped below the 1 MiB reserve while the results were still being
 * committed, and the store refused one of them now and then (the child exited GW_STORE_FULL).
 */
const RETENTION_TMPFS = 'size=32m';

describe('retention on a full disk', () => {
  // What IT saw: the data partition filled up (another program's files, weeks of large results
  // with embedded reports), the store turned full and refused intake, as it should. Retention
  // ran, and the disk stayed full for good: its pass deletes what is past store.retentionDays and,
  // in the same batch, copies the few results still owed to Odoo out of their old segments. The
  // copies are written to the message log first, on a disk with no room for them: the write
  // failed, the whole batch with it, nothing was deleted, and the failed write took the last
  // 256 KiB as well. Every later pass failed the same way; a restart no longer opened LevelDB
  // ("No space left on device"). Store README ("Disk full and write errors", Retention): the
  // reserve under store.minFreeBytes is there so that the queue drains and the gateway's own
  // state stays current; retention is what frees the disk, and must not need room to do it.
  it('deletes what is past the age while the store is full, so the disk frees itself; nothing owed to Odoo goes', async () => {
    const r = await inTmpfs<RetentionOnFullDisk>(retentionChild, ['full'], RETENTION_TMPFS);
    expect(r.healthBefore, 'the partition really was below the reserve').toBe('full');
    expect(r.pruneError, 'the retention pass').toBeUndefined();
    expect(r.deletedDelivered, 'delivered results past the age deleted').toBe(r.delivered);
    expect(r.freeAfter, 'room came back').toBeGreaterThan(1024 * 1024);
    expect(r.healthAfter, 'the store resumed by itself').toBe('ok');
    expect(r.afterPrune, 'a new LIS message is accepted again').toBe('accepted');
    expect(r.restart).toBe('opened');
    expect(r.owed).toBe(20);
    expect(r.owedLost, 'every result still owed to Odoo is kept, still waiting').toEqual([]);
  }, 60_000);

  // The same with a small reserve (store.minFreeBytes lowered on a small partition, or results
  // large enough that one pass's copies outgrow the default 64 MiB): the store is ok, the pass's
  // copies need more than the disk has, and the whole pass failed as above.
  it('copies kept results only as far as the disk has room: the deletions of the pass are not lost with them', async () => {
    const r = await inTmpfs<RetentionOnFullDisk>(retentionChild, ['room'], RETENTION_TMPFS);
    expect(r.healthBefore, 'the store was accepting with 256 KiB left').toBe('ok');
    expect(r.pruneError, 'the retention pass').toBeUndefined();
    expect(r.deletedDelivered, 'delivered results past the age deleted').toBe(r.delivered);
    expect(r.freeAfter, 'room came back').toBeGreaterThan(r.freeBefore);
    expect(r.healthAfter).toBe('ok');
    expect(r.afterPrune, 'a new LIS message is accepted').toBe('accepted');
    expect(r.restart).toBe('opened');
    expect(r.owedLost, 'every result still owed to Odoo is kept, still waiting').toEqual([]);
  }, 60_000);
});
