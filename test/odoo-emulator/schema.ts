/**
 * The models and fields the emulator knows, with the version drift of odoo-api.md §B (table
 * "Field-name drift"): a field listed with `versions` exists only there, so using it elsewhere is
 * the real `ValueError("Invalid field 'x' on model 'y'")`.
 *
 * Only fields the gateway plausibly reads or writes are declared; that is a deliberate subset of
 * Odoo's (see README "Simplifications").
 */
import type { ComputeEnv, FieldSpec, ModelSpec, OdooVersion, Row } from './types.ts';

const V16 = [16] as const;
const V17UP = [17, 18, 19] as const;
const UPTO17 = [16, 17] as const;
const V18UP = [18, 19] as const;
const UPTO18 = [16, 17, 18] as const;
const V19 = [19] as const;

const char = (string: string, o: Partial<FieldSpec> = {}): FieldSpec => ({ type: 'char', string, ...o });
const text = (string: string, o: Partial<FieldSpec> = {}): FieldSpec => ({ type: 'text', string, ...o });
const html = (string: string, o: Partial<FieldSpec> = {}): FieldSpec => ({ type: 'html', string, ...o });
const int = (string: string, o: Partial<FieldSpec> = {}): FieldSpec => ({ type: 'integer', string, ...o });
const float = (string: string, o: Partial<FieldSpec> = {}): FieldSpec => ({ type: 'float', string, default: 0, ...o });
const money = (string: string, o: Partial<FieldSpec> = {}): FieldSpec => ({ type: 'monetary', string, default: 0, ...o });
const bool = (string: string, o: Partial<FieldSpec> = {}): FieldSpec => ({ type: 'boolean', string, default: false, ...o });
const date = (string: string, o: Partial<FieldSpec> = {}): FieldSpec => ({ type: 'date', string, ...o });
const datetime = (string: string, o: Partial<FieldSpec> = {}): FieldSpec => ({ type: 'datetime', string, ...o });
const sel = (string: string, selection: ReadonlyArray<readonly [string, string]>, o: Partial<FieldSpec> = {}): FieldSpec =>
  ({ type: 'selection', string, selection, ...o });
const m2o = (relation: string, string: string, o: Partial<FieldSpec> = {}): FieldSpec => ({ type: 'many2one', relation, string, ...o });
const o2m = (relation: string, inverse: string, string: string, o: Partial<FieldSpec> = {}): FieldSpec =>
  ({ type: 'one2many', relation, inverse, string, ...o });
const m2m = (relation: string, string: string, o: Partial<FieldSpec> = {}): FieldSpec => ({ type: 'many2many', relation, string, default: [], ...o });

const company = (): FieldSpec => m2o('res.company', 'Company', { default: 1 });
const nowStr = (env: ComputeEnv): string => formatDatetime(env.now());
const active = (): FieldSpec => bool('Active', { default: true });

export function formatDatetime(d: Date): string {
  return d.toISOString().slice(0, 19).replace('T', ' ');
}
export function formatDate(d: Date): string {
  return d.toISOString().slice(0, 10);
}

function sum(rows: Iterable<Row>, f: (r: Row) => number): number {
  let s = 0;
  for (const r of rows) s += f(r);
  return s;
}
function* filterRows(table: Map<number, Row>, pred: (r: Row) => boolean): Iterable<Row> {
  for (const r of table.values()) if (pred(r)) yield r;
}

/** Internal locations under `locationId` (inclusive), following parent links. */
export function childLocations(env: ComputeEnv, locationId: number): Set<number> {
  const locs = env.table('stock.location');
  const out = new Set<number>([locationId]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const l of locs.values()) {
      if (!out.has(l.id) && typeof l.location_id === 'number' && out.has(l.location_id)) { out.add(l.id); grew = true; }
    }
  }
  return out;
}

/** A 19 unit and its reference units up to the root (relative_uom_id), nearest first. */
function uomChain(env: ComputeEnv, r: Row): Row[] {
  const out: Row[] = [r];
  for (let u = r; typeof u.relative_uom_id === 'number' && out.length < 32; ) {
    const next = env.table('uom.uom').get(u.relative_uom_id);
    if (!next) break;
    out.push(next);
    u = next;
  }
  return out;
}

function isInternal(env: ComputeEnv, locationId: unknown): boolean {
  const l = typeof locationId === 'number' ? env.table('stock.location').get(locationId) : undefined;
  return l !== undefined && (l.usage === 'internal' || l.usage === 'transit');
}

function qtyAvailable(env: ComputeEnv, productId: number): number {
  const ctxLoc = env.context.location;
  const within = typeof ctxLoc === 'number' ? childLocations(env, ctxLoc) : undefined;
  return sum(env.rowsBy('stock.quant', 'product_id', productId).filter((q) => (within ? within.has(q.location_id as number) : isInternal(env, q.location_id))), (q) => q.quantity as number);
}

function incomingOutgoing(env: ComputeEnv, productId: number): number {
  let delta = 0;
  for (const m of env.rowsBy('stock.move', 'product_id', productId)) {
    if (['draft', 'done', 'cancel'].includes(m.state as string)) continue;
    const inSrc = isInternal(env, m.location_id);
    const inDst = isInternal(env, m.location_dest_id);
    if (inSrc && !inDst) delta -= m.product_uom_qty as number;
    if (!inSrc && inDst) delta += m.product_uom_qty as number;
  }
  return delta;
}

function productOf(env: ComputeEnv, productId: unknown): Row | undefined {
  return typeof productId === 'number' ? env.table('product.product').get(productId) : undefined;
}
export function templateOf(env: ComputeEnv, product: Row | undefined): Row | undefined {
  return product && typeof product.product_tmpl_id === 'number' ? env.table('product.template').get(product.product_tmpl_id) : undefined;
}

/** Storable (quant-tracked) product: `detailed_type='product'` ≤17, `is_storable` 18+ (odoo-api.md §B). */
export function isStorable(env: ComputeEnv, productId: unknown): boolean {
  const t = templateOf(env, productOf(env, productId));
  if (!t) return false;
  return env.version >= 18 ? t.is_storable === true : t.detailed_type === 'product';
}

function moveLineQty(env: ComputeEnv, ml: Row): number {
  return (env.version === 16 ? ml.qty_done : ml.quantity) as number;
}

function lineSubtotal(r: Row): number {
  const disc = typeof r.discount === 'number' ? r.discount : 0;
  return Math.round((r.price_unit as number) * ((r.product_uom_qty ?? r.product_qty ?? r.quantity) as number) * (1 - disc / 100) * 100) / 100;
}

function taxesOf(env: ComputeEnv, r: Row, field: string): number {
  const ids = (r[field] as number[] | undefined) ?? [];
  const taxes = env.table('account.tax');
  return sum(ids.map((t) => taxes.get(t)).filter((t): t is Row => !!t), (t) => t.amount as number);
}

function docAmounts(env: ComputeEnv, lineModel: string, parentField: string, parentId: number, taxField: string): { untaxed: number; tax: number } {
  let untaxed = 0;
  let tax = 0;
  for (const l of env.table(lineModel).values()) {
    if (l[parentField] !== parentId || (l.display_type && l.display_type !== 'product')) continue;
    const sub = lineSubtotal(l);
    untaxed += sub;
    tax += Math.round(sub * taxesOf(env, l, taxField)) / 100;
  }
  return { untaxed: Math.round(untaxed * 100) / 100, tax: Math.round(tax * 100) / 100 };
}

const saleUom = (): Record<string, FieldSpec> => ({
  product_uom: m2o('uom.uom', 'Unit of Measure', { versions: UPTO18 }),
  product_uom_id: m2o('uom.uom', 'Unit', { versions: V19 }),
});

function productDisplay(env: ComputeEnv, productId: unknown): string {
  const p = productOf(env, productId);
  if (!p) return '';
  const t = templateOf(env, p);
  return p.default_code ? `[${p.default_code}] ${t?.name ?? ''}` : String(t?.name ?? '');
}

/** The precision of stock quantities (`digits=` of their Float fields): 'Product Unit' on 19. */
export const uomPrecisionName = (version: OdooVersion): string => (version >= 19 ? 'Product Unit' : 'Product Unit of Measure');
/** `digits` of a stock quantity (the ORM takes the version's name, uomPrecisionName). */
const UOM_DIGITS = { digits: 'Product Unit of Measure' } as const;

const MODELS: ModelSpec[] = [
  {
    // Decimal Accuracy (Settings > Technical): the digits of each named precision.
    name: 'decimal.precision', description: 'Decimal Precision', botRights: 'read',
    fields: { name: char('Usage', { required: true }), digits: int('Digits', { default: 2 }) },
  },
  {
    name: 'res.company', description: 'Companies', botRights: 'read',
    fields: { name: char('Company Name', { required: true }), partner_id: m2o('res.partner', 'Partner'), currency_id: m2o('res.currency', 'Currency', { default: 1 }) },
  },
  {
    name: 'res.currency', description: 'Currency', botRights: 'read',
    fields: { name: char('Currency', { required: true }), symbol: char('Symbol'), active: active() },
  },
  {
    name: 'res.partner', description: 'Contact', botRights: 'read', chatter: true, order: 'complete_name ASC, id DESC',
    displayName: (env, r) => {
      const parent = typeof r.parent_id === 'number' ? env.table('res.partner').get(r.parent_id) : undefined;
      return parent ? `${String(parent.name)}, ${String(r.name)}` : String(r.name ?? '');
    },
    fields: {
      name: char('Name'),
      complete_name: char('Complete Name', { compute: (env, r) => env.value('res.partner', r, 'display_name') }),
      ref: char('Reference'),
      is_company: bool('Is a Company'),
      parent_id: m2o('res.partner', 'Related Company'),
      email: char('Email'), phone: char('Phone'), street: char('Street'), city: char('City'), vat: char('Tax ID'),
      customer_rank: int('Customer Rank', { default: 0 }), supplier_rank: int('Supplier Rank', { default: 0 }),
      company_id: m2o('res.company', 'Company'),
      // The company's partner's language is the language of a JSON-2 request without context.lang (translations.ts).
      lang: char('Language'),
      comment: html('Notes'),
      active: active(),
    },
  },
  {
    name: 'res.users', description: 'User', botRights: 'read',
    displayName: (env, r) => String(env.table('res.partner').get(r.partner_id as number)?.name ?? r.login),
    fields: {
      login: char('Login', { required: true }),
      name: char('Name', { compute: (env, r) => env.table('res.partner').get(r.partner_id as number)?.name ?? false }),
      partner_id: m2o('res.partner', 'Related Partner', { required: true }),
      company_id: company(),
      lang: char('Language', { default: 'en_US' }), tz: char('Timezone', { default: 'Europe/Brussels' }),
      active: active(),
    },
  },
  {
    // ≤18: units grouped in categories; conversion only within one (uom/models/uom_uom.py).
    name: 'uom.category', description: 'Product UoM Categories', botRights: 'read', versions: UPTO18,
    fields: { name: char('Unit of Measure Category', { required: true }) },
  },
  {
    name: 'uom.uom', description: 'Product Unit of Measure', botRights: 'read',
    fields: {
      // `translate=True` in 16-19 (uom/models/uom_uom.py).
      name: char('Unit of Measure', { required: true, translate: true }),
      // ≤18: `factor` "Ratio": 1 * (reference unit) = ratio * (this unit) (mL 1000 when L is the
      // reference); conversion qty / from.factor * to.factor, within one category.
      category_id: m2o('uom.category', 'Category', { required: true, versions: UPTO18 }),
      factor: float('Ratio', { default: 1, versions: UPTO18 }),
      factor_inv: float('Bigger Ratio', { versions: UPTO18, compute: (_env, r) => ((r.factor as number) ? 1 / (r.factor as number) : 0) }),
      uom_type: sel('Type', [['bigger', 'Bigger than the reference Unit of Measure'], ['reference', 'Reference Unit of Measure for this category'], ['smaller', 'Smaller than the reference Unit of Measure']], { required: true, default: 'reference', versions: UPTO18 }),
      // 19: no categories; a unit "contains" relative_factor of its reference unit and `factor` is
      // the absolute quantity (kg 1000 when g is the root): conversion qty * from.factor / to.factor,
      // between units of one root (parent_path).
      relative_factor: float('Contains', { default: 1, required: true, versions: V19 }),
      relative_uom_id: m2o('uom.uom', 'Reference Unit', { versions: V19 }),
      ...({
        factor_19: float('Absolute Quantity', { versions: V19, compute: (env, r) => uomChain(env, r).reduce((f, u) => f * ((u.relative_factor as number) || 1), 1) }),
      }),
      parent_path: char('Parent Path', { versions: V19, compute: (env, r) => `${uomChain(env, r).reverse().map((u) => u.id).join('/')}/` }),
      rounding: float('Rounding Precision', { default: 0.01 }), active: active(),
    },
  },
  {
    name: 'product.category', description: 'Product Category', botRights: 'read', recName: 'complete_name',
    fields: {
      name: char('Name', { required: true }),
      parent_id: m2o('product.category', 'Parent Category'),
      complete_name: char('Complete Name', {
        compute: (env, r) => {
          const parent = typeof r.parent_id === 'number' ? env.table('product.category').get(r.parent_id) : undefined;
          return parent ? `${String(env.value('product.category', parent, 'complete_name'))} / ${String(r.name)}` : r.name;
        },
      }),
      removal_strategy_id: m2o('product.removal', 'Force Removal Strategy'),
      // stock: the category's routes (a product's procurement follows them after its own).
      route_ids: m2m('stock.route', 'Routes'),
    },
  },
  {
    name: 'product.removal', description: 'Removal Strategy', botRights: 'read',
    fields: { name: char('Name', { required: true }), method: char('Method', { required: true }) },
  },
  {
    name: 'product.template', description: 'Product', botRights: 'read', chatter: true, order: 'priority desc, name, id',
    displayName: (env, r) => {
      const v = [...env.table('product.product').values()].find((p) => p.product_tmpl_id === r.id);
      return v?.default_code ? `[${String(v.default_code)}] ${String(r.name)}` : String(r.name);
    },
    fields: productTemplateFields(),
  },
  {
    name: 'product.product', description: 'Product Variant', botRights: 'read', chatter: true, order: 'priority desc, default_code, name, id',
    inherits: { model: 'product.template', field: 'product_tmpl_id' },
    displayName: (env, r) => productDisplay(env, r.id),
    fields: {
      product_tmpl_id: m2o('product.template', 'Product Template', { required: true }),
      default_code: char('Internal Reference'),
      barcode: char('Barcode'),
      active: active(),
      qty_available: float('Quantity On Hand', { compute: (env, r) => qtyAvailable(env, r.id) }),
      virtual_available: float('Forecasted Quantity', { compute: (env, r) => qtyAvailable(env, r.id) + incomingOutgoing(env, r.id) }),
      ...Object.fromEntries(Object.entries(productTemplateFields()).filter(([k]) => !['default_code', 'barcode', 'active', 'qty_available', 'virtual_available', 'product_variant_ids'].includes(k))
        .map(([k, f]) => [k, { ...f, delegated: true }])),
    },
  },
  {
    name: 'product.supplierinfo', description: 'Supplier Pricelist', botRights: 'read', order: 'sequence, min_qty DESC, price, id',
    displayName: (env, r) => String(env.table('res.partner').get(r.partner_id as number)?.name ?? ''),
    fields: {
      partner_id: m2o('res.partner', 'Vendor', { required: true }),
      product_tmpl_id: m2o('product.template', 'Product Template'),
      product_id: m2o('product.product', 'Product Variant'),
      product_code: char('Vendor Product Code'), product_name: char('Vendor Product Name'),
      price: float('Price'), min_qty: float('Quantity'), delay: int('Delivery Lead Time', { default: 1 }), sequence: int('Sequence', { default: 1 }),
      // The price's validity (16-19): Odoo's _select_seller skips a line outside it.
      date_start: date('Start Date'), date_end: date('End Date'),
      // The vendor's unit, in which `min_qty` and `price` are given: ≤18 the template's purchase
      // unit (related `product_tmpl_id.uom_po_id`, read-only); 19 has no uom_po_id and keeps the
      // purchase unit on the line itself (`product_uom_id`, the product's unit by default).
      product_uom: m2o('uom.uom', 'Unit of Measure', {
        versions: UPTO18, readonly: true,
        compute: (env, r) => (typeof r.product_tmpl_id === 'number' ? env.table('product.template').get(r.product_tmpl_id)?.uom_po_id : undefined) ?? false,
      }),
      product_uom_id: m2o('uom.uom', 'Unit', {
        versions: V19,
        default: (env: ComputeEnv, vals: Record<string, unknown>) => (typeof vals.product_tmpl_id === 'number' ? env.table('product.template').get(vals.product_tmpl_id)?.uom_id : undefined) ?? false,
      }),
    },
  },
  {
    name: 'stock.warehouse', description: 'Warehouse', botRights: 'read',
    fields: {
      name: char('Warehouse', { required: true }), code: char('Short Name', { required: true }),
      lot_stock_id: m2o('stock.location', 'Location Stock'), view_location_id: m2o('stock.location', 'View Location'),
      in_type_id: m2o('stock.picking.type', 'In Type'), out_type_id: m2o('stock.picking.type', 'Out Type'), int_type_id: m2o('stock.picking.type', 'Internal Type'),
      company_id: company(), active: active(),
    },
  },
  {
    name: 'stock.location', description: 'Inventory Locations', botRights: 'read', recName: 'complete_name', order: 'complete_name, id',
    fields: {
      name: char('Location Name', { required: true }),
      complete_name: char('Full Location Name', {
        compute: (env, r) => {
          const parent = typeof r.location_id === 'number' ? env.table('stock.location').get(r.location_id) : undefined;
          // `stock.location._compute_complete_name`: views are named alone, others under their parent.
          return parent && r.usage !== 'view' ? `${String(env.value('stock.location', parent, 'complete_name'))}/${String(r.name)}` : r.name;
        },
      }),
      location_id: m2o('stock.location', 'Parent Location'),
      usage: sel('Location Type', [['supplier', 'Vendor'], ['view', 'Virtual'], ['internal', 'Internal'], ['customer', 'Customer'], ['inventory', 'Inventory Loss'], ['production', 'Production'], ['transit', 'Transit']], { required: true, default: 'internal' }),
      scrap_location: bool('Is a Scrap Location?', { versions: UPTO18 }),
      barcode: char('Barcode'),
      warehouse_id: m2o('stock.warehouse', 'Warehouse', {
        compute: (env, r) => {
          for (const wh of env.table('stock.warehouse').values()) {
            if (typeof wh.view_location_id === 'number' && childLocations(env, wh.view_location_id).has(r.id)) return wh.id;
          }
          return false;
        },
      }),
      company_id: company(), active: active(),
    },
  },
  {
    name: 'stock.route', description: 'Inventory Routes', botRights: 'read',
    fields: { name: char('Route', { required: true }), active: active(), rule_ids: o2m('stock.rule', 'route_id', 'Rules') },
  },
  {
    // A route's rules: what a reorder rule set to this route makes when it runs (an RFQ for
    // 'buy', purchase_stock; a transfer from another location for 'pull'; 'manufacture', mrp).
    name: 'stock.rule', description: 'Stock Rule', botRights: 'read', order: 'sequence, id',
    fields: {
      name: char('Name', { required: true }),
      action: sel('Action', [['pull', 'Pull From'], ['push', 'Push To'], ['pull_push', 'Pull & Push'], ['buy', 'Buy'], ['manufacture', 'Manufacture']], { required: true, default: 'pull' }),
      route_id: m2o('stock.route', 'Route', { required: true }),
      location_dest_id: m2o('stock.location', 'Destination Location', { required: true }),
      location_src_id: m2o('stock.location', 'Source Location'),
      picking_type_id: m2o('stock.picking.type', 'Operation Type', { required: true }),
      sequence: int('Sequence', { default: 20 }), active: active(),
    },
  },
  {
    name: 'stock.picking.type', description: 'Picking Type', botRights: 'read', order: 'sequence, id',
    displayName: (env, r) => {
      const wh = typeof r.warehouse_id === 'number' ? env.table('stock.warehouse').get(r.warehouse_id) : undefined;
      return wh ? `${String(wh.name)}: ${String(r.name)}` : String(r.name);
    },
    fields: {
      name: char('Operation Type', { required: true }),
      code: sel('Type of Operation', [['incoming', 'Receipt'], ['outgoing', 'Delivery'], ['internal', 'Internal Transfer']], { required: true }),
      sequence_code: char('Sequence Prefix', { required: true }),
      sequence: int('Sequence', { default: 10 }),
      warehouse_id: m2o('stock.warehouse', 'Warehouse'),
      default_location_src_id: m2o('stock.location', 'Default Source Location'),
      default_location_dest_id: m2o('stock.location', 'Default Destination Location'),
      reservation_method: sel('Reservation Method', [['at_confirm', 'At Confirmation'], ['manual', 'Manually'], ['by_date', 'Before scheduled date']], { default: 'at_confirm' }),
      create_backorder: sel('Create Backorder', [['ask', 'Ask'], ['always', 'Always'], ['never', 'Never']], { default: 'ask' }),
      use_create_lots: bool('Create New Lots/Serial Numbers'), use_existing_lots: bool('Use Existing Lots/Serial Numbers', { default: true }),
      company_id: company(), active: active(),
    },
  },
  {
    name: 'stock.lot', description: 'Lot/Serial', botRights: 'full', order: 'name, id',
    fields: {
      name: char('Lot/Serial Number', { required: true }),
      product_id: m2o('product.product', 'Product', { required: true }),
      company_id: m2o('res.company', 'Company', { required: true, versions: UPTO17 }),
      ...({ company_id_18: m2o('res.company', 'Company', { versions: V18UP }) }),
      ref: char('Internal Reference'), note: html('Description'),
      expiration_date: datetime('Expiration Date'), use_date: datetime('Best before Date'),
      removal_date: datetime('Removal Date'), alert_date: datetime('Alert Date'),
      product_expiry_alert: bool('Expiration Alert', {
        compute: (env, r) => typeof r.expiration_date === 'string' && r.expiration_date <= formatDatetime(env.now()),
      }),
      product_qty: float('Quantity', {
        compute: (env, r) => sum(env.rowsBy('stock.quant', 'lot_id', r.id).filter((q) => isInternal(env, q.location_id)), (q) => q.quantity as number),
      }),
      quant_ids: o2m('stock.quant', 'lot_id', 'Quants'),
      active: active(),
    },
  },
  {
    name: 'stock.quant', description: 'Quants', botRights: 'read',
    displayName: (env, r) => {
      const loc = env.table('stock.location').get(r.location_id as number);
      return `${String(loc ? env.value('stock.location', loc, 'complete_name') : '')}${typeof r.lot_id === 'number' ? ` - ${String(env.table('stock.lot').get(r.lot_id)?.name)}` : ''}`;
    },
    fields: {
      product_id: m2o('product.product', 'Product', { required: true }),
      location_id: m2o('stock.location', 'Location', { required: true }),
      lot_id: m2o('stock.lot', 'Lot/Serial Number'),
      quantity: float('Quantity', UOM_DIGITS), reserved_quantity: float('Reserved Quantity', UOM_DIGITS),
      inventory_quantity: float('Counted Quantity'), inventory_quantity_set: bool('Inventory Quantity Set'),
      available_quantity: float('Available Quantity', { compute: (_env, r) => (r.quantity as number) - (r.reserved_quantity as number) }),
      in_date: datetime('Incoming Date', { default: (env: ComputeEnv) => nowStr(env) }),
      expiration_date: datetime('Expiration Date', { compute: (env, r) => (typeof r.lot_id === 'number' ? env.table('stock.lot').get(r.lot_id)?.expiration_date ?? false : false) }),
      company_id: company(),
    },
  },
  {
    name: 'stock.picking', description: 'Transfer', botRights: 'full', chatter: true, order: 'priority desc, scheduled_date asc, id desc',
    fields: {
      name: char('Reference', { default: '/' }),
      origin: char('Source Document'),
      note: html('Notes'),
      state: sel('Status', [['draft', 'Draft'], ['waiting', 'Waiting Another Operation'], ['confirmed', 'Waiting'], ['assigned', 'Ready'], ['done', 'Done'], ['cancel', 'Cancelled']], {
        readonly: true, compute: (env, r) => pickingState(env, r),
      }),
      picking_type_id: m2o('stock.picking.type', 'Operation Type', { required: true }),
      picking_type_code: sel('Type of Operation', [['incoming', 'Receipt'], ['outgoing', 'Delivery'], ['internal', 'Internal Transfer']], {
        compute: (env, r) => env.table('stock.picking.type').get(r.picking_type_id as number)?.code ?? false,
      }),
      location_id: m2o('stock.location', 'Source Location', { required: true }),
      location_dest_id: m2o('stock.location', 'Destination Location', { required: true }),
      partner_id: m2o('res.partner', 'Contact'),
      move_ids: o2m('stock.move', 'picking_id', 'Stock Moves'),
      move_ids_without_package: o2m('stock.move', 'picking_id', 'Stock Moves', { versions: UPTO18 }),
      move_line_ids: o2m('stock.move.line', 'picking_id', 'Operations'),
      move_type: sel('Shipping Policy', [['direct', 'As soon as possible'], ['one', 'When all products are ready']], { default: 'direct' }),
      scheduled_date: datetime('Scheduled Date', { default: (env: ComputeEnv) => nowStr(env) }),
      date_deadline: datetime('Deadline'),
      date_done: datetime('Date of Transfer', { readonly: true }),
      backorder_id: m2o('stock.picking', 'Back Order of'),
      backorder_ids: o2m('stock.picking', 'backorder_id', 'Back Orders'),
      purchase_id: m2o('purchase.order', 'Purchase Orders'),
      sale_id: m2o('sale.order', 'Sales Order'),
      priority: sel('Priority', [['0', 'Normal'], ['1', 'Urgent']], { default: '0' }),
      user_id: m2o('res.users', 'Responsible'),
      company_id: company(),
    },
  },
  {
    name: 'stock.move', description: 'Stock Move', botRights: 'full', order: 'sequence, id',
    displayName: (env, r) => {
      const picking = typeof r.picking_id === 'number' ? env.table('stock.picking').get(r.picking_id) : undefined;
      return picking ? `${String(picking.name)} - ${productDisplay(env, r.product_id)}` : productDisplay(env, r.product_id);
    },
    fields: {
      name: char('Description', { required: true, versions: UPTO18 }),
      description_picking: text('Description of Picking'),
      reference: char('Reference', { compute: (env, r) => (typeof r.picking_id === 'number' ? env.table('stock.picking').get(r.picking_id)?.name ?? false : false) }),
      origin: char('Source Document'),
      sequence: int('Sequence', { default: 10 }),
      product_id: m2o('product.product', 'Product', { required: true }),
      product_uom_qty: float('Demand', { required: true, ...UOM_DIGITS }),
      product_qty: float('Real Quantity', { compute: (_env, r) => r.product_uom_qty }),
      product_uom: m2o('uom.uom', 'UoM', { required: true }),
      quantity: float('Quantity', { versions: V17UP, compute: (env, r) => moveQuantity(env, r) }),
      quantity_done: float('Quantity Done', { versions: V16, compute: (env, r) => moveQuantity(env, r) }),
      reserved_availability: float('Quantity Reserved', { versions: V16, compute: (env, r) => moveReserved(env, r) }),
      picked: bool('Picked', { versions: V17UP }),
      state: sel('Status', [['draft', 'New'], ['waiting', 'Waiting Another Move'], ['confirmed', 'Waiting Availability'], ['partially_available', 'Partially Available'], ['assigned', 'Available'], ['done', 'Done'], ['cancel', 'Cancelled']], { default: 'draft', readonly: true }),
      location_id: m2o('stock.location', 'Source Location', { required: true }),
      location_dest_id: m2o('stock.location', 'Destination Location', { required: true }),
      picking_id: m2o('stock.picking', 'Transfer'),
      picking_type_id: m2o('stock.picking.type', 'Operation Type'),
      move_line_ids: o2m('stock.move.line', 'move_id', 'Move Lines'),
      lot_ids: m2m('stock.lot', 'Serial Numbers', {
        compute: (env, r) => [...new Set(env.rowsBy('stock.move.line', 'move_id', r.id).filter((l) => typeof l.lot_id === 'number').map((l) => l.lot_id as number))],
      }),
      has_tracking: sel('Product with Tracking', [['serial', 'By Unique Serial Number'], ['lot', 'By Lots'], ['none', 'By Quantity']], {
        compute: (env, r) => templateOf(env, productOf(env, r.product_id))?.tracking ?? 'none',
      }),
      date: datetime('Date Scheduled', { default: (env: ComputeEnv) => nowStr(env) }),
      purchase_line_id: m2o('purchase.order.line', 'Purchase Order Line'),
      sale_line_id: m2o('sale.order.line', 'Sale Line'),
      scrapped: bool('Scrapped', { versions: UPTO18 }),
      scrap_id: m2o('stock.scrap', 'Scrap'),
      company_id: company(),
    },
  },
  {
    name: 'stock.move.line', description: 'Product Moves (Stock Move Line)', botRights: 'full', order: 'result_package_id desc, id',
    displayName: (env, r) => productDisplay(env, r.product_id),
    fields: {
      move_id: m2o('stock.move', 'Stock Operation'),
      picking_id: m2o('stock.picking', 'Transfer'),
      product_id: m2o('product.product', 'Product'),
      product_uom_id: m2o('uom.uom', 'Unit of Measure', { required: true }),
      location_id: m2o('stock.location', 'From', { required: true }),
      location_dest_id: m2o('stock.location', 'To', { required: true }),
      lot_id: m2o('stock.lot', 'Lot/Serial Number'),
      lot_name: char('Lot/Serial Number Name'),
      quantity: float('Quantity', { versions: V17UP, ...UOM_DIGITS }),
      picked: bool('Picked', { versions: V17UP }),
      qty_done: float('Done', { versions: V16, ...UOM_DIGITS }),
      reserved_uom_qty: float('Reserved', { versions: V16 }),
      reserved_qty: float('Real Reserved Quantity', { versions: V16, compute: (_env, r) => r.reserved_uom_qty }),
      state: sel('Status', [['draft', 'New'], ['waiting', 'Waiting Another Move'], ['confirmed', 'Waiting Availability'], ['partially_available', 'Partially Available'], ['assigned', 'Available'], ['done', 'Done'], ['cancel', 'Cancelled']], {
        compute: (env, r) => (typeof r.move_id === 'number' ? env.table('stock.move').get(r.move_id)?.state ?? 'draft' : 'draft'),
      }),
      reference: char('Reference', { compute: (env, r) => (typeof r.picking_id === 'number' ? env.table('stock.picking').get(r.picking_id)?.name ?? false : false) }),
      date: datetime('Date', { default: (env: ComputeEnv) => nowStr(env) }),
      result_package_id: m2o('stock.quant.package', 'Destination Package'),
      company_id: company(),
    },
  },
  {
    name: 'stock.scrap', description: 'Scrap', botRights: 'full', chatter: true, order: 'id desc',
    fields: {
      name: char('Reference', { default: 'New' }),
      origin: char('Source Document'),
      product_id: m2o('product.product', 'Product', { required: true }),
      product_uom_id: m2o('uom.uom', 'Unit of Measure', { required: true }),
      lot_id: m2o('stock.lot', 'Lot/Serial'),
      scrap_qty: float('Quantity', { required: true, default: 1 }),
      location_id: m2o('stock.location', 'Source Location', { required: true }),
      scrap_location_id: m2o('stock.location', 'Scrap Location', { required: true }),
      move_ids: o2m('stock.move', 'scrap_id', 'Scrap Move'),
      picking_id: m2o('stock.picking', 'Picking'),
      state: sel('Status', [['draft', 'Draft'], ['done', 'Done']], { default: 'draft', readonly: true }),
      date_done: datetime('Date'),
      company_id: company(),
    },
  },
  {
    name: 'stock.quant.package', description: 'Packages', botRights: 'read',
    fields: { name: char('Package Reference', { required: true }) },
  },
  {
    name: 'stock.warehouse.orderpoint', description: 'Minimum Inventory Rule', botRights: 'full', order: 'location_id,company_id,id',
    fields: {
      name: char('Name', { default: '/' }),
      product_id: m2o('product.product', 'Product', { required: true }),
      location_id: m2o('stock.location', 'Location', { required: true }),
      warehouse_id: m2o('stock.warehouse', 'Warehouse', { required: true }),
      product_min_qty: float('Min Quantity'), product_max_qty: float('Max Quantity'),
      // ≤18: "Multiple Quantity", a quantity in the product's unit (0: not rounded). 19 has no
      // qty_multiple (reading it is "Invalid field"): its "Multiple" is a unit or packaging,
      // replenishment_uom_id, the quantity rounded up to whole ones of it (unset: not rounded).
      qty_multiple: float('Multiple Quantity', { default: 1, versions: UPTO18 }),
      replenishment_uom_id: m2o('uom.uom', 'Multiple', { versions: V19 }),
      trigger: sel('Trigger', [['auto', 'Auto'], ['manual', 'Manual']], { default: 'auto' }),
      route_id: m2o('stock.route', 'Route'),
      // 19: the route the rule replenishes by: its Route, else the one computed (effectiveRoute19).
      effective_route_id: m2o('stock.route', 'Effective Route', { versions: V19, compute: (env, r) => effectiveRoute19(env, r) }),
      // purchase_stock (16-19): the reorder rule's own vendor line ("Vendor" column of the
      // replenishment report); Odoo's _run_buy takes it before _select_seller.
      supplier_id: m2o('product.supplierinfo', 'Product Supplier'),
      qty_forecast: float('Forecast', { compute: (env, r) => orderpointForecast(env, r) }),
      // 18+: the buyer's "To Order" (qty_to_order_manual) wins over the computed one when set (_compute_qty_to_order).
      qty_to_order: float('To Order', { compute: (env, r) => (env.version >= 18 && (r.qty_to_order_manual as number) > 0 ? (r.qty_to_order_manual as number) : orderpointToOrder(env, r)) }),
      qty_to_order_manual: float('To Order (Manual)', { versions: V18UP }),
      active: active(), company_id: company(),
    },
  },
  {
    name: 'purchase.order', description: 'Purchase Order', botRights: 'full', chatter: true, order: 'priority desc, id desc',
    fields: {
      name: char('Order Reference', { default: 'New' }),
      origin: char('Source Document'), partner_ref: char('Vendor Reference'),
      partner_id: m2o('res.partner', 'Vendor', { required: true }),
      state: sel('Status', [['draft', 'RFQ'], ['sent', 'RFQ Sent'], ['to approve', 'To Approve'], ['purchase', 'Purchase Order'], ['done', 'Locked'], ['cancel', 'Cancelled']], { default: 'draft', readonly: true }),
      order_line: o2m('purchase.order.line', 'order_id', 'Order Lines'),
      date_order: datetime('Order Deadline', { default: (env: ComputeEnv) => nowStr(env) }),
      date_approve: datetime('Confirmation Date', { readonly: true }),
      date_planned: datetime('Expected Arrival'),
      amount_untaxed: money('Untaxed Amount', { compute: (env, r) => docAmounts(env, 'purchase.order.line', 'order_id', r.id, env.version >= 19 ? 'tax_ids' : 'taxes_id').untaxed }),
      amount_tax: money('Taxes', { compute: (env, r) => docAmounts(env, 'purchase.order.line', 'order_id', r.id, env.version >= 19 ? 'tax_ids' : 'taxes_id').tax }),
      amount_total: money('Total', { compute: (env, r) => { const a = docAmounts(env, 'purchase.order.line', 'order_id', r.id, env.version >= 19 ? 'tax_ids' : 'taxes_id'); return Math.round((a.untaxed + a.tax) * 100) / 100; } }),
      currency_id: m2o('res.currency', 'Currency', { default: 1 }),
      picking_ids: o2m('stock.picking', 'purchase_id', 'Receptions'),
      notes: html('Terms and Conditions'),
      priority: sel('Priority', [['0', 'Normal'], ['1', 'Urgent']], { default: '0' }),
      user_id: m2o('res.users', 'Buyer'), company_id: company(),
    },
  },
  {
    name: 'purchase.order.line', description: 'Purchase Order Line', botRights: 'full', order: 'order_id, sequence, id',
    displayName: (env, r) => `${String(env.table('purchase.order').get(r.order_id as number)?.name ?? '')}: ${productDisplay(env, r.product_id)}`,
    fields: {
      order_id: m2o('purchase.order', 'Order Reference', { required: true }),
      sequence: int('Sequence', { default: 10 }),
      name: text('Description', { required: true }),
      product_id: m2o('product.product', 'Product'),
      product_qty: float('Quantity', { required: true, default: 1 }),
      product_uom: m2o('uom.uom', 'Unit of Measure', { versions: UPTO18 }),
      product_uom_id: m2o('uom.uom', 'Unit', { versions: V19 }),
      price_unit: float('Unit Price', { required: true }),
      taxes_id: m2m('account.tax', 'Taxes', { versions: UPTO18 }),
      tax_ids: m2m('account.tax', 'Taxes', { versions: V19 }),
      price_subtotal: money('Subtotal', { compute: (_env, r) => lineSubtotal(r) }),
      date_planned: datetime('Expected Arrival', { default: (env: ComputeEnv) => nowStr(env) }),
      qty_received: float('Received Qty', {
        compute: (env, r) => sum(env.rowsBy('stock.move', 'purchase_line_id', r.id).filter((m) => m.state === 'done'), (m) => m.product_uom_qty as number),
      }),
      state: sel('Status', [['draft', 'RFQ'], ['sent', 'RFQ Sent'], ['to approve', 'To Approve'], ['purchase', 'Purchase Order'], ['done', 'Locked'], ['cancel', 'Cancelled']], {
        compute: (env, r) => env.table('purchase.order').get(r.order_id as number)?.state ?? false,
      }),
      display_type: sel('Display Type', [['line_section', 'Section'], ['line_note', 'Note']]),
      partner_id: m2o('res.partner', 'Partner', { compute: (env, r) => env.table('purchase.order').get(r.order_id as number)?.partner_id ?? false }),
      company_id: company(),
    },
  },
  {
    name: 'sale.order', description: 'Sales Order', botRights: 'full', chatter: true, order: 'date_order desc, id desc',
    fields: {
      name: char('Order Reference', { default: 'New' }),
      origin: char('Source Document'), client_order_ref: char('Customer Reference'),
      partner_id: m2o('res.partner', 'Customer', { required: true }),
      partner_invoice_id: m2o('res.partner', 'Invoice Address'), partner_shipping_id: m2o('res.partner', 'Delivery Address'),
      state: sel('Status', [['draft', 'Quotation'], ['sent', 'Quotation Sent'], ['sale', 'Sales Order'], ['done', 'Locked'], ['cancel', 'Cancelled']], { default: 'draft', readonly: true, versions: V16 }),
      ...({ state_17: sel('Status', [['draft', 'Quotation'], ['sent', 'Quotation Sent'], ['sale', 'Sales Order'], ['cancel', 'Cancelled']], { default: 'draft', readonly: true, versions: V17UP }) }),
      locked: bool('Locked', { versions: V17UP }),
      order_line: o2m('sale.order.line', 'order_id', 'Order Lines'),
      date_order: datetime('Order Date', { default: (env: ComputeEnv) => nowStr(env) }),
      validity_date: date('Expiration'),
      amount_untaxed: money('Untaxed Amount', { compute: (env, r) => docAmounts(env, 'sale.order.line', 'order_id', r.id, env.version >= 19 ? 'tax_ids' : 'tax_id').untaxed }),
      amount_tax: money('Taxes', { compute: (env, r) => docAmounts(env, 'sale.order.line', 'order_id', r.id, env.version >= 19 ? 'tax_ids' : 'tax_id').tax }),
      amount_total: money('Total', { compute: (env, r) => { const a = docAmounts(env, 'sale.order.line', 'order_id', r.id, env.version >= 19 ? 'tax_ids' : 'tax_id'); return Math.round((a.untaxed + a.tax) * 100) / 100; } }),
      invoice_status: sel('Invoice Status', [['upselling', 'Upselling Opportunity'], ['invoiced', 'Fully Invoiced'], ['to invoice', 'To Invoice'], ['no', 'Nothing to Invoice']], {
        compute: (env, r) => saleInvoiceStatus(env, r),
      }),
      invoice_ids: m2m('account.move', 'Invoices', {
        compute: (env, r) => {
          const lineIds = new Set(env.rowsBy('sale.order.line', 'order_id', r.id).map((l) => l.id));
          const moves = new Set<number>();
          for (const aml of env.table('account.move.line').values()) if (((aml.sale_line_ids as number[] | undefined) ?? []).some((x) => lineIds.has(x))) moves.add(aml.move_id as number);
          return [...moves];
        },
      }),
      picking_ids: o2m('stock.picking', 'sale_id', 'Transfers'),
      note: html('Terms and conditions'),
      currency_id: m2o('res.currency', 'Currency', { default: 1 }),
      user_id: m2o('res.users', 'Salesperson'), company_id: company(),
    },
  },
  {
    name: 'sale.order.line', description: 'Sales Order Line', botRights: 'full', order: 'order_id, sequence, id',
    displayName: (env, r) => `${String(env.table('sale.order').get(r.order_id as number)?.name ?? '')} - ${String(r.name ?? '').split('\n')[0]}`,
    fields: {
      order_id: m2o('sale.order', 'Order Reference', { required: true }),
      sequence: int('Sequence', { default: 10 }),
      name: text('Description', { required: true }),
      product_id: m2o('product.product', 'Product'),
      product_uom_qty: float('Quantity', { default: 1 }),
      ...saleUom(),
      tax_id: m2m('account.tax', 'Taxes', { versions: UPTO18 }),
      tax_ids: m2m('account.tax', 'Taxes', { versions: V19 }),
      price_unit: float('Unit Price'),
      discount: float('Discount (%)'),
      price_subtotal: money('Subtotal', { compute: (_env, r) => lineSubtotal(r) }),
      qty_delivered_method: sel('Method to update delivered qty', [['manual', 'Manual'], ['analytic', 'Analytic From Expenses'], ['stock_move', 'Stock Moves']], {
        compute: (env, r) => saleLineDeliveredMethod(env, r),
      }),
      qty_delivered: float('Delivery Quantity', { compute: (env, r) => saleLineDelivered(env, r) }),
      qty_delivered_manual: float('Delivered Manually'),
      qty_invoiced: float('Invoiced Quantity', { compute: (env, r) => saleLineInvoiced(env, r) }),
      qty_to_invoice: float('Quantity To Invoice', { compute: (env, r) => saleLineToInvoice(env, r) }),
      invoice_lines: m2m('account.move.line', 'Invoice Lines', {
        compute: (env, r) => [...env.table('account.move.line').values()].filter((l) => ((l.sale_line_ids as number[] | undefined) ?? []).includes(r.id)).map((l) => l.id),
      }),
      display_type: sel('Display Type', [['line_section', 'Section'], ['line_note', 'Note']]),
      state: sel('Order Status', [['draft', 'Quotation'], ['sent', 'Quotation Sent'], ['sale', 'Sales Order'], ['done', 'Locked'], ['cancel', 'Cancelled']], {
        compute: (env, r) => env.table('sale.order').get(r.order_id as number)?.state ?? false,
      }),
      order_partner_id: m2o('res.partner', 'Customer', { compute: (env, r) => env.table('sale.order').get(r.order_id as number)?.partner_id ?? false }),
      company_id: company(),
    },
  },
  {
    name: 'account.tax', description: 'Tax', botRights: 'read',
    fields: {
      name: char('Tax Name', { required: true }), amount: float('Amount'),
      amount_type: sel('Tax Computation', [['percent', 'Percentage of Price']], { default: 'percent' }),
      type_tax_use: sel('Tax Type', [['sale', 'Sales'], ['purchase', 'Purchases'], ['none', 'None']], { default: 'sale' }),
      active: active(), company_id: company(),
    },
  },
  {
    name: 'account.journal', description: 'Journal', botRights: 'read',
    fields: {
      name: char('Journal Name', { required: true }), code: char('Short Code', { required: true }),
      type: sel('Type', [['sale', 'Sales'], ['purchase', 'Purchase'], ['cash', 'Cash'], ['bank', 'Bank'], ['general', 'Miscellaneous']], { required: true }),
      active: active(), company_id: company(),
    },
  },
  {
    name: 'account.move', description: 'Journal Entry', botRights: 'full', chatter: true, order: 'date desc, name desc, id desc',
    displayName: (_env, r) => (r.name && r.name !== '/' ? String(r.name) : r.move_type === 'out_invoice' ? `Draft Invoice (* ${r.id})` : `Draft Entry (* ${r.id})`),
    fields: {
      name: char('Number', { default: '/' }),
      ref: char('Reference'),
      move_type: sel('Type', [['entry', 'Journal Entry'], ['out_invoice', 'Customer Invoice'], ['out_refund', 'Customer Credit Note'], ['in_invoice', 'Vendor Bill'], ['in_refund', 'Vendor Credit Note'], ['out_receipt', 'Sales Receipt'], ['in_receipt', 'Purchase Receipt']], { required: true, default: 'entry' }),
      state: sel('Status', [['draft', 'Draft'], ['posted', 'Posted'], ['cancel', 'Cancelled']], { default: 'draft', readonly: true }),
      partner_id: m2o('res.partner', 'Partner'),
      journal_id: m2o('account.journal', 'Journal'),
      date: date('Date', { default: (env: ComputeEnv) => formatDate(env.now()) }),
      invoice_date: date('Invoice/Bill Date'),
      invoice_date_due: date('Due Date'),
      invoice_origin: char('Origin'),
      payment_reference: char('Payment Reference'),
      invoice_line_ids: o2m('account.move.line', 'move_id', 'Invoice lines'),
      line_ids: o2m('account.move.line', 'move_id', 'Journal Items'),
      amount_untaxed: money('Untaxed Amount', { compute: (env, r) => docAmounts(env, 'account.move.line', 'move_id', r.id, 'tax_ids').untaxed }),
      amount_tax: money('Tax', { compute: (env, r) => docAmounts(env, 'account.move.line', 'move_id', r.id, 'tax_ids').tax }),
      amount_total: money('Total', { compute: (env, r) => { const a = docAmounts(env, 'account.move.line', 'move_id', r.id, 'tax_ids'); return Math.round((a.untaxed + a.tax) * 100) / 100; } }),
      amount_residual: money('Amount Due', { compute: (env, r) => { const a = docAmounts(env, 'account.move.line', 'move_id', r.id, 'tax_ids'); return r.state === 'posted' ? Math.round((a.untaxed + a.tax) * 100) / 100 : 0; } }),
      payment_state: sel('Payment Status', [['not_paid', 'Not Paid'], ['in_payment', 'In Payment'], ['paid', 'Paid'], ['partial', 'Partially Paid'], ['reversed', 'Reversed'], ['invoicing_legacy', 'Invoicing App Legacy']], { default: 'not_paid' }),
      posted_before: bool('Posted Before'),
      reversed_entry_id: m2o('account.move', 'Reversal of'),
      currency_id: m2o('res.currency', 'Currency', { default: 1 }),
      narration: html('Terms and Conditions'),
      company_id: company(),
    },
  },
  {
    name: 'account.move.line', description: 'Journal Item', botRights: 'full', order: 'date desc, move_name desc, id',
    displayName: (_env, r) => String(r.name ?? ''),
    fields: {
      move_id: m2o('account.move', 'Journal Entry', { required: true }),
      move_name: char('Number', { compute: (env, r) => env.table('account.move').get(r.move_id as number)?.name ?? false }),
      date: date('Date', { compute: (env, r) => env.table('account.move').get(r.move_id as number)?.date ?? false }),
      name: char('Label'),
      product_id: m2o('product.product', 'Product'),
      quantity: float('Quantity', { default: 1 }),
      price_unit: float('Unit Price'),
      discount: float('Discount (%)'),
      price_subtotal: money('Subtotal', { compute: (_env, r) => lineSubtotal(r) }),
      tax_ids: m2m('account.tax', 'Taxes'),
      product_uom_id: m2o('uom.uom', 'Unit of Measure'),
      sale_line_ids: m2m('sale.order.line', 'Sales Order Lines'),
      purchase_line_id: m2o('purchase.order.line', 'Purchase Order Line'),
      display_type: sel('Display Type', [['product', 'Product'], ['line_section', 'Section'], ['line_note', 'Note']], { default: 'product' }),
      partner_id: m2o('res.partner', 'Partner', { compute: (env, r) => env.table('account.move').get(r.move_id as number)?.partner_id ?? false }),
      parent_state: sel('Status', [['draft', 'Draft'], ['posted', 'Posted'], ['cancel', 'Cancelled']], { compute: (env, r) => env.table('account.move').get(r.move_id as number)?.state ?? false }),
      company_id: company(),
    },
  },
  {
    name: 'mail.message.subtype', description: 'Message subtypes', botRights: 'read',
    fields: { name: char('Message Type', { required: true }), internal: bool('Internal Only') },
  },
  {
    name: 'mail.message', description: 'Message', botRights: 'read', order: 'id desc',
    displayName: (_env, r) => String(r.record_name || r.subject || `mail.message/${r.id}`),
    fields: {
      model: char('Related Document Model'), res_id: int('Related Document ID'),
      record_name: char('Message Record Name'),
      body: html('Contents', { default: '' }), subject: char('Subject'),
      message_type: sel('Type', [['email', 'Incoming Email'], ['comment', 'Comment'], ['email_outgoing', 'Outgoing Email'], ['notification', 'System notification'], ['auto_comment', 'Automated Targeted Notification'], ['user_notification', 'User Specific Notification']], { default: 'comment', required: true }),
      subtype_id: m2o('mail.message.subtype', 'Subtype'),
      author_id: m2o('res.partner', 'Author'),
      partner_ids: m2m('res.partner', 'Recipients'),
      date: datetime('Date', { default: (env: ComputeEnv) => nowStr(env) }),
    },
  },
  {
    name: 'ir.model.data', description: 'Model Data', botRights: 'none', order: 'module, model, name',
    displayName: (_env, r) => `${String(r.module)}.${String(r.name)}`,
    fields: {
      name: char('External Identifier', { required: true }), module: char('Module', { required: true, default: '' }),
      model: char('Model Name', { required: true }), res_id: int('Record ID'),
      complete_name: char('Complete ID', { compute: (_env, r) => `${String(r.module)}.${String(r.name)}` }),
      noupdate: bool('Non Updatable'),
    },
  },
  {
    name: 'stock.backorder.confirmation', description: 'Backorder Confirmation', botRights: 'full', transient: true,
    fields: { pick_ids: m2m('stock.picking', 'Pick'), show_transfers: bool('Show Transfers') },
  },
  {
    name: 'stock.immediate.transfer', description: 'Immediate Transfer', botRights: 'full', transient: true, versions: V16,
    fields: { pick_ids: m2m('stock.picking', 'Pick'), show_transfers: bool('Show Transfers') },
  },
  {
    name: 'expiry.picking.confirmation', description: 'Confirm Expiry', botRights: 'full', transient: true,
    fields: { lot_ids: m2m('stock.lot', 'Lot'), picking_ids: m2m('stock.picking', 'Transfer') },
  },
  {
    name: 'sale.order.cancel', description: 'Sales Order Cancel', botRights: 'full', transient: true, versions: UPTO18,
    fields: { order_id: m2o('sale.order', 'Sale Order', { required: true }) },
  },
  {
    // The "Credit Note" / "Reverse" wizard of a posted entry (account/wizard/account_move_reversal.py).
    name: 'account.move.reversal', description: 'Account move reversal', botRights: 'full', transient: true,
    fields: {
      move_ids: m2m('account.move', 'Moves'),
      new_move_ids: m2m('account.move', 'New Moves'),
      reason: char('Reason displayed on Credit Note'),
      date: date('Reversal date', { default: (env: ComputeEnv) => formatDate(env.now()) }),
      journal_id: m2o('account.journal', 'Journal'),
      refund_method: sel('Credit Method', [['refund', 'Partial Refund'], ['cancel', 'Full Refund'], ['modify', 'Full refund and new draft invoice']], { default: 'refund', versions: V16 }),
    },
  },
  {
    name: 'sale.advance.payment.inv', description: 'Sales Advance Payment Invoice', botRights: 'full', transient: true,
    fields: {
      advance_payment_method: sel('Create Invoice', [['delivered', 'Regular invoice'], ['percentage', 'Down payment (percentage)'], ['fixed', 'Down payment (fixed amount)']], { default: 'delivered' }),
      sale_order_ids: m2m('sale.order', 'Sales Orders'),
    },
  },
];

function productTemplateFields(): Record<string, FieldSpec> {
  return {
    name: char('Name', { required: true }),
    // stock: the product's own routes (Inventory tab), before its category's and the warehouse's.
    route_ids: m2m('stock.route', 'Routes'),
    default_code: char('Internal Reference', {
      compute: (env, r) => [...env.table('product.product').values()].find((p) => p.product_tmpl_id === r.id)?.default_code ?? false,
    }),
    barcode: char('Barcode', { compute: (env, r) => [...env.table('product.product').values()].find((p) => p.product_tmpl_id === r.id)?.barcode ?? false }),
    type: sel('Product Type', [['consu', 'Consumable'], ['service', 'Service'], ['product', 'Storable Product']], { required: true, default: 'consu', versions: UPTO17 }),
    ...({ type_18: sel('Product Type', [['consu', 'Goods'], ['service', 'Service'], ['combo', 'Combo']], { required: true, default: 'consu', versions: V18UP }) }),
    detailed_type: sel('Product Type', [['consu', 'Consumable'], ['service', 'Service'], ['product', 'Storable Product']], { required: true, default: 'consu', versions: UPTO17 }),
    is_storable: bool('Track Inventory', { versions: V18UP }),
    tracking: sel('Tracking', [['serial', 'By Unique Serial Number'], ['lot', 'By Lots'], ['none', 'By Quantity']], { required: true, default: 'none' }),
    use_expiration_date: bool('Use Expiration Date'),
    expiration_time: int('Expiration Date', { default: 0 }),
    categ_id: m2o('product.category', 'Product Category', { default: 1 }),
    uom_id: m2o('uom.uom', 'Unit of Measure', { required: true, default: 1 }),
    uom_po_id: m2o('uom.uom', 'Purchase Unit of Measure', { versions: UPTO18, default: 1 }),
    list_price: float('Sales Price', { default: 1 }),
    standard_price: float('Cost'),
    sale_ok: bool('Can be Sold', { default: true }),
    purchase_ok: bool('Can be Purchased', { default: true }),
    invoice_policy: sel('Invoicing Policy', [['order', 'Ordered quantities'], ['delivery', 'Delivered quantities']], { default: 'order' }),
    service_type: sel('Track Service', [['manual', 'Manually set quantities on order']], { default: 'manual' }),
    seller_ids: o2m('product.supplierinfo', 'product_tmpl_id', 'Vendors'),
    product_variant_ids: o2m('product.product', 'product_tmpl_id', 'Products'),
    qty_available: float('Quantity On Hand', {
      compute: (env, r) => sum(filterRows(env.table('product.product'), (p) => p.product_tmpl_id === r.id), (p) => qtyAvailable(env, p.id)),
    }),
    virtual_available: float('Forecasted Quantity', {
      compute: (env, r) => sum(filterRows(env.table('product.product'), (p) => p.product_tmpl_id === r.id), (p) => qtyAvailable(env, p.id) + incomingOutgoing(env, p.id)),
    }),
    description_sale: text('Sales Description'),
    priority: sel('Favorite', [['0', 'Normal'], ['1', 'Favorite']], { default: '0' }),
    active: active(),
    company_id: m2o('res.company', 'Company'),
  };
}

/** stock.picking state from its moves (`v17:stock_picking.py` _compute_state). */
function pickingState(env: ComputeEnv, r: Row): string {
  const moves = env.rowsBy('stock.move', 'picking_id', r.id);
  if (moves.length === 0 || moves.some((m) => m.state === 'draft')) return 'draft';
  if (moves.every((m) => m.state === 'cancel')) return 'cancel';
  if (moves.every((m) => m.state === 'cancel' || m.state === 'done')) return 'done';
  const live = moves.filter((m) => m.state !== 'cancel' && m.state !== 'done');
  if (r.move_type === 'one') return live.every((m) => m.state === 'assigned') ? 'assigned' : 'confirmed';
  return live.some((m) => m.state === 'assigned' || m.state === 'partially_available') ? 'assigned' : 'confirmed';
}

export function moveQuantity(env: ComputeEnv, r: Row): number {
  return sum(env.rowsBy('stock.move.line', 'move_id', r.id), (l) => moveLineQty(env, l));
}
function moveReserved(env: ComputeEnv, r: Row): number {
  return sum(env.rowsBy('stock.move.line', 'move_id', r.id), (l) => (l.reserved_uom_qty as number) ?? 0);
}

function orderpointForecast(env: ComputeEnv, r: Row): number {
  const locs = childLocations(env, r.location_id as number);
  const onHand = sum(env.rowsBy('stock.quant', 'product_id', r.product_id).filter((q) => locs.has(q.location_id as number)), (q) => q.quantity as number);
  let delta = 0;
  for (const m of env.rowsBy('stock.move', 'product_id', r.product_id)) {
    if (['draft', 'done', 'cancel'].includes(m.state as string)) continue;
    if (locs.has(m.location_dest_id as number) && !locs.has(m.location_id as number)) delta += m.product_uom_qty as number;
    if (locs.has(m.location_id as number) && !locs.has(m.location_dest_id as number)) delta -= m.product_uom_qty as number;
  }
  for (const l of env.table('purchase.order.line').values()) {
    const po = env.table('purchase.order').get(l.order_id as number);
    if (l.product_id === r.product_id && po && ['draft', 'sent', 'to approve'].includes(po.state as string)) delta += l.product_qty as number;
  }
  return onHand + delta;
}

function orderpointToOrder(env: ComputeEnv, r: Row): number {
  const forecast = orderpointForecast(env, r);
  const min = r.product_min_qty as number;
  const max = r.product_max_qty as number;
  if (forecast >= min) return 0;
  let qty = Math.max(min, max) - forecast;
  if (env.version >= 19) return multipleRounded19(env, r, qty);
  const multiple = r.qty_multiple as number;
  if (multiple > 0) qty = Math.ceil(qty / multiple) * multiple;
  return qty;
}

/**
 * 19 `_get_multiple_rounded_qty`: with a Multiple (`replenishment_uom_id`) other than the product's
 * unit, the quantity is converted into it (`_compute_quantity`: rounded UP at the unit's
 * rounding), rounded UP to whole ones (float_round, 0 digits) and converted back (rounded UP
 * again); without one, not rounded. On 19 every unit's rounding is the 'Product Unit' decimal
 * precision (uom.uom `_compute_rounding`): 0.01 by default, 0.001 with 3 digits, read here.
 * (purchase_stock's fallback to the vendor line's unit is not emulated here.)
 */
function multipleRounded19(env: ComputeEnv, r: Row, qty: number): number {
  const product = env.table('product.product').get(r.product_id as number);
  const template = product ? env.table('product.template').get(product.product_tmpl_id as number) : undefined;
  const units = env.table('uom.uom');
  const own = units.get(template?.uom_id as number);
  const multiple = units.get(r.replenishment_uom_id as number);
  if (!own || !multiple || own.id === multiple.id) return qty;
  const step = productUnitStep(env);
  const up = (v: number, by: number): number => {
    const n = v / by;
    return Math.ceil(n - Math.abs(n) * 2 ** -50) * by;
  };
  const abs = (u: Row): number => uomChain(env, u).reduce((f, x) => f * ((x.relative_factor as number) || 1), 1);
  const whole = up(up((qty * abs(own)) / abs(multiple), step), 1);
  const back = up((whole * abs(multiple)) / abs(own), step);
  // The float a multiple of the step prints as (0.375, not 0.37500000000000006).
  return Number(back.toFixed(Math.max(0, Math.round(-Math.log10(step)))));
}

/**
 * 19 `effective_route_id` (`_compute_effective_route_id`): the reorder rule's Route when set, else
 * `_get_default_route`. purchase_stock's first: when the product has vendors and the rules the
 * procurement would follow from the rule's location (`rule_ids`, `_get_rules_from_location`)
 * include a buy rule, that rule's route. Then stock's: a route of the product's or its category's
 * with an active pull rule delivering exactly to the rule's location (a resupply from another
 * location). Else none. The rule followed is searched as `_get_rule` does, from the location up
 * its parents: the reorder rule's Route, then the product's, its category's, then any route with a
 * buy rule (standing for the warehouse's Buy route); a pull rule ends the chain (make to stock:
 * the emulator's rules have no procure method).
 */
function effectiveRoute19(env: ComputeEnv, r: Row): number | false {
  if (typeof r.route_id === 'number') return r.route_id;
  const product = env.table('product.product').get(r.product_id as number);
  const template = product ? env.table('product.template').get(product.product_tmpl_id as number) : undefined;
  const categ = template ? env.table('product.category').get(template.categ_id as number) : undefined;
  const routes = env.table('stock.route');
  const activeRoute = (id: unknown): boolean => typeof id === 'number' && routes.get(id)?.active !== false;
  const rules = [...env.table('stock.rule').values()].filter((x) => x.active !== false && activeRoute(x.route_id));
  const own = [...((template?.route_ids as number[] | undefined) ?? []), ...((categ?.route_ids as number[] | undefined) ?? [])];
  const buying = [...new Set(rules.filter((x) => x.action === 'buy').map((x) => x.route_id as number))];
  const candidates = [...own, ...buying];
  const sellers = template ? env.rowsBy('product.supplierinfo', 'product_tmpl_id', template.id).length > 0 : false;
  const locs = env.table('stock.location');
  let followed: Row | undefined;
  for (let loc = locs.get(r.location_id as number); loc && !followed; loc = locs.get(loc.location_id as number)) {
    for (const route of candidates) {
      followed = rules.find((x) => x.route_id === route && x.location_dest_id === loc!.id);
      if (followed) break;
    }
  }
  if (sellers && followed?.action === 'buy') return followed.route_id as number;
  const resupply = rules.find((x) => ['pull', 'pull_push'].includes(x.action as string) && x.location_dest_id === r.location_id && own.includes(x.route_id as number));
  return resupply ? (resupply.route_id as number) : false;
}

/** 19: the step every unit rounds at, from the 'Product Unit' decimal precision (2 digits when absent). */
function productUnitStep(env: ComputeEnv): number {
  let digits = 2;
  for (const p of env.table('decimal.precision').values()) if (p.name === uomPrecisionName(env.version)) digits = Number(p.digits);
  return 10 ** -digits;
}

function saleLineDeliveredMethod(env: ComputeEnv, r: Row): string {
  const t = templateOf(env, productOf(env, r.product_id));
  if (!t) return 'manual';
  const type = env.version >= 18 ? t.type : t.detailed_type;
  return type === 'service' ? 'manual' : 'stock_move';
}

/** qty_delivered: manual lines keep what was written (`_inverse_qty_delivered` → qty_delivered_manual); stock lines count done outgoing moves. */
function saleLineDelivered(env: ComputeEnv, r: Row): number {
  if (saleLineDeliveredMethod(env, r) === 'manual') return (r.qty_delivered_manual as number) ?? 0;
  return sum(env.rowsBy('stock.move', 'sale_line_id', r.id).filter((m) => m.state === 'done'), (m) => {
    const outgoing = !isInternal(env, m.location_dest_id);
    return outgoing ? (m.product_uom_qty as number) : -(m.product_uom_qty as number);
  });
}

/**
 * `sale.order.line._compute_qty_invoiced` (16–19; 19 `_prepare_qty_invoiced`): over the line's
 * invoice lines whose move is not cancelled (drafts count), a customer invoice adds its quantity
 * and a customer credit note (out_refund) takes it off; other move types count nothing. A credit
 * note made by reversing an invoice keeps the invoice lines' `sale_line_ids` (sale's
 * `_copy_data_extend_business_fields`), so crediting a test puts it back to "to invoice".
 */
function saleLineInvoiced(env: ComputeEnv, r: Row): number {
  return sum(filterRows(env.table('account.move.line'), (l) => ((l.sale_line_ids as number[] | undefined) ?? []).includes(r.id)), (l) => {
    const move = env.table('account.move').get(l.move_id as number);
    if (!move || (move.state === 'cancel' && move.payment_state !== 'invoicing_legacy')) return 0;
    const qty = l.quantity as number;
    return move.move_type === 'out_invoice' ? qty : move.move_type === 'out_refund' ? -qty : 0;
  });
}

function saleLineToInvoice(env: ComputeEnv, r: Row): number {
  const so = env.table('sale.order').get(r.order_id as number);
  // 16 `_compute_qty_to_invoice`: `line.state in ['sale', 'done']` — a locked order still bills.
  if (!so || (so.state !== 'sale' && so.state !== 'done') || r.display_type) return 0;
  const t = templateOf(env, productOf(env, r.product_id));
  const basis = t?.invoice_policy === 'delivery' ? saleLineDelivered(env, r) : (r.product_uom_qty as number);
  return basis - saleLineInvoiced(env, r);
}

function saleInvoiceStatus(env: ComputeEnv, r: Row): string {
  if (r.state !== 'sale' && r.state !== 'done') return 'no';
  const lines = env.rowsBy('sale.order.line', 'order_id', r.id).filter((l) => !l.display_type);
  if (lines.some((l) => saleLineToInvoice(env, l) > 0)) return 'to invoice';
  if (lines.length > 0 && lines.every((l) => saleLineInvoiced(env, l) >= (l.product_uom_qty as number))) return 'invoiced';
  return 'no';
}

export interface ResolvedModel extends ModelSpec {
  /** Fields of this version, including magic fields and (for _inherits) delegated ones. */
  fields: Record<string, FieldSpec>;
}

/**
 * Version-specific aliases: a key like `state_17` declares `state` for the listed versions. This
 * keeps two definitions of one field name side by side in the table above.
 */
function resolveName(key: string): string {
  const m = /^(.*)_(1[6-9])$/.exec(key);
  return m && m[1] ? m[1] : key;
}

export function buildSchema(version: OdooVersion): Map<string, ResolvedModel> {
  const out = new Map<string, ResolvedModel>();
  for (const spec of MODELS) {
    if (spec.versions && !spec.versions.includes(version)) continue;
    const fields: Record<string, FieldSpec> = {
      id: { type: 'integer', string: 'ID', readonly: true },
      display_name: { type: 'char', string: 'Display Name', readonly: true },
    };
    for (const [key, f] of Object.entries(spec.fields)) {
      if (f.versions && !f.versions.includes(version)) continue;
      fields[resolveName(key)] = f;
    }
    fields.create_date = { type: 'datetime', string: 'Created on', readonly: true };
    fields.create_uid = { type: 'many2one', relation: 'res.users', string: 'Created by', readonly: true };
    fields.write_date = { type: 'datetime', string: 'Last Updated on', readonly: true };
    fields.write_uid = { type: 'many2one', relation: 'res.users', string: 'Last Updated by', readonly: true };
    if (version === 16) fields.__last_update = { type: 'datetime', string: 'Last Modified on', readonly: true, compute: (_e, r) => r.write_date };
    if (spec.chatter) {
      fields.message_ids = {
        type: 'one2many', relation: 'mail.message', string: 'Messages',
        compute: (env, r) => [...env.table('mail.message').values()].filter((m) => m.model === spec.name && m.res_id === r.id).map((m) => m.id).sort((a, b) => b - a),
      };
    }
    out.set(spec.name, { ...spec, fields });
  }
  return out;
}

export const ALL_MODEL_NAMES: readonly string[] = MODELS.map((m) => m.name);
