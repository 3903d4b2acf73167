import { afterEach, describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { orderCreated, waitFor } from '../fixtures/relay/helpers.ts';

/**
 * A poison event: one whose delivery the gateway cannot get through, because of a bug or of event
 * data it cannot read (a record an earlier release stored in another shape). The relay's rules run
 * inside the round, and whatever they throw, synchronously or not, is the event's failure: it is
 * retried, charged, and dead-lettered after relay.maxAttempts with the error as the reason; the
 * process does not stop and the other partitions keep flowing (relay README "A poison event").
 * Real LevelDB, the relay and the Odoo emulator over HTTP.
 */

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe('an exception inside a posting rule', () => {
  it('is the event\'s failure: retried, then dead-lettered with the error named; the relay goes on with the other orders', async () => {
    const maxAttempts = 3;
    rig = await makeRig(17, { relay: { maxAttempts } });
    // An order.created without its tests (as a release with another event shape might have stored it).
    const broken = orderCreated('ACC-POISON-1', 'CLINIC-A', ['GLU']);
    delete (broken.data as { tests?: unknown }).tests;
    const [bad, good] = await rig.commit([broken as DraftEvent, orderCreated('ACC-FINE-1', 'CLINIC-A', ['GLU'])]);

    await waitFor(async () => (await rig!.store.getEvent(bad!))?.state === 'dead');
    const dead = (await rig.store.getEvent(bad!))!;
    expect(dead.attempts).toBe(maxAttempts);
    // Said as the gateway's own failure, not as Odoo's, with what to do: IT reads this.
    expect(dead.deadReason).toBe(
      `gave up after ${maxAttempts} attempts: the gateway itself failed on this event (TypeError: data.tests is not iterable), not Odoo: a fault in the gateway or event data this release cannot read. Report it with this event to whoever maintains the gateway; replay it once the gateway is updated, or discard it and enter the document in Odoo by hand`,
    );
    await waitFor(async () => (await rig!.store.getEvent(good!))?.state === 'delivered');

    // Still running: a later order of another accession is delivered after the dead letter.
    const [later] = await rig.commit([orderCreated('ACC-FINE-2', 'CLINIC-A', ['CRP'])]);
    await waitFor(async () => (await rig!.store.getEvent(later!))?.state === 'delivered');
    expect(rig.relay.snapshot().state).toBe('connected');
  });
});
