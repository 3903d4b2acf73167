import { describe, expect, it } from 'vitest';
import { RESTART_GRACE_MS, reasonChanges, type TrayStatus } from '../../desktop/src/tray-state.ts';

/**
 * Alarms the tray learns from the gateway's status (desktop/src/tray-state.ts reasonChanges): the
 * ones raised while it was not listening are notified once, and a gateway restart does not make
 * an alarm that is still there look new.
 */
const T0 = Date.parse('2026-12-07T07:00:00Z');
const iso = (ms: number): string => new Date(ms).toISOString();
const analyzerDown = { level: 'degraded', code: 'ENDPOINT_DOWN', endpoint: 'xn-1', message: 'Analyzer xn-1 disconnected for 3 min' };
function status(startedAt: number, generatedAt: number, healthReasons: TrayStatus['healthReasons'] = []): TrayStatus {
  return { gatewayId: 'lab-1', health: healthReasons.length ? 'degraded' : 'ok', healthReasons, startedAt: iso(startedAt), generatedAt: iso(generatedAt) };
}

describe('alarms from the status', () => {
  it('a reason the tray had not seen is an alarm to notify, once', () => {
    const first = reasonChanges(new Map(), status(T0, T0 + 60_000, [analyzerDown]), iso(T0 + 60_000));
    expect(first.appeared).toEqual([expect.objectContaining({ code: 'ENDPOINT_DOWN', endpoint: 'xn-1', severity: 'warning' })]);
    const again = reasonChanges(first.seen, status(T0, T0 + 62_000, [analyzerDown]), iso(T0 + 62_000));
    expect(again.appeared).toEqual([]);
    expect(reasonChanges(new Map(), status(T0, T0, [{ level: 'down', code: 'STORE_DOWN', message: 'Not accepting messages' }]), iso(T0)).appeared[0]!.severity).toBe('critical');
  });

  it('a reason gone from the same gateway process is cleared', () => {
    const seen = reasonChanges(new Map(), status(T0, T0 + 60_000, [analyzerDown]), iso(T0)).seen;
    expect(reasonChanges(seen, status(T0, T0 + 120_000), iso(T0)).cleared).toEqual(['ENDPOINT_DOWN:xn-1']);
  });

  /**
   * User saw (found while writing the tray's day test): IT restarts the gateway with the analyzer
   * still unplugged. The restarted gateway's first status does not name the analyzer yet (it is
   * still trying to connect), the next one does: the same alarm popped up a second time.
   */
  it('a restarted gateway that has not found the alarm again yet does not clear it, nor make it new', () => {
    const seen = reasonChanges(new Map(), status(T0, T0 + 60_000, [analyzerDown]), iso(T0)).seen;
    const restarted = T0 + 600_000;
    const early = reasonChanges(seen, status(restarted, restarted + 1000), iso(restarted));
    expect(early.cleared).toEqual([]);
    const found = reasonChanges(early.seen, status(restarted, restarted + 3000, [analyzerDown]), iso(restarted));
    expect(found.appeared).toEqual([]);
    // Past the grace, a restarted gateway that still does not show it: the alarm is over.
    const late = reasonChanges(early.seen, status(restarted, restarted + RESTART_GRACE_MS), iso(restarted));
    expect(late.cleared).toEqual(['ENDPOINT_DOWN:xn-1']);
  });
});
