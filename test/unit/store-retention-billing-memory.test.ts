/**
 * Billing's memory of an accession (events/billing-memory.ts) is written by retention, when it
 * prunes the accession's billing events, in the batch of the deletions: never by a commit on the
 * intake path (before, every billing message read the memory and rewrote it whole in its commit's
 * batch). Its age counts from the accession's last billing event, also one stored after the
 * pruning. Real LevelDB in a temp dir; the gateway's billing hold (remember, expire) over a hold
 * whose `keep` the test decides; `prune(now)` driven by hand with the clock moved forward.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { billingRetention } from '../../gateway/src/events/invoice-eligibility.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import type { RetentionHold } from '../../gateway/src/store/types.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const DAY_MS = 86_400_000;
const tmp = useTempStore('lgw-retention-memory-', { pruneIntervalMs: 0, minFreeBytes: 0 });

afterEach(() => {
  vi.useRealTimers();
});

async function deliverAll(store: EventStore): Promise<void> {
  for (;;) {
    const leases = await store.lease({ limit: 100 });
    if (leases.length === 0) break;
    for (const l of leases) await store.complete(l, l.events.map((e) => ({ eventId: e.event.id, outcome: 'delivered' as const })));
  }
}

async function pruneAll(store: EventStore, now: number): Promise<void> {
  for (let pass = 0; pass < 100 && (await store.prune(now)) > 0; pass++);
}

type Memory = { day: number; events: Array<{ id: string; type: string }> };

describe('billing memory: written by retention', () => {
  it('nothing at intake; the pruned events in the pass that prunes them; kept while the accession bills again', async () => {
    const T0 = Date.parse('2027-01-10T10:00:00Z');
    const day = (t: number): string => String(Math.floor(t / DAY_MS)).padStart(6, '0');
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: T0 });
    let holdIt = false;
    const hold: RetentionHold = { ...billingRetention, keep: async () => holdIt };
    const store = await tmp.open({ retentionHold: hold });
    await store.commit(inboundMessage('M1'), [resultValidated('ACC-1', 'k-1')]);
    await deliverAll(store);
    expect(await store.getDoc('billing', 'ACC-1'), 'not written at intake').toBeUndefined();
    expect(await store.listDocs('billing-age')).toEqual([]);

    await pruneAll(store, T0 + 31 * DAY_MS);
    expect(await store.eventsByCorrelation('ACC-1')).toEqual([]);
    const first = await store.getDoc<Memory>('billing', 'ACC-1');
    expect(first?.events.map((e) => e.type), 'remembered as it was pruned').toEqual(['result.validated']);
    expect((await store.listDocs('billing-age')).map((r) => r.key)).toEqual([`${day(T0)}:ACC-1`]);

    // 100 days on, the accession bills again; its new event is held (not billed in full).
    vi.setSystemTime(T0 + 100 * DAY_MS);
    await store.commit(inboundMessage('M2'), [resultValidated('ACC-1', 'k-2')]);
    await deliverAll(store);
    expect((await store.getDoc<Memory>('billing', 'ACC-1'))?.events.length, 'the new event is not written at intake').toBe(1);
    holdIt = true;
    // 180 days after the first event: the accession has billed since, its memory stays (moved to that day).
    await pruneAll(store, T0 + 181 * DAY_MS);
    expect((await store.getDoc<Memory>('billing', 'ACC-1'))?.events.length).toBe(1);
    expect((await store.listDocs('billing-age')).map((r) => r.key)).toEqual([`${day(T0 + 100 * DAY_MS)}:ACC-1`]);

    holdIt = false;
    await pruneAll(store, T0 + 200 * DAY_MS);
    expect((await store.getDoc<Memory>('billing', 'ACC-1'))?.events.map((e) => e.type)).toEqual(['result.validated', 'result.validated']);
    // 180 days after its last billing event it goes, with its age entry.
    await pruneAll(store, T0 + 281 * DAY_MS);
    expect(await store.getDoc('billing', 'ACC-1')).toBeUndefined();
    expect(await store.listDocs('billing-age')).toEqual([]);
  });

  it('a memory written at intake by the release before is added to, without copying an event twice', async () => {
    const store = await tmp.open({ retentionHold: { ...billingRetention, keep: async () => false } });
    await store.commit(inboundMessage('M1'), [resultValidated('ACC-2', 'k-1')]);
    await store.commit(inboundMessage('M2'), [resultValidated('ACC-2', 'k-2')]);
    await deliverAll(store);
    const [e1] = await store.eventsByCorrelation('ACC-2');
    const today = Math.floor(Date.now() / DAY_MS);
    const old = { v: 1, day: today, events: [{ id: e1!.event.id, type: 'result.validated', occurredAt: e1!.event.occurredAt, message: e1!.event.source.messageId, data: {} }] };
    await store.putDoc('billing', 'ACC-2', old);
    await store.putDoc('billing-age', `${String(today).padStart(6, '0')}:ACC-2`, '');
    await pruneAll(store, Date.now() + 31 * DAY_MS);
    const memory = await store.getDoc<Memory>('billing', 'ACC-2');
    expect(memory?.events.map((e) => e.id)).toEqual((memory?.events.map((e) => e.id) ?? []).slice().sort());
    expect(new Set(memory?.events.map((e) => e.id)).size).toBe(2);
    expect(await store.listDocs('billing-age')).toHaveLength(1);
  });
});
