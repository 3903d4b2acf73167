/**
 * Benchmark load process (forked by bench/intake.ts, so the load does not share the server's
 * event loop). LIS-like: each persistent connection sends one message and waits for its ACK
 * before the next.
 *
 * - closed loop: as fast as the ACKs come back, for `durationMs`;
 * - fixed rate: `rate` msg/s in total; each connection has its own schedule, and a message whose
 *   slot passed while the previous ACK was outstanding is sent at once and its latency counted
 *   from its scheduled time (no coordinated omission). A message sent on time counts from its
 *   send: a timer of this process firing late (they are millisecond-grained) is not the server's.
 */
import net from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { MllpDecoder } from '../gateway/src/ingress/mllp/mllp-decoder.ts';
import { wrapFrame } from '../gateway/src/ingress/mllp/mllp-encoder.ts';

export interface LoadSpec {
  port: number;
  connections: number;
  durationMs: number;
  /** Total msg/s; absent = closed loop. */
  rate?: number;
  /** Prefix making control ids unique across runs. */
  runId: string;
  /**
   * What each connection sends: `oru` (default) a result of a new accession each time; `orm-oru`
   * the LIS's usual flow, an order (ORM^O01) of a new accession, then its result (ORU^R01), in
   * turn: the result's commit reads the order back and derives its invoice eligibility.
   */
  mix?: 'oru' | 'orm-oru';
}

export interface LoadResult {
  sent: number;
  /** Messages answered with a positive ACK (AA, CA). */
  acked: number;
  /** Negative answers (AE, AR, an oversize frame) and connections that failed. */
  errors: number;
  /** Of `errors`, the negative answers. */
  negative: number;
  elapsedMs: number;
  /** ACK latencies in ms. */
  latencies: number[];
  /** The largest ACK latency (ms) of each second of the run, by scheduled send time. */
  maxBySecond: number[];
  /**
   * The load process's own event-loop delay: a pause here (GC, the machine) delays sends and
   * reads and counts as ACK latency, whichever server is measured.
   */
  loop?: { p99Ms: number; maxMs: number };
}

function oru(id: string): Buffer {
  const acc = `A${id}`;
  return wrapFrame(
    Buffer.from(
      `MSH|^~\\&|LIS|MAINLAB|GATEWAY|MAINLAB|20240301093000||ORU^R01^ORU_R01|${id}|P|2.5.1\r` +
        `PID|1||MRN${id.length}^^^LAB^MR\r` +
        `ORC|RE|${acc}|F${id}\r` +
        `OBR|1|${acc}|F${id}|BMP^Basic metabolic panel^L|||20240301090000||||||||||||||20240301092900|||F\r` +
        `OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L|3.9-6.1|N|||F\r` +
        `OBX|2|NM|2951-2^Sodium^LN||140|mmol/L|135-145|N|||F\r` +
        `OBX|3|NM|2823-3^Potassium^LN||4.1|mmol/L|3.5-5.1|N|||F\r` +
        `OBX|4|NM|2075-0^Chloride^LN||102|mmol/L|98-107|N|||F\r` +
        `OBX|5|NM|2160-0^Creatinine^LN||80|umol/L|62-106|N|||F\r`,
      'latin1',
    ),
  );
}

function orm(id: string): Buffer {
  const acc = `A${id}`;
  return wrapFrame(
    Buffer.from(
      `MSH|^~\\&|LIS|MAINLAB|GATEWAY|MAINLAB|20240301085000||ORM^O01^ORM_O01|O${id}|P|2.5.1\r` +
        `PID|1||MRN${id.length}^^^LAB^MR\r` +
        `ORC|NW|${acc}|F${id}||||||20240301085000\r` +
        `OBR|1|${acc}|F${id}|BMP^Basic metabolic panel^L|||20240301085000\r`,
      'latin1',
    ),
  );
}

async function runConnection(spec: LoadSpec, index: number, started: number, until: number, out: LoadResult): Promise<void> {
  const socket = net.connect({ host: '127.0.0.1', port: spec.port });
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  let waiting: ((answer: 'accepted' | 'negative' | 'closed') => void) | undefined;
  // Only a positive ACK (MSA-1 AA, or CA in enhanced mode) counts as a message taken: a server
  // answering AE/AR to everything must not look fast.
  const decoder = new MllpDecoder({
    maxFrameBytes: 1 << 20,
    onFrame: (frame) => waiting?.(/\rMSA\|[AC]A\|/.test(frame.toString('latin1')) ? 'accepted' : 'negative'),
    onOversize: () => waiting?.('negative'),
  });
  socket.on('data', (c: Buffer) => decoder.push(c));
  socket.on('error', () => undefined);
  // A connection the server closed (or that failed) ends this connection's run as an error: before,
  // its message waited for an answer for ever and the run never ended.
  let closed = false;
  socket.on('close', () => {
    closed = true;
    waiting?.('closed');
  });
  const interval = spec.rate ? (1000 * spec.connections) / spec.rate : 0;
  // Spread the connections' schedules evenly over one interval.
  let next = performance.now() + (interval * index) / spec.connections;
  let n = 0;
  let lastAck = 0;
  while (performance.now() < until) {
    let scheduled = performance.now();
    if (interval > 0) {
      const slot = next;
      next += interval;
      if (slot >= until) break;
      // Timers may fire up to a millisecond early: wait until the slot has really come.
      while (performance.now() < slot) await new Promise((r) => setTimeout(r, Math.max(0, slot - performance.now())));
      // A slot that passed while the previous ACK was outstanding counts from the slot (the
      // server held the sender up); otherwise from the send, since a timer firing late is this
      // process's delay, not the server's.
      scheduled = lastAck > slot ? slot : performance.now();
    }
    if (closed) {
      out.errors++;
      break;
    }
    const reply = new Promise<'accepted' | 'negative' | 'closed'>((resolve) => (waiting = resolve));
    // orm-oru: message 2k orders accession k, message 2k+1 is its result.
    const k = n++;
    socket.write(spec.mix === 'orm-oru' ? (k % 2 === 0 ? orm : oru)(`${spec.runId}-${index}-${k >> 1}`) : oru(`${spec.runId}-${index}-${k}`));
    out.sent++;
    const answer = await reply;
    lastAck = performance.now();
    if (answer === 'closed') {
      out.errors++;
      break;
    }
    if (answer === 'negative') {
      out.errors++;
      out.negative++;
      continue;
    }
    out.acked++;
    const latency = lastAck - scheduled;
    out.latencies.push(latency);
    const second = Math.max(0, Math.floor((scheduled - started) / 1000));
    if (!(latency <= (out.maxBySecond[second] ?? 0))) out.maxBySecond[second] = latency;
  }
  socket.destroy();
}

process.on('message', (spec: LoadSpec) => {
  void (async () => {
    const out: LoadResult = { sent: 0, acked: 0, errors: 0, negative: 0, elapsedMs: 0, latencies: [], maxBySecond: [] };
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    const started = performance.now();
    const until = started + spec.durationMs;
    await Promise.all(Array.from({ length: spec.connections }, (_, i) => runConnection(spec, i, started, until, out).catch(() => void out.errors++)));
    out.elapsedMs = performance.now() - started;
    out.maxBySecond = Array.from(out.maxBySecond, (ms) => Math.round((ms ?? 0) * 10) / 10);
    loopDelay.disable();
    out.loop = { p99Ms: Math.round(loopDelay.percentile(99) / 1e4) / 100, maxMs: Math.round(loopDelay.max / 1e4) / 100 };
    process.send?.(out, undefined, {}, () => process.exit(0));
  })();
});
