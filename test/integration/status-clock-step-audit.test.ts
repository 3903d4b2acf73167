import { afterEach, describe, expect, it, vi } from 'vitest';
import path from 'node:path';
import mqtt from 'mqtt';
import type { Telemetry } from '../../gateway/src/telemetry.ts';
import { lisReceived, lisReceivedFrames, makeConfig, openStream, useMqttStatus, useStatusServer, waitFor, writeAdminToken } from '../fixtures/status/harness.ts';

/**
 * NTP steps the clock back (a box that booted with its clock an hour ahead is set right): the
 * status surfaces must keep pushing changes. Their throttles measured the gap since the last push
 * on the wall clock, so the next push waited for the wall clock to reach the old time again.
 * Clock steps are simulated as in test/unit/clock-step-back.test.ts: only `Date` is faked, and it
 * runs with real time.
 */
const HOUR = 3_600_000;

/** The box's clock, an hour ahead; `ntpStep()` sets it right as NTP does (one step back). */
function clockAhead(toFake: Array<'Date' | 'performance'> = ['Date']): { ntpStep: () => void } {
  vi.useFakeTimers({ toFake, shouldAdvanceTime: true, now: Date.now() + HOUR });
  return { ntpStep: () => vi.setSystemTime(Date.now() - HOUR) };
}

afterEach(() => {
  vi.useRealTimers();
});

/** Intake on the LIS link: the status changes (its received count). */
function intake(telemetry: Telemetry): void {
  telemetry.emit('intake.message', { endpoint: 'lis', kind: 'hl7', outcome: 'accepted', ackLatencyMs: 1, bytes: 100 });
}


describe('GET /api/stream after the clock stepped back', () => {
  const rig = useStatusServer('status-clock-stream-');

  // What the lab saw: the status page (and a script following /api/stream) froze after NTP set the
  // gateway's clock back an hour: messages kept coming, the page kept showing the counts of the
  // moment of the step, for an hour. The stream's throttle (at most one push per 250 ms) counted
  // from the last push on the wall clock: `lastSent + 250 - Date.now()` was an hour. Broke: the
  // stream's promise of the status pushed on change (≤ 4/s).
  it('keeps pushing changes', async () => {
    const { ntpStep } = clockAhead();
    let text = '';
    const socket = openStream(rig.port);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (text += d));
    const frames = (): number[] => lisReceivedFrames(text);
    try {
      await waitFor(() => frames().length >= 1, 'the first frame');
      intake(rig.telemetry);
      await waitFor(() => frames().at(-1) === 1, 'the change pushed before the step');

      ntpStep();
      intake(rig.telemetry);
      await waitFor(() => frames().at(-1) === 2, 'the change pushed after the step', 5_000);
      expect(frames().at(-1)).toBe(2);
    } finally {
      socket.destroy();
    }
  });
});

describe('MQTT status after the clock stepped back', () => {
  // The interval re-publish is an hour away: only a change can bring the new state.
  const rig = useMqttStatus('status-clock-mqtt-', { config: { id: 'lab-ntp', mqtt: { publishIntervalMs: HOUR } } });

  // What the lab saw: after NTP set the clock back, the trays and dashboards kept the status of the
  // moment of the step (an analyzer shown connected after it was unplugged, counts standing still)
  // until the next `mqtt.publishIntervalMs` tick. The publisher's coalescing (at most one publish
  // per 250 ms) waited `lastFlush + 250 - Date.now()`: the length of the step. Broke: "published
  // on change (coalesced, at most one publish per 250 ms)" (status/README.md).
  it('keeps publishing changes', async () => {
    const { ntpStep } = clockAhead();
    const received: number[] = [];
    const client = await mqtt.connectAsync(rig.url, { reconnectPeriod: 0 });
    try {
      client.on('message', (topic, payload) => {
        if (topic === 'lab-gateway/lab-ntp/status') received.push(lisReceived(payload.toString()));
      });
      await client.subscribeAsync('lab-gateway/lab-ntp/status', { qos: 0 });
      await waitFor(() => received.length >= 1, 'the retained status');
      intake(rig.telemetry);
      await waitFor(() => received.at(-1) === 1, 'the change published before the step');

      ntpStep();
      intake(rig.telemetry);
      await waitFor(() => received.at(-1) === 2, 'the change published after the step', 5_000);
      expect(received.at(-1)).toBe(2);
    } finally {
      await client.endAsync();
    }
  });
});

describe('admin token guessing limit after the clock stepped back', () => {
  const TOKEN = 'clock-step-admin-token';
  const rig = useStatusServer('status-clock-admin-', { config: (dir) => makeConfig(path.join(dir, 'data'), { status: { adminTokenFile: writeAdminToken(dir, TOKEN) } }) });

  const check = async (token: string): Promise<number> => (await fetch(`${rig.url}/api/admin/check`, { headers: { Authorization: `Bearer ${token}` } })).status;

  // What IT saw: after mistyping the admin token ten times, the tray's Pause/Resume and the page's
  // replay answered 429 "wait a minute" — and kept answering it for an hour, because NTP set the
  // clock back an hour meanwhile: the minute was measured on the wall clock, `now - since` stayed
  // negative until the clock had caught up. Broke: "429 until the minute is over" (status/README.md).
  it('lets the right token in again once a minute has passed', async () => {
    // performance is faked too, so that the test can let a minute pass without waiting for it.
    const { ntpStep } = clockAhead(['Date', 'performance']);
    let status = 0;
    for (let i = 0; i < 11 && status !== 429; i++) status = await check('wrong-token');
    expect(status, 'refused after ten wrong tokens').toBe(429);
    expect(await check(TOKEN), 'the right token too, within the minute').toBe(429);

    ntpStep();
    vi.advanceTimersByTime(61_000);
    expect(await check(TOKEN), 'a minute later').toBe(200);
  });
});
