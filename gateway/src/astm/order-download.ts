import { describeError } from '../errors.ts';
import type { CanonicalEvent, OrderCreatedData, OrderedTest } from '../events/types.ts';
import type { Logger } from '../log.ts';
import type { Profile } from '../profiles/types.ts';
import type { GatewayStore } from '../store/types.ts';
import type { Telemetry } from '../telemetry.ts';
import { isStat } from '../hl7/host-query.ts';
import { analyzerTests, buildOrderDownload, orderEventsForSpecimen, tubeOrders, type OrderCollision, type OrderLookupOptions } from './host-query.ts';

/**
 * Order download (analyzers[].pushOrders): LIS orders pushed to one ASTM analyzer, durably.
 *
 * Two kinds of local documents, keyed `<analyzer>␀<accession>`:
 * - `orderDownload`: what the analyzer has of the accession — tests it accepted (`sent`), tests
 *   still to send (`pending`), cancels still to send (`cancelPending`), codes the LIS cancelled
 *   (`cancelled`; an order of the code after its cancel downloads it again);
 * - `orderOutbox`: present while the accession has something to send (its `queuedAt` gives the
 *   order of sending). The outbox of one analyzer is read with one prefix scan, never the store.
 *
 * Committed `order.created` / `order.cancelled` events from the LIS update both in one atomic
 * write (`commitLocal`); the outbox is sent when a connection opens, when something is added and
 * on a retry timer; a test is marked sent only after the analyzer accepted the message (the link's
 * send resolved). A refused download raises an alert naming the analyzer and the accession and
 * stays in the outbox: its first `maxAttempts` sends go `retryDelayMs` apart, then the delay doubles
 * up to `maxRetryDelayMs` (#retryDelay), for as long as the line stays up,
 * and at once when a connection opens. Before, it waited for the next connection after
 * `maxAttempts` refusals: a serial port stays open, so a busy analyzer that became ready never got
 * the orders while the status showed them waiting. An accession past its `maxAttempts` goes after
 * the others in a pass, so one the analyzer keeps refusing (a test it does not know) never holds
 * back the orders behind it; its refusals are counted since the analyzer last accepted it (the
 * document's `attempts`), across connections and restarts.
 *
 * Recording follows the commit, so a crash (or a failed write) after the LIS's order was
 * acknowledged and before its documents were written would lose it. A third document, the cursor
 * (`orderDownloadCursor`, keyed by analyzer), holds the id of the newest committed event whose
 * recording finished, written at most once a second and at stop; at start-up the events after it
 * are recorded again, in id order, before any new one. Recording is idempotent: each order
 * document keeps the id of the last event applied to it (`lastEventId`) and skips older or equal
 * ones. A failed recording holds the cursor where it was until the next start. The cursor of an
 * analyzer without `pushOrders` is deleted at start-up, so turning order download on again never
 * replays the orders of the time it was off.
 *
 * What IT staff see (`summary()`, `onSummary()`): how many accessions wait in the outbox, since
 * when the oldest waits, how many of them the analyzer refused and why the latest refusal failed,
 * and when it last accepted a download. Kept in memory and updated with every document write, so
 * a status request never reads the store: the outbox is read once at start-up (before anything
 * else of this analyzer; it holds only what waits for the analyzer, so it stays small), then each
 * write of an accession's documents updates its entry.
 *
 * Retention (`retentionDays`, the gateway passes store.retentionDays): an order document with
 * nothing left to send (no `pending`, no `cancelPending`, no outbox entry) whose last change
 * (`updatedAt`) is older than that is deleted, at start-up and once a day, by a scan of this
 * analyzer's documents in pages of DOC_SWEEP_PAGE. The documents name the patient (PID-3) and the
 * specimen; before, they stayed for the life of the box, long after retention removed the
 * messages and events they came from. A cancel arriving after that finds no document and sends
 * nothing, which is right for an order the analyzer ran weeks ago; an order of the accession
 * after that downloads its tests again.
 */

export const ORDER_DOWNLOAD_NS = 'orderDownload';
export const ORDER_OUTBOX_NS = 'orderOutbox';
export const ORDER_CURSOR_NS = 'orderDownloadCursor';
const SEP = '\u0000';
const DAY_MS = 86_400_000;
/** Order documents read per step of the retention scan (the chain is held for one page at a time). */
const DOC_SWEEP_PAGE = 200;

export interface OrderDownloadDoc {
  accession: string;
  specimenId?: string;
  patientId?: string;
  priority?: string;
  orderedAt?: string;
  /**
   * The tube each test was ordered on (canonical code → barcode: the order's tube that names it,
   * else its specimen id, else the accession), so that an order on several tubes downloads each
   * test under its own tube, and a cancel goes under the tube its test went under. A test without
   * an entry (documents written before) goes under `specimenId`, else the accession.
   */
  tubes?: Record<string, string>;
  /**
   * Other barcodes the analyzer holds a test under, besides its `tubes` entry (canonical code →
   * barcodes): a host query answer it took under another spelling of the tube's barcode (the
   * label `ACC-1` downloaded or asked for, `acc-1` typed at the analyzer and answered by the case
   * fallback). A cancel of the test goes under each of them as well (answeredByQuery). Cleared
   * when the test is downloaded anew (the analyzer holds it nowhere then).
   */
  alsoUnder?: Record<string, string[]>;
  /** Tests the analyzer accepted (canonical codes). */
  sent: OrderedTest[];
  /** Tests to send. */
  pending: OrderedTest[];
  /** Sent tests the LIS cancelled: a cancel (O.12 = C) to send. */
  cancelPending: OrderedTest[];
  /** Codes the LIS cancelled (a later order of the code downloads it again). */
  cancelled: string[];
  /**
   * Tests not downloaded, or taken back, because their tube's barcode is also another order's that
   * cannot be told apart from this one (two LIS systems, or two patients: host-query.ts
   * `orderCollision`). Never sent: the tube is for a human to sort out (#collided).
   */
  held?: OrderedTest[];
  /** Failed sends since the last success. */
  attempts: number;
  lastError?: string;
  /** When the last failed send failed (ISO); documents written before this field use `updatedAt`. */
  lastErrorAt?: string;
  updatedAt: string;
  /** Id of the newest LIS event applied to this document (a replay after a restart skips it and older ones). */
  lastEventId?: string;
}

interface CursorDoc {
  /** Every committed event up to this id has been recorded. */
  after: string;
}

interface OutboxEntry {
  queuedAt: string;
  /** The accession's order is STAT (ASAP): sent before routine ones (entries written before: routine). */
  stat?: true;
}

/**
 * The state of an analyzer's order download as IT staff see it on its status entry. Counts are of
 * accessions (one download message each: its orders and cancels for this analyzer).
 */
export interface OrderDownloadSummary {
  /** Accessions with orders or cancels still to send to the analyzer (its outbox). */
  waiting: number;
  /** When the accession waiting longest was queued (ISO); null when nothing waits. */
  oldestWaitingSince: string | null;
  /** Waiting accessions whose last send failed (the analyzer refused it or did not answer). */
  failing: number;
  /** Why the latest failed send of a still-waiting accession failed; null when none is failing. */
  lastError: string | null;
  /** When it failed (ISO). */
  lastErrorAt: string | null;
  /** The accession it was (an order number, no patient data). */
  lastErrorAccession: string | null;
  /** When the analyzer last accepted a download, since the gateway started (ISO); null before. */
  lastSentAt: string | null;
}

/** One accession in the outbox, in memory (see the class note). */
interface WaitingEntry {
  queuedAt: string;
  /** Refused sends since the analyzer last accepted one of the accession (the document's `attempts`). */
  attempts: number;
  failure?: { error: string; at: string };
}

/**
 * What became of a download the link wrote and reported sent (AstmEndpoint's `UnreceivedSend`):
 * learnt once its connection was dropped because the analyzer's TCP stack acknowledged nothing.
 * `received: false`: none of its bytes reached the analyzer; `'unknown'`: the analyzer may hold it.
 * `connection`: the same object for every download its close reports, told in the order written.
 */
export interface UnreceivedDownload {
  received: false | 'unknown';
  reason: string;
  connection: object;
}

/** What order download needs of the analyzer endpoint (`AstmEndpoint` fits). */
export interface OrderDownloadLink {
  readonly connections: number;
  /**
   * Resolves once the analyzer has the download as far as the link can tell (E1381: every frame
   * accepted; records-only: written). `onUnreceived` is told later if a records-only TCP link
   * learns it never reached the analyzer (#unreceived).
   */
  sendWorklist(records: readonly string[], options?: { onUnreceived?(fate: UnreceivedDownload): void }): Promise<void>;
}

export interface OrderDownloadOptions {
  analyzerId: string;
  profile: Profile;
  link: OrderDownloadLink;
  store: GatewayStore;
  telemetry: Telemetry;
  log: Logger;
  /** Delay before a refused download is tried again, for its first `maxAttempts` refusals (default 60 s). */
  retryDelayMs?: number;
  /** Refusals of one accession retried `retryDelayMs` apart; after that the delay doubles (default 5). */
  maxAttempts?: number;
  /** The longest delay between two tries of a refused download (default 15 min). */
  maxRetryDelayMs?: number;
  /** Least time between two writes of the cursor (default 1 s). */
  cursorIntervalMs?: number;
  /**
   * Order documents with nothing left to send are deleted this many days after their last change
   * (store.retentionDays; see the class note). Undefined keeps them.
   */
  retentionDays?: number;
  /**
   * How a tube's orders are looked up (the LIS links' accession prefixes and ids, as for the host
   * query) and who hears of a barcode whose orders collide (#collided). Not given: no prefixes,
   * every HL7 message, no one told.
   */
  lookup?: OrderLookupOptions;
}

const has = (tests: readonly OrderedTest[], code: string): boolean => tests.some((t) => t.code === code);
const without = (tests: readonly OrderedTest[], codes: readonly string[]): OrderedTest[] => tests.filter((t) => !codes.includes(t.code));
const outstanding = (doc: OrderDownloadDoc): boolean => doc.pending.length > 0 || doc.cancelPending.length > 0;

export class OrderDownload {
  readonly #opt: OrderDownloadOptions;
  readonly #retryDelayMs: number;
  readonly #maxAttempts: number;
  readonly #maxRetryDelayMs: number;
  /** Serialises the read-modify-write of this analyzer's documents. */
  #chain: Promise<unknown> = Promise.resolve();
  #flushing: Promise<void> | undefined;
  #again = false;
  #retryTimer: NodeJS.Timeout | undefined;
  /**
   * Downloads the analyzer accepted whose documents were not written yet (the write failed): the
   * next pass records them before anything else of the accession, and never sends them again.
   */
  readonly #unrecorded = new Map<string, { add: OrderedTest[]; cancel: OrderedTest[]; under: ReadonlyMap<string, string>; cancelledUnder: ReadonlyMap<string, readonly string[]> }>();
  /**
   * Of the downloads one close reported (UnreceivedDownload.connection), per accession and test,
   * what the analyzer holds as the first of them naming the test left it (#unreceived).
   */
  readonly #lostOn = new WeakMap<object, Map<string, Map<string, 'absent' | 'held' | 'maybe'>>>();
  /** Failed sends per accession since the last connection (in memory; the document keeps the total). */
  readonly #failures = new Map<string, number>();
  readonly #work = new Set<Promise<unknown>>();
  #stopped = false;
  /** Every committed event up to this id is recorded (undefined until the cursor is read). */
  #recordedUpTo: string | undefined;
  /** The cursor as last written. */
  #cursorWritten: string | undefined;
  #cursorTimer: NodeJS.Timeout | undefined;
  /** The daily retention scan (see the class note). */
  #sweepTimer: NodeJS.Timeout | undefined;
  /** A retention scan is running: the daily timer does not start a second one. */
  #sweeping = false;
  /** A recording failed: the cursor stays where it was, so the next start records it again. */
  #cursorHeld = false;
  /**
   * The outbox in memory, accession → entry, in the order of queuing (Map keeps insertion order:
   * loaded sorted at start-up, new accessions appended), so the first entry is the oldest.
   */
  readonly #waiting = new Map<string, WaitingEntry>();
  /** Accessions of #waiting whose last send failed. */
  readonly #failing = new Set<string>();
  /** The latest failure among #failing (recomputed from #failing only when it goes). */
  #latestFailure: { accession: string; error: string; at: string } | undefined;
  #lastSentAt: string | null = null;
  /** The outbox was read at start-up: summaries are true from now on. */
  #counted = false;
  readonly #summaryListeners = new Set<(summary: OrderDownloadSummary) => void>();

  constructor(options: OrderDownloadOptions) {
    this.#opt = options;
    this.#retryDelayMs = options.retryDelayMs ?? 60_000;
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? 5);
    this.#maxRetryDelayMs = Math.max(this.#retryDelayMs, options.maxRetryDelayMs ?? 15 * 60_000);
    // Before any new event: the events committed after the cursor (a crash between a commit and
    // its recording), in id order.
    this.#handle(() => this.#recover());
    if (options.retentionDays !== undefined) {
      this.#track(this.#sweep());
      this.#sweepTimer = setInterval(() => this.#track(this.#sweep()), DAY_MS);
      this.#sweepTimer.unref();
    }
  }

  get analyzerId(): string {
    return this.#opt.analyzerId;
  }

  /** The current state for the status surfaces (see OrderDownloadSummary); cheap, no store read. */
  summary(): OrderDownloadSummary {
    const oldest = this.#waiting.values().next();
    const latest = this.#latestFailure;
    return {
      waiting: this.#waiting.size,
      oldestWaitingSince: oldest.done ? null : oldest.value.queuedAt,
      failing: this.#failing.size,
      lastError: latest?.error ?? null,
      lastErrorAt: latest?.at ?? null,
      lastErrorAccession: latest?.accession ?? null,
      lastSentAt: this.#lastSentAt,
    };
  }

  /**
   * Called with the summary whenever it changes, first once the outbox was read at start-up (at
   * once when it was read already). Returns the unsubscribe function.
   */
  onSummary(listener: (summary: OrderDownloadSummary) => void): () => void {
    this.#summaryListeners.add(listener);
    if (this.#counted) listener(this.summary());
    return () => this.#summaryListeners.delete(listener);
  }

  /** Delete the cursors of analyzers not downloading orders now (start-up; see the class note). */
  static async forgetOtherCursors(store: GatewayStore, downloading: readonly string[]): Promise<void> {
    for (const { key } of await store.listDocs<CursorDoc>(ORDER_CURSOR_NS)) {
      if (!downloading.includes(key)) await store.deleteDoc(ORDER_CURSOR_NS, key);
    }
  }

  /** Committed events (store `onCommitted`): LIS orders and cancels of tests this analyzer runs. */
  onCommitted(events: readonly CanonicalEvent[]): void {
    // Recorded even while stopping (stop() waits for it); only sending stops.
    const relevant = events.filter(isOrderEvent);
    const last = events.reduce<string | undefined>((max, e) => (max === undefined || e.id > max ? e.id : max), undefined);
    this.#handle(async () => {
      let changed = false;
      for (const e of relevant) if (await this.#record(e)) changed = true;
      if (last !== undefined) this.#advance(last);
      return changed;
    });
  }

  /**
   * A host query answer asked the analyzer to run `tests` of `accession` (host-query.ts
   * `onAnswered`): those still to download count as downloaded. Before, the outbox downloaded them
   * again at its next pass (a second worklist entry for the tube: run twice), and a cancel of the
   * LIS afterwards dropped them as never sent, so the analyzer ran a cancelled test
   * (test/integration/review-s22-astm-query-and-download.test.ts). A download already on the wire
   * cannot be called back. Called once the analyzer took the answer (gateway.ts): a test the LIS
   * cancelled meanwhile, dropped from `pending` as never sent, gets its cancel. The analyzer holds
   * the tests it took under the barcode it asked for (`specimenId`, echoed by the answer), and a
   * cancel goes there: before, under the order's own tube, so a barcode typed in lower case at the
   * analyzer (`acc-tq-1` for ACC-TQ-1, found by the case fallback) got its cancel under ACC-TQ-1,
   * a sample the analyzer does not hold, and the cancelled test ran
   * (test/integration/review-s23b-case-download-cancel.test.ts). A test it holds already (sent,
   * or its cancel waiting) and takes again under another barcode (the label downloaded or asked
   * for, then the barcode typed in lower case, or the other way round) is held under both, and
   * its cancel goes under both (`alsoUnder`): before, under one of them only (the order's tube,
   * or since 41af7d6 the first answer's barcode), and the tube on the rack under the other ran
   * the cancelled test (test/integration/review-s23c-case-download-two-spellings.test.ts).
   */
  answeredByQuery(answered: { specimenId: string; accession: string; tests: readonly OrderedTest[] }): void {
    this.#handle(async () => {
      const doc = await this.#opt.store.getDoc<OrderDownloadDoc>(ORDER_DOWNLOAD_NS, this.#key(answered.accession));
      if (!doc) return false;
      const taken = answered.tests.filter((t) => has(doc.pending, t.code));
      // Cancelled by the LIS while the answer was on the wire: dropped as never sent, yet the
      // analyzer took them with the answer. Before, no cancel followed and the analyzer ran them
      // (test/integration/review-s22-astmb-query-answer-cancel-race.test.ts).
      const takenBack = answered.tests.filter((t) => doc.cancelled.includes(t.code) && !has(doc.pending, t.code) && !has(doc.sent, t.code) && !has(doc.cancelPending, t.code));
      // Held already under another barcode (downloaded, or answered before): held under this one too.
      const tubeOfTest = (code: string): string => doc.tubes?.[code] ?? doc.specimenId ?? doc.accession;
      const again = answered.tests.filter(
        (t) => (has(doc.sent, t.code) || has(doc.cancelPending, t.code)) && tubeOfTest(t.code) !== answered.specimenId && !(doc.alsoUnder?.[t.code] ?? []).includes(answered.specimenId),
      );
      if (taken.length === 0 && takenBack.length === 0 && again.length === 0) return false;
      for (const t of again) ((doc.alsoUnder ??= {})[t.code] ??= []).push(answered.specimenId);
      const codes = taken.map((t) => t.code);
      const moved = doc.pending.filter((t) => codes.includes(t.code));
      doc.pending = without(doc.pending, codes);
      for (const t of moved) if (!has(doc.sent, t.code)) doc.sent.push(t);
      for (const t of takenBack) doc.cancelPending.push(t);
      for (const t of [...moved, ...takenBack]) (doc.tubes ??= {})[t.code] = answered.specimenId;
      await this.#save(doc);
      if (codes.length > 0) this.#opt.log.info('order download: tests answered by host query count as downloaded', { analyzer: this.#opt.analyzerId, accession: answered.accession, tests: codes });
      if (takenBack.length > 0) this.#opt.log.info('order download: tests cancelled while a host query answer carried them are cancelled on the analyzer', { analyzer: this.#opt.analyzerId, accession: answered.accession, tests: takenBack.map((t) => t.code) });
      if (again.length > 0) this.#opt.log.info('order download: tests the analyzer holds were taken again under another barcode by a host query answer', { analyzer: this.#opt.analyzerId, accession: answered.accession, tests: again.map((t) => t.code) });
      // A cancel waiting for a test now held under another barcode too goes there as well.
      return takenBack.length > 0 || again.some((t) => has(doc.cancelPending, t.code));
    });
  }

  /**
   * A connection opened: send the outbox now, refused orders included (their delays start over;
   * one refused `maxAttempts` times still goes after the others).
   */
  onLink(): void {
    this.#failures.clear();
    this.#kick();
  }

  /** Stop sending; resolves when document writes in flight are done (before the store closes). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    while (this.#work.size > 0) await Promise.allSettled([...this.#work]);
    clearTimeout(this.#cursorTimer);
    this.#cursorTimer = undefined;
    await this.#writeCursor().catch((err: unknown) => this.#opt.log.warn('order download cursor not written', { analyzer: this.#opt.analyzerId, error: describeError(err) }));
  }

  // ---------------------------------------------------------------------------------------------

  /** One recording step in the chain; a failure alerts and holds the cursor. */
  #handle(step: () => Promise<boolean>): void {
    const p = this.#locked(step).then(
      (changed) => {
        if (changed) this.#kick();
      },
      (err: unknown) => {
        this.#cursorHeld = true;
        this.#opt.log.error('order download not recorded', { analyzer: this.#opt.analyzerId, error: describeError(err) });
        this.#opt.telemetry.alert(
          'warning',
          'GW_ASTM_LINK',
          `analyzer ${this.#opt.analyzerId}: order download not recorded: ${describeError(err)}; recorded again at the next start, and the analyzer can still ask for the specimen (host query)`,
          this.#opt.analyzerId,
        );
      },
    );
    this.#track(p);
  }

  /** Record the events committed after the cursor; a first start begins now. */
  async #recover(): Promise<boolean> {
    const { store, analyzerId } = this.#opt;
    await this.#countOutbox();
    const cursor = await store.getDoc<CursorDoc>(ORDER_CURSOR_NS, analyzerId);
    if (!cursor) {
      // Order download begins now: an id below every id made from now on.
      this.#recordedUpTo = (Date.now() - 1).toString(16).padStart(12, '0') + 'ffffffffffff';
      await this.#writeCursor();
      return false;
    }
    this.#recordedUpTo = this.#cursorWritten = cursor.after;
    let changed = false;
    let after = cursor.after;
    let recorded = 0;
    for (;;) {
      const page = await store.listEvents({ after, limit: 1000 });
      for (const stored of page) {
        const e = stored.event;
        if (isOrderEvent(e)) {
          recorded++;
          if (await this.#record(e)) changed = true;
        }
        after = e.id;
      }
      if (page.length < 1000) break;
    }
    if (recorded > 0) this.#opt.log.info('order download caught up after a restart', { analyzer: analyzerId, events: recorded });
    this.#advance(after);
    return changed;
  }

  /**
   * Read this analyzer's outbox into memory (start-up, first in the chain: no write comes before).
   * A failed read leaves the counts at what the writes from now on show, and says so in the log.
   */
  async #countOutbox(): Promise<void> {
    const { store, analyzerId, log } = this.#opt;
    const prefix = analyzerId + SEP;
    try {
      const entries = (await store.listDocs<OutboxEntry>(ORDER_OUTBOX_NS, { prefix })).sort((a, b) => compare(a.value.queuedAt, b.value.queuedAt));
      for (const { key, value } of entries) {
        const doc = await store.getDoc<OrderDownloadDoc>(ORDER_DOWNLOAD_NS, key);
        // An entry with nothing to send is dropped at the next pass; it does not wait.
        if (doc && outstanding(doc)) this.#waiting.set(key.slice(prefix.length), entryOf(doc, value));
      }
      for (const [accession, entry] of this.#waiting) if (entry.failure) this.#failing.add(accession);
      this.#latestFailure = this.#findLatestFailure();
    } catch (err) {
      log.warn('order download outbox not counted at start-up; the status shows the orders queued from now on', { analyzer: analyzerId, error: describeError(err) });
    }
    this.#counted = true;
    this.#notify();
  }

  /** The accession's documents were written: update its entry of the in-memory outbox. */
  #counts(accession: string, doc: OrderDownloadDoc, entry: OutboxEntry | undefined): void {
    if (entry && outstanding(doc)) {
      const next = entryOf(doc, entry);
      this.#waiting.set(accession, next);
      if (next.failure) {
        this.#failing.add(accession);
        const latest = this.#latestFailure;
        if (!latest || latest.accession === accession || next.failure.at >= latest.at) this.#latestFailure = { accession, ...next.failure };
      } else this.#forgetFailure(accession);
    } else {
      this.#waiting.delete(accession);
      this.#forgetFailure(accession);
    }
    this.#notify();
  }

  #forgetFailure(accession: string): void {
    if (!this.#failing.delete(accession)) return;
    if (this.#latestFailure?.accession === accession) this.#latestFailure = this.#findLatestFailure();
  }

  /** The most recent failure among the failing accessions (few: the pass stops at the first refusal). */
  #findLatestFailure(): { accession: string; error: string; at: string } | undefined {
    let latest: { accession: string; error: string; at: string } | undefined;
    for (const accession of this.#failing) {
      const f = this.#waiting.get(accession)?.failure;
      if (f && (!latest || f.at >= latest.at)) latest = { accession, ...f };
    }
    return latest;
  }

  #notify(): void {
    if (!this.#counted) return;
    const summary = this.summary();
    for (const l of this.#summaryListeners) {
      try {
        l(summary);
      } catch (err) {
        // A faulty subscriber never stops order download.
        this.#opt.log.warn('order download summary listener failed', { analyzer: this.#opt.analyzerId, error: describeError(err) });
      }
    }
  }

  /** Every committed event up to `id` is recorded: write the cursor soon (at most once per interval). */
  #advance(id: string): void {
    if (this.#cursorHeld) return;
    if (this.#recordedUpTo !== undefined && id <= this.#recordedUpTo) return;
    this.#recordedUpTo = id;
    if (this.#cursorTimer !== undefined || this.#stopped) return;
    this.#cursorTimer = setTimeout(() => {
      this.#cursorTimer = undefined;
      this.#track(this.#writeCursor().catch((err: unknown) => this.#opt.log.warn('order download cursor not written', { analyzer: this.#opt.analyzerId, error: describeError(err) })));
    }, this.#opt.cursorIntervalMs ?? 1_000);
    this.#cursorTimer.unref();
  }

  async #writeCursor(): Promise<void> {
    const upTo = this.#recordedUpTo;
    if (upTo === undefined || this.#cursorHeld || upTo === this.#cursorWritten) return;
    await this.#opt.store.putDoc(ORDER_CURSOR_NS, this.#opt.analyzerId, { after: upTo } satisfies CursorDoc);
    if (this.#cursorWritten === undefined || upTo > this.#cursorWritten) this.#cursorWritten = upTo;
  }

  /**
   * Delete this analyzer's order documents past retention with nothing left to send (see the
   * class note): page by page, each page inside the chain (a document is never deleted while an
   * event is being recorded into it), until the end or a stop.
   */
  async #sweep(): Promise<void> {
    const { store, analyzerId, log } = this.#opt;
    if (this.#sweeping || this.#opt.retentionDays === undefined) return;
    this.#sweeping = true;
    const prefix = analyzerId + SEP;
    let after: string | undefined;
    let deleted = 0;
    try {
      while (!this.#stopped) {
        const cutoff = Date.now() - this.#opt.retentionDays * DAY_MS;
        const page = await this.#locked(async () => {
          const docs = await store.listDocs<OrderDownloadDoc>(ORDER_DOWNLOAD_NS, { prefix, limit: DOC_SWEEP_PAGE, ...(after !== undefined ? { after } : {}) });
          const old = docs.filter(({ value }) => !outstanding(value) && Date.parse(value.updatedAt) < cutoff);
          const queued = await Promise.all(old.map(({ key }) => store.getDoc<OutboxEntry>(ORDER_OUTBOX_NS, key)));
          const gone = old.filter((_, i) => queued[i] === undefined);
          // Concurrent deletes share the store's group commit: one synced write per page.
          await Promise.all(gone.map(({ key }) => store.deleteDoc(ORDER_DOWNLOAD_NS, key)));
          deleted += gone.length;
          return docs;
        });
        if (page.length < DOC_SWEEP_PAGE) break;
        after = page[page.length - 1]!.key;
      }
      if (deleted > 0) log.info('order download documents past retention deleted', { analyzer: analyzerId, documents: deleted });
    } catch (err) {
      log.warn('order download documents past retention not deleted; tried again tomorrow', { analyzer: analyzerId, error: describeError(err) });
    } finally {
      this.#sweeping = false;
    }
  }

  #key(accession: string): string {
    return this.#opt.analyzerId + SEP + accession;
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn, fn);
    this.#chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  #track(p: Promise<unknown>): void {
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    this.#work.add(settled);
    void settled.then(() => this.#work.delete(settled));
  }

  /** Write the document and, while it has something to send, its outbox entry: one atomic batch. */
  async #save(doc: OrderDownloadDoc): Promise<void> {
    const { store } = this.#opt;
    const key = this.#key(doc.accession);
    doc.updatedAt = new Date().toISOString();
    if (outstanding(doc)) {
      const { stat: _stat, ...queued } = (await store.getDoc<OutboxEntry>(ORDER_OUTBOX_NS, key)) ?? { queuedAt: doc.updatedAt };
      const entry: OutboxEntry = isStat(doc.priority) ? { ...queued, stat: true } : queued;
      await store.commitLocal([], [
        { namespace: ORDER_DOWNLOAD_NS, key, value: doc },
        { namespace: ORDER_OUTBOX_NS, key, value: entry },
      ]);
      this.#counts(doc.accession, doc, entry);
    } else {
      // The document first: a crash in between leaves an outbox entry with nothing to send, dropped later.
      await store.putDoc(ORDER_DOWNLOAD_NS, key, doc);
      await store.deleteDoc(ORDER_OUTBOX_NS, key);
      this.#counts(doc.accession, doc, undefined);
    }
  }

  /** One LIS event into the analyzer's documents; true when something new is to be sent. */
  async #record(e: CanonicalEvent): Promise<boolean> {
    const { store, profile } = this.#opt;
    if (e.type === 'order.created') {
      const runnable = e.data.tests.filter((t) => analyzerTests([t], profile).length > 0);
      if (runnable.length === 0) return false;
      const doc = (await store.getDoc<OrderDownloadDoc>(ORDER_DOWNLOAD_NS, this.#key(e.data.accession))) ?? newDoc(e.data.accession);
      if (applied(doc, e)) return false;
      doc.lastEventId = e.id;
      // Ordered again after its cancellation (the billing derivation reads it the same way: an
      // order after a cancel re-adds the test): downloaded again, or, while its cancel has not
      // gone out yet, the cancel is simply not sent (on the wire already: #markSent downloads it again).
      let reordered = false;
      for (const t of runnable) {
        if (!doc.cancelled.includes(t.code)) continue;
        doc.cancelled = doc.cancelled.filter((c) => c !== t.code);
        const unsent = doc.cancelPending.find((c) => c.code === t.code);
        if (unsent) {
          doc.cancelPending = without(doc.cancelPending, [t.code]);
          doc.sent.push(unsent);
        }
        reordered = true;
      }
      const held = doc.held ?? [];
      const add = runnable.filter((t, i) => !has(doc.sent, t.code) && !has(doc.pending, t.code) && !has(doc.cancelPending, t.code) && !has(held, t.code) && !has(runnable.slice(0, i), t.code));
      if (add.length === 0) {
        if (reordered) await this.#save(doc);
        return false; // resent by the LIS: the analyzer has it already
      }
      const tubes = (doc.tubes ??= {});
      for (const t of add) {
        tubes[t.code] = tubeOf(e.data, t.code);
        // Not on the analyzer under any barcode (cancelled, or never sent): downloaded anew under its tube.
        if (doc.alsoUnder) delete doc.alsoUnder[t.code];
      }
      // A barcode another order shares (two LIS systems, two patients): nothing of it goes out,
      // and what the analyzer holds for it is taken back.
      const { collided, setApart } = await this.#collided(e.data.accession, [...new Set(add.map((t) => tubes[t.code]!))]);
      const free = add.filter((t) => !collided.has(tubes[t.code]!));
      if (free.length > 0) withOrder(doc, e.data);
      else if (doc.patientId === undefined && e.data.patientId !== undefined) doc.patientId = e.data.patientId;
      doc.pending.push(...free);
      if (free.length < add.length) doc.held = [...held, ...add.filter((t) => collided.has(tubes[t.code]!))];
      let toSend = free.length > 0;
      if (collided.size > 0 && holdTubes(doc, collided)) toSend = true;
      await this.#save(doc);
      if (setApart.size > 0 && (await this.#holdOthers(setApart))) toSend = true;
      return toSend;
    }
    if (e.type === 'order.cancelled') {
      const doc = await store.getDoc<OrderDownloadDoc>(ORDER_DOWNLOAD_NS, this.#key(e.data.accession));
      if (!doc) return false; // never meant for this analyzer
      if (applied(doc, e)) return false;
      doc.lastEventId = e.id;
      const codes = e.data.tests.length > 0 ? e.data.tests.map((t) => t.code) : [...doc.sent, ...doc.pending, ...doc.cancelPending].map((t) => t.code);
      let changed = false;
      let toSend = false;
      for (const code of new Set(codes)) {
        if (doc.held && has(doc.held, code)) {
          doc.held = without(doc.held, [code]);
          changed = true;
        }
        if (!doc.cancelled.includes(code)) {
          doc.cancelled.push(code);
          changed = true;
        }
        if (has(doc.pending, code)) {
          // Not downloaded yet: it simply is not sent.
          doc.pending = without(doc.pending, [code]);
          changed = true;
        }
        const sent = doc.sent.find((t) => t.code === code);
        if (sent) {
          doc.sent = without(doc.sent, [code]);
          if (!has(doc.cancelPending, code)) doc.cancelPending.push(sent);
          changed = toSend = true;
        }
      }
      if (changed) await this.#save(doc);
      return toSend;
    }
    return false;
  }

  /**
   * The tubes of `tubes` whose orders collide (host-query.ts `tubeOrders`: the barcode's orders
   * name two patients, or come from two LIS links for two clients) and that `accession` does not
   * keep, each with its collision (`collided`); and, per other accession, the colliding tubes
   * `tubeOrders` sets it apart from (`setApart`: whether or not `accession` keeps the tube). The
   * lab is told of each collision (`lookup.onCollision`). The host query answers such a tube "no
   * order", or with the orders that keep it only; before, the download sent each order under the
   * barcode as it came, and the analyzer held two patients' tests for one tube
   * (test/integration/review-s22-astm-download-two-lis.test.ts). And before, the tube's own order
   * coming after another patient's order naming it took nothing back: the analyzer kept the other
   * patient's tests under the tube and ran them on this patient's blood, no alert said so
   * (test/integration/review-s22-astmb-download-kept-tube.test.ts). A look-up that fails is logged
   * and the download goes on as it did before this check.
   */
  async #collided(accession: string, tubes: readonly string[]): Promise<{ collided: Map<string, OrderCollision>; setApart: Map<string, Set<string>> }> {
    const { store, log, analyzerId } = this.#opt;
    const lookup = this.#opt.lookup ?? {};
    const collided = new Map<string, OrderCollision>();
    const setApart = new Map<string, Set<string>>();
    for (const tube of tubes) {
      try {
        const found = tubeOrders(tube, await orderEventsForSpecimen(store, tube, lookup), lookup);
        const { collision } = found;
        if (!collision) continue;
        lookup.onCollision?.(collision);
        // The orders the tube does not go with (not the add-ons of the order that keeps it).
        const keeps = new Set(found.orders.map((o) => o.event.correlationId));
        for (const other of new Set(found.setApart.map((o) => o.event.correlationId))) {
          if (other === accession || keeps.has(other)) continue;
          let apart = setApart.get(other);
          if (!apart) setApart.set(other, (apart = new Set()));
          apart.add(tube);
        }
        if (!keeps.has(accession)) collided.set(tube, collision);
      } catch (err) {
        log.warn('order download: the orders of a tube could not be looked up; downloaded without checking that its barcode is no other order\'s', { analyzer: analyzerId, accession, tube, error: describeError(err) });
      }
    }
    return { collided, setApart };
  }

  /**
   * The other orders of collided tubes (set apart by `tubeOrders`) give the tube up too: their
   * tests on it not sent yet are held, those the analyzer has get a cancel. True when a cancel is
   * to be sent. Before, every order but those carrying the barcode's number gave it up, the
   * add-ons of that number's order too (same patient, SPM-2 = the tube): their tests cancelled.
   */
  async #holdOthers(setApart: ReadonlyMap<string, ReadonlySet<string>>): Promise<boolean> {
    let toSend = false;
    for (const [other, tubes] of setApart) {
      const doc = await this.#opt.store.getDoc<OrderDownloadDoc>(ORDER_DOWNLOAD_NS, this.#key(other));
      if (!doc || !holdTubes(doc, new Map([...tubes].map((t) => [t, true])))) continue;
      await this.#save(doc);
      if (doc.cancelPending.length > 0) toSend = true;
    }
    return toSend;
  }

  /** Send the outbox now, or once the pass in progress ends. */
  #kick(): void {
    if (this.#stopped) return;
    if (this.#flushing) {
      this.#again = true;
      return;
    }
    const run = (async () => {
      do {
        this.#again = false;
        await this.#pass();
      } while (this.#again && !this.#stopped);
    })()
      .catch((err: unknown) => {
        this.#opt.log.warn('order download outbox not sent', { analyzer: this.#opt.analyzerId, error: describeError(err) });
        // A store read or write failed: the rest of the outbox is tried again later.
        this.#retryIn(this.#retryDelayMs);
      })
      .finally(() => {
        this.#flushing = undefined;
      });
    this.#flushing = run;
    this.#track(run);
  }

  /**
   * One pass over the outbox, oldest first — accessions refused `maxAttempts` times or more after
   * the others — and stops at the first refused send (the line is busy, or the analyzer refuses:
   * the retry timer comes back). The refusals that place an accession last are those since the
   * analyzer last accepted it (its document's `attempts`), not since the last connection: an
   * analyzer that connects for each transmission (TCP) started the count over every time, so the
   * accession it keeps refusing went first, was refused, and stopped every pass before the orders
   * queued behind it.
   */
  async #pass(): Promise<void> {
    const { store, link, analyzerId, profile, log } = this.#opt;
    if (link.connections === 0) return;
    const prefix = analyzerId + SEP;
    const refusals = (accession: string): number => Math.max(this.#failures.get(accession) ?? 0, this.#waiting.get(accession)?.attempts ?? 0);
    const backedOff = (key: string): number => (refusals(key.slice(prefix.length)) >= this.#maxAttempts ? 1 : 0);
    // STAT before routine: before, a STAT order queued behind the routine ones of a night waited
    // for every one of their sessions (test/integration/review-s22-astm-download-stat.test.ts).
    const routine = (e: OutboxEntry): number => (e.stat ? 0 : 1);
    const entries = (await store.listDocs<OutboxEntry>(ORDER_OUTBOX_NS, { prefix })).sort((a, b) => backedOff(a.key) - backedOff(b.key) || routine(a.value) - routine(b.value) || compare(a.value.queuedAt, b.value.queuedAt));
    for (const { key } of entries) {
      if (this.#stopped || link.connections === 0) return;
      const accession = key.slice(prefix.length);
      const taken = this.#unrecorded.get(accession);
      if (taken) {
        // The analyzer has these already: recorded now, and what is left (if anything) sent below.
        await this.#locked(() => this.#markSent(accession, taken.add, taken.cancel, taken.under, taken.cancelledUnder));
        this.#unrecorded.delete(accession);
      }
      const doc = await store.getDoc<OrderDownloadDoc>(ORDER_DOWNLOAD_NS, key);
      if (!doc || !outstanding(doc)) {
        await this.#locked(() => this.#dropStaleEntry(key));
        continue;
      }
      const add = [...doc.pending];
      const cancel = [...doc.cancelPending];
      // The barcode each test goes under (a host query answer may give the analyzer the test under
      // another one before this download is on the line: #markSent).
      const under = new Map(add.map((t) => [t.code, doc.tubes?.[t.code] ?? doc.specimenId ?? doc.accession]));
      // And the barcodes each cancel goes under (a host query answer may give the analyzer the test
      // under another one before this cancel is on the line: #markSent sends it there next).
      const cancelledUnder = new Map(cancel.map((t) => [t.code, [doc.tubes?.[t.code] ?? doc.specimenId ?? doc.accession, ...(doc.alsoUnder?.[t.code] ?? [])]]));
      // The tubes the analyzer has tests of this accession for (a cancel in the same message comes after the adds).
      const onAnalyzer = new Set([...doc.sent, ...doc.cancelPending].flatMap((t) => [doc.tubes?.[t.code] ?? doc.specimenId ?? doc.accession, ...(doc.alsoUnder?.[t.code] ?? [])]));
      const records = buildOrderDownload({ ...doc, onAnalyzer }, { add, cancel }, profile, { receiver: analyzerId });
      if (records.length > 0) {
        try {
          await link.sendWorklist(records, { onUnreceived: (fate) => this.#unreceived(accession, add, cancel, fate, cancelledUnder) });
        } catch (err) {
          await this.#refused(accession, err);
          return;
        }
        this.#lastSentAt = new Date().toISOString();
        log.info('order downloaded to analyzer', { analyzer: analyzerId, accession, tests: add.map((t) => t.code), cancelled: cancel.map((t) => t.code) });
      }
      this.#failures.delete(accession);
      // Until its document says so, the accepted download is remembered here (a failed write
      // leaves it pending in the store): a later pass records it instead of sending it again.
      this.#unrecorded.set(accession, { add, cancel, under, cancelledUnder });
      await this.#locked(() => this.#markSent(accession, add, cancel, under, cancelledUnder));
      this.#unrecorded.delete(accession);
    }
  }

  async #dropStaleEntry(key: string): Promise<void> {
    const doc = await this.#opt.store.getDoc<OrderDownloadDoc>(ORDER_DOWNLOAD_NS, key);
    if (!doc || !outstanding(doc)) {
      await this.#opt.store.deleteDoc(ORDER_OUTBOX_NS, key);
      const accession = key.slice(this.#opt.analyzerId.length + SEP.length);
      if (this.#waiting.has(accession)) this.#counts(accession, doc ?? newDoc(accession), undefined);
    }
  }

  /** The analyzer accepted the message: `add` is sent (or, cancelled meanwhile, to cancel), `cancel` done. */
  async #markSent(
    accession: string,
    add: OrderedTest[],
    cancel: OrderedTest[],
    under: ReadonlyMap<string, string> = new Map(),
    cancelledUnder: ReadonlyMap<string, readonly string[]> = new Map(),
  ): Promise<void> {
    const doc = await this.#opt.store.getDoc<OrderDownloadDoc>(ORDER_DOWNLOAD_NS, this.#key(accession));
    if (!doc) return;
    const addCodes = add.map((t) => t.code);
    doc.pending = without(doc.pending, addCodes);
    doc.cancelPending = without(doc.cancelPending, cancel.map((t) => t.code));
    // A cancel taken under the barcodes the outbox read, while a host query answer the analyzer
    // took before it (this cancel waited for the line) gave it the test under another barcode as
    // well (answeredByQuery: alsoUnder): the analyzer still holds the test there, and the cancel
    // goes there next, under that barcode only. Before, the test counted as cancelled everywhere
    // and the tube typed at the analyzer (acc-1 for ACC-1) ran the cancelled test
    // (test/integration/review-s23d-case-cancel-race.test.ts).
    // A test the LIS ordered again while its cancel was on the wire (#record took the cancel for
    // one not sent yet and withdrew it: the test counted as sent): the analyzer took the cancel and
    // holds the test under none of the barcodes the cancel went under. Held nowhere else, it is
    // downloaded again; held under another barcode still (a host query answer it took meanwhile),
    // it is held there. Before, it counted as sent and the order again never reached the analyzer
    // (test/unit/review-s23e-reorder-during-cancel.test.ts).
    for (const t of cancel) {
      const went = cancelledUnder.get(t.code);
      if (went === undefined || doc.cancelled.includes(t.code) || !has(doc.sent, t.code)) continue;
      const holders = [...new Set([doc.tubes?.[t.code] ?? doc.specimenId ?? doc.accession, ...(doc.alsoUnder?.[t.code] ?? [])])];
      const left = holders.filter((b) => !went.includes(b));
      if (left.length > 0) {
        (doc.tubes ??= {})[t.code] = left[0]!;
        if (left.length > 1) (doc.alsoUnder ??= {})[t.code] = left.slice(1);
        else if (doc.alsoUnder) delete doc.alsoUnder[t.code];
        continue;
      }
      const ordered = doc.sent.find((s) => s.code === t.code)!;
      doc.sent = without(doc.sent, [t.code]);
      if (!has(doc.pending, t.code)) doc.pending.push(ordered);
      if (doc.alsoUnder) delete doc.alsoUnder[t.code];
    }
    for (const t of cancel) {
      const went = cancelledUnder.get(t.code);
      if (went === undefined || !doc.cancelled.includes(t.code) || has(doc.sent, t.code) || has(doc.pending, t.code) || has(doc.cancelPending, t.code)) continue;
      const holders = [...new Set([doc.tubes?.[t.code] ?? doc.specimenId ?? doc.accession, ...(doc.alsoUnder?.[t.code] ?? [])])];
      const left = holders.filter((b) => !went.includes(b));
      if (left.length === 0) continue;
      doc.cancelPending.push(t);
      (doc.tubes ??= {})[t.code] = left[0]!;
      if (left.length > 1) (doc.alsoUnder ??= {})[t.code] = left.slice(1);
      else if (doc.alsoUnder) delete doc.alsoUnder[t.code];
    }
    for (const t of add) {
      if (doc.cancelled.includes(t.code)) {
        // The LIS cancelled it while it was on the wire: the analyzer has it, so it gets the cancel.
        if (!has(doc.cancelPending, t.code)) doc.cancelPending.push(t);
      } else if (!has(doc.sent, t.code)) doc.sent.push(t);
      // Taken meanwhile under another barcode (a host query answer the analyzer took while this
      // download waited for the line: answeredByQuery made that barcode its tube): the analyzer
      // holds it under both, and a cancel goes under both. Before, under the answer's alone, and
      // the tube under the label ran the cancelled test
      // (test/integration/review-s23c-case-download-two-spellings.test.ts).
      const went = under.get(t.code);
      const tube = doc.tubes?.[t.code] ?? doc.specimenId ?? doc.accession;
      if (went !== undefined && went !== tube && !(doc.alsoUnder?.[t.code] ?? []).includes(went)) ((doc.alsoUnder ??= {})[t.code] ??= []).push(went);
    }
    doc.attempts = 0;
    delete doc.lastError;
    delete doc.lastErrorAt;
    await this.#save(doc);
    // A cancel recorded while this message was on the wire: another pass sends it on this link.
    if (outstanding(doc)) this.#again = true;
  }

  /**
   * A download marked sent (a records-only link reports it sent once written) that the analyzer
   * never received: its connection was dropped because the analyzer's TCP stack acknowledged
   * nothing for `silentPeerMs` (switched off, or its cable pulled, while idle), and none of the
   * download's bytes had been acknowledged. Its tests go back to `pending`, and its cancels to
   * `cancelPending`, with the reason as the accession's last failure ("not received by the
   * analyzer: the connection was closed after it acknowledged nothing for 60 s"), counted as a
   * refused send: `failing` on the status, an alert, and sent again when the analyzer connects
   * (onLink), or at once on a connection already open. Before, it stayed sent: the analyzer back
   * on never got the order, and the technician typed it in by hand
   * (test/integration/astm-vanished-analyzer-download-resend-audit.test.ts).
   *
   * Only what is certain goes back: a download some of whose bytes were acknowledged
   * (`received: 'unknown'`) may be on the analyzer's worklist, and on a records-only link an order
   * sent twice may be run twice: it stays sent, with a warning and an alert naming the accession
   * so the technician checks the analyzer. What changed since is respected: a test the LIS
   * cancelled meanwhile is not sent again and needs no cancel; a cancelled test ordered again and
   * not sent yet is on the analyzer still (its cancel never arrived): it counts as sent.
   *
   * Several downloads of the accession lost on one connection (the LIS changed the order while the
   * analyzer was off): the analyzer holds what it held before the first of them naming a test, so
   * only that one sets the test back; the later ones leave it. Before, each set it back in turn:
   * a cancel and the order again, both lost, had the order sent again to an analyzer still holding
   * the test (run twice on the sample); an order and its cancel, both lost, had the cancel sent for
   * a test the analyzer never had, and an order of it again then taken for one it kept (never sent)
   * (test/unit/order-download-unreceived-audit.test.ts). After a download that may have arrived
   * (`'unknown'`) a lost order of the same test is not sent again either (the analyzer may hold it:
   * the alert names the accession); a lost cancel is (a cancel of a test it lacks is harmless).
   */
  #unreceived(accession: string, allAdd: OrderedTest[], allCancel: OrderedTest[], fate: UnreceivedDownload, cancelledUnder: ReadonlyMap<string, readonly string[]> = new Map()): void {
    const { analyzerId, telemetry, log, store } = this.#opt;
    let lost = this.#lostOn.get(fate.connection);
    if (!lost) this.#lostOn.set(fate.connection, (lost = new Map()));
    let known = lost.get(accession);
    if (!known) lost.set(accession, (known = new Map()));
    if (fate.received !== false) {
      for (const t of [...allAdd, ...allCancel]) if (!known.has(t.code)) known.set(t.code, 'maybe');
      log.warn('order download perhaps not received by the analyzer', { analyzer: analyzerId, accession, reason: fate.reason });
      telemetry.alert('warning', 'GW_ASTM_LINK', `analyzer ${analyzerId}: order download of accession ${accession} ${fate.reason}; not sent again (it may be on the analyzer's worklist): check the analyzer`, analyzerId);
      return;
    }
    // A download whose document write failed is remembered as accepted (#unrecorded): it was not.
    const taken = this.#unrecorded.get(accession);
    if (taken && taken.add === allAdd && taken.cancel === allCancel) this.#unrecorded.delete(accession);
    // The tests this download is the first lost one to name (see above).
    const add = allAdd.filter((t) => {
      if (known.has(t.code)) return false;
      known.set(t.code, 'absent');
      return true;
    });
    const cancel = allCancel.filter((t) => {
      const before = known.get(t.code);
      if (before === undefined) known.set(t.code, 'held');
      return before === undefined || before === 'maybe';
    });
    if (add.length === 0 && cancel.length === 0) return;
    const run = this.#locked(async () => {
      const doc = await store.getDoc<OrderDownloadDoc>(ORDER_DOWNLOAD_NS, this.#key(accession));
      if (!doc) return false;
      let changed = false;
      for (const t of add) {
        if (has(doc.sent, t.code)) {
          doc.sent = without(doc.sent, [t.code]);
          if (!has(doc.pending, t.code)) doc.pending.push(t);
          changed = true;
        } else if (has(doc.cancelPending, t.code)) {
          // Cancelled by the LIS since: the analyzer never had it, so it needs no cancel either.
          doc.cancelPending = without(doc.cancelPending, [t.code]);
          changed = true;
        }
      }
      for (const t of cancel) {
        if (doc.cancelled.includes(t.code)) {
          if (!has(doc.cancelPending, t.code) && !has(doc.sent, t.code) && !has(doc.pending, t.code)) {
            doc.cancelPending.push(t);
            changed = true;
          }
          // The lost cancel goes again under every barcode it went under, besides those a cancel
          // waits under now: #markSent may have moved the test's tube to the barcode a host query
          // answer gave it meanwhile (the cancel's follow-up, a96337d). Before, the follow-up's
          // barcode alone got the cancel, and the analyzer, back on, ran the cancelled test under
          // the label (test/unit/review-s23e-cancel-race-unreceived.test.ts).
          if (has(doc.cancelPending, t.code)) {
            const tube = doc.tubes?.[t.code] ?? doc.specimenId ?? doc.accession;
            for (const b of cancelledUnder.get(t.code) ?? []) {
              if (b === tube || (doc.alsoUnder?.[t.code] ?? []).includes(b)) continue;
              ((doc.alsoUnder ??= {})[t.code] ??= []).push(b);
              changed = true;
            }
          }
        } else if (has(doc.pending, t.code)) {
          // Ordered again since, not sent yet: the analyzer still has the test it never saw cancelled.
          doc.pending = without(doc.pending, [t.code]);
          if (!has(doc.sent, t.code)) doc.sent.push(t);
          changed = true;
        }
      }
      if (!changed) return false;
      // A failure only while something waits: kept with nothing to send, it showed the next order
      // of the accession failing before it was ever sent (order-download-unreceived-audit.test.ts).
      if (outstanding(doc)) {
        doc.attempts++;
        doc.lastError = fate.reason;
        doc.lastErrorAt = new Date().toISOString();
      }
      await this.#save(doc);
      return outstanding(doc);
    });
    const p = run.then(
      (toSend) => {
        if (!toSend) return;
        log.warn('order download not received by the analyzer: sent again when it connects', { analyzer: analyzerId, accession, reason: fate.reason });
        telemetry.alert('warning', 'GW_ASTM_LINK', `analyzer ${analyzerId}: order download of accession ${accession} ${fate.reason}; kept, sent again when the analyzer connects`, analyzerId);
        this.#kick();
      },
      (err: unknown) => {
        log.error('order download not received by the analyzer, and not put back', { analyzer: analyzerId, accession, reason: fate.reason, error: describeError(err) });
        telemetry.alert('warning', 'GW_ASTM_LINK', `analyzer ${analyzerId}: order download of accession ${accession} ${fate.reason}, and could not be put back (${describeError(err)}): send it again by hand`, analyzerId);
      },
    );
    this.#track(p);
  }

  /**
   * The delay before the next try after an accession's `failures`-th refusal since the last
   * connection: the first `maxAttempts` sends are `retryDelayMs` apart, then the delay doubles up
   * to `maxRetryDelayMs`. Defaults: sends at 0, 1, 2, 3, 4 min, then 2, 4, 8, 15, 15, … min apart.
   */
  #retryDelay(failures: number): number {
    if (failures < this.#maxAttempts) return this.#retryDelayMs;
    const doublings = Math.min(30, failures - this.#maxAttempts + 1);
    return Math.min(this.#maxRetryDelayMs, this.#retryDelayMs * 2 ** doublings);
  }

  /** A refused or failed send: alert, keep it in the outbox, retry later (backing off) or on the next connection. */
  async #refused(accession: string, err: unknown): Promise<void> {
    const { analyzerId, link, telemetry, log, store } = this.#opt;
    const error = describeError(err);
    if (link.connections === 0 || this.#stopped) {
      // The connection went away: the outbox goes out on the next one.
      log.info('order download waits for the analyzer to connect', { analyzer: analyzerId, accession, error });
      return;
    }
    const failures = (this.#failures.get(accession) ?? 0) + 1;
    this.#failures.set(accession, failures);
    const delay = this.#retryDelay(failures);
    const next = `kept, retried in ${delay < 120_000 ? `${Math.round(delay / 1000)} s` : `${Math.round(delay / 60_000)} min`} and at once when the analyzer connects again`;
    log.warn('order download refused by the analyzer', { analyzer: analyzerId, accession, attempt: failures, error });
    telemetry.alert('warning', 'GW_ASTM_LINK', `analyzer ${analyzerId}: order download of accession ${accession} not accepted (${error}); ${next}`, analyzerId);
    try {
      await this.#locked(async () => {
        const doc = await store.getDoc<OrderDownloadDoc>(ORDER_DOWNLOAD_NS, this.#key(accession));
        if (!doc || !outstanding(doc)) return;
        doc.attempts++;
        doc.lastError = error;
        doc.lastErrorAt = new Date().toISOString();
        await this.#save(doc);
      });
    } catch (e) {
      log.warn('order download attempt not recorded', { analyzer: analyzerId, accession, error: describeError(e) });
    }
    // The delay of this refusal replaces any earlier timer: one pass tries the whole outbox.
    this.#retryIn(delay);
  }

  #retryIn(delay: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#kick();
    }, delay);
    this.#retryTimer.unref();
  }
}

function isOrderEvent(e: CanonicalEvent): boolean {
  return e.source.kind === 'hl7' && (e.type === 'order.created' || e.type === 'order.cancelled');
}

/** The event (or a later one) was applied to the document already: a replay after a restart. */
function applied(doc: OrderDownloadDoc, e: CanonicalEvent): boolean {
  return doc.lastEventId !== undefined && e.id <= doc.lastEventId;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The in-memory outbox entry of a document with something to send. */
function entryOf(doc: OrderDownloadDoc, entry: OutboxEntry): WaitingEntry {
  const { attempts } = doc;
  return attempts > 0 && doc.lastError !== undefined ? { queuedAt: entry.queuedAt, attempts, failure: { error: doc.lastError, at: doc.lastErrorAt ?? doc.updatedAt } } : { queuedAt: entry.queuedAt, attempts };
}

/**
 * The document's tests on `tubes` (collided barcodes) are held: pending ones are no longer sent,
 * sent ones get a cancel (still held, so the LIS resending the order downloads nothing). True when
 * something changed.
 */
function holdTubes(doc: OrderDownloadDoc, tubes: ReadonlyMap<string, unknown>): boolean {
  const tubeOfTest = (t: OrderedTest): string => doc.tubes?.[t.code] ?? doc.specimenId ?? doc.accession;
  const onTube = (t: OrderedTest): boolean => tubes.has(tubeOfTest(t));
  const pending = doc.pending.filter(onTube);
  const sent = doc.sent.filter(onTube);
  if (pending.length === 0 && sent.length === 0) return false;
  const held = doc.held ?? [];
  for (const t of [...pending, ...sent]) if (!has(held, t.code)) held.push(t);
  doc.held = held;
  doc.pending = doc.pending.filter((t) => !onTube(t));
  doc.sent = doc.sent.filter((t) => !onTube(t));
  for (const t of sent) if (!has(doc.cancelPending, t.code)) doc.cancelPending.push(t);
  return true;
}

function newDoc(accession: string): OrderDownloadDoc {
  return { accession, sent: [], pending: [], cancelPending: [], cancelled: [], attempts: 0, updatedAt: new Date().toISOString() };
}

/**
 * The tube an order puts `code` on: of an order on several tubes, the one whose tests name it;
 * else (one tube, or a test the LIS named no tube for) the order's first tube, else the accession.
 */
function tubeOf(order: OrderCreatedData, code: string): string {
  return order.specimens?.find((s) => s.tests.includes(code))?.specimenId ?? order.specimenId ?? order.accession;
}

/** The latest order's specimen, patient, priority and time (what the O record carries). */
function withOrder(doc: OrderDownloadDoc, order: OrderCreatedData): void {
  if (order.specimenId !== undefined) doc.specimenId = order.specimenId;
  if (order.patientId !== undefined) doc.patientId = order.patientId;
  if (order.priority !== undefined) doc.priority = order.priority;
  if (order.orderedAt !== undefined) doc.orderedAt = order.orderedAt;
}
