/**
 * Order download records each LIS event once: the same order or cancel handed over again (a
 * restart records the events after its cursor, some of which it may have recorded before) never
 * sends the analyzer anything twice. Real store in a temp dir; the link is the analyzer
 * endpoint's interface, recording what would go on the wire.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OrderDownload } from '../../gateway/src/astm/order-download.ts';
import type { CanonicalEvent } from '../../gateway/src/events/types.ts';
import { orderEvents } from '../fixtures/order-download.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';

const { created, cancelled } = orderEvents('aaaaaa', '2026-12-06T10:00:00.000Z');

let dir: string;
let store: EventStore;
let download: OrderDownload;
const wire: string[][] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-od-idem-'));
  store = await EventStore.open({ dataDir: dir });
  wire.length = 0;
  download = new OrderDownload({
    analyzerId: 'centaur-1',
    profile: loadProfile('siemens-advia-centaur-xp'),
    link: { connections: 1, sendWorklist: async (records) => void wire.push([...records]) },
    store,
    telemetry: new Telemetry(),
    log: silentLogger,
  });
});

afterEach(async () => {
  await download.stop();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** O records sent so far: [accession, action code (O.12)]. */
const orders = (): string[][] => wire.flatMap((records) => records.filter((r) => r.startsWith('O|')).map((r) => [r.split('|')[2]!, r.split('|')[11] ?? '']));
const settle = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 10));
};

describe('order download records an event once', () => {
  it('an order, its cancel and the order again, each handed over a second time, send nothing more', async () => {
    const order = created('ACC-ID-1', ['TSH', 'FT4']);
    const cancel = cancelled('ACC-ID-1', ['FT4']);
    download.onCommitted([order]);
    await expect.poll(() => orders().length, { timeout: 5_000 }).toBe(1);
    download.onCommitted([cancel]);
    await expect.poll(() => orders().length, { timeout: 5_000 }).toBe(2);
    expect(orders()).toEqual([
      ['ACC-ID-1', expect.not.stringMatching(/^C$/)],
      ['ACC-ID-1', 'C'],
    ]);
    // Handed over again, one at a time (a replay): the order first would re-add FT4 as a new order.
    download.onCommitted([order]);
    await settle();
    download.onCommitted([cancel]);
    await settle();
    expect(orders(), 'a replayed event was sent to the analyzer again').toHaveLength(2);
  });
});
