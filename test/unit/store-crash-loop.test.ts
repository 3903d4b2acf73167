/**
 * A crash loop on one event. Something in an event's delivery makes the gateway stop on an error
 * of its own (an uncaught exception while its request is handled): the supervisor restarts it,
 * the event is leased again after its settle time, and the gateway stops again, every few
 * minutes for as long as nobody looks. Each restart also cuts the LIS and the analyzers off. Before,
 * nothing ever ended that loop. Now the gateway notes the events it was delivering when it stops
 * on its own error (EventStore.noteCrash); after CRASHED_DELIVERY_LIMIT such stops in a row with the
 * same event's delivery unfinished, the next start holds that event as a dead letter (its partition
 * waits, the others flow) with a reason that says what happened and what to do. A kill or a power
 * cut notes nothing and never holds an event.
 */
import { access } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { CRASHED_DELIVERY_LIMIT, type Lease } from '../../gateway/src/store/types.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const tmp = useTempStore('lgw-crash-loop-', { pruneIntervalMs: 0, minFreeBytes: 0, ambiguousSettleMs: 0 });

const ids = (leases: Lease[]): string[][] => leases.map((l) => l.events.map((e) => e.event.id));
const leaseOf = (leases: Lease[], id: string): Lease => {
  const l = leases.find((x) => x.events.some((e) => e.event.id === id));
  if (!l) throw new Error(`${id} is not leased`);
  return l;
};
const noteExists = (dir: string): Promise<boolean> =>
  access(`${dir}/store/crashed-deliveries.json`).then(
    () => true,
    () => false,
  );

/** The gateway stops on its own error while its leases are open, and starts again. */
async function crashAndRestart(store: EventStore, error = new TypeError("Cannot read properties of undefined (reading 'lot_id')")): Promise<EventStore> {
  store.noteCrash(error);
  await store.close();
  return tmp.open();
}

describe('an event whose delivery stops the gateway each time', () => {
  it(`is held as a dead letter after ${CRASHED_DELIVERY_LIMIT} such stops in a row, alone, and the rest of the queue flows`, async () => {
    let store = await tmp.open();
    const [a1, a2] = (await store.commit(inboundMessage('POISON'), [resultValidated('ACC-P', 'k-p1'), resultValidated('ACC-P', 'k-p2')])).eventIds;
    const [b1] = (await store.commit(inboundMessage('FINE'), [resultValidated('ACC-F', 'k-f1')])).eventIds;

    // First stop: the order's two events were being sent together, and the other order's.
    let leases = await store.lease({ limit: 10, maxPerPartition: 10 });
    expect(ids(leases)).toEqual(expect.arrayContaining([[a1, a2], [b1]]));
    store = await crashAndRestart(store);
    expect(await noteExists(tmp.dir), 'the note is read and removed at start').toBe(false);
    expect(await store.getEvent(a1!)).toMatchObject({ state: 'retrying', ambiguous: true, crashes: 1, lastError: expect.stringContaining(`1 of ${CRASHED_DELIVERY_LIMIT}`) });
    expect((await store.getEvent(a1!))?.lastError).toContain("reading 'lot_id'");

    // Each goes alone now, so only the one that stops the gateway is counted again.
    leases = await store.lease({ limit: 10, maxPerPartition: 10 });
    expect(ids(leases)).toEqual(expect.arrayContaining([[a1], [b1]]));
    await store.complete(leaseOf(leases, b1!), [{ eventId: b1!, outcome: 'delivered' }]);
    expect((await store.getEvent(b1!))?.crashes, 'a finished delivery is no longer counted').toBeUndefined();
    store = await crashAndRestart(store);
    expect(await store.getEvent(a1!)).toMatchObject({ state: 'retrying', crashes: 2 });
    expect(await store.getEvent(a2!), 'not being sent at the second stop').toMatchObject({ state: 'retrying', crashes: 1 });

    leases = await store.lease({ limit: 10, maxPerPartition: 10 });
    expect(ids(leases)).toEqual([[a1]]);
    store = await crashAndRestart(store);

    const held = await store.getEvent(a1!);
    expect(held).toMatchObject({ state: 'dead', ambiguous: true, crashes: CRASHED_DELIVERY_LIMIT });
    expect(held?.deadReason).toContain(`${CRASHED_DELIVERY_LIMIT} times in a row`);
    expect(held?.deadReason).toContain("reading 'lot_id'");
    expect(held?.deadReason).toMatch(/replay .* or discard/);
    expect(store.stats()).toMatchObject({ deadLettered: 1, blockedPartitions: 1, inFlight: 0 });
    expect(ids(await store.lease({ limit: 10, maxPerPartition: 10 })), 'its partition waits for an operator').toEqual([]);

    // A new order flows meanwhile.
    const [c1] = (await store.commit(inboundMessage('NEXT'), [resultValidated('ACC-N', 'k-n1')])).eventIds;
    expect(ids(await store.lease({ limit: 10, maxPerPartition: 10 }))).toEqual([[c1]]);

    // The cause fixed, an operator replays it: it goes alone, and its delivery clears the count.
    await store.replay(a1!, 'it-staff', 'fixed in the new release');
    leases = await store.lease({ limit: 10, maxPerPartition: 10 });
    expect(ids(leases)).toContainEqual([a1]);
    await store.complete(leaseOf(leases, a1!), [{ eventId: a1!, outcome: 'delivered' }]);
    expect((await store.getEvent(a1!))?.crashes).toBeUndefined();
    leases = await store.lease({ limit: 10, maxPerPartition: 10 });
    expect(ids(leases), 'the next one, counted once, goes alone too').toContainEqual([a2]);
    await store.complete(leaseOf(leases, a2!), [{ eventId: a2!, outcome: 'delivered' }]);
    expect(await store.getEvent(a2!)).toMatchObject({ state: 'delivered' });
    expect((await store.getEvent(a2!))?.crashes).toBeUndefined();
  });

  it('a replayed event that stops the gateway once more is held again at once', async () => {
    let store = await tmp.open();
    const [a1] = (await store.commit(inboundMessage('POISON'), [resultValidated('ACC-P', 'k-p1')])).eventIds;
    for (let i = 0; i < CRASHED_DELIVERY_LIMIT; i++) {
      expect(ids(await store.lease({ limit: 10, maxPerPartition: 10 }))).toEqual([[a1]]);
      store = await crashAndRestart(store);
    }
    expect(await store.getEvent(a1!)).toMatchObject({ state: 'dead' });
    await store.replay(a1!, 'it-staff', 'try again');
    expect(ids(await store.lease({ limit: 10, maxPerPartition: 10 }))).toEqual([[a1]]);
    store = await crashAndRestart(store);
    expect(await store.getEvent(a1!)).toMatchObject({ state: 'dead', crashes: CRASHED_DELIVERY_LIMIT + 1 });
  });
});

describe('stops that are not a crash loop', () => {
  it('a kill or a power cut (no note) never counts: the event is resent after each start, however often', async () => {
    let store = await tmp.open();
    const [a1] = (await store.commit(inboundMessage('CUT'), [resultValidated('ACC-C', 'k-c1')])).eventIds;
    for (let i = 0; i < CRASHED_DELIVERY_LIMIT + 2; i++) {
      expect(ids(await store.lease({ limit: 10, maxPerPartition: 10 }))).toEqual([[a1]]);
      await store.close();
      store = await tmp.open();
      const e = await store.getEvent(a1!);
      expect(e).toMatchObject({ state: 'retrying', ambiguous: true, lastError: 'the gateway stopped while this event was being delivered' });
      expect(e?.crashes).toBeUndefined();
    }
  });

  it('a plain stop between two such stops neither counts nor clears the count', async () => {
    let store = await tmp.open();
    const [a1] = (await store.commit(inboundMessage('MIX'), [resultValidated('ACC-M', 'k-m1')])).eventIds;
    await store.lease({ limit: 10, maxPerPartition: 10 });
    store = await crashAndRestart(store);
    await store.lease({ limit: 10, maxPerPartition: 10 });
    await store.close(); // a power cut while it was being sent again
    store = await tmp.open();
    expect(await store.getEvent(a1!)).toMatchObject({ state: 'retrying', crashes: 1 });
    await store.lease({ limit: 10, maxPerPartition: 10 });
    store = await crashAndRestart(store);
    expect(await store.getEvent(a1!)).toMatchObject({ state: 'retrying', crashes: 2 });
  });

  it('an event released unchanged by the stop (its request cut off when Odoo\'s connection closed) counts as unfinished', async () => {
    let store = await tmp.open();
    const [a1] = (await store.commit(inboundMessage('REL'), [resultValidated('ACC-L', 'k-l1')])).eventIds;
    for (let i = 0; i < CRASHED_DELIVERY_LIMIT; i++) {
      const [lease] = await store.lease({ limit: 10, maxPerPartition: 10 });
      expect(lease?.events.map((e) => e.event.id)).toEqual([a1]);
      store.noteCrash(new Error('boom'));
      await store.complete(lease!, []); // released: no outcome
      await store.close();
      store = await tmp.open();
    }
    expect(await store.getEvent(a1!)).toMatchObject({ state: 'dead', crashes: CRASHED_DELIVERY_LIMIT });
    expect(store.stats()).toMatchObject({ deadLettered: 1, pending: 0, retrying: 0, inFlight: 0 });
  });

  it('a failed attempt recorded between two crashes ends the run too (the gateway outlived that delivery)', async () => {
    let store = await tmp.open();
    const [a1] = (await store.commit(inboundMessage('RETRY'), [resultValidated('ACC-R', 'k-r1')])).eventIds;
    for (let i = 0; i < CRASHED_DELIVERY_LIMIT - 1; i++) {
      await store.lease({ limit: 10, maxPerPartition: 10 });
      store = await crashAndRestart(store);
    }
    const [lease] = await store.lease({ limit: 10, maxPerPartition: 10 });
    await store.complete(lease!, [{ eventId: a1!, outcome: 'retry', error: 'Odoo: 503', delayMs: 0 }]);
    expect((await store.getEvent(a1!))?.crashes).toBeUndefined();
    await store.lease({ limit: 10, maxPerPartition: 10 });
    store = await crashAndRestart(store);
    expect(await store.getEvent(a1!)).toMatchObject({ state: 'retrying', crashes: 1 });
  });

  it('a request the stop cut off (recorded as an ambiguous retry) counts as unfinished', async () => {
    let store = await tmp.open();
    const [a1] = (await store.commit(inboundMessage('CUTOFF'), [resultValidated('ACC-X', 'k-x1')])).eventIds;
    const [lease] = await store.lease({ limit: 10, maxPerPartition: 10 });
    store.noteCrash(new Error('boom'));
    // The graceful stop closes Odoo's connection: the request's answer is lost.
    await store.complete(lease!, [{ eventId: a1!, outcome: 'retry', error: 'socket hang up', ambiguous: true }]);
    await store.close();
    store = await tmp.open();
    expect(await store.getEvent(a1!)).toMatchObject({ state: 'retrying', ambiguous: true, crashes: 1 });
  });

  it('a delivery that finishes during the stop is not counted, and a stop with nothing in flight leaves no note', async () => {
    let store = await tmp.open();
    const [a1] = (await store.commit(inboundMessage('DONE'), [resultValidated('ACC-D', 'k-d1')])).eventIds;
    const [lease] = await store.lease({ limit: 10, maxPerPartition: 10 });
    store.noteCrash(new Error('boom elsewhere'));
    expect(await noteExists(tmp.dir)).toBe(true);
    // The graceful stop lets the calls already sent finish and be recorded.
    await store.complete(lease!, [{ eventId: a1!, outcome: 'delivered' }]);
    await store.close();
    store = await tmp.open();
    expect(await store.getEvent(a1!)).toMatchObject({ state: 'delivered' });
    expect(await noteExists(tmp.dir)).toBe(false);
    store.noteCrash(new Error('boom while idle'));
    expect(await noteExists(tmp.dir), 'nothing was being delivered').toBe(false);
  });
});
