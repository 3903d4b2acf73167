/**
 * The embedded MQTT broker on a small appliance, as the lab's IT staff run it: trays and dashboards
 * come and go for months, some re-installed with a new client id each time, some scripts gone wrong.
 * Real MQTT clients (mqtt.js, mosquitto_sub) against the real aedes broker on a real TCP port;
 * `lab-gateway check` as a separate process.
 */
import { afterAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import mqtt from 'mqtt';
import { createLogger } from '../../gateway/src/log.ts';
import { EmbeddedBroker, INTERNAL_USERNAME } from '../../gateway/src/status/mqtt-broker.ts';
import { makeConfig, mosquittoSub, mosquittoSubLines, openStore, tempDir, useMosquitto, useMqttStatus, waitFor } from '../fixtures/status/harness.ts';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import { MqttStatus } from '../../gateway/src/status/mqtt-status.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

/** A logger writing its JSON lines into `lines` (parsed), at debug level. */
function recordingLogger(): { log: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, log: createLogger({ level: 'debug', write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) }) };
}

/** The CONNACK return code of a refused connection (MQTT 3.1.1 §3.2.2.3), or 0 when it is accepted. */
async function connackCode(url: string, options: mqtt.IClientOptions): Promise<number> {
  try {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
    await client.endAsync();
    return 0;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code !== 'number') throw err;
    return code;
  }
}

describe('the embedded MQTT broker and the number of connections', () => {
  // What the user sees: the gateway (a small box beside the analyzers) slows and is finally killed
  // for memory; every tray goes grey and intake stops. A monitoring script on a workstation,
  // restarted by a scheduler every minute without closing its old connections, held hundreds of
  // MQTT connections open: the embedded broker accepted every one, with no limit IT could set or
  // read about. Nothing in the log said why.
  // Promise broken: DESIGN.md §2 "Bad input never takes the gateway down"; the lab's IT staff
  // expect a documented connection limit (as hl7[].maxConnections has), refused with CONNACK
  // "server unavailable" (MQTT 3.1.1 §3.2.2.3, code 3) and a log line naming the setting.
  // Cause: gateway/src/status/mqtt-broker.ts hands every socket to aedes, which has no limit.
  const logs = recordingLogger();
  const rig = useMqttStatus('status-mqtt-conns-', {
    config: { id: 'lab-conns', mqtt: { maxConnections: 3 } },
    publisher: { log: logs.log },
  });

  it('refuses the connection beyond mqtt.maxConnections with CONNACK 3 and says why in the log; the others keep reading', async () => {
    const { url, port } = rig;
    const clients = await Promise.all([1, 2, 3].map((i) => mqtt.connectAsync(url, { clientId: `dashboard-${i}`, reconnectPeriod: 0 })));
    try {
      const statuses: string[] = [];
      clients[0]!.on('message', (_t, payload) => statuses.push(payload.toString()));
      await clients[0]!.subscribeAsync('lab-gateway/lab-conns/status');

      expect(await connackCode(url, { clientId: 'dashboard-4' }), 'the fourth subscriber: server unavailable').toBe(3);
      // mosquitto_sub, as IT would try it by hand, is refused the same way.
      const sub = mosquittoSub(port, 'lab-gateway/lab-conns/status', ['-C', '1', '-W', '5']);
      expect(await sub.exited).not.toBe(0);
      expect(sub.stderr()).toMatch(/unavailable/i);

      const refusal = logs.lines.find((l) => typeof l.msg === 'string' && /refused/.test(l.msg) && JSON.stringify(l).includes('mqtt.maxConnections'));
      expect(refusal, 'a log line naming the setting').toMatchObject({ level: 'warn', limit: 3 });

      // The gateway's own publisher is not one of them: the status still reaches the subscribers.
      await waitFor(() => statuses.length > 0, 'the retained status on the first dashboard');
      expect(rig.mq.publisher?.connected).toBe(true);

      // A subscriber coming back with its own id (its old connection not yet noticed dead) takes
      // its place over rather than being refused.
      expect(await connackCode(url, { clientId: 'dashboard-2' })).toBe(0);
      // One leaves: there is room again.
      await clients[2]!.endAsync();
      await waitFor(async () => (await connackCode(url, { clientId: 'dashboard-5' })) === 0, 'room for a new subscriber');
    } finally {
      await Promise.all(clients.map((c) => c.endAsync()));
    }
  }, 60_000);
});

describe('lab-gateway check and mqtt.maxConnections', () => {
  // What the user sees: IT sets the documented limit and check must take it (and name a bad value
  // by its key, as it does for hl7[].maxConnections).
  const { configFile } = useConfigDir('lgw-mqtt-conns-');
  const check = (file: string) => runCli(cliSource, ['check', '--config', file, '--json']);
  type Report = { ok: boolean; issues: Array<{ severity: string; path: string; message: string }> };

  it('accepts a limit and refuses 0 naming the key', async () => {
    const good = JSON.parse((await check(await configFile('gateway: { id: c-1 }\nmqtt: { maxConnections: 50 }\n', 'good.yaml'))).out) as Report;
    expect(good.issues.filter((i) => i.path.startsWith('mqtt'))).toEqual([]);
    const bad = await check(await configFile('gateway: { id: c-2 }\nmqtt: { maxConnections: 0 }\n', 'bad.yaml'));
    expect(bad.code).toBe(1);
    expect((JSON.parse(bad.out) as Report).issues).toEqual([expect.objectContaining({ severity: 'error', path: 'mqtt.maxConnections' })]);
  }, 60_000);

  it('warns that the limit is not used with an external broker', async () => {
    const r = JSON.parse((await check(await configFile('gateway: { id: c-3 }\nmqtt: { broker: "mqtt://127.0.0.1:1883", maxConnections: 50 }\n', 'ext.yaml'))).out) as Report;
    expect(r.issues).toEqual([expect.objectContaining({ severity: 'warning', path: 'mqtt.maxConnections', message: expect.stringMatching(/not used/) })]);
  }, 60_000);
});

describe('the embedded MQTT broker and persistent sessions nobody comes back to', () => {
  // What the user sees: the gateway's memory grows month after month until it is killed (intake
  // stops, every tray grey). A dashboard connected with a persistent session (clean session 0, as
  // Node-RED and many MQTT tools are set) was re-installed with a new client id each time, and each
  // old id stayed a session at the broker for ever, subscribed, with every alert (QoS 1) queued for
  // it in the gateway's memory: nobody would ever come back to read them.
  // Promise broken: DESIGN.md §2 "Bad input never takes the gateway down"; IT expects abandoned
  // sessions to expire after a documented time, their queued messages dropped and counted.
  // Cause: aedes keeps a persistent session without end (it has no session expiry: MQTT 3.1.1 has
  // none; the Session Expiry Interval is MQTT 5's).
  const tmp = tempDir('status-mqtt-expiry-');
  afterAll(() => tmp.cleanup());
  const alerts = 'lab-gateway/lab-exp/alerts';

  async function startBroker(log: ReturnType<typeof createLogger>, persistentSessionExpiryMs: number): Promise<EmbeddedBroker> {
    const config = makeConfig(path.join(tmp.dir, 'data'), { id: 'lab-exp' });
    const broker = new EmbeddedBroker({ config: config.mqtt, log, gatewayId: 'lab-exp', persistentSessionExpiryMs });
    await broker.start();
    return broker;
  }

  /** The gateway's side: alerts at QoS 1, over the broker's own publisher credentials. */
  async function publishAlerts(broker: EmbeddedBroker, n: number): Promise<void> {
    const gw = await mqtt.connectAsync(broker.loopbackUrl(), { username: INTERNAL_USERNAME, password: broker.internalPassword, clientId: broker.publisherClientId, reconnectPeriod: 0 });
    for (let i = 0; i < n; i++) await gw.publishAsync(alerts, JSON.stringify({ code: 'ENDPOINT_DOWN', n: i }), { qos: 1 });
    await gw.endAsync();
  }

  /** Connects `clientId` with a persistent session; the session flag and the alerts it then receives. */
  async function comeBack(broker: EmbeddedBroker, clientId: string): Promise<{ sessionPresent: boolean; received: string[]; client: mqtt.MqttClient }> {
    const received: string[] = [];
    const client = mqtt.connect(broker.loopbackUrl(), { clientId, clean: false, reconnectPeriod: 0 });
    client.on('message', (_t, payload) => received.push(payload.toString()));
    const connack = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });
    return { sessionPresent: connack.sessionPresent, received, client };
  }

  it('expires a persistent session left longer than the expiry, dropping and counting its queued alerts', async () => {
    const logs = recordingLogger();
    const broker = await startBroker(logs.log, 1500);
    try {
      const old = await mqtt.connectAsync(broker.loopbackUrl(), { clientId: 'dashboard-install-1', clean: false, reconnectPeriod: 0 });
      await old.subscribeAsync(alerts, { qos: 1 });
      await old.endAsync();
      await publishAlerts(broker, 5);

      const expired = await waitFor(() => logs.lines.find((l) => l.msg === 'mqtt persistent session expired'), 'the expiry in the log', 15_000);
      expect(expired).toMatchObject({ level: 'info', client: 'dashboard-install-1', droppedMessages: 5 });
      expect(broker.expiredSessions).toBe(1);
      expect(broker.droppedQueuedMessages).toBe(5);

      // Had it come back after all: a new session, nothing replayed.
      const back = await comeBack(broker, 'dashboard-install-1');
      await new Promise((r) => setTimeout(r, 500));
      expect(back.sessionPresent).toBe(false);
      expect(back.received).toEqual([]);
      await back.client.endAsync();
    } finally {
      await broker.stop();
    }
  }, 60_000);

  it('keeps the session of a subscriber that comes back in time, with its queued alerts', async () => {
    const logs = recordingLogger();
    const broker = await startBroker(logs.log, 60_000);
    try {
      const away = await mqtt.connectAsync(broker.loopbackUrl(), { clientId: 'dashboard-lunch', clean: false, reconnectPeriod: 0 });
      await away.subscribeAsync(alerts, { qos: 1 });
      await away.endAsync();
      await publishAlerts(broker, 2);
      const back = await comeBack(broker, 'dashboard-lunch');
      await waitFor(() => back.received.length === 2, 'the two alerts queued while it was away');
      expect(back.sessionPresent).toBe(true);
      await back.client.endAsync();
      expect(broker.expiredSessions).toBe(0);
    } finally {
      await broker.stop();
    }
  }, 60_000);
});

describe('the embedded MQTT broker and a reader of $SYS/#', () => {
  // What the user sees: the dashboard on the ward PC drops off the broker every few seconds, again
  // and again, and shows "no connection"; so do the trays. Another program on the LAN with the
  // trays' read-only credentials (an MQTT browser left open, a script) subscribed to `$SYS/#`: aedes
  // announces there every client id that connects (`$SYS/<broker>/new/clients`) with its
  // subscriptions (`…/new/subscribes`), and connecting with an id announced takes that client's
  // connection over (MQTT 3.1.1 §3.1.4). A random id (what mqtt.js and the tray use) was no
  // protection: the broker told it to every reader.
  // Promise broken: status/README.md "subscribers are read-only" — a reader could disconnect the
  // other readers at will.
  // Cause: gateway/src/status/mqtt-broker.ts forwards aedes' own `$SYS` announcements to any
  // subscriber.
  // Fix: those naming clients (`new/clients`, `disconnect/clients`, `new/subscribes`,
  // `new/unsubscribes`) are not forwarded to subscribers; `$SYS/#` stays granted (the heartbeat).
  const rig = useMqttStatus('status-mqtt-sys-', { config: { id: 'lab-sys' } });

  it('a subscriber of $SYS/# is not told the client ids of the others', async () => {
    const seen: string[] = [];
    const reader = await mqtt.connectAsync(rig.url, { clientId: 'mqtt-browser', reconnectPeriod: 0 });
    reader.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`));
    const granted = await reader.subscribeAsync(['$SYS/#', 'lab-gateway/lab-sys/status'], { qos: 0 });
    expect(granted.map((g) => g.qos), 'both filters granted').toEqual([0, 0]);
    const dashboard = await mqtt.connectAsync(rig.url, { clientId: 'ward-3-dashboard-7f3a', reconnectPeriod: 0 });
    await dashboard.subscribeAsync('lab-gateway/lab-sys/alerts', { qos: 1 });
    await dashboard.unsubscribeAsync('lab-gateway/lab-sys/alerts');
    await dashboard.endAsync();
    await waitFor(() => seen.some((s) => s.startsWith('lab-gateway/lab-sys/status')), 'the retained status on the reader');
    await new Promise((r) => setTimeout(r, 1000));
    expect(seen.filter((s) => s.includes('ward-3-dashboard-7f3a'))).toEqual([]);
    await reader.endAsync();
  }, 30_000);
});

describe('the retained topic of an analyzer taken out of service', () => {
  // A guard (found working in this audit): the site's Mosquitto keeps retained messages across
  // restarts of the gateway; an analyzer removed from the configuration must not be shown on the
  // dashboards for ever with its last state. status/README.md: "retained endpoints/<id> topics of
  // ids no longer configured … are cleared with an empty retained payload".
  const broker = useMosquitto('status-mqtt-removed-broker-');
  const tmp = tempDir('status-mqtt-removed-');
  afterAll(() => tmp.cleanup());

  async function runGateway(analyzers: string[], until: () => Promise<unknown>): Promise<void> {
    const config = makeConfig(path.join(tmp.dir, 'data'), { id: 'lab-rm', mqtt: { broker: `mqtt://127.0.0.1:${broker.port}` } });
    config.analyzers = analyzers.map((id) => ({ id, profile: 'sysmex-xn', tcp: { listen: { host: '127.0.0.1', port: 0 } } }));
    const store = await openStore(config.gateway.dataDir);
    const model = new StatusModel({ config, store, telemetry: new Telemetry(), version: 't', startedAt: new Date().toISOString() });
    const mq = new MqttStatus({ config, model, log: silentLogger });
    await mq.start();
    try {
      await waitFor(until, 'the gateway to publish');
    } finally {
      await mq.stop();
      await model.stop();
      await store.close();
    }
  }

  const retainedEndpoints = async (): Promise<string[]> =>
    (await mosquittoSubLines(broker.port, 'lab-gateway/lab-rm/endpoints/+', ['--retained-only', '-W', '1'])).map((l) => l.topic).sort();

  it('is cleared when the gateway comes back without it', async () => {
    await runGateway(['xn-1', 'xn-old'], async () => (await retainedEndpoints()).includes('lab-gateway/lab-rm/endpoints/xn-old'));
    await runGateway(['xn-1'], async () => !(await retainedEndpoints()).includes('lab-gateway/lab-rm/endpoints/xn-old'));
    expect(await retainedEndpoints()).toEqual(['lab-gateway/lab-rm/endpoints/lis', 'lab-gateway/lab-rm/endpoints/xn-1']);
  }, 60_000);
});
