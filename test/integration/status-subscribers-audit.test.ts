import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import mqtt from 'mqtt';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import { MqttStatus } from '../../gateway/src/status/mqtt-status.ts';
import { StatusServer } from '../../gateway/src/status/http-server.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { freePort, lisReceived, lisReceivedFrames, makeConfig, mosquittoSubLines, openStore, openStream, requestJson, tempDir, useMqttStatus, useStatusServer, waitFor } from '../fixtures/status/harness.ts';

/**
 * The programs that watch the gateway over a working day: a building-management dashboard on the
 * embedded broker that goes away and comes back; a script that follows /api/stream and stops
 * reading; IT polling /api/status while the site's own broker is away.
 */
describe('a dashboard with a persistent MQTT session on the embedded broker', () => {
  const rig = useMqttStatus('status-subscribers-', { config: { id: 'lab-bms', mqtt: { publishIntervalMs: 60_000 } }, publisher: { coalesceMs: 5 } });

  // What IT saw: a building-management dashboard subscribed to `lab-gateway/<id>/#` with QoS 1 and
  // a persistent session (clean session 0, the default of several dashboard tools) was taken
  // away. The embedded broker queued every status publish for it from then on — each change and
  // every publishIntervalMs tick, a few KB each, ~100 MB a day of a working lab — in the gateway's
  // memory, without limit; when the dashboard came back it was replayed hours of stale states, one
  // after the other. Broke: bounded memory of the gateway (a subscriber that is away must not grow
  // it), and the retained topics' promise that a subscriber sees the current state.
  it('keeps no backlog of stale states for it while it is away', async () => {
    const options = { clientId: 'bms-dashboard', clean: false, reconnectPeriod: 0 } as const;
    const first = await mqtt.connectAsync(rig.url, options);
    let retained = 0;
    first.on('message', (_t, _p, packet) => void (packet.retain && retained++));
    await first.subscribeAsync('lab-gateway/lab-bms/#', { qos: 1 });
    await waitFor(() => retained >= 3, 'the retained topics');
    await first.endAsync();

    // A morning of intake while the dashboard is away: each message changes the status (the LIS
    // link's count of messages received).
    const published = rig.mq.publisher!.published;
    for (let i = 0; i < 60; i++) {
      rig.telemetry.emit('intake.message', { endpoint: 'lis', kind: 'hl7', outcome: 'accepted', ackLatencyMs: 1, bytes: 100 });
      await new Promise((r) => setTimeout(r, 12));
    }
    await waitFor(() => rig.mq.publisher!.published - published >= 40, 'status publishes while the dashboard is away');

    // It comes back with its session; one more message, and it waits for that state.
    const statuses: Array<{ received: number }> = [];
    const back = await mqtt.connectAsync(rig.url, options);
    back.on('message', (topic, payload) => {
      if (topic !== 'lab-gateway/lab-bms/status') return;
      statuses.push({ received: lisReceived(payload.toString()) });
    });
    rig.telemetry.emit('intake.message', { endpoint: 'lis', kind: 'hl7', outcome: 'accepted', ackLatencyMs: 1, bytes: 100 });
    await waitFor(() => statuses.some((s) => s.received === 61), 'the current status');
    await back.endAsync();
    const stale = statuses.filter((s) => s.received < 61);
    expect(stale.length, `stale statuses replayed to the returning dashboard: ${stale.length}`).toBe(0);
  });
});

describe('GET /api/stream with a client that stops reading', () => {
  const rig = useStatusServer('status-stream-', {
    config: (dir) => {
      const config = makeConfig(path.join(dir, 'data'));
      // A large site (many analyzers): each status frame is about 1 MB, so that the kernel's
      // socket buffers fill within a few frames and what follows has to wait in the gateway.
      for (let i = 0; i < 4000; i++) config.analyzers.push({ id: `an-${i}`, profile: 'sysmex-xn', tcp: { listen: { host: '127.0.0.1', port: 0 } } });
      return config;
    },
  });

  // What IT saw: a script following `GET /api/stream` (`curl -N … | while read …; do …; sleep 60;
  // done`) or a frozen browser tab stopped reading; the gateway wrote every status change for it
  // anyway, and what its socket could not take piled up in the gateway's memory — a few KB per
  // change, several a second on a working day: hundreds of MB a day, without limit, and the
  // client, once it read again, worked through hours of stale states. Broke: bounded memory of
  // the gateway (a slow subscriber must not grow it) and the stream's promise of the current
  // status, pushed on change.
  it('keeps no backlog for it: once it reads again it gets the current status, not every state it missed', async () => {
    // A reader that keeps up, to count the frames the gateway pushed.
    let fastText = '';
    const fast = openStream(rig.port);
    fast.setEncoding('latin1');
    fast.on('data', (d: string) => (fastText += d));
    // The stalled reader: it takes the first frame, then reads nothing more.
    let slowText = '';
    const slow = openStream(rig.port);
    slow.setEncoding('latin1');
    const onSlow = (d: string): void => void (slowText += d);
    slow.on('data', onSlow);
    await waitFor(() => lisReceivedFrames(slowText).length >= 1 && lisReceivedFrames(fastText).length >= 1, 'the first frame on both streams');
    slow.pause();

    // Messages keep coming while it does not read: each changes the status.
    for (let i = 0; i < 40; i++) {
      rig.telemetry.emit('intake.message', { endpoint: 'lis', kind: 'hl7', outcome: 'accepted', ackLatencyMs: 1, bytes: 100 });
      await new Promise((r) => setTimeout(r, 150));
    }
    await waitFor(() => lisReceivedFrames(fastText).at(-1) === 40, 'the current status on the reader that keeps up');
    const pushed = lisReceivedFrames(fastText).length;

    slow.resume();
    await waitFor(() => lisReceivedFrames(slowText).at(-1) === 40, 'the current status on the stalled reader', 20_000);
    const got = lisReceivedFrames(slowText).length;
    fast.destroy();
    slow.destroy();
    // Before: the stalled reader was handed every frame the gateway pushed (all kept for it).
    expect(pushed, 'frames pushed while the stalled reader did not read').toBeGreaterThanOrEqual(20);
    expect(got, `frames kept for the stalled reader (of ${pushed} pushed)`).toBeLessThan(pushed / 2);
  });
});

describe('GET /api/stream when a health reason appears while the gateway is already degraded', () => {
  const telemetry = new Telemetry();
  const rig = useStatusServer('status-stream-reasons-', {
    telemetry,
    config: (dir) => makeConfig(path.join(dir, 'data'), { odoo: { url: 'https://odoo.example.invalid' } }),
    // Degraded from the start (an administrator paused sending to Odoo); Odoo's outage becomes a
    // reason of its own after its grace period.
    server: (config, store) => ({ model: new StatusModel({ config, store, telemetry, version: 't', startedAt: new Date().toISOString(), relayPaused: () => true, odooGraceMs: 300, pollIntervalMs: 100 }) }),
  });

  // What IT saw: a dashboard following /api/stream showed "degraded — sending to Odoo is paused"
  // while Odoo had been unreachable for an hour: the stream pushed the status when health went
  // from ok to degraded, not when a reason was added to (or taken from) a health already
  // degraded — ODOO_UNREACHABLE after its grace, ENDPOINT_DOWN after an idle hour, LINE_ERRORS
  // cleared a minute after the refusals — so in a quiet lab nothing else pushed it. The MQTT
  // alert came; the retained status lagged up to mqtt.publishIntervalMs. Broke: "the status as
  // server-sent events, pushed on change" (status README), healthReasons "says why".
  it('pushes the status with the new reason', async () => {
    const alerts: string[] = [];
    rig.model!.onAlert((a) => alerts.push(a.code));
    let text = '';
    const socket = openStream(rig.port);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (text += d));
    const reasonsPushed = (): string[][] =>
      text
        .split('\n\n')
        .flatMap((f) => f.split('\n').filter((l) => l.startsWith('data: ')))
        .map((l) => (JSON.parse(l.slice(6)) as { healthReasons: Array<{ code: string }> }).healthReasons.map((r) => r.code));
    await waitFor(() => reasonsPushed().length >= 1, 'the first frame');
    expect(reasonsPushed()[0]).toEqual(['RELAY_PAUSED']);
    telemetry.emit('odoo.state', { state: 'unreachable', lastError: 'connect ECONNREFUSED' });
    await waitFor(() => alerts.includes('ODOO_UNREACHABLE'), 'the ODOO_UNREACHABLE alert');
    try {
      await waitFor(() => reasonsPushed().some((codes) => codes.includes('ODOO_UNREACHABLE')), 'a pushed status naming ODOO_UNREACHABLE', 5_000);
    } finally {
      socket.destroy();
    }
    expect(reasonsPushed().at(-1)).toContain('ODOO_UNREACHABLE');
  });
});

describe('the site broker (mqtt.broker: mqtt://…) unreachable', () => {
  const tmp = tempDir('status-mqtt-away-');
  let store: EventStore;
  const telemetry = new Telemetry();
  let model: StatusModel;
  let server: StatusServer;
  let mq: MqttStatus;
  let brokerPort: number;
  let broker: ReturnType<typeof spawn> | undefined;

  beforeAll(async () => {
    brokerPort = await freePort();
    const config = makeConfig(path.join(tmp.dir, 'data'), { id: 'lab-away', mqtt: { broker: `mqtt://127.0.0.1:${brokerPort}`, publishIntervalMs: 60_000 } });
    store = await openStore(config.gateway.dataDir);
    model = new StatusModel({ config, store, telemetry, version: 't', startedAt: new Date().toISOString(), pollIntervalMs: 100, mqttGraceMs: 300 });
    server = new StatusServer({ config, store, telemetry, log: silentLogger, version: 't', startedAt: new Date().toISOString(), model, processMetrics: false });
    await server.start();
    mq = new MqttStatus({ config, model, log: silentLogger });
    // Nothing listens on the broker's port yet (Mosquitto's server down, a firewall change).
    await mq.start();
  });

  afterAll(async () => {
    await mq.stop();
    await server.stop();
    await model.stop();
    broker?.kill('SIGTERM');
    await store.close();
    tmp.cleanup();
  });

  // What IT saw: the building-management dashboards and the trays showed the gateway offline
  // (or nothing at all) for a day — the site's Mosquitto had moved, the gateway could not reach
  // it — while `lab-gateway status`, /api/status, the page and lab_gateway_health said OK: nothing
  // in the status said that no status was reaching the subscribers, or why. Broke: health
  // "degraded: something needs a person", and DESIGN.md §1 "Status … publishes it: retained
  // MQTT topics"; the status said OK while that failed.
  it('shows in /api/status, degraded with a reason, and clears once the broker is back', async () => {
    const status = async (): Promise<{ health: string; healthReasons: Array<{ code: string; message: string }>; mqtt?: { connected: boolean; lastError: string | null } }> =>
      (await requestJson(`${server.url()}/api/status`)).json;
    const away = await waitFor(async () => {
      const s = await status();
      return s.healthReasons.some((r) => r.code === 'MQTT_UNREACHABLE') ? s : undefined;
    }, 'MQTT_UNREACHABLE in /api/status', 5_000);
    expect(away.health).toBe('degraded');
    expect(away.healthReasons.find((r) => r.code === 'MQTT_UNREACHABLE')!.message).toContain(`127.0.0.1:${brokerPort}`);
    expect(away.mqtt).toMatchObject({ connected: false });

    // The broker is back on its port: the publisher reconnects, the reason clears, the status is there.
    const conf = path.join(tmp.dir, 'mosquitto.conf');
    writeFileSync(conf, `listener ${brokerPort} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n`);
    broker = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: 'ignore' });
    const back = await waitFor(async () => {
      const s = await status();
      return s.mqtt?.connected === true && !s.healthReasons.some((r) => r.code === 'MQTT_UNREACHABLE') ? s : undefined;
    }, 'the broker reachable again', 15_000);
    expect(back.health).toBe('ok');
    const lines = await mosquittoSubLines(brokerPort, 'lab-gateway/lab-away/status', ['-C', '1', '-W', '5']);
    expect(JSON.parse(lines[0]!.payload)).toMatchObject({ gatewayId: 'lab-away', health: 'ok' });
  });
});
