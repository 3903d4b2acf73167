/**
 * The system clock stepped back (NTP setting right a box that booted with its clock two hours
 * ahead): due times and ages must not wait for the wall clock to catch up with the times written
 * before the step (test/e2e/outage-night-audit.test.ts has the whole night). Here, the parts:
 * the steady wall clock itself, the store's lease and back-offs, and the status model's ages.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import type { GatewayStore } from '../../gateway/src/store/types.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { SteadyWallClock } from '../../gateway/src/wall-clock.ts';
import { makeConfig } from '../fixtures/status/harness.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';

const HOUR = 3_600_000;
const tmp = useTempStore('lgw-clock-step-', { pruneIntervalMs: 0, minFreeBytes: 0 });

afterEach(() => {
  vi.useRealTimers();
});

/** The box's clock, two hours ahead; `ntpStep()` sets it right as NTP does (one step back). */
function clockAhead(): { ntpStep: () => void } {
  vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: Date.now() + 2 * HOUR });
  return { ntpStep: () => vi.setSystemTime(Date.now() - 2 * HOUR) };
}

describe('SteadyWallClock', () => {
  /** A wall and a monotonic clock driven by hand. */
  function manual(start: number) {
    const t = { wall: start, mono: 0 };
    const clock = new SteadyWallClock({ wall: () => t.wall, mono: () => t.mono });
    const steps: number[] = [];
    clock.onStepBack((ms) => steps.push(ms));
    return {
      clock,
      steps,
      /** Time passes for both clocks. */
      pass: (ms: number) => {
        t.wall += ms;
        t.mono += ms;
      },
      /** The system clock is set back. */
      stepBack: (ms: number) => (t.wall -= ms),
    };
  }

  it('is the wall clock while it moves forward', () => {
    const m = manual(1_000_000);
    expect(m.clock.now()).toBe(1_000_000);
    m.pass(1500);
    expect(m.clock.now()).toBe(1_001_500);
    expect(m.steps).toEqual([]);
  });

  it('after a step back it never goes back, keeps running at half speed and meets the wall clock after twice the step', () => {
    const m = manual(10 * HOUR);
    m.clock.now();
    m.stepBack(2 * HOUR);
    expect(m.clock.now()).toBe(10 * HOUR);
    m.pass(60_000);
    // A back-off of 30 s written now comes due: the clock has not stood still.
    expect(m.clock.now()).toBe(10 * HOUR + 30_000);
    m.pass(4 * HOUR - 60_000);
    expect(m.clock.now()).toBe(12 * HOUR);
    m.pass(1000);
    expect(m.clock.now(), 'the wall clock again').toBe(12 * HOUR + 1000);
    expect(m.steps, 'reported once, with its size').toEqual([2 * HOUR]);
  });

  it('does not report a step back of a second (timer jitter, NTP slewing)', () => {
    const m = manual(10 * HOUR);
    m.clock.now();
    m.stepBack(1000);
    m.clock.now();
    expect(m.steps).toEqual([]);
  });
});

describe('the store after the clock stepped back', () => {
  it('leases the events stored before the step (their due time lay two hours ahead)', async () => {
    const { ntpStep } = clockAhead();
    const store = await tmp.open();
    const { eventIds } = await store.commit(inboundMessage('CLK1'), [resultValidated('CLK-ORDER', 'k-CLK1')]);
    ntpStep();
    const leases = await store.lease({ limit: 10 });
    expect(leases.flatMap((l) => l.events.map((e) => e.event.id))).toEqual(eventIds);
  });

  it("keeps a retry's back-off written after the step (it does not come due at once)", async () => {
    const { ntpStep } = clockAhead();
    const store = await tmp.open();
    const { eventIds } = await store.commit(inboundMessage('CLK2'), [resultValidated('CLK-ORDER', 'k-CLK2')]);
    ntpStep();
    const [lease] = await store.lease({ limit: 10 });
    await store.complete(lease!, [{ eventId: eventIds[0]!, outcome: 'retry', error: 'LockError', delayMs: 600_000 }]);
    expect(await store.lease({ limit: 10 }), 'held for its back-off').toEqual([]);
    expect(store.stats()).toMatchObject({ retrying: 1, inFlight: 0 });
  });

  it('counts the age of the oldest waiting event from when it was stored, not from the corrected clock', async () => {
    const { ntpStep } = clockAhead();
    const store = await tmp.open();
    await store.commit(inboundMessage('CLK3'), [resultValidated('CLK-ORDER', 'k-CLK3')]);
    ntpStep();
    await waitFor(() => store.stats().oldestPendingAgeSeconds >= 1, 10_000);
    expect(store.stats().oldestPendingAgeSeconds).toBeGreaterThanOrEqual(1);
  });
});

describe('the status model after the clock stepped back', () => {
  it('raises ODOO_UNREACHABLE once the outage has lasted the grace time, although it began before the step', async () => {
    const { ntpStep } = clockAhead();
    const telemetry = new Telemetry();
    const store = {
      stats: () => ({ pending: 1, inFlight: 0, retrying: 0, deadLettered: 0, delivered: 0, discarded: 0, blockedPartitions: 0, oldestPendingAgeSeconds: 0 }),
      intake: () => ({ received: 1, accepted: 1, rejected: 0, duplicates: 0 }),
      health: 'ok',
    };
    const model = new StatusModel({
      config: makeConfig('/var/lib/lab-gateway', { odoo: { url: 'https://odoo.example.test' } }),
      store: store as unknown as GatewayStore,
      telemetry,
      version: '1.2.3',
      startedAt: new Date().toISOString(),
      readDisk: async () => ({ freeBytes: 50 * 1024 ** 3, totalBytes: 100 * 1024 ** 3 }),
      pollIntervalMs: 3_600_000,
      diskIntervalMs: 3_600_000,
      odooGraceMs: 500,
    });
    await model.start();
    try {
      telemetry.emit('odoo.state', { state: 'unreachable', lastError: 'ECONNREFUSED' });
      ntpStep();
      const codes = (): string[] => model.health().reasons.map((r) => r.code);
      await waitFor(() => codes().includes('ODOO_UNREACHABLE'), 10_000).catch(() => undefined);
      expect(codes()).toContain('ODOO_UNREACHABLE');
    } finally {
      await model.stop();
    }
  });
});
