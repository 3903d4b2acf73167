/**
 * The tray's rule for a status the broker handed out retained (desktop/README.md "What offline
 * means"): its age counts from when the gateway published it, beyond a tolerance of the stale
 * bound for the two machines' clocks; a live status, and the time since any status arrived, stay
 * on the monotonic clock (tray-clock-step-audit). The end-to-end proof with a real broker, gateway
 * and tray is test/e2e/tray-retained-status-age-audit.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { diagnostics, isOffline, publishedBeforeArrival, trayIcon, type TrayInput, type TrayStatus } from '../../desktop/src/tray-state.ts';

const ARRIVED = Date.parse('2026-03-01T10:00:00Z');
const MIN = 60_000;

/** A status `publishedAgo` ms before it arrived (by the gateway's clock), seen `sinceArrival` ms after (monotonic), the PC's clock at `now`. */
function input(publishedAgo: number, sinceArrival: number, retained: boolean, now = ARRIVED + sinceArrival): TrayInput {
  const status: TrayStatus = { gatewayId: 'lab-1', health: 'ok', healthReasons: [], online: true, publishIntervalMs: 30_000, generatedAt: new Date(ARRIVED - publishedAgo).toISOString() };
  return { connection: 'connected', availability: 'online', status, statusAt: ARRIVED, statusAgeMs: sinceArrival, statusRetained: retained, now };
}

describe('a retained status published before it arrived', () => {
  it('an hour old: grey at once, with its age', () => {
    expect(isOffline(input(60 * MIN, 0, true))).toEqual({ offline: true, why: 'no status for 60 min' });
    expect(trayIcon(input(60 * MIN, 0, true))).toBe('offline');
    expect(diagnostics(input(60 * MIN, 0, true), { gatewayUrl: 'http://127.0.0.1:8484', mqttUrl: 'mqtt://127.0.0.1:1883', appVersion: '1.0.0' })).toContain('(retained, published 2026-03-01T09:00:00.000Z, 3600 s before it arrived)');
  });

  it('within the bound (a running gateway republishes within it), or the clocks apart by up to the bound again: green, as when live', () => {
    expect(trayIcon(input(25_000, 0, true))).toBe('ok');
    expect(trayIcon(input(170_000, 0, true))).toBe('ok');
    // …and it turns grey once the bound has passed since it arrived, as any status.
    expect(isOffline(input(25_000, 91_000, true))).toEqual({ offline: true, why: 'no status for 2 min' });
  });

  it('beyond the bound but within the tolerance: what exceeds the bound is counted, so it is grey sooner', () => {
    // Published 150 s before it arrived: 60 s beyond the 90 s bound; grey once 30 s more passed.
    expect(trayIcon(input(150_000, 29_000, true))).toBe('ok');
    expect(isOffline(input(150_000, 31_000, true))).toEqual({ offline: true, why: 'no status for 3 min' });
  });

  it('a live status is counted from its arrival only, whatever the two clocks say', () => {
    expect(trayIcon(input(60 * MIN, 0, false))).toBe('ok');
    expect(publishedBeforeArrival(input(60 * MIN, 0, false))).toBe(0);
  });

  it('a step of the PC\'s clock after arrival changes nothing: both clocks were read as it arrived', () => {
    expect(trayIcon(input(25_000, 10_000, true, ARRIVED + 10_000 + 60 * MIN))).toBe('ok');
    expect(trayIcon(input(25_000, 10_000, true, ARRIVED + 10_000 - 60 * MIN))).toBe('ok');
    expect(isOffline(input(60 * MIN, 10_000, true, ARRIVED - 60 * MIN))).toEqual({ offline: true, why: 'no status for 60 min' });
  });

  it('a gateway clock ahead of the PC\'s (published "after" it arrived) is no age; without generatedAt neither', () => {
    expect(publishedBeforeArrival(input(-10 * MIN, 0, true))).toBe(0);
    const { generatedAt: _, ...bare } = input(60 * MIN, 0, true).status!;
    expect(trayIcon({ ...input(60 * MIN, 0, true), status: bare })).toBe('ok');
  });
});
