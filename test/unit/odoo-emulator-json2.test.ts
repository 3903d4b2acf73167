import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OdooEmulator } from '../odoo-emulator/index.ts';
import { json2, post } from '../odoo-emulator/http-client.ts';

const KEY = '6578616d706c65206a736f6e20617069206b6579';
const EXPIRED = 'aaaaaaaabbbbbbbbccccccccddddddddeeeeeeee';
const NOW = new Date('2026-03-01T08:00:00Z');

type ErrorBody = { name: string; message: string; arguments: unknown[]; context: object; debug: string };

describe('JSON-2 on Odoo 19', () => {
  let odoo: OdooEmulator;
  let url: string;
  const call = (model: string, method: string, body: Record<string, unknown>, key: string | undefined = KEY) => json2(url, key, model, method, body);

  beforeAll(async () => {
    odoo = new OdooEmulator({
      version: 19, now: () => NOW,
      users: [
        { login: 'admin', password: 'admin', apiKeys: [{ key: KEY }] },
        { login: 'gateway', password: '', apiKeys: [{ key: EXPIRED, expiresAt: '2026-02-01T00:00:00Z' }], rights: 'bot' },
      ],
    });
    ({ url } = await odoo.listen());
  });
  afterAll(async () => { await odoo.close(); });

  function expectErrorBody(body: unknown, name: string): ErrorBody {
    const b = body as ErrorBody;
    expect(Object.keys(b).sort()).toEqual(['arguments', 'context', 'debug', 'message', 'name']);
    expect(b.name).toBe(name);
    return b;
  }

  it('search_read with named parameters answers the bare value', async () => {
    const r = await call('res.partner', 'search_read', { domain: [['ref', '=', 'CLINIC-A']], fields: ['name'], context: { lang: 'en_US' } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('application/json');
    expect(r.body).toEqual([{ id: expect.any(Number), name: 'Northside Family Clinic' }]);
  });

  it('create always returns a list of ids', async () => {
    const product = odoo.records('product.product', [['default_code', '=', 'RGT-CRP']])[0]!.id;
    const r = await call('stock.lot', 'create', { vals_list: [{ name: 'J2-1', product_id: product }] });
    expect(r.status).toBe(200);
    expect(r.body).toEqual([expect.any(Number)]);
  });

  it('a None result is a JSON null body', async () => {
    const type = odoo.records('stock.picking.type', [['sequence_code', '=', 'LAB']])[0]!;
    const product = odoo.records('product.product', [['default_code', '=', 'TIP-200']])[0]!.id;
    const picking = odoo.call('stock.picking', 'create', [{ picking_type_id: type.id, move_ids: [[0, 0, { product_id: product, product_uom_qty: 2 }]] }]) as number;
    odoo.call('stock.picking', 'action_confirm', [[picking]]);
    const r = await call('stock.picking', 'do_unreserve', { ids: [picking] });
    expect(r.status).toBe(200);
    expect(r.text).toBe('null');
  });

  it('401 with WWW-Authenticate: bearer for a missing, wrong or expired key', async () => {
    for (const key of [undefined, 'not-a-key', EXPIRED]) {
      const r = await json2(url, key, 'res.partner', 'search', { domain: [] });
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('bearer');
      const b = expectErrorBody(r.body, 'werkzeug.exceptions.Unauthorized');
      expect(b.message).toBe(key === undefined ? 'User not authenticated, use an API Key with a Bearer Authorization header.' : 'Invalid apikey');
      expect(b.arguments).toEqual([b.message, 401]);
    }
  });

  it('the Authorization scheme is case-insensitive', async () => {
    const r = await post(`${url}/json/2/res.partner/search_count`, '{"domain":[]}', { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` });
    expect(r.status).toBe(200);
    expect(typeof r.body).toBe('number');
  });

  it('404 JSON for an unknown model or method, 403 for a private one', async () => {
    const model = await call('no.such.model', 'search', { domain: [] });
    expect(model.status).toBe(404);
    expect(expectErrorBody(model.body, 'werkzeug.exceptions.NotFound').message).toBe("the model 'no.such.model' does not exist");
    const method = await call('res.partner', 'frobnicate', {});
    expect(method.status).toBe(404);
    expect(expectErrorBody(method.body, 'werkzeug.exceptions.NotFound').message).toBe("The method 'res.partner.frobnicate' does not exist");
    const priv = await call('stock.picking', '_action_done', { ids: [1] });
    expect(priv.status).toBe(403);
    expect(expectErrorBody(priv.body, 'odoo.exceptions.AccessError').message).toBe("Private methods (such as 'stock.picking._action_done') cannot be called remotely.");
    const bare = await post(`${url}/json/2/res.partner`, '{}', { 'Content-Type': 'application/json', Authorization: `bearer ${KEY}` });
    expect(bare.status).toBe(404);
    expect((bare.body as ErrorBody).message).toBe('Did you mean POST /json/2/<model>/<method>?');
  });

  it('422 for bad arguments, ids on an @api.model method, and UserErrors', async () => {
    const missing = await call('res.partner', 'search', {});
    expect(missing.status).toBe(422);
    expect(expectErrorBody(missing.body, 'werkzeug.exceptions.UnprocessableEntity').message).toBe("missing a required argument: 'domain'");
    const extra = await call('res.partner', 'search', { domain: [], bogus: 1 });
    expect(extra.status).toBe(422);
    expect((extra.body as ErrorBody).message).toBe("got an unexpected keyword argument 'bogus'");
    const ids = await call('res.partner', 'create', { ids: [1], vals_list: [{ name: 'x' }] });
    expect(ids.status).toBe(422);
    expect((ids.body as ErrorBody).message).toBe('cannot call res.partner.create with ids');
    const so = odoo.call('sale.order', 'create', [{ partner_id: odoo.records('res.partner', [['ref', '=', 'CLINIC-A']])[0]!.id }]) as number;
    odoo.call('sale.order', 'action_confirm', [[so]]);
    const twice = await call('sale.order', 'action_confirm', { ids: [so] });
    expect(twice.status).toBe(422);
    expect(expectErrorBody(twice.body, 'odoo.exceptions.UserError').message).toMatch(/^The following orders are not in a state requiring confirmation: S\d{5}$/);
  });

  it('500 for a ValueError (unknown field), 404 for a MissingError, 403 for an AccessError', async () => {
    const bad = await call('res.partner', 'search', { domain: [['bad field', '=', 1]] });
    expect(bad.status).toBe(500);
    expect(expectErrorBody(bad.body, 'builtins.ValueError').message).toContain('Invalid field res.partner.bad field in condition');
    const name = await call('stock.move', 'create', { vals_list: [{ name: 'x' }] });
    expect(name.status).toBe(500);
    expect((name.body as ErrorBody).message).toBe("Invalid field 'name' on model 'stock.move'");
    const missing = await call('res.partner', 'write', { ids: [999999], vals: { name: 'x' } });
    expect(missing.status).toBe(404);
    expectErrorBody(missing.body, 'odoo.exceptions.MissingError');
  });

  it('415 HTML for a wrong Content-Type, 405 for GET, 400 JSON for an unparsable body', async () => {
    const wrong = await post(`${url}/json/2/res.partner/search`, '{"domain":[]}', { 'Content-Type': 'text/plain', Authorization: `bearer ${KEY}` });
    expect(wrong.status).toBe(415);
    expect(wrong.headers.get('content-type')).toContain('text/html');
    const get = await fetch(`${url}/json/2/res.partner/search`);
    expect(get.status).toBe(405);
    const garbage = await post(`${url}/json/2/res.partner/search`, '{oops', { 'Content-Type': 'application/json', Authorization: `bearer ${KEY}` });
    expect(garbage.status).toBe(400);
    expect(expectErrorBody(garbage.body, 'werkzeug.exceptions.BadRequest').message).toMatch(/^could not parse the body as json: /);
  });

  it('X-Odoo-Database: a wrong name is a 404 HTML page', async () => {
    const r = await json2(url, KEY, 'res.partner', 'search', { domain: [] }, { 'X-Odoo-Database': 'other' });
    expect(r.status).toBe(404);
    expect(r.headers.get('content-type')).toContain('text/html');
    const ok = await json2(url, KEY, 'res.partner', 'search', { domain: [] }, { 'X-Odoo-Database': 'lab' });
    expect(ok.status).toBe(200);
  });

  it('context_get says who the key belongs to', async () => {
    const r = await call('res.users', 'context_get', {});
    expect(r.body).toMatchObject({ uid: 2, lang: 'en_US' });
  });

  it('GET /web/version and /json/version', async () => {
    for (const p of ['/web/version', '/json/version']) {
      const r = await fetch(`${url}${p}`);
      expect(await r.json()).toEqual({ version_info: [19, 0, 0, 'final', 0, ''], version: '19.0' });
    }
  });
});

describe('JSON-2 on a multi-database host', () => {
  let odoo: OdooEmulator;
  let url: string;
  beforeAll(async () => {
    odoo = new OdooEmulator({ version: 19, multiDatabase: true, seed: 'empty', users: [{ login: 'admin', password: 'admin', apiKeys: [{ key: KEY }] }] });
    ({ url } = await odoo.listen());
  });
  afterAll(async () => { await odoo.close(); });

  it('without X-Odoo-Database the answer is a 404 HTML page', async () => {
    const r = await json2(url, KEY, 'res.partner', 'search', { domain: [] });
    expect(r.status).toBe(404);
    expect(r.text).toContain('<title>404 Not Found</title>');
    const ok = await json2(url, KEY, 'res.partner', 'search', { domain: [] }, { 'X-Odoo-Database': 'lab' });
    expect(ok.status).toBe(200);
  });
});

describe('API keys over JSON-RPC by version', () => {
  it.each([[17, true], [18, false], [19, false]] as const)('Odoo %i: an expired key authenticates: %s', async (version, works) => {
    const odoo = new OdooEmulator({ version, now: () => NOW, seed: 'empty', users: [{ login: 'bot', password: '', apiKeys: [{ key: EXPIRED, expiresAt: '2026-02-01T00:00:00Z' }] }] });
    const { url } = await odoo.listen();
    try {
      const r = await post(`${url}/jsonrpc`, JSON.stringify({ jsonrpc: '2.0', id: 1, params: { service: 'common', method: 'authenticate', args: ['lab', 'bot', EXPIRED, {}] } }), { 'Content-Type': 'application/json' });
      expect((r.body as { result: unknown }).result).toBe(works ? 2 : false);
    } finally {
      await odoo.close();
    }
  });
});
