/**
 * Inventory: pickings, moves, move lines, quants, lots, reorder points, and the validation wizards
 * (odoo-api.md §B.1, §D). Quantities follow the version drift: 16 keeps `qty_done` and
 * `reserved_uom_qty` on move lines, 17+ one `quantity` plus `picked`.
 */
import type { MethodRegistry } from './methods.ts';
import { userError, validationError } from './odoo-errors.ts';
import type { Env, ModelHooks, Vals } from './orm.ts';
import { childLocations, formatDatetime, isStorable, moveQuantity, templateOf } from './schema.ts';
import type { Row } from './types.ts';

const LIVE = (m: Row) => m.state !== 'done' && m.state !== 'cancel';

function lineQty(env: Env, l: Row): number {
  return ((env.version === 16 ? l.qty_done : l.quantity) as number) ?? 0;
}
const qtyField = (env: Env) => (env.version === 16 ? 'qty_done' : 'quantity');

function isInternalLoc(env: Env, id: unknown): boolean {
  const l = typeof id === 'number' ? env.table('stock.location').get(id) : undefined;
  return !!l && (l.usage === 'internal' || l.usage === 'transit');
}

export function movesOf(env: Env, pickingId: number): Row[] {
  return env.rowsBy('stock.move', 'picking_id', pickingId);
}
function linesOfMove(env: Env, moveId: number): Row[] {
  return env.rowsBy('stock.move.line', 'move_id', moveId);
}
function linesOfPicking(env: Env, pickingId: number): Row[] {
  return env.rowsBy('stock.move.line', 'picking_id', pickingId);
}
function pickingState(env: Env, id: number): string {
  return env.value('stock.picking', env.browse('stock.picking', id), 'state') as string;
}
function productName(env: Env, productId: unknown): string {
  const p = env.table('product.product').get(productId as number);
  return p ? env.displayName('product.product', p) : String(productId);
}
function tracking(env: Env, productId: unknown): string {
  return (templateOf(env, env.table('product.product').get(productId as number))?.tracking as string | undefined) ?? 'none';
}

// ------------------------------------------------------------------------------------------ quants

export function findQuant(env: Env, productId: number, locationId: number, lotId: number | false): Row | undefined {
  return env.rowsBy('stock.quant', 'product_id', productId).find((q) => q.location_id === locationId && (q.lot_id || false) === lotId);
}

/**
 * `stock.quant._is_inventory_mode`: the context's `inventory_mode`, for a user of the stock user
 * group (`stock.group_stock_user`). Both kinds of emulated users have it: the admin, and the bot
 * (Inventory/User + Sales/User + Purchase/User + Billing, odoo-api.md §D "Rights").
 */
function inventoryMode(env: Env): boolean {
  const stockUser = env.rights === 'admin' || env.rights === 'bot';
  return Boolean(env.context.inventory_mode) && stockUser;
}

/**
 * `stock.quant._get_inventory_fields_create`: the fields a user may give to create a quant in
 * inventory mode (17–19: product_id, owner_id and `_get_inventory_fields_write`; 16 lists
 * location_id, lot_id and package_id itself: the same set), with stock_account's accounting_date
 * (installed with stock and account).
 */
const INVENTORY_FIELDS_CREATE: ReadonlySet<string> = new Set([
  'product_id', 'location_id', 'lot_id', 'package_id', 'owner_id',
  'inventory_quantity', 'inventory_quantity_auto_apply', 'inventory_diff_quantity', 'inventory_date', 'user_id', 'inventory_quantity_set', 'is_outdated',
  'accounting_date',
]);

/** `stock.quant.action_apply_inventory` (`_apply_inventory`): the counted quantity becomes the quantity; stock managers only. */
function applyInventory(env: Env, ids: number[]): void {
  if (env.rights !== 'admin') throw userError('Only a stock manager can validate an inventory adjustment.');
  env.assertExists('stock.quant', ids);
  for (const id of ids) {
    const q = env.table('stock.quant').get(id)!;
    env.db.update('stock.quant', id, { quantity: q.inventory_quantity, inventory_quantity: 0, inventory_quantity_set: false });
  }
}

/**
 * `stock.quant._update_available_quantity` / `_update_reserved_quantity` (internal locations only).
 * A move line may take stock from any location (a child of its move's source included: the move
 * line's `location_id` domain, `[('usage', '!=', 'view')]`, is a form domain, not a server
 * check); the one place Odoo refuses is a view location, which may hold no quant
 * (`stock.quant.check_location_id`, 16–19: ValidationError).
 */
export function updateQuant(env: Env, productId: number, locationId: number, lotId: number | false, dQty: number, dReserved: number): void {
  const location = env.table('stock.location').get(locationId);
  if (location?.usage === 'view' && dQty !== 0 && isStorable(env, productId)) {
    throw validationError(`You cannot take products from or deliver products to a location of type "view" (${String(location.name)}).`);
  }
  if (!isInternalLoc(env, locationId) || !isStorable(env, productId)) return;
  const q = findQuant(env, productId, locationId, lotId);
  if (q) {
    env.db.update('stock.quant', q.id, { quantity: (q.quantity as number) + dQty, reserved_quantity: Math.max(0, (q.reserved_quantity as number) + dReserved) });
  } else if (dQty !== 0) {
    env.sudo().createInternal('stock.quant', { product_id: productId, location_id: locationId, lot_id: lotId, quantity: dQty, reserved_quantity: Math.max(0, dReserved) });
  }
}

// ------------------------------------------------------------------------------------- reservation

function recomputeMoveState(env: Env, moveId: number): void {
  const m = env.table('stock.move').get(moveId);
  if (!m || !['confirmed', 'partially_available', 'assigned', 'waiting'].includes(m.state as string)) return;
  const reserved = env.version === 16
    ? linesOfMove(env, moveId).reduce((s, l) => s + ((l.reserved_uom_qty as number) || 0), 0)
    : moveQuantity(env, m);
  const demand = m.product_uom_qty as number;
  const state = reserved >= demand - 1e-9 ? 'assigned' : reserved > 0 ? 'partially_available' : 'confirmed';
  env.db.update('stock.move', moveId, { state });
}

/** Reserves stock for a move (`stock.move._action_assign`): FEFO on lots with an expiry, else FIFO. */
function reserveMove(env: Env, moveId: number): void {
  const m = env.table('stock.move').get(moveId)!;
  if (!['confirmed', 'partially_available', 'waiting'].includes(m.state as string)) return;
  // 17+: a move the user already picked keeps its lines; reservation does not add to them.
  if (env.version >= 17 && m.picked === true) { recomputeMoveState(env, moveId); return; }
  const reservedNow = env.version === 16
    ? linesOfMove(env, moveId).reduce((s, l) => s + ((l.reserved_uom_qty as number) || 0), 0)
    : moveQuantity(env, m);
  let need = (m.product_uom_qty as number) - reservedNow;
  if (need <= 1e-9) { recomputeMoveState(env, moveId); return; }
  const base = { move_id: moveId, picking_id: m.picking_id, product_id: m.product_id, product_uom_id: m.product_uom, location_dest_id: m.location_dest_id };
  if (!isStorable(env, m.product_id) || !isInternalLoc(env, m.location_id)) {
    // Consumables and moves out of non-internal locations bypass reservation (`_should_bypass_reservation`).
    createLine(env, { ...base, location_id: m.location_id, lot_id: false, ...(env.version === 16 ? { reserved_uom_qty: need } : { quantity: need }) });
  } else {
    const within = childLocations(env, m.location_id as number);
    const lots = env.table('stock.lot');
    const quants = env.rowsBy('stock.quant', 'product_id', m.product_id)
      .filter((q) => within.has(q.location_id as number) && (q.quantity as number) - (q.reserved_quantity as number) > 1e-9)
      .sort((a, b) => {
        const ka = (typeof a.lot_id === 'number' ? (lots.get(a.lot_id)?.removal_date || lots.get(a.lot_id)?.expiration_date) : false) || '9999';
        const kb = (typeof b.lot_id === 'number' ? (lots.get(b.lot_id)?.removal_date || lots.get(b.lot_id)?.expiration_date) : false) || '9999';
        if (ka !== kb) return String(ka) < String(kb) ? -1 : 1;
        return String(a.in_date) < String(b.in_date) ? -1 : String(a.in_date) > String(b.in_date) ? 1 : a.id - b.id;
      });
    for (const q of quants) {
      if (need <= 1e-9) break;
      const take = Math.min(need, (q.quantity as number) - (q.reserved_quantity as number));
      const line = createLine(env, { ...base, location_id: q.location_id, lot_id: q.lot_id || false, ...(env.version === 16 ? { reserved_uom_qty: take } : { quantity: take }) }, false);
      env.db.update('stock.quant', q.id, { reserved_quantity: (q.reserved_quantity as number) + take });
      env.db.update('stock.move.line', line, { __reserved: take });
      need -= take;
    }
  }
  recomputeMoveState(env, moveId);
}

function createLine(env: Env, vals: Vals, reserve = true): number {
  return env.sudo().withContext({ __no_reserve: !reserve }).createInternal('stock.move.line', vals);
}

function releaseLine(env: Env, l: Row): void {
  const reserved = (l.__reserved as number | undefined) ?? 0;
  if (reserved > 0) updateQuant(env, l.product_id as number, l.location_id as number, (l.lot_id as number) || false, 0, -reserved);
}

function unreserveMove(env: Env, moveId: number, removeAll: boolean): void {
  for (const l of linesOfMove(env, moveId)) {
    const keep = !removeAll && (env.version === 16 ? (l.qty_done as number) > 0 : l.picked === true);
    releaseLine(env, l);
    if (keep) env.db.update('stock.move.line', l.id, { __reserved: 0, ...(env.version === 16 ? { reserved_uom_qty: 0 } : {}) });
    else env.db.delete('stock.move.line', l.id);
  }
  const m = env.table('stock.move').get(moveId)!;
  if (LIVE(m) && m.state !== 'draft') env.db.update('stock.move', moveId, { state: 'confirmed' });
  recomputeMoveState(env, moveId);
}

// --------------------------------------------------------------------------------- picking actions

export function confirmPickings(env: Env, ids: number[]): void {
  for (const pid of ids) {
    const p = env.browse('stock.picking', pid);
    const drafts = movesOf(env, pid).filter((m) => m.state === 'draft');
    for (const m of drafts) env.db.update('stock.move', m.id, { state: 'confirmed' });
    for (const m of drafts) recomputeMoveState(env, m.id);
    const type = env.table('stock.picking.type').get(p.picking_type_id as number);
    if ((type?.reservation_method ?? 'at_confirm') === 'at_confirm') for (const m of drafts) reserveMove(env, m.id);
  }
}

function setMoveQuantity(env: Env, moveId: number, value: number): void {
  const m = env.browse('stock.move', moveId);
  const lines = linesOfMove(env, moveId);
  const current = lines.reduce((s, l) => s + lineQty(env, l), 0);
  let diff = value - current;
  if (Math.abs(diff) < 1e-9) return;
  const f = qtyField(env);
  if (diff > 0) {
    const target = lines[0];
    if (target) env.db.update('stock.move.line', target.id, { [f]: lineQty(env, target) + diff });
    else createLine(env, { move_id: moveId, picking_id: m.picking_id, product_id: m.product_id, product_uom_id: m.product_uom, location_id: m.location_id, location_dest_id: m.location_dest_id, [f]: diff });
  } else {
    for (const l of [...lines].reverse()) {
      if (diff >= 0) break;
      const q = lineQty(env, l);
      const cut = Math.min(q, -diff);
      env.db.update('stock.move.line', l.id, { [f]: q - cut });
      diff += cut;
    }
  }
  recomputeMoveState(env, moveId);
}

function wizardAction(name: string, resModel: string, context: Record<string, unknown>): Record<string, unknown> {
  return { name, type: 'ir.actions.act_window', view_mode: 'form', res_model: resModel, views: [[false, 'form']], view_id: false, target: 'new', context };
}

function sanityCheck(env: Env, ids: number[]): void {
  for (const pid of ids) {
    if (movesOf(env, pid).length === 0 && linesOfPicking(env, pid).length === 0) {
      throw userError(env.version === 16 ? 'Please add some items to move.' : 'You can’t validate an empty transfer. Please add some products to move before proceeding.');
    }
  }
  for (const pid of ids) {
    const live = movesOf(env, pid).filter(LIVE);
    const noQty = env.version === 16
      ? live.every((m) => linesOfMove(env, m.id).every((l) => !((l.qty_done as number) > 0) && !((l.reserved_uom_qty as number) > 0)))
      : live.every((m) => !(moveQuantity(env, m) > 0));
    if (noQty) {
      // `_get_without_quantities_error_message`: 19 has words of its own (stock_picking.py, 19).
      throw userError(env.version === 16
        ? 'You cannot validate a transfer if no quantities are reserved nor done. To force the transfer, switch in edit mode and encode the done quantities.'
        : env.version >= 19
          ? "Transfer trouble alert! Validating a zero quantity transfer? You're not moving invisible goods around are you?\nSet some quantities and let's get moving!"
          : 'You cannot validate a transfer if no quantities are reserved nor done. To force the transfer, encode quantities.');
    }
  }
  const missing = new Set<string>();
  for (const pid of ids) {
    for (const l of linesOfPicking(env, pid)) {
      const m = env.table('stock.move').get(l.move_id as number);
      if (m && !LIVE(m)) continue;
      if (lineQty(env, l) > 0 && tracking(env, l.product_id) !== 'none' && typeof l.lot_id !== 'number' && !l.lot_name) missing.add(productName(env, l.product_id));
    }
  }
  if (missing.size > 0) throw userError(`You need to supply a Lot/Serial number for products ${[...missing].join(', ')}.`);
}

/** `stock.picking.button_validate` (`v17:stock_picking.py`), returning True or a wizard action dict. */
export function buttonValidate(env: Env, idsIn: number[]): unknown {
  env.assertExists('stock.picking', idsIn);
  let ids = idsIn;
  if (env.version >= 18) ids = ids.filter((id) => pickingState(env, id) !== 'done'); // 18/19 filter done pickings out
  if (ids.length === 0) return true;
  if (env.version >= 17) {
    // 17+ (`v17:stock_picking.py:1116-1122`): draft pickings are confirmed and their moves without
    // a quantity get their demand. 16 has no such step: its sanity check runs on the picking as it
    // is (a draft picking without done quantities is refused).
    const drafts = ids.filter((id) => pickingState(env, id) === 'draft');
    confirmPickings(env, drafts);
    for (const pid of drafts) {
      for (const m of movesOf(env, pid).filter(LIVE)) {
        if (!(moveQuantity(env, m) > 0) && (m.product_uom_qty as number) > 0) setMoveQuantity(env, m.id, m.product_uom_qty as number);
      }
    }
  }
  if (!env.context.skip_sanity_check) sanityCheck(env, ids);
  const ctxIds = { button_validate_picking_ids: ids };
  // _pre_action_done_hook
  if (env.version === 16 && !env.context.skip_immediate) {
    const immediate = ids.filter((pid) => linesOfPicking(env, pid).every((l) => !((l.qty_done as number) > 0)));
    if (immediate.length > 0) {
      return wizardAction('Immediate Transfer?', 'stock.immediate.transfer', {
        ...ctxIds, default_show_transfers: false, default_pick_ids: immediate.map((i) => [4, i]),
        default_immediate_transfer_line_ids: immediate.map((i) => [0, 0, { to_immediate: true, picking_id: i }]),
      });
    }
  }
  if (env.version >= 17) {
    for (const pid of ids) {
      const moves = movesOf(env, pid).filter(LIVE);
      if (moves.every((m) => m.picked !== true)) {
        for (const m of moves) {
          env.db.update('stock.move', m.id, { picked: true });
          for (const l of linesOfMove(env, m.id)) env.db.update('stock.move.line', l.id, { picked: true });
        }
      }
    }
  }
  if (!env.context.skip_backorder) {
    const short = ids.filter((pid) => {
      const type = env.table('stock.picking.type').get(env.browse('stock.picking', pid).picking_type_id as number);
      if ((type?.create_backorder ?? 'ask') !== 'ask') return false;
      return movesOf(env, pid).filter(LIVE).some((m) => doneQty(env, m) < (m.product_uom_qty as number) - 1e-9);
    });
    if (short.length > 0) {
      return wizardAction('Create Backorder?', 'stock.backorder.confirmation', { ...ctxIds, default_show_transfers: false, default_pick_ids: short.map((i) => [4, i]) });
    }
  }
  if (!env.context.skip_expired) {
    const expiredLots = new Set<number>();
    const pickings = new Set<number>();
    const now = formatDatetime(env.now());
    for (const pid of ids) {
      for (const l of linesOfPicking(env, pid)) {
        const lot = typeof l.lot_id === 'number' ? env.table('stock.lot').get(l.lot_id) : undefined;
        if (lot && typeof lot.expiration_date === 'string' && lot.expiration_date <= now && lineQty(env, l) > 0) { expiredLots.add(lot.id); pickings.add(pid); }
      }
    }
    if (expiredLots.size > 0) {
      return wizardAction('Confirmation', 'expiry.picking.confirmation', {
        ...ctxIds, default_lot_ids: [[6, 0, [...expiredLots]]], default_picking_ids: [[6, 0, [...pickings]]],
      });
    }
  }
  const noBackorder = new Set<number>((env.context.picking_ids_not_to_backorder as number[] | undefined) ?? []);
  for (const pid of ids) {
    const type = env.table('stock.picking.type').get(env.browse('stock.picking', pid).picking_type_id as number);
    const cancelRest = noBackorder.has(pid) || type?.create_backorder === 'never' || env.context.cancel_backorder === true;
    actionDone(env, pid, cancelRest);
  }
  return true;
}

/** 16: the lines' `qty_done`; 17+: `_get_picked_quantity` — the quantity of the picked lines. */
function doneQty(env: Env, m: Row): number {
  if (env.version === 16) return linesOfMove(env, m.id).reduce((s, l) => s + ((l.qty_done as number) || 0), 0);
  return linesOfMove(env, m.id).filter((l) => l.picked === true).reduce((s, l) => s + ((l.quantity as number) || 0), 0);
}

/** `stock.picking._action_done`: moves quants, splits the rest into a backorder or cancels it. */
function actionDone(env: Env, pickingId: number, cancelRest: boolean): void {
  const picking = env.browse('stock.picking', pickingId);
  const leftovers: Array<{ move: Row; qty: number }> = [];
  for (const m of movesOf(env, pickingId).filter(LIVE)) {
    const done = doneQty(env, m);
    const demand = m.product_uom_qty as number;
    if (done <= 1e-9) {
      unreserveMove(env, m.id, true);
      if (cancelRest) env.db.update('stock.move', m.id, { state: 'cancel' });
      else leftovers.push({ move: m, qty: demand });
      if (!cancelRest) env.db.delete('stock.move', m.id);
      continue;
    }
    for (const l of linesOfMove(env, m.id)) {
      const q = lineQty(env, l);
      releaseLine(env, l);
      if (q <= 1e-9 || (env.version >= 17 && l.picked !== true)) { env.db.delete('stock.move.line', l.id); continue; }
      let lotId = (l.lot_id as number) || false;
      if (!lotId && l.lot_name && tracking(env, l.product_id) !== 'none') {
        lotId = env.sudo().createInternal('stock.lot', { name: l.lot_name, product_id: l.product_id, company_id: 1 });
        env.db.update('stock.move.line', l.id, { lot_id: lotId });
      }
      updateQuant(env, l.product_id as number, l.location_id as number, lotId, -q, 0);
      if (lotId) compensateFromUntracked(env, l.product_id as number, l.location_id as number, lotId, q);
      updateQuant(env, l.product_id as number, l.location_dest_id as number, lotId, q, 0);
      env.db.update('stock.move.line', l.id, { __reserved: 0, ...(env.version === 16 ? { reserved_uom_qty: 0 } : {}), date: env.nowString() });
    }
    if (done < demand - 1e-9) {
      env.db.update('stock.move', m.id, { product_uom_qty: done });
      if (cancelRest) {
        const split = copyMove(env, m, demand - done, pickingId);
        env.db.update('stock.move', split, { state: 'cancel' });
      } else leftovers.push({ move: m, qty: demand - done });
    }
    env.db.update('stock.move', m.id, { state: 'done', date: env.nowString() });
  }
  if (leftovers.length > 0) {
    const backorder = env.sudo().createInternal('stock.picking', {
      picking_type_id: picking.picking_type_id, location_id: picking.location_id, location_dest_id: picking.location_dest_id,
      partner_id: picking.partner_id, origin: picking.origin, backorder_id: pickingId, purchase_id: picking.purchase_id, sale_id: picking.sale_id,
    });
    for (const { move, qty } of leftovers) {
      const nm = copyMove(env, move, qty, backorder);
      env.db.update('stock.move', nm, { state: 'confirmed' });
      reserveMove(env, nm);
    }
  }
  env.db.update('stock.picking', pickingId, { date_done: env.nowString() });
}

/**
 * `stock.move.line._synchronize_quant`: a lot quant driven negative is made good from the
 * location's untracked (lot-less) stock when there is some.
 */
function compensateFromUntracked(env: Env, productId: number, locationId: number, lotId: number, consumed: number): void {
  const lotQuant = findQuant(env, productId, locationId, lotId);
  const untracked = findQuant(env, productId, locationId, false);
  if (!lotQuant || !untracked || (lotQuant.quantity as number) >= 0) return;
  const available = (untracked.quantity as number) - (untracked.reserved_quantity as number);
  if (available <= 0) return;
  const take = Math.min(available, consumed, -(lotQuant.quantity as number));
  updateQuant(env, productId, locationId, false, -take, 0);
  updateQuant(env, productId, locationId, lotId, take, 0);
}

function copyMove(env: Env, m: Row, qty: number, pickingId: number): number {
  const vals: Vals = {
    product_id: m.product_id, product_uom_qty: qty, product_uom: m.product_uom, location_id: m.location_id, location_dest_id: m.location_dest_id,
    picking_id: pickingId, origin: m.origin, purchase_line_id: m.purchase_line_id, sale_line_id: m.sale_line_id, description_picking: m.description_picking,
  };
  if (env.version <= 18) vals.name = m.name;
  return env.sudo().withContext({ __internal_move: true }).createInternal('stock.move', vals);
}

function cancelPickings(env: Env, ids: number[]): void {
  for (const pid of ids) for (const m of movesOf(env, pid).filter(LIVE)) { unreserveMove(env, m.id, true); env.db.update('stock.move', m.id, { state: 'cancel' }); }
}

// ------------------------------------------------------------------------------------------- hooks

/**
 * `stock.picking` SQL constraint `name_uniq` unique(name, company_id), "Reference must be unique
 * per company!", raised as a ValidationError (16: the constraint's message; 17+: through
 * `_as_validation_error`, "The operation cannot be completed: …").
 */
function checkPickingNames(env: Env, ids: number[]): void {
  for (const id of ids) {
    const p = env.table('stock.picking').get(id);
    if (!p || typeof p.name !== 'string') continue;
    const twins = env.rowsBy('stock.picking', 'name', p.name).filter((o) => (o.company_id || false) === (p.company_id || false));
    if (twins.length > 1) {
      throw validationError(env.version === 16 ? 'Reference must be unique per company!' : 'The operation cannot be completed: Reference must be unique per company!');
    }
  }
}

export function stockHooks(): Record<string, ModelHooks> {
  return {
    'stock.picking': {
      beforeCreate: (env, vals) => {
        const type = typeof vals.picking_type_id === 'number' ? env.table('stock.picking.type').get(vals.picking_type_id) : undefined;
        if (type) {
          if (vals.location_id === undefined && type.default_location_src_id) vals.location_id = type.default_location_src_id;
          if (vals.location_dest_id === undefined && type.default_location_dest_id) vals.location_dest_id = type.default_location_dest_id;
          if (!vals.name || vals.name === '/') {
            const wh = env.table('stock.warehouse').get(type.warehouse_id as number);
            vals.name = env.sequence(`stock.picking.type.${type.id}`, `${wh ? `${String(wh.code)}/` : ''}${String(type.sequence_code)}/`, 5);
          }
        }
      },
      afterCreate: (env, id) => checkPickingNames(env, [id]),
      beforeWrite: (env, ids, vals) => {
        if (vals.picking_type_id !== undefined && ids.some((id) => pickingState(env, id) !== 'draft')) {
          throw userError('Changing the operation type of this record is forbidden at this point.');
        }
      },
      afterWrite: (env, ids, vals) => { if (vals.name !== undefined || vals.company_id !== undefined) checkPickingNames(env, ids); },
      beforeUnlink: (env, ids) => {
        for (const id of ids) for (const m of movesOf(env, id)) if (m.state === 'done') throw userError('You can not delete product moves if the picking is done. You can only correct the done quantities.');
      },
    },
    'stock.move': {
      beforeCreate: (env, vals) => {
        const picking = typeof vals.picking_id === 'number' ? env.table('stock.picking').get(vals.picking_id) : undefined;
        if (picking) {
          if (vals.location_id === undefined) vals.location_id = picking.location_id;
          if (vals.location_dest_id === undefined) vals.location_dest_id = picking.location_dest_id;
          if (vals.picking_type_id === undefined) vals.picking_type_id = picking.picking_type_id;
          if (vals.origin === undefined) vals.origin = picking.origin;
        }
        if (vals.product_uom === undefined && typeof vals.product_id === 'number') {
          vals.product_uom = templateOf(env, env.table('product.product').get(vals.product_id))?.uom_id ?? false;
        }
      },
      afterCreate: (env, id) => {
        const m = env.table('stock.move').get(id)!;
        const pid = m.picking_id;
        if (typeof pid === 'number' && !env.context.__internal_move && m.state === 'draft') {
          const others = movesOf(env, pid).filter((x) => x.id !== id);
          if (others.length > 0 && others.every((x) => x.state !== 'draft') && others.some(LIVE)) {
            env.db.update('stock.move', id, { state: 'confirmed' });
            reserveMove(env, id);
          }
        }
      },
      beforeWrite: (env, ids, vals) => {
        if (vals.product_uom_qty !== undefined) {
          for (const id of ids) if (env.browse('stock.move', id).state === 'done') throw userError('You cannot change the quantity of a done move; correct the move lines instead.');
        }
      },
      afterWrite: (env, ids, vals) => {
        if (env.version >= 17 && vals.picked !== undefined) {
          for (const id of ids) for (const l of linesOfMove(env, id)) env.db.update('stock.move.line', l.id, { picked: vals.picked === true });
        }
      },
      beforeUnlink: (env, ids) => {
        for (const id of ids) {
          const m = env.browse('stock.move', id);
          if (!['draft', 'cancel'].includes(m.state as string) && !env.su) throw userError('You can only delete draft or cancelled moves.');
          for (const l of linesOfMove(env, id)) releaseLine(env, l);
        }
      },
      inverse: {
        quantity: (env, id, v) => setMoveQuantity(env, id, Number(v) || 0),
        quantity_done: (env, id, v) => setMoveQuantity(env, id, Number(v) || 0),
      },
    },
    'stock.move.line': {
      beforeCreate: (env, vals) => {
        let move = typeof vals.move_id === 'number' ? env.table('stock.move').get(vals.move_id) : undefined;
        // picking_id is NOT taken from the move: lines nested in `move_ids` keep picking_id NULL (odoo-api.md §D).
        if (move && vals.product_id === undefined) vals.product_id = move.product_id;
        const picking = typeof vals.picking_id === 'number' ? env.table('stock.picking').get(vals.picking_id) : undefined;
        if (!move && picking && typeof vals.product_id === 'number') {
          // `v17:stock_move_line.py:302-335`: a line on a picking without move links to / creates one.
          move = movesOf(env, picking.id).find((m) => m.product_id === vals.product_id && LIVE(m));
          if (!move) {
            const state = pickingState(env, picking.id);
            const qty = (vals.quantity ?? vals.qty_done ?? 0) as number;
            const mv: Vals = { product_id: vals.product_id, product_uom_qty: qty, picking_id: picking.id, location_id: vals.location_id ?? picking.location_id, location_dest_id: vals.location_dest_id ?? picking.location_dest_id };
            if (env.version <= 18) mv.name = productName(env, vals.product_id);
            const mid = env.sudo().withContext({ __internal_move: true }).createInternal('stock.move', mv);
            if (state !== 'draft') env.db.update('stock.move', mid, { state: 'confirmed' });
            move = env.table('stock.move').get(mid);
          }
          vals.move_id = move!.id;
        }
        if (vals.location_id === undefined) vals.location_id = move?.location_id ?? picking?.location_id;
        if (vals.location_dest_id === undefined) vals.location_dest_id = move?.location_dest_id ?? picking?.location_dest_id;
        if (vals.product_uom_id === undefined && typeof vals.product_id === 'number') vals.product_uom_id = move?.product_uom ?? templateOf(env, env.table('product.product').get(vals.product_id))?.uom_id;
        if (typeof vals.lot_id === 'number') {
          const lot = env.table('stock.lot').get(vals.lot_id);
          if (lot && lot.product_id !== vals.product_id) throw userError(`The Lot/Serial number (${String(lot.name)}) is linked to another product.`);
        }
      },
      afterCreate: (env, id) => {
        const l = env.table('stock.move.line').get(id)!;
        if (env.context.__no_reserve !== true) {
          const q = env.version === 16 ? ((l.reserved_uom_qty as number) || 0) : lineQty(env, l);
          const quant = isStorable(env, l.product_id) && q > 0 ? findQuant(env, l.product_id as number, l.location_id as number, (l.lot_id as number) || false) : undefined;
          if (quant) {
            env.db.update('stock.quant', quant.id, { reserved_quantity: (quant.reserved_quantity as number) + q });
            env.db.update('stock.move.line', id, { __reserved: q });
          }
        }
        if (typeof l.move_id === 'number') {
          const m = env.table('stock.move').get(l.move_id);
          if (m && env.version >= 17 && l.picked === true && m.picked !== true) env.db.update('stock.move', m.id, { picked: true });
          recomputeMoveState(env, l.move_id);
        }
      },
      afterWrite: (env, ids) => {
        for (const id of ids) { const l = env.table('stock.move.line').get(id); if (typeof l?.move_id === 'number') recomputeMoveState(env, l.move_id); }
      },
      beforeUnlink: (env, ids) => {
        for (const id of ids) {
          const l = env.browse('stock.move.line', id);
          const m = env.table('stock.move').get(l.move_id as number);
          if (m?.state === 'done' && !env.su) throw userError('You can not delete product moves if the picking is done. You can only correct the done quantities.');
          releaseLine(env, l);
        }
      },
    },
    'stock.lot': {
      beforeCreate: (env, vals) => {
        const product = env.table('product.product').get(vals.product_id as number);
        const t = templateOf(env, product);
        const expiry = t?.use_expiration_date === true;
        if (vals.expiration_date === undefined && expiry && (t.expiration_time as number) > 0) {
          vals.expiration_date = formatDatetime(new Date(env.now().getTime() + (t.expiration_time as number) * 86_400_000));
        }
        // product_expiry `_compute_dates`: for a product with expiration dates, use/removal/alert
        // date = expiration date minus the product's use_time/removal_time/alert_time (0 days: the
        // schema has no such fields); all three empty for a product without expiration dates.
        for (const f of ['use_date', 'removal_date', 'alert_date']) {
          if (vals[f] === undefined) vals[f] = expiry && typeof vals.expiration_date === 'string' ? vals.expiration_date : false;
        }
        const dup = [...env.table('stock.lot').values()].find((l) => l.name === vals.name && l.product_id === vals.product_id && (l.company_id || 1) === ((vals.company_id as number) || 1));
        if (dup) {
          throw validationError(`The combination of serial number and product must be unique across a company.\nFollowing combination contains duplicates:\n - Product: ${productName(env, vals.product_id)}, Serial Number: ${String(vals.name)}`);
        }
      },
    },
    'stock.scrap': {
      beforeCreate: (env, vals) => {
        if (!vals.name || vals.name === 'New') vals.name = env.sequence('stock.scrap', 'SP/', 5);
        if (vals.location_id === undefined) vals.location_id = [...env.table('stock.warehouse').values()][0]?.lot_stock_id ?? false;
        if (vals.scrap_location_id === undefined) vals.scrap_location_id = scrapLocationDefault(env);
        if (vals.product_uom_id === undefined && typeof vals.product_id === 'number') vals.product_uom_id = templateOf(env, env.table('product.product').get(vals.product_id))?.uom_id ?? false;
      },
    },
    'stock.warehouse.orderpoint': {
      beforeCreate: (env, vals) => {
        if (!vals.name || vals.name === '/') vals.name = env.sequence('stock.orderpoint', 'OP/', 5);
        if (vals.warehouse_id === undefined && typeof vals.location_id === 'number') {
          vals.warehouse_id = env.value('stock.location', env.browse('stock.location', vals.location_id), 'warehouse_id');
        }
      },
    },
    'stock.quant': {
      // `stock.quant.create` in inventory mode (stock_quant.py, 15–19), for a user of the stock
      // user group (`_is_inventory_mode`): only the inventory fields may be given ("Quant's
      // creation is restricted"), then "Create an empty quant or write on a similar one" — the
      // count of (product, location, lot) goes on the quant that already holds it (`_gather`,
      // strict), a new quant (created as superuser) only when there is none (odoo-api.md §B.1
      // Option 3: absolute counts). An import (`import_file`) does not merge. Outside inventory
      // mode it is the ordinary create, with the user's access rights.
      replaceCreate: (env, vals) => {
        if (!inventoryMode(env) || !('inventory_quantity' in vals || 'inventory_quantity_auto_apply' in vals)) return undefined;
        if (Object.keys(vals).some((k) => !INVENTORY_FIELDS_CREATE.has(k))) throw userError("Quant's creation is restricted, you can't do this operation.");
        const { inventory_quantity: counted, inventory_quantity_auto_apply: autoCounted, ...rest } = vals;
        const autoApply = 'inventory_quantity_auto_apply' in vals;
        const quantity = Number(autoCounted || counted || 0);
        const lotId = typeof rest.lot_id === 'number' ? rest.lot_id : false;
        const similar = !env.context.import_file && typeof rest.product_id === 'number' && typeof rest.location_id === 'number' ? findQuant(env, rest.product_id, rest.location_id, lotId) : undefined;
        const sudo = env.sudo();
        const id = similar?.id ?? sudo.createInternal('stock.quant', rest);
        sudo.writeInternal('stock.quant', [id], { inventory_quantity: quantity, inventory_quantity_set: true });
        // `inventory_quantity_auto_apply`'s inverse applies the count at once (a stock manager's act).
        if (autoApply) applyInventory(env, [id]);
        return id;
      },
      beforeCreate: (env, vals) => {
        if (inventoryMode(env) && vals.inventory_quantity !== undefined) vals.inventory_quantity_set = true;
        if (inventoryMode(env) && vals.quantity === undefined) vals.quantity = 0;
      },
    },
  };
}

// ------------------------------------------------------------------------------------------- scrap

function scrapLocationDefault(env: Env): number | false {
  const scrap = [...env.table('stock.location').values()].find((l) => l.usage === 'inventory' && (env.version <= 18 ? l.scrap_location === true : l.name === 'Scrap'));
  return scrap ? scrap.id : false;
}

/** `stock.scrap.do_scrap`: one done move out of the location, lot required for tracked products. */
function doScrap(env: Env, ids: number[]): true {
  for (const id of ids) {
    const sc = env.browse('stock.scrap', id);
    if (sc.state === 'done') continue;
    if (tracking(env, sc.product_id) !== 'none' && typeof sc.lot_id !== 'number') {
      throw userError(`You need to supply a Lot/Serial number for product: ${productName(env, sc.product_id)}.`);
    }
    const mv: Vals = {
      product_id: sc.product_id, product_uom_qty: sc.scrap_qty, product_uom: sc.product_uom_id, location_id: sc.location_id,
      location_dest_id: sc.scrap_location_id, origin: sc.origin || sc.name, scrap_id: id, ...(env.version <= 18 ? { name: String(sc.name), scrapped: true } : {}),
    };
    const moveId = env.sudo().withContext({ __internal_move: true }).createInternal('stock.move', mv);
    createLine(env, { move_id: moveId, product_id: sc.product_id, product_uom_id: sc.product_uom_id, location_id: sc.location_id, location_dest_id: sc.scrap_location_id, lot_id: sc.lot_id || false, ...(env.version === 16 ? { qty_done: sc.scrap_qty } : { quantity: sc.scrap_qty, picked: true }) }, false);
    updateQuant(env, sc.product_id as number, sc.location_id as number, (sc.lot_id as number) || false, -(sc.scrap_qty as number), 0);
    if (typeof sc.lot_id === 'number') compensateFromUntracked(env, sc.product_id as number, sc.location_id as number, sc.lot_id, sc.scrap_qty as number);
    updateQuant(env, sc.product_id as number, sc.scrap_location_id as number, (sc.lot_id as number) || false, sc.scrap_qty as number, 0);
    env.db.update('stock.move', moveId, { state: 'done', ...(env.version >= 17 ? { picked: true } : {}) });
    env.db.update('stock.scrap', id, { state: 'done', date_done: env.nowString() });
  }
  return true;
}

// ----------------------------------------------------------------------------------------- methods

export function registerStockMethods(reg: MethodRegistry): void {
  const owner = 'Picking';
  reg.add('stock.picking', 'action_confirm', {
    api: 'multi', owner, params: [],
    run: (env, _m, ids) => { env.checkAccess('stock.picking', 'write'); env.assertExists('stock.picking', ids); confirmPickings(env, ids); return true; },
  });
  reg.add('stock.picking', 'action_assign', {
    api: 'multi', owner, params: [],
    run: (env, _m, ids) => {
      env.checkAccess('stock.picking', 'write');
      env.assertExists('stock.picking', ids);
      confirmPickings(env, ids.filter((id) => pickingState(env, id) === 'draft'));
      const moves = ids.flatMap((id) => movesOf(env, id)).filter((m) => ['confirmed', 'partially_available', 'waiting', 'assigned'].includes(m.state as string));
      if (moves.length === 0) throw userError('Nothing to check the availability for.');
      for (const m of moves) reserveMove(env, m.id);
      return true;
    },
  });
  reg.add('stock.picking', 'do_unreserve', {
    api: 'multi', owner, params: [],
    run: (env, _m, ids) => {
      env.checkAccess('stock.picking', 'write');
      env.assertExists('stock.picking', ids);
      for (const id of ids) for (const m of movesOf(env, id).filter(LIVE)) unreserveMove(env, m.id, false);
      return undefined; // returns None (odoo-api.md §D)
    },
  });
  reg.add('stock.picking', 'button_validate', {
    api: 'multi', owner, params: [],
    run: (env, _m, ids) => { env.checkAccess('stock.picking', 'write'); return buttonValidate(env, ids); },
  });
  reg.add('stock.picking', 'action_cancel', {
    api: 'multi', owner, params: [],
    run: (env, _m, ids) => { env.checkAccess('stock.picking', 'write'); env.assertExists('stock.picking', ids); cancelPickings(env, ids); return true; },
  });

  // The wizards validate the pickings of the context's `button_validate_picking_ids` — the key
  // button_validate puts in the wizard action's context, which the client sends back with the
  // button call — and answer True without validating anything when it is absent (stock
  // `stock_backorder_confirmation.py`, `stock_immediate_transfer.py` (16), product_expiry
  // `confirm_expiry.py`, 16–19).
  const wizard = (model: string, pickField: string) => (env: Env, ids: number[]): number[] => {
    const id = env.ensureOne(model, ids);
    return (env.table(model).get(id)![pickField] as number[]) ?? [];
  };
  const toValidate = (env: Env): number[] => {
    const v = env.context.button_validate_picking_ids;
    return Array.isArray(v) ? v.filter((x): x is number => typeof x === 'number') : [];
  };
  reg.add('stock.backorder.confirmation', 'process', {
    api: 'multi', owner: 'StockBackorderConfirmation', params: [],
    run: (env, m, ids) => {
      wizard(m, 'pick_ids')(env, ids);
      const picks = toValidate(env);
      return picks.length > 0 ? buttonValidate(env.withContext({ skip_backorder: true }), picks) : true;
    },
  });
  reg.add('stock.backorder.confirmation', 'process_cancel_backorder', {
    api: 'multi', owner: 'StockBackorderConfirmation', params: [],
    run: (env, m, ids) => {
      const own = wizard(m, 'pick_ids')(env, ids);
      const picks = toValidate(env);
      return picks.length > 0 ? buttonValidate(env.withContext({ skip_backorder: true, picking_ids_not_to_backorder: own }), picks) : true;
    },
  });
  reg.add('expiry.picking.confirmation', 'process', {
    api: 'multi', owner: 'ConfirmExpiry', params: [],
    run: (env, m, ids) => {
      wizard(m, 'picking_ids')(env, ids);
      const picks = toValidate(env);
      return picks.length > 0 ? buttonValidate(env.withContext({ skip_expired: true }), picks) : true;
    },
  });
  reg.add('stock.immediate.transfer', 'process', {
    api: 'multi', owner: 'StockImmediateTransfer', params: [], versions: [16],
    run: (env, m, ids) => {
      // The wizard's pickings get their reserved quantities as done quantities in any case.
      for (const pid of wizard(m, 'pick_ids')(env, ids)) for (const l of linesOfPicking(env, pid)) if (!((l.qty_done as number) > 0)) env.db.update('stock.move.line', l.id, { qty_done: l.reserved_uom_qty });
      const picks = toValidate(env);
      return picks.length > 0 ? buttonValidate(env.withContext({ skip_immediate: true }), picks) : true;
    },
  });

  reg.add('stock.scrap', 'action_validate', {
    api: 'multi', owner: 'StockScrap', params: [],
    run: (env, _m, ids) => {
      env.checkAccess('stock.scrap', 'write');
      const id = env.ensureOne('stock.scrap', ids);
      const sc = env.table('stock.scrap').get(id)!;
      if (!isStorable(env, sc.product_id)) return doScrap(env, [id]);
      // `v17:stock_scrap.py` action_validate: strict quants of this location (and lot)
      const available = [...env.table('stock.quant').values()]
        .filter((q) => q.product_id === sc.product_id && q.location_id === sc.location_id && (typeof sc.lot_id !== 'number' || q.lot_id === sc.lot_id))
        .reduce((t, q) => t + (q.quantity as number), 0);
      if (available >= (sc.scrap_qty as number) - 1e-9) return doScrap(env, [id]);
      return {
        name: `${productName(env, sc.product_id)}: Insufficient Quantity To Scrap`, view_mode: 'form', res_model: 'stock.warn.insufficient.qty.scrap', type: 'ir.actions.act_window', target: 'new',
        context: { default_product_id: sc.product_id, default_location_id: sc.location_id, default_scrap_id: id, default_quantity: sc.scrap_qty },
      };
    },
  });
  reg.add('stock.scrap', 'do_scrap', {
    api: 'multi', owner: 'StockScrap', params: [],
    run: (env, _m, ids) => { env.checkAccess('stock.scrap', 'write'); env.assertExists('stock.scrap', ids); return doScrap(env, ids); },
  });

  reg.add('stock.quant', 'action_apply_inventory', {
    api: 'multi', owner: 'StockQuant', params: [],
    run: (env, _m, ids) => {
      applyInventory(env, ids);
      return undefined;
    },
  });

  reg.add('stock.warehouse.orderpoint', 'action_replenish', {
    api: 'multi', owner: 'StockWarehouseOrderpoint', varKw: true, params: [],
    run: (env, _m, ids) => {
      env.assertExists('stock.warehouse.orderpoint', ids);
      const created: number[] = [];
      for (const id of ids) {
        const op = env.table('stock.warehouse.orderpoint').get(id)!;
        // qty_to_order: the manual quantity (18+) when set, else the computed one.
        const qty = env.value('stock.warehouse.orderpoint', op, 'qty_to_order') as number;
        // Odoo clears the manual quantity once ordered (action_remove_manual_qty_to_order).
        if (env.version >= 18 && (op.qty_to_order_manual as number) > 0) env.sudo().writeInternal('stock.warehouse.orderpoint', [id], { qty_to_order_manual: 0 });
        if (qty <= 0) continue;
        const product = env.browse('product.product', op.product_id as number);
        const seller = [...env.table('product.supplierinfo').values()]
          .filter((s) => s.product_tmpl_id === product.product_tmpl_id || s.product_id === product.id)
          .sort((a, b) => (a.sequence as number) - (b.sequence as number) || a.id - b.id)[0];
        if (!seller) {
          throw userError(`There is no matching vendor price to generate the purchase order for product ${productName(env, product.id)} (no vendor defined, minimum quantity not reached, dates not valid, ...). Go on the product form and complete the list of vendors.`);
        }
        const sudo = env.sudo();
        let po = [...env.table('purchase.order').values()].find((p) => p.partner_id === seller.partner_id && p.state === 'draft' && p.origin === op.name);
        if (!po) po = sudo.table('purchase.order').get(sudo.createInternal('purchase.order', { partner_id: seller.partner_id, origin: op.name }))!;
        const line = [...env.table('purchase.order.line').values()].find((l) => l.order_id === po!.id && l.product_id === product.id);
        if (line) sudo.writeInternal('purchase.order.line', [line.id], { product_qty: (line.product_qty as number) + qty });
        else sudo.createInternal('purchase.order.line', { order_id: po.id, product_id: product.id, product_qty: qty, price_unit: seller.price });
        created.push(po.id);
      }
      if (created.length === 0) return false;
      const names = created.map((id) => String(env.table('purchase.order').get(id)!.name));
      return { type: 'ir.actions.client', tag: 'display_notification', params: { title: 'The following replenishment order has been generated', message: names.join(', '), sticky: false } };
    },
  });
}
