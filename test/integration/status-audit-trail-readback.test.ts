import { describe, expect, it } from 'vitest';
import path from 'node:path';
import type { AuditEntry } from '../../gateway/src/status/admin-audit.ts';
import { makeConfig, makeDeadLetter, relayStandIn, requestJson, useStatusServer, writeAdminToken } from '../fixtures/status/harness.ts';

/**
 * Finance and IT reading the audit trail back through `GET /api/audit` after an outage: who
 * discarded which dead letter, when and why. Real LevelDB in a temp dir, the real status server
 * over HTTP, the real audit log file.
 */
const TOKEN = 'audit-readback-token-4e2b';
const auth = { Authorization: `Bearer ${TOKEN}` };

/** What a monitoring script polling with the token of before a rotation leaves in the trail, per refused request. */
function refusedLine(i: number): AuditEntry {
  return {
    at: new Date(Date.UTC(2026, 2, 2, 8, 0, 0) + i * 6_000).toISOString(),
    actor: 'anonymous@192.0.2.40',
    action: 'check',
    outcome: 'refused',
    detail: 'missing or wrong admin token',
  };
}

describe('GET /api/audit: every entry the trail keeps can be read back', () => {
  const rig = useStatusServer('status-audit-readback-', {
    config: (dir) => makeConfig(path.join(dir, 'data'), { status: { adminTokenFile: writeAdminToken(dir, TOKEN) } }),
    server: () => ({ relayControl: relayStandIn() }),
  });
  const get = (query: string) => requestJson(`${rig.url}/api/audit${query}`, { headers: auth });

  it('a discard followed by a morning of refused tokens is found by its action, and by paging with `next`', async () => {
    // What finance saw: asked who discarded the dead letters of the outage and why, IT opened
    // /api/audit and found only the refusals of a dashboard script still holding the token of
    // before a rotation (11 lines a minute). The API returned the newest 100 entries, at most
    // 1,000, with no way to reach older ones or to ask for the discards only: the discard,
    // kept in audit.log (the trail keeps tens of thousands of entries, README "Audit log"), could
    // not be read back through the API.
    const { eventId } = await makeDeadLetter(rig.store, 'AUDIT-RB-1');
    const discard = await requestJson(`${rig.url}/api/events/${eventId}/discard`, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ reason: 'order cancelled at the desk during the outage' }),
    });
    expect(discard.status).toBe(200);
    // Two hours of the script's refusals, as the server appends them (its own log, its own format).
    for (let i = 0; i < 1_200; i++) await rig.server.auditLog.append(refusedLine(i));

    const byAction = await get('?action=discard');
    expect(byAction.status).toBe(200);
    expect(byAction.json.entries.map((e: AuditEntry) => [e.action, e.target, e.reason, e.outcome])).toEqual([['discard', eventId, 'order cancelled at the desk during the outage', 'ok']]);
    expect(byAction.json.total).toBe(1);
    expect(byAction.json.next).toBeNull();
    expect((await get(`?target=${encodeURIComponent(eventId)}`)).json.entries).toHaveLength(1);
    expect((await get('?outcome=refused&limit=1')).json.total).toBe(1_200);

    // Paging the whole trail from the newest page back with `next` reaches the discard.
    const seen: AuditEntry[] = [];
    let next: string | null = '';
    let pages = 0;
    while (next !== null && pages < 20) {
      const page = await get(`?limit=500${next ? `&before=${encodeURIComponent(next)}` : ''}`);
      expect(page.status).toBe(200);
      seen.unshift(...(page.json.entries as AuditEntry[]));
      next = page.json.next as string | null;
      pages++;
    }
    expect(pages).toBe(3);
    expect(seen).toHaveLength(1_201);
    expect(seen[0]!.action).toBe('discard');
  });

  it('paging is not disturbed by entries written between two pages', async () => {
    // An export that pages while operators keep working: a page after a new entry neither repeats
    // an entry nor skips one (the cursor names a place in the trail, not a count from its end).
    const first = await get('?outcome=refused&limit=100');
    expect(first.json.entries).toHaveLength(100);
    for (let i = 0; i < 30; i++) await rig.server.auditLog.append(refusedLine(5_000 + i));
    const second = await get(`?outcome=refused&limit=100&before=${encodeURIComponent(first.json.next as string)}`);
    const firstAts = new Set((first.json.entries as AuditEntry[]).map((e) => e.at));
    const secondEntries = second.json.entries as AuditEntry[];
    expect(secondEntries).toHaveLength(100);
    expect(secondEntries.some((e) => firstAts.has(e.at))).toBe(false);
    // The newest of the second page is the entry just older than the oldest of the first.
    expect(Date.parse(secondEntries.at(-1)!.at)).toBe(Date.parse((first.json.entries as AuditEntry[])[0]!.at) - 6_000);
  });

  it('a filter or cursor that cannot be read is a 400 naming it', async () => {
    const bad = await get('?outcome=maybe');
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatch(/outcome/);
    const cursor = await get('?before=yesterday');
    expect(cursor.status).toBe(400);
    expect(cursor.json.error).toMatch(/before/);
  });
});
