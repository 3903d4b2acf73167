/**
 * ENDPOINT_QUIET on a running gateway: an analyzer on a real serial line (a socat pty pair) whose
 * port stays open while nothing comes — the cable loose at the analyzer's end, its host interface
 * switched off in its menu. The gateway in this process on a real store (LevelDB in a temp dir):
 * the analyzer's last message was stored three hours before the gateway starts (a restart keeps
 * when each link last spoke), so a 60-minute quiet alert is due at once, with no waiting and no
 * clock of the test's. Read over the real status API and MQTT (the retained status and the alert),
 * then cleared by a real transmission on the line.
 *
 * Before: the line read "connected", health OK, all day; results stopped reaching Odoo and nobody
 * knew until month end.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Gateway } from '../../gateway/src/gateway.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { localTime } from '../../gateway/src/status/status-model.ts';
import { MSG, MSG_TEXT } from '../fixtures/astm-link/harness.ts';
import { startPtyPair } from '../fixtures/astm-link/pty-pair.ts';
import { type Cleanups, openSerialSim } from '../fixtures/astm-link/sim-wires.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';
import { getJson, until } from '../fixtures/gateway-process.ts';
import { openStore } from '../fixtures/status/harness.ts';

const cleanups: Cleanups = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  vi.useRealTimers();
});

interface Reason {
  level: string;
  code: string;
  message: string;
  endpoint?: string;
}
interface StatusBody {
  health: string;
  healthReasons: Reason[];
  endpoints: Array<{ id: string; state: string; connections: number; lastMessageAt: string | null }>;
}

describe('ENDPOINT_QUIET on the running gateway', () => {
  it('an open serial line with nothing on it for the bound: warned on the status API and MQTT, cleared by the next transmission', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lgw-quiet-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const pair = await startPtyPair(dir);
    cleanups.push(() => pair.kill());
    const dataDir = path.join(dir, 'data');

    // The analyzer's last run, three hours ago, as the store kept it.
    const lastAt = Date.now() - 3 * 3_600_000;
    const store = await openStore(dataDir);
    await store.commit({ kind: 'astm', endpoint: 'chem-1', receivedAt: new Date(lastAt).toISOString(), encoding: 'latin1', raw: Buffer.from(MSG_TEXT, 'latin1'), status: 'accepted', messageType: 'ASTM' }, []);
    await store.close();

    const config = testGatewayConfig('site-quiet', dataDir, {
      analyzers: [{ id: 'chem-1', profile: 'generic-astm', serial: { path: pair.b }, quietAlert: { afterMinutes: 60 } }],
    });
    const gateway = new Gateway({ config, log: silentLogger });
    await gateway.start();
    cleanups.push(() => gateway.stop(5_000));
    const { sim } = await openSerialSim(pair.a, cleanups);
    const base = gateway.addresses().status.url.replace(/\/$/, '');

    const quiet = (s: StatusBody): Reason | undefined => s.healthReasons.find((r) => r.code === 'ENDPOINT_QUIET' && r.endpoint === 'chem-1');
    const status = await until('ENDPOINT_QUIET on /api/status', async () => {
      const s = await getJson<StatusBody>(`${base}/api/status`);
      return quiet(s) ? s : undefined;
    });
    // The line itself is fine: open, nothing wrong with it but the silence.
    expect(status.endpoints.find((e) => e.id === 'chem-1')).toMatchObject({ state: 'connected', lastMessageAt: new Date(lastAt).toISOString() });
    expect(status.health).toBe('degraded');
    const reason = quiet(status)!;
    expect(reason.level).toBe('degraded');
    expect(reason.message).toMatch(/^Analyzer chem-1 quiet: no message for 3 h( [0-9]+ min)?, the last at /);
    expect(reason.message).toContain(`the last at ${localTime(lastAt, Date.now())};`);
    expect(reason.message).toMatch(/host interface \(LIS output\) on in its menu and its cable in at both ends\?$/);

    // Every surface: the retained MQTT status and the alert (the tray notifies from these).
    const client = await mqtt.connectAsync(gateway.addresses().mqtt.url, { reconnectPeriod: 0 });
    cleanups.push(() => client.endAsync());
    const got = new Map<string, string>();
    const alerts: Reason[] = [];
    client.on('message', (topic, payload) => {
      got.set(topic, payload.toString());
      if (topic.endsWith('/alerts')) alerts.push(JSON.parse(payload.toString()) as Reason);
    });
    await client.subscribeAsync(['lab-gateway/site-quiet/status', 'lab-gateway/site-quiet/alerts']);
    const retained = await until('the retained status with ENDPOINT_QUIET', () => {
      const body = got.get('lab-gateway/site-quiet/status');
      return body !== undefined && quiet(JSON.parse(body) as StatusBody) ? (JSON.parse(body) as StatusBody) : undefined;
    });
    expect(quiet(retained)!.message).toBe(reason.message);
    expect(await until('the alert', () => alerts.find((a) => a.code === 'ENDPOINT_QUIET'))).toMatchObject({ endpoint: 'chem-1' });

    // The analyzer's host interface switched back on: one transmission clears it.
    const { replies } = await sim.sendMessage(MSG);
    expect(replies).toBe('<ACK>'.repeat(MSG.length + 1));
    const cleared = await until('ENDPOINT_QUIET cleared on /api/status', async () => {
      const s = await getJson<StatusBody>(`${base}/api/status`);
      return quiet(s) ? undefined : s;
    });
    expect(cleared.health).toBe('ok');
    expect(Date.parse(cleared.endpoints.find((e) => e.id === 'chem-1')!.lastMessageAt!)).toBeGreaterThan(lastAt);
    expect(await until('the cleared alert', () => alerts.find((a) => a.code === 'ENDPOINT_QUIET_CLEARED'))).toMatchObject({ severity: 'info', endpoint: 'chem-1' });
  }, 60_000);
});

/**
 * The same gateway on a box whose clock NTP sets forward after the gateway started (no
 * battery-backed clock: it booted three days behind). The system clock is faked in this process
 * (`Date` and `performance`, running with real time, as in status-clock-step-audit): NTP's step
 * moves `Date` only; real time passing (an hour, not waited for) moves both.
 *
 * Before: at the step the analyzer had been "quiet" for three days, and the tray warned the
 * technician of a silence that never happened (its message had come a minute before).
 */
describe('ENDPOINT_QUIET on a running gateway whose clock NTP sets forward three days', () => {
  it('no alert at the step; an hour of real silence afterwards is reported, the last message in the true time', async () => {
    const DAY = 86_400_000;
    const trueStart = Date.now();
    vi.useFakeTimers({ toFake: ['Date', 'performance'], shouldAdvanceTime: true, now: trueStart - 3 * DAY });
    const dir = await mkdtemp(path.join(tmpdir(), 'lgw-quiet-ntp-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const pair = await startPtyPair(dir);
    cleanups.push(() => pair.kill());
    const config = testGatewayConfig('site-quiet-ntp', path.join(dir, 'data'), {
      analyzers: [{ id: 'chem-1', profile: 'generic-astm', serial: { path: pair.b }, quietAlert: { afterMinutes: 60 } }],
    });
    const gateway = new Gateway({ config, log: silentLogger });
    await gateway.start();
    cleanups.push(() => gateway.stop(5_000));
    const { sim } = await openSerialSim(pair.a, cleanups);
    const base = gateway.addresses().status.url.replace(/\/$/, '');
    const quiet = (s: StatusBody): Reason | undefined => s.healthReasons.find((r) => r.code === 'ENDPOINT_QUIET' && r.endpoint === 'chem-1');

    // The analyzer's run, stamped with the box's clock three days behind.
    const { replies } = await sim.sendMessage(MSG);
    expect(replies).toBe('<ACK>'.repeat(MSG.length + 1));
    const stamped = await until('the message on /api/status', async () => (await getJson<StatusBody>(`${base}/api/status`)).endpoints.find((e) => e.id === 'chem-1')?.lastMessageAt ?? undefined);
    expect(Date.parse(stamped)).toBeLessThan(trueStart - 2 * DAY);

    vi.setSystemTime(Date.now() + 3 * DAY); // NTP answers
    const after = await getJson<StatusBody>(`${base}/api/status`); // health is worked out as it is asked for
    expect(quiet(after), 'quiet at the step').toBeUndefined();
    expect(after.endpoints.find((e) => e.id === 'chem-1')).toMatchObject({ state: 'connected', lastMessageAt: stamped });

    // An hour and a minute of real time with nothing on the line.
    vi.advanceTimersByTime(61 * 60_000);
    const status = await getJson<StatusBody>(`${base}/api/status`);
    const reason = quiet(status);
    expect(reason?.message).toMatch(/^Analyzer chem-1 quiet: no message for 1 h 1 min, the last at /);
    // The time the message came, told in the clock set right, not the stamp of the clock three days behind.
    expect(reason!.message).not.toContain(localTime(Date.parse(stamped), Date.now()));
  }, 60_000);
});
