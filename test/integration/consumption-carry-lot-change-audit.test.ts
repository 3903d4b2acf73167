/**
 * A carry stays on its lot when the analyzer moves to another.
 *
 * What Odoo's precision of stock quantities cannot keep of a consumption is carried per product and
 * lot (consumption-carry.ts) and posted with that lot's next consumption. A carry handed to the
 * next lot instead (tried, then removed) brought the product's total in Odoo closer by under half a
 * step per lot the lab went through, at the price of each lot's own figure — what counts, recalls
 * and expiry write-offs read — being off by up to a step, and of one lot's use posted on another
 * whenever an analyzer drew two lots turn about. So each lot's figure in Odoo is the nearest Odoo
 * can hold of what was drawn from it; a lot used up keeps its last carry (under half a step) out
 * of Odoo, and raising the precision of stock quantities in Odoo removes it (`check --odoo` says so).
 * Real store in a temp dir, real relay, the Odoo emulator over HTTP (quantities rounded as Odoo does).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, idOf, productId, quantsByLotAt, receiveLot } from '../fixtures/relay/helpers.ts';

/** A consumption of the CBC diluent (stocked in litres) in mL, from the lot the analyzer reports. */
const run = (analyzer: string, mL: number, n: number, lot: string): DraftEvent => {
  const d = consumableUsed(analyzer, 'DIL-CBC', mL, n, lot);
  return { ...d, data: { ...(d.data as object), uom: 'mL' } } as DraftEvent;
};
const round6 = (n: number): number => Math.round(n * 1e6) / 1e6;

describe.each([16, 19] as const)('a carry when the analyzer moves to another lot (Odoo %i)', (version) => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  /** Two lots of the diluent in the lab, 5 L each; what Odoo holds as used of each. */
  function lots(r: Rig): { used: () => { A: number; B: number } } {
    const pid = productId(r.emu, 'DIL-CBC');
    const lab = idOf(r.emu, 'stock.location', [['name', '=', 'Lab']]);
    receiveLot(r.emu, pid, 'D-A', lab, 5, 100);
    receiveLot(r.emu, pid, 'D-B', lab, 5, 200);
    return {
      used: () => {
        const q = quantsByLotAt(r.emu, pid);
        return { A: round6(5 - (q['D-A@Lab'] ?? 0)), B: round6(5 - (q['D-B@Lab'] ?? 0)) };
      },
    };
  }

  it("each lot's figure is the nearest Odoo holds of what was drawn from it, turn about too", async () => {
    rig = await makeRig(version);
    const { used } = lots(rig);
    // 24 mL from D-A: 0.02 L posted, 4 mL carried on D-A.
    await rig.commit([run('cbc-1', 24, 1, 'D-A')]);
    await rig.waitDrained();
    expect(used()).toEqual({ A: 0.02, B: 0 });
    // The analyzer moves to D-B: its runs post what D-B gave, never D-A's 4 mL.
    for (const n of [2, 3]) {
      const [id] = await rig.commit([run('cbc-1', 24, n, 'D-B')]);
      await rig.waitDrained();
      const e = await rig.store.getEvent(id!);
      expect(e?.state, e?.deadReason ?? e?.lastError).toBe('delivered');
      expect(e?.note ?? '').not.toMatch(/D-A/);
    }
    // 48 mL from D-B: 0.05 L, the nearest of 0.048 L (0.02, then 0.03 with its own 8 mL carried).
    expect(used()).toEqual({ A: 0.02, B: 0.05 });
    // Back on D-A (two packs turn about): its own carry goes with it, 28 mL → 0.03 L.
    await rig.commit([run('cbc-1', 24, 4, 'D-A')]);
    await rig.waitDrained();
    expect(used()).toEqual({ A: 0.05, B: 0.05 });
  }, 60_000);
});
