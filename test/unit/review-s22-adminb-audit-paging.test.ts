/**
 * The audit trail kept across rotations (audit.log → audit.log.1 → dropped, the actions of the
 * dropped file kept in audit-actions.log), read page by page as `GET /api/audit` serves it, and
 * after a crash (or a power cut) between keeping the actions of audit.log.1 and the rotation:
 * real files in a temp dir, the real AuditLog and auditPage.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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
const line = (e: AuditEntry): string => JSON.stringify(e) + '\n';

describe('audit trail paging and rotation', () => {
  /**
   * User sees (was): a script (or IT) reading the whole trail page by page, newest first, while a
   * stale token's refusals rotated the log, got an empty page and `next: null` once its cursor's
   * refusal was dropped, and stopped: the discards kept in audit-actions.log, older than it, were
   * never read, though `GET /api/audit?action=discard` still had them.
   */
  it('a cursor whose refusal was dropped at a rotation goes on with the older actions kept', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lab-gw-audit-paging-'));
    const maxBytes = 4096;
    const log = new AuditLog(dir, { maxBytes });
    const discard: AuditEntry = { at: at(), actor: 'alice@10.0.0.5', action: 'discard', target: '01a25226000000000000abcd', reason: 'test ordered by mistake', outcome: 'ok' };
    await log.append(discard);
    let n = 0;
    for (; n < 20; n++) await log.append(refusal(n));
    // The first page, newest first: its `next` names a refusal.
    const first = auditPage(await log.read(), { limit: 5 });
    expect(first.next).not.toBeNull();
    const cursorAt = first.next!.slice(first.next!.indexOf('.') + 1);
    // Refusals go on until that refusal is dropped at a rotation (bounded).
    while ((await log.read()).some((e) => e.at === cursorAt)) {
      expect(n).toBeLessThan(500);
      await log.append(refusal(n++));
    }
    // The client goes on paging from its cursor to the end.
    const seen: AuditEntry[] = [];
    let next: string | null = first.next;
    for (let pages = 0; next !== null && pages < 100; pages++) {
      const page = auditPage(await log.read(), { limit: 5, before: next });
      seen.unshift(...page.entries);
      next = page.next;
    }
    expect(seen).toContainEqual(discard);
    // Nothing newer than the cursor is read again.
    expect(seen.filter((e) => e.at >= cursorAt)).toEqual([]);
  });

  /**
   * User sees (was): after a crash or a power cut between keeping the actions of audit.log.1 and
   * the rotation (the rename is not yet on disk), every discard, pause and reveal of audit.log.1
   * read twice in `GET /api/audit`, and kept twice at the next rotation, for good: "alice
   * discarded the event twice?".
   */
  it('a crash between keeping the actions and the rotation keeps them once', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lab-gw-audit-crash-'));
    const maxBytes = 4096;
    const older: AuditEntry = { at: at(), actor: 'bob@10.0.0.6', action: 'relay-pause', reason: 'Odoo upgrade', outcome: 'ok' };
    const discard: AuditEntry = { at: at(), actor: 'alice@10.0.0.5', action: 'discard', target: '01a25226000000000000abcd', reason: 'test ordered by mistake', outcome: 'ok' };
    const previous = [discard, refusal(1), refusal(2)];
    const current: AuditEntry[] = [];
    while (current.map(line).join('').length < maxBytes - 150) current.push(refusal(current.length + 3));
    // The files as the crash left them: the discard of audit.log.1 appended to audit-actions.log
    // (after an older action kept before), audit.log not yet moved to audit.log.1.
    await writeFile(path.join(dir, 'audit-actions.log'), line(older) + line(discard));
    await writeFile(path.join(dir, 'audit.log.1'), previous.map(line).join(''));
    await writeFile(path.join(dir, 'audit.log'), current.map(line).join(''));
    const log = new AuditLog(dir, { maxBytes });
    const ok = async (): Promise<AuditEntry[]> => (await log.read()).filter((e) => e.outcome !== 'refused');
    expect(await ok()).toEqual([older, discard]);
    expect(auditPage(await log.read(), { limit: 100, action: 'discard' }).total).toBe(1);
    // The next entry rotates: audit.log.1 replaced, its discard kept once.
    const last = refusal(999);
    await log.append(last);
    await log.append(last);
    expect(await ok()).toEqual([older, discard]);
    expect((await readFile(path.join(dir, 'audit-actions.log'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEntry)).toEqual([older, discard]);
  });
});
