import type { DraftEvent } from '../events/types.ts';
import type { GatewayStore } from '../store/types.ts';

/**
 * Which LIS links number their orders by case (`ab12` and `AB12` two patients' orders): their
 * barcodes are compared byte for byte, never looked up in upper case (astm/host-query.ts
 * `orderEventsForSpecimen`, README "A barcode in another case than its order").
 *
 * The analyzer's barcode typed in lower case (`acc-lc-1` for the label ACC-LC-1) is looked up in
 * upper case when nothing is known under it as sent. That is safe only where no order can be
 * numbered `acc-lc-1`: a LIS that has never sent an accession or tube id (SPM-2, OBR specimen)
 * that upper case changes. Before, the fallback applied to every LIS: a query for `ab12` that came
 * before ab12's own order was answered with AB12's tests (another patient's), and the result went
 * on AB12 (test/integration/review-s23-astm-query-case-distinct.test.ts).
 *
 * The mark is a store document (namespace ACCESSION_CASE_NAMESPACE, key = the link's id), written
 * once, when the link's first such number is read (before its commit, synchronously: the link is
 * marked in memory at once, the document written without being awaited), and read once at start
 * (every mark in one `listDocs`). The HL7 intake of each LIS link and the analyzers' look-ups share
 * one `AccessionCaseMarks` per store (`accessionCaseMarks(store)`). Per message, the intake does no
 * read and no await: a link already marked costs one flag test; a link not marked, one comparison
 * of each number of the message's events with its upper case.
 */
export const ACCESSION_CASE_NAMESPACE = 'hl7-accession-case';

interface CaseMark {
  caseDistinct: true;
  /** When the link was first seen sending such a number. */
  since: string;
  /** That number (for the operator reading the store). */
  first: string;
}

type MarkStore = Partial<Pick<GatewayStore, 'listDocs' | 'putDoc'>>;

/** Whether upper case changes a number (`ab12`, `Ab12`, `straße`): the fallback could map it to another. */
export function changesInUpperCase(n: string): boolean {
  // ASCII (the usual number) is read in place, without making its upper case.
  for (let i = 0; i < n.length; i++) {
    const c = n.charCodeAt(i);
    if (c >= 0x61 && c <= 0x7a) return true;
    if (c >= 0x80) return n !== n.toUpperCase();
  }
  return false;
}

/** The first number of `events` that upper case changes: an accession, or a tube id of an order. */
function caseDistinctNumber(events: readonly DraftEvent[]): string | undefined {
  // The events of one message mostly share their accession: each number is compared once.
  let last: string | undefined;
  const changed = (n: string | undefined): boolean => {
    if (n === undefined || n === last) return false;
    last = n;
    return changesInUpperCase(n);
  };
  for (const e of events) {
    const accession = (e.data as { accession?: unknown }).accession;
    if (typeof accession === 'string' && changed(accession)) return accession;
    if (e.type !== 'order.created') continue;
    if (changed(e.data.specimenId)) return e.data.specimenId;
    for (const s of e.data.specimens ?? []) if (changed(s.specimenId)) return s.specimenId;
  }
  return undefined;
}

/** The marks of one store: read once, shared by the LIS links' intakes and the analyzers' look-ups. */
export class AccessionCaseMarks {
  readonly #store: MarkStore;
  /** Links known to number by case: read from the store, or seen since the start. */
  readonly #marked = new Set<string>();
  /** Links whose mark is in the store (read, or written or being written). */
  readonly #stored = new Set<string>();
  /** The number that marked a link since the start (its document's `first`). */
  readonly #first = new Map<string, string>();
  #read: Promise<boolean> | undefined;

  constructor(store: MarkStore) {
    this.#store = store;
    void this.#readMarks();
  }

  /**
   * The stored marks, read once; true once read. A failed read is tried again at the next look-up
   * that needs it (only a barcode that would fall back to its upper case), and until it succeeds
   * the fallback is not used (`caseDistinct` answers true).
   */
  #readMarks(): Promise<boolean> {
    if (this.#read) return this.#read;
    // A store that keeps no documents: the marks of this run only.
    if (!this.#store.listDocs) return (this.#read = Promise.resolve(true));
    const read = this.#store
      .listDocs<Partial<CaseMark> | undefined>(ACCESSION_CASE_NAMESPACE)
      .then((docs) => {
        for (const { key, value } of docs) {
          if (value?.caseDistinct !== true) continue;
          this.#marked.add(key);
          this.#stored.add(key);
          this.#first.set(key, value.first ?? '');
        }
        return true;
      })
      .catch(() => {
        if (this.#read === read) this.#read = undefined;
        return false;
      });
    this.#read = read;
    return read;
  }

  /**
   * Whether any of `links` (every link ever marked, when not given) numbers by case, or whether
   * that cannot be told (the marks could not be read): the barcode is then compared byte for byte.
   */
  async caseDistinct(links?: readonly string[]): Promise<boolean> {
    if (!(await this.#readMarks())) return true;
    if (links === undefined) return this.#marked.size > 0;
    return links.some((l) => this.#marked.has(l));
  }

  /**
   * A LIS link's message read, before its commit: a number of it that upper case changes marks the
   * link (in memory at once; the document written once, not awaited). No read, no await.
   */
  note(link: string, events: readonly DraftEvent[]): void {
    if (this.#stored.has(link)) return;
    const first = this.#first.get(link) ?? caseDistinctNumber(events);
    if (first === undefined) return;
    this.#mark(link, first);
  }

  /**
   * Orders found under `number` as the analyzer sent it, a number that upper case changes
   * (astm/host-query.ts barcodeOrders): the LIS links that sent them number by case. An order an
   * earlier release took (before these marks existed) marks its link the first time a look-up
   * finds it. Before, such a link stayed unmarked until it sent another lower-case number: a tube
   * `cd34` whose order had not come yet was answered with CD34's tests, another patient's
   * (test/integration/review-s23b-case-fallback.test.ts). No read; a link marked costs a set test.
   */
  noteFound(number: string, links: Iterable<string>): void {
    for (const link of links) if (!this.#marked.has(link)) this.#mark(link, number);
  }

  /** Marks `link` in memory, and writes its document (not awaited; written again at its next message when that fails). */
  #mark(link: string, first: string): void {
    this.#marked.add(link);
    this.#first.set(link, first);
    this.#stored.add(link);
    if (!this.#store.putDoc) return;
    this.#store.putDoc(ACCESSION_CASE_NAMESPACE, link, { caseDistinct: true, since: new Date().toISOString(), first } satisfies CaseMark).catch(() => {
      // Written again at the link's next message; the link stays marked in memory meanwhile.
      this.#stored.delete(link);
    });
  }
}

const marksByStore = new WeakMap<object, AccessionCaseMarks>();

/**
 * The marks of `store`, one per store object: the gateway's LIS intakes and its analyzers'
 * look-ups are given the same store, and so share them. The first call reads the stored marks (the
 * intakes are made at start). A store that keeps no documents (no listDocs/putDoc) holds the marks
 * of this run only.
 */
export function accessionCaseMarks(store: object): AccessionCaseMarks {
  let marks = marksByStore.get(store);
  if (!marks) marksByStore.set(store, (marks = new AccessionCaseMarks(store as MarkStore)));
  return marks;
}
