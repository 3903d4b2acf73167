import { afterEach, describe, expect, it, vi } from 'vitest';
import { billingRetention, invoiceEligibility } from '../../gateway/src/events/invoice-eligibility.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { OdooClient } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { Relay } from '../../gateway/src/relay/relay.ts';
import { dueDelayFor } from '../../gateway/src/relay/sync-modes.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import type { Lease, Outcome, StoredEvent } from '../../gateway/src/store/types.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { billingRig, invoices, normalize, orm, oru, saleOrders, type BillingRig } from '../fixtures/relay/billing-rig.ts';
import { BOT, startEmulator } from '../fixtures/relay/harness.ts';
import { odooConfig, relayConfig, tempDir, waitFor } from '../fixtures/relay/helpers.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';

/**
 * An `invoice.eligible` waits for its order's earlier `order.created` / `order.cancelled` (relay
 * README, billing: "waits for the order"). The wait is not charged, and it used to come due again
 * after the store's back-off for the attempts it has, none: the shortest, every time. While the
 * order itself was refused for an hour (a row lock, a missing product mapping fixed later), the
 * invoice was leased, read against Odoo's queue and released every 2 s for that hour; hundreds of
 * accessions in that state were hundreds of leases and LevelDB writes per second on the lab's box.
 * Now the waiting invoice is due when the order's partition is next due (the order's own
 * back-off), plus the short delay: evaluated about once per try of the order, and on the first
 * evaluation after the order is delivered. Real LevelDB, the relay and the Odoo emulator over HTTP.
 */

const HOUR = 3_600_000;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const c of cleanups.splice(0).reverse()) await c();
});

const BACKOFF = { initialMs: 40, maxMs: 640, multiplier: 2, jitter: 0.2 };
/** Tries the order is refused (row lock, a transient failure charged to it) before Odoo takes it. */
const REFUSED = 8;

interface Seen {
  /** Outcomes per event id, in the order the store received them. */
  outcomes: Map<string, Outcome[]>;
  /** Leases handed to the relay per event id (a lease released unchanged counts too). */
  leases: Map<string, number>;
  /** For each outcome of `watch`: that event's dueAt as stored, and the order's dueAt and state then. */
  dues: Array<{ outcome: Outcome; due: number; orderDue: number; orderState: string }>;
}

function watchStore(rig: Pick<BillingRig, 'store'>, watch: () => { invoice?: string; order?: string }): Seen {
  const seen: Seen = { outcomes: new Map(), leases: new Map(), dues: [] };
  const lease = rig.store.lease.bind(rig.store);
  vi.spyOn(rig.store, 'lease').mockImplementation(async (o) => {
    const got: Lease[] = await lease(o);
    for (const l of got) for (const e of l.events) seen.leases.set(e.event.id, (seen.leases.get(e.event.id) ?? 0) + 1);
    return got;
  });
  const complete = rig.store.complete.bind(rig.store);
  vi.spyOn(rig.store, 'complete').mockImplementation(async (l, outcomes) => {
    for (const o of outcomes) seen.outcomes.set(o.eventId, [...(seen.outcomes.get(o.eventId) ?? []), o]);
    await complete(l, outcomes);
    const { invoice, order } = watch();
    const mine = outcomes.find((o) => o.eventId === invoice);
    if (mine && invoice && order) {
      const [inv, ord] = await Promise.all([rig.store.getEvent(invoice), rig.store.getEvent(order)]);
      seen.dues.push({ outcome: mine, due: inv!.dueAt, orderDue: ord!.dueAt, orderState: ord!.state });
    }
  });
  return seen;
}

async function eventOf(rig: BillingRig, accession: string, type: string): Promise<StoredEvent> {
  const e = (await rig.events(accession)).find((x) => x.event.type === type);
  if (!e) throw new Error(`no ${type} stored for ${accession}`);
  return e;
}

describe("a waiting invoice's pace follows its order's retries", () => {
  it('is evaluated about once per try of the order, uncharged, with the same words, and delivered at its first evaluation after the order', async () => {
    const rig = await billingRig({ maxAttempts: 1000 }, { backoff: BACKOFF });
    const acc = 'WP-100';
    rig.emu.faults.inject({ match: { model: 'sale.order', method: 'load' }, times: REFUSED, action: { kind: 'lock' } });
    const ids: { invoice?: string; order?: string } = {};
    const seen = watchStore(rig, () => ids);

    await rig.receive(orm(acc, ['GLU', 'CRP']));
    await rig.receive(oru(acc, 'GLU'));
    await rig.receive(oru(acc, 'CRP'));
    const invoice = await eventOf(rig, acc, 'invoice.eligible');
    const order = await eventOf(rig, acc, 'order.created');
    ids.invoice = invoice.event.id;
    ids.order = order.event.id;

    await rig.settle(acc);

    const orderOutcomes = seen.outcomes.get(order.event.id) ?? [];
    const invoiceOutcomes = seen.outcomes.get(invoice.event.id) ?? [];
    expect(orderOutcomes.map((o) => o.outcome)).toEqual([...Array<string>(REFUSED).fill('retry'), 'delivered']);
    expect(invoiceOutcomes.at(-1)?.outcome).toBe('delivered');

    // About once per try of the order (twice when the invoice met it in flight), not once per
    // short delay: the order's back-off climbed to 640 ms, the short delay is 40 ms.
    const tries = orderOutcomes.length;
    expect(invoiceOutcomes.length, `invoice evaluated ${invoiceOutcomes.length} times for ${tries} tries of its order`).toBeLessThanOrEqual(2 * tries + 1);
    expect(seen.leases.get(invoice.event.id) ?? 0).toBeLessThanOrEqual(2 * tries + 2);

    // Each wait: uncharged, in the words the lab reads, and due no earlier than the order's next try.
    const waits = seen.dues.filter((d) => d.outcome.outcome === 'retry');
    expect(waits.length).toBeGreaterThan(0);
    for (const w of waits) {
      // A wait, not a failure of Odoo's: the status counts and shows it as neither (status-model).
      expect(w.outcome).toMatchObject({ outcome: 'retry', free: true, waiting: true });
      expect(w.outcome.outcome === 'retry' ? w.outcome.error : '').toMatch(new RegExp(`accession ${acc}: 1 earlier event\\(s\\) of the order not in Odoo yet \\(order\\.created first\\); the invoice follows them`));
      // A wait that saw the order's next try (a delay of its own) is due no earlier than that try;
      // one that met the order due or in flight is due after the short delay.
      if (w.outcome.outcome === 'retry' && w.outcome.notBefore !== undefined) expect(w.due, "the invoice waits for the order's next try").toBeGreaterThanOrEqual(w.orderDue);
    }
    expect(waits.filter((w) => w.outcome.outcome === 'retry' && w.outcome.notBefore !== undefined).length, 'most waits follow the order').toBeGreaterThanOrEqual(REFUSED - 2);

    // Promptly once the order is in: the invoice's evaluations after the order's delivery are the delivering one only.
    const orderDone = await eventOf(rig, acc, 'order.created');
    const done = await eventOf(rig, acc, 'invoice.eligible');
    expect(orderDone.state).toBe('delivered');
    expect(done.state).toBe('delivered');
    expect(done.attempts, 'only the delivering attempt is counted').toBe(1);
    const afterOrder = seen.dues.filter((d) => d.orderState === 'delivered');
    expect(afterOrder.map((d) => d.outcome.outcome)).toEqual(['delivered']);
    // Its last wait was due the short delay after the order's last try (the order was delivered then).
    const lastWait = waits.at(-1)!;
    expect(lastWait.due - Date.parse(orderDone.deliveredAt!)).toBeLessThanOrEqual(BACKOFF.initialMs * (1 + BACKOFF.jitter) + 250);

    expect(saleOrders(rig.emu, acc)).toHaveLength(1);
    expect(invoices(rig.emu, acc)).toHaveLength(1);
  });

  // The order's due time is on the store's due clock, which starts at the newest instant the store
  // holds: after a power cut a box without a battery-backed clock boots two hours behind its data.
  // Counted on the system clock, the invoice's wait would have been the order's back-off plus
  // those two hours.
  it('after a restart two hours behind the stored data, the wait is the order\'s back-off, not the clock\'s gap', async () => {
    const { emu, url } = await startEmulator(17);
    cleanups.push(() => emu.close());
    const { dir, cleanup } = tempDir('invoice-wait-clock-');
    cleanups.push(cleanup);
    const config = relayConfig({ invoicing: true, autoConfirm: false, maxAttempts: 1000, backoff: BACKOFF });
    const open = (): Promise<EventStore> => EventStore.open({ dataDir: dir, dueDelayMs: dueDelayFor(config), backoff: BACKOFF, pruneIntervalMs: 0, minFreeBytes: 0, deriver: invoiceEligibility, retentionHold: billingRetention });
    const T = Date.now();
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: T });
    let store = await open();
    const acc = 'WP-200';
    for (const text of [orm(acc, ['GLU']), oru(acc, 'GLU')]) {
      const { controlId, drafts } = normalize(text);
      const { ack: _ack, ...message } = inboundMessage(controlId);
      await store.commit(message, drafts);
    }
    await store.close();

    vi.setSystemTime(T - 2 * HOUR);
    store = await open();
    const opened = store;
    cleanups.push(() => opened.close());
    const evs = await store.eventsByCorrelation(acc);
    const ids = { invoice: evs.find((e) => e.event.type === 'invoice.eligible')!.event.id, order: evs.find((e) => e.event.type === 'order.created')!.event.id };
    const seen = watchStore({ store }, () => ids);
    emu.faults.inject({ match: { model: 'sale.order', method: 'load' }, times: 4, action: { kind: 'lock' } });

    const telemetry = new Telemetry();
    const oc = odooConfig({ url });
    const client = new OdooClient({ url, database: 'lab', login: BOT.login, apiKey: BOT.key, timeoutMs: oc.timeoutMs, telemetry, log: silentLogger, keyExpiryWarnDays: oc.keyExpiryWarnDays });
    const relay = new Relay({ store, odoo: client, config, odooConfig: oc, telemetry, log: silentLogger, idlePollMs: 20, linkBackoff: { initialMs: 20, maxMs: 200 }, watchStock: false, ambiguousSettleMs: 50 });
    cleanups.push(() => relay.stop(5000));
    await relay.start();
    // Resolved or not, the waits are read below: a wait of two hours would leave the invoice queued.
    await waitFor(async () => (await store.getEvent(ids.invoice))?.state === 'delivered', 20_000, 20).catch(() => undefined);

    // Each wait is due, on the store's clock, no later than the order's next try plus the order's
    // back-off and the short delay (counted on the relay's own clock, two hours later).
    const waits = seen.dues.filter((d) => d.outcome.outcome === 'retry' && d.orderState !== 'delivered');
    expect(waits.length).toBeGreaterThan(0);
    for (const w of waits) expect(w.due - w.orderDue, 'no wait longer than the order\'s back-off and the short delay').toBeLessThanOrEqual(BACKOFF.maxMs + BACKOFF.initialMs + 1000);
    expect((await store.getEvent(ids.order))?.state).toBe('delivered');
    expect((await store.getEvent(ids.invoice))?.state).toBe('delivered');
    expect(invoices(emu, acc)).toHaveLength(1);
  });

  // The order's partition delivers in order: a dead letter at its head (here a result the LIS sent
  // before its order) holds the order's events behind it for good. Waiting for its due time would
  // be the short delay for ever; it counts as the order's dead letter does.
  it('behind a dead letter heading the order\'s partition (not an order event) it is charged and dead-lettered, naming that event', async () => {
    const maxAttempts = 3;
    const rig = await billingRig({ maxAttempts }, { backoff: BACKOFF });
    const acc = 'WP-300';
    await rig.receive(oru(acc, 'GLU'));
    await rig.receive(orm(acc, ['GLU']));
    const result = await eventOf(rig, acc, 'result.validated');
    const order = await eventOf(rig, acc, 'order.created');
    const invoice = await eventOf(rig, acc, 'invoice.eligible');
    expect(result.event.partitionKey).toBe(order.event.partitionKey);
    expect(result.event.id < order.event.id && order.event.id < invoice.event.id).toBe(true);
    // An earlier run dead-lettered the result (as the relay records any dead letter).
    const leases = await rig.store.lease({ limit: 10, maxPerPartition: 1 });
    for (const l of leases) await rig.store.complete(l, l.partitionKey === result.event.partitionKey ? [{ eventId: result.event.id, outcome: 'dead', reason: 'an earlier run refused it' }] : []);

    await rig.settle(acc);

    const dead = await eventOf(rig, acc, 'invoice.eligible');
    expect(dead.state).toBe('dead');
    expect(dead.attempts).toBe(maxAttempts);
    expect(dead.deadReason).toContain(`result.validated event ${result.event.id} is a dead letter; replay or discard it before this invoice`);
    expect((await eventOf(rig, acc, 'order.created')).state).toBe('pending');
    expect(invoices(rig.emu, acc)).toHaveLength(0);
  });
});
