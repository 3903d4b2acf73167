import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { isGatewayError } from '../../gateway/src/errors.ts';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import { MqttStatus } from '../../gateway/src/status/mqtt-status.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { trayIcon, trayTooltip, type TrayStatus } from '../../desktop/src/tray-state.ts';
import { freePort, makeConfig, mosquittoSub, mosquittoSubLines, openStore, useMosquitto, tempDir, waitFor } from '../fixtures/status/harness.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHILD = path.resolve(here, '../fixtures/status/mqtt-gateway-child.ts');

function startChild(dataDir: string, broker: string, gatewayId: string): Promise<{ proc: ChildProcess; port: number | null }> {
  const proc = spawn(process.execPath, [CHILD, dataDir, broker, gatewayId], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const t = setTimeout(() => reject(new Error(`child not ready: ${err}`)), 20_000);
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        clearTimeout(t);
        resolve({ proc, port: (JSON.parse(line) as { port: number | null }).port });
      }
    });
    proc.once('exit', (code) => reject(new Error(`child exited ${code}: ${err}`)));
  });
}

describe('MQTT status with the embedded broker (aedes)', () => {
  const tmp = tempDir('status-mqtt-');
  let store: EventStore;
  const telemetry = new Telemetry();
  let model: StatusModel;
  let mq: MqttStatus;
  let port: number;

  beforeAll(async () => {
    const config = makeConfig(path.join(tmp.dir, 'data'), { id: 'lab-mq', mqtt: { publishIntervalMs: 60_000 } });
    store = await openStore(config.gateway.dataDir);
    model = new StatusModel({ config, store, telemetry, version: 't', startedAt: new Date().toISOString() });
    mq = new MqttStatus({ config, model, log: silentLogger });
    await mq.start();
    port = mq.broker!.address().port;
    expect(mq.broker!.address().host).toBe('127.0.0.1');
  });

  afterAll(async () => {
    await mq.stop();
    await model.stop();
    await store.close();
    tmp.cleanup();
  });

  it('mosquitto_sub sees the retained status, availability and endpoint topics', async () => {
    const sub = mosquittoSub(port, 'lab-gateway/lab-mq/#', ['-C', '4', '-W', '10']);
    await new Promise((r) => sub.proc.once('exit', r));
    const byTopic = new Map(sub.lines.map((l) => [l.topic, l]));
    expect([...byTopic.keys()].sort()).toEqual(['lab-gateway/lab-mq/availability', 'lab-gateway/lab-mq/endpoints/lis', 'lab-gateway/lab-mq/endpoints/xn-1', 'lab-gateway/lab-mq/status']);
    for (const l of sub.lines) expect(l.retained).toBe(true);
    const status = JSON.parse(byTopic.get('lab-gateway/lab-mq/status')!.payload);
    for (const k of ['gatewayId', 'version', 'startedAt', 'health', 'intake', 'queue', 'odoo', 'endpoints']) expect(status).toHaveProperty(k);
    expect(status.gatewayId).toBe('lab-mq');
    expect(JSON.parse(byTopic.get('lab-gateway/lab-mq/availability')!.payload)).toMatchObject({ state: 'online' });
    expect(JSON.parse(byTopic.get('lab-gateway/lab-mq/endpoints/xn-1')!.payload)).toMatchObject({ id: 'xn-1', kind: 'astm', role: 'analyzer' });
  });

  // The alerts topic is retained (DESIGN.md §5; status-alerts-retained-audit.test.ts): a client
  // subscribed when an alert is raised still gets it live, with RETAIN 0 (MQTT 3.1.1 §3.3.1.3).
  it('an mqtt client sees a live state change on the status topic and a live alert (RETAIN 0)', async () => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`);
    const statuses: Array<{ health: string; healthReasons: Array<{ code: string; message: string }> }> = [];
    const alerts: Array<{ payload: { code: string; message: string }; retain: boolean }> = [];
    client.on('message', (topic, payload, packet) => {
      if (topic.endsWith('/status')) statuses.push(JSON.parse(payload.toString()));
      if (topic.endsWith('/alerts')) alerts.push({ payload: JSON.parse(payload.toString()), retain: packet.retain });
    });
    await client.subscribeAsync(['lab-gateway/lab-mq/status', 'lab-gateway/lab-mq/alerts'], { qos: 1 });
    await waitFor(() => statuses.length > 0, 'retained status');
    telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'disconnected', connections: 0 });
    const degraded = await waitFor(() => statuses.find((s) => s.health === 'degraded'), 'degraded status');
    expect(degraded.healthReasons.map((r) => r.code)).toContain('ENDPOINT_DOWN');
    const alert = await waitFor(() => alerts.find((a) => a.payload.code === 'ENDPOINT_DOWN'), 'endpoint alert');
    expect(alert.retain).toBe(false);
    expect(alert.payload.message).toMatch(/Analyzer xn-1 disconnected/);
    telemetry.alert('critical', 'TEST_ALERT', 'reagent lot expired');
    expect((await waitFor(() => alerts.find((a) => a.payload.code === 'TEST_ALERT'), 'component alert')).payload.message).toBe('reagent lot expired');
    telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'connected', connections: 1 });
    await waitFor(() => statuses.at(-1)?.health === 'ok', 'ok again');
    await client.endAsync();
  });

  it('coalesces a burst of changes into a few publishes', async () => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`);
    // The retained copy comes with the subscription (RETAIN 1), the publishes counted come live
    // (RETAIN 0; MQTT 3.1.1 §3.3.1.3).
    let retained = 0;
    let count = 0;
    client.on('message', (_topic, _payload, packet) => (packet.retain ? retained++ : count++));
    await client.subscribeAsync('lab-gateway/lab-mq/status', { qos: 1 });
    await waitFor(() => retained > 0, 'the retained copy');
    for (let i = 0; i < 200; i++) telemetry.emit('intake.message', { endpoint: 'lis', kind: 'hl7', outcome: 'accepted', ackLatencyMs: 1, bytes: 100 });
    await waitFor(() => count > 0, 'a status publish');
    await new Promise((r) => setTimeout(r, 700));
    expect(count).toBeGreaterThanOrEqual(1);
    expect(count).toBeLessThanOrEqual(4);
    await client.endAsync();
  });

  it('subscribers cannot publish on the gateway topics', async () => {
    // The broker refuses a subscriber's publish by closing its connection.
    const tryPublish = async (topic: string, payload: string): Promise<boolean> => {
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
      const closed = new Promise<boolean>((r) => client.once('close', () => r(true)));
      await client.publishAsync(topic, payload, { qos: 0, retain: true }).catch(() => {});
      const refused = await Promise.race([closed, new Promise<boolean>((r) => setTimeout(() => r(false), 5_000))]);
      await client.endAsync(true);
      return refused;
    };
    // The status topic (which the gateway might overwrite soon after, hiding a spoof) and a topic
    // of its tree it never writes: a retained copy there can only come from the subscriber.
    const refused = [await tryPublish('lab-gateway/lab-mq/status', '{"health":"ok","spoofed":true}'), await tryPublish('lab-gateway/lab-mq/spoof', '{"spoofed":true}')];
    const lines = await mosquittoSubLines(port, 'lab-gateway/lab-mq/#', ['-W', '2', '--retained-only']);
    const topics = lines.map((l) => l.topic);
    expect(topics, 'the subscription saw the retained tree').toContain('lab-gateway/lab-mq/status');
    expect(topics).not.toContain('lab-gateway/lab-mq/spoof');
    expect(lines.filter((l) => l.payload.includes('spoofed'))).toEqual([]);
    expect(refused, 'the broker closed each publishing subscriber').toEqual([true, true]);
  });

  it('re-publishes the retained status every mqtt.publishIntervalMs even without changes', async () => {
    const config = makeConfig(path.join(tmp.dir, 'data'), { id: 'lab-interval', mqtt: { publishIntervalMs: 200 } });
    const quietModel = new StatusModel({ config, store, telemetry: new Telemetry(), version: 't', startedAt: new Date().toISOString() });
    const periodic = new MqttStatus({ config, model: quietModel, log: silentLogger });
    await periodic.start();
    try {
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${periodic.broker!.address().port}`);
      // Only live publishes count: the retained copy that comes with the subscription is not one.
      let count = 0;
      let retained = 0;
      client.on('message', (_topic, _payload, packet) => (packet.retain ? retained++ : count++));
      await client.subscribeAsync('lab-gateway/lab-interval/status', { qos: 1 });
      // Nothing changes in this model: with the default interval (30 s) none would come in 5 s.
      await waitFor(() => count >= 3, 'periodic status publishes', 5000);
      expect(count).toBeGreaterThanOrEqual(3);
      expect(retained).toBe(1);
      await client.endAsync();
    } finally {
      await periodic.stop();
      await quietModel.stop();
    }
  });

  it('refuses to listen beyond loopback without credentials, naming the key', async () => {
    const config = makeConfig(path.join(tmp.dir, 'data'), { mqtt: { listen: { host: '0.0.0.0', port: 0 } } });
    const other = new MqttStatus({ config, model, log: silentLogger });
    const err = await other.start().then(() => undefined, (e: unknown) => e);
    expect(isGatewayError(err, 'GW_CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toMatch(/mqtt\.usernameFile/);
    await other.stop();
  });

  it('with credentials beyond loopback: anonymous clients are refused, the configured user reads the status', async () => {
    writeFileSync(path.join(tmp.dir, 'mq.user'), 'tray\n');
    writeFileSync(path.join(tmp.dir, 'mq.pass'), 's3cret-pass\n');
    const config = makeConfig(path.join(tmp.dir, 'data'), {
      id: 'lab-auth',
      mqtt: { listen: { host: '0.0.0.0', port: 0 }, usernameFile: path.join(tmp.dir, 'mq.user'), passwordFile: path.join(tmp.dir, 'mq.pass') },
    });
    const authModel = new StatusModel({ config, store, telemetry, version: 't', startedAt: new Date().toISOString() });
    const secured = new MqttStatus({ config, model: authModel, log: silentLogger });
    await secured.start();
    try {
      const p = secured.broker!.address().port;
      const anon = await mqtt.connectAsync(`mqtt://127.0.0.1:${p}`, { reconnectPeriod: 0 }).then(
        (c) => c,
        (e: Error) => e,
      );
      expect(anon).toBeInstanceOf(Error);
      const wrong = mosquittoSub(p, 'lab-gateway/lab-auth/status', ['-u', 'tray', '-P', 'nope', '-C', '1', '-W', '5']);
      const wrongCode = await new Promise((r) => wrong.proc.once('exit', r));
      expect(wrongCode).not.toBe(0);
      const sub = mosquittoSub(p, 'lab-gateway/lab-auth/status', ['-u', 'tray', '-P', 's3cret-pass', '-C', '1', '-W', '10']);
      await new Promise((r) => sub.proc.once('exit', r));
      expect(JSON.parse(sub.lines[0]!.payload).gatewayId).toBe('lab-auth');
    } finally {
      await secured.stop();
      await authModel.stop();
    }
  });
});

describe('MQTT status with an external Mosquitto broker', () => {
  const broker = useMosquitto('status-mosq-');
  const tmp = { dir: broker.dir };

  it('kill -9 of the gateway: subscribers get the Last Will "offline"', async () => {
    const sub = mosquittoSub(broker.port, 'lab-gateway/lab-ext/availability', ['-q', '1']);
    const child = await startChild(path.join(tmp.dir, 'd1'), `mqtt://127.0.0.1:${broker.port}`, 'lab-ext');
    await waitFor(() => sub.lines.find((l) => JSON.parse(l.payload).state === 'online'), 'online');
    const status = mosquittoSub(broker.port, 'lab-gateway/lab-ext/status', ['-C', '1', '-W', '10']);
    await new Promise((r) => status.proc.once('exit', r));
    expect(JSON.parse(status.lines[0]!.payload)).toMatchObject({ gatewayId: 'lab-ext', online: true });
    child.proc.kill('SIGKILL');
    const will = await waitFor(() => sub.lines.find((l) => JSON.parse(l.payload).state === 'offline'), 'Last Will offline', 20_000);
    expect(JSON.parse(will.payload)).toMatchObject({ gatewayId: 'lab-ext', state: 'offline' });
    sub.stop();
    // The will is retained: a subscriber arriving later still sees the gateway offline.
    const late = mosquittoSub(broker.port, 'lab-gateway/lab-ext/availability', ['-C', '1', '-W', '10']);
    await new Promise((r) => late.proc.once('exit', r));
    expect(late.lines[0]).toMatchObject({ retained: true });
    expect(JSON.parse(late.lines[0]!.payload).state).toBe('offline');
  });

  // What a site's dashboard showed: it reads only the retained `endpoints/<id>` topics (one tile
  // per analyzer). The gateway was killed (kill -9, a power cut) on Friday evening; on Monday the
  // broker still handed out "xn-1 connected" and nothing in the payload said from when, so the
  // tile showed a live analyzer for a whole weekend. Broke: a retained state a subscriber cannot
  // date is indistinguishable from the current one (MQTT topics, DESIGN.md §5; additive field
  // `generatedAt`, re-published every `mqtt.publishIntervalMs`).
  it('kill -9 of the gateway: the retained endpoint topics say when they were published', async () => {
    const before = Date.now();
    const child = await startChild(path.join(tmp.dir, 'd3'), `mqtt://127.0.0.1:${broker.port}`, 'lab-stale');
    const killedAt = Date.now();
    child.proc.kill('SIGKILL');
    await new Promise((r) => child.proc.once('exit', r));
    const lines = await mosquittoSubLines(broker.port, 'lab-gateway/lab-stale/endpoints/+', ['-C', '2', '-W', '10']);
    expect(lines.map((l) => l.topic).sort()).toEqual(['lab-gateway/lab-stale/endpoints/lis', 'lab-gateway/lab-stale/endpoints/xn-1']);
    for (const l of lines) {
      expect(l.retained).toBe(true);
      const body = JSON.parse(l.payload) as { id: string; generatedAt?: string };
      const at = Date.parse(body.generatedAt ?? '');
      expect(at, `${body.id}: generatedAt ${body.generatedAt}`).toBeGreaterThanOrEqual(before);
      expect(at, `${body.id}: published before the kill`).toBeLessThanOrEqual(killedAt);
    }
  });

  it('a graceful stop publishes a retained offline with the reason', async () => {
    const tel = new Telemetry();
    const config = makeConfig(path.join(tmp.dir, 'd2'), { id: 'lab-stop', mqtt: { broker: `mqtt://127.0.0.1:${broker.port}` } });
    const store = await openStore(config.gateway.dataDir);
    const model = new StatusModel({ config, store, telemetry: tel, version: 't', startedAt: new Date().toISOString() });
    const mq = new MqttStatus({ config, model, log: silentLogger });
    await mq.start();
    expect(mq.broker).toBeUndefined();
    expect(mq.publisher!.connected).toBe(true);
    await mq.stop();
    await mq.stop(); // idempotent
    await model.stop();
    await store.close();
    const sub = mosquittoSub(broker.port, 'lab-gateway/lab-stop/availability', ['-C', '1', '-W', '10']);
    await new Promise((r) => sub.proc.once('exit', r));
    expect(JSON.parse(sub.lines[0]!.payload)).toMatchObject({ state: 'offline', reason: 'gateway stopped' });
  });
});

describe('kill -9 with the embedded broker', () => {
  const tmp = tempDir('status-embkill-');
  afterAll(() => tmp.cleanup());

  it('the subscriber loses its connection and the tray shows "gateway offline"', async () => {
    const child = await startChild(path.join(tmp.dir, 'd'), 'embedded', 'lab-emb');
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${child.port}`, { reconnectPeriod: 0 });
    let status: TrayStatus | undefined;
    client.on('message', (_t, payload) => (status = JSON.parse(payload.toString()) as TrayStatus));
    await client.subscribeAsync('lab-gateway/lab-emb/status');
    await waitFor(() => status, 'status');
    let connection: 'connected' | 'lost' = 'connected';
    const closed = new Promise<void>((r) => client.once('close', () => r()));
    client.on('close', () => (connection = 'lost'));
    expect(trayIcon({ connection, status, statusAt: Date.now(), now: Date.now() })).toBe('ok');
    child.proc.kill('SIGKILL');
    await closed;
    expect(connection).toBe('lost');
    const input = { connection, status, statusAt: Date.now(), now: Date.now() };
    expect(trayIcon(input)).toBe('offline');
    expect(trayTooltip(input)).toBe('Lab gateway lab-emb: offline — connection to the gateway lost');
    client.end(true);
  });
});
