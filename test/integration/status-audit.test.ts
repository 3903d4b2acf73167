/**
 * Audit of the status surface against DESIGN.md §5 and gateway/src/status/README.md: the HTTP
 * API's filters and paging cursors on a real EventStore, operator actions, and the retained MQTT
 * topics seen by a real MQTT client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import mqtt from 'mqtt';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusServer } from '../../gateway/src/status/http-server.ts';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import { MqttStatus } from '../../gateway/src/status/mqtt-status.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import type { InboundMessage } from '../../gateway/src/store/types.ts';
import { hl7Message, makeConfig, makeDeadLetter, mosquittoSubLines, openStore, requestJson, useMosquitto, tempDir, validatedEvent, waitFor } from '../fixtures/status/harness.ts';

const TOKEN = 'audit-admin-token-51c9';

/** An HL7 message of `endpoint` with the given control id and search terms (unique dedup key). */
function message(endpoint: string, controlId: string, searchTerms: string[], n: number): InboundMessage {
  const m = hl7Message(undefined, controlId);
  return { ...m, endpoint, searchTerms, dedupKey: `${endpoint}|LIS^LAB|${controlId}|${n}` };
}

describe('status HTTP API: filters, paging and operator actions on a real store', () => {
  const tmp = tempDir('status-audit-http-');
  let store: EventStore;
  const telemetry = new Telemetry();
  let server: StatusServer;
  let base: string;

  beforeAll(async () => {
    const tokenFile = path.join(tmp.dir, 'admin.token');
    writeFileSync(tokenFile, TOKEN + '\n');
    const config = makeConfig(path.join(tmp.dir, 'data'), { status: { adminTokenFile: tokenFile } });
    store = await openStore(config.gateway.dataDir);
    server = new StatusServer({ config, store, telemetry, log: silentLogger, version: '0.0.0-audit', startedAt: new Date().toISOString(), processMetrics: false });
    await server.start();
    base = server.url();
  });

  afterAll(async () => {
    await server.stop();
    await store.close();
    tmp.cleanup();
  });

  const get = (p: string, headers: Record<string, string> = {}) => requestJson(base + p, { headers });
  const postRaw = (p: string, body: string, token?: string) =>
    requestJson(base + p, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) }, body });

  it('GET /api/messages?controlId= returns only messages with that control id, not messages whose specimen id happens to be equal', async () => {
    // LIS control ids and specimen barcodes are both plain numbers at many sites.
    await store.commit(message('lis', '70001', ['70002', 'ACC-70001'], 1), [validatedEvent('ACC-70001')]);
    await store.commit(message('lis', '70002', ['SPEC-X', 'ACC-70002'], 1), [validatedEvent('ACC-70002')]);
    const r = await get('/api/messages?controlId=70002');
    expect(r.status).toBe(200);
    expect(r.json.messages.map((m: { controlId: string }) => m.controlId)).toEqual(['70002']);
  });

  it('GET /api/messages?controlId=&endpoint= finds the message of that endpoint even when other endpoints reused the control id since', async () => {
    // ASTM analyzers restart their control ids; the LIS message with the same id is older.
    await store.commit(message('lis', 'REUSED-1', [], 0), [validatedEvent('ACC-REUSED-LIS')]);
    for (let i = 1; i <= 8; i++) await store.commit({ ...message('xn-1', 'REUSED-1', [], i), kind: 'astm' }, []);
    const all = await get('/api/messages?controlId=REUSED-1&limit=50');
    expect(all.json.messages.filter((m: { endpoint: string }) => m.endpoint === 'lis')).toHaveLength(1);
    const r = await get('/api/messages?controlId=REUSED-1&endpoint=lis&limit=1');
    expect(r.status).toBe(200);
    expect(r.json.messages.map((m: { endpoint: string; controlId: string }) => `${m.endpoint}/${m.controlId}`)).toEqual(['lis/REUSED-1']);
  });

  it('GET /api/events?state=delivered pages with the after cursor: every delivered event reachable, no page repeated', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await store.commit(hl7Message(undefined, `DLV-${i}`), [validatedEvent(`ACC-DLV-${i}`)]);
      ids.push(r.eventIds[0]!);
    }
    // Deliver them (one per partition), oldest first.
    await waitFor(async () => {
      const leases = await store.lease({ limit: 100 });
      for (const l of leases) await store.complete(l, l.events.map((e) => ({ eventId: e.event.id, outcome: 'delivered' as const })));
      const states = await Promise.all(ids.map((id) => store.getEvent(id).then((e) => e?.state)));
      return states.every((s) => s === 'delivered');
    }, 'four delivered events');

    const seen: string[] = [];
    let after: string | undefined;
    // Events delivered by earlier tests of this file are listed too: page until the end.
    for (let page = 0; page < 20; page++) {
      const r = await get(`/api/events?state=delivered&limit=2${after ? `&after=${encodeURIComponent(after)}` : ''}`);
      expect(r.status).toBe(200);
      const pageIds = r.json.events.map((e: { event: { id: string } }) => e.event.id) as string[];
      if (pageIds.length === 0) break;
      for (const id of pageIds) expect(seen, `event ${id} listed twice while paging`).not.toContain(id);
      seen.push(...pageIds);
      after = pageIds.at(-1);
    }
    expect(seen).toEqual(expect.arrayContaining(ids));
    expect(seen).toHaveLength(store.stats().delivered);
  });

  it('replay and discard: wrong states are 409 with a reason, unknown ids 404, bad JSON 400, and the status counts follow the store', async () => {
    const { eventId } = await makeDeadLetter(store, 'AUD-DEAD-1');
    // The model polls the store's counters every second.
    const before = await waitFor(async () => {
      const j = (await get('/api/status')).json;
      return j.queue.deadLettered === store.stats().deadLettered && j.queue.pending === store.stats().pending ? j : undefined;
    }, 'status caught up with the store');

    // Malformed JSON body with a valid token: a clear 400, nothing changes.
    const bad = await postRaw(`/api/events/${eventId}/discard`, '{"reason": "oops"', TOKEN);
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatch(/JSON/);
    const arr = await postRaw(`/api/events/${eventId}/discard`, '["reason"]', TOKEN);
    expect(arr.status).toBe(400);
    expect((await store.getEvent(eventId))?.state).toBe('dead');

    // Unknown event id: 404 with a body naming the problem.
    const unknown = await postRaw('/api/events/00000000-nope/discard', JSON.stringify({ reason: 'x' }), TOKEN);
    expect(unknown.status).toBe(404);
    expect(unknown.json.error).toMatch(/no event/);
    expect((await get('/api/events/00000000-nope')).status).toBe(404);

    const replayed = await postRaw(`/api/events/${eventId}/replay`, JSON.stringify({ reason: 'mapping fixed' }), TOKEN);
    expect(replayed.status).toBe(200);
    // A second replay of the same event: it is no longer a dead letter.
    const again = await postRaw(`/api/events/${eventId}/replay`, JSON.stringify({ reason: 'again' }), TOKEN);
    expect(again.status).toBe(409);
    expect(again.json.error).toMatch(/only dead letters/);

    const after = (await get('/api/status')).json;
    expect(after.queue.deadLettered).toBe(before.queue.deadLettered - 1);
    expect(after.queue.pending).toBe(before.queue.pending + 1);

    // Deliver it, then a discard must be refused: a delivered event is in Odoo.
    await waitFor(async () => {
      const leases = await store.lease({ limit: 100 });
      for (const l of leases) await store.complete(l, l.events.map((e) => ({ eventId: e.event.id, outcome: 'delivered' as const })));
      return (await store.getEvent(eventId))?.state === 'delivered';
    }, 'the replayed event delivered');
    const discardDelivered = await postRaw(`/api/events/${eventId}/discard`, JSON.stringify({ reason: 'duplicate' }), TOKEN);
    expect(discardDelivered.status).toBe(409);
    const audit = await server.auditLog.read();
    expect(audit.filter((a) => a.target === eventId).map((a) => `${a.action}:${a.outcome}`)).toEqual(['replay:ok', 'replay:failed', 'discard:failed']);
  });

  it('concurrent replays of one dead letter: exactly one succeeds, the counts move once', async () => {
    const { eventId } = await makeDeadLetter(store, 'AUD-DEAD-CONC');
    const before = store.stats();
    const results = await Promise.all(
      Array.from({ length: 5 }, () => postRaw(`/api/events/${eventId}/replay`, JSON.stringify({ reason: 'retry after fix' }), TOKEN)),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 409, 409, 409, 409]);
    const s = (await get('/api/status')).json;
    expect(s.queue.deadLettered).toBe(before.deadLettered - 1);
    expect(s.queue.pending).toBe(before.pending + 1);
  });

  it('query parameters: bad limits and filters are a 400 naming the parameter, an oversized body is 413', async () => {
    for (const p of ['/api/events?limit=0', '/api/events?limit=-1', '/api/events?limit=2.5', '/api/messages?limit=ten']) {
      const r = await get(p);
      expect(r.status, p).toBe(400);
      expect(r.json.error, p).toMatch(/limit/);
    }
    const t = await get('/api/events?type=order.bogus');
    expect(t.status).toBe(400);
    expect(t.json.error).toMatch(/type/);
    const big = await postRaw('/api/relay/pause', JSON.stringify({ reason: 'x'.repeat(20_000) }), TOKEN);
    expect(big.status).toBe(413);
    expect(big.json.error).toMatch(/larger than/);
  });

  it('an unknown method is 405 with an Allow header', async () => {
    const { status, allow } = await new Promise<{ status: number; allow: string | undefined }>((resolve, reject) => {
      const u = new URL(base + '/api/status');
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'DELETE' }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, allow: res.headers.allow });
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(405);
    expect(allow).toMatch(/GET/);
  });
});

describe('queue age on a store whose only undelivered event is a dead letter', () => {
  const tmp = tempDir('status-audit-age-');
  let store: EventStore;
  let model: StatusModel;
  let server: StatusServer;

  beforeAll(async () => {
    const config = makeConfig(path.join(tmp.dir, 'data'));
    store = await openStore(config.gateway.dataDir);
    const telemetry = new Telemetry();
    // Stale after 0 s: any event really waiting for Odoo would show at once.
    model = new StatusModel({ config, store, telemetry, version: 't', startedAt: new Date().toISOString(), staleQueueSeconds: 0 });
    server = new StatusServer({ config, store, telemetry, log: silentLogger, version: 't', startedAt: new Date().toISOString(), model, processMetrics: false });
    await server.start();
  });

  afterAll(async () => {
    await server.stop();
    await model.stop();
    await store.close();
    tmp.cleanup();
  });

  it('oldestPendingAgeSeconds is 0 and QUEUE_STALE absent when nothing waits for Odoo (pending, retrying and inFlight all 0)', async () => {
    await makeDeadLetter(store, 'AGE-DEAD-1');
    // Let the dead letter grow older than a second.
    await new Promise((r) => setTimeout(r, 2100));
    model.poll(); // read the store's counters now rather than at the next tick
    const s = (await (await fetch(server.url() + '/api/status')).json()) as any; // asserted below
    expect(s.queue.deadLettered).toBe(1);
    expect({ pending: s.queue.pending, retrying: s.queue.retrying, inFlight: s.queue.inFlight }).toEqual({ pending: 0, retrying: 0, inFlight: 0 });
    expect(s.healthReasons.map((r: { code: string }) => r.code)).toContain('DEAD_LETTERS');
    expect(s.queue.oldestPendingAgeSeconds).toBe(0);
    expect(s.healthReasons.map((r: { code: string }) => r.code)).not.toContain('QUEUE_STALE');
    const metrics = await (await fetch(server.url() + '/metrics')).text();
    expect(metrics).toMatch(/^lab_gateway_queue_oldest_pending_age_seconds\{[^}]*\} 0$/m);
  });
});

describe('/api/status across a restart of the gateway', () => {
  const tmp = tempDir('status-audit-restart-');
  afterAll(() => tmp.cleanup());

  async function run<T>(fn: (ctx: { base: string; store: EventStore; telemetry: Telemetry }) => Promise<T>): Promise<T> {
    const config = makeConfig(path.join(tmp.dir, 'data'));
    const store = await openStore(config.gateway.dataDir);
    const telemetry = new Telemetry();
    const server = new StatusServer({ config, store, telemetry, log: silentLogger, version: 't', startedAt: new Date().toISOString(), processMetrics: false });
    await server.start();
    try {
      return await fn({ base: server.url(), store, telemetry });
    } finally {
      await server.stop();
      await store.close();
    }
  }
  const status = async (base: string) => (await (await fetch(base + '/api/status')).json()) as any; // asserted below

  it('the intake counts and the LIS link\'s lastMessageAt still show the last stored message after the restart', async () => {
    const first = await run(async ({ base, store, telemetry }) => {
      // As ingress does: commit, then report the answered message.
      await store.commit(hl7Message(undefined, 'RESTART-1'), [validatedEvent('ACC-RESTART-1')]);
      telemetry.emit('intake.message', { endpoint: 'lis', kind: 'hl7', outcome: 'accepted', ackLatencyMs: 2, bytes: 180 });
      const s = await waitFor(async () => {
        const j = await status(base);
        return j.intake.accepted === 1 ? j : undefined;
      }, 'the accepted message in the status');
      return { intake: s.intake, lis: s.endpoints.find((e: { id: string }) => e.id === 'lis') };
    });
    expect(first.lis.lastMessageAt).not.toBeNull();

    await run(async ({ base }) => {
      const s = await status(base);
      expect(s.intake).toEqual(first.intake);
      const stored = (await (await fetch(base + '/api/messages?endpoint=lis&limit=1')).json()) as { messages: Array<{ receivedAt: string }> };
      expect(stored.messages).toHaveLength(1);
      // The store still holds the message: the link did get a message, it is not "never".
      expect(s.endpoints.find((e: { id: string }) => e.id === 'lis').lastMessageAt).not.toBeNull();
    });
  });
});

/** A mosquitto_sub child collecting "topic<TAB>retain<TAB>payload" lines until it exits. */

describe('retained MQTT topics on an external broker (stop, configuration change)', () => {
  const broker = useMosquitto('status-audit-mqtt-');
  const tmp = { dir: broker.dir };

  async function runGateway(dataDir: string, withAnalyzer: boolean, during: (tel: Telemetry) => Promise<void>): Promise<void> {
    const config = makeConfig(dataDir, { id: 'lab-cfg', mqtt: { broker: `mqtt://127.0.0.1:${broker.port}` } });
    if (!withAnalyzer) config.analyzers = [];
    const tel = new Telemetry();
    const store = await openStore(config.gateway.dataDir);
    const model = new StatusModel({ config, store, telemetry: tel, version: 't', startedAt: new Date().toISOString() });
    const mq = new MqttStatus({ config, model, log: silentLogger });
    await mq.start();
    try {
      await during(tel);
    } finally {
      await mq.stop();
      await model.stop();
      await store.close();
    }
  }

  it('a graceful stop leaves no endpoint topic retained as connected once the endpoint stopped', async () => {
    const dataDir = path.join(tmp.dir, 'data-stop');
    const config = makeConfig(dataDir, { id: 'lab-stopep', mqtt: { broker: `mqtt://127.0.0.1:${broker.port}` } });
    const tel = new Telemetry();
    const store = await openStore(config.gateway.dataDir);
    const model = new StatusModel({ config, store, telemetry: tel, version: 't', startedAt: new Date().toISOString() });
    const mq = new MqttStatus({ config, model, log: silentLogger });
    await mq.start();
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { reconnectPeriod: 0 });
    const seen = new Map<string, any>(); // latest payload per topic; shapes asserted below
    client.on('message', (topic, payload) => seen.set(topic, JSON.parse(payload.toString())));
    await client.subscribeAsync('lab-gateway/lab-stopep/#', { qos: 1 });
    tel.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'connected', connections: 1 });
    await waitFor(() => seen.get('lab-gateway/lab-stopep/endpoints/xn-1')?.state === 'connected', 'xn-1 connected');
    await client.endAsync();
    // Gateway.stop(): ingress first (the analyzer link closes), then the status model, then MQTT.
    tel.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'stopped', connections: 0 });
    await new Promise((r) => setImmediate(r));
    await model.stop();
    await mq.stop();
    await store.close();
    const lines = await mosquittoSubLines(broker.port, 'lab-gateway/lab-stopep/#', ['-C', '4', '-W', '3', '--retained-only']);
    const byTopic = new Map(lines.map((l) => [l.topic, JSON.parse(l.payload)]));
    expect(byTopic.get('lab-gateway/lab-stopep/availability')).toMatchObject({ state: 'offline' });
    const final = byTopic.get('lab-gateway/lab-stopep/status');
    expect(final.endpoints.find((e: { id: string }) => e.id === 'xn-1')).toMatchObject({ state: 'stopped', connections: 0 });
    // The endpoint topic must agree with the final status, not show the analyzer still connected.
    expect(byTopic.get('lab-gateway/lab-stopep/endpoints/xn-1')).toMatchObject({ state: 'stopped', connections: 0 });
  });

  it('an analyzer removed from the configuration is no longer retained as an endpoint after the restart', async () => {
    const dataDir = path.join(tmp.dir, 'data');
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { reconnectPeriod: 0 });
    const seen = new Map<string, any>(); // latest payload per topic; shapes asserted below
    client.on('message', (topic, payload) => seen.set(topic, JSON.parse(payload.toString())));
    await client.subscribeAsync('lab-gateway/lab-cfg/endpoints/+', { qos: 1 });
    await runGateway(dataDir, true, async (tel) => {
      tel.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'connected', connections: 1 });
      await waitFor(() => seen.get('lab-gateway/lab-cfg/endpoints/xn-1')?.state === 'connected', 'xn-1 connected');
    });
    await client.endAsync();
    // The site takes the analyzer out of service and restarts the gateway without it.
    await runGateway(dataDir, false, async () => {
      const lines = await mosquittoSubLines(broker.port, 'lab-gateway/lab-cfg/endpoints/+', ['-C', '2', '-W', '2', '--retained-only']);
      const retained = lines.filter((l) => l.retained && l.payload !== '').map((l) => l.topic);
      expect(retained).toContain('lab-gateway/lab-cfg/endpoints/lis');
      expect(retained).not.toContain('lab-gateway/lab-cfg/endpoints/xn-1');
    });
  });
});
