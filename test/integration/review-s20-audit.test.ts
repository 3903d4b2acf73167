/**
 * A review, as the next owner, of the features added on one day: the crash-loop note, the lab's
 * time zone, named admin tokens, HL7 without MLLP framing, quiet alerts. Each test states a promise
 * at an edge case (real store in a temp dir, real decoder, real config parsing); those that failed
 * on the code of the day name the fix in their module's README.
 */
import { describe, expect, it } from 'vitest';
import type { Lease } from '../../gateway/src/store/types.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const tmp = useTempStore('lgw-review-s20-', { pruneIntervalMs: 0, minFreeBytes: 0, ambiguousSettleMs: 0 });

const leaseOf = (leases: Lease[], id: string): Lease => {
  const l = leases.find((x) => x.events.some((e) => e.event.id === id));
  if (!l) throw new Error(`${id} is not leased`);
  return l;
};

describe('crash-loop note (store/event-store.ts noteCrash)', () => {
  it('a second uncaught exception during the same stop keeps the events the first one noted', async () => {
    let store = await tmp.open();
    const [a] = (await store.commit(inboundMessage('CRASH-A'), [resultValidated('ACC-A', 'k-a')])).eventIds;
    const [b] = (await store.commit(inboundMessage('CRASH-B'), [resultValidated('ACC-B', 'k-b')])).eventIds;
    const leases = await store.lease({ limit: 10, maxPerPartition: 10 });
    // The first error: both deliveries under way are noted.
    store.noteCrash(new TypeError('first'));
    // The stop cuts A's request: released unchanged (a retry), still counted.
    await store.complete(leaseOf(leases, a!), [{ eventId: a!, outcome: 'retry', error: 'socket hang up' }]);
    // A second uncaught exception while the stop goes on: start's handler notes again.
    store.noteCrash(new TypeError('second'));
    await store.close();
    store = await tmp.open();
    expect((await store.getEvent(a!))?.crashes, 'A, noted at the first error and cut by the stop, is counted').toBe(1);
    expect((await store.getEvent(b!))?.crashes).toBe(1);
  });
});
