import { describe, expect, it } from 'vitest';
import { json2Answer } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { failureOf, isLinkDown } from '../../gateway/src/relay/odoo/odoo-error.ts';
import type { Interceptor } from '../fixtures/relay/front-proxy.ts';
import { answerCall, chatterNoteAnsweredByProxy, failed, PROXY_JSON, proxyAudit } from '../fixtures/relay/proxy-audit.ts';

/**
 * Audit of a JSON-2 answer (Odoo 19, POST /json/2/<model>/<method>) that is JSON but not Odoo's:
 * a front proxy or WAF answering HTTP 200 with its own JSON. JSON-2 returns the method's value
 * bare (addons/rpc/controllers/json2.py; odoo-api.md A.4), so nothing in the body names Odoo; what
 * does is how Odoo sends it (make_json_response: `application/json`) and the shape Odoo's own
 * code gives each ORM method's value (a search_read an array of records, a message_post the new
 * message's ids, a write true). An answer Odoo cannot have given says nothing of whether the call
 * ran: a write is ambiguous (looked up before any resend), a read is the link down.
 */

/** The proxy answers `method` on `model` with `body` (as `contentType`) `times` times, never sent on to Odoo. */
const ownAnswer = (model: string, method: string, times: number, body = PROXY_JSON, contentType = 'application/json'): Interceptor =>
  answerCall(model, method, times, () => ({ body, contentType }));

const audit = proxyAudit();

describe("Odoo 19: a JSON-2 answer that cannot be Odoo's", () => {
  it("a proxy's JSON object is no success: a write is ambiguous, a read the link down", async () => {
    const { client, proxy } = await audit.clientBehindProxy(19);
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
    const { client, proxy } = await audit.clientBehindProxy(19);
    proxy.intercept(ownAnswer('res.partner', 'search_read', 1, '[]', 'text/plain; charset=utf-8'));
    const read = await failed(client.call('res.partner', 'search_read', { domain: [], fields: ['id'] }));
    expect(failureOf(read)).toBe('transient');
    expect(isLinkDown(read)).toBe(true);
    expect((read as Error).message).toMatch(/JSON sent as 'text\/plain; charset=utf-8'/);
  });

  it("Odoo's own answers pass: records, ids, true, a count, an action, a load's result, null", async () => {
    const { client } = await audit.clientBehindProxy(19);
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
    // What the lab saw on Odoo 19: the site's WAF had answered the post with its own JSON, HTTP 200.
    await chatterNoteAnsweredByProxy(audit, 19, 'J2A1', () => ({ body: PROXY_JSON }));
  });
});
