import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OdooEmulator, type OdooVersion } from '../odoo-emulator/index.ts';
import { executeKw, json2 } from '../odoo-emulator/http-client.ts';

type Envelope = { result?: unknown; error?: { data: { name: string; message: string } } };

class RpcError extends Error {
  readonly odooName: string;
  constructor(name: string, message: string) { super(message); this.odooName = name; }
}

const BOT_KEY = '0123456789abcdef0123456789abcdef01234567';
const ADMIN_KEY = 'abcdefabcdefabcdefabcdefabcdefabcdefabcd';

/** Positional parameters (after the ids of record methods) of the methods these tests call, for JSON-2. */
const MODEL_METHODS: Record<string, string[]> = {
  create: ['vals_list'], load: ['fields', 'data'], check_object_reference: ['module', 'xml_id'], search_read: ['domain'], search: ['domain'], search_count: ['domain'], fields_get: [],
};
const RECORD_METHODS: Record<string, string[]> = { read: ['fields'], write: ['vals'] };

const RUNS: Array<[OdooVersion, 'jsonrpc' | 'json2']> = [[16, 'jsonrpc'], [17, 'jsonrpc'], [18, 'jsonrpc'], [19, 'jsonrpc'], [19, 'json2']];

describe.each(RUNS)('business workflows on Odoo %i over %s', (version, transport) => {
  let odoo: OdooEmulator;
  let url: string;
  let botUid: number;

  const rpc = async (model: string, method: string, args: unknown[] = [], kwargs?: Record<string, unknown>, as: 'admin' | 'bot' = 'admin'): Promise<unknown> => {
    if (transport === 'json2') {
      const { context, ...rest } = kwargs ?? {};
      const body: Record<string, unknown> = { ...rest, ...(context ? { context } : {}) };
      const model_ = MODEL_METHODS[method];
      const names = model_ ?? RECORD_METHODS[method] ?? [];
      const positional = model_ ? args : args.slice(1);
      if (!model_) body.ids = args[0];
      if (positional.length > names.length) throw new Error(`no JSON-2 mapping for ${method} with ${positional.length} positional arguments`);
      positional.forEach((v, i) => { body[names[i]!] = v; });
      const r = await json2(url, as === 'admin' ? ADMIN_KEY : BOT_KEY, model, method, body);
      if (r.status !== 200) { const e = r.body as { name: string; message: string }; throw new RpcError(e.name, e.message); }
      // JSON-2's create always answers a list; these tests expect JSON-RPC's int for a single dict.
      if (method === 'create' && !Array.isArray(args[0]) && Array.isArray(r.body)) return (r.body as unknown[])[0];
      return r.body === null ? undefined : r.body;
    }
    const auth = as === 'admin' ? { db: 'lab', uid: 2, secret: 'admin' } : { db: 'lab', uid: botUid, secret: BOT_KEY };
    const env = (await executeKw(url, auth, model, method, args, kwargs)).body as Envelope;
    if (env.error) throw new RpcError(env.error.data.name, env.error.data.message);
    return env.result;
  };
  const rpcError = async (model: string, method: string, args: unknown[] = [], kwargs?: Record<string, unknown>, as: 'admin' | 'bot' = 'admin'): Promise<RpcError> => {
    try {
      await rpc(model, method, args, kwargs, as);
    } catch (e) {
      return e as RpcError;
    }
    throw new Error(`${model}.${method} did not fail`);
  };
  const one = (model: string, domain: unknown[]) => odoo.records(model, domain)[0]!;
  const idOf = (model: string, domain: unknown[]) => one(model, domain).id as number;
  const product = (code: string) => idOf('product.product', [['default_code', '=', code]]);
  const lot = (name: string) => idOf('stock.lot', [['name', '=', name]]);
  const lotQty = (name: string) => one('stock.lot', [['name', '=', name]]).product_qty as number;
  const done = (q: number) => (version === 16 ? { qty_done: q } : { quantity: q, picked: true });
  const moveName = (text: string) => (version <= 18 ? { name: text } : {});
  const uomKey = version >= 19 ? 'product_uom_id' : 'product_uom';

  let labType: { id: number; src: number; dest: number };

  beforeAll(async () => {
    odoo = new OdooEmulator({
      version,
      users: [{ login: 'admin', password: 'admin', apiKeys: [{ key: ADMIN_KEY }] }, { login: 'gateway', password: '', apiKeys: [{ key: BOT_KEY }], rights: 'bot' }],
    });
    ({ url } = await odoo.listen());
  });
  beforeEach(() => {
    odoo.reset();
    botUid = idOf('res.users', [['login', '=', 'gateway']]);
    const t = one('stock.picking.type', [['sequence_code', '=', 'LAB']]);
    labType = { id: t.id as number, src: t.default_location_src_id as number, dest: t.default_location_dest_id as number };
  });
  afterAll(async () => { await odoo.close(); });

  /** odoo-api.md §D: picking with moves and picking-level move lines, then button_validate. */
  async function consumptionPicking(code: string, qty: number, lotName: string | undefined, demand = qty, as: 'admin' | 'bot' = 'admin'): Promise<number> {
    const p = product(code);
    return (await rpc('stock.picking', 'create', [{
      picking_type_id: labType.id, location_id: labType.src, location_dest_id: labType.dest, origin: `evt-${code}-${qty}`,
      move_ids: [[0, 0, { product_id: p, product_uom_qty: demand, product_uom: 1, location_id: labType.src, location_dest_id: labType.dest, ...moveName(`consume ${code}`) }]],
      move_line_ids: [[0, 0, { product_id: p, product_uom_id: 1, location_id: labType.src, location_dest_id: labType.dest, ...(lotName ? { lot_id: lot(lotName) } : {}), ...done(qty) }]],
    }], undefined, as)) as number;
  }

  it('consumes a lot in two calls: create with move lines, then button_validate → done', async () => {
    const before = lotQty('G24A101');
    const id = await consumptionPicking('RGT-GLU', 3, 'G24A101', 3, 'bot');
    const [picking] = (await rpc('stock.picking', 'read', [[id], ['name', 'state', 'move_line_ids']])) as Array<{ name: string; state: string; move_line_ids: number[] }>;
    expect(picking!.name).toBe('WH/LAB/00001');
    expect(picking!.state).toBe('draft');
    expect(picking!.move_line_ids).toHaveLength(1);
    expect(one('stock.move.line', [['id', '=', picking!.move_line_ids[0]!]]).picking_id).toBe(id);
    expect(await rpc('stock.picking', 'button_validate', [[id]], undefined, 'bot')).toBe(true);
    expect(one('stock.picking', [['id', '=', id]]).state).toBe('done');
    expect(lotQty('G24A101')).toBe(before - 3);
  });

  it('a lot-tracked product without a lot is a UserError and nothing changes', async () => {
    const id = await consumptionPicking('RGT-HBA1C', 1, undefined);
    const err = await rpcError('stock.picking', 'button_validate', [[id]]);
    expect(err.odooName).toBe('odoo.exceptions.UserError');
    expect(err.message).toBe('You need to supply a Lot/Serial number for products [RGT-HBA1C] HbA1c reagent kit (200 tests).');
    expect(one('stock.picking', [['id', '=', id]]).state).not.toBe('done');
    expect(lotQty('H24B220')).toBe(6);
  });

  it('short quantities give the backorder wizard and leave the picking assigned; the wizard then finishes it', async () => {
    const id = await consumptionPicking('RGT-GLU', 2, 'G24A101', 5);
    const action = (await rpc('stock.picking', 'button_validate', [[id]])) as { type: string; res_model: string; context: Record<string, unknown> };
    expect(action.type).toBe('ir.actions.act_window');
    expect(action.res_model).toBe(version === 16 ? 'stock.backorder.confirmation' : 'stock.backorder.confirmation');
    expect(action.context.default_pick_ids).toEqual([[4, id]]);
    // 16 validates the picking as it is (no confirmation step): it stays draft.
    expect(one('stock.picking', [['id', '=', id]]).state).toBe(version === 16 ? 'draft' : 'assigned');
    const wizard = (await rpc('stock.backorder.confirmation', 'create', [{ pick_ids: [[6, 0, [id]]] }])) as number;
    // The client sends the action's context (button_validate_picking_ids) back with the button.
    expect(await rpc('stock.backorder.confirmation', 'process', [[wizard]], { context: action.context })).toBe(true);
    expect(one('stock.picking', [['id', '=', id]]).state).toBe('done');
    const backorder = one('stock.picking', [['backorder_id', '=', id]]);
    expect(backorder.name).toBe('WH/LAB/00002');
    expect(one('stock.move', [['picking_id', '=', backorder.id as number]]).product_uom_qty).toBe(3);
  });

  it('skip_backorder with picking_ids_not_to_backorder validates short pickings without a backorder', async () => {
    const id = await consumptionPicking('RGT-GLU', 2, 'G24A101', 5);
    expect(await rpc('stock.picking', 'button_validate', [[id]], { context: { skip_backorder: true, picking_ids_not_to_backorder: [id] } })).toBe(true);
    expect(one('stock.picking', [['id', '=', id]]).state).toBe('done');
    expect(odoo.count('stock.picking', [['backorder_id', '=', id]])).toBe(0);
  });

  it('an expired lot gives the expiry wizard; skip_expired validates', async () => {
    const id = await consumptionPicking('RGT-GLU', 1, 'G23K044');
    const action = (await rpc('stock.picking', 'button_validate', [[id]])) as { res_model: string };
    expect(action.res_model).toBe('expiry.picking.confirmation');
    expect(one('stock.picking', [['id', '=', id]]).state).not.toBe('done');
    expect(await rpc('stock.picking', 'button_validate', [[id]], { context: { skip_expired: true } })).toBe(true);
    expect(lotQty('G23K044')).toBe(1);
  });

  it('validating a done picking again: UserError up to 17, a no-op from 18', async () => {
    const id = await consumptionPicking('RGT-CRP', 1, 'C24C310');
    expect(await rpc('stock.picking', 'button_validate', [[id]])).toBe(true);
    if (version <= 17) {
      const err = await rpcError('stock.picking', 'button_validate', [[id]]);
      expect(err.odooName).toBe('odoo.exceptions.UserError');
      expect(err.message).toMatch(/^You cannot validate a transfer if no quantities are reserved nor done\./);
    } else {
      expect(await rpc('stock.picking', 'button_validate', [[id]])).toBe(true);
    }
    expect(lotQty('C24C310')).toBe(3);
  });

  it('move lines nested inside move_ids keep picking_id empty (odoo-api.md §D)', async () => {
    const p = product('RGT-GLU');
    const id = (await rpc('stock.picking', 'create', [{
      picking_type_id: labType.id,
      move_ids: [[0, 0, { product_id: p, product_uom_qty: 1, ...moveName('nested'), move_line_ids: [[0, 0, { product_id: p, lot_id: lot('G24A101'), ...done(1) }]] }]],
    }])) as number;
    const move = one('stock.move', [['picking_id', '=', id]]);
    const line = one('stock.move.line', [['move_id', '=', move.id as number]]);
    expect(line.picking_id).toBe(false);
    expect(one('stock.picking', [['id', '=', id]]).move_line_ids).toEqual([]);
  });

  it('scrap: action_validate scraps available stock, or returns the insufficient-quantity wizard', async () => {
    const scrap = (await rpc('stock.scrap', 'create', [{ product_id: product('RGT-TSH'), lot_id: lot('T24D077'), scrap_qty: 1, location_id: labType.src, origin: 'evt-scrap' }], undefined, 'bot')) as number;
    expect(one('stock.scrap', [['id', '=', scrap]]).name).toBe('SP/00001');
    expect(await rpc('stock.scrap', 'action_validate', [[scrap]], undefined, 'bot')).toBe(true);
    expect(one('stock.scrap', [['id', '=', scrap]]).state).toBe('done');
    expect(lotQty('T24D077')).toBe(2);
    const big = (await rpc('stock.scrap', 'create', [{ product_id: product('RGT-TSH'), lot_id: lot('T24D077'), scrap_qty: 50, location_id: labType.src }])) as number;
    expect(((await rpc('stock.scrap', 'action_validate', [[big]])) as { res_model: string }).res_model).toBe('stock.warn.insufficient.qty.scrap');
    expect(await rpc('stock.scrap', 'do_scrap', [[big]])).toBe(true);
    expect(lotQty('T24D077')).toBe(-48);
    const noLot = (await rpc('stock.scrap', 'create', [{ product_id: product('RGT-TSH'), scrap_qty: 1, location_id: labType.src }])) as number;
    expect((await rpcError('stock.scrap', 'do_scrap', [[noLot]])).odooName).toBe('odoo.exceptions.UserError');
  });

  if (transport === 'jsonrpc') it('create with vals_list as a keyword over JSON-RPC fails with IndexError and creates nothing', async () => {
    const before = odoo.count('stock.lot');
    const err = await rpcError('stock.lot', 'create', [], { vals_list: [{ name: 'KW-1', product_id: product('RGT-GLU'), company_id: 1 }] });
    expect(err).toMatchObject({ odooName: 'builtins.IndexError', message: 'list index out of range' });
    expect(odoo.count('stock.lot')).toBe(before);
  });

  it('untracked consumption beyond stock drives the quant negative', async () => {
    const id = await consumptionPicking('TIP-200', 50, undefined);
    expect(await rpc('stock.picking', 'button_validate', [[id]])).toBe(true);
    expect(one('product.product', [['default_code', '=', 'TIP-200']]).qty_available).toBe(-10);
  });

  it('a lot driven negative is made good from untracked stock of the same product', async () => {
    const quant = odoo.call('stock.quant', 'create', [{ product_id: product('RGT-TSH'), location_id: labType.src, quantity: 5 }]) as number;
    const id = await consumptionPicking('RGT-TSH', 4, 'T24D077');
    expect(await rpc('stock.picking', 'button_validate', [[id]])).toBe(true);
    expect(lotQty('T24D077')).toBe(0);
    expect(one('stock.quant', [['id', '=', quant]]).quantity).toBe(4);
  });

  it('create → action_confirm reserves FEFO lots; do_unreserve releases them', async () => {
    const id = (await rpc('stock.picking', 'create', [{ picking_type_id: labType.id, move_ids: [[0, 0, { product_id: product('RGT-HBA1C'), product_uom_qty: 2, ...moveName('x') }]] }])) as number;
    expect(await rpc('stock.picking', 'action_confirm', [[id]])).toBe(true);
    expect(one('stock.picking', [['id', '=', id]]).state).toBe('assigned');
    const line = one('stock.move.line', [['picking_id', '=', id]]);
    expect(line.lot_id).toBe(lot('H24B220'));
    expect(one('stock.quant', [['lot_id', '=', lot('H24B220')]]).reserved_quantity).toBe(2);
    await rpc('stock.picking', 'do_unreserve', [[id]]);
    expect(one('stock.quant', [['lot_id', '=', lot('H24B220')]]).reserved_quantity).toBe(0);
    expect(odoo.count('stock.move.line', [['picking_id', '=', id]])).toBe(0);
  });

  it('purchase: draft RFQ → button_confirm → purchase with a receipt; confirming twice is a silent no-op', async () => {
    const po = (await rpc('purchase.order', 'create', [{ partner_id: idOf('res.partner', [['ref', '=', 'VEND-DIAG']]), origin: 'lab-gw:rfq-1', order_line: [[0, 0, { product_id: product('RGT-CRP'), product_qty: 10, [uomKey]: 1 }]] }])) as number;
    const [rfq] = (await rpc('purchase.order', 'read', [[po], ['name', 'state', 'amount_untaxed']])) as Array<{ name: string; state: string; amount_untaxed: number }>;
    expect(rfq).toMatchObject({ name: 'P00001', state: 'draft', amount_untaxed: 1520 });
    expect(await rpc('purchase.order', 'button_confirm', [[po]])).toBe(true);
    expect(await rpc('purchase.order', 'button_confirm', [[po]])).toBe(true);
    expect(one('purchase.order', [['id', '=', po]]).state).toBe('purchase');
    const receipt = one('stock.picking', [['purchase_id', '=', po]]);
    expect(receipt.name).toBe('WH/IN/00001');
    expect(receipt.state).toBe('assigned');
    expect(odoo.count('stock.picking', [['purchase_id', '=', po]])).toBe(1);
  });

  it('sale: draft → sale; a second confirm is refused from 17; manual delivered quantities are writable', async () => {
    const so = (await rpc('sale.order', 'create', [{
      partner_id: idOf('res.partner', [['ref', '=', 'CLINIC-A']]), client_order_ref: 'ACC-1001',
      order_line: [[0, 0, { product_id: product('GLU'), product_uom_qty: 1 }], [0, 0, { product_id: product('HBA1C'), product_uom_qty: 2 }]],
    }])) as number;
    const [order] = (await rpc('sale.order', 'read', [[so], ['name', 'state', 'amount_untaxed', 'order_line']])) as Array<{ name: string; state: string; amount_untaxed: number; order_line: number[] }>;
    expect(order).toMatchObject({ name: 'S00001', state: 'draft', amount_untaxed: 52.5 });
    expect(await rpc('sale.order', 'action_confirm', [[so]])).toBe(true);
    if (version >= 17) {
      const err = await rpcError('sale.order', 'action_confirm', [[so]]);
      expect(err).toMatchObject({ odooName: 'odoo.exceptions.UserError', message: 'The following orders are not in a state requiring confirmation: S00001' });
    } else {
      expect(await rpc('sale.order', 'action_confirm', [[so]])).toBe(true);
    }
    const sent = (await rpc('sale.order', 'create', [{ partner_id: idOf('res.partner', [['ref', '=', 'CLINIC-B']]), order_line: [[0, 0, { product_id: product('CBC') }]] }])) as number;
    expect(await rpc('sale.order', 'action_quotation_sent', [[sent]])).toBe(true);
    expect(one('sale.order', [['id', '=', sent]]).state).toBe('sent');
    expect(await rpc('sale.order', 'action_confirm', [[sent]])).toBe(true);
    expect(one('sale.order', [['id', '=', sent]]).state).toBe('sale');
    const lineId = order!.order_line[0]!;
    const [line] = (await rpc('sale.order.line', 'read', [[lineId], ['qty_delivered_method']])) as Array<{ qty_delivered_method: string }>;
    expect(line!.qty_delivered_method).toBe('manual');
    expect(await rpc('sale.order.line', 'write', [[lineId], { qty_delivered: 1 }])).toBe(true);
    expect(((await rpc('sale.order.line', 'read', [[lineId], ['qty_delivered', 'qty_to_invoice']])) as Array<Record<string, number>>)[0]).toMatchObject({ qty_delivered: 1, qty_to_invoice: 1 });
    expect((await rpcError('sale.order', 'unlink', [[so]])).odooName).toBe('odoo.exceptions.UserError');
    // 16–18 answer a confirmed order with the cancel wizard unless the warning is off.
    expect(await rpc('sale.order', 'action_cancel', [[so]], { context: { disable_cancel_warning: true } })).toBe(true);
    expect(one('sale.order', [['id', '=', so]]).state).toBe('cancel');
  });

  it('invoice: draft named "/" → action_post returns false and numbers it; posting twice is a UserError', async () => {
    const inv = (await rpc('account.move', 'create', [{
      move_type: 'out_invoice', partner_id: idOf('res.partner', [['ref', '=', 'CLINIC-B']]), ref: 'lab-gw:inv-1',
      invoice_line_ids: [[0, 0, { product_id: product('CBC'), quantity: 2, price_unit: 15 }]],
    }])) as number;
    const draft = one('account.move', [['id', '=', inv]]);
    expect(draft).toMatchObject({ name: '/', state: 'draft', amount_total: 30 });
    const posted = (await executeKw(url, { db: 'lab', uid: 2, secret: 'admin' }, 'account.move', 'action_post', [[inv]])).body as Envelope;
    expect(posted).toHaveProperty('result', false);
    const after = one('account.move', [['id', '=', inv]]);
    expect(after.state).toBe('posted');
    expect(after.name).toMatch(/^INV\/\d{4}\/00001$/);
    expect((await rpcError('account.move', 'action_post', [[inv]])).message).toBe(`The entry ${String(after.name)} (id ${inv}) is already posted.`);
    const noPartner = (await rpc('account.move', 'create', [{ move_type: 'out_invoice', invoice_line_ids: [[0, 0, { product_id: product('CBC') }]] }])) as number;
    expect((await rpcError('account.move', 'action_post', [[noPartner]])).message).toBe("The field 'Customer' is required, please complete it to validate the Customer Invoice.");
  });

  it('invoice from a sales order through sale.advance.payment.inv', async () => {
    const so = odoo.call('sale.order', 'create', [{ partner_id: idOf('res.partner', [['ref', '=', 'CLINIC-A']]), order_line: [[0, 0, { product_id: product('TSH'), product_uom_qty: 1 }]] }]) as number;
    odoo.call('sale.order', 'action_confirm', [[so]]);
    const wiz = (await rpc('sale.advance.payment.inv', 'create', [{ advance_payment_method: 'delivered', sale_order_ids: [[6, 0, [so]]] }])) as number;
    expect((await rpcError('sale.advance.payment.inv', 'create_invoices', [[wiz]])).odooName).toBe('odoo.exceptions.UserError'); // nothing delivered yet
    const line = idOf('sale.order.line', [['order_id', '=', so]]);
    await rpc('sale.order.line', 'write', [[line], { qty_delivered: 1 }]);
    const action = (await rpc('sale.advance.payment.inv', 'create_invoices', [[wiz]])) as { res_model: string; res_id: number };
    expect(action.res_model).toBe('account.move');
    expect(one('account.move', [['id', '=', action.res_id]])).toMatchObject({ state: 'draft', move_type: 'out_invoice', invoice_origin: one('sale.order', [['id', '=', so]]).name });
    expect(one('sale.order', [['id', '=', so]]).invoice_status).toBe('invoiced');
  });

  it('message_post on a sales order returns the message id; the chatter holds it', async () => {
    const so = odoo.call('sale.order', 'create', [{ partner_id: idOf('res.partner', [['ref', '=', 'CLINIC-A']]) }]) as number;
    const answer = await rpc('sale.order', 'message_post', [[so]], { body: 'Specimen received <EDTA>', message_type: 'comment', subtype_xmlid: 'mail.mt_note' }, 'bot');
    // JSON-2 serialises the returned record as its id list (odoo-api.md A.4); call_kw gives the id.
    const mid = transport === 'json2' ? (answer as number[])[0] : answer;
    if (transport === 'json2') expect(answer).toEqual([expect.any(Number)]);
    expect(typeof mid).toBe('number');
    const msg = one('mail.message', [['id', '=', mid as number]]);
    expect(msg).toMatchObject({ model: 'sale.order', res_id: so, message_type: 'comment' });
    // 16 takes the text as HTML (the sanitizer drops the unknown tag); 17+ escapes it (mail_thread.py message_post).
    expect(msg.body).toBe(version >= 17 ? '<p>Specimen received &lt;EDTA&gt;</p>' : '<p>Specimen received </p>');
    expect(one('sale.order', [['id', '=', so]]).message_ids).toContain(mid);
    if (transport === 'jsonrpc') expect((await rpcError('sale.order', 'message_post', [[so], 'positional body'])).odooName).toBe('builtins.TypeError');
    else expect(await rpcError('sale.order', 'message_post', [[]], { body: 'x' })).toMatchObject({ odooName: 'builtins.ValueError', message: 'Expected singleton: sale.order()' });
  });

  it('load() with an id column creates record and external id together; replaying adds the lines again (§D)', async () => {
    const fields = ['id', 'partner_id/.id', 'client_order_ref', 'order_line/product_id/.id', 'order_line/product_uom_qty'];
    const rows = [['lab_gw.evt_1', String(idOf('res.partner', [['ref', '=', 'CLINIC-A']])), 'evt_1', String(product('GLU')), '1'], ['', '', '', String(product('CRP')), 2]];
    const first = (await rpc('sale.order', 'load', [fields, rows], undefined, 'bot')) as { ids: number[]; messages: unknown[] };
    expect(first.messages).toEqual([]);
    expect(first.ids).toHaveLength(1);
    const so = first.ids[0]!;
    expect(odoo.externalIds()).toContainEqual({ xmlid: 'lab_gw.evt_1', model: 'sale.order', resId: so });
    expect(await rpc('ir.model.data', 'check_object_reference', ['lab_gw', 'evt_1'], undefined, 'bot')).toEqual(['sale.order', so]);
    expect(one('sale.order', [['id', '=', so]]).amount_untaxed).toBe(32.5);
    const again = (await rpc('sale.order', 'load', [fields, rows], undefined, 'bot')) as { ids: number[] };
    expect(again.ids).toEqual([so]);
    expect(odoo.count('sale.order', [['client_order_ref', '=', 'evt_1']])).toBe(1);
    expect(odoo.count('sale.order.line', [['order_id', '=', so]])).toBe(4);
    expect(one('sale.order', [['id', '=', so]]).amount_untaxed).toBe(65);
    const missing = await rpcError('ir.model.data', 'check_object_reference', ['lab_gw', 'nope'], undefined, 'bot');
    expect(missing).toMatchObject({ odooName: 'builtins.ValueError', message: 'External ID not found in the system: lab_gw.nope' });
  });

  it('load() reports bad values in messages with ids false, and applies nothing', async () => {
    const before = odoo.count('sale.order');
    const r = (await rpc('sale.order', 'load', [['id', 'partner_id/.id', 'client_order_ref'], [['lab_gw.evt_ok', String(idOf('res.partner', [['ref', '=', 'CLINIC-B']])), 'ok'], ['lab_gw.evt_bad', '999999', 'bad']]])) as { ids: unknown; messages: Array<{ type: string; message: string; record: number }> };
    expect(r.ids).toBe(false);
    expect(r.messages).toEqual([expect.objectContaining({ type: 'error', record: 1, message: "No matching record found for database id '999999' in field 'Customer'" })]);
    expect(odoo.count('sale.order')).toBe(before);
    expect(odoo.externalIds().some((x) => x.xmlid.startsWith('lab_gw.'))).toBe(false);
    expect((await rpcError('sale.order', 'load', [['id', 'no_such_column'], [['x', '1']]])).odooName).toBe('builtins.KeyError');
    const bool = await rpcError('stock.move.line', 'load', [['id', 'picked'], [['x', true]]]);
    if (version === 16) expect(bool.odooName).toBe('builtins.KeyError'); // no `picked` on 16
    else expect(bool).toMatchObject({ odooName: 'builtins.AttributeError', message: "'bool' object has no attribute 'lower'" });
  });

  it('load() replayed on a done picking fails inside messages', async () => {
    const fields = ['id', 'picking_type_id/.id', 'origin', 'move_ids/product_id/.id', 'move_ids/product_uom_qty', ...(version <= 18 ? ['move_ids/name'] : [])];
    const row = ['lab_gw.cons_1', String(labType.id), 'cons_1', String(product('TIP-200')), '2', ...(version <= 18 ? ['tips'] : [])];
    const r = (await rpc('stock.picking', 'load', [fields, [row]])) as { ids: number[] };
    // 16 refuses a picking without done quantities: encode them first.
    if (version === 16) await rpc('stock.move', 'write', [[idOf('stock.move', [['picking_id', '=', r.ids[0]!]])], { quantity_done: 2 }]);
    expect(await rpc('stock.picking', 'button_validate', [r.ids])).toBe(true);
    const replay = (await rpc('stock.picking', 'load', [fields, [row]])) as { ids: unknown; messages: Array<{ message: string }> };
    expect(replay.ids).toBe(false);
    expect(replay.messages[0]!.message).toBe('Changing the operation type of this record is forbidden at this point.');
  });

  it('a bot may post documents but not create master data, read external ids, or apply inventory', async () => {
    expect((await rpcError('res.partner', 'create', [{ name: 'New clinic' }], undefined, 'bot')).odooName).toBe('odoo.exceptions.AccessError');
    expect((await rpcError('product.product', 'create', [{ name: 'New test' }], undefined, 'bot')).odooName).toBe('odoo.exceptions.AccessError');
    expect((await rpcError('stock.location', 'create', [{ name: 'Shelf' }], undefined, 'bot')).odooName).toBe('odoo.exceptions.AccessError');
    expect((await rpcError('ir.model.data', 'search_read', [[]], undefined, 'bot')).odooName).toBe('odoo.exceptions.AccessError');
    const quant = idOf('stock.quant', [['lot_id', '=', lot('H24B220')]]);
    expect(await rpcError('stock.quant', 'action_apply_inventory', [[quant]], undefined, 'bot')).toMatchObject({ odooName: 'odoo.exceptions.UserError', message: 'Only a stock manager can validate an inventory adjustment.' });
    expect(typeof (await rpc('stock.lot', 'create', [{ name: 'BOT-1', product_id: product('RGT-TSH'), company_id: 1 }], undefined, 'bot'))).toBe('number');
  });

  it('stock.lot has expiration_date (product_expiry) and no life_date, as from 15 on', async () => {
    const fields = (await rpc('stock.lot', 'fields_get', [], { attributes: ['type'] })) as Record<string, { type: string }>;
    expect(fields.expiration_date?.type).toBe('datetime');
    expect(fields).not.toHaveProperty('life_date');
    expect((await rpcError('stock.lot', 'create', [{ name: 'LD-1', product_id: product('RGT-GLU'), company_id: 1, life_date: '2030-01-01 00:00:00' }])).odooName).toBe('builtins.ValueError');
  });

  it('lot names are unique per product', async () => {
    const err = await rpcError('stock.lot', 'create', [{ name: 'G24A101', product_id: product('RGT-GLU'), company_id: 1 }]);
    expect(err.odooName).toBe('odoo.exceptions.ValidationError');
  });

  it('a reorder point below its minimum replenishes into a draft RFQ', async () => {
    const op = idOf('stock.warehouse.orderpoint', [['product_id', '=', product('RGT-CRP')]]);
    expect(one('stock.warehouse.orderpoint', [['id', '=', op]]).qty_to_order).toBe(10);
    const action = (await rpc('stock.warehouse.orderpoint', 'action_replenish', [[op]])) as { tag: string };
    expect(action.tag).toBe('display_notification');
    const po = one('purchase.order', [['partner_id.ref', '=', 'VEND-DIAG']]);
    expect(po.state).toBe('draft');
    expect(one('purchase.order.line', [['order_id', '=', po.id as number]]).product_qty).toBe(10);
    expect(one('stock.warehouse.orderpoint', [['id', '=', op]]).qty_to_order).toBe(0);
  });

  if (version >= 19 && transport === 'jsonrpc') {
    it('the same consumption over JSON-2', async () => {
      const key = BOT_KEY;
      const p = product('RGT-GLU');
      const created = await json2(url, key, 'stock.picking', 'create', {
        vals_list: [{
          picking_type_id: labType.id, origin: 'evt-j2',
          move_ids: [[0, 0, { product_id: p, product_uom_qty: 1, product_uom: 1 }]],
          move_line_ids: [[0, 0, { product_id: p, product_uom_id: 1, lot_id: lot('G24A101'), quantity: 1, picked: true, location_id: labType.src, location_dest_id: labType.dest }]],
        }],
      });
      expect(created.status).toBe(200);
      const [id] = created.body as number[];
      const validated = await json2(url, key, 'stock.picking', 'button_validate', { ids: [id] });
      expect(validated.body).toBe(true);
      expect(lotQty('G24A101')).toBe(11);
    });
  }
});
