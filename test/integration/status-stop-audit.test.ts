/**
 * What a gateway tells its MQTT subscribers while it stops: a real `lab-gateway start` process
 * publishing to a real Mosquitto (the site's broker, which outlives the gateway, as the dashboards
 * and the trays see it), stopped gracefully with SIGTERM (what systemd sends for a restart), and a
 * real MQTT client (the `mqtt` package, as the tray uses) subscribed to its status, alerts and
 * availability topics all along. The analyzer's TCP peer is a free port nothing listens on: the
 * analyzer is unplugged.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { refusedPort, useMosquitto, waitFor } from '../fixtures/status/harness.ts';
import { startGatewayProcess, type GatewayProcess } from '../fixtures/gateway-process.ts';
import { startLabDay } from '../fixtures/relay/lab-day.ts';
import { lisOrm } from '../fixtures/lis-rig.ts';

const broker = useMosquitto('status-stop-');
const cleanups: Array<() => Promise<unknown> | unknown> = [];
const closers: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  while (closers.length) await closers.pop()!();
});

interface StatusMessage {
  online: boolean;
  stopping?: boolean;
  health: string;
  healthReasons: Array<{ code: string; endpoint?: string }>;
  endpoints: Array<{ id: string; state: string }>;
}

/** What the dashboard received, in the order it came. */
interface Received {
  statuses: StatusMessage[];
  alerts: Array<{ code: string; endpoint?: string }>;
  availability: string[];
}

/** A dashboard subscribed to the gateway's status, alerts and availability topics on the broker at `url`. */
async function dashboard(url: string, gatewayId: string): Promise<Received> {
  const client = await mqtt.connectAsync(url, { clean: true, reconnectPeriod: 0 });
  cleanups.push(() => client.endAsync(true));
  const got: Received = { statuses: [], alerts: [], availability: [] };
  client.on('message', (topic, payload) => {
    if (payload.length === 0) return;
    const body = JSON.parse(payload.toString()) as Record<string, unknown>;
    if (topic.endsWith('/status')) got.statuses.push(body as unknown as StatusMessage);
    else if (topic.endsWith('/alerts')) got.alerts.push(body as unknown as Received['alerts'][number]);
    else if (topic.endsWith('/availability')) got.availability.push(String(body.state));
  });
  const t = `lab-gateway/${gatewayId}`;
  await client.subscribeAsync([`${t}/status`, `${t}/alerts`, `${t}/availability`], { qos: 1 });
  return got;
}

describe('a gateway stopped while an analyzer is unplugged', () => {
  // What the lab saw: "Analyzer xn-1 in error" was on the dashboard and the tray since the morning;
  // the cable is still out. At noon IT restarts the gateway (an update, `systemctl restart`). As it
  // stopped, the gateway told every subscriber "Resolved: endpoint down (xn-1)" and published a
  // status still `online`, health OK, every link `stopped`: the dashboard closed its ticket and
  // showed the gateway green (a dashboard reading the retained status kept that green until the
  // `offline` came), then opened the same alarm again after the restart. Nothing had been repaired.
  // Promise broken: status/README.md "a reason clearing raises an info alert <CODE>_CLEARED" — a
  // reason that cleared, not one the gateway stopped looking at; "A graceful stop publishes every
  // endpoint's final state as well as status and availability" — a final state that says the
  // gateway is going, not that it is healthy.
  // Cause: the gateway stops its links first; the status model took their `stopped` state as the
  // end of the alarm, and nothing told it the gateway was stopping.
  it('raises no _CLEARED for an alarm still there, and its statuses say it is stopping', async () => {
    const deadPort = await refusedPort(); // nothing listens: the analyzer is unplugged
    const gatewayId = 'lab-stop';
    const dataDir = path.join(broker.dir, 'data');
    const configFile = path.join(broker.dir, 'gateway.yaml');
    await writeFile(
      configFile,
      [
        `gateway: { id: ${gatewayId}, dataDir: ${dataDir} }`,
        'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
        `analyzers: [ { id: xn-1, profile: sysmex-xn, tcp: { connect: { host: 127.0.0.1, port: ${deadPort} } } } ]`,
        `mqtt: { broker: "mqtt://127.0.0.1:${broker.port}", publishIntervalMs: 2000 }`,
        'status: { listen: { host: 127.0.0.1, port: 0 } }',
        '',
      ].join('\n'),
    );

    // The dashboard, subscribed before the gateway starts.
    const got = await dashboard(`mqtt://127.0.0.1:${broker.port}`, gatewayId);
    const t = `lab-gateway/${gatewayId}`;

    const gw: GatewayProcess = startGatewayProcess(configFile);
    cleanups.push(() => gw.stop());
    expect(await gw.ready, gw.err()).toBeDefined();

    // The alarm is raised, and a status showing it is out.
    await waitFor(() => got.alerts.some((a) => a.code === 'ENDPOINT_DOWN' && a.endpoint === 'xn-1'), 'ENDPOINT_DOWN for xn-1', 30_000);
    await waitFor(() => got.statuses.at(-1)?.healthReasons.some((r) => r.code === 'ENDPOINT_DOWN'), 'a status showing ENDPOINT_DOWN', 10_000);
    const alertsBefore = got.alerts.length;
    const statusesBefore = got.statuses.length;

    await gw.stop(); // SIGTERM: the graceful stop
    await waitFor(() => got.availability.at(-1) === 'offline', "the gateway's offline", 10_000);
    expect((await gw.exited).code, gw.err()).toBe(0);

    // Nothing was repaired: no alarm is reported over.
    const clears = got.alerts.slice(alertsBefore).filter((a) => a.code.endsWith('_CLEARED'));
    expect(clears, 'no _CLEARED while the gateway stops').toEqual([]);

    // The statuses published while it stopped (its links stopped) say so, and none shows it healthy.
    const during = got.statuses.slice(statusesBefore).filter((s) => s.endpoints.some((e) => e.state === 'stopped'));
    expect(during.length, 'the final status, at least').toBeGreaterThan(0);
    for (const s of during) {
      expect(s.stopping, 'stopping, on every status published during the stop').toBe(true);
      expect(s.health).not.toBe('ok');
      expect(s.healthReasons).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'ENDPOINT_DOWN', endpoint: 'xn-1' })]));
    }
    expect(during.at(-1)).toMatchObject({ online: false, stopping: true });

    // What a dashboard that looks later reads from the broker: the retained status of the stopped gateway.
    const late = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { clean: true, reconnectPeriod: 0 });
    cleanups.push(() => late.endAsync(true));
    const retained = new Promise<StatusMessage>((resolve) => late.on('message', (_topic, payload) => resolve(JSON.parse(payload.toString()) as StatusMessage)));
    await late.subscribeAsync(`${t}/status`, { qos: 1 });
    expect(await retained).toMatchObject({ online: false, stopping: true, health: 'degraded' });
  });

  // The same restart while the relay waits on a slow Odoo (a request in flight when the stop comes):
  // the gateway stops its links, then waits for the relay, and meanwhile publishes a status of its
  // own (the links' change). That status read `online`, health OK, links `stopped`: the tray
  // flashed green and a dashboard showed the lab healthy while the gateway was going.
  // Promise broken: as above; desktop/README.md shows a stopping gateway grey, not green.
  it('the status published between the links stopping and the end says stopping, with the alarm', async () => {
    const deadPort = await refusedPort();
    const gatewayId = 'lab-stop-slow';
    const lab = await startLabDay(gatewayId, closers, {
      analyzers: [{ id: 'xn-1', profile: 'sysmex-xn', tcp: { connect: { host: '127.0.0.1', port: deadPort } } }],
      mqtt: { listen: { host: '127.0.0.1', port: 0 }, publishIntervalMs: 60_000 },
    });
    const got = await dashboard(lab.gateway.addresses().mqtt.url, gatewayId);
    await waitFor(() => got.statuses.at(-1)?.healthReasons.some((r) => r.code === 'ENDPOINT_DOWN' && r.endpoint === 'xn-1'), 'a status showing ENDPOINT_DOWN', 30_000);
    const alertsBefore = got.alerts.length;
    const statusesBefore = got.statuses.length;

    // Odoo turns slow, an order comes in: the relay has a request in flight when the stop comes.
    lab.emu.faults.latencyMs = 2_000;
    expect(await lab.send('lis', lisOrm('ORM-STOP-1', 'ACC-STOP-1', ['GLU']))).toContain('MSA|AA');
    // Every request to this Odoo takes 2 s: on a loaded machine the relay's first requests (its
    // look-ups before the order's post) may take longer than 10 s before the order is leased.
    await waitFor(() => lab.gateway.store!.stats().inFlight > 0, 'an event in flight to Odoo', 60_000, 10);
    await lab.gateway.stop(8_000);
    await waitFor(() => got.availability.at(-1) === 'offline', "the gateway's offline", 10_000);

    expect(got.alerts.slice(alertsBefore).filter((a) => a.code.endsWith('_CLEARED'))).toEqual([]);
    const during = got.statuses.slice(statusesBefore).filter((s) => s.endpoints.some((e) => e.state === 'stopped'));
    // One while it waited for the relay (still online), then the final one.
    expect(during.filter((s) => s.online).length, 'a status published while the gateway waited for the relay').toBeGreaterThan(0);
    for (const s of during) {
      expect(s).toMatchObject({ stopping: true, health: 'degraded' });
      expect(s.healthReasons).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'ENDPOINT_DOWN', endpoint: 'xn-1' })]));
    }
    expect(during.at(-1)).toMatchObject({ online: false, stopping: true });
  }, 150_000);
});
