/**
 * LOG_LINES_LOST lasts an hour after the last line lost: long enough for IT to see that the log
 * has a gap, not for ever (the count in `log` and in /metrics stays). The status model on a real
 * store in a temp dir, the model's clock and the log's loss given to it.
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

describe('LOG_LINES_LOST', () => {
  it('shows while lines were lost within the hour, then clears; the count stays in `log`', async () => {
    const t = tempDir('status-log-loss-');
    cleanups.push(t.cleanup);
    const config = makeConfig(path.join(t.dir, 'data'), { id: 'lab-log' });
    const store = await openStore(config.gateway.dataDir);
    cleanups.push(() => store.close());
    let now = Date.parse('2026-03-06T08:00:00.000Z');
    let loss: LogOutputLoss = { droppedLines: 0, lastDroppedAt: null, lastError: null };
    const model = new StatusModel({ config, store, telemetry: new Telemetry(), version: 't', startedAt: new Date(now).toISOString(), now: () => now, logOutputLoss: () => loss, readDisk: async () => ({ freeBytes: 10 * 1024 ** 3, totalBytes: 20 * 1024 ** 3 }) });
    const alerts: StatusAlert[] = [];
    model.onAlert((a) => alerts.push(a));
    await model.start();
    cleanups.push(() => model.stop());
    expect(model.toApiStatus().log).toEqual({ droppedLines: 0, lastDroppedAt: null, lastError: null });

    loss = { droppedLines: 1, lastDroppedAt: new Date(now).toISOString(), lastError: 'ENOSPC: no space left on device, write' };
    now += 60_000;
    model.poll();
    const lost = model.toApiStatus();
    expect(lost.log).toEqual(loss);
    expect(lost.health).toBe('degraded');
    expect(lost.healthReasons.find((r) => r.code === 'LOG_LINES_LOST')?.message).toMatch(/^1 log line lost since the gateway started, the last at .* \(ENOSPC: no space left on device, write\): the log has a gap/);
    expect(alerts.filter((a) => a.code === 'LOG_LINES_LOST')).toHaveLength(1);

    now += 58 * 60_000; // 59 min after the loss: still shown
    model.poll();
    expect(model.toApiStatus().healthReasons.map((r) => r.code)).toContain('LOG_LINES_LOST');
    now += 2 * 60_000; // 61 min after: cleared, the count kept
    model.poll();
    const later = model.toApiStatus();
    expect(later.healthReasons.map((r) => r.code)).not.toContain('LOG_LINES_LOST');
    expect(later.health).toBe('ok');
    expect(later.log.droppedLines).toBe(1);
    expect(alerts.map((a) => a.code)).toContain('LOG_LINES_LOST_CLEARED');
  });
});
