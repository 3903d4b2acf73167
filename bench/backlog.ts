/**
 * Backlog benchmark: the store with N queued events (default 1,000,000).
 *  - restart-to-ready: a fresh process opens the store, recovers, and leases its first events;
 *    measured from process spawn to the "ready" line (target ≤ 2 s at 1M, and flat in N).
 *  - RSS of that process once ready (target ≤ 150 MB).
 *  - disk bytes per queued event (store directory size / events).
 * Run: npm run bench:backlog [-- --events 1000000] [--quick]
 * Writes bench/results/backlog.json.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir, cpus, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventStore } from '../gateway/src/store/event-store.ts';
import type { DraftEvent } from '../gateway/src/events/types.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
/**
 * Why a run's figures are not what they claim (a fill that queued fewer events than asked, a
 * restart that was ready without having recovered the backlog or without leasing from it): written
 * to the results, and the process exits 1. A store that opened empty is ready fast and small.
 */
const problems: string[] = [];

async function dirSize(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await dirSize(p);
    else total += (await stat(p)).size;
  }
  return total;
}

function consumption(i: number): DraftEvent {
  const analyzer = `an-${i % 32}`;
  return {
    type: 'consumable.used',
    occurredAt: new Date().toISOString(),
    receivedAt: new Date().toISOString(),
    idempotencyKey: `bench|${analyzer}|S${i}|GLU|${i}`,
    correlationId: `ACC${i}`,
    // Many partitions, like a real backlog of orders and specimens.
    partitionKey: `order:ACC${i % 100_000}`,
    source: { kind: 'astm', endpoint: analyzer, analyzer },
    data: { analyzer, productCode: 'REAG-GLU-500', quantity: 0.2, uom: 'mL', runType: 'patient', testCode: 'GLU', specimenId: `S${i}`, runAt: new Date().toISOString() },
  };
}

async function fill(dataDir: string, events: number): Promise<number> {
  const store = await EventStore.open({ dataDir, pruneIntervalMs: 0, minFreeBytes: 0 });
  const started = performance.now();
  const perMessage = 4;
  const concurrency = 256;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < events) {
      const base = next;
      next += perMessage;
      const drafts = Array.from({ length: Math.min(perMessage, events - base) }, (_, j) => consumption(base + j));
      const result = await store.commit(
        { kind: 'astm', endpoint: 'bench', receivedAt: new Date().toISOString(), encoding: 'ascii', raw: Buffer.from(`H|\\^&|||BENCH\rR|1|^^^GLU|${base}\rL|1|N\r`), status: 'accepted', controlId: `B${base}` },
        drafts,
      );
      skipped += result.duplicate ? drafts.length : drafts.length - result.eventIds.length;
    }
  };
  let skipped = 0;
  await Promise.all(Array.from({ length: concurrency }, worker));
  const queued = store.stats().pending;
  await store.close();
  if (skipped > 0 || queued !== events) problems.push(`fill of ${events}: ${queued} events queued (${skipped} not taken)`);
  return (events / (performance.now() - started)) * 1000;
}

/** Child: open, recover, lease the first heads, report. */
async function child(dataDir: string): Promise<void> {
  const store = await EventStore.open({ dataDir, pruneIntervalMs: 0, minFreeBytes: 0 });
  const leases = await store.lease({ limit: 8 });
  const stats = store.stats();
  const leased = leases.reduce((n, l) => n + l.events.length, 0);
  // Every event not yet resolved: waiting, leased (now or by a restart before) or due for a retry.
  process.stdout.write(JSON.stringify({ ready: true, leased, pending: stats.pending + stats.inFlight + stats.retrying, rss: process.memoryUsage().rss }) + '\n');
  await store.close();
}

async function restart(dataDir: string): Promise<{ readyMs: number; rssBytes: number; pending: number; leased: number }> {
  const started = performance.now();
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', dataDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const line = await new Promise<string>((resolve, reject) => {
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    proc.on('exit', (code) => (code ? reject(new Error(`child exited ${code}`)) : undefined));
  });
  const readyMs = performance.now() - started;
  await new Promise((r) => proc.on('exit', r));
  const parsed = JSON.parse(line) as { rss: number; pending: number; leased: number };
  return { readyMs, rssBytes: parsed.rss, pending: parsed.pending, leased: parsed.leased };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--child') return child(args[1]!);
  const quick = args.includes('--quick');
  const eventsArg = args.indexOf('--events');
  const largest = eventsArg >= 0 ? Number(args[eventsArg + 1]) : quick ? 100_000 : 1_000_000;
  const sizes = [...new Set([10_000, Math.min(100_000, largest), largest])].filter((n) => n <= largest);
  const results = [];
  for (const events of sizes) {
    const dir = await mkdtemp(path.join(tmpdir(), 'lgw-backlog-'));
    const fillRate = await fill(dir, events);
    // Restart a few times; report the median.
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await restart(dir));
    for (const r of runs) {
      if (r.pending !== events) problems.push(`restart with ${events} queued: ready with ${r.pending} events unresolved`);
      if (r.leased === 0) problems.push(`restart with ${events} queued: ready without leasing any event`);
    }
    runs.sort((a, b) => a.readyMs - b.readyMs);
    const median = runs[1]!;
    const bytes = await dirSize(path.join(dir, 'store'));
    results.push({
      queuedEvents: events,
      pendingSeen: median.pending,
      fillEventsPerSecond: Math.round(fillRate),
      restartToReadyMs: Math.round(median.readyMs),
      readyRssMB: Math.round((median.rssBytes / 1024 / 1024) * 10) / 10,
      diskBytesPerEvent: Math.round(bytes / events),
    });
    console.log(JSON.stringify(results.at(-1)));
    await rm(dir, { recursive: true, force: true });
  }
  // The floor: a bare Node process that opens an empty LevelDB (what any restart costs anyway).
  const emptyDir = await mkdtemp(path.join(tmpdir(), 'lgw-backlog-empty-'));
  const empty = await restart(emptyDir);
  await rm(emptyDir, { recursive: true, force: true });
  const report = {
    benchmark: 'backlog',
    at: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGB: Math.round(totalmem() / 2 ** 30), node: process.version },
    targets: { restartToReadyMs: 2000, readyRssMB: 150 },
    emptyStoreRestartMs: Math.round(empty.readyMs),
    results,
    /** Empty when every restart recovered the whole backlog and leased from it; otherwise no measurement. */
    problems,
  };
  // Results go to <repo>/bench/results whether this runs from source or from dist/.
  const repoRoot = path.basename(path.dirname(here)) === 'dist' ? path.resolve(here, '../..') : path.resolve(here, '..');
  await mkdir(path.join(repoRoot, 'bench', 'results'), { recursive: true });
  await writeFile(path.join(repoRoot, 'bench', 'results', 'backlog.json'), JSON.stringify(report, null, 2) + '\n');
  console.log(JSON.stringify(report, null, 2));
  if (problems.length > 0) {
    console.error(`the results are no measurement:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    process.exitCode = 1;
  }
}

await main();
