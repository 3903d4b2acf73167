/**
 * The analyzer's lot name, as the stock keeper typed it in Odoo.
 *
 * An analyzer reads the lot from the reagent's barcode (L2207A); the stock keeper typed it from
 * the box when receiving it, in another case (l2207a). The consumption was a dead letter "reagent
 * lot L2207A of product … is not known in Odoo", one per run, and the reagent's later runs on that
 * analyzer waited behind it, while Odoo held the lot. Now a lot name Odoo does not hold exactly
 * is matched without regard to case when exactly one lot of the product matches (as units are):
 * the consumption is posted on it. Two lots differing only in case are not guessed between: the
 * dead letter names them. Real store in a temp dir, real relay, the Odoo emulator over HTTP.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, idOf, productId, quantsByLotAt, receiveLot } from '../fixtures/relay/helpers.ts';

describe.each([16, 18, 19] as const)('a lot named in another case (Odoo %i)', (version) => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  it("is the lot Odoo holds: the run is posted on it, not dead-lettered", async () => {
    rig = await makeRig(version);
    const pid = productId(rig.emu, 'RGT-GLU');
    const lab = idOf(rig.emu, 'stock.location', [['name', '=', 'Lab']]);
    receiveLot(rig.emu, pid, 'l2207a', lab, 100);
    const [id] = await rig.commit([consumableUsed('cobas-1', 'RGT-GLU', 1, 1, 'L2207A')]);
    await rig.waitDrained();
    const e = await rig.store.getEvent(id!);
    expect(e?.state, e?.deadReason ?? e?.lastError).toBe('delivered');
    expect(quantsByLotAt(rig.emu, pid, { internalOnly: true })['l2207a@Lab']).toBe(99);
  });

  /**
   * Found in review: a lot matched without regard to case was never kept, so every later run of it
   * searched Odoo again (up to a search per event of a 500-event batch, for good). Now the match is
   * kept with the reference snapshot: one search per pull.
   */
  it('is looked up in Odoo once, not at every run', async () => {
    rig = await makeRig(version);
    const pid = productId(rig.emu, 'RGT-GLU');
    const lab = idOf(rig.emu, 'stock.location', [['name', '=', 'Lab']]);
    receiveLot(rig.emu, pid, 'l2207a', lab, 100);
    const lotSearches = (): number => rig!.emu.calls.filter((c) => c.model === 'stock.lot' && c.method === 'search_read').length;
    const counts: number[] = [];
    for (let n = 1; n <= 4; n++) {
      await rig.commit([consumableUsed('cobas-1', 'RGT-GLU', 1, n, 'L2207A')]);
      await rig.waitDrained();
      counts.push(lotSearches());
    }
    expect(quantsByLotAt(rig.emu, pid, { internalOnly: true })['l2207a@Lab']).toBe(96);
    // The first run searched; the three after it did not.
    expect(counts[0]).toBeGreaterThan(0);
    expect(counts).toEqual([counts[0], counts[0], counts[0], counts[0]]);
  });

  /** Guards: a lot expired in Odoo that the analyzer still reports was used: posted on it (Odoo's expiry wizard skipped). */
  it('a lot expired in Odoo, reported by the analyzer, is posted on it', async () => {
    rig = await makeRig(version);
    const pid = productId(rig.emu, 'RGT-GLU');
    const lab = idOf(rig.emu, 'stock.location', [['name', '=', 'Lab']]);
    receiveLot(rig.emu, pid, 'OLD-1', lab, 10, -3);
    const [id] = await rig.commit([consumableUsed('cobas-1', 'RGT-GLU', 2, 1, 'OLD-1')]);
    await rig.waitDrained();
    const e = await rig.store.getEvent(id!);
    expect(e?.state, e?.deadReason ?? e?.lastError).toBe('delivered');
    expect(quantsByLotAt(rig.emu, pid, { internalOnly: true })['OLD-1@Lab']).toBe(8);
  });

  it('two lots differing only in case are not guessed between', async () => {
    rig = await makeRig(version);
    const pid = productId(rig.emu, 'RGT-GLU');
    const lab = idOf(rig.emu, 'stock.location', [['name', '=', 'Lab']]);
    receiveLot(rig.emu, pid, 'l2207a', lab, 100);
    receiveLot(rig.emu, pid, 'L2207a', lab, 100);
    const [id] = await rig.commit([consumableUsed('cobas-1', 'RGT-GLU', 1, 1, 'L2207A')]);
    await rig.waitDrained();
    const e = await rig.store.getEvent(id!);
    expect(e?.state).toBe('dead');
    expect(e?.deadReason).toMatch(/reagent lot L2207A of product RGT-GLU is not known in Odoo.*l2207a.*L2207a/);
  });
});
