import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../gateway/src/log.ts';
import { OdooClient } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { lookupExternalId } from '../../gateway/src/relay/odoo/odoo-calls.ts';
import { failureOf, isLinkDown } from '../../gateway/src/relay/odoo/odoo-error.ts';
import { objectCall, startFrontProxy } from '../fixtures/relay/front-proxy.ts';
import { BOT, startEmulator } from '../fixtures/relay/harness.ts';

/**
 * The external-id look-up before a `load()` (odoo-api.md B.4, D: loading an existing external id
 * again adds its lines again) takes Odoo's ValueError "External ID not found in the system" for a
 * miss. Anything else whose text happens to say "not found" (a web proxy's block page titled
 * "404 Not Found", answered with 403) is no answer of Odoo: the look-up must fail, not miss.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const BLOCK_PAGE = '<html><head><title>404 Not Found</title></head><body>The requested URL was not found on this server.</body></html>';

/** While `block()`, the proxy answers the external-id look-up with its own 403 page titled "404 Not Found". */
async function blockingProxy(target: string, block: () => boolean): Promise<string> {
  const proxy = await startFrontProxy(target);
  cleanups.push(() => proxy.close());
  proxy.intercept((req, res) => {
    if (!block() || objectCall(req)?.method !== 'check_object_reference') return false;
    res.writeHead(403, { 'content-type': 'text/html', 'content-length': Buffer.byteLength(BLOCK_PAGE) });
    res.end(BLOCK_PAGE);
    return true;
  });
  return proxy.url;
}

describe('the external-id look-up', () => {
  it.each([17, 19] as const)('Odoo %i: a proxy page that says "Not Found" is the link down, not a miss; a real miss and a hit still read as such', async (version) => {
    const { emu, url } = await startEmulator(version);
    cleanups.push(() => emu.close());
    let blocking = false;
    const client = new OdooClient({ url: await blockingProxy(url, () => blocking), database: 'lab', login: BOT.login, apiKey: BOT.key, timeoutMs: 30_000, log: silentLogger, models: [] });
    cleanups.push(async () => client.close());
    await client.connect();
    const [so] = emu.call('sale.order', 'create', [[{ partner_id: 1, client_order_ref: 'XID-1' }]]) as number[];
    emu.call('ir.model.data', 'create', [[{ module: 'lab_gateway', name: 'so_XID-1', model: 'sale.order', res_id: so }]]);
    expect(await lookupExternalId(client, 'lab_gateway', 'so_XID-1')).toBe(so);
    expect(await lookupExternalId(client, 'lab_gateway', 'so_NOPE')).toBeUndefined();
    blocking = true;
    // Before: undefined (a miss), and the rule loaded the order again: its lines twice.
    const err = await lookupExternalId(client, 'lab_gateway', 'so_XID-1').then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(failureOf(err)).toBe('transient');
    expect(isLinkDown(err)).toBe(true);
  });
});
