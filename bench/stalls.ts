/**
 * Stall benchmark: the longest time one synchronous step of the store's in-memory structures,
 * or one append of the message log, holds intake, as the backlog grows. Each is measured side by
 * side with the plain way of doing the same (the peer):
 *
 *  1. key filter: 1.5 million keys added in turns of 300 (about 100 messages between two turns of
 *     the event loop), the longest add or turn; peer: the same table grown in one go at each
 *     doubling (the filter before it grew in steps);
 *  2. partition counts: 1 million partition keys set, the longest set; peer: one JavaScript Map;
 *  3. message log: appends of 64 KiB records through 10 rolls of 8 MiB segments, the longest
 *     append at a roll; peer: the same log with the next segment created at the roll itself.
 *
 * After each, the structure is checked to hold what was put in (every key found in the filter once
 * its growth has moved every hash, as many hashes as the peer's table; as many partition keys as
 * the Map; ten rolls): a structure that dropped work would look fast. Failures go to the
 * results' `problems` and the process exits 1.
 *
 * Run: npm run bench:stalls [-- --quick]   Writes bench/results/stalls.json.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PerformanceObserver } from 'node:perf_hooks';
import { hashKey, KeyFilter } from '../gateway/src/store/key-filter.ts';
import { MessageLog } from '../gateway/src/store/message-log.ts';
import { ShardedMap } from '../gateway/src/store/sharded-map.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
/** Why the figures are not what they claim; written to the results, and the process exits 1. */
const problems: string[] = [];
const round = (ms: number): number => Math.round(ms * 100) / 100;
// Collector pauses are measured apart: a step that overlaps one is not the structure's own cost.
const gcPauses: Array<{ start: number; end: number }> = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcPauses.push({ start: e.startTime, end: e.startTime + e.duration });
}).observe({ entryTypes: ['gc'] });
/** The longest of the steps (start, duration) that no collector pause overlapped. */
function longestOwn(steps: Array<[number, number]>): number {
  let longest = 0;
  for (const [start, ms] of steps) {
    if (ms <= longest) continue;
    if (gcPauses.some((g) => g.start < start + ms && g.end > start)) continue;
    longest = ms;
  }
  return round(longest);
}
/** Keeps the steps worth looking at (over 0.5 ms): the rest cannot be the longest. */
function timed(steps: Array<[number, number]>, fn: () => void): void {
  const t = performance.now();
  fn();
  const ms = performance.now() - t;
  if (ms > 0.5) steps.push([t, ms]);
}
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const idemKey = (i: number): string => `!k!hl7|lis|LIS^MAINLAB|C${i}-0|a65ea72264489d4c|3|result.validated`;

/** The peer of the key filter: the same open-addressing table, every doubling done at once. */
class OneGoTable {
  #table = new Uint32Array(1 << 12);
  #size = 0;
  /** Distinct hashes held (as KeyFilter.size). */
  get size(): number {
    return this.#size;
  }
  add(key: string): void {
    const h = hashKey(key);
    let mask = this.#table.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const v = this.#table[i] as number;
      if (v === h) return;
      if (v === 0) {
        this.#table[i] = h;
        break;
      }
    }
    if (++this.#size <= this.#table.length * 0.6) return;
    const old = this.#table;
    this.#table = new Uint32Array(old.length * 2);
    mask = this.#table.length - 1;
    for (const v of old) {
      if (v === 0) continue;
      let i = v & mask;
      while (this.#table[i] !== 0) i = (i + 1) & mask;
      this.#table[i] = v;
    }
  }
}

/** Adds in turns of 300; the longest add and the longest turn (the filter's steps run in turns). */
async function longestAdd(add: (key: string) => void, keys: number): Promise<{ longestMs: number; longestTurnMs: number }> {
  const adds: Array<[number, number]> = [];
  const turns: Array<[number, number]> = [];
  for (let i = 0; i < keys; i++) {
    if (i % 300 === 0) {
      const t = performance.now();
      await turn();
      const ms = performance.now() - t;
      if (ms > 0.5) turns.push([t, ms]);
    }
    timed(adds, () => add(idemKey(i)));
  }
  await turn(); // the collector's entries of the last pauses
  return { longestMs: longestOwn(adds), longestTurnMs: longestOwn(turns) };
}

async function longestSet(set: (key: string) => void, keys: number): Promise<number> {
  const sets: Array<[number, number]> = [];
  for (let i = 0; i < keys; i++) {
    // Turns now and then, as intake has them: the collector's pause entries are delivered in turns.
    if (i % 1000 === 0) await turn();
    const key = `order:ACC-${i}-${i % 97}`;
    timed(sets, () => set(key));
  }
  await turn();
  return longestOwn(sets);
}

async function rolls(prepareAhead: boolean): Promise<{ longestAppendAtRollMs: number; medianAppendMs: number; rolls: number }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'lgw-stalls-'));
  const segmentBytes = 8 * 1024 * 1024;
  const log = await MessageLog.open(dir, { segmentBytes, prepareAhead });
  const record = Buffer.alloc(64 * 1024, 's');
  const all: number[] = [];
  let atRoll = 0;
  let segment = log.activeSegment;
  let rolled = 0;
  try {
    while (rolled < 10) {
      const t = performance.now();
      const [pointer] = await log.append([record]);
      const ms = performance.now() - t;
      all.push(ms);
      if (pointer && pointer.segment !== segment) {
        segment = pointer.segment;
        rolled++;
        atRoll = Math.max(atRoll, ms);
      }
    }
  } finally {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
  const sorted = Float64Array.from(all).sort();
  return { longestAppendAtRollMs: round(atRoll), medianAppendMs: round(sorted[Math.floor(sorted.length / 2)] ?? 0), rolls: rolled };
}

// Each pair alternates ours and the peer's, twice; the larger of the two is kept (the machine is shared).
const filter = { keys: quick ? 150_000 : 1_500_000, ours: [] as Array<{ longestMs: number; longestTurnMs: number }>, peer: [] as Array<{ longestMs: number; longestTurnMs: number }> };
const counts = { keys: quick ? 100_000 : 1_000_000, oursLongestSetMs: [] as number[], peerLongestSetMs: [] as number[] };
const log = { ours: [] as Array<Awaited<ReturnType<typeof rolls>>>, peer: [] as Array<Awaited<ReturnType<typeof rolls>>> };
for (let pass = 0; pass < (quick ? 1 : 2); pass++) {
  const f = new KeyFilter();
  filter.ours.push(await longestAdd((k) => f.add(k), filter.keys));
  const g = new OneGoTable();
  filter.peer.push(await longestAdd((k) => g.add(k), filter.keys));
  // The filter grown in steps holds every key once its last growth has moved every hash.
  while (f.growing) await turn();
  let lost = 0;
  for (let i = 0; i < filter.keys; i++) if (!f.has(idemKey(i))) lost++;
  if (lost > 0) problems.push(`key filter: ${lost} of ${filter.keys} keys not found after growing in steps`);
  if (f.size !== g.size) problems.push(`key filter: ${f.size} hashes held, the peer's table ${g.size}`);
  const sharded = new ShardedMap<number>();
  counts.oursLongestSetMs.push(await longestSet((k) => void sharded.set(k, 1), counts.keys));
  const map = new Map<string, number>();
  counts.peerLongestSetMs.push(await longestSet((k) => void map.set(k, 1), counts.keys));
  if (sharded.size !== counts.keys || map.size !== counts.keys) problems.push(`partition counts: ${sharded.size} keys in the sharded map, ${map.size} in the Map, of ${counts.keys}`);
  await turn();
  log.ours.push(await rolls(true));
  log.peer.push(await rolls(false));
  for (const r of [log.ours.at(-1)!, log.peer.at(-1)!]) if (r.rolls !== 10) problems.push(`message log: ${r.rolls} rolls of 10`);
}
const worst = (xs: number[]): number => Math.max(...xs);
const result = {
  benchmark: 'stalls',
  generatedAt: new Date().toISOString(),
  quick,
  machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryBytes: totalmem(), node: process.version },
  collectorPausesSeen: gcPauses.length,
  note: 'the longest time one step holds the event loop (or one append waits) as the backlog grows, collector pauses left out (measured apart); ours against the plain way, two alternating rounds each',
  keyFilter: {
    keys: filter.keys,
    ours: filter.ours,
    peerOneGoGrowth: filter.peer,
    longestOursMs: worst(filter.ours.flatMap((r) => [r.longestMs, r.longestTurnMs])),
    longestPeerMs: worst(filter.peer.flatMap((r) => [r.longestMs, r.longestTurnMs])),
  },
  partitionCounts: { keys: counts.keys, oursShardedLongestSetMs: counts.oursLongestSetMs, peerMapLongestSetMs: counts.peerLongestSetMs },
  messageLogRolls: { segmentBytes: 8 * 1024 * 1024, recordBytes: 64 * 1024, oursPreparedAhead: log.ours, peerCreatedAtRoll: log.peer },
  /** Empty when every structure held what was put in; otherwise no measurement. */
  problems,
};
const resultsDir = here.includes(`${path.sep}dist${path.sep}`) ? path.resolve(here, '../../bench/results') : path.join(here, 'results');
await mkdir(resultsDir, { recursive: true });
await writeFile(path.join(resultsDir, 'stalls.json'), JSON.stringify(result, null, 2) + '\n');
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
if (problems.length > 0) {
  process.stderr.write(`the results are no measurement:\n${problems.map((p) => `  ${p}`).join('\n')}\n`);
  process.exitCode = 1;
}
