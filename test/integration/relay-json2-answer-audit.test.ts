import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../gateway/src/log.ts';
import { OdooClient, json2Answer } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { failureOf, isLinkDown } from '../../gateway/src/relay/odoo/odoo-error.ts';
import { objectCall, rigBehindProxy, startFrontProxy, type FrontProxy, type Interceptor } from '../fixtures/relay/front-proxy.ts';
import { BOT, startEmulator, type Rig } from '../fixtures/relay/harness.ts';
import { milestone, orderCreated } from '../fixtures/relay/helpers.ts';

/**
 * Audit of a JSON-2 answer (Odoo 19, POST /json/2/<model>/<method>) that is JSON but not Odoo's:
 * a front proxy or WAF answering HTTP 200 with its own JSON. JSON-2 returns the method's value
 * bare (addons/rpc/controllers/json2.py; odoo-api.md A.4), so nothing in the body names Odoo; what
 * does is how Odoo sends it (make_json_response: `application/json`) and the shape Odoo's own
 * code gives each ORM method's value (a search_read an array of records, a message_post the new
 * message's ids, a write true). An answer Odoo cannot have given says nothing of whether the call
 * ran: a write is ambiguous (looked up before any resend), a read is the link down.
 */

const PROXY_JSON = JSON.stringify({ blocked: false, status: 'ok', support_id: '18.2f4e' });

/** The proxy answers `method` on `model` with `body` (as `contentType`) `times` times, never sent on to Odoo. */
function ownAnswer(model: string, method: string, times: number, body = PROXY_JSON, contentType = 'application/json'): Interceptor {
  let left = times;
  return (req, res) => {
    const call = objectCall(req);
    if (left <= 0 || call?.model !== model || call.method !== method) return false;
    left--;
    res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return true;
  };
}

let rig: Rig | undefined;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await rig?.close();
  rig = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function clientBehindProxy(): Promise<{ client: OdooClient; proxy: FrontProxy }> {
  const { emu, url } = await startEmulator(19);
  cleanups.push(() => emu.close());
  const proxy = await startFrontProxy(url);
  cleanups.push(() => proxy.close());
  const client = new OdooClient({ url: proxy.url, database: 'lab', login: BOT.login, apiKey: BOT.key, timeoutMs: 5000, log: silentLogger, models: [] });
  cleanups.push(async () => client.close());
  await client.connect();
  return { client, proxy };
}

const failed = (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e);

describe("Odoo 19: a JSON-2 answer that cannot be Odoo's", () => {
  it("a proxy's JSON object is no success: a write is ambiguous, a read the link down", async () => {
    const { client, proxy } = await clientBehindProxy();
    proxy.intercept(ownAnswer('res.partner', 'search_read', 1));
    // Before: the object itself, read by searchRead as "nothing found".
    const read = await failed(client.call('res.partner', 'search_read', { domain: [], fields: ['id'] }));
    expect(read).toBeInstanceOf(Error);
    expect(failureOf(read)).toBe('transient');
    expect(isLinkDown(read)).toBe(true);
    expect((read as Error).message).toMatch(/an object \(blocked, status, support_id\) where Odoo's search_read answers an array of records/);
    proxy.intercept(ownAnswer('sale.order', 'message_post', 1));
    // Before: a success, the note taken as posted.
    const post = await failed(client.call('sale.order', 'message_post', { body: 'x' }, { ids: [1] }));
    expect(failureOf(post)).toBe('ambiguous');
    proxy.intercept(ownAnswer('res.partner', 'write', 1));
    expect(failureOf(await failed(client.call('res.partner', 'write', { vals: { comment: 'x' } }, { ids: [1] })))).toBe('ambiguous');
    expect(proxy.intercepted()).toBe(3);
  });

  it('JSON sent as another type than application/json is not Odoo\'s, even in the right shape', async () => {
    const { client, proxy } = await clientBehindProxy();
    proxy.intercept(ownAnswer('res.partner', 'search_read', 1, '[]', 'text/plain; charset=utf-8'));
    const read = await failed(client.call('res.partner', 'search_read', { domain: [], fields: ['id'] }));
    expect(failureOf(read)).toBe('transient');
    expect(isLinkDown(read)).toBe(true);
    expect((read as Error).message).toMatch(/JSON sent as 'text\/plain; charset=utf-8'/);
  });

  it("Odoo's own answers pass: records, ids, true, a count, an action, a load's result, null", async () => {
    const { client } = await clientBehindProxy();
    expect(await client.call('res.partner', 'search_read', { domain: [['id', '=', -1]], fields: ['id'] })).toEqual([]);
    expect(await client.call('res.partner', 'search_count', { domain: [] })).toEqual(expect.any(Number));
    expect(await client.call('res.partner', 'search', { domain: [], limit: 1 })).toEqual([expect.any(Number)]);
    // Writes, creates, posts and actions of the relay's own runs: the chatter case below and the
    // other Odoo 19 relay tests.
    // The shapes Odoo's code gives the values, checked without a server.
    const json = 'application/json; charset=utf-8';
    expect(json2Answer('write', json, null)).toBeUndefined();
    expect(json2Answer('button_validate', json, { type: 'ir.actions.act_window', res_model: 'stock.backorder.confirmation' })).toBeUndefined();
    expect(json2Answer('action_post', json, false)).toBeUndefined();
    expect(json2Answer('action_set_won', json, { effect: { type: 'rainbow_man', message: 'Done' } })).toBeUndefined();
    expect(json2Answer('action_confirm', json, [4])).toBeUndefined();
    expect(json2Answer('load', json, { ids: false, messages: [{ type: 'error', message: 'x' }] })).toBeUndefined();
    expect(json2Answer('check_object_reference', json, ['sale.order', 7])).toBeUndefined();
    // ir.model.data.check_object_reference answers (model, False) for a record the user may not read.
    expect(json2Answer('check_object_reference', json, ['sale.order', false])).toBeUndefined();
    expect(json2Answer('some_business_method', json, { anything: 1 })).toBeUndefined();
    // An action method may answer any object: Odoo's web client gives a dict without `type` the
    // type 'ir.actions.act_window_close' (web/controllers/utils.py clean_action), so a module's
    // button may answer one, and JSON-2 sends it bare. Refused, every action Odoo had run was
    // held as ambiguous: an attempt charged and the event held for the settle time, each time.
    expect(json2Answer('button_validate', json, { status: 'ok' })).toBeUndefined();
    expect(json2Answer('action_confirm', json, { warning: { title: 'Stock', message: 'Low on GLU' } })).toBeUndefined();
    expect(json2Answer('action_cancel', json, { res_model: 'sale.order.cancel', view_mode: 'form', target: 'new' })).toBeUndefined();
    expect(json2Answer('action_post', json, 'done')).toBeUndefined();
    // A record id alone where Odoo 19 sends a recordset's ids: the relay's readers take both.
    expect(json2Answer('message_post', json, 42)).toBeUndefined();
    expect(json2Answer('create', json, 42)).toBeUndefined();
    expect(json2Answer('message_post', json, { status: 'ok' })).toMatch(/where Odoo's message_post answers/);
    expect(json2Answer('create', json, 0)).toMatch(/where Odoo's create answers/);
    expect(json2Answer('context_get', json, { status: 'ok' })).toMatch(/a context with its uid/);
  });

  it('a chatter note the proxy answered for Odoo is posted once, not taken as posted', async () => {
    // What the lab saw on Odoo 19: "specimen received" missing from the order's chatter though the
    // gateway showed it delivered: the site's WAF had answered the post with its own JSON, HTTP 200.
    // Broke: nothing lost (DESIGN.md §2).
    const { proxy, rig: proxied } = await rigBehindProxy(19);
    rig = proxied;
    const emu = rig.emu;
    await rig.commit([orderCreated('J2A1', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();
    proxy.intercept(ownAnswer('sale.order', 'message_post', 1));
    const [id] = await rig.commit([milestone('specimen.received', 'J2A1', 1)]);
    await rig.waitDrained();
    expect(proxy.intercepted()).toBe(1);
    const so = emu.records('sale.order', [['client_order_ref', '=', 'J2A1']])[0]!;
    const notes = emu.records('mail.message', [['model', '=', 'sale.order'], ['res_id', '=', so.id], ['body', 'ilike', 'lgw:']]);
    expect(notes).toHaveLength(1);
    expect((await rig.store.getEvent(id!))?.state).toBe('delivered');
  });
});
