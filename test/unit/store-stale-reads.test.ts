import { describe, expect, it, vi } from 'vitest';
import { isGatewayError } from '../../gateway/src/errors.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { eio, holdFirstLogRead as holdRead, hookFileHandle } from '../fixtures/store/file-handle-hook.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';

// One class of race: the store's in-memory state changes when an operation is queued, while the
// LevelDB write that makes LevelDB agree is still queued or in flight; a read of LevelDB (or a
// decision taken on the in-memory state) in that window acted on the wrong value. Each test opens
// the window deterministically: LevelDB writes are held by `interceptLevelWrites`; two tests also
// hold a message-log append or read (a FileHandle method, as store-message-log.test.ts does), and
// the probe test drives the store's interval timers by hand. No timing-based assertion. Each of
// the six failed on the store before its fix (see "Reads beside writes" in the store's README).

const tmp = useTempStore('lgw-stale-reads-', { pruneIntervalMs: 0, minFreeBytes: 0, messageLogMinBatch: 1, healthCheckIntervalMs: 50 });
const DAY_MS = 86_400_000;

/** Holds the LevelDB write of the next batches that match, one gate per batch, in order. */
function batchGates(match: (batch: { logged: boolean }) => boolean) {
  const held: Array<{ logged: boolean; release: (fail?: Error) => void }> = [];
  let armed = true;
  return {
    hook: async (batch: { logged: boolean }): Promise<void> => {
      if (!armed || !match(batch)) return;
      let release!: (fail?: Error) => void;
      const opened = new Promise<Error | undefined>((resolve) => (release = resolve));
      held.push({ logged: batch.logged, release });
      const fail = await opened;
      if (fail) throw fail;
    },
    held: () => held.length,
    release: (i: number, fail?: Error) => held[i]?.release(fail),
    /** Stop holding new batches and let every held one through. */
    releaseAll: () => {
      armed = false;
      for (const h of held) h.release();
    },
  };
}

const settle = <T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );

describe('reads beside writes: in-memory state ahead of LevelDB', () => {
  // RACE 1. A batch of 4+ writes is refused at its LevelDB write. A commit queued while it was in
  // flight is not sealed with it (the committer waits for the large batch), so it is not refused:
  // it is written afterwards, with the partition count and due-entry decision it took from the
  // refused batch's in-memory counts (the refused events counted, so "partition not empty": no
  // due entry, `n` too high). Its event is stored, answered positively, and never leased.
  it('a commit queued behind a refused batch still gets a due entry for its partition', async () => {
    // Inline commits (not logged): the held batch is refused at its LevelDB write, not answered.
    const store = await tmp.open({ messageLogMinBatch: 100 });
    const gates = batchGates(() => true);
    store.interceptLevelWrites(gates.hook);
    // Four commits in one tick: one batch of four writes (not "small": the next one waits for it).
    const refused = ['RX1', 'RX2', 'RX3', 'RX4'].map((c) => settle(store.commit(inboundMessage(c), [resultValidated('RX-ORDER', `k-${c}`)])));
    await expect.poll(() => gates.held(), { timeout: 5_000 }).toBe(1);
    // The same order's next message, while that batch is being written.
    const later = settle(store.commit(inboundMessage('RY1'), [resultValidated('RX-ORDER', 'k-RY1')]));
    gates.release(0, Object.assign(new Error('EIO: injected LevelDB write failure'), { code: 'EIO' }));
    for (const r of await Promise.all(refused)) expect(r.ok).toBe(false);
    gates.releaseAll();
    const y = await later;
    // If the committer refused it with the failed batch, there would be nothing to lease: fine.
    if (!y.ok) {
      expect(isGatewayError(y.error, 'GW_STORE_UNAVAILABLE')).toBe(true);
      return;
    }
    store.interceptLevelWrites(undefined);
    await expect.poll(() => store.health, { timeout: 5_000 }).toBe('ok');
    expect(store.stats().pending).toBe(1);
    const leases = await store.lease({ limit: 10 });
    expect(leases.flatMap((l) => l.events.map((e) => e.event.id))).toEqual(y.value.eventIds);
  });

  // RACE 1, default configuration: the same with a batch of logged commits whose message-log write
  // fails (EIO, ENOSPC): refused in stage 1, while the next commit waits for it to be decided.
  it('a commit queued behind a batch whose message-log write fails still gets a due entry (default config)', async () => {
    const store = await tmp.open();
    const log = await holdFirstLogWrite();
    try {
      const refused = ['LX1', 'LX2', 'LX3', 'LX4'].map((c) => settle(store.commit(inboundMessage(c), [resultValidated('LX-ORDER', `k-${c}`)])));
      await expect.poll(() => log.calls(), { timeout: 5_000 }).toBe(1);
      const later = settle(store.commit(inboundMessage('LY1'), [resultValidated('LX-ORDER', 'k-LY1')]));
      log.fail();
      for (const r of await Promise.all(refused)) expect(r.ok).toBe(false);
      const y = await later;
      if (!y.ok) {
        expect(isGatewayError(y.error, 'GW_STORE_UNAVAILABLE')).toBe(true);
        return;
      }
      await expect.poll(() => store.health, { timeout: 5_000 }).toBe('ok');
      const leases = await store.lease({ limit: 10 });
      expect(leases.flatMap((l) => l.events.map((e) => e.event.id))).toEqual(y.value.eventIds);
    } finally {
      log.restore();
    }
  });

  // RACE 2. Retention deletes a message (its `d` key with it); a resend arriving while that batch
  // is on its way into LevelDB reads the old `d` key synchronously (#lookup's getSync), is taken
  // for a duplicate, and #recordDuplicate then reads the message after the delete: no record, so
  // the resend is answered as a duplicate with no ACK at all (ingress sends `result.ack`), and
  // nothing is stored. Before the window: the stored ACK; after it: a new message with its ACK.
  it('a resend while retention deletes its message gets an ACK (duplicate with the stored one, or a new message)', async () => {
    const store = await tmp.open();
    await store.commit(inboundMessage('PR1'), []);
    const gates = batchGates((b) => !b.logged);
    store.interceptLevelWrites(gates.hook);
    const pruned = store.prune(Date.now() + 31 * DAY_MS);
    await expect.poll(() => gates.held(), { timeout: 5_000 }).toBe(1);
    const resend = store.commit(inboundMessage('PR1'), []);
    gates.releaseAll();
    expect(await pruned).toBe(1);
    const r = await resend;
    expect(r.ack?.toString()).toBe('ACK for PR1');
    if (!r.duplicate) expect((await store.getMessage(r.messageId))?.message.controlId).toBe('PR1');
  });

  // RACE 3. #recordDuplicate reads the message's pointer (duplicate count) from LevelDB and writes
  // it back +1, fire and forget; a second resend reading before the first one's write is in
  // LevelDB writes the same count: one duplicate is lost from the message's count.
  it('two resends at once both count on the stored message', async () => {
    const store = await tmp.open();
    const first = await store.commit(inboundMessage('DC1'), []);
    await store.flush();
    const [a, b] = await Promise.all([store.commit(inboundMessage('DC1'), []), store.commit(inboundMessage('DC1'), [])]);
    expect(a.duplicate && b.duplicate).toBe(true);
    await store.flush();
    expect(store.intake().duplicates).toBe(2);
    // Polled: a store may count duplicates on the message in the background.
    await expect.poll(async () => (await store.getMessage(first.messageId))?.message.duplicates, { timeout: 2_000 }).toBe(2);
  });

  // RACE 4. Retention moves a kept message (events still queued) out of an old segment: one logged
  // batch puts the new pointer and drops the old segment's live count to 0, and the old segment
  // file is deleted once that batch is in LevelDB. A resend that read the OLD pointer before that
  // batch was applied writes it back (+1 duplicate) after it: the message now points into a
  // deleted segment. Its record (raw bytes, ACK, event bodies) is unreadable for good.
  it('a resend racing the relocation of its message by retention leaves the message readable', async () => {
    let store = await tmp.open();
    const first = await store.commit(inboundMessage('MV1'), [resultValidated('MV-ORDER', 'k-MV1')]);
    await store.close();
    store = await tmp.open(); // a new active segment: MV1's segment is an old one now
    const reads = await holdRead(tmp.dir);
    const gates = batchGates((b) => b.logged);
    try {
      // The resend reads MV1's pointer, then its record from the log (held here).
      const resend = store.commit(inboundMessage('MV1'), [resultValidated('MV-ORDER', 'k-MV1')]);
      await expect.poll(() => reads.calls(), { timeout: 5_000 }).toBe(1);
      // Retention moves MV1 (its event is still queued) to the active segment; its batch is
      // answered at the commit point and held before LevelDB.
      store.interceptLevelWrites(gates.hook);
      const pruned = store.prune(Date.now() + 31 * DAY_MS);
      await expect.poll(() => gates.held(), { timeout: 5_000 }).toBe(1);
      reads.release();
      expect((await resend).duplicate).toBe(true);
      gates.releaseAll();
      await pruned;
      await store.flush();
    } finally {
      reads.restore();
    }
    const read = await settle(store.getMessage(first.messageId));
    expect(read.ok ? read.value?.message.controlId : String(read.error)).toBe('MV1');
  });

  // RACE 5. The health probe of a failed store writes, then #resync() reloads the counters from
  // LevelDB and clears the partition-count cache, outside the queue lock and without waiting for
  // writes queued meanwhile. A delivery completed right after the probe's write (the relay keeps
  // going while intake is refused) is lost from the counters, and its partition's 0 is forgotten
  // while LevelDB still has the old count: the same order's next message gets no due entry.
  // (The window is opened with gates; which of complete/resync reaches its state first is decided
  // by resync's extra LevelDB round trips, not by a timer.)
  it('a delivery completed while the health probe resyncs is neither lost from the counters nor strands the next event', async () => {
    // The store's periodic timers are driven by hand: exactly one probe, when the test says so.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      await probeRace();
    } finally {
      vi.useRealTimers();
    }
  });

  async function probeRace(): Promise<void> {
    const store = await tmp.open({ healthCheckIntervalMs: 3_600_000 });
    const first = await store.commit(inboundMessage('HP1'), [resultValidated('HP-ORDER', 'k-HP1')]);
    const [lease] = await store.lease({ limit: 1 });
    expect(lease?.events.map((e) => e.event.id)).toEqual(first.eventIds);
    // The store fails (a transient fault), then the fault clears: the next probe brings it back.
    store.simulateWriteFailure(new Error('EIO: injected'));
    const gates = batchGates((b) => !b.logged);
    store.interceptLevelWrites(gates.hook);
    store.simulateWriteFailure(undefined);
    vi.advanceTimersByTime(3_600_000); // one health check: its probe write
    // The probe's write is held; the relay completes the delivery meanwhile (it waits for the
    // probe's write to be in LevelDB, then queues its own, held too).
    await expect.poll(() => gates.held(), { timeout: 5_000 }).toBe(1);
    const delivered = store.complete(lease!, [{ eventId: first.eventIds[0]!, outcome: 'delivered' }]);
    gates.release(0);
    await expect.poll(() => gates.held(), { timeout: 5_000 }).toBe(2);
    // With the race, the store is back in service (resync done) while the delivery's LevelDB write
    // is still held. A store that waits for that write before resyncing stays 'failed' meanwhile
    // (then the write is released first): either way the next message must become leasable.
    const back = await expect.poll(() => store.health, { timeout: 2_000 }).toBe('ok').then(() => true, () => false);
    if (!back) {
      gates.releaseAll();
      await expect.poll(() => store.health, { timeout: 5_000 }).toBe('ok');
    }
    // The same order's next message:
    const second = store.commit(inboundMessage('HP2'), [resultValidated('HP-ORDER', 'k-HP2')]);
    gates.releaseAll();
    await delivered;
    const { eventIds } = await second;
    store.interceptLevelWrites(undefined);
    await store.flush();
    expect.soft(store.stats()).toMatchObject({ pending: 1, inFlight: 0, delivered: 1 });
    const next = await store.lease({ limit: 10 });
    expect(next.flatMap((l) => l.events.map((e) => e.event.id))).toEqual(eventIds);
  }
});


/** The first message-log append from now on is held until `fail()`, then fails with EIO; every other goes through. */
async function holdFirstLogWrite(): Promise<{ calls: () => number; fail: () => void; restore: () => void }> {
  let fail!: () => void;
  const failed = new Promise<void>((r) => (fail = r));
  const hook = await hookFileHandle(tmp.dir, 'writev', async (call, original) => {
    if (call !== 1) return original();
    await failed;
    throw eio();
  });
  return { ...hook, fail: () => fail() };
}
