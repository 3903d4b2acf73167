/**
 * Commissioning: how long an analyzer has been down, as ENDPOINT_DOWN says it. The status model on
 * a real store with its clock in the test's hand (the exact words in the first minute, at 2 min, hours, days), and
 * the real gateway process (the status API, the retained MQTT status and alert, /metrics) with an
 * analyzer whose port cannot be opened.
 */
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { makeConfig, openStore, tempDir } from '../fixtures/status/harness.ts';
import { getJson, startGatewayProcess, until, TEST_LISTENERS } from '../fixtures/gateway-process.ts';
import { useLineRig } from '../fixtures/astm-link/line-rig.ts';

const rig = useLineRig('lgw-commissioning-endpoint-duration-');
const { file, running, cleanups } = rig;

const stores: EventStore[] = [];
const models: StatusModel[] = [];
const dirs: Array<() => void> = [];
afterAll(async () => {
  for (const m of models) await m.stop();
  for (const s of stores) await s.close();
  for (const d of dirs) d();
});

interface Reason {
  code: string;
  message: string;
  endpoint?: string;
}
interface StatusBody {
  generatedAt: string;
  healthReasons: Reason[];
  endpointDetail: Array<{ id: string; state: string; since: string }>;
}

/** The seconds the status says the analyzer has been in error, from its own fields. */
function secondsDown(s: StatusBody, id: string): number {
  const since = s.endpointDetail.find((e) => e.id === id)!.since;
  return Math.floor((Date.parse(s.generatedAt) - Date.parse(since)) / 1000);
}

describe('ENDPOINT_DOWN says how long the link has been down', () => {
  /**
   * User sees (was): "Analyzer xp-1 in error for 1 min (cannot open …)" three seconds after the
   * adapter was pulled (the minute was a floor), and "for 840 min" the next morning.
   */
  it('in the words a technician reads: less than 1 min, 2 min, hours and minutes, days and hours', async () => {
    const { dir, cleanup } = tempDir('lgw-endpoint-duration-');
    dirs.push(cleanup);
    const store = await openStore(dir);
    stores.push(store);
    let now = Date.parse('2026-03-02T08:00:00Z');
    const telemetry = new Telemetry();
    const model = new StatusModel({ config: makeConfig(dir), store, telemetry, version: '1.0.0', startedAt: new Date(now).toISOString(), now: () => now, pollIntervalMs: 3_600_000, diskIntervalMs: 3_600_000 });
    models.push(model);
    const alerts: Array<{ code: string; message: string }> = [];
    model.onAlert((a) => alerts.push(a));
    await model.start();
    telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'error', connections: 0, detail: 'cannot open /dev/ttyUSB1: No such file or directory' });
    const down = (): string | undefined => model.health().reasons.find((r) => r.code === 'ENDPOINT_DOWN' && r.endpoint === 'xn-1')?.message;

    // The alert raised as it happens does not claim a minute either.
    expect(alerts.find((a) => a.code === 'ENDPOINT_DOWN')?.message).toBe('Analyzer xn-1 in error for less than 1 min (cannot open /dev/ttyUSB1: No such file or directory)');
    now += 3_000;
    expect(down()).toBe('Analyzer xn-1 in error for less than 1 min (cannot open /dev/ttyUSB1: No such file or directory)');
    now += 56_000; // 59 s: the same words all the first minute (the page's live region is not read out again)
    expect(down()).toBe('Analyzer xn-1 in error for less than 1 min (cannot open /dev/ttyUSB1: No such file or directory)');
    now += 1_000; // 60 s
    expect(down()).toMatch(/in error for 1 min \(/);
    now += 65_000; // 2 min 5 s
    expect(down()).toMatch(/in error for 2 min \(/);
    now += 3 * 3_600_000 + 18 * 60_000; // 3 h 20 min 5 s
    expect(down()).toMatch(/in error for 3 h 20 min \(/);
    now += 40 * 60_000 + 55_000; // 4 h 1 min
    expect(down()).toMatch(/in error for 4 h 1 min \(/);
    now += 59 * 60_000; // 5 h exactly
    expect(down()).toMatch(/in error for 5 h \(/);
    now += 2 * 86_400_000 + 3_600_000; // 2 days 6 h
    expect(down()).toMatch(/in error for 2 days 6 h \(/);
    now += 18 * 3_600_000; // 3 days exactly
    expect(down()).toMatch(/in error for 3 days \(/);

    telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'disconnected', connections: 0 });
    now += 1_000;
    expect(down()).toBe('Analyzer xn-1 disconnected for less than 1 min');
  });

  /**
   * The same words on every surface of the running gateway: /api/status (the page and the tray's
   * window read it), the retained MQTT status and the alert; /metrics keeps its labels (code,
   * level, endpoint), the words are in none of them.
   */
  it('the running gateway: the status API, MQTT and the unchanged /metrics series', async () => {
    const missing = path.join(rig.dir, 'ttyUSB-missing');
    const cfg = await file([`gateway: { id: site-dur, dataDir: ${path.join(rig.dir, 'dur-data')} }`, TEST_LISTENERS, `analyzers: [ { id: xp-1, profile: sysmex-xp, serial: { path: ${missing} } } ]`, ''].join('\n'));
    const gw = startGatewayProcess(cfg);
    running.push(gw);
    const ready = await gw.ready;
    expect(ready, gw.err()).toBeDefined();
    const base = ready!.status.url.replace(/\/$/, '');

    const status = await until('the analyzer reported down', async () => {
      const s = await getJson<StatusBody>(`${base}/api/status`);
      return s.healthReasons.some((r) => r.endpoint === 'xp-1') ? s : undefined;
    });
    const reason = status.healthReasons.find((r) => r.endpoint === 'xp-1')!;
    const seconds = secondsDown(status, 'xp-1');
    expect(seconds).toBeLessThan(60); // read within the first minute: it must not say one
    expect(reason.message.startsWith(`Analyzer xp-1 in error for less than 1 min (cannot open ${missing}`), reason.message).toBe(true);

    const client = await mqtt.connectAsync(ready!.mqtt.url, { reconnectPeriod: 0 });
    cleanups.push(() => client.endAsync());
    const got = new Map<string, string>();
    client.on('message', (topic, payload) => got.set(topic, payload.toString()));
    await client.subscribeAsync(['lab-gateway/site-dur/status', 'lab-gateway/site-dur/alerts']);
    const retained = await until('a status on MQTT with the reason', () => {
      const body = got.get('lab-gateway/site-dur/status');
      const parsed = body === undefined ? undefined : (JSON.parse(body) as StatusBody);
      return parsed?.healthReasons?.some((r) => r.endpoint === 'xp-1') ? parsed : undefined;
    });
    const onTopic = retained.healthReasons.find((r) => r.endpoint === 'xp-1')!;
    const onTopicSeconds = secondsDown(retained, 'xp-1');
    expect(onTopicSeconds).toBeLessThan(60);
    expect(onTopic.message.startsWith('Analyzer xp-1 in error for less than 1 min ('), onTopic.message).toBe(true);
    const alert = JSON.parse(await until('the retained alert', () => got.get('lab-gateway/site-dur/alerts'))) as Reason;
    expect(alert.code).toBe('ENDPOINT_DOWN');
    expect(alert.message).toMatch(/^Analyzer xp-1 in error for less than 1 min \(/);

    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^lab_gateway_health_reason\{[^}]*code="ENDPOINT_DOWN"[^}]*\} 1$/m);
    const series = metrics.split('\n').find((l) => l.startsWith('lab_gateway_health_reason{') && l.includes('ENDPOINT_DOWN'))!;
    const labels = [...series.matchAll(/(\w+)="/g)].map((m) => m[1]).sort();
    expect(labels).toEqual(['code', 'endpoint', 'gateway', 'level']);
  }, 60_000);
});
