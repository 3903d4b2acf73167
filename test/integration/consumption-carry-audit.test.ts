/**
 * Consumption below Odoo's precision of stock quantities is carried, not dead-lettered.
 *
 * Odoo rounds a stock quantity to the decimal precision 'Product Unit of Measure' (16-18) /
 * 'Product Unit' (19), 2 decimals by default, when it is written. A run's consumption posted on
 * its own (realtime sync, or alone in its window) of 4 mL of a diluent stocked in litres (0.004 L)
 * became a move of 0, and Odoo refuses to validate a transfer with nothing done (UserError "You
 * cannot validate a transfer if no quantities are reserved nor done"): a dead letter per run. And
 * 24 mL posted alone moved 0.02 L: Odoo's stock drifted from the shelf's by 0.004 L a run.
 * Now what Odoo cannot keep is carried, per product and lot, to the next consumption of that
 * product and lot; the carry is kept in the store, applied once (a lost answer, a restart).
 * Real store in a temp dir, real relay, the Odoo emulator over HTTP (quantities rounded as Odoo does).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { OdooClient } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { consumableUsedRule } from '../../gateway/src/relay/rules/consumable-used.ts';
import type { RuleContext } from '../../gateway/src/relay/rules/types.ts';
import { Relay } from '../../gateway/src/relay/relay.ts';
import { dueDelayFor } from '../../gateway/src/relay/sync-modes.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { BOT, makeRig, startEmulator, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, idOf, inbound, odooConfig, productId, receiveLot, relayConfig, tempDir, waitFor } from '../fixtures/relay/helpers.ts';
import type { OdooEmulator } from '../odoo-emulator/emulator.ts';

/** A consumption of the CBC diluent (stocked in litres) as the profile reports it, in mL. */
const aspiration = (mL: number, n: number): DraftEvent => {
  const d = consumableUsed('cbc-1', 'DIL-CBC', mL, n);
  return { ...d, data: { ...(d.data as object), uom: 'mL' } } as DraftEvent;
};
const round6 = (n: number): number => Math.round(n * 1e6) / 1e6;

/** The diluent's lab stock as Odoo holds it, with one lot received (5 L). */
function diluent(emu: OdooEmulator): { onHand: () => number } {
  const pid = productId(emu, 'DIL-CBC');
  const lab = idOf(emu, 'stock.location', [['name', '=', 'Lab']]);
  receiveLot(emu, pid, 'D-CARRY', lab, 5, 200);
  return { onHand: () => round6(emu.records('stock.quant', [['product_id', '=', pid]]).filter((q) => q['location_id'] === lab).reduce((s, q) => s + Number(q['quantity']), 0)) };
}

describe.each([16, 17, 19] as const)('consumption below Odoo precision (Odoo %i)', (version) => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  /**
   * User saw (was): a 4 mL aspiration posted on its own was a dead letter "You cannot validate a
   * transfer if no quantities are reserved nor done", one per run, for an operator to discard.
   * Now it is delivered without a picking, its note says what was carried, and the next run of
   * that diluent posts it: Odoo's stock ends at what the analyzer used, to Odoo's precision.
   */
  it('a run that rounds to 0 is delivered with a note and carried to the next run of that lot', async () => {
    rig = await makeRig(version);
    const { onHand } = diluent(rig.emu);
    const before = onHand();
    const [small] = await rig.commit([aspiration(4, 1)]);
    await rig.waitDrained();
    const e = await rig.store.getEvent(small!);
    expect(e?.state, e?.deadReason ?? e?.lastError).toBe('delivered');
    expect(e?.note).toMatch(/0\.004 L of DIL-CBC lot D-CARRY is below Odoo's precision of stock quantities \(0\.01 L\): nothing posted, carried to its next consumption/);
    expect(rig.emu.records('stock.picking', [['origin', '=like', 'lab-gateway:cons:%']])).toHaveLength(0);
    expect(onHand()).toBe(before);
    // The next run: 24 mL + the 4 mL carried = 0.028 L, Odoo keeps 0.03 L; 0.002 L is owed back.
    await rig.commit([aspiration(24, 2)]);
    await rig.waitDrained();
    expect(round6(before - onHand())).toBe(0.03);
    expect(rig.store.stats().deadLettered).toBe(0);
  });

  /**
   * User saw (was): ten runs of 24 mL posted one by one moved 0.02 L each, 0.20 L for the 0.24 L
   * used; the stock keeper found Odoo a sixth over the shelf. Now each run's remainder goes to the
   * next run: Odoo's stock goes down by 0.24 L.
   */
  it('runs posted one by one move what was used in total, not each run rounded', async () => {
    rig = await makeRig(version);
    const { onHand } = diluent(rig.emu);
    const before = onHand();
    for (let n = 1; n <= 10; n++) {
      await rig.commit([aspiration(24, n)]);
      await rig.waitDrained();
    }
    expect(round6(before - onHand())).toBe(0.24);
  });
});

describe('the carry is applied once', () => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  /**
   * The picking of a run carrying 4 mL is created in Odoo and the answer is lost: the retry finds
   * it by its marker and does not take the 4 mL again (nor lose it).
   */
  it('a lost answer to the picking does not post or lose the carry', async () => {
    rig = await makeRig(17);
    const { onHand } = diluent(rig.emu);
    const before = onHand();
    await rig.commit([aspiration(4, 1)]);
    await rig.waitDrained();
    rig.emu.faults.next(1, 'stock.picking', 'create').resetAfterCommit();
    const [lost] = await rig.commit([aspiration(24, 2)]);
    await rig.waitDrained();
    const e = await rig.store.getEvent(lost!);
    expect(e?.state).toBe('delivered');
    expect(e?.note).toMatch(/found in Odoo/);
    expect(round6(before - onHand())).toBe(0.03);
    // 0.024 + 0.004 - 0.03 = -0.002 owed; the next 24 mL: 0.022, kept as 0.02.
    await rig.commit([aspiration(24, 3)]);
    await rig.waitDrained();
    expect(round6(before - onHand())).toBe(0.05);
    expect(rig.emu.records('stock.picking', [['origin', '=like', 'lab-gateway:cons:%']])).toHaveLength(2);
  });
});

describe('a segment that posted nothing, retried before the store recorded it', () => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  /**
   * The rule is called as the relay calls it after a crash between the carry's write and the
   * store's record of the delivery: the same events again, then with a later one behind them.
   * Their quantity is carried once, and the later run posts it.
   */
  it('is covered by its record: not carried twice, and the run behind it posts the carry', async () => {
    rig = await makeRig(18, { start: false });
    await rig.client.connect();
    await rig.relay.refreshReference();
    const ctx: RuleContext = { odoo: rig.client, ref: rig.relay.reference, config: rig.config, odooConfig: rig.odooConfig, log: silentLogger, now: Date.now };
    const { onHand } = diluent(rig.emu);
    await rig.relay.refreshReference();
    const before = onHand();
    const ids = await rig.commit([aspiration(1, 1), aspiration(2, 2), aspiration(24, 3)]);
    const [a, b, c] = await Promise.all(ids.map(async (id) => (await rig!.store.getEvent(id))!));
    const first = await consumableUsedRule.post(ctx, [a!, b!]);
    expect([...first.values()].map((r) => r.ok && r.note)).toEqual([
      "0.003 L of DIL-CBC lot D-CARRY is below Odoo's precision of stock quantities (0.01 L): nothing posted, carried to its next consumption",
      "0.003 L of DIL-CBC lot D-CARRY is below Odoo's precision of stock quantities (0.01 L): nothing posted, carried to its next consumption",
    ]);
    // Not recorded: the relay hands the same events again, then with the next run behind them.
    const again = await consumableUsedRule.post(ctx, [a!, b!]);
    expect([...again.values()].every((r) => r.ok)).toBe(true);
    expect(rig.emu.records('stock.picking', [['origin', '=like', 'lab-gateway:cons:%']])).toHaveLength(0);
    const behind = await consumableUsedRule.post(ctx, [a!, b!, c!]);
    expect([...behind.values()].every((r) => r.ok)).toBe(true);
    expect(behind.get(c!.event.id)).toMatchObject({ note: 'DIL-CBC lot D-CARRY: 0.03 L posted for 0.024 L used (0.027 L with 0.003 L carried from earlier consumption), Odoo keeping 0.01 L; 0.003 L posted ahead, taken off its next consumption' });
    // 1 + 2 + 24 mL used, 0.03 L in Odoo: the 0.003 L is in it once.
    expect(round6(before - onHand())).toBe(0.03);
  });
});

describe('the carry survives a restart', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function start(emu: OdooEmulator, url: string, dataDir: string): Promise<{ store: EventStore; relay: Relay; stop: () => Promise<void> }> {
    const config = relayConfig();
    const oc = odooConfig({ url });
    const store = await EventStore.open({ dataDir, dueDelayMs: dueDelayFor(config), backoff: { initialMs: 10, maxMs: 100 }, pruneIntervalMs: 0 });
    const telemetry = new Telemetry();
    const client = new OdooClient({ url, database: 'lab', login: BOT.login, apiKey: BOT.key, timeoutMs: oc.timeoutMs, telemetry, log: silentLogger, keyExpiryWarnDays: oc.keyExpiryWarnDays });
    const relay = new Relay({ store, odoo: client, config, odooConfig: oc, telemetry, log: silentLogger, idlePollMs: 20, linkBackoff: { initialMs: 20, maxMs: 200 }, authBackoff: { initialMs: 100, maxMs: 400 }, watchStock: false, ambiguousSettleMs: 50 });
    await relay.start();
    void emu;
    return {
      store,
      relay,
      stop: async () => {
        await relay.stop(5000);
        await store.close();
      },
    };
  }

  it('4 mL carried before a restart is posted with the next run after it', async () => {
    const { emu, url } = await startEmulator(19);
    cleanups.push(() => emu.close());
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const { onHand } = diluent(emu);
    const before = onHand();
    const first = await start(emu, url, dir);
    await first.store.commit(inbound(), [aspiration(4, 1)]);
    first.relay.notify();
    await waitFor(() => first.store.stats().delivered === 1);
    await first.stop();
    const second = await start(emu, url, dir);
    cleanups.push(second.stop);
    await second.store.commit(inbound(), [aspiration(24, 2)]);
    second.relay.notify();
    await waitFor(() => second.store.stats().delivered === 2);
    expect(round6(before - onHand())).toBe(0.03);
  });
});

describe('a picking that never moved the stock gives its carry back', () => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  /** The rule as the relay calls it, on a rig whose relay does not run (each call is the test's). */
  async function direct(version: 16 | 17 | 18 | 19): Promise<{ ctx: RuleContext; onHand: () => number; events: (n: number) => Promise<Array<Awaited<ReturnType<EventStore['getEvent']>> & object>> }> {
    rig = await makeRig(version, { start: false });
    await rig.client.connect();
    await rig.relay.refreshReference();
    const ctx: RuleContext = { odoo: rig.client, ref: rig.relay.reference, config: rig.config, odooConfig: rig.odooConfig, log: silentLogger, now: Date.now };
    const { onHand } = diluent(rig.emu);
    await rig.relay.refreshReference();
    const events = async (n: number) => {
      const ids = await rig!.commit(Array.from({ length: n }, (_, i) => aspiration(i === 0 ? 4 : 24, i + 1)));
      return Promise.all(ids.map(async (id) => (await rig!.store.getEvent(id))!));
    };
    return { ctx, onHand, events };
  }
  const pickingOf = (r: ReturnType<Map<string, unknown>['get']>): number => ((r as { odoo?: Array<{ id: number }> }).odoo ?? [])[0]?.id ?? 0;

  /**
   * User saw (was): a run took the 4 mL an earlier run left, its picking was created but not
   * validated (Odoo busy), and the stock keeper cancelled it in Odoo; the run became a dead
   * letter "cancelled in Odoo", discarded. The 4 mL it had taken went with it, and the 2 mL it
   * had posted ahead were taken off the next run: Odoo's stock stayed 6 mL above the shelf's for
   * runs it did post. Now a picking found cancelled gives the carry back (once, a replay too).
   */
  it('a picking cancelled in Odoo: the runs before and after it are in Odoo as used', async () => {
    const { ctx, onHand, events } = await direct(17);
    const before = onHand();
    const [a, b, c] = await events(3);
    await consumableUsedRule.post(ctx, [a!]);
    rig!.emu.faults.next(1, 'stock.picking', 'button_validate').status(503);
    const first = await consumableUsedRule.post(ctx, [b!]);
    expect(first.get(b!.event.id)?.ok).toBe(false);
    const [picking] = rig!.emu.records('stock.picking', [['origin', '=like', 'lab-gateway:cons:%']]);
    expect(picking?.['state']).not.toBe('done');
    rig!.emu.call('stock.picking', 'action_cancel', [[picking!['id']]]);
    // The retry finds it cancelled (a dead letter), and so does an operator's replay.
    for (let i = 0; i < 2; i++) {
      const again = await consumableUsedRule.post(ctx, [b!]);
      expect(again.get(b!.event.id)).toMatchObject({ ok: false, error: expect.objectContaining({ message: expect.stringMatching(/cancelled in Odoo/) }) });
    }
    // Discarded: the next run posts its 24 mL with the 4 mL carried before the cancelled one.
    const next = await consumableUsedRule.post(ctx, [c!]);
    expect(next.get(c!.event.id)).toMatchObject({ ok: true, note: expect.stringMatching(/^DIL-CBC lot D-CARRY: 0\.03 L posted for 0\.024 L used \(0\.028 L with 0\.004 L carried/) });
    expect(round6(before - onHand())).toBe(0.03);
  });

  /** Guards the fix: a picking validated at its retry keeps what it took (not given back, not taken twice). */
  it('a picking validated at the retry keeps the carry it took', async () => {
    const { ctx, onHand, events } = await direct(17);
    const before = onHand();
    const [a, b, c] = await events(3);
    await consumableUsedRule.post(ctx, [a!]);
    rig!.emu.faults.next(1, 'stock.picking', 'button_validate').status(503);
    expect((await consumableUsedRule.post(ctx, [b!])).get(b!.event.id)?.ok).toBe(false);
    const retry = await consumableUsedRule.post(ctx, [b!]);
    expect(retry.get(b!.event.id)).toMatchObject({ ok: true, note: 'found in Odoo' });
    expect(pickingOf(retry.get(b!.event.id))).toBeGreaterThan(0);
    // 0.004 + 0.024 posted as 0.03: -0.002 owed; the next 24 mL posts 0.022, kept as 0.02.
    await consumableUsedRule.post(ctx, [c!]);
    expect(round6(before - onHand())).toBe(0.05);
  });
});
