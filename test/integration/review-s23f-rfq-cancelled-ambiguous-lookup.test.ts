/**
 * The gateway's new draft RFQ of a vendor (`lab_gateway.rfq_<breach key>`, loaded with the
 * breach's line) cancelled by purchasing after the load committed, its answer lost (a connection
 * reset after Odoo committed): the breach is ambiguous, and its retry looks the RFQ up by that
 * external id. Session 22 had the line look-up (`rfq_line_<key>`) treat a line on a cancelled RFQ
 * as a miss (review-s22-stock-rfq-cancelled-lost-answer.test.ts); the RFQ's own look-up did not
 * read the RFQ's state: the retry delivered the breach as "found by external id" on the cancelled
 * RFQ, the reagent ordered from nobody. Now the cancelled RFQ is a miss: unlinked (its external id
 * with it) and the need written on a draft RFQ in the same attempt. Real store in a temp dir, real relay, the Odoo emulator
 * over HTTP behind a pass-through proxy that lets purchasing cancel just before the look-up.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { objectCall, rigBehindProxy } from '../fixtures/relay/front-proxy.ts';
import type { Rig } from '../fixtures/relay/harness.ts';
import { rfqLines, thresholdBreached } from '../fixtures/relay/helpers.ts';
import type { OdooVersion } from '../odoo-emulator/index.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe.each([16, 17, 18, 19] as const)('a new RFQ cancelled after its load committed, the answer lost (Odoo %i)', (version: OdooVersion) => {
  it('the retry that finds the RFQ by its external id, cancelled, writes the need on a draft RFQ', async () => {
    const { started, proxy, rig: r } = await rigBehindProxy(version);
    rig = r;
    await r.waitDrained();
    let loaded = false;
    let cancelled: number | undefined;
    proxy.intercept((req) => {
      const call = objectCall(req);
      if (!loaded && call?.model === 'purchase.order' && call.method === 'load') {
        loaded = true;
        // Odoo commits the load; its answer never reaches the gateway.
        started.emu.faults.next(1, 'purchase.order', 'load').resetAfterCommit();
      } else if (loaded && cancelled === undefined && call?.model === 'ir.model.data') {
        // Purchasing cancels the new RFQ before the retry looks it up.
        cancelled = rfqLines(started.emu, 'RGT-GLU')[0]!['order_id'] as number;
        started.emu.call('purchase.order', 'button_cancel', [[cancelled]]);
      }
      return false;
    });
    const [glu] = await r.commit([thresholdBreached('RGT-GLU', 15)]);
    await r.waitDrained();
    expect(cancelled).toBeDefined();
    // The cancelled RFQ is unlinked, its external id with it: the breach's new RFQ takes it.
    expect(r.emu.records('purchase.order', [['id', '=', cancelled!]])).toHaveLength(0);

    const open = rfqLines(r.emu, 'RGT-GLU').filter((l) => l['order_id'] !== cancelled);
    expect(open, 'the need written on another RFQ than the cancelled one').toHaveLength(1);
    const order = r.emu.records('purchase.order', [['id', '=', open[0]!['order_id'] as number]])[0]!;
    expect(order['state']).toBe('draft');
    expect(open[0]!['product_qty']).toBe(15);
    expect((await r.store.getEvent(glu!))!.state).toBe('delivered');
  });
});
