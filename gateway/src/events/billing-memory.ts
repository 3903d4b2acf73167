/**
 * Billing's memory of an accession: what billing walks (events/invoice-eligibility.ts
 * billingState), kept past the events retention prunes.
 *
 * Retention prunes an order's billing events once it is billed in full (store/README.md
 * "Retention"), event by event, and billing rebuilt its state from the events still stored. So a
 * test billed once and named again by a later order message (the LIS sending the order "as it
 * now stands", a repeated NW) read as open with no result: the order never became eligible again
 * and an add-on, delivered in Odoo, was never invoiced; and a test cancelled, then its original
 * order replayed by the LIS after the pruning (ORC-9 before the cancellation, new MSH-10s), went
 * back on the sale order and was invoiced: the cancellation was forgotten
 * (test/integration/billing-retention-memory-audit.test.ts).
 *
 * The memory is a local document (`doc` sublevel, namespace `billing`, key the accession) holding a
 * compact copy of each billing event of the accession (order.created, order.cancelled,
 * result.validated, invoice.eligible): its id, type, time, message id and the fields billing reads
 * (tests, the times the LIS wrote, a result's value and time source, the ordering client). It is
 * written by retention, when it prunes the accession's billing events (RetentionHold.remember:
 * rememberPruned), in the same atomic batch as the deletions; never on the intake path. It is read
 * as history: the events still stored, plus the remembered ones retention pruned, in stored (id)
 * order (withMemory). A stored event is always walked as stored; a copy stands in for it only once
 * it is gone. So every walk, the derivation's and the relay rules' walks up to an event of theirs,
 * sees exactly what it saw before the pruning, whatever retention pruned first. A reader reads the
 * stored events first and the memory after them (never side by side): a pruning that lands between
 * the two reads leaves the event in the memory, read last; the other way round it could be missed
 * by both.
 *
 * Before, the memory was written by the invoice derivation with every billing message (every ORU
 * result, order, cancellation: the document read and rewritten whole, 300 B–1.2 KB, in the
 * commit's batch): ~75 µs of server CPU per message on the intake benchmark, for a document that
 * matters only once retention prunes, at least store.retentionDays after delivery.
 *
 * Events stored before the memory existed are remembered as any other when retention prunes them;
 * an accession whose events were pruned before it has no memory of them, and is walked as before.
 *
 * Retention of the memory: it goes once the accession has had no billing event for
 * `store.deadLetterRetentionDays` (180 days by default), the floor up to which the store already
 * holds billing events of an order not billed in full, counted on the store's own clock (the time
 * of the last event's id), as when it was written at intake. An index (`billing-age`, key
 * `<day>:<accession>`) lists memories by the day of their last remembered event, written with the
 * memory at prune time, so the store's retention pass (RetentionHold.expire, every minute) reads
 * only its head: no scan, at start-up or later. A memory at the head whose accession still has a
 * billing event stored since that day (stored after the pruning: the memory is not written at
 * intake) is moved to the day of that event instead of going. A memory past that floor is gone, and
 * billing is as before this release for that accession. At most MEMORY_MAX_EVENTS events are kept
 * per accession (the latest).
 */
import type { CanonicalEvent, EventType, InvoiceEligibleData, OrderCancelledData, OrderCreatedData, ResultValidatedData } from './types.ts';
import { EVENT_SCHEMA_VERSION } from './types.ts';
import { partitionKeys } from './keys.ts';
import { idTime } from '../ids.ts';
import type { GatewayStore, LocalDoc, StoredEvent } from '../store/types.ts';

export const BILLING_MEMORY = 'billing';
export const BILLING_MEMORY_AGE = 'billing-age';
/** The most events a memory keeps per accession (the latest). */
export const MEMORY_MAX_EVENTS = 256;
const DAY_MS = 86_400_000;
/** Memories expired per retention call (each: two deletions). */
const EXPIRE_BATCH = 500;

type BillingType = 'order.created' | 'order.cancelled' | 'result.validated' | 'invoice.eligible';
const TYPES: readonly string[] = ['order.created', 'order.cancelled', 'result.validated', 'invoice.eligible'];

/** One billing event as billing reads it. */
export interface RememberedEvent {
  id: string;
  type: BillingType;
  occurredAt: string;
  /** The inbound message it came in (store id). */
  message: string;
  /** The link it came from (billingState tells another LIS's order by it); absent in older memories. */
  endpoint?: string;
  /** The fields of its data billing reads. */
  data: Record<string, unknown>;
}

export interface BillingMemory {
  v: 1;
  /** Day (epoch days, on the store's clock) of the last change: retention counts from it. */
  day: number;
  events: RememberedEvent[];
}

/** The fields of an event's data that billing reads (billingState, the eligibility's data). */
function compactData(e: CanonicalEvent): Record<string, unknown> {
  const times = (d: { timeWritten?: string; timeZone?: string }): Record<string, unknown> => ({
    ...(d.timeWritten !== undefined ? { timeWritten: d.timeWritten } : {}),
    ...(d.timeZone !== undefined ? { timeZone: d.timeZone } : {}),
  });
  switch (e.type) {
    case 'order.created': {
      const d = e.data as OrderCreatedData;
      return { tests: d.tests, orderingClientRef: d.orderingClientRef, ...(d.orderedAt !== undefined ? { orderedAt: d.orderedAt } : {}), ...times(d) };
    }
    case 'order.cancelled': {
      const d = e.data as OrderCancelledData;
      return { tests: d.tests.map((t) => ({ code: t.code })), ...times(d) };
    }
    case 'result.validated': {
      const d = e.data as ResultValidatedData;
      return { testCode: d.testCode, ...(d.value !== undefined ? { value: d.value } : {}), ...(d.timeFrom !== undefined ? { timeFrom: d.timeFrom } : {}), ...times(d) };
    }
    default:
      return { tests: (e.data as InvoiceEligibleData).tests.map((t) => ({ code: t.code })) };
  }
}

export function isBillingType(type: string): type is BillingType {
  return TYPES.includes(type);
}

function remembered(e: CanonicalEvent): RememberedEvent {
  return { id: e.id, type: e.type as BillingType, occurredAt: e.occurredAt, message: e.source.messageId, ...(e.source.endpoint ? { endpoint: e.source.endpoint } : {}), data: compactData(e) };
}

const dayKey = (day: number, accession: string): string => `${String(day).padStart(6, '0')}:${accession}`;

/** The documents writing `memory` of `accession`: the memory and its age entry (the old one deleted). */
function memoryDocs(accession: string, before: BillingMemory | undefined, memory: BillingMemory): LocalDoc[] {
  const docs: LocalDoc[] = [{ namespace: BILLING_MEMORY, key: accession, value: memory }];
  if (before?.day !== memory.day) {
    docs.push({ namespace: BILLING_MEMORY_AGE, key: dayKey(memory.day, accession), value: '' });
    if (before) docs.push({ namespace: BILLING_MEMORY_AGE, key: dayKey(before.day, accession), value: '', delete: true });
  }
  return docs;
}

const byId = (a: { id: string }, b: { id: string }): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * The documents that add the accession's finished billing events still stored to its memory
 * (RetentionHold.remember): called by retention before it deletes the first of them in a pass,
 * and written in the same batch as the deletions. The memory (as stored), its age entry moved to
 * the day of its last event's id when that changed; none when every such event is remembered
 * already. The finished events not pruned in this pass (younger, or kept) are remembered too: a
 * copy of a stored event is never walked.
 */
export async function rememberPruned(accession: string, store: Pick<GatewayStore, 'eventsByCorrelation' | 'getDoc'>): Promise<LocalDoc[]> {
  const stored = await store.eventsByCorrelation(accession, [...TYPES] as EventType[]);
  const before = await readMemory(store.getDoc.bind(store), accession);
  const known = new Set(before?.events.map((r) => r.id));
  const added = stored
    .filter((s) => (s.state === 'delivered' || s.state === 'discarded') && s.bodyError === undefined && isBillingType(s.event.type) && !known.has(s.event.id))
    .map((s) => remembered(s.event));
  if (added.length === 0) return [];
  const events = [...(before?.events ?? []), ...added].sort(byId).slice(-MEMORY_MAX_EVENTS);
  const day = Math.max(before?.day ?? 0, Math.floor(idTime(events.at(-1)!.id) / DAY_MS));
  return memoryDocs(accession, before, { v: 1, day, events });
}

/** The accession's memory; undefined without one (or without a store that keeps documents). */
export async function readMemory(getDoc: GatewayStore['getDoc'] | undefined, accession: string): Promise<BillingMemory | undefined> {
  if (!getDoc) return undefined;
  const m = await getDoc<BillingMemory>(BILLING_MEMORY, accession);
  return m && m.v === 1 && Array.isArray(m.events) ? m : undefined;
}

/** A remembered event as a stored one (delivered: retention prunes finished events only). */
function asStored(r: RememberedEvent, accession: string): StoredEvent {
  const event = {
    id: r.id,
    schemaVersion: EVENT_SCHEMA_VERSION,
    type: r.type,
    occurredAt: r.occurredAt,
    receivedAt: r.occurredAt,
    idempotencyKey: '',
    correlationId: accession,
    partitionKey: r.type === 'invoice.eligible' ? partitionKeys.invoice(accession) : partitionKeys.order(accession),
    source: { kind: 'hl7', endpoint: r.endpoint ?? '', messageId: r.message },
    data: { accession, ...r.data },
  } as unknown as CanonicalEvent;
  return { event, state: 'delivered', attempts: 0, dueAt: 0, ambiguous: false };
}

/**
 * The accession's billing history: `stored` plus the remembered events no longer stored (of
 * `types` when given), in stored (id) order. A walk over it sees what it saw before retention
 * pruned any of them.
 */
export function withMemory(stored: readonly StoredEvent[], memory: BillingMemory | undefined, accession: string, types?: readonly EventType[]): StoredEvent[] {
  const all = [...stored];
  if (memory) {
    const ids = new Set(stored.map((s) => s.event.id));
    for (const r of memory.events) if (!ids.has(r.id) && (!types || types.includes(r.type))) all.push(asStored(r, accession));
  }
  return all.sort((a, b) => (a.event.id < b.event.id ? -1 : a.event.id > b.event.id ? 1 : 0));
}

/** Whether `memory` remembers an event of `type` no longer stored among `stored`. */
export function remembersPruned(stored: readonly StoredEvent[], memory: BillingMemory | undefined, type: EventType): boolean {
  if (!memory) return false;
  const ids = new Set(stored.map((s) => s.event.id));
  return memory.events.some((r) => r.type === type && !ids.has(r.id));
}

/** What a reader of billing history needs: the store's events by correlation and its documents. */
export interface HistorySource {
  events?(correlationId: string, types?: EventType[]): Promise<StoredEvent[]>;
  doc?<T>(namespace: string, key: string): Promise<T | undefined>;
}

/**
 * The accession's billing events (of `types`) as billing walks them: stored, with the remembered
 * ones retention pruned (withMemory). For the relay rules (ctx.events, ctx.doc).
 */
export async function billingHistory(source: HistorySource, accession: string, types: readonly EventType[]): Promise<StoredEvent[]> {
  if (!source.events) return [];
  const doc = source.doc?.bind(source);
  // The events first, the memory after them: a pruning between the two reads is in the memory.
  const stored = await source.events(accession, [...types]);
  return withMemory(stored, await readMemory(doc, accession), accession, types);
}

/**
 * Retention of the memories (RetentionHold.expire): those whose accession has had no billing event
 * since before `before` go, with their age entry, oldest first, at most EXPIRE_BATCH per call. A
 * memory whose accession has a billing event stored since (the memory is written when retention
 * prunes, not at intake) moves to the day of its last one instead. Called under the store's queue
 * lock, as the prune pass that writes the memories: nothing changes a memory between this read and
 * its write.
 */
export async function expireMemories(
  before: number,
  store: Pick<GatewayStore, 'listDocs' | 'getDoc' | 'putDoc' | 'deleteDoc' | 'eventsByCorrelation'>,
): Promise<number> {
  const lastDay = Math.floor(before / DAY_MS); // a memory of an earlier day is past the floor
  const rows = await store.listDocs<string>(BILLING_MEMORY_AGE, { limit: EXPIRE_BATCH });
  const due: Array<{ key: string; day: number; accession: string }> = [];
  for (const { key } of rows) {
    const day = Number.parseInt(key.slice(0, 6), 10);
    if (!(day < lastDay)) break;
    due.push({ key, day, accession: key.slice(7) });
  }
  if (due.length === 0) return 0;
  const memories = await Promise.all(due.map((d) => readMemory(store.getDoc.bind(store), d.accession)));
  // The day of each accession's last billing event still stored (usually none: all pruned).
  const storedDays = await Promise.all(
    due.map(async (d, i) => {
      if (memories[i]?.day !== d.day) return undefined;
      const stored = await store.eventsByCorrelation(d.accession, [...TYPES] as EventType[]);
      return stored.length === 0 ? undefined : Math.floor(idTime(stored.reduce((a, b) => (a.event.id > b.event.id ? a : b)).event.id) / DAY_MS);
    }),
  );
  // Queued in one turn: the store writes them in one batch.
  const writes: Array<Promise<void>> = [];
  due.forEach((d, i) => {
    const memory = memories[i];
    const storedDay = storedDays[i];
    if (memory?.day === d.day && storedDay !== undefined && storedDay >= lastDay) {
      // Still billing since: counted from its last event, as a memory written at intake was.
      for (const doc of memoryDocs(d.accession, memory, { ...memory, day: storedDay })) {
        writes.push(doc.delete ? store.deleteDoc(doc.namespace, doc.key) : store.putDoc(doc.namespace, doc.key, doc.value));
      }
      return;
    }
    if (memory?.day === d.day) writes.push(store.deleteDoc(BILLING_MEMORY, d.accession));
    writes.push(store.deleteDoc(BILLING_MEMORY_AGE, d.key));
  });
  await Promise.all(writes);
  // Index entries count too (a stale one is work done): "prune until 0" ends once none is left
  // (a memory moved is at a day not yet due).
  return due.length;
}
