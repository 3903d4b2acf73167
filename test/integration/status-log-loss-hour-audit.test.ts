/**
 * LOG_LINES_LOST: the log has a gap (gateway/src/log.ts). It stays while the log takes no line
 * (its shipper still stopped, however little the gateway logs), and clears an hour after lines get
 * through again, that hour counted on the model's clock alone; its words stay the same while lines
 * go on being lost (the page's banner is a live region, read out whenever its words change). The
 * status model on a real store in a temp dir, the model's clock and the log's loss given to it.
 *
 * Before: the reason cleared an hour after the last line lost, "Resolved" while the shipper was
 * still stopped, and came back at the next line lost; its words carried the count and the last
 * time, so the banner was read out again at every poll of a busy lab; and the hour was the model's
 * clock minus the system time of the loss, shorter or longer after a clock step.
 */
import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import type { LogOutputLoss } from '../../gateway/src/log.ts';
import { StatusModel, type StatusAlert } from '../../gateway/src/status/status-model.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { makeConfig, openStore, tempDir } from '../fixtures/status/harness.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const MIN = 60_000;
const NONE: LogOutputLoss = { droppedLines: 0, lastDroppedAt: null, lastError: null, gapSince: null };
const EPIPE = 'EPIPE: write EPIPE';

/** A status model whose clock (`clock.now`) and log loss (`clock.loss`) the test sets; polled by hand. */
async function model(): Promise<{ model: StatusModel; alerts: StatusAlert[]; clock: { now: number; loss: LogOutputLoss }; reason: () => string | undefined }> {
  const t = tempDir('status-log-loss-');
  cleanups.push(t.cleanup);
  const config = makeConfig(path.join(t.dir, 'data'), { id: 'lab-log' });
  const store = await openStore(config.gateway.dataDir);
  cleanups.push(() => store.close());
  const clock = { now: Date.parse('2026-03-06T08:00:00.000Z'), loss: NONE };
  const m = new StatusModel({
    config,
    store,
    telemetry: new Telemetry(),
    version: 't',
    startedAt: new Date(clock.now).toISOString(),
    now: () => clock.now,
    logOutputLoss: () => clock.loss,
    pollIntervalMs: 3_600_000, // polled by the test only
    readDisk: async () => ({ freeBytes: 10 * 1024 ** 3, totalBytes: 20 * 1024 ** 3 }),
  });
  const alerts: StatusAlert[] = [];
  m.onAlert((a) => alerts.push(a));
  await m.start();
  cleanups.push(() => m.stop());
  const reason = (): string | undefined => m.toApiStatus().healthReasons.find((r) => r.code === 'LOG_LINES_LOST')?.message;
  return { model: m, alerts, clock, reason };
}

const iso = (ms: number): string => new Date(ms).toISOString();

describe('LOG_LINES_LOST', () => {
  it('shows while lines were lost within the hour, then clears; the count stays in `log`', async () => {
    const { model: m, alerts, clock, reason } = await model();
    expect(m.toApiStatus().log).toEqual(NONE);

    // One line lost to a full disk, and the next one written: the gap is closed.
    clock.loss = { droppedLines: 1, lastDroppedAt: iso(clock.now), lastError: 'ENOSPC: no space left on device, write', gapSince: null };
    clock.now += MIN;
    m.poll();
    const lost = m.toApiStatus();
    expect(lost.log).toEqual(clock.loss);
    expect(lost.health).toBe('degraded');
    expect(reason()).toMatch(/^Log lines lost, the first at .* \(ENOSPC: no space left on device, write\): the log has a gap from then/);
    expect(alerts.filter((a) => a.code === 'LOG_LINES_LOST')).toHaveLength(1);

    clock.now += 59 * MIN; // 59 min after lines got through: still shown
    m.poll();
    expect(reason()).toBeDefined();
    clock.now += 2 * MIN; // 61 min after: cleared, the count kept
    m.poll();
    const later = m.toApiStatus();
    expect(later.healthReasons.map((r) => r.code)).not.toContain('LOG_LINES_LOST');
    expect(later.health).toBe('ok');
    expect(later.log.droppedLines).toBe(1);
    expect(alerts.map((a) => a.code)).toContain('LOG_LINES_LOST_CLEARED');
  });

  it('stays while no line has got through since the last one lost, however long; clears an hour after lines get through again', async () => {
    const { model: m, alerts, clock, reason } = await model();
    // The shipper stops; the gateway logs three lines in the next minutes, then nothing for hours.
    const stoppedAt = clock.now;
    clock.loss = { droppedLines: 3, lastDroppedAt: iso(stoppedAt + 2 * MIN), lastError: EPIPE, gapSince: iso(stoppedAt) };
    clock.now += 3 * MIN;
    m.poll();
    expect(reason()).toBeDefined();
    for (let i = 0; i < 6; i++) {
      clock.now += 30 * MIN;
      m.poll();
      expect(reason(), `${(i + 1) * 30} min later`).toBeDefined();
    }
    expect(alerts.map((a) => a.code)).toEqual(['LOG_LINES_LOST']);
    expect(m.toApiStatus().log.gapSince).toBe(iso(stoppedAt));

    // The shipper is back: a line gets through (log.ts: gapSince null). Shown an hour more, then cleared.
    clock.loss = { ...clock.loss, gapSince: null };
    m.poll();
    const backAt = clock.now;
    clock.now = backAt + 59 * MIN;
    m.poll();
    expect(reason()).toBeDefined();
    clock.now = backAt + 61 * MIN;
    m.poll();
    expect(reason()).toBeUndefined();
    expect(alerts.map((a) => a.code)).toEqual(['LOG_LINES_LOST', 'LOG_LINES_LOST_CLEARED']);

    // A new loss later is a new one: raised again, with its own first time.
    clock.loss = { droppedLines: 4, lastDroppedAt: iso(clock.now), lastError: EPIPE, gapSince: iso(clock.now) };
    m.poll();
    expect(reason()).toBeDefined();
    expect(alerts.map((a) => a.code)).toEqual(['LOG_LINES_LOST', 'LOG_LINES_LOST_CLEARED', 'LOG_LINES_LOST']);
  });

  it('keeps its words while lines go on being lost: when it started, not the count or the last line', async () => {
    const { model: m, clock, reason } = await model();
    const startedAt = clock.now;
    const words: string[] = [];
    // A busy lab: every minute more lines lost, the last one later each time.
    for (let i = 1; i <= 5; i++) {
      clock.now = startedAt + i * MIN;
      clock.loss = { droppedLines: i * 40, lastDroppedAt: iso(clock.now), lastError: EPIPE, gapSince: iso(startedAt) };
      m.poll();
      words.push(reason() ?? '');
    }
    expect(new Set(words).size).toBe(1);
    const d = new Date(startedAt);
    const hhmm = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
    expect(words[0]).toContain(`the first at ${hhmm} (UTC`);
    expect(words[0]).toContain(`(${EPIPE})`);
    expect(words[0]).not.toContain('200');
    // Lines through, then lost again within the hour: the same loss, the same words.
    clock.loss = { ...clock.loss, gapSince: null };
    clock.now += MIN;
    m.poll();
    clock.loss = { droppedLines: 260, lastDroppedAt: iso(clock.now), lastError: EPIPE, gapSince: iso(clock.now) };
    clock.now += 10 * MIN;
    m.poll();
    expect(reason()).toBe(words[0]);
  });

  it('counts its hour on the model clock alone, whatever the system time the line was lost at (a clock step)', async () => {
    // The system clock was set back 2 h after the model's clock read it: the line lost now bears a
    // system time 2 h behind the model's clock. Before, it was taken for a loss 2 h old: never shown.
    const behind = await model();
    behind.clock.loss = { droppedLines: 2, lastDroppedAt: iso(behind.clock.now - 120 * MIN), lastError: EPIPE, gapSince: null };
    behind.model.poll();
    expect(behind.reason()).toBeDefined();
    behind.clock.now += 59 * MIN;
    behind.model.poll();
    expect(behind.reason()).toBeDefined();
    behind.clock.now += 2 * MIN;
    behind.model.poll();
    expect(behind.reason()).toBeUndefined();

    // The line lost bears a system time 2 h ahead of the model's clock (the box's clock ran ahead
    // and was set right): before, shown 3 h. Now an hour of the model's clock after lines got through.
    const ahead = await model();
    ahead.clock.loss = { droppedLines: 2, lastDroppedAt: iso(ahead.clock.now + 120 * MIN), lastError: EPIPE, gapSince: null };
    ahead.model.poll();
    expect(ahead.reason()).toBeDefined();
    ahead.clock.now += 61 * MIN;
    ahead.model.poll();
    expect(ahead.reason()).toBeUndefined();
  });
});
