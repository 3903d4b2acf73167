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
 *
 * Then the reverse: every reading that crossed a threshold was taken (869a829), also one
 * crossing straight back: a disk at 199.8/200.2 MiB free beside a 100 MiB minimum (a busy lab's log and LevelDB
 * compactions move it by that much) raised DISK_LOW and "Resolved" at every reading, an alert on
 * MQTT and a banner on the page flipping every 30 s, for as long as it stayed there.
 */
import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { StatusModel, type StatusAlert } from '../../gateway/src/status/status-model.ts';
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
  const alerts: string[] = [];
  m.onAlert((a: StatusAlert) => {
    if (a.code.startsWith('DISK_')) alerts.push(a.code);
  });
  const codes = (): string[] => m.toApiStatus().healthReasons.filter((r) => r.code.startsWith('DISK_')).map((r) => r.code);
  const read = async (mib: number): Promise<void> => {
    free.bytes = mib * MiB;
    await m.refreshDisk();
  };
  return { m, codes, alerts, read };
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

describe('the free space jittering across a threshold', () => {
  it('DISK_LOW does not come and go at every reading around twice the minimum', async () => {
    const { codes, alerts, read } = await model(100 * MiB, { bytes: 200.2 * MiB });
    expect(codes()).toEqual([]);
    await read(199.8);
    expect(codes()).toEqual(['DISK_LOW']);
    await read(200.2);
    expect(codes()).toEqual([]); // back above: taken, as 869a829 made it
    const settled = alerts.length;
    for (const mib of [199.8, 200.2, 199.7, 200.3, 199.8, 200.2]) await read(mib);
    expect(alerts.slice(settled)).toEqual([]);
    expect(codes()).toEqual([]);
    // A real fall (more than the jitter) is taken at once.
    await read(198.9);
    expect(codes()).toEqual(['DISK_LOW']);
  });

  it('DISK_FULL does not come and go at every reading around the minimum', async () => {
    const { codes, alerts, read } = await model(100 * MiB, { bytes: 100.2 * MiB });
    expect(codes()).toEqual(['DISK_LOW']);
    await read(99.8);
    expect(codes()).toEqual(['DISK_FULL']);
    await read(100.2);
    expect(codes()).toEqual(['DISK_LOW']); // the store accepts again: cleared at once
    const settled = alerts.length;
    for (const mib of [99.8, 100.2, 99.7, 100.3, 99.8]) await read(mib);
    expect(alerts.slice(settled)).toEqual([]);
    await read(98.9);
    expect(codes()).toEqual(['DISK_FULL']);
  });
});
