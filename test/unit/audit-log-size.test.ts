/**
 * The admin audit log is bounded: `audit.log` is moved to `audit.log.1` once it reaches its size,
 * so a script polling with a stale token (a refused line each time) can no longer fill the data
 * disk over the years, while `GET /api/audit` (readAll) still returns every kept entry in order,
 * the previous file's first.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog, type AuditEntry } from '../../gateway/src/status/admin-audit.ts';

let dir = '';
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const entry = (n: number): AuditEntry => ({ at: new Date(1_700_000_000_000 + n * 1000).toISOString(), actor: 'token:abc@10.0.0.9', action: 'refused', target: '/api/events/x/replay', reason: `wrong token ${n}`, outcome: 'refused' });

describe('audit log size', () => {
  it('keeps at most two files of its size, and reads the kept entries in order', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lab-gw-audit-size-'));
    const maxBytes = 4096;
    const log = new AuditLog(dir, { maxBytes });
    for (let n = 0; n < 200; n++) await log.append(entry(n));
    expect((await readdir(dir)).sort()).toEqual(['audit.log', 'audit.log.1']);
    expect((await stat(log.file)).size).toBeLessThanOrEqual(maxBytes);
    expect((await stat(log.previousFile)).size).toBeLessThanOrEqual(maxBytes);
    const { entries, unreadableLines } = await log.readAll();
    expect(unreadableLines).toBe(0);
    const numbers = entries.map((e) => Number(/\d+$/.exec(e.reason ?? '')![0]));
    // The newest entries, contiguous and in the order written, ending with the last one.
    expect(numbers.at(-1)).toBe(199);
    expect(numbers).toEqual(numbers.map((_, i) => numbers[0]! + i));
    expect(numbers.length).toBeGreaterThan(20);
    expect(numbers.length).toBeLessThan(200);
  });
});
