import type { OdooMappingConfig } from '../config/types.ts';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { GatewayStore } from '../store/types.ts';
import type { OdooApi } from './odoo/odoo-client.ts';
import { m2oId, read, searchRead, type OdooRecord } from './odoo/odoo-calls.ts';
import { cleanOdooMessage, failureOf, isLinkDown, mappingMissing } from './odoo/odoo-error.ts';

/**
 * Reference data pulled from Odoo on a schedule (DESIGN.md §3: products by default_code, lots,
 * partners, locations, reorder points) and kept in the store (`putDoc('ref', …)`) so that a restart
 * with Odoo unreachable still knows them. A miss is re-checked once against Odoo before it becomes
 * a mapping error, so that a replay after the site fixed its master data delivers at once.
 */
export interface ProductRef {
  id: number;
  code: string;
  name: string;
  uomId?: number;
  /** The unit's name as Odoo shows it (uom_id's display name). */
  uomName?: string;
  templateId?: number;
  /** 'none' | 'lot' | 'serial' */
  tracking: string;
}
export interface LotRef {
  id: number;
  name: string;
  productId: number;
  /** ISO datetime (product_expiry), when known. */
  expiresAt?: string;
}
export interface QuantRef {
  productId: number;
  lotId?: number;
  locationId: number;
  quantity: number;
}
/**
 * Goods on their way to the lab: a receipt move of a confirmed purchase order not done yet (the
 * rest of a partial receipt is its backorder's move), in the product's unit (`product_qty`).
 */
export interface IncomingRef {
  productId: number;
  /** Where the receipt puts it: the lab location, a child, or an internal location above it (WH/Stock). */
  locationId: number;
  quantity: number;
}
export interface PartnerRef {
  id: number;
  ref: string;
  name: string;
}
export interface LocationRef {
  id: number;
  name: string;
  completeName: string;
  usage: string;
  /** Parent location (location_id). */
  parentId?: number;
}
export interface PickingTypeRef {
  id: number;
  name: string;
  code: string;
  warehouseId?: number;
  srcId?: number;
  destId?: number;
}
export interface OrderpointRef {
  /** Absent in snapshots cached before it was pulled. */
  id?: number;
  productId: number;
  locationId?: number;
  min: number;
  max: number;
  /**
   * The rule's Multiple in the product's unit: the quantity to order is rounded up to it; 0 = no
   * rounding. ≤18 `qty_multiple`; 19 one `replenishment_uom_id` (a unit or packaging, e.g. a box
   * of 10) expressed in the product's unit (0 when unset, the product's own unit, or not convertible).
   */
  multiple: number;
  /** 19: the Multiple's unit (`replenishment_uom_id`), when set. */
  multipleUomId?: number;
}

export interface ReferenceSnapshot {
  pulledAt: string;
  products: ProductRef[];
  lots: LotRef[];
  /** Quants at the lab location (and its children). */
  quants: QuantRef[];
  partners: PartnerRef[];
  locations: LocationRef[];
  pickingTypes: PickingTypeRef[];
  orderpoints: OrderpointRef[];
  /** Units of measure (absent in snapshots cached before they were pulled). */
  uoms?: UomRef[];
  /** When the lab quants were read (gateway clock, ISO): pickings done before are in `quants`. */
  quantsReadAt?: string;
  /**
   * Purchase receipts still to come into the lab's stock (read just before the quants; absent in
   * snapshots cached before they were pulled, and when Odoo has no purchase app: none).
   */
  incoming?: IncomingRef[];
}

/**
 * A unit of measure, in one convention for every version: `factor` is how many of this unit make
 * one reference unit (Odoo ≤18 `factor`, "1 * reference unit = ratio * this unit"; 1 / `factor` on
 * 19, where `factor` is the absolute quantity of the root unit). Conversion: qty / from.factor *
 * to.factor, only between units of one `category`.
 */
export interface UomRef {
  id: number;
  name: string;
  factor: number;
  /** `c<uom.category id>` (≤18) or `r<root unit id>` (19, first id of parent_path). */
  category: string;
  /** The category's name (≤18), for messages. */
  categoryName?: string;
  /** `rounding`: the unit's precision (1 for a box shipped whole); absent when not read. */
  rounding?: number;
}

/** Lines of a posted consumption segment, as Odoo moved them (product unit). */
export interface DebitLine {
  productId: number;
  lotId?: number;
  /** The move line's source (the lab location or one of its children); absent in debits recorded before it was kept. */
  locationId?: number;
  qty: number;
}
/** A posted segment's debit of the local stock, keyed by its marker (exactly once per marker). */
export interface PostedDebit {
  marker: string;
  /** The picking's date_done (Odoo, UTC 'YYYY-MM-DD HH:MM:SS'), when known. */
  doneAt?: string;
  /** When the gateway debited it (its clock, ISO): set by debitPosted. */
  debitedAt?: string;
  lines: DebitLine[];
}

/**
 * A model the last pull could not read because Odoo refused the read on its merits: the rest was
 * pulled. `access`: an AccessError (the gateway's user may not read the model); `error`: any other
 * permanent error (a ValueError on a field after an Odoo upgrade, a server-side bug).
 */
export interface RefusedModel {
  model: string;
  kind: 'access' | 'error';
  /** What the gateway reads it for ("reorder points"). */
  label: string;
  /** Odoo's reason, without traceback. */
  reason: string;
  /** What the gateway does without it. */
  effect: string;
  /**
   * Refused a re-read between pulls (the lab quants before a consumption batch or a breach), not
   * the pull: the last pull's rows are in use. Such an entry goes at the next successful re-read
   * or with the next pull.
   */
  reread?: true;
}

/** What each pulled model is, for the operator (ODOO_REFERENCE_REFUSED). */
const MODEL_LABELS: Record<string, string> = {
  'product.product': 'products',
  'res.partner': 'partners (ordering clients)',
  'stock.location': 'stock locations',
  'stock.picking.type': 'operation types',
  'stock.warehouse.orderpoint': 'reorder points',
  'stock.lot': 'lots',
  'uom.uom': 'units of measure',
  'stock.quant': 'on-hand quantities at the lab location',
  'stock.move': 'receipts of confirmed purchase orders still to come',
};

/**
 * Units are read in English, the language of the consumption profiles ("Units", "mL"), archived
 * ones too (a product may keep one). uom.uom `name` is translated (`translate=True`, 16-19): over
 * JSON-2 (19) a call without `context.lang` reads the company's language (ir.http._pre_dispatch,
 * get_lang), so a French site read "Unités" and every consumption in "Units" was dead-lettered;
 * JSON-RPC reads the source without a lang. Product names are read in the site's language (RFQ
 * descriptions); a product's unit is matched by id, never by the name in `uom_id`.
 */
const UOM_CONTEXT = { active_test: false, lang: 'en_US' } as const;

export const REF_NAMESPACE = 'ref';
const SNAPSHOT_KEY = 'snapshot';
/** Debits of posted consumption not yet in the pulled quants: { pulledAt, debits: PostedDebit[] }. */
const DEBITS_KEY = 'debits';
const PAGE = 2000;

export class ReferenceData {
  readonly #store: GatewayStore;
  readonly #odoo: OdooApi;
  readonly #mapping: OdooMappingConfig;
  readonly #log: Logger | undefined;
  #snap: ReferenceSnapshot = emptySnapshot();
  /** Lots found under another case than the analyzer's name (lotByName), by product id and that name; emptied with each pull. */
  #lotNames = new Map<string, number>();
  #products = new Map<string, ProductRef>();
  #productsById = new Map<number, ProductRef>();
  #partners = new Map<string, PartnerRef>();
  /** Debits applied to the current snapshot, by segment marker. */
  #debits = new Map<string, PostedDebit>();
  /** Per product: when refreshProductStock last re-read its quants (epoch ms). */
  #stockReadAt = new Map<number, number>();
  #refused: RefusedModel[] = [];
  /** Odoo's decimals of stock quantities (quantityDigits), read on first use after each pull. */
  #digits: { name: string; digits: number } | undefined;

  constructor(options: { store: GatewayStore; odoo: OdooApi; mapping: OdooMappingConfig; log?: Logger }) {
    this.#store = options.store;
    this.#odoo = options.odoo;
    this.#mapping = options.mapping;
    this.#log = options.log;
  }

  get snapshot(): ReferenceSnapshot {
    return this.#snap;
  }

  /** The Odoo the reference data reads through (the relay's shared call limit): the stock watch's look-ups use it too. */
  get odoo(): OdooApi {
    return this.#odoo;
  }

  /**
   * How many decimals Odoo keeps of a stock quantity (the `digits` of stock.move / stock.move.line
   * quantities: decimal.precision 'Product Unit of Measure' on 16-18, 'Product Unit' on 19; 2 by
   * default): a value written is rounded to it. Read once (again after each pull); a refused read
   * is taken as Odoo's default, 2.
   */
  async quantityDigits(): Promise<{ name: string; digits: number }> {
    if (this.#digits) return this.#digits;
    const name = this.#odoo.serverVersion >= 19 ? 'Product Unit' : 'Product Unit of Measure';
    let digits = 2;
    try {
      const rows = await searchRead(this.#odoo, 'decimal.precision', [['name', 'in', ['Product Unit of Measure', 'Product Unit']]], ['id', 'name', 'digits']);
      const row = rows.find((r) => r['name'] === name) ?? rows[0];
      const n = Number(row?.['digits']);
      if (Number.isInteger(n) && n >= 0) digits = n;
    } catch (err) {
      if (failureOf(err) !== 'permanent' || isLinkDown(err)) throw err;
      this.#log?.warn("Odoo's decimal precision of quantities could not be read: Odoo's default (2 digits) is assumed", { error: refusalReason(err) });
    }
    this.#digits = { name, digits };
    return this.#digits;
  }

  /**
   * A document of the gateway's own about this Odoo's records (the `ref` namespace, dropped when
   * the gateway is pointed at another Odoo, odoo-target.ts): the consumption carry
   * (rules/consumption-carry.ts), the buyer's manual quantities being ordered (`rfq-manual`,
   * rules/threshold-breached.ts). Not the snapshot nor the debits, which this class keeps.
   */
  async ownDoc<T>(key: string): Promise<T | undefined> {
    if (key === SNAPSHOT_KEY || key === DEBITS_KEY) throw new Error(`ref/${key} is kept by ReferenceData`);
    // Every write of these documents goes through this instance (the gateway's process holds the
    // store alone; pointing it at another Odoo drops them at start-up, before the relay): the last
    // value read or written is kept, and each reader gets a copy of its own. A consumption batch
    // reads the carry every time; read from LevelDB, it waited behind the batches being written.
    if (this.#ownDocs.has(key)) return structuredClone(this.#ownDocs.get(key)) as T | undefined;
    const value = await this.#store.getDoc<T>(REF_NAMESPACE, key);
    // A write made while this read was on its way is newer: keep it.
    if (!this.#ownDocs.has(key)) this.#ownDocs.set(key, value);
    return structuredClone(this.#ownDocs.get(key)) as T | undefined;
  }

  /** Write a document read with ownDoc (one LevelDB put: all of it or none). */
  async putOwnDoc(key: string, value: unknown): Promise<void> {
    if (key === SNAPSHOT_KEY || key === DEBITS_KEY) throw new Error(`ref/${key} is kept by ReferenceData`);
    const copy = structuredClone(value);
    try {
      await this.#store.putDoc(REF_NAMESPACE, key, value);
      this.#ownDocs.set(key, copy);
    } catch (err) {
      // Not known whether it was written: read it again next time.
      this.#ownDocs.delete(key);
      throw err;
    }
  }

  /** The gateway's own documents as last read or written (see ownDoc). */
  readonly #ownDocs = new Map<string, unknown>();

  /** Per document, the update in progress (updateOwnDoc runs one at a time per key). */
  readonly #docTurns = new Map<string, Promise<unknown>>();

  /**
   * Read a document of the gateway's own, change it and write it back, one update of that
   * document at a time: `change` gets what is stored now (undefined when none) and returns the
   * value to write (undefined: write nothing). The relay runs several batches of one rule at once
   * (more than one chunk of due events in a round); each used to read the whole document at its
   * start and write it back whole later, so one batch's write took back what another had written
   * meanwhile (a manual quantity being ordered, a consumption carry). Batches now apply only their
   * own changes to the stored document (test/unit/relay-own-doc-updates.test.ts).
   */
  async updateOwnDoc<T>(key: string, change: (stored: T | undefined) => T | undefined): Promise<void> {
    const before = this.#docTurns.get(key) ?? Promise.resolve();
    const turn = before.catch(() => undefined).then(async () => {
      const next = change(await this.ownDoc<T>(key));
      if (next !== undefined) await this.putOwnDoc(key, next);
    });
    this.#docTurns.set(key, turn);
    try {
      await turn;
    } finally {
      if (this.#docTurns.get(key) === turn) this.#docTurns.delete(key);
    }
  }

  /** Models the last refresh could not read (Odoo refused them: access or another error); empty when it read everything. */
  get refused(): readonly RefusedModel[] {
    return this.#refused;
  }

  /** Load the last pulled snapshot from the store (start-up, before Odoo answers). */
  async loadCached(): Promise<boolean> {
    const snap = await this.#store.getDoc<ReferenceSnapshot>(REF_NAMESPACE, SNAPSHOT_KEY);
    if (!snap) return false;
    this.#index(snap);
    // Debits recorded against this very pull (posted since, not in its quants): apply them again.
    const saved = await this.#store.getDoc<{ pulledAt: string; debits: PostedDebit[] }>(REF_NAMESPACE, DEBITS_KEY).catch(() => undefined);
    if (saved && saved.pulledAt === snap.pulledAt) for (const d of saved.debits) this.#applyDebit(d, true);
    return true;
  }

  /**
   * Pull everything from Odoo and persist it. Each model is pulled on its own: one Odoo refuses on
   * its merits (an AccessError: a bot without inventory rights may not read reorder points) keeps
   * its rows of the last pull (none if never pulled) and is listed in `refused`; the others are
   * pulled and used. On-hand quantities are the exception: refused, they are unknown (none, and no
   * reorder points, so the stock watch raises no breach from "nothing on hand").
   * Before, one refused model failed the whole pull, every time: no product, partner or lot was
   * ever refreshed. A failure of the link or of the credentials still fails the whole pull.
   */
  async refresh(): Promise<ReferenceSnapshot> {
    const odoo = this.#odoo;
    const prev = this.#snap;
    const refused: RefusedModel[] = [];
    const pageAll = async (model: string, domain: unknown[], fields: string[], context?: Record<string, unknown>): Promise<OdooRecord[] | undefined> => {
      if (odoo.fields.missing(model)) return [];
      const out: OdooRecord[] = [];
      try {
        for (let offset = 0; ; offset += PAGE) {
          const rows = await searchRead(odoo, model, domain, fields, { limit: PAGE, offset, order: 'id', ...(context ? { context } : {}) });
          out.push(...rows);
          if (rows.length < PAGE) return out;
        }
      } catch (err) {
        if (failureOf(err) !== 'permanent' || isLinkDown(err)) throw err;
        const label = MODEL_LABELS[model] ?? model;
        const effect =
          model === 'stock.quant'
            ? 'the on-hand quantities are unknown, so the stock watch raises no reorder breach'
            : model === 'stock.move'
              ? 'goods on their way are not counted: a reagent below its minimum may be ordered again before a confirmed order arrives'
              : `the ${label} stay as last pulled (none if never pulled)`;
        refused.push({ model, kind: isAccessError(err) ? 'access' : 'error', label, reason: refusalReason(err), effect });
        return undefined;
      }
    };
    // Side by side, and every one settles before the pull is judged (a rejected Promise.all left
    // the other models' pages running behind it).
    const settled = await Promise.allSettled([
      pageAll('product.product', [['default_code', '!=', false]], ['id', 'default_code', 'name', 'uom_id', 'product_tmpl_id', 'tracking']),
      pageAll('res.partner', [['ref', '!=', false]], ['id', 'ref', 'name']),
      pageAll('stock.location', [], ['id', 'name', 'complete_name', 'usage', 'location_id'], { active_test: false }),
      // D: the only internal type of a fresh single-warehouse database (WH/INT) is archived.
      pageAll('stock.picking.type', [], ['id', 'name', 'code', 'warehouse_id', 'default_location_src_id', 'default_location_dest_id'], { active_test: false }),
      pageAll('stock.warehouse.orderpoint', [], this.#orderpointFields()),
      pageAll('stock.lot', [], ['id', 'name', 'product_id', 'expiration_date']),
      // Archived units still convert (a product may keep one).
      pageAll('uom.uom', [], this.#uomFields(), UOM_CONTEXT),
    ]);
    const failed = settled.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
    // The link's or the credentials' failure first: it decides how the relay backs off.
    if (failed.length > 0) throw failed.find((e) => failureOf(e) === 'auth') ?? failed.find(isLinkDown) ?? failed[0];
    const [products, partners, locations, pickingTypes, orderpoints, lots, uoms] = settled.map((r) => (r.status === 'fulfilled' ? r.value : undefined));
    const locs = locations ? locations.map(toLocation) : prev.locations;
    const productRefs = products ? products.map(toProduct) : prev.products;
    const uomRefs = uoms ? uoms.map((u) => this.#toUom(u)) : (prev.uoms ?? []);
    const lab = findLocation(locs, this.#mapping.labLocation);
    // Receipts still to come, read BEFORE the quants: a receipt done between the two reads is then
    // counted twice (no breach until the next pull), never missed by both (a breach: a second order).
    const incoming = lab ? await this.#readIncoming(locs, lab, pageAll) : [];
    const quantsReadAt = new Date().toISOString();
    const quants = lab
      ? await pageAll('stock.quant', [['location_id', 'child_of', lab.id]], ['id', 'product_id', 'lot_id', 'location_id', 'quantity'])
      : [];
    const snap: ReferenceSnapshot = {
      pulledAt: new Date().toISOString(),
      products: productRefs,
      partners: partners ? partners.map((p) => ({ id: p.id, ref: String(p['ref']), name: String(p['name'] ?? '') })) : prev.partners,
      locations: locs,
      pickingTypes: pickingTypes
        ? pickingTypes.map((t) => ({
            id: t.id,
            name: String(t['name'] ?? ''),
            code: String(t['code'] ?? ''),
            ...opt('warehouseId', m2oId(t['warehouse_id'])),
            ...opt('srcId', m2oId(t['default_location_src_id'])),
            ...opt('destId', m2oId(t['default_location_dest_id'])),
          }))
        : prev.pickingTypes,
      // No on-hand quantities, no comparison: the watch must not read "nothing on hand" as a breach.
      orderpoints: !quants
        ? []
        : orderpoints
          ? orderpoints.map((o) => ({
              id: o.id,
              productId: m2oId(o['product_id']) ?? 0,
              ...opt('locationId', m2oId(o['location_id'])),
              min: Number(o['product_min_qty'] ?? 0),
              max: Number(o['product_max_qty'] ?? 0),
              ...multipleOf(o, productRefs, uomRefs),
            }))
          : prev.orderpoints,
      lots: lots ? lots.map(toLot) : prev.lots,
      quants: (quants ?? []).map((q) => ({ productId: m2oId(q['product_id']) ?? 0, ...opt('lotId', m2oId(q['lot_id'])), locationId: m2oId(q['location_id']) ?? 0, quantity: Number(q['quantity'] ?? 0) })),
      uoms: uomRefs,
      ...(quants ? { quantsReadAt } : {}),
      incoming,
    };
    this.#refused = refused;
    this.#digits = undefined;
    // Debits the new quants may lack: carry them over (notInRead). Quants not read: nothing to debit.
    const carried = quants ? [...this.#debits.values()].filter((d) => notInRead(d, Date.parse(quantsReadAt))) : [];
    this.#index(snap);
    for (const d of carried) this.#applyDebit(d, true);
    await this.#store.putDoc(REF_NAMESPACE, SNAPSHOT_KEY, snap);
    await this.#saveDebits();
    this.#log?.info('reference data pulled', { products: snap.products.length, lots: snap.lots.length, partners: snap.partners.length, quants: snap.quants.length, ...(refused.length ? { refused: refused.map((r) => r.model) } : {}) });
    return snap;
  }

  // ---- lookups used by the posting rules (throw a readable mapping error on a miss) -----------

  async product(code: string, what = 'test code'): Promise<ProductRef> {
    const hit = this.#products.get(code);
    if (hit) return hit;
    const rows = await searchRead(this.#odoo, 'product.product', [['default_code', '=', code]], ['id', 'default_code', 'name', 'uom_id', 'product_tmpl_id', 'tracking'], { limit: 1 });
    const row = rows[0];
    if (!row) throw mappingMissing(`${what} ${code} has no Odoo product with default_code ${code}`, { productCode: code });
    const p = toProduct(row);
    this.#products.set(code, p);
    this.#productsById.set(p.id, p);
    return p;
  }

  productById(id: number): ProductRef | undefined {
    return this.#productsById.get(id);
  }

  /**
   * Partner by `ref`. An empty ref is refused before any search: `[['ref', '=', '']]` is not "no
   * partner" in Odoo (only `= False` is IS NULL), and a match there would bill whichever partner
   * happens to carry an empty ref. `emptyReason` is the operator-readable dead-letter reason.
   * A missing ref (undefined) is refused the same way.
   */
  async partner(ref: string | undefined, what = 'ordering client', emptyReason?: string): Promise<PartnerRef> {
    // An event stored without the field (older HL7 intake dropped an empty ref) is the same case.
    if (ref === undefined || ref.trim() === '') throw mappingMissing(emptyReason ?? `the ${what} is empty: no Odoo partner can be chosen`, { partnerRef: ref });
    const hit = this.#partners.get(ref);
    if (hit) return hit;
    const rows = await searchRead(this.#odoo, 'res.partner', [['ref', '=', ref]], ['id', 'ref', 'name'], { limit: 1 });
    const row = rows[0];
    if (!row) throw mappingMissing(`${what} ${ref} has no Odoo partner with ref ${ref}`, { partnerRef: ref });
    const p = { id: row.id, ref, name: String(row['name'] ?? '') };
    this.#partners.set(ref, p);
    return p;
  }

  async location(name: string, key: string): Promise<LocationRef> {
    let loc = findLocation(this.#snap.locations, name);
    if (!loc) {
      const rows = await searchRead(this.#odoo, 'stock.location', ['|', ['complete_name', '=', name], ['name', '=', name]], ['id', 'name', 'complete_name', 'usage', 'location_id'], { limit: 1, context: { active_test: false } });
      if (rows[0]) {
        loc = toLocation(rows[0]);
        this.#snap.locations.push(loc);
      }
    }
    if (!loc) throw mappingMissing(`${key} '${name}' matches no Odoo stock location`, { location: name });
    return loc;
  }

  /** Picking type for consumption: the configured name, else an internal type (archived is fine). */
  async consumptionPickingType(labLocationId: number): Promise<PickingTypeRef> {
    let types = this.#snap.pickingTypes;
    if (types.length === 0) {
      const rows = await searchRead(this.#odoo, 'stock.picking.type', [], ['id', 'name', 'code', 'warehouse_id', 'default_location_src_id', 'default_location_dest_id'], { context: { active_test: false } });
      types = rows.map((t) => ({ id: t.id, name: String(t['name'] ?? ''), code: String(t['code'] ?? ''), ...opt('warehouseId', m2oId(t['warehouse_id'])), ...opt('srcId', m2oId(t['default_location_src_id'])) }));
      this.#snap.pickingTypes = types;
    }
    const wanted = this.#mapping.consumptionPickingType;
    if (wanted) {
      const t = types.find((x) => x.name === wanted || `${x.name}` === wanted.split(': ').pop());
      if (!t) throw mappingMissing(`odoo.mapping.consumptionPickingType '${wanted}' matches no Odoo operation type`);
      return t;
    }
    const internal = types.filter((t) => t.code === 'internal');
    const t = internal.find((x) => x.srcId === labLocationId) ?? internal[0];
    if (!t) throw mappingMissing('no internal operation type in Odoo: set odoo.mapping.consumptionPickingType');
    return t;
  }

  /**
   * The product's lot the analyzer named: the lot of that exact name, else the only one whose name
   * matches without regard to case (the analyzer reads L2207A from the barcode, the stock keeper
   * typed l2207a from the box; before, every run was a dead letter while Odoo held the lot). Two
   * lots differing only in case are not guessed between: the mapping error names them. A match in
   * another case is kept until the next reference pull (`#lotNames`): before, every later run of
   * that lot searched Odoo again.
   */
  async lotByName(productId: number, name: string, productCode: string): Promise<LotRef> {
    const exact = this.#snap.lots.find((l) => l.productId === productId && l.name === name);
    if (exact) return exact;
    const key = `${productId}\u0000${name}`;
    const known = this.#lotNames.get(key);
    const kept = known === undefined ? undefined : this.#snap.lots.find((l) => l.id === known);
    if (kept) return kept;
    const escaped = name.replace(/[\\%_]/g, (c) => `\\${c}`);
    const rows = await searchRead(this.#odoo, 'stock.lot', [['product_id', '=', productId], ['name', '=ilike', escaped]], ['id', 'name', 'product_id', 'expiration_date'], { order: 'id' });
    const lots = rows.map(toLot);
    const lot = lots.find((l) => l.name === name) ?? (lots.length === 1 ? lots[0] : undefined);
    if (!lot) {
      const others = lots.length > 1 ? `; lots ${lots.map((l) => l.name).join(', ')} differ from it only in case: rename the one the analyzer uses to ${name} in Odoo` : '';
      throw mappingMissing(`reagent lot ${name} of product ${productCode} is not known in Odoo${others}`, { productCode, lot: name });
    }
    if (!this.#snap.lots.some((l) => l.id === lot.id)) this.#snap.lots.push(lot);
    if (lot.name !== name) this.#lotNames.set(key, lot.id);
    return lot;
  }

  /**
   * Re-read one product's lots and lab quants from Odoo (a lot received since the last pull, or a
   * pull that failed): called before a lot choice is declared impossible.
   */
  async refreshProductStock(productId: number): Promise<void> {
    const lots = await searchRead(this.#odoo, 'stock.lot', [['product_id', '=', productId]], ['id', 'name', 'product_id', 'expiration_date']);
    this.#snap.lots = [...this.#snap.lots.filter((l) => l.productId !== productId), ...lots.map(toLot)];
    await this.refreshStock([productId]);
  }

  /**
   * Re-read the lab quants (the lab location and its children) of some products from Odoo, in one
   * `search_read`, before the consumption rule chooses their lots: a count, a scrap or a transfer
   * done in Odoo since the last pull (up to relay.referenceRefreshMs old) is seen before a lot is
   * chosen FEFO. Lots the quants name that the snapshot does not know (received since the pull)
   * are read too (one `read`). The gateway's own debits the new quants may lack (pickings done
   * after the read began) are applied again.
   */
  async refreshStock(productIds: number[]): Promise<void> {
    const ids = [...new Set(productIds)];
    if (ids.length === 0) return;
    const readAt = Date.now();
    const lab = findLocation(this.#snap.locations, this.#mapping.labLocation) ?? (await this.location(this.#mapping.labLocation, 'odoo.mapping.labLocation'));
    let quants: OdooRecord[];
    try {
      quants = await searchRead(this.#odoo, 'stock.quant', [['product_id', 'in', ids], ['location_id', 'child_of', lab.id]], ['id', 'product_id', 'lot_id', 'location_id', 'quantity'], { order: 'id' });
    } catch (err) {
      this.#rereadRefused('stock.quant', err);
      throw err;
    }
    const known = new Set(this.#snap.lots.map((l) => l.id));
    const newLots = [...new Set(quants.map((q) => m2oId(q['lot_id'])).filter((id): id is number => id !== undefined && !known.has(id)))];
    if (newLots.length > 0) {
      let lots: OdooRecord[];
      try {
        lots = await read(this.#odoo, 'stock.lot', newLots, ['id', 'name', 'product_id', 'expiration_date']);
      } catch (err) {
        // A record rule refusing a lot the lab's quants name (a lot of another company).
        this.#rereadRefused('stock.lot', err);
        throw err;
      }
      this.#snap.lots = [...this.#snap.lots, ...lots.map(toLot)];
    }
    if (this.#refused.some((r) => r.reread)) this.#refused = this.#refused.filter((r) => !r.reread);
    const refreshed = new Set(ids);
    this.#snap.quants = [
      ...this.#snap.quants.filter((q) => !refreshed.has(q.productId)),
      ...quants.map((q) => ({ productId: m2oId(q['product_id']) ?? 0, ...opt('lotId', m2oId(q['lot_id'])), locationId: m2oId(q['location_id']) ?? 0, quantity: Number(q['quantity'] ?? 0) })),
    ];
    for (const id of ids) this.#stockReadAt.set(id, readAt);
    // These products' debits of pickings done after the read began are not in the new quants.
    for (const d of this.#debits.values()) {
      if (!notInRead(d, readAt)) continue;
      for (const l of d.lines) if (refreshed.has(l.productId)) this.consume(l.productId, l.lotId, l.qty, l.locationId);
    }
  }

  /**
   * Odoo refused a re-read of the lab's stock on its merits (refusedOnItsMerits: an AccessError, the
   * gateway's user having lost read access on stock.quant or a record rule refusing a lot; another
   * Odoo error): listed in `refused` as the pull lists a model it may not read, so that the relay
   * raises ODOO_REFERENCE_REFUSED (or _FAILED) once, while the callers go on with the last pull's
   * rows (the consumption rule, the stock watch). Before, only a warning in the log at each check.
   */
  #rereadRefused(model: string, err: unknown): void {
    if (!refusedOnItsMerits(err)) return;
    if (this.#refused.some((r) => r.model === model)) return;
    const effect =
      model === 'stock.quant'
        ? 'the consumption rule and the stock watch count the on-hand quantities of the last pull, less what the gateway posted since, until Odoo lets the gateway read them again (a count, a scrap or a transfer done in Odoo meanwhile is not seen)'
        : 'the lab stock is not read again: the consumption rule and the stock watch count the on-hand quantities of the last pull, less what the gateway posted since';
    this.#refused = [...this.#refused, { model, kind: isAccessError(err) ? 'access' : 'error', label: MODEL_LABELS[model] ?? model, reason: refusalReason(err), effect, reread: true }];
    this.#log?.warn(`Odoo refused the gateway's read of ${model}: the last pull's figures are used`, { error: refusalReason(err) });
  }

  /**
   * Re-read the goods on their way of some products (receipts of confirmed purchase orders not done
   * yet, as the pull reads them, one `search_read`): the stock watch does it, then refreshStock,
   * before it raises a breach. Read at the pull only, an order confirmed since was not counted
   * while the quants, re-read before every consumption batch, were current: a second order
   * (stock-watch.ts). Odoo refusing the read on its merits keeps the last pull's (as the pull
   * counts nothing then); a link, credentials or other failure is thrown.
   */
  async refreshIncoming(productIds: number[]): Promise<void> {
    const ids = [...new Set(productIds)];
    const lab = findLocation(this.#snap.locations, this.#mapping.labLocation);
    if (ids.length === 0 || !lab) return;
    try {
      const rows = await this.#readIncoming(this.#snap.locations, lab, (model, domain, fields) => searchRead(this.#odoo, model, [...domain, ['product_id', 'in', ids]], fields, { order: 'id' }));
      const refreshed = new Set(ids);
      this.#snap.incoming = [...(this.#snap.incoming ?? []).filter((m) => !refreshed.has(m.productId)), ...rows];
    } catch (err) {
      if (failureOf(err) !== 'permanent' || isLinkDown(err)) throw err;
      this.#log?.warn('could not read the goods on their way again: those of the last pull are counted', { error: err instanceof Error ? err.message : String(err) });
    }
  }

  lotsOf(productId: number): LotRef[] {
    return this.#snap.lots.filter((l) => l.productId === productId);
  }

  /** On-hand per lot at the lab location and its children together, from the last pull. */
  onHandByLot(productId: number): Map<number, number> {
    const m = new Map<number, number>();
    for (const q of this.#snap.quants) if (q.productId === productId && q.lotId !== undefined) m.set(q.lotId, (m.get(q.lotId) ?? 0) + q.quantity);
    return m;
  }

  /**
   * On-hand of a product per quant (lot and location: the lab location or one of its children),
   * from the last pull or refresh with the gateway's debits since, in the order Odoo listed them
   * (quant id). Quants of one lot and location are summed.
   */
  quantsOf(productId: number): QuantRef[] {
    const out = new Map<string, QuantRef>();
    for (const q of this.#snap.quants) {
      if (q.productId !== productId) continue;
      const key = `${q.lotId ?? ''}@${q.locationId}`;
      const held = out.get(key);
      if (held) held.quantity += q.quantity;
      else out.set(key, { ...q });
    }
    return [...out.values()];
  }

  onHand(productId: number): number {
    return this.#snap.quants.filter((q) => q.productId === productId).reduce((s, q) => s + q.quantity, 0);
  }

  /**
   * Goods on their way to the lab's stock, from the last pull: receipts of confirmed purchase
   * orders not done yet (the rest of a partial receipt included), in the product's unit.
   */
  incoming(productId: number): number {
    return (this.#snap.incoming ?? []).filter((m) => m.productId === productId).reduce((s, m) => s + m.quantity, 0);
  }

  /**
   * Debit the local copy after a consumption was posted, until the next pull: the quant of that
   * lot at that location (a debit recorded without a location: the lot's first quant).
   */
  consume(productId: number, lotId: number | undefined, quantity: number, locationId?: number): void {
    const q = this.#snap.quants.find((x) => x.productId === productId && x.lotId === lotId && (locationId === undefined || x.locationId === locationId));
    if (q) q.quantity -= quantity;
    else this.#snap.quants.push({ productId, ...opt('lotId', lotId), locationId: locationId ?? 0, quantity: -quantity });
  }

  /**
   * Debit the local stock for posted consumption segments, once per segment marker: a marker
   * already debited on this snapshot is skipped (the same segment found again after a lost answer,
   * a delivery the store could not record, a restart), and so are lines whose picking was done
   * before their quants were read (the pull already has them). Recorded in the store with the
   * snapshot's pulledAt, so that a restart on the cached snapshot applies them again.
   */
  async debitPosted(debits: PostedDebit[]): Promise<void> {
    let changed = false;
    const debitedAt = new Date().toISOString();
    for (const d of debits) {
      if (this.#debits.has(d.marker)) continue;
      this.#applyDebit({ ...d, debitedAt }, false);
      changed = true;
    }
    if (changed) await this.#saveDebits();
  }

  /** Markers debited on the current snapshot (tests, diagnostics). */
  debitedMarkers(): string[] {
    return [...this.#debits.keys()];
  }

  /**
   * A unit of measure by name (a consumption profile's unit): exact name first, then the only
   * case-insensitive match; a miss is re-checked in Odoo once before it is a mapping error.
   */
  async uom(name: string, what = 'unit'): Promise<UomRef> {
    const hit = findUom(this.#snap.uoms ?? [], name);
    if (hit) return hit;
    const rows = await searchRead(this.#odoo, 'uom.uom', [['name', '=ilike', name]], this.#uomFields(), { context: UOM_CONTEXT });
    const found = findUom(rows.map((r) => this.#toUom(r)), name);
    if (!found) throw mappingMissing(`${what} '${name}' matches no Odoo unit of measure`, { uom: name });
    this.#snap.uoms = [...(this.#snap.uoms ?? []), found];
    return found;
  }

  async uomById(id: number): Promise<UomRef | undefined> {
    const hit = this.#snap.uoms?.find((u) => u.id === id);
    if (hit) return hit;
    const rows = await searchRead(this.#odoo, 'uom.uom', [['id', '=', id]], this.#uomFields(), { context: UOM_CONTEXT });
    if (!rows[0]) return undefined;
    const u = this.#toUom(rows[0]);
    this.#snap.uoms = [...(this.#snap.uoms ?? []), u];
    return u;
  }

  /**
   * `quantity` in `unit` (a profile's unit name) expressed in the product's unit, Odoo's way
   * (qty / from.factor * to.factor). An unknown unit, or one of another category than the
   * product's, is a mapping error naming the unit. No unit, or the product's own: as is.
   */
  async toProductUnit(product: ProductRef, quantity: number, unit: string | undefined): Promise<number> {
    if (!unit || unit === product.uomName || product.uomId === undefined) return quantity;
    const from = await this.uom(unit, `the unit of ${product.code}'s consumption,`);
    if (from.id === product.uomId) return quantity;
    const to = await this.uomById(product.uomId);
    if (!to) throw mappingMissing(`the unit of measure of product ${product.code} (id ${product.uomId}) cannot be read in Odoo`, { productCode: product.code, uom: unit });
    return convertUom(product, quantity, from, to);
  }

  /**
   * The lab location (odoo.mapping.labLocation) and its ancestors, nearest first, from the pulled
   * locations; empty when the lab location is not known.
   */
  labLocationChain(): number[] {
    const lab = findLocation(this.#snap.locations, this.#mapping.labLocation);
    if (!lab) return [];
    const byId = new Map(this.#snap.locations.map((l) => [l.id, l]));
    const out = [lab.id];
    for (let at = lab.parentId; at !== undefined && !out.includes(at); at = byId.get(at)?.parentId) out.push(at);
    return out;
  }

  productByCode(code: string): ProductRef | undefined {
    return this.#products.get(code);
  }

  /**
   * Receipt moves of confirmed purchase orders not done yet (`purchase_line_id` set, state neither
   * draft, cancel nor done: a partial receipt's rest is its backorder's move, a rest the buyer
   * declined is cancelled) into the lab's stock: the lab location, its children, and the internal
   * locations above it up to the warehouse's stock (WH/Stock, where a receipt lands by default),
   * with theirs. What Odoo's own reorder rule adds to the stock on hand (`qty_forecast`, from
   * `virtual_available`); read in the product's unit (`product_qty`). None when stock.move has no
   * `purchase_line_id` (no purchase app); `undefined` from pageAll (refused): none, listed in
   * `refused`.
   */
  async #readIncoming(locs: LocationRef[], lab: LocationRef, pageAll: (model: string, domain: unknown[], fields: string[]) => Promise<OdooRecord[] | undefined>): Promise<IncomingRef[]> {
    const f = this.#odoo.fields;
    if (f.missing('stock.move') || (f.known('stock.move') && !f.has('stock.move', 'purchase_line_id'))) return [];
    const byId = new Map(locs.map((l) => [l.id, l]));
    let root = lab;
    const seen = new Set([lab.id]);
    for (let up = byId.get(lab.parentId ?? -1); up && up.usage === 'internal' && !seen.has(up.id); up = byId.get(up.parentId ?? -1)) {
      seen.add(up.id);
      root = up;
    }
    const qty = f.pick('stock.move', 'product_qty', 'product_uom_qty') ?? 'product_qty';
    const rows = await pageAll('stock.move', [['purchase_line_id', '!=', false], ['state', 'not in', ['draft', 'cancel', 'done']], ['location_dest_id', 'child_of', root.id]], ['id', 'product_id', 'location_dest_id', qty]);
    return (rows ?? []).map((m) => ({ productId: m2oId(m['product_id']) ?? 0, locationId: m2oId(m['location_dest_id']) ?? 0, quantity: Number(m[qty] ?? 0) }));
  }

  /**
   * Reorder rule fields to read: the Multiple is `qty_multiple` up to 18 and `replenishment_uom_id`
   * on 19 (19 has no `qty_multiple`: asked for, the whole read is refused, "Invalid field"). From
   * the server's fields (fields_get at connect), else by its version.
   */
  #orderpointFields(): string[] {
    const base = ['id', 'product_id', 'location_id', 'product_min_qty', 'product_max_qty'];
    const f = this.#odoo.fields;
    if (f.known('stock.warehouse.orderpoint')) return f.existing('stock.warehouse.orderpoint', [...base, 'qty_multiple', 'replenishment_uom_id']);
    return [...base, this.#odoo.serverVersion >= 19 ? 'replenishment_uom_id' : 'qty_multiple'];
  }

  /** uom.uom fields to read: ≤18 `category_id` + `factor` (a ratio), 19 `parent_path` + `factor` (absolute). */
  #uomFields(): string[] {
    const f = this.#odoo.fields;
    if (!f.known('uom.uom')) return ['id', 'name', 'factor', 'category_id'];
    return f.existing('uom.uom', ['id', 'name', 'factor', 'category_id', 'relative_uom_id', 'parent_path', 'rounding']);
  }

  #toUom(row: OdooRecord): UomRef {
    const raw = Number(row['factor'] ?? 1) || 1;
    const rounding = Number(row['rounding']);
    const precision = Number.isFinite(rounding) && rounding > 0 ? { rounding } : {};
    if (row['category_id'] === undefined && typeof row['parent_path'] === 'string') {
      // 19: `factor` is the absolute quantity of the root unit; the root is the family.
      const root = row['parent_path'].split('/')[0] || String(row.id);
      return { id: row.id, name: String(row['name'] ?? ''), factor: 1 / raw, category: `r${root}`, ...precision };
    }
    const cat = row['category_id'];
    return {
      id: row.id,
      name: String(row['name'] ?? ''),
      factor: raw,
      category: `c${m2oId(cat) ?? 0}`,
      ...(Array.isArray(cat) && typeof cat[1] === 'string' ? { categoryName: cat[1] } : {}),
      ...precision,
    };
  }

  /** Apply a debit's lines (skipping those the quants already hold) and record its marker. */
  #applyDebit(d: PostedDebit, fromRecord: boolean): void {
    this.#debits.set(d.marker, d);
    const done = d.doneAt === undefined ? undefined : odooTime(d.doneAt);
    const pulled = this.#snap.quantsReadAt ? Date.parse(this.#snap.quantsReadAt) : undefined;
    for (const l of d.lines) {
      const readAt = fromRecord ? pulled : Math.max(pulled ?? -Infinity, this.#stockReadAt.get(l.productId) ?? -Infinity);
      // date_done has whole seconds: the picking was done within [done, done + 1 s). Only a read
      // that began after that second certainly saw it; within it, debit (the next pull corrects).
      if (done !== undefined && readAt !== undefined && Number.isFinite(readAt) && done + 1000 <= readAt) continue;
      this.consume(l.productId, l.lotId, l.qty, l.locationId);
    }
  }

  async #saveDebits(): Promise<void> {
    try {
      await this.#store.putDoc(REF_NAMESPACE, DEBITS_KEY, { pulledAt: this.#snap.pulledAt, debits: [...this.#debits.values()] });
    } catch (err) {
      this.#log?.warn('could not record the local stock debits', { error: err instanceof Error ? err.message : String(err) });
    }
  }

  #index(snap: ReferenceSnapshot): void {
    this.#snap = snap;
    this.#lotNames = new Map();
    this.#debits = new Map();
    this.#stockReadAt = new Map();
    this.#products = new Map(snap.products.map((p) => [p.code, p]));
    this.#productsById = new Map(snap.products.map((p) => [p.id, p]));
    this.#partners = new Map(snap.partners.map((p) => [p.ref, p]));
  }
}

/**
 * A reorder rule's Multiple in the product's unit. 19 (`replenishment_uom_id` read): a unit or
 * packaging other than the product's own unit rounds the quantity up to whole ones of it
 * (`_get_multiple_rounded_qty`: converted into it, rounded up, converted back), so a box of 10
 * is a multiple of 10 units; unset, the product's unit, or a unit that cannot be converted: 0,
 * not rounded ("If it is not set, it is not rounded"). Before, 19 rules were read without their
 * Multiple and took the ≤18 default of 1: 4.5 L ordered as 5 L, 55 tips by the box as 55.
 * ≤18: `qty_multiple` (qtyMultiple).
 */
function multipleOf(row: OdooRecord, products: ProductRef[], uoms: UomRef[]): Pick<OrderpointRef, 'multiple' | 'multipleUomId'> {
  if (!('replenishment_uom_id' in row)) return { multiple: qtyMultiple(row['qty_multiple']) };
  const unitId = m2oId(row['replenishment_uom_id']);
  if (unitId === undefined) return { multiple: 0 };
  const productUom = products.find((p) => p.id === m2oId(row['product_id']))?.uomId;
  const unit = uoms.find((u) => u.id === unitId);
  const own = uoms.find((u) => u.id === productUom);
  if (!unit || !own || unit.id === own.id) return { multiple: 0, multipleUomId: unitId };
  const multiple = convertQuantity(1, unit, own);
  return { multiple: multiple !== undefined && multiple > 0 ? Math.round(multiple * 1e9) / 1e9 : 0, multipleUomId: unitId };
}

/**
 * A reorder rule's qty_multiple: 0 is "order the exact quantity" (Odoo rounds only when it is > 0,
 * `_compute_qty_to_order`), not 1 — a multiple of 1 rounded 4.5 L of diluent up to 5 L. Unread
 * (not a number) is Odoo's default, 1.
 */
function qtyMultiple(value: unknown): number {
  const n = typeof value === 'number' ? value : Number.NaN;
  return Number.isFinite(n) && n >= 0 ? n : 1;
}

/**
 * Odoo answered a read with a refusal on its merits (an AccessError, a record rule, another Odoo
 * exception), which it gives the same at every attempt; not the link down (a timeout, a refused
 * connection, a proxy's 5xx), the credentials, or an error of the gateway's own (a mapping).
 */
export function refusedOnItsMerits(err: unknown): boolean {
  return failureOf(err) === 'permanent' && !isLinkDown(err) && err instanceof GatewayError && typeof err.details?.['odooName'] === 'string';
}

/** Odoo refused the read because the user may not read the model (ir.model.access or a record rule). */
function isAccessError(err: unknown): boolean {
  return err instanceof GatewayError && err.details?.['odooName'] === 'odoo.exceptions.AccessError';
}

/** An AccessError's message names the model and the groups allowed; any other refusal its own text. */
function refusalReason(err: unknown): string {
  const name = err instanceof GatewayError ? err.details?.['odooName'] : undefined;
  const message = err instanceof GatewayError && typeof err.details?.['odooMessage'] === 'string' ? err.details['odooMessage'] : err instanceof Error ? err.message : String(err);
  return typeof name === 'string' ? `${name}: ${cleanOdooMessage(name, message)}` : message;
}

function emptySnapshot(): ReferenceSnapshot {
  return { pulledAt: '', products: [], lots: [], quants: [], partners: [], locations: [], pickingTypes: [], orderpoints: [] };
}

function opt<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}

function toProduct(row: OdooRecord): ProductRef {
  return {
    id: row.id,
    code: String(row['default_code']),
    name: String(row['name'] ?? ''),
    ...opt('uomId', m2oId(row['uom_id'])),
    ...(Array.isArray(row['uom_id']) && typeof row['uom_id'][1] === 'string' ? { uomName: row['uom_id'][1] } : {}),
    ...opt('templateId', m2oId(row['product_tmpl_id'])),
    tracking: typeof row['tracking'] === 'string' ? row['tracking'] : 'none',
  };
}

function toLot(row: OdooRecord): LotRef {
  const exp = row['expiration_date'];
  return { id: row.id, name: String(row['name']), productId: m2oId(row['product_id']) ?? 0, ...(typeof exp === 'string' && exp ? { expiresAt: exp } : {}) };
}

function toLocation(row: OdooRecord): LocationRef {
  return { id: row.id, name: String(row['name'] ?? ''), completeName: String(row['complete_name'] ?? row['name'] ?? ''), usage: String(row['usage'] ?? ''), ...opt('parentId', m2oId(row['location_id'])) };
}

/**
 * `quantity` in `unit` expressed in the product's unit from pulled units only, without asking Odoo
 * (the stock watch): undefined when the unit is not among them or cannot be converted (such an
 * event is dead-lettered when posted).
 */
export function quantityInProductUnit(product: ProductRef, quantity: number, unit: string | undefined, uoms: UomRef[]): number | undefined {
  if (!unit || unit === product.uomName || product.uomId === undefined) return quantity;
  const from = findUom(uoms, unit);
  const to = uoms.find((u) => u.id === product.uomId);
  return from && to ? convertQuantity(quantity, from, to) : undefined;
}

/**
 * Whether quants read from `readAt` (epoch ms, gateway clock) may lack a debited picking. The
 * gateway debited it once Odoo had shown the picking done: a read that began then or after (the
 * same millisecond included: it was sent after that answer) saw it. A read that began before may
 * have missed it, unless Odoo's date_done is a whole second or more before the read (date_done
 * has whole seconds; the clocks are assumed in step, as NTP keeps them).
 */
function notInRead(d: PostedDebit, readAt: number): boolean {
  if (d.debitedAt === undefined || Date.parse(d.debitedAt) <= readAt) return false;
  return d.doneAt === undefined || odooTime(d.doneAt) + 1000 > readAt;
}

/**
 * `quantity` in unit `from` expressed in unit `to`, Odoo's way (qty / from.factor * to.factor);
 * undefined between units of different categories (Odoo cannot convert them either).
 */
export function convertQuantity(quantity: number, from: UomRef, to: UomRef): number | undefined {
  if (from.id === to.id) return quantity;
  return from.category === to.category ? (quantity / from.factor) * to.factor : undefined;
}

/**
 * `quantity` rounded at a unit's precision (`rounding`) as Odoo's float_round does: `UP` away
 * from zero, `HALF-UP` to the nearest, halves away from zero (a relative epsilon absorbs the
 * binary noise of a division: 15 / 10 is 1.5 exactly, 1.4999999999999998 is taken as 1.5).
 * Without a known precision, to a millionth.
 */
export function roundToUnit(quantity: number, unit: UomRef | undefined, method: 'UP' | 'HALF-UP'): number {
  const step = unit?.rounding ?? 1e-6;
  const n = Math.abs(quantity) / step;
  const eps = n * 2 ** -50;
  const steps = method === 'UP' ? Math.ceil(n - eps) : Math.round(n + eps);
  return Math.sign(quantity) * (Math.round(steps * step * 1e6) / 1e6);
}

/**
 * `quantity` rounded to `digits` decimals as Odoo's Float field does on write (float_round,
 * half-up, a relative epsilon for binary noise: 0.125 is 0.13), to a millionth.
 */
export function roundToDigits(quantity: number, digits: number): number {
  const scale = 10 ** digits;
  const n = Math.abs(quantity) * scale;
  return Math.sign(quantity) * (Math.round(Math.round(n + n * 2 ** -50) / scale * 1e6) / 1e6) || 0;
}

function findUom(uoms: UomRef[], name: string): UomRef | undefined {
  const exact = uoms.find((u) => u.name === name);
  if (exact) return exact;
  const folded = uoms.filter((u) => u.name.toLowerCase() === name.toLowerCase());
  return folded.length === 1 ? folded[0] : undefined;
}

function convertUom(product: ProductRef, quantity: number, from: UomRef, to: UomRef): number {
  const converted = convertQuantity(quantity, from, to);
  if (converted === undefined) {
    const cat = (u: UomRef): string => (u.categoryName ? ` (${u.categoryName})` : '');
    throw mappingMissing(`the consumption of ${product.code} is in '${from.name}'${cat(from)} but ${product.code} is stocked in '${to.name}'${cat(to)}: Odoo cannot convert between them`, {
      productCode: product.code,
      uom: from.name,
    });
  }
  return converted;
}

function findLocation(locs: LocationRef[], name: string): LocationRef | undefined {
  return locs.find((l) => l.completeName === name) ?? locs.find((l) => l.name === name);
}

/** Odoo datetimes are 'YYYY-MM-DD HH:MM:SS' in UTC. */
export function odooTime(value: string): number {
  return Date.parse(value.includes('T') ? value : `${value.replace(' ', 'T')}Z`);
}
