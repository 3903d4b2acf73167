import { describe, expect, it } from 'vitest';
import {
  DEFAULT_NOTIFY_POLICY,
  EMPTY_NOTIFY_STATE,
  TOOLTIP_MAX,
  clearedAlertKey,
  decideNotification,
  forgetAlert,
  missedAlerts,
  normalizeStatus,
  diagnostics,
  parseJson,
  trayIcon,
  trayMenu,
  trayTooltip,
  type TrayAlert,
  type TrayInput,
  type TrayStatus,
} from '../../desktop/src/tray-state.ts';

const NOW = Date.parse('2026-03-01T10:00:00Z');
const ok: TrayStatus = { gatewayId: 'lab-1', health: 'ok', healthReasons: [], online: true };
const degraded: TrayStatus = {
  gatewayId: 'lab-1',
  health: 'degraded',
  healthReasons: [
    { level: 'degraded', code: 'ENDPOINT_DOWN', message: 'Analyzer xn-1 disconnected for 3 min' },
    { level: 'degraded', code: 'DEAD_LETTERS', message: '2 dead letters waiting for a decision (replay or discard)' },
  ],
};
const down: TrayStatus = { gatewayId: 'lab-1', health: 'down', healthReasons: [{ level: 'down', code: 'STORE_DOWN', message: 'Not accepting messages: the data disk is full' }] };
const live = (status: TrayStatus, extra: Partial<TrayInput> = {}): TrayInput => ({ connection: 'connected', availability: 'online', status, statusAt: NOW - 1000, now: NOW, ...extra });

describe('tray icon and tooltip', () => {
  it('follows the gateway health while connected', () => {
    expect(trayIcon(live(ok))).toBe('ok');
    expect(trayIcon(live(degraded))).toBe('degraded');
    expect(trayIcon(live(down))).toBe('down');
    expect(trayTooltip(live(ok))).toBe('Lab gateway lab-1: all good');
    expect(trayTooltip(live(degraded))).toBe('Lab gateway lab-1: needs attention — Analyzer xn-1 disconnected for 3 min (+1 more)');
    expect(trayTooltip(live(down))).toBe('Lab gateway lab-1: DOWN — Not accepting messages: the data disk is full');
  });

  it('is offline when the MQTT connection is lost, whatever the last status said', () => {
    const input = live(ok, { connection: 'lost' });
    expect(trayIcon(input)).toBe('offline');
    expect(trayTooltip(input)).toBe('Lab gateway lab-1: offline — connection to the gateway lost');
  });

  it('is offline on the Last Will / graceful offline availability and on a stopped status', () => {
    expect(trayIcon(live(ok, { availability: 'offline' }))).toBe('offline');
    expect(trayTooltip(live(ok, { availability: 'offline' }))).toMatch(/not running/);
    expect(trayIcon(live({ ...ok, online: false }))).toBe('offline');
  });

  it('is offline when the status is stale or never came', () => {
    expect(trayIcon(live(ok, { statusAt: NOW - 5 * 60_000 }))).toBe('offline');
    expect(trayTooltip(live(ok, { statusAt: NOW - 5 * 60_000 }))).toBe('Lab gateway lab-1: offline — no status for 5 min');
    expect(trayIcon({ connection: 'connecting', now: NOW })).toBe('offline');
    expect(trayTooltip({ connection: 'connected', now: NOW })).toBe('Lab gateway: offline — no status received yet');
  });

  it('a gateway that publishes every 10 minutes is stale only after three missed publishes, not after 90 s', () => {
    const quiet: TrayStatus = { ...ok, publishIntervalMs: 600_000 };
    expect(trayIcon(live(quiet, { statusAt: NOW - 9 * 60_000 }))).toBe('ok');
    expect(trayIcon(live(quiet, { statusAt: NOW - 29 * 60_000 }))).toBe('ok');
    expect(trayIcon(live(quiet, { statusAt: NOW - 31 * 60_000 }))).toBe('offline');
    // A short interval never makes it stricter than 90 s.
    expect(trayIcon(live({ ...ok, publishIntervalMs: 5_000 }, { statusAt: NOW - 60_000 }))).toBe('ok');
  });

  it('keeps the tooltip on one line within the Windows limit', () => {
    const long: TrayStatus = { ...degraded, healthReasons: [{ level: 'degraded', code: 'X', message: 'x'.repeat(300) }] };
    const t = trayTooltip(live(long));
    expect(t.length).toBe(TOOLTIP_MAX);
    expect(t.endsWith('…')).toBe(true);
    expect(t).not.toContain('\n');
  });
});

describe('tray menu', () => {
  it('shows pause/resume only to an administrator, and the right one', () => {
    expect(trayMenu(live(ok), { isAdmin: false }).map((i) => i.id)).toEqual(['state', 'separator', 'open', 'copy-diagnostics', 'separator', 'quit']);
    expect(trayMenu(live(ok), { isAdmin: true }).map((i) => i.id)).toEqual(['state', 'separator', 'open', 'pause-relay', 'copy-diagnostics', 'separator', 'quit']);
    expect(trayMenu(live({ ...ok, relayPaused: true }), { isAdmin: true })[3]).toEqual({ id: 'resume-relay', label: 'Resume sending to Odoo', enabled: true });
  });

  it('disables relay control while the gateway is offline', () => {
    expect(trayMenu(live(ok, { connection: 'lost' }), { isAdmin: true })[3]!.enabled).toBe(false);
  });

  it('opens with the state line (and a settings problem) as disabled entries', () => {
    const menu = trayMenu(live(degraded, { configIssues: ['gatewayUrl: not a URL', 'mqttUrl: not a URL'] }), { isAdmin: false });
    expect(menu[0]).toEqual({ id: 'state', label: trayTooltip(live(degraded)), enabled: false });
    expect(menu[1]).toEqual({ id: 'settings', label: 'Tray settings: gatewayUrl: not a URL (+1 more: see Copy diagnostics)', enabled: false });
  });
});

describe('diagnostics', () => {
  it('names the addresses, the state and every reason', () => {
    const text = diagnostics(live(degraded), { gatewayUrl: 'http://10.0.0.5:8484', mqttUrl: 'mqtt://10.0.0.5:1883', appVersion: '0.1.0' });
    expect(text).toContain('Gateway: http://10.0.0.5:8484');
    expect(text).toContain('MQTT: mqtt://10.0.0.5:1883 (connected)');
    expect(text).toContain('State: degraded');
    expect(text).toContain('- [degraded] 2 dead letters waiting for a decision (replay or discard)');
  });
});

describe('notification decisions', () => {
  const alert = (code: string, severity: TrayAlert['severity'] = 'warning', endpoint?: string): TrayAlert => ({ severity, code, message: `${code} happened`, at: '', ...(endpoint ? { endpoint } : {}) });

  it('notifies a new warning once and drops duplicates within the dedup window', () => {
    const first = decideNotification(EMPTY_NOTIFY_STATE, alert('ENDPOINT_DOWN', 'warning', 'xn-1'), NOW);
    expect(first).toMatchObject({ notify: true, title: 'Lab gateway: needs attention', body: 'ENDPOINT_DOWN happened', urgency: 'normal' });
    const dup = decideNotification(first.state, alert('ENDPOINT_DOWN', 'warning', 'xn-1'), NOW + 60_000);
    expect(dup).toMatchObject({ notify: false, reason: 'duplicate' });
    expect(decideNotification(first.state, alert('ENDPOINT_DOWN', 'warning', 'xn-2'), NOW + 60_000).notify).toBe(true);
    expect(decideNotification(dup.state, alert('ENDPOINT_DOWN', 'warning', 'xn-1'), NOW + DEFAULT_NOTIFY_POLICY.dedupWindowMs + 1).notify).toBe(true);
  });

  it('rate-limits bursts, lets critical alerts through and summarises what was held back', () => {
    let state = EMPTY_NOTIFY_STATE;
    const shown: string[] = [];
    for (let i = 0; i < 6; i++) {
      const d = decideNotification(state, alert(`W${i}`), NOW + i);
      state = d.state;
      if (d.notify) shown.push(d.body);
    }
    expect(shown).toHaveLength(DEFAULT_NOTIFY_POLICY.maxPerWindow);
    expect(state.suppressed).toBe(3);
    const crit = decideNotification(state, alert('STORE_DOWN', 'critical'), NOW + 10);
    expect(crit).toMatchObject({ notify: true, urgency: 'critical', body: 'STORE_DOWN happened (and 3 other alerts)' });
    expect(crit.state.suppressed).toBe(0);
    const later = decideNotification(crit.state, alert('W9'), NOW + DEFAULT_NOTIFY_POLICY.rateWindowMs + 100);
    expect(later.notify).toBe(true);
  });

  it('does not notify info alerts by default', () => {
    expect(decideNotification(EMPTY_NOTIFY_STATE, alert('ENDPOINT_DOWN_CLEARED', 'info'), NOW)).toMatchObject({ notify: false, reason: 'info' });
    expect(decideNotification(EMPTY_NOTIFY_STATE, alert('X', 'info'), NOW, { ...DEFAULT_NOTIFY_POLICY, notifyInfo: true }).notify).toBe(true);
  });
});

describe('payload parsing', () => {
  it('never throws on malformed payloads', () => {
    expect(parseJson('{"a":1}')).toEqual({ a: 1 });
    expect(parseJson(Buffer.from('offline'))).toBeUndefined();
    expect(parseJson('42')).toBeUndefined();
  });
});

describe('unexpected payloads and settings problems', () => {
  it('normalises a status with an unknown or missing health to degraded with "unknown status" first', () => {
    expect(normalizeStatus({ health: 'ok' })).toBeUndefined(); // no gatewayId
    const s = normalizeStatus({ gatewayId: 'lab-1', health: 'maintenance', healthReasons: 'nope' })!;
    expect(s.health).toBe('degraded');
    expect(s.healthReasons![0]!.message).toBe('unknown status (health "maintenance")');
    expect(trayTooltip(live(s))).toBe('Lab gateway lab-1: needs attention — unknown status (health "maintenance")');
    expect(normalizeStatus({ gatewayId: 'lab-1' })!.healthReasons![0]!.message).toBe('unknown status (no health)');
    expect(normalizeStatus(ok)).toEqual(ok);
  });

  it('adds a settings line to the tooltip, within the Windows limit, and lists every issue in the diagnostics', () => {
    const issues = ['command line --gateway-url: gatewayUrl must use http: or https:, got htp:', 'second'];
    const t = trayTooltip(live(degraded, { configIssues: issues }));
    expect(t.length).toBeLessThanOrEqual(TOOLTIP_MAX);
    expect(t.split('\n')).toHaveLength(2);
    expect(t.split('\n')[1]).toMatch(/^Tray settings: command line --gateway-url/);
    const text = diagnostics(live(ok), { gatewayUrl: 'http://x', mqttUrl: 'mqtt://x', appVersion: '0.1.0', issues, sources: { gatewayUrl: 'default' } });
    expect(text).toContain('- second');
    expect(text).toContain('- gatewayUrl: default');
  });

  it('shows why the broker refused the connection', () => {
    expect(trayTooltip(live(ok, { connection: 'lost', connectionError: 'Connection refused: Not authorized' }))).toBe('Lab gateway lab-1: offline — connection to the gateway lost: Connection refused: Not authorized');
  });

  it('maps <CODE>_CLEARED to the key of the alarm it clears and forgets its dedup entry', () => {
    const a: TrayAlert = { severity: 'warning', code: 'ENDPOINT_DOWN', endpoint: 'xn-1', message: 'down', at: '' };
    const first = decideNotification(EMPTY_NOTIFY_STATE, a, NOW);
    const key = clearedAlertKey({ ...a, severity: 'info', code: 'ENDPOINT_DOWN_CLEARED' })!;
    expect(key).toBe('ENDPOINT_DOWN:xn-1');
    expect(clearedAlertKey(a)).toBeUndefined();
    expect(decideNotification(forgetAlert(first.state, key), a, NOW + 1000).notify).toBe(true);
  });
});

describe('one-off alerts raised while the tray was not connected (recentAlerts)', () => {
  const at = (msAgo: number): string => new Date(NOW - msAgo).toISOString();
  const status = (recentAlerts: TrayAlert[]): TrayStatus => ({ ...ok, generatedAt: new Date(NOW).toISOString(), recentAlerts });

  // A tray started at login the day after the gateway's restart does not pop the restart's alerts
  // up as news; one whose problem was reported over since (its `_CLEARED` listed after it) neither.
  it('are the recent ones not cleared since, oldest first, each once', () => {
    const target: TrayAlert = { severity: 'info', code: 'ODOO_TARGET_CHANGED', message: 'another Odoo', at: at(26 * 3_600_000) };
    const refused: TrayAlert = { severity: 'warning', code: 'ODOO_REFERENCE_REFUSED', message: 'stock.lot refused', at: at(30 * 60_000) };
    const allowed: TrayAlert = { severity: 'info', code: 'ODOO_REFERENCE_REFUSED_CLEARED', message: 'stock.lot read again', at: at(20 * 60_000) };
    const clock: TrayAlert = { severity: 'warning', code: 'CLOCK_STEPPED_BACK', message: 'clock went back', at: at(10 * 60_000) };
    const link: TrayAlert = { severity: 'warning', code: 'GW_ASTM_LINK', endpoint: 'xn-1', message: 'order download refused', at: at(5 * 60_000) };
    const first = missedAlerts(new Set(), status([link, clock, allowed, refused, target]));
    expect(first.missed.map((a) => a.code)).toEqual(['CLOCK_STEPPED_BACK', 'GW_ASTM_LINK']);
    expect(missedAlerts(first.seen, status([link, clock, allowed, refused, target])).missed).toEqual([]);
  });
});
