import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isGatewayError } from '../../gateway/src/errors.ts';
import type { LogPointer } from '../../gateway/src/store/message-log.ts';
import { damageRecord as damage, levelEntries as levelEntriesIn, pointerOf as pointerIn, segmentPath } from '../fixtures/store/damage.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';

// A resend of a message whose record in the message log is damaged on disk (GW_STORE_CORRUPT),
// at the store's level (store README "A resend of a damaged record"). Before, `commit` found the
// dedup key, failed reading the stored ACK and threw: the intake answered AE "store unavailable"
// at every resend. Now the resend is a duplicate, answered with the ACK built for it, and the
// record is written again from it as retention moves a record: the pointer moved, the counts of
// both segments right, in one batch; no event is created, a body is rebuilt only where the index
// agrees with the resend's event.
//
// Real LevelDB and message log in a temp dir; a byte of the record is changed in the segment
// file with the store closed; LevelDB is read directly once the store is closed again.

const tmp = useTempStore('lgw-resend-damaged-', { pruneIntervalMs: 0, minFreeBytes: 0 });
const DAY_MS = 86_400_000;
const segmentName = (n: number): string => path.basename(segmentPath(tmp.dir, n));
const levelEntries = (): Promise<Map<string, Buffer>> => levelEntriesIn(tmp.dir);
const pointerOf = (messageId: string): Promise<LogPointer> => pointerIn(tmp.dir, messageId);
const damageRecord = (messageId: string): Promise<void> => damage(tmp.dir, messageId);

const corrupt = async (p: Promise<unknown>): Promise<boolean> => isGatewayError(await p.catch((e: unknown) => e), 'GW_STORE_CORRUPT');

describe('a resend of a message whose record is damaged on disk', () => {
  it('is a duplicate answered with its own ACK; the record is written to the active segment, both segment counts right, and goes at its age', async () => {
    let store = await tmp.open();
    const damaged = await store.commit(inboundMessage('RD1', { searchTerms: ['ACC-RD1'] }), [resultValidated('ACC-RD1', 'k-RD1')]);
    const other = await store.commit(inboundMessage('RD2'), [resultValidated('ACC-RD2', 'k-RD2')]);
    await store.close();
    const before = await pointerOf(damaged.messageId);
    expect((await pointerOf(other.messageId)).segment).toBe(before.segment);
    await damageRecord(damaged.messageId);

    store = await tmp.open();
    expect(await corrupt(store.getMessage(damaged.messageId))).toBe(true);
    const resend = inboundMessage('RD1', { searchTerms: ['ACC-RD1'], ack: Buffer.from('ACK built for the resend') });
    const result = await store.commit(resend, [resultValidated('ACC-RD1', 'k-RD1')]);
    expect(result).toMatchObject({ messageId: damaged.messageId, duplicate: true, eventIds: [], damagedRecord: { messageId: damaged.messageId, rewritten: true } });
    expect(result.ack?.toString()).toBe('ACK built for the resend');
    expect(store.intake()).toMatchObject({ received: 3, accepted: 2, duplicates: 1 });
    const read = await store.getMessage(damaged.messageId);
    expect(read?.message).toMatchObject({ eventIds: damaged.eventIds, duplicates: 1, searchTerms: ['ACC-RD1'] });
    expect((await store.getEvent(damaged.eventIds[0]!))?.event).toMatchObject({ type: 'result.validated', idempotencyKey: 'k-RD1', correlationId: 'ACC-RD1' });
    expect((await store.listMessages({ q: 'ACC-RD1' })).map((m) => m.id)).toEqual([damaged.messageId]);
    await store.close();

    const after = await pointerOf(damaged.messageId);
    expect(after.segment, 'written to the segment this opening made active').toBeGreaterThan(before.segment);
    const entries = await levelEntries();
    const count = (segment: number): string | undefined => entries.get(`!j!${String(segment).padStart(10, '0')}`)?.toString();
    expect(count(before.segment), 'the old segment: only the other message still points into it').toBe('1');
    expect(count(after.segment)).toBe('1');

    // Retention treats it as any readable message: at its age it goes, and with the other one
    // gone too, the old segment file goes.
    store = await tmp.open();
    for (const id of [damaged.eventIds[0]!, other.eventIds[0]!]) {
      const [lease] = await store.lease({ limit: 1 });
      expect(lease?.events.map((e) => e.event.id)).toEqual([id]);
      await store.complete(lease!, [{ eventId: id, outcome: 'delivered' }]);
    }
    await store.prune(Date.now() + 31 * DAY_MS);
    expect(await store.getMessage(damaged.messageId)).toBeUndefined();
    expect(await store.dedupKeyUsed('lis|LIS^LAB|RD1')).toBe(false);
    await store.close();
    const files = (await readdir(path.join(tmp.dir, 'store', 'messages'))).filter((f) => f.endsWith('.seg'));
    expect(files).not.toContain(segmentName(before.segment));
    const keys = [...(await levelEntries()).keys()];
    expect(keys.filter((k) => k.includes(damaged.messageId))).toEqual([]);
  });

  it("the resend's event is not the one the index holds (another key, another order): no event is made, that body stays unreadable, the answer is still the duplicate's", async () => {
    let store = await tmp.open();
    const otherKey = await store.commit(inboundMessage('RD3'), [resultValidated('ACC-RD3', 'k-RD3')]);
    const otherOrder = await store.commit(inboundMessage('RD5'), [resultValidated('ACC-RD5', 'k-RD5')]);
    await store.close();
    await damageRecord(otherKey.messageId);
    await damageRecord(otherOrder.messageId);

    store = await tmp.open();
    // A profile changed since: the same message makes another event now (another key), or the
    // same key for another order (the index's correlation entry disagrees).
    const results = [
      await store.commit(inboundMessage('RD3'), [resultValidated('ACC-RD3', 'k-RD3-other')]),
      await store.commit(inboundMessage('RD5'), [resultValidated('ACC-OTHER', 'k-RD5')]),
    ];
    for (const [i, damaged] of [otherKey, otherOrder].entries()) {
      expect(results[i]).toMatchObject({ messageId: damaged.messageId, duplicate: true, eventIds: [], damagedRecord: { rewritten: true } });
      expect(results[i]!.damagedRecord?.detail).toMatch(/1 of its 1 events match none of the resend's and stay unreadable/);
      expect((await store.getMessage(damaged.messageId))?.message.eventIds).toEqual(damaged.eventIds);
      expect((await store.getEvent(damaged.eventIds[0]!))?.bodyError).toMatch(/GW_STORE_CORRUPT/);
    }
    expect((await store.listEvents({})).map((e) => e.event.id)).toEqual([...otherKey.eventIds, ...otherOrder.eventIds]);
    expect(await store.idempotencyKeyUsed('k-RD3-other')).toBe(false);
    expect(store.stats()).toMatchObject({ pending: 2 });

    // The unreadable event, discarded by an operator, goes after the floor with its message, its
    // correlation entry too (named in the rewrite's batch record: its stand-in body knows none).
    await store.discard(otherKey.eventIds[0]!, 'admin', 'body unreadable; the LIS resent the message');
    await store.prune(Date.now() + 181 * DAY_MS);
    expect(await store.getMessage(otherKey.messageId)).toBeUndefined();
    await store.close();
    const keys = [...(await levelEntries()).keys()];
    expect(keys.filter((k) => k.includes(otherKey.messageId) || k.includes(otherKey.eventIds[0]!))).toEqual([]);
  });

  it('a record written again leaves nothing behind when it goes: its search terms from before the resend, and its dedup key once it was damaged again', async () => {
    let store = await tmp.open();
    // The original was found by an accession the resend no longer carries (an analyzer link
    // resolves its accession against the LIS orders the store holds at the time).
    const damaged = await store.commit(inboundMessage('RD6', { searchTerms: ['ACC-RD6-OLD'] }), [resultValidated('ACC-RD6', 'k-RD6')]);
    await store.close();
    await damageRecord(damaged.messageId);

    store = await tmp.open();
    const result = await store.commit(inboundMessage('RD6', { searchTerms: ['ACC-RD6'] }), [resultValidated('ACC-RD6', 'k-RD6')]);
    expect(result).toMatchObject({ messageId: damaged.messageId, duplicate: true, damagedRecord: { rewritten: true } });
    expect((await store.listMessages({ q: 'ACC-RD6-OLD' })).map((m) => m.id), 'a term the record no longer has').toEqual([]);
    const [lease] = await store.lease({ limit: 1 });
    await store.complete(lease!, [{ eventId: damaged.eventIds[0]!, outcome: 'delivered' }]);
    await store.close();
    // The record written from the resend is damaged in its turn (the same bad sector, a second one).
    await damageRecord(damaged.messageId);

    store = await tmp.open();
    await store.prune(Date.now() + 31 * DAY_MS);
    expect(await store.getMessage(damaged.messageId)).toBeUndefined();
    expect(await store.dedupKeyUsed('lis|LIS^LAB|RD6'), 'the resend of a message that went is a new message').toBe(false);
    await store.close();
    const keys = [...(await levelEntries()).keys()];
    expect(keys.filter((k) => k.includes(damaged.messageId) || k.startsWith('!d!'))).toEqual([]);
  });

  it('two resends at once: both duplicates, both counted, the record written once', async () => {
    let store = await tmp.open();
    const damaged = await store.commit(inboundMessage('RD4'), [resultValidated('ACC-RD4', 'k-RD4')]);
    await store.close();
    await damageRecord(damaged.messageId);

    store = await tmp.open();
    const results = await Promise.all([1, 2].map((n) => store.commit(inboundMessage('RD4', { ack: Buffer.from(`ACK ${n}`) }), [resultValidated('ACC-RD4', 'k-RD4')])));
    expect(results.every((r) => r.duplicate && r.messageId === damaged.messageId)).toBe(true);
    const rewritten = results.filter((r) => r.damagedRecord?.rewritten);
    expect(rewritten).toHaveLength(1);
    // The other is answered with what the rewrite stored. Which of the two reaches the queue lock
    // first is not the order of the calls: each first reads the damaged record, and those reads
    // can finish in either order (CI once saw the second call rewrite).
    const stored = rewritten[0]!.ack?.toString();
    expect(['ACK 1', 'ACK 2']).toContain(stored);
    expect(results.map((r) => r.ack?.toString())).toEqual([stored, stored]);
    expect(store.intake().duplicates).toBe(2);
    await store.close();
    store = await tmp.open();
    const read = await store.getMessage(damaged.messageId);
    expect(read?.message.duplicates).toBe(2);
    expect(read?.ack?.toString(), 'the record holds the ACK both were answered with').toBe(stored);
    expect(store.intake().duplicates).toBe(2);
  });

  it('a refused analyzer message (kept with its dedup key, no events): answered with the refusal built for the resend, written again as refused', async () => {
    let store = await tmp.open();
    const nak = Buffer.from([0x15]);
    const astm = (receivedAt?: string) =>
      inboundMessage('AST1', { kind: 'astm', endpoint: 'xn-1', status: 'rejected', rejectReason: 'unknown test code', ack: nak, dedupKey: 'astm|xn-1|hash-AST1', raw: Buffer.from('H|\\^&|||XN\rL|1|N\r'), ...(receivedAt ? { receivedAt } : {}) });
    const damaged = await store.commit(astm(), []);
    await store.close();
    await damageRecord(damaged.messageId);

    store = await tmp.open();
    const result = await store.commit(astm(), []);
    expect(result).toMatchObject({ messageId: damaged.messageId, duplicate: true, damagedRecord: { rewritten: true } });
    expect(result.ack?.equals(nak)).toBe(true);
    expect((await store.getMessage(damaged.messageId))?.message).toMatchObject({ status: 'rejected', rejectReason: 'unknown test code', eventIds: [] });
  });
});
