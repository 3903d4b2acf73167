/**
 * Relay benchmark: events delivered per second to the Odoo emulator with 20 ms added round-trip
 * latency, the gateway's relay (real EventStore, batching across partitions, bounded concurrency,
 * look-up-before-create) against the naive way (one execute_kw per event, sequential) in the same
 * run, and how the relay's rate changes with the backlog queued (10k, 100k, 1M).
 *
 * Workload per lab order (8 events): order.created (2 tests), specimen.received, test.completed ×2
 * (chatter notes), consumable.used ×4 across 4 analyzers (lot-tracked reagent + tips).
 * The emulator runs in its own process (relay-odoo-server.ts), as Odoo would.
 * The naive peer does ONE call per event and nothing else (create the sale order, message_post the
 * note, create the picking — not even validated, no look-ups): generous to the peer.
 *
 * For backlogs above `--measure` events (default 100,000) the rate is measured over the first
 * `--measure` deliveries from the full backlog (the emulator would otherwise hold a million
 * documents in memory); the backlog is fully queued in LevelDB in every case.
 *
 * Run: npm run bench:relay [-- --quick] [--backlogs 10000,100000,1000000] [--measure 20000]
 * Writes bench/results/relay.json.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OdooConfig, RelayConfig } from '../gateway/src/config/types.ts';
import type { DraftEvent } from '../gateway/src/events/types.ts';
import { partitionKeys } from '../gateway/src/events/keys.ts';
import { silentLogger } from '../gateway/src/log.ts';
import { OdooClient } from '../gateway/src/relay/odoo/odoo-client.ts';
import { Relay } from '../gateway/src/relay/relay.ts';
import { dueDelayFor } from '../gateway/src/relay/sync-modes.ts';
import { EventStore } from '../gateway/src/store/event-store.ts';
import { Telemetry } from '../gateway/src/telemetry.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const QUICK = args.includes('--quick');
const BACKLOGS = (flag('backlogs') ?? (QUICK ? '10000' : '10000,100000,1000000')).split(',').map(Number);
const MEASURE = Number(flag('measure') ?? 100_000);
const NAIVE_EVENTS = Number(flag('naive') ?? (QUICK ? 240 : 480));
const LATENCY_MS = 20;
const BOT = { login: 'gateway-bot', key: '6578616d706c65206a736f6e20617069206b6579' };

const relayConfig: RelayConfig = {
  enabled: true,
  concurrency: 16,
  maxAttempts: 10,
  backoff: { initialMs: 100, maxMs: 2000, multiplier: 2, jitter: 0.2 },
  rules: {},
  syncModes: { 'consumable.used': 'realtime' },
  microBatchWindowMs: 1000,
  scheduledEveryMinutes: 15,
  invoicing: false,
  autoConfirm: false,
  referenceRefreshMs: 0,
};
const odooConfig = (url: string): OdooConfig => ({
  url,
  database: 'lab',
  login: BOT.login,
  keyExpiryWarnDays: 14,
  timeoutMs: 30_000,
  sandboxVersion: 17,
  mapping: { labLocation: 'WH/Stock/Lab', consumptionLocation: 'Virtual Locations/Lab Consumption' },
});

/** The emulator in a child process (see relay-odoo-server.ts); `close()` ends it. */
async function emulator(): Promise<{ url: string; close: () => Promise<void> }> {
  const server = path.join(here, `relay-odoo-server${path.extname(fileURLToPath(import.meta.url))}`);
  const child = spawn(process.execPath, [server, String(LATENCY_MS)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const line = buf.split('\n')[0];
      if (buf.includes('\n') && line) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once('exit', (code) => reject(new Error(`emulator exited with ${code}`)));
  });
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.stdin!.end();
      }),
  };
}

/** Admin-side counts over JSON-RPC (the emulator is in another process). */
async function adminCount(url: string, model: string, domain: unknown[] = []): Promise<number> {
  const admin = new OdooClient({ url, database: 'lab', login: 'admin', apiKey: 'admin', timeoutMs: 60_000, models: [] });
  await admin.connect();
  const n = await admin.call<number>(model, 'search_count', { domain });
  admin.close();
  return n;
}

/** The quantity Odoo moved in done stock moves (every consumable.used of the workload is 1 unit). */
async function adminDoneQuantity(url: string): Promise<number> {
  const admin = new OdooClient({ url, database: 'lab', login: 'admin', apiKey: 'admin', timeoutMs: 60_000, models: [] });
  await admin.connect();
  const moves = await admin.call<Array<{ quantity: number }>>('stock.move', 'search_read', { domain: [['state', '=', 'done']], fields: ['quantity'] });
  admin.close();
  return moves.reduce((sum, m) => sum + m.quantity, 0);
}

/**
 * Why a run's figures are not what they claim (events dead-lettered, delivered without their
 * document in Odoo, Odoo calls that failed): written to the results, and the process exits 1.
 */
const problems: string[] = [];

const ts = (): string => new Date().toISOString();
function orderEvents(i: number): DraftEvent[] {
  const acc = `B${i}`;
  const base = { occurredAt: ts(), receivedAt: ts(), correlationId: acc };
  const order = { ...base, partitionKey: `order:${acc}`, source: { kind: 'hl7' as const, endpoint: 'lis' } };
  const out: DraftEvent[] = [
    { ...order, type: 'order.created', idempotencyKey: `b|o|${i}`, data: { accession: acc, orderingClientRef: i % 2 ? 'CLINIC-A' : 'CLINIC-B', tests: [{ code: 'GLU' }, { code: 'CRP' }] } },
    { ...order, type: 'specimen.received', idempotencyKey: `b|s|${i}`, data: { accession: acc, specimenId: `S${i}` } },
    { ...order, type: 'test.completed', idempotencyKey: `b|c|${i}|GLU`, data: { accession: acc, specimenId: `S${i}`, testCode: 'GLU', runType: 'patient' } },
    { ...order, type: 'test.completed', idempotencyKey: `b|c|${i}|CRP`, data: { accession: acc, specimenId: `S${i}`, testCode: 'CRP', runType: 'patient' } },
  ];
  for (let k = 0; k < 4; k++) {
    const analyzer = `an-${(i + k) % 4}`;
    const productCode = k % 2 ? 'TIP-200' : 'RGT-GLU';
    out.push({
      ...base,
      partitionKey: partitionKeys.reagent(analyzer, productCode),
      source: { kind: 'astm', endpoint: analyzer, analyzer },
      type: 'consumable.used',
      idempotencyKey: `b|u|${i}|${k}`,
      data: { analyzer, productCode, quantity: 1, uom: 'Units', runType: 'patient', runAt: ts() },
    });
  }
  return out;
}

async function fill(store: EventStore, events: number): Promise<number> {
  const started = performance.now();
  const orders = Math.ceil(events / 8);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < orders) {
      const from = next;
      next += 25;
      const drafts = Array.from({ length: Math.min(25, orders - from) }, (_, j) => orderEvents(from + j)).flat();
      await store.commit({ kind: 'hl7', endpoint: 'bench', receivedAt: ts(), encoding: 'ascii', raw: Buffer.from(`MSH|^~\\&|B|${from}\r`), status: 'accepted', controlId: `F${from}`, dedupKey: `bench|${from}` }, drafts);
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  return (performance.now() - started) / 1000;
}

/** The peer: one execute_kw per event, sequential. */
async function naive(events: number): Promise<{ events: number; seconds: number; rate: number; calls: number }> {
  const odoo = await emulator();
  const url = odoo.url;
  const client = new OdooClient({ url, database: 'lab', login: BOT.login, apiKey: BOT.key, timeoutMs: 30_000, models: ['sale.order', 'sale.order.line', 'stock.picking', 'stock.move', 'stock.move.line'] });
  await client.connect();
  const one = async (model: string, domain: unknown[]): Promise<number> => (await client.call<Array<{ id: number }>>(model, 'search_read', { domain, fields: ['id'], limit: 1 }, { context: { active_test: false } }))[0]!.id;
  const product = (code: string): Promise<number> => one('product.product', [['default_code', '=', code]]);
  const partners = { 'CLINIC-A': await one('res.partner', [['ref', '=', 'CLINIC-A']]), 'CLINIC-B': await one('res.partner', [['ref', '=', 'CLINIC-B']]) };
  const partner = (ref: string): number => partners[ref as 'CLINIC-A'];
  const loc = (name: string): Promise<number> => one('stock.location', [['name', '=', name]]);
  const type = await one('stock.picking.type', [['name', '=', 'Lab Consumption']]);
  const lot = await one('stock.lot', [['name', '=', 'G24A101']]);
  const ids = { GLU: await product('GLU'), CRP: await product('CRP'), 'RGT-GLU': await product('RGT-GLU'), 'TIP-200': await product('TIP-200'), lab: await loc('Lab'), cons: await loc('Lab Consumption') };
  const soOf = new Map<string, number>();
  const all = Array.from({ length: Math.ceil(events / 8) }, (_, i) => orderEvents(i)).flat().slice(0, events);
  let calls = 0;
  const started = performance.now();
  for (const e of all) {
    calls++;
    switch (e.type) {
      case 'order.created': {
        const [id] = await client.call<number[]>('sale.order', 'create', {
          vals_list: [{ partner_id: partner(e.data.orderingClientRef), client_order_ref: e.data.accession, order_line: e.data.tests.map((t) => [0, 0, { product_id: ids[t.code as 'GLU'], product_uom_qty: 1 }]) }],
        });
        soOf.set(e.data.accession, id!);
        break;
      }
      case 'specimen.received':
      case 'test.completed':
        await client.call('sale.order', 'message_post', { body: `${e.type} ${e.idempotencyKey}`, message_type: 'comment', subtype_xmlid: 'mail.mt_note' }, { ids: [soOf.get(e.data.accession!)!] });
        break;
      case 'consumable.used': {
        const p = ids[e.data.productCode as 'RGT-GLU'];
        await client.call('stock.picking', 'create', {
          vals_list: [{ picking_type_id: type, location_id: ids.lab, location_dest_id: ids.cons, origin: e.idempotencyKey, move_ids: [[0, 0, { name: 'use', product_id: p, product_uom_qty: 1, location_id: ids.lab, location_dest_id: ids.cons }]], move_line_ids: [[0, 0, { product_id: p, location_id: ids.lab, location_dest_id: ids.cons, quantity: 1, picked: true, ...(e.data.productCode === 'RGT-GLU' ? { lot_id: lot } : {}) }]] }],
        });
        break;
      }
      default:
        break;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  client.close();
  await odoo.close();
  return { events: all.length, seconds, rate: all.length / seconds, calls };
}

async function relayRun(backlog: number): Promise<{ backlog: number; fillSeconds: number; delivered: number; seconds: number; rate: number; measuredByType: Record<string, number>; ordersPerSecond: number; odooCalls: number; pickings: number; saleOrders: number }> {
  const problem = (what: string): void => void problems.push(`backlog ${backlog}: ${what}`);
  const dir = await mkdtemp(path.join(tmpdir(), 'bench-relay-'));
  const odoo = await emulator();
  const url = odoo.url;
  const store = await EventStore.open({ dataDir: dir, dueDelayMs: dueDelayFor(relayConfig), pruneIntervalMs: 0, minFreeBytes: 0 });
  const fillSeconds = await fill(store, backlog);
  const queued = store.stats().pending;
  const target = Math.min(queued, MEASURE);
  const telemetry = new Telemetry();
  let calls = 0;
  // Calls Odoo answered with an error, by method; a check_object_reference's error is the look-up's
  // "no such record" (every new order has one), not a failure.
  const failedByMethod: Record<string, number> = {};
  const perMethod = new Map<string, { n: number; ms: number }>();
  // Every attempt's outcome by event type: only deliveries count, retries and dead letters are reported.
  const outcomes: Record<string, { delivered: number; retry: number; dead: number }> = {};
  // When each type's last delivery was (the orders of a 100k backlog are all in before the run ends).
  const lastDeliveredAt: Record<string, number> = {};
  telemetry.on('relay.outcome', (o) => {
    const t = (outcomes[o.eventType] ??= { delivered: 0, retry: 0, dead: 0 });
    t[o.outcome]++;
    if (o.outcome === 'delivered') lastDeliveredAt[o.eventType] = performance.now();
  });
  telemetry.on('odoo.request', (r) => {
    calls++;
    if (!r.ok) failedByMethod[`${r.model}.${r.method}`] = (failedByMethod[`${r.model}.${r.method}`] ?? 0) + 1;
    const k = `${r.model}.${r.method}`;
    const m = perMethod.get(k) ?? { n: 0, ms: 0 };
    m.n++;
    m.ms += r.latencyMs;
    perMethod.set(k, m);
  });
  const client = new OdooClient({ url, database: 'lab', login: BOT.login, apiKey: BOT.key, timeoutMs: 30_000, telemetry, maxSockets: 32 });
  const relay = new Relay({ store, odoo: client, config: relayConfig, odooConfig: odooConfig(url), telemetry, log: silentLogger, idlePollMs: 5, watchStock: false });
  // Time spent in the store's lease/complete (the relay's own bookkeeping), reported beside the rate.
  const storeMs = { lease: 0, complete: 0, leases: 0, completes: 0 };
  // Events the relay resolved as delivered with a note: on an empty Odoo that is something it did
  // not post (milestone notes before their order, a consumption carried), not a delivery to count.
  const notes = { count: 0, examples: new Set<string>() };
  const lease = store.lease.bind(store);
  const complete = store.complete.bind(store);
  store.lease = async (o) => {
    const t = performance.now();
    try {
      return await lease(o);
    } finally {
      storeMs.lease += performance.now() - t;
      storeMs.leases++;
    }
  };
  store.complete = async (l, o) => {
    for (const x of o) {
      if (x.outcome !== 'delivered' || !x.note) continue;
      notes.count++;
      if (notes.examples.size < 5) notes.examples.add(x.note);
    }
    const t = performance.now();
    try {
      return await complete(l, o);
    } finally {
      storeMs.complete += performance.now() - t;
      storeMs.completes++;
    }
  };
  const started = performance.now();
  await relay.start();
  // Until the target is delivered; an event dead-lettered, or a minute without a delivery, ends the
  // run as a failure (before, the run waited for ever for deliveries that could no longer come).
  let progress = { delivered: 0, at: performance.now() };
  for (;;) {
    const st = store.stats();
    if (st.delivered >= target || st.deadLettered > 0) break;
    if (st.delivered > progress.delivered) progress = { delivered: st.delivered, at: performance.now() };
    else if (performance.now() - progress.at > 60_000) {
      problem(`no delivery for 60 s at ${st.delivered} of ${target} (retrying: ${st.retrying})`);
      break;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const seconds = (performance.now() - started) / 1000;
  const delivered = store.stats().delivered;
  // What the measured deliveries were, by event type: the rate depends on it. An order's four
  // events cost about two Odoo round trips; consumption goes up to 500 events to a picking. At 1M
  // queued the first 100,000 deliveries are almost all orders (the 8 consumption partitions come
  // due again behind the 125,000 order partitions), at 100k half of them are consumption.
  const measuredByType = Object.fromEntries(Object.entries(outcomes).map(([type, o]) => [type, o.delivered]));
  const ordersSeconds = ((lastDeliveredAt['order.created'] ?? performance.now()) - started) / 1000;
  await relay.stop(10_000);
  const dead = store.stats().deadLettered;
  if (dead > 0) problem(`${dead} events dead-lettered`);
  const failed = Object.entries(failedByMethod).filter(([m]) => m !== 'ir.model.data.check_object_reference');
  if (failed.length > 0) problem(`Odoo calls failed: ${failed.map(([m, n]) => `${m} ×${n}`).join(', ')}`);
  if (notes.count > 0) problem(`${notes.count} events delivered with a note, i.e. not posted as such (${[...notes.examples].join(' | ')})`);
  // What Odoo holds must be what the store says was delivered: a sale order per order.created, one
  // unit moved per consumable.used (all outcomes are in: the relay has stopped).
  const saleOrders = await adminCount(url, 'sale.order');
  const consumed = await adminDoneQuantity(url);
  const ordersDelivered = outcomes['order.created']?.delivered ?? 0;
  const usesDelivered = outcomes['consumable.used']?.delivered ?? 0;
  if (saleOrders !== ordersDelivered) problem(`${ordersDelivered} order.created delivered, ${saleOrders} sale orders in Odoo`);
  if (Math.abs(consumed - usesDelivered) > 1e-6) problem(`${usesDelivered} consumable.used delivered (1 unit each), ${consumed} units moved in Odoo`);
  const meanOdooMs = Object.fromEntries([...perMethod].sort((a, b) => b[1].ms - a[1].ms).slice(0, 8).map(([k, v]) => [k, { calls: v.n, meanMs: Math.round(v.ms / v.n) }]));
  if (process.env['BENCH_DEBUG']) console.log(meanOdooMs, storeMs);
  const result = {
    backlog: queued,
    fillSeconds,
    delivered,
    seconds,
    rate: delivered / seconds,
    /** Deliveries by event type when the measured target was reached (`outcomes` goes on until stop). */
    measuredByType,
    /**
     * order.created delivered per second (each with its order's milestone notes), from the start to
     * the last order delivered in the measured window: the rate to compare between backlogs.
     */
    ordersPerSecond: (measuredByType['order.created'] ?? 0) / ordersSeconds,
    odooCalls: calls,
    /** Calls Odoo answered with an error, by method (check_object_reference: the look-ups that found nothing). */
    odooErrorsByMethod: failedByMethod,
    odooCallsByMethod: meanOdooMs,
    store: { leaseSeconds: storeMs.lease / 1000, leaseCalls: storeMs.leases, completeCalls: storeMs.completes },
    /** Every outcome by event type, the deliveries after the measured point (until stop) included. */
    outcomes,
    deliveredWithNote: notes.count,
    pickings: await adminCount(url, 'stock.picking'),
    saleOrders,
    unitsConsumedInOdoo: consumed,
  };
  await store.close();
  await odoo.close();
  await rm(dir, { recursive: true, force: true });
  return result;
}

const naiveResult = await naive(NAIVE_EVENTS);
console.log(`naive: ${naiveResult.events} events in ${naiveResult.seconds.toFixed(1)} s = ${naiveResult.rate.toFixed(1)} events/s`);
const runs = [];
for (const backlog of BACKLOGS) {
  const r = await relayRun(backlog);
  runs.push({ ...r, ratioVsNaive: r.rate / naiveResult.rate });
  console.log(`relay: backlog ${r.backlog}: ${r.delivered} delivered in ${r.seconds.toFixed(1)} s = ${r.rate.toFixed(0)} events/s (${(r.rate / naiveResult.rate).toFixed(1)}× naive; ${r.odooCalls} Odoo calls; fill ${r.fillSeconds.toFixed(1)} s; measured: ${r.measuredByType['order.created'] ?? 0} orders = ${r.ordersPerSecond.toFixed(0)}/s, ${r.measuredByType['consumable.used'] ?? 0} consumable.used)`);
}
const out = {
  bench: 'relay',
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, node: process.version },
  addedLatencyMs: LATENCY_MS,
  odooVersion: 17,
  workload: 'per order: order.created (2 tests), specimen.received, 2× test.completed, 4× consumable.used over 4 analyzers',
  measureFirst: MEASURE,
  naive: naiveResult,
  relay: runs,
  target: '≥ 20× naive',
  /** Empty when every event counted reached Odoo as such; otherwise the run is no measurement. */
  problems,
};
// Sources run from bench/, the build from dist/bench/: the results live in the source tree.
const resultsDir = path.resolve(here, here.split(path.sep).includes('dist') ? '../../bench/results' : 'results');
await mkdir(resultsDir, { recursive: true });
const file = path.join(resultsDir, 'relay.json');
await writeFile(file, JSON.stringify(out, null, 2) + '\n');
console.log(`wrote ${file}`);
if (problems.length > 0) {
  console.error(`the results are no measurement:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  process.exitCode = 1;
}
