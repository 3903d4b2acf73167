import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BACKGROUND_NICE } from '../../gateway/src/store/background-priority.ts';
import { repoRoot } from '../fixtures/hl7/helpers.ts';

/**
 * LevelDB's background thread (flushes and compactions) runs at the lowest priority once a store
 * has opened, so that intake keeps the CPU during a compaction; every other thread keeps its
 * priority. Each case runs in a fresh process: LevelDB starts that thread once per process.
 */
interface Report {
  found: number | undefined;
  main: { name: string; nice: number };
  threads: Array<{ tid: number; name: string; nice: number; appeared: boolean; compactionTicks: number }>;
}

const child = path.join(repoRoot, 'test/fixtures/store/level-background-thread.ts');
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function run(mode: 'lowered' | 'as-started'): Promise<Report> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-gw-bg-priority-'));
  dirs.push(dir);
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child, dir, mode], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    proc.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as Report) : reject(new Error(`child exited with ${code}: ${out}`))));
  });
}

describe.runIf(process.platform === 'linux')("LevelDB's background thread", () => {
  it('runs at the lowest priority once a store opened; it is the thread that compacts, and no other thread is lowered', async () => {
    const report = await run('lowered');
    const lowered = report.threads.filter((t) => t.nice === BACKGROUND_NICE);
    expect(lowered).toHaveLength(1);
    const [thread] = lowered as [Report['threads'][number]];
    expect(thread.tid).toBe(report.found);
    expect(thread.appeared).toBe(true);
    expect(thread.name).toBe('libuv-worker');
    // A full manual compaction of 8 MiB: the lowered thread did the work, libuv's workers waited.
    expect(thread.compactionTicks).toBeGreaterThan(0);
    for (const other of report.threads.filter((t) => t.tid !== thread.tid)) {
      expect(other.nice, `${other.name} ${other.tid}`).toBe(0);
      expect(other.compactionTicks).toBeLessThan(thread.compactionTicks);
    }
    expect(report.main.nice).toBe(0);
  });

  it('keeps the priority LevelDB started it with when the store is told so (the benchmark comparison)', async () => {
    const report = await run('as-started');
    expect(report.found).toBeUndefined();
    // The same thread exists and compacts, at the process's own priority.
    const compacting = report.threads.filter((t) => t.appeared && t.compactionTicks > 0);
    expect(compacting.length).toBeGreaterThan(0);
    for (const t of report.threads) expect(t.nice, `${t.name} ${t.tid}`).toBe(0);
  });
});
