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

describe('reorder check: quantities as Odoo counts them', () => {
  /**
   * The stock keeper saw the diluent at exactly its minimum (5 L in Odoo after 125 aspirations of
   * 24 mL), and the buyer found a draft RFQ for it anyway; once it really fell to 4 L, the RFQ
   * asked for 7 L where Odoo's own reorder rule (up to the 10 L maximum) orders 6 L. 125 × 0.024 L
   * summed in binary floating point is 3.000000000000002 L: the estimate read 4.999999999999998,
   * "below" 5, and the top-up 5.000000000000002 was rounded up to a whole extra litre. Broke the
   * promise of one RFQ per real shortage, for what the reorder rule says (Odoo compares at the
   * unit's precision).
   */
  it('a diluent used down to exactly its minimum raises no breach; below it, the top-up is not an extra multiple', async () => {
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
    rig = await makeRig(17, { emu: started, start: false });
    const close = rig.close.bind(rig);
    rig.close = async () => {
      await close();
      await emu.close();
    };
    await rig.client.connect();
    await rig.relay.refreshReference();
    const watch = new StockWatch({ store: rig.store, ref: rig.relay.reference, log: silentLogger, clock: Date.now });
    const diluent = (drafts: DraftEvent[]): Array<{ suggestedQuantity: number }> =>
      drafts.filter((d) => (d.data as { productCode: string }).productCode === 'DIL-CBC').map((d) => d.data as { suggestedQuantity: number });

    // 125 CBC aspirations of 24 mL: 3 L, not posted yet. 8 − 3 = 5 L: at the minimum, not below.
    await rig.commit(Array.from({ length: 125 }, (_, i) => used('DIL-CBC', 24, i + 1, 'mL')));
    expect(diluent(await watch.check())).toEqual([]);

    // 40 more of 25 mL: 1 L. 4 L left, below 5: up to 10 L is 6 L, in whole litres 6 L.
    await rig.commit(Array.from({ length: 40 }, (_, i) => used('DIL-CBC', 25, 200 + i, 'mL')));
    expect(diluent(await watch.check())).toEqual([expect.objectContaining({ suggestedQuantity: 6 })]);
  });
});
