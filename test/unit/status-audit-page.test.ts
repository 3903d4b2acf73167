import { describe, expect, it } from 'vitest';
import { auditPage, type AuditEntry } from '../../gateway/src/status/admin-audit.ts';

/**
 * Paging the audit trail (GET /api/audit `before`/`next`) across a rotation of audit.log: the
 * cursor names an entry by position and time, and a rotation only moves positions down.
 */
const entry = (i: number): AuditEntry => ({ at: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(), actor: 'token:0123456789ab@127.0.0.1', action: 'replay', target: `E-${i}`, outcome: 'ok' });
const trail = Array.from({ length: 10 }, (_, i) => entry(i));

describe('auditPage', () => {
  it('continues from the same entry after a rotation dropped the oldest entries between two pages', () => {
    // An export paging while audit.log reached its size: counted from the oldest entry kept, the
    // positions moved down; the next page still starts just before the entry the last one ended at.
    const first = auditPage(trail, { limit: 4 });
    expect(first.entries.map((e) => e.target)).toEqual(['E-6', 'E-7', 'E-8', 'E-9']);
    const rotated = trail.slice(3);
    const second = auditPage(rotated, { limit: 4, before: first.next! });
    expect(second.entries.map((e) => e.target)).toEqual(['E-3', 'E-4', 'E-5']);
    expect(second.next).toBeNull();
  });

  it('a cursor whose entry was rotated out has nothing older left', () => {
    const first = auditPage(trail, { limit: 8 });
    expect(first.next).not.toBeNull();
    expect(auditPage(trail.slice(5), { limit: 8, before: first.next! })).toEqual({ entries: [], total: 5, next: null });
  });
});
