import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../gateway/src/log.ts';
import { OdooClient } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { failureOf, isLinkDown } from '../../gateway/src/relay/odoo/odoo-error.ts';
import { objectCall, rigBehindProxy, startFrontProxy, type Interceptor } from '../fixtures/relay/front-proxy.ts';
import { BOT, startEmulator, type Rig } from '../fixtures/relay/harness.ts';
import { milestone, orderCreated } from '../fixtures/relay/helpers.ts';

/**
 * Audit of a JSON-RPC answer that is Odoo's in form but another request's: a web proxy's cache
 * answering a POST to /jsonrpc from an earlier call, or a late answer read on a reused
 * connection. Odoo echoes the request's id in every answer (odoo-api.md A.1, D); an answer with
 * another id says nothing of this call: a write is ambiguous (looked up before any resend), a read
 * is the link down.
 */

/** The proxy answers `method` on `model` `times` times with the envelope of the request before (its id − 1). */
function staleAnswer(model: string, method: string, times: number, result: unknown): Interceptor {
  let left = times;
  return (req, res) => {
    const call = objectCall(req);
    if (left <= 0 || call?.model !== model || call.method !== method) return false;
    left--;
    const id = (req.json as { id?: unknown }).id;
    const body = JSON.stringify({ jsonrpc: '2.0', id: typeof id === 'number' ? id - 1 : 0, result });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
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

async function clientBehindProxy(): Promise<{ client: OdooClient; proxy: Awaited<ReturnType<typeof startFrontProxy>> }> {
  const { emu, url } = await startEmulator(17);
  cleanups.push(() => emu.close());
  const proxy = await startFrontProxy(url);
  cleanups.push(() => proxy.close());
  const client = new OdooClient({ url: proxy.url, database: 'lab', login: BOT.login, apiKey: BOT.key, timeoutMs: 5000, log: silentLogger, models: [] });
  cleanups.push(async () => client.close());
  await client.connect();
  return { client, proxy };
}

describe("a JSON-RPC answer carrying another request's id", () => {
  it('is no answer to this call: a write is ambiguous, a read the link down', async () => {
    const { client, proxy } = await clientBehindProxy();
    proxy.intercept(staleAnswer('res.partner', 'search_read', 1, []));
    // Before: [], read by a look-up as "nothing found".
    const read = await client.call('res.partner', 'search_read', { domain: [], fields: ['id'] }).then(() => undefined, (e: unknown) => e);
    expect(read).toBeInstanceOf(Error);
    expect(failureOf(read)).toBe('transient');
    expect(isLinkDown(read)).toBe(true);
    expect((read as Error).message).toMatch(/another request/);
    proxy.intercept(staleAnswer('res.partner', 'write', 1, true));
    // Before: true, a write taken as done though Odoo never saw it.
    const write = await client.call('res.partner', 'write', { vals: { comment: 'x' } }, { ids: [1] }).then(() => undefined, (e: unknown) => e);
    expect(write).toBeInstanceOf(Error);
    expect(failureOf(write)).toBe('ambiguous');
    expect(proxy.intercepted()).toBe(2);
    // Odoo's own answers (its id echoed) still pass.
    proxy.intercept(undefined);
    expect(await client.call('res.partner', 'search_read', { domain: [['id', '=', -1]], fields: ['id'] })).toEqual([]);
  });

  it("an error Odoo met before reading the request (id null) is still Odoo's error", async () => {
    // JsonRPCDispatcher's request_id is None until it has read the body: a failure before (a
    // request over the server's size limit) is answered `"id": null`. Refused as "another
    // request's", it would read as the link down and be retried for ever.
    const { client, proxy } = await clientBehindProxy();
    proxy.intercept((req, res) => {
      if (objectCall(req)?.method !== 'load') return false;
      const body = JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: 200, message: 'Odoo Server Error', data: { name: 'odoo.exceptions.UserError', debug: '', message: 'Refused before reading', arguments: ['Refused before reading'], context: {} } } });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return true;
    });
    const err = await client.call('sale.order', 'load', { fields: ['id'], data: [['lab_gateway.x']] }).then(() => undefined, (e: unknown) => e);
    expect(failureOf(err)).toBe('permanent');
    expect((err as Error).message).toMatch(/^odoo\.exceptions\.UserError: Refused before reading/);
  });

  it("a chatter note answered from the proxy's cache is posted once, not taken as posted", async () => {
    // What the lab saw: "specimen received" missing from the order's chatter though the gateway
    // showed it delivered: the site's proxy had answered the post with a cached answer of an
    // earlier call (a message id, HTTP 200, Odoo's envelope). Broke: nothing lost (DESIGN.md §2).
    const { proxy, rig: proxied } = await rigBehindProxy(17);
    rig = proxied;
    const emu = rig.emu;
    await rig.commit([orderCreated('AID1', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();
    proxy.intercept(staleAnswer('sale.order', 'message_post', 1, 77));
    const [id] = await rig.commit([milestone('specimen.received', 'AID1', 1)]);
    await rig.waitDrained();
    expect(proxy.intercepted()).toBe(1);
    const so = emu.records('sale.order', [['client_order_ref', '=', 'AID1']])[0]!;
    const notes = emu.records('mail.message', [['model', '=', 'sale.order'], ['res_id', '=', so.id], ['body', 'ilike', 'lgw:']]);
    expect(notes).toHaveLength(1);
    expect((await rig.store.getEvent(id!))?.state).toBe('delivered');
  });
});
