/**
 * ENDPOINT_QUIET (status-model.ts, config `analyzers[].quietAlert` / `hl7[].quietAlert`): an
 * endpoint that has received no message for `afterMinutes` counted inside its hours. The status
 * model on a real store in a temp dir, its two clocks set by the test and polled by hand: the wall
 * clock (`clock.now`, what `Date.now()` reads, which NTP or a person may step) and the monotonic
 * clock (`clock.mono`, what `performance.now()` reads, which no step moves). Time passing moves
 * both (`at`); a clock step moves the wall clock only (`step`). The lab's time zone is the
 * process's (TZ), as the gateway sets it from `gateway.timeZone`.
 *
 * Before: a serial analyzer whose cable came loose at its end, or whose host interface was
 * switched off in its menu, kept its port open and read "connected", health OK, all day; results
 * stopped reaching Odoo and nobody knew until month end.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import type { QuietAlertConfig } from '../../gateway/src/config/types.ts';
import { StatusModel, type StatusAlert } from '../../gateway/src/status/status-model.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { makeConfig, openStore, tempDir } from '../fixtures/status/harness.ts';

const MIN = 60_000;
const cleanups: Array<() => Promise<void> | void> = [];
let savedTz: string | undefined;
beforeEach(() => {
  savedTz = process.env.TZ;
  process.env.TZ = 'Europe/Berlin';
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

/** Epoch ms of a wall-clock time in the lab (Europe/Berlin, UTC+01:00 in March before the 29th). */
const lab = (y: number, mo: number, d: number, h: number, mi = 0): number => new Date(y, mo - 1, d, h, mi).getTime();

const WEEKDAYS: QuietAlertConfig = { afterMinutes: 90, between: '07:00-19:00', days: 'Mon-Fri' };

async function model(opts: { analyzer?: QuietAlertConfig; lis?: QuietAlertConfig; start: number }) {
  const t = tempDir('status-quiet-');
  cleanups.push(t.cleanup);
  const config = makeConfig(path.join(t.dir, 'data'), { id: 'lab-quiet' });
  if (opts.analyzer) config.analyzers[0]!.quietAlert = opts.analyzer;
  if (opts.lis) config.hl7[0]!.quietAlert = opts.lis;
  const store = await openStore(config.gateway.dataDir);
  cleanups.push(() => store.close());
  const clock = { now: opts.start, mono: 1_000_000 };
  const telemetry = new Telemetry();
  const m = new StatusModel({
    config,
    store,
    telemetry,
    version: 't',
    startedAt: new Date(clock.now).toISOString(),
    now: () => clock.now,
    mono: () => clock.mono,
    pollIntervalMs: 3_600_000, // polled by the test only
    diskIntervalMs: 3_600_000,
    readDisk: async () => ({ freeBytes: 10 * 1024 ** 3, totalBytes: 20 * 1024 ** 3 }),
  });
  const alerts: StatusAlert[] = [];
  m.onAlert((a) => alerts.push(a));
  await m.start();
  cleanups.push(() => m.stop());
  // The analyzer's line open all along (a serial port stays open when the cable is pulled at the far end).
  telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'connected', connections: 1 });
  telemetry.emit('endpoint.state', { endpoint: 'lis', kind: 'hl7', state: 'listening', connections: 0 });
  /** Time passes until the wall clock reads `ms` (both clocks move), and the model polls, as its timer does. */
  const at = (ms: number): void => {
    clock.mono += ms - clock.now;
    clock.now = ms;
    m.poll();
  };
  /** The wall clock is set to `ms` and no time passes (NTP's step, a person setting the time, a VM's clock set right on resume); the model polls. */
  const step = (ms: number): void => {
    clock.now = ms;
    m.poll();
  };
  const message = (endpoint: 'xn-1' | 'lis', outcome: 'accepted' | 'rejected' = 'accepted'): void =>
    telemetry.emit('intake.message', { endpoint, kind: endpoint === 'lis' ? 'hl7' : 'astm', outcome, ackLatencyMs: 1, bytes: 100 });
  const quiet = (endpoint = 'xn-1') => m.toApiStatus().healthReasons.find((r) => r.code === 'ENDPOINT_QUIET' && r.endpoint === endpoint);
  return { model: m, alerts, at, step, message, quiet, telemetry };
}

describe('ENDPOINT_QUIET', () => {
  it('counts only inside the window: raised afterMinutes into the day, naming the analyzer, how long, the last message in the lab time and what to check', async () => {
    // Tuesday 3 March 2026, 05:00 in the lab; the night shift's last run at 06:30.
    const q = await model({ analyzer: WEEKDAYS, start: lab(2026, 3, 3, 5) });
    q.at(lab(2026, 3, 3, 6, 30));
    q.message('xn-1');
    q.at(lab(2026, 3, 3, 7, 0));
    expect(q.quiet()).toBeUndefined();
    // 90 min after the last message, but only 89 of them inside the window.
    q.at(lab(2026, 3, 3, 8, 29));
    expect(q.quiet()).toBeUndefined();
    expect(q.model.toApiStatus().health).toBe('ok');
    q.at(lab(2026, 3, 3, 8, 30));
    const r = q.quiet();
    expect(r).toMatchObject({ level: 'degraded', code: 'ENDPOINT_QUIET', endpoint: 'xn-1' });
    expect(r!.message).toBe(
      "Analyzer xn-1 quiet: no message for 1 h 30 min of its hours (Mon-Fri 07:00-19:00), the last at 06:30 (UTC+01:00); its results are not reaching Odoo: is the analyzer's host interface (LIS output) on in its menu and its cable in at both ends?",
    );
    expect(q.model.toApiStatus().health).toBe('degraded');
    // Raised once, as a warning, on the alerts path every other reason takes.
    expect(q.alerts.filter((a) => a.code === 'ENDPOINT_QUIET')).toEqual([expect.objectContaining({ severity: 'warning', endpoint: 'xn-1', message: r!.message })]);
    // The contract's entry is unchanged; lastMessageAt is the last message.
    expect(q.model.toApiStatus().endpoints.find((e) => e.id === 'xn-1')).toEqual({ id: 'xn-1', kind: 'astm', state: 'connected', connections: 1, lastMessageAt: new Date(lab(2026, 3, 3, 6, 30)).toISOString() });
    // The words follow the time; no second alert.
    q.at(lab(2026, 3, 3, 11, 0));
    expect(q.quiet()!.message).toMatch(/no message for 4 h of its hours/);
    expect(q.alerts.filter((a) => a.code === 'ENDPOINT_QUIET')).toHaveLength(1);
  });

  it('after a weekend counts from the window opening on Monday, not from Friday evening', async () => {
    // Friday 6 March 2026, the last run at 18:00: an hour of the window left, less than the bound.
    const q = await model({ analyzer: WEEKDAYS, start: lab(2026, 3, 6, 17) });
    q.at(lab(2026, 3, 6, 18, 0));
    q.message('xn-1');
    for (const t of [lab(2026, 3, 6, 19, 0), lab(2026, 3, 6, 23, 0), lab(2026, 3, 7, 12, 0), lab(2026, 3, 8, 20, 0), lab(2026, 3, 9, 7, 0), lab(2026, 3, 9, 7, 30), lab(2026, 3, 9, 8, 29)]) {
      q.at(t);
      expect(q.quiet(), new Date(t).toString()).toBeUndefined();
    }
    q.at(lab(2026, 3, 9, 8, 30));
    expect(q.quiet()!.message).toMatch(/^Analyzer xn-1 quiet: no message for 2 h 30 min of its hours \(Mon-Fri 07:00-19:00\), the last at 6 Mar 18:00 \(UTC\+01:00\);/);
    expect(q.alerts.filter((a) => a.code.startsWith('ENDPOINT_QUIET'))).toHaveLength(1);
  });

  it('raised on Friday afternoon stays through the weekend (no "Resolved" while nothing came) and clears on the next message', async () => {
    const q = await model({ analyzer: WEEKDAYS, start: lab(2026, 3, 6, 13) });
    q.at(lab(2026, 3, 6, 14, 0));
    q.message('xn-1');
    q.at(lab(2026, 3, 6, 15, 30));
    expect(q.quiet()).toBeDefined();
    for (const t of [lab(2026, 3, 6, 20, 0), lab(2026, 3, 7, 12, 0), lab(2026, 3, 9, 7, 0), lab(2026, 3, 9, 7, 1)]) {
      q.at(t);
      expect(q.quiet(), new Date(t).toString()).toBeDefined();
    }
    expect(q.alerts.map((a) => a.code).filter((c) => c.startsWith('ENDPOINT_QUIET'))).toEqual(['ENDPOINT_QUIET']);
    // A message the gateway rejected is the analyzer talking: its link works. Cleared at once, no poll.
    q.message('xn-1', 'rejected');
    expect(q.quiet()).toBeUndefined();
    expect(q.alerts.at(-1)).toMatchObject({ severity: 'info', code: 'ENDPOINT_QUIET_CLEARED', endpoint: 'xn-1' });
    expect(q.model.toApiStatus().health).toBe('ok');
    // And counted again from that message (07:01).
    q.at(lab(2026, 3, 9, 8, 30));
    expect(q.quiet()).toBeUndefined();
    q.at(lab(2026, 3, 9, 8, 31));
    expect(q.quiet()!.message).toMatch(/no message for 1 h 30 min of its hours \(Mon-Fri 07:00-19:00\), the last at 07:01 \(UTC\+01:00\)/);
  });

  it('a window over midnight counts from its opening; without a window every minute counts; LIS links say what to check on the LIS', async () => {
    const night = await model({ analyzer: { afterMinutes: 90, between: '22:00-06:00' }, start: lab(2026, 3, 3, 20) });
    night.at(lab(2026, 3, 3, 21, 0));
    night.message('xn-1');
    night.at(lab(2026, 3, 3, 23, 29));
    expect(night.quiet()).toBeUndefined();
    night.at(lab(2026, 3, 3, 23, 30));
    expect(night.quiet()!.message).toMatch(/no message for 1 h 30 min of its hours \(22:00-06:00\), the last at 21:00 \(UTC\+01:00\)/);

    const lis = await model({ lis: { afterMinutes: 60 }, start: lab(2026, 3, 3, 10) });
    lis.at(lab(2026, 3, 3, 10, 0));
    lis.message('lis');
    lis.at(lab(2026, 3, 3, 10, 59));
    expect(lis.quiet('lis')).toBeUndefined();
    lis.at(lab(2026, 3, 3, 11, 0));
    expect(lis.quiet('lis')!.message).toBe(
      'LIS link lis quiet: no message for 1 h, the last at 10:00 (UTC+01:00); nothing from the LIS reaches Odoo: is the LIS still sending on this link (its HL7 interface or outbound queue stopped)?',
    );
    // The analyzer has no quiet alert: never reported quiet, however long.
    lis.at(lab(2026, 3, 10, 11, 0));
    expect(lis.quiet('xn-1')).toBeUndefined();
  });

  it('keeps the lab hours across the change to summer time (the window opens at 07:00 on the clock, not an hour off)', async () => {
    // Saturday 28 March 2026 18:00 (UTC+01:00); Berlin moves to UTC+02:00 at 02:00 on Sunday the 29th.
    const q = await model({ analyzer: { afterMinutes: 90, between: '07:00-19:00' }, start: lab(2026, 3, 28, 17) });
    q.at(lab(2026, 3, 28, 18, 0));
    q.message('xn-1');
    q.at(lab(2026, 3, 29, 8, 29));
    expect(q.quiet()).toBeUndefined();
    q.at(lab(2026, 3, 29, 8, 30));
    expect(q.quiet()!.message).toMatch(/no message for 2 h 30 min of its hours \(07:00-19:00\), the last at 28 Mar 18:00 \(UTC\+01:00\)/);
    expect(new Date(lab(2026, 3, 29, 8, 30)).toISOString()).toBe('2026-03-29T06:30:00.000Z');
  });

  it('an endpoint that never sent counts from the gateway start; one reported down is not also reported quiet', async () => {
    const q = await model({ analyzer: { afterMinutes: 60 }, start: lab(2026, 3, 3, 9) });
    q.at(lab(2026, 3, 3, 10, 0));
    expect(q.quiet()!.message).toMatch(/^Analyzer xn-1 quiet: no message for 1 h since the gateway started at 09:00 \(UTC\+01:00\);/);
    // The line is gone altogether (the adapter pulled): ENDPOINT_DOWN says so, not both.
    q.telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'disconnected', connections: 0, detail: 'port closed' });
    q.at(lab(2026, 3, 3, 10, 5));
    expect(q.model.toApiStatus().healthReasons.filter((r) => r.endpoint === 'xn-1').map((r) => r.code)).toEqual(['ENDPOINT_DOWN']);
  });
});

/**
 * Clock steps. Before, quiet time was the wall clock's: `Date.now()` minus the last message's
 * stamp. An appliance without a battery-backed clock boots days behind and NTP steps it forward
 * minutes to days after the gateway started: every endpoint with a quiet alert read as quiet for
 * those days at once, and the tray warned a technician of a silence that had not happened. A clock
 * an hour ahead set back by NTP held a real silence back for the hour. Now quiet time is counted on
 * the monotonic clock since the last message (or the start), and the wall clock only says whether
 * the lab's hours are open.
 */
describe('ENDPOINT_QUIET across clock steps', () => {
  it("the box booted 3 days behind and NTP set it right after the start: no alert at the step; a real silence in today's hours still alerts after afterMinutes of real time", async () => {
    // The clock reads Friday 27 February 09:00; the true time is Monday 2 March 09:00.
    const q = await model({ analyzer: WEEKDAYS, lis: { afterMinutes: 60, between: '07:00-19:00', days: 'Mon-Fri' }, start: lab(2026, 2, 27, 9) });
    q.at(lab(2026, 2, 27, 9, 5));
    q.message('xn-1');
    q.at(lab(2026, 2, 27, 9, 30));
    q.step(lab(2026, 3, 2, 9, 30)); // NTP answers
    expect(q.quiet('xn-1')).toBeUndefined();
    expect(q.quiet('lis')).toBeUndefined();
    expect(q.model.toApiStatus().health).toBe('ok');
    expect(q.alerts.filter((a) => a.code.startsWith('ENDPOINT_QUIET'))).toEqual([]);
    // The LIS never sent: an hour of real time since the gateway started, the start told in the true time.
    q.at(lab(2026, 3, 2, 9, 59));
    expect(q.quiet('lis')).toBeUndefined();
    q.at(lab(2026, 3, 2, 10, 0));
    expect(q.quiet('lis')!.message).toMatch(/^LIS link lis quiet: no message for 1 h of its hours \(Mon-Fri 07:00-19:00\) since the gateway started at 09:00 \(UTC\+01:00\);/);
    // The analyzer: 90 minutes of real time after its message, which the words place in the true time (not on 27 Feb).
    q.at(lab(2026, 3, 2, 10, 34));
    expect(q.quiet('xn-1')).toBeUndefined();
    q.at(lab(2026, 3, 2, 10, 35));
    expect(q.quiet('xn-1')!.message).toMatch(/^Analyzer xn-1 quiet: no message for 1 h 30 min of its hours \(Mon-Fri 07:00-19:00\), the last at 09:05 \(UTC\+01:00\);/);
    expect(q.alerts.filter((a) => a.code === 'ENDPOINT_QUIET').map((a) => a.endpoint)).toEqual(['lis', 'xn-1']);
  });

  it('a person sets the clock forward a day by hand: the silence is not a day longer', async () => {
    const q = await model({ analyzer: { afterMinutes: 90 }, start: lab(2026, 3, 3, 9) });
    q.at(lab(2026, 3, 3, 10, 0));
    q.message('xn-1');
    q.at(lab(2026, 3, 3, 10, 30));
    q.step(lab(2026, 3, 4, 10, 30));
    expect(q.quiet()).toBeUndefined();
    q.at(lab(2026, 3, 4, 11, 29));
    expect(q.quiet()).toBeUndefined();
    q.at(lab(2026, 3, 4, 11, 30));
    expect(q.quiet()!.message).toMatch(/no message for 1 h 30 min, the last at 10:00 \(UTC\+01:00\);/);
  });

  it('the clock set back an hour (it ran ahead) does not hold a real silence back for the hour', async () => {
    const q = await model({ analyzer: WEEKDAYS, start: lab(2026, 3, 3, 9) });
    q.at(lab(2026, 3, 3, 10, 0));
    q.message('xn-1');
    q.at(lab(2026, 3, 3, 10, 30));
    q.step(lab(2026, 3, 3, 9, 30)); // NTP: the clock was an hour ahead
    expect(q.quiet()).toBeUndefined();
    // 89, then 90 minutes of real time after the message: the clock reads 10:29, then 10:30.
    q.at(lab(2026, 3, 3, 10, 29));
    expect(q.quiet()).toBeUndefined();
    q.at(lab(2026, 3, 3, 10, 30));
    // The message came at 10:00 by the clock of then, 09:00 by the clock set right.
    expect(q.quiet()!.message).toMatch(/no message for 1 h 30 min of its hours \(Mon-Fri 07:00-19:00\), the last at 09:00 \(UTC\+01:00\);/);
    expect(q.alerts.filter((a) => a.code === 'ENDPOINT_QUIET')).toHaveLength(1);
  });

  it('an alert raised stays raised across a step either way (no "Resolved" while nothing came)', async () => {
    const q = await model({ analyzer: WEEKDAYS, start: lab(2026, 3, 3, 9) });
    q.at(lab(2026, 3, 3, 10, 0));
    q.message('xn-1');
    q.at(lab(2026, 3, 3, 11, 30));
    expect(q.quiet()).toBeDefined();
    q.step(lab(2026, 3, 3, 10, 30));
    expect(q.quiet()).toBeDefined();
    q.step(lab(2026, 3, 4, 10, 30));
    expect(q.quiet()).toBeDefined();
    expect(q.alerts.map((a) => a.code).filter((c) => c.startsWith('ENDPOINT_QUIET'))).toEqual(['ENDPOINT_QUIET']);
  });

  it('a VM suspended for 8 hours: the time it stood still is not counted (no alert at the resume); the count goes on from there', async () => {
    // The monotonic clock (Linux CLOCK_MONOTONIC) does not run while the machine is suspended; the
    // wall clock is set right on resume. Neither can be told from a step forward.
    const q = await model({ analyzer: WEEKDAYS, start: lab(2026, 3, 3, 9) });
    q.at(lab(2026, 3, 3, 10, 0));
    q.message('xn-1');
    q.at(lab(2026, 3, 3, 10, 30));
    q.step(lab(2026, 3, 3, 18, 30)); // resumed
    expect(q.quiet()).toBeUndefined();
    // An hour of running time by Tuesday's closing, less than the bound; Wednesday counts from 07:00.
    q.at(lab(2026, 3, 3, 19, 0));
    expect(q.quiet()).toBeUndefined();
    q.at(lab(2026, 3, 4, 8, 29));
    expect(q.quiet()).toBeUndefined();
    q.at(lab(2026, 3, 4, 8, 30));
    // The quiet time of its hours is the running time: the suspended 8 hours are not in it, so the
    // words place the last message 8 hours later than it came (the cost, status/README.md).
    expect(q.quiet()!.message).toMatch(/no message for 2 h 30 min of its hours \(Mon-Fri 07:00-19:00\), the last at 3 Mar 18:00 \(UTC\+01:00\);/);
  });

  it('a restart keeps the silence the store knows of (no step: counted from the stored message, as before)', async () => {
    const t = tempDir('status-quiet-restart-');
    cleanups.push(t.cleanup);
    const config = makeConfig(path.join(t.dir, 'data'), { id: 'lab-quiet' });
    config.analyzers[0]!.quietAlert = { afterMinutes: 90 };
    const store = await openStore(config.gateway.dataDir);
    cleanups.push(() => store.close());
    // The analyzer's last message, two hours before this start.
    await store.commit({ kind: 'astm', endpoint: 'xn-1', receivedAt: new Date(lab(2026, 3, 3, 8)).toISOString(), encoding: 'latin1', raw: Buffer.from('H|\\^&\r', 'latin1'), status: 'accepted', messageType: 'ASTM' }, []);
    const clock = { now: lab(2026, 3, 3, 10), mono: 5_000 };
    const telemetry = new Telemetry();
    const m = new StatusModel({ config, store, telemetry, version: 't', startedAt: new Date(clock.now).toISOString(), now: () => clock.now, mono: () => clock.mono, pollIntervalMs: 3_600_000, diskIntervalMs: 3_600_000, readDisk: async () => ({ freeBytes: 10 * 1024 ** 3, totalBytes: 20 * 1024 ** 3 }) });
    await m.start();
    cleanups.push(() => m.stop());
    telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'connected', connections: 1 });
    m.poll();
    const r = m.toApiStatus().healthReasons.find((x) => x.code === 'ENDPOINT_QUIET');
    expect(r!.message).toMatch(/no message for 2 h, the last at 08:00 \(UTC\+01:00\);/);
  });

  /**
   * A restart on a clock wrong at the start and set right after it. The silence before the start
   * was read once on the clock of the start: an RTC an hour ahead at boot (a box whose previous
   * run NTP kept right, so the stored stamp is right) counted that hour as silence for good once
   * NTP set the clock back, and the tray warned of a silence an hour early, placing the last
   * message an hour before it came.
   */
  async function restarted(opts: { lastAt: number; clockAtStart: number }) {
    const t = tempDir('status-quiet-restart-');
    cleanups.push(t.cleanup);
    const config = makeConfig(path.join(t.dir, 'data'), { id: 'lab-quiet' });
    config.analyzers[0]!.quietAlert = WEEKDAYS;
    const store = await openStore(config.gateway.dataDir);
    cleanups.push(() => store.close());
    await store.commit({ kind: 'astm', endpoint: 'xn-1', receivedAt: new Date(opts.lastAt).toISOString(), encoding: 'latin1', raw: Buffer.from('H|\\^&\r', 'latin1'), status: 'accepted', messageType: 'ASTM' }, []);
    const clock = { now: opts.clockAtStart, mono: 5_000 };
    const telemetry = new Telemetry();
    const m = new StatusModel({ config, store, telemetry, version: 't', startedAt: new Date(clock.now).toISOString(), now: () => clock.now, mono: () => clock.mono, pollIntervalMs: 3_600_000, diskIntervalMs: 3_600_000, readDisk: async () => ({ freeBytes: 10 * 1024 ** 3, totalBytes: 20 * 1024 ** 3 }) });
    const alerts: StatusAlert[] = [];
    m.onAlert((a) => alerts.push(a));
    await m.start();
    cleanups.push(() => m.stop());
    telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'connected', connections: 1 });
    m.poll();
    const at = (ms: number): void => {
      clock.mono += ms - clock.now;
      clock.now = ms;
      m.poll();
    };
    const step = (ms: number): void => {
      clock.now = ms;
      m.poll();
    };
    const quiet = () => m.toApiStatus().healthReasons.find((r) => r.code === 'ENDPOINT_QUIET' && r.endpoint === 'xn-1');
    return { at, step, quiet, alerts };
  }

  it('restarted on a clock an hour ahead (an RTC at boot) that NTP sets back: no alert an hour early; the real silence is reported, the last message at its stamp', async () => {
    // The analyzer's last message at 09:00 by a clock set right; the box restarts at 09:10 and its
    // clock reads 10:10 until NTP answers a minute later.
    const q = await restarted({ lastAt: lab(2026, 3, 3, 9), clockAtStart: lab(2026, 3, 3, 10, 10) });
    expect(q.quiet()).toBeUndefined();
    q.at(lab(2026, 3, 3, 10, 11));
    q.step(lab(2026, 3, 3, 9, 11)); // NTP
    q.at(lab(2026, 3, 3, 9, 31));
    expect(q.quiet(), '31 minutes of real silence').toBeUndefined();
    q.at(lab(2026, 3, 3, 10, 29));
    expect(q.quiet()).toBeUndefined();
    expect(q.alerts.filter((a) => a.code === 'ENDPOINT_QUIET')).toEqual([]);
    q.at(lab(2026, 3, 3, 10, 30));
    expect(q.quiet()!.message).toMatch(/no message for 1 h 30 min of its hours \(Mon-Fri 07:00-19:00\), the last at 09:00 \(UTC\+01:00\);/);
  });

  it('restarted on a box that ran three days behind (its stamps too) and NTP sets forward after the start: no alert at the step', async () => {
    // The clock reads Friday 27 February; the true time is Monday 2 March. The analyzer's last
    // message was stamped by that clock 25 minutes before the restart.
    const q = await restarted({ lastAt: lab(2026, 2, 27, 9, 5), clockAtStart: lab(2026, 2, 27, 9, 30) });
    q.at(lab(2026, 2, 27, 9, 31));
    q.step(lab(2026, 3, 2, 9, 31)); // NTP
    expect(q.quiet()).toBeUndefined();
    q.at(lab(2026, 3, 2, 10, 34));
    expect(q.quiet()).toBeUndefined();
    q.at(lab(2026, 3, 2, 10, 35));
    expect(q.quiet()!.message).toMatch(/no message for 1 h 30 min of its hours \(Mon-Fri 07:00-19:00\), the last at 09:05 \(UTC\+01:00\);/);
  });
});
