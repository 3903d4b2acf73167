/**
 * Benchmark server process (forked by bench/intake.ts): the durable gateway intake (EventStore
 * with fsync'd group commit + MllpEndpoint); the same MllpEndpoint over a store that keeps
 * nothing ('volatile': a diagnostic that isolates the intake's own cost from the store's); or the
 * peer, @medplum/hl7's Hl7Server acknowledging from memory. Reports `{ ready, port }` over IPC;
 * exits on 'stop'.
 *
 *   intake-server <durable|durable-after-level|volatile|log-only|peer> <dataDir>
 *
 * 'durable-after-level' is the durable store answering a logged batch only once LevelDB has it
 * too (as before the answer at the commit point), for comparison.
 */
import { constants as perf, monitorEventLoopDelay, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { Hl7Server, type Hl7MessageEvent } from '@medplum/hl7';
import { billingRetention, invoiceEligibility } from '../gateway/src/events/invoice-eligibility.ts';
import { MllpEndpoint } from '../gateway/src/ingress/mllp/mllp-endpoint.ts';
import { silentLogger } from '../gateway/src/log.ts';
import { EventStore } from '../gateway/src/store/event-store.ts';
import { GroupCommitter, type GroupCommitStats } from '../gateway/src/store/group-commit.ts';
import { MessageLog } from '../gateway/src/store/message-log.ts';
import { encodeMessage } from '../gateway/src/store/message-record.ts';
import type { CommitResult, GatewayStore, InboundMessage, IntakeCounters } from '../gateway/src/store/types.ts';
import { Telemetry } from '../gateway/src/telemetry.ts';

/**
 * Members of GatewayStore the intake read from a diagnostic store that does not have them. The
 * diagnostics give only the intake's surface of GatewayStore; when the intake comes to use another
 * member (an optional method added later), the diagnostic stands in for the store no longer and
 * its figures are not the intake's: the name is reported with 'stopped' and bench/intake.ts
 * refuses the run. (A store without mayHoldEarlierReleaseKeys answered AE to every message for a
 * whole session, unnoticed, before commit 1210230.)
 */
const unprovided = new Set<string>();
function watched<T extends object>(store: T): T {
  return new Proxy(store, {
    get(target, name, receiver) {
      if (typeof name === 'string' && !(name in target) && name !== 'then') unprovided.add(name);
      return Reflect.get(target, name, receiver) as unknown;
    },
  });
}

/** Keeps nothing, answers at once: only for measuring the intake path without the store. */
function volatileStore(): GatewayStore & { close(): Promise<void>; commitStats: { batches: number; operations: number; writes: number; largestBatch: number } } {
  const counters: IntakeCounters = { received: 0, accepted: 0, rejected: 0, duplicates: 0 };
  let n = 0;
  const store = {
    health: 'ok',
    commitStats: { batches: 0, operations: 0, writes: 0, largestBatch: 0, besideStage1: 0 },
    async commit(message: InboundMessage): Promise<CommitResult> {
      counters.received++;
      counters.accepted++;
      return { messageId: String(++n), duplicate: false, ack: message.ack, eventIds: [], skippedEvents: 0 };
    },
    intake: () => counters,
    // Counted, so that a diagnostic answering AE shows in its counters (bench/intake.ts checks them).
    countRejectedWithoutCommit: () => void counters.rejected++,
    // A store this release began: no look-ups under an earlier release's keys (hl7-intake.ts);
    // without it the intake looks them up in a store that cannot answer and answers AE.
    mayHoldEarlierReleaseKeys: () => false,
    // A LIS link's mark (hl7/order-numbers.ts): this one has sent no order carrying a filler
    // number, so no result is looked up by its order's other number.
    getDoc: async () => undefined,
    putDoc: async () => undefined,
    close: async () => undefined,
  };
  return watched(store) as unknown as ReturnType<typeof volatileStore>;
}

/**
 * The floor of a durable commit: each batch of messages is one synced append to the message log
 * (the same group commit and log as the store) and nothing else: no index, no events, no
 * duplicate detection. Not a usable store; it shows how much of the durable intake's cost is the
 * sync itself and how much the indexes.
 */
async function logOnlyStore(dir: string): Promise<GatewayStore & { close(): Promise<void>; commitStats: GroupCommitStats }> {
  const log = await MessageLog.open(`${dir}/messages`);
  const counters: IntakeCounters = { received: 0, accepted: 0, rejected: 0, duplicates: 0 };
  const committer = new GroupCommitter<void>({
    prepare: async (ops) => void (await log.append(ops.map((op) => op.value as Buffer))),
    batch: async () => undefined,
  });
  let n = 0;
  const store = {
    health: 'ok',
    commitStats: committer.stats,
    async commit(message: InboundMessage): Promise<CommitResult> {
      counters.received++;
      counters.accepted++;
      const messageId = String(++n);
      await committer.write([{ type: 'put', key: messageId, value: encodeMessage({ id: messageId, endpoint: message.endpoint, receivedAt: message.receivedAt, controlId: message.controlId }, message.raw, message.ack) }]);
      return { messageId, duplicate: false, ack: message.ack, eventIds: [], skippedEvents: 0 };
    },
    intake: () => counters,
    countRejectedWithoutCommit: () => void counters.rejected++,
    mayHoldEarlierReleaseKeys: () => false,
    getDoc: async () => undefined,
    putDoc: async () => undefined,
    close: () => log.close(),
  };
  return watched(store) as unknown as Awaited<ReturnType<typeof logOnlyStore>>;
}

const [mode, dataDir] = process.argv.slice(2);
// Event-loop stalls of the server (a latency outlier with a stall is the server's own doing).
const loopDelay = monitorEventLoopDelay({ resolution: 5 });
loopDelay.enable();
const loop = (): { p99Ms: number; maxMs: number } => ({ p99Ms: Math.round(loopDelay.percentile(99) / 1e4) / 100, maxMs: Math.round(loopDelay.max / 1e4) / 100 });
// V8's collections over the server's life: full (mark-compact) and young-generation, with their
// pauses; a sustained run's periodic latency peaks line up with the full ones.
const gc = { full: { count: 0, totalMs: 0, maxMs: 0 }, young: { count: 0, totalMs: 0, maxMs: 0 } };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries() as Array<PerformanceEntry & { detail?: { kind?: number } }>) {
    const kind = entry.detail?.kind;
    const into = kind === perf.NODE_PERFORMANCE_GC_MAJOR ? gc.full : kind === perf.NODE_PERFORMANCE_GC_MINOR ? gc.young : undefined;
    if (!into) continue;
    into.count++;
    into.totalMs += entry.duration;
    into.maxMs = Math.max(into.maxMs, entry.duration);
  }
}).observe({ entryTypes: ['gc'] });
/** V8's collections in a server's life (reported with 'stopped'; bench/intake.ts reads it). */
export type GcStats = typeof gc;
const gcSummary = (): GcStats => {
  const round = (x: number): number => Math.round(x * 100) / 100;
  const one = (g: typeof gc.full): typeof gc.full => ({ count: g.count, totalMs: round(g.totalMs), maxMs: round(g.maxMs) });
  return { full: one(gc.full), young: one(gc.young) };
};
const send = (m: unknown, then?: () => void): void => {
  process.send?.(m, undefined, {}, () => then?.());
};

if (mode === 'durable' || mode === 'durable-after-level' || mode === 'volatile' || mode === 'log-only') {
  const store =
    mode === 'durable' || mode === 'durable-after-level'
      ? await EventStore.open({
          dataDir: dataDir as string,
          pruneIntervalMs: 0,
          minFreeBytes: 0,
          answerAtCommitPoint: mode === 'durable',
          // As the gateway opens it (gateway.ts): every ORU's result is a billing event, and its
          // commit first derives the accession's invoice eligibility (a read of its stored billing
          // events and billing memory). Without it the bench measured less than the gateway does.
          deriver: invoiceEligibility,
          retentionHold: billingRetention,
        })
      : mode === 'log-only'
        ? await logOnlyStore(dataDir as string)
        : volatileStore();
  const endpoint = new MllpEndpoint({
    config: {
      id: 'lis',
      listen: { host: '127.0.0.1', port: 0 },
      ack: 'original',
      maxMessageBytes: 16 * 1024 * 1024,
      idleTimeoutMs: 0,
      maxConnections: 256,
      unknownMessageTypes: 'accept',
      defaultCharset: 'ascii',
    },
    store,
    telemetry: new Telemetry(),
    log: silentLogger,
  });
  await endpoint.start();
  process.on('message', (m: { cmd?: string }) => {
    if (m.cmd === 'stop') {
      void (async () => {
        const intake = store.intake();
        await endpoint.stop(5_000);
        const commit = { ...store.commitStats };
        await store.close();
        send({ stopped: true, intake, commit, cpu: process.cpuUsage(), messages: intake.received, loop: loop(), gc: gcSummary(), unprovided: [...unprovided] }, () => process.exit(0));
      })();
    }
  });
  send({ ready: true, port: endpoint.address()?.port });
} else {
  let messages = 0;
  const server = new Hl7Server((connection) => {
    connection.addEventListener('message', (event: Hl7MessageEvent) => {
      messages++;
      connection.send(event.message.buildAck());
    });
  });
  await server.start(0);
  const addr = server.server?.address();
  process.on('message', (m: { cmd?: string }) => {
    if (m.cmd === 'stop') {
      void server.stop({ forceDrainTimeoutMs: 500 }).finally(() => {
        send({ stopped: true, cpu: process.cpuUsage(), messages, loop: loop(), gc: gcSummary() }, () => process.exit(0));
      });
    }
  });
  send({ ready: true, port: typeof addr === 'object' && addr ? addr.port : 0 });
}
