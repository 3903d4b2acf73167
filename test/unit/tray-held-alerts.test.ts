import { describe, expect, it } from 'vitest';
import { DEFAULT_NOTIFY_POLICY, EMPTY_NOTIFY_STATE, alertKey, decideNotification, forgetAlert, heldSummaryDue, isOffline, summarizeHeld, type NotifyState, type TrayAlert } from '../../desktop/src/tray-state.ts';

/**
 * The alerts the tray's rate limit (3 a minute) holds back are summarised in one notification once
 * it allows, naming them (desktop/README.md "Notifications"); the running tray's side is
 * test/e2e/tray-alarm-flood-audit.test.ts. And the age of the last status as time passed, which a
 * step of the PC's clock does not move (the running tray: test/e2e/tray-clock-step-audit.test.ts).
 */
const NOW = Date.parse('2026-03-06T10:00:00Z');
const down = (id: string): TrayAlert => ({ severity: 'warning', code: 'ENDPOINT_DOWN', endpoint: id, message: `Analyzer ${id} disconnected for less than 1 min`, at: new Date(NOW).toISOString() });

function burst(ids: string[]): NotifyState {
  let state = EMPTY_NOTIFY_STATE;
  for (const id of ids) state = decideNotification(state, down(id), NOW).state;
  return state;
}

describe('alerts held back by the rate limit', () => {
  it('are summarised once the window has room, every one named, and not notified again', () => {
    const ids = Array.from({ length: 20 }, (_, i) => `xn-${i + 1}`);
    const state = burst(ids);
    expect(state.held?.map(alertKey)).toEqual(ids.slice(3).map((id) => `ENDPOINT_DOWN:${id}`));
    const due = heldSummaryDue(state, NOW)!;
    expect(due).toBe(NOW + DEFAULT_NOTIFY_POLICY.rateWindowMs);
    expect(summarizeHeld(state, due - 1)).toMatchObject({ notify: false, reason: 'rate-limited' });
    const d = summarizeHeld(state, due);
    expect(d).toMatchObject({ notify: true, title: 'Lab gateway: 17 more alerts', urgency: 'normal' });
    if (!d.notify) throw new Error('unreachable');
    const lines = d.body.split('\n');
    expect(lines.slice(0, 4)).toEqual(['xn-4', 'xn-5', 'xn-6', 'xn-7'].map((id) => `Analyzer ${id} disconnected for less than 1 min`));
    expect(lines[4]).toBe(`+13 more (${ids.slice(7).join(', ')}): open the status window`);
    expect(heldSummaryDue(d.state, due)).toBeUndefined();
    // The same alarms arriving again (the next status) are duplicates now.
    expect(decideNotification(d.state, down('xn-20'), due + 1)).toMatchObject({ notify: false, reason: 'duplicate' });
  });

  it('one that clears before the summary is not in it', () => {
    const state = forgetAlert(burst(['xn-1', 'xn-2', 'xn-3', 'xn-4', 'xn-5']), 'ENDPOINT_DOWN:xn-4');
    const d = summarizeHeld(state, NOW + DEFAULT_NOTIFY_POLICY.rateWindowMs);
    expect(d).toMatchObject({ notify: true, title: 'Lab gateway: 1 more alert', body: 'Analyzer xn-5 disconnected for less than 1 min' });
    expect(heldSummaryDue(forgetAlert(state, 'ENDPOINT_DOWN:xn-5'), NOW)).toBeUndefined();
  });
});

describe("a status's age is time passed, not the PC's clock", () => {
  const status = { gatewayId: 'lab-1', health: 'ok' as const, healthReasons: [], online: true, publishIntervalMs: 30_000 };
  it('a clock set back an hour does not keep a silent gateway green', () => {
    // The status arrived 2 min ago by the monotonic clock; the wall clock was set back an hour since.
    expect(isOffline({ connection: 'connected', availability: 'online', status, statusAt: NOW, now: NOW - 3_600_000 + 120_000, statusAgeMs: 120_000 })).toEqual({ offline: true, why: 'no status for 2 min' });
  });
  it('a clock set forward an hour does not make a fresh status stale', () => {
    expect(isOffline({ connection: 'connected', availability: 'online', status, statusAt: NOW, now: NOW + 3_600_000 + 5_000, statusAgeMs: 5_000 }).offline).toBe(false);
  });
});
