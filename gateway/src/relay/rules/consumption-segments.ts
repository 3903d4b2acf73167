import type { ReferenceData } from '../reference-data.ts';

/**
 * Which events a consumption segment left open in Odoo covers (consumable-used.ts).
 *
 * A segment's move is marked with its head only (`lab-gateway:cons:<head>:<count>`). When its
 * picking is created and not validated (Odoo's row locks until the head is a dead letter, a
 * picking cancelled in Odoo, an answer lost), only the head is failed; the events after it wait
 * behind it. Once an operator discards the head, the next event heads the partition and its own
 * marker is found nowhere: its runs, already in the picking, were posted a second time (and the
 * stock watch counted them again). So a segment whose picking is left unvalidated is recorded,
 * head and every event it covers, by id; the walk (consumable-used.ts walkPosted) looks a head
 * whose own marker misses up through the recorded segment holding it.
 *
 * Kept in the store (`ref` / `consumption-segments`, dropped with the other documents about one
 * Odoo's records when the gateway is pointed at another): per segment head `{ count, members, at }`.
 * A record goes once its last member is covered, once its head is looked up and not in Odoo (the
 * picking never landed, or was deleted there: the events are posted again), or after KEEP_MS.
 * Only segments left unvalidated are recorded: a segment validated at once writes nothing.
 * A batch saves only its own changes onto the document as stored (ReferenceData.updateOwnDoc).
 */
const SEGMENTS_DOC = 'consumption-segments';
const KEEP_MS = 30 * 24 * 3600_000;

interface SegmentMembers {
  count: number;
  /** The segment's event ids in partition order, the head first (a part: those covered so far). */
  members: string[];
  /** When recorded (relay clock, epoch ms). */
  at: number;
  /**
   * A part of the segment, covered by a run shorter than it (`members` are those covered so far):
   * the rest is the partition's next events. Set on such records only.
   */
  partition?: string;
}
type Book = Record<string, SegmentMembers>;

export class ConsumptionSegments {
  readonly #ref: ReferenceData;
  readonly #book: Book;
  readonly #added: Book = {};
  readonly #dropped = new Set<string>();

  private constructor(ref: ReferenceData, book: Book) {
    this.#ref = ref;
    this.#book = book;
  }

  static async load(ref: ReferenceData): Promise<ConsumptionSegments> {
    return new ConsumptionSegments(ref, { ...((await ref.ownDoc<Book>(SEGMENTS_DOC)) ?? {}) });
  }

  /**
   * The recorded segment holding `eventId` after its head (the head's own marker is looked up
   * directly): its head, and the members from `eventId` on.
   */
  holding(eventId: string, partition?: string): { head: string; count: number; from: string[]; rest?: number } | undefined {
    for (const [head, r] of Object.entries(this.#book)) {
      const i = r.members.indexOf(eventId);
      if (i > 0) return { head, count: r.count, from: r.members.slice(i) };
    }
    // A segment covered in part: the rest of it is the partition's next events, from the first
    // after the part covered (ids are time-ordered, the partition's order).
    if (partition !== undefined) {
      for (const [head, r] of Object.entries(this.#book)) {
        const last = r.members[r.members.length - 1];
        if (r.partition === partition && r.members.length < r.count && last !== undefined && eventId > last) return { head, count: r.count, from: [], rest: r.count - r.members.length };
      }
    }
    return undefined;
  }

  /**
   * A segment found in Odoo and covered in part: the run walked held fewer of its events than it
   * counts (a batch posted again in halves after a proxy's 413, a shorter lease), so the rest are
   * the partition's next events, found through this record once they head it (`holding`). A
   * segment whose events are all recorded (left unvalidated, `record`) needs none. Such a record
   * stays until KEEP_MS, or until its head is looked up and not in Odoo.
   */
  coveredPart(head: string, partition: string, covered: string[], count: number, now: number): void {
    const known = this.#book[head];
    if (known && known.partition === undefined) return;
    const members = [...(known?.members ?? []), ...covered.filter((id) => !known?.members.includes(id))].slice(0, count);
    if (known && known.members.length === members.length) return;
    // Kept whole once every event is covered (found then by `members`, as a segment left
    // unvalidated is), until KEEP_MS: the batch that covered them may be posted again in halves
    // (its results dropped), and its halves look them up again.
    const r: SegmentMembers = { count, members, at: known?.at ?? now, partition };
    this.#book[head] = r;
    this.#added[head] = r;
    this.#dropped.delete(head);
  }

  /** A segment left in Odoo without its picking validated: what it covers. */
  record(head: string, count: number, members: string[], now: number): void {
    const known = this.#book[head];
    // A retry's run may be shorter than the segment (a batch halved): keep the longer list.
    if (known && known.count === count && known.members.length >= members.length) return;
    const r: SegmentMembers = { count, members: members.slice(0, count), at: now };
    this.#book[head] = r;
    this.#added[head] = r;
    this.#dropped.delete(head);
  }

  /** Covered up to `lastId` (or looked up and not in Odoo: `lastId` undefined): the record goes once its last member is covered. */
  covered(head: string, lastId?: string): void {
    const r = this.#book[head];
    if (!r) return;
    if (lastId !== undefined && (r.partition !== undefined || r.members[r.members.length - 1] !== lastId)) return;
    delete this.#book[head];
    delete this.#added[head];
    this.#dropped.add(head);
  }

  async save(now: number): Promise<void> {
    if (Object.keys(this.#added).length === 0 && this.#dropped.size === 0) return;
    const added = { ...this.#added };
    const dropped = new Set(this.#dropped);
    for (const k of Object.keys(this.#added)) delete this.#added[k];
    this.#dropped.clear();
    try {
      await this.#ref.updateOwnDoc<Book>(SEGMENTS_DOC, (stored) => {
        const book: Book = { ...(stored ?? {}) };
        for (const head of dropped) delete book[head];
        Object.assign(book, added);
        for (const [head, r] of Object.entries(book)) if (now - r.at > KEEP_MS) delete book[head];
        return book;
      });
    } catch (err) {
      // Kept for the next save (under any change made since).
      for (const head of dropped) if (this.#added[head] === undefined) this.#dropped.add(head);
      for (const [head, r] of Object.entries(added)) if (this.#added[head] === undefined && !this.#dropped.has(head)) this.#added[head] = r;
      throw err;
    }
  }
}
