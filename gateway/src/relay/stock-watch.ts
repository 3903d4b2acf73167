import { idempotencyKey, partitionKeys } from '../events/keys.ts';
import type { ConsumableUsedData, DraftEvent } from '../events/types.ts';
import { describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { GatewayStore, LocalDoc } from '../store/types.ts';
import { quantityInProductUnit, type OrderpointRef, type ReferenceData, type ReferenceSnapshot } from './reference-data.ts';

/**
 * Local replenishment check (DESIGN.md §3 stock.threshold_breached): on-hand at the lab location
 * from the last Odoo pull (debited locally as consumption is posted) minus consumption not yet
 * posted (converted to the product's unit), against the product's reorder point of the lab: the
 * one on the lab location itself, else on its nearest ancestor (WH/Stock); another warehouse's
 * reorder points are not the lab's. A breach is emitted once per episode as a local event
 * (store.commitLocal), the episode's mark kept per reorder point; the episode ends when the
 * estimate is back at or above the minimum.
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
   * posted. An event whose unit cannot be converted (unknown, or another category) is not counted:
   * it is dead-lettered when posted.
   */
  async unposted(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
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
          const qty = product ? quantityInProductUnit(product, d.quantity, d.uom, uoms) : d.quantity;
          if (qty === undefined) continue;
          out.set(d.productCode, (out.get(d.productCode) ?? 0) + qty);
        }
        seen += page.length;
        if (page.length < PAGE) break;
        after = page[page.length - 1]!.event.id;
      }
    }
    return out;
  }

  async check(): Promise<DraftEvent[]> {
    const snap = this.#o.ref.snapshot;
    if (snap.orderpoints.length === 0) return [];
    const commitLocal = (this.#o.store as GatewayStore & { commitLocal?: LocalCommit }).commitLocal?.bind(this.#o.store);
    if (!commitLocal) return [];
    const unposted = await this.unposted();
    const drafts: DraftEvent[] = [];
    /** The mark of each breach's episode, committed with it. */
    const marks: LocalDoc[] = [];
    const now = new Date(this.#o.clock()).toISOString();
    for (const op of labOrderpoints(snap.orderpoints, this.#o.ref.labLocationChain())) {
      const product = this.#o.ref.productById(op.productId);
      if (!product) continue;
      const estimate = this.#o.ref.onHand(product.id) - (unposted.get(product.code) ?? 0);
      // Marks were kept per product code before; such a mark still holds its episode.
      const key = op.id === undefined ? product.code : `op:${op.id}`;
      const state = (await this.#o.store.getDoc<{ since: string }>(STATE_NS, key)) ?? (key !== product.code ? await this.#o.store.getDoc<{ since: string }>(STATE_NS, product.code) : undefined);
      if (estimate >= op.min) {
        if (state) {
          await this.#o.store.deleteDoc(STATE_NS, key);
          if (key !== product.code) await this.#o.store.deleteDoc(STATE_NS, product.code);
        }
        continue;
      }
      if (state) continue;
      let qty = Math.max(op.max - estimate, op.min - estimate, 0);
      if (op.multiple > 0) qty = Math.ceil(qty / op.multiple) * op.multiple;
      drafts.push({
        type: 'stock.threshold_breached',
        occurredAt: now,
        receivedAt: now,
        idempotencyKey: idempotencyKey('local', 'threshold', product.code, now),
        correlationId: partitionKeys.product(product.code),
        partitionKey: partitionKeys.product(product.code),
        source: { kind: 'local', endpoint: 'relay' },
        data: { productCode: product.code, estimatedOnHand: estimate, reorderPoint: op.min, suggestedQuantity: qty },
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

/**
 * The lab's reorder point per product: on the lab location, else on its nearest ancestor (`chain`:
 * the lab location, then its parents). Reorder points elsewhere (another warehouse, a sibling
 * location) are compared with another stock than the lab's and are left out.
 */
export function labOrderpoints(orderpoints: OrderpointRef[], chain: number[]): OrderpointRef[] {
  const best = new Map<number, { op: OrderpointRef; depth: number }>();
  for (const op of orderpoints) {
    const depth = op.locationId === undefined ? -1 : chain.indexOf(op.locationId);
    if (depth < 0) continue;
    const held = best.get(op.productId);
    if (!held || depth < held.depth) best.set(op.productId, { op, depth });
  }
  return [...best.values()].map((b) => b.op);
}
