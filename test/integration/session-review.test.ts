import { describe, expect, it } from 'vitest';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import type { Profile } from '../../gateway/src/profiles/types.ts';
import { astmMsg, withConsumption } from '../fixtures/astm/consumption.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';

/**
 * Regressions in the latest round of fixes, each shown with real parts: the real store in a temp
 * directory (and the real normalizer / relay where they matter).
 */

const msg = astmMsg;


/** Normalize one ASTM message and commit it, as the ASTM endpoint does. */
async function intake(store: EventStore, text: string, profile: Profile, receivedAt: string, controlId: string): Promise<void> {
  const r = normalizeAstmMessage(text, { analyzerId: 'an-1', endpoint: 'an-1', profile, receivedAt });
  expect(r.reject).toBeUndefined();
  await store.commit(
    { kind: 'astm', endpoint: 'an-1', receivedAt, controlId, encoding: 'ascii', raw: Buffer.from(text), status: 'accepted', ack: Buffer.from([6]), searchTerms: r.searchTerms },
    r.events,
  );
}

describe('ASTM consumption keys (O.7 run time)', () => {
  const temp = useTempStore('lgw-review-astm-');

  it('a correction (R.9 = C) of a result timed only by O.7 does not draw the reagent a second time', async () => {
    const store = await temp.open();
    const profile = withConsumption();
    const head = ['P|1', 'O|1|S-700||^^^GLU|R|20260114080000'];
    await intake(store, msg('H|\\^&|M1', ...head, 'R|1|^^^GLU|5.0|mmol/L||||F', 'L|1|N'), profile, '2026-01-14T12:00:00.000Z', 'M1');
    await intake(store, msg('H|\\^&|M2', ...head, 'R|1|^^^GLU|7.9|mmol/L||||C', 'L|1|N'), profile, '2026-01-14T12:30:00.000Z', 'M2');
    const results = await store.listEvents({ type: 'test.completed', limit: 100 });
    expect(results).toHaveLength(2); // the correction reaches the store
    const used = (await store.listEvents({ type: 'consumable.used', limit: 100 })).map((e) => (e.event.data as { productCode: string }).productCode).sort();
    // One measurement, corrected: one reagent draw and one dead volume.
    expect(used).toEqual(['DEAD', 'GLU-R1']);
  });

  it('a result sent pending (R.9 = I, no value) then final, timed only by O.7, draws the reagent once', async () => {
    const store = await temp.open();
    const profile = withConsumption();
    const head = ['P|1', 'O|1|S-701||^^^GLU|R|20260114080000'];
    await intake(store, msg('H|\\^&|M1', ...head, 'R|1|^^^GLU||||||I', 'L|1|N'), profile, '2026-01-14T12:00:00.000Z', 'M1');
    await intake(store, msg('H|\\^&|M2', ...head, 'R|1|^^^GLU|5.0|mmol/L||||F', 'L|1|N'), profile, '2026-01-14T12:30:00.000Z', 'M2');
    const used = (await store.listEvents({ type: 'consumable.used', limit: 100 })).map((e) => (e.event.data as { productCode: string }).productCode).sort();
    expect(used).toEqual(['DEAD', 'GLU-R1']);
  });
});

describe('retention behind discarded events', () => {
  const temp = useTempStore('lgw-review-prune-', { pruneIntervalMs: 0, minFreeBytes: 0, messageLogMinBatch: 1 });
  const DAY_MS = 86_400_000;

  it('a run of discarded events kept for their audit floor does not stop delivered events behind it from ever being pruned', async () => {
    const store = await temp.open({ retention: { retentionDays: 1, deadLetterRetentionDays: 90, maxDeliveredEvents: 1_000_000 } });
    // Six events an operator discarded (kept 90 days for their audit trail) ...
    for (let i = 0; i < 6; i++) {
      const r = await store.commit(inboundMessage(`X${i}`), [resultValidated(`X-ORDER-${i}`, `k-X${i}`)]);
      await store.discard(r.eventIds[0]!, 'operator', 'entered twice');
    }
    // ... then three events delivered after them (kept 1 day).
    const delivered: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await store.commit(inboundMessage(`D${i}`), [resultValidated(`D-ORDER-${i}`, `k-D${i}`)]);
      const [lease] = await store.lease({ limit: 1 });
      await store.complete(lease!, [{ eventId: r.eventIds[0]!, outcome: 'delivered' }]);
      delivered.push(r.eventIds[0]!);
    }
    // Ten days later retention runs, its work per pass bounded (here 4 index entries; 5,000 in
    // production, i.e. after 5,000 discards), called again and again as the contract says.
    const later = Date.now() + 10 * DAY_MS;
    for (let pass = 0; pass < 20; pass++) if ((await store.prune(later, 4)) === 0) break;
    // The delivered events are 10 days old with a 1-day retention: they must be gone.
    for (const id of delivered) expect(await store.getEvent(id)).toBeUndefined();
    expect(store.stats().delivered).toBe(0);
    expect(store.stats().discarded).toBe(6);
  });
});
