import { afterEach, describe, expect, it } from 'vitest';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { WAITING_FOR_ORDER } from '../../gateway/src/relay/rules/waiting-for-order.ts';
import { StatusModel, type StatusAlert } from '../../gateway/src/status/status-model.ts';
import type { GatewayStore, IntakeCounters, QueueStats } from '../../gateway/src/store/types.ts';
import { makeConfig } from '../fixtures/status/harness.ts';

/** The smallest GatewayStore double the model needs: counters and health (unit tests only). */
function fakeStore() {
  const s = {
    health: 'ok' as GatewayStore['health'],
    queue: { pending: 0, inFlight: 0, retrying: 0, deadLettered: 0, delivered: 0, discarded: 0, blockedPartitions: 0, oldestPendingAgeSeconds: 0 } as QueueStats,
    counters: { received: 0, accepted: 0, rejected: 0, duplicates: 0 } as IntakeCounters,
    stats() {
      return { ...s.queue };
    },
    intake() {
      return { ...s.counters };
    },
  };
  return s;
}

const GB = 1024 ** 3;
let models: StatusModel[] = [];
afterEach(async () => {
  for (const m of models) await m.stop();
  models = [];
});

function setup(opts: { odooUrl?: string; keyExpiresAt?: string; freeBytes?: number; paused?: boolean } = {}) {
  let now = Date.parse('2026-03-01T10:00:00Z');
  const store = fakeStore();
  const telemetry = new Telemetry();
  const config = makeConfig('/var/lib/lab-gateway', { odoo: { ...(opts.odooUrl ? { url: opts.odooUrl } : {}), ...(opts.keyExpiresAt ? { apiKeyExpiresAt: opts.keyExpiresAt } : {}) } });
  const model = new StatusModel({
    config,
    store: store as unknown as GatewayStore,
    telemetry,
    version: '1.2.3',
    startedAt: '2026-03-01T09:00:00.000Z',
    now: () => now,
    readDisk: async () => ({ freeBytes: opts.freeBytes ?? 50 * GB, totalBytes: 100 * GB }),
    relayPaused: () => opts.paused ?? false,
    pollIntervalMs: 3_600_000,
    diskIntervalMs: 3_600_000,
  });
  models.push(model);
  const alerts: StatusAlert[] = [];
  model.onAlert((a) => alerts.push(a));
  return { model, store, telemetry, alerts, advance: (ms: number) => (now += ms), at: () => now };
}

describe('StatusModel', () => {
  it('starts ok with every configured endpoint, sandbox Odoo and the disk of the data dir', async () => {
    const { model } = setup();
    await model.start();
    const s = model.toApiStatus();
    expect(s.health).toBe('ok');
    expect(s.healthReasons).toEqual([]);
    expect(s.endpoints).toEqual([
      { id: 'lis', kind: 'hl7', state: 'starting', connections: 0, lastMessageAt: null },
      { id: 'xn-1', kind: 'astm', state: 'starting', connections: 0, lastMessageAt: null },
    ]);
    expect(s.odoo).toEqual({ state: 'sandbox', lastError: null, lastSuccessAt: null });
    expect(s.disk).toMatchObject({ path: '/var/lib/lab-gateway', freeBytes: 50 * GB });
  });

  it('is down with the reason in words when the store cannot commit', async () => {
    const { model, store, telemetry } = setup();
    await model.start();
    store.health = 'failed';
    telemetry.emit('store.health', { state: 'failed', reason: 'EIO: write failed' });
    const h = model.health();
    expect(h.health).toBe('down');
    expect(h.reasons[0]).toMatchObject({ level: 'down', code: 'STORE_DOWN', message: 'Not accepting messages: the store cannot commit: EIO: write failed' });
  });

  it('is down when the data disk has less than store.minFreeBytes free, degraded when under twice that', async () => {
    const full = setup({ freeBytes: 512 * 1024 });
    await full.model.start();
    expect(full.model.health()).toMatchObject({ health: 'down', reasons: [{ code: 'DISK_FULL' }] });
    const low = setup({ freeBytes: 1.5 * 1024 * 1024 });
    await low.model.start();
    expect(low.model.health()).toMatchObject({ health: 'degraded', reasons: [{ code: 'DISK_LOW' }] });
  });

  it('turns degraded only after Odoo has been unreachable for the grace period, and says for how long', async () => {
    const { model, telemetry, advance } = setup({ odooUrl: 'https://odoo.example' });
    await model.start();
    telemetry.emit('odoo.state', { state: 'unreachable', lastError: 'ECONNREFUSED' });
    expect(model.health().health).toBe('ok');
    advance(5 * 60_000);
    const h = model.health();
    expect(h.health).toBe('degraded');
    expect(h.reasons[0]!.message).toBe('Odoo unreachable for 5 min; messages are kept and sent when it is back');
    expect(model.toApiStatus().odoo).toMatchObject({ state: 'unreachable', lastError: 'ECONNREFUSED' });
    telemetry.emit('odoo.state', { state: 'connected' });
    expect(model.health().health).toBe('ok');
    expect(model.toApiStatus().odoo.lastSuccessAt).not.toBeNull();
  });

  it("clears odoo.lastError when the link connects again: the outage's error is not the link's current one", async () => {
    const { model, telemetry } = setup({ odooUrl: 'https://odoo.example' });
    await model.start();
    telemetry.emit('odoo.state', { state: 'connected' });
    telemetry.emit('odoo.state', { state: 'unreachable', lastError: 'HTTP 503 from Odoo' });
    expect(model.toApiStatus().odoo).toMatchObject({ state: 'unreachable', lastError: 'HTTP 503 from Odoo' });
    telemetry.emit('odoo.state', { state: 'connected' });
    expect(model.toApiStatus().odoo).toMatchObject({ state: 'connected', lastError: null });
    // Connected, an event's own failure is still reported until the link changes again.
    telemetry.emit('relay.outcome', { eventId: 'e1', eventType: 'order.created', outcome: 'retry', latencyMs: 1, error: 'lock not available' });
    telemetry.emit('odoo.state', { state: 'connected', keyExpiresInDays: 30 });
    expect(model.toApiStatus().odoo.lastError).toBe('lock not available');
  });

  it("a retry that only waits (an invoice behind its order's queued event, a result waiting for its LIS order) is no Odoo failure: not counted per minute, not odoo.lastError", async () => {
    const { model, telemetry } = setup({ odooUrl: 'https://odoo.example' });
    await model.start();
    telemetry.emit('odoo.state', { state: 'connected' });
    telemetry.emit('relay.outcome', { eventId: 'e1', eventType: 'order.created', outcome: 'retry', latencyMs: 1, error: 'lock not available' });
    // An invoice.eligible whose order.created is still queued (relay.ts: a free retry that waits).
    telemetry.emit('relay.outcome', { eventId: 'e2', eventType: 'invoice.eligible', outcome: 'retry', latencyMs: 1, waiting: true, error: 'accession A1: 1 earlier event(s) of the order not in Odoo yet (order.created first); the invoice follows them' });
    // A result whose LIS order has not come yet.
    telemetry.emit('relay.outcome', { eventId: 'e3', eventType: 'result.validated', outcome: 'retry', latencyMs: 1, error: `accession A2: test GLU is ${WAITING_FOR_ORDER} (received 2 min ago)` });
    const s = model.toApiStatus();
    expect(s.odoo.lastError).toBe('lock not available');
    expect(s.throughput.failedPerMinute).toBe(1);
  });

  it('reports dead letters, blocked partitions and a stale queue from the store counters', async () => {
    const { model, store } = setup();
    await model.start();
    store.queue = { ...store.queue, deadLettered: 2, blockedPartitions: 1, pending: 5, oldestPendingAgeSeconds: 1800 };
    model.poll();
    // DEAD_LETTERS waits for the store's list of them (the oldest named: status-dead-letter-words-audit).
    await new Promise((r) => setTimeout(r, 0));
    const s = model.toApiStatus();
    expect(s.queue).toEqual({ pending: 5, inFlight: 0, retrying: 0, deadLettered: 2, delivered: 0, oldestPendingAgeSeconds: 1800 });
    expect(s.blockedPartitions).toBe(1);
    expect(s.healthReasons.map((r) => r.message)).toEqual([
      "2 dead letters waiting for an administrator's decision (replay or discard, on the status page's Dead letters tab)",
      '1 order/lot blocked behind a dead letter',
      'Oldest event waiting for Odoo for 30 min',
    ]);
  });

  it('warns about the API key expiry within keyExpiryWarnDays (config date or telemetry)', async () => {
    const { model, telemetry } = setup({ odooUrl: 'https://odoo.example', keyExpiresAt: '2026-03-10T10:00:00Z' });
    await model.start();
    expect(model.health().reasons[0]!.message).toBe('Odoo API key expires in 9 days');
    telemetry.emit('odoo.state', { state: 'connected', keyExpiresInDays: 30 });
    expect(model.health().health).toBe('ok');
  });

  it('a renewed key retires the configured expiry date: no expiry reason, none in the API', async () => {
    const { model, telemetry } = setup({ odooUrl: 'https://odoo.example', keyExpiresAt: '2026-02-20T10:00:00Z' });
    await model.start();
    expect(model.health().reasons[0]!.message).toBe('Odoo API key has expired');
    telemetry.emit('odoo.state', { state: 'connected', keyExpiresInDays: null });
    expect(model.health().health).toBe('ok');
    expect(model.toApiStatus().odooDetail.apiKeyExpiresInDays).toBeNull();
  });

  it('counts intake per endpoint, sets the last message time and the one-minute throughput', async () => {
    const { model, telemetry, advance, at } = setup();
    await model.start();
    telemetry.emit('intake.message', { endpoint: 'lis', kind: 'hl7', outcome: 'accepted', ackLatencyMs: 2, bytes: 10 });
    telemetry.emit('intake.message', { endpoint: 'lis', kind: 'hl7', outcome: 'rejected', ackLatencyMs: 2, bytes: 10 });
    telemetry.emit('intake.message', { endpoint: 'lis', kind: 'hl7', outcome: 'duplicate', ackLatencyMs: 2, bytes: 10 });
    expect(model.endpoint('lis')).toMatchObject({ received: 3, accepted: 1, rejected: 1, duplicates: 1, lastMessageAt: new Date(at()).toISOString() });
    expect(model.toApiStatus().throughput.receivedPerMinute).toBe(3);
    advance(61_000);
    expect(model.toApiStatus().throughput.receivedPerMinute).toBe(0);
  });

  it('names a disconnected analyzer and the LIS link differently, with the time since', async () => {
    const { model, telemetry, advance } = setup();
    await model.start();
    telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'disconnected', connections: 0 });
    telemetry.emit('endpoint.state', { endpoint: 'lis', kind: 'hl7', state: 'error', connections: 0, detail: 'EADDRINUSE' });
    advance(3 * 60_000);
    const msgs = model.health().reasons.map((r) => r.message);
    expect(msgs).toContain('Analyzer xn-1 disconnected for 3 min');
    expect(msgs).toContain('LIS link lis in error for 3 min (EADDRINUSE)');
  });

  it('says when sending to Odoo is paused', async () => {
    const { model } = setup({ paused: true });
    await model.start();
    expect(model.toApiStatus()).toMatchObject({ relayPaused: true, health: 'degraded', healthReasons: [{ code: 'RELAY_PAUSED' }] });
  });

  it('raises an alert when a reason appears and an info alert when it clears; forwards component alerts', async () => {
    const { model, telemetry, alerts } = setup();
    await model.start();
    telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'disconnected', connections: 0 });
    telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'disconnected', connections: 0 });
    expect(alerts.filter((a) => a.code === 'ENDPOINT_DOWN')).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ severity: 'warning', endpoint: 'xn-1' });
    telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'connected', connections: 1 });
    expect(alerts.at(-1)).toMatchObject({ severity: 'info', code: 'ENDPOINT_DOWN_CLEARED', endpoint: 'xn-1' });
    telemetry.alert('critical', 'REAGENT_EXPIRED', 'lot L1 expired');
    expect(alerts.at(-1)).toMatchObject({ code: 'REAGENT_EXPIRED', message: 'lot L1 expired' });
  });

  it('batches the changes of one tick into one notification', async () => {
    const { model, telemetry } = setup();
    await model.start();
    const calls: Array<ReadonlySet<string>> = [];
    model.onChange((c) => calls.push(c));
    for (let i = 0; i < 20; i++) telemetry.emit('intake.message', { endpoint: 'xn-1', kind: 'astm', outcome: 'accepted', ackLatencyMs: 1, bytes: 1 });
    await Promise.resolve();
    expect(calls).toHaveLength(1);
    expect([...calls[0]!].sort()).toEqual(['endpoint:xn-1', 'status']);
  });

  it('stops listening to telemetry after stop()', async () => {
    const { model, telemetry } = setup();
    await model.start();
    await model.stop();
    await model.stop();
    telemetry.emit('intake.message', { endpoint: 'lis', kind: 'hl7', outcome: 'accepted', ackLatencyMs: 1, bytes: 1 });
    expect(model.endpoint('lis')!.received).toBe(0);
    expect(model.status).toBe('stopped');
  });
});

describe("a component's alert as it goes out", () => {
  /**
   * A link's alert that quotes an analyzer's patient record (a refusal naming the record it could
   * not take) went out on the MQTT alerts topic and to the tray with the patient's name, while the
   * same alert in the status (`recentAlerts`) and every reason read `***`: alerts reach every
   * subscriber of the site broker, who may not see patient data.
   */
  it('masks patient names quoted from an ASTM P record, live as in recentAlerts, and keeps the whole instruction', async () => {
    const { model, telemetry, alerts } = setup();
    await model.start();
    const instruction = ` ${"Check the analyzer's host settings and resend from its memory. ".repeat(6).trim()}`;
    telemetry.alert('warning', 'GW_ASTM_LINK', `message refused at record P|1||PID-778||Dupont^Marie^^^||19800101|F: no H record before it.${instruction}`, 'c111');
    const live = alerts.find((a) => a.code === 'GW_ASTM_LINK');
    expect(live?.message).toContain('***');
    expect(live?.message).not.toContain('Dupont');
    expect(live?.message).not.toContain('Marie');
    // The live alert is not cut to a reason's length: its instruction arrives whole.
    expect(live?.message.endsWith('resend from its memory.')).toBe(true);
    const kept = model.toApiStatus().recentAlerts.find((a) => a.code === 'GW_ASTM_LINK');
    expect(kept?.message).not.toContain('Dupont');
  });
});
