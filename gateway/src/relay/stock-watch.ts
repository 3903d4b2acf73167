import { idempotencyKey, partitionKeys } from '../events/keys.ts';
import type { ConsumableUsedData, DraftEvent } from '../events/types.ts';
import { describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { GatewayStore, LocalDoc, StoredEvent } from '../store/types.ts';
import { consumptionInOdoo } from './rules/consumable-used.ts';
import { quantityInProductUnit, refusedOnItsMerits, type OrderpointRef, type ReferenceData, type ReferenceSnapshot } from './reference-data.ts';

/**
 * Local replenishment check (DESIGN.md §3 stock.threshold_breached): on-hand at the lab location
 * from the last Odoo pull (debited locally as consumption is posted) minus consumption not yet
 * posted (converted to the product's unit; events the store still holds whose picking Odoo has
 * already done are looked up and left out), against the product's reorder point of the lab: the
 * one on the lab location itself, else on its nearest ancestor (WH/Stock); another warehouse's
 * reorder points are not the lab's. A breach is raised only when the FORECAST is below the
 * minimum: that estimate plus the goods on their way (receipts of confirmed purchase orders not
 * done yet, ReferenceData.incoming), as Odoo's own reorder rule counts them (`qty_forecast`); its
 * quantity tops the forecast up to the maximum. A breach is emitted once per episode as a local
 * event (store.commitLocal), the episode's mark kept per reorder point; the episode ends when the
 * lab's own estimate (without what is on its way) is back at or above the minimum, so that goods
 * received into WH/Stock rather than the lab do not open a second episode.
 */
export const STATE_NS = 'relay-stock';
const SCAN_LIMIT = 50_000;
const PAGE = 1000;

type LocalCommit = (events: DraftEvent[], docs?: LocalDoc[]) => Promise<unknown>;

export class StockWatch {
  readonly #o: { store: GatewayStore; ref: ReferenceData; log: Logger; clock: () => number };

  constructor(options: { store: GatewayStore; ref: ReferenceData; log: Logger; clock: () => number }) {
    this.#o = options;
  }

  /**
   * Unposted consumption per product code (pending, retrying and in-flight events), in the
   * product's unit, paged through the store's listing (1000 per page) and capped at SCAN_LIMIT
   * events per state: with a larger backlog the estimate is a lower bound on what is still to be
   * posted. An event whose unit cannot be converted (unknown, or another category), or whose
   * quantity is negative or not a number, is not counted: it is dead-lettered when posted. Counted as the store sees it: check() leaves out what Odoo
   * already holds.
   */
  async unposted(): Promise<Map<string, number>> {
    return totals(await this.#scan());
  }

  /** The store's unresolved consumption events in id order (the order of every partition), with their quantity in the product's unit. */
  async #scan(): Promise<Unresolved[]> {
    const out: Unresolved[] = [];
    // From the pulled snapshot (a watch without reference data counts quantities as reported).
    const snap: ReferenceSnapshot | undefined = this.#o.ref.snapshot;
    const products = new Map((snap?.products ?? []).map((p) => [p.code, p]));
    const uoms = snap?.uoms ?? [];
    for (const state of ['pending', 'retrying', 'inflight'] as const) {
      let after: string | undefined;
      for (let seen = 0; seen < SCAN_LIMIT; ) {
        const page = await this.#o.store.listEvents({ state, type: 'consumable.used', limit: PAGE, ...(after ? { after } : {}) });
        for (const s of page) {
          if (s.event.type !== 'consumable.used') continue;
          const d = s.event.data as ConsumableUsedData;
          const product = products.get(d.productCode);
          const converted = product ? quantityInProductUnit(product, d.quantity, d.uom, uoms) : d.quantity;
          // A negative or non-finite quantity is no use of stock (the rule dead-letters it):
          // counted, it was stock given back and held a real breach until then.
          const qty = typeof converted === 'number' && Number.isFinite(converted) && converted >= 0 ? converted : undefined;
          out.push({ e: s, code: d.productCode, ...(qty === undefined ? {} : { qty }) });
        }
        seen += page.length;
        if (page.length < PAGE) break;
        after = page[page.length - 1]!.event.id;
      }
    }
    return out.sort((a, b) => (a.e.event.id < b.e.event.id ? -1 : a.e.event.id > b.e.event.id ? 1 : 0));
  }

  /**
   * Which unresolved events Odoo already holds, for the products whose unposted consumption would
   * take them below their minimum (only there can it change the outcome: leaving events out only
   * raises an estimate). An event whose validation answer was lost, or whose lease a restart
   * reopened, is still retrying in the store while the pulled quants already hold its picking:
   * counted again, it raised a breach (a draft RFQ) for stock that never fell below the minimum.
   * Every unresolved event of those products is looked up (rules/consumable-used.ts
   * consumptionInOdoo, one `search_read` per segment depth, usually one): a link failure after the
   * validation can release a lease unmarked, so "never attempted" does not prove "not in Odoo".
   * `held`: the look-up failed; those products are not compared this time (no breach, the episode
   * kept), and the next check (after the next pull or the next round that posts consumption) tries
   * again.
   */
  async #inOdoo(events: Unresolved[], doubtful: Set<string>): Promise<{ covered: Set<string>; held: boolean }> {
    if (doubtful.size === 0) return { covered: new Set(), held: false };
    // Whole partitions (their segments are walked from the head); one of the earlier per-analyzer
    // scheme may mix products.
    const partitions = new Set(events.filter((u) => doubtful.has(u.code)).map((u) => u.e.event.partitionKey));
    const runs = new Map<string, StoredEvent[]>();
    for (const u of events) {
      const key = u.e.event.partitionKey;
      if (!partitions.has(key)) continue;
      const run = runs.get(key);
      if (run) run.push(u.e);
      else runs.set(key, [u.e]);
    }
    try {
      return { covered: await consumptionInOdoo({ odoo: this.#o.ref.odoo, ref: this.#o.ref, log: this.#o.log }, runs), held: false };
    } catch (err) {
      this.#o.log.warn('stock watch: could not look up unposted consumption in Odoo; the reorder check of these products waits for the next check', { products: [...doubtful], error: describeError(err) });
      return { covered: new Set(), held: true };
    }
  }

  /**
   * The episode marks of reorder points that are no longer the lab's in Odoo (archived, deleted,
   * moved to another location) go: the episode ends with its reorder point. Kept, a reorder point
   * archived over a closure and restored later still counted its old episode as raised, though the
   * stock had come back meanwhile (nothing compared it while archived), and the next fall below
   * its minimum ordered nothing. A breach raised again for stock still low is not a second order:
   * the RFQ rule adds nothing while an open RFQ line of the product exists, and a confirmed order
   * not received yet counts in the forecast. Only after a pull that read the lab's stock (quants)
   * and found the lab location: a pull that could not read them is no proof the reorder points
   * are gone.
   */
  async #forgetGoneReorderPoints(orderpoints: OrderpointRef[], chain: number[], snap: ReferenceSnapshot): Promise<void> {
    if (chain.length === 0 || !snap.quantsReadAt) return;
    const lab = new Map<string, string | undefined>(orderpoints.map((op) => [`op:${op.id}`, this.#o.ref.productById(op.productId)?.code]));
    for (const { key, value } of await this.#o.store.listDocs<EpisodeMark>(STATE_NS, { prefix: 'op:' })) {
      if (!lab.has(key)) await this.#o.store.deleteDoc(STATE_NS, key);
      else {
        // Pointed at another product: the earlier product's episode is over for this reorder point
        // (kept, it would hold the episode again if staff pointed it back).
        const code = lab.get(key);
        if (code !== undefined && value.productCode !== undefined && value.productCode !== code) await this.#o.store.deleteDoc(STATE_NS, key);
      }
    }
  }

  async check(): Promise<DraftEvent[]> {
    const snap = this.#o.ref.snapshot;
    const chain = this.#o.ref.labLocationChain();
    const orderpoints = labOrderpoints(snap.orderpoints, chain);
    await this.#forgetGoneReorderPoints(orderpoints, chain, snap);
    if (orderpoints.length === 0) return [];
    const commitLocal = (this.#o.store as GatewayStore & { commitLocal?: LocalCommit }).commitLocal?.bind(this.#o.store);
    if (!commitLocal) return [];
    const events = await this.#scan();
    const counted = totals(events);
    // Marks were kept per product code before; such a mark still holds its episode.
    const keyOf = (op: OrderpointRef, code: string): string => (op.id === undefined ? code : `op:${op.id}`);
    const markOf = async (op: OrderpointRef, code: string): Promise<EpisodeMark | undefined> => {
      const key = keyOf(op, code);
      const mark = await this.#o.store.getDoc<EpisodeMark>(STATE_NS, key);
      // A reorder point staff pointed at another product in Odoo: the mark is the earlier
      // product's episode, not this one's (it held the new product's breach back for good).
      if (mark && key !== code) return mark.productCode === undefined || mark.productCode === code ? mark : undefined;
      return mark ?? (key !== code ? await this.#o.store.getDoc<EpisodeMark>(STATE_NS, code) : undefined);
    };
    // Products whose outcome depends on what Odoo already holds: counting their unposted events
    // takes them below the minimum, and without them the episode could end (or a new breach's
    // quantity would be another one).
    const doubtful = new Set<string>();
    for (const op of orderpoints) {
      const product = this.#o.ref.productById(op.productId);
      const pending = product ? (counted.get(product.code) ?? 0) : 0;
      if (!product || pending <= 0) continue;
      const onHand = this.#o.ref.onHand(product.id);
      if (qty(onHand - pending) >= op.min) continue;
      const mark = await markOf(op, product.code);
      if (qty(onHand) < op.min && mark) continue;
      // No episode, and the forecast stays at or above the minimum with every event counted: no
      // breach whatever Odoo holds (leaving events out only raises it).
      if (!mark && qty(onHand - pending + this.#o.ref.incoming(product.id)) >= op.min) continue;
      doubtful.add(product.code);
    }
    // Found segments are debited from the local stock (once per marker) and their products' quants
    // read again before onHand is read. Every estimate is taken at once, with no wait in between:
    // a pull finishing meanwhile (an operator's refresh beside the loop's) installs its quants
    // either before or after all of them.
    const { covered, held } = await this.#inOdoo(events, doubtful);
    const unposted = totals(events.filter((u) => !covered.has(u.e.event.id)));
    const estimates = new Map(orderpoints.map((op) => {
      const product = this.#o.ref.productById(op.productId);
      return [op, product ? qty(this.#o.ref.onHand(product.id) - (unposted.get(product.code) ?? 0)) : 0] as const;
    }));
    const drafts: DraftEvent[] = [];
    /** The mark of each breach's episode, committed with it. */
    const marks: LocalDoc[] = [];
    const now = new Date(this.#o.clock()).toISOString();
    /** Reorder points whose forecast is below their minimum, with no episode yet. */
    const breaching: Array<{ op: OrderpointRef; product: NonNullable<ReturnType<ReferenceData['productById']>> }> = [];
    for (const op of orderpoints) {
      const product = this.#o.ref.productById(op.productId);
      if (!product) continue;
      if (held && doubtful.has(product.code)) continue;
      const estimate = estimates.get(op)!;
      const key = keyOf(op, product.code);
      const state = await markOf(op, product.code);
      if (estimate >= op.min) {
        if (state) {
          await this.#o.store.deleteDoc(STATE_NS, key);
          if (key !== product.code) await this.#o.store.deleteDoc(STATE_NS, product.code);
        }
        continue;
      }
      if (state) continue;
      // Goods on their way count, as in Odoo's qty_forecast: a confirmed order not received yet
      // (or the rest of a partial receipt) holds the breach back and is deducted from the top-up.
      if (qty(estimate + this.#o.ref.incoming(product.id)) >= op.min) continue;
      breaching.push({ op, product });
    }
    // Before a breach is raised, its products' goods on their way are read again, then their
    // quants (in that order, as the pull reads them: a receipt done between the two reads is
    // counted twice, never missed by both). The pull's were up to relay.referenceRefreshMs old,
    // while the quants are read again before every consumption batch: an RFQ the buyer confirmed
    // since the pull was not on its way, and once a box brought up from the main store had ended
    // the episode, the next fall below the minimum ordered the reagent a second time
    // (test/integration/stock-incoming-since-pull-audit.test.ts). A read that fails for the link
    // (a timeout, a refused connection, a 5xx) holds these products until the next check (no
    // breach, no mark), as a failed look-up does. Odoo refusing it on its merits (an AccessError:
    // the gateway's user lost read access on stock.quant, a record rule) answers the same at every
    // check: held, the breach never came and the lab ran out with no RFQ. The last pull's figures,
    // less what the gateway posted since, are compared instead, as the consumption rule posts from
    // them; ReferenceData lists the refusal and the relay raises ODOO_REFERENCE_REFUSED once
    // (test/integration/stock-quant-refused-audit.test.ts).
    if (breaching.length > 0) {
      const ids = breaching.map((b) => b.product.id);
      try {
        await this.#o.ref.refreshIncoming(ids);
        await this.#o.ref.refreshStock(ids);
      } catch (err) {
        if (!refusedOnItsMerits(err)) {
          this.#o.log.warn('stock watch: could not read the goods on their way or the lab stock again; the reorder check of these products waits for the next check', { products: breaching.map((b) => b.product.code), error: describeError(err) });
          breaching.length = 0;
        }
      }
    }
    for (const { op, product } of breaching) {
      const estimate = qty(this.#o.ref.onHand(product.id) - (unposted.get(product.code) ?? 0));
      if (estimate >= op.min) continue;
      const incoming = this.#o.ref.incoming(product.id);
      const forecast = qty(estimate + incoming);
      if (forecast >= op.min) continue;
      const key = keyOf(op, product.code);
      const toOrder = toOrderQty(op, forecast);
      drafts.push({
        type: 'stock.threshold_breached',
        occurredAt: now,
        receivedAt: now,
        idempotencyKey: idempotencyKey('local', 'threshold', product.code, now),
        correlationId: partitionKeys.product(product.code),
        partitionKey: partitionKeys.product(product.code),
        source: { kind: 'local', endpoint: 'relay' },
        data: { productCode: product.code, estimatedOnHand: estimate, reorderPoint: op.min, suggestedQuantity: toOrder, ...(incoming > 0 ? { incoming } : {}) },
      });
      marks.push({ namespace: STATE_NS, key, value: { since: now, productCode: product.code } });
    }
    if (drafts.length > 0) {
      // Each breach and the mark of its episode are one atomic batch. Marked first (as before), a
      // failed commit or a crash between the two left the mark without the event, and no later
      // check raised the breach again while the stock stayed low: no draft RFQ, ever.
      try {
        await commitLocal(drafts, marks);
      } catch (err) {
        this.#o.log.warn('could not record stock.threshold_breached', { error: describeError(err) });
        return [];
      }
      this.#o.log.info('stock below reorder point', { products: drafts.map((d) => (d.data as { productCode: string }).productCode) });
    }
    return drafts;
  }
}

/** The mark of a breach's episode (`op:<reorder point id>`; per product code before). */
interface EpisodeMark {
  since: string;
  /** The product the reorder point watched when the breach was raised (absent on the oldest marks). */
  productCode?: string;
}

/** An unresolved consumption event and its quantity in the product's unit (none: its unit cannot be converted). */
interface Unresolved {
  e: StoredEvent;
  code: string;
  qty?: number;
}

/**
 * A stock quantity to a millionth of the product's unit, as the consumption picking posts it. Sums
 * of converted consumption carry binary noise (125 × 0.024 L is 3.000000000000002 L): unrounded, a
 * diluent used down to exactly its 5 L minimum read 4.999999999999998 and raised a breach Odoo's
 * rule would not (it compares at the unit's precision), and a top-up of 5.000000000000002 L was
 * rounded up to a whole extra multiple.
 */
function qty(n: number): number {
  return Math.round(n * 1e6) / 1e6 || 0;
}

/**
 * What Odoo's reorder rule orders (`_compute_qty_to_order`): up to the maximum (at least the
 * minimum) from the forecast, rounded up to `qty_multiple` when it is above 0; a remainder within
 * the rounding precision is not a reason to add a multiple.
 */
function toOrderQty(op: Pick<OrderpointRef, 'min' | 'max' | 'multiple'>, forecast: number): number {
  const need = qty(Math.max(op.max - forecast, op.min - forecast, 0));
  if (!(op.multiple > 0)) return need;
  return qty(Math.ceil(qty(need / op.multiple)) * op.multiple);
}

/** Quantity per product code (events whose unit cannot be converted are not counted). */
function totals(events: Unresolved[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const u of events) if (u.qty !== undefined) out.set(u.code, (out.get(u.code) ?? 0) + u.qty);
  return out;
}

/**
 * The lab's reorder point per product: on the lab location, else on its nearest ancestor (`chain`:
 * the lab location, then its parents). Reorder points elsewhere (another warehouse, a sibling
 * location) are compared with another stock than the lab's and are left out.
 */
export function labOrderpoints<T extends Pick<OrderpointRef, 'productId' | 'locationId'>>(orderpoints: T[], chain: number[]): T[] {
  const best = new Map<number, { op: T; depth: number }>();
  for (const op of orderpoints) {
    const depth = op.locationId === undefined ? -1 : chain.indexOf(op.locationId);
    if (depth < 0) continue;
    const held = best.get(op.productId);
    if (!held || depth < held.depth) best.set(op.productId, { op, depth });
  }
  return [...best.values()].map((b) => b.op);
}
