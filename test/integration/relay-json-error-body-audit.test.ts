import { describe, expect, it } from 'vitest';
import { failureOf, isLinkDown } from '../../gateway/src/relay/odoo/odoo-error.ts';
import { rigBehindProxy, type Interceptor } from '../fixtures/relay/front-proxy.ts';
import { orderCreated, waitFor } from '../fixtures/relay/helpers.ts';
import { failed, proxyAudit } from '../fixtures/relay/proxy-audit.ts';

/**
 * Audit of a web proxy's or API gateway's own JSON error in front of Odoo: `{"name": "Forbidden",
 * "message": "Request blocked by policy"}` at 403, `{"name": "ServiceUnavailable", …}` at 503.
 * Odoo's JSON-2 error body is `serialize_exception`'s, always with `arguments` (and `context`,
 * `debug`; odoo-api.md A.4); /jsonrpc answers its errors at HTTP 200. A JSON error without them is
 * the proxy answering for itself: the request never reached Odoo, the link is down until it lets
 * the gateway through.
 */

const audit = proxyAudit();

/** The proxy answers every object call with its own JSON error. */
function jsonError(status: number, name: string, message: string): Interceptor {
  return (req, res) => {
    if (!req.url.startsWith('/json/2/') && req.url !== '/jsonrpc') return false;
    const body = JSON.stringify({ name, message });
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return true;
  };
}

describe("a web proxy's own JSON error", () => {
  it.each([17, 19] as const)('Odoo %i: a 403 or a 503 JSON of the proxy is the link down, not Odoo refusing the call', async (version) => {
    const { client, proxy } = await audit.clientBehindProxy(version);
    proxy.intercept(jsonError(403, 'Forbidden', 'Request blocked by policy'));
    // Before: "Forbidden: Request blocked by policy", permanent: every event a dead letter.
    const blocked = await failed(client.call('sale.order', 'search_read', { domain: [], fields: ['id'] }));
    expect(failureOf(blocked)).toBe('transient');
    expect(isLinkDown(blocked)).toBe(true);
    expect((blocked as Error).message).toMatch(/HTTP 403.*not an answer of Odoo/);
    proxy.intercept(jsonError(503, 'ServiceUnavailable', 'Down for maintenance'));
    // Before: transient for this event only, charged an attempt, the link not backed off.
    const down = await failed(client.call('sale.order', 'search_read', { domain: [], fields: ['id'] }));
    expect(failureOf(down)).toBe('transient');
    expect(isLinkDown(down)).toBe(true);
  });

  it("Odoo 19's own error body is still Odoo's refusal", async () => {
    const { client } = await audit.clientBehindProxy(19);
    // 422 UnprocessableEntity, serialize_exception's body: Odoo refusing the call on its merits.
    const refused = await failed(client.call('res.partner', 'write', {}, { ids: [1] }));
    expect(failureOf(refused)).toBe('permanent');
    expect((refused as Error).message).toMatch(/^werkzeug\.exceptions\.UnprocessableEntity: /);
  });

  it('Odoo 19 behind a proxy answering 403 JSON: the orders wait, uncharged, and reach Odoo once it lets them through', async () => {
    // What the lab saw: the hospital's API gateway blocked the Odoo host for a while, answering
    // its own JSON error, and every order leased meanwhile was in the dead-letter list
    // ("Forbidden: Request blocked by policy"), to be replayed by hand. Broke: nothing lost.
    const { started, proxy, rig: proxied } = await rigBehindProxy(19, { relay: { maxAttempts: 2 } });
    const rig = audit.useRig(proxied);
    await rig.commit([orderCreated('JEB0', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();
    proxy.intercept(jsonError(403, 'Forbidden', 'Request blocked by policy'));
    const ids = await rig.commit([orderCreated('JEB1', 'CLINIC-A', ['GLU']), orderCreated('JEB2', 'CLINIC-B', ['HBA1C'])]);
    await waitFor(() => proxy.intercepted() >= 4 || rig.store.stats().deadLettered > 0);
    for (const id of ids) {
      const ev = await rig.store.getEvent(id);
      expect(ev?.state).not.toBe('dead');
      expect(ev?.attempts).toBe(0);
    }
    expect(rig.client.state).toBe('unreachable');
    proxy.intercept(undefined);
    await rig.waitDrained();
    for (const id of ids) expect((await rig.store.getEvent(id))?.state).toBe('delivered');
    expect(started.emu.count('sale.order', [['client_order_ref', '=', 'JEB1']])).toBe(1);
    expect(rig.store.stats().deadLettered).toBe(0);
  });
});

describe('a 2xx other than 200 (a proxy answering for Odoo)', () => {
  it.each([17, 19] as const)('Odoo %i: a 204 or a 202 is no answer of Odoo: a write is ambiguous, a read the link down, never a dead letter', async (version) => {
    const { client, proxy } = await audit.clientBehindProxy(version);
    proxy.intercept((req, res) => {
      if (!req.url.startsWith('/json/2/') && req.url !== '/jsonrpc') return false;
      res.writeHead(req.url === '/jsonrpc' ? 204 : 202, { 'content-length': 0 });
      res.end();
      return true;
    });
    // Before: "Odoo answered HTTP 204", permanent: each event leased meanwhile dead-lettered.
    const read = await failed(client.call('sale.order', 'search_read', { domain: [], fields: ['id'] }));
    expect(failureOf(read)).toBe('transient');
    expect(isLinkDown(read)).toBe(true);
    expect((read as Error).message).toMatch(/answered HTTP 20[24], not an answer of Odoo/);
    const write = await failed(client.call('sale.order', 'write', { vals: { note: 'x' } }, { ids: [1] }));
    expect(failureOf(write)).toBe('ambiguous');
  });
});
