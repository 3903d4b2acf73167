/**
 * Purchase (RFQ → purchase order with a receipt) and sales (quotation → order with a delivery;
 * manual delivered quantities on service lines), per odoo-api.md §B.2/§B.3/§D.
 */
import { confirmPickings, movesOf } from './business-stock.ts';
import type { MethodRegistry } from './methods.ts';
import { userError } from './odoo-errors.ts';
import type { Env, ModelHooks, Vals } from './orm.ts';
import { templateOf } from './schema.ts';
import type { Row } from './types.ts';

function product(env: Env, id: unknown): Row | undefined {
  return typeof id === 'number' ? env.table('product.product').get(id) : undefined;
}

function isGoods(env: Env, productId: unknown): boolean {
  const t = templateOf(env, product(env, productId));
  if (!t) return false;
  return (env.version >= 18 ? t.type : t.detailed_type) !== 'service';
}

function warehouse(env: Env): Row | undefined {
  return [...env.table('stock.warehouse').values()].sort((a, b) => a.id - b.id)[0];
}

function location(env: Env, usage: string): number | false {
  const l = [...env.table('stock.location').values()].filter((x) => x.usage === usage).sort((a, b) => a.id - b.id)[0];
  return l ? l.id : false;
}

/** Receipt/delivery created on confirmation (`purchase_stock` / `sale_stock`). */
function createTransfer(env: Env, kind: 'in' | 'out', order: Row, lines: Row[], lineLink: 'purchase_line_id' | 'sale_line_id'): void {
  const goods = lines.filter((l) => !l.display_type && isGoods(env, l.product_id));
  if (goods.length === 0) return;
  const wh = warehouse(env);
  if (!wh) return;
  const type = env.table('stock.picking.type').get((kind === 'in' ? wh.in_type_id : wh.out_type_id) as number);
  if (!type) return;
  const sudo = env.sudo();
  const src = kind === 'in' ? location(env, 'supplier') : type.default_location_src_id;
  const dst = kind === 'in' ? type.default_location_dest_id : location(env, 'customer');
  const picking = sudo.createInternal('stock.picking', {
    picking_type_id: type.id, location_id: src, location_dest_id: dst, partner_id: order.partner_id, origin: order.name,
    ...(kind === 'in' ? { purchase_id: order.id } : { sale_id: order.id }),
  });
  for (const l of goods) {
    const qty = (kind === 'in' ? l.product_qty : l.product_uom_qty) as number;
    const mv: Vals = {
      product_id: l.product_id, product_uom_qty: qty, picking_id: picking, location_id: src, location_dest_id: dst,
      [lineLink]: l.id, origin: order.name,
    };
    if (env.version <= 18) mv.name = String(l.name ?? '').split('\n')[0] || String(order.name);
    sudo.withContext({ __internal_move: true }).createInternal('stock.move', mv);
  }
  confirmPickings(sudo, [picking]);
}

function orderLineDefaults(env: Env, vals: Vals, kind: 'sale' | 'purchase'): void {
  const p = product(env, vals.product_id);
  const t = templateOf(env, p);
  if (!p || !t) return;
  if (vals.name === undefined && !vals.display_type) {
    const display = env.displayName('product.product', p);
    vals.name = kind === 'sale' && t.description_sale ? `${display}\n${String(t.description_sale)}` : display;
  }
  const uomField = env.version >= 19 ? 'product_uom_id' : 'product_uom';
  if (vals[uomField] === undefined) vals[uomField] = kind === 'purchase' && env.version <= 18 ? (t.uom_po_id || t.uom_id) : t.uom_id;
  if (vals.price_unit === undefined) {
    if (kind === 'sale') vals.price_unit = t.list_price;
    else {
      const seller = [...env.table('product.supplierinfo').values()].find((s) => s.product_tmpl_id === t.id || s.product_id === p.id);
      vals.price_unit = seller ? seller.price : t.standard_price;
    }
  }
}

export function orderHooks(): Record<string, ModelHooks> {
  return {
    'purchase.order': {
      beforeCreate: (env, vals) => { if (!vals.name || vals.name === 'New') vals.name = env.sequence('purchase.order', 'P', 5); },
      beforeUnlink: (env, ids) => {
        for (const id of ids) if (!['draft', 'cancel'].includes(env.browse('purchase.order', id).state as string)) throw userError('In order to delete a purchase order, you must cancel it first.');
      },
    },
    'purchase.order.line': {
      beforeCreate: (env, vals) => {
        orderLineDefaults(env, vals, 'purchase');
        const po = env.table('purchase.order').get(vals.order_id as number);
        if (vals.date_planned === undefined && po?.date_planned) vals.date_planned = po.date_planned;
      },
    },
    'sale.order': {
      beforeCreate: (env, vals) => {
        if (!vals.name || vals.name === 'New') vals.name = env.sequence('sale.order', 'S', 5);
        if (vals.partner_invoice_id === undefined) vals.partner_invoice_id = vals.partner_id;
        if (vals.partner_shipping_id === undefined) vals.partner_shipping_id = vals.partner_id;
      },
      beforeUnlink: (env, ids) => {
        for (const id of ids) if (!['draft', 'cancel'].includes(env.browse('sale.order', id).state as string)) throw userError('You can not delete a sent quotation or a confirmed sales order. You must first cancel it.');
      },
    },
    'sale.order.line': {
      // Adding a line to a locked order is allowed: `sale.order.line.create` has no lock check in
      // any version (19 posts "Extra line with …" on a confirmed order); only writes are guarded.
      beforeCreate: (env, vals) => orderLineDefaults(env, vals, 'sale'),
      beforeWrite: (env, ids, vals) => refuseLockedLineWrite(env, ids, vals),
      beforeUnlink: (env, ids) => {
        for (const id of ids) {
          const l = env.browse('sale.order.line', id);
          const so = env.table('sale.order').get(l.order_id as number);
          if ((so?.state === 'sale' || so?.state === 'done') && !l.display_type && !env.su) {
            throw userError("Once a sales order is confirmed, you can't remove one of its lines (we need to track if something gets invoiced or delivered).\nSet the quantity to 0 instead.");
          }
        }
      },
      inverse: {
        // `_inverse_qty_delivered`: only lines delivered manually keep a written value.
        qty_delivered: (env, id, v) => {
          const l = env.browse('sale.order.line', id);
          const manual = env.value('sale.order.line', l, 'qty_delivered_method') === 'manual';
          env.db.update('sale.order.line', id, { qty_delivered_manual: manual ? Number(v) || 0 : 0 });
        },
      },
    },
  };
}

/**
 * `sale.order.line.write` on a locked order (sale_order_line.py `write` + `_get_protected_fields`):
 * 17+ `any(self.order_id.mapped('locked'))`, 16 `'done' in self.mapped('order_id.state')`, and a
 * protected field in the values → UserError "It is forbidden to modify the following fields in a
 * locked order:\n<labels>", one field label per line, in `ir.model.fields` order (by name).
 * Protected: product, description, unit price, unit of measure, quantity, taxes, analytic
 * distribution (16–19; 19 names them `product_uom_id`/`tax_ids` and adds `discount`).
 * `qty_delivered` is not protected: a result marked delivered on a locked order goes through.
 */
function refuseLockedLineWrite(env: Env, ids: number[], vals: Vals): void {
  const locked = ids.some((id) => {
    const so = env.table('sale.order').get(env.table('sale.order.line').get(id)?.order_id as number);
    return so !== undefined && (env.version >= 17 ? so.locked === true : so.state === 'done');
  });
  if (!locked) return;
  const protectedFields = env.version >= 19
    ? ['product_id', 'name', 'price_unit', 'product_uom_id', 'product_uom_qty', 'tax_ids', 'analytic_distribution', 'discount']
    : ['product_id', 'name', 'price_unit', 'product_uom', 'product_uom_qty', 'tax_id', 'analytic_distribution'];
  const fields = env.schema.get('sale.order.line')!.fields;
  const hit = protectedFields.filter((f) => f in vals && fields[f]).sort();
  if (hit.length === 0) return;
  throw userError(`It is forbidden to modify the following fields in a locked order:\n${hit.map((f) => fields[f]!.string).join('\n')}`);
}

/**
 * `sale.order.action_cancel`. 16–18: when `_show_cancel_wizard` says so it returns the
 * `sale.order.cancel` wizard action (ensure_one) and cancels nothing — 16: an order not in draft or
 * with a draft invoice; 17/18: an order not in draft (sent, sale) — unless the context has
 * `disable_cancel_warning`. 19 cancels directly (the wizard went with odoo/odoo#184032, 18.2).
 * `_action_cancel` cancels the order's draft invoices, then the order (and, sale_stock, its open
 * delivery moves).
 */
function cancelOrders(env: Env, ids: number[]): unknown {
  env.assertExists('sale.order', ids);
  const orders = ids.map((id) => env.table('sale.order').get(id)!);
  if (env.version >= 17 && orders.some((o) => o.locked === true)) throw userError('You cannot cancel a locked order. Please unlock it first.');
  const draftInvoices = (o: Row): number[] =>
    (env.value('sale.order', o, 'invoice_ids') as number[]).filter((i) => env.table('account.move').get(i)?.state === 'draft');
  const warn = env.version <= 18 && !env.context.disable_cancel_warning
    && orders.some((o) => o.state !== 'draft' || (env.version === 16 && draftInvoices(o).length > 0));
  if (warn) {
    const id = env.ensureOne('sale.order', ids);
    const typeName = ['draft', 'sent', 'cancel'].includes(orders[0]!.state as string) ? 'Quotation' : 'Sales Order';
    return {
      name: `Cancel ${typeName}`, view_mode: 'form', res_model: 'sale.order.cancel', view_id: false, type: 'ir.actions.act_window', target: 'new',
      context: {
        ...(env.version === 16 ? { default_use_template: false } : {}),
        default_template_id: false, default_order_id: id, mark_so_as_canceled: true,
        default_email_layout_xmlid: 'mail.mail_notification_layout_with_responsible_signature', model_description: typeName,
      },
    };
  }
  for (const o of orders) {
    for (const inv of draftInvoices(o)) env.db.update('account.move', inv, { state: 'cancel' });
    for (const p of [...env.table('stock.picking').values()].filter((x) => x.sale_id === o.id)) {
      for (const m of movesOf(env, p.id)) if (m.state !== 'done') env.db.update('stock.move', m.id, { state: 'cancel' });
    }
    env.db.update('sale.order', o.id, { state: 'cancel' });
  }
  return true;
}

function linesOf(env: Env, model: string, orderId: number): Row[] {
  return env.rowsBy(model, 'order_id', orderId).sort((a, b) => (a.sequence as number) - (b.sequence as number) || a.id - b.id);
}

export function registerOrderMethods(reg: MethodRegistry): void {
  reg.add('purchase.order', 'button_confirm', {
    api: 'multi', owner: 'PurchaseOrder', params: [],
    run: (env, _m, ids) => {
      env.checkAccess('purchase.order', 'write');
      env.assertExists('purchase.order', ids);
      for (const id of ids) {
        const po = env.table('purchase.order').get(id)!;
        if (!['draft', 'sent'].includes(po.state as string)) continue; // others silently skipped (§B.2, §D)
        env.db.update('purchase.order', id, { state: 'purchase', date_approve: env.nowString() });
        createTransfer(env, 'in', env.table('purchase.order').get(id)!, linesOf(env, 'purchase.order.line', id), 'purchase_line_id');
      }
      return true;
    },
  });
  reg.add('purchase.order', 'button_cancel', {
    api: 'multi', owner: 'PurchaseOrder', params: [],
    run: (env, _m, ids) => {
      env.checkAccess('purchase.order', 'write');
      env.assertExists('purchase.order', ids);
      for (const id of ids) {
        const po = env.table('purchase.order').get(id)!;
        const pickings = [...env.table('stock.picking').values()].filter((p) => p.purchase_id === id);
        if (pickings.some((p) => env.value('stock.picking', p, 'state') === 'done')) throw userError(`Unable to cancel purchase order ${String(po.name)} as some receptions have already been done.`);
        for (const p of pickings) for (const m of movesOf(env, p.id)) if (m.state !== 'done') env.db.update('stock.move', m.id, { state: 'cancel' });
        env.db.update('purchase.order', id, { state: 'cancel' });
      }
      return undefined;
    },
  });
  reg.add('purchase.order', 'button_draft', {
    api: 'multi', owner: 'PurchaseOrder', params: [],
    run: (env, _m, ids) => { env.assertExists('purchase.order', ids); for (const id of ids) env.db.update('purchase.order', id, { state: 'draft' }); return {}; },
  });

  reg.add('sale.order', 'action_confirm', {
    api: 'multi', owner: 'SaleOrder', params: [],
    run: (env, _m, ids) => {
      env.checkAccess('sale.order', 'write');
      env.assertExists('sale.order', ids);
      const orders = ids.map((id) => env.table('sale.order').get(id)!);
      if (env.version === 16) {
        const forbidden = orders.filter((o) => ['done', 'cancel'].includes(o.state as string));
        if (forbidden.length > 0) throw userError('It is not allowed to confirm an order in the following states: done, cancel');
      } else {
        const wrong = orders.filter((o) => !['draft', 'sent'].includes(o.state as string));
        if (wrong.length > 0) throw userError(`The following orders are not in a state requiring confirmation: ${wrong.map((o) => String(o.name)).join(', ')}`);
      }
      for (const o of orders) {
        const wasSale = o.state === 'sale';
        env.db.update('sale.order', o.id, { state: 'sale', date_order: env.nowString() });
        if (!wasSale) createTransfer(env, 'out', env.table('sale.order').get(o.id)!, linesOf(env, 'sale.order.line', o.id), 'sale_line_id');
      }
      // "Lock Confirmed Sales": 17+ `action_lock()` (locked = True) when the order's creator has
      // sale.group_auto_done_setting; 16 `action_done()` (state done) when the confirming user has it.
      if (env.settings.lockConfirmedSales) {
        for (const o of orders) env.db.update('sale.order', o.id, env.version >= 17 ? { locked: true } : { state: 'done' });
      }
      return true;
    },
  });
  reg.add('sale.order', 'action_quotation_sent', {
    api: 'multi', owner: 'SaleOrder', params: [],
    run: (env, _m, ids) => {
      env.checkAccess('sale.order', 'write');
      env.assertExists('sale.order', ids);
      const orders = ids.map((id) => env.table('sale.order').get(id)!);
      if (orders.some((o) => o.state !== 'draft' && o.state !== 'sent')) throw userError('Only draft orders can be marked as sent directly.');
      for (const o of orders) env.db.update('sale.order', o.id, { state: 'sent' });
      return true;
    },
  });
  reg.add('sale.order', 'action_cancel', {
    api: 'multi', owner: 'SaleOrder', params: [],
    run: (env, _m, ids) => { env.checkAccess('sale.order', 'write'); return cancelOrders(env, ids); },
  });
  // The confirmation wizard (16–18): its button cancels with the warning off.
  reg.add('sale.order.cancel', 'action_cancel', {
    api: 'multi', owner: 'SaleOrderCancel', params: [], versions: [16, 17, 18],
    run: (env, m, ids) => {
      const w = env.table(m).get(env.ensureOne(m, ids))!;
      return cancelOrders(env.withContext({ disable_cancel_warning: true }), [w.order_id as number]);
    },
  });
  reg.add('sale.order', 'action_draft', {
    api: 'multi', owner: 'SaleOrder', params: [],
    run: (env, _m, ids) => {
      env.assertExists('sale.order', ids);
      for (const id of ids) if (['cancel', 'sent'].includes(env.table('sale.order').get(id)!.state as string)) env.db.update('sale.order', id, { state: 'draft' });
      return true;
    },
  });
  reg.add('sale.order', 'action_lock', {
    api: 'multi', owner: 'SaleOrder', params: [], versions: [17, 18, 19],
    run: (env, _m, ids) => { env.assertExists('sale.order', ids); for (const id of ids) env.db.update('sale.order', id, { locked: true }); return true; },
  });
  // "Unlock": 17+ `locked = False`; 16 `write({'state': 'sale'})` on a locked (done) order.
  reg.add('sale.order', 'action_unlock', {
    api: 'multi', owner: 'SaleOrder', params: [],
    run: (env, _m, ids) => {
      env.assertExists('sale.order', ids);
      for (const id of ids) env.db.update('sale.order', id, env.version >= 17 ? { locked: false } : { state: 'sale' });
      return true;
    },
  });
  reg.add('sale.order', 'action_done', {
    api: 'multi', owner: 'SaleOrder', params: [], versions: [16],
    run: (env, _m, ids) => { env.assertExists('sale.order', ids); for (const id of ids) env.db.update('sale.order', id, { state: 'done' }); return true; },
  });

  reg.add('sale.advance.payment.inv', 'create_invoices', {
    api: 'multi', owner: 'SaleAdvancePaymentInv', params: [],
    run: (env, m, ids) => {
      const wid = env.ensureOne(m, ids);
      const w = env.table(m).get(wid)!;
      const orderIds = (w.sale_order_ids as number[] | undefined)?.length ? (w.sale_order_ids as number[]) : ((env.context.active_ids as number[] | undefined) ?? []);
      const invoices: number[] = [];
      for (const oid of orderIds) {
        const o = env.browse('sale.order', oid);
        const lines = linesOf(env, 'sale.order.line', oid).filter((l) => (env.value('sale.order.line', l, 'qty_to_invoice') as number) > 0);
        if (lines.length === 0) continue;
        const taxField = env.version >= 19 ? 'tax_ids' : 'tax_id';
        const uomField = env.version >= 19 ? 'product_uom_id' : 'product_uom';
        invoices.push(env.sudo().createInternal('account.move', {
          move_type: 'out_invoice', partner_id: o.partner_invoice_id || o.partner_id, invoice_origin: o.name, ref: o.client_order_ref || false,
          invoice_line_ids: lines.map((l) => [0, 0, {
            product_id: l.product_id, name: l.name, quantity: env.value('sale.order.line', l, 'qty_to_invoice'), price_unit: l.price_unit,
            discount: l.discount, tax_ids: [[6, 0, (l[taxField] as number[] | undefined) ?? []]], product_uom_id: l[uomField], sale_line_ids: [[6, 0, [l.id]]],
          }]),
        }));
      }
      if (invoices.length === 0) {
        throw userError('There is no invoiceable line. If a product has a control policy based on received quantity, please make sure that a quantity has been received.');
      }
      return invoices.length === 1
        ? { name: 'Invoices', type: 'ir.actions.act_window', res_model: 'account.move', res_id: invoices[0], views: [[false, 'form']], view_mode: 'form', context: { default_move_type: 'out_invoice' } }
        : { name: 'Invoices', type: 'ir.actions.act_window', res_model: 'account.move', domain: [['id', 'in', invoices]], views: [[false, 'list'], [false, 'form']], view_mode: 'list,form', context: { default_move_type: 'out_invoice' } };
    },
  });
}
