/**
 * Database contents at start: what a fresh Odoo database with stock, purchase, sale_management,
 * account and product_expiry holds ('empty'), plus a small clinical lab ('lab-demo').
 * README.md lists every record; keep the two in step.
 */
import type { Env, Vals } from './orm.ts';
import { formatDatetime, uomPrecisionName } from './schema.ts';

function xmlid(env: Env, full: string, model: string, resId: number): void {
  const [module, name] = full.split('.') as [string, string];
  env.sudo().createInternal('ir.model.data', { module, name, model, res_id: resId, noupdate: true });
}

function make(env: Env, model: string, vals: Vals, id?: string): number {
  const rid = env.sudo().createInternal(model, vals);
  if (id) xmlid(env, id, model, rid);
  return rid;
}

export interface BaseRefs {
  stock: number;
  suppliers: number;
  customers: number;
  inventoryLoss: number;
  warehouse: number;
  unit: number;
  liter: number;
  categAll: number;
}

/** Master data every database has (ids follow a fresh Odoo only loosely). */
export function seedBase(env: Env): BaseRefs {
  const eur = make(env, 'res.currency', { name: 'EUR', symbol: '€' }, 'base.EUR');
  make(env, 'res.currency', { name: 'USD', symbol: '$' }, 'base.USD');
  const companyPartner = make(env, 'res.partner', { name: 'My Company', is_company: true }, 'base.main_partner');
  make(env, 'res.partner', { name: 'OdooBot', active: false }, 'base.partner_root');
  make(env, 'res.partner', { name: 'Mitchell Admin' }, 'base.partner_admin');
  make(env, 'res.company', { name: 'My Company', partner_id: companyPartner, currency_id: eur }, 'base.main_company');
  env.db.update('res.partner', companyPartner, { company_id: 1 });
  // Decimal Accuracy of stock quantities: 2 digits (16-18 'Product Unit of Measure', 19 'Product Unit').
  make(env, 'decimal.precision', { name: uomPrecisionName(env.version), digits: 2 }, env.version >= 19 ? 'uom.decimal_product_uom' : 'product.decimal_product_uom');
  // ≤18: categories (uom.product_uom_categ_*), `factor` = units of this per reference unit;
  // 19: no categories, `relative_factor` of a reference unit (uom/data/uom_data.xml of each).
  let unit: number;
  let liter: number;
  if (env.version <= 18) {
    const cUnit = make(env, 'uom.category', { name: 'Unit' }, 'uom.product_uom_categ_unit');
    const cWeight = make(env, 'uom.category', { name: 'Weight' }, 'uom.product_uom_categ_kgm');
    const cVolume = make(env, 'uom.category', { name: 'Volume' }, 'uom.product_uom_categ_vol');
    unit = make(env, 'uom.uom', { name: 'Units', category_id: cUnit, factor: 1, uom_type: 'reference' }, 'uom.product_uom_unit');
    make(env, 'uom.uom', { name: 'kg', category_id: cWeight, factor: 1, uom_type: 'reference' }, 'uom.product_uom_kgm');
    liter = make(env, 'uom.uom', { name: 'L', category_id: cVolume, factor: 1, uom_type: 'reference' }, 'uom.product_uom_litre');
    make(env, 'uom.uom', { name: 'mL', category_id: cVolume, factor: 1000, uom_type: 'smaller' }, 'uom.product_uom_millilitre');
  } else {
    unit = make(env, 'uom.uom', { name: 'Units', relative_factor: 1 }, 'uom.product_uom_unit');
    make(env, 'uom.uom', { name: 'kg', relative_factor: 1 }, 'uom.product_uom_kgm');
    liter = make(env, 'uom.uom', { name: 'L', relative_factor: 1 }, 'uom.product_uom_litre');
    make(env, 'uom.uom', { name: 'mL', relative_factor: 0.001, relative_uom_id: liter }, 'uom.product_uom_millilitre');
  }
  const categAll = make(env, 'product.category', { name: 'All' }, 'product.product_category_all');
  make(env, 'product.removal', { name: 'First In First Out (FIFO)', method: 'fifo' }, 'stock.removal_fifo');
  make(env, 'product.removal', { name: 'First Expiry First Out (FEFO)', method: 'fefo' }, 'product_expiry.removal_fefo');

  const physical = make(env, 'stock.location', { name: 'Physical Locations', usage: 'view' }, 'stock.stock_location_locations');
  const partners = make(env, 'stock.location', { name: 'Partners', usage: 'view' }, 'stock.stock_location_locations_partner');
  const virtual = make(env, 'stock.location', { name: 'Virtual Locations', usage: 'view' }, 'stock.stock_location_locations_virtual');
  const suppliers = make(env, 'stock.location', { name: 'Vendors', usage: 'supplier', location_id: partners }, 'stock.stock_location_suppliers');
  const customers = make(env, 'stock.location', { name: 'Customers', usage: 'customer', location_id: partners }, 'stock.stock_location_customers');
  const inventoryLoss = make(env, 'stock.location', { name: 'Inventory adjustment', usage: 'inventory', location_id: virtual }, 'stock.stock_location_inventory');
  make(env, 'stock.location', { name: 'Scrap', usage: 'inventory', location_id: virtual, ...(env.version <= 18 ? { scrap_location: true } : {}) }, 'stock.stock_location_scrapped');
  make(env, 'stock.location', { name: 'Production', usage: 'production', location_id: virtual }, 'stock.location_production');
  const whView = make(env, 'stock.location', { name: 'WH', usage: 'view', location_id: physical });
  const stock = make(env, 'stock.location', { name: 'Stock', usage: 'internal', location_id: whView }, 'stock.stock_location_stock');
  const warehouse = make(env, 'stock.warehouse', { name: 'My Company', code: 'WH', lot_stock_id: stock, view_location_id: whView }, 'stock.warehouse0');
  const inType = make(env, 'stock.picking.type', {
    name: 'Receipts', code: 'incoming', sequence_code: 'IN', sequence: 1, warehouse_id: warehouse, default_location_src_id: suppliers,
    default_location_dest_id: stock, use_create_lots: true, use_existing_lots: false,
  }, 'stock.picking_type_in');
  const outType = make(env, 'stock.picking.type', {
    name: 'Delivery Orders', code: 'outgoing', sequence_code: 'OUT', sequence: 2, warehouse_id: warehouse, default_location_src_id: stock, default_location_dest_id: customers,
  }, 'stock.picking_type_out');
  // odoo-api.md §D: the only internal type of a fresh single-warehouse database is archived.
  const intType = make(env, 'stock.picking.type', {
    name: 'Internal Transfers', code: 'internal', sequence_code: 'INT', sequence: 3, warehouse_id: warehouse, default_location_src_id: stock, default_location_dest_id: stock, active: false,
  }, 'stock.picking_type_internal');
  env.db.update('stock.warehouse', warehouse, { in_type_id: inType, out_type_id: outType, int_type_id: intType });
  const buy = make(env, 'stock.route', { name: 'Buy' }, 'purchase_stock.route_warehouse0_buy');
  // The warehouse's buy rule (created by the warehouse, no external id): receipts into WH/Stock.
  make(env, 'stock.rule', { name: 'WH: Vendors → Stock', action: 'buy', route_id: buy, location_dest_id: stock, picking_type_id: inType });

  make(env, 'account.journal', { name: 'Customer Invoices', code: 'INV', type: 'sale' }, 'account.1_sale');
  make(env, 'account.journal', { name: 'Vendor Bills', code: 'BILL', type: 'purchase' }, 'account.1_purchase');
  make(env, 'account.journal', { name: 'Miscellaneous Operations', code: 'MISC', type: 'general' }, 'account.1_general');
  make(env, 'account.tax', { name: '15%', amount: 15, type_tax_use: 'sale' }, 'account.1_tax_sale_15');
  make(env, 'account.tax', { name: '15%', amount: 15, type_tax_use: 'purchase' }, 'account.1_tax_purchase_15');
  make(env, 'account.tax', { name: '0% Exempt', amount: 0, type_tax_use: 'sale' }, 'account.1_tax_sale_exempt');
  make(env, 'mail.message.subtype', { name: 'Discussions' }, 'mail.mt_comment');
  make(env, 'mail.message.subtype', { name: 'Note', internal: true }, 'mail.mt_note');
  return { stock, suppliers, customers, inventoryLoss, warehouse, unit, liter, categAll };
}

const DAY = 86_400_000;

/** The 'lab-demo' seed: two clinics, two vendors, billable tests, lot-tracked reagents (some expired). */
export function seedLabDemo(env: Env, base: BaseRefs): void {
  const now = env.now().getTime();
  const at = (days: number) => formatDatetime(new Date(now + days * DAY));
  const clinicA = make(env, 'res.partner', { name: 'Northside Family Clinic', ref: 'CLINIC-A', is_company: true, customer_rank: 1, city: 'Springfield', email: 'lab@northside.example' }, 'lab_demo.partner_clinic_a');
  make(env, 'res.partner', { name: 'Dr. Ana Ruiz', parent_id: clinicA, email: 'a.ruiz@northside.example' }, 'lab_demo.partner_clinic_a_ruiz');
  make(env, 'res.partner', { name: 'Harbour Medical Centre', ref: 'CLINIC-B', is_company: true, customer_rank: 1, city: 'Port Ellen' }, 'lab_demo.partner_clinic_b');
  const diag = make(env, 'res.partner', { name: 'DiagSupply GmbH', ref: 'VEND-DIAG', is_company: true, supplier_rank: 1, city: 'Mannheim' }, 'lab_demo.partner_vendor_diag');
  const labco = make(env, 'res.partner', { name: 'LabCo Consumables Ltd', ref: 'VEND-LABCO', is_company: true, supplier_rank: 1, city: 'Leeds' }, 'lab_demo.partner_vendor_labco');

  const categTests = make(env, 'product.category', { name: 'Lab Tests', parent_id: base.categAll }, 'lab_demo.categ_tests');
  const categReagents = make(env, 'product.category', { name: 'Reagents', parent_id: base.categAll }, 'lab_demo.categ_reagents');
  const categConsumables = make(env, 'product.category', { name: 'Consumables', parent_id: base.categAll }, 'lab_demo.categ_consumables');

  const productVals = (kind: 'service' | 'storable' | 'consumable'): Vals => {
    if (env.version >= 18) return { type: kind === 'service' ? 'service' : 'consu', is_storable: kind === 'storable' };
    const t = kind === 'service' ? 'service' : kind === 'storable' ? 'product' : 'consu';
    return { type: t, detailed_type: t };
  };
  const tests: Array<[string, string, number]> = [
    ['GLU', 'Glucose (fasting)', 8.5], ['HBA1C', 'Haemoglobin A1c', 22], ['CBC', 'Complete blood count', 15], ['TSH', 'Thyroid stimulating hormone', 18],
    ['CRP', 'C-reactive protein', 12], ['LIPID', 'Lipid panel', 25], ['CREA', 'Creatinine', 9], ['ALT', 'Alanine aminotransferase', 9], ['K', 'Potassium', 7.5],
  ];
  for (const [code, name, price] of tests) {
    make(env, 'product.product', { name, default_code: code, ...productVals('service'), categ_id: categTests, list_price: price, invoice_policy: 'delivery', purchase_ok: false }, `lab_demo.product_test_${code.toLowerCase()}`);
  }
  const reagents: Array<[string, string, number, number, number]> = [
    // code, name, cost, vendor price, shelf life (days)
    ['RGT-GLU', 'Glucose reagent cartridge (500 tests)', 118, 120, 365],
    ['RGT-HBA1C', 'HbA1c reagent kit (200 tests)', 240, 245, 270],
    ['RGT-CRP', 'CRP reagent (300 tests)', 150, 152, 300],
    ['RGT-TSH', 'TSH immunoassay reagent pack (100 tests)', 310, 315, 365],
    ['CAL-GLU', 'Glucose calibrator set', 45, 46, 180],
    ['QC-NORM', 'Chemistry control, level 1', 60, 61, 120],
    ['DIL-CBC', 'Haematology diluent 20 L', 85, 88, 540],
  ];
  const productIds = new Map<string, number>();
  for (const [code, name, cost, price, life] of reagents) {
    const pid = make(env, 'product.product', {
      name, default_code: code, ...productVals('storable'), categ_id: categReagents, tracking: 'lot', use_expiration_date: true, expiration_time: life,
      standard_price: cost, sale_ok: false, uom_id: code === 'DIL-CBC' ? base.liter : base.unit,
      ...(env.version <= 18 ? { uom_po_id: code === 'DIL-CBC' ? base.liter : base.unit } : {}),
    }, `lab_demo.product_${code.toLowerCase().replace(/-/g, '_')}`);
    productIds.set(code, pid);
    const tmpl = env.table('product.product').get(pid)!.product_tmpl_id;
    make(env, 'product.supplierinfo', { partner_id: diag, product_tmpl_id: tmpl, price, min_qty: 1, delay: 5 });
  }
  const consumables: Array<[string, string, number, boolean]> = [
    ['TIP-200', 'Pipette tips 200 µL (rack of 96)', 4.2, true],
    ['CUV-01', 'Reaction cuvettes (pack of 1000)', 38, true],
    ['TUBE-EDTA', 'EDTA tube 3 mL', 0.12, false],
  ];
  for (const [code, name, cost, storable] of consumables) {
    const pid = make(env, 'product.product', { name, default_code: code, ...productVals(storable ? 'storable' : 'consumable'), categ_id: categConsumables, standard_price: cost, sale_ok: false },
      `lab_demo.product_${code.toLowerCase().replace(/-/g, '_')}`);
    productIds.set(code, pid);
    const tmpl = env.table('product.product').get(pid)!.product_tmpl_id;
    make(env, 'product.supplierinfo', { partner_id: labco, product_tmpl_id: tmpl, price: cost, min_qty: 1, delay: 2 });
  }

  const lab = make(env, 'stock.location', { name: 'Lab', usage: 'internal', location_id: base.stock }, 'lab_demo.location_lab');
  const consumption = make(env, 'stock.location', { name: 'Lab Consumption', usage: 'inventory', location_id: env.table('ir.model.data').size ? virtualLocation(env) : false }, 'lab_demo.location_consumption');
  make(env, 'stock.picking.type', {
    name: 'Lab Consumption', code: 'internal', sequence_code: 'LAB', sequence: 5, warehouse_id: base.warehouse, default_location_src_id: lab, default_location_dest_id: consumption,
  }, 'lab_demo.picking_type_consumption');

  const lots: Array<[string, string, number, number]> = [
    // product, lot, expiry (days from now; negative = expired), quantity in the lab
    ['RGT-GLU', 'G24A101', 180, 12], ['RGT-GLU', 'G23K044', -15, 2],
    ['RGT-HBA1C', 'H24B220', 90, 6],
    ['RGT-CRP', 'C24C310', 45, 4], ['RGT-CRP', 'C23J005', -40, 1],
    ['RGT-TSH', 'T24D077', 200, 3],
    ['CAL-GLU', 'CG24A01', 120, 5],
    ['QC-NORM', 'Q24A900', 60, 10],
    ['DIL-CBC', 'D24E500', 300, 8],
  ];
  for (const [code, name, days, qty] of lots) {
    const pid = productIds.get(code)!;
    const lot = make(env, 'stock.lot', { name, product_id: pid, company_id: 1, expiration_date: at(days), removal_date: at(days), use_date: at(days - 14), alert_date: at(days - 30) },
      `lab_demo.lot_${name.toLowerCase()}`);
    make(env, 'stock.quant', { product_id: pid, location_id: lab, lot_id: lot, quantity: qty, in_date: at(days - 200) });
  }
  make(env, 'stock.quant', { product_id: productIds.get('TIP-200')!, location_id: lab, quantity: 40 });
  make(env, 'stock.quant', { product_id: productIds.get('CUV-01')!, location_id: lab, quantity: 6 });

  const orderpoints: Array<[string, number, number]> = [['RGT-GLU', 5, 20], ['RGT-HBA1C', 4, 12], ['RGT-CRP', 6, 15], ['TIP-200', 20, 60], ['CUV-01', 4, 10]];
  for (const [code, min, max] of orderpoints) {
    make(env, 'stock.warehouse.orderpoint', { product_id: productIds.get(code)!, location_id: lab, warehouse_id: base.warehouse, product_min_qty: min, product_max_qty: max, trigger: 'manual' },
      `lab_demo.orderpoint_${code.toLowerCase().replace(/-/g, '_')}`);
  }
}

function virtualLocation(env: Env): number | false {
  const v = [...env.table('stock.location').values()].find((l) => l.name === 'Virtual Locations' && l.usage === 'view');
  return v ? v.id : false;
}
