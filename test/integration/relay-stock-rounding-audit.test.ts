/**
 * The reorder check's quantities as the stock keeper and the buyer see them: the real store in a
 * temp dir, reference data pulled from the Odoo emulator over HTTP ('lab-demo' seed: DIL-CBC, a
 * diluent stocked in litres, 8 L of lot D24E500 in WH/Stock/Lab), the stock watch called directly.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StockWatch } from '../../gateway/src/relay/stock-watch.ts';
import { makeRig, startEmulator, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, idOf, productId } from '../fixtures/relay/helpers.ts';

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** A consumption as the profile reports it (quantity in the profile's unit). */
function used(code: string, quantity: number, n: number, uom: string): DraftEvent {
  const d = consumableUsed('xn-1', code, quantity, n);
  return { ...d, data: { ...(d.data as object), uom } } as DraftEvent;
}

/** The diluent's reorder rule (min 5 L, max 10 L, whole litres), pulled; the watch called directly. */
async function diluentRig(): Promise<{ rig: Rig; watch: StockWatch }> {
  const started = await startEmulator(17);
  const emu = started.emu;
  emu.call('stock.warehouse.orderpoint', 'create', [
    {
      product_id: productId(emu, 'DIL-CBC'),
      location_id: idOf(emu, 'stock.location', [['name', '=', 'Lab']]),
      warehouse_id: idOf(emu, 'stock.warehouse', [['code', '=', 'WH']]),
      product_min_qty: 5,
      product_max_qty: 10,
      qty_multiple: 1,
      trigger: 'manual',
    },
  ]);
  const r = await makeRig(17, { emu: started, start: false });
  const close = r.close.bind(r);
  r.close = async () => {
    await close();
    await emu.close();
  };
  await r.client.connect();
  await r.relay.refreshReference();
  return { rig: r, watch: new StockWatch({ store: r.store, ref: r.relay.reference, log: silentLogger, clock: Date.now }) };
}

const diluent = (drafts: DraftEvent[]): Array<{ suggestedQuantity: number }> =>
  drafts.filter((d) => (d.data as { productCode: string }).productCode === 'DIL-CBC').map((d) => d.data as { suggestedQuantity: number });

/** CBC aspirations not posted yet: `n` consumptions of `mL` millilitres of diluent. */
const aspirations = (n: number, mL: number, from: number): DraftEvent[] => Array.from({ length: n }, (_, i) => used('DIL-CBC', mL, from + i, 'mL'));

describe('reorder check: quantities as Odoo counts them', () => {
  /**
   * The stock keeper saw the diluent at exactly its minimum (8 L less 125 aspirations of 24 mL:
   * 5 L), and the buyer found a draft RFQ for it anyway. 125 × 0.024 L summed in binary floating
   * point is 3.000000000000002 L: the estimate read 4.999999999999998, "below" 5, where Odoo's own
   * reorder rule (it compares at the unit's precision) orders nothing. Broke the promise of one
   * RFQ per real shortage.
   */
  it('a diluent used down to exactly its minimum raises no breach', async () => {
    const r = await diluentRig();
    rig = r.rig;
    await rig.commit(aspirations(125, 24, 1));
    expect(diluent(await r.watch.check())).toEqual([]);
  });

  /**
   * Once it really fell to 4 L (125 × 24 mL and 50 × 20 mL: 4.000000000000003 L summed), the RFQ
   * asked for 7 L where Odoo's rule orders 6 L (up to the 10 L maximum, in whole litres): the
   * top-up 6.000000000000003 L was rounded up to a whole extra litre.
   */
  it('below the minimum, the top-up is not rounded up to an extra multiple', async () => {
    const r = await diluentRig();
    rig = r.rig;
    await rig.commit([...aspirations(125, 24, 1), ...aspirations(50, 20, 200)]);
    expect(diluent(await r.watch.check())).toEqual([expect.objectContaining({ suggestedQuantity: 6 })]);
  });
});
