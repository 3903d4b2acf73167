import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../gateway/src/log.ts';
import { OdooClient } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { failureOf, isLinkDown } from '../../gateway/src/relay/odoo/odoo-error.ts';
import { objectCall, rigBehindProxy, startFrontProxy, type Interceptor } from '../fixtures/relay/front-proxy.ts';
import { BOT, startEmulator, type Rig } from '../fixtures/relay/harness.ts';
import { milestone, orderCreated } from '../fixtures/relay/helpers.ts';

/**
 * Audit of a JSON-RPC answer that is JSON but not Odoo's: a front proxy or WAF answering HTTP 200
 * with its own JSON object (no `jsonrpc`, no `result`, no `error`). Odoo answers /jsonrpc with
 * `{"jsonrpc": "2.0", "id": <the request's>, …}` always, even for a method that returned None
 * (no `result` key, odoo-api.md A.1 and D). Such an answer says nothing of whether the call ran:
 * a write is ambiguous (looked up before any resend), a read is the link down.
 */

const PROXY_JSON = JSON.stringify({ blocked: false, status: 'ok', support_id: '18.2f4e' });

/** The proxy answers `method` on `model` with its own JSON `times` times (never sent on to Odoo). */
function ownJson(model: string, method: string, times: number): Interceptor {
  let left = times;
  return (req, res) => {
    const call = objectCall(req);
    if (left <= 0 || call?.model !== model || call.method !== method) return false;
    left--;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(PROXY_JSON) });
    res.end(PROXY_JSON);
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

describe('a JSON-RPC answer without "jsonrpc", "result" or "error"', () => {
  it('is no success: a write is ambiguous, a read the link down', async () => {
    const { emu, url } = await startEmulator(17);
    cleanups.push(() => emu.close());
    const proxy = await startFrontProxy(url);
    cleanups.push(() => proxy.close());
    const client = new OdooClient({ url: proxy.url, database: 'lab', login: BOT.login, apiKey: BOT.key, timeoutMs: 5000, log: silentLogger, models: [] });
    cleanups.push(async () => client.close());
    await client.connect();
    proxy.intercept(ownJson('res.partner', 'search_read', 1));
    // Before: null, read by a look-up as "nothing found".
    const read = await client.call('res.partner', 'search_read', { domain: [], fields: ['id'] }).then(() => undefined, (e: unknown) => e);
    expect(read).toBeInstanceOf(Error);
    expect(failureOf(read)).toBe('transient');
    expect(isLinkDown(read)).toBe(true);
    proxy.intercept(ownJson('res.partner', 'write', 1));
    // Before: null, a write taken as done though Odoo never saw it.
    const write = await client.call('res.partner', 'write', { vals: { comment: 'x' } }, { ids: [1] }).then(() => undefined, (e: unknown) => e);
    expect(write).toBeInstanceOf(Error);
    expect(failureOf(write)).toBe('ambiguous');
    expect(proxy.intercepted()).toBe(2);
    // Odoo's own answer of a method that returned None (no `result` key) is still a success.
    proxy.intercept(undefined);
    expect(await client.call('res.partner', 'search_read', { domain: [['id', '=', -1]], fields: ['id'] })).toEqual([]);
  });

  it('a chatter note the proxy answered for Odoo is posted once, not taken as posted', async () => {
    // What the lab saw: "specimen received" missing from the order's chatter though the gateway
    // showed it delivered: the site's WAF had answered the post with its own JSON, HTTP 200.
    // Broke: nothing lost (DESIGN.md §2).
    const { proxy, rig: proxied } = await rigBehindProxy(17);
    rig = proxied;
    const emu = rig.emu;
    await rig.commit([orderCreated('PJS1', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();
    proxy.intercept(ownJson('sale.order', 'message_post', 1));
    const [id] = await rig.commit([milestone('specimen.received', 'PJS1', 1)]);
    await rig.waitDrained();
    expect(proxy.intercepted()).toBe(1);
    const so = emu.records('sale.order', [['client_order_ref', '=', 'PJS1']])[0]!;
    const notes = emu.records('mail.message', [['model', '=', 'sale.order'], ['res_id', '=', so.id], ['body', 'ilike', 'lgw:']]);
    expect(notes).toHaveLength(1);
    expect((await rig.store.getEvent(id!))?.state).toBe('delivered');
  });
});
