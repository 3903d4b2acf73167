import { readMemory, withMemory, type HistorySource } from '../events/billing-memory.ts';
import { BILLING_STATE_TYPES, billingState, copiedTo } from '../events/invoice-eligibility.ts';
import { partitionKeys } from '../events/keys.ts';
import type { DraftEvent, EventSource, EventType } from '../events/types.ts';
import type { GatewayStore, StoredEvent } from '../store/types.ts';
import { namespacedAccession } from './accession-namespace.ts';
import { analyseBlock } from './block.ts';
import type { Charset } from './charset.ts';
import { readInbound } from './inbound.ts';
import type { Hl7Message } from './message.ts';

/**
 * A LIS result attached to its order by the order's other number (README.md "Results naming their
 * order by its other number"). The accession is ORC-2, else OBR-2, else the filler number ORC-3 /
 * OBR-3 (normalize-lis.ts): an order carrying placer 70001 and filler LF-9001 is 70001, and a
 * result carrying only LF-9001 (OBR-2 is optional in results) was LF-9001: it waited for an order
 * of that accession that never came and was dead-lettered, the test never billed. The other way
 * round too: an order carrying only LF-9001 is LF-9001, its result carrying 70001 and LF-9001 was
 * 70001.
 *
 * Per LIS link (one per Hl7Intake): the accessions of the orders the link committed since the
 * start, or found in the store, are held in memory (`#known`, bounded). A result message whose
 * ORC/OBR carry no filler number, or whose every accession is known, needs nothing
 * (`needsLookup`, synchronous: no read, no await: the usual case). Otherwise (`attach`, before the
 * commit) each unknown accession is read in the store; when no order of it is stored, the orders
 * of this link whose accession or filler number (`order.created.fillerOrderNumber`) is one of the
 * result's own numbers for it are looked for (the message index, then the orders' events): one
 * order (one accession) → the result's events take its accession; none → unchanged; several, or
 * only orders of another patient (PID-3.1, when both name one) → unchanged, with a warning.
 * Of several orders, those the LIS cancelled as a whole are no candidates: a new order that took
 * the filler number of a cancelled one gets the result (before, attached to neither, the live
 * order's test was never billed); two live orders stay ambiguous.
 * Idempotency keys are never changed (endpoint + control id + position): a resend is the same.
 *
 * A result that finds no order came before it: its numbers are kept (`#waiting`, and the link's
 * document WAITING_NAMESPACE), and the order naming one of them, when it comes, gets a copy of the
 * stored result (attachWaiting; the stored body never changes). Before, the result waited for an
 * order of its own number that never came and was dead-lettered after a day, the test never
 * billed. An order naming no such number reads nothing (`needsLookup`, synchronous).
 *
 * Only a link that has sent an order carrying a filler number (ORC-3 / OBR-3: `fillerOrderNumber`)
 * can have a result naming its order by another number: the look-up matches an order's accession
 * or filler number against the result's other numbers, and an order without a filler number has
 * no other number. The link's mark (`ordersCarryFiller`) is a store document, written once, when
 * the first such order is read (before its commit: a result right behind it is looked up too), and
 * read once at start. A link that has never sent one (a LIS that sends results only) looks nothing
 * up: before, each of its results (no order known, a filler number in ORC-3) read the message index
 * after waiting for every batch in flight to reach LevelDB, and the intake bench fell from ~3,900
 * to ~450 messages/s.
 */
/** The store document of a link's mark: namespace, key = the link's id. */
export const LINK_MARK_NAMESPACE = 'hl7-link-numbers';
interface LinkMark {
  ordersCarryFiller: boolean;
  since?: string;
}

/**
 * The store documents of a link's results that came before their order (README.md "A result that
 * came before its order"): namespace, one document per waiting number, key `<link's id>␀<number>`
 * (waitingKey). Each entry: one of the result's numbers (its accession and the other number of the
 * ORC/OBR naming it), the (bare) accession it is stored under, its patient (PID-3.1) and when it
 * came; `orders`, the (bare) accessions of the orders that came carrying the number while a result
 * waited under it (an add-on naming such an order by its accession alone is looked up too).
 * Written when such a result is looked up and finds no order (that number's document only), read
 * once at start (listDocs); a number goes after WAITING_KEEP_MS (the result is a dead letter by
 * then) or beyond WAITING_MAX numbers, its document deleted.
 *
 * Key `<link's id>` itself: the link's mark that its waiting numbers are kept (`{ v: 1, entries:
 * [] }`, written once): a marked link without it is a store the release before wrote (its results
 * are read once: #seedWaiting). Until the per-number documents, that document held every entry
 * and was written whole for every new waiting number (up to 10,000 entries, ~700 KB); one such
 * (never released, written by this code's first form) is read once and split (#readWaiting).
 */
export const WAITING_NAMESPACE = 'hl7-link-waiting';
interface WaitingEntry {
  n: string;
  accession: string;
  patient?: string;
  at: number;
}
interface WaitingDoc {
  v: 1;
  entries: WaitingEntry[];
}
interface WaitingNumberDoc {
  v: 2;
  entries: WaitingEntry[];
  orders?: string[];
}
/** The key of the document of the link's waiting number `n`. */
export function waitingKey(endpoint: string, n: string): string {
  return `${endpoint}\u0000${n}`;
}
const WAITING_KEEP_MS = 7 * 24 * 3600_000;
/** Waiting numbers kept per link; the oldest go first. */
const WAITING_MAX = 10_000;
/** Documents read per page at start. */
const WAITING_READ_PAGE = 1_000;
/** Results read per page, and pages per state at most, when a store the release before wrote is read once for them. */
const SEED_PAGE = 500;
const SEED_PAGES = 40;
/** A result coming again under a number kept this long ago or more renews its 7 days (and the document is written). */
const WAITING_REFRESH_MS = 3_600_000;

/**
 * The store document of a result attached to the order that came after it: namespace, key = the
 * stored result's event id; the order's accession (as stored) and the idempotency key of the
 * result's event on it. The relay reads it for the stored result (resultAttachedTo).
 */
export const ATTACHED_NAMESPACE = 'hl7-result-attached';
export interface AttachedResult {
  accession: string;
  key: string;
}

/** The idempotency key of a stored result's event attached to its order: one per stored event, whichever order takes it. */
export function attachedKey(original: string): string {
  return `${original}|attached`;
}

/**
 * The order a stored result (its body keeps the number it came under) was attached to when the
 * order came after it (its event on the order is in the store, not discarded): its accession, or
 * undefined. rules/result-validated.ts then finishes the stored result without a write.
 */
export async function resultAttachedTo(
  read: { doc?<T>(namespace: string, key: string): Promise<T | undefined>; events?(correlationId: string, types?: EventType[]): Promise<StoredEvent[]> },
  e: StoredEvent,
): Promise<string | undefined> {
  if (!read.doc || !read.events) return undefined;
  const moved = await read.doc<AttachedResult>(ATTACHED_NAMESPACE, e.event.id);
  if (!moved || typeof moved.accession !== 'string' || typeof moved.key !== 'string') return undefined;
  const there = await read.events(moved.accession, [e.event.type]);
  return there.some((x) => x.event.idempotencyKey === moved.key && x.state !== 'discarded') ? moved.accession : undefined;
}

/** Messages read at most per number looked up in the message index. */
const INDEX_PAGE = 200;
/** Accessions held in memory per link; the oldest go first. */
const KNOWN_MAX = 100_000;

type LookupStore = Pick<GatewayStore, 'eventsByCorrelation' | 'listMessages' | 'getEvent'> & Partial<Pick<GatewayStore, 'getDoc' | 'putDoc' | 'getMessage' | 'listEvents' | 'listDocs' | 'deleteDoc'>>;

/** A stored message's charset as the intake read it (`latin1` for a name it does not know). */
function charsetOf(encoding: string): Charset {
  return /^(ascii|latin1|utf8|iso-8859-\d+)$/.test(encoding) ? (encoding as Charset) : 'latin1';
}

export interface AttachableEvents {
  events: DraftEvent[];
  searchTerms: string[];
  warnings: string[];
}

function accessionOf(e: DraftEvent): string | undefined {
  const a = (e.data as { accession?: unknown }).accession;
  return typeof a === 'string' && a !== '' ? a : undefined;
}

/** An event's source as a draft has it (the store sets the message id at the commit). */
function sourceOf(source: EventSource): DraftEvent['source'] {
  const { messageId: _messageId, ...rest } = source;
  return rest;
}

function isResultMessage(message: Hl7Message): boolean {
  const code = message.header.messageCode;
  return code === 'ORU' || code === 'OUL';
}

export class ResultOrderNumbers {
  readonly #store: LookupStore;
  readonly #endpoint: string;
  readonly #prefix: string | undefined;
  readonly #known = new Set<string>();
  /** Whether the link has sent an order carrying a filler number; undefined until its mark is read. */
  #carriesFiller: boolean | undefined;
  /** The mark's read at start (a failed read counts as marked: looked up, as before the mark). */
  readonly #markRead: Promise<void>;
  #markWritten = false;
  /** The commits of this link's orders carrying a filler number not settled yet (see noteOrderCommit). */
  #ordersInFlight: Promise<void> | undefined;
  /**
   * The link's results that came before their order (looked up, no order found): by each of their
   * numbers, the (bare) accessions they are stored under. An order naming one of the numbers is
   * looked up (attachWaiting); any other order is not.
   */
  readonly #waiting = new Map<string, Map<string, WaitingEntry>>();
  /**
   * The (bare) accessions of the orders that came carrying a waiting number (its filler number, or
   * another number a result waited under): by order, those numbers; by number, those orders (its
   * document keeps them). An add-on naming such an order by its accession alone (ORC-3 empty) is
   * matched against them too. Bounded by the waiting numbers: a number that goes takes its orders.
   */
  readonly #linked = new Map<string, Set<string>>();
  readonly #carriedBy = new Map<string, Set<string>>();
  /**
   * The filler numbers of the orders read carrying one while a result might wait under it (in
   * memory only, WAITING_MAX at most, the oldest go first): an add-on pipelined right behind such
   * an order is read before the order's look-up has run (#linked empty then).
   */
  readonly #orderFillers = new Map<string, Set<string>>();
  /** Whether the link's document (the mark that its waiting numbers are kept) is in the store. */
  #markerWritten = false;
  /** Whether the waiting results' document has been read (until then an order carrying a filler number is looked up). */
  #waitingRead = false;
  /** Settles once the waiting results' document has been read (or, on a store the release before wrote, the results). */
  readonly #waitingLoaded: Promise<void>;
  /** The commits of this link's looked-up results not settled yet: an order's look-up waits for them. */
  #resultsInFlight: Promise<void> | undefined;
  /** The result messages looked up (needsLookup), whose commits an order's look-up waits for. */
  readonly #lookedUp = new WeakSet<Hl7Message>();
  /**
   * What each message looked up waits for: the commits in flight when it was read (needsLookup),
   * never those of messages read after it (their commits queue behind its look-up).
   */
  readonly #waitsFor = new WeakMap<Hl7Message, Promise<void>>();
  /**
   * The patient (PID-3.1) of the order read last under each (bare) accession, in arrival order: of
   * the orders looked up, and of any later order under an accession already here (WAITING_MAX at
   * most, the oldest go first). An add-on naming no patient read right behind its order (pipelined)
   * is looked up before that order's commit is in the store.
   */
  readonly #orderPatients = new Map<string, string>();
  /** The patient each order of a message naming none was of when the message was read (by its bare accession). */
  readonly #readPatients = new WeakMap<Hl7Message, Map<string, string>>();

  constructor(store: LookupStore, endpoint: string, prefix?: string) {
    this.#store = store;
    this.#endpoint = endpoint;
    this.#prefix = prefix || undefined;
    const read = store.getDoc ? store.getDoc<LinkMark>(LINK_MARK_NAMESPACE, endpoint) : Promise.resolve({ ordersCarryFiller: true });
    const waiting = this.#readWaiting();
    let found = false;
    this.#markRead = Promise.all([
      read.then(
        (mark) => {
          if (mark?.ordersCarryFiller === true) this.#markWritten = true;
          this.#carriesFiller ??= mark?.ordersCarryFiller === true;
        },
        () => void (this.#carriesFiller ??= true),
      ),
      waiting.then(
        (was) => void (found = was),
        // Unread: taken as found (nothing read from the results; the entries come with the next).
        () => void (found = true),
      ),
    ]).then(() => undefined);
    // A marked link without the document: a store the release before wrote (README "A result that
    // came before its order", upgrade). Its results waiting for their order are read once.
    this.#waitingLoaded = this.#markRead
      .then(() => (found || this.#carriesFiller !== true ? undefined : this.#seedWaiting()))
      .catch(() => undefined)
      .then(() => void (this.#waitingRead = true));
  }

  /**
   * The link's results stored before their order by the release before this one (1c29f8b kept no
   * document of them): those not delivered nor discarded, of the last WAITING_KEEP_MS, whose
   * accession names no order of the link, are kept as a look-up that found no order keeps them
   * (their numbers from the message they came in). Before, an order coming after the upgrade
   * attached none of them: each was dead-lettered, its order's test never billed. Read once: the
   * document is written after (empty when none waits).
   */
  async #seedWaiting(): Promise<void> {
    const store = this.#store;
    if (!store.listEvents || !store.getMessage || !store.putDoc) return;
    const now = Date.now();
    const checked = new Set<string>();
    for (const state of ['pending', 'retrying', 'dead'] as const) {
      let after: string | undefined;
      for (let page = 0; page < SEED_PAGES; page++) {
        const list = await store.listEvents({ state, type: 'result.validated', limit: SEED_PAGE, ...(after !== undefined ? { after } : {}) });
        for (const s of list) {
          if (s.event.type !== 'result.validated' || s.event.source.endpoint !== this.#endpoint) continue;
          const at = Date.parse(s.event.receivedAt);
          if (!(now - at <= WAITING_KEEP_MS)) continue;
          const bare = this.#bare(s.event.correlationId);
          if (checked.has(bare)) continue;
          checked.add(bare);
          if ((await store.eventsByCorrelation(s.event.correlationId, ['order.created'])).some((e) => this.#ofLink(e))) continue;
          const m = s.event.source.messageId ? await store.getMessage(s.event.source.messageId) : undefined;
          const structure = m && m.message.kind === 'hl7' ? analyseBlock(m.raw).messages[0] : undefined;
          const message = m && structure ? readInbound(m.raw, structure, charsetOf(m.message.encoding)).message : undefined;
          const numbers = new Set<string>([bare]);
          for (const seg of message?.segments ?? []) {
            if (seg.name !== 'ORC' && seg.name !== 'OBR') continue;
            const placer = seg.get(2);
            const filler = seg.get(3);
            if (placer === bare || filler === bare) for (const n of [placer, filler]) if (n !== '') numbers.add(n);
          }
          const patient = message?.first('PID')?.get(3, 1) || undefined;
          for (const n of numbers) this.#addWaiting({ n, accession: bare, ...(patient ? { patient } : {}), at });
        }
        if (list.length < SEED_PAGE) break;
        after = list[list.length - 1]?.event.id;
      }
    }
    this.#evictBeyondMax();
    await Promise.all([...this.#waiting.keys()].map((n) => this.#writeNumber(n)));
    await this.#writeMarker();
  }

  /**
   * The link's waiting numbers, read once at start: each number's document, and the link's own
   * document (its mark; entries in it, written whole by this code's first form, are split into
   * per-number documents once, then it is written back empty). Whether either was found.
   */
  async #readWaiting(): Promise<boolean> {
    const store = this.#store;
    if (!store.getDoc) return false;
    const doc = await store.getDoc<WaitingDoc>(WAITING_NAMESPACE, this.#endpoint);
    let found = doc !== undefined;
    const docs: WaitingNumberDoc[] = [];
    if (store.listDocs) {
      const prefix = waitingKey(this.#endpoint, '');
      let after: string | undefined;
      for (;;) {
        const page = await store.listDocs<WaitingNumberDoc>(WAITING_NAMESPACE, { prefix, limit: WAITING_READ_PAGE, ...(after !== undefined ? { after } : {}) });
        for (const { key, value } of page) {
          found = true;
          if (value?.v === 2 && Array.isArray(value.entries)) docs.push(value);
          else if (store.deleteDoc) store.deleteDoc(WAITING_NAMESPACE, key).catch(() => undefined);
        }
        if (page.length < WAITING_READ_PAGE) break;
        after = page[page.length - 1]?.key;
      }
    }
    // Oldest first, so that the map holds the numbers in the order they were last kept.
    const latest = (d: WaitingNumberDoc): number => Math.max(0, ...d.entries.map((w) => (typeof w?.at === 'number' ? w.at : 0)));
    docs.sort((x, y) => latest(x) - latest(y));
    const now = Date.now();
    for (const d of docs) {
      const n = d.entries.find((w) => typeof w?.n === 'string')?.n;
      if (n === undefined) continue;
      if (!(now - latest(d) <= WAITING_KEEP_MS)) {
        // Past its 7 days: its result is a dead letter; the document goes.
        if (store.deleteDoc) store.deleteDoc(WAITING_NAMESPACE, waitingKey(this.#endpoint, n)).catch(() => undefined);
        continue;
      }
      for (const w of d.entries) this.#addWaiting(w);
      if (Array.isArray(d.orders)) for (const o of d.orders) if (typeof o === 'string') this.#link(o, n, false);
    }
    // This code's first form kept every entry in the link's document: read once, split.
    if (doc?.v === 1 && Array.isArray(doc.entries) && doc.entries.length > 0) {
      const split = new Set<string>();
      for (const w of [...doc.entries].sort((x, y) => (x?.at ?? 0) - (y?.at ?? 0))) {
        this.#addWaiting(w);
        if (typeof w?.n === 'string') split.add(w.n);
      }
      this.#evictBeyondMax();
      await Promise.all([...split].filter((n) => this.#waiting.has(n)).map((n) => this.#writeNumber(n)));
      await this.#writeMarker();
    } else if (doc !== undefined) {
      this.#markerWritten = true;
    }
    this.#evictBeyondMax();
    return found;
  }

  /** Settles once the link's mark and its waiting results have been read (tests; the look-ups wait for them themselves). */
  ready(): Promise<void> {
    return this.#waitingLoaded;
  }

  /** An order message read (before its commit): an order carrying a filler number marks the link, once. */
  #noteOrder(events: readonly DraftEvent[]): void {
    if (this.#carriesFiller === true && this.#markWritten) return;
    if (!events.some((e) => e.type === 'order.created' && (e.data.fillerOrderNumber ?? '') !== '')) return;
    this.#carriesFiller = true;
    if (this.#markWritten || !this.#store.putDoc) return;
    this.#markWritten = true;
    this.#store.putDoc(LINK_MARK_NAMESPACE, this.#endpoint, { ordersCarryFiller: true, since: new Date().toISOString() } satisfies LinkMark).catch(() => {
      // Written again at the link's next such order: the mark only spares look-ups.
      this.#markWritten = false;
    });
  }

  /** The accession of `bare` as stored (with the link's prefix). */
  #stored(bare: string): string {
    return this.#prefix ? namespacedAccession(this.#prefix, bare) : bare;
  }

  #bare(stored: string): string {
    const p = this.#prefix ? `${this.#prefix}-` : '';
    return p && stored.startsWith(p) ? stored.slice(p.length) : stored;
  }

  #remember(bare: string): void {
    if (this.#known.has(bare)) return;
    if (this.#known.size >= KNOWN_MAX) this.#known.delete(this.#known.values().next().value as string);
    this.#known.add(bare);
  }

  /** After a commit: the (bare) accessions of the orders the message created are known. */
  noteCommitted(events: readonly DraftEvent[]): void {
    for (const e of events) if (e.type === 'order.created') this.#remember(e.data.accession);
  }

  /**
   * An order message's commit, issued: an order carrying a filler number is waited for by the
   * look-ups that come after it (README.md "A result pipelined behind its order"). Its commit reads
   * the store (its derivations) before it is queued: a look-up issued after it read the store
   * before the order was in it. A result's commit, when the result was looked up (it may be kept
   * as waiting for its order), is waited for the same way by the orders' look-ups after it. Nothing
   * for any other result, nor for an order without a filler number.
   */
  noteOrderCommit(message: Hl7Message, events: readonly DraftEvent[], commit: Promise<unknown>): void {
    const settledOf = (): Promise<void> =>
      commit.then(
        () => undefined,
        () => undefined,
      );
    if (isResultMessage(message)) {
      // A result looked up may be stored as waiting for its order: an order's look-up behind it
      // reads the store once it is there. The usual result allocates nothing here.
      if (!this.#lookedUp.has(message)) return;
      const settled = settledOf();
      const tail: Promise<void> = this.#resultsInFlight ? Promise.all([this.#resultsInFlight, settled]).then(() => undefined) : settled;
      this.#resultsInFlight = tail;
      void tail.then(() => {
        if (this.#resultsInFlight === tail) this.#resultsInFlight = undefined;
      });
      return;
    }
    if (!events.some((e) => e.type === 'order.created' && (e.data.fillerOrderNumber ?? '') !== '')) return;
    const settled = settledOf();
    const tail: Promise<void> = this.#ordersInFlight ? Promise.all([this.#ordersInFlight, settled]).then(() => undefined) : settled;
    this.#ordersInFlight = tail;
    void tail.then(() => {
      if (this.#ordersInFlight === tail) this.#ordersInFlight = undefined;
    });
  }

  /** Whether a result message may name its order by another number (no read, no await). */
  needsLookup(message: Hl7Message, events: readonly DraftEvent[]): boolean {
    if (events.length === 0) return false;
    if (!isResultMessage(message)) {
      this.#noteOrder(events);
      const names = this.#namesWaiting(events);
      this.#notePatients(message, events, names);
      if (!names) return false;
      if (this.#resultsInFlight) this.#waitsFor.set(message, this.#resultsInFlight);
      return true;
    }
    if (this.#carriesFiller === false) return false;
    if (!message.segments.some((s) => (s.name === 'ORC' || s.name === 'OBR') && s.get(3) !== '')) return false;
    const needed = events.some((e) => {
      const a = accessionOf(e);
      return a !== undefined && !this.#known.has(a);
    });
    if (needed) {
      this.#lookedUp.add(message);
      if (this.#ordersInFlight) this.#waitsFor.set(message, this.#ordersInFlight);
    }
    return needed;
  }

  /**
   * An order message naming (accession or filler number) a number a result of the link came under
   * before its order (no read, no await). Until the waiting results' document is read at start, and
   * while a result looked up is being committed (a result right before the order on the
   * connection), an order carrying a filler number is taken to (its look-up waits for them).
   */
  #namesWaiting(events: readonly DraftEvent[]): boolean {
    // A result looked up and not committed yet may be one more (its look-up is still to run).
    const unsure = !this.#waitingRead || this.#resultsInFlight !== undefined;
    if (!unsure && this.#waiting.size === 0) return false;
    let names = false;
    for (const e of events) {
      if (e.type !== 'order.created') continue;
      const to = e.data.accession;
      const filler = e.data.fillerOrderNumber ?? '';
      if (filler !== '' && (unsure || this.#waitingUnder(filler) !== undefined)) {
        names = true;
        // Its add-on may be read before this order's look-up runs (pipelined): it is looked up too.
        if (filler !== to) this.#noteOrderFiller(to, filler);
        continue;
      }
      if (names) continue;
      if (this.#waitingUnder(to) !== undefined) names = true;
      // An order that came carrying a waiting number, named again by its accession alone (an add-on).
      else for (const n of this.#carried(to)) if (unsure || this.#waitingUnder(n) !== undefined) names = true;
    }
    return names;
  }

  /**
   * In arrival order (no read, no await): the patient of each order of the message naming one, when
   * the message is looked up or its accession is remembered already; for an order naming none, the
   * patient remembered for its accession (an add-on right behind its order, not in the store yet).
   * Nothing for the usual order while no order is remembered.
   */
  #notePatients(message: Hl7Message, events: readonly DraftEvent[], looked: boolean): void {
    if (!looked && this.#orderPatients.size === 0) return;
    for (const e of events) {
      if (e.type !== 'order.created') continue;
      const to = e.data.accession;
      const patient = e.data.patientId;
      if (!patient) {
        const remembered = looked ? this.#orderPatients.get(to) : undefined;
        if (remembered === undefined) continue;
        const read = this.#readPatients.get(message) ?? new Map<string, string>();
        read.set(to, remembered);
        this.#readPatients.set(message, read);
        continue;
      }
      if (!looked && !this.#orderPatients.has(to)) continue;
      this.#orderPatients.delete(to);
      if (this.#orderPatients.size >= WAITING_MAX) this.#orderPatients.delete(this.#orderPatients.keys().next().value as string);
      this.#orderPatients.set(to, patient);
    }
  }

  /** The numbers the order `to` (bare accession) came carrying: remembered once it was looked up (#linked), or read so far (#orderFillers). */
  #carried(to: string): string[] {
    const linked = this.#linked.get(to);
    const read = this.#orderFillers.get(to);
    if (!linked && !read) return [];
    return [...new Set([...(linked ?? []), ...(read ?? [])])];
  }

  /** An order read carrying `filler` while a result may wait under it: its add-on, read before its look-up ran, is looked up too. */
  #noteOrderFiller(to: string, filler: string): void {
    const fillers = this.#orderFillers.get(to);
    if (fillers?.has(filler)) return;
    if (!fillers && this.#orderFillers.size >= WAITING_MAX) this.#orderFillers.delete(this.#orderFillers.keys().next().value as string);
    this.#orderFillers.set(to, (fillers ?? new Set<string>()).add(filler));
  }

  /**
   * The entries kept under the number `n`, those older than WAITING_KEEP_MS dropped (in memory as
   * in the document: before, a gateway running past the 7 days kept them in memory for good, and
   * an order carrying the number weeks later got the old result).
   */
  #waitingUnder(n: string): Map<string, WaitingEntry> | undefined {
    const under = this.#waiting.get(n);
    if (!under) return undefined;
    const now = Date.now();
    for (const [a, w] of under) if (now - w.at > WAITING_KEEP_MS) under.delete(a);
    if (under.size > 0) return under;
    this.#dropNumber(n);
    return undefined;
  }

  /** Keeps an entry; its number goes to the end of the map (the map holds numbers oldest kept first). */
  #addWaiting(w: WaitingEntry): void {
    if (typeof w?.n !== 'string' || typeof w.accession !== 'string' || typeof w.at !== 'number' || Date.now() - w.at > WAITING_KEEP_MS) return;
    const under = this.#waiting.get(w.n) ?? new Map<string, WaitingEntry>();
    this.#waiting.delete(w.n);
    this.#waiting.set(w.n, under);
    under.set(w.accession, { n: w.n, accession: w.accession, ...(typeof w.patient === 'string' && w.patient ? { patient: w.patient } : {}), at: w.at });
  }

  /** A number no result waits under any more: from memory, with its orders, and its document deleted (not awaited). */
  #dropNumber(n: string): void {
    this.#waiting.delete(n);
    for (const o of this.#carriedBy.get(n) ?? []) {
      const numbers = this.#linked.get(o);
      numbers?.delete(n);
      if (numbers?.size === 0) this.#linked.delete(o);
    }
    this.#carriedBy.delete(n);
    if (this.#store.deleteDoc) this.#store.deleteDoc(WAITING_NAMESPACE, waitingKey(this.#endpoint, n)).catch(() => undefined);
  }

  /** Beyond WAITING_MAX numbers, the oldest kept go; and those at the head of the map past their 7 days (a few per call). */
  #evictBeyondMax(): void {
    while (this.#waiting.size > WAITING_MAX) this.#dropNumber(this.#waiting.keys().next().value as string);
    const now = Date.now();
    for (let i = 0; i < 4; i++) {
      const head = this.#waiting.entries().next().value;
      if (!head) break;
      const [n, under] = head;
      if ([...under.values()].some((w) => now - w.at <= WAITING_KEEP_MS)) break;
      this.#dropNumber(n);
    }
  }

  /** The document of the waiting number `n` as memory holds it (deleted when none waits under it). */
  #writeNumber(n: string): Promise<void> {
    const store = this.#store;
    const under = this.#waiting.get(n);
    if (!under || under.size === 0) return store.deleteDoc ? store.deleteDoc(WAITING_NAMESPACE, waitingKey(this.#endpoint, n)) : Promise.resolve();
    if (!store.putDoc) return Promise.resolve();
    const orders = this.#carriedBy.get(n);
    return store.putDoc(WAITING_NAMESPACE, waitingKey(this.#endpoint, n), { v: 2, entries: [...under.values()], ...(orders?.size ? { orders: [...orders] } : {}) } satisfies WaitingNumberDoc);
  }

  /** The link's document: its waiting numbers are kept (a later start reads them, not the results). Once. */
  async #writeMarker(): Promise<void> {
    if (this.#markerWritten || !this.#store.putDoc) return;
    this.#markerWritten = true;
    try {
      await this.#store.putDoc(WAITING_NAMESPACE, this.#endpoint, { v: 1, entries: [] } satisfies WaitingDoc);
    } catch (err) {
      this.#markerWritten = false;
      throw err;
    }
  }

  /**
   * The order `order` (bare accession) came carrying the waiting number `n`: an add-on naming it by
   * its accession alone is matched against `n` too. Bounded: only a number some result waits under.
   */
  #link(order: string, n: string, write: boolean): void {
    if (order === n || !this.#waiting.has(n)) return;
    const orders = this.#carriedBy.get(n) ?? new Set<string>();
    if (orders.has(order)) return;
    orders.add(order);
    this.#carriedBy.set(n, orders);
    const numbers = this.#linked.get(order) ?? new Set<string>();
    numbers.add(n);
    this.#linked.set(order, numbers);
    if (write) this.#writeNumber(n).catch(() => undefined);
  }

  /** A result looked up found no order: its numbers are kept (memory, and the link's document) for the order that comes after it. */
  #noteWaiting(accession: string, numbers: ReadonlySet<string>, patient: string | undefined): void {
    const at = Date.now();
    let added = false;
    for (const n of numbers) {
      // A result coming again under a number kept: kept 7 days from now (before, from the first
      // one: the later result's number went with it).
      const kept = this.#waitingUnder(n)?.get(accession);
      if (kept && at - kept.at < WAITING_REFRESH_MS) continue;
      this.#addWaiting({ n, accession, ...(kept?.patient ? { patient: kept.patient } : patient ? { patient } : {}), at });
      added = true;
    }
    if (!added) return;
    // Memory holds what the documents hold (numbers past 7 days or beyond WAITING_MAX go from both).
    this.#evictBeyondMax();
    // Not awaited: the entries stay in memory. Each new number's document only: before, the link's
    // one document was written whole (up to 10,000 entries, ~700 KB) for every new waiting number.
    for (const n of numbers) if (this.#waiting.has(n)) this.#writeNumber(n).catch(() => undefined);
    this.#writeMarker().catch(() => undefined);
  }

  /** The result's events with each accession naming no stored order attached to the order of its other number, when exactly one. */
  async attach<R extends AttachableEvents>(draft: R, message: Hl7Message): Promise<R> {
    if (!isResultMessage(message)) return this.#attachWaiting(draft, message);
    await this.#markRead;
    if (this.#carriesFiller === false) return draft;
    // The orders read before this result and still being committed: in the store first (not
    // those read after it: their commits wait for this look-up).
    await this.#waitsFor.get(message);
    const unknown = new Set<string>();
    for (const e of draft.events) {
      const a = accessionOf(e);
      if (a !== undefined && !this.#known.has(a)) unknown.add(a);
    }
    const patient = message.first('PID')?.get(3, 1) || undefined;
    const moved = new Map<string, string>();
    const warnings: string[] = [];
    for (const a of unknown) {
      const own = (await this.#store.eventsByCorrelation(this.#stored(a), ['order.created'])).filter((e) => this.#ofLink(e));
      if (own.length > 0) {
        this.#remember(a);
        continue;
      }
      // The result's numbers for `a`: a itself (a filler number an order carries beside its
      // placer number) and the other number of every ORC/OBR naming it.
      const numbers = new Set<string>([a]);
      for (const s of message.segments) {
        if (s.name !== 'ORC' && s.name !== 'OBR') continue;
        const placer = s.get(2);
        const filler = s.get(3);
        if (placer === a || filler === a) for (const n of [placer, filler]) if (n !== '') numbers.add(n);
      }
      const found = new Map<string, StoredEvent>();
      for (const n of numbers) for (const e of await this.#ordersNaming(n)) found.set(e.event.id, e);
      const orders = [...found.values()].filter((e) => this.#bare(e.event.correlationId) !== a);
      if (orders.length === 0) {
        // It came before its order: the order naming one of its numbers attaches it (attachWaiting).
        this.#noteWaiting(a, numbers, patient);
        continue;
      }
      const samePatient = orders.filter((e) => {
        const p = e.event.type === 'order.created' ? e.event.data.patientId : undefined;
        return patient === undefined || p === undefined || p === patient;
      });
      const accessions = [...new Set(samePatient.map((e) => this.#bare(e.event.correlationId)))];
      if (accessions.length === 1) {
        moved.set(a, accessions[0] as string);
      } else if (accessions.length > 1) {
        // Several orders: one the LIS cancelled as a whole is none the result can be of, when
        // exactly one other is live (a new order that took the filler number of a cancelled one).
        const cancelled = new Set<string>();
        for (const x of accessions) if (await this.#whollyCancelled(x)) cancelled.add(x);
        const live = accessions.filter((x) => !cancelled.has(x));
        if (live.length === 1) {
          moved.set(a, live[0] as string);
          warnings.push(`result ${a}: order(s) ${[...cancelled].map((x) => this.#stored(x)).join(', ')} carrying its number ${[...numbers].join('/')} are cancelled: not its order`);
        } else {
          const named = live.length > 1 ? live : accessions;
          warnings.push(`result ${a}: orders ${named.map((x) => this.#stored(x)).join(', ')} of ${this.#endpoint} carry its number ${[...numbers].join('/')}${live.length === 0 ? ' (all cancelled)' : ''}; attached to none of them`);
        }
      } else {
        const others = [...new Set(orders.map((e) => this.#stored(this.#bare(e.event.correlationId))))];
        warnings.push(`result ${a}: order(s) ${others.join(', ')} carry its number ${[...numbers].join('/')} but name another patient than ${patient}; attached to none of them`);
      }
    }
    if (moved.size === 0) return warnings.length === 0 ? draft : { ...draft, warnings: [...draft.warnings, ...warnings] };
    const terms = new Set(draft.searchTerms);
    const events = draft.events.map((e) => {
      const bare = accessionOf(e);
      const to = bare === undefined ? undefined : moved.get(bare);
      if (bare === undefined || to === undefined) return e;
      terms.add(to);
      const keyed = e.correlationId === bare;
      const partitionKey = e.partitionKey === partitionKeys.order(bare) ? partitionKeys.order(to) : e.partitionKey === partitionKeys.specimen(bare) ? partitionKeys.specimen(to) : e.partitionKey;
      return { ...e, ...(keyed ? { correlationId: to } : {}), partitionKey, data: { ...e.data, accession: to } } as DraftEvent;
    });
    for (const [from, to] of moved) warnings.push(`result ${from}: no order of that number; attached to order ${this.#stored(to)}, which carries it as its other number`);
    return { ...draft, events, searchTerms: [...terms], warnings: [...draft.warnings, ...warnings] };
  }

  /**
   * An order message naming a number results of the link came under before it (README.md "A result
   * that came before its order"): each stored result event (`result.validated`) of the link under
   * that accession, not delivered nor discarded (or delivered once attached to an order the LIS
   * has cancelled as a whole since), of a test the order names, gets a copy on the
   * order, after the message's own events (its correlation id, partition and accession the
   * order's; idempotency key `<its key>|attached`, so a second order, or the order sent again,
   * adds nothing). The stored event keeps its body (bodies never change: store README "Event
   * bodies"); a document (ATTACHED_NAMESPACE, written before the commit) tells the relay, which
   * finishes it without a write once the copy is stored (resultAttachedTo). Never: on an order of
   * another patient than the result's (PID-3.1 of the message each stored result came in, when both
   * name one: results of two patients may wait under one number), a result already attached to an
   * order (its copy stored there, not discarded: a document whose order's commit never came holds
   * nothing), or when two orders of the message name the number (warnings).
   */
  async #attachWaiting<R extends AttachableEvents>(draft: R, message: Hl7Message): Promise<R> {
    await this.#waitingLoaded;
    // The look-ups of the results read before this order have run (each message's steps run in
    // arrival order, this one's after theirs): their numbers are in #waiting. Their commits are
    // waited for below, only when the order names one of them.
    if (this.#waiting.size === 0) return draft;
    const warnings: string[] = [];
    // Each waiting accession with the orders of the message naming one of its numbers.
    const targets = new Map<string, Array<{ order: DraftEvent & { type: 'order.created' }; entry: WaitingEntry; via: string }>>();
    for (const e of draft.events) {
      if (e.type !== 'order.created') continue;
      const to = e.data.accession;
      const filler = e.data.fillerOrderNumber ?? '';
      // Its accession, its filler number, and the numbers it came carrying before while a result
      // waited under them: an add-on naming the order by its accession alone (ORC-3 empty). Before,
      // such an add-on was not looked up: its test's result, come before the order under the filler
      // number, was dead-lettered after a day and never billed.
      for (const n of new Set([to, filler, ...this.#carried(to)])) {
        if (n === '') continue;
        for (const [w, entry] of this.#waitingUnder(n) ?? []) {
          if (w === to) continue;
          const list = targets.get(w) ?? [];
          if (!list.some((x) => x.order.data.accession === to)) list.push({ order: e, entry, via: n });
          targets.set(w, list);
        }
      }
    }
    if (targets.size === 0) return draft;
    // The results looked up before this order and still being committed: in the store first. Before,
    // every order carrying a filler number read while such a result was being committed waited for
    // that commit, naming its number or not (a LIS whose results carry only the filler number has
    // each of its results looked up), and every later message of the link queued behind it.
    await this.#waitsFor.get(message);
    const copies: DraftEvent[] = [];
    const terms = new Set(draft.searchTerms);
    /** The patient of each stored message read (by its id). */
    const patients = new Map<string, string | null>();
    for (const [w, list] of targets) {
      if (list.length > 1) {
        warnings.push(`results stored under ${this.#stored(w)} before their order: orders ${list.map((x) => this.#stored(x.order.data.accession)).join(', ')} of this message carry its number; attached to none of them`);
        continue;
      }
      const { order, entry, via } = list[0] as { order: DraftEvent & { type: 'order.created' }; entry: WaitingEntry; via: string };
      const to = order.data.accession;
      // An order message naming no patient (the PATIENT group is optional in ORM^O01: an add-on
      // naming its order by its accession alone) is of the patient of the order stored under its
      // accession (the latest). Before, it was compared with none: an add-on of MRN-77's order got
      // MRN-88's result waiting under the number that order came carrying (a filler number come
      // round), billed on MRN-77's order, and MRN-88's order got none. The order read last under
      // that accession first (memory): pipelined right behind its order, the add-on was compared
      // with none (the order not in the store yet) or with an older order of another patient the
      // LIS had given the same placer number, and got that patient's result.
      const orderPatient = order.data.patientId || this.#readPatients.get(message)?.get(to) || (await this.#storedPatient(to));
      const stored = await this.#store.eventsByCorrelation(this.#stored(w));
      // An order of that accession itself: the results are its own.
      if (stored.some((s) => this.#ofLink(s))) continue;
      // Each result waits 7 days from when it came (a number kept again by a later result does not
      // bring an older one back).
      const now = Date.now();
      // Delivered ones too: one the relay finished once attached to an order the LIS then cancelled
      // as a whole goes to the order placed again (below).
      const waiting = stored.filter(
        (s) => s.event.type === 'result.validated' && s.event.source.endpoint === this.#endpoint && s.state !== 'discarded' && !(now - Date.parse(s.event.receivedAt) > WAITING_KEEP_MS),
      );
      if (waiting.length === 0) {
        // Discarded, pruned, or past their 7 days: no order looks them up again.
        for (const [n, under] of [...this.#waiting]) {
          if (!under.delete(w)) continue;
          if (under.size === 0) this.#dropNumber(n);
          else this.#writeNumber(n).catch(() => undefined);
        }
        continue;
      }
      // The order carries the number: a later message naming it by its accession alone (an add-on)
      // is matched against the number too (memory, and the number's document).
      this.#link(to, via, true);
      // The tests of every order line of the message under that accession (a run split by its order time is several events).
      const tests = new Set(draft.events.flatMap((e) => (e.type === 'order.created' && e.data.accession === to ? e.data.tests.map((t) => t.code) : [])));
      let onOrder: Set<string> | undefined;
      for (const s of waiting) {
        const ev = s.event;
        if (ev.type !== 'result.validated' || !tests.has(ev.data.testCode)) continue;
        let already = this.#store.getDoc ? await this.#store.getDoc<AttachedResult>(ATTACHED_NAMESPACE, ev.id) : undefined;
        // On this order already (its copy stored): nothing, and its message is not read. The
        // number stays kept its 7 days (an add-on may come), so every later message of the order
        // is looked up: before, each read and parsed the stored message of every such result.
        if (already && already.accession === this.#stored(to)) {
          onOrder ??= new Set((await this.#store.eventsByCorrelation(this.#stored(to), ['result.validated'])).map((x) => x.event.idempotencyKey));
          if (onOrder.has(already.key)) continue;
        }
        // Each result's own patient (the message it came in): results of two patients may wait
        // under one number (a LIS whose filler numbers come round again). Before, the number kept
        // its first result's patient only: the order of that patient got the other patient's
        // result too, and the other patient's order got none.
        const patient = orderPatient === undefined ? undefined : await this.#patientOf(s, patients, entry.patient);
        if (patient !== undefined && orderPatient !== undefined && patient !== orderPatient) {
          warnings.push(`result ${ev.data.testCode} stored under ${this.#stored(w)} before its order (event ${ev.id}) names patient ${patient}, order ${this.#stored(to)} carrying its number names ${orderPatient}; not attached`);
          continue;
        }
        // Delivered without being attached: a sale order of its own number took it.
        if (s.state === 'delivered' && !already) continue;
        let again = false;
        if (already && already.accession !== this.#stored(to)) {
          if ((await copiedTo(this.#history(), s)) !== undefined) {
            // The order it was attached to, cancelled by the LIS as a whole since, holds it no
            // longer (as a result coming after both orders: "An order cancelled and a new order
            // carrying its filler number"). Before, the order placed again never got it: its test
            // was never delivered nor billed.
            if (!(await this.#whollyCancelled(this.#bare(already.accession)))) {
              warnings.push(`result ${ev.data.testCode} stored under ${this.#stored(w)} is attached to order ${already.accession} already; not to ${this.#stored(to)}`);
              continue;
            }
            again = true;
            warnings.push(`result ${ev.data.testCode} stored under ${this.#stored(w)} was attached to order ${already.accession}, cancelled since: not its order`);
          }
          // Its document names an order whose commit never came (the gateway killed between the
          // two, a disk full: its copy is neither stored nor remembered by billing, as the relay
          // reads it: invoice-eligibility.ts copiedTo): attached to nothing.
          // Before, it was "attached already" for good, and the order placed again got nothing.
          already = undefined;
        }
        if (already) {
          // Attached by an earlier message of this order: nothing again (its copy is stored), unless
          // that message's commit failed.
          onOrder ??= new Set((await this.#store.eventsByCorrelation(this.#stored(to), ['result.validated'])).map((x) => x.event.idempotencyKey));
          if (onOrder.has(already.key)) continue;
        }
        // Delivered and attached here already (above), or attached to a live order: nothing.
        if (s.state === 'delivered' && !again) continue;
        // A second copy (the first on the cancelled order) takes a key of its own.
        const key = again ? `${attachedKey(ev.idempotencyKey)}|${this.#stored(to)}` : attachedKey(ev.idempotencyKey);
        const partitionKey = ev.partitionKey === partitionKeys.specimen(ev.correlationId) ? partitionKeys.specimen(to) : partitionKeys.order(to);
        copies.push({
          type: 'result.validated',
          occurredAt: ev.occurredAt,
          receivedAt: ev.receivedAt,
          idempotencyKey: key,
          correlationId: to,
          partitionKey,
          source: sourceOf(ev.source),
          data: { ...ev.data, accession: to },
        } as DraftEvent);
        // Before the commit: the relay trusts it only once the copy is stored.
        if (!already && this.#store.putDoc) await this.#store.putDoc(ATTACHED_NAMESPACE, ev.id, { accession: this.#stored(to), key } satisfies AttachedResult);
        terms.add(w);
        warnings.push(`result ${ev.data.testCode} stored under ${this.#stored(w)} before its order (event ${ev.id}): attached to order ${this.#stored(to)}, which carries ${w === order.data.fillerOrderNumber ? 'it as its filler number' : 'its number'}`);
      }
    }
    if (copies.length === 0 && warnings.length === 0) return draft;
    return { ...draft, events: [...draft.events, ...copies], searchTerms: [...terms], warnings: [...draft.warnings, ...warnings] };
  }

  /**
   * Whether the LIS cancelled the order `bare` as a whole (an order.cancelled of no test, or of
   * every test it had, not ordered again since), as billing reads it (invoice-eligibility.ts
   * billingState, with what retention pruned: billing-memory.ts). An order partly cancelled is not.
   */
  async #whollyCancelled(bare: string): Promise<boolean> {
    const accession = this.#stored(bare);
    const stored = await this.#store.eventsByCorrelation(accession, [...BILLING_STATE_TYPES]);
    const memory = await readMemory(this.#store.getDoc?.bind(this.#store), accession);
    const state = billingState(withMemory(stored, memory, accession).map((s) => s.event));
    return state.ordered && (state.wholeOrderCancelled || state.open.size === 0);
  }

  /**
   * The patient (PID-3.1) of the message a stored event came in (undefined when it names none);
   * `fallback` (the patient its waiting number was kept with) when the store keeps no such message
   * or cannot read it.
   */
  async #patientOf(s: StoredEvent, read: Map<string, string | null>, fallback: string | undefined): Promise<string | undefined> {
    const id = s.event.source.messageId;
    if (!id || !this.#store.getMessage) return fallback;
    if (!read.has(id)) {
      let patient: string | null | undefined;
      try {
        const m = await this.#store.getMessage(id);
        const first = m && m.message.kind === 'hl7' ? analyseBlock(m.raw).messages[0] : undefined;
        const message = m && first ? readInbound(m.raw, first, charsetOf(m.message.encoding)).message : undefined;
        if (message) patient = message.first('PID')?.get(3, 1) || null;
      } catch {
        patient = undefined;
      }
      if (patient === undefined) return fallback;
      read.set(id, patient);
    }
    return read.get(id) ?? undefined;
  }

  /** The patient (PID-3.1) of the latest live order of this link stored under the (bare) accession `to`, if it names one. */
  async #storedPatient(to: string): Promise<string | undefined> {
    const orders = (await this.#store.eventsByCorrelation(this.#stored(to), ['order.created'])).filter((e) => this.#ofLink(e));
    for (let i = orders.length - 1; i >= 0; i--) {
      const e = orders[i]!.event;
      if (e.type === 'order.created' && e.data.patientId) return e.data.patientId;
    }
    return undefined;
  }

  /** The store as billing's history reads it (copiedTo). */
  #history(): HistorySource {
    const store = this.#store;
    return { events: (c, types) => store.eventsByCorrelation(c, types), ...(store.getDoc ? { doc: <T>(ns: string, key: string) => store.getDoc!<T>(ns, key) } : {}) };
  }

  #ofLink(e: StoredEvent): boolean {
    return e.state !== 'discarded' && e.event.type === 'order.created' && e.event.source.endpoint === this.#endpoint;
  }

  /** The live order.created of this link whose accession or filler number is `n`. */
  async #ordersNaming(n: string): Promise<StoredEvent[]> {
    const out: StoredEvent[] = (await this.#store.eventsByCorrelation(this.#stored(n), ['order.created'])).filter((e) => this.#ofLink(e));
    const seen = new Set(out.map((e) => e.event.id));
    const page = await this.#store.listMessages({ q: n, limit: INDEX_PAGE });
    for (const m of page) {
      if (m.kind !== 'hl7' || m.endpoint !== this.#endpoint || m.status !== 'accepted' || (m.messageType !== undefined && !/^(ORM|OML)(\^|$)/.test(m.messageType))) continue;
      for (const id of m.eventIds) {
        if (seen.has(id)) continue;
        const e = await this.#store.getEvent(id);
        if (!e || !this.#ofLink(e) || e.event.type !== 'order.created') continue;
        if (e.event.data.fillerOrderNumber === n || this.#bare(e.event.correlationId) === n) {
          seen.add(id);
          out.push(e);
        }
      }
    }
    return out;
  }
}
