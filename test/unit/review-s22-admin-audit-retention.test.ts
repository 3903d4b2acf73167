/**
 * The audit trail's who, when and why of admin actions outlives the refusals written after them.
 * audit.log is bounded (moved to audit.log.1 at its size, the previous .1 dropped): before, every
 * entry counted alike, so a script polling with a stale token (11 refused lines a minute per
 * address, about 2.7 MB a day) pushed last week's discards, relay pauses and name reveals out of
 * the trail within days, and `GET /api/audit?action=discard` no longer said who discarded a
 * finance event or why.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog, auditPage, type AuditEntry } from '../../gateway/src/status/admin-audit.ts';

let dir = '';
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

let clock = Date.parse('2026-03-02T08:00:00.000Z');
const at = (): string => new Date((clock += 1000)).toISOString();
const refusal = (n: number): AuditEntry => ({ at: at(), actor: 'anonymous@10.0.0.9', action: 'check', outcome: 'refused', detail: `missing or wrong admin token ${n}` });

describe('audit trail retention', () => {
  it('a discard and a relay pause stay in the trail, across restarts, however many refusals follow them', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lab-gw-audit-keep-'));
    const maxBytes = 4096;
    let log = new AuditLog(dir, { maxBytes });
    const discard: AuditEntry = { at: at(), actor: 'alice@10.0.0.5', action: 'discard', target: '01a25226000000000000abcd', reason: 'test ordered by mistake', outcome: 'ok' };
    const pause: AuditEntry = { at: at(), actor: 'bob@10.0.0.6', action: 'relay-pause', reason: 'Odoo upgrade', outcome: 'ok' };
    const failed: AuditEntry = { at: at(), actor: 'alice@10.0.0.5', action: 'replay', target: 'nope', outcome: 'failed', detail: 'GW_STORE_NOT_FOUND: no event nope' };
    await log.append(discard);
    await log.append(pause);
    await log.append(failed);
    // Many times the size of both files in refusals, the gateway restarted midway.
    for (let n = 0; n < 300; n++) {
      if (n === 150) log = new AuditLog(dir, { maxBytes });
      await log.append(refusal(n));
    }
    log = new AuditLog(dir, { maxBytes });
    const { entries, unreadableLines } = await log.readAll();
    expect(unreadableLines).toBe(0);
    expect(entries.filter((e) => e.outcome !== 'refused')).toEqual([discard, pause, failed]);
    // The trail is still in the order written: the actions, then the newest refusals, the last one last.
    expect(entries.slice(0, 3)).toEqual([discard, pause, failed]);
    expect(entries.at(-1)?.detail).toBe('missing or wrong admin token 299');
    expect(entries.length).toBeLessThan(303);
    // GET /api/audit?action=discard finds it, with who and why.
    expect(auditPage(entries, { limit: 100, action: 'discard' }).entries).toEqual([discard]);
    // Still bounded as before: no file grows past its size.
    const files = (await readdir(dir)).sort();
    expect(files).toEqual(['audit-actions.log', 'audit.log', 'audit.log.1']);
    for (const f of files) expect((await stat(path.join(dir, f))).size).toBeLessThanOrEqual(maxBytes);
  });
});
