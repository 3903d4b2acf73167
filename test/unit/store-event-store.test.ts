import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { AMBIGUOUS_SETTLE_MS } from '../../gateway/src/store/types.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { isGatewayError } from '../../gateway/src/errors.ts';
import { inboundMessage, specimenReceived as note } from '../fixtures/store/inbound.ts';

let dir: string;
let store: EventStore;

async function openStore(extra: Partial<Parameters<typeof EventStore.open>[0]> = {}): Promise<EventStore> {
  return EventStore.open({ dataDir: dir, pruneIntervalMs: 0, healthCheckIntervalMs: 50, minFreeBytes: 0, ...extra });
}

const message = inboundMessage;


beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-store-'));
  store = await openStore();
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('intake commits', () => {
  it('keeps the exact raw bytes, the ACK and the derived events', async () => {
    const raw = Buffer.from([0x4d, 0x53, 0x48, 0x7c, 0xe9, 0x00, 0xff, 0x0d]);
    const result = await store.commit(message('C1', { raw }), [note('A1', 'k1'), note('A1', 'k2')]);
    expect(result.duplicate).toBe(false);
    expect(result.eventIds).toHaveLength(2);
    const stored = await store.getMessage(result.messageId);
    expect(stored?.raw.equals(raw)).toBe(true);
    expect(stored?.ack?.toString()).toBe('ACK for C1');
    expect(stored?.message.eventIds).toEqual(result.eventIds);
    const ev = await store.getEvent(result.eventIds[0]!);
    expect(ev?.state).toBe('pending');
    expect(ev?.event.source.messageId).toBe(result.messageId);
    expect(store.stats().pending).toBe(2);
    expect(store.intake()).toMatchObject({ received: 1, accepted: 1 });
  });

  it('answers a resent control id with the stored ACK and creates nothing', async () => {
    const first = await store.commit(message('C2'), [note('A2', 'k-a2')]);
    const again = await store.commit(message('C2', { ack: Buffer.from('a different ACK') }), [note('A2', 'k-a2')]);
    expect(again.duplicate).toBe(true);
    expect(again.messageId).toBe(first.messageId);
    expect(again.ack?.toString()).toBe('ACK for C2');
    expect(again.eventIds).toEqual([]);
    expect(store.stats().pending).toBe(1);
    expect(store.intake().duplicates).toBe(1);
  });

  it('treats concurrent resends of one control id as one message', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => store.commit(message('C3'), [note('A3', 'k-a3')])));
    expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
    expect(new Set(results.map((r) => r.messageId)).size).toBe(1);
    expect(store.stats().pending).toBe(1);
  });

  it('skips an event whose idempotency key was already stored by another message', async () => {
    await store.commit(message('C4'), [note('A4', 'same-fact')]);
    const second = await store.commit(message('C5'), [note('A4', 'same-fact'), note('A4', 'new-fact')]);
    expect(second.eventIds).toHaveLength(1);
    expect(second.skippedEvents).toBe(1);
    expect((await store.getEventByKey('new-fact'))?.event.id).toBe(second.eventIds[0]);
  });

  it('shares fsync batches between concurrent commits (group commit)', async () => {
    const before = store.commitStats.batches;
    await Promise.all(Array.from({ length: 200 }, (_, i) => store.commit(message(`G${i}`), [note(`G${i}`, `g${i}`)])));
    // Commits answered at the commit point may still be on their way into LevelDB (the stats count
    // LevelDB writes).
    await store.flush();
    const batches = store.commitStats.batches - before;
    expect(batches).toBeGreaterThan(0);
    expect(batches).toBeLessThan(200);
    expect(store.intake().accepted).toBe(200);
  });

  it('keeps a rejected message raw without events', async () => {
    const r = await store.commit(message('BAD', { status: 'rejected', rejectReason: 'no MSH segment' }), []);
    const stored = await store.getMessage(r.messageId);
    expect(stored?.message.status).toBe('rejected');
    expect(stored?.message.rejectReason).toBe('no MSH segment');
    expect(store.intake().rejected).toBe(1);
  });

  it('finds messages by control id and by search term', async () => {
    const r = await store.commit(message('FIND-1', { searchTerms: ['ACC-77', 'SPEC-9'] }), []);
    expect((await store.listMessages({ controlId: 'FIND-1' })).map((m) => m.id)).toEqual([r.messageId]);
    expect((await store.listMessages({ q: 'SPEC-9' })).map((m) => m.id)).toEqual([r.messageId]);
    expect(await store.listMessages({ q: 'nothing' })).toEqual([]);
    expect((await store.listMessages({ limit: 10 }))[0]?.id).toBe(r.messageId);
  });
});

describe('relay queue', () => {
  it('leases one head per partition, FIFO within a partition', async () => {
    await store.commit(message('Q1'), [note('P1', 'p1-1'), note('P1', 'p1-2')]);
    await store.commit(message('Q2'), [note('P2', 'p2-1')]);
    const leases = await store.lease({ limit: 10 });
    expect(leases.map((l) => l.partitionKey).sort()).toEqual(['order:P1', 'order:P2']);
    const p1 = leases.find((l) => l.partitionKey === 'order:P1')!;
    expect(p1.events.map((e) => e.event.idempotencyKey)).toEqual(['p1-1']);
    expect(store.stats().inFlight).toBe(2);
    // Nothing else of P1 is leasable while its head is in flight.
    expect(await store.lease({ limit: 10 })).toEqual([]);
    await store.complete(p1, [{ eventId: p1.events[0]!.event.id, outcome: 'delivered', odoo: [{ model: 'sale.order', id: 7 }] }]);
    const next = await store.lease({ limit: 10 });
    expect(next.map((l) => l.events[0]!.event.idempotencyKey)).toEqual(['p1-2']);
    expect((await store.getEvent(p1.events[0]!.event.id))?.odoo).toEqual([{ model: 'sale.order', id: 7 }]);
  });

  it('leases the partitions due first up to the limit, over more partitions than it reads side by side', async () => {
    // 40 partitions, two events each; names sort as they were committed (ties of one millisecond).
    const pks = Array.from({ length: 40 }, (_, i) => `L${String(i).padStart(2, '0')}`);
    for (const pk of pks) await store.commit(message(`M-${pk}`), [note(pk, `${pk}-1`), note(pk, `${pk}-2`)]);
    const first = await store.lease({ limit: 25, maxPerPartition: 2 });
    expect(first.map((l) => l.partitionKey)).toEqual(pks.slice(0, 25).map((pk) => `order:${pk}`));
    for (const l of first) expect(l.events.map((e) => e.event.idempotencyKey)).toEqual([1, 2].map((n) => `${l.partitionKey.slice(6)}-${n}`));
    // Half of them delivered: those partitions are empty; the other half still in flight.
    for (const l of first.slice(0, 12)) await store.complete(l, l.events.map((e) => ({ eventId: e.event.id, outcome: 'delivered' as const })));
    const rest = await store.lease({ limit: 100, maxPerPartition: 1 });
    expect(rest.map((l) => l.partitionKey)).toEqual(pks.slice(25).map((pk) => `order:${pk}`));
    expect(rest.map((l) => l.events.map((e) => e.event.idempotencyKey))).toEqual(pks.slice(25).map((pk) => [`${pk}-1`]));
    expect(await store.lease({ limit: 100 })).toEqual([]);
    expect(store.stats()).toMatchObject({ inFlight: 13 * 2 + 15, delivered: 24, pending: 15 });
  });

  it('leases a run of consecutive events of one partition for micro-batching', async () => {
    await store.commit(message('MB'), [note('MB', 'mb-1'), note('MB', 'mb-2'), note('MB', 'mb-3')]);
    const [lease] = await store.lease({ limit: 1, maxPerPartition: 2 });
    expect(lease?.events.map((e) => e.event.idempotencyKey)).toEqual(['mb-1', 'mb-2']);
    await store.complete(lease!, lease!.events.map((e) => ({ eventId: e.event.id, outcome: 'delivered' as const })));
    const [rest] = await store.lease({ limit: 1, maxPerPartition: 5 });
    expect(rest?.events.map((e) => e.event.idempotencyKey)).toEqual(['mb-3']);
  });

  it('a dead-lettered head blocks its partition while other partitions flow; replay unblocks', async () => {
    await store.commit(message('D1'), [note('DP', 'dp-1'), note('DP', 'dp-2')]);
    const [lease] = await store.lease({ limit: 1 });
    await store.complete(lease!, [{ eventId: lease!.events[0]!.event.id, outcome: 'dead', reason: 'test code GLU has no Odoo product' }]);
    expect(store.stats()).toMatchObject({ deadLettered: 1, blockedPartitions: 1, pending: 1 });
    await store.commit(message('D2'), [note('OTHER', 'o-1')]);
    const flowing = await store.lease({ limit: 10 });
    expect(flowing.map((l) => l.partitionKey)).toEqual(['order:OTHER']);
    const dead = await store.listEvents({ state: 'dead' });
    expect(dead.map((d) => d.deadReason)).toEqual(['test code GLU has no Odoo product']);
    await store.replay(dead[0]!.event.id, 'admin', 'product created');
    const again = await store.lease({ limit: 10 });
    expect(again.map((l) => l.events[0]!.event.idempotencyKey)).toEqual(['dp-1']);
    expect((await store.getEvent(dead[0]!.event.id))?.audit?.[0]).toMatchObject({ actor: 'admin', action: 'replay' });
  });

  it('a replayed dead letter that was attempted comes back ambiguous, so it is looked up first', async () => {
    await store.commit(message('RA'), [note('RA', 'ra-1')]);
    const [lease] = await store.lease({ limit: 1 });
    await store.complete(lease!, [{ eventId: lease!.events[0]!.event.id, outcome: 'dead', reason: 'gave up after a timeout' }]);
    const replayed = await store.replay(lease!.events[0]!.event.id, 'admin');
    expect(replayed).toMatchObject({ state: 'pending', attempts: 0, ambiguous: true });
  });

  it('only the first dead outcome of a micro-batch dies; the rest wait behind it, so one dead letter = one blocked partition', async () => {
    await store.commit(message('MD'), [note('MD', 'md-1'), note('MD', 'md-2'), note('MD', 'md-3')]);
    const [lease] = await store.lease({ limit: 1, maxPerPartition: 3 });
    const [a, b, c] = lease!.events.map((e) => e.event.id);
    await store.complete(lease!, [
      { eventId: a!, outcome: 'dead', reason: 'bad product' },
      { eventId: b!, outcome: 'dead', reason: 'bad product' },
      { eventId: c!, outcome: 'delivered' },
    ]);
    expect(store.stats()).toMatchObject({ deadLettered: 1, blockedPartitions: 1, pending: 2, delivered: 0 });
    expect((await store.getEvent(b!))?.state).toBe('pending');
  });

  it('discarding a dead head with a reason unblocks the next event', async () => {
    await store.commit(message('X1'), [note('XP', 'xp-1'), note('XP', 'xp-2')]);
    const [lease] = await store.lease({ limit: 1 });
    await store.complete(lease!, [{ eventId: lease!.events[0]!.event.id, outcome: 'dead', reason: 'bad' }]);
    await expect(store.discard(lease!.events[0]!.event.id, 'admin', '')).rejects.toMatchObject({ code: 'GW_STORE_STATE' });
    const discarded = await store.discard(lease!.events[0]!.event.id, 'admin', 'entered by hand in Odoo');
    expect(discarded.state).toBe('discarded');
    const next = await store.lease({ limit: 1 });
    expect(next[0]?.events[0]?.event.idempotencyKey).toBe('xp-2');
    expect(store.stats()).toMatchObject({ deadLettered: 0, discarded: 1 });
  });

  it('a retry waits for its backoff before the partition is due again', async () => {
    await store.commit(message('R1'), [note('RP', 'rp-1')]);
    const [lease] = await store.lease({ limit: 1 });
    await store.complete(lease!, [{ eventId: lease!.events[0]!.event.id, outcome: 'retry', error: 'HTTP 503', delayMs: 60_000 }]);
    expect(await store.lease({ limit: 1 })).toEqual([]);
    const later = await store.lease({ limit: 1, now: Date.now() + 61_000 });
    expect(later[0]?.events[0]).toMatchObject({ state: 'inflight', attempts: 1, lastError: 'HTTP 503' });
  });

  it('backoff grows exponentially with jitter and stays under the ceiling', () => {
    const delays = [1, 2, 3, 4, 20].map((n) => store.backoffDelay(n));
    expect(delays[0]).toBeGreaterThanOrEqual(1_600);
    expect(delays[0]).toBeLessThanOrEqual(2_400);
    expect(delays[3]!).toBeGreaterThan(delays[0]!);
    expect(delays[4]).toBeLessThanOrEqual(300_000);
  });

  it('events leased when the process stopped come back ambiguous, due once a request sent under the lease has landed or died', async () => {
    await store.commit(message('AMS'), [note('AS', 'as-1')]);
    const leasedAt = Date.now();
    const [lease] = await store.lease({ limit: 1 });
    await store.close(); // no complete(): as if the process died mid-delivery
    store = await openStore();
    const recovered = await store.getEvent(lease!.events[0]!.event.id);
    expect(recovered).toMatchObject({ state: 'retrying', ambiguous: true });
    // Odoo may still be running what the stopped gateway sent: no look-up before the settle time.
    expect(recovered!.dueAt).toBeGreaterThanOrEqual(leasedAt + AMBIGUOUS_SETTLE_MS - 1_000);
    expect(await store.lease({ limit: 1 })).toEqual([]);
    expect(await store.lease({ limit: 1, now: recovered!.dueAt })).toHaveLength(1);
  });

  it('events leased when the process stopped come back ambiguous and due (no settle time)', async () => {
    await store.commit(message('AMB'), [note('AP', 'ap-1')]);
    const [lease] = await store.lease({ limit: 1 });
    await store.close(); // no complete(): as if the process died mid-delivery
    store = await openStore({ ambiguousSettleMs: 0 });
    const recovered = await store.getEvent(lease!.events[0]!.event.id);
    expect(recovered).toMatchObject({ state: 'retrying', ambiguous: true });
    expect(store.stats()).toMatchObject({ inFlight: 0, retrying: 1 });
    const [again] = await store.lease({ limit: 1 });
    expect(again?.events[0]?.ambiguous).toBe(true);
  });

  it('counters survive a restart without scanning', async () => {
    await store.commit(message('S1'), [note('S', 's-1'), note('S', 's-2')]);
    await store.close();
    store = await openStore();
    expect(store.stats().pending).toBe(2);
    expect(store.intake().accepted).toBe(1);
    const leases = await store.lease({ limit: 5 });
    expect(leases[0]?.events[0]?.event.idempotencyKey).toBe('s-1');
  });

  it('delays an event by its sync mode before it is due', async () => {
    await store.close();
    store = await openStore({ dueDelayMs: (e) => (e.type === 'specimen.received' ? 30_000 : 0) });
    await store.commit(message('W1'), [note('W', 'w-1')]);
    expect(await store.lease({ limit: 1 })).toEqual([]);
    expect(await store.lease({ limit: 1, now: Date.now() + 31_000 })).toHaveLength(1);
  });

  it('finds events by correlation id for host queries', async () => {
    await store.commit(message('H1'), [note('ACC-1', 'h-1')]);
    await store.commit(message('H2'), [note('ACC-2', 'h-2')]);
    const found = await store.eventsByCorrelation('ACC-1', ['specimen.received']);
    expect(found.map((f) => f.event.idempotencyKey)).toEqual(['h-1']);
    expect(await store.eventsByCorrelation('ACC-1', ['order.created'])).toEqual([]);
  });
});

describe('store failures', () => {
  it('a failing disk makes commits fail with a coded error, and intake resumes by itself', async () => {
    store.simulateWriteFailure(Object.assign(new Error('No space left on device'), { code: 'ENOSPC' }));
    const err = await store.commit(message('F1'), [note('F', 'f-1')]).catch((e: unknown) => e);
    expect(isGatewayError(err, 'GW_STORE_UNAVAILABLE')).toBe(true);
    expect(store.health).toBe('failed');
    store.simulateWriteFailure(undefined);
    await expect.poll(() => store.health, { timeout: 5_000 }).toBe('ok');
    const ok = await store.commit(message('F1'), [note('F', 'f-1')]);
    expect(ok.duplicate).toBe(false);
    expect(store.stats().pending).toBe(1);
    // The counters on disk never counted the refused commit either.
    await store.close();
    store = await openStore();
    expect(store.stats().pending).toBe(1);
  });

  it('refuses commits when free space falls under the floor', async () => {
    await store.close();
    store = await openStore({ minFreeBytes: Number.MAX_SAFE_INTEGER });
    expect(store.health).toBe('full');
    const err = await store.commit(message('FULL'), []).catch((e: unknown) => e);
    expect(isGatewayError(err, 'GW_STORE_FULL')).toBe(true);
  });
});

describe('retention', () => {
  it('prunes delivered events and their messages after the retention age, keeps waiting ones', async () => {
    const done = await store.commit(message('OLD'), [note('OLD', 'old-1')]);
    const waiting = await store.commit(message('WAIT'), [note('WAIT', 'wait-1')]);
    const leases = await store.lease({ limit: 10 });
    const oldLease = leases.find((l) => l.partitionKey === 'order:OLD')!;
    await store.complete(oldLease, [{ eventId: oldLease.events[0]!.event.id, outcome: 'delivered' }]);
    const future = Date.now() + 31 * 86_400_000;
    const pruned = await store.prune(future);
    expect(pruned).toBeGreaterThanOrEqual(2);
    expect(await store.getMessage(done.messageId)).toBeUndefined();
    expect(await store.getEvent(done.eventIds[0]!)).toBeUndefined();
    expect(await store.getMessage(waiting.messageId)).toBeDefined();
    expect(store.stats().delivered).toBe(0);
    // A late resend of the pruned fact is still recognised by its idempotency key tombstone.
    const late = await store.commit(message('LATE'), [note('OLD', 'old-1')]);
    expect(late.skippedEvents).toBe(1);
  });

  it('keeps rejected messages past the normal age until their longer floor', async () => {
    const rejected = await store.commit(message('REJ', { status: 'rejected', rejectReason: 'garbage' }), []);
    await store.prune(Date.now() + 31 * 86_400_000);
    expect(await store.getMessage(rejected.messageId)).toBeDefined();
    await store.prune(Date.now() + 181 * 86_400_000);
    expect(await store.getMessage(rejected.messageId)).toBeUndefined();
  });

  it('a long run of messages that must stay does not stop pruning behind it', async () => {
    // Five rejected messages inside their floor, then a delivered one: with two messages of work
    // per pass, successive passes step over the kept ones and reach the prunable one.
    for (let i = 0; i < 5; i++) await store.commit(message(`KEEP${i}`, { status: 'rejected', rejectReason: 'garbage' }), []);
    const old = await store.commit(message('GO'), [note('GO', 'go-1')]);
    const [lease] = await store.lease({ limit: 1 });
    await store.complete(lease!, [{ eventId: lease!.events[0]!.event.id, outcome: 'delivered' }]);
    const future = Date.now() + 31 * 86_400_000;
    for (let pass = 0; pass < 6 && (await store.getMessage(old.messageId)); pass++) await store.prune(future, 2);
    expect(await store.getMessage(old.messageId)).toBeUndefined();
    expect(await store.listMessages({ limit: 10 })).toHaveLength(5);
  });

  it('the size cap prunes the oldest delivered events and their messages before the age', async () => {
    await store.close();
    store = await openStore({ retention: { maxDeliveredEvents: 2 } });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await store.commit(message(`CAP${i}`), [note(`CAP${i}`, `cap-${i}`)]);
      ids.push(r.messageId);
      const [lease] = await store.lease({ limit: 1 });
      await store.complete(lease!, [{ eventId: lease!.events[0]!.event.id, outcome: 'delivered' }]);
    }
    await store.prune(Date.now());
    expect(store.stats().delivered).toBe(2);
    expect(await store.getMessage(ids[0]!)).toBeUndefined();
    expect(await store.getMessage(ids[2]!)).toBeUndefined();
    expect(await store.getMessage(ids[4]!)).toBeDefined();
  });
});

