import { afterEach, describe, expect, it, vi } from 'vitest';
import { billingRetention } from '../../gateway/src/events/invoice-eligibility.ts';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import type { RetentionHold } from '../../gateway/src/store/types.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { makeConfig } from '../fixtures/status/harness.ts';
import { inboundMessage, resultValidated, specimenReceived } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

// Store audit (third session): store-and-forward as finance staff (no invoice line twice, none
// lost) and IT staff (what went where, and why) see it. Real LevelDB and message log in a temp
// dir; a crash is a close() with leases open (nothing completes them); nothing asserts on timing.

const DAY_MS = 86_400_000;
const tmp = useTempStore('lgw-store-audit-3-', { pruneIntervalMs: 0, minFreeBytes: 0, ambiguousSettleMs: 0 });

const ids = (leases: Awaited<ReturnType<EventStore['lease']>>): string[][] => leases.map((l) => l.events.map((e) => e.event.id));

describe('a crash between the lease and the delivery of several partitions', () => {
  it('the delivered partition stays delivered; the others come back ambiguous, in order, each once', async () => {
    let store = await tmp.open();
    const a = await store.commit(inboundMessage('CR1'), [specimenReceived('A', 'k-A-1'), specimenReceived('A', 'k-A-2'), resultValidated('A', 'k-A-3')]);
    const b = await store.commit(inboundMessage('CR2'), [specimenReceived('B', 'k-B-1')]);
    const c = await store.commit(inboundMessage('CR3'), [specimenReceived('C', 'k-C-1')]);
    const leases = await store.lease({ limit: 10, maxPerPartition: 5 });
    // Order A's two specimen events in one micro-batch (its result is of another type and waits).
    expect(ids(leases)).toEqual([[a.eventIds[0], a.eventIds[1]], [b.eventIds[0]], [c.eventIds[0]]]);
    const leaseB = leases.find((l) => l.partitionKey === 'order:B')!;
    await store.complete(leaseB, [{ eventId: b.eventIds[0]!, outcome: 'delivered' }]);
    await store.close(); // A and C were in flight: kill -9

    store = await tmp.open();
    expect(store.stats()).toMatchObject({ pending: 1, inFlight: 0, retrying: 3, delivered: 1, deadLettered: 0 });
    for (const id of [a.eventIds[0], a.eventIds[1], c.eventIds[0]]) expect(await store.getEvent(id!)).toMatchObject({ state: 'retrying', ambiguous: true });
    expect(await store.getEvent(b.eventIds[0]!)).toMatchObject({ state: 'delivered' });

    const again = await store.lease({ limit: 10, maxPerPartition: 5 });
    expect(ids(again)).toEqual([[a.eventIds[0], a.eventIds[1]], [c.eventIds[0]]]);
    for (const l of again) await store.complete(l, l.events.map((e) => ({ eventId: e.event.id, outcome: 'delivered' as const })));
    const last = await store.lease({ limit: 10, maxPerPartition: 5 });
    expect(ids(last)).toEqual([[a.eventIds[2]]]);
    await store.complete(last[0]!, [{ eventId: a.eventIds[2]!, outcome: 'delivered' }]);
    expect(await store.lease({ limit: 10 })).toEqual([]);
    expect(store.stats()).toMatchObject({ pending: 0, inFlight: 0, retrying: 0, delivered: 5 });
  });
});

describe('an operator discarding while the relay holds the order', () => {
  it('a leased head cannot be discarded; an event behind it can, and the order goes on after the head', async () => {
    const store = await tmp.open();
    const r = await store.commit(inboundMessage('DL1'), [specimenReceived('D', 'k-D-1'), resultValidated('D', 'k-D-2'), specimenReceived('D', 'k-D-3')]);
    const [lease] = await store.lease({ limit: 1 });
    expect(ids([lease!])).toEqual([[r.eventIds[0]]]);
    await expect(store.discard(r.eventIds[0]!, 'admin', 'posted by hand')).rejects.toMatchObject({ code: 'GW_STORE_STATE' });
    await store.discard(r.eventIds[1]!, 'admin', 'billed by hand in Odoo');
    // The relay's answer for the head comes after the discard.
    expect(await store.lease({ limit: 10 }), 'the order stays leased').toEqual([]);
    await store.complete(lease!, [{ eventId: r.eventIds[0]!, outcome: 'delivered' }]);
    const next = await store.lease({ limit: 10 });
    expect(ids(next)).toEqual([[r.eventIds[2]]]);
    await store.complete(next[0]!, [{ eventId: r.eventIds[2]!, outcome: 'delivered' }]);
    expect(await store.lease({ limit: 10 })).toEqual([]);
    expect(store.stats()).toMatchObject({ pending: 0, inFlight: 0, retrying: 0, delivered: 2, discarded: 1 });
  });
});

describe('the size cap reached while nearly everything is undelivered', () => {
  it('prunes only what is delivered: every waiting event keeps its body and its message', async () => {
    const store = await tmp.open({ retention: { retentionDays: 1, maxDeliveredEvents: 0, deadLetterRetentionDays: 2 } });
    // One message with an event of order E (delivered) and one of order F (Odoo never answers).
    const mixed = await store.commit(inboundMessage('CAP0'), [specimenReceived('E', 'k-E-1'), specimenReceived('F', 'k-F-1')]);
    const waiting = [];
    for (let i = 1; i <= 4; i++) waiting.push(await store.commit(inboundMessage(`CAP${i}`), [resultValidated(`W${i}`, `k-W${i}`)]));
    const leases = await store.lease({ limit: 10 });
    const e = leases.find((l) => l.partitionKey === 'order:E')!;
    await store.complete(e, [{ eventId: mixed.eventIds[0]!, outcome: 'delivered' }]);
    for (const l of leases) if (l !== e) await store.complete(l, [{ eventId: l.events[0]!.event.id, outcome: 'retry', error: 'HTTP 503' }]);

    for (let pass = 0; pass < 10 && (await store.prune(Date.now() + 400 * DAY_MS)) > 0; pass++);
    expect(await store.getEvent(mixed.eventIds[0]!), 'the delivered event goes').toBeUndefined();
    expect(store.stats()).toMatchObject({ delivered: 0, retrying: 5 });
    for (const m of [mixed, ...waiting]) expect(await store.getMessage(m.messageId), m.messageId).toBeDefined();
    for (const id of [mixed.eventIds[1], ...waiting.map((w) => w.eventIds[0])]) {
      const rec = await store.getEvent(id!);
      expect(rec?.bodyError).toBeUndefined();
      expect(rec?.state).toBe('retrying');
      expect(rec?.event.type).toMatch(/specimen.received|result.validated/);
    }
  });
});

describe('retries at the back-off ceiling', () => {
  it('stay jittered: partitions that failed together do not come due together for ever', async () => {
    const store = await tmp.open({ backoff: { initialMs: 1_000, maxMs: 60_000, multiplier: 2, jitter: 0.2 } });
    const delays = Array.from({ length: 400 }, () => store.backoffDelay(30));
    for (const d of delays) {
      expect(d).toBeLessThanOrEqual(60_000);
      expect(d).toBeGreaterThanOrEqual(48_000);
    }
    // Jitter of 20 % below the ceiling: hardly any two draws the same.
    expect(delays.filter((d) => d === 60_000).length).toBeLessThan(20);
  });
});

describe('an operator replaying a dead letter after the box booted with its clock behind', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('the audit trail says the replay came after the dead-lettering, and the replayed event goes at once', async () => {
    const T = Date.parse('2027-03-10T09:00:00Z');
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: T });
    let store = await tmp.open();
    const r = await store.commit(inboundMessage('RC1'), [resultValidated('RC', 'k-RC-1'), resultValidated('RC', 'k-RC-2')]);
    const [lease] = await store.lease({ limit: 1 });
    await store.complete(lease!, [{ eventId: r.eventIds[0]!, outcome: 'dead', reason: 'Odoo: product TSH has no price' }]);
    await store.close();

    // A power cut; the box boots with its build date, 200 days behind, until the time server answers.
    vi.setSystemTime(T - 200 * DAY_MS);
    store = await tmp.open();
    const replayed = await store.replay(r.eventIds[0]!, 'admin', 'price set in Odoo');
    const at = Date.parse(replayed.audit!.at(-1)!.at);
    expect(at, 'replayed no earlier than the event was stored').toBeGreaterThanOrEqual(T);
    const [again] = await store.lease({ limit: 1 });
    expect(again?.events.map((e) => e.event.id)).toEqual([r.eventIds[0]]);
  });
});

describe('billing events whose memory cannot be written', () => {
  // What the lab expects: an accession's billing events are never pruned without their memory
  // (pruned bare, a test cancelled and replayed by the LIS afterwards is invoiced again), so they
  // stay, past the age, the floor and the cap; but IT must see that they stay, and why, or the
  // disk fills with no word (the failed question was swallowed) and nobody mends the cause.
  const holdFailingFor = (bad: Set<string>, error = 'Corruption: bad entry in block'): RetentionHold => ({
    ...billingRetention,
    keep: async () => false,
    remember: async (accession, store) => {
      if (bad.has(accession)) throw new Error(error);
      return billingRetention.remember!(accession, store);
    },
  });

  it('stay, and the store says how many accessions and why; once the memory is written they go', async () => {
    const bad = new Set(['ACC-BAD']);
    const store = await tmp.open({ retentionHold: holdFailingFor(bad), retention: { retentionDays: 30, maxDeliveredEvents: 1, deadLetterRetentionDays: 180 } });
    const held = await store.commit(inboundMessage('BM1'), [resultValidated('ACC-BAD', 'k-BAD-1')]);
    const fine = await store.commit(inboundMessage('BM2'), [resultValidated('ACC-OK', 'k-OK-1')]);
    for (;;) {
      const leases = await store.lease({ limit: 10 });
      if (leases.length === 0) break;
      for (const l of leases) await store.complete(l, l.events.map((e) => ({ eventId: e.event.id, outcome: 'delivered' as const })));
    }
    const later = Date.now() + 40 * DAY_MS; // past the age; and two events over a cap of one
    for (let pass = 0; pass < 10 && (await store.prune(later)) > 0; pass++);
    expect(await store.getEvent(fine.eventIds[0]!)).toBeUndefined();
    expect(await store.getDoc('billing', 'ACC-OK')).toBeDefined();
    expect(await store.getEvent(held.eventIds[0]!), 'kept without its memory').toMatchObject({ state: 'delivered' });
    expect(store.retentionHeld()).toEqual({ accessions: 1, first: expect.stringMatching(/ACC-BAD.*Corruption: bad entry in block/) });

    const model = new StatusModel({ config: makeConfig(tmp.dir), store, telemetry: new Telemetry(), version: 't', startedAt: new Date().toISOString(), pollIntervalMs: 3_600_000, diskIntervalMs: 3_600_000, readDisk: async () => ({ freeBytes: 50 * 1024 ** 3, totalBytes: 100 * 1024 ** 3 }) });
    await model.start();
    try {
      model.poll();
      const reason = model.toApiStatus().healthReasons.find((r) => r.code === 'RETENTION_HELD');
      expect(reason?.message).toMatch(/billing events of 1 accession .*ACC-BAD.*Corruption: bad entry in block/);
    } finally {
      await model.stop();
    }

    // Mended (IT restored the document): the next sweep, within the hour, writes the memory and prunes.
    bad.clear();
    for (let pass = 0; pass < 10 && (await store.prune(later + 2 * 3_600_000)) > 0; pass++);
    expect(await store.getEvent(held.eventIds[0]!)).toBeUndefined();
    expect(await store.getDoc('billing', 'ACC-BAD')).toBeDefined();
    expect(store.retentionHeld()).toEqual({ accessions: 0 });
  });
});
