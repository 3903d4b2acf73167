/**
 * A year of operation: what the gateway keeps, and what retention takes away with it.
 *
 * Retention (gateway/src/store/README.md "Retention"; README.md `store.retentionDays`: "delivered
 * events and their messages are pruned after this") is driven here as the store runs it, with
 * `prune(now)` at a later instant (or with Date moved on, for code that reads the clock itself),
 * after real traffic: real LevelDB in a temp dir, the LIS over real MLLP, an E1381 analyzer over
 * real TCP, the relay against the Odoo emulator over HTTP. Counts, no timings.
 *
 * Checked and found bounded (no test kept): messages, events, `s`, `c`, `o`, `d`, `n`, `j` keys and
 * the message-log segments after 60 simulated days (30 messages a day, everything delivered: only
 * the last 30 days stay, segments deleted); rejected messages and discarded dead letters kept to
 * their floor; MQTT retained topics of removed endpoints (cleared on an external broker); the
 * in-memory caches of the HL7 parser (capped).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { ORDER_DOWNLOAD_NS, ORDER_OUTBOX_NS } from '../../gateway/src/astm/order-download.ts';
import { Gateway } from '../../gateway/src/gateway.ts';
import { createLinkSession } from '../../gateway/src/ingress/astm/create-link-session.ts';
import { resolveLinkOptions } from '../../gateway/src/ingress/astm/link-options.ts';
import { realScheduler } from '../../gateway/src/ingress/astm/scheduler.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';
import { CENTAUR, connections, orm as lisOrder } from '../fixtures/order-download.ts';
import { billingRig, invoices, orm, oru, saleLines } from '../fixtures/relay/billing-rig.ts';

const DAY_MS = 86_400_000;

/** One retention run to its end, as the store's minute timer does it pass after pass. */
async function pruneAll(store: EventStore, now?: number): Promise<void> {
  for (let pass = 0; pass < 100 && (await store.prune(now)) > 0; pass++);
}

/** Every queued event delivered, as the relay records it (the relay is off in these gateways). */
async function deliverEverything(store: EventStore): Promise<void> {
  for (;;) {
    const leases = await store.lease({ limit: 100 });
    if (leases.length === 0) return;
    for (const l of leases) await store.complete(l, l.events.map((e) => ({ eventId: e.event.id, outcome: 'delivered' as const })));
  }
}

describe('billing across retention', () => {
  // What finance sees: a microbiology culture (or any send-out test) is validated five weeks after
  // the order, as cultures are. Every line of the sale order is delivered in Odoo, yet no draft
  // invoice ever appears for the order, and no alert says so: the order is silently never billed.
  //
  // Promise broken: DESIGN.md §3, `invoice.eligible` — "all billable tests of an order validated"
  // → draft invoice; relay README (billing): derived "by the commit of the result" that completes
  // the order. Retention (store README "Retention", README.md `store.retentionDays`) is documented
  // to prune delivered events and their messages, not to stop orders from being billed.
  //
  // Cause: the derivation rebuilds the order's billing state from the events still stored
  // (gateway/src/events/invoice-eligibility.ts:104, `store.eventsByCorrelation`) and gives up when
  // no `order.created` is among them (:107 `!state.ordered`). Retention prunes the delivered
  // `order.created` and the earlier `result.validated` events (and their `c` correlation entries)
  // after retentionDays whatever the order's billing state (gateway/src/store/event-store.ts:2004–2019),
  // so the last result finds an order with no tests and no earlier validations.
  // (Same cause, second face: an add-on test ordered and validated after the first invoice.eligible
  // was pruned derives the key `invoice-eligible|<accession>` again, whose tombstone `k` key makes
  // the store skip it as a duplicate: the add-on is never billed either.)
  //
  // Fix: keep the billing state of an accession apart from the prunable history: e.g. a local
  // document per accession (open tests, validated tests, billed tests, number of eligibilities)
  // written in the same batch as the events that change it (the deriver already runs inside the
  // commit), read by the deriver instead of (or besides) the events, and deleted once the order
  // is billed in full or cancelled, or after store.deadLetterRetentionDays. Alternatively
  // retention keeps the billing events of an accession that is not billed yet (bounded by the
  // dead-letter floor).
  it('an order whose last test is validated after store.retentionDays still gets its draft invoice', async () => {
    const rig = await billingRig({});
    const acc = 'CULT-2026-0042';
    // Day 0: the order (a chemistry test and a culture), the chemistry result the same day.
    await rig.receive(orm(acc, ['GLU', 'CRP']));
    await rig.receive(oru(acc, 'GLU'));
    await rig.settle(acc);
    expect((await rig.events(acc)).map((e) => `${e.event.type}:${e.state}`).sort()).toEqual(['order.created:delivered', 'result.validated:delivered']);

    // Five weeks later: retention has run (every minute, as the gateway does) past the 30 days.
    // The order is not billed yet: its billing events stay, its messages go.
    await pruneAll(rig.store, Date.now() + 35 * DAY_MS);
    expect(await rig.store.listMessages({ limit: 100 }), 'retention pruned the messages of the order').toEqual([]);
    expect((await rig.events(acc)).map((e) => e.event.type).sort(), 'the order and its first result are kept for billing').toEqual(['order.created', 'result.validated']);

    // The culture is validated: the last open test of the order.
    await rig.receive(oru(acc, 'CRP'));
    await rig.settle(acc);
    expect(saleLines(rig.emu, acc).map((l) => `${l.code}:${l.delivered}`).sort(), 'both tests delivered on the sale order').toEqual(['CRP:1', 'GLU:1']);

    const types = (await rig.events(acc)).map((e) => e.event.type);
    expect(types, 'the completing result makes the order invoice-eligible').toContain('invoice.eligible');
    expect(invoices(rig.emu, acc), 'finance finds a draft invoice for the order').toHaveLength(1);
  }, 60_000);

  // The second face: an order billed in full, its events pruned, then an add-on test. Its
  // eligibility counted no earlier one and took `invoice-eligible|<accession>` again, whose
  // tombstone made the store skip it as a duplicate: the add-on was delivered, never billed.
  it('an add-on ordered after the billed order was pruned by retention is billed too', async () => {
    const rig = await billingRig({});
    const acc = 'ADD-2026-0007';
    await rig.receive(orm(acc, ['GLU']));
    await rig.receive(oru(acc, 'GLU'));
    await rig.settle(acc);
    expect(invoices(rig.emu, acc)).toHaveLength(1);

    // Billed in full: retention takes its events after the 30 days like any others.
    const later = Date.now() + 35 * DAY_MS;
    await pruneAll(rig.store, later);
    expect(await rig.events(acc), 'a billed order keeps nothing past retention').toEqual([]);

    // The physician adds a CRP on the same accession; it is validated.
    await rig.receive(orm(acc, ['CRP']));
    await rig.receive(oru(acc, 'CRP'));
    await rig.settle(acc);
    const eligible = (await rig.events(acc)).filter((e) => e.event.type === 'invoice.eligible');
    expect(eligible.map((e) => e.event.idempotencyKey), 'the add-on is eligible under a key of its own').toEqual([`invoice-eligible|${acc}|2`]);
    const billed = saleLines(rig.emu, acc).filter((l) => l.invoiced > 0 || l.toInvoice === 0).map((l) => `${l.code}:${l.delivered}`).sort();
    expect(billed, 'both tests delivered and on an invoice').toEqual(['CRP:1', 'GLU:1']);
  }, 60_000);
});

describe('order download documents across retention', () => {
  // What the lab sees: every LIS order pushed to an analyzer (analyzers[].pushOrders) leaves a
  // local document `orderDownload/<analyzer>␀<accession>` — the accession, the patient id (PID-3),
  // the specimen, the tests — that is never deleted: after the order was downloaded, its events
  // delivered and its messages pruned by retention, the document stays for the life of the box.
  // A lab pushing 2,000 orders a day to three analyzers adds ~2 million documents a year, each
  // naming a patient, long after retention removed the message they came from.
  //
  // Promise broken: README.md `store.retentionDays` ("delivered events and their messages are
  // pruned after this") and store README "Retention": the order's data outlives its messages and
  // events without bound; nothing in gateway/src/astm/README.md ("Order download") says these
  // documents are kept or ever go. The box is meant to run for years (DESIGN.md: "a small Linux box").
  //
  // Cause: gateway/src/astm/order-download.ts:410–426 (`#save`) writes the document with every
  // change and deletes only the outbox entry once nothing is left to send (:424); no code deletes
  // from ORDER_DOWNLOAD_NS (grep: only the outbox and the cursor namespaces are ever deleted), and
  // the store's prune() does not touch local documents.
  //
  // Fix: drop a document that has nothing left to send (no pending, no cancelPending) once it is
  // older than store.retentionDays (its `updatedAt`): e.g. an OrderDownload clean-up at start-up
  // and once a day (a prefix scan of the analyzer's documents), or a retention hook the store's
  // prune() calls. A cancel arriving after that finds no document and sends nothing, which is
  // right for an order the analyzer ran weeks ago.
  it('an order downloaded, delivered and pruned by retention leaves no document behind', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lgw-long-run-od-'));
    const config = testGatewayConfig('long-run-od', dir, { analyzers: [CENTAUR] });
    let gateway = new Gateway({ config, log: silentLogger });
    await gateway.start();
    // The analyzer: an E1381 receiver that accepts every order download.
    const received: string[] = [];
    const socket = net.connect({ host: '127.0.0.1', port: gateway.addresses().analyzers['centaur-1']!.port! });
    const session = createLinkSession({
      link: resolveLinkOptions({}),
      scheduler: realScheduler,
      write: (bytes) => socket.write(bytes),
      onMessage: async (text) => {
        received.push(text);
        return 'ack';
      },
      onPartial: () => undefined,
    });
    socket.on('data', (d: Buffer) => session.push(d));
    socket.on('error', () => undefined);
    try {
      await expect.poll(() => connections(gateway, 'centaur-1'), { timeout: 10_000 }).toBe(1);
      const lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
      const orders = 12;
      try {
        for (let i = 0; i < orders; i++) expect((await lis.send(lisOrder(`LR-${i}`, `ACC-LR-${i}`, ['TSH']))).toString('latin1')).toContain('MSA|AA|');
      } finally {
        await lis.close().catch(() => undefined);
      }
      // Every order reached the analyzer; nothing waits to be sent.
      await expect.poll(() => received.length, { timeout: 20_000 }).toBe(orders);
      const store = gateway.store!;
      await expect.poll(async () => (await store.listDocs(ORDER_OUTBOX_NS)).length, { timeout: 10_000 }).toBe(0);
      expect(await store.listDocs(ORDER_DOWNLOAD_NS)).toHaveLength(orders);
      // Odoo has every event.
      await deliverEverything(store);

      // 31 days later: retention runs, then the gateway restarts (an update, a reboot).
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(Date.now() + 31 * DAY_MS);
      // Passed in: the store's own retention clock does not follow a jump of the system clock
      // past its data (a wrong clock must not delete records; store/README.md "Retention").
      await pruneAll(store, Date.now());
      expect(await store.listMessages({ limit: 100 }), 'the orders\' messages are pruned').toEqual([]);
      // Only the orders stay, for billing: no result came yet (store README "Retention").
      expect((await store.listEvents({ limit: 100 })).map((e) => e.event.type), 'the orders\' events are pruned, but for the orders still to bill').toEqual(Array(orders).fill('order.created'));
      socket.destroy();
      await gateway.stop(5_000);
      gateway = new Gateway({ config, log: silentLogger });
      await gateway.start();
      await pruneAll(gateway.store!);

      // The clean-up runs in the background at start-up (and once a day after).
      const left = async (): Promise<string[]> =>
        (await gateway.store!.listDocs<{ accession: string; patientId?: string }>(ORDER_DOWNLOAD_NS)).map((d) => `${d.value.accession} (patient ${d.value.patientId ?? '-'})`);
      await expect.poll(left, { timeout: 10_000, message: 'order download documents of orders long done and pruned' }).toEqual([]);
    } finally {
      vi.useRealTimers();
      socket.destroy();
      await gateway.stop(5_000).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
