/**
 * Order download's retry schedule and the place of an accession the analyzer keeps refusing
 * (astm/README.md "Order download", **Refused**): the first `maxAttempts` sends of a refused
 * download go `retryDelayMs` apart, then the delay doubles up to `maxRetryDelayMs`; an accession
 * refused `maxAttempts` times goes after the others in a pass, so it never holds them back.
 *
 * Real LevelDB store in a temp dir and the real OrderDownload; the link is the analyzer endpoint's
 * interface (`connections`, `sendWorklist`), refusing or accepting per accession as an analyzer
 * does. The retry timer runs on vitest's fake clock (setTimeout only: the store's I/O is real),
 * shortened through OrderDownload's options; the tests count sends per step of the schedule, never
 * wall-clock time.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ORDER_DOWNLOAD_NS, OrderDownload, type OrderDownloadDoc, type OrderDownloadOptions } from '../../gateway/src/astm/order-download.ts';
import type { CanonicalEvent } from '../../gateway/src/events/types.ts';
import { IdGenerator } from '../../gateway/src/ids.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { lisOrderEvent } from '../fixtures/astm/lis-order.ts';

const ids = new IdGenerator('cccccc');
/** A committed LIS order (order.created from HL7), as the store hands it to order download. */
const lisOrder = (accession: string): CanonicalEvent => lisOrderEvent(ids, accession, ['TSH'], { at: '2026-12-06T10:00:00.000Z' });

/** The analyzer at the other end: which accessions it refuses, and every send it was offered. */
class Analyzer {
  connections = 1;
  readonly refuses = new Set<string>();
  /** Accession of every send, in order, accepted or not. */
  readonly offered: string[] = [];
  readonly accepted: string[] = [];
  async sendWorklist(records: readonly string[]): Promise<void> {
    const accession = records.find((r) => r.startsWith('O|'))!.split('|')[2]!;
    this.offered.push(accession);
    if (this.refuses.has(accession)) throw new Error('analyzer busy: NAK to every ENQ');
    this.accepted.push(accession);
  }
  sends(accession: string): number {
    return this.offered.filter((a) => a === accession).length;
  }
}

let dir: string;
let store: EventStore;
let analyzer: Analyzer;
const downloads: OrderDownload[] = [];
/** Refusals of each accession whose record (attempts, last error) the store has written. */
let refusalsRecorded: Map<string, number>;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-od-schedule-'));
  store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0 });
  analyzer = new Analyzer();
  refusalsRecorded = new Map();
  // A refusal is recorded by one write of the accession's document with its attempts counted;
  // the retry timer is set right after it (no I/O in between).
  const commitLocal = store.commitLocal.bind(store);
  store.commitLocal = async (drafts, docs = []) => {
    const ids = await commitLocal(drafts, docs);
    for (const doc of docs) {
      const value = doc.value as OrderDownloadDoc;
      if (doc.namespace === ORDER_DOWNLOAD_NS && value.attempts > 0) refusalsRecorded.set(value.accession, (refusalsRecorded.get(value.accession) ?? 0) + 1);
    }
    return ids;
  };
  // Only the timers order download schedules with; the store's I/O and setImmediate stay real.
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
});

afterEach(async () => {
  vi.useRealTimers();
  for (const d of downloads.splice(0)) await d.stop();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function start(options: Partial<OrderDownloadOptions>): OrderDownload {
  const d = new OrderDownload({
    analyzerId: 'centaur-1',
    profile: loadProfile('siemens-advia-centaur-xp'),
    link: analyzer,
    store,
    telemetry: new Telemetry(),
    log: silentLogger,
    // The cursor write never comes due during a test: the only timer on the fake clock is the retry.
    cursorIntervalMs: 3_600_000,
    ...options,
  });
  downloads.push(d);
  return d;
}

/**
 * Let the store's real I/O and what follows it run until `done` holds, then a few turns of the
 * event loop more (what follows a write without I/O: the retry timer). Fails after 10 s of real time.
 */
async function settle(done: () => boolean): Promise<void> {
  const giveUp = performance.now() + 10_000;
  while (!done()) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (performance.now() > giveUp) throw new Error(`not settled: offered ${JSON.stringify(analyzer.offered)}, refusals recorded ${JSON.stringify([...refusalsRecorded])}`);
  }
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Wait until `accession` was offered `n` times in all and its last refusal is recorded (its retry timer set). */
async function refusedTimes(accession: string, n: number): Promise<void> {
  await settle(() => analyzer.sends(accession) === n && refusalsRecorded.get(accession) === n);
}

describe('order download retry schedule', () => {
  /**
   * What IT staff are promised (astm/README.md, **Refused**; OrderDownloadOptions): a download the
   * analyzer refuses is sent again `retryDelayMs` apart for its first `maxAttempts` sends, then the
   * delay doubles up to `maxRetryDelayMs`, for as long as the line stays up (defaults: sends at 0,
   * 1, 2, 3, 4 min, then 2, 4, 8, 15, 15 min apart). Here 1 s, 3 sends, 5 s: sends at 0, 1, 2 s,
   * then 2, 4, 5, 5 s apart. Each step: one tick before it comes due nothing is sent; at it, one send.
   */
  it('the first maxAttempts sends go retryDelayMs apart, then the delay doubles up to maxRetryDelayMs', async () => {
    analyzer.refuses.add('ACC-BUSY');
    const d = start({ retryDelayMs: 1_000, maxAttempts: 3, maxRetryDelayMs: 5_000 });
    d.onCommitted([lisOrder('ACC-BUSY')]);
    await refusedTimes('ACC-BUSY', 1);

    const gaps = [1_000, 1_000, 2_000, 4_000, 5_000, 5_000];
    for (const [i, gap] of gaps.entries()) {
      await vi.advanceTimersByTimeAsync(gap - 1);
      await settle(() => true);
      expect(analyzer.sends('ACC-BUSY'), `before send ${i + 2} is due (${gap} ms after send ${i + 1})`).toBe(i + 1);
      await vi.advanceTimersByTimeAsync(1);
      await refusedTimes('ACC-BUSY', i + 2);
    }
    expect(analyzer.sends('ACC-BUSY')).toBe(gaps.length + 1);
    expect(analyzer.accepted).toEqual([]);
  });
});

describe('an accession the analyzer keeps refusing', () => {
  /** Order ACC-UNKNOWN (a test the analyzer does not know) refused `times` times, the line up. */
  async function refusedUntilBackedOff(d: OrderDownload, times: number): Promise<void> {
    analyzer.refuses.add('ACC-UNKNOWN');
    d.onCommitted([lisOrder('ACC-UNKNOWN')]);
    await refusedTimes('ACC-UNKNOWN', 1);
    for (let n = 2; n <= times; n++) {
      await vi.advanceTimersByTimeAsync(1_000);
      await refusedTimes('ACC-UNKNOWN', n);
    }
  }

  /**
   * The promise (astm/README.md, **Refused**): an accession refused maxAttempts times goes after
   * the others in a pass, so the STAT order queued behind it reaches the analyzer at once.
   */
  it('refused maxAttempts times, it goes after an order queued behind it, which is sent at once', async () => {
    const d = start({ retryDelayMs: 1_000, maxAttempts: 3, maxRetryDelayMs: 5_000 });
    await refusedUntilBackedOff(d, 3);
    const from = analyzer.offered.length;

    d.onCommitted([lisOrder('ACC-STAT')]);
    await refusedTimes('ACC-UNKNOWN', 4);
    expect(analyzer.offered.slice(from), 'the pass the new order started, with no retry timer run').toEqual(['ACC-STAT', 'ACC-UNKNOWN']);
    expect(analyzer.accepted).toEqual(['ACC-STAT']);
  });

  /**
   * What the technician saw: the analyzer (on TCP, it opens a connection for each transmission)
   * refused ACC-UNKNOWN five times, then the STAT orders queued while it was off the line waited
   * behind it every time it connected: a connection started the refused accession's count over,
   * so it went first, was refused, and the pass stopped there — the STAT orders sat in the outbox
   * while the status showed them waiting. The promise: an accession refused maxAttempts times
   * goes after the others in a pass (astm/README.md, **Refused**); a new connection restarts its
   * delays, not its place.
   */
  it('after the analyzer connects again, the orders that waited go before it', async () => {
    const d = start({ retryDelayMs: 1_000, maxAttempts: 3, maxRetryDelayMs: 5_000 });
    await refusedUntilBackedOff(d, 3);

    // Off the line: the STAT orders wait in the outbox.
    analyzer.connections = 0;
    d.onCommitted([lisOrder('ACC-STAT-1'), lisOrder('ACC-STAT-2')]);
    await settle(() => d.summary().waiting === 3);
    const from = analyzer.offered.length;

    // Back on the line.
    analyzer.connections = 1;
    d.onLink();
    // Its fourth refusal recorded, or the first pass over (the old order: refused first, the pass stopped).
    await settle(() => refusalsRecorded.get('ACC-UNKNOWN') === 4);
    expect(analyzer.offered.slice(from), 'the pass of the new connection').toEqual(['ACC-STAT-1', 'ACC-STAT-2', 'ACC-UNKNOWN']);
    expect(d.summary()).toMatchObject({ waiting: 1, failing: 1, lastErrorAccession: 'ACC-UNKNOWN' });
  });
});
