import type { OdooMappingConfig } from '../config/types.ts';
import type { Logger } from '../log.ts';
import type { GatewayStore } from '../store/types.ts';
import type { OdooApi } from './odoo/odoo-client.ts';
import { m2oId, searchRead, type OdooRecord } from './odoo/odoo-calls.ts';
import { mappingMissing } from './odoo/odoo-error.ts';

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
  productId: number;
  locationId?: number;
  min: number;
  max: number;
  multiple: number;
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
}

export const REF_NAMESPACE = 'ref';
const SNAPSHOT_KEY = 'snapshot';
const PAGE = 2000;

export class ReferenceData {
  readonly #store: GatewayStore;
  readonly #odoo: OdooApi;
  readonly #mapping: OdooMappingConfig;
  readonly #log: Logger | undefined;
  #snap: ReferenceSnapshot = emptySnapshot();
  #products = new Map<string, ProductRef>();
  #productsById = new Map<number, ProductRef>();
  #partners = new Map<string, PartnerRef>();

  constructor(options: { store: GatewayStore; odoo: OdooApi; mapping: OdooMappingConfig; log?: Logger }) {
    this.#store = options.store;
    this.#odoo = options.odoo;
    this.#mapping = options.mapping;
    this.#log = options.log;
  }

  get snapshot(): ReferenceSnapshot {
    return this.#snap;
  }

  /** Load the last pulled snapshot from the store (start-up, before Odoo answers). */
  async loadCached(): Promise<boolean> {
    const snap = await this.#store.getDoc<ReferenceSnapshot>(REF_NAMESPACE, SNAPSHOT_KEY);
    if (!snap) return false;
    this.#index(snap);
    return true;
  }

  /** Pull everything from Odoo and persist it. */
  async refresh(): Promise<ReferenceSnapshot> {
    const odoo = this.#odoo;
    const pageAll = async (model: string, domain: unknown[], fields: string[], context?: Record<string, unknown>): Promise<OdooRecord[]> => {
      if (odoo.fields.missing(model)) return [];
      const out: OdooRecord[] = [];
      for (let offset = 0; ; offset += PAGE) {
        const rows = await searchRead(odoo, model, domain, fields, { limit: PAGE, offset, order: 'id', ...(context ? { context } : {}) });
        out.push(...rows);
        if (rows.length < PAGE) return out;
      }
    };
    const [products, partners, locations, pickingTypes, orderpoints, lots] = await Promise.all([
      pageAll('product.product', [['default_code', '!=', false]], ['id', 'default_code', 'name', 'uom_id', 'product_tmpl_id', 'tracking']),
      pageAll('res.partner', [['ref', '!=', false]], ['id', 'ref', 'name']),
      pageAll('stock.location', [], ['id', 'name', 'complete_name', 'usage'], { active_test: false }),
      // D: the only internal type of a fresh single-warehouse database (WH/INT) is archived.
      pageAll('stock.picking.type', [], ['id', 'name', 'code', 'warehouse_id', 'default_location_src_id', 'default_location_dest_id'], { active_test: false }),
      pageAll('stock.warehouse.orderpoint', [], ['id', 'product_id', 'location_id', 'product_min_qty', 'product_max_qty', 'qty_multiple']),
      pageAll('stock.lot', [], ['id', 'name', 'product_id', 'expiration_date']),
    ]);
    const locs = locations.map(toLocation);
    const lab = findLocation(locs, this.#mapping.labLocation);
    const quants = lab
      ? await pageAll('stock.quant', [['location_id', 'child_of', lab.id]], ['id', 'product_id', 'lot_id', 'location_id', 'quantity'])
      : [];
    const snap: ReferenceSnapshot = {
      pulledAt: new Date().toISOString(),
      products: products.map(toProduct),
      partners: partners.map((p) => ({ id: p.id, ref: String(p['ref']), name: String(p['name'] ?? '') })),
      locations: locs,
      pickingTypes: pickingTypes.map((t) => ({
        id: t.id,
        name: String(t['name'] ?? ''),
        code: String(t['code'] ?? ''),
        ...opt('warehouseId', m2oId(t['warehouse_id'])),
        ...opt('srcId', m2oId(t['default_location_src_id'])),
        ...opt('destId', m2oId(t['default_location_dest_id'])),
      })),
      orderpoints: orderpoints.map((o) => ({
        productId: m2oId(o['product_id']) ?? 0,
        ...opt('locationId', m2oId(o['location_id'])),
        min: Number(o['product_min_qty'] ?? 0),
        max: Number(o['product_max_qty'] ?? 0),
        multiple: Number(o['qty_multiple'] ?? 1) || 1,
      })),
      lots: lots.map(toLot),
      quants: quants.map((q) => ({ productId: m2oId(q['product_id']) ?? 0, ...opt('lotId', m2oId(q['lot_id'])), locationId: m2oId(q['location_id']) ?? 0, quantity: Number(q['quantity'] ?? 0) })),
    };
    this.#index(snap);
    await this.#store.putDoc(REF_NAMESPACE, SNAPSHOT_KEY, snap);
    this.#log?.info('reference data pulled', { products: snap.products.length, lots: snap.lots.length, partners: snap.partners.length, quants: snap.quants.length });
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
   */
  async partner(ref: string, what = 'ordering client', emptyReason?: string): Promise<PartnerRef> {
    if (ref.trim() === '') throw mappingMissing(emptyReason ?? `the ${what} is empty: no Odoo partner can be chosen`, { partnerRef: ref });
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
      const rows = await searchRead(this.#odoo, 'stock.location', ['|', ['complete_name', '=', name], ['name', '=', name]], ['id', 'name', 'complete_name', 'usage'], { limit: 1, context: { active_test: false } });
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

  /** Lot by name for a product (analyzer-reported lot). */
  async lotByName(productId: number, name: string, productCode: string): Promise<LotRef> {
    let lot = this.#snap.lots.find((l) => l.productId === productId && l.name === name);
    if (!lot) {
      const rows = await searchRead(this.#odoo, 'stock.lot', [['product_id', '=', productId], ['name', '=', name]], ['id', 'name', 'product_id', 'expiration_date'], { limit: 1 });
      if (rows[0]) {
        lot = toLot(rows[0]);
        this.#snap.lots.push(lot);
      }
    }
    if (!lot) throw mappingMissing(`reagent lot ${name} of product ${productCode} is not known in Odoo`, { productCode, lot: name });
    return lot;
  }

  /**
   * Re-read one product's lots and lab quants from Odoo (a lot received since the last pull, or a
   * pull that failed): called before a lot choice is declared impossible.
   */
  async refreshProductStock(productId: number): Promise<void> {
    const lots = await searchRead(this.#odoo, 'stock.lot', [['product_id', '=', productId]], ['id', 'name', 'product_id', 'expiration_date']);
    const lab = findLocation(this.#snap.locations, this.#mapping.labLocation) ?? (await this.location(this.#mapping.labLocation, 'odoo.mapping.labLocation'));
    const quants = await searchRead(this.#odoo, 'stock.quant', [['product_id', '=', productId], ['location_id', 'child_of', lab.id]], ['id', 'product_id', 'lot_id', 'location_id', 'quantity']);
    this.#snap.lots = [...this.#snap.lots.filter((l) => l.productId !== productId), ...lots.map(toLot)];
    this.#snap.quants = [
      ...this.#snap.quants.filter((q) => q.productId !== productId),
      ...quants.map((q) => ({ productId, ...opt('lotId', m2oId(q['lot_id'])), locationId: m2oId(q['location_id']) ?? 0, quantity: Number(q['quantity'] ?? 0) })),
    ];
  }

  lotsOf(productId: number): LotRef[] {
    return this.#snap.lots.filter((l) => l.productId === productId);
  }

  /** On-hand per lot at the lab location, from the last pull. */
  onHandByLot(productId: number): Map<number, number> {
    const m = new Map<number, number>();
    for (const q of this.#snap.quants) if (q.productId === productId && q.lotId !== undefined) m.set(q.lotId, (m.get(q.lotId) ?? 0) + q.quantity);
    return m;
  }

  onHand(productId: number): number {
    return this.#snap.quants.filter((q) => q.productId === productId).reduce((s, q) => s + q.quantity, 0);
  }

  /** Debit the local copy after a consumption was posted, until the next pull. */
  consume(productId: number, lotId: number | undefined, quantity: number): void {
    const q = this.#snap.quants.find((x) => x.productId === productId && x.lotId === lotId);
    if (q) q.quantity -= quantity;
    else this.#snap.quants.push({ productId, ...opt('lotId', lotId), locationId: 0, quantity: -quantity });
  }

  #index(snap: ReferenceSnapshot): void {
    this.#snap = snap;
    this.#products = new Map(snap.products.map((p) => [p.code, p]));
    this.#productsById = new Map(snap.products.map((p) => [p.id, p]));
    this.#partners = new Map(snap.partners.map((p) => [p.ref, p]));
  }
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
    ...opt('templateId', m2oId(row['product_tmpl_id'])),
    tracking: typeof row['tracking'] === 'string' ? row['tracking'] : 'none',
  };
}

function toLot(row: OdooRecord): LotRef {
  const exp = row['expiration_date'];
  return { id: row.id, name: String(row['name']), productId: m2oId(row['product_id']) ?? 0, ...(typeof exp === 'string' && exp ? { expiresAt: exp } : {}) };
}

function toLocation(row: OdooRecord): LocationRef {
  return { id: row.id, name: String(row['name'] ?? ''), completeName: String(row['complete_name'] ?? row['name'] ?? ''), usage: String(row['usage'] ?? '') };
}

function findLocation(locs: LocationRef[], name: string): LocationRef | undefined {
  return locs.find((l) => l.completeName === name) ?? locs.find((l) => l.name === name);
}

/** Odoo datetimes are 'YYYY-MM-DD HH:MM:SS' in UTC. */
export function odooTime(value: string): number {
  return Date.parse(value.includes('T') ? value : `${value.replace(' ', 'T')}Z`);
}
