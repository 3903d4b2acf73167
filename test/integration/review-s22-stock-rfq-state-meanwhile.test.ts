/**
 * The vendor's draft RFQ confirmed or cancelled by purchasing between the gateway's look-up of it
 * and the load of a breach's line into it.
 *
 * The RFQ rule searches the vendor's open draft RFQ, then loads the breach's line into it (two
 * calls: Odoo has no conditional write). A buyer pressing Confirm or Cancel in between: Odoo
 * takes a line added to a confirmed order (a receipt move for it) and to a cancelled one alike.
 * Was: the breach delivered as "line added to the open draft RFQ of the vendor" in both cases;
 * the HbA1c kit on an order the buyer had confirmed without it, or on a cancelled RFQ, ordered
 * from nobody, and the stock watch's episode kept (no second breach) while the shelf emptied.
 * Real store in a temp dir, real relay, the Odoo emulator over HTTP behind a pass-through proxy
 * that lets purchasing act just before the line's load reaches Odoo.
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

describe.each([16, 17, 19] as const)('an RFQ changed by purchasing while the gateway adds a line to it (Odoo %i)', (version: OdooVersion) => {
  async function setUp(action: 'button_confirm' | 'button_cancel'): Promise<{ r: Rig; po: number; hba1c: string }> {
    const { started, proxy, rig: r } = await rigBehindProxy(version);
    rig = r;
    await r.waitDrained();
    // GLU's breach opens DiagSupply's draft RFQ.
    await r.commit([thresholdBreached('RGT-GLU', 15)]);
    await r.waitDrained();
    const po = rfqLines(r.emu, 'RGT-GLU')[0]!['order_id'] as number;
    // Purchasing acts on that RFQ just before HbA1c's line reaches Odoo.
    let acted = false;
    proxy.intercept((req) => {
      const call = objectCall(req);
      if (!acted && call?.model === 'purchase.order.line' && call.method === 'load') {
        acted = true;
        started.emu.call('purchase.order', action, [[po]]);
      }
      return false;
    });
    const [hba1c] = await r.commit([thresholdBreached('RGT-HBA1C', 8)]);
    await r.waitDrained();
    expect(acted).toBe(true);
    return { r, po, hba1c: hba1c! };
  }

  it('confirmed meanwhile: the breach is not delivered as if on a draft; the operator is told which order holds the line', async () => {
    const { r, po, hba1c } = await setUp('button_confirm');
    const lines = rfqLines(r.emu, 'RGT-HBA1C');
    // Odoo keeps a line on a confirmed order: one line, not a second one on a new RFQ.
    expect(lines).toHaveLength(1);
    expect(lines[0]!['order_id']).toBe(po);
    const e = (await r.store.getEvent(hba1c))!;
    expect(e.state).toBe('dead');
    const name = String(r.emu.records('purchase.order', [['id', '=', po]])[0]!['name']);
    expect(e.lastError).toContain(name);
    expect(e.lastError).toContain('confirmed');
  });

  it('cancelled meanwhile: the need goes to a draft RFQ, not to the cancelled one', async () => {
    const { r, po, hba1c } = await setUp('button_cancel');
    const lines = rfqLines(r.emu, 'RGT-HBA1C');
    expect(lines).toHaveLength(1);
    const order = r.emu.records('purchase.order', [['id', '=', lines[0]!['order_id'] as number]])[0]!;
    expect(order.id).not.toBe(po);
    expect(order['state']).toBe('draft');
    expect(lines[0]!['product_qty']).toBe(8);
    expect((await r.store.getEvent(hba1c))!.state).toBe('delivered');
  });
});
