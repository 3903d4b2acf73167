/**
 * Odoo refusing the stock watch's read of the lab's quants.
 *
 * Before a breach is raised, the stock watch reads the goods on their way again, then the quants of
 * its products (ed6a931). A read that fails holds the breach until the next check: right for the
 * link down (a timeout, a refused connection, a 5xx), since the next check reads again. But Odoo
 * refusing the read on its merits (an AccessError: the gateway's user lost read access on
 * stock.quant, or a record rule refuses it) is no failure of the link: it answers the same at every
 * check. Was: the breach was held back at every check, for ever, a warning in the log each time,
 * nothing told IT, and the lab ran out of tips with no RFQ, while the consumption rule, refused the
 * same read, used the last pull's quants and went on posting.
 * Real store in a temp dir, real relay and stock watch, the Odoo emulator over HTTP behind a front
 * proxy that answers the quants' read with Odoo's refusal ('lab-demo' seed: TIP-200 40 on hand in
 * WH/Stock/Lab, reorder rule minimum 20, maximum 60).
 */
import type http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../gateway/src/log.ts';
import { StockWatch } from '../../gateway/src/relay/stock-watch.ts';
import type { TelemetryEvents } from '../../gateway/src/telemetry.ts';
import { objectCall, rigBehindProxy, type FrontProxy, type ProxiedRequest } from '../fixtures/relay/front-proxy.ts';
import type { Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, rfqLines, waitFor } from '../fixtures/relay/helpers.ts';
import type { OdooVersion } from '../odoo-emulator/index.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** Odoo 17's text for a user without read access on the model (ir.model.access). */
const ACCESS_TEXT =
  "You are not allowed to access 'Quants' (stock.quant) records.\n\nThis operation is allowed for the following groups:\n\t- Inventory/User\n\nContact your administrator to request access if necessary.";

/** Odoo's AccessError as each protocol carries it: a JSON-RPC envelope at HTTP 200 (≤18), a JSON-2 body at HTTP 403 (19). */
function answerAccessError(req: ProxiedRequest, res: http.ServerResponse): void {
  const name = 'odoo.exceptions.AccessError';
  const data = { name, message: ACCESS_TEXT, arguments: [ACCESS_TEXT], context: {}, debug: 'Traceback (most recent call last):\n  ...' };
  const json2 = req.url.startsWith('/json/2/');
  const id = (req.json as { id?: unknown } | undefined)?.id ?? null;
  const body = JSON.stringify(json2 ? data : { jsonrpc: '2.0', id, error: { code: 200, message: 'Odoo Server Error', data } });
  res.writeHead(json2 ? 403 : 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** From now on, every read of stock.quant is answered with `answer` (the rest goes to Odoo). */
function refuseQuants(proxy: FrontProxy, answer: (req: ProxiedRequest, res: http.ServerResponse) => void): void {
  proxy.intercept((req, res) => {
    const call = objectCall(req);
    if (call?.model !== 'stock.quant' || call.method !== 'search_read') return false;
    answer(req, res);
    return true;
  });
}

let n = 0;
/** The TIP-200 breaches among a check's (the seed's RGT-CRP is below its minimum from the start). */
const tips = (drafts: Array<{ data: unknown }>): unknown[] => drafts.map((d) => d.data).filter((d) => (d as { productCode: string }).productCode === 'TIP-200');
async function use(r: Rig, qty: number): Promise<void> {
  await r.commit([consumableUsed('qr-1', 'TIP-200', qty, ++n)]);
  await r.waitDrained();
  // A second round (another reagent's run of 0): whatever the first round's check raised is posted.
  await r.commit([consumableUsed('qr-2', 'RGT-GLU', 0, ++n)]);
  await r.waitDrained();
  await r.waitDrained();
}

async function breaches(r: Rig): Promise<Array<{ estimatedOnHand: number; suggestedQuantity: number }>> {
  const events = await r.store.listEvents({ type: 'stock.threshold_breached', limit: 100 });
  return events.filter((e) => (e.event.data as { productCode: string }).productCode === 'TIP-200').map((e) => e.event.data as { estimatedOnHand: number; suggestedQuantity: number });
}

describe.each([17, 19] as const)('Odoo refuses the read of the lab quants (Odoo %i)', (version: OdooVersion) => {
  it('the breach is raised from the last pull and the gateway\'s own postings, and IT is told once', async () => {
    const started = await rigBehindProxy(version, { relayOptions: { watchStock: true, stockWatchIntervalMs: 0 } });
    rig = started.rig;
    const alerts: Array<TelemetryEvents['alert']> = [];
    rig.telemetry.on('alert', (a) => alerts.push(a));
    // The relay's own pull reads the quants (TIP-200: 40 in the lab); its check's breach of the
    // seed's RGT-CRP is posted.
    await waitFor(() => rig!.relay.snapshot().referencePulledAt !== undefined);
    await rig.waitDrained();
    // The gateway's user loses read access on stock.quant (an administrator's change of groups).
    refuseQuants(started.proxy, answerAccessError);
    // 25 tips used: the consumption rule, refused the read, posts from the pull's 40: 15 left.
    await use(rig, 25);
    expect(rig.emu.records('stock.picking', [['origin', '=', 'lab-gateway:cons:qr-1']]).map((p) => p['state'])).toEqual(['done']);
    // The watch, refused the same read, compares the pull's figures with the gateway's postings.
    expect(await breaches(rig)).toEqual([expect.objectContaining({ estimatedOnHand: 15, suggestedQuantity: 45 })]);
    expect(rfqLines(rig.emu, 'TIP-200').map((l) => l['product_qty'])).toEqual([45]);
    // More runs, more checks: no second breach (the episode holds), and IT was told once.
    await use(rig, 2);
    await use(rig, 1);
    expect(await breaches(rig)).toHaveLength(1);
    const refused = alerts.filter((a) => a.code === 'ODOO_REFERENCE_REFUSED');
    expect(refused).toHaveLength(1);
    expect(refused[0]!.message).toMatch(/read stock\.quant/);
    expect(refused[0]!.message).toMatch(/AccessError/);
    expect(refused[0]!.message).toMatch(/last pull/);
    expect(rig.relay.reference.refused.map((r) => [r.model, r.kind])).toEqual([['stock.quant', 'access']]);
    // Access given back: the next pull reads the quants, and the alert is cleared.
    started.proxy.intercept(undefined);
    await rig.relay.refreshReference();
    expect(rig.relay.reference.refused).toEqual([]);
    expect(alerts.filter((a) => a.code === 'ODOO_REFERENCE_REFUSED_CLEARED')).toHaveLength(1);
  });

  it('a read that fails for the link (HTTP 503 from the proxy) still holds the breach until a check Odoo answers', async () => {
    const started = await rigBehindProxy(version);
    rig = started.rig;
    await rig.waitDrained();
    await rig.relay.refreshReference();
    // The relay stopped: 25 tips used and not posted yet, counted by the watch (40 - 25 = 15).
    await rig.relay.stop();
    await rig.commit([consumableUsed('qr-3', 'TIP-200', 25, ++n)]);
    const watch = new StockWatch({ store: rig.store, ref: rig.relay.reference, log: silentLogger, clock: Date.now });
    refuseQuants(started.proxy, (_req, res) => {
      res.writeHead(503, { 'content-type': 'text/html' });
      res.end('<html><body>503 Service Unavailable</body></html>');
    });
    expect(tips(await watch.check())).toEqual([]);
    expect(rig.relay.reference.refused).toEqual([]);
    // Odoo answers again: the next check raises it.
    started.proxy.intercept(undefined);
    expect(tips(await watch.check())).toEqual([expect.objectContaining({ productCode: 'TIP-200', estimatedOnHand: 15, suggestedQuantity: 45 })]);
  });

  it('refused, the same check raises the breach at once', async () => {
    const started = await rigBehindProxy(version);
    rig = started.rig;
    await rig.waitDrained();
    await rig.relay.refreshReference();
    await rig.relay.stop();
    await rig.commit([consumableUsed('qr-4', 'TIP-200', 25, ++n)]);
    const watch = new StockWatch({ store: rig.store, ref: rig.relay.reference, log: silentLogger, clock: Date.now });
    refuseQuants(started.proxy, answerAccessError);
    expect(tips(await watch.check())).toEqual([expect.objectContaining({ productCode: 'TIP-200', estimatedOnHand: 15, suggestedQuantity: 45 })]);
    expect(rig.relay.reference.refused.map((r) => [r.model, r.kind])).toEqual([['stock.quant', 'access']]);
  });
});
