import { roundToDigits, type ProductRef, type ReferenceData } from '../reference-data.ts';

/**
 * What Odoo cannot keep of a consumption, carried to the next consumption of the same product and
 * lot (consumable-used.ts).
 *
 * Odoo rounds a stock quantity to the decimal precision 'Product Unit of Measure' (16-18) /
 * 'Product Unit' (19), 2 decimals by default, when it is written. A run posted on its own of
 * 0.004 L of a diluent stocked in litres became a move of 0 that Odoo refused to validate ("You
 * cannot validate a transfer if no quantities are reserved nor done", a UserError: a dead letter
 * per run), and 0.024 L moved 0.02 L, so Odoo's stock drifted from the shelf's a run at a time.
 * Now each move line is sent rounded to that precision, with the product and lot's carry added
 * first; what the rounding leaves (0.004 L, or -0.002 L when 0.028 L was posted as 0.03 L) is the
 * new carry. A segment (consumable-used.ts: the consecutive events of one partition in one call)
 * whose every line rounds to 0 posts nothing: its events are delivered with a note and their
 * quantity carried.
 *
 * Kept in the store (`ref` / `consumption-carry`, one document: dropped with the other documents
 * about one Odoo's records when the gateway is pointed at another, odoo-target.ts):
 * - `carry`: per `<product id>:<lot id>` the quantity (product unit) used and not yet in Odoo
 *   (negative: Odoo was given more);
 * - `segments`: per segment head event id, what the segment did to `carry` (`delta`), applied when
 *   the segment is planned and written before anything is sent. A segment posted to Odoo keeps its
 *   record until its fate is known: its picking done (record dropped, delta stands), or its head's
 *   marker looked up again and not found or found on a cancelled picking, or its create refused
 *   (delta undone: a picking that never moved the stock does not keep what it took). A segment
 *   that posted nothing keeps its record as the proof that its events are covered: after a crash
 *   before the store recorded their delivery, the retry finds the record, delivers the same
 *   `count` events and does not carry them again.
 * The deltas add up whatever order segments are settled in, so segments of one lot in pickings of
 * several analyzers, or settled a call apart, leave the carry right. For the same reason a batch
 * saves only its own changes (carry deltas, records added and dropped) onto the document as stored
 * (ReferenceData.updateOwnDoc): the relay runs batches of this rule side by side, and a batch that
 * wrote back the whole document it had read took back another's carry and records.
 */
const CARRY_DOC = 'consumption-carry';
/** Records are dropped this long after they were written (their events are resolved long before). */
const KEEP_MS = 30 * 24 * 3600_000;

interface SegmentRecord {
  count: number;
  delta: Record<string, number>;
  /** true: its moves were sent to Odoo; false: nothing to post, its events are covered here. */
  posted: boolean;
  /** When planned (relay clock, epoch ms). */
  at: number;
  note?: string;
}
interface CarryBook {
  carry: Record<string, number>;
  segments: Record<string, SegmentRecord>;
}

/** A line of a segment: a quantity (product unit) from one quant. */
export interface SegmentLine {
  product: ProductRef;
  lotId?: number;
  locationId: number;
  qty: number;
}

/** What to post of a segment: its lines rounded (none of 0), and a note for its events when the carry changed anything. */
export interface PlannedSegment {
  lines: SegmentLine[];
  note?: string;
}

const clean = (n: number): number => Math.round(n * 1e9) / 1e9 || 0;
const shown = (n: number): number => Math.round(n * 1e6) / 1e6 || 0;
const keyOf = (productId: number, lotId: number | undefined): string => `${productId}:${lotId ?? ''}`;

/** A batch's own changes to the document, applied to it as stored when the batch saves. */
interface CarryChanges {
  carry: Record<string, number>;
  added: Record<string, SegmentRecord>;
  dropped: Set<string>;
}
const noChanges = (): CarryChanges => ({ carry: {}, added: {}, dropped: new Set() });

export class ConsumptionCarry {
  readonly #ref: ReferenceData;
  readonly #book: CarryBook;
  #changes: CarryChanges = noChanges();

  private constructor(ref: ReferenceData, book: CarryBook) {
    this.#ref = ref;
    this.#book = book;
  }

  static async load(ref: ReferenceData): Promise<ConsumptionCarry> {
    const doc = await ref.ownDoc<CarryBook>(CARRY_DOC);
    return new ConsumptionCarry(ref, { carry: { ...(doc?.carry ?? {}) }, segments: { ...(doc?.segments ?? {}) } });
  }

  /** The quantity carried for a product and lot (product unit; 0 when none). */
  carried(productId: number, lotId?: number): number {
    return this.#book.carry[keyOf(productId, lotId)] ?? 0;
  }

  /** A segment that posted nothing, headed by this event: it covers `count` events. */
  covered(headId: string): { count: number; note?: string } | undefined {
    const r = this.#book.segments[headId];
    return r && !r.posted ? { count: r.count, ...(r.note ? { note: r.note } : {}) } : undefined;
  }

  /** The head's marker is on a done picking: the segment's delta stands. */
  found(headId: string): void {
    if (this.#book.segments[headId]?.posted) this.#drop(headId, false);
  }

  /** The head was looked up and is not in Odoo, or on a cancelled picking: the segment moved nothing, its delta is undone. */
  notFound(headId: string): void {
    if (this.#book.segments[headId]?.posted) this.#drop(headId, true);
  }

  /** The segments' picking is done: their deltas stand. */
  settled(headIds: string[]): void {
    for (const h of headIds) this.found(h);
  }

  /** The segments' picking was certainly not created: their deltas are undone. */
  undo(headIds: string[]): void {
    for (const h of headIds) this.notFound(h);
  }

  /**
   * Plan a segment: per product and lot, the carry is added to its last line, every line rounded
   * to `digits` (half-up, as Odoo rounds on write; never below 0), lines of 0 left out, the
   * rounding's remainder carried. Recorded (not saved: `save`) under the head's id.
   */
  plan(headId: string, count: number, lines: SegmentLine[], digits: number, now: number, lotName: (productId: number, lotId: number) => string | undefined): PlannedSegment {
    const byKey = new Map<string, SegmentLine[]>();
    for (const l of lines) byKey.set(keyOf(l.product.id, l.lotId), [...(byKey.get(keyOf(l.product.id, l.lotId)) ?? []), { ...l }]);
    const out: SegmentLine[] = [];
    const delta: Record<string, number> = {};
    const notes: string[] = [];
    let anything = false;
    const step = shown(10 ** -digits);
    for (const [key, group] of byKey) {
      const carryIn = this.#book.carry[key] ?? 0;
      const used = clean(group.reduce((s, l) => s + l.qty, 0));
      group[group.length - 1]!.qty += carryIn;
      let posted = 0;
      for (const l of group) {
        const q = Math.max(0, roundToDigits(l.qty, digits));
        posted += q;
        if (q > 0) out.push({ ...l, qty: q });
      }
      posted = clean(posted);
      if (posted > 0) anything = true;
      const remainder = clean(used + carryIn - posted);
      delta[key] = clean(remainder - carryIn);
      if (posted === used && carryIn === 0) continue;
      const p = group[0]!.product;
      const unit = p.uomName ?? '';
      const lot = group[0]!.lotId === undefined ? '' : ` lot ${lotName(p.id, group[0]!.lotId) ?? group[0]!.lotId}`;
      const earlier = carryIn === 0 ? '' : ` (${shown(used + carryIn)} ${unit} with ${shown(carryIn)} ${unit} carried from earlier consumption)`;
      notes.push(
        posted === 0
          ? `${shown(used)} ${unit} of ${p.code}${lot}${earlier} is below Odoo's precision of stock quantities (${step} ${unit}): nothing posted, carried to its next consumption`
          : `${p.code}${lot}: ${shown(posted)} ${unit} posted for ${shown(used)} ${unit} used${earlier}, Odoo keeping ${step} ${unit}; ` +
              (remainder > 0 ? `${shown(remainder)} ${unit} carried to its next consumption` : remainder < 0 ? `${shown(-remainder)} ${unit} posted ahead, taken off its next consumption` : 'nothing carried'),
      );
    }
    for (const [key, d] of Object.entries(delta)) {
      this.#book.carry[key] = clean((this.#book.carry[key] ?? 0) + d);
      this.#changes.carry[key] = clean((this.#changes.carry[key] ?? 0) + d);
    }
    const note = notes.length > 0 ? notes.join('; ') : undefined;
    // Posted exactly as used, nothing carried in or out (whole units, quantities at Odoo's
    // precision: most segments): nothing to undo or to cover, so no record and no write.
    if (anything && Object.values(delta).every((d) => d === 0) && this.#book.segments[headId] === undefined) return { lines: out, ...(note ? { note } : {}) };
    const record: SegmentRecord = { count, delta, posted: anything, at: now, ...(note && !anything ? { note } : {}) };
    this.#book.segments[headId] = record;
    this.#changes.added[headId] = record;
    this.#changes.dropped.delete(headId);
    return { lines: anything ? out : [], ...(note ? { note } : {}) };
  }

  /**
   * Apply this batch's changes to the document as stored (one put, one update of it at a time),
   * dropping records older than KEEP_MS and carries of 0. Changes a failed save could not write are
   * kept for the next save.
   */
  async save(now: number): Promise<void> {
    // Nothing of this batch's to write (old records go with the next batch that changes anything).
    if (Object.keys(this.#changes.carry).length === 0 && Object.keys(this.#changes.added).length === 0 && this.#changes.dropped.size === 0) return;
    const changes = this.#changes;
    this.#changes = noChanges();
    try {
      await this.#ref.updateOwnDoc<CarryBook>(CARRY_DOC, (stored) => {
        const book: CarryBook = { carry: { ...(stored?.carry ?? {}) }, segments: { ...(stored?.segments ?? {}) } };
        let changed = false;
        for (const [key, d] of Object.entries(changes.carry)) {
          if (d === 0) continue;
          book.carry[key] = clean((book.carry[key] ?? 0) + d);
          changed = true;
        }
        for (const head of changes.dropped) {
          if (book.segments[head] === undefined) continue;
          delete book.segments[head];
          changed = true;
        }
        for (const [head, r] of Object.entries(changes.added)) {
          book.segments[head] = r;
          changed = true;
        }
        for (const [head, r] of Object.entries(book.segments)) {
          if (now - r.at > KEEP_MS) {
            delete book.segments[head];
            changed = true;
          }
        }
        for (const [key, v] of Object.entries(book.carry)) {
          if (v === 0) {
            delete book.carry[key];
            changed = true;
          }
        }
        return changed ? book : undefined;
      });
    } catch (err) {
      // Not written: kept (under any made since) for the next save.
      for (const [key, d] of Object.entries(changes.carry)) this.#changes.carry[key] = clean(d + (this.#changes.carry[key] ?? 0));
      for (const head of changes.dropped) if (this.#changes.added[head] === undefined) this.#changes.dropped.add(head);
      for (const [head, r] of Object.entries(changes.added)) if (this.#changes.added[head] === undefined && !this.#changes.dropped.has(head)) this.#changes.added[head] = r;
      throw err;
    }
  }

  #drop(headId: string, undo: boolean): void {
    const r = this.#book.segments[headId];
    if (!r) return;
    if (undo) {
      for (const [key, d] of Object.entries(r.delta)) {
        this.#book.carry[key] = clean((this.#book.carry[key] ?? 0) - d);
        this.#changes.carry[key] = clean((this.#changes.carry[key] ?? 0) - d);
      }
    }
    delete this.#book.segments[headId];
    delete this.#changes.added[headId];
    this.#changes.dropped.add(headId);
  }
}
