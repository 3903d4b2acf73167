import { afterEach, describe, expect, it } from 'vitest';
import { idempotencyKey } from '../../gateway/src/events/keys.ts';
import { objectCall, rigBehindProxy, type Interceptor } from '../fixtures/relay/front-proxy.ts';
import type { Rig } from '../fixtures/relay/harness.ts';
import { orderCreated, waitFor } from '../fixtures/relay/helpers.ts';

/**
 * Audit of the relay against a front proxy between the lab and its Odoo that answers for itself
 * for a while: a hospital's TLS-inspecting web proxy or a WAF that blocks the lab's address
 * (HTTP 403 with its own HTML page), or that sends the gateway to its sign-in portal (HTTP 302).
 * Neither is Odoo refusing the event: Odoo answers /jsonrpc with HTTP 200 envelopes and /json/2
 * with JSON bodies (odoo-api.md A.1, A.4), and never saw the request. Finance and the stock
 * keeper need every event in Odoo once the proxy lets the gateway through again (DESIGN.md §2:
 * nothing lost), not a dead-letter list an operator has to replay by hand.
 */

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

type Block = 'waf-403' | 'portal-302';

const BLOCK_PAGE = '<!DOCTYPE html><html><head><title>Access denied</title></head><body><h1>Access to this site is blocked</h1><p>Reference #18.2f4e</p></body></html>';

/** The proxy's own answer: its block page, or a redirect to its sign-in portal. */
function blockWith(kind: Block): Interceptor {
  return (_req, res) => {
    if (kind === 'waf-403') {
      res.writeHead(403, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(BLOCK_PAGE) });
      res.end(BLOCK_PAGE);
    } else {
      res.writeHead(302, { location: 'https://portal.hospital.example/login?return=odoo', 'content-length': 0 });
      res.end();
    }
    return true;
  };
}

describe('a front proxy answering for itself (not Odoo)', () => {
  it.each([
    [17, 'waf-403'],
    [17, 'portal-302'],
    [19, 'waf-403'],
    [19, 'portal-302'],
  ] as const)('Odoo %i behind a proxy answering %s: the orders wait, uncharged, and reach Odoo once it lets them through', async (version, kind) => {
    // What the lab saw: the hospital's proxy blocked the Odoo host for ten minutes one morning,
    // and every order leased meanwhile was in the dead-letter list ("Odoo rejected the request
    // (sale.order.search_read): Odoo answered HTTP 403: <!DOCTYPE html>…"), each to be replayed
    // by hand, though Odoo had never seen one of them. Broke: nothing lost (DESIGN.md §2).
    const { started, proxy, rig: proxied } = await rigBehindProxy(version, { relay: { maxAttempts: 2 } });
    rig = proxied;
    await rig.commit([orderCreated('PRX0', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();

    proxy.intercept(blockWith(kind));
    const ids = await rig.commit([orderCreated('PRX1', 'CLINIC-A', ['GLU']), orderCreated('PRX2', 'CLINIC-B', ['HBA1C'])]);
    // Several refusals: with maxAttempts 2 a charged event would be dead by now (and a dead one is
    // not sent again: stop waiting then).
    await waitFor(() => proxy.intercepted() >= 4 || rig!.store.stats().deadLettered > 0);
    for (const id of ids) {
      const ev = await rig.store.getEvent(id);
      expect(ev?.state).not.toBe('dead');
      expect(ev?.attempts).toBe(0);
    }
    // IT staff can tell what stands between the gateway and Odoo.
    const lastError = rig.relay.snapshot().lastError ?? '';
    expect(lastError).toMatch(kind === 'waf-403' ? /HTTP 403/ : /HTTP 302.*portal\.hospital\.example/);
    expect(rig.client.state).toBe('unreachable');

    proxy.intercept(undefined);
    await rig.waitDrained();
    for (const id of ids) expect((await rig.store.getEvent(id))?.state).toBe('delivered');
    expect(started.emu.count('sale.order', [['client_order_ref', '=', 'PRX1']])).toBe(1);
    expect(started.emu.count('sale.order', [['client_order_ref', '=', 'PRX2']])).toBe(1);
    expect(rig.store.stats().deadLettered).toBe(0);
  });
});

describe('a front proxy asking for credentials of its own', () => {
  it.each([17, 19] as const)('Odoo %i behind a proxy answering HTTP 401 (WWW-Authenticate: Basic): the proxy is named, not the Odoo API key', async (version) => {
    // What IT saw: "Odoo refused the gateway's credentials: Odoo refused the API key (HTTP 401)"
    // (the critical ODOO_AUTH_FAILED alert) while the hospital's new web proxy asked for its own
    // sign-in. They made a new Odoo key, twice, and the alert stayed. Odoo answers bad keys with
    // `false` / AccessDenied over JSON-RPC and with its JSON 401 (`WWW-Authenticate: bearer`) over
    // JSON-2 (odoo-api.md A.1, A.4), never with a Basic challenge. Broke: every failure traceable.
    const { started, proxy, rig: proxied } = await rigBehindProxy(version, { relay: { maxAttempts: 2 } });
    rig = proxied;
    const alerts: string[] = [];
    rig.telemetry.on('alert', (a) => alerts.push(a.code));
    await rig.commit([orderCreated('PXA0', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();

    const page = '<html><head><title>401 Authorization Required</title></head><body>Proxy sign-in required</body></html>';
    proxy.intercept((_req, res) => {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="Hospital web proxy"', 'content-type': 'text/html', 'content-length': Buffer.byteLength(page) });
      res.end(page);
      return true;
    });
    const [id] = await rig.commit([orderCreated('PXA1', 'CLINIC-A', ['GLU'])]);
    await waitFor(() => proxy.intercepted() >= 2 || rig!.store.stats().deadLettered > 0);
    expect(alerts).not.toContain('ODOO_AUTH_FAILED');
    const lastError = rig.relay.snapshot().lastError ?? '';
    expect(lastError).toMatch(/HTTP 401/);
    expect(lastError).toContain('Basic realm="Hospital web proxy"');
    expect(lastError).not.toMatch(/refused the API key/);
    const during = await rig.store.getEvent(id!);
    expect(during?.state).not.toBe('dead');
    expect(during?.attempts).toBe(0);

    proxy.intercept(undefined);
    await rig.waitDrained();
    expect((await rig.store.getEvent(id!))?.state).toBe('delivered');
    expect(started.emu.count('sale.order', [['client_order_ref', '=', 'PXA1']])).toBe(1);
  });
});

describe('an empty HTTP 200 where Odoo 19 answers JSON', () => {
  it('Odoo 19: a look-up answered with an empty body is no answer: the resent order is not loaded twice', async () => {
    // What finance saw: a middlebox answered the gateway's look-ups of an order with HTTP 200 and
    // an empty body (Odoo 19 always answers JSON, `null` for None: odoo-api.md A.4). The empty
    // body was read as "nothing found", and the LIS's resend of the order loaded the quotation
    // again: its glucose line twice, billed twice. Broke: no duplicate Odoo document (DESIGN.md §2).
    const { started, proxy, rig: proxied } = await rigBehindProxy(19);
    rig = proxied;
    await rig.commit([orderCreated('EMP1', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();
    expect(started.emu.count('sale.order', [['client_order_ref', '=', 'EMP1']])).toBe(1);

    let emptied = 0;
    proxy.intercept((req, res) => {
      const call = objectCall(req);
      if (!call || emptied >= 4 || !['search_read', 'check_object_reference', 'read'].includes(call.method)) return false;
      emptied++;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 0 });
      res.end();
      return true;
    });
    // The LIS sends the order again (same accession and tests, a new message).
    const [id] = await rig.commit([{ ...orderCreated('EMP1', 'CLINIC-A', ['GLU']), idempotencyKey: idempotencyKey('lis', 'order', 'EMP1', 'resent') }]);
    await rig.waitDrained();
    expect(emptied).toBeGreaterThan(0);
    expect((await rig.store.getEvent(id!))?.state).toBe('delivered');
    expect(started.emu.count('sale.order', [['client_order_ref', '=', 'EMP1']])).toBe(1);
    const [so] = started.emu.records('sale.order', [['client_order_ref', '=', 'EMP1']]);
    // Re-loading the order's external id adds its lines again (odoo-api.md D): one GLU line.
    expect(started.emu.count('sale.order.line', [['order_id', '=', so!.id]])).toBe(1);
  });
});
