import type { CanonicalEvent, DraftEvent, EventType } from '../events/types.ts';

/** What ingress hands to the store for one inbound message (HL7 message or ASTM message). */
export interface InboundMessage {
  kind: 'hl7' | 'astm';
  /** Configured endpoint id (`hl7[].id` or `analyzers[].id`). */
  endpoint: string;
  remoteAddress?: string;
  /** ISO 8601 time the last byte arrived. */
  receivedAt: string;
  /** HL7 MSH-10 or ASTM H-record control id. */
  controlId?: string;
  /** Sending application/facility (MSH-3^MSH-4) or the analyzer's H-record sender. */
  sender?: string;
  /** e.g. 'ORU^R01', 'ASTM' */
  messageType?: string;
  /** Charset the text was decoded with (MSH-18 mapped): 'ascii', 'latin1', 'utf8'. */
  encoding: string;
  /** The exact bytes received (without transport framing). */
  raw: Buffer;
  /** accepted: events derived; rejected: kept raw for an operator, no events. */
  status: 'accepted' | 'rejected';
  rejectReason?: string;
  /** The acknowledgement bytes about to be sent, stored so that a duplicate gets the same reply. */
  ack?: Buffer;
  /**
   * Duplicate detection key (endpoint + sender + control id). A second commit with the same key
   * creates nothing and returns the stored acknowledgement.
   */
  dedupKey?: string;
  /** Search terms for the message browser: specimen ids, accessions. */
  searchTerms?: string[];
}

export interface CommitResult {
  messageId: string;
  /** Set when `dedupKey` was seen before: nothing new was written. */
  duplicate: boolean;
  /** The stored ACK of the original on a duplicate, else the ACK passed in. */
  ack: Buffer | undefined;
  /** Ids of the events written (events whose idempotency key existed already are skipped). */
  eventIds: string[];
  skippedEvents: number;
  /**
   * A duplicate whose original's record is damaged on disk (GW_STORE_CORRUPT): answered as the
   * duplicate it is, with the ACK built for the resend; whether its record was written again from
   * the resend, and why not (store README "A resend of a damaged record"). For a warning.
   */
  damagedRecord?: { messageId: string; rewritten: boolean; detail: string };
}

export const EventStates = ['pending', 'inflight', 'retrying', 'dead', 'delivered', 'discarded'] as const;
export type EventState = (typeof EventStates)[number];

/**
 * What an operator's replay or discard requires of the event, checked under the store's queue
 * lock with the action itself, so that neither another operator nor the relay (lease, completion)
 * changes the event in between: `expected`, the state the operator saw; without it, a discard
 * does not undo a replay still waiting for its attempt (a dead-letter list shown before a
 * colleague replayed the event). Both refusals are GW_STORE_STATE.
 */
export interface OperatorGuard {
  expected?: EventState;
}

/** A reference to what an event produced in Odoo (shown in the message browser). */
export interface OdooRef {
  model: string;
  id: number;
  externalId?: string;
  name?: string;
  /**
   * The document is in the gateway's sandbox (posted while commissioning, without `odoo.url`), not
   * in a real Odoo: the message browser says "(sandbox)". Absent for a real Odoo's documents and for
   * refs stored before it was recorded.
   */
  sandbox?: true;
}

export interface StoredEvent {
  event: CanonicalEvent;
  state: EventState;
  attempts: number;
  /** Epoch ms of the next attempt when retrying or pending with a delay. */
  dueAt: number;
  /** The previous attempt may have landed in Odoo: look it up before resending. */
  ambiguous: boolean;
  lastError?: string;
  deadReason?: string;
  deliveredAt?: string;
  odoo?: OdooRef[];
  /**
   * What the relay found when it delivered, for an operator: "found in Odoo" (an earlier attempt had
   * landed), "order cancelled, nothing to invoice", which tests an earlier eligibility had already
   * handed to billing. Absent when the delivery was a plain write.
   */
  note?: string;
  /** Operator actions (replay, discard) on this event. */
  audit?: Array<{ at: string; actor: string; action: string; reason?: string }>;
  /**
   * Set (never stored) when the event's body could not be read from its message's record (a
   * damaged message log): `event` then holds only its id, its partition when known, and the type
   * `unreadable`. Such an event is dead-lettered when its partition comes up; an operator discards it.
   */
  bodyError?: string;
  /**
   * Times in a row the gateway stopped on an error of its own (an uncaught exception: it noted
   * the leases it held, EventStore.noteCrash) while this event was being delivered and the
   * delivery never finished. Such an event is leased alone; at CRASHED_DELIVERY_LIMIT it becomes
   * a dead letter at start-up instead of being sent again. Cleared by any recorded outcome;
   * absent when 0.
   */
  crashes?: number;
}

export interface StoredMessage {
  id: string;
  kind: 'hl7' | 'astm';
  endpoint: string;
  remoteAddress?: string;
  receivedAt: string;
  controlId?: string;
  sender?: string;
  messageType?: string;
  encoding: string;
  status: 'accepted' | 'rejected';
  rejectReason?: string;
  size: number;
  eventIds: string[];
  duplicates: number;
  searchTerms?: string[];
}

/** Leased head (or a run of consecutive heads) of one partition. */
export interface Lease {
  partitionKey: string;
  events: StoredEvent[];
}

export interface LeaseOptions {
  /** Max partitions to lease. */
  limit: number;
  /** Lease up to this many consecutive events of one partition (micro-batching). Default 1. */
  maxPerPartition?: number;
  /** Only group consecutive events of the same type as the head. Default true. */
  sameTypeOnly?: boolean;
  now?: number;
}

export type Outcome =
  /** `note`: what the relay found when it delivered, kept on the event (`StoredEvent.note`). */
  | { eventId: string; outcome: 'delivered'; odoo?: OdooRef[]; note?: string }
  /** `free`: the attempt is not charged (Odoo's side failed as a whole; see relay.ts). */
  /**
   * `waiting`: not a failure, the event waits for an earlier event of the queue (not stored; the
   * status reads it). `notBefore`: due no earlier than this instant of the store's due clock (a
   * stored `dueAt`, the earlier event's next try), whatever the delay.
   */
  | { eventId: string; outcome: 'retry'; error: string; ambiguous?: boolean; delayMs?: number; notBefore?: number; free?: boolean; waiting?: true }
  | { eventId: string; outcome: 'dead'; reason: string };

export interface QueueStats {
  pending: number;
  inFlight: number;
  retrying: number;
  deadLettered: number;
  delivered: number;
  discarded: number;
  /** Partitions whose head is dead-lettered (their later events wait). */
  blockedPartitions: number;
  oldestPendingAgeSeconds: number;
}

export interface IntakeCounters {
  received: number;
  accepted: number;
  rejected: number;
  duplicates: number;
}

export interface MessageQuery {
  controlId?: string;
  endpoint?: string;
  /** Free search: control id, specimen id or accession. */
  q?: string;
  limit?: number;
  /** Page: messages received before this message id. */
  before?: string;
}

export interface EventQuery {
  state?: EventState;
  type?: EventType;
  limit?: number;
  /**
   * Page: events after this id (the last id of the previous page), or the previous page's
   * `next` (EventPage). With state delivered|discarded, from that event's completion towards older
   * ones, also when retention removed it meanwhile.
   */
  after?: string;
}

/** A page of a listing and where the next one starts (`after` / `before`); null at the end. */
export interface EventPage {
  events: StoredEvent[];
  next: string | null;
}

export interface MessagePage {
  messages: StoredMessage[];
  /**
   * `before` of the next page; null at the end of the log. A page may hold fewer than `limit`
   * messages with a `next` when an `endpoint` filter without a search term stopped at its read
   * budget: the rest is further back.
   */
  next: string | null;
}

export type { CanonicalEvent, DraftEvent };

/**
 * The store's public surface (implemented by `EventStore` in store/event-store.ts).
 * Every write is part of a group-committed LevelDB batch written with `sync: true`; a promise
 * resolves only after that batch is on disk.
 */
export interface GatewayStore {
  readonly health: 'ok' | 'failed' | 'full' | 'closed';
  /** Commit one inbound message, its ACK and its events atomically; resolves after fsync. */
  commit(message: InboundMessage, events: DraftEvent[]): Promise<CommitResult>;
  /** Commit events the gateway derived itself (e.g. stock.threshold_breached); no inbound message. */
  commitLocal(events: DraftEvent[], docs?: LocalDoc[]): Promise<string[]>;
  /** Lease the heads of ready partitions (FIFO within a partition). */
  lease(options: LeaseOptions): Promise<Lease[]>;
  /** Resolve leased events in order; leased events not listed are released unchanged. */
  complete(lease: Lease, outcomes: Outcome[]): Promise<void>;
  /** Replay a dead letter; `guard.expected`: only while the event is in that state (see OperatorGuard). */
  replay(eventId: string, actor: string, reason?: string, guard?: OperatorGuard): Promise<StoredEvent>;
  /** Discard an undelivered event with an audited reason (see OperatorGuard). */
  discard(eventId: string, actor: string, reason: string, guard?: OperatorGuard): Promise<StoredEvent>;
  getEvent(eventId: string): Promise<StoredEvent | undefined>;
  /** Find an event by its idempotency key. */
  getEventByKey(idempotencyKey: string): Promise<StoredEvent | undefined>;
  /**
   * An event with this idempotency key was stored once, also when retention removed it since (the
   * key stays as a tombstone): a key made again for a new fact would be skipped as a duplicate.
   */
  idempotencyKeyUsed?(idempotencyKey: string): Promise<boolean>;
  /** A message with this dedup key is stored. */
  dedupKeyUsed?(dedupKey: string): Promise<boolean>;
  /**
   * Whether a message a release before key era `era` stored under the keys of its time may still
   * be resent (EventStore: for `retentionDays` after the upgrade to that era; never for a store a
   * release of that era began); without `era`, before any era. Absent: assumed so.
   */
  mayHoldEarlierReleaseKeys?(era?: number): boolean;
  /**
   * When a release of key era `era` first opened this store, if it held messages then (what a
   * release before that era took is older); undefined for a store such a release began.
   */
  earlierReleaseKeysBefore?(era: number): number | undefined;
  listEvents(query: EventQuery): Promise<StoredEvent[]>;
  getMessage(messageId: string): Promise<{ message: StoredMessage; raw: Buffer; ack?: Buffer } | undefined>;
  listMessages(query: MessageQuery): Promise<StoredMessage[]>;
  /**
   * listEvents with where the next page starts (the HTTP API's paging); a filter the walked index
   * does not answer reads a bounded number of events per page, which may then end short of
   * `limit` with a `next`.
   */
  listEventPage(query: EventQuery): Promise<EventPage>;
  /** listMessages with where the next page starts; each page reads a bounded number of records. */
  listMessagePage(query: MessageQuery): Promise<MessagePage>;
  /** Events of one correlation id (order/accession), oldest first: used for host queries. */
  eventsByCorrelation(correlationId: string, types?: EventType[]): Promise<StoredEvent[]>;
  /** Correlation ids from `from` to `to` (inclusive, key order) having an event of `types`: host query ranges. */
  correlationsInRange?(from: string, to: string, options?: { types?: EventType[]; limit?: number }): Promise<string[]>;
  stats(): QueueStats;
  /**
   * Correlations (accessions) whose finished events retention keeps past their age, floor and the
   * size cap because the retention hold's `remember` failed (billing's memory could not be
   * written; pruned bare, their billing would be rebuilt wrong), and the first of them with its
   * error ("ACC-1: <error>"). GET /api/status RETENTION_HELD.
   */
  retentionHeld?(): { accessions: number; first?: string };
  /**
   * A write to the data disk (the message log's or LevelDB's) that has not returned for the store's
   * stall bound (15 s by default), and for how long (ms); undefined otherwise. Nothing fails while a
   * dying disk or a hung mount holds a write, so nothing else tells it: GET /api/status
   * STORE_STALLED.
   */
  writeStalled?(): { forMs: number } | undefined;
  /**
   * The newest instant the store held when it opened (epoch ms: its newest ids, completions and
   * open leases; undefined when empty). The relay compares it with the system clock at start-up:
   * a box that booted with a wrong time is said to be so.
   */
  newestStoredAt?(): number | undefined;
  intake(): IntakeCounters;
  /**
   * The deliveries a stopped gateway left in flight that wait, after the restart, for the settle
   * time to pass before the relay looks them up in Odoo (start-up's reopened leases, also when the
   * gateway was restarted again within that time); undefined when none is held. Read at the
   * status's poll: GET /api/status `settleHold`.
   */
  settleHold?(): Promise<SettleHold | undefined>;
  /** Per endpoint id, the receive time (ISO) of its last message, kept across restarts. */
  lastMessageAt?(): Readonly<Record<string, string>>;
  /** Count an inbound message that was answered without a commit (e.g. store down). */
  countRejectedWithoutCommit(): void;
  /** Local key/value documents (reference data pulled from Odoo, sandbox records, settings). */
  getDoc<T>(namespace: string, key: string): Promise<T | undefined>;
  putDoc(namespace: string, key: string, value: unknown): Promise<void>;
  deleteDoc(namespace: string, key: string): Promise<void>;
  /** Documents in key order; `after` (a key, without the namespace) pages on from the last one read. */
  listDocs<T>(namespace: string, options?: { prefix?: string; limit?: number; after?: string }): Promise<Array<{ key: string; value: T }>>;
  /** Resolves when every write queued so far is on disk and in LevelDB (observers have heard of every commit). */
  flush(): Promise<void>;
}

/**
 * Finished events that retention keeps past `store.retentionDays` while something still needs
 * them (see EventStoreOptions.retentionHold): events of `types` whose correlation `keep` says is
 * still open stay, up to the dead-letter floor (`store.deadLetterRetentionDays`). The store asks
 * once per correlation id and retention pass; it knows nothing of what the events mean.
 */
export interface RetentionHold {
  types: readonly EventType[];
  keep(correlationId: string, store: Pick<GatewayStore, 'eventsByCorrelation'> & Partial<Pick<GatewayStore, 'getDoc'>>): Promise<boolean>;
  /**
   * Local documents that outlive the events of `types` retention prunes (the gateway: billing's
   * memory of each accession, events/billing-memory.ts): asked once per correlation id and pass,
   * before the pass deletes the first such event of it (also past the dead-letter floor or the
   * size cap, where `keep` is not asked), while the events are still stored; the store writes the
   * documents in the same batch as the deletions. A failed question keeps that correlation's events
   * this pass.
   */
  remember?(correlationId: string, store: Pick<GatewayStore, 'eventsByCorrelation' | 'getDoc'>): Promise<LocalDoc[]>;
  /**
   * Local documents kept in step with the held events that outlive them (billing's memory) go once
   * unchanged since `before` (the dead-letter floor: now − `store.deadLetterRetentionDays`). Called
   * by every `prune()` after its pass, under the same lock (nothing else writes them meanwhile);
   * returns how much it did (bounded per call, so that "prune until 0" ends).
   */
  expire?(before: number, store: Pick<GatewayStore, 'listDocs' | 'getDoc' | 'putDoc' | 'deleteDoc' | 'eventsByCorrelation'>): Promise<number>;
}

/** A local document written in the same atomic batch as local events (see commitLocal). */
export interface LocalDoc {
  namespace: string;
  key: string;
  value: unknown;
  /** Delete the document instead (`value` is ignored). */
  delete?: boolean;
}

/**
 * Deliveries held after a restart (GatewayStore.settleHold): a write the stopped process had sent
 * may still be running in Odoo, so the relay looks them up only once the settle time has passed.
 */
export interface SettleHold {
  /** The held events (each still retrying with the due time the restart gave it). */
  events: number;
  /** How many orders (partitions) they belong to. */
  partitions: number;
  /** Later events of those orders, queued behind them. */
  behind: number;
  /** When the last of them is due, on the system clock (epoch ms, whole seconds, rounded up). */
  until: number;
}

/**
 * How long a write sent to Odoo without an answer is given to land or die before the event is
 * looked up and resent (ms): past Odoo's `limit_time_real` (120 s by default), after which Odoo
 * kills a request still running and rolls it back. Used by the relay for ambiguous outcomes and
 * by the store's start-up for leases a stopped gateway left open.
 */
export const AMBIGUOUS_SETTLE_MS = 180_000;

/**
 * After this many stops of the gateway on its own error in a row, each while the same event was
 * being delivered (StoredEvent.crashes), the event is held as a dead letter at start-up: it may be
 * what stops the gateway, and every restart of a crash loop also cuts the LIS and the analyzers
 * off for a while.
 */
export const CRASHED_DELIVERY_LIMIT = 3;
