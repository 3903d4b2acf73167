import { afterEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../gateway/src/log.ts';
import type { OdooVersion } from '../odoo-emulator/index.ts';
import { startBodyLimitProxy, type BodyLimitProxy } from '../fixtures/relay/body-limit-proxy.ts';
import { makeRig, startEmulator, type Rig } from '../fixtures/relay/harness.ts';
import { noteMarker } from '../../gateway/src/relay/rules/milestone-notes.ts';
import { milestone, orderCreated, waitFor } from '../fixtures/relay/helpers.ts';

/**
 * Audit of the relay behind a reverse proxy that refuses a request as too large: nginx in front
 * of the site's Odoo answers HTTP 413 with its own HTML page for a body over its
 * `client_max_body_size` (1m by default), before Odoo ever sees the request
 * (fixtures/relay/body-limit-proxy.ts). Before, the event was a dead letter reading "Odoo
 * rejected the request (sale.order.load): Odoo answered HTTP 413: <html>\r\n<head><title>413
 * Request Entity Too Large…": finance saw HTML, IT did not know what to change, and a batch of
 * notes whose call together was over the limit was dead-lettered whole, though each would have
 * passed on its own. Odoo's own refusal of a request as too large (its JSON error) stays Odoo's.
 */

let rig: Rig | undefined;
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await rig?.close();
  rig = undefined;
  for (const c of closers.splice(0).reverse()) await c();
});

/** Every line the gateway logs, as text with its fields. */
function recordingLogger(lines: string[]): Logger {
  const log = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
  const logger: Logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), child: () => logger };
  return logger;
}

const ALL_TESTS = ['GLU', 'HBA1C', 'CBC', 'TSH', 'CRP', 'LIPID', 'CREA', 'ALT', 'K'];

/** An emulator, the nginx-like proxy in front of it (no limit yet), and a relay rig on the proxy. */
async function rigBehindBodyLimit(version: OdooVersion, lines: string[]): Promise<{ proxy: BodyLimitProxy; rig: Rig }> {
  const started = await startEmulator(version);
  closers.push(() => started.emu.close());
  const proxy = await startBodyLimitProxy(started.url, Infinity);
  closers.push(() => proxy.close());
  rig = await makeRig(version, { emu: { emu: started.emu, url: proxy.url }, relay: { maxAttempts: 3 }, log: recordingLogger(lines) });
  return { proxy, rig };
}

/**
 * The sizes of orders as the relay sends them, from `orders` let through: their `load` and the
 * largest of the other requests. A limit between the two refuses only the load of the next such
 * orders.
 */
async function orderSizes(r: Rig, proxy: BodyLimitProxy, orders: ReturnType<typeof orderCreated>[]): Promise<{ load: number; others: number }> {
  const from = proxy.passed.length;
  const calls = r.emu.calls.length;
  await r.commit(orders);
  await r.waitDrained();
  const sizes = proxy.passed.slice(from);
  const methods = r.emu.calls.slice(calls).map((c) => `${c.model}.${c.method}`);
  expect(methods).toHaveLength(sizes.length);
  expect(methods.filter((m) => m === 'sale.order.load')).toHaveLength(1);
  const load = sizes[methods.indexOf('sale.order.load')]!;
  const others = Math.max(...sizes.filter((_, i) => methods[i] !== 'sale.order.load'));
  expect(load).toBeGreaterThan(others);
  return { load, others };
}

describe('a reverse proxy refusing a request as too large (HTTP 413, its HTML page)', () => {
  it.each([17, 19] as const)('Odoo %i: an order too large on its own is a dead letter saying what to raise, without HTML; replayed once the limit is raised, it lands once', async (version) => {
    // What finance saw: "Odoo rejected the request (sale.order.load): Odoo answered HTTP 413:
    // <html> <head><title>413 Request Entity Too Large</title>…" in the dead-letter list. Odoo
    // never refused it: the site's nginx did, and nobody knew what to change. Broke: every
    // failure traceable, readable (DESIGN.md §2: bad input answered with a clear reason).
    const lines: string[] = [];
    const { proxy, rig: r } = await rigBehindBodyLimit(version, lines);
    const { others } = await orderSizes(r, proxy, [orderCreated('BIG0', 'CLINIC-A', ALL_TESTS)]);
    proxy.limit = others;
    const outcomes: string[] = [];
    r.telemetry.on('relay.outcome', (o) => outcomes.push(String(o.error ?? '')));
    const loadsBefore = r.emu.calls.filter((c) => c.model === 'sale.order' && c.method === 'load').length;

    const [id] = await r.commit([orderCreated('BIG1', 'CLINIC-A', ALL_TESTS)]);
    await r.waitDrained();
    const dead = await r.store.getEvent(id!);
    expect(dead?.state).toBe('dead');
    expect(proxy.refused).toHaveLength(1);
    const bytes = proxy.refused[0]!;
    const reason = dead?.deadReason ?? '';
    expect(reason).not.toMatch(/[<>]/);
    expect(reason).toMatch(/HTTP 413/);
    expect(reason).toMatch(/proxy/i);
    expect(reason).toContain('sale.order.load');
    expect(reason).toContain(`${bytes} bytes`);
    expect(reason).toMatch(/client_max_body_size/);
    expect(reason).toMatch(/replay/i);
    expect(reason).not.toMatch(/Odoo rejected/);
    // Odoo never saw it, and the link is not taken for down: the status names no HTML either.
    expect(r.emu.calls.filter((c) => c.model === 'sale.order' && c.method === 'load')).toHaveLength(loadsBefore);
    expect(r.emu.count('sale.order', [['client_order_ref', '=', 'BIG1']])).toBe(0);
    expect(r.client.state).toBe('connected');
    expect(r.relay.snapshot().lastError ?? '').not.toMatch(/[<>]/);
    expect(outcomes.join('\n')).not.toMatch(/[<>]/);
    expect(lines.join('\n')).not.toMatch(/<html|<title/i);
    expect(lines.some((l) => l.includes('client_max_body_size'))).toBe(true);

    // IT raises client_max_body_size; the operator replays the dead letter: one order, once.
    proxy.limit = Infinity;
    await r.store.replay(id!, 'it-admin', 'client_max_body_size raised');
    r.relay.notify();
    await r.waitDrained();
    expect((await r.store.getEvent(id!))?.state).toBe('delivered');
    expect(r.emu.count('sale.order', [['client_order_ref', '=', 'BIG1']])).toBe(1);
    expect(r.store.stats().deadLettered).toBe(0);
  });

  it.each([17, 19] as const)('Odoo %i: a batch of chatter notes too large together is sent again in smaller calls: every note once, nothing dead', async (version) => {
    // What the lab saw: the morning's 30 "specimen received" of one order, batched into one
    // chatter note, were all dead-lettered behind nginx's 413, though half as many per call would
    // have passed. The proxy refused the call before Odoo saw it: nothing was applied, so sending
    // the batch again in halves cannot post a note twice. Broke: nothing lost (DESIGN.md §2).
    const lines: string[] = [];
    const { proxy, rig: r } = await rigBehindBodyLimit(version, lines);
    await r.commit([orderCreated('NOTES1', 'CLINIC-A', ['GLU'])]);
    await r.waitDrained();
    // A note of 30 milestones is about 2.5 kB, of 7 about 0.8 kB; reads stay under 0.6 kB.
    proxy.limit = 1200;
    const ids = await r.commit(Array.from({ length: 30 }, (_, i) => milestone('specimen.received', 'NOTES1', i)));
    await r.waitDrained();
    expect(proxy.refused.length).toBeGreaterThan(0);
    for (const id of ids) expect((await r.store.getEvent(id))?.state).toBe('delivered');
    expect(r.store.stats().deadLettered).toBe(0);
    const so = r.emu.records('sale.order', [['client_order_ref', '=', 'NOTES1']])[0]!;
    const bodies = r.emu.records('mail.message', [['model', '=', 'sale.order'], ['res_id', '=', so.id], ['body', 'ilike', 'lgw:']]).map((m) => String(m['body']));
    expect(bodies.length).toBeGreaterThan(1);
    const markers = bodies.flatMap((b) => [...b.matchAll(/lgw:[0-9a-f]{12}/g)].map((m) => m[0]));
    expect(markers).toHaveLength(30);
    expect(new Set(markers).size).toBe(30);
    // IT is told all the same: the limit is too low for the gateway's batches.
    const warned = lines.filter((l) => l.startsWith('warn') && l.includes('client_max_body_size'));
    expect(warned.length).toBeGreaterThan(0);
    expect(lines.join('\n')).not.toMatch(/<html|<title/i);
  });
});

describe('a batch refused as too large while a write of the same batch is still running in Odoo', () => {
  it.each([17, 19] as const)('Odoo %i: the write whose answer was lost is not sent again before the settle time: its note once, the refused ones split', async (version) => {
    // One round's chatter notes: order HELD's one milestone, order BULK's 30. Odoo is slow on
    // HELD's note (a busy worker): the gateway gives up waiting (ambiguous, the note may still
    // land), while the proxy refuses BULK's note as too large. Before, the split posted the whole
    // batch again at once, HELD's milestone with it: the look-up found no note yet, a second was
    // posted, and then Odoo finished the first: HELD's note twice in the order's chatter. A write
    // whose answer was lost waits out the settle time before its look-up (relay.ts
    // ambiguousSettleMs), split or not. Broke: no duplicate Odoo document (DESIGN.md §2).
    const lines: string[] = [];
    const started = await startEmulator(version);
    closers.push(() => started.emu.close());
    const proxy = await startBodyLimitProxy(started.url, Infinity);
    closers.push(() => proxy.close());
    const r = await makeRig(version, {
      emu: { emu: started.emu, url: proxy.url },
      relay: { maxAttempts: 3 },
      odoo: { timeoutMs: 300 },
      relayOptions: { ambiguousSettleMs: 3_000 },
      log: recordingLogger(lines),
    });
    rig = r;
    await r.commit([orderCreated('HELD', 'CLINIC-A', ['GLU']), orderCreated('BULK', 'CLINIC-A', ['GLU'])]);
    await r.waitDrained();
    proxy.limit = 1200;
    // HELD's note is the only one the proxy lets through in the first call: Odoo runs it 1.5 s late.
    r.emu.faults.next(1, 'sale.order', 'message_post').timeout(1_500);
    const held = milestone('specimen.received', 'HELD', 0);
    const bulk = Array.from({ length: 30 }, (_, i) => milestone('specimen.received', 'BULK', i));
    const ids = await r.commit([held, ...bulk]);
    await r.waitDrained();
    // Every request Odoo received has run (the one the gateway gave up on included).
    await waitFor(() => proxy.forwarding === 0);
    expect(r.emu.faults.log.length).toBeGreaterThan(0);
    expect(proxy.refused.length).toBeGreaterThan(0);
    expect(lines.some((l) => l.startsWith('warn') && l.includes('refused a call of'))).toBe(true);
    for (const id of ids) expect((await r.store.getEvent(id))?.state).toBe('delivered');
    const copies = (key: string): number => r.emu.records('mail.message', [['body', 'ilike', `lgw:${noteMarker(key)}`]]).length;
    expect(copies(held.idempotencyKey)).toBe(1);
    for (const m of bulk) expect(copies(m.idempotencyKey)).toBe(1);
  });
});

describe('a reverse proxy refusing a batch of new orders as too large', () => {
  it.each([17, 19] as const)('Odoo %i: the orders loaded in one call are loaded again in smaller calls: each order once, nothing dead', async (version) => {
    // Six orders of the morning's batch go to Odoo in one `load` (one row set, their external
    // ids with them); nginx refused it as a whole. Each order alone passes. The sale order rule
    // already loads one order at a time after a load refused on its merits (order-created.ts), and
    // so after the proxy's refusal too: this holds it so (it passed before the change as well).
    // Broke: nothing lost, no duplicate order (DESIGN.md §2).
    const lines: string[] = [];
    const { proxy, rig: r } = await rigBehindBodyLimit(version, lines);
    const batch = (prefix: string) => Array.from({ length: 6 }, (_, i) => orderCreated(`${prefix}${i}`, i % 2 ? 'CLINIC-B' : 'CLINIC-A', ['GLU', 'CRP']));
    const { load, others } = await orderSizes(r, proxy, batch('WARM'));
    // Half the batch loads in about half the bytes: a limit half-way refuses the six, not three.
    proxy.limit = Math.floor((load + others) / 2);
    const ids = await r.commit(batch('LOAD'));
    await r.waitDrained();
    expect(proxy.refused.length).toBeGreaterThan(0);
    for (const id of ids) expect((await r.store.getEvent(id))?.state).toBe('delivered');
    for (let i = 0; i < 6; i++) expect(r.emu.count('sale.order', [['client_order_ref', '=', `LOAD${i}`]])).toBe(1);
    expect(r.store.stats().deadLettered).toBe(0);
  });
});

describe("Odoo's own refusal of a request as too large", () => {
  it.each([17, 19] as const)("Odoo %i: its RequestEntityTooLarge (its JSON error shape) stays Odoo's error, not the proxy's", async (version) => {
    // Odoo reads at most DEFAULT_MAX_CONTENT_LENGTH (odoo-api.md A.3) and answers a larger body
    // with werkzeug's RequestEntityTooLarge in its own shape (a JSON-RPC envelope at HTTP 200, a
    // JSON-2 error body at HTTP 413). That is Odoo's answer, reported as such.
    const lines: string[] = [];
    const { proxy, rig: r } = await rigBehindBodyLimit(version, lines);
    const { others } = await orderSizes(r, proxy, [orderCreated('ODOO0', 'CLINIC-A', ALL_TESTS)]);
    r.emu.maxContentLength = others;
    const [id] = await r.commit([orderCreated('ODOO1', 'CLINIC-A', ALL_TESTS)]);
    await r.waitDrained();
    const dead = await r.store.getEvent(id!);
    expect(dead?.state).toBe('dead');
    expect(proxy.refused).toHaveLength(0);
    expect(r.emu.calls.some((c) => c.error === 'werkzeug.exceptions.RequestEntityTooLarge')).toBe(true);
    const reason = dead?.deadReason ?? '';
    expect(reason).toContain('Odoo rejected the request (sale.order.load)');
    expect(reason).toContain('werkzeug.exceptions.RequestEntityTooLarge');
    expect(reason).not.toMatch(/client_max_body_size|proxy/);
  });
});
