import { describe, expect, it } from 'vitest';
import { OdooEmulator } from '../odoo-emulator/index.ts';
import { freePort } from '../fixtures/ports.ts';
import { objectCall, startFrontProxy } from '../fixtures/relay/front-proxy.ts';
import { BOT, makeRig, startEmulator } from '../fixtures/relay/harness.ts';
import { orderCreated, waitFor } from '../fixtures/relay/helpers.ts';
import { proxyAudit } from '../fixtures/relay/proxy-audit.ts';

/**
 * Audit of an Odoo upgraded while the gateway had nothing to send (a quiet Sunday, the upgrade's
 * downtime between two reference pulls): no outage seen, so no new connection, and the client
 * kept speaking to the old version. The relay must notice the new server from Odoo's refusals
 * before it dead-letters anything.
 */

const audit = proxyAudit();

function botUsers(): ConstructorParameters<typeof OdooEmulator>[0]['users'] {
  return [
    { login: 'admin', password: 'admin', rights: 'admin' },
    { login: BOT.login, password: BOT.password, apiKeys: [{ key: BOT.key }], rights: 'bot' },
  ];
}

describe('Odoo upgraded while the gateway had nothing to send', () => {
  it('orders after an 18 → 19 upgrade the gateway did not see go down reach Odoo 19, not the dead letters', async () => {
    // What finance saw on Monday: every order of the morning dead-lettered "Odoo rejected the
    // request (sale.order.load): builtins.KeyError: 'product_uom'", no sale order to invoice,
    // until someone restarted the gateway and replayed each one.
    // Broke: DESIGN.md §2 (no acknowledged message lost) and the client's promise to speak to the
    // Odoo that is there: the version and fields were read again only after a link failure.
    const port = await freePort();
    const before = await startEmulator(18, {}, port);
    let odoo = before.emu;
    audit.onCleanup(() => odoo.close());
    const rig = audit.useRig(await makeRig(18, { emu: before }));
    const alerts: string[] = [];
    rig.telemetry.on('alert', (a) => alerts.push(a.code));
    await rig.commit([orderCreated('UPQ-0', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();
    expect(rig.client.serverVersion).toBe(18);

    // The upgrade, while the gateway sends nothing: same URL, database, bot and key.
    await odoo.close();
    odoo = new OdooEmulator({ version: 19, seed: 'lab-demo', users: botUsers() });
    await odoo.listen(port);

    const [id] = await rig.commit([orderCreated('UPQ-1', 'CLINIC-A', ['GLU', 'TSH'])]);
    await rig.waitDrained();
    const ev = await rig.store.getEvent(id!);
    expect(ev?.deadReason).toBeUndefined();
    expect(ev?.state).toBe('delivered');
    const so = odoo.records('sale.order', [['client_order_ref', '=', 'UPQ-1']]);
    expect(so).toHaveLength(1);
    expect(odoo.count('sale.order.line', [['order_id', '=', so[0]!.id]])).toBe(2);
    // Not charged an attempt for the refusal the old fields met.
    expect(ev?.attempts).toBe(1);
    expect(rig.client.serverVersion).toBe(19);
    expect(rig.client.protocol).toBe('json-2');
    expect(alerts).toContain('ODOO_VERSION_CHANGED');
  });

  it('the same version still refusing a field: the event is dead-lettered with Odoo\'s reason, after one version check', async () => {
    const { emu, url } = await startEmulator(17);
    audit.onCleanup(() => emu.close());
    // A proxy answering sale.order.load with the KeyError Odoo gives for an unknown column (D).
    const proxy = await startFrontProxy(url);
    audit.onCleanup(() => proxy.close());
    let versionChecks = 0;
    proxy.intercept((req, res) => {
      const rpc = req.json as { id?: unknown; params?: { service?: string; method?: string } } | undefined;
      if (rpc?.params?.service === 'common' && rpc.params.method === 'version') versionChecks++;
      const call = objectCall(req);
      if (call?.model !== 'sale.order' || call.method !== 'load') return false;
      const message = "'x_lab_panel'";
      const text = JSON.stringify({ jsonrpc: '2.0', id: rpc?.id ?? null, error: { code: 200, message: 'Odoo Server Error', data: { name: 'builtins.KeyError', debug: 'Traceback (most recent call last):\n  ...', message, arguments: [message], context: {} } } });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return true;
    });
    const rig = audit.useRig(await makeRig(17, { emu: { emu, url: proxy.url } }));
    await waitFor(() => rig.client.state === 'connected');
    const checksAtConnect = versionChecks;
    const [id] = await rig.commit([orderCreated('UPQ-2', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();
    const ev = await rig.store.getEvent(id!);
    expect(ev?.state).toBe('dead');
    expect(ev?.deadReason).toContain("builtins.KeyError: 'x_lab_panel'");
    expect(versionChecks - checksAtConnect).toBe(1);
    expect(rig.client.serverVersion).toBe(17);
  });

  it('a reference pull after an 18 → 19 upgrade the gateway did not see go down reconnects and reads Odoo 19', async () => {
    // What the lab saw: after the Sunday upgrade, "Odoo answered the gateway's read of products
    // with an error" every pull, reorder points and stock unread, the stock watch blind, until an
    // event happened to relink or the gateway was restarted.
    const port = await freePort();
    const before = await startEmulator(18, {}, port);
    let odoo = before.emu;
    audit.onCleanup(() => odoo.close());
    const rig = audit.useRig(await makeRig(18, { emu: before, relay: { referenceRefreshMs: 1000 } }));
    await waitFor(() => rig.relay.snapshot().referencePulledAt !== undefined);
    expect(rig.relay.reference.refused).toEqual([]);
    await odoo.close();
    odoo = new OdooEmulator({ version: 19, seed: 'lab-demo', users: botUsers() });
    await odoo.listen(port);
    await waitFor(() => rig.client.serverVersion === 19, 10_000);
    await waitFor(() => odoo.calls.some((c) => c.transport === 'json2' && c.model === 'product.product' && c.method === 'search_read' && c.error === undefined), 10_000);
    await waitFor(() => rig.relay.reference.refused.length === 0, 10_000);
  });
});

