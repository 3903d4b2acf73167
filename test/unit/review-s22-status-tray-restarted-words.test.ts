/**
 * A graceful stop's words by who answers the gateway's page (desktop/src/tray-state.ts
 * `isOffline`): the stopping process itself (started before the stop's `at`) is the stop; a
 * process started after it is the gateway started again, whose status does not reach the broker.
 * The tray's main process with a real gateway and Mosquitto:
 * test/e2e/review-s22-status-tray-restarted-gateway.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { trayIcon, trayTooltip, type TrayInput, type TrayStatus } from '../../desktop/src/tray-state.ts';

const NOW = Date.parse('2026-03-01T10:00:00Z');
const ok: TrayStatus = { gatewayId: 'lab-1', health: 'ok', healthReasons: [], online: true, startedAt: '2026-03-01T08:00:00.000Z' };
const stopped: TrayInput = { connection: 'connected', availability: 'offline', availabilityReason: 'gateway stopped', availabilityStoppedAt: '2026-03-01T09:58:00.000Z', status: ok, statusAt: NOW - 150_000, now: NOW };

describe('a graceful stop and the page answering', () => {
  it('the stopping process answering is the stop', () => {
    expect(trayTooltip({ ...stopped, gatewayAnswers: true, answeredStartedAt: '2026-03-01T08:00:00.000Z' })).toBe('Lab gateway lab-1: offline — the gateway is not running');
    expect(trayTooltip({ ...stopped, gatewayAnswers: true })).toBe('Lab gateway lab-1: offline — the gateway is not running');
  });

  it('a process started after the stop runs, cut off from the broker', () => {
    const again = { ...stopped, gatewayAnswers: true, answeredStartedAt: '2026-03-01T09:59:00.000Z' };
    expect(trayTooltip(again)).toBe('Lab gateway lab-1: offline — the gateway runs (its status page answers), but its status does not reach the MQTT broker');
    expect(trayIcon(again)).toBe('offline');
    // It no longer answers: not running.
    expect(trayTooltip({ ...again, gatewayAnswers: false, answeredStartedAt: undefined })).toBe('Lab gateway lab-1: offline — the gateway is not running');
    // A stop from a gateway that does not say when (no `at`): not running, as before.
    expect(trayTooltip({ ...again, availabilityStoppedAt: undefined })).toBe('Lab gateway lab-1: offline — the gateway is not running');
  });
});
