import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OdooEmulator, type OdooVersion } from '../odoo-emulator/index.ts';
import { executeKw, jsonRpc, post } from '../odoo-emulator/http-client.ts';

type Envelope = { jsonrpc: string; id: unknown; result?: unknown; error?: { code: number; message: string; data: { name: string; message: string; arguments: unknown[]; context: object; debug: string } } };

const VERSIONS: OdooVersion[] = [16, 17, 18, 19];

describe.each(VERSIONS)('JSON-RPC on Odoo %i', (version) => {
  let odoo: OdooEmulator;
  let url: string;
  const auth = { db: 'lab', uid: 2, secret: 'admin' };
  const call = async (model: string, method: string, args: unknown[] = [], kwargs?: Record<string, unknown>) =>
    (await executeKw(url, auth, model, method, args, kwargs)).body as Envelope;

  beforeAll(async () => {
    odoo = new OdooEmulator({ version });
    ({ url } = await odoo.listen());
  });
  afterAll(async () => { await odoo.close(); });

  it('common.version reports the version as a list', async () => {
    const r = await jsonRpc(url, 'common', 'version', []);
    expect(r.status).toBe(200);
    const v = (r.body as Envelope).result as { server_version_info: unknown[]; server_serie: string; protocol_version: number };
    expect(v.server_version_info).toEqual([version, 0, 0, 'final', 0, '']);
    expect(v.server_serie).toBe(`${version}.0`);
    expect(v.protocol_version).toBe(1);
  });

  it('authenticate returns the uid, and false (not an error) on bad credentials', async () => {
    expect(((await jsonRpc(url, 'common', 'authenticate', ['lab', 'admin', 'admin', {}])).body as Envelope).result).toBe(2);
    const bad = (await jsonRpc(url, 'common', 'authenticate', ['lab', 'admin', 'nope', {}])).body as Envelope;
    expect(bad.result).toBe(false);
    expect(bad.error).toBeUndefined();
    expect(((await jsonRpc(url, 'common', 'login', ['lab', 'admin', 'admin'])).body as Envelope).result).toBe(2);
    odoo.reset(); // forget the failure counted above
  });

  it('errors are HTTP 200 envelopes with the serialize_exception keys; code 200 up to 18, 0 in 19', async () => {
    const r = await executeKw(url, { ...auth, secret: 'wrong' }, 'res.partner', 'search', [[]]);
    expect(r.status).toBe(200);
    const env = r.body as Envelope;
    expect(env.result).toBeUndefined();
    expect(env.error?.code).toBe(version >= 19 ? 0 : 200);
    expect(env.error?.message).toBe('Odoo Server Error');
    expect(Object.keys(env.error!.data)).toEqual(version >= 19 ? ['name', 'message', 'arguments', 'context', 'debug'] : ['name', 'debug', 'message', 'arguments', 'context']);
    expect(env.error?.data.name).toBe('odoo.exceptions.AccessDenied');
    expect(env.error?.data.message).toBe('Access Denied');
    odoo.reset();
  });

  it('unknown uid is a MissingError, unknown database a psycopg2.OperationalError', async () => {
    expect((await executeKw(url, { ...auth, uid: 99 }, 'res.partner', 'search', [[]])).body).toMatchObject({ error: { data: { name: 'odoo.exceptions.MissingError' } } });
    const db = (await executeKw(url, { ...auth, db: 'nope' }, 'res.partner', 'search', [[]])).body as Envelope;
    expect(db.error?.data.name).toBe('psycopg2.OperationalError');
    expect(db.error?.data.message).toContain('port 5432');
  });

  it('unknown model is a UserError, unknown method an AttributeError, private method an AccessError', async () => {
    expect((await call('no.such.model', 'search', [[]])).error?.data).toMatchObject({ name: 'odoo.exceptions.UserError', message: "Object no.such.model doesn't exist" });
    const unknown = (await call('res.partner', 'frobnicate', [[]])).error?.data;
    expect(unknown?.name).toBe('builtins.AttributeError');
    expect(unknown?.message).toBe(version >= 18 ? "The method 'res.partner.frobnicate' does not exist" : "The method 'frobnicate' does not exist on the model 'res.partner'");
    const priv = (await call('stock.picking', '_action_done', [[1]])).error?.data;
    expect(priv?.name).toBe('odoo.exceptions.AccessError');
    expect(priv?.message).toMatch(/^Private methods \(such as .*_action_done.*\) cannot be called remotely\.$/);
    const xmlid = (await call('ir.model.data', '_xmlid_lookup', ['stock.warehouse0'])).error?.data;
    expect(xmlid?.name).toBe('odoo.exceptions.AccessError');
  });

  it('create with a dict returns an int, with a list of dicts a list', async () => {
    const one = (await call('stock.lot', 'create', [{ name: `L-${version}-1`, product_id: productId('RGT-GLU'), company_id: 1 }])).result;
    expect(typeof one).toBe('number');
    const many = (await call('stock.lot', 'create', [[{ name: `L-${version}-2`, product_id: productId('RGT-GLU'), company_id: 1 }, { name: `L-${version}-3`, product_id: productId('RGT-GLU'), company_id: 1 }]])).result;
    expect(Array.isArray(many) && many.length === 2 && many.every((x) => typeof x === 'number')).toBe(true);
  });

  function productId(code: string): number {
    return odoo.records('product.product', [['default_code', '=', code]])[0]!.id as number;
  }

  it('a method returning None answers with neither result nor error', async () => {
    const type = odoo.records('stock.picking.type', [['sequence_code', '=', 'LAB']])[0]!;
    const pid = odoo.call('stock.picking', 'create', [{ picking_type_id: type.id, move_ids: [[0, 0, { product_id: productId('TIP-200'), product_uom_qty: 1, ...(version <= 18 ? { name: 'tips' } : {}) }]] }]) as number;
    odoo.call('stock.picking', 'action_confirm', [[pid]]);
    const r = await executeKw(url, auth, 'stock.picking', 'do_unreserve', [[pid]]);
    expect(r.body).toEqual({ jsonrpc: '2.0', id: expect.any(Number) });
    expect(Object.keys(r.body as object)).not.toContain('result');
  });

  it('read of a missing id is [], write of one a MissingError, unlink of one a no-op', async () => {
    expect((await call('res.partner', 'read', [[987654], ['name']])).result).toEqual([]);
    expect((await call('res.partner', 'write', [[987654], { name: 'x' }])).error?.data.name).toBe('odoo.exceptions.MissingError');
    expect((await call('stock.lot', 'unlink', [[987654]])).result).toBe(true);
  });

  it('unknown fields are ValueErrors, following the version drift of field names', async () => {
    const invalid = (model: string, field: string) => `Invalid field '${field}' on model '${model}'`;
    const lineFields = (await call('stock.move.line', 'fields_get', [], { attributes: ['type'] })).result as Record<string, unknown>;
    if (version === 16) {
      expect(lineFields).toHaveProperty('qty_done');
      expect(lineFields).not.toHaveProperty('quantity');
      expect(lineFields).not.toHaveProperty('picked');
    } else {
      expect(lineFields).toHaveProperty('quantity');
      expect(lineFields).toHaveProperty('picked');
      expect(lineFields).not.toHaveProperty('qty_done');
    }
    const moveName = await call('stock.move', 'create', [{ name: 'x', product_id: productId('TIP-200'), product_uom_qty: 1, location_id: 1, location_dest_id: 2 }]);
    if (version >= 19) expect(moveName.error?.data).toMatchObject({ name: 'builtins.ValueError', message: invalid('stock.move', 'name') });
    else expect(typeof moveName.result).toBe('number');
    const uomField = version >= 19 ? 'product_uom' : 'product_uom_id';
    const so = await call('sale.order', 'create', [{ partner_id: partnerId('CLINIC-A'), order_line: [[0, 0, { product_id: productId('GLU'), [uomField]: 1 }]] }]);
    expect(so.error?.data).toMatchObject({ name: 'builtins.ValueError', message: invalid('sale.order.line', uomField) });
    const tmpl = (await call('product.template', 'fields_get', [], { attributes: ['type'] })).result as Record<string, unknown>;
    expect('is_storable' in tmpl).toBe(version >= 18);
    expect('detailed_type' in tmpl).toBe(version <= 17);
    const order = (await call('sale.order', 'fields_get', [['state']], { attributes: ['selection'] })).result as { state: { selection: string[][] } };
    expect(order.state.selection.map((s) => s[0]).includes('done')).toBe(version === 16);
    const bad = await call('res.partner', 'search', [[['nope', '=', 1]]]);
    expect(bad.error?.data.name).toBe('builtins.ValueError');
    expect(bad.error?.data.message).toContain(version >= 19 ? 'Invalid field res.partner.nope in condition' : 'Invalid field res.partner.nope in leaf');
  });

  function partnerId(ref: string): number {
    return odoo.records('res.partner', [['ref', '=', ref]])[0]!.id as number;
  }

  it('searches with the usual domain operators', async () => {
    const ids = async (domain: unknown[], kwargs: Record<string, unknown> = {}) => (await call('product.product', 'search', [domain], { order: 'id', ...kwargs })).result as number[];
    const all = await ids([]);
    expect(all.length).toBeGreaterThan(10);
    expect(await ids([['default_code', '=', 'GLU']])).toEqual([productId('GLU')]);
    expect((await ids([['default_code', 'ilike', 'rgt-']])).length).toBe(4);
    expect((await ids([['default_code', 'in', ['GLU', 'CRP', 'XXX']]])).sort()).toEqual([productId('GLU'), productId('CRP')].sort());
    expect((await ids(['|', ['default_code', '=', 'GLU'], ['default_code', '=', 'CRP']])).length).toBe(2);
    expect((await ids(['!', ['default_code', '=like', 'RGT-%']])).length).toBe(all.length - 4);
    expect((await ids([['list_price', '>=', 20], ['list_price', '<', 25]]))).toEqual([productId('HBA1C')]);
    expect((await ids([['default_code', 'not in', ['GLU']], ['tracking', '!=', 'none']])).length).toBe(7);
    expect((await ids([['categ_id.name', '=', 'Reagents']])).length).toBe(7);
    expect(await ids([], { limit: 2, offset: 1 })).toEqual(all.slice(1, 3));
    expect((await call('product.product', 'search_count', [[['tracking', '=', 'lot']]])).result).toBe(7);
    const lots = (await call('stock.lot', 'search_read', [[['product_id.default_code', '=', 'RGT-GLU']]], { fields: ['name', 'product_id'], order: 'name' })).result as Array<{ name: string; product_id: [number, string] }>;
    expect(lots.slice(0, 2).map((l) => l.name)).toEqual(['G23K044', 'G24A101']);
    expect(lots[0]!.product_id).toEqual([productId('RGT-GLU'), '[RGT-GLU] Glucose reagent cartridge (500 tests)']);
  });

  it('limit 0 means no limit; datetimes are parsed from their first 19 characters', async () => {
    const all = (await call('product.product', 'search_count', [[]])).result as number;
    expect(((await call('product.product', 'search', [[]], { limit: 0 })).result as number[]).length).toBe(all);
    const lot = (await call('stock.lot', 'create', [{ name: `DT-${version}`, product_id: productId('RGT-CRP'), company_id: 1, expiration_date: '2027-01-31 12:00:00.250' }])).result as number;
    expect(odoo.records('stock.lot', [['id', '=', lot]])[0]!.expiration_date).toBe('2027-01-31 12:00:00');
    const iso = await call('stock.lot', 'create', [{ name: `DT2-${version}`, product_id: productId('RGT-CRP'), company_id: 1, expiration_date: '2027-01-31T12:00:00Z' }]);
    expect(iso.error?.data).toMatchObject({ name: 'builtins.ValueError', message: "time data '2027-01-31T12:00:00' does not match format '%Y-%m-%d %H:%M:%S'" });
  });

  it('archived records are hidden unless active_test is false (the archived WH/INT picking type)', async () => {
    const domain = [['code', '=', 'internal'], ['sequence_code', '=', 'INT']];
    expect((await call('stock.picking.type', 'search', [domain])).result).toEqual([]);
    expect(((await call('stock.picking.type', 'search', [domain], { context: { active_test: false } })).result as number[]).length).toBe(1);
  });

  it('name_search matches reference and name', async () => {
    const r = (await call('res.partner', 'name_search', ['CLINIC-B'])).result as Array<[number, string]>;
    expect(r).toEqual([[partnerId('CLINIC-B'), 'Harbour Medical Centre']]);
  });

  it('wrong argument counts are TypeErrors', async () => {
    expect((await call('res.partner', 'search', [])).error?.data.name).toBe('builtins.TypeError');
    expect((await call('res.partner', 'read', [[1]], { bogus: 1 })).error?.data.name).toBe('builtins.TypeError');
    expect(((await jsonRpc(url, 'common', 'login', ['lab', 'admin'])).body as Envelope).error?.data.name).toBe('builtins.TypeError');
  });

  it('a wrong Content-Type is rejected with HTML (400 up to 18, 415 in 19); bad JSON with a plain 400', async () => {
    const wrongType = await post(`${url}/jsonrpc`, '{}', { 'Content-Type': 'text/plain' });
    expect(wrongType.status).toBe(version >= 19 ? 415 : 400);
    expect(wrongType.headers.get('content-type')).toContain('text/html');
    if (version >= 19) expect(wrongType.headers.get('accept')).toBe('application/json');
    const get = await fetch(`${url}/jsonrpc`);
    expect(get.status).toBe(version >= 19 ? 415 : 400);
    const badJson = await post(`${url}/jsonrpc`, '{not json', { 'Content-Type': 'application/json' });
    expect(badJson.status).toBe(400);
    expect(badJson.text).toBe('Invalid JSON data');
  });

  it('GET /web/version exists only from 19 on; /json/2 only in 19', async () => {
    const v = await fetch(`${url}/web/version`);
    expect(v.status).toBe(version >= 19 ? 200 : 404);
    if (version >= 19) expect(await v.json()).toEqual({ version_info: [19, 0, 0, 'final', 0, ''], version: '19.0' });
    else expect(v.headers.get('content-type')).toContain('text/html');
    const j2 = await post(`${url}/json/2/res.partner/search`, '{"domain":[]}', { 'Content-Type': 'application/json', Authorization: 'bearer x' });
    expect(j2.status).toBe(version >= 19 ? 401 : 404);
  });

  it('session routes: /web/session/authenticate sets a cookie that /web/dataset/call_kw accepts', async () => {
    const login = await post(`${url}/web/session/authenticate`, JSON.stringify({ jsonrpc: '2.0', id: 1, params: { db: 'lab', login: 'admin', password: 'admin' } }), { 'Content-Type': 'application/json' });
    expect((login.body as Envelope).result).toMatchObject({ uid: 2 });
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const body = JSON.stringify({ jsonrpc: '2.0', id: 2, params: { model: 'res.partner', method: 'search_count', args: [[['ref', '=', 'CLINIC-A']]], kwargs: {} } });
    const ok = await post(`${url}/web/dataset/call_kw/res.partner/search_count`, body, { 'Content-Type': 'application/json', Cookie: cookie });
    expect((ok.body as Envelope).result).toBe(1);
    const expired = await post(`${url}/web/dataset/call_kw/res.partner/search_count`, body, { 'Content-Type': 'application/json' });
    expect((expired.body as Envelope).error).toMatchObject({ code: 100, message: 'Odoo Session Expired' });
  });
});
