import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TrayIcons, trayIcon, trayTooltip, type TrayInput, type TrayStatus } from '../../desktop/src/tray-state.ts';
import { resolveTrayConfig } from '../../desktop/src/tray-config.ts';
import { resetScreen, screen } from '../fixtures/tray/electron-stand-in.ts';
import { builderFiles, trayRuntimePackages } from '../fixtures/tray/packaging.ts';

/**
 * Audit of what a technician sees in the tray: the pure logic (tray-state, tray-config) and the
 * Electron main process (desktop/src/main.ts) driven with a stand-in for Electron and for the MQTT
 * client, since the Electron binary is not available here. The stand-ins record what the tray
 * shows (icon, tooltip, menu, notifications, clipboard: test/fixtures/tray/electron-stand-in.ts)
 * and let a test deliver MQTT messages.
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// ------------------------------------------------------------------ Electron / MQTT stand-ins
interface FakeClient extends EventEmitter {
  subscribed: string[];
  url: string;
  options: Record<string, unknown>;
}
const h = vi.hoisted(() => ({
  clients: [] as FakeClient[],
  newClient: undefined as undefined | ((url: string, options: Record<string, unknown>) => FakeClient),
}));

vi.mock('electron', () => import('../fixtures/tray/electron-stand-in.ts'));
vi.mock('node:fs', async (real) => (await import('../fixtures/tray/desktop-fs.ts')).desktopFs(await real()));

vi.mock('mqtt', () => {
  const connect = (url: string, options: Record<string, unknown>) => h.newClient!(url, options);
  return { default: { connect }, connect };
});

function fakeClient(url: string, options: Record<string, unknown>): FakeClient {
  const c = Object.assign(new EventEmitter(), { subscribed: [] as string[], url, options }) as FakeClient & {
    subscribe(t: string[] | string): void;
    unsubscribe(t: string[] | string): void;
    end(): void;
  };
  c.subscribe = (t) => void c.subscribed.push(...(Array.isArray(t) ? t : [t]));
  c.unsubscribe = (t) => {
    const gone = new Set(Array.isArray(t) ? t : [t]);
    c.subscribed = c.subscribed.filter((s) => !gone.has(s));
  };
  c.end = () => {};
  h.clients.push(c);
  return c;
}

const NOW = Date.now();
const okStatus = (gatewayId: string): TrayStatus & { generatedAt: string } => ({ gatewayId, health: 'ok', healthReasons: [], online: true, generatedAt: new Date().toISOString() });

/** Start the tray's main process (a fresh module instance) and return its MQTT client. */
async function startTray(opts: { argv?: string[]; gatewayId?: string; userConfig?: object } = {}): Promise<FakeClient & { deliver(topic: string, body: unknown, retain?: boolean): void }> {
  if (opts.userConfig) writeFileSync(path.join(screen.userData, 'tray-config.json'), JSON.stringify(opts.userConfig));
  vi.stubGlobal(
    'fetch',
    vi.fn(async () => {
      if (!opts.gatewayId) throw new TypeError('fetch failed');
      return new Response(JSON.stringify(okStatus(opts.gatewayId)), { headers: { 'content-type': 'application/json' } });
    }),
  );
  const argv = process.argv;
  process.argv = ['electron', 'desktop/main.cjs', ...(opts.argv ?? [])];
  try {
    vi.resetModules();
    await import('../../desktop/src/main.ts');
    await vi.waitFor(() => expect(h.clients.length).toBe(1), { timeout: 5000 });
  } finally {
    process.argv = argv;
  }
  const client = h.clients[0]! as FakeClient & { deliver(topic: string, body: unknown, retain?: boolean): void };
  client.deliver = (topic, body, retain = false) => client.emit('message', topic, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), { retain });
  return client;
}

const tooltip = (): string => screen.tooltips.at(-1) ?? '';
/** Everything the tray lets a person read: tooltips, notifications, and the diagnostics it copies. */
function visibleText(): string {
  screen.menu.find((i) => i.label === 'Copy diagnostics')?.click?.();
  return [...screen.tooltips, ...screen.notifications.map((n) => `${n.title} ${n.body}`), ...screen.clipboard].join('\n');
}

describe('tray main process (Electron and MQTT stood in)', () => {
  beforeEach(() => {
    resetScreen(mkdtempSync(path.join(tmpdir(), 'tray-audit-')));
    h.clients = [];
    h.newClient = fakeClient;
    for (const k of Object.keys(process.env)) if (k.startsWith('LAB_GATEWAY_')) vi.stubEnv(k, '');
  });
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.unstubAllEnvs();
    rmSync(screen.userData, { recursive: true, force: true });
  });

  it('follows one gateway only: another gateway on the same broker going online does not turn a dead one green', async () => {
    // The gateway did not answer over HTTP when the tray started (it was down at login), so the
    // tray subscribed with a wildcard; lab-1 is the gateway it follows (its first status).
    const c = await startTray();
    c.emit('connect');
    expect(c.subscribed).toContain('lab-gateway/+/availability');
    c.deliver('lab-gateway/lab-1/status', okStatus('lab-1'), true);
    // lab-1 died: its Last Will, retained on the external broker. lab-2, another lab's gateway, is up.
    c.deliver('lab-gateway/lab-1/availability', { gatewayId: 'lab-1', state: 'offline', reason: 'connection to the gateway lost' }, true);
    c.deliver('lab-gateway/lab-2/status', okStatus('lab-2'), true);
    c.deliver('lab-gateway/lab-2/availability', { gatewayId: 'lab-2', state: 'online', at: new Date().toISOString() }, true);
    expect(tooltip()).toMatch(/^Lab gateway lab-1: offline/);
    expect(screen.icons.at(-1)).toBe('offline');
    // Once lab-1 is known, the tray listens to lab-1's topics only.
    expect(c.subscribed.filter((t) => t.includes('/+/'))).toEqual([]);
    expect(c.subscribed).toContain('lab-gateway/lab-1/availability');
  });

  it("does not notify another gateway's alerts", async () => {
    const c = await startTray();
    c.emit('connect');
    c.deliver('lab-gateway/lab-1/status', okStatus('lab-1'), true);
    const alert = { severity: 'critical', code: 'STORE_DOWN', message: 'Not accepting messages: the data disk is full', at: new Date().toISOString() };
    c.deliver('lab-gateway/lab-2/alerts', { gatewayId: 'lab-2', ...alert });
    expect(screen.notifications.filter((n) => n.shown)).toEqual([]);
    // The same alert from the tray's own gateway is notified: the silence above is about lab-2.
    c.deliver('lab-gateway/lab-1/alerts', { gatewayId: 'lab-1', ...alert });
    expect(screen.notifications.filter((n) => n.shown).map((n) => n.body)).toEqual(['Not accepting messages: the data disk is full']);
  });

  it('after reconnecting to a restarted gateway it does not show the status from before the restart as current', async () => {
    const c = await startTray({ gatewayId: 'lab-1' });
    c.emit('connect');
    c.deliver('lab-gateway/lab-1/availability', { gatewayId: 'lab-1', state: 'online' }, true);
    c.deliver('lab-gateway/lab-1/status', okStatus('lab-1'), true);
    expect(tooltip()).toBe('Lab gateway lab-1: all good');
    c.emit('close'); // embedded broker: the gateway process (and its broker) went away
    expect(tooltip()).toMatch(/offline/);
    c.emit('connect'); // the restarted gateway's broker accepts the tray again; nothing received yet
    expect(tooltip()).not.toMatch(/all good/);
    expect(screen.icons.at(-1)).not.toBe('ok');
  });

  it('closes the notification of an alarm when the alarm clears', async () => {
    const c = await startTray({ gatewayId: 'lab-1' });
    c.emit('connect');
    c.deliver('lab-gateway/lab-1/status', okStatus('lab-1'), true);
    const at = new Date().toISOString();
    c.deliver('lab-gateway/lab-1/alerts', { gatewayId: 'lab-1', severity: 'critical', code: 'STORE_DOWN', message: 'Not accepting messages: the store cannot commit', at });
    expect(screen.notifications).toHaveLength(1);
    expect(screen.notifications[0]).toMatchObject({ shown: true, closed: false });
    c.deliver('lab-gateway/lab-1/alerts', { gatewayId: 'lab-1', severity: 'info', code: 'STORE_DOWN_CLEARED', message: 'Resolved: store down', at });
    expect(screen.notifications[0]!.closed).toBe(true);
  });

  /**
   * The two sides of a link's `_CLEARED`: a cable plugged back (the running gateway's next status
   * no longer shows the alarm) closes the notification; a gateway stopping its links (its next
   * status shows them `stopped`, then `online: false`) clears nothing — the technician's
   * "Analyzer xn-1 disconnected" stays, and is not popped up again after the restart.
   */
  it("a link's alarm cleared by a running gateway is closed; one a stopping gateway drops is kept", async () => {
    const c = await startTray({ gatewayId: 'lab-1' });
    c.emit('connect');
    const reason = { level: 'degraded', code: 'ENDPOINT_DOWN', endpoint: 'xn-1', message: 'Analyzer xn-1 disconnected for 1 min' };
    const down = { ...okStatus('lab-1'), health: 'degraded', healthReasons: [reason], endpoints: [{ id: 'lis', state: 'listening' }, { id: 'xn-1', state: 'error' }] };
    const at = new Date().toISOString();
    const cleared = { gatewayId: 'lab-1', severity: 'info', code: 'ENDPOINT_DOWN_CLEARED', endpoint: 'xn-1', message: 'Resolved: endpoint down (xn-1)', at };
    c.deliver('lab-gateway/lab-1/status', down, true);
    expect(screen.notifications.map((n) => n.closed)).toEqual([false]);

    // The gateway stops: links first (its status still `online`), the alarm "resolved" on the way.
    c.deliver('lab-gateway/lab-1/status', { ...down, health: 'ok', healthReasons: [], endpoints: [{ id: 'lis', state: 'stopped' }, { id: 'xn-1', state: 'stopped' }] });
    c.deliver('lab-gateway/lab-1/alerts', cleared);
    c.deliver('lab-gateway/lab-1/status', { ...down, health: 'ok', healthReasons: [], online: false, endpoints: [{ id: 'lis', state: 'stopped' }, { id: 'xn-1', state: 'stopped' }] }, true);
    expect(screen.notifications.map((n) => n.closed)).toEqual([false]);
    expect(screen.icons).not.toContain('ok');

    // Restarted, the analyzer still unplugged: not notified again. Then the cable goes back in.
    const restarted = { ...down, startedAt: new Date().toISOString() };
    c.deliver('lab-gateway/lab-1/status', restarted, true);
    c.deliver('lab-gateway/lab-1/alerts', { ...cleared, code: 'ENDPOINT_DOWN', severity: 'warning', message: 'Analyzer xn-1 disconnected for 0 min' });
    expect(screen.notifications.map((n) => n.closed)).toEqual([false]);
    c.deliver('lab-gateway/lab-1/alerts', cleared);
    c.deliver('lab-gateway/lab-1/status', { ...restarted, health: 'ok', healthReasons: [], endpoints: [{ id: 'lis', state: 'listening' }, { id: 'xn-1', state: 'connected' }] });
    expect(screen.notifications.map((n) => n.closed)).toEqual([true]);
  });

  it('one notification per new alarm: status updates and a redelivered alert do not notify again', async () => {
    const c = await startTray({ gatewayId: 'lab-1' });
    c.emit('connect');
    // The reason names its endpoint, as the gateway's status does (status-model.ts health()).
    const degraded = { ...okStatus('lab-1'), health: 'degraded', healthReasons: [{ level: 'degraded', code: 'ENDPOINT_DOWN', endpoint: 'xn-1', message: 'Analyzer xn-1 disconnected for 1 min' }] };
    const alert = { gatewayId: 'lab-1', severity: 'warning', code: 'ENDPOINT_DOWN', endpoint: 'xn-1', message: 'Analyzer xn-1 disconnected for 0 min', at: new Date().toISOString() };
    c.deliver('lab-gateway/lab-1/alerts', alert);
    for (let i = 0; i < 20; i++) c.deliver('lab-gateway/lab-1/status', degraded, i === 0);
    c.deliver('lab-gateway/lab-1/alerts', alert); // QoS 1 redelivery after a reconnect of the gateway's publisher
    expect(screen.notifications.filter((n) => n.shown).map((n) => n.body)).toEqual(['Analyzer xn-1 disconnected for 0 min']);
    expect(tooltip()).toBe('Lab gateway lab-1: needs attention — Analyzer xn-1 disconnected for 1 min');
  });

  /**
   * User saw: the gateway box came back from a repair with its date a year ahead; the gateway said
   * so once at start-up (CLOCK_AHEAD_OF_STORED_DATA) on its alerts topic, before any tray could
   * connect to its embedded broker. The technician's tray, connecting a minute later, said "all
   * good" and never notified it. Promise: desktop/README.md "desktop notifications for new
   * alerts"; the gateway keeps such alerts in its status (`recentAlerts`, status/README.md).
   */
  it('notifies a one-off alert raised before it connected, from the status, once', async () => {
    const c = await startTray({ gatewayId: 'lab-1' });
    c.emit('connect');
    const clock = { severity: 'warning', code: 'CLOCK_AHEAD_OF_STORED_DATA', message: 'The system clock is 1 year past the newest data the gateway stored', at: new Date(Date.now() - 60_000).toISOString() };
    const withClock = { ...okStatus('lab-1'), recentAlerts: [clock] };
    c.deliver('lab-gateway/lab-1/status', withClock, true);
    expect(screen.notifications.filter((n) => n.shown).map((n) => n.body)).toEqual([clock.message]);
    // Later statuses carry it too, past the notification's dedup window: not notified again.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 20 * 60_000 });
    try {
      for (let i = 0; i < 3; i++) c.deliver('lab-gateway/lab-1/status', { ...withClock, generatedAt: new Date().toISOString() });
      // One that arrived live is not notified a second time when a status lists it.
      const live = { severity: 'warning', code: 'ODOO_REFERENCE_REFUSED', message: 'Odoo does not let the gateway read stock.lot', at: new Date().toISOString() };
      c.deliver('lab-gateway/lab-1/alerts', { gatewayId: 'lab-1', ...live });
      vi.setSystemTime(Date.now() + 20 * 60_000);
      c.deliver('lab-gateway/lab-1/status', { ...withClock, generatedAt: new Date().toISOString(), recentAlerts: [live, clock] });
    } finally {
      vi.useRealTimers();
    }
    expect(screen.notifications.filter((n) => n.shown).map((n) => n.body)).toEqual([clock.message, 'Odoo does not let the gateway read stock.lot']);
  });

  /**
   * User saw: IT restarted the gateway (an update) while the LIS kept its connection open; the
   * gateway said `stopping: true` while it waited for the LIS connection to close, and the tray
   * showed the health it still had — "all good" in green, or amber with an alarm — for a gateway
   * taking nothing in. Promise: status/README.md "A gateway that stops" (`stopping`), and the
   * tray's "Gateway stopping" rather than an alarm (desktop/README.md "What 'offline' means").
   */
  it('a stopping gateway reads "stopping", grey, and raises no alarm', async () => {
    const c = await startTray({ gatewayId: 'lab-1' });
    c.emit('connect');
    c.deliver('lab-gateway/lab-1/status', { ...okStatus('lab-1'), endpoints: [{ id: 'lis', state: 'connected' }] }, true);
    expect(screen.icons.at(-1)).toBe('ok');
    const iconsBefore = screen.icons.length;
    // Stopping: the links not stopped yet (the LIS connection drains), a reason raised meanwhile.
    const reason = { level: 'degraded', code: 'QUEUE_STALE', message: 'Oldest event waiting for Odoo for 16 min' };
    c.deliver('lab-gateway/lab-1/status', { ...okStatus('lab-1'), stopping: true, health: 'degraded', healthReasons: [reason], endpoints: [{ id: 'lis', state: 'connected' }] });
    expect(tooltip()).toMatch(/^Lab gateway lab-1: stopping/);
    expect(screen.icons.slice(iconsBefore)).toEqual(['offline']);
    expect(screen.notifications.filter((n) => n.shown)).toEqual([]);
  });

  it('a status with a health it does not know never crashes the tray nor leaves it without an icon', async () => {
    const c = await startTray({ gatewayId: 'lab-1' });
    c.emit('connect');
    c.deliver('lab-gateway/lab-1/availability', { gatewayId: 'lab-1', state: 'online' }, true);
    c.deliver('lab-gateway/lab-1/status', okStatus('lab-1'), true);
    expect(() => c.deliver('lab-gateway/lab-1/status', { ...okStatus('lab-1'), health: 'maintenance' })).not.toThrow();
    expect(screen.icons.at(-1)).not.toBe('ok');
  });

  it('shows a configuration mistake somewhere a person can read it (it silently watched 127.0.0.1 instead)', async () => {
    const c = await startTray({ argv: ['--gateway-url=htp://10.0.0.5:8484'] });
    expect(c.url).toBe('mqtt://127.0.0.1:1883'); // the bad value was skipped: the tray watches the default
    expect(visibleText()).toContain('htp:');
  });

  it('reports an MQTT credentials file it cannot read instead of connecting anonymously without a word', async () => {
    const user = path.join(screen.userData, 'mqtt.user');
    writeFileSync(user, 'tray\n');
    const missing = path.join(screen.userData, 'no-such-dir', 'mqtt.password');
    const c = await startTray({ gatewayId: 'lab-1', argv: [`--mqtt-username-file=${user}`, `--mqtt-password-file=${missing}`] });
    c.emit('error', Object.assign(new Error('Connection refused: Not authorized'), { code: 5 }));
    c.emit('close');
    expect(visibleText()).toContain(missing);
  });

  it('can trust the CA of an MQTTS broker (mqttCaFile), as a gateway with mqtt.tls needs', async () => {
    const ca = path.join(screen.userData, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    const c = await startTray({ gatewayId: 'lab-1', userConfig: { gatewayUrl: 'https://gw.lab:8484', mqttUrl: 'mqtts://gw.lab:8883', mqttCaFile: ca } });
    expect(c.url).toBe('mqtts://gw.lab:8883');
    expect(String(c.options['ca'])).toContain('BEGIN CERTIFICATE');
  });

  /**
   * User sees: on the lab's Windows PCs the tray turns amber, and no notification ever pops up
   * (or one does under "electron.app.Lab Gateway Tray", and switching the tray's notifications
   * off in Windows' settings does nothing). Windows shows an app's toasts, and keeps its
   * notification settings, by its Application User Model ID: the installer gives the Start menu
   * shortcut electron-builder's `appId`; Electron, unless told, runs as
   * `electron.app.<name>`, which no shortcut carries.
   * Promise: desktop/README.md "desktop notifications for new alerts" — on Windows too.
   */
  it('runs on Windows under the Application User Model ID its installer gives the Start menu shortcut', async () => {
    const { parse } = await import('yaml');
    const appId = (parse(readFileSync(path.join(root, 'build/electron-builder.yml'), 'utf8')) as { appId: string }).appId;
    const platform = Object.getOwnPropertyDescriptor(process, 'platform')!;
    Object.defineProperty(process, 'platform', { ...platform, value: 'win32' });
    try {
      await startTray({ gatewayId: 'lab-1' });
    } finally {
      Object.defineProperty(process, 'platform', platform);
    }
    expect(screen.appUserModelId).toBe(appId);
  });
});

// ------------------------------------------------------------------ pure logic
describe('tray icon for an unexpected status', () => {
  const live = (status: TrayStatus): TrayInput => ({ connection: 'connected', availability: 'online', status, statusAt: NOW - 1000, now: NOW });
  it('maps an unknown or missing health to one of the four icons, never to "ok"', () => {
    for (const health of ['maintenance', undefined]) {
      const input = live({ gatewayId: 'lab-1', health } as unknown as TrayStatus);
      expect(TrayIcons).toContain(trayIcon(input));
      expect(trayIcon(input)).not.toBe('ok');
      expect(trayTooltip(input)).not.toMatch(/all good/);
    }
  });
});

describe('tray configuration validation', () => {
  it('reports a misspelt key in a config file (the tray would silently watch 127.0.0.1)', () => {
    const c = resolveTrayConfig({ argv: [], env: {}, files: [{ path: '/etc/lab-gateway/tray.json', text: '{ "gatewayURL": "http://10.0.0.5:8484" }' }] });
    expect(c.gatewayUrl).toBe('http://127.0.0.1:8484');
    expect(c.issues.join('\n')).toMatch(/gatewayURL/);
  });

  it('reports MQTT credentials given by halves (a username file without a password file)', () => {
    const c = resolveTrayConfig({ argv: [], env: {}, files: [{ path: 'tray.json', text: '{ "gatewayUrl": "http://10.0.0.5:8484", "mqttUsernameFile": "/etc/lab-gateway/mqtt.user" }' }] });
    expect(c.mqttUsernameFile).toBe('/etc/lab-gateway/mqtt.user');
    expect(c.issues.join('\n')).toMatch(/mqttPasswordFile/);
  });
});

describe('the packaged tray contains what its main process loads', () => {
  it('every file main.cjs, main.js and the window load at run time, and the mqtt client with its dependencies, pass the `files` patterns', async () => {
    const { main, excluded, packed } = await builderFiles();

    // desktop/main.cjs loads ../dist/desktop/src/main.js, which imports its siblings; main.ts
    // reads <desktop>/assets/<state>-32.png and -64.png, the window icon and the preload.
    const mainTs = readFileSync(path.join(root, 'desktop/src/main.ts'), 'utf8');
    const siblings = [...mainTs.matchAll(/from '\.\/([\w-]+)\.ts'/g)].map((m) => `dist/desktop/src/${m[1]}.js`);
    expect(siblings.length).toBeGreaterThanOrEqual(3);
    const runtime = [
      main,
      'dist/desktop/src/main.js',
      ...siblings,
      'desktop/preload.cjs',
      'desktop/assets/app-icon-256.png',
      ...TrayIcons.flatMap((i) => [`desktop/assets/${i}-32.png`, `desktop/assets/${i}-64.png`]),
    ];
    for (const f of runtime) expect(packed(f), f).toBe(true);
    for (const f of runtime.filter((f) => f.startsWith('desktop/'))) expect(existsSync(path.join(root, f)), f).toBe(true);
    for (const i of TrayIcons) {
      for (const px of [32, 64]) {
        const png = readFileSync(path.join(root, `desktop/assets/${i}-${px}.png`));
        expect([png.readUInt32BE(16), png.readUInt32BE(20)], `${i}-${px}.png`).toEqual([px, px]);
      }
    }
    // Production dependencies are packed unless a `!node_modules/…` pattern drops them: none of
    // the mqtt client's may be dropped.
    for (const rel of trayRuntimePackages()) expect(excluded(`${rel}/package.json`), rel).toBe(false);
  });
});
