import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { repoRoot } from '../fixtures/hl7/helpers.ts';
import { rawOf } from '../fixtures/store/commit-until-killed.ts';

/**
 * kill -9 while every batch goes through the message log (the log write, then the LevelDB batch
 * with the pointers): every commit that resolved — the moment intake would send its ACK — must
 * read back byte-exact after the restart, with its ACK, once; segments nobody points at go.
 */
const CYCLES = 6;
const child = path.join(repoRoot, 'test/fixtures/store/commit-until-killed.ts');
const dir = mkdtempSync(path.join(tmpdir(), 'lab-gw-log-crash-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runUntilKilled(run: string, acks: Map<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child, dir, run], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = createInterface({ input: proc.stdout! });
    let seen = 0;
    // Killed at a varying point once commits are flowing, i.e. mid-batch.
    const killAfter = 200 + Math.floor(Math.random() * 800);
    lines.on('line', (line) => {
      const [word, controlId, messageId] = line.split(' ');
      if (word !== 'ack') return;
      acks.set(controlId as string, messageId as string);
      if (++seen === killAfter) proc.kill('SIGKILL');
    });
    proc.once('exit', (_code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`child exited by itself (${signal ?? _code})`))));
  });
}

describe('kill -9 while batches go through the message log', () => {
  it('every resolved commit reads back byte-exact after each of the restarts', async () => {
    const acks = new Map<string, string>();
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      await runUntilKilled(`c${cycle}`, acks);
      const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0, messageLogMinBatch: 1 });
      try {
        for (const [controlId, messageId] of acks) {
          const stored = await store.getMessage(messageId);
          expect(stored?.raw.equals(rawOf(controlId)), controlId).toBe(true);
          expect(stored?.ack?.toString()).toBe(`ACK ${controlId}`);
          expect(stored?.message.controlId).toBe(controlId);
        }
        // Nothing twice: one message per acknowledged control id.
        const listed = await store.listMessages({ limit: 1000 });
        expect(new Set(listed.map((m) => m.controlId)).size).toBe(listed.length);
        // Only segments something points at, plus the new active one.
        const segs = readdirSync(path.join(dir, 'store', 'messages')).filter((f) => f.endsWith('.seg'));
        expect(segs.length).toBeLessThanOrEqual(cycle + 2);
      } finally {
        await store.close();
      }
    }
    expect(acks.size).toBeGreaterThan(CYCLES * 200);
  }, 120_000);
});
