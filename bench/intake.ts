/**
 * Durable HL7 intake benchmark: throughput and ACK latency of the gateway (ACK only after the
 * fsync'd store commit) side by side with @medplum/hl7's Hl7Server acknowledging from memory.
 *
 *  1. closed loop with 1, 8 and 32 persistent connections (each waits for its ACK): msg/s and
 *     ACK latency p50/p99/p99.9, durable and peer;
 *  2. ACK p99 at a fixed 1,000 msg/s (8 connections);
 *  3. sustained run at 80 % of the durable maximum, p99.9 (60 s; `--quick`: 10 s), and the peer at
 *     the same rate for context (the load generator shares the machine);
 *  diagnostics: every server run reports V8's full and young collections (count, pauses); the answer at the commit point against the answer after LevelDB's write too, at
 *  a fixed rate both keep up with (ACK latency, alternating pairs); the same endpoint over a store that keeps nothing, to separate the intake's own
 *  cost from the store's; and over a synced message-log append per batch with nothing indexed
 *  (the floor of a durable commit), to separate the cost of the sync from the indexes'. Every
 *  server run reports its CPU per message and event-loop delay.
 *
 * Servers and the load run in separate processes (child_process.fork). Writes
 * bench/results/intake.json.  Run: npm run bench:intake [-- --quick]   or   npx node bench/intake.ts --quick
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { closeSync, fdatasyncSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadResult, LoadSpec } from './intake-client.ts';
import type { GcStats } from './intake-server.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const ext = path.extname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
const CLOSED_MS = quick ? 4_000 : 10_000;
const FIXED_MS = quick ? 5_000 : 15_000;
const SUSTAINED_MS = quick ? 10_000 : 60_000;
const WARMUP_MS = quick ? 1_000 : 2_000;

type Mode = 'durable' | 'durable-after-level' | 'volatile' | 'log-only' | 'peer';

interface Summary {
  msgPerSec: number;
  /** Messages sent in the measured run, and of them those answered with a positive ACK. */
  sent: number;
  acked: number;
  /** Negative answers (AE/AR) and failed or closed connections: not counted in msgPerSec. */
  errors: number;
  /** Of `errors`, the negative answers. */
  negative: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  /** The load process's event-loop delay during the run (see intake-client.ts). */
  clientEventLoopDelay?: { p99Ms: number; maxMs: number };
  /** Fixed-rate runs: the largest ACK latency of each second, to tell episodes from a steady tail. */
  maxLatencyBySecondMs?: number[];
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)] as number;
}

function summarise(r: LoadResult): Summary {
  const sorted = Float64Array.from(r.latencies).sort();
  const round = (x: number): number => Math.round(x * 1000) / 1000;
  return {
    msgPerSec: Math.round((r.acked / r.elapsedMs) * 1000),
    sent: r.sent,
    acked: r.acked,
    errors: r.errors,
    negative: r.negative,
    p50Ms: round(percentile(sorted, 50)),
    p99Ms: round(percentile(sorted, 99)),
    p999Ms: round(percentile(sorted, 99.9)),
    maxMs: round(sorted[sorted.length - 1] ?? NaN),
    ...(r.loop ? { clientEventLoopDelay: r.loop } : {}),
  };
}

function once<T>(child: ChildProcess, pick: (m: unknown) => T | undefined): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: unknown): void => {
      const v = pick(m);
      if (v !== undefined) {
        child.off('message', onMessage);
        resolve(v);
      }
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`child exited (${code})`)));
  });
}

interface CommitStats {
  batches: number;
  operations: number;
  writes: number;
  largestBatch: number;
}
/** Group-commit statistics of the last durable server (whole life: warm-up included). */
let lastCommit: CommitStats | undefined;
/** Server CPU (user + system) per message handled, over its whole life: independent of machine load. */
let lastCpuUsPerMessage: number | undefined;
/** Event-loop delay of the last server (whole life): stalls show up here. */
let lastLoop: { p99Ms: number; maxMs: number } | undefined;
/** V8's collections in the last server (whole life): count, total and largest pause, full and young. */
let lastGc: GcStats | undefined;
/** The intake counters of the last server of ours (whole life: warm-up included); undefined for the peer. */
type IntakeCounts = { received: number; accepted: number; rejected: number; duplicates: number };
let lastIntake: IntakeCounts | undefined;
/** Members of GatewayStore the intake read from the last diagnostic store, which lacks them (intake-server.ts). */
let lastUnprovided: string[] = [];
/**
 * Why a run's figures are not what they claim (negative answers, connections lost, a server that
 * refused or never saw messages, a diagnostic store the intake has outgrown): written to the
 * results and the process exits 1, so that no such run is read as a measurement.
 */
const problems: string[] = [];

async function withServer<T>(mode: Mode, body: (port: number) => Promise<T>): Promise<T> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'lab-gw-bench-intake-'));
  const server = fork(path.join(here, `intake-server${ext}`), [mode, dataDir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const port = await once(server, (m) => ((m as { ready?: boolean; port?: number }).ready ? ((m as { port: number }).port) : undefined));
    return await body(port);
  } finally {
    const stopped = once(server, (m) => {
      const msg = m as {
        stopped?: boolean;
        commit?: CommitStats;
        cpu?: { user: number; system: number };
        messages?: number;
        loop?: { p99Ms: number; maxMs: number };
        gc?: GcStats;
        intake?: IntakeCounts;
        unprovided?: string[];
      };
      lastLoop = msg.loop;
      lastGc = msg.gc;
      if (!msg.stopped) return undefined;
      lastCommit = msg.commit;
      lastIntake = msg.intake;
      lastUnprovided = msg.unprovided ?? [];
      lastCpuUsPerMessage = msg.cpu && msg.messages ? Math.round((msg.cpu.user + msg.cpu.system) / msg.messages) : undefined;
      return true;
    }).catch(() => true);
    server.send({ cmd: 'stop' });
    await Promise.race([stopped, new Promise((r) => setTimeout(r, 10_000))]);
    server.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
    // Let the file system finish with what the run wrote and deleted (journal, freed blocks)
    // before the next run syncs: otherwise its first seconds pay for this one.
    spawnSync('sync');
  }
}

let runCounter = 0;
async function load(port: number, spec: Omit<LoadSpec, 'port' | 'runId'>): Promise<LoadResult> {
  const client = fork(path.join(here, `intake-client${ext}`), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const result = once(client, (m) => ((m as LoadResult).latencies ? (m as LoadResult) : undefined));
  client.send({ ...spec, port, runId: `R${process.pid}x${++runCounter}` } satisfies LoadSpec);
  return result;
}

async function measure(
  mode: Mode,
  spec: Omit<LoadSpec, 'port' | 'runId'>,
): Promise<
  Summary & {
    serverCpuUsPerMessage?: number;
    serverEventLoopDelay?: { p99Ms: number; maxMs: number };
    serverGc?: GcStats;
    groupCommit?: { batches: number; messagesPerBatch: number };
    serverIntake?: IntakeCounts;
  }
> {
  lastCommit = undefined;
  lastCpuUsPerMessage = undefined;
  lastLoop = undefined;
  lastGc = undefined;
  lastIntake = undefined;
  lastUnprovided = [];
  let warmAcked = 0;
  const s = await withServer(mode, async (port) => {
    const warm = await load(port, { ...spec, durationMs: WARMUP_MS });
    warmAcked = warm.acked;
    if (warm.errors > 0) problems.push(`${mode} ${JSON.stringify(spec)}: warm-up: ${warm.negative} negative answers, ${warm.errors - warm.negative} connections lost`);
    const r = await load(port, spec);
    return spec.rate !== undefined ? { ...summarise(r), maxLatencyBySecondMs: r.maxBySecond } : summarise(r);
  });
  const what = `${mode} ${JSON.stringify(spec)}`;
  if (s.negative > 0) problems.push(`${what}: ${s.negative} of ${s.sent} messages answered negatively (not counted in msgPerSec)`);
  if (s.errors > s.negative) problems.push(`${what}: ${s.errors - s.negative} connections failed or were closed`);
  if (s.acked === 0) problems.push(`${what}: no message acknowledged`);
  // Our servers' own counters: every positive ACK the load saw must be a message the intake took
  // (a server that answered AA without taking, or refused behind the load's back, shows here).
  // Set by withServer's stop handler (a callback: not seen by the narrowing above).
  const i = lastIntake as IntakeCounts | undefined;
  if (mode !== 'peer') {
    if (!i) problems.push(`${what}: the server reported no intake counters`);
    else {
      if (i.rejected > 0) problems.push(`${what}: the server refused ${i.rejected} messages`);
      if (i.duplicates > 0) problems.push(`${what}: the server took ${i.duplicates} messages as duplicates (control ids are unique per run)`);
      if (i.accepted < warmAcked + s.acked) problems.push(`${what}: the server accepted ${i.accepted} messages, the load saw ${warmAcked + s.acked} positive ACKs`);
    }
    if ((lastUnprovided as string[]).length > 0) problems.push(`${what}: the intake read ${lastUnprovided.join(', ')} from the diagnostic store, which lacks them: the diagnostic no longer stands in for the store`);
  }
  const c = lastCommit as CommitStats | undefined;
  const cpu = {
    ...(lastCpuUsPerMessage !== undefined ? { serverCpuUsPerMessage: lastCpuUsPerMessage } : {}),
    ...(lastLoop ? { serverEventLoopDelay: lastLoop } : {}),
    ...(lastGc ? { serverGc: lastGc } : {}),
    ...(i ? { serverIntake: i } : {}),
  };
  const out = c && c.batches > 0 ? { ...s, ...cpu, groupCommit: { batches: c.batches, messagesPerBatch: Math.round((c.writes / c.batches) * 10) / 10 } } : { ...s, ...cpu };
  process.stderr.write(`${mode.padEnd(7)} ${JSON.stringify(spec)} → ${JSON.stringify(out)}\n`);
  return out;
}

/** fdatasync latency of the temp dir's disk: the floor under every durable ACK. */
function fsyncProbe(): { p50Ms: number; p99Ms: number } {
  const file = path.join(tmpdir(), `lab-gw-fsync-${process.pid}`);
  const fd = openSync(file, 'w');
  const lat: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    writeSync(fd, Buffer.alloc(4096, i));
    fdatasyncSync(fd);
    lat.push(performance.now() - t);
  }
  closeSync(fd);
  unlinkSync(file);
  const sorted = Float64Array.from(lat).sort();
  return { p50Ms: Math.round(percentile(sorted, 50) * 100) / 100, p99Ms: Math.round(percentile(sorted, 99) * 100) / 100 };
}
const loadBefore = loadavg();
const fsyncBefore = fsyncProbe();
process.stderr.write(`load average ${loadBefore.map((x) => x.toFixed(1)).join(' ')}; fdatasync ${JSON.stringify(fsyncBefore)}\n`);

const closedLoop: Record<string, { durable: Summary; peer: Summary; ratio: number }> = {};
for (const connections of [1, 8, 32]) {
  const durable = await measure('durable', { connections, durationMs: CLOSED_MS });
  const peer = await measure('peer', { connections, durationMs: CLOSED_MS });
  closedLoop[String(connections)] = { durable, peer, ratio: Math.round((durable.msgPerSec / peer.msgPerSec) * 100) / 100 };
}
const maxDurable = Math.max(...Object.values(closedLoop).map((r) => r.durable.msgPerSec));

const fixed1000 = {
  durable: await measure('durable', { connections: 8, durationMs: FIXED_MS, rate: 1000 }),
  peer: await measure('peer', { connections: 8, durationMs: FIXED_MS, rate: 1000 }),
};

const sustainedRate = Math.round(maxDurable * 0.8);
// The peer at the same even rate, side by side: what the load generator and this machine allow
// an in-memory server (the client shares the two cores and its pauses count as latency).
const sustained = {
  rate: sustainedRate,
  connections: 32,
  durationMs: SUSTAINED_MS,
  durable: await measure('durable', { connections: 32, durationMs: SUSTAINED_MS, rate: sustainedRate }),
  peer: await measure('peer', { connections: 32, durationMs: SUSTAINED_MS, rate: sustainedRate }),
};

// Diagnostics last, so that their disk traffic cannot disturb the runs with targets: the same
// endpoint at 32 connections over another store, against the peer's figure above.
const c32peer = (closedLoop['32'] as { peer: Summary }).peer;
async function diagnostic(mode: Mode, note: string): Promise<{ note: string; connections: number; result: Summary; ratioVsPeer: number }> {
  const result = await measure(mode, { connections: 32, durationMs: CLOSED_MS });
  return { note, connections: 32, result, ratioVsPeer: Math.round((result.msgPerSec / c32peer.msgPerSec) * 100) / 100 };
}
// A store that keeps nothing isolates the intake's own cost (framing, parsing, normalizing, ACK,
// sockets) from the durable store's.
const intakeWithoutStore = await diagnostic('volatile', 'diagnostic, not durable: MllpEndpoint with a store that keeps nothing');
// The floor of a durable commit: the same group commit and message log, but a batch is only one
// synced append (no indexes, no events, no duplicate detection): what the sync itself costs,
// against what the store's indexes cost.
const syncedAppendOnly = await diagnostic('log-only', 'diagnostic, durable but not a store: one synced message-log append per batch, nothing indexed');
// The runs above send results of new accessions: their billing derivation finds no order. A LIS
// sends an accession's order first: its result's commit then reads the order back and derives the
// invoice eligibility (one more event). The same closed loop at 32 connections in that flow,
// side by side with the peer in the same flow.
const orderThenResult = {
  note: 'diagnostic: each connection sends an order (ORM^O01) of a new accession, then its result (ORU^R01), in turn; the result derives an invoice.eligible event',
  connections: 32,
  durable: await measure('durable', { connections: 32, durationMs: CLOSED_MS, mix: 'orm-oru' }),
  peer: await measure('peer', { connections: 32, durationMs: CLOSED_MS, mix: 'orm-oru' }),
  ratio: 0,
};
orderThenResult.ratio = Math.round((orderThenResult.durable.msgPerSec / orderThenResult.peer.msgPerSec) * 100) / 100;
// A logged batch is answered at its commit point (the synced message-log write), while LevelDB is
// written behind it; before, the answer also waited for LevelDB's write. Both at half the durable
// maximum with 32 connections (both keep up), in alternating pairs: the ACK latency each gives.
const answerRate = Math.round(maxDurable * 0.5);
const answerPairs: Array<{ atCommitPoint: Summary; afterLevelDb: Summary }> = [];
for (let i = 0; i < 2; i++) {
  const atCommitPoint = await measure('durable', { connections: 32, durationMs: FIXED_MS, rate: answerRate });
  const afterLevelDb = await measure('durable-after-level', { connections: 32, durationMs: FIXED_MS, rate: answerRate });
  answerPairs.push({ atCommitPoint, afterLevelDb });
}
const answerAtCommitPoint = {
  note: 'diagnostic: ACK latency with the answer at the commit point (the store as shipped) against the answer after the LevelDB write as well, same rate, alternating runs',
  rate: answerRate,
  connections: 32,
  pairs: answerPairs,
};

const c32 = closedLoop['32'] as { durable: Summary; peer: Summary; ratio: number };
const result = {
  benchmark: 'intake',
  generatedAt: new Date().toISOString(),
  quick,
  machine: {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memoryBytes: totalmem(),
    node: process.version,
    // The machine is shared: its load and disk latency frame every figure below.
    loadAverageBefore: loadBefore.map((x) => Math.round(x * 100) / 100),
    loadAverageAfter: loadavg().map((x) => Math.round(x * 100) / 100),
    fdatasyncBefore: fsyncBefore,
    fdatasyncAfter: fsyncProbe(),
  },
  message: 'ORU^R01 v2.5.1, 5 OBX (~700 bytes), unique MSH-10 per message; durable = 1 message record + 1 event per ACK, committed as the gateway does (with its billing derivation: invoice eligibility), fsync before ACK',
  closedLoop,
  intakeWithoutStore,
  syncedAppendOnly,
  orderThenResult,
  answerAtCommitPoint,
  fixed1000,
  sustained,
  /** Empty when every run counted only messages the server took; otherwise the run is no measurement. */
  problems,
  targets: {
    durableVsPeerAt32: { target: '>= 1.0', actual: c32.ratio, met: c32.ratio >= 1.0 },
    durableMsgPerSec: { target: '>= 10000', actual: maxDurable, met: maxDurable >= 10_000 },
    p99At1000: { target: '<= 5 ms', actual: fixed1000.durable.p99Ms, met: fixed1000.durable.p99Ms <= 5 },
    p999Sustained: { target: '<= 50 ms', actual: sustained.durable.p999Ms, met: sustained.durable.p999Ms <= 50, peerAtSameRate: sustained.peer.p999Ms },
  },
};
await mkdir(path.join(here, 'results'), { recursive: true });
// Results live next to the sources (bench/results) whether run from bench/ or dist/bench/.
const resultsDir = here.includes(`${path.sep}dist${path.sep}`) ? path.resolve(here, '../../bench/results') : path.join(here, 'results');
await mkdir(resultsDir, { recursive: true });
await writeFile(path.join(resultsDir, 'intake.json'), JSON.stringify(result, null, 2) + '\n');
process.stdout.write(JSON.stringify(result.targets, null, 2) + '\n');
if (problems.length > 0) {
  process.stderr.write(`the results are no measurement:\n${problems.map((p) => `  ${p}`).join('\n')}\n`);
  process.exitCode = 1;
}
