/**
 * The carry follows the analyzer to its next lot.
 *
 * What Odoo's precision of stock quantities cannot keep of a consumption is carried per product and
 * lot (consumption-carry.ts). When the analyzer moved on to a new lot (the old one used up or
 * expired), the old lot's carry was never posted: each lot the lab went through left up to half a
 * step of what it used out of Odoo, and the product's stock in Odoo drifted from the shelf's a lot
 * at a time. Now the next consumption of the same analyzer and product that draws another lot,
 * the old one not drawn for a day, takes the old lot's carry with it (posted on the new lot, at
 * Odoo's precision), once: the segment's record holds it, so a lost answer or a picking that never
 * landed neither posts it twice nor loses it. Lots two analyzers use side by side, or one analyzer
 * draws turn about, keep their own carries. The relay's clock is moved on a day (RelayOptions.clock).
 * Real store in a temp dir, real relay, the Odoo emulator over HTTP (quantities rounded as Odoo does).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { consumableUsedRule } from '../../gateway/src/relay/rules/consumable-used.ts';
import type { RuleContext } from '../../gateway/src/relay/rules/types.ts';
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
  /** How far the relay's clock is ahead of the system's. */
  let ahead = 0;
  const clock = (): number => Date.now() + ahead;
  const DAY = 24 * 3600_000;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
    ahead = 0;
  });

  /** Two lots of the diluent in the lab, 5 L each; what Odoo holds of each, and of both. */
  function lots(r: Rig): { used: () => { A: number; B: number; total: number } } {
    const pid = productId(r.emu, 'DIL-CBC');
    const lab = idOf(r.emu, 'stock.location', [['name', '=', 'Lab']]);
    receiveLot(r.emu, pid, 'D-A', lab, 5, 100);
    receiveLot(r.emu, pid, 'D-B', lab, 5, 200);
    return {
      used: () => {
        const q = quantsByLotAt(r.emu, pid);
        const A = round6(5 - (q['D-A@Lab'] ?? 0));
        const B = round6(5 - (q['D-B@Lab'] ?? 0));
        return { A, B, total: round6(A + B) };
      },
    };
  }

  /**
   * User saw (was): a run of 24 mL from lot D-A posted 0.02 L and carried 0.004 L; the analyzer
   * then moved to D-B, whose runs never took it: 0.048 L used, 0.04 L out of Odoo, and so on at
   * every lot change. Now D-B's first run posts its 24 mL with D-A's 4 mL: 0.03 L, Odoo's stock
   * of the diluent 0.05 L down, the nearest it can hold of the 0.048 L used; its note says so.
   */
  it("the next lot's first run posts the old lot's carry", async () => {
    rig = await makeRig(version, { relayOptions: { clock } });
    const { used } = lots(rig);
    await rig.commit([run('cbc-1', 24, 1, 'D-A')]);
    await rig.waitDrained();
    expect(used()).toEqual({ A: 0.02, B: 0, total: 0.02 });
    ahead = DAY + 60_000;
    const [moved] = await rig.commit([run('cbc-1', 24, 2, 'D-B')]);
    await rig.waitDrained();
    const e = await rig.store.getEvent(moved!);
    expect(e?.state, e?.deadReason ?? e?.lastError).toBe('delivered');
    expect(used()).toEqual({ A: 0.02, B: 0.03, total: 0.05 });
    expect(e?.note).toMatch(/DIL-CBC lot D-B: 0\.03 L posted for 0\.024 L used \(0\.028 L with 0\.004 L carried from earlier consumption, 0\.004 L of it left by lot D-A\)/);
    // Taken once: the runs after it are D-B's own (0.072 L used, 0.07 L in Odoo).
    await rig.commit([run('cbc-1', 24, 3, 'D-B')]);
    await rig.waitDrained();
    expect(used().total).toBe(0.07);
    // D-A's carry is not taken again when the analyzer goes back to it: 24 mL post 0.02 L there,
    // and D-B's 2 mL, drawn within the day, stay on D-B.
    await rig.commit([run('cbc-1', 24, 4, 'D-A')]);
    await rig.waitDrained();
    expect(used()).toEqual({ A: 0.04, B: 0.05, total: 0.09 });
    expect(rig.store.stats().deadLettered).toBe(0);
  });

  /** The picking of D-B's first run is created and its answer lost: the retry finds it, and D-A's carry is in Odoo once. */
  it('a lost answer neither posts the old lot carry twice nor loses it', async () => {
    rig = await makeRig(version, { relayOptions: { clock } });
    const { used } = lots(rig);
    await rig.commit([run('cbc-1', 24, 1, 'D-A')]);
    await rig.waitDrained();
    ahead = DAY + 60_000;
    rig.emu.faults.next(1, 'stock.picking', 'create').resetAfterCommit();
    const [lost] = await rig.commit([run('cbc-1', 24, 2, 'D-B')]);
    await rig.waitDrained();
    expect((await rig.store.getEvent(lost!))?.note).toMatch(/found in Odoo/);
    expect(used()).toEqual({ A: 0.02, B: 0.03, total: 0.05 });
    // 0.024 + 0.004 posted as 0.03: 0.002 L owed back; the next 24 mL of D-B posts 0.02 L.
    await rig.commit([run('cbc-1', 24, 3, 'D-B')]);
    await rig.waitDrained();
    expect(used()).toEqual({ A: 0.02, B: 0.05, total: 0.07 });
  });

  /**
   * D-B's first run took D-A's carry; its picking was created, not validated, and cancelled in
   * Odoo: it moved nothing, so D-A's 4 mL go back to D-A (once, a replay too) and D-B's next run
   * takes them.
   */
  it('a picking cancelled in Odoo gives the old lot carry back to the next run', async () => {
    rig = await makeRig(version, { start: false, relayOptions: { clock } });
    await rig.client.connect();
    const { used } = lots(rig);
    await rig.relay.refreshReference();
    const ctx: RuleContext = { odoo: rig.client, ref: rig.relay.reference, config: rig.config, odooConfig: rig.odooConfig, log: silentLogger, now: clock };
    const ids = await rig.commit([run('cbc-1', 24, 1, 'D-A'), run('cbc-1', 24, 2, 'D-B'), run('cbc-1', 24, 3, 'D-B')]);
    const [a, b, c] = await Promise.all(ids.map(async (id) => (await rig!.store.getEvent(id))!));
    await consumableUsedRule.post(ctx, [a!]);
    ahead = DAY + 60_000;
    rig.emu.faults.next(1, 'stock.picking', 'button_validate').status(503);
    expect((await consumableUsedRule.post(ctx, [b!])).get(b!.event.id)?.ok).toBe(false);
    const pending = rig.emu.records('stock.picking', [['origin', '=like', 'lab-gateway:cons:%'], ['state', '!=', 'done']]);
    expect(pending).toHaveLength(1);
    rig.emu.call('stock.picking', 'action_cancel', [[pending[0]!['id']]]);
    for (let i = 0; i < 2; i++) expect((await consumableUsedRule.post(ctx, [b!])).get(b!.event.id)?.ok).toBe(false);
    const next = await consumableUsedRule.post(ctx, [c!]);
    expect(next.get(c!.event.id)).toMatchObject({ ok: true, note: expect.stringMatching(/0\.004 L of it left by lot D-A/) });
    expect(used()).toEqual({ A: 0.02, B: 0.03, total: 0.05 });
  });

  /**
   * User saw (was): a box that booted with its clock a year ahead (a wrong year typed in, an RTC
   * not set) dated D-A's holder a year ahead; NTP set the clock right, the analyzer moved on to
   * D-B, and D-A's carry stayed out of Odoo for a year (a day was counted from a date to come).
   * Now a holder dated ahead of the clock is dated now at the partition's next run: the carry
   * goes on a day after that.
   */
  it('a holder dated ahead by a clock set back does not keep the carry for as long', async () => {
    rig = await makeRig(version, { relayOptions: { clock } });
    const { used } = lots(rig);
    ahead = 365 * DAY;
    await rig.commit([run('cbc-1', 24, 1, 'D-A')]);
    await rig.waitDrained();
    ahead = 0;
    // 20 mL: posted whole, D-B carries nothing of its own.
    await rig.commit([run('cbc-1', 20, 2, 'D-B')]);
    await rig.waitDrained();
    expect(used()).toEqual({ A: 0.02, B: 0.02, total: 0.04 });
    ahead = DAY + 60_000;
    const [moved] = await rig.commit([run('cbc-1', 24, 3, 'D-B')]);
    await rig.waitDrained();
    expect((await rig.store.getEvent(moved!))?.note).toMatch(/0\.004 L of it left by lot D-A/);
    expect(used()).toEqual({ A: 0.02, B: 0.05, total: 0.07 });
  });

  /** Guards the fix: lots one analyzer draws turn about (two packs on board) keep their own carries. */
  it('lots drawn turn about by one analyzer keep their own carries', async () => {
    rig = await makeRig(version, { relayOptions: { clock } });
    const { used } = lots(rig);
    for (let n = 1; n <= 6; n++) {
      await rig.commit([run('cbc-1', 24, n, n % 2 === 1 ? 'D-A' : 'D-B')]);
      await rig.waitDrained();
    }
    expect(used()).toEqual({ A: 0.07, B: 0.07, total: 0.14 });
  });

  /**
   * Guards the fix: two analyzers using D-A and D-B side by side keep each lot's carry on its lot
   * (handing it back and forth would post one lot's use on the other, run after run).
   */
  it('lots in use side by side keep their own carries', async () => {
    rig = await makeRig(version, { relayOptions: { clock } });
    const { used } = lots(rig);
    for (let n = 1; n <= 3; n++) {
      await rig.commit([run('cbc-1', 24, n, 'D-A')]);
      await rig.waitDrained();
      await rig.commit([run('cbc-2', 24, n, 'D-B')]);
      await rig.waitDrained();
    }
    expect(used()).toEqual({ A: 0.07, B: 0.07, total: 0.14 });
  });
});
