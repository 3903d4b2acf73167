/**
 * More breaches in one round than one batch of the RFQ rule holds (50): the batches must not each
 * open a draft RFQ for the same vendor.
 *
 * After a long outage the stock watch's breaches queue up; a round posts them in batches of 50,
 * side by side (relay.concurrency). Each batch searched the vendor's open draft RFQ, found none,
 * and loaded one of its own: DiagSupply got two draft RFQs from the gateway for one shortage
 * round, where the rule promises one per vendor (as Odoo's replenishment merges a vendor's needs).
 * The interleaving is made certain, not left to chance: a pass-through proxy holds the first
 * batch's search for the vendor's draft until the second batch's search arrives (or a while has
 * passed: one batch after the other never sends a second search meanwhile).
 * Real store in a temp dir, real relay, the Odoo emulator over HTTP.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { objectCall, rigBehindProxy } from '../fixtures/relay/front-proxy.ts';
import type { Rig } from '../fixtures/relay/harness.ts';
import { rfqLines, thresholdBreached } from '../fixtures/relay/helpers.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe('breaches of one vendor in two batches of one round (Odoo 17)', () => {
  it('one draft RFQ for the vendor, every breach on it', async () => {
    const { started, proxy, rig: r } = await rigBehindProxy(17);
    rig = r;
    await r.waitDrained();
    const emu = started.emu;
    const glu = emu.records('product.product', [['default_code', '=', 'RGT-GLU']])[0]!;
    const vendor = emu.records('product.supplierinfo', [['product_tmpl_id', '=', glu['product_tmpl_id'] as number]])[0]!['partner_id'] as number;
    const codes: string[] = [];
    for (let i = 0; i < 60; i++) {
      const code = `RGT-X${String(i).padStart(2, '0')}`;
      const pid = emu.call('product.product', 'create', [{ name: `Reagent ${code}`, default_code: code, type: 'product', detailed_type: 'product', purchase_ok: true }]) as number;
      const tmpl = emu.records('product.product', [['id', '=', pid]])[0]!['product_tmpl_id'] as number;
      emu.call('product.supplierinfo', 'create', [{ partner_id: vendor, product_tmpl_id: tmpl, price: 10, min_qty: 1 }]);
      codes.push(code);
    }
    await r.relay.refreshReference();
    // The first search for the vendor's draft RFQ waits for the second (or 3 s).
    let held: (() => void) | undefined;
    let searches = 0;
    proxy.intercept((req, res) => {
      const call = objectCall(req);
      if (call?.model !== 'purchase.order' || call.method !== 'search_read' || !req.body.toString('utf8').includes('lab-gateway reorder')) return false;
      searches++;
      const forward = (): void => {
        void fetch(`${started.url}${req.url}`, { method: req.method, headers: { 'content-type': 'application/json' }, body: new Uint8Array(req.body) }).then(async (answer) => {
          res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' });
          res.end(Buffer.from(await answer.arrayBuffer()));
        });
      };
      if (searches === 1) {
        const timer = setTimeout(() => held?.(), 3000);
        held = () => {
          clearTimeout(timer);
          held = undefined;
          forward();
        };
      } else {
        held?.();
        forward();
      }
      return true;
    });
    await r.commit(codes.map((c) => thresholdBreached(c, 5)));
    await r.waitDrained();
    const ours = emu.records('purchase.order', [['partner_id', '=', vendor], ['origin', '=like', 'lab-gateway reorder%']]);
    expect(ours.map((po) => po['state'])).toEqual(['draft']);
    for (const c of codes) expect(rfqLines(emu, c).map((l) => l['order_id'])).toEqual([ours[0]!.id]);
  });
});
