/**
 * The alerts a gateway raises while it starts, as the MQTT alerts topic carries them to the
 * subscribers already listening: the tray (it notifies what arrives there) and a site's dashboards
 * on its Mosquitto. A real `lab-gateway start` process publishing to a real Mosquitto, a real MQTT
 * client (the `mqtt` package, as the tray uses) subscribed before the gateway starts, the Odoo
 * emulator refusing the key, a LIS certificate made with the openssl CLI, a real store seeded in a
 * temp dir.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { StatusModel, type StatusAlert } from '../../gateway/src/status/status-model.ts';
import { MAX_STARTUP_ALERTS, Telemetry } from '../../gateway/src/telemetry.ts';
import { BOT, startEmulator } from '../fixtures/relay/harness.ts';
import { hl7Message, makeConfig, openStore, useMosquitto, waitFor } from '../fixtures/status/harness.ts';
import { getJson, startGatewayProcess, type GatewayProcess } from '../fixtures/gateway-process.ts';

const DAY = 86_400_000;
const broker = useMosquitto('status-startup-alerts-');
const cleanups: Array<() => Promise<unknown> | unknown> = [];

afterEach(async () => {
  vi.useRealTimers();
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface AlertMessage {
  gatewayId: string;
  severity: string;
  code: string;
  message: string;
}

/** A subscriber on the site's broker, listening to the gateway's alerts and availability topics. */
async function subscriber(gatewayId: string): Promise<{ alerts: AlertMessage[]; availability: string[]; client: MqttClient }> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { clean: true, reconnectPeriod: 0 });
  cleanups.push(() => client.endAsync(true));
  const alerts: AlertMessage[] = [];
  const availability: string[] = [];
  client.on('message', (topic, payload) => {
    const body = JSON.parse(payload.toString()) as Record<string, unknown>;
    if (topic.endsWith('/alerts')) alerts.push(body as unknown as AlertMessage);
    else if (topic.endsWith('/availability')) availability.push(String(body.state));
  });
  await client.subscribeAsync([`lab-gateway/${gatewayId}/alerts`, `lab-gateway/${gatewayId}/availability`], { qos: 1 });
  return { alerts, availability, client };
}

describe('alerts raised while the gateway starts', () => {
  // What the lab saw: the gateway was restarted (an update) with a mistyped Odoo key, on a box
  // whose date had been set a year ahead, with the LIS link's certificate running out in ten days.
  // The tray and the site's dashboard, listening on the site's Mosquitto all along, notified none
  // of it: the clock warning went to the journal only, and "Odoo refused the credentials" and
  // "certificate expires in 10 days" never reached the alerts topic (a dashboard that notifies
  // from that topic said nothing until the next change).
  // Promise broken: DESIGN.md §5 and status/README.md (a reason appearing raises an alert,
  // components' alerts are passed through, the alerts topic carries them to the tray); telemetry.ts
  // ("Something a human should see (MQTT alerts topic, tray notification)").
  // Cause: the relay starts (and raises its clock alert) before the status model subscribes to
  // telemetry, and the MQTT publisher subscribes to the model's alerts only after the broker
  // connection is set up, after the model's first poll and certificate check.
  it('every start-up alert reaches the alerts topic once: the clock warning, the refused key, the expiring certificate', async () => {
    const dir = path.join(broker.dir, 'site');
    await mkdir(dir, { recursive: true });
    const dataDir = path.join(dir, 'data');

    // Yesterday's data, as the gateway stored it: the store's newest instant is 400 days before
    // the box's (wrong) date of today. Stored under a faked Date 400 days back, then the box's
    // clock is the real one: the same gap.
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: Date.now() - 400 * DAY });
    const store = await openStore(dataDir);
    await store.commit(hl7Message(undefined, 'BEFORE-RESTART'), []);
    await store.close();
    vi.useRealTimers();

    // The LIS link's certificate: valid for ten more days.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '10', '-subj', '/CN=localhost', '-keyout', 'lis.key', '-out', 'lis.crt'], { cwd: dir, stdio: 'pipe' });

    // The site's Odoo, and a key file holding a mistyped key.
    const { emu, url } = await startEmulator(17);
    cleanups.push(() => emu.close());
    await writeFile(path.join(dir, 'odoo.key'), `${BOT.key.slice(0, -4)}beef\n`);

    const gatewayId = 'lab-startup';
    const sub = await subscriber(gatewayId);
    const configFile = path.join(dir, 'gateway.yaml');
    await writeFile(
      configFile,
      [
        `gateway: { id: ${gatewayId}, dataDir: ${dataDir} }`,
        `hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 }, tls: { cert: ${path.join(dir, 'lis.crt')}, key: ${path.join(dir, 'lis.key')} } } ]`,
        `odoo: { url: "${url}", database: ${emu.database}, login: ${BOT.login}, apiKeyFile: ${path.join(dir, 'odoo.key')} }`,
        `mqtt: { broker: "mqtt://127.0.0.1:${broker.port}" }`,
        'status: { listen: { host: 127.0.0.1, port: 0 } }',
        '',
      ].join('\n'),
    );
    const gw: GatewayProcess = startGatewayProcess(configFile);
    cleanups.push(() => gw.stop());
    const ready = await gw.ready;
    expect(ready, gw.err()).toBeDefined();

    const expected = ['CLOCK_AHEAD_OF_STORED_DATA', 'ODOO_AUTH', 'TLS_CERT_EXPIRY'];
    // What the gateway knows: the clock warning in its log, the two reasons in its status.
    const reasons = await waitFor(
      async () => {
        const s = await getJson<{ healthReasons: Array<{ code: string }> }>(`${ready!.status.url}api/status`);
        const codes = s.healthReasons.map((r) => r.code);
        return codes.includes('ODOO_AUTH') && codes.includes('TLS_CERT_EXPIRY') ? codes : undefined;
      },
      'ODOO_AUTH and TLS_CERT_EXPIRY in the status',
      20_000,
      200,
    );
    expect(reasons).toEqual(expect.arrayContaining(['ODOO_AUTH', 'TLS_CERT_EXPIRY']));
    expect(gw.err(), 'the clock warning in the log').toContain('"code":"CLOCK_AHEAD_OF_STORED_DATA"');

    // A graceful stop: its `offline` comes after every alert the gateway published on the same
    // connection, so the subscriber holds all of them once it has that.
    await gw.stop();
    await waitFor(() => sub.availability.includes('offline') || undefined, 'the gateway\'s offline', 10_000);

    const codes = sub.alerts.map((a) => a.code);
    for (const code of expected) {
      expect(codes.filter((c) => c === code), `${code} on the alerts topic, once (got ${JSON.stringify(codes)})`).toHaveLength(1);
    }
    expect(sub.alerts.find((a) => a.code === 'TLS_CERT_EXPIRY')?.message).toMatch(/hl7\[lis\]\.tls\.cert expires in \d+ days/);
    expect(sub.alerts.find((a) => a.code === 'CLOCK_AHEAD_OF_STORED_DATA')).toMatchObject({ gatewayId, severity: 'warning' });
    expect(sub.alerts.every((a) => a.gatewayId === gatewayId)).toBe(true);
  });

  // What the lab would see without a bound: an analyzer line spewing refusals before the status
  // starts (a wrong baud rate, GW_ASTM_LINK per message) kept in memory for ever in a process that
  // never hands them over, or a second subscriber replaying them all again (a duplicate burst of
  // notifications). Promise: the start-up alerts are handed over once, the newest ones, bounded.
  it('keeps the newest start-up alerts up to the bound and hands them over once', async () => {
    const dataDir = path.join(broker.dir, 'bound');
    const store = await openStore(dataDir);
    cleanups.push(() => store.close());
    const telemetry = new Telemetry();
    const extra = 20;
    for (let i = 0; i < MAX_STARTUP_ALERTS + extra; i++) telemetry.alert('warning', 'GW_ASTM_LINK', `refusal ${i}`, 'xn-1');
    const model = new StatusModel({ config: makeConfig(dataDir), store, telemetry, version: 't', startedAt: new Date().toISOString() });
    await model.start();
    cleanups.push(() => model.stop());

    const first: StatusAlert[] = [];
    model.onAlert((a) => first.push(a), { startup: true });
    const second: StatusAlert[] = [];
    model.onAlert((a) => second.push(a), { startup: true });
    const refusals = (list: StatusAlert[]): string[] => list.filter((a) => a.code === 'GW_ASTM_LINK').map((a) => a.message);
    expect(refusals(first)).toHaveLength(MAX_STARTUP_ALERTS);
    expect(refusals(first)[0], 'the oldest ones were dropped').toBe(`refusal ${extra}`);
    expect(refusals(first).at(-1)).toBe(`refusal ${MAX_STARTUP_ALERTS + extra - 1}`);
    expect(second, 'handed over once').toEqual([]);

    telemetry.alert('warning', 'GW_ASTM_LINK', 'after start', 'xn-1');
    expect(refusals(first).filter((m) => m === 'after start')).toHaveLength(1);
    expect(refusals(second)).toEqual(['after start']);
  });
});
