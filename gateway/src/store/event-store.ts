/**
 * The durable store: inbound messages (exact bytes), their acknowledgements and the canonical
 * events derived from them, in LevelDB. See README.md in this folder for the key layout, the
 * state machine of an event and the durability argument.
 */
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { mkdir, readFile, statfs, unlink } from 'node:fs/promises';
import { Level } from 'level';
import type { CanonicalEvent, DraftEvent, EventType } from '../events/types.ts';
import type { DeriverStore, EventDeriver } from '../events/invoice-eligibility.ts';
import { EVENT_SCHEMA_VERSION } from '../events/types.ts';
import { GatewayError, describeError, isGatewayError } from '../errors.ts';
import { IdGenerator, idTime } from '../ids.ts';
import { GroupCommitter, type BatchOp } from './group-commit.ts';
import { decodeMessage, decodeMessageRecord, encodeMessage, messagePayload, payloadBytes, type Payload } from './message-record.ts';
import { MessageLog, RECORD_HEADER_BYTES, decodePointer, encodePointer, type LogPointer, type LogPosition } from './message-log.ts';
import { batchRecordPayload, decodeBatchRecord, decodePosition, encodePosition, isBatchRecord, type EncodedOp } from './batch-record.ts';
import { KeyFilter } from './key-filter.ts';
import { ShardedMap } from './sharded-map.ts';
import { SteadyWallClock } from '../wall-clock.ts';
import type {
  CommitResult,
  EventPage,
  EventQuery,
  EventState,
  GatewayStore,
  InboundMessage,
  IntakeCounters,
  Lease,
  LeaseOptions,
  MessagePage,
  MessageQuery,
  Outcome,
  QueueStats,
  OperatorGuard,
  StoredEvent,
  StoredMessage,
  LocalDoc,
  RetentionHold,
  SettleHold,
} from './types.ts';
import { AMBIGUOUS_SETTLE_MS, CRASHED_DELIVERY_LIMIT } from './types.ts';

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  multiplier: number;
  /** 0..1: the delay is multiplied by a random factor in [1 - jitter, 1 + jitter]. */
  jitter: number;
}

export interface RetentionPolicy {
  retentionDays: number;
  maxDeliveredEvents: number;
  deadLetterRetentionDays: number;
}

export interface EventStoreOptions {
  dataDir: string;
  /**
   * Delay before an event becomes due (sync modes: micro-batch windows, scheduled batches). `now`,
   * when given, is the instant to count the window from: the store's due clock, given only while
   * it is ahead of the system clock (after a step back, see #enqueueEvent); otherwise the
   * function reads its own clock.
   */
  dueDelayMs?: (event: CanonicalEvent, now?: number) => number;
  backoff?: Partial<BackoffPolicy>;
  retention?: Partial<RetentionPolicy>;
  /** Refuse commits when the data dir has less free space than this (bytes). */
  minFreeBytes?: number;
  /** How often free space and a failed store are re-checked (ms). */
  healthCheckIntervalMs?: number;
  /** How often retention runs (ms); 0 disables the timer (call `prune()` yourself). */
  pruneIntervalMs?: number;
  /** Observer of health changes (the composition root forwards it to telemetry). */
  onHealth?: (health: StoreHealth, reason?: string) => void;
  /**
   * Events the gateway derives from what it stores (e.g. invoice.eligible), added to the same
   * atomic batch. Commits touching the same derivation keys are serialised.
   */
  deriver?: EventDeriver;
  /**
   * Finished events retention keeps past the age while their correlation still needs them, up to
   * the dead-letter floor (the gateway: the billing events of an accession not billed in full).
   */
  retentionHold?: RetentionHold;
  /** Observer of events once they are durable and readable (e.g. order download to analyzers). Must not throw. */
  onCommitted?: (events: CanonicalEvent[]) => void;
  /**
   * LevelDB's memtable size (bytes; default 32 MiB). Tests make it small so that LevelDB flushes
   * it to a table file after a few hundred messages.
   */
  levelWriteBufferBytes?: number;
  /**
   * How long a write of the store may be on its way to the disk before writeStalled() reports it
   * (ms; default WRITE_STALL_MS). Tests make it short.
   */
  writeStallMs?: number;
  /** Size at which the message log starts a new segment (bytes; default 64 MiB). */
  messageLogSegmentBytes?: number;
  /**
   * Batches with fewer new messages keep them inline in LevelDB (default 1: always the log). Above
   * 1 it writes the earlier inline form, which readers still take (tests use it for that).
   */
  messageLogMinBatch?: number;
  /**
   * Answer a logged batch's commits at its commit point, the message-log write (default true);
   * false waits for LevelDB's write as well (the benchmark's comparison).
   */
  answerAtCommitPoint?: boolean;
  /**
   * Leases found open at start-up (the gateway stopped mid-delivery) are due again this long after
   * they were taken (ms; default AMBIGUOUS_SETTLE_MS): a request the stopped gateway had sent may
   * still be running in Odoo, and a look-up before it lands would find nothing and resend.
   */
  ambiguousSettleMs?: number;
  /**
   * Whether the store holds messages an earlier release took under the keys of its time, found
   * when the store is first opened by a release with the current message keys (`KEY_ERA`) and
   * kept in the store: a store it already held messages is. Tests set it to have a new store
   * read as an upgraded one.
   */
  earlierReleaseKeys?: boolean;
}

/**
 * The version of the message keys (the dedup key's and the event keys' fingerprint: hl7/msh.ts
 * messageFingerprints) and of the event keys' parts. For each era from FIRST_KEY_ERA to this one,
 * the store records when a release of that era first opened it, and whether it held messages then
 * (`mayHoldEarlierReleaseKeys(era)`: each change of the keys has its own window). 2: the HL7
 * fingerprint (the intake looks a message up under the earlier forms in era 2's window). 3:
 * consumption keys name what a row draws, not the row's index in the profile's table
 * (profiles/consumption-keys.ts looks the index form up in era 3's window); a store a release of 2
 * wrote holds index keys, and era 3's window opens on it while era 2's stays as it was.
 */
export const KEY_ERA = 3;
/** The first era the store records (releases before wrote no `keyEra`). */
export const FIRST_KEY_ERA = 2;

/** When a release of one era first opened the store, and whether the store held messages then. */
interface KeyEraOpening {
  since: number;
  earlier: boolean;
}

/**
 * The `meta` `keyEra` record: `eras` holds each era's opening (by era number). A release of era 2
 * wrote `{ version: 2, since, earlier }`, its own opening alone; it is read as era 2's.
 */
interface KeyEraRecord {
  version: number;
  since?: number;
  earlier?: boolean;
  eras?: Record<string, KeyEraOpening>;
}

export type StoreHealth = 'ok' | 'failed' | 'full' | 'closed';

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 2_000, maxMs: 300_000, multiplier: 2, jitter: 0.2 };
export const DEFAULT_RETENTION: RetentionPolicy = { retentionDays: 30, maxDeliveredEvents: 2_000_000, deadLetterRetentionDays: 180 };

const SEP = '\x00';

/**
 * The key filter's prefix for a correlation id that has `c` entries (not a LevelDB key: the
 * filter's own namespace, beside the sublevels' prefixes, which start with '!').
 */
const CORRELATION_IN_FILTER = 'corr-id:';

/**
 * A write on its way to the disk for this long (ms) is reported (writeStalled(), STORE_STALLED):
 * a synced batch takes milliseconds, a few hundred under the heaviest load measured; a LIS
 * waiting for its ACK gives up after some 30–60 s.
 */
const WRITE_STALL_MS = 15_000;
/**
 * A draft made an event: its id, the schema version and the message it came from. Built field by
 * field, not spread: a spread of drafts of many shapes (one per event type and normaliser) took
 * V8's generic copy on every committed event.
 */
function newEvent(draft: DraftEvent, id: string, messageId: string): CanonicalEvent {
  return {
    type: draft.type,
    occurredAt: draft.occurredAt,
    receivedAt: draft.receivedAt,
    idempotencyKey: draft.idempotencyKey,
    correlationId: draft.correlationId,
    partitionKey: draft.partitionKey,
    source: { ...draft.source, messageId },
    data: draft.data,
    id,
    schemaVersion: EVENT_SCHEMA_VERSION,
  } as CanonicalEvent;
}

/** Accessions whose events the store keeps in memory for their derivations (#recentCorrelations). */
const RECENT_CORRELATIONS = 8_192;

/** The correlation ids of `c` keys (correlationId SEP eventId), for the key filter's fill. */
function correlationIdsOf(keys: { nextv(size: number): Promise<string[]>; close(): Promise<void> }): { nextv(size: number): Promise<string[]>; close(): Promise<void> } {
  return {
    nextv: async (size) => (await keys.nextv(size)).map((k) => k.slice(0, Math.max(0, k.indexOf(SEP)))),
    close: () => keys.close(),
  };
}
/**
 * Batches with fewer new messages than this keep them inline in LevelDB (see #prepareBatch). 1:
 * every batch with a new message goes to the log, whose synced write is its commit point.
 */
const DEFAULT_LOG_MIN_BATCH = 1;
const AFTER = '\x01';
/**
 * How often retention sweeps the delivered events from the oldest again (ms): events it keeps (a
 * discard within its floor, the billing events of an order not billed in full) are looked at
 * again at most this often; the minute passes in between start after the last one kept. An order
 * billed in full loses its billing events within this time after it passed the age.
 */
const RETENTION_SWEEP_MS = 3_600_000;
/**
 * Retention's clock may run ahead of the newest instant the store held when it opened by this
 * much, plus the time the store has been open, plus as much again while it catches up the gap
 * the system clock showed at start-up (see #retentionNow): a box switched off for a
 * weekend with its clock right prunes at once what a day's gap allows and the rest within the
 * weekend's length, while a clock set years ahead (a wrong year typed, a hardware clock reading
 * 2099) deletes nothing before its time.
 */
const RETENTION_CLOCK_SLACK_MS = 86_400_000;
/**
 * Retention copies a message it keeps past the age (rejected within its floor, events still
 * queued or dead) out of an old segment only when the messages still pointing into that segment
 * take less than this share of it: then the copies free the segment, a few kept messages do not
 * pin 64 MiB for months. A segment mostly of kept messages (a backlog that does not drain: Odoo
 * down for weeks, the relay paused) has nothing to free; copied, it was copied again at every
 * sweep once the segment holding the copies had rolled over, up to 5,000 messages a minute for as
 * long as the outage lasted (test/unit/store-retention-backlog.test.ts). The cost: a segment at
 * most a quarter of which is still kept stays until its messages go.
 */
const KEPT_MOVE_MAX_LIVE_SHARE = 0.25;
/**
 * A damaged message's events are read from the event index right after its id (a message's
 * events take the ids that follow its own, in the same synchronous call): at most this many. A
 * message with more still stored stays, as if one of them waited (none has so many).
 */
const DAMAGED_EVENTS_READ = 1_000;
/**
 * How far past a damaged message's record retention looks for the batch record its intake wrote
 * (the records of the batch's other messages lie in between): its dedup key and search entries
 * are named there. A batch of more bytes than this is not searched (they stay).
 */
const INTAKE_RECORD_SEARCH_BYTES = 8 * 1024 * 1024;

/** A LevelDB I/O error (classic-level's LEVEL_IO_ERROR), also as the cause of another error. */
function isLevelIoError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if ((e as NodeJS.ErrnoException).code === 'LEVEL_IO_ERROR') return true;
  }
  return false;
}

/**
 * Why classic-level could not open a store: `locked` when LevelDB's exclusive lock refused it
 * (LEVEL_DATABASE_NOT_OPEN with the LEVEL_LOCKED reason in its cause: another process holds the
 * store), and LevelDB's words, the causes joined. EventStore.open and readStoreAtRest (inspect.ts)
 * tell these apart alike.
 */
export function levelOpenFailure(err: unknown): { locked: boolean; reason: string } {
  const causes: unknown[] = [];
  for (let e: unknown = err; e instanceof Error && causes.length < 5; e = e.cause) causes.push(e);
  return { locked: causes.some((e) => (e as NodeJS.ErrnoException).code === 'LEVEL_LOCKED'), reason: causes.map((e) => describeError(e)).join(' ← ') };
}
const DAY_MS = 86_400_000;

/** 12 hex digits of epoch ms: sorts lexicographically in time order. */
function timeKey(ms: number): string {
  return Math.max(0, Math.floor(ms)).toString(16).padStart(12, '0');
}

/** When a finished event was delivered or discarded (its key in the `o` index), epoch ms. */
function finishedAt(rec: Pick<StoredEvent, 'state' | 'deliveredAt' | 'audit'>): number | undefined {
  if (rec.state === 'delivered' && rec.deliveredAt !== undefined) return Date.parse(rec.deliveredAt);
  if (rec.state === 'discarded') {
    const discard = rec.audit?.findLast((a) => a.action === 'discard');
    if (discard) return Date.parse(discard.at);
  }
  return undefined;
}

interface Counts {
  pending: number;
  inflight: number;
  retrying: number;
  dead: number;
  delivered: number;
  discarded: number;
}

const emptyCounts = (): Counts => ({ pending: 0, inflight: 0, retrying: 0, dead: 0, delivered: 0, discarded: 0 });
/** `into` += `delta`, counter by counter. */
function addCounts(into: Counts, delta: Counts): void {
  for (const k of Object.keys(delta) as Array<keyof Counts>) into[k] += delta[k];
}
const emptyIntake = (): IntakeCounters => ({ received: 0, accepted: 0, rejected: 0, duplicates: 0 });

/** What the message sublevel holds besides the public fields. */
interface MessageRecord extends StoredMessage {
  dedupKey?: string;
  /**
   * The events derived from the message, as committed (they never change afterwards). Their
   * changing state is under `e`, which points back here (see "Event bodies" in README.md).
   */
  events?: CanonicalEvent[];
}

/**
 * An event's value under `e` when its body lives in its message's record: the state and `m`, the
 * message id. Values without `m` hold the whole event (events of no message, and the earlier
 * layout).
 */
type SlimEvent = Omit<StoredEvent, 'event'> & { m: string };

/** What became of a damaged record at its resend (#rewriteDamaged). */
type DamagedResend =
  | { kind: 'gone' }
  /** Written again by an earlier resend meanwhile: its stored ACK. */
  | { kind: 'readable'; ack?: Buffer }
  | { kind: 'rewritten' | 'kept'; detail: string };

/** Undelivered events not due yet stepped over per refresh of the oldest waiting age. */
const OLDEST_SCAN_LIMIT = 2_000;
/** Queue heads a lease reads side by side (one LevelDB iterator each). */
const QUEUE_HEAD_READS = 16;

/** A batch as stage 1 left it for stage 2 (see #prepareBatch). */
interface PreparedBatch {
  pairs: EncodedOp[];
  /** Live counts of the log segments the batch touches, once written. */
  counts: Array<[number, number]>;
  /** Its batch record is in the message log (the commit point). */
  logged: boolean;
  /** A segment's count reaches 0: LevelDB is synced before the segment is deleted. */
  emptied: boolean;
  /** A logged batch: where the log continues after its batch record. */
  end?: LogPosition;
}

/**
 * A logged batch's LevelDB write is synced at least this often (ms): start-up replays at most
 * about this much intake from the log after a power cut.
 */
const LEVEL_SYNC_EVERY_MS = 500;

/** Recently committed event bodies, by id: the relay leases most events soon after intake. */
const BODY_CACHE_SIZE = 8192;
/** Page ends of the delivered/discarded listing remembered, so that paging survives retention. */
const PAGE_END_MEMORY = 1024;
/**
 * Records a page of the HTTP listings reads at most when its filter is not in the index it walks
 * (messages of an endpoint without a search term, discarded events among delivered ones): the
 * page then ends with `next` where it stopped.
 */
const LISTING_READ_BUDGET = 5_000;

/** The value of a message put that goes to the message log; the store writes its pointer. */
interface LogEntry {
  /** The packed record: encoded by the message log into its write buffer (new messages), or bytes read back. */
  log: Buffer | Payload;
  duplicates: number;
  /** Set when an existing message moves to the active segment (retention). */
  fromSegment?: number;
}

const isLogEntry = (v: unknown): v is LogEntry => {
  const log = typeof v === 'object' && v !== null ? (v as Partial<LogEntry>).log : undefined;
  return Buffer.isBuffer(log) || (typeof log === 'object' && log !== null && typeof log.writeTo === 'function');
};

/** classic-level's implementation methods used for writing batches (see #writeBatch). */
interface NativeBatch {
  _put(key: string, value: string | Buffer): void;
  _del(key: string): void;
  _write(options: { sync: boolean }): Promise<void>;
}
interface NativeBatchSource {
  _chainedBatch(): NativeBatch;
  detachResource(resource: NativeBatch): void;
}

/** A message as read back: metadata, bytes, ACK, and where it lives in the message log. */
interface ReadMessage {
  record: MessageRecord;
  raw: Buffer;
  ack?: Buffer;
  pointer?: LogPointer;
  /** The packed bytes (when in the message log): moved as they are on relocation. */
  payload?: Buffer;
}

interface LeaseRecord {
  eventIds: string[];
  leasedAt: number;
}

// Sublevel value types differ (json / buffer / utf8); abstract-level's generics cannot express a
// heterogeneous map, so the handles are typed loosely here and every read is typed at the call site.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Sub = any;

export class EventStore implements GatewayStore {
  readonly dataDir: string;
  /** Batches the last start-up wrote again into LevelDB from the message log (diagnostics). */
  replayedBatches = 0;
  readonly #db: Level<string, unknown>;
  readonly #sub: Record<
    'msg' | 'raw' | 'ack' | 'dedup' | 'search' | 'evt' | 'idem' | 'corr' | 'queue' | 'due' | 'lease' | 'dead' | 'pending' | 'done' | 'pcount' | 'segs' | 'meta' | 'doc',
    Sub
  >;
  readonly #committer: GroupCommitter<PreparedBatch>;
  /** `meta!w`: where the log continues after the last logged batch LevelDB has (replay from there). */
  readonly #checkpointKey: string;
  /**
   * Root-database key prefixes of the sublevels read by point look-ups (and the key filter), and of
   * those retention looks for in a batch record (#intakeKeysIn).
   */
  readonly #prefix: { dedup: string; idem: string; pcount: string; msg: string; search: string; corr: string; doc: string };
  /** When LevelDB was last synced (performance.now()). */
  #lastLevelSync = 0;
  readonly #log: MessageLog;
  readonly #logMinBatch: number;
  readonly #ambiguousSettleMs: number;
  /** Messages pointing into each message-log segment (authoritative; mirrored under `j`). */
  readonly #liveSegments = new Map<number, number>();
  /** The same counts once every batch prepared so far is written (see #encode). */
  #projectedSegments = new Map<number, number>();
  /** The encoding of the last batch sealed (see #prepareBatch): the next one waits for it. */
  #encodeTurn: Promise<void> = Promise.resolve();
  /** Key prefix and value format of each sublevel, for encoding batches without abstract-level. */
  readonly #codecs: Map<Sub, { prefix: string; format: 'json' | 'buffer' | 'utf8' }>;
  readonly #ids = new IdGenerator();
  /** The message whose record holds each read or committed event's body (written back slim). */
  readonly #bodyIn = new WeakMap<StoredEvent, string>();
  readonly #bodies = new Map<string, CanonicalEvent>();
  readonly #bodyRing: Array<string | undefined> = new Array<string | undefined>(BODY_CACHE_SIZE);
  #bodyNext = 0;
  readonly #dueDelay: (event: CanonicalEvent, now?: number) => number;
  readonly #backoff: BackoffPolicy;
  readonly #retention: RetentionPolicy;
  readonly #earlierReleaseKeys: boolean | undefined;
  /** Per era, until when a message a release before it stored under its keys may be resent (mayHoldEarlierReleaseKeys). */
  readonly #earlierKeysUntil = new Map<number, number>();
  /** Per era, when a release of it first opened a store holding messages (earlierReleaseKeysBefore). */
  readonly #earlierKeysBefore = new Map<number, number>();
  readonly #minFreeBytes: number;
  readonly #onHealth: ((health: StoreHealth, reason?: string) => void) | undefined;
  readonly #writeStallMs: number;
  readonly #deriver: EventDeriver | undefined;
  readonly #retentionHold: RetentionHold | undefined;
  readonly #onCommitted: ((events: CanonicalEvent[]) => void) | undefined;
  /** Tails of the per-key chains that serialise derivations (see EventStoreOptions.deriver). */
  readonly #keyLocks = new Map<string, Promise<unknown>>();
  /**
   * Correlation ids with `c` entries in a batch LevelDB may not have applied yet (answered at its
   * commit point): how many such batches, and the events they queue for the id (see #deriverView).
   */
  readonly #unappliedCorrelations = new Map<string, { batches: number; events: CanonicalEvent[] }>();
  /**
   * Every event of an accession this process saw begin (no event of it stored before: the key
   * filter did not hold its id), for its derivations (#deriverView), the most recent
   * RECENT_CORRELATIONS accessions. An accession leaves it when retention deletes one of its
   * events (its billing memory may then hold what the events no longer do) and when a batch
   * queuing its events fails; a derivation of one not held reads LevelDB.
   */
  readonly #recentCorrelations = new Map<string, CanonicalEvent[]>();
  /**
   * The store as the deriver reads it. A derivation reads the event bodies, types and documents of
   * its correlation keys; the events of a key change only in commits of that key, which the key
   * lock serialises (#withKeys) and which keep their events in #unappliedCorrelations from the
   * moment they are queued until LevelDB has their batch (#markUnapplied). So a derivation reads
   * LevelDB without waiting for the batches in flight and adds the key's events still in flight,
   * taken before the read (an event applied after that is in them; one applied before, in
   * LevelDB). Before, every billing message's derivation waited until LevelDB had applied every
   * batch in flight (~0.5–1 ms), out of the batch being gathered: a LIS's result sent once its
   * order was acknowledged always waited for the order's LevelDB write. An event's state
   * (delivered, retrying) may be read older than LevelDB's, and an event in flight reads as
   * pending: the derivation uses no state.
   */
  readonly #deriverView: DeriverStore = {
    eventsByCorrelation: async (correlationId, types) => {
      const recent = this.#recentCorrelations.get(correlationId);
      if (recent) {
        // All of its events, from memory: no iterator, no read (the LIS's result after its order).
        const out: StoredEvent[] = [];
        for (const event of recent) if (!types || types.includes(event.type)) out.push({ event, state: 'pending', attempts: 0, dueAt: 0, ambiguous: false });
        return out;
      }
      const inFlight = this.#unappliedCorrelations.get(correlationId)?.events.slice() ?? [];
      const stored = await this.#eventsByCorrelation(correlationId, types, false);
      if (inFlight.length === 0) return stored;
      const seen = new Set(stored.map((s) => s.event.id));
      for (const event of inFlight) {
        if (seen.has(event.id) || (types && !types.includes(event.type))) continue;
        stored.push({ event, state: 'pending', attempts: 0, dueAt: 0, ambiguous: false });
      }
      return stored.sort((a, b) => (a.event.id < b.event.id ? -1 : a.event.id > b.event.id ? 1 : 0));
    },
    idempotencyKeyUsed: (key) => this.idempotencyKeyUsed(key),
    getDoc: async <T>(namespace: string, key: string): Promise<T | undefined> => {
      // Never written: answered without a read (the key filter holds every document's key; billing's
      // memory is written only by retention, so nearly every accession has none).
      if (!this.#keyFilter.mayContain(this.#prefix.doc + namespace + SEP + key)) return undefined;
      // Begun in this process and none of its events pruned since: no memory either. No commit
      // writes a deriver's document (retention does), so nothing here waits for LevelDB.
      if (this.#recentCorrelations.has(key)) return undefined;
      return (await this.#sub.doc.get(namespace + SEP + key)) as T | undefined;
    },
  };
  /** Per partition, the turn of the last commit called that has not queued its events yet (see commit()). */
  readonly #partitionTurns = new Map<string, Promise<void>>();

  #counts: Counts = emptyCounts();
  /** The queue counts as the last batch sealed carries them (see the committer's seal). */
  #sealedCounts: Counts = emptyCounts();
  #intake: IntakeCounters = emptyIntake();
  /** Per endpoint, the receive time of its last message (see lastMessageAt), and whether it changed since the last seal. */
  #lastAt: Record<string, string> = {};
  #lastAtChanged = false;
  /** The intake counters as the last sealed batch wrote them (or as loaded), for close(). */
  #sealedIntake: IntakeCounters = emptyIntake();
  /** When `meta!endpoints` was last written (performance.now()). */
  #lastAtWrittenAt = -Infinity;
  /** Cache of undelivered-event counts per partition (authoritative once loaded); sharded: it grows with the backlog (see sharded-map.ts). */
  readonly #pcount = new ShardedMap<number>();
  /** Dedup keys and idempotency keys whose commit is queued but not yet durable. */
  readonly #inflightDedup = new Map<string, Promise<CommitResult>>();
  readonly #inflightIdem = new Set<string>();
  /** Prefixed `d`, `k` and `n` keys that may exist: absent ones need no read (key-filter.ts). */
  readonly #keyFilter = new KeyFilter();
  /** Partitions currently leased. */
  readonly #leased = new Map<string, LeaseRecord>();
  /**
   * Partitions whose completion the store could not write, with the due time an ambiguous retry
   * among its outcomes asked for (a write whose answer was lost, which Odoo may still run): kept
   * when the health probe reopens the lease (#reopenLeases), which would otherwise make it due at
   * once and have it looked up before that write landed.
   */
  readonly #unrecordedHolds = new Map<string, number>();
  /**
   * The events start-up reopened from a stopped gateway's leases, with the due time each was given
   * (the settle time from that start, on the due clock) and its partition, also those a start
   * within it carried over (`meta!settleHold`): what settleHold() tells the status of. Read side
   * only: nothing is looked up here on the way of a message or a delivery.
   */
  readonly #settleHeld = new Map<string, { due: number; pk: string }>();
  /** Set by noteCrash: the deliveries under way when the gateway began to stop on its own error. */
  #crashNote: CrashNote | undefined;
  /** Serialises relay-side mutations (lease, complete, replay, discard, prune). */
  #queueLock: Promise<unknown> = Promise.resolve();
  #health: StoreHealth = 'ok';
  #healthReason: string | undefined;
  #injectedFault: Error | undefined;
  /** Test and drill hook: runs before each LevelDB write of a batch (see interceptLevelWrites). */
  #levelHook: ((batch: { logged: boolean }) => Promise<void> | void) | undefined;
  /**
   * Batches answered at their commit point whose LevelDB write has not succeeded yet, by where
   * the log continues after their batch record (`segment:offset`).
   */
  readonly #answeredUnapplied = new Set<string>();
  /**
   * A batch answered at its commit point could not be written to LevelDB: every write is refused
   * until the health probe has caught LevelDB up from the log (see "Commit point" in README.md).
   */
  #lateFailure: Error | undefined;
  /**
   * LevelDB must be opened again before anything is written to it (see #reopenLevel): a LevelDB
   * write failed (its log may end in a torn record, and LevelDB goes on appending after it), or the
   * health probe met a LevelDB I/O error. Every write is refused with it until the probe has
   * reopened LevelDB; while the reopening runs, with #levelReopening.
   */
  #levelNeedsReopen: Error | undefined;
  #checking: Promise<void> | undefined;
  #levelReopening: Error | undefined;
  /**
   * The clock due times are compared with (lease, the oldest waiting event, its age) and retry due
   * times are counted from: the wall clock, except that it never goes backwards (wall-clock.ts).
   * Due times are persisted wall-clock instants; after NTP stepped the clock back two hours, those
   * written before the step lay in the future and nothing was leased for two hours, while the
   * queue's age read 0 (test/e2e/outage-night-audit.test.ts). It starts at the newest instant
   * stored (#recover), and delivery and discard times are read from it too; commit times, ids and
   * a new event's due time keep `Date.now()`, retention has its own clock (#retentionNow).
   */
  readonly #dueClock = new SteadyWallClock();
  /**
   * The newest instant the store held when it opened (epoch ms: the newest message and event ids,
   * the newest completion, open leases), undefined for an empty store. The due clock starts there
   * (a box that booted with its clock behind the data still sends the backlog), and retention's
   * clock runs ahead of it only by RETENTION_CLOCK_SLACK_MS plus the time open, plus as much again
   * as the system clock was past it at start-up (see #retentionNow).
   */
  #newestAtOpen: number | undefined;
  /**
   * Where retention's clock starts (#retentionNow), `performance.now()` then, and how far the
   * system clock was past `at` then (the time a box was switched off, or a clock wrong ahead).
   */
  #retentionBase = { at: 0, mono: 0, gap: 0 };
  /** The event waiting longest for Odoo (due, not dead), and since when it waits (see stats()). */
  #oldestPendingId: string | undefined;
  #oldestWaitingSince: number | undefined;
  /** Counts the look-ups of the oldest waiting event begun (#refreshOldest): the last one begun decides. */
  #oldestGeneration = 0;
  /** Where the last retention pass stopped scanning messages, and the last kept event it stepped over. */
  #pruneCursor: string | undefined;
  #pruneEventCursor: string | undefined;
  /**
   * The `now` of the pass that began the current sweep of the done index from its head, and how
   * many kept discards the sweep has stepped over so far (behind #pruneEventCursor; they do not
   * count against the size cap). See prune() and RETENTION_SWEEP_MS.
   */
  #pruneSweepStartedAt: number | undefined;
  #pruneDiscardsBehind = 0;
  /**
   * Correlations whose events of the hold's types retention keeps because the hold's `remember`
   * failed (billing's memory could not be written), with the error: they stay until it succeeds,
   * and retentionHeld() says so (GET /api/status RETENTION_HELD). Asked again at each sweep.
   */
  readonly #unremembered = new Map<string, string>();
  #timers: NodeJS.Timeout[] = [];
  /** The place (`o` key) of the last event of recent delivered/discarded pages, by id (#finishedPlace). */
  readonly #pageEnds = new Map<string, string>();
  #closing: Promise<void> | undefined;

  private constructor(db: Level<string, unknown>, log: MessageLog, options: EventStoreOptions) {
    this.dataDir = options.dataDir;
    this.#db = db;
    this.#log = log;
    this.#logMinBatch = options.messageLogMinBatch ?? DEFAULT_LOG_MIN_BATCH;
    this.#ambiguousSettleMs = options.ambiguousSettleMs ?? AMBIGUOUS_SETTLE_MS;
    const json = (name: string): Sub => db.sublevel(name, { keyEncoding: 'utf8', valueEncoding: 'json' });
    const buf = (name: string): Sub => db.sublevel(name, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    const str = (name: string): Sub => db.sublevel(name, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    this.#sub = {
      msg: buf('m'),
      raw: buf('r'),
      ack: buf('a'),
      dedup: str('d'),
      search: str('s'),
      evt: json('e'),
      idem: str('k'),
      corr: str('c'),
      queue: str('q'),
      due: str('u'),
      lease: json('l'),
      dead: str('x'),
      pending: str('p'),
      done: str('o'),
      pcount: json('n'),
      segs: json('j'),
      meta: json('meta'),
      doc: json('doc'),
    };
    this.#dueDelay = options.dueDelayMs ?? (() => 0);
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.#retention = { ...DEFAULT_RETENTION, ...options.retention };
    this.#earlierReleaseKeys = options.earlierReleaseKeys;
    this.#minFreeBytes = options.minFreeBytes ?? 64 * 1024 * 1024;
    this.#onHealth = options.onHealth;
    this.#writeStallMs = options.writeStallMs ?? WRITE_STALL_MS;
    this.#deriver = options.deriver;
    this.#retentionHold = options.retentionHold;
    this.#onCommitted = options.onCommitted;
    this.#codecs = new Map(
      Object.entries(this.#sub).map(([name, sub]) => {
        const format = name === 'msg' || name === 'raw' || name === 'ack' ? 'buffer' : ['evt', 'lease', 'pcount', 'segs', 'meta', 'doc'].includes(name) ? 'json' : 'utf8';
        return [sub, { prefix: sub.prefixKey('', 'utf8') as string, format }] as const;
      }),
    );
    const prefixOf = (sub: Sub): string => (this.#codecs.get(sub) as { prefix: string }).prefix;
    this.#checkpointKey = prefixOf(this.#sub.meta) + 'w';
    this.#prefix = {
      dedup: prefixOf(this.#sub.dedup),
      idem: prefixOf(this.#sub.idem),
      pcount: prefixOf(this.#sub.pcount),
      msg: prefixOf(this.#sub.msg),
      search: prefixOf(this.#sub.search),
      corr: prefixOf(this.#sub.corr),
      doc: prefixOf(this.#sub.doc),
    };
    this.#committer = new GroupCommitter<PreparedBatch>({
      prepare: (ops) => this.#prepareBatch(ops),
      batch: (_ops, options, prepared) => this.#writeBatch(options, prepared),
      // A logged batch is durable once its message-log write returned: its senders are answered
      // then, and LevelDB is written behind (reads wait for it).
      durable: (prepared) => prepared.logged && options.answerAtCommitPoint !== false,
    }, {
      // Every batch carries the counter snapshot taken when it is sealed, so counters on disk
      // always match the records on disk. A refused batch takes its own share back (the queue
      // counts it changed since the batch before it), so a later batch, the store's probe
      // among them, never writes counts of events that were never stored.
      seal: () => {
        const counts = { ...this.#counts };
        const before = this.#sealedCounts;
        this.#sealedCounts = counts;
        const intake = { ...this.#intake };
        this.#sealedIntake = intake;
        const ops: BatchOp[] = [
          { type: 'put', sublevel: this.#sub.meta, key: 'counts', value: counts },
          { type: 'put', sublevel: this.#sub.meta, key: 'intake', value: intake },
        ];
        // The links' last receive times change with every message: written at most once a second
        // (not one more LevelDB key per batch under load); close() writes what is left.
        const now = performance.now();
        if (this.#lastAtChanged && now - this.#lastAtWrittenAt >= 1_000) {
          this.#lastAtChanged = false;
          this.#lastAtWrittenAt = now;
          ops.push({ type: 'put', sublevel: this.#sub.meta, key: 'endpoints', value: { ...this.#lastAt } });
        }
        return {
          ops,
          undo: () => {
            for (const k of Object.keys(counts) as Array<keyof Counts>) this.#counts[k] -= counts[k] - before[k];
            // Partition counts of refused events: read again from LevelDB when next needed.
            this.#pcount.clear();
          },
        };
      },
      beforeWrite: () => this.#injectedFault ?? this.#lateFailure ?? this.#levelNeedsReopen ?? this.#levelReopening,
      onEarly: (prepared) => {
        if (prepared.end) this.#answeredUnapplied.add(encodePosition(prepared.end));
      },
      onLateFailure: (err) => {
        if (this.#health === 'closed') return;
        const reason = `an acknowledged batch could not be written to LevelDB: ${describeError(err)}`;
        this.#lateFailure ??= new GatewayError('GW_STORE_UNAVAILABLE', reason, { cause: err });
        this.#setHealth('failed', reason);
      },
    });
  }

  /**
   * Stage 1 of a batch, in order: its LevelDB operations are encoded (keys prefixed, values
   * serialised) and, when the batch has messages for the log, written to the message log with
   * them: the message records, then one batch record holding every encoded operation, in one
   * synced write. That write is the batch's commit point: LevelDB is then written without a sync
   * of its own, and a LevelDB that lost its last writes (power cut) is caught up from the log at
   * start-up (see "Commit point" in README.md). Runs while the previous batch's LevelDB write is
   * in flight.
   */
  async #prepareBatch(ops: BatchOp[]): Promise<PreparedBatch> {
    // Batches are encoded in the order they are sealed, each after the one before (the counts of
    // log segments and the checkpoint build on it), even while that one's log write is in flight.
    // The log orders its own reservations too; this turn also orders a batch encoded without the
    // log (inline: no new message) after a logged one still waiting for its place.
    const turn = this.#encodeTurn;
    let encoded!: () => void;
    this.#encodeTurn = new Promise<void>((resolve) => (encoded = resolve));
    try {
      await turn;
      return await this.#prepareInTurn(ops, encoded);
    } finally {
      encoded();
    }
  }

  async #prepareInTurn(ops: BatchOp[], encoded: () => void): Promise<PreparedBatch> {
    const payloads: Array<Buffer | Payload> = [];
    let movable = true;
    for (const op of ops) {
      if (op.type !== 'put' || op.sublevel !== this.#sub.msg || !isLogEntry(op.value)) continue;
      payloads.push(op.value.log);
      if (op.value.duplicates !== 0 || op.value.fromSegment !== undefined) movable = false;
    }
    // A batch of fewer than messageLogMinBatch new messages (default 1: none) keeps its records
    // inline in LevelDB, answered after LevelDB's own synced write. By default a lone message takes
    // the log too: its O_DSYNC write over zero-filled blocks is quicker than LevelDB's fsync (which
    // also commits the growing file's size), and a second one may be written beside it.
    if (payloads.length === 0 || (movable && payloads.length < this.#logMinBatch)) return this.#encode(ops, 'inline', false);
    let prepared: PreparedBatch | undefined;
    await this.#log.append(payloads, (pointers, at) => {
      prepared = this.#encode(ops, pointers, true);
      // The checkpoint (the last operation) names where the log continues after this record. Its
      // value has a fixed width, so the record's size is known with the stand-in value, and the
      // record is encoded (by the log, right after this returns) with the real one.
      const record = batchRecordPayload(prepared.pairs);
      const end = { segment: at.segment, offset: at.offset + RECORD_HEADER_BYTES + record.size };
      prepared.end = end;
      (prepared.pairs[prepared.pairs.length - 1] as EncodedOp)[1] = checkpointValue(end);
      encoded();
      return record;
    });
    return prepared as PreparedBatch;
  }

  /**
   * The batch's operations as LevelDB will store them, with the live count of each log segment
   * touched and, for a logged batch, the checkpoint `meta!w`: where the log continues after its
   * batch record (start-up replays from there).
   */
  #encode(ops: BatchOp[], pointers: LogPointer[] | 'inline', logged: boolean): PreparedBatch {
    const pairs: EncodedOp[] = [];
    const delta = new Map<number, number>();
    const bump = (segment: number, by: number): void => void delta.set(segment, (delta.get(segment) ?? 0) + by);
    let next = 0;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i] as BatchOp;
      const codec = this.#codecs.get(op.sublevel);
      if (!codec) throw new GatewayError('GW_STORE_STATE', 'a batch operation without a known sublevel');
      const key = codec.prefix + op.key;
      if (op.type === 'del') {
        pairs.push([key, null]);
        if (op.logSegment !== undefined) bump(op.logSegment, -1);
      } else if (op.sublevel === this.#sub.msg && isLogEntry(op.value) && pointers === 'inline') {
        // The packed record itself (its duplicate count is 0: only new messages go inline).
        pairs.push([key, payloadBytes(op.value.log)]);
      } else if (op.sublevel === this.#sub.msg && isLogEntry(op.value)) {
        const entry = op.value;
        const pointer = pointers === 'inline' ? undefined : pointers[next++];
        if (!pointer) throw new GatewayError('GW_STORE_STATE', 'a message without its place in the message log');
        pairs.push([key, encodePointer(pointer, entry.duplicates)]);
        bump(pointer.segment, 1);
        if (entry.fromSegment !== undefined) bump(entry.fromSegment, -1);
      } else if (op.sublevel === this.#sub.evt && this.#bodyIn.has(op.value as StoredEvent)) {
        pairs.push([key, slimEvent(op.value as StoredEvent, this.#bodyIn.get(op.value as StoredEvent) as string)]);
      } else {
        pairs.push([key, codec.format === 'json' ? JSON.stringify(op.value) : codec.format === 'buffer' ? (op.value as Buffer) : String(op.value)]);
      }
    }
    // Counts as they will be once every batch prepared so far is written (batches are written in
    // the order they are prepared).
    const counts: Array<[number, number]> = [];
    let emptied = false;
    const segsPrefix = (this.#codecs.get(this.#sub.segs) as { prefix: string }).prefix;
    for (const [segment, by] of delta) {
      if (by === 0) continue;
      const count = Math.max(0, (this.#projectedSegments.get(segment) ?? 0) + by);
      counts.push([segment, count]);
      if (count > 0) this.#projectedSegments.set(segment, count);
      else this.#projectedSegments.delete(segment);
      if (count > 0) pairs.push([segsPrefix + segmentKey(segment), String(count)]);
      else {
        pairs.push([segsPrefix + segmentKey(segment), null]);
        emptied = true;
      }
    }
    // Filled in by #prepareBatch once the record's place is known (same width as the final value).
    if (logged) pairs.push([this.#checkpointKey, checkpointValue({ segment: 0, offset: 0 })]);
    return { pairs, counts, logged, emptied };
  }

  /**
   * Stage 2: the batch into LevelDB, in order. A batch that is not in the message log is synced
   * (LevelDB fsyncs its write-ahead log before the write resolves); a logged one is synced only
   * now and then (bounding what start-up replays from the log) and before a log segment goes.
   */
  async #writeBatch(options: { sync: boolean }, prepared: PreparedBatch | undefined): Promise<void> {
    if (!prepared) return;
    if (this.#db.status !== 'open') throw new GatewayError('GW_STORE_UNAVAILABLE', `the database is ${this.#db.status}`);
    if (this.#levelHook) await this.#levelHook({ logged: prepared.logged });
    const now = performance.now();
    const sync = options.sync && (!prepared.logged || prepared.emptied || now - this.#lastLevelSync >= LEVEL_SYNC_EVERY_MS);
    // Built through classic-level's implementation methods (the abstract-level API for
    // implementations): abstract-level's public batch() clones each operation and resolves its
    // sublevel's encodings one by one, and the array form makes the native side read every
    // operation's properties back; for the dozen small keys of a message both cost more
    // main-thread time than LevelDB's own work.
    const db = this.#db as unknown as NativeBatchSource;
    const batch = db._chainedBatch();
    try {
      for (const [key, value] of prepared.pairs) {
        if (value === null) batch._del(key);
        else batch._put(key, value);
      }
      try {
        await batch._write({ sync });
      } catch (e) {
        this.#levelWriteFailed(e);
        throw e;
      }
    } finally {
      db.detachResource(batch);
    }
    if (sync) this.#lastLevelSync = now;
    if (prepared.end && this.#answeredUnapplied.size > 0) this.#answeredUnapplied.delete(encodePosition(prepared.end));
    for (const [segment, count] of prepared.counts) {
      if (count > 0) this.#liveSegments.set(segment, count);
      else {
        this.#liveSegments.delete(segment);
        // Nothing points into it any more, and LevelDB is synced past it: the file goes (the
        // active segment stays). Awaited (rare: a segment empties once per 64 MiB pruned), so
        // that whoever waits for this batch, retention among them, finds the file gone.
        if (segment !== this.#log.activeSegment) await this.#log.remove(segment).catch(() => undefined);
      }
    }
  }

  /** Open (creating if needed) the store under `dataDir/store` and recover open leases. */
  static async open(options: EventStoreOptions): Promise<EventStore> {
    const location = `${options.dataDir.replace(/\/$/, '')}/store`;
    try {
      await mkdir(location, { recursive: true });
    } catch (err) {
      throw new GatewayError('GW_STORE_UNAVAILABLE', `gateway.dataDir: cannot create the store directory ${location}: ${(err as Error).message}`, { cause: err });
    }
    const db = new Level<string, unknown>(location, {
      keyEncoding: 'utf8',
      valueEncoding: 'json',
      // A 32 MB memtable (LevelDB's default is 4 MB) flushes an eighth as often: fewer level-0
      // files, fewer compactions competing with intake for the CPU and fewer write stalls —
      // measured at about twice the durable commit rate here. The cost is up to two memtables in
      // memory and a longer log replay after a crash (well under the 2 s start-up budget).
      writeBufferSize: options.levelWriteBufferBytes ?? 32 * 1024 * 1024,
    });
    try {
      await db.open();
    } catch (err) {
      const failure = levelOpenFailure(err);
      if (failure.locked) {
        throw new GatewayError('GW_STORE_UNAVAILABLE', `gateway.dataDir: the store at ${location} is locked by another process (another gateway running on this gateway.dataDir?)`, { cause: err });
      }
      throw new GatewayError('GW_STORE_UNAVAILABLE', `gateway.dataDir: cannot open the store at ${location}: ${failure.reason}`, { cause: err });
    }
    let log: MessageLog;
    try {
      log = await MessageLog.open(`${location}/messages`, options.messageLogSegmentBytes !== undefined ? { segmentBytes: options.messageLogSegmentBytes } : {});
    } catch (err) {
      await db.close().catch(() => undefined);
      throw new GatewayError('GW_STORE_UNAVAILABLE', `cannot open the message log in ${location}/messages: ${describeError(err)}`, { cause: err });
    }
    const store = new EventStore(db, log, options);
    await store.#recover();
    await store.#checkDisk();
    const healthEvery = options.healthCheckIntervalMs ?? 2_000;
    store.#timers.push(setInterval(() => void store.#checkHealth(), healthEvery).unref());
    store.#timers.push(setInterval(() => void store.#refreshOldest(), 1_000).unref());
    const pruneEvery = options.pruneIntervalMs ?? 60_000;
    if (pruneEvery > 0) store.#timers.push(setInterval(() => void store.prune().catch(() => undefined), pruneEvery).unref());
    // Not awaited: start-up must not grow with the backlog. Until the scan has seen every key,
    // look-ups read LevelDB as they would without the filter.
    const p = store.#prefix;
    void store.#keyFilter.fill([
      { prefix: p.dedup, keys: () => store.#sub.dedup.keys() },
      { prefix: p.idem, keys: () => store.#sub.idem.keys() },
      { prefix: p.pcount, keys: () => store.#sub.pcount.keys() },
      // Correlation ids that have `c` entries (an accession with events), one per entry.
      { prefix: CORRELATION_IN_FILTER, keys: () => correlationIdsOf(store.#sub.corr.keys()) },
      // Local documents (reference data, marks, billing's memories): getDoc of one never written
      // answers without a read (billing's memory is read for every order the relay posts).
      { prefix: p.doc, keys: () => store.#sub.doc.keys() },
    ]);
    return store;
  }

  /**
   * Whether a message may still be resent that a release before era `era` (KEY_ERA) stored under
   * the keys of its time: within `retentionDays` (the life of a message's dedup key) of this
   * store's first opening by a release of that era, if it held messages then. Never for a store
   * a release of that era or a later one began. Each change of the keys asks for its own era:
   * the HL7 intake's earlier fingerprints for era 2 (the fingerprint has not changed since), the
   * analyzer endpoints' row-index consumption keys for era 3 (profiles/consumption-keys.ts). So the
   * hashes and look-ups of one change stay off the path of every message once no resend of its
   * keys can come, whatever a later era changed: before, a store era 2 wrote, long past its
   * window, had every HL7 message hashed and looked up under the earlier fingerprints again for
   * `retentionDays` after the upgrade to era 3 (test/unit/review-s23b-key-era-windows.test.ts).
   * Without `era`: whether any era's window is open.
   */
  mayHoldEarlierReleaseKeys(era?: number): boolean {
    const now = Date.now();
    if (era === undefined) {
      for (const until of this.#earlierKeysUntil.values()) if (now < until) return true;
      return false;
    }
    return now < (this.#earlierKeysUntil.get(Math.max(era, FIRST_KEY_ERA)) ?? 0);
  }

  /**
   * The instant before which a release before era `era` may have taken what the store holds: the
   * first opening by a release of `era`, when the store held messages then; undefined for a store
   * a release of that era or a later one began. Unlike mayHoldEarlierReleaseKeys it does not end:
   * an event's idempotency key outlives retention (a tombstone), so a fact an earlier release
   * took and a sender repeats long after (an analyzer re-transmitting a run from its memory) was
   * never made again by that release; a look-up gated by the fact's own time (a run dated before
   * this instant) keeps that, at no cost for what happened after the upgrade
   * (profiles/consumption-keys.ts).
   */
  earlierReleaseKeysBefore(era: number): number | undefined {
    return this.#earlierKeysBefore.get(Math.max(era, FIRST_KEY_ERA));
  }

  /**
   * The openings of the eras of the keys (KEY_ERA): read, and recorded for each era from
   * FIRST_KEY_ERA on that the store has none of, at the first opening by a release of it. Its
   * start is the later of the clock and the newest instant the store holds (`newest`): a box
   * without a battery-backed clock that boots with its build date and is upgraded before the time
   * server answers would otherwise date the upgrade months back, and its window be over at once
   * when the clock is set right, while the LIS resends what the earlier release took.
   *
   * A record era 2 wrote gives era 2's opening as it was; the eras after it open now. An era
   * missing below a recorded one (a store first opened by a later release) takes that later
   * opening: what the store held then is what it could hold of the releases before either.
   */
  async #readKeyEra(heldMessages: boolean, newest: number | undefined): Promise<void> {
    const stored = (await this.#sub.meta.get('keyEra')) as KeyEraRecord | undefined;
    const recorded = new Map<number, KeyEraOpening>();
    if (stored?.eras !== undefined) {
      for (const [era, opening] of Object.entries(stored.eras)) recorded.set(Number(era), { since: opening.since, earlier: opening.earlier === true });
    } else if (stored !== undefined && typeof stored.since === 'number') {
      recorded.set(stored.version, { since: stored.since, earlier: stored.earlier === true });
    }
    let changed = false;
    for (let era = KEY_ERA; era >= FIRST_KEY_ERA; era--) {
      if (recorded.has(era)) continue;
      recorded.set(era, recorded.get(era + 1) ?? { since: Math.max(Date.now(), newest ?? 0), earlier: this.#earlierReleaseKeys ?? heldMessages });
      changed = true;
    }
    if (changed) {
      // Written as its own synced batch, outside the group commit: nothing else writes while the
      // store opens.
      await this.#sub.meta.put('keyEra', { version: KEY_ERA, eras: Object.fromEntries(recorded) } satisfies KeyEraRecord, { sync: true });
    }
    this.#earlierKeysUntil.clear();
    this.#earlierKeysBefore.clear();
    for (let era = FIRST_KEY_ERA; era <= KEY_ERA; era++) {
      const opening = recorded.get(era)!;
      const earlier = this.#earlierReleaseKeys ?? opening.earlier;
      this.#earlierKeysUntil.set(era, earlier ? opening.since + this.#retention.retentionDays * DAY_MS : 0);
      if (earlier) this.#earlierKeysBefore.set(era, opening.since);
    }
  }

  /** Whether the key filter has seen every stored dedup, idempotency and partition-count key. */
  get keyFilterReady(): boolean {
    return this.#keyFilter.ready;
  }

  get health(): StoreHealth {
    return this.#health;
  }

  get healthReason(): string | undefined {
    return this.#healthReason;
  }

  get commitStats(): Readonly<GroupCommitter['stats']> {
    return this.#committer.stats;
  }

  // ---------------------------------------------------------------- start-up recovery

  /**
   * Start-up work is bounded by the number of open leases (at most the relay's concurrency), never
   * by the backlog: counters are read from one key, and no queue or event range is scanned.
   */
  async #recover(): Promise<void> {
    await this.#replayLog();
    const counts = (await this.#sub.meta.get('counts')) as Counts | undefined;
    const intake = (await this.#sub.meta.get('intake')) as IntakeCounters | undefined;
    this.#counts = { ...emptyCounts(), ...counts };
    this.#sealedCounts = { ...this.#counts };
    this.#intake = { ...emptyIntake(), ...intake };
    this.#sealedIntake = { ...this.#intake };
    this.#lastAt = { ...((await this.#sub.meta.get('endpoints')) as Record<string, string> | undefined) };
    await this.#loadLiveSegments();
    await this.#removeUnreferencedSegments();
    let newest: number | undefined;
    const saw = (at: number): void => {
      if (Number.isFinite(at)) newest = Math.max(newest ?? at, at);
    };
    for await (const key of this.#sub.msg.keys({ reverse: true, limit: 1 })) {
      this.#ids.observe(key as string);
      saw(idTime(key as string));
    }
    for await (const key of this.#sub.evt.keys({ reverse: true, limit: 1 })) {
      this.#ids.observe(key as string);
      saw(idTime(key as string));
    }
    for await (const key of this.#sub.done.keys({ reverse: true, limit: 1 })) saw(Number.parseInt((key as string).slice(0, 12), 16));
    // At most the relay's concurrency of them.
    for await (const lease of this.#sub.lease.values() as AsyncIterable<LeaseRecord>) saw(lease.leasedAt);
    // A box without a battery-backed clock boots with the time of its last shutdown or its build
    // date, and keeps it until the time server answers: every due time stored before (a pending
    // event is due at its commit time) lay in the future, and nothing went to Odoo for as long as
    // the clock was behind, while the queue's age read 0 (test/unit/clock-restart-audit.test.ts).
    // The due clock goes on from the newest stored instant instead, as after a step back.
    this.#newestAtOpen = newest;
    if (newest !== undefined) this.#dueClock.startFrom(newest);
    // Before anything of this release is written (a lease reopened below): what the store holds now
    // is an earlier release's. The era starts no earlier than the newest stored instant.
    await this.#readKeyEra(intake !== undefined, newest);
    const wall = Date.now();
    const at = newest ?? wall;
    this.#retentionBase = { at, mono: performance.now(), gap: Math.max(0, wall - at) };

    // Leases open at the crash: the relay may or may not have reached Odoo. Those the gateway
    // noted when it stopped on an error of its own (noteCrash) count towards a crash loop.
    const crash = await this.#readCrashNote();
    await this.#readSettleHeld();
    await this.#reopenLeases('the gateway stopped while this event was being delivered', this.#ambiguousSettleMs, true);
    if (crash) {
      await this.#countCrashedDeliveries(crash);
      await unlink(this.#crashNotePath()).catch(() => undefined);
    }
    // Counters can only drift if the process died between a failed batch and its resync. Once the
    // open leases are reopened nothing is in flight, so an in-flight count left is such a drift:
    // repaired cheaply, whether or not leases were open (repaired only without any before, one
    // lease open at the crash kept a phantom "in flight" in GET /api/status for good).
    if (this.#counts.inflight !== 0) {
      this.#counts.pending += this.#counts.inflight;
      this.#counts.inflight = 0;
    }
    await this.#refreshOldest();
  }

  /**
   * Leases LevelDB holds that no delivery in progress owns: left by a crash, or by a completion
   * whose write failed (the relay had Odoo's answer, the store could not record it). Their
   * in-flight events become ambiguous and due `settleMs` from now, the lease goes and the
   * partition is due again; the relay looks each event up in Odoo before any resend. True when
   * there were any.
   */
  async #reopenLeases(reason: string, settleMs = 0, startUp = false): Promise<boolean> {
    const ops: BatchOp[] = [];
    // On the lease's clock, which starts at the newest stored instant (#recover): read from
    // Date.now(), a box that booted with its clock two hours behind held the reopened events for
    // the two hours plus the settle time.
    const now = this.#dueClock.now();
    // Counted into the counters when the batch is queued, with no await in between: a write sealed
    // while the next lease is read (a document, during the health probe) would otherwise carry the
    // first leases as reopened before their batch, and a failure of that batch left them counted
    // as retrying on disk while they were still in flight (the next probe counted them again).
    let reopened = 0;
    for await (const [partitionKey, lease] of this.#sub.lease.iterator() as AsyncIterable<[string, LeaseRecord]>) {
      if (this.#leased.has(partitionKey)) continue; // a delivery in progress owns it
      // A request sent under this lease may still land (see AMBIGUOUS_SETTLE_MS): the settle time
      // runs from now, after the last request the stopped process can have sent. Not from when
      // the lease was taken: a round posts stage after stage, and with a slow Odoo a lease's write
      // left long after the lease was taken; the restarted gateway looked it up while Odoo still
      // ran it, found nothing and sent it again, and Odoo committed both (a sale order's lines
      // twice, a chatter note twice: test/integration/review-s23-crash-settle.test.ts). Nor is a
      // clock's error added to it (the lease's time is not read).
      const due = Math.max(now + settleMs, this.#unrecordedHolds.get(partitionKey) ?? 0);
      this.#unrecordedHolds.delete(partitionKey);
      const records = await this.#readEvents(lease.eventIds);
      for (const stored of records) {
        if (!stored || stored.state !== 'inflight') continue;
        stored.state = 'retrying';
        stored.ambiguous = true;
        stored.dueAt = due;
        stored.lastError = reason;
        reopened++;
        if (startUp) this.#settleHeld.set(stored.event.id, { due, pk: partitionKey });
        ops.push({ type: 'put', sublevel: this.#sub.evt, key: stored.event.id, value: stored });
      }
      ops.push({ type: 'del', sublevel: this.#sub.lease, key: partitionKey });
      ops.push({ type: 'put', sublevel: this.#sub.due, key: timeKey(due) + SEP + partitionKey, value: '' });
    }
    // Which events start-up holds, kept with them: a restart within the settle time (IT restarting
    // the gateway again) finds them no longer in flight but still held (settleHold).
    if (startUp && reopened > 0) ops.push({ type: 'put', sublevel: this.#sub.meta, key: 'settleHold', value: [...this.#settleHeld].map(([id, h]) => [id, h.due, h.pk]) });
    if (ops.length > 0) {
      this.#counts.inflight = Math.max(0, this.#counts.inflight - reopened);
      this.#counts.retrying += reopened;
      await this.#committer.write(ops);
    }
    return ops.length > 0;
  }

  /**
   * At open, before the leases are reopened: the events an earlier start held (`meta!settleHold`)
   * whose due time has not come yet on the due clock; settleHold() checks each is still held. One
   * small read per open.
   */
  async #readSettleHeld(): Promise<void> {
    const stored = (await this.#sub.meta.get('settleHold').catch(() => undefined)) as Array<[string, number, string]> | undefined;
    if (!Array.isArray(stored)) return;
    const now = this.#dueClock.now();
    for (const entry of stored) {
      if (Array.isArray(entry) && typeof entry[0] === 'string' && typeof entry[1] === 'number' && typeof entry[2] === 'string' && entry[1] > now) this.#settleHeld.set(entry[0], { due: entry[1], pk: entry[2] });
    }
  }

  /**
   * The deliveries start-up holds for the settle time (GatewayStore.settleHold): those of
   * #settleHeld still retrying with the due time start-up gave them (one delivered, discarded,
   * leased or retried since is no longer held), their orders, and the events queued behind them.
   * Reads only those events (at most the relay's leases' at the stop) and their partitions' counts,
   * and only until the last due time has passed; nothing while none is held.
   */
  async settleHold(): Promise<SettleHold | undefined> {
    if (this.#settleHeld.size === 0 || this.#health === 'closed') return undefined;
    const now = this.#dueClock.now();
    for (const [id, h] of this.#settleHeld) if (h.due <= now) this.#settleHeld.delete(id);
    if (this.#settleHeld.size === 0) return undefined;
    const ids = [...this.#settleHeld.keys()];
    // The state records only (no body, no message log read): the state and the due time say it.
    await this.#committer.applied();
    const states = (await this.#sub.evt.getMany(ids)) as Array<Pick<StoredEvent, 'state' | 'dueAt'> | undefined>;
    const partitions = new Map<string, number>();
    let last = 0;
    states.forEach((rec, i) => {
      const held = this.#settleHeld.get(ids[i]!);
      if (!held) return;
      if (!rec || rec.state !== 'retrying' || rec.dueAt !== held.due) {
        this.#settleHeld.delete(ids[i]!);
        return;
      }
      last = Math.max(last, held.due);
      partitions.set(held.pk, (partitions.get(held.pk) ?? 0) + 1);
    });
    if (partitions.size === 0) return undefined;
    let events = 0;
    let behind = 0;
    for (const [pk, held] of partitions) {
      events += held;
      // The cached count, else the stored one (read, not cached: the commit path owns the cache).
      const queued = this.#pcount.get(pk) ?? ((await this.#sub.pcount.get(pk).catch(() => undefined)) as number | undefined) ?? held;
      behind += Math.max(0, queued - held);
    }
    // On the system clock, as the status shows times: the due clock runs ahead of it only after a
    // step back (or a box booted behind its data), by aheadMs.
    const until = Math.ceil((last - this.#dueClock.aheadMs) / 1000) * 1000;
    return { events, partitions: partitions.size, behind, until };
  }

  /**
   * The events the gateway was delivering when it last stopped on an error of its own
   * (noteCrash), whose delivery did not finish: their lease was open at the stop, or the stop
   * released them unchanged (the graceful stop closes Odoo's connection on a request still out).
   * Each is counted (StoredEvent.crashes); at CRASHED_DELIVERY_LIMIT it is held as a dead letter,
   * at the head of its partition (a leased event is its partition's head), which then waits for
   * an operator while the others flow. At most the relay's leases' events: bounded, like the
   * reopening of leases.
   */
  async #countCrashedDeliveries(crash: CrashNote): Promise<void> {
    const ops: BatchOp[] = [];
    const counts = { pending: 0, retrying: 0, dead: 0 };
    const records = await this.#readEvents([...crash.eventIds]);
    for (const stored of records) {
      if (!stored || stored.bodyError || (stored.state !== 'pending' && stored.state !== 'retrying')) continue;
      const crashes = (stored.crashes ?? 0) + 1;
      stored.crashes = crashes;
      if (crashes >= CRASHED_DELIVERY_LIMIT) {
        counts[stored.state]--;
        counts.dead++;
        stored.state = 'dead';
        stored.deadReason = crashedDeliveryReason(crashes, crash);
        stored.lastError = stored.deadReason;
        ops.push({ type: 'put', sublevel: this.#sub.dead, key: stored.event.id, value: stored.event.partitionKey });
      } else {
        stored.lastError = `the gateway stopped on an error of its own while this event was being delivered (${crashes} of ${CRASHED_DELIVERY_LIMIT} in a row before it is held): ${crash.error}`;
      }
      ops.push({ type: 'put', sublevel: this.#sub.evt, key: stored.event.id, value: stored });
    }
    if (ops.length === 0) return;
    // Counted when the batch is queued, with no await in between (see #reopenLeases).
    this.#counts.pending += counts.pending;
    this.#counts.retrying += counts.retrying;
    this.#counts.dead += counts.dead;
    await this.#committer.write(ops);
  }

  /** Where noteCrash leaves the leases it found (read and removed by the next open). */
  #crashNotePath(): string {
    return `${this.dataDir.replace(/\/$/, '')}/store/crashed-deliveries.json`;
  }

  /**
   * The gateway is stopping on an error of its own (an uncaught exception): note, synchronously
   * and durably, which events were being delivered. A delivery that never finishes (the error
   * struck its request's handling) leaves its lease open; the next start counts those towards a
   * crash loop (StoredEvent.crashes). A kill or a power cut notes nothing, and counts nothing: a
   * lab's power cuts never hold an event. Never throws: a note that cannot be written is skipped.
   */
  noteCrash(error: unknown): void {
    const eventIds = [...this.#leased.values()].flatMap((l) => l.eventIds);
    if (eventIds.length === 0 || this.#health === 'closed') return;
    // A second error during the same stop adds to the note: the deliveries the first one noted and
    // the stop has since cut (released, no longer leased) stay in it.
    const earlier = this.#crashNote?.eventIds ?? [];
    this.#crashNote = { at: new Date().toISOString(), error: describeError(error).slice(0, 500), eventIds: new Set([...earlier, ...eventIds]) };
    this.#writeCrashNote(this.#crashNote);
  }

  /** The note, written durably (a temporary file renamed); never throws. */
  #writeCrashNote(crash: CrashNote): void {
    const note = { at: crash.at, error: crash.error, eventIds: [...crash.eventIds] };
    const file = this.#crashNotePath();
    try {
      const fd = openSync(`${file}.tmp`, 'w');
      try {
        writeSync(fd, JSON.stringify(note));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(`${file}.tmp`, file);
    } catch {
      // The store's disk may be what failed: the gateway stops all the same.
    }
  }

  async #readCrashNote(): Promise<CrashNote | undefined> {
    let text: string;
    try {
      text = await readFile(this.#crashNotePath(), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const note = JSON.parse(text) as { at?: unknown; error?: unknown; eventIds?: unknown };
      if (!Array.isArray(note.eventIds)) return undefined;
      return { at: String(note.at ?? ''), error: String(note.error ?? 'an error'), eventIds: new Set(note.eventIds.map(String)) };
    } catch {
      return undefined; // torn by a power cut right after the error: counts as a plain stop
    }
  }

  // ---------------------------------------------------------------- health

  /** Test and drill hook: make every batch write fail with `error` (undefined clears it). */
  simulateWriteFailure(error: Error | undefined): void {
    this.#injectedFault = error;
    if (error) this.#setHealth('failed', describeError(error));
  }

  /**
   * Test and drill hook: `hook` runs before each LevelDB write of a batch (for a logged batch that
   * is after its commit point, when its senders may have been answered already); it may hold the
   * write or make it fail by throwing (undefined removes it).
   */
  interceptLevelWrites(hook: ((batch: { logged: boolean }) => Promise<void> | void) | undefined): void {
    this.#levelHook = hook;
  }

  #setHealth(health: StoreHealth, reason?: string): void {
    if (this.#health === 'closed') return;
    if (health === this.#health && reason === this.#healthReason) return;
    this.#health = health;
    this.#healthReason = reason;
    this.#onHealth?.(health, reason);
  }

  async #checkDisk(): Promise<boolean> {
    try {
      const free = await this.#freeBytes();
      if (free < this.#minFreeBytes) {
        this.#setHealth('full', `only ${free} bytes free in ${this.dataDir} (minimum ${this.#minFreeBytes})`);
        return false;
      }
      return true;
    } catch (err) {
      this.#setHealth('failed', `cannot read free space of ${this.dataDir}: ${describeError(err)}`);
      return false;
    }
  }

  /** Bytes free in the data directory's file system for this (unprivileged) process. */
  async #freeBytes(): Promise<number> {
    const fs = await statfs(this.dataDir);
    return Number(fs.bavail) * Number(fs.bsize);
  }

  /**
   * Periodic: re-check free space and, after a failed write, probe with a tiny synced write. One
   * check at a time: a probe that reopens LevelDB outlasts the interval, and a second check
   * would close it again under the first one's probe.
   */
  #checkHealth(): Promise<void> {
    this.#checking ??= this.#checkHealthOnce().finally(() => (this.#checking = undefined));
    return this.#checking;
  }

  async #checkHealthOnce(): Promise<void> {
    if (this.#health === 'closed') return;
    const diskOk = await this.#checkDisk();
    if (!diskOk) return;
    // A failure pending keeps the probe going even where the store says 'ok' (see the end).
    if (this.#health === 'ok' && !this.#levelNeedsReopen && !this.#lateFailure) return;
    try {
      if (this.#levelNeedsReopen) {
        await this.#reopenLevel();
        this.#levelNeedsReopen = undefined;
      }
      if (this.#lateFailure) await this.#catchUp();
      // The probe also moves the checkpoint past logged batches that failed before LevelDB had
      // them (their senders got negative ACKs): start-up never applies them later.
      await this.#committer.write([
        { type: 'put', sublevel: this.#sub.meta, key: 'probe', value: Date.now() },
        { type: 'put', sublevel: this.#sub.meta, key: 'w', value: encodePosition(this.#log.end) },
      ]);
      // Reloaded under the queue lock and after every write queued meanwhile: a delivery the relay
      // completed right after the probe is then in what is read, not overwritten by it.
      await this.#withQueueLock(async () => {
        await this.#committer.barrier();
        await this.#resync();
        // A completion whose write failed left its lease in LevelDB, with no due entry: its
        // partition (the order's later events with it) would wait for a restart.
        await this.#reopenLeases('the store failed while this delivery was being recorded');
      });
      // A write that failed after LevelDB was opened again (a document queued behind the probe's
      // write, before the reload) needs another reopening, or a catch-up: 'ok' now would refuse
      // every write while saying the store is healthy, and no later probe would run.
      const pending = this.#levelNeedsReopen ?? this.#lateFailure;
      if (pending) throw pending;
      this.#setHealth('ok');
    } catch (err) {
      if (isLevelIoError(err)) this.#levelNeedsReopen ??= new GatewayError('GW_STORE_UNAVAILABLE', `LevelDB must be opened again: ${describeError(err)}`, { cause: err });
      this.#setHealth('failed', describeError(err));
    }
  }

  /**
   * A LevelDB write returned an error. LevelDB sets no error of its own when appending to its log
   * fails (ENOSPC): the log may end in a torn record (or miss one it counted), later writes are
   * appended after it, and at the next open LevelDB's log reader drops everything from the tear
   * to the end of that log file, which its memtable held. So nothing is written to LevelDB again
   * until the health probe has opened it again: the open recovers the log up to the tear, and the
   * probe then catches up from the message log what was answered and moves the checkpoint past
   * what was refused. A write that went on was lost at the next open with every other write after
   * the tear (the probe's checkpoint with them): start-up then replayed the message log from
   * before the failed write, refused batches included, and a message answered AE and resent was
   * stored twice (test/integration/store-disk-full-wal.test.ts).
   */
  #levelWriteFailed(err: unknown): void {
    if (this.#health === 'closed') return;
    this.#levelNeedsReopen ??= new GatewayError('GW_STORE_UNAVAILABLE', `a LevelDB write failed, LevelDB must be opened again: ${describeError(err)}`, { cause: err });
    this.#setHealth('failed', `a LevelDB write failed: ${describeError(err)}`);
  }

  /**
   * LevelDB keeps the error of a failed background write (a memtable flush or a compaction that
   * met a full disk) and returns it for every later write until the database is opened again.
   * Probing alone, the store stayed failed after IT had freed the disk, refusing every message
   * until the service was restarted (test/integration/store-disk-full.test.ts). Opened again,
   * LevelDB recovers what its log holds, as at a restart; the batches answered at their commit
   * point that it lost are then caught up from the message log (#catchUp), as after any failed
   * write. Under the queue lock, after every write queued so far, and with every write refused
   * meanwhile (writes go to the native database directly, which must not be closed under them);
   * a read meanwhile fails once (an HTTP request, the oldest-age refresh). If the open fails (still
   * no room), the store stays failed and the next health check tries again.
   */
  async #reopenLevel(): Promise<void> {
    await this.#withQueueLock(async () => {
      this.#levelReopening = new GatewayError('GW_STORE_UNAVAILABLE', 'the store is opening LevelDB again after a failed write');
      try {
        await this.#committer.barrier().catch(() => undefined);
        await this.#committer.applied().catch(() => undefined);
        await this.#db.close();
        await this.#db.open();
        await Promise.all(Object.values(this.#sub).map((sub) => sub.open()));
      } finally {
        this.#levelReopening = undefined;
      }
    });
  }

  /**
   * Delete the segments no pointer refers to (the active one stays): left by a crash between the
   * two writes of a batch, by an open that wrote nothing, or emptied while still active. Only
   * segments the log had moved past before the call: such a segment takes no new records, and
   * once every batch prepared until then is written (the barrier), its live count is final. A
   * segment whose last batch was still being written would otherwise look unreferenced.
   */
  async #removeUnreferencedSegments(): Promise<void> {
    const active = this.#log.activeSegment;
    await this.#committer.barrier();
    for (const segment of this.#log.segments()) {
      if (segment < active && !this.#liveSegments.has(segment)) await this.#log.remove(segment);
    }
  }

  async #loadLiveSegments(): Promise<void> {
    this.#liveSegments.clear();
    for await (const [key, count] of this.#sub.segs.iterator() as AsyncIterable<[string, number]>) this.#liveSegments.set(Number(key), Number(count));
    this.#projectedSegments = new Map(this.#liveSegments);
  }

  /**
   * LevelDB catches up with the message log: every batch record after the last logged batch
   * LevelDB kept (the checkpoint names where the log continues after it) is written again, in
   * order. Nothing LevelDB kept is written again: a later write (a lease, a delivery) is never
   * undone. After a kill -9 LevelDB has them all (the writes were in the OS's cache) and nothing
   * is replayed; after a power cut what LevelDB lost is. Then the checkpoint
   * moves to the end of the log and is synced: records before it are never replayed again, so a
   * batch that failed before its LevelDB write (its sender got a negative ACK) never appears later.
   */
  async #replayLog(): Promise<number> {
    const stored = (await this.#sub.meta.get('w')) as string | undefined;
    const from = stored === undefined ? undefined : decodePosition(stored);
    let replayed = 0;
    if (from) {
      for await (const payload of this.#log.scan(from)) {
        if (!isBatchRecord(payload)) continue;
        await this.#writeBatch({ sync: false }, { pairs: decodeBatchRecord(payload), counts: [], logged: true, emptied: false });
        replayed++;
      }
    }
    // The checkpoint key is written as its own synced batch, outside the group commit: nothing
    // else writes while the store opens or recovers.
    const db = this.#db as unknown as NativeBatchSource;
    const batch = db._chainedBatch();
    try {
      batch._put(this.#checkpointKey, checkpointValue(this.#log.end));
      await batch._write({ sync: true });
    } finally {
      db.detachResource(batch);
    }
    this.#lastLevelSync = performance.now();
    this.replayedBatches = replayed;
    return replayed;
  }

  /**
   * After a batch answered at its commit point failed in LevelDB: with every other write refused
   * meanwhile, write again, in log order from LevelDB's checkpoint, the batch record of every batch
   * that was answered and is not in LevelDB yet, then accept writes again. A logged batch whose
   * senders were refused stays out (the probe then moves the checkpoint past it).
   */
  async #catchUp(): Promise<void> {
    await this.#committer.applied();
    const stored = (await this.#sub.meta.get('w')) as string | undefined;
    const from = stored === undefined ? undefined : decodePosition(stored);
    if (from && this.#answeredUnapplied.size > 0) {
      for await (const { payload, end } of this.#log.records(from)) {
        // Only the answered ones: a logged batch refused meanwhile (a double fault) stays out.
        const at = encodePosition(end);
        if (!this.#answeredUnapplied.has(at) || !isBatchRecord(payload)) continue;
        await this.#writeBatch({ sync: false }, { pairs: decodeBatchRecord(payload), counts: [], logged: true, emptied: false, end });
        if (this.#answeredUnapplied.size === 0) break;
      }
    }
    // Every batch answered so far is in LevelDB now: written again here, or recovered by LevelDB
    // itself when it was opened again (its log held the write that had returned an error).
    this.#answeredUnapplied.clear();
    this.#lateFailure = undefined;
  }

  /** After a failed batch the in-memory counters may include lost writes: reload from disk. */
  async #resync(): Promise<void> {
    await this.#loadLiveSegments();
    const counts = (await this.#sub.meta.get('counts')) as Counts | undefined;
    this.#counts = { ...emptyCounts(), ...counts };
    this.#sealedCounts = { ...this.#counts };
    // The intake counters are not reloaded: memory is right (a refused commit takes its own counts
    // back), and messages refused while the probe was being written are counted only there.
    this.#pcount.clear();
  }

  #assertWritable(): void {
    if (this.#health === 'ok') return;
    if (this.#health === 'full') throw new GatewayError('GW_STORE_FULL', this.#healthReason ?? 'the data directory is full');
    throw new GatewayError('GW_STORE_UNAVAILABLE', this.#healthReason ?? `the store is ${this.#health}`);
  }

  async #write(ops: BatchOp[]): Promise<void> {
    try {
      await this.#committer.write(ops);
    } catch (err) {
      if (this.#health !== 'closed') this.#setHealth('failed', describeError(err));
      throw new GatewayError('GW_STORE_UNAVAILABLE', `the store could not commit: ${describeError(err)}`, { cause: err });
    }
  }

  // ---------------------------------------------------------------- intake

  commit(message: InboundMessage, drafts: DraftEvent[]): Promise<CommitResult> {
    this.#noteLastMessage(message.endpoint, message.receivedAt);
    const keys = this.#deriver?.keys(drafts) ?? [];
    // Commits of one partition queue their events in the order commit() was called (ids, queue
    // positions): a commit that must wait (a derivation reads LevelDB first) holds the turn of its
    // partitions, and a later commit of any of them waits until it has queued its events. Without
    // it, a result pipelined behind its new order on one connection took the earlier place in the
    // order's partition: the relay posted the result before the order. Nothing waits when no
    // partition of the commit has a turn held: no read, no await, at most a map look-up per event.
    const ahead = this.#partitionTurns.size > 0 ? this.#turnsAhead(drafts) : [];
    if (keys.length === 0 && ahead.length === 0) return this.#commit(message, drafts);
    const queued = this.#takeTurn(drafts);
    const inTurn = async (): Promise<CommitResult> => {
      let result: Promise<CommitResult>;
      try {
        if (ahead.length > 0) await Promise.all(ahead);
        const extra = keys.length > 0 ? await (this.#deriver as EventDeriver).derive(drafts, this.#deriverView) : [];
        // #commit queues a new message's operations before its first await.
        // The message's own drafts come first: a resend of a damaged record is rebuilt from them only.
        result = this.#commit(message, extra.length ? [...drafts, ...extra] : drafts, false, drafts.length);
      } finally {
        queued();
      }
      return result;
    };
    return keys.length > 0 ? this.#withKeys(keys, inTurn) : inTurn();
  }

  /** The turns held by earlier commits of the drafts' partitions (see commit()). */
  #turnsAhead(drafts: DraftEvent[]): Array<Promise<void>> {
    const ahead: Array<Promise<void>> = [];
    for (const d of drafts) {
      const turn = this.#partitionTurns.get(d.partitionKey);
      if (turn !== undefined && !ahead.includes(turn)) ahead.push(turn);
    }
    return ahead;
  }

  /**
   * Take the turn of the drafts' partitions, synchronously at the call: later commits of them
   * wait for it. The returned function gives it up (once the events are queued, or the commit
   * failed before).
   */
  #takeTurn(drafts: DraftEvent[]): () => void {
    let done!: () => void;
    const turn = new Promise<void>((resolve) => (done = resolve));
    const partitions = new Set(drafts.map((d) => d.partitionKey));
    for (const pk of partitions) this.#partitionTurns.set(pk, turn);
    return () => {
      done();
      for (const pk of partitions) if (this.#partitionTurns.get(pk) === turn) this.#partitionTurns.delete(pk);
    };
  }

  /** Run `fn` after every earlier holder of any of `keys` finished; later callers wait for it. */
  async #withKeys<T>(keys: string[], fn: () => Promise<T>): Promise<T> {
    const before = keys.map((k) => this.#keyLocks.get(k)).filter((p): p is Promise<unknown> => p !== undefined);
    const run = Promise.all(before).then(fn, fn);
    const tail = run.catch(() => undefined);
    for (const k of keys) this.#keyLocks.set(k, tail);
    try {
      return await run;
    } finally {
      for (const k of keys) if (this.#keyLocks.get(k) === tail) this.#keyLocks.delete(k);
    }
  }

  /**
   * The message's dedup key led to a message that is gone (retention deleted it while the key was
   * being read): commit it again from the look-up, as new. Once only: by then LevelDB has the
   * deletion, so the key is not found again.
   */
  #commitAgain(message: InboundMessage, drafts: DraftEvent[], retried: boolean, own: number): Promise<CommitResult> {
    if (retried) throw new GatewayError('GW_STORE_STATE', `the message for ${message.dedupKey ?? 'this resend'} is gone but its dedup key remains`);
    return this.#commit(message, drafts, true, own);
  }

  /**
   * `own`: how many of `drafts` the message itself yields (the rest the deriver added).
   */
  async #commit(message: InboundMessage, drafts: DraftEvent[], retried = false, own = drafts.length): Promise<CommitResult> {
    const dedupKey = message.dedupKey;
    let inflight = dedupKey !== undefined ? this.#inflightDedup.get(dedupKey) : undefined;
    let known: boolean[] | undefined;
    if (!inflight) {
      // One round of parallel look-ups: the message's dedup key, the events' idempotency keys and
      // the counts of partitions not cached yet.
      const [existing, found] = this.#lookup(drafts, dedupKey);
      if (existing !== undefined) return (await this.#recordDuplicate(existing, message, drafts, own)) ?? this.#commitAgain(message, drafts, retried, own);
      known = found;
      // Another commit of the same key may have started while we looked.
      if (dedupKey !== undefined) inflight = this.#inflightDedup.get(dedupKey);
    }
    if (inflight) {
      const original = await inflight.catch(() => undefined);
      if (original) return (await this.#recordDuplicate(original.messageId, message, drafts, own)) ?? this.#commitAgain(message, drafts, retried, own);
      known = this.#lookup(drafts)[1]; // the original failed: this one takes its place
    }
    this.#assertWritable();
    const attempt = this.#commitNew(message, drafts, known ?? []);
    if (dedupKey !== undefined) {
      this.#inflightDedup.set(dedupKey, attempt);
      // Until LevelDB has the dedup key (a commit may be answered before), a resend finds it here.
      const release = (): void => void (this.#inflightDedup.get(dedupKey) === attempt && this.#inflightDedup.delete(dedupKey));
      attempt.then(() => this.#committer.applied().then(release), release);
    }
    return attempt;
  }

  /**
   * The reads a commit needs: the message's dedup key, the events' idempotency keys and the counts
   * of partitions not cached yet, by their prefixed keys in the root database. Returns the
   * original message id on a duplicate and which drafts exist already.
   */
  #lookup(drafts: DraftEvent[], dedupKey?: string): [string | undefined, boolean[]] {
    const missing = [...new Set(drafts.map((d) => d.partitionKey).filter((pk) => !this.#pcount.has(pk)))];
    const keys: string[] = [];
    if (dedupKey !== undefined) keys.push(this.#prefix.dedup + dedupKey);
    for (const d of drafts) keys.push(this.#prefix.idem + d.idempotencyKey);
    for (const pk of missing) keys.push(this.#prefix.pcount + pk);
    if (keys.length === 0) return [undefined, []];
    // Synchronous point reads: these keys are almost always absent, which LevelDB answers from its
    // bloom filters and block cache in microseconds; a thread-pool round trip per commit costs
    // more than the read itself (measured: ~3x the main-thread time of getMany, 30 % less intake).
    // Keys the (complete) filter does not hold are absent without a read.
    const filter = this.#keyFilter;
    const values = keys.map((k) => (filter.mayContain(k) ? (this.#db.getSync(k, { keyEncoding: 'utf8', valueEncoding: 'utf8' }) as string | undefined) : undefined));
    let i = 0;
    const existing = dedupKey !== undefined ? values[i++] : undefined;
    const known = drafts.map(() => values[i++] !== undefined);
    for (const pk of missing) {
      const stored = values[i++];
      // An absent count is 0 and stays uncached (#enqueueEvent counts from 0 anyway): a partition
      // whose events were all skipped (a resend) would otherwise stay in the cache for good.
      if (!this.#pcount.has(pk) && stored !== undefined) this.#pcount.set(pk, Number(stored));
    }
    return [existing, known];
  }

  /**
   * A resend of a stored message: its stored ACK, and one more on its duplicate count. Undefined
   * when the message is gone (retention deleted it while its dedup key was read): the caller
   * commits the resend as a new message.
   */
  async #recordDuplicate(messageId: string, resend: InboundMessage, drafts: DraftEvent[], own: number): Promise<CommitResult | undefined> {
    let stored: ReadMessage | undefined;
    try {
      stored = await this.#readMessage(messageId);
    } catch (err) {
      // Its record is damaged on disk: the stored ACK cannot be replayed (see #resendOfDamaged),
      // and the record is rebuilt from the message's own drafts only (the first `own`; the deriver's
      // follow them).
      if (!isGatewayError(err, 'GW_STORE_CORRUPT')) throw err;
      return this.#resendOfDamaged(messageId, resend, own < drafts.length ? drafts.slice(0, own) : drafts, err);
    }
    if (!stored) return undefined;
    this.#intake.received++;
    this.#intake.duplicates++;
    // The count lives in the pointer (the logged record is never rewritten); a message of the
    // earlier layout moves into the log. Not worth delaying the reply, so not awaited; but read
    // again and written under the queue lock, after every write queued before: two resends at
    // once both count, and a pointer read before retention moved the message (and deleted its
    // old segment) is never written back over the new one.
    void this.#withQueueLock(async () => {
      await this.#committer.barrier();
      const current = await this.#readMessage(messageId);
      if (!current) return;
      await this.#committer.write([this.#duplicateCounted(messageId, current)]);
    }).catch(() => undefined);
    return { messageId, duplicate: true, ack: stored.ack, eventIds: [], skippedEvents: 0 };
  }

  /** The put of a stored message with one more on its duplicate count. */
  #duplicateCounted(messageId: string, current: ReadMessage): BatchOp {
    const duplicates = current.record.duplicates + 1;
    const value = current.pointer ? encodePointer(current.pointer, duplicates) : ({ log: encodeMessage({ ...current.record, duplicates }, current.raw, current.ack), duplicates } satisfies LogEntry);
    return { type: 'put', sublevel: this.#sub.msg, key: messageId, value };
  }

  /**
   * A resend of a message whose record fails its length or CRC check (GW_STORE_CORRUPT). The
   * message is stored (its dedup key, its events and their queue entries are in the index), and
   * the resend is by its dedup key the same content: it is answered as the duplicate it is, with
   * the ACK the intake built for it (what the original got: a dedup key is made for a message the
   * intake stored as accepted, or, on an analyzer link, as the same text, answered the same way).
   * Before, the read's failure failed the commit, and the sender was answered negatively at every
   * resend for as long as the message was kept.
   *
   * The record is written again from the resend, under the queue lock (#rewriteDamaged): a
   * duplicate answer never waits for more than that. Whatever happens there (the store full or
   * failed, the resend's events not those of the index), the answer stays the duplicate's;
   * `damagedRecord` says what was done, for the intake's warning. Undefined when the message is
   * gone (retention deleted it meanwhile): committed as new by the caller, as any such resend.
   */
  async #resendOfDamaged(messageId: string, resend: InboundMessage, drafts: DraftEvent[], damage: unknown): Promise<CommitResult | undefined> {
    let done: DamagedResend;
    try {
      done = await this.#withQueueLock(() => this.#rewriteDamaged(messageId, resend, drafts));
    } catch (err) {
      done = { kind: 'kept', detail: `its record could not be written again: ${describeError(err)}` };
    }
    if (done.kind === 'gone') return undefined;
    this.#intake.received++;
    this.#intake.duplicates++;
    const damaged = describeError(damage);
    const result: CommitResult = { messageId, duplicate: true, ack: done.kind === 'readable' ? done.ack : resend.ack, eventIds: [], skippedEvents: 0 };
    if (done.kind !== 'readable') result.damagedRecord = { messageId, rewritten: done.kind === 'rewritten', detail: `${damaged}; ${done.detail}` };
    return result;
  }

  /**
   * Under the queue lock: the damaged record of `messageId` written again from its resend, for
   * the same message id, as retention moves a record (the pointer to the new record and the
   * segment counts, old and new, in one batch): the resend's bytes and ACK; its metadata with
   * the time of the message id (the original's receipt, to the millisecond of its commit); and
   * the bodies of the events the index holds for it, each rebuilt from the resend's draft with the
   * same idempotency key, only when the index agrees with that draft (its correlation entry and
   * type, its partition while queued). No event is created: a draft the index has no event of is
   * left out. An event no draft matches (a derived one, invoice.eligible: its body depended on
   * what the store held then) keeps its unreadable body; its correlation entry, found in the
   * original intake's batch record, is named in this batch's record too, as retention looks for it
   * there (README "A damaged record goes at its age too").
   */
  async #rewriteDamaged(messageId: string, resend: InboundMessage, drafts: DraftEvent[]): Promise<DamagedResend> {
    await this.#committer.barrier();
    const value = (await this.#sub.msg.get(messageId)) as Buffer | undefined;
    if (!value) return { kind: 'gone' };
    try {
      const current = await this.#decodeStored(messageId, value);
      // Written again meanwhile, from a resend before this one: a duplicate of it.
      await this.#committer.write([this.#duplicateCounted(messageId, current)]);
      return { kind: 'readable', ...(current.ack ? { ack: current.ack } : {}) };
    } catch (err) {
      if (!isGatewayError(err, 'GW_STORE_CORRUPT')) throw err;
    }
    if (this.#health !== 'ok') return { kind: 'kept', detail: `not written again: the store is ${this.#health}` };
    const pointer = decodePointer(value);
    // The message's events, as retention finds them (#damagedMayGo).
    const mine = await this.#eventsAfter(messageId);
    if (mine === undefined) return { kind: 'kept', detail: 'not written again: more events than one look reads' };
    // A rejected resend of a message with events: something else changed (a profile); not rewritten.
    if (resend.status === 'rejected' && mine.length > 0) return { kind: 'kept', detail: 'not written again: the resend was refused, the original made events' };
    const ids = drafts.length > 0 ? ((await this.#sub.idem.getMany(drafts.map((d) => d.idempotencyKey))) as Array<string | undefined>) : [];
    const draftOf = new Map<string, DraftEvent>();
    drafts.forEach((d, i) => {
      const id = ids[i];
      if (id !== undefined && !draftOf.has(id)) draftOf.set(id, d);
    });
    const receivedAt = new Date(idTime(messageId)).toISOString();
    const bodies: CanonicalEvent[] = [];
    const unmatched: string[] = [];
    for (const [eventId, v] of mine) {
      if (!('m' in v)) continue; // its body is in its own value, not in the record
      const draft = draftOf.get(eventId);
      if (draft && (await this.#indexAgrees(eventId, v, draft))) {
        bodies.push({ ...draft, id: eventId, schemaVersion: EVENT_SCHEMA_VERSION, receivedAt, source: { ...draft.source, messageId } } as CanonicalEvent);
      } else unmatched.push(eventId);
    }
    const record = messageRecord(resend, messageId, receivedAt, mine.map(([id]) => id), bodies, (pointer?.duplicates ?? 0) + 1);
    const ops: BatchOp[] = [
      { type: 'put', sublevel: this.#sub.msg, key: messageId, value: { log: messagePayload(record, resend.raw, resend.ack), duplicates: record.duplicates, ...(pointer ? { fromSegment: pointer.segment } : {}) } satisfies LogEntry },
    ];
    // This batch's record names every key retention deletes with the message should the new
    // record be damaged in its turn (#intakeKeysOf finds the batch record right after it): its
    // dedup key and search entries, the correlation entries of its events. What the original's
    // batch record named and the new record lacks (a search term the resend no longer carries)
    // goes now: nothing would delete it later.
    const named = pointer ? await this.#intakeKeysOf(messageId, pointer, new Map()) : undefined;
    if (record.dedupKey !== undefined) {
      ops.push({ type: 'put', sublevel: this.#sub.dedup, key: record.dedupKey, value: messageId });
      this.#keyFilter.add(this.#prefix.dedup + record.dedupKey);
    }
    const terms = new Set(searchTermsOf(record).map((term) => term + SEP + messageId));
    for (const key of terms) ops.push({ type: 'put', sublevel: this.#sub.search, key, value: '' });
    for (const key of named?.search ?? []) if (!terms.has(key)) ops.push({ type: 'del', sublevel: this.#sub.search, key });
    for (const body of bodies) ops.push({ type: 'put', sublevel: this.#sub.corr, key: body.correlationId + SEP + body.id, value: body.type });
    for (const eventId of unmatched) {
      const key = named?.correlation.get(eventId);
      const type = key !== undefined ? ((await this.#sub.corr.get(key)) as string | undefined) : undefined;
      if (key !== undefined && type !== undefined) ops.push({ type: 'put', sublevel: this.#sub.corr, key, value: type });
    }
    await this.#write(ops);
    for (const body of bodies) this.#cacheBody(body);
    const kept = unmatched.length > 0 ? `; ${unmatched.length} of its ${mine.length} events match none of the resend's and stay unreadable (${unmatched.join(', ')})` : '';
    return { kind: 'rewritten', detail: `written again from this resend, with the bodies of ${bodies.length} events${kept}` };
  }

  /** The index holds `eventId` as `draft` would make it: its correlation entry and type, its partition while queued. */
  async #indexAgrees(eventId: string, state: SlimEvent, draft: DraftEvent): Promise<boolean> {
    if (((await this.#sub.corr.get(draft.correlationId + SEP + eventId)) as string | undefined) !== draft.type) return false;
    if (state.state === 'delivered' || state.state === 'discarded') return true;
    return ((await this.#sub.queue.get(draft.partitionKey + SEP + eventId)) as string | undefined) !== undefined;
  }

  async #commitNew(message: InboundMessage, drafts: DraftEvent[], known: boolean[]): Promise<CommitResult> {
    // Synchronous until the write is queued, so that in-memory state and queued operations agree.
    const keep = drafts.map((_, i) => known[i] !== true);
    const now = Date.now();
    const messageId = this.#ids.next(now);
    const ops: BatchOp[] = [];
    const eventIds: string[] = [];
    let skipped = 0;
    const claimed: string[] = [];
    const touched = new Set<string>();
    const committed: CanonicalEvent[] = [];
    drafts.forEach((draft, i) => {
      if (!keep[i] || this.#inflightIdem.has(draft.idempotencyKey)) {
        skipped++;
        return;
      }
      claimed.push(draft.idempotencyKey);
      this.#inflightIdem.add(draft.idempotencyKey);
      eventIds.push(this.#enqueueEvent(draft, messageId, now, ops, touched, committed));
    });
    this.#putPartitionCounts(touched, ops);

    const record = messageRecord(message, messageId, message.receivedAt, eventIds, committed, 0);
    ops.push({ type: 'put', sublevel: this.#sub.msg, key: messageId, value: { log: messagePayload(record, message.raw, message.ack), duplicates: 0 } satisfies LogEntry });
    if (message.dedupKey !== undefined) {
      ops.push({ type: 'put', sublevel: this.#sub.dedup, key: message.dedupKey, value: messageId });
      this.#keyFilter.add(this.#prefix.dedup + message.dedupKey);
    }
    for (const term of searchTermsOf(message)) ops.push({ type: 'put', sublevel: this.#sub.search, key: term + SEP + messageId, value: '' });

    this.#intake.received++;
    if (message.status === 'accepted') this.#intake.accepted++;
    else this.#intake.rejected++;

    try {
      await this.#writeClaiming(ops, claimed, committed);
    } catch (err) {
      // Not stored: the caller answers negatively and counts it as such (countRejectedWithoutCommit).
      this.#intake.received--;
      if (message.status === 'accepted') this.#intake.accepted--;
      else this.#intake.rejected--;
      throw err;
    }
    // Observers (the relay reads LevelDB) hear of the events once LevelDB has them.
    void this.#committer.applied().then(() => {
      if (committed.length > 0 && this.#onCommitted) {
        try {
          this.#onCommitted(committed);
        } catch {
          /* an observer never fails a commit */
        }
      }
    });
    return { messageId, duplicate: false, ack: message.ack, eventIds, skippedEvents: skipped };
  }

  /**
   * Events the gateway derives itself, and `docs` (local documents, e.g. the mark that an episode
   * raised its event) in the same atomic batch: after a failure or a crash, both or neither.
   */
  async commitLocal(drafts: DraftEvent[], docs: LocalDoc[] = []): Promise<string[]> {
    this.#assertWritable();
    // Synchronous from the look-up to the claim: a commit of the same key that becomes durable
    // meanwhile cannot slip between them.
    const known = this.#lookup(drafts)[1];
    const keep = drafts.map((_, i) => known[i] !== true);
    const now = Date.now();
    const ops: BatchOp[] = [];
    const ids: string[] = [];
    const claimed: string[] = [];
    const touched = new Set<string>();
    const queued: CanonicalEvent[] = [];
    drafts.forEach((draft, i) => {
      if (!keep[i] || this.#inflightIdem.has(draft.idempotencyKey)) return;
      claimed.push(draft.idempotencyKey);
      this.#inflightIdem.add(draft.idempotencyKey);
      ids.push(this.#enqueueEvent(draft, '', now, ops, touched, undefined, queued));
    });
    this.#putPartitionCounts(touched, ops);
    for (const doc of docs) ops.push(this.#docOp(doc));
    if (ops.length === 0) return ids;
    await this.#writeClaiming(ops, claimed, queued);
    return ids;
  }

  /** The put (or delete) of a local document. */
  #docOp(doc: LocalDoc): BatchOp {
    const key = doc.namespace + SEP + doc.key;
    if (!doc.delete) this.#keyFilter.add(this.#prefix.doc + key);
    return doc.delete ? { type: 'del', sublevel: this.#sub.doc, key } : { type: 'put', sublevel: this.#sub.doc, key, value: doc.value };
  }

  /**
   * Write `ops`, keeping the idempotency keys `claimed` claimed in memory until LevelDB has them:
   * the write may be answered at its batch's commit point, before a look-up could find them there.
   */
  async #writeClaiming(ops: BatchOp[], claimed: string[], events: readonly CanonicalEvent[]): Promise<void> {
    const unmark = this.#markUnapplied(events);
    const release = (): void => {
      for (const key of claimed) this.#inflightIdem.delete(key);
      unmark();
    };
    try {
      await this.#write(ops);
    } catch (err) {
      // Not stored: an accession whose events it queued is read from LevelDB from now on.
      for (const e of events) this.#recentCorrelations.delete(e.correlationId);
      release();
      throw err;
    }
    void this.#committer.applied().then(release);
  }

  /**
   * Keep `events` (queued in a batch about to be written) under their correlation ids until
   * LevelDB has that batch: call the returned function once it has (or failed). See #deriverView.
   */
  #markUnapplied(events: readonly CanonicalEvent[]): () => void {
    if (events.length === 0) return () => undefined;
    const byId = new Map<string, CanonicalEvent[]>();
    for (const e of events) {
      const list = byId.get(e.correlationId);
      if (list) list.push(e);
      else byId.set(e.correlationId, [e]);
    }
    for (const [id, list] of byId) {
      const entry = this.#unappliedCorrelations.get(id);
      if (entry) {
        entry.batches++;
        entry.events.push(...list);
      } else this.#unappliedCorrelations.set(id, { batches: 1, events: [...list] });
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      for (const [id, list] of byId) {
        const entry = this.#unappliedCorrelations.get(id);
        if (!entry) continue;
        if (--entry.batches <= 0) {
          this.#unappliedCorrelations.delete(id);
          continue;
        }
        const gone = new Set(list);
        entry.events = entry.events.filter((e) => !gone.has(e));
      }
    };
  }


  /** Called as `event` is queued, before its id is added to the key filter (see #recentCorrelations). */
  #rememberRecent(event: CanonicalEvent): void {
    const id = event.correlationId;
    const recent = this.#recentCorrelations.get(id);
    if (recent) {
      recent.push(event);
      return;
    }
    // Only an accession with no event stored before: the filter holds every stored one's id.
    if (!this.#keyFilter.ready || this.#keyFilter.mayContain(CORRELATION_IN_FILTER + id)) return;
    this.#recentCorrelations.set(id, [event]);
    if (this.#recentCorrelations.size > RECENT_CORRELATIONS) {
      const oldest = this.#recentCorrelations.keys().next().value as string;
      this.#recentCorrelations.delete(oldest);
    }
  }

  async #loadPartitionCount(partitionKey: string): Promise<void> {
    if (this.#pcount.has(partitionKey)) return;
    const mayExist = this.#keyFilter.mayContain(this.#prefix.pcount + partitionKey);
    const stored = mayExist ? ((await this.#sub.pcount.get(partitionKey)) as number | undefined) : undefined;
    if (!this.#pcount.has(partitionKey)) this.#pcount.set(partitionKey, stored ?? 0);
  }

  /** Synchronous: build the operations for one new event and update in-memory state. */
  #enqueueEvent(draft: DraftEvent, messageId: string, now: number, ops: BatchOp[], touched: Set<string>, out?: CanonicalEvent[], queued?: CanonicalEvent[]): string {
    const id = this.#ids.next(now);
    const event = newEvent(draft, id, messageId);
    queued?.push(event);
    const ahead = this.#dueClock.aheadMs;
    const dueAt = ahead > 0 ? this.#dueAfterStep(event, now, ahead) : now + Math.max(0, this.#dueDelay(event));
    const stored: StoredEvent = { event, state: 'pending', attempts: 0, dueAt, ambiguous: false };
    if (out) {
      // A message's events: the body goes into the message's record (`out`), `e` keeps the state.
      out.push(event);
      this.#bodyIn.set(stored, messageId);
      this.#cacheBody(event);
    }
    const pk = event.partitionKey;
    ops.push({ type: 'put', sublevel: this.#sub.evt, key: id, value: stored });
    ops.push({ type: 'put', sublevel: this.#sub.idem, key: event.idempotencyKey, value: id });
    this.#keyFilter.add(this.#prefix.idem + event.idempotencyKey);
    ops.push({ type: 'put', sublevel: this.#sub.corr, key: event.correlationId + SEP + id, value: event.type });
    this.#rememberRecent(event);
    this.#keyFilter.add(CORRELATION_IN_FILTER + event.correlationId);
    ops.push({ type: 'put', sublevel: this.#sub.queue, key: pk + SEP + id, value: '' });
    ops.push({ type: 'put', sublevel: this.#sub.pending, key: id, value: '' });
    const before = this.#pcount.get(pk) ?? 0;
    this.#pcount.set(pk, before + 1);
    touched.add(pk);
    // A partition has a due entry only while it has undelivered events and is neither leased nor
    // blocked; the first event of an empty partition creates it.
    if (before === 0) ops.push({ type: 'put', sublevel: this.#sub.due, key: timeKey(dueAt) + SEP + pk, value: '' });
    this.#counts.pending++;
    if (this.#oldestPendingId === undefined && dueAt <= this.#dueClock.now()) {
      this.#oldestPendingId = id;
      this.#oldestWaitingSince = Math.max(idTime(id), dueAt);
    }
    return id;
  }

  /**
   * A new event's due time while the due clock is `ahead` of the system clock (a step back being
   * absorbed, wall-clock.ts; the clock is read every second, so `ahead` is at most a second old and
   * half a second too large). Due at once stays `now` (due on any clock); a window or a slot is
   * counted on the due clock, which the lease compares due times with. Counted on the system
   * clock, a window's end lay hours behind the due clock: for twice the step every batched event
   * was due at once, one stock picking per analyzer run instead of one per window
   * (test/unit/clock-step-back-windows.test.ts). Not taken while the clocks agree: no extra work
   * per committed message.
   */
  #dueAfterStep(event: CanonicalEvent, now: number, ahead: number): number {
    const dueNow = now + ahead;
    const delay = Math.max(0, this.#dueDelay(event, dueNow));
    return delay === 0 ? now : dueNow + delay;
  }

  /**
   * A partition's count reached 0 and `written` deletes its `n` key. Until LevelDB has that
   * batch, a look-up there would read the count from before, so the cache keeps the 0 (it is
   * authoritative) and forgets it only once the batch is applied, if no event came meanwhile.
   * (Forgotten at once, a message of the same order arriving in that window read the old count,
   * took its partition for non-empty and gave it no due entry: its events were never leased.)
   */
  #forgetEmptyPartition(pk: string, written: Promise<unknown>): void {
    void written
      .then(() => this.#committer.applied())
      .then(
        () => {
          if (this.#pcount.get(pk) === 0) this.#pcount.delete(pk);
        },
        () => undefined, // a failed batch clears the whole cache (the committer's undo)
      );
  }

  /** One count write per partition touched by a commit (the last value wins in the batch anyway). */
  #putPartitionCounts(touched: Set<string>, ops: BatchOp[]): void {
    for (const pk of touched) {
      ops.push({ type: 'put', sublevel: this.#sub.pcount, key: pk, value: this.#pcount.get(pk) ?? 0 });
      this.#keyFilter.add(this.#prefix.pcount + pk);
    }
  }

  /**
   * When each endpoint last handed a message over (whatever became of it), kept across restarts
   * (`meta!endpoints`, written with the next batch): the status shows when a link last spoke,
   * not "never" after every restart.
   */
  lastMessageAt(): Readonly<Record<string, string>> {
    return { ...this.#lastAt };
  }

  #noteLastMessage(endpoint: string, at: string): void {
    if ((this.#lastAt[endpoint] ?? '') >= at) return;
    this.#lastAt[endpoint] = at;
    this.#lastAtChanged = true;
  }

  countRejectedWithoutCommit(): void {
    this.#intake.received++;
    this.#intake.rejected++;
  }

  // ---------------------------------------------------------------- relay side

  #withQueueLock<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queueLock.then(fn, fn);
    this.#queueLock = run.catch(() => undefined);
    return run;
  }

  lease(options: LeaseOptions): Promise<Lease[]> {
    return this.#withQueueLock(() => this.#lease(options));
  }

  async #lease(options: LeaseOptions): Promise<Lease[]> {
    if (this.#health === 'closed') return [];
    // Completions are queued without holding the lock until durable, and commits answered at their
    // commit point may still be on their way into LevelDB: read what they all wrote.
    await this.#committer.barrier();
    const now = options.now ?? this.#dueClock.now();
    const maxPer = Math.max(1, options.maxPerPartition ?? 1);
    const sameType = options.sameTypeOnly ?? true;
    const leases: Lease[] = [];
    const ops: BatchOp[] = [];
    const scanLimit = Math.max(options.limit * 4, 16);
    const dueEntries: string[] = [];
    for await (const key of this.#sub.due.keys({ lt: timeKey(now) + AFTER, limit: scanLimit })) dueEntries.push(key as string);

    // Due partitions are taken in chunks: the queue heads of a chunk first, then their events in
    // one read, so bodies that are not cached come from the message records side by side rather
    // than one partition after another.
    let scanned = 0;
    // The queue counts this call changes, applied to the counters when its batch is queued, with
    // no await in between (as prune() does): the next chunk's reads yield, and a commit sealed
    // meanwhile carried the first chunk's leases to disk before their batch; when that batch then
    // failed, its undo took back only its own share and the events stayed in flight in the
    // counters, leased by nobody (store-audit-2.test.ts).
    const delta = emptyCounts();
    while (leases.length < options.limit && scanned < dueEntries.length) {
      const chunk: Array<{ dueKey: string; pk: string; ids: string[] }> = [];
      while (chunk.length < options.limit - leases.length && scanned < dueEntries.length) {
        // As many due partitions as the chunk has room for, their queue heads read side by side;
        // a partition found empty leaves its room to the next due entries. The same entries, in
        // the same order, as read one after another. One at a time, the heads of the relay's lease
        // of 800 partitions were 800 iterators in a row, and the larger part of the lease's time,
        // growing with the database: 108 of 200 ms per lease at 100,000 events queued, 188 of
        // 285 ms at 1,000,000 (bench/relay.ts), time in which the relay posts nothing (it waits
        // for its lease before each round).
        const wave: Array<{ dueKey: string; pk: string }> = [];
        while (wave.length < options.limit - leases.length - chunk.length && scanned < dueEntries.length) {
          const dueKey = dueEntries[scanned++] as string;
          const pk = dueKey.slice(13);
          if (this.#leased.has(pk)) {
            ops.push({ type: 'del', sublevel: this.#sub.due, key: dueKey });
            continue;
          }
          wave.push({ dueKey, pk });
        }
        const heads = await this.#queueHeads(wave.map((w) => w.pk), maxPer);
        wave.forEach(({ dueKey, pk }, i) => {
          const ids = heads[i] as string[];
          if (ids.length === 0) {
            // Stale entry (the partition emptied by a discard): drop it.
            ops.push({ type: 'del', sublevel: this.#sub.due, key: dueKey });
            return;
          }
          chunk.push({ dueKey, pk, ids });
        });
      }
      const read = await this.#readEvents(chunk.flatMap((h) => h.ids));
      let at = 0;
      // Partitions that lease nothing (blocked, not due yet) leave room for the next chunk.
      for (const h of chunk) this.#leaseHead({ ...h, records: read.slice(at, (at += h.ids.length)) }, now, sameType, ops, leases, delta);
    }
    if (ops.length > 0) {
      addCounts(this.#counts, delta);
      try {
        await this.#write(ops);
      } catch (err) {
        for (const l of leases) this.#leased.delete(l.partitionKey);
        await this.#resync();
        throw err;
      }
    }
    return leases;
  }

  /** The first `maxPer` queued event ids of each partition, QUEUE_HEAD_READS partitions at a time. */
  async #queueHeads(pks: string[], maxPer: number): Promise<string[][]> {
    const out: string[][] = new Array(pks.length);
    let next = 0;
    const reader = async (): Promise<void> => {
      while (next < pks.length) {
        const i = next++;
        const pk = pks[i] as string;
        const ids: string[] = [];
        for await (const qk of this.#sub.queue.keys({ gt: pk + SEP, lt: pk + AFTER, limit: maxPer })) ids.push((qk as string).slice(pk.length + 1));
        out[i] = ids;
      }
    };
    await Promise.all(Array.from({ length: Math.min(QUEUE_HEAD_READS, pks.length) }, reader));
    return out;
  }

  /**
   * One due partition: lease its head group, or move or drop its due entry. What it changes in
   * the queue counts goes to `counts`, which the caller applies when it queues the batch.
   */
  #leaseHead(
    { dueKey, pk, records }: { dueKey: string; pk: string; records: Array<StoredEvent | undefined> },
    now: number,
    sameType: boolean,
    ops: BatchOp[],
    leases: Lease[],
    counts: Counts,
  ): void {
    if (this.#leased.has(pk)) {
      // Taken already, by this call through another due entry of the partition (one left behind
      // by a discard, say) or by an earlier lease: one head, one lease at a time.
      ops.push({ type: 'del', sublevel: this.#sub.due, key: dueKey });
      return;
    }
    const head = records[0];
    if (!head) {
      ops.push({ type: 'del', sublevel: this.#sub.due, key: dueKey });
      return;
    }
    if (head.bodyError && head.state !== 'dead' && head.state !== 'inflight') {
      // Its body is lost (damaged message log): a dead letter with the reason, blocking only its
      // partition, for an operator to discard.
      if (head.state === 'retrying') counts.retrying--;
      else counts.pending--;
      counts.dead++;
      head.state = 'dead';
      head.deadReason = head.bodyError;
      head.lastError = head.bodyError;
      head.event.partitionKey = pk;
      ops.push({ type: 'del', sublevel: this.#sub.due, key: dueKey });
      ops.push({ type: 'put', sublevel: this.#sub.evt, key: head.event.id, value: head });
      ops.push({ type: 'put', sublevel: this.#sub.dead, key: head.event.id, value: pk });
      return;
    }
    if (head.state === 'dead') {
      // Blocked partition: it waits for a replay or discard.
      ops.push({ type: 'del', sublevel: this.#sub.due, key: dueKey });
      return;
    }
    if (head.dueAt > now) {
      ops.push({ type: 'del', sublevel: this.#sub.due, key: dueKey });
      ops.push({ type: 'put', sublevel: this.#sub.due, key: timeKey(head.dueAt) + SEP + pk, value: '' });
      return;
    }
    const group: StoredEvent[] = [];
    for (const rec of records) {
      if (!rec || rec.bodyError || rec.state === 'dead' || rec.state === 'inflight') break;
      if (rec.dueAt > now && group.length > 0) break;
      if (sameType && group.length > 0 && rec.event.type !== head.event.type) break;
      // An event that was being sent when the gateway stopped on its own error goes alone: if it
      // is what stops the gateway, only it is counted towards holding it (see noteCrash).
      if (group.length > 0 && rec.crashes) break;
      group.push(rec);
      if (rec.crashes) break;
    }
    if (group.length === 0) return; // the head's completion is not on disk yet: next turn
    ops.push({ type: 'del', sublevel: this.#sub.due, key: dueKey });
    const leaseRecord: LeaseRecord = { eventIds: group.map((g) => g.event.id), leasedAt: now };
    ops.push({ type: 'put', sublevel: this.#sub.lease, key: pk, value: leaseRecord });
    for (const rec of group) {
      if (rec.state === 'retrying') counts.retrying--;
      else counts.pending--;
      counts.inflight++;
      rec.state = 'inflight';
      ops.push({ type: 'put', sublevel: this.#sub.evt, key: rec.event.id, value: rec });
    }
    this.#leased.set(pk, leaseRecord);
    leases.push({ partitionKey: pk, events: group });
  }

  /**
   * The queue lock covers building the operations (reads of the leased events, in-memory state);
   * waiting for the fsync happens outside it, so completions of many partitions share one batch
   * (group commit) instead of one fsync each.
   */
  async complete(lease: Lease, outcomes: Outcome[]): Promise<void> {
    const durable = await this.#withQueueLock(() => this.#complete(lease, outcomes));
    try {
      await durable.written;
    } catch (err) {
      // The outcomes are lost with the write; the lease stays in LevelDB and the health probe
      // reopens it. An ambiguous retry's hold (its settle time) is kept for that reopening: due at
      // once, the look-up ran while Odoo still ran the write whose answer was lost, found nothing,
      // and the resend landed beside it (a sale order's lines twice:
      // test/integration/review-s23-unrecorded-ambiguous.test.ts).
      const now = this.#dueClock.now();
      let hold = 0;
      for (const o of outcomes) if (o.outcome === 'retry' && o.ambiguous) hold = Math.max(hold, now + (o.delayMs ?? 0), o.notBefore ?? 0);
      if (hold > 0) this.#unrecordedHolds.set(lease.partitionKey, Math.max(hold, this.#unrecordedHolds.get(lease.partitionKey) ?? 0));
      await this.#withQueueLock(() => this.#resync());
      throw new GatewayError('GW_STORE_UNAVAILABLE', `the store could not commit: ${describeError(err)}`, { cause: err });
    }
    if (this.#oldestPendingId !== undefined && lease.events.some((e) => e.event.id === this.#oldestPendingId)) this.#oldestLeft();
  }

  async #complete(lease: Lease, outcomes: Outcome[]): Promise<{ written: Promise<void> }> {
    const pk = lease.partitionKey;
    const held = this.#leased.get(pk);
    if (!held) throw new GatewayError('GW_STORE_STATE', `partition ${pk} is not leased`);
    const byId = new Map(outcomes.map((o) => [o.eventId, o]));
    const ops: BatchOp[] = [];
    const records = await this.#readEvents(held.eventIds);
    // The partition's count is read after the last await, and nothing below awaits: a commit of
    // the same order in between (while the reads waited for LevelDB) raised the cached count and
    // gave the partition no due entry, since it was not empty. Read before the reads, the count
    // missed that event: the delivery wrote the partition empty, with no due entry, and the new
    // event was never leased (store-audit-2.test.ts).
    while (!this.#pcount.has(pk)) await this.#loadPartitionCount(pk);
    let remaining = this.#pcount.get(pk) ?? 0;
    // Due times on the lease's clock (#dueClock): a back-off counted from a clock that had just gone
    // back two hours would come due at once, an ambiguous write's settle time with it. Delivery
    // times too (the done index retention counts ages by): after a restart with the clock at the
    // box's build date, 200 days behind, a delivery was stamped 200 days back, and once the time
    // server answered, the next retention pass deleted it at once, an open order's billing events
    // with it (past their 180-day floor). The due clock never runs behind the newest stored data.
    const dueNow = this.#dueClock.now();
    let nextDue: number | undefined = dueNow;
    let stopped = false;

    for (const rec of records) {
      if (!rec) continue;
      const id = rec.event.id;
      const outcome = stopped ? undefined : byId.get(id);
      if (!outcome) {
        // Released unchanged: back to the state it had before the lease.
        stopped = true;
        this.#counts.inflight--;
        if (rec.attempts > 0) {
          rec.state = 'retrying';
          this.#counts.retrying++;
        } else {
          rec.state = 'pending';
          this.#counts.pending++;
        }
        ops.push({ type: 'put', sublevel: this.#sub.evt, key: id, value: rec });
        continue;
      }
      // The delivery finished (the gateway outlived it): no longer counted towards a crash loop.
      // Once the gateway is stopping on its own error (noteCrash), a retry is no such end: the
      // stop cuts the requests still out (their answer lost: ambiguous), and the event counts.
      if (outcome.outcome !== 'retry' || !this.#crashNote?.eventIds.has(id)) {
        delete rec.crashes;
        this.#crashNote?.eventIds.delete(id);
      }
      switch (outcome.outcome) {
        case 'delivered': {
          rec.state = 'delivered';
          rec.deliveredAt = new Date(dueNow).toISOString();
          rec.ambiguous = false;
          rec.attempts++;
          delete rec.lastError;
          if (outcome.odoo) rec.odoo = outcome.odoo;
          if (outcome.note) rec.note = outcome.note;
          else delete rec.note;
          this.#counts.inflight--;
          this.#counts.delivered++;
          remaining--;
          ops.push({ type: 'put', sublevel: this.#sub.evt, key: id, value: rec });
          ops.push({ type: 'del', sublevel: this.#sub.queue, key: pk + SEP + id });
          ops.push({ type: 'del', sublevel: this.#sub.pending, key: id });
          // The value names the correlation, whose index entry goes with the event (retention).
          ops.push({ type: 'put', sublevel: this.#sub.done, key: timeKey(dueNow) + SEP + id, value: rec.event.correlationId });
          break;
        }
        case 'retry': {
          if (outcome.free !== true) rec.attempts++;
          rec.state = 'retrying';
          rec.ambiguous = rec.ambiguous || outcome.ambiguous === true;
          rec.lastError = outcome.error;
          rec.dueAt = Math.max(dueNow + (outcome.delayMs ?? this.backoffDelay(rec.attempts)), outcome.notBefore ?? 0);
          nextDue = rec.dueAt;
          this.#counts.inflight--;
          this.#counts.retrying++;
          ops.push({ type: 'put', sublevel: this.#sub.evt, key: id, value: rec });
          stopped = true;
          break;
        }
        case 'dead': {
          rec.attempts++;
          rec.state = 'dead';
          rec.deadReason = outcome.reason;
          rec.lastError = outcome.reason;
          this.#counts.inflight--;
          this.#counts.dead++;
          nextDue = undefined;
          ops.push({ type: 'put', sublevel: this.#sub.evt, key: id, value: rec });
          ops.push({ type: 'put', sublevel: this.#sub.dead, key: id, value: pk });
          stopped = true;
          break;
        }
        default:
          outcome satisfies never;
      }
    }
    this.#pcount.set(pk, Math.max(0, remaining));
    if (remaining <= 0) {
      ops.push({ type: 'del', sublevel: this.#sub.pcount, key: pk });
    } else {
      ops.push({ type: 'put', sublevel: this.#sub.pcount, key: pk, value: remaining });
      this.#keyFilter.add(this.#prefix.pcount + pk);
      if (nextDue !== undefined) ops.push({ type: 'put', sublevel: this.#sub.due, key: timeKey(nextDue) + SEP + pk, value: '' });
    }
    ops.push({ type: 'del', sublevel: this.#sub.lease, key: pk });
    this.#leased.delete(pk);
    const written = this.#committer.write(ops);
    if (remaining <= 0) this.#forgetEmptyPartition(pk, written);
    written.catch((err: unknown) => {
      if (this.#health !== 'closed') this.#setHealth('failed', describeError(err));
    });
    return { written };
  }

  /**
   * Exponential backoff with jitter and a ceiling, for attempt n (1-based): drawn evenly between
   * base × (1 − jitter) and base × (1 + jitter), the top of that range cut at the ceiling (not the
   * draw: clamped, half the draws at the ceiling were the ceiling itself, and orders that failed
   * together came due together at every retry once there).
   */
  backoffDelay(attempt: number): number {
    const { initialMs, maxMs, multiplier, jitter } = this.#backoff;
    const base = Math.min(maxMs, initialMs * multiplier ** Math.max(0, attempt - 1));
    const low = base * (1 - jitter);
    const high = Math.min(maxMs, base * (1 + jitter));
    return Math.min(maxMs, Math.max(0, Math.round(low + Math.random() * (high - low))));
  }

  replay(eventId: string, actor: string, reason?: string, guard: OperatorGuard = {}): Promise<StoredEvent> {
    return this.#withQueueLock(async () => {
      await this.#committer.barrier();
      const rec = await this.getEvent(eventId);
      if (!rec) throw new GatewayError('GW_STORE_NOT_FOUND', `no event ${eventId}`);
      checkOperatorGuard(rec, 'replay', guard);
      if (rec.state !== 'dead') throw new GatewayError('GW_STORE_STATE', `event ${eventId} is ${rec.state}; only dead letters can be replayed`);
      // On the due clock, as a discard's time: read from Date.now(), a box booted with its build
      // date stamped the replay in its audit trail months before the event was stored.
      const now = this.#dueClock.now();
      const pk = rec.event.partitionKey;
      rec.state = 'pending';
      // An event that was ever attempted may have reached Odoo before it died (a timeout on the
      // last attempt): the relay must look it up before posting again.
      rec.ambiguous = rec.ambiguous || rec.attempts > 0;
      rec.attempts = 0;
      rec.dueAt = now;
      delete rec.deadReason;
      rec.audit = [...(rec.audit ?? []), { at: new Date(now).toISOString(), actor, action: 'replay', ...(reason ? { reason } : {}) }];
      this.#counts.dead--;
      this.#counts.pending++;
      await this.#write([
        { type: 'put', sublevel: this.#sub.evt, key: eventId, value: rec },
        { type: 'del', sublevel: this.#sub.dead, key: eventId },
        { type: 'put', sublevel: this.#sub.due, key: timeKey(now) + SEP + pk, value: '' },
      ]);
      return rec;
    });
  }

  /** The partition an undelivered event is queued in, by a scan of the queue index ('' if none). */
  async #queuedPartitionOf(eventId: string): Promise<string> {
    const suffix = SEP + eventId;
    for await (const key of this.#sub.queue.keys()) {
      if ((key as string).endsWith(suffix)) return (key as string).slice(0, -suffix.length);
    }
    return '';
  }

  discard(eventId: string, actor: string, reason: string, guard: OperatorGuard = {}): Promise<StoredEvent> {
    return this.#withQueueLock(async () => {
      if (!reason || !reason.trim()) throw new GatewayError('GW_STORE_STATE', 'discarding an event needs a reason for the audit log');
      await this.#committer.barrier();
      const rec = await this.getEvent(eventId);
      if (!rec) throw new GatewayError('GW_STORE_NOT_FOUND', `no event ${eventId}`);
      checkOperatorGuard(rec, 'discard', guard);
      if (rec.state === 'inflight' || rec.state === 'delivered' || rec.state === 'discarded') {
        throw new GatewayError('GW_STORE_STATE', `event ${eventId} is ${rec.state} and cannot be discarded`);
      }
      // An event whose record cannot be read has a stand-in body; its partition is known only
      // when it is a dead letter. Still queued, it is found in the queue index (rare: an operator
      // discarding a damaged event), so that it leaves its own partition.
      const pk = rec.event.partitionKey || (rec.bodyError !== undefined ? await this.#queuedPartitionOf(eventId) : '');
      rec.event.partitionKey = pk;
      await this.#loadPartitionCount(pk);
      // On the due clock, as a delivery's time (see #complete): the audit floor is counted from it.
      const now = this.#dueClock.now();
      const was = rec.state;
      const ops: BatchOp[] = [];
      rec.state = 'discarded';
      rec.audit = [...(rec.audit ?? []), { at: new Date(now).toISOString(), actor, action: 'discard', reason }];
      this.#counts[was === 'dead' ? 'dead' : was === 'retrying' ? 'retrying' : 'pending']--;
      this.#counts.discarded++;
      ops.push({ type: 'put', sublevel: this.#sub.evt, key: eventId, value: rec });
      ops.push({ type: 'del', sublevel: this.#sub.queue, key: pk + SEP + eventId });
      ops.push({ type: 'del', sublevel: this.#sub.pending, key: eventId });
      ops.push({ type: 'del', sublevel: this.#sub.dead, key: eventId });
      ops.push({ type: 'put', sublevel: this.#sub.done, key: timeKey(now) + SEP + eventId, value: rec.event.correlationId });
      const remaining = (this.#pcount.get(pk) ?? 1) - 1;
      const leased = this.#leased.has(pk);
      // The due entry the partition most likely has (a lone head's: at its due or retry time) goes:
      // left behind in an emptied partition, the next event of the order added a second one, and
      // one lease call leased that event twice. Any other entry is stale and harmless: the lease
      // scan takes a partition once, and moves an entry that comes too early to its head's time.
      if (!leased) ops.push({ type: 'del', sublevel: this.#sub.due, key: timeKey(rec.dueAt) + SEP + pk });
      if (remaining <= 0) {
        this.#pcount.set(pk, 0);
        ops.push({ type: 'del', sublevel: this.#sub.pcount, key: pk });
      } else {
        this.#pcount.set(pk, remaining);
        ops.push({ type: 'put', sublevel: this.#sub.pcount, key: pk, value: remaining });
        this.#keyFilter.add(this.#prefix.pcount + pk);
        // The partition's next event is due now, whatever the discarded event was: a dead head
        // blocked the partition, and a retrying one held its due entry at its own retry time (an
        // hour, say), so the order's next result waited for the retry of an event discarded.
        if (!leased) ops.push({ type: 'put', sublevel: this.#sub.due, key: timeKey(now) + SEP + pk, value: '' });
      }
      const written = this.#write(ops);
      if (remaining <= 0) this.#forgetEmptyPartition(pk, written);
      await written;
      if (eventId === this.#oldestPendingId) this.#oldestLeft();
      else void this.#refreshOldest();
      return rec;
    });
  }

  // ---------------------------------------------------------------- reads

  #cacheBody(event: CanonicalEvent): void {
    if (this.#bodies.has(event.id)) return;
    // The oldest entry makes room (a ring of ids: no iterator per insert).
    const evicted = this.#bodyRing[this.#bodyNext];
    if (evicted !== undefined) this.#bodies.delete(evicted);
    this.#bodyRing[this.#bodyNext] = event.id;
    this.#bodyNext = (this.#bodyNext + 1) % BODY_CACHE_SIZE;
    this.#bodies.set(event.id, event);
  }

  /**
   * Events by id, whole: a value that keeps only the state gets its body from its message's
   * record (the cache of recent bodies first). A body that cannot be read (a damaged record) is
   * never made up: the event comes back with `bodyError` and a stand-in body holding its id and
   * its partition (from the dead-letter index, when there), so it can be shown, dead-lettered and
   * discarded, while the rest of the queue flows.
   */
  async #readEvents(ids: string[], fresh = true): Promise<Array<StoredEvent | undefined>> {
    if (ids.length === 0) return [];
    if (fresh) await this.#committer.applied();
    const values = (await this.#sub.evt.getMany(ids)) as Array<StoredEvent | SlimEvent | undefined>;
    const wanted = new Map<string, number[]>();
    const out: Array<StoredEvent | undefined> = new Array(values.length);
    values.forEach((value, i) => {
      if (value === undefined || !('m' in value)) {
        out[i] = value;
        return;
      }
      const { m, ...state } = value;
      const body = this.#bodies.get(ids[i] as string);
      const rec = { event: body, ...state } as StoredEvent;
      this.#bodyIn.set(rec, m);
      out[i] = rec;
      if (!body) {
        const at = wanted.get(m);
        if (at) at.push(i);
        else wanted.set(m, [i]);
      }
    });
    await Promise.all([...wanted].map(async ([messageId, at]) => {
      let events: CanonicalEvent[] | undefined;
      let problem: string | undefined;
      try {
        events = (await this.#readMessage(messageId))?.record.events;
      } catch (err) {
        problem = `GW_STORE_CORRUPT: the event's body could not be read from the record of message ${messageId} (${describeError(err)})`;
      }
      for (const i of at) {
        const rec = out[i] as StoredEvent;
        const body = events?.find((e) => e.id === ids[i]);
        if (body) {
          rec.event = body;
          this.#cacheBody(body);
          continue;
        }
        rec.bodyError = problem ?? `GW_STORE_CORRUPT: the event's body is not in the record of message ${messageId}`;
        const partitionKey = ((await this.#sub.dead.get(ids[i])) as string | undefined) ?? '';
        // A stand-in, typed as an event only so that listings can show it; nothing delivers it.
        rec.event = { id: ids[i], type: 'unreadable', partitionKey, correlationId: '', idempotencyKey: '', source: { messageId } } as unknown as CanonicalEvent;
      }
    }));
    return out;
  }

  async getEvent(eventId: string): Promise<StoredEvent | undefined> {
    return (await this.#readEvents([eventId]))[0];
  }

  async getEventByKey(idempotencyKey: string): Promise<StoredEvent | undefined> {
    // Analyzer endpoints ask this for every final result before its commit (events/earlier-reports.ts),
    // almost always for a key never written: the key filter answers that without waiting for
    // LevelDB (#lookup reads it the same way). A key it may hold is read once LevelDB has it.
    if (!this.#keyFilter.mayContain(this.#prefix.idem + idempotencyKey)) return undefined;
    await this.#committer.applied();
    const id = (await this.#sub.idem.get(idempotencyKey)) as string | undefined;
    return id === undefined ? undefined : this.getEvent(id);
  }

  /** A message with this dedup key is stored (duplicates of it are answered with its stored ACK). */
  dedupKeyUsed(dedupKey: string): Promise<boolean> {
    return this.#keyStored('dedup', dedupKey);
  }

  idempotencyKeyUsed(idempotencyKey: string): Promise<boolean> {
    return this.#keyStored('idem', idempotencyKey);
  }

  /** A key of this sublevel is stored: the key filter first, then LevelDB once the commits before are applied. */
  async #keyStored(sub: 'dedup' | 'idem', key: string): Promise<boolean> {
    if (!this.#keyFilter.mayContain(this.#prefix[sub] + key)) return false;
    await this.#committer.applied();
    return (await this.#sub[sub].get(key)) !== undefined;
  }

  async listEvents(query: EventQuery): Promise<StoredEvent[]> {
    return (await this.#listEvents(query, Number.POSITIVE_INFINITY)).events;
  }

  /**
   * A page of GET /api/events and the `after` of the next. A filter the walked index does not
   * answer (`state=discarded` among thousands of delivered events in the completion index,
   * `state=retrying` among a backlog, a `type`) reads at most LISTING_READ_BUDGET events, each
   * with its body: the page then ends where the reading stopped, `next` naming the place (a short
   * page with a `next` is not the end). Before, two discarded events among 100,000 delivered ones
   * cost a read of all of them per request.
   */
  listEventPage(query: EventQuery): Promise<EventPage> {
    return this.#listEvents(query, LISTING_READ_BUDGET);
  }

  async #listEvents(query: EventQuery, budget: number): Promise<EventPage> {
    await this.#committer.applied();
    const limit = Math.min(Math.max(1, query.limit ?? 100), 1000);
    const out: StoredEvent[] = [];
    const accept = (rec: StoredEvent | undefined): boolean =>
      rec !== undefined && (query.state === undefined || rec.state === query.state) && (query.type === undefined || rec.event.type === query.type);
    /**
     * Reads the events of `keys` (an index walked in listing order) in chunks until the page is
     * full, the budget is spent or the index ends. `cursor` is the `after` of a key's place.
     */
    const walk = async (keys: AsyncIterable<unknown>, idOf: (key: string) => string, cursor: (key: string) => string): Promise<{ full: true } | { full: false; next: string | null }> => {
      let chunk: string[] = [];
      let scanned = 0;
      let lastKey: string | undefined;
      const flush = async (): Promise<boolean> => {
        scanned += chunk.length;
        const full = await this.#pushEvents(chunk, out, accept, limit);
        chunk = [];
        return full;
      };
      for await (const raw of keys) {
        const key = raw as string;
        chunk.push(idOf(key));
        lastKey = key;
        if (chunk.length >= 256 || scanned + chunk.length >= budget) {
          if (await flush()) return { full: true };
          if (scanned >= budget) return { full: false, next: cursor(lastKey) };
        }
      }
      return (await flush()) ? { full: true } : { full: false, next: null };
    };
    const byId = (key: string): string => key;
    let walked: { full: true } | { full: false; next: string | null };
    switch (query.state) {
      case 'dead':
        walked = await walk(this.#sub.dead.keys(query.after !== undefined ? { gt: query.after } : {}), byId, byId);
        break;
      case 'pending':
      case 'inflight':
      case 'retrying':
        walked = await walk(this.#sub.pending.keys(query.after !== undefined ? { gt: query.after } : {}), byId, byId);
        break;
      case 'delivered':
      case 'discarded': {
        // The done index is keyed by completion time: newest first, and `after` (the last id of
        // the previous page) continues from that event's place, towards older ones. (An id
        // comparison repeated the first page: ids and completion times run in different orders.)
        let upper: string | undefined;
        if (query.after !== undefined) {
          upper = await this.#finishedPlace(query.after);
          if (upper === undefined) return { events: out, next: null }; // not a finished event: nothing comes after it in this listing
        }
        const keys = this.#sub.done.keys({ reverse: true, ...(upper !== undefined ? { lt: upper } : {}) });
        walked = await walk(keys, (key) => key.slice(13), (key) => key.replace(SEP, '.'));
        if (!walked.full) return { events: out, next: walked.next };
        const last = out[out.length - 1]!;
        const at = finishedAt(last);
        if (at === undefined) return { events: out, next: null };
        const place = timeKey(at) + SEP + last.event.id;
        this.#pageEnds.delete(last.event.id);
        this.#pageEnds.set(last.event.id, place);
        if (this.#pageEnds.size > PAGE_END_MEMORY) this.#pageEnds.delete(this.#pageEnds.keys().next().value as string);
        return { events: out, next: place.replace(SEP, '.') };
      }
      case undefined:
        walked = await walk(this.#sub.evt.keys(query.after !== undefined ? { gt: query.after } : {}), byId, byId);
        break;
      default:
        query.state satisfies never;
        walked = { full: false, next: null };
    }
    return { events: out, next: walked.full ? out[out.length - 1]!.event.id : walked.next };
  }

  /**
   * Where the delivered/discarded listing continues after `after` (an `o` key: older entries sort
   * before it), or undefined when nothing does (an event not finished).
   *
   * A script pages with the last id of the previous page; between two pages retention may have
   * removed that event (the oldest go first, and the page's last is the oldest of the page), while
   * older ones it keeps stay — the billing events of accessions not billed in full. Its place is
   * then taken from the page ends this store handed out (the last PAGE_END_MEMORY), else, after a
   * restart, from the time it was stored (its id): it finished no earlier, so nothing listed
   * already comes again; older events that finished while it waited for Odoo (the relay's burst
   * after an outage) are then passed over, which `next` (the place itself) avoids.
   */
  async #finishedPlace(after: string): Promise<string | undefined> {
    const place = /^([0-9a-f]{12})\.(.+)$/.exec(after);
    if (place) return place[1]! + SEP + place[2]!;
    const cursor = (await this.#readEvents([after]))[0];
    if (cursor) {
      const at = finishedAt(cursor);
      return at === undefined ? undefined : timeKey(at) + SEP + after;
    }
    const handedOut = this.#pageEnds.get(after);
    if (handedOut !== undefined) return handedOut;
    const stored = idTime(after);
    return /^[0-9a-f]{12}/.test(after) && Number.isFinite(stored) ? timeKey(stored) + SEP + after : undefined;
  }

  async #pushEvents(ids: string[], out: StoredEvent[], accept: (r: StoredEvent | undefined) => boolean, limit: number): Promise<boolean> {
    if (ids.length === 0) return out.length >= limit;
    const recs = await this.#readEvents(ids);
    for (const rec of recs) {
      if (accept(rec)) out.push(rec as StoredEvent);
      if (out.length >= limit) return true;
    }
    return false;
  }

  async getMessage(messageId: string): Promise<{ message: StoredMessage; raw: Buffer; ack?: Buffer } | undefined> {
    const stored = await this.#readMessage(messageId);
    if (!stored) return undefined;
    return { message: publicMessage(stored.record), raw: stored.raw, ...(stored.ack ? { ack: stored.ack } : {}) };
  }

  /** A message with its bytes, from the packed record (or the sublevels of the earlier layout). */
  async #readMessage(messageId: string): Promise<ReadMessage | undefined> {
    await this.#committer.applied();
    const value = (await this.#sub.msg.get(messageId)) as Buffer | undefined;
    return value ? this.#decodeStored(messageId, value) : undefined;
  }

  async #decodeStored(messageId: string, value: Buffer): Promise<ReadMessage> {
    const pointer = decodePointer(value);
    if (pointer) {
      const payload = await this.#log.read(pointer);
      const decoded = decodeMessage<MessageRecord>(payload);
      if ('legacy' in decoded) throw new GatewayError('GW_STORE_CORRUPT', `message ${messageId}: unknown record format in the message log`);
      // The count lives in the pointer: the logged record is never rewritten.
      decoded.record.duplicates = pointer.duplicates;
      return { ...decoded, pointer, payload };
    }
    const decoded = decodeMessage<MessageRecord>(value);
    if (!('legacy' in decoded)) return decoded;
    const raw = ((await this.#sub.raw.get(messageId)) as Buffer | undefined) ?? Buffer.alloc(0);
    const ack = (await this.#sub.ack.get(messageId)) as Buffer | undefined;
    return { record: decoded.legacy, raw, ...(ack ? { ack } : {}) };
  }

  async listMessages(query: MessageQuery): Promise<StoredMessage[]> {
    return (await this.#listMessages(query, Number.POSITIVE_INFINITY)).messages;
  }

  /**
   * A page of the message browser (GET /api/messages) and the `before` of the next. A filter no
   * index answers (an endpoint without a search term) reads at most LISTING_READ_BUDGET records:
   * the message log holds no endpoint index, so an analyzer with three messages among 300,000 of
   * the LIS made every request read all of them from disk. The page then ends where the reading
   * stopped, `next` naming the place (a short page with a `next` is not the end).
   */
  listMessagePage(query: MessageQuery): Promise<MessagePage> {
    return this.#listMessages(query, LISTING_READ_BUDGET);
  }

  async #listMessages(query: MessageQuery, budget: number): Promise<MessagePage> {
    await this.#committer.applied();
    const limit = Math.min(Math.max(1, query.limit ?? 50), 1000);
    const term = query.controlId ?? query.q;
    const out: StoredMessage[] = [];
    // The search index holds control ids and the other search terms (accession, specimen id)
    // under one prefix: a control-id query keeps the messages whose control id it is.
    const accept = (r: MessageRecord | undefined): r is MessageRecord =>
      r !== undefined && (query.endpoint === undefined || r.endpoint === query.endpoint) && (query.controlId === undefined || r.controlId === query.controlId);
    if (term !== undefined && term !== '') {
      // Index entries in pages, newest first, until `limit` messages match or the term's range
      // ends: entries of other endpoints (a control id reused by an analyzer) or of other fields
      // may come first, any number of them.
      const page = Math.min(limit * 4, 400);
      let upper = query.before !== undefined ? term + SEP + query.before : term + AFTER;
      for (;;) {
        const keys: string[] = [];
        for await (const key of this.#sub.search.keys({ gt: term + SEP, lt: upper, reverse: true, limit: page })) keys.push(key as string);
        const ids = keys.map((key) => key.slice(term.length + 1));
        const values = (await this.#sub.msg.getMany(ids)) as Array<Buffer | undefined>;
        const records = await Promise.all(values.map((v, i) => (v ? this.#recordOf(ids[i] as string, v) : undefined)));
        for (const r of records) {
          if (accept(r)) out.push(publicMessage(r));
          if (out.length >= limit) return { messages: out, next: out[out.length - 1]!.id };
        }
        if (keys.length < page) return { messages: out, next: null };
        upper = keys[keys.length - 1] as string;
      }
    }
    // Pointers in pages, their records read from the message log side by side.
    const page = Math.min(limit * 2, 200);
    let upper = query.before;
    let read = 0;
    for (;;) {
      const room = Math.min(page, budget - read);
      if (room <= 0) return { messages: out, next: upper ?? null };
      const entries: Array<[string, Buffer]> = [];
      for await (const entry of this.#sub.msg.iterator({ ...(upper !== undefined ? { lt: upper } : {}), reverse: true, limit: room }) as AsyncIterable<[string, Buffer]>) entries.push(entry);
      read += entries.length;
      const records = await Promise.all(entries.map(([id, v]) => this.#recordOf(id, v)));
      for (const r of records) {
        if (accept(r)) out.push(publicMessage(r));
        if (out.length >= limit) return { messages: out, next: out[out.length - 1]!.id };
      }
      if (entries.length < room) return { messages: out, next: null };
      upper = (entries[entries.length - 1] as [string, Buffer])[0];
    }
  }

  /** The metadata of a stored message (a damaged log record is listed as unreadable, not thrown). */
  async #recordOf(messageId: string, value: Buffer): Promise<MessageRecord | undefined> {
    const pointer = decodePointer(value);
    if (!pointer) return decodeMessageRecord<MessageRecord>(value);
    try {
      const record = decodeMessageRecord<MessageRecord>(await this.#log.read(pointer));
      record.duplicates = pointer.duplicates;
      return record;
    } catch {
      return undefined;
    }
  }

  eventsByCorrelation(correlationId: string, types?: EventType[]): Promise<StoredEvent[]> {
    return this.#eventsByCorrelation(correlationId, types, true);
  }

  /** `fresh`: wait until LevelDB has every batch in flight first (see #deriverView for when not). */
  async #eventsByCorrelation(correlationId: string, types: EventType[] | undefined, fresh: boolean): Promise<StoredEvent[]> {
    // An accession no event was ever queued for (the filter took every `c` entry's id, and each
    // new one is added as its event is queued): nothing to read, no iterator (each new order's
    // derivation; before, an iterator over an empty range per billing message).
    if (!this.#keyFilter.mayContain(CORRELATION_IN_FILTER + correlationId)) return [];
    if (fresh) await this.#committer.applied();
    const ids: string[] = [];
    for await (const [key, type] of this.#sub.corr.iterator({ gt: correlationId + SEP, lt: correlationId + AFTER }) as AsyncIterable<[string, string]>) {
      if (types && !types.includes(type as EventType)) continue;
      ids.push(key.slice(correlationId.length + 1));
    }
    const recs = await this.#readEvents(ids, fresh);
    return recs.filter((r): r is StoredEvent => r !== undefined);
  }

  stats(): QueueStats {
    const since = this.#oldestWaitingSince;
    return {
      pending: this.#counts.pending,
      inFlight: this.#counts.inflight,
      retrying: this.#counts.retrying,
      deadLettered: this.#counts.dead,
      delivered: this.#counts.delivered,
      discarded: this.#counts.discarded,
      blockedPartitions: this.#counts.dead,
      oldestPendingAgeSeconds: since === undefined ? 0 : Math.max(0, Math.floor((this.#dueClock.now() - since) / 1000)),
    };
  }

  writeStalled(): { forMs: number } | undefined {
    const ms = this.#committer.oldestUnwrittenMs();
    return ms !== undefined && ms >= this.#writeStallMs ? { forMs: ms } : undefined;
  }

  retentionHeld(): { accessions: number; first?: string } {
    for (const [correlationId, error] of this.#unremembered) return { accessions: this.#unremembered.size, first: `${correlationId}: ${error}` };
    return { accessions: 0 };
  }

  intake(): IntakeCounters {
    return { ...this.#intake };
  }

  /**
   * The event waiting longest for Odoo: among undelivered events that are due (an event waiting
   * for its scheduled slot or its retry time is not waiting for Odoo) and not dead, the one due
   * the longest, counted from max(stored time, due time). The undelivered index is walked in id
   * (stored) order, reading only the small state records, and stops as soon as an id is younger
   * than the best so far (nothing after it can have waited longer): with Odoo down and a long
   * backlog that is the first chunk. Events not due yet at the front (a scheduled hour's invoices)
   * are stepped over, at most OLDEST_SCAN_LIMIT of them per refresh.
   */
  async #refreshOldest(): Promise<void> {
    if (this.#health === 'closed') return;
    // Only the refresh begun last sets the result: one begun earlier (the 1 s timer's) may have
    // read the queue before a delivery was written and finish after the refresh that followed it.
    const generation = ++this.#oldestGeneration;
    try {
      // The undelivered index holds dead letters too: their state records say so, and they are
      // stepped over like events not due yet (dead letters have their own count and alarm:
      // counted here, they made the queue look stale with nothing waiting).
      const now = this.#dueClock.now();
      let best: { id: string; since: number } | undefined;
      let chunk: string[] = [];
      let scanned = 0;
      const consider = async (): Promise<void> => {
        const ids = chunk;
        chunk = [];
        const states = (await this.#sub.evt.getMany(ids)) as Array<Pick<StoredEvent, 'state' | 'dueAt'> | undefined>;
        states.forEach((st, i) => {
          if (!st || st.state === 'dead' || st.dueAt > now) return;
          const id = ids[i] as string;
          const since = Math.max(idTime(id), st.dueAt);
          if (!best || since < best.since) best = { id, since };
        });
      };
      for await (const key of this.#sub.pending.keys({ limit: OLDEST_SCAN_LIMIT })) {
        const id = key as string;
        if (best && idTime(id) >= best.since) break;
        chunk.push(id);
        if (++scanned >= OLDEST_SCAN_LIMIT) break;
        if (chunk.length >= 64) await consider();
      }
      if (chunk.length > 0) await consider();
      const found = best as { id: string; since: number } | undefined;
      if (generation !== this.#oldestGeneration) return;
      this.#oldestPendingId = found?.id;
      this.#oldestWaitingSince = found?.since;
    } catch {
      /* closed underneath us */
    }
  }

  /**
   * The oldest waiting event has been delivered or discarded (its write is done): it stops counting
   * at once, and the next oldest is looked up. Left in place until the look-up finished, a status
   * poll meanwhile read its age: a quiet queue looked stale (QUEUE_STALE) after its last delivery.
   * An event committed meanwhile becomes the oldest as usual (#queueEvent); the look-up, begun
   * after it, finds it or an older one.
   */
  #oldestLeft(): void {
    this.#oldestPendingId = undefined;
    this.#oldestWaitingSince = undefined;
    void this.#refreshOldest();
  }

  // ---------------------------------------------------------------- documents

  async getDoc<T>(namespace: string, key: string): Promise<T | undefined> {
    // Never written (the key filter holds every document's key, added as its write is queued).
    if (!this.#keyFilter.mayContain(this.#prefix.doc + namespace + SEP + key)) return undefined;
    // A document written in a batch with messages is answered at that batch's commit point.
    await this.#committer.applied();
    return (await this.#sub.doc.get(namespace + SEP + key)) as T | undefined;
  }

  async putDoc(namespace: string, key: string, value: unknown): Promise<void> {
    this.#keyFilter.add(this.#prefix.doc + namespace + SEP + key);
    await this.#write([{ type: 'put', sublevel: this.#sub.doc, key: namespace + SEP + key, value }]);
  }

  async deleteDoc(namespace: string, key: string): Promise<void> {
    await this.#write([{ type: 'del', sublevel: this.#sub.doc, key: namespace + SEP + key }]);
  }

  async listDocs<T>(namespace: string, options: { prefix?: string; limit?: number; after?: string } = {}): Promise<Array<{ key: string; value: T }>> {
    await this.#committer.applied();
    const start = namespace + SEP + (options.prefix ?? '');
    const from = options.after !== undefined && namespace + SEP + options.after >= start ? { gt: namespace + SEP + options.after } : { gte: start };
    const out: Array<{ key: string; value: T }> = [];
    // LevelDB orders keys by their UTF-8 bytes: `start + '\uffff'` sorted before keys whose next
    // character lies beyond the BMP (an emoji: 4 bytes from 0xF0), which were left out.
    const upper = options.prefix ? prefixEnd(start) ?? namespace + AFTER : namespace + AFTER;
    for await (const [key, value] of this.#sub.doc.iterator({ ...from, lt: upper, limit: options.limit ?? -1 }) as AsyncIterable<[string, T]>) {
      out.push({ key: key.slice(namespace.length + 1), value });
    }
    return out;
  }

  // ---------------------------------------------------------------- retention

  /**
   * Prune delivered/discarded events older than the retention age (or beyond the size cap), and
   * messages whose events are all finished. Dead letters and rejected messages keep a longer floor.
   * Work per call is bounded; call again until it returns 0.
   */
  async prune(now: number = this.#retentionNow(), maxWork = 5_000): Promise<number> {
    const pruned = await this.#pruneEvents(now, maxWork);
    // Documents the hold keeps in step with its events (billing's memory) go at the dead-letter floor.
    const expire = this.#retentionHold?.expire;
    if (!expire || this.#health === 'closed') return pruned;
    // Under the queue lock, as the passes that write them (RetentionHold.remember).
    const before = now - this.#retention.deadLetterRetentionDays * DAY_MS;
    const expired = await this.#withQueueLock(async () => (this.#health === 'closed' ? 0 : expire.call(this.#retentionHold, before, this))).catch(() => 0);
    return pruned + expired;
  }

  #pruneEvents(now: number, maxWork: number): Promise<number> {
    return this.#withQueueLock(async () => {
      if (this.#health === 'closed') return 0;
      await this.#committer.barrier();
      const cutoff = now - this.#retention.retentionDays * DAY_MS;
      const rejectedCutoff = now - this.#retention.deadLetterRetentionDays * DAY_MS;
      const ops: BatchOp[] = [];
      let finished = this.#counts.delivered + this.#counts.discarded;
      // A sweep of the done index starts from its head at most every RETENTION_SWEEP_MS; the passes
      // in between go on after the last event kept (a kept discard, an event the hold keeps), so
      // the minute pass looks only at what reached the age since. Walked from the head every
      // minute, a pass read every held event and asked the hold about every open order again,
      // under the queue lock the relay waits for: its work grew with the open orders. A sweep
      // also starts over when the cap is exceeded (the oldest go first, held or not) or the clock
      // went back.
      const sweepAge = this.#pruneSweepStartedAt === undefined ? Number.POSITIVE_INFINITY : now - this.#pruneSweepStartedAt;
      if (!(sweepAge >= 0 && sweepAge < RETENTION_SWEEP_MS && finished - this.#pruneDiscardsBehind <= this.#retention.maxDeliveredEvents)) {
        this.#pruneEventCursor = undefined;
        this.#pruneSweepStartedAt = now;
        this.#pruneDiscardsBehind = 0;
      }
      finished -= this.#pruneDiscardsBehind;
      let pruned = 0;
      // Counted down only when the batch is queued, with no await in between: a commit sealed
      // during the scan carries the counts of what is still stored (the counters on disk match the
      // records on disk, also after a crash or a failed write of this pass).
      let prunedDelivered = 0;
      let prunedDiscarded = 0;
      // Beyond the size cap, events younger than the age go too; so may their messages.
      let capCutoff = 0;
      const gone = new Set<string>();
      // Discarded events kept for their audit floor are stepped over without counting against
      // the pass's work (up to ten times as many), and the next pass resumes after the last one
      // stepped over: a run of them at the head of the index must not stop the delivered events
      // behind it from ever being pruned. The next sweep starts from the head again (a kept
      // discard's floor ends some day).
      //
      // The same goes for events the retention hold keeps (the billing events of an accession not
      // billed in full): asked once per correlation id in a sweep, kept up to the same floor, but
      // counted against the size cap: `store.maxDeliveredEvents` is the bound an operator sizes
      // the disk by, and beyond it the oldest go, held or not (before, held events were stepped
      // over uncounted, and a site whose orders were rarely billed in full kept them all for the
      // dead-letter floor, beyond the cap).
      let work = 0;
      let kept = 0;
      const hold = this.#retentionHold;
      const held = new Map<string, boolean>();
      // What the hold writes before the first event of a correlation goes (RetentionHold.remember:
      // billing's memory), once per correlation and pass, in this pass's batch; null: it failed.
      const remembered = new Map<string, LocalDoc[] | null>();
      // What the batch records of damaged messages name, read once per message and pass.
      const intakeKeys = new Map<string, IntakeKeys | undefined>();
      const eventRange = this.#pruneEventCursor ? { gt: this.#pruneEventCursor } : {};
      for await (const [key, correlation] of this.#sub.done.iterator(eventRange) as AsyncIterable<[string, string]>) {
        const k = key;
        const at = Number.parseInt(k.slice(0, 12), 16);
        if (at >= cutoff && finished <= this.#retention.maxDeliveredEvents) break;
        if (work >= maxWork || kept >= maxWork * 10) break;
        if (at >= cutoff) capCutoff = Math.max(capCutoff, at + 1);
        const id = k.slice(13);
        // The state is enough here; the correlation comes with the done entry (entries of the
        // earlier layout have none: the event's body is read then).
        const rec = (await this.#sub.evt.get(id)) as StoredEvent | SlimEvent | undefined;
        // An event an operator discarded keeps its audit trail (and its message) for the longer
        // floor of dead letters and rejected messages; it is not counted against the size cap.
        if (rec?.state === 'discarded' && at >= rejectedCutoff) {
          kept++;
          finished--;
          this.#pruneDiscardsBehind++;
          this.#pruneEventCursor = k;
          continue;
        }
        let correlationId: string | undefined = correlation;
        // The `c` key, when it is not correlation id + event id (an unreadable body, below).
        let correlationKey: string | undefined;
        if (!correlationId) {
          if (rec && 'event' in rec) correlationId = rec.event.correlationId;
          else {
            const whole = await this.getEvent(id).catch(() => undefined);
            correlationId = whole?.event.correlationId;
            // Its body is unreadable (its message's record is damaged), and an operator discarded
            // it with the stand-in body, which knows no correlation: its correlation entry is
            // named in the batch record that committed it. Deleted by correlation '' instead, it
            // stayed for good.
            if (whole?.bodyError !== undefined && rec && 'm' in rec) correlationKey = await this.#damagedCorrelationKey(rec.m, id, intakeKeys);
          }
        }
        const withinFloor = at >= rejectedCutoff && finished <= this.#retention.maxDeliveredEvents;
        let ofHoldType = false;
        if (hold && rec && correlationId !== undefined && (withinFloor || hold.remember)) {
          // The correlation index holds the type (a slim record has no body).
          const type = 'event' in rec ? rec.event.type : ((await this.#sub.corr.get(correlationId + SEP + id)) as string | undefined);
          ofHoldType = type !== undefined && (hold.types as readonly string[]).includes(type);
        }
        if (hold && correlationId !== undefined && ofHoldType && withinFloor) {
          let keep = held.get(correlationId);
          if (keep === undefined) {
            // A failed question keeps the events this pass: the next one asks again.
            keep = await hold.keep(correlationId, this).catch(() => true);
            held.set(correlationId, keep);
          }
          if (keep) {
            kept++;
            this.#pruneEventCursor = k;
            continue;
          }
        }
        if (hold?.remember && correlationId !== undefined && ofHoldType) {
          // It goes: what must outlive it (billing's memory) is written in the same batch, read
          // while it is still stored. Past the floor and beyond the cap too (the hold is not asked
          // there). A failed question keeps the correlation's events this pass.
          let docs = remembered.get(correlationId);
          if (docs === undefined) {
            docs = await hold.remember(correlationId, this).catch((err: unknown) => {
              this.#unremembered.set(correlationId, describeError(err));
              return null;
            });
            if (docs !== null) this.#unremembered.delete(correlationId);
            remembered.set(correlationId, docs);
            for (const doc of docs ?? []) ops.push(this.#docOp(doc));
          }
          if (docs === null) {
            kept++;
            this.#pruneEventCursor = k;
            continue;
          }
        }
        work++;
        ops.push({ type: 'del', sublevel: this.#sub.done, key: k });
        if (rec) {
          gone.add(id);
          ops.push({ type: 'del', sublevel: this.#sub.evt, key: id });
          if (correlationKey !== undefined) ops.push({ type: 'del', sublevel: this.#sub.corr, key: correlationKey });
          else if (correlationId !== undefined) ops.push({ type: 'del', sublevel: this.#sub.corr, key: correlationId + SEP + id });
          // Its accession's derivations read LevelDB and the billing memory from now on.
          if (correlationId !== undefined) this.#recentCorrelations.delete(correlationId);
          else if (correlationKey !== undefined) this.#recentCorrelations.delete(correlationKey.slice(0, correlationKey.indexOf(SEP)));
          // The idempotency key stays as a tombstone pointing nowhere, so that a very late resend
          // of the same fact is still recognised as a duplicate.
          if (rec.state === 'delivered') prunedDelivered++;
          else if (rec.state === 'discarded') prunedDiscarded++;
        }
        finished--;
        pruned++;
      }
      // Messages: oldest first; a message goes once it is past the age (or the cap's cut-off) and
      // none of its events waits. Messages that must stay (rejected within their floor, events
      // still queued or dead) are stepped over: the scan resumes after the last one it looked at,
      // so a long run of kept messages never stops pruning behind it.
      const messageCutoff = Math.max(cutoff, capCutoff);
      // An event a message waits for: not finished, or a discard within its audit floor.
      const waits = (e: StoredEvent | SlimEvent | undefined): boolean =>
        e !== undefined && ((e.state !== 'delivered' && e.state !== 'discarded') || (e.state === 'discarded' && (finishedAt(e) ?? 0) >= rejectedCutoff));
      // Messages this pass deletes, per segment: no longer counted as still kept in it.
      const leaving = new Map<number, number>();
      // Kept messages to move out of their old segments: written after the deletions, in a batch
      // of their own (see #moveKept).
      const moves: Array<{ op: BatchOp; bytes: number }> = [];
      let scanned = 0;
      let reachedEnd = true;
      const range = this.#pruneCursor ? { gt: this.#pruneCursor } : {};
      for await (const [id, packed] of this.#sub.msg.iterator({ ...range, limit: maxWork }) as AsyncIterable<[string, Buffer]>) {
        scanned++;
        const at = idTime(id);
        if (at >= messageCutoff) break;
        this.#pruneCursor = id;
        if (scanned >= maxWork) reachedEnd = false;
        let stored: ReadMessage;
        try {
          stored = await this.#decodeStored(id, packed);
        } catch (err) {
          // A record whose length or CRC check fails (GW_STORE_CORRUPT) goes at its age like any
          // other, without reading it: see #damagedMayGo and #intakeKeysOf. Stepped over before,
          // its pointer, its segment's count (the whole segment file), its dedup key and search
          // entries stayed for good. Any other failure (a read that may succeed later) keeps it.
          const damaged = decodePointer(packed);
          if (!damaged || !isGatewayError(err, 'GW_STORE_CORRUPT') || !(await this.#damagedMayGo(id, at, rejectedCutoff, waits, gone))) continue;
          leaving.set(damaged.segment, (leaving.get(damaged.segment) ?? 0) + 1);
          ops.push({ type: 'del', sublevel: this.#sub.msg, key: id, logSegment: damaged.segment });
          const named = await this.#intakeKeysOf(id, damaged, intakeKeys);
          for (const key of named?.dedup ?? []) ops.push({ type: 'del', sublevel: this.#sub.dedup, key });
          for (const key of named?.search ?? []) ops.push({ type: 'del', sublevel: this.#sub.search, key });
          pruned++;
          continue;
        }
        const value = stored.record;
        const pointer = stored.pointer;
        const keep = value.status === 'rejected' && at >= rejectedCutoff;
        const events = keep || value.eventIds.length === 0 ? [] : ((await this.#sub.evt.getMany(value.eventIds)) as Array<StoredEvent | SlimEvent | undefined>);
        const waiting = events.some(waits);
        if (keep || waiting) {
          // Kept past the age: it moves to the active segment, so that its old segment can go once
          // everything else in it is pruned (one kept message must not pin 64 MiB for months); not
          // out of a segment that is mostly messages still kept (KEPT_MOVE_MAX_LIVE_SHARE).
          if (pointer && stored.payload && pointer.segment !== this.#log.activeSegment && this.#mostlyFreed(pointer, leaving)) {
            const op: BatchOp = { type: 'put', sublevel: this.#sub.msg, key: id, value: { log: stored.payload, duplicates: value.duplicates, fromSegment: pointer.segment } satisfies LogEntry };
            moves.push({ op, bytes: RECORD_HEADER_BYTES + pointer.length });
          }
          continue;
        }
        // Finished events kept longer than their message (retention by count, a late delivery)
        // take their bodies with them before the record goes.
        events.forEach((e, i) => {
          const eventId = value.eventIds[i] as string;
          if (e === undefined || !('m' in e) || gone.has(eventId)) return;
          const body = value.events?.find((b) => b.id === eventId);
          if (!body) return;
          const { m: _m, ...state } = e;
          ops.push({ type: 'put', sublevel: this.#sub.evt, key: eventId, value: { event: body, ...state } satisfies StoredEvent });
        });
        if (pointer) leaving.set(pointer.segment, (leaving.get(pointer.segment) ?? 0) + 1);
        ops.push({ type: 'del', sublevel: this.#sub.msg, key: id, ...(pointer ? { logSegment: pointer.segment } : {}) });
        ops.push({ type: 'del', sublevel: this.#sub.raw, key: id });
        ops.push({ type: 'del', sublevel: this.#sub.ack, key: id });
        if (value.dedupKey !== undefined) ops.push({ type: 'del', sublevel: this.#sub.dedup, key: value.dedupKey });
        for (const term of searchTermsOf(value)) ops.push({ type: 'del', sublevel: this.#sub.search, key: term + SEP + id });
        pruned++;
      }
      // Start over from the oldest message next time once the scan met young messages or the end.
      if (reachedEnd) this.#pruneCursor = undefined;
      if (ops.length > 0) {
        this.#counts.delivered -= prunedDelivered;
        this.#counts.discarded -= prunedDiscarded;
        await this.#write(ops);
      }
      await this.#moveKept(moves);
      // Segments emptied while they were still the active one.
      await this.#removeUnreferencedSegments().catch(() => undefined);
      return pruned;
    });
  }

  /**
   * Whether a message whose record is damaged (GW_STORE_CORRUPT) may go now, at `at` past the
   * retention age, judged from the index alone: its record, and with it its status and its event
   * ids, cannot be read. Its events are the `e` entries right after its id (a message's events
   * take the ids that follow its own, in the same synchronous call; an entry of another message
   * or of none ends them), so it stays while one of them waits, as any message does: a dead
   * letter whose body it held stays with it until an operator discards it, and the discard's
   * floor keeps both; it goes only with or after such a discard (in `gone`: pruned by this pass),
   * whose correlation entry is found through it (#damagedCorrelationKey). A message with no event
   * found may have been rejected (rejected messages make none), or its events were pruned before
   * it (a store that stepped over it before this release): it keeps the floor of a rejected
   * message.
   */
  async #damagedMayGo(messageId: string, at: number, rejectedCutoff: number, waits: (e: StoredEvent | SlimEvent) => boolean, gone: ReadonlySet<string>): Promise<boolean> {
    const mine = await this.#eventsAfter(messageId);
    if (mine === undefined || mine.some(([eventId, e]) => waits(e) || (e.state === 'discarded' && !gone.has(eventId)))) return false;
    return mine.length > 0 || at < rejectedCutoff;
  }

  /**
   * The events of a message whose record is damaged: the `e` entries right after its id (a
   * message's events take the ids that follow its own, made in the same synchronous part of
   * #commitNew; an entry of another message, or of none, ends them). Undefined when
   * DAMAGED_EVENTS_READ entries are read without reaching that end.
   */
  async #eventsAfter(messageId: string): Promise<Array<[string, StoredEvent | SlimEvent]> | undefined> {
    const mine: Array<[string, StoredEvent | SlimEvent]> = [];
    for await (const entry of this.#sub.evt.iterator({ gt: messageId, limit: DAMAGED_EVENTS_READ }) as AsyncIterable<[string, StoredEvent | SlimEvent]>) {
      const value = entry[1];
      const of = 'm' in value ? value.m : (value.event?.source as { messageId?: string } | undefined)?.messageId;
      if (of !== messageId) return mine;
      mine.push(entry);
    }
    return mine.length < DAMAGED_EVENTS_READ ? mine : undefined;
  }

  /**
   * The keys a damaged message's metadata would have named (its dedup key, its search entries) and
   * the correlation entries of the events committed with it, from the batch record its intake
   * wrote in the same synced write: after the records of the batch's messages, in the same
   * segment. Read from just past the damaged record (its length is the pointer's), never the
   * record itself; checked to be the batch that wrote this pointer. Undefined when not found (the
   * batch record damaged too, or further than INTAKE_RECORD_SEARCH_BYTES): those keys stay. A
   * record retention had copied to another segment before it was damaged is followed by the
   * copy's batch record, which names only its pointer: its keys stay too. Cached per pass in
   * `cache` (a message's events ask for the same record).
   */
  async #intakeKeysOf(messageId: string, pointer: LogPointer, cache: Map<string, IntakeKeys | undefined>): Promise<IntakeKeys | undefined> {
    if (cache.has(messageId)) return cache.get(messageId);
    let found: IntakeKeys | undefined;
    const from = pointer.offset + RECORD_HEADER_BYTES + pointer.length;
    try {
      for await (const { payload, end } of this.#log.records({ segment: pointer.segment, offset: from })) {
        if (end.segment !== pointer.segment || end.offset - from > INTAKE_RECORD_SEARCH_BYTES) break;
        if (!isBatchRecord(payload)) continue;
        found = this.#intakeKeysIn(decodeBatchRecord(payload), messageId, pointer);
        break;
      }
    } catch {
      found = undefined; // unreadable as well: the keys stay
    }
    cache.set(messageId, found);
    return found;
  }

  /** What a batch record names of `messageId` (see #intakeKeysOf); undefined when it did not write `pointer`. */
  #intakeKeysIn(pairs: EncodedOp[], messageId: string, pointer: LogPointer): IntakeKeys | undefined {
    const { dedup, search, corr } = this.#prefix;
    const msg = this.#prefix.msg + messageId;
    const written = pairs.some(([key, value]) => {
      if (key !== msg || !Buffer.isBuffer(value)) return false;
      const at = decodePointer(value);
      return at !== undefined && at.segment === pointer.segment && at.offset === pointer.offset && at.length === pointer.length;
    });
    if (!written) return undefined;
    const out: IntakeKeys = { dedup: [], search: [], correlation: new Map() };
    for (const [key, value] of pairs) {
      if (value === null) continue;
      if (key.startsWith(dedup) && value === messageId) out.dedup.push(key.slice(dedup.length));
      else if (key.startsWith(search) && key.endsWith(SEP + messageId)) out.search.push(key.slice(search.length));
      else if (key.startsWith(corr)) out.correlation.set(key.slice(key.lastIndexOf(SEP) + 1), key.slice(corr.length));
    }
    return out;
  }

  /** The `c` key of an event whose body is in the damaged record of `messageId`, if its batch record names it. */
  async #damagedCorrelationKey(messageId: string, eventId: string, cache: Map<string, IntakeKeys | undefined>): Promise<string | undefined> {
    const value = (await this.#sub.msg.get(messageId).catch(() => undefined)) as Buffer | undefined;
    const pointer = value ? decodePointer(value) : undefined;
    if (!pointer) return undefined;
    return (await this.#intakeKeysOf(messageId, pointer, cache))?.correlation.get(eventId);
  }

  /**
   * Retention's copies of kept messages (see prune), after its deletions were written, in a batch
   * of their own, and only as far as the disk has room for them: none while the store is not
   * `ok` (full: below `store.minFreeBytes`; failed), and no more bytes than half the room above
   * the reserve (the rest stays for intake and LevelDB meanwhile). The copies are the only part
   * of a pass that needs room; written in the same batch as the deletions, on a full disk their
   * log write failed (ENOSPC) and the deletions went with it: nothing was ever pruned, the failed
   * write took the last free bytes, and the disk stayed full for good
   * (test/integration/store-disk-full.test.ts, "retention on a full disk"). A message not copied
   * stays where it is (readable) and is copied by a later pass.
   */
  async #moveKept(moves: ReadonlyArray<{ op: BatchOp; bytes: number }>): Promise<void> {
    if (moves.length === 0 || this.#health !== 'ok') return;
    let room: number;
    try {
      room = ((await this.#freeBytes()) - this.#minFreeBytes) / 2;
    } catch {
      return; // the health check reports the file system; the copies wait for a later pass
    }
    const ops: BatchOp[] = [];
    for (const move of moves) {
      if (move.bytes > room) continue;
      room -= move.bytes;
      ops.push(move.op);
    }
    if (ops.length > 0) await this.#write(ops);
  }

  /**
   * Whether the messages still pointing into the segment of `pointer` (less those this pass
   * deletes) take less than KEPT_MOVE_MAX_LIVE_SHARE of a segment, estimated at this record's size
   * each: then copying the kept ones out frees the segment. A segment closed early (at a restart)
   * counts as a whole one: at most its own small size is copied. Messages of the segment this pass
   * has not reached yet still count: a kept message ahead of them moves at a later pass.
   */
  #mostlyFreed(pointer: LogPointer, leaving: ReadonlyMap<number, number>): boolean {
    const live = (this.#liveSegments.get(pointer.segment) ?? 0) - (leaving.get(pointer.segment) ?? 0);
    return live * (pointer.length + RECORD_HEADER_BYTES) < this.#log.segmentBytes * KEPT_MOVE_MAX_LIVE_SHARE;
  }

  /**
   * The newest instant the store held when it opened (epoch ms; undefined for an empty store): a
   * system clock far behind it or far ahead of it at start-up is probably wrong (the relay says so).
   */
  newestStoredAt(): number | undefined {
    return this.#newestAtOpen;
  }

  /**
   * Retention's "now": the system clock, but never more than RETENTION_CLOCK_SLACK_MS plus the time
   * the store has been open (monotonic) past the newest instant it held when it opened, plus up to
   * as much again while catching up the gap the system clock showed at start-up. Read straight
   * from Date.now(), a clock set to 2099 (a wrong year typed, a hardware clock reading garbage), at
   * boot or while running, made the next pass delete every delivered event, every discard's audit
   * trail and every rejected message at once, and the records were gone when the clock was set
   * right (test/unit/clock-restart-audit.test.ts). The catch-up: a box switched off for three
   * weeks with its clock right lags three weeks behind at start-up and catches up within three
   * weeks, running at twice the speed meanwhile; it keeps records longer until then (the size cap
   * still holds). Only that gap: allowed twice the whole time open, a gateway that had run two
   * months with its clock right ran 61 days ahead at the first wrong reading (2099) and deleted
   * every result delivered in the last 30 days (test/unit/store-retention-clock.test.ts).
   */
  #retentionNow(): number {
    const base = this.#retentionBase;
    const open = Math.max(0, performance.now() - base.mono);
    return Math.min(Date.now(), base.at + RETENTION_CLOCK_SLACK_MS + open + Math.min(open, base.gap));
  }

  // ---------------------------------------------------------------- lifecycle

  /** Resolves when every write queued so far is on disk. */
  flush(): Promise<void> {
    // Relay-side updates and duplicate counts queue behind the queue lock first; then LevelDB has
    // every batch (a batch answered at its commit point may still be on its way), so observers
    // (onCommitted) have heard of every commit.
    return this.#queueLock
      .catch(() => undefined)
      .then(() => this.#committer.barrier())
      .then(() => this.#committer.applied());
  }

  /** Idempotent: waits for queued writes, then closes LevelDB. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closing = (async () => {
      for (const t of this.#timers) clearInterval(t);
      await this.#keyFilter.stop();
      await this.#queueLock.catch(() => undefined);
      await this.#committer.barrier();
      // Counts made without a commit since the last batch (messages refused while the disk was
      // full or the store failing, the last receive time of each link) reach the disk with one
      // last small batch; best effort: a store that cannot write keeps what it had.
      if ((this.#health === 'ok' || this.#health === 'full') && (this.#lastAtChanged || (Object.keys(this.#intake) as Array<keyof IntakeCounters>).some((k) => this.#intake[k] !== this.#sealedIntake[k]))) {
        // The batch's seal adds the counters, the intake counters among them (a batch of no
        // operations seals nothing); the links' last receive times are its one operation, since
        // the seal writes them at most once a second.
        this.#lastAtChanged = false;
        await this.#committer.write([{ type: 'put', sublevel: this.#sub.meta, key: 'endpoints', value: { ...this.#lastAt } }]).catch(() => undefined);
      }
      this.#health = 'closed';
      // After a stop on the gateway's own error: the note keeps only the deliveries that did not
      // finish during the stop (answered ones were recorded, and are not counted).
      if (this.#crashNote) {
        if (this.#crashNote.eventIds.size > 0) this.#writeCrashNote(this.#crashNote);
        else await unlink(this.#crashNotePath()).catch(() => undefined);
      }
      await this.#db.close();
      await this.#log.close();
    })();
    return this.#closing;
  }

  // ---------------------------------------------------------------- range reads

  /**
   * Correlation ids (accessions) from `from` to `to` inclusive, in key order, that have an event
   * of one of `types` (any type when absent); at most `limit` of them (default 100, at most 1000).
   * Read-only, over the `c` sublevel: the host query's range (LIS2-A2 Q.3 to Q.4).
   */
  async correlationsInRange(from: string, to: string, options: { types?: EventType[]; limit?: number } = {}): Promise<string[]> {
    await this.#committer.applied();
    const limit = Math.min(Math.max(1, options.limit ?? 100), 1000);
    const out: string[] = [];
    if (from > to) return out;
    for await (const [key, type] of this.#sub.corr.iterator({ gte: from + SEP, lt: to + AFTER }) as AsyncIterable<[string, string]>) {
      const id = key.slice(0, key.lastIndexOf(SEP));
      if (id === out[out.length - 1]) continue;
      if (options.types && !options.types.includes(type as EventType)) continue;
      out.push(id);
      if (out.length >= limit) break;
    }
    return out;
  }
}

/**
 * What the batch record of a message's intake names of it besides its pointer (keys without their
 * sublevel's prefix): read by retention for a message whose own record is damaged.
 */
interface IntakeKeys {
  /** `d` keys whose value is the message id. */
  dedup: string[];
  /** `s` keys of the message. */
  search: string[];
  /** The `c` key of each event the batch committed, by event id. */
  correlation: Map<string, string>;
}

/** `meta!w` as stored: the position as a JSON string (the `meta` sublevel holds JSON), fixed width. */
function checkpointValue(at: LogPosition): string {
  return JSON.stringify(encodePosition(at));
}

/** An event's value under `e` without its body, which its message's record holds. */
function slimEvent(rec: StoredEvent, messageId: string): string {
  const { event: _body, bodyError: _error, ...state } = rec;
  return JSON.stringify({ ...state, m: messageId } satisfies SlimEvent);
}

/**
 * The least string above every string that starts with `prefix`, in the order of their UTF-8 bytes
 * (code-point order; LevelDB's): the prefix with its last code point raised by one, after dropping
 * trailing U+10FFFF. Undefined when there is none (a prefix of U+10FFFF alone).
 */
function prefixEnd(prefix: string): string | undefined {
  const points = Array.from(prefix, (c) => c.codePointAt(0) as number);
  while (points.length > 0) {
    let last = points.pop() as number;
    // A lone surrogate is written as U+FFFD (what UTF-8 encoding makes of it).
    if (last >= 0xd800 && last <= 0xdfff) last = 0xfffd;
    if (last === 0x10ffff) continue;
    // The surrogate range has no UTF-8 form: the next code point after U+D7FF is U+E000.
    const next = last === 0xd7ff ? 0xe000 : last + 1;
    return String.fromCodePoint(...points, next);
  }
  return undefined;
}

/** Segment numbers as keys of the `j` sublevel (fixed width: key order is segment order). */
function segmentKey(segment: number): string {
  return String(segment).padStart(10, '0');
}

/** An operator's guard (types.ts OperatorGuard), checked under the queue lock with the action. */
function checkOperatorGuard(rec: StoredEvent, action: 'replay' | 'discard', guard: OperatorGuard): void {
  const id = rec.event.id;
  if (guard.expected !== undefined) {
    if (rec.state !== guard.expected) throw new GatewayError('GW_STORE_STATE', `event ${id} is ${rec.state}, not ${guard.expected} as expected: nothing done (look at it again)`);
    return;
  }
  const last = rec.audit?.at(-1);
  if (action === 'discard' && last?.action === 'replay' && (rec.state === 'pending' || rec.state === 'retrying')) {
    throw new GatewayError(
      'GW_STORE_STATE',
      `event ${id} was replayed by ${last.actor} at ${last.at}${last.reason ? ` ("${last.reason}")` : ''} and is ${rec.state}, waiting for Odoo: not discarded. To discard it all the same, send expectedState "${rec.state}" (lab-gateway events discard --state ${rec.state})`,
    );
  }
}

/** A message's record as committed: `message` under `id`, with its events' ids and bodies. */
function messageRecord(message: InboundMessage, id: string, receivedAt: string, eventIds: string[], events: CanonicalEvent[], duplicates: number): MessageRecord {
  return {
    id,
    kind: message.kind,
    endpoint: message.endpoint,
    receivedAt,
    encoding: message.encoding,
    status: message.status,
    size: message.raw.length,
    eventIds,
    duplicates,
    ...(message.remoteAddress !== undefined ? { remoteAddress: message.remoteAddress } : {}),
    ...(message.controlId !== undefined ? { controlId: message.controlId } : {}),
    ...(message.sender !== undefined ? { sender: message.sender } : {}),
    ...(message.messageType !== undefined ? { messageType: message.messageType } : {}),
    ...(message.rejectReason !== undefined ? { rejectReason: message.rejectReason } : {}),
    ...(message.searchTerms !== undefined ? { searchTerms: message.searchTerms } : {}),
    ...(message.dedupKey !== undefined ? { dedupKey: message.dedupKey } : {}),
    ...(events.length > 0 ? { events } : {}),
  };
}

function searchTermsOf(message: { controlId?: string; searchTerms?: string[] }): string[] {
  const terms = new Set<string>();
  if (message.controlId) terms.add(message.controlId);
  for (const t of message.searchTerms ?? []) if (t) terms.add(t);
  return [...terms].filter((t) => !t.includes(SEP));
}

function publicMessage(record: MessageRecord): StoredMessage {
  const { dedupKey: _dedupKey, events: _events, ...rest } = record;
  return rest;
}

export type { EventState };

/** What noteCrash left for the next start. */
interface CrashNote {
  at: string;
  error: string;
  eventIds: Set<string>;
}

function crashedDeliveryReason(crashes: number, crash: CrashNote): string {
  return (
    `the gateway stopped on an error of its own ${crashes} times in a row while this event was being delivered (the last at ${crash.at}: ${crash.error}). ` +
    'It is held here so that it stops the gateway no more, and the rest of the queue goes on; it may have reached Odoo, and a replay looks it up before sending. ' +
    "Read the gateway's log at those times and report the error; replay the event once the cause is fixed (one more such stop holds it again), or discard it with a reason."
  );
}
