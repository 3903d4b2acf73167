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
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../fixtures/hl7/helpers.ts';

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
 * The child on a 64 MiB tmpfs with 48 inodes, mounted in its own mount namespace: as root a plain
 * one; where root lacks CAP_SYS_ADMIN (a container's default root), or as another user, one inside
 * a user namespace mapped to root.
 */
async function night(): Promise<Night> {
  const asRoot = process.getuid?.() === 0;
  if (!asRoot) return nightIn(true);
  try {
    return await nightIn(false);
  } catch (e) {
    if (!/Operation not permitted|unshare failed/.test(String(e))) throw e;
    return nightIn(true);
  }
}

function nightIn(userNamespace: boolean): Promise<Night> {
  const args = [...(userNamespace ? ['--map-root-user'] : []), '--mount', 'sh', '-c', 'mount -t tmpfs -o size=64m,nr_inodes=48 tmpfs "$0" && exec "$1" "$2" "$0"', dir, process.execPath, child];
  return new Promise((resolve, reject) => {
    const proc = spawn('unshare', args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.once('exit', (code) => {
      const line = out.trim().split('\n').at(-1);
      if (code !== 0 || !line) return reject(new Error(`disk-full child exited with ${code}: ${err.slice(-2000)}`));
      resolve(JSON.parse(line) as Night);
    });
  });
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
