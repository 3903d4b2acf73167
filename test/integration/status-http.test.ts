import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { tokenId } from '../../gateway/src/status/admin-audit.ts';
import { hl7Message, makeConfig, makeDeadLetter, relayStandIn, series, useStatusServer, validatedEvent, waitFor, writeAdminToken } from '../fixtures/status/harness.ts';

const TOKEN = 'test-admin-token-7f3a';

describe('HTTP status API (DESIGN.md §5) on a real EventStore', () => {
  const relay = relayStandIn();
  const rig = useStatusServer('status-http-', {
    config: (dir) => makeConfig(path.join(dir, 'data'), { status: { adminTokenFile: writeAdminToken(dir, TOKEN) } }),
    server: () => ({ version: '0.1.0-test', startedAt: '2026-01-01T00:00:00.000Z', relayControl: relay }),
  });
  const telemetry = rig.telemetry;

  const get = async (p: string, headers: Record<string, string> = {}) => {
    const r = await fetch(rig.url + p, { headers });
    const text = await r.text();
    let json: any; // parsed JSON of any shape: the assertions check it
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: r.status, json, text, headers: r.headers };
  };
  const post = async (p: string, body: unknown, token?: string) => {
    const r = await fetch(rig.url + p, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    return { status: r.status, json: (await r.json()) as any }; // response shape asserted below
  };

  it('GET /api/status has exactly the contract fields, with the right types', async () => {
    const { status, json } = await get('/api/status');
    expect(status).toBe(200);
    for (const k of ['gatewayId', 'version', 'startedAt', 'health', 'intake', 'queue', 'odoo', 'endpoints']) expect(json).toHaveProperty(k);
    expect(json.gatewayId).toBe('lab-test');
    expect(json.version).toBe('0.1.0-test');
    expect(json.startedAt).toBe('2026-01-01T00:00:00.000Z');
    expect(['ok', 'degraded', 'down']).toContain(json.health);
    expect(Object.keys(json.intake).sort()).toEqual(['accepted', 'duplicates', 'received', 'rejected']);
    expect(Object.keys(json.queue).sort()).toEqual(['deadLettered', 'delivered', 'inFlight', 'oldestPendingAgeSeconds', 'pending', 'retrying']);
    expect(Object.keys(json.odoo).sort()).toEqual(['lastError', 'lastSuccessAt', 'state']);
    expect(json.odoo.state).toBe('sandbox');
    expect(json.endpoints.map((e: { id: string }) => e.id)).toEqual(['lis', 'xn-1']);
    for (const e of json.endpoints) expect(Object.keys(e).sort()).toEqual(['connections', 'id', 'kind', 'lastMessageAt', 'state']);
    expect(json.endpoints[1].kind).toBe('astm');
  });

  it('reflects telemetry: an analyzer that disconnects turns health degraded with the reason in words', async () => {
    telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'connected', connections: 1 });
    let s = (await get('/api/status')).json;
    expect(s.endpoints.find((e: { id: string }) => e.id === 'xn-1')).toMatchObject({ state: 'connected', connections: 1 });
    telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'disconnected', connections: 0, detail: 'cable unplugged' });
    s = (await get('/api/status')).json;
    expect(s.health).toBe('degraded');
    expect(s.healthReasons.map((r: { message: string }) => r.message).join(' ')).toMatch(/Analyzer xn-1 disconnected.*cable unplugged/);
    telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'connected', connections: 1 });
  });

  it('GET /api/messages finds a committed message by control id and by specimen', async () => {
    await rig.store.commit(hl7Message(undefined, 'MSG-A1'), [validatedEvent('ACC-MSG-A1')]);
    const byControl = await get('/api/messages?controlId=MSG-A1');
    expect(byControl.status).toBe(200);
    expect(byControl.json.messages).toHaveLength(1);
    expect(byControl.json.messages[0].controlId).toBe('MSG-A1');
    const bySearch = await get('/api/messages?q=SPEC-MSG-A1');
    expect(bySearch.json.messages.map((m: { controlId: string }) => m.controlId)).toContain('MSG-A1');
    expect((await get('/api/messages?limit=abc')).status).toBe(400);
  });

  it('GET /api/messages/:id masks patient names; reveal needs the admin token and is audited', async () => {
    const id = (await get('/api/messages?controlId=MSG-A1')).json.messages[0].id;
    const masked = await get(`/api/messages/${id}`);
    expect(masked.status).toBe(200);
    expect(masked.json.namesMasked).toBe(true);
    expect(masked.json.raw).not.toContain('DOE');
    expect(masked.json.raw).toContain('PID|1||MRN123^^^LAB^MR||***||19800101|F');
    expect(masked.json.events).toHaveLength(1);
    expect(masked.json.ack).toContain('MSA|AA|MSG-A1');
    expect((await get(`/api/messages/${id}?reveal=1`)).status).toBe(401);
    const revealed = await get(`/api/messages/${id}?reveal=1&reason=identify%20sample`, { Authorization: `Bearer ${TOKEN}` });
    expect(revealed.status).toBe(200);
    expect(revealed.json.raw).toContain('DOE^JANE^Q');
    const audit = await rig.server.auditLog.read();
    expect(audit.find((a) => a.action === 'reveal-names' && a.target === id && a.outcome === 'ok')).toMatchObject({ reason: 'identify sample' });
    expect(audit.find((a) => a.action === 'reveal-names' && a.outcome === 'refused')).toBeDefined();
  });

  it('replay of a dead letter needs the admin token, is audited in the file and in the event', async () => {
    const { eventId } = await makeDeadLetter(rig.store, 'DEAD-1');
    const dead = await get('/api/events?state=dead');
    expect(dead.status).toBe(200);
    expect(dead.json.events.map((e: { event: { id: string } }) => e.event.id)).toContain(eventId);
    expect((await get('/api/events?state=bogus')).status).toBe(400);

    expect((await post(`/api/events/${eventId}/replay`, { reason: 'fixed mapping' })).status).toBe(401);
    expect((await post(`/api/events/${eventId}/replay`, { reason: 'x' }, 'wrong-token')).status).toBe(401);
    const ok = await post(`/api/events/${eventId}/replay`, { reason: 'fixed mapping' }, TOKEN);
    expect(ok.status).toBe(200);
    expect(ok.json.state).not.toBe('dead');
    const actor = `token:${tokenId(TOKEN)}@`;
    expect(ok.json.audit.at(-1)).toMatchObject({ action: 'replay', reason: 'fixed mapping' });
    expect(ok.json.audit.at(-1).actor.startsWith(actor)).toBe(true);
    const entries = await rig.server.auditLog.read();
    const entry = entries.find((a) => a.action === 'replay' && a.target === eventId && a.outcome === 'ok');
    expect(entry?.actor.startsWith(actor)).toBe(true);
    expect(entry?.reason).toBe('fixed mapping');
    expect(Date.parse(entry!.at)).toBeGreaterThan(0);
  });

  it('discard needs a reason; an unknown event is 404', async () => {
    const { eventId } = await makeDeadLetter(rig.store, 'DEAD-2');
    expect((await post(`/api/events/${eventId}/discard`, {}, TOKEN)).status).toBe(400);
    const ok = await post(`/api/events/${eventId}/discard`, { reason: 'test order, never billed' }, TOKEN);
    expect(ok.status).toBe(200);
    expect(ok.json.state).toBe('discarded');
    expect((await post('/api/events/nope/replay', { reason: 'x' }, TOKEN)).status).toBe(404);
    expect((await get('/api/events/%E0%A4%A')).status).toBe(400);
    expect((await get('/api/messages/does-not-exist')).status).toBe(404);
  });

  it('relay pause/resume goes through relayControl, shows in the status and is audited', async () => {
    expect((await post('/api/relay/pause', { reason: 'Odoo maintenance' })).status).toBe(401);
    const r = await post('/api/relay/pause', { reason: 'Odoo maintenance' }, TOKEN);
    expect(r.json.paused).toBe(true);
    expect(relay.paused).toBe(true);
    const s = (await get('/api/status')).json;
    expect(s.relayPaused).toBe(true);
    expect(s.healthReasons.map((x: { code: string }) => x.code)).toContain('RELAY_PAUSED');
    expect((await post('/api/relay/resume', {}, TOKEN)).json.paused).toBe(false);
    const actions = (await rig.server.auditLog.read()).map((a) => a.action);
    expect(actions).toEqual(expect.arrayContaining(['relay-pause', 'relay-resume']));
  });

  it('GET /metrics is Prometheus text with intake, ACK latency, queue and relay series', async () => {
    telemetry.emit('intake.message', { endpoint: 'lis', kind: 'hl7', outcome: 'accepted', ackLatencyMs: 3, bytes: 200 });
    telemetry.emit('relay.outcome', { eventId: 'e1', eventType: 'result.validated', outcome: 'delivered', latencyMs: 40 });
    telemetry.emit('odoo.request', { model: 'sale.order', method: 'load', latencyMs: 35, ok: true });
    const { status, text, headers } = await get('/metrics');
    expect(status).toBe(200);
    expect(headers.get('content-type')).toMatch(/text\/plain/);
    expect(text).toMatch(/^# TYPE lab_gateway_intake_messages_total counter$/m);
    expect(series(text, 'lab_gateway_intake_messages_total', { endpoint: 'lis', kind: 'hl7', outcome: 'accepted', gateway: 'lab-test' })).toBe(1);
    expect(series(text, 'lab_gateway_ack_latency_seconds_bucket', { le: '0.005', endpoint: 'lis' })).toBe(1);
    expect(series(text, 'lab_gateway_ack_latency_seconds_bucket', { le: '0.001', endpoint: 'lis' })).toBe(0);
    expect(series(text, 'lab_gateway_queue_events', { state: 'discarded' })).toBe(1);
    expect(series(text, 'lab_gateway_relay_outcomes_total', { outcome: 'delivered', event_type: 'result.validated' })).toBe(1);
    expect(series(text, 'lab_gateway_odoo_request_seconds_count', { model: 'sale.order', method: 'load', ok: 'true' })).toBe(1);
    expect(series(text, 'lab_gateway_store_up', {})).toBe(1);
  });

  it('serves the status page with a strict content security policy', async () => {
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.text).toContain('page.js');
    expect((await get('/page.js')).status).toBe(200);
    expect((await get('/nope')).status).toBe(404);
  });

  it('slows down token guessing: after 10 wrong tokens from one address, 429 even for the right one', async () => {
    // Earlier tests sent a few wrong tokens from this address too; keep going until the limit hits.
    let status = 0;
    for (let i = 0; i < 12 && status !== 429; i++) status = (await post('/api/relay/pause', {}, `guess-${i}`)).status;
    expect(status).toBe(429);
    expect((await post('/api/relay/pause', {}, TOKEN)).status).toBe(429);
    // Refusals are appended to the audit log in the background of the 401.
    const refused = await waitFor(async () => {
      const r = (await rig.server.auditLog.read()).filter((a) => a.outcome === 'refused');
      return r.length >= 10 ? r : undefined;
    }, 'refusals in the audit log');
    expect(refused.every((a) => a.actor.startsWith('anonymous@'))).toBe(true);
  });

  it('GET /healthz is 200 while the store commits and 503 once it cannot', async () => {
    expect((await get('/healthz')).status).toBe(200);
    rig.store.simulateWriteFailure(new Error('EIO: injected write failure'));
    try {
      const r = await get('/healthz');
      expect(r.status).toBe(503);
      expect(r.json.store).toBe('failed');
      const s = await waitFor(async () => {
        const j = (await get('/api/status')).json;
        return j.health === 'down' ? j : undefined;
      }, 'health down');
      expect(s.healthReasons[0].message).toMatch(/Not accepting messages: the store cannot commit: .*EIO/);
    } finally {
      rig.store.simulateWriteFailure(undefined);
    }
  });
});
