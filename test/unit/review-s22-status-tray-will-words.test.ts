/**
 * The tray's words for an `offline` availability and a stale status, by what the gateway's page
 * says (desktop/src/tray-state.ts `isOffline`): the Last Will of a gateway cut off from the broker
 * is not a stopped gateway. The payloads are the gateway's own (mqtt-publisher.ts: the will's
 * reason, a graceful stop's). The tray's main process with a real gateway and Mosquitto:
 * test/e2e/review-s22-status-tray-will-running-gateway.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { trayIcon, trayTooltip, type TrayInput, type TrayStatus } from '../../desktop/src/tray-state.ts';

const NOW = Date.parse('2026-03-01T10:00:00Z');
const ok: TrayStatus = { gatewayId: 'lab-1', health: 'ok', healthReasons: [], online: true };
const input = (extra: Partial<TrayInput>): TrayInput => ({ connection: 'connected', availability: 'online', status: ok, statusAt: NOW - 1000, now: NOW, ...extra });

describe('an offline gateway in words', () => {
  it('a graceful stop is "not running", whatever its page answered before', () => {
    for (const gatewayAnswers of [undefined, false, true]) {
      const i = input({ availability: 'offline', availabilityReason: 'gateway stopped', gatewayAnswers });
      expect(trayTooltip(i)).toBe('Lab gateway lab-1: offline — the gateway is not running');
      expect(trayIcon(i)).toBe('offline');
    }
  });

  it('the Last Will is "not running, or cut off" until the page answers, then "runs"', () => {
    const will = input({ availability: 'offline', availabilityReason: 'connection to the gateway lost' });
    expect(trayTooltip(will)).toBe('Lab gateway lab-1: offline — the gateway is not running, or is cut off from the MQTT broker');
    expect(trayTooltip({ ...will, gatewayAnswers: false })).toBe(trayTooltip(will));
    const runs = trayTooltip({ ...will, gatewayAnswers: true });
    expect(runs).toBe('Lab gateway lab-1: offline — the gateway runs (its status page answers), but its status does not reach the MQTT broker');
    expect(runs.length).toBeLessThanOrEqual(127);
    expect(trayIcon({ ...will, gatewayAnswers: true })).toBe('offline');
  });

  it('a status gone stale while the page answers says so', () => {
    const stale = input({ statusAt: NOW - 5 * 60_000 });
    expect(trayTooltip(stale)).toBe('Lab gateway lab-1: offline — no status for 5 min');
    const runs = trayTooltip({ ...stale, gatewayAnswers: true });
    expect(runs).toBe('Lab gateway lab-1: offline — no status for 5 min, but the gateway runs (its status page answers)');
    expect(runs.length).toBeLessThanOrEqual(127);
    // A fresh status: the answer says nothing more.
    expect(trayTooltip({ ...input({}), gatewayAnswers: true })).toBe('Lab gateway lab-1: all good');
  });
});
