import { cp, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { isGatewayError } from '../../gateway/src/errors.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { holdFirstLogRead as holdRead } from '../fixtures/store/file-handle-hook.ts';
import { damageRecord as damage } from '../fixtures/store/damage.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';

// The store's long-running and operator functions: retention, dead-letter replay and discard,
// recovery, the health probe, disk full, close, and the counters across all of them. Windows
// between two writes are opened deterministically (a held message-log read, a held LevelDB
// write, the health timer driven by hand); nothing asserts on timing.

const tmp = useTempStore('lgw-retention-audit-', { pruneIntervalMs: 0, minFreeBytes: 0, messageLogMinBatch: 1, healthCheckIntervalMs: 50 });
const DAY_MS = 86_400_000;

/** Commit one message per order with one event, lease it and record the outcome given. */
async function deliverOne(store: EventStore, controlId: string, accession: string): Promise<{ messageId: string; eventId: string }> {
  const r = await store.commit(inboundMessage(controlId), [resultValidated(accession, `k-${controlId}`)]);
  const [lease] = await store.lease({ limit: 1 });
  expect(lease?.events.map((e) => e.event.id)).toEqual(r.eventIds);
  await store.complete(lease!, [{ eventId: r.eventIds[0]!, outcome: 'delivered' }]);
  return { messageId: r.messageId, eventId: r.eventIds[0]! };
}


describe('retention: counters on disk match the records on disk', () => {
  // prune() takes its decrements of the delivered/discarded counters from the in-memory counts
  // one event at a time, across awaits, long before its own batch is queued. A commit sealed in
  // between carries the decremented counts to disk while the events are still stored. A kill -9
  // before retention's batch lands (here: the data directory copied at that instant, as a crash
  // leaves it) opens with fewer delivered events counted than stored; the next prune then takes
  // the counter below zero.
  it('a commit during a prune pass, then a crash before the prune is written: the delivered count stays true', async () => {
    const store = await tmp.open();
    const delivered: string[] = [];
    for (let i = 0; i < 3; i++) delivered.push((await deliverOne(store, `DL${i}`, `DL-ORDER-${i}`)).eventId);
    expect(store.stats().delivered).toBe(3);

    // Retention's message scan reads each message from the log: the first read is held, after
    // its event scan has gone through the three delivered events.
    const reads = await holdRead(tmp.dir);
    const crashDir = path.join(tmp.dir, 'crash');
    let pruned: Promise<number> | undefined;
    try {
      pruned = store.prune(Date.now() + 31 * DAY_MS);
      await expect.poll(() => reads.calls(), { timeout: 5_000 }).toBe(1);
      // A result arrives from the LIS meanwhile and is acknowledged.
      const late = await store.commit(inboundMessage('LATE1'), [resultValidated('LATE-ORDER', 'k-LATE1')]);
      expect(late.duplicate).toBe(false);
      expect((await store.getEventByKey('k-LATE1'))?.state).toBe('pending'); // in LevelDB now
      // The process dies here: what is on disk is what a restart finds.
      await mkdir(crashDir, { recursive: true });
      await cp(path.join(tmp.dir, 'store'), path.join(crashDir, 'store'), { recursive: true });
    } finally {
      reads.release();
      reads.restore();
    }
    await pruned;
    await store.close();

    const again = await EventStore.open({ dataDir: crashDir, pruneIntervalMs: 0, minFreeBytes: 0, healthCheckIntervalMs: 50 });
    try {
      const stored = await again.listEvents({ state: 'delivered' });
      expect(stored.map((e) => e.event.id).sort()).toEqual([...delivered].sort());
      expect.soft(again.stats()).toMatchObject({ delivered: 3, pending: 1 });
      // Retention runs again after the restart: the counter must reach 0, not go negative.
      await again.prune(Date.now() + 31 * DAY_MS);
      expect(await again.listEvents({ state: 'delivered' })).toEqual([]);
      expect(again.stats().delivered).toBe(0);
    } finally {
      await again.close();
    }
  });
});

describe('retention: the dead-letter floor', () => {
  // README "Retention": "Rejected messages and dead letters keep a longer floor
  // (store.deadLetterRetentionDays); dead letters are never pruned while dead." While dead they
  // are never pruned at all, so the floor is what protects a dead letter once an operator has
  // dealt with it: the discarded event with its audited reason, and the raw message it came from.
  it('a dead letter discarded by an operator keeps its audit trail and its message until the dead-letter floor', async () => {
    const store = await tmp.open();
    const r = await store.commit(inboundMessage('DLF1'), [resultValidated('DLF-ORDER', 'k-DLF1')]);
    const [lease] = await store.lease({ limit: 1 });
    await store.complete(lease!, [{ eventId: r.eventIds[0]!, outcome: 'dead', reason: 'test code GLU has no Odoo product' }]);
    await store.discard(r.eventIds[0]!, 'admin', 'entered by hand in Odoo');

    // Past the ordinary retention age (30 days), well inside the dead-letter floor (180 days).
    await store.prune(Date.now() + 31 * DAY_MS);
    const kept = await store.getEvent(r.eventIds[0]!);
    expect.soft(kept?.audit?.map((a) => a.action)).toEqual(['discard']);
    expect.soft(kept?.audit?.[0]?.reason).toBe('entered by hand in Odoo');
    expect.soft((await store.getMessage(r.messageId))?.message.controlId).toBe('DLF1');
    expect.soft(store.stats().discarded).toBe(1);

    // Past the floor it goes.
    await store.prune(Date.now() + 181 * DAY_MS);
    expect(await store.getEvent(r.eventIds[0]!)).toBeUndefined();
    expect(await store.getMessage(r.messageId)).toBeUndefined();
    expect(store.stats().discarded).toBe(0);
  });

  // Passing: no existing test keeps a dead letter past the floor, across a restart (its message
  // then lives in an old segment and is moved), and replays it afterwards.
  it('a dead letter is never pruned while dead, even past the floor; its message moves, the old segment goes, and a replay delivers it first in its partition', async () => {
    let store = await tmp.open();
    const dead = await store.commit(inboundMessage('DD1'), [resultValidated('DD-ORDER', 'k-DD1')]);
    const [lease] = await store.lease({ limit: 1 });
    await store.complete(lease!, [{ eventId: dead.eventIds[0]!, outcome: 'dead', reason: 'no Odoo product' }]);
    const behind = await store.commit(inboundMessage('DD2'), [resultValidated('DD-ORDER', 'k-DD2')]);
    await store.close();
    store = await tmp.open(); // a new active segment: DD1 and DD2 now sit in an old one
    const logDir = path.join(tmp.dir, 'store', 'messages');
    const before = (await readdir(logDir)).filter((f) => f.endsWith('.seg')).sort();

    await store.prune(Date.now() + 400 * DAY_MS);
    await store.flush();
    const after = (await readdir(logDir)).filter((f) => f.endsWith('.seg')).sort();
    expect(after).not.toContain(before[0]); // both kept messages moved out of it
    expect((await store.getMessage(dead.messageId))?.message.controlId).toBe('DD1');
    expect(await store.getEvent(dead.eventIds[0]!)).toMatchObject({ state: 'dead', event: { idempotencyKey: 'k-DD1' } });
    expect(store.stats()).toMatchObject({ deadLettered: 1, pending: 1, blockedPartitions: 1 });
    expect(await store.lease({ limit: 10 })).toEqual([]);

    await store.replay(dead.eventIds[0]!, 'admin', 'product created');
    const [first] = await store.lease({ limit: 10 });
    expect(first?.events.map((e) => e.event.idempotencyKey)).toEqual(['k-DD1']);
    await store.complete(first!, [{ eventId: dead.eventIds[0]!, outcome: 'delivered' }]);
    const [second] = await store.lease({ limit: 10 });
    expect(second?.events.map((e) => e.event.id)).toEqual(behind.eventIds);
    await store.complete(second!, [{ eventId: behind.eventIds[0]!, outcome: 'delivered' }]);
    expect(store.stats()).toMatchObject({ deadLettered: 0, pending: 0, inFlight: 0, delivered: 2 });
  });
});

describe('dead-letter operations', () => {
  // README "Event bodies": an event whose body cannot be read is listed with `bodyError` and a
  // stand-in body; "an operator discards it with an audited reason". Behind the head of its order
  // it is still pending (it becomes a dead letter only once its partition comes up), and the
  // listing offers it for discard then too. The stand-in's partition comes from the dead-letter
  // index, which does not hold it yet: the discard works on partition '' instead of the event's
  // own. Its queue entry and its partition's count stay, so once the head is delivered the
  // discarded event comes up again, is turned into a dead letter (the pending count taken down a
  // second time) and blocks the order it was discarded from.
  it('discarding an unreadable event that is still pending takes it out of its own partition', async () => {
    let store = await tmp.open();
    const head = await store.commit(inboundMessage('UR1'), [resultValidated('UR-ORDER', 'k-UR1')]);
    const broken = await store.commit(inboundMessage('UR2'), [resultValidated('UR-ORDER', 'k-UR2')]);
    await store.close();
    await damageRecord(broken.messageId);
    store = await tmp.open();

    const pending = await store.listEvents({ state: 'pending' });
    const unreadable = pending.find((e) => e.event.id === broken.eventIds[0]);
    expect(unreadable?.bodyError).toMatch(/GW_STORE_CORRUPT/);
    await store.discard(broken.eventIds[0]!, 'admin', 'record damaged on disk; result re-sent by the LIS');
    expect(store.stats()).toMatchObject({ pending: 1, discarded: 1, deadLettered: 0 });

    const [lease] = await store.lease({ limit: 10 });
    expect(lease?.events.map((e) => e.event.id)).toEqual(head.eventIds);
    await store.complete(lease!, [{ eventId: head.eventIds[0]!, outcome: 'delivered' }]);
    expect(await store.lease({ limit: 10 })).toEqual([]);
    expect.soft(await store.getEvent(broken.eventIds[0]!)).toMatchObject({ state: 'discarded' });
    expect.soft(store.stats()).toMatchObject({ pending: 0, inFlight: 0, deadLettered: 0, blockedPartitions: 0, delivered: 1, discarded: 1 });
    // The order's next result flows.
    const next = await store.commit(inboundMessage('UR3'), [resultValidated('UR-ORDER', 'k-UR3')]);
    const [again] = await store.lease({ limit: 10 });
    expect(again?.events.map((e) => e.event.id)).toEqual(next.eventIds);
  });
});

/** Flip one byte inside a message's record in the message log (the store closed). */
const damageRecord = (messageId: string): Promise<void> => damage(tmp.dir, messageId);

describe('intake counters across failures and restarts', () => {
  // While the store is failed, intake answers negatively and counts each such message with
  // countRejectedWithoutCommit() (in memory; the next batch carries it to disk). The health probe
  // writes its batch (a counter snapshot), then #resync() reloads the intake counters from disk,
  // overwriting whatever was counted in between: messages refused in that window vanish from
  // received/rejected.
  it('messages refused while the health probe brings the store back stay counted', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const store = await tmp.open({ healthCheckIntervalMs: 3_600_000 });
      await store.commit(inboundMessage('IC1'), []);
      store.simulateWriteFailure(new Error('EIO: injected'));
      // Refused while failed: intake counts it as received and rejected.
      const refused = await store.commit(inboundMessage('IC2'), []).catch((e: unknown) => e);
      expect(isGatewayError(refused, 'GW_STORE_UNAVAILABLE')).toBe(true);
      store.countRejectedWithoutCommit();
      expect(store.intake()).toMatchObject({ received: 2, accepted: 1, rejected: 1 });

      // The fault clears; the probe's LevelDB write is held.
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let held = 0;
      store.interceptLevelWrites(async (b) => {
        if (b.logged || held > 0) return;
        held++;
        await gate;
      });
      store.simulateWriteFailure(undefined);
      vi.advanceTimersByTime(3_600_000);
      await expect.poll(() => held, { timeout: 5_000 }).toBe(1);
      // Still failed: the LIS's next message is refused and counted.
      expect(store.health).toBe('failed');
      const refusedToo = await store.commit(inboundMessage('IC3'), []).catch((e: unknown) => e);
      expect(isGatewayError(refusedToo, 'GW_STORE_UNAVAILABLE')).toBe(true);
      store.countRejectedWithoutCommit();
      expect(store.intake()).toMatchObject({ received: 3, rejected: 2 });
      release();
      await expect.poll(() => store.health, { timeout: 5_000 }).toBe('ok');
      store.interceptLevelWrites(undefined);
      expect(store.intake()).toMatchObject({ received: 3, accepted: 1, rejected: 2 });
    } finally {
      vi.useRealTimers();
    }
  });

  // Disk full: commits are refused (GW_STORE_FULL) and counted by intake in memory only. Nothing
  // else writes (no relay traffic), so no batch carries the counts to disk, and close() writes
  // none either: an operator who frees space and restarts the gateway sees those refusals gone.
  it('messages refused while the disk is full stay counted across a restart', async () => {
    let store = await tmp.open();
    await store.commit(inboundMessage('FULL0'), []);
    await store.close();
    store = await tmp.open({ minFreeBytes: Number.MAX_SAFE_INTEGER });
    expect(store.health).toBe('full');
    for (const c of ['FULL1', 'FULL2']) {
      const err = await store.commit(inboundMessage(c), []).catch((e: unknown) => e);
      expect(isGatewayError(err, 'GW_STORE_FULL')).toBe(true);
      store.countRejectedWithoutCommit();
    }
    expect(store.intake()).toMatchObject({ received: 3, accepted: 1, rejected: 2 });
    await store.close();
    store = await tmp.open();
    expect(store.intake()).toMatchObject({ received: 3, accepted: 1, rejected: 2 });
  });
});

describe('the links\' last receive times across a restart', () => {
  it('a message received within a second of the last written time is still the last one after a graceful restart', async () => {
    let store = await tmp.open();
    await store.commit(inboundMessage('LT1', { receivedAt: '2026-03-01T10:00:00.000Z' }), []);
    // Written at most once a second by the batches: this one is left to close().
    await store.commit(inboundMessage('LT2', { receivedAt: '2026-03-01T10:00:00.400Z' }), []);
    await store.close();
    store = await tmp.open();
    expect(store.lastMessageAt().lis).toBe('2026-03-01T10:00:00.400Z');
  });
});
