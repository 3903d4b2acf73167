import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { isGatewayError } from '../../gateway/src/errors.ts';
import { damageRecord as damage, levelEntries, pointerOf, segmentPath } from '../fixtures/store/damage.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';

// Retention and a message record damaged on disk (a failed CRC or length check in the message
// log: GW_STORE_CORRUPT). The store README's "Retention" promises that records go at their age
// (`store.retentionDays`, the longer floor of rejected messages and discards,
// `store.deadLetterRetentionDays`). A damaged record used to be stepped over by every pass, for
// good: its pointer, the count of its segment (which kept the whole 64 MiB segment file on disk),
// its dedup key and its search entries stayed, and so did the correlation entry of an event whose
// body it held, once an operator had discarded that event. On an appliance that runs for years,
// disk that never came back.
//
// Real LevelDB and message log in a temp dir; a byte of the record is changed in the segment
// file with the store closed (what a bad sector does); LevelDB is read directly once the store is
// closed again. Ages are given to prune(now) explicitly; delivery and discard times are the
// store's own (now).

const tmp = useTempStore('lgw-retention-damaged-', { pruneIntervalMs: 0, minFreeBytes: 0, healthCheckIntervalMs: 50 });
const DAY_MS = 86_400_000;
const segmentName = (n: number): string => path.basename(segmentPath(tmp.dir, n));
/** Every key of the store's LevelDB (the store closed; these stores hold a few dozen). */
const levelKeys = async (): Promise<Set<string>> => new Set((await levelEntries(tmp.dir)).keys());
const segmentOf = async (messageId: string): Promise<number> => (await pointerOf(tmp.dir, messageId)).segment;
const damageRecord = (messageId: string, batchRecordToo = false): Promise<void> => damage(tmp.dir, messageId, { batchRecordToo });

const segmentFiles = async (): Promise<string[]> => (await readdir(path.join(tmp.dir, 'store', 'messages'))).filter((f) => f.endsWith('.seg'));

/** Lease the next head and deliver it. */
async function deliverNext(store: EventStore, eventId: string): Promise<void> {
  const [lease] = await store.lease({ limit: 1 });
  expect(lease?.events.map((e) => e.event.id)).toEqual([eventId]);
  await store.complete(lease!, [{ eventId, outcome: 'delivered' }]);
}

/** What a message leaves in LevelDB by its id, dedup key and search terms. */
function messageKeys(keys: Set<string>, messageId: string, dedupKey: string, terms: string[]): string[] {
  const mine = [`!m!${messageId}`, `!d!${dedupKey}`, ...terms.map((t) => `!s!${t}\x00${messageId}`)];
  return mine.filter((k) => keys.has(k));
}

describe('retention: a message whose record is damaged on disk', () => {
  it('delivered: it goes at the retention age with its dedup key and search entries, and its segment file with it', async () => {
    let store = await tmp.open();
    const damaged = await store.commit(inboundMessage('DMG1', { searchTerms: ['ACC-DMG1'] }), [resultValidated('ACC-DMG1', 'k-DMG1')]);
    const other = await store.commit(inboundMessage('DMG2'), [resultValidated('ACC-DMG2', 'k-DMG2')]);
    await deliverNext(store, damaged.eventIds[0]!);
    await deliverNext(store, other.eventIds[0]!);
    await store.close();
    const segment = await segmentOf(damaged.messageId);
    expect(await segmentOf(other.messageId)).toBe(segment);
    await damageRecord(damaged.messageId);

    store = await tmp.open();
    const read = await store.getMessage(damaged.messageId).catch((e: unknown) => e);
    expect(isGatewayError(read, 'GW_STORE_CORRUPT')).toBe(true);
    // Within the age nothing goes.
    expect(await store.prune(Date.now() + 10 * DAY_MS)).toBe(0);
    await store.prune(Date.now() + 31 * DAY_MS);
    expect(await store.getEvent(damaged.eventIds[0]!)).toBeUndefined();
    expect(await store.getMessage(other.messageId)).toBeUndefined();
    expect(await store.getMessage(damaged.messageId), 'the damaged message is gone too').toBeUndefined();
    // Its dedup key went with it: the LIS's resend of it is a new message, not a duplicate of
    // bytes nobody can read.
    expect(await store.dedupKeyUsed('lis|LIS^LAB|DMG1')).toBe(false);
    expect(store.stats()).toMatchObject({ delivered: 0, pending: 0 });
    await store.close();

    const keys = await levelKeys();
    expect(messageKeys(keys, damaged.messageId, 'lis|LIS^LAB|DMG1', ['DMG1', 'ACC-DMG1'])).toEqual([]);
    expect(keys.has(`!j!${String(segment).padStart(10, '0')}`), "the segment's count").toBe(false);
    expect(await segmentFiles(), 'the segment file is deleted').not.toContain(segmentName(segment));
    // The idempotency key stays as a tombstone, as for every pruned event.
    expect(keys.has('!k!k-DMG1')).toBe(true);
  });

  it('an unreadable dead letter stays with its message until an operator discards it; then both go after the floor, index entries too', async () => {
    let store = await tmp.open();
    const damaged = await store.commit(inboundMessage('DMG3', { searchTerms: ['ACC-DMG3'] }), [resultValidated('ACC-DMG3', 'k-DMG3')]);
    const other = await store.commit(inboundMessage('DMG4'), [resultValidated('ACC-DMG4', 'k-DMG4')]);
    await store.close();
    const segment = await segmentOf(damaged.messageId);
    await damageRecord(damaged.messageId);

    store = await tmp.open();
    const eventId = damaged.eventIds[0]!;
    // Its partition comes up: a dead letter with the reason (README "Event bodies").
    await deliverNext(store, other.eventIds[0]!);
    expect(await store.getEvent(eventId)).toMatchObject({ state: 'dead', event: { type: 'unreadable' } });

    // Past every age, still dead: the dead letter and its message stay.
    await store.prune(Date.now() + 400 * DAY_MS);
    expect(await store.getEvent(eventId)).toMatchObject({ state: 'dead', deadReason: expect.stringMatching(/could not be read/) });
    expect(isGatewayError(await store.getMessage(damaged.messageId).catch((e: unknown) => e), 'GW_STORE_CORRUPT')).toBe(true);
    await store.close();
    expect(messageKeys(await levelKeys(), damaged.messageId, 'lis|LIS^LAB|DMG3', ['DMG3', 'ACC-DMG3'])).toHaveLength(4);

    store = await tmp.open();
    await store.discard(eventId, 'admin', 'record damaged on disk; result re-sent by the LIS');
    // The discard keeps its audit trail, and the message, for the floor.
    await store.prune(Date.now() + 31 * DAY_MS);
    expect(await store.getEvent(eventId)).toMatchObject({ state: 'discarded' });
    expect(isGatewayError(await store.getMessage(damaged.messageId).catch((e: unknown) => e), 'GW_STORE_CORRUPT')).toBe(true);

    await store.prune(Date.now() + 181 * DAY_MS);
    expect(await store.getEvent(eventId)).toBeUndefined();
    expect(await store.getMessage(damaged.messageId)).toBeUndefined();
    expect(store.stats()).toMatchObject({ discarded: 0, delivered: 0, deadLettered: 0 });
    await store.close();

    const keys = await levelKeys();
    expect(messageKeys(keys, damaged.messageId, 'lis|LIS^LAB|DMG3', ['DMG3', 'ACC-DMG3'])).toEqual([]);
    expect(keys.has(`!c!ACC-DMG3\x00${eventId}`), "the event's correlation entry").toBe(false);
    expect(keys.has(`!j!${String(segment).padStart(10, '0')}`), "the segment's count").toBe(false);
    expect(await segmentFiles()).not.toContain(segmentName(segment));
  });

  it('a pass stopped by its work bound before the discard: the message waits for it, so the correlation entry still goes', async () => {
    let store = await tmp.open();
    const damaged = await store.commit(inboundMessage('DMG10'), [resultValidated('ACC-DMG10', 'k-DMG10')]);
    const other = await store.commit(inboundMessage('DMG11'), [resultValidated('ACC-DMG11', 'k-DMG11')]);
    await store.close();
    await damageRecord(damaged.messageId);

    store = await tmp.open();
    const eventId = damaged.eventIds[0]!;
    await deliverNext(store, other.eventIds[0]!);
    // Discarded a little after the other delivery: its done entry comes after that one's.
    await new Promise((resolve) => setTimeout(resolve, 5));
    await store.discard(eventId, 'admin', 'record damaged on disk');
    // One event per pass: the first pass prunes the delivered one only, then looks at the damaged
    // message, whose discard is past its floor but still stored.
    await store.prune(Date.now() + 181 * DAY_MS, 1);
    expect(await store.getEvent(eventId)).toMatchObject({ state: 'discarded' });
    expect(isGatewayError(await store.getMessage(damaged.messageId).catch((e: unknown) => e), 'GW_STORE_CORRUPT')).toBe(true);
    for (let pass = 0; pass < 4; pass++) await store.prune(Date.now() + 181 * DAY_MS, 1);
    expect(await store.getEvent(eventId)).toBeUndefined();
    expect(await store.getMessage(damaged.messageId)).toBeUndefined();
    await store.close();
    const keys = await levelKeys();
    expect(keys.has(`!c!ACC-DMG10\x00${eventId}`)).toBe(false);
    expect(messageKeys(keys, damaged.messageId, 'lis|LIS^LAB|DMG10', ['DMG10'])).toEqual([]);
  });

  it('rejected (no events): it stays for the floor of rejected messages, then goes', async () => {
    let store = await tmp.open();
    const rejected = await store.commit(inboundMessage('DMG5', { status: 'rejected', rejectReason: 'unknown test code' }), []);
    await store.close();
    const segment = await segmentOf(rejected.messageId);
    await damageRecord(rejected.messageId);

    store = await tmp.open();
    await store.prune(Date.now() + 31 * DAY_MS);
    expect(isGatewayError(await store.getMessage(rejected.messageId).catch((e: unknown) => e), 'GW_STORE_CORRUPT')).toBe(true);
    expect(await store.dedupKeyUsed('lis|LIS^LAB|DMG5')).toBe(true);

    await store.prune(Date.now() + 181 * DAY_MS);
    expect(await store.getMessage(rejected.messageId)).toBeUndefined();
    await store.close();
    const keys = await levelKeys();
    expect(messageKeys(keys, rejected.messageId, 'lis|LIS^LAB|DMG5', ['DMG5'])).toEqual([]);
    expect(await segmentFiles()).not.toContain(segmentName(segment));
  });

  it('still waiting for Odoo past the age (one of its events pending): it stays', async () => {
    let store = await tmp.open();
    // Two events of two orders: the first is delivered, the second waits.
    const damaged = await store.commit(inboundMessage('DMG6'), [resultValidated('ACC-DMG6', 'k-DMG6'), resultValidated('ACC-DMG6B', 'k-DMG6B')]);
    const next = await store.commit(inboundMessage('DMG7'), [resultValidated('ACC-DMG7', 'k-DMG7')]);
    await deliverNext(store, damaged.eventIds[0]!);
    await deliverNext(store, damaged.eventIds[1]!);
    await deliverNext(store, next.eventIds[0]!);
    const waiting = await store.commit(inboundMessage('DMG8'), [resultValidated('ACC-DMG8', 'k-DMG8'), resultValidated('ACC-DMG8B', 'k-DMG8B')]);
    await deliverNext(store, waiting.eventIds[0]!);
    await store.close();
    await damageRecord(damaged.messageId);
    await damageRecord(waiting.messageId);

    store = await tmp.open();
    await store.prune(Date.now() + 31 * DAY_MS);
    expect(await store.getEvent(waiting.eventIds[1]!)).toMatchObject({ state: 'pending' });
    expect(isGatewayError(await store.getMessage(waiting.messageId).catch((e: unknown) => e), 'GW_STORE_CORRUPT')).toBe(true);
    expect(await store.dedupKeyUsed('lis|LIS^LAB|DMG8')).toBe(true);
    // The one whose events were all delivered went (its events are found by their ids, which
    // follow the message's own; the next message's events are not taken for its).
    expect(await store.getMessage(damaged.messageId)).toBeUndefined();
    expect(await store.dedupKeyUsed('lis|LIS^LAB|DMG6')).toBe(false);
  });

  it('its batch record damaged too: the pointer and the segment still go; only the dedup key and search entries stay', async () => {
    let store = await tmp.open();
    const damaged = await store.commit(inboundMessage('DMG9'), [resultValidated('ACC-DMG9', 'k-DMG9')]);
    await deliverNext(store, damaged.eventIds[0]!);
    await store.close();
    const segment = await segmentOf(damaged.messageId);
    await damageRecord(damaged.messageId, true);

    store = await tmp.open();
    await store.prune(Date.now() + 31 * DAY_MS);
    expect(await store.getMessage(damaged.messageId)).toBeUndefined();
    await store.close();
    const keys = await levelKeys();
    expect(keys.has(`!m!${damaged.messageId}`)).toBe(false);
    expect(await segmentFiles()).not.toContain(segmentName(segment));
    // The keys only its unreadable metadata named (README "Retention": a few bytes left behind).
    expect(messageKeys(keys, damaged.messageId, 'lis|LIS^LAB|DMG9', ['DMG9'])).toEqual(['!d!lis|LIS^LAB|DMG9', `!s!DMG9\x00${damaged.messageId}`]);
  });
});
