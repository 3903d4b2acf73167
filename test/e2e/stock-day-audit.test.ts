/**
 * Stock day audit: whole days of a lab through the real gateway (ASTM over TCP, HL7 over MLLP,
 * the shipped firmware profiles and their consumption tables, the LevelDB store, the relay and
 * the stock watch) against the Odoo emulator, then Odoo's final stock (quants per lot and
 * location, consumption moves) and RFQs compared with what the day should have produced.
 */
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import type { OdooEmulator, OdooVersion } from '../odoo-emulator/index.ts';
import { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';
import { connections } from '../fixtures/order-download.ts';
import { BOT, startEmulator } from '../fixtures/relay/harness.ts';
import { idOf, productId, quantsByLotAt, receiveLot, rfqLines, waitFor } from '../fixtures/relay/helpers.ts';

// ------------------------------------------------------------------------------------------ rig

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function emulator(version: OdooVersion): Promise<{ emu: OdooEmulator; url: string }> {
  const started = await startEmulator(version);
  cleanups.push(() => started.emu.close());
  return started;
}

/** A storable product of the site (as its Odoo administrator creates it), supplied by VEND-DIAG. */
function siteProduct(emu: OdooEmulator, version: OdooVersion, code: string, name: string, opts: { uom?: string; tracking?: 'lot' | 'none' } = {}): number {
  const uom = idOf(emu, 'uom.uom', [['name', '=', opts.uom ?? 'Units']]);
  const kind = version >= 18 ? { type: 'consu', is_storable: true } : { type: 'product', detailed_type: 'product' };
  const pid = emu.call('product.product', 'create', [
    { name, default_code: code, ...kind, tracking: opts.tracking ?? 'lot', use_expiration_date: true, sale_ok: false, uom_id: uom, ...(version <= 18 ? { uom_po_id: uom } : {}) },
  ]) as number;
  const tmpl = emu.records('product.product', [['id', '=', pid]])[0]!['product_tmpl_id'];
  emu.call('product.supplierinfo', 'create', [{ partner_id: idOf(emu, 'res.partner', [['ref', '=', 'VEND-DIAG']]), product_tmpl_id: tmpl, price: 50, min_qty: 1 }]);
  return pid;
}

function reorderRule(emu: OdooEmulator, pid: number, min: number, max: number): void {
  emu.call('stock.warehouse.orderpoint', 'create', [
    { product_id: pid, location_id: idOf(emu, 'stock.location', [['name', '=', 'Lab']]), warehouse_id: idOf(emu, 'stock.warehouse', [['code', '=', 'WH']]), product_min_qty: min, product_max_qty: max, trigger: 'manual' },
  ]);
}

/** Quantity per lot name and location name of a product (every location, virtual ones included). */
const quantsOf = (emu: OdooEmulator, pid: number): Record<string, number> => quantsByLotAt(emu, pid);

interface Site {
  dir: string;
  config: ReturnType<typeof testGatewayConfig>;
  gateway: Gateway;
  /** Stop this gateway gracefully and start a new one on the same data directory and configuration. */
  restart(): Promise<Gateway>;
}

/**
 * A lab site: the real gateway (ASTM and HL7 analyzers on loopback, relay on) posting to the
 * emulator with the recommended bot's API key, its data under a temp dir kept across restarts.
 */
async function site(url: string, analyzers: unknown[], relay: Record<string, unknown> = {}): Promise<Site> {
  const dir = await mkdtemp(path.join(tmpdir(), 'lgw-stock-day-'));
  const keyFile = path.join(dir, 'odoo.key');
  await writeFile(keyFile, `${BOT.key}\n`);
  const config = testGatewayConfig('stock-day', path.join(dir, 'data'), {
    analyzers,
    odoo: { url, database: 'lab', login: BOT.login, apiKeyFile: keyFile, timeoutMs: 3000 },
    relay: { enabled: true, backoff: { initialMs: 50, maxMs: 500 }, syncModes: { 'consumable.used': 'realtime' }, ...relay },
  });
  const s: Site = {
    dir,
    config,
    gateway: new Gateway({ config, log: silentLogger }),
    async restart() {
      await s.gateway.stop(5_000);
      s.gateway = new Gateway({ config, log: silentLogger });
      await s.gateway.start();
      return s.gateway;
    },
  };
  await s.gateway.start();
  cleanups.push(async () => {
    await s.gateway.stop(5_000);
    await rm(dir, { recursive: true, force: true });
  });
  return s;
}

/** A simulated ASTM analyzer connected to its TCP listener. */
async function astmAnalyzer(gateway: Gateway, id: string): Promise<AnalyzerSim> {
  const socket = net.connect({ host: '127.0.0.1', port: gateway.addresses().analyzers[id]!.port! });
  const sim = new AnalyzerSim((b) => socket.write(b));
  socket.on('data', (d: Buffer) => sim.feed(d));
  socket.on('error', () => undefined);
  cleanups.push(async () => void socket.destroy());
  await once(socket, 'connect');
  await waitFor(() => connections(gateway, id) >= 1, 10_000, 20);
  return sim;
}

/** The gateway's consumption events, by state. */
async function consumption(gateway: Gateway): Promise<Array<{ state: string; ambiguous: boolean; productCode: string }>> {
  const events = await gateway.store!.listEvents({ type: 'consumable.used', limit: 1000 });
  return events.map((e) => ({ state: e.state, ambiguous: e.ambiguous, productCode: (e.event.data as { productCode: string }).productCode }));
}

/** Patient HbA1c run `n` of the day on an Afinion 2 (its patient transcript, one cartridge), ACKed. */
async function afinionRun(sim: AnalyzerSim, n: number): Promise<void> {
  const { replies } = await sim.sendMessage([
    'H|\\^&|||Afinion 2 Analyzer^^AF20061122|||||||P|1|20260114141235',
    `P|1||PT-771${20 + n}|||||U`,
    `O|1||${12 + n}|^^^HbA1c|||||||N||||^O||||||||^10228413||F`,
    `R|1|^^^HbA1c|6.${n}|%||||F||op7||20260114${String(100 + n * 3).padStart(4, '0')}15`,
    'L|1|N',
  ]);
  expect(replies).not.toContain('NAK');
}

// ------------------------------------------------------------------------------------- scenarios

describe.each([16, 17, 18, 19] as const)('stock day: replenishment after a lost answer and a restart (Odoo %i)', (version) => {
  /**
   * What the lab sees: three HbA1c runs on the Afinion 2 take the lot's cartridges from 13 to 10,
   * exactly the reorder rule's minimum (Odoo orders below it, not at it). Odoo validated the third
   * run's consumption, but its answer was lost (the connection dropped after the commit). The
   * gateway is restarted (an update, a power cut) and pulls Odoo's stock: it reads 10 cartridges
   * AND still subtracts the third run, which it has not seen confirmed: 9 < 10, so it raises a
   * breach and a draft RFQ for 21 cartridges although the stock never fell below the minimum. The
   * retry, three minutes later, finds the picking in Odoo; the RFQ stays, for purchasing to confirm.
   *
   * The promise: DESIGN.md §3 stock.threshold_breached ("local on-hand estimate (pulled from
   * Odoo) minus UNPOSTED consumption below the reorder point"); relay README "Local debits, exactly
   * once" (posted consumption counted once, also after a lost answer to button_validate) and "No
   * duplicate Odoo document" — consumption that Odoo already holds is subtracted twice.
   *
   * Was: the stock watch counted every pending, retrying and in-flight consumable.used event as
   * unposted, ambiguous ones included, while the pull before the check read quants that already
   * held the third run. Now the watch looks such events up in Odoo (their segment marker on a
   * done picking, as the consumption rule does) and leaves out what Odoo holds (relay README,
   * "Consumption Odoo already holds").
   */
  it('Afinion 2 over ASTM/TCP: 13 → 10 cartridges, min 10: a restart after a lost validation answer raises no RFQ', async () => {
    const { emu, url } = await emulator(version);
    const lab = idOf(emu, 'stock.location', [['name', '=', 'Lab']]);
    const cart = siteProduct(emu, version, 'ABT-AFINION-HBA1C-CART', 'Afinion HbA1c test cartridge');
    receiveLot(emu, cart, 'HBA-2611', lab, 13);
    reorderRule(emu, cart, 10, 30);

    const s = await site(url, [{ id: 'afinion-1', profile: 'abbott-afinion-2', tcp: { listen: { host: '127.0.0.1', port: 0 } } }]);
    await waitFor(() => s.gateway.relay!.snapshot().referencePulledAt !== undefined, 15_000);
    const sim = await astmAnalyzer(s.gateway, 'afinion-1');

    const run = (n: number): Promise<void> => afinionRun(sim, n);
    // Morning: two patient HbA1c runs (the Afinion 2 patient transcript), posted as usual.
    await run(0);
    await run(1);
    await waitFor(async () => (await consumption(s.gateway)).filter((e) => e.state === 'delivered').length === 2, 15_000);
    expect(quantsOf(emu, cart)['HBA-2611@Lab']).toBe(11);
    // Third run: Odoo commits the consumption picking's validation, the connection drops before the answer.
    emu.faults.next(1, 'stock.picking', 'button_validate').resetAfterCommit();
    await run(2);
    await waitFor(async () => (await consumption(s.gateway)).some((e) => e.state === 'retrying' && e.ambiguous), 15_000);
    // Odoo holds the third cartridge's consumption: 10 left, exactly the minimum (not below it).
    expect(quantsOf(emu, cart)['HBA-2611@Lab']).toBe(10);
    emu.faults.clear();

    // The gateway is restarted while the retry waits for its settle time (180 s); it pulls at start.
    const before = s.gateway.relay!.snapshot().referencePulledAt;
    const g = await s.restart();
    await waitFor(() => (g.relay!.snapshot().referencePulledAt ?? before) !== before, 15_000);
    // The scheduled pull (relay.referenceRefreshMs) runs the stock watch again.
    await g.relay!.refreshReference();
    await waitFor(async () => (await g.store!.listEvents({ type: 'stock.threshold_breached', limit: 100 })).every((e) => e.state === 'delivered' || e.state === 'dead'), 15_000);

    // Odoo's stock: 10 cartridges of lot HBA-2611 in the lab, at the minimum, never below it.
    expect(quantsOf(emu, cart)).toEqual({ 'HBA-2611@Lab': 10 });
    const breaches = (await g.store!.listEvents({ type: 'stock.threshold_breached', limit: 100 })).filter((e) => (e.event.data as { productCode: string }).productCode === 'ABT-AFINION-HBA1C-CART');
    expect(breaches.map((e) => e.event.data)).toEqual([]);
    expect(rfqLines(emu, 'ABT-AFINION-HBA1C-CART')).toHaveLength(0);
  });
});

describe.each([16, 17, 18, 19] as const)('stock day: reagents kept in a storage location of the lab (Odoo %i)', (version) => {
  /**
   * What the lab sees: the BS-200's total-protein reagent is kept where reagents are kept, in the
   * lab's fridge (WH/Stock/Lab/Fridge, a storage location under odoo.mapping.labLocation). The
   * gateway reads the fridge's lot (its pull and FEFO look at quants `child_of` the lab location)
   * and chooses it, but books the consumption from WH/Stock/Lab itself: after two patient samples
   * Odoo shows the fridge's lot untouched (30 tests) and a NEGATIVE quant of the same lot (-2) in
   * WH/Stock/Lab, where the lab keeps none. Every sample adds to both errors; a count in the
   * fridge "loses" tests, and Odoo's own reservations still see the fridge stock as available.
   *
   * The promise: DESIGN.md §3 consumable.used "stock consumption from the lab location,
   * lot-tracked" (the lab's stock is the location and its children: relay README "Which reorder
   * point": "quants under odoo.mapping.labLocation"); the brief's "from the right lot" — the right
   * lot is booked at a place that does not hold it. odoo-api.md B.1 step 3: the move line names
   * the location the lot is taken from (Odoo's `_update_available_quantity` is strict on it).
   *
   * Was: lots were chosen from their sum over the lab location and its children, and every move
   * line was written from the lab location itself. Now lots are chosen per quant (lot and
   * location) and each move line names the quant's location (relay README, "Where consumption is
   * taken from").
   */
  it('Mindray BS-200 over HL7/MLLP: the fridge lot of the TP reagent is consumed in the fridge, not driven negative in the lab', async () => {
    const { emu, url } = await emulator(version);
    const lab = idOf(emu, 'stock.location', [['name', '=', 'Lab']]);
    const fridge = emu.call('stock.location', 'create', [{ name: 'Fridge', usage: 'internal', location_id: lab }]) as number;
    const tp = siteProduct(emu, version, 'MR-BS-TP', 'Total protein reagent (BS series)');
    receiveLot(emu, tp, 'TP-2405', fridge, 30);
    for (const code of ['MR-BS-CUVETTE-WASH', 'MR-BS-PROBE-WASH']) {
      const pid = siteProduct(emu, version, code, code, { uom: 'mL', tracking: 'none' });
      emu.call('stock.quant', 'create', [{ product_id: pid, location_id: lab, quantity: 500 }]);
    }

    const s = await site(url, [{ id: 'bs-200', profile: 'mindray-bs-series', tcp: { listen: { host: '127.0.0.1', port: 0 } } }]);
    await waitFor(() => s.gateway.relay!.snapshot().referencePulledAt !== undefined, 15_000);
    const bs = await MllpClient.connect({ host: '127.0.0.1', port: s.gateway.addresses().analyzers['bs-200']!.port! });
    cleanups.push(() => bs.close());
    // Two patient samples with a total protein result each (the vendor manual's ORU^R01).
    for (const [n, sample] of ['0000000002', '0000000003'].entries()) {
      const oru = [
        `MSH|^~\\&|Manufacturer|Model|||2026011409${10 + n}00||ORU^R01|${n + 1}|P|2.3.1||||0||ASCII|||`,
        'PID|1|854||12|Tommy||19830719145307|F|A||||||||||||||||||||||',
        `OBR|1|${sample}|${n + 2}|Mindray^BS-200|Y|||2026011409${10 + n}00|||||||serum|||||||||||||||||||||||||||||||||`,
        `OBX|1|NM|2|test2|${5 + n}.000000|g/ml|-||||F|||2026011409${10 + n}30|||`,
        '',
      ].join('\r');
      expect((await bs.send(Buffer.from(oru))).toString('latin1')).toContain(`MSA|AA|${n + 1}`);
    }
    await waitFor(async () => {
      const c = await consumption(s.gateway);
      return c.length === 6 && c.every((e) => e.state === 'delivered');
    }, 20_000);

    // Two tests of lot TP-2405 used, taken from the fridge that holds it; nothing booked elsewhere.
    expect(quantsOf(emu, tp)).toEqual({ 'TP-2405@Fridge': 28 });
    const lines = emu.records('stock.move.line', [['product_id', '=', tp]]);
    expect(lines.map((l) => l['location_id'])).toEqual(lines.map(() => fridge));
    expect(lines.reduce((q, l) => q + Number(l['quantity'] ?? l['qty_done']), 0)).toBe(2);
  });
});

describe.each([16, 17, 18, 19] as const)('stock day: an inventory count between two consumptions (Odoo %i)', (version) => {
  /**
   * What the lab sees: the Afinion's HbA1c cartridges come in two lots, HBA-A (expires first, 5
   * left) and HBA-B (20). After the first run a technician finds the HBA-A box empty (the rest
   * was damaged and thrown away) and records the count in Odoo: HBA-A = 0. The next two runs are
   * booked on HBA-A again — the gateway still picks lots from its last pull (up to
   * relay.referenceRefreshMs, 15 min by default, old) — so Odoo shows HBA-A at -2 and HBA-B still
   * at 20, where the lab holds 0 and 18. The lot recorded for those patients' cartridges is one
   * the lab no longer had, and the next count has to correct both lots again.
   *
   * The promise: DESIGN.md §3 consumable.used "lot-tracked, FEFO when the lot is unknown"
   * (first expired first out among the lots the lab HAS: the relay README's "FEFO from the pulled
   * quants and lots at the lab location" skips lots without stock, consumable-used.ts:260 `avail
   * <= 0`), and odoo-api.md B.1 (Odoo's own reservation takes only available quants).
   *
   * Was: lots were chosen from the cached pull, re-read only when no unexpired lot was known at
   * all. Now the batch's products' lab quants are read again before lots are chosen (one read
   * per batch; relay README, "Lots chosen from Odoo's stock as it is").
   */
  it('Afinion 2 over ASTM/TCP: after HBA-A is counted 0 in Odoo, the next runs take HBA-B', async () => {
    const { emu, url } = await emulator(version);
    const lab = idOf(emu, 'stock.location', [['name', '=', 'Lab']]);
    const cart = siteProduct(emu, version, 'ABT-AFINION-HBA1C-CART', 'Afinion HbA1c test cartridge');
    const lotA = receiveLot(emu, cart, 'HBA-A', lab, 5, 30);
    receiveLot(emu, cart, 'HBA-B', lab, 20, 200);

    const s = await site(url, [{ id: 'afinion-1', profile: 'abbott-afinion-2', tcp: { listen: { host: '127.0.0.1', port: 0 } } }]);
    await waitFor(() => s.gateway.relay!.snapshot().referencePulledAt !== undefined, 15_000);
    const sim = await astmAnalyzer(s.gateway, 'afinion-1');
    const delivered = async (n: number): Promise<void> =>
      waitFor(async () => (await consumption(s.gateway)).filter((e) => e.state === 'delivered').length === n, 15_000);

    await afinionRun(sim, 0);
    await delivered(1);
    expect(quantsOf(emu, cart)).toEqual({ 'HBA-A@Lab': 4, 'HBA-B@Lab': 20 });

    // The technician's count in Odoo (Inventory > Physical Inventory, applied by the stock manager).
    const [quant] = emu.records('stock.quant', [['product_id', '=', cart], ['lot_id', '=', lotA], ['location_id', '=', lab]]);
    emu.call('stock.quant', 'create', [{ product_id: cart, location_id: lab, lot_id: lotA, inventory_quantity: 0 }], { context: { inventory_mode: true } });
    emu.call('stock.quant', 'action_apply_inventory', [[quant!.id]]);
    expect(quantsOf(emu, cart)).toEqual({ 'HBA-A@Lab': 0, 'HBA-B@Lab': 20 });

    await afinionRun(sim, 1);
    await afinionRun(sim, 2);
    await delivered(3);
    expect(quantsOf(emu, cart)).toEqual({ 'HBA-A@Lab': 0, 'HBA-B@Lab': 18 });
  });
});
