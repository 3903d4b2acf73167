import { describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { isGatewayError } from '../../gateway/src/errors.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';

// A logged batch is durable once its message-log write returns (its commit point): its commits
// resolve then, and the senders get their ACKs while LevelDB is still being written. These tests
// hold or fail that LevelDB write and check what the promise to the sender rests on: a resend is
// still a duplicate, reads see the commit, and an answered commit survives a LevelDB failure.

const tmp = useTempStore('lgw-commit-answer-', { pruneIntervalMs: 0, minFreeBytes: 0, messageLogMinBatch: 1, healthCheckIntervalMs: 50 });
const validated = (accession: string): DraftEvent => resultValidated(accession, `k-${accession}`);

/** A gate that holds LevelDB's writes of logged (or other) batches until opened, counting them. */
function gate(which: 'logged' | 'other' = 'logged'): { hook: (batch: { logged: boolean }) => Promise<void>; open: () => void; held: () => number; written: () => number } {
  let release: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => (release = resolve));
  let held = 0;
  let written = 0;
  return {
    hook: async (batch) => {
      if (batch.logged !== (which === 'logged')) return;
      held++;
      await opened;
      written++;
    },
    open: () => release(),
    held: () => held,
    written: () => written,
  };
}

describe('a logged batch is answered at its commit point', () => {
  it('resolves before LevelDB has it; a resend meanwhile is still a duplicate, and reads wait for LevelDB', async () => {
    const store = await tmp.open();
    const g = gate();
    store.interceptLevelWrites(g.hook);
    const first = await store.commit(inboundMessage('EA1'), [validated('EA1')]);
    expect(first.duplicate).toBe(false);
    // Answered while its LevelDB write is still held.
    expect(g.held()).toBe(1);
    expect(g.written()).toBe(0);

    const resend = store.commit(inboundMessage('EA1'), [validated('EA1')]);
    const read = store.getMessage(first.messageId);
    const listed = store.listEvents({ state: 'pending' });
    g.open();
    const again = await resend;
    expect(again.duplicate).toBe(true);
    expect(again.messageId).toBe(first.messageId);
    expect(again.ack?.toString()).toBe('ACK for EA1');
    expect((await read)?.message.controlId).toBe('EA1');
    expect((await listed).map((e) => e.event.id)).toEqual(first.eventIds);
    store.interceptLevelWrites(undefined);
    const leases = await store.lease({ limit: 10 });
    expect(leases.flatMap((l) => l.events.map((e) => e.event.id))).toEqual(first.eventIds);
    expect(store.intake()).toMatchObject({ accepted: 1, duplicates: 1 });
  });

  it('an event committed without a message in an answered batch keeps its key claimed until LevelDB has it: the same fact again is skipped', async () => {
    const store = await tmp.open();
    const g = gate();
    store.interceptLevelWrites(g.hook);
    // A local event (e.g. a derived one) shares a logged batch with a message: both are answered
    // at the batch's commit point, while its LevelDB write is held.
    const [withMessage, local] = await Promise.all([store.commit(inboundMessage('EL1'), [validated('EL1')]), store.commitLocal([validated('LOCAL-1')])]);
    expect(withMessage.eventIds).toHaveLength(1);
    expect(local).toHaveLength(1);
    expect(g.written()).toBe(0);
    // The same fact again before LevelDB has the first: nothing new.
    const again = store.commitLocal([validated('LOCAL-1')]);
    g.open();
    expect(await again).toEqual([]);
    await store.flush();
    expect(store.stats().pending).toBe(2);
    expect((await store.getEventByKey('k-LOCAL-1'))?.event.id).toBe(local[0]);
  });

  it('a batch behind one that is not logged waits for it: nobody is answered ahead of a write that can still fail', async () => {
    const store = await tmp.open();
    const g = gate('other');
    store.interceptLevelWrites(g.hook);
    // A write that is not logged (a document: synced in LevelDB, its own commit point) is held;
    // sixteen commits sealed behind it make a logged batch. Should the document's write fail, their
    // batch fails with it (its counters were taken on top of it), so they are not answered first.
    const doc = store.putDoc('settings', 'x', { a: 1 });
    await expect.poll(() => g.held(), { timeout: 5_000 }).toBe(1);
    let answered = 0;
    const commits = Array.from({ length: 16 }, (_, i) => store.commit(inboundMessage(`EB${i}`), [validated(`EB${i}`)]).then((r) => (answered++, r)));
    // Ample time for their message-log write; nothing may resolve while the document is held.
    await new Promise((r) => setTimeout(r, 200));
    expect(answered).toBe(0);
    g.open();
    await doc;
    expect((await Promise.all(commits)).every((r) => !r.duplicate)).toBe(true);
    expect(g.written()).toBe(1);
  });

  it('a LevelDB failure after the commit point loses no answered commit: writes are refused until the probe has written them again', async () => {
    const store = await tmp.open();
    store.interceptLevelWrites(({ logged }) => {
      if (logged) throw Object.assign(new Error('EIO: injected LevelDB write failure'), { code: 'EIO' });
    });
    const answered = await Promise.all(['EC1', 'EC2', 'EC3'].map((c) => store.commit(inboundMessage(c), [validated(c)])));
    expect(answered.every((r) => !r.duplicate)).toBe(true);
    await expect.poll(() => store.health, { timeout: 5_000 }).toBe('failed');
    const refused = await store.commit(inboundMessage('EC4'), [validated('EC4')]).catch((e: unknown) => e);
    expect(isGatewayError(refused, 'GW_STORE_UNAVAILABLE')).toBe(true);
    // Any other write too (a document, a relay update): written before the answered batches are
    // caught up, it could be overwritten by their older values.
    const docRefused = await store.putDoc('settings', 'late', { v: 1 }).catch((e: unknown) => e);
    expect(isGatewayError(docRefused, 'GW_STORE_UNAVAILABLE')).toBe(true);

    store.interceptLevelWrites(undefined);
    await expect.poll(() => store.health, { timeout: 5_000 }).toBe('ok');
    for (const r of answered) expect((await store.getMessage(r.messageId))?.message.status).toBe('accepted');
    expect(store.stats().pending).toBe(3);
    const leased = await store.lease({ limit: 10 });
    expect(leased.flatMap((l) => l.events.map((e) => e.event.id)).sort()).toEqual(answered.flatMap((r) => r.eventIds).sort());
    // The resend of an answered message is a duplicate; the refused one commits now.
    expect((await store.commit(inboundMessage('EC2'), [validated('EC2')])).duplicate).toBe(true);
    expect((await store.commit(inboundMessage('EC4'), [validated('EC4')])).duplicate).toBe(false);
    expect(store.stats().pending + store.stats().inFlight).toBe(4);
    await store.putDoc('settings', 'late', { v: 2 });
    expect(await store.getDoc('settings', 'late')).toEqual({ v: 2 });
  });

  it('a LevelDB failure after the commit point, then a restart: start-up writes the answered commits from the log, once', async () => {
    let store = await tmp.open();
    store.interceptLevelWrites(({ logged }) => {
      if (logged) throw new Error('EIO: injected LevelDB write failure');
    });
    const answered = await Promise.all(['ED1', 'ED2'].map((c) => store.commit(inboundMessage(c), [validated(c)])));
    await expect.poll(() => store.health, { timeout: 5_000 }).toBe('failed');
    await store.close();
    store = await tmp.open();
    expect(store.health).toBe('ok');
    for (const r of answered) expect((await store.getMessage(r.messageId))?.message.controlId).toBeDefined();
    expect(store.stats().pending).toBe(2);
    expect((await store.listMessages({ limit: 10 })).map((m) => m.controlId).sort()).toEqual(['ED1', 'ED2']);
    expect((await store.commit(inboundMessage('ED1'), [validated('ED1')])).duplicate).toBe(true);
  });
});

/**
 * `empty` empties the order's partition (its last event delivered or discarded) with the LevelDB
 * write of that batch held; the order's next message comes meanwhile, when LevelDB still has the
 * partition's old count. Returns the next message's events and what the relay can lease after.
 */
async function nextEventWhileEmptying(store: EventStore, accession: string, empty: () => Promise<unknown>): Promise<{ eventIds: string[]; leased: string[] }> {
  const g = gate('other');
  store.interceptLevelWrites(g.hook);
  const emptied = empty();
  await expect.poll(() => g.held(), { timeout: 5_000 }).toBe(1);
  const second = store.commit(inboundMessage(`${accession}-2`), [resultValidated(accession, `k-${accession}-2`)]);
  g.open();
  await emptied;
  const { eventIds } = await second;
  store.interceptLevelWrites(undefined);
  const next = await store.lease({ limit: 10 });
  return { eventIds, leased: next.flatMap((l) => l.events.map((e) => e.event.id)) };
}

describe('partition counts while a batch is on its way into LevelDB', () => {
  it("an event arriving while its partition's emptying is not in LevelDB yet still becomes leasable", async () => {
    const store = await tmp.open();
    const first = await store.commit(inboundMessage('PC1'), [resultValidated('PC-ORDER', 'k-pc-1')]);
    const [lease] = await store.lease({ limit: 1 });
    expect(lease?.events.map((e) => e.event.id)).toEqual(first.eventIds);
    const { eventIds, leased } = await nextEventWhileEmptying(store, 'PC-ORDER', () => store.complete(lease!, [{ eventId: first.eventIds[0]!, outcome: 'delivered' }]));
    expect(leased).toEqual(eventIds);
    expect(store.stats()).toMatchObject({ pending: 0, inFlight: 1, delivered: 1 });
  });

  it("the same holds when the partition's last event is discarded by an operator", async () => {
    const store = await tmp.open();
    const first = await store.commit(inboundMessage('PD1'), [resultValidated('PD-ORDER', 'k-pd-1')]);
    const [lease] = await store.lease({ limit: 1 });
    await store.complete(lease!, [{ eventId: first.eventIds[0]!, outcome: 'dead', reason: 'no product for this test code' }]);
    const { eventIds, leased } = await nextEventWhileEmptying(store, 'PD-ORDER', () => store.discard(first.eventIds[0]!, 'operator', 'entered by hand in the ERP'));
    expect(leased).toEqual(eventIds);
  });
});
