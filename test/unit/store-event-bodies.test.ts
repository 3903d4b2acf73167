import { open as openFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';

const validated = (accession: string, marker: string): DraftEvent => resultValidated(accession, `k-${accession}`, [{ code: 'GLU', value: marker }]);

// An event's body never changes after intake; its state does, with every attempt. The body is
// written once, in its message's record; LevelDB's `e` keeps the state and the message id, so the
// relay's updates and LevelDB's compactions no longer rewrite the body.

const DAY_MS = 86_400_000;
const tmp = useTempStore('lgw-bodies-', { pruneIntervalMs: 0, minFreeBytes: 0 });

const openStore = tmp.open;


/** Every raw LevelDB value, by key (the store closed). */
async function levelValues(): Promise<Map<string, Buffer>> {
  const db = new ClassicLevel<string, Buffer>(path.join(tmp.dir, 'store'), { keyEncoding: 'utf8', valueEncoding: 'buffer' });
  const out = new Map<string, Buffer>();
  for await (const [k, v] of db.iterator()) out.set(k, v);
  await db.close();
  return out;
}

const stateOf = (values: Map<string, Buffer>, eventId: string): Record<string, unknown> => JSON.parse((values.get(`!e!${eventId}`) as Buffer).toString('utf8')) as Record<string, unknown>;


describe('event bodies live in their message record', () => {
  for (const [label, minBatch] of [['message log', 1], ['inline record (small batch)', 8]] as const) {
    it(`${label}: \`e\` holds the state and the message id; the event reads back whole after a restart`, async () => {
      const s = await openStore({ messageLogMinBatch: minBatch });
      const marker = `BODY-${label.length}-7f3a`;
      const { messageId, eventIds } = await s.commit(inboundMessage('B1'), [validated('A1', marker)]);
      const committed = (await s.getEvent(eventIds[0] as string))?.event;
      expect(committed?.data).toMatchObject({ results: [{ value: marker }] });
      await s.close();

      const values = await levelValues();
      const state = stateOf(values, eventIds[0] as string);
      expect(state).toMatchObject({ state: 'pending', attempts: 0, m: messageId });
      expect(state).not.toHaveProperty('event');
      // The body is written once: in the log, or inside the inline record under `m`.
      const holders = [...values].filter(([, v]) => v.includes(Buffer.from(marker))).map(([k]) => k);
      expect(holders).toEqual(minBatch === 1 ? [] : [`!m!${messageId}`]);

      const again = await openStore({ messageLogMinBatch: minBatch }); // no body cached
      const read = await again.getEvent(eventIds[0] as string);
      expect(read?.event).toEqual(committed);
      expect(read?.event.source.messageId).toBe(messageId);
      // The message's public form does not carry the bodies.
      expect((await again.getMessage(messageId))?.message).not.toHaveProperty('events');
    });
  }

  it('the relay round trip (lease, retry, lease, deliver) reads whole events and writes back only state', async () => {
    let s = await openStore({ messageLogMinBatch: 1, backoff: { initialMs: 0, maxMs: 0, jitter: 0 } });
    const { messageId, eventIds } = await s.commit(inboundMessage('B2'), [validated('A2', 'm2')]);
    await s.close();
    s = await openStore({ messageLogMinBatch: 1, backoff: { initialMs: 0, maxMs: 0, jitter: 0 } });
    const [first] = await s.lease({ limit: 10 });
    expect(first?.events[0]?.event).toMatchObject({ id: eventIds[0], type: 'result.validated', correlationId: 'A2' });
    await s.complete(first!, [{ eventId: eventIds[0] as string, outcome: 'retry', error: 'Odoo timed out', ambiguous: true }]);
    const [second] = await s.lease({ limit: 10, now: Date.now() + 1000 });
    expect(second?.events[0]).toMatchObject({ state: 'inflight', attempts: 1, ambiguous: true, event: { data: { results: [{ value: 'm2' }] } } });
    await s.complete(second!, [{ eventId: eventIds[0] as string, outcome: 'delivered', odoo: [{ model: 'sale.order', id: 7 }] }]);
    await s.close();

    const state = stateOf(await levelValues(), eventIds[0] as string);
    expect(state).toMatchObject({ state: 'delivered', attempts: 2, m: messageId, odoo: [{ model: 'sale.order', id: 7 }] });
    expect(state).not.toHaveProperty('event');
    s = await openStore({ messageLogMinBatch: 1 });
    expect(await s.eventsByCorrelation('A2')).toMatchObject([{ state: 'delivered', event: { id: eventIds[0], data: { accession: 'A2' } } }]);
  });

  it('a finished event kept longer than its message takes its body along when the message is pruned', async () => {
    const s = await openStore({ messageLogMinBatch: 1, retention: { retentionDays: 1 } });
    const { messageId, eventIds } = await s.commit(inboundMessage('B3'), [validated('A3', 'm3')]);
    await new Promise((r) => setTimeout(r, 20)); // the message is older than the delivery
    const [lease] = await s.lease({ limit: 1 });
    await s.complete(lease!, [{ eventId: eventIds[0] as string, outcome: 'delivered' }]);
    const deliveredAt = Date.parse((await s.getEvent(eventIds[0] as string))?.deliveredAt as string);
    // The cut-off falls between the message's arrival and the delivery: the message goes, the event stays.
    expect(await s.prune(deliveredAt + DAY_MS - 5)).toBe(1);
    expect(await s.getMessage(messageId)).toBeUndefined();
    await s.close();

    const state = stateOf(await levelValues(), eventIds[0] as string);
    expect(state).not.toHaveProperty('m');
    expect(state).toMatchObject({ state: 'delivered', event: { id: eventIds[0], data: { results: [{ value: 'm3' }] } } });
    const again = await openStore({ messageLogMinBatch: 1, retention: { retentionDays: 1 } });
    expect((await again.getEvent(eventIds[0] as string))?.event.correlationId).toBe('A3');
    // Later the event goes too, with its correlation entry.
    expect(await again.prune(deliveredAt + DAY_MS + 5)).toBe(1);
    expect(await again.eventsByCorrelation('A3')).toEqual([]);
    expect(await again.getEvent(eventIds[0] as string)).toBeUndefined();
  });

  it('an event whose body is in a damaged record becomes a dead letter with the reason; other partitions flow; an operator can discard it', async () => {
    let s = await openStore({ messageLogMinBatch: 1 });
    const damaged = await s.commit(inboundMessage('B4'), [validated('A4', 'm4')]);
    const fine = await s.commit(inboundMessage('B5'), [validated('A5', 'm5')]);
    await s.close();
    const logDir = path.join(tmp.dir, 'store', 'messages');
    const seg = (await readdir(logDir)).filter((f) => f.endsWith('.seg')).sort()[0] as string;
    const fh = await openFile(path.join(logDir, seg), 'r+');
    await fh.write(Buffer.from('#'), 0, 1, 20); // one byte inside the first record's payload
    await fh.close();

    s = await openStore({ messageLogMinBatch: 1 });
    const id = damaged.eventIds[0] as string;
    const read = await s.getEvent(id);
    expect(read?.bodyError).toMatch(/GW_STORE_CORRUPT/);
    expect(read?.event).toMatchObject({ id, type: 'unreadable' });
    // Never made up: no payload of another event.
    expect(read?.event).not.toHaveProperty('data');

    const leases = await s.lease({ limit: 10 });
    expect(leases.map((l) => l.events[0]?.event.id)).toEqual([fine.eventIds[0]]);
    const dead = await s.listEvents({ state: 'dead' });
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ state: 'dead', event: { id, type: 'unreadable', partitionKey: 'order:A4' } });
    expect(dead[0]?.deadReason).toMatch(/could not be read/);
    expect(s.stats()).toMatchObject({ deadLettered: 1, inFlight: 1, pending: 0 });

    const discarded = await s.discard(id, 'admin', 'record damaged on disk; result re-sent by the LIS');
    expect(discarded.state).toBe('discarded');
    expect(s.stats()).toMatchObject({ deadLettered: 0, discarded: 1 });
    await s.close();
    // Nothing of the stand-in was stored.
    const state = stateOf(await levelValues(), id);
    expect(state).not.toHaveProperty('bodyError');
    expect(state).not.toHaveProperty('event');
  });

  it('a cold lease reads the heads of several partitions with their bodies from the records; dead partitions stay blocked', async () => {
    let s = await openStore({ messageLogMinBatch: 1 });
    const ids: string[] = [];
    for (const acc of ['C1', 'C2', 'C3', 'C4']) ids.push(...(await s.commit(inboundMessage(`M-${acc}`), [validated(acc, acc)])).eventIds);
    // The two oldest partitions die (blocked until an operator acts).
    for (const id of ids.slice(0, 2)) {
      const [lease] = await s.lease({ limit: 1 });
      expect(lease?.events[0]?.event.id).toBe(id);
      await s.complete(lease!, [{ eventId: id, outcome: 'dead', reason: 'unknown product' }]);
    }
    await s.close();
    s = await openStore({ messageLogMinBatch: 1 }); // cold: the bodies come from the records
    const leases = await s.lease({ limit: 2 });
    expect(leases.map((l) => l.events[0]?.event.correlationId)).toEqual(['C3', 'C4']);
    expect(leases.map((l) => l.events[0]?.event.data)).toMatchObject([{ results: [{ value: 'C3' }] }, { results: [{ value: 'C4' }] }]);
  });

  it('events of no message (local events) keep their whole value under `e`', async () => {
    const s = await openStore();
    const [id] = await s.commitLocal([validated('A5', 'm5')]);
    await s.close();
    const state = stateOf(await levelValues(), id as string);
    expect(state).not.toHaveProperty('m');
    expect((state as unknown as StoredEvent).event).toMatchObject({ id, correlationId: 'A5' });
  });
});
