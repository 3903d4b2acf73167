/**
 * DISK_FULL and DISK_LOW as the free space crosses `store.minFreeBytes` (and twice it) by less
 * than the 1 MB the model lets the free count jitter by: the status model on a real store in a
 * temp dir, its reading of the data directory's free space (`readDisk`, what `fs.statfs` gives)
 * set by the test, refreshed as its 30 s timer does.
 *
 * Before: a reading within 1 MB of the last one kept was dropped whole, also when it crossed a
 * threshold, and the health was worked out from the one kept. A store full at 0.5 MB under its
 * minimum (nothing is written while it refuses), given 0.8 MB back, stayed red "Not accepting
 * messages: only 99.5 MiB free" while it accepted again, until the disk moved another megabyte.
 */
import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { makeConfig, openStore, tempDir } from '../fixtures/status/harness.ts';

const MiB = 1024 * 1024;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function model(minFreeBytes: number, free: { bytes: number }) {
  const t = tempDir('review-s22-disk-');
  cleanups.push(t.cleanup);
  const config = makeConfig(path.join(t.dir, 'data'), { id: 'lab-disk' });
  config.store.minFreeBytes = minFreeBytes;
  const store = await openStore(config.gateway.dataDir);
  cleanups.push(() => store.close());
  const m = new StatusModel({
    config,
    store,
    telemetry: new Telemetry(),
    version: 't',
    startedAt: new Date().toISOString(),
    pollIntervalMs: 3_600_000,
    diskIntervalMs: 3_600_000, // refreshed by the test
    readDisk: async () => ({ freeBytes: free.bytes, totalBytes: 20 * 1024 ** 3 }),
  });
  await m.start();
  cleanups.push(() => m.stop());
  const codes = (): string[] => m.toApiStatus().healthReasons.filter((r) => r.code.startsWith('DISK_')).map((r) => r.code);
  return { m, codes };
}

describe('the free space crossing a threshold by less than a megabyte', () => {
  it('clears DISK_FULL once the free space is back above store.minFreeBytes', async () => {
    const free = { bytes: 99.5 * MiB };
    const { m, codes } = await model(100 * MiB, free);
    expect(codes()).toEqual(['DISK_FULL']);
    expect(m.toApiStatus().health).toBe('down');
    free.bytes = 100.3 * MiB;
    await m.refreshDisk();
    expect(codes()).toEqual(['DISK_LOW']);
    expect(m.toApiStatus().health).toBe('degraded');
    expect(m.toApiStatus().disk?.freeBytes).toBe(100.3 * MiB);
  });

  it('raises DISK_FULL once the free space falls below it, and DISK_LOW clears above twice it', async () => {
    const free = { bytes: 100.3 * MiB };
    const { m, codes } = await model(100 * MiB, free);
    expect(codes()).toEqual(['DISK_LOW']);
    free.bytes = 99.6 * MiB;
    await m.refreshDisk();
    expect(codes()).toEqual(['DISK_FULL']);
    free.bytes = 199.6 * MiB;
    await m.refreshDisk();
    expect(codes()).toEqual(['DISK_LOW']);
    free.bytes = 200.2 * MiB;
    await m.refreshDisk();
    expect(codes()).toEqual([]);
    expect(m.toApiStatus().health).toBe('ok');
  });

  it('still keeps a jitter within a megabyte, away from a threshold, out of the status', async () => {
    const free = { bytes: 5000 * MiB };
    const { m } = await model(100 * MiB, free);
    const changes: number[] = [];
    m.onChange(() => changes.push(1));
    free.bytes = 5000.5 * MiB;
    await m.refreshDisk();
    expect(m.toApiStatus().disk?.freeBytes).toBe(5000 * MiB);
    expect(changes).toEqual([]);
  });
});
