import { readMemory, withMemory } from '../events/billing-memory.ts';
import { BILLING_STATE_TYPES, billingState } from '../events/invoice-eligibility.ts';
import { partitionKeys } from '../events/keys.ts';
import type { DraftEvent } from '../events/types.ts';
import type { GatewayStore, StoredEvent } from '../store/types.ts';
import { namespacedAccession } from './accession-namespace.ts';
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

/** Messages read at most per number looked up in the message index. */
const INDEX_PAGE = 200;
/** Accessions held in memory per link; the oldest go first. */
const KNOWN_MAX = 100_000;

type LookupStore = Pick<GatewayStore, 'eventsByCorrelation' | 'listMessages' | 'getEvent'> & Partial<Pick<GatewayStore, 'getDoc' | 'putDoc'>>;

export interface AttachableEvents {
  events: DraftEvent[];
  searchTerms: string[];
  warnings: string[];
}

function accessionOf(e: DraftEvent): string | undefined {
  const a = (e.data as { accession?: unknown }).accession;
  return typeof a === 'string' && a !== '' ? a : undefined;
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

  constructor(store: LookupStore, endpoint: string, prefix?: string) {
    this.#store = store;
    this.#endpoint = endpoint;
    this.#prefix = prefix || undefined;
    const read = store.getDoc ? store.getDoc<LinkMark>(LINK_MARK_NAMESPACE, endpoint) : Promise.resolve({ ordersCarryFiller: true });
    this.#markRead = read.then(
      (mark) => {
        if (mark?.ordersCarryFiller === true) this.#markWritten = true;
        this.#carriesFiller ??= mark?.ordersCarryFiller === true;
      },
      () => void (this.#carriesFiller ??= true),
    );
  }

  /** Settles once the link's mark has been read (tests; the look-up waits for it itself). */
  ready(): Promise<void> {
    return this.#markRead;
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
   * before the order was in it. Nothing for a result or an order without a filler number.
   */
  noteOrderCommit(message: Hl7Message, events: readonly DraftEvent[], commit: Promise<unknown>): void {
    if (isResultMessage(message) || !events.some((e) => e.type === 'order.created' && (e.data.fillerOrderNumber ?? '') !== '')) return;
    const settled = commit.then(
      () => undefined,
      () => undefined,
    );
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
      return false;
    }
    if (this.#carriesFiller === false) return false;
    if (!message.segments.some((s) => (s.name === 'ORC' || s.name === 'OBR') && s.get(3) !== '')) return false;
    return events.some((e) => {
      const a = accessionOf(e);
      return a !== undefined && !this.#known.has(a);
    });
  }

  /** The result's events with each accession naming no stored order attached to the order of its other number, when exactly one. */
  async attach<R extends AttachableEvents>(draft: R, message: Hl7Message): Promise<R> {
    await this.#markRead;
    if (this.#carriesFiller === false) return draft;
    // The orders read before this result and still being committed: in the store first.
    if (this.#ordersInFlight) await this.#ordersInFlight;
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
      if (orders.length === 0) continue;
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
