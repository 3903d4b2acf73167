/**
 * A consumption whose quantity is not a use of stock gets a clear answer.
 *
 * Profiles are checked (firmware-profiles/schema.json: quantity above 0), but an event stored by
 * an earlier profile or release, or a unit conversion of a broken Odoo unit, can carry 0, a
 * negative or a non-finite quantity. The rule drew nothing for it and delivered it without a word:
 * a negative "use" (a return to stock?) vanished, and nobody learnt the profile was wrong. Now 0
 * is delivered with a note saying nothing was posted, and a negative or non-finite quantity is a
 * dead letter naming it (kept for the operator; the reagent's later runs wait behind it as behind
 * any mapping error of that reagent). Real store in a temp dir, real relay, the Odoo emulator.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../gateway/src/log.ts';
import type { ReferenceData } from '../../gateway/src/relay/reference-data.ts';
import { StockWatch } from '../../gateway/src/relay/stock-watch.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, inbound, tempDir } from '../fixtures/relay/helpers.ts';

describe('consumption quantities that are not a use of stock', () => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  it('0 is delivered with a note, nothing posted', async () => {
    rig = await makeRig(17);
    const [id] = await rig.commit([consumableUsed('cobas-1', 'RGT-GLU', 0, 1)]);
    await rig.waitDrained();
    const e = await rig.store.getEvent(id!);
    expect(e?.state).toBe('delivered');
    expect(e?.note).toMatch(/quantity 0 of RGT-GLU: nothing used, nothing posted/);
    expect(rig.emu.records('stock.picking', [['origin', '=like', 'lab-gateway:cons:%']])).toHaveLength(0);
  });

  it('0 between two runs of the reagent: the runs are posted once, the 0 noted', async () => {
    rig = await makeRig(17);
    const before = rig.emu.records('stock.move', [['origin', '=like', 'lab-gateway:cons:%']]).length;
    const ids = await rig.commit([consumableUsed('cobas-1', 'RGT-GLU', 1, 1), consumableUsed('cobas-1', 'RGT-GLU', 0, 2), consumableUsed('cobas-1', 'RGT-GLU', 1, 3)]);
    await rig.waitDrained();
    const events = await Promise.all(ids.map((id) => rig!.store.getEvent(id)));
    expect(events.map((e) => e?.state)).toEqual(['delivered', 'delivered', 'delivered']);
    expect(events[1]?.note).toMatch(/quantity 0 of RGT-GLU: nothing used, nothing posted/);
    const moves = rig.emu.records('stock.move', [['origin', '=like', 'lab-gateway:cons:%']]).slice(before);
    expect(moves.reduce((t, m) => t + Number(m['product_uom_qty']), 0)).toBe(2);
  });

  it('a negative quantity is a dead letter naming it', async () => {
    rig = await makeRig(17);
    const [id] = await rig.commit([consumableUsed('cobas-1', 'RGT-GLU', -2, 1)]);
    await rig.waitDrained();
    const e = await rig.store.getEvent(id!);
    expect(e?.state).toBe('dead');
    expect(e?.deadReason).toMatch(/quantity -2 Units of RGT-GLU is not a consumption/);
    expect(rig.emu.records('stock.picking', [['origin', '=like', 'lab-gateway:cons:%']])).toHaveLength(0);
  });
});

describe('the stock watch and a negative consumption', () => {
  /**
   * Until it is dead-lettered, a negative event was counted by the stock watch as stock given back:
   * 5 tips used and a -20 waiting made the estimate 15 above Odoo's stock less 5, and a real
   * breach waited. Now it is not counted, as an event whose unit cannot be converted.
   */
  it('is not counted as stock given back', async () => {
    const tmp = tempDir('relay-watch-neg-');
    const store = await EventStore.open({ dataDir: tmp.dir, pruneIntervalMs: 0 });
    try {
      await store.commit(inbound(), [consumableUsed('an-n', 'TIP-200', 5, 1), consumableUsed('an-n', 'TIP-200', -20, 2), consumableUsed('an-n', 'TIP-200', Number.NaN, 3)]);
      const watch = new StockWatch({ store, ref: {} as ReferenceData, log: silentLogger, clock: Date.now });
      expect((await watch.unposted()).get('TIP-200')).toBe(5);
    } finally {
      await store.close();
      tmp.cleanup();
    }
  });
});
