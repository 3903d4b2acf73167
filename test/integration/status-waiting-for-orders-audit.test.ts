import { afterEach, describe, expect, it } from 'vitest';
import { invoiceEligibility } from '../../gateway/src/events/invoice-eligibility.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { OdooClient } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { Relay } from '../../gateway/src/relay/relay.ts';
import { dueDelayFor } from '../../gateway/src/relay/sync-modes.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import { StatusMetrics } from '../../gateway/src/status/metrics.ts';
import { StatusModel, type StatusAlert } from '../../gateway/src/status/status-model.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { normalize, orm, oru } from '../fixtures/relay/billing-rig.ts';
import { BOT, startEmulator } from '../fixtures/relay/harness.ts';
import { odooConfig, relayConfig, tempDir, waitFor } from '../fixtures/relay/helpers.ts';
import { makeConfig } from '../fixtures/status/harness.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';

/**
 * Results that wait for orders the LIS never sends, as IT staff see the gateway's status: real HL7
 * through the LIS normalizer, a LevelDB store, the relay posting to the Odoo emulator over HTTP,
 * and the status model and its /metrics fed by the relay's telemetry. The model's clock is moved
 * on (the relay's is not): the result is 16 minutes old for the status, as after a quarter of an
 * hour of the LIS's order interface down.
 */

const MINUTE = 60_000;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function statusRig() {
  const { emu, url } = await startEmulator(17);
  const { dir, cleanup } = tempDir('status-waiting-');
  const config = relayConfig({ maxAttempts: 3, invoicing: false });
  const store = await EventStore.open({ dataDir: dir, dueDelayMs: dueDelayFor(config), backoff: { initialMs: 10, maxMs: 100 }, pruneIntervalMs: 0, deriver: invoiceEligibility });
  const telemetry = new Telemetry();
  const oc = odooConfig({ url });
  const client = new OdooClient({ url, database: 'lab', login: BOT.login, apiKey: BOT.key, timeoutMs: oc.timeoutMs, telemetry, log: silentLogger, keyExpiryWarnDays: oc.keyExpiryWarnDays });
  const relay = new Relay({ store, odoo: client, config, odooConfig: oc, telemetry, log: silentLogger, idlePollMs: 20, linkBackoff: { initialMs: 20, maxMs: 200 }, authBackoff: { initialMs: 100, maxMs: 400 }, watchStock: false });
  let shift = 0;
  const model = new StatusModel({ config: { ...makeConfig(dir), odoo: { ...makeConfig(dir).odoo, url } }, store, telemetry, version: 't', startedAt: new Date().toISOString(), readDisk: async () => ({ freeBytes: 2 ** 40, totalBytes: 2 ** 41 }), now: () => Date.now() + shift });
  const metrics = new StatusMetrics({ store, telemetry, model, gatewayId: 'lab-test', defaultMetrics: false });
  const alerts: StatusAlert[] = [];
  model.onAlert((a) => alerts.push(a));
  await model.start();
  await relay.start();
  cleanups.push(async () => {
    await relay.stop(5000);
    await model.stop();
    await store.close();
    await emu.close();
    cleanup();
  });
  return {
    store,
    model,
    metrics,
    alerts,
    /** The status's clock this far ahead of the relay's. */
    moveStatusClock: (ms: number) => {
      shift = ms;
      model.poll();
    },
    async receive(text: string): Promise<void> {
      const { controlId, drafts } = normalize(text);
      const { ack: _ack, ...message } = inboundMessage(controlId);
      await store.commit(message, drafts);
      relay.notify();
    },
    events: (acc: string): Promise<StoredEvent[]> => store.eventsByCorrelation(acc),
    codes: (): string[] => model.health().reasons.map((r) => r.code),
  };
}

type StatusRig = Awaited<ReturnType<typeof statusRig>>;

/** Until the relay has retried the accession's event `which` picks as waiting for its order, twice. */
async function waitingEvent(rig: StatusRig, accession: string, which: (e: StoredEvent) => boolean): Promise<StoredEvent> {
  let found: StoredEvent | undefined;
  const dues = new Set<number>();
  await waitFor(async () => {
    found = (await rig.events(accession)).find(which);
    if (found?.state === 'retrying' && /waiting for its order from the LIS/.test(found.lastError ?? '')) dues.add(found.dueAt);
    return dues.size >= 2;
  }, 20_000, 5);
  return found!;
}

/** Until the relay has retried the result of `test` as waiting for its order, twice. */
const waitingResult = (rig: StatusRig, accession: string, test: string): Promise<StoredEvent> =>
  waitingEvent(rig, accession, (e) => e.event.type === 'result.validated' && (e.event.data as { testCode: string }).testCode === test);

describe('results waiting for orders the LIS never sent', () => {
  /**
   * What IT saw: the LIS's order interface stopped while its results flowed. Each result was
   * retried "waiting for its order from the LIS", its retry not due most of the time: the queue's
   * oldest-waiting age skipped it, and the status read "All good" (no QUEUE_STALE, nothing on
   * /metrics) until the first dead letters a day later. Promise broken: the status says in words
   * what needs a person (status/README.md "Health").
   */
  it('raises WAITING_FOR_ORDERS after a quarter of an hour, with the count, on /api/status and /metrics, and clears it when the order comes', async () => {
    const rig = await statusRig();
    await rig.receive(oru('W-100', 'GLU'));
    await rig.receive(oru('W-101', 'TSH'));
    await waitingResult(rig, 'W-100', 'GLU');
    await waitingResult(rig, 'W-101', 'TSH');
    rig.model.poll();
    expect(rig.codes(), 'a few minutes of waiting is no alarm').not.toContain('WAITING_FOR_ORDERS');

    rig.moveStatusClock(16 * MINUTE);
    const reason = rig.model.health().reasons.find((r) => r.code === 'WAITING_FOR_ORDERS');
    expect(reason?.level).toBe('degraded');
    expect(reason?.message).toMatch(/^2 events .* waiting for their orders from the LIS, the oldest for 16 min: check the LIS's order interface/);
    expect(rig.model.toApiStatus().health).toBe('degraded');
    expect(rig.model.toApiStatus().healthReasons.map((r) => r.code)).toContain('WAITING_FOR_ORDERS');
    expect(rig.alerts.filter((a) => a.code === 'WAITING_FOR_ORDERS')).toHaveLength(1);
    expect(await rig.metrics.text()).toMatch(/lab_gateway_health_reason\{[^}]*code="WAITING_FOR_ORDERS"[^}]*\} 1/);

    // The LIS's order interface is back: both orders come, the results go with them.
    await rig.receive(orm('W-100', ['GLU']));
    await rig.receive(orm('W-101', ['TSH']));
    await waitFor(async () => (await rig.events('W-100')).concat(await rig.events('W-101')).every((e) => e.state === 'delivered'), 20_000, 20);
    rig.model.poll();
    expect(rig.codes()).not.toContain('WAITING_FOR_ORDERS');
    expect(rig.alerts.map((a) => a.code)).toContain('WAITING_FOR_ORDERS_CLEARED');
    expect(await rig.metrics.text()).not.toMatch(/code="WAITING_FOR_ORDERS"/);
  });

  /** An operator discarded the result nobody ordered: nothing waits any more, the reason clears. */
  it('clears when an operator discards the waiting result', async () => {
    const rig = await statusRig();
    await rig.receive(oru('W-200', 'GLU'));
    const waiting = await waitingResult(rig, 'W-200', 'GLU');
    rig.moveStatusClock(20 * MINUTE);
    expect(rig.model.health().reasons.find((r) => r.code === 'WAITING_FOR_ORDERS')?.message).toMatch(/^1 event .* waiting for its order from the LIS, the oldest for 20 min/);

    await rig.store.discard(waiting.event.id, 'it-staff', 'test run by mistake, never ordered');
    await waitFor(() => {
      rig.model.poll();
      return !rig.codes().includes('WAITING_FOR_ORDERS');
    }, 10_000, 20);
    expect(rig.codes()).not.toContain('WAITING_FOR_ORDERS');
  });

  /**
   * A cancellation of an order the gateway never saw waits for it too (relay/rules/order-cancelled.ts):
   * counted with the results, named in the reason, cleared once its order comes.
   */
  it('counts a cancellation waiting for its order, and clears when the order comes', async () => {
    const rig = await statusRig();
    await rig.receive(orm('W-300', ['TSH'], 'CA'));
    await waitingEvent(rig, 'W-300', (e) => e.event.type === 'order.cancelled');
    rig.moveStatusClock(16 * MINUTE);
    expect(rig.model.health().reasons.find((r) => r.code === 'WAITING_FOR_ORDERS')?.message).toMatch(/^1 event \(results, milestones or cancellations\) waiting for its order from the LIS, the oldest for 16 min/);

    await rig.receive(orm('W-300', ['GLU', 'TSH']));
    await waitFor(async () => (await rig.events('W-300')).every((e) => e.state === 'delivered'), 20_000, 20);
    rig.model.poll();
    expect(rig.codes()).not.toContain('WAITING_FOR_ORDERS');
  });
});
