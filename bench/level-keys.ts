/**
 * LevelDB's cost per key, as the store's intake writes them: CPU per message (main thread,
 * LevelDB's write path and its compaction thread: the whole process) for layouts with fewer keys
 * per message, each side by side with the store's own layout in the same run. Diagnostic: it
 * tells how many LevelDB keys a message can afford when durable intake is to cost no more CPU than
 * an in-memory peer (see gateway/src/store/README.md, "Where the durable cost goes").
 *
 *  - `store`: the dozen keys of a result message with one event as the store writes them
 *    (pointer, dedup key, three search terms, event state, idempotency key, correlation, queue,
 *    pending list, due entry, partition count) and the batch's counters;
 *  - `six`: the pointer, dedup key, event state, idempotency key, queue and due entry;
 *  - `three`: the pointer, dedup key and idempotency key;
 *  - `one`: one key per message (the least any index costs).
 *
 * Each layout writes 300,000 messages in batches of 16 (the group commit's size at 32 LIS
 * connections) and of 2,048 (a bulk write, to tell LevelDB's per-key cost from its per-batch
 * cost), `sync: false` as the store's logged batches are, then compacts the whole range so that
 * compaction's cost is counted too. Two rounds, alternating.
 *
 * Before the rounds, the store's own keys per message are counted (a real EventStore behind the
 * HL7 intake, the message of the intake benchmark): a `store` layout that no longer matches them
 * measures another store, and the run is refused (results' `problems`, exit 1). After each write,
 * the first and last message's keys are read back: a batch that wrote nothing would cost little.
 *
 * Run: npm run bench:level-keys [-- --quick]   Writes bench/results/level-keys.json.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { ClassicLevel } from 'classic-level';
import { MllpDecoder } from '../gateway/src/ingress/mllp/mllp-decoder.ts';
import { wrapFrame } from '../gateway/src/ingress/mllp/mllp-encoder.ts';
import { MllpEndpoint } from '../gateway/src/ingress/mllp/mllp-endpoint.ts';
import { silentLogger } from '../gateway/src/log.ts';
import { EventStore } from '../gateway/src/store/event-store.ts';
import { Telemetry } from '../gateway/src/telemetry.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
const MESSAGES = quick ? 20_000 : 300_000;
/** Why the figures are not what they claim; written to the results, and the process exits 1. */
const problems: string[] = [];

type Layout = 'store' | 'six' | 'three' | 'one';
const LAYOUTS: Layout[] = ['store', 'six', 'three', 'one'];

/** The keys of message n, shaped and sized as the store's (ids: 12 hex ms + 12 hex). */
function keysOf(layout: Layout, n: number, state: string): Array<[string, string]> {
  const id = (1_700_000_000_000 + n).toString(16).padStart(12, '0') + '00a1b2c3d4e5';
  const eid = (1_700_000_000_000 + n).toString(16).padStart(12, '0') + '00a1b2c3d4e6';
  const acc = `A${(10_000_000 + n).toString()}`;
  const ctl = `MSG${n}`;
  const pointer = 'p'.repeat(17);
  if (layout === 'one') return [[`!m!${id}`, pointer]];
  const three: Array<[string, string]> = [
    [`!m!${id}`, pointer],
    [`!d!lis\x00LAB^HOSP\x00${ctl}`, id],
    [`!k!test.completed\x00xn-1\x00${acc}\x00WBC\x00F\x0020261206101500`, eid],
  ];
  if (layout === 'three') return three;
  const six: Array<[string, string]> = [...three, [`!e!${eid}`, state], [`!q!${acc}\x00${eid}`, ''], [`!u!018c0a1b2c3d\x00${acc}`, '']];
  if (layout === 'six') return six;
  return [
    ...six,
    [`!s!${ctl}\x00${id}`, ''],
    [`!s!${acc}\x00${id}`, ''],
    [`!s!SPM${n}\x00${id}`, ''],
    [`!c!${acc}\x00${eid}`, 'test.completed'],
    [`!p!${eid}`, ''],
    [`!n!${acc}`, '1'],
  ];
}

interface ChainedBatch {
  _put(key: string, value: string): void;
  _write(options: { sync: boolean }): Promise<void>;
}
interface NativeBatchSource {
  _chainedBatch(): ChainedBatch;
  detachResource(resource: unknown): void;
}

async function run(layout: Layout, batchSize: number): Promise<{ keysPerMessage: number; cpuUsPerMessage: number; cpuUsPerKey: number }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'lab-gw-bench-level-keys-'));
  const db = new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  await db.open();
  const state = JSON.stringify({ state: 'pending', attempts: 0, dueAt: Date.now(), ambiguous: false, m: '018c0a1b2c3d00a1b2c3d4e5' });
  const counters = JSON.stringify({ pending: 1, inflight: 0, retrying: 0, dead: 0, delivered: 0, discarded: 0 });
  const native = db as unknown as NativeBatchSource;
  let keys = 0;
  const before = process.cpuUsage();
  for (let n = 0; n < MESSAGES; ) {
    const batch = native._chainedBatch();
    for (let i = 0; i < batchSize && n < MESSAGES; i++, n++) {
      for (const [k, v] of keysOf(layout, n, state)) {
        batch._put(k, v);
        keys++;
      }
    }
    if (layout === 'store') batch._put('!meta!counts', counters);
    await batch._write({ sync: false });
    native.detachResource(batch);
  }
  await db.compactRange('!', '~');
  const used = process.cpuUsage(before);
  // The writes landed: the first and the last message's keys are there.
  const expected = [...keysOf(layout, 0, state), ...keysOf(layout, MESSAGES - 1, state)];
  const found = await db.getMany(expected.map(([k]) => k));
  const missing = found.filter((v) => v === undefined).length;
  if (missing > 0) problems.push(`${layout}, batches of ${batchSize}: ${missing} of ${expected.length} keys of the first and last message not in LevelDB`);
  await db.close();
  await rm(dir, { recursive: true, force: true });
  const cpu = used.user + used.system;
  return { keysPerMessage: Math.round((keys / MESSAGES) * 10) / 10, cpuUsPerMessage: Math.round((cpu / MESSAGES) * 10) / 10, cpuUsPerKey: Math.round((cpu / keys) * 100) / 100 };
}

/**
 * The LevelDB keys per message of the store as it is: `messages` results (one event each) taken by
 * the HL7 intake into a real EventStore, the keys counted after, less those of an empty store.
 */
async function storeKeysPerMessage(messages: number): Promise<number> {
  const dir = await mkdtemp(path.join(tmpdir(), 'lab-gw-bench-level-keys-store-'));
  const count = async (): Promise<number> => {
    const db = new ClassicLevel<string, string>(path.join(dir, 'store'), { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    await db.open();
    let n = 0;
    for await (const _ of db.keys()) n++;
    await db.close();
    return n;
  };
  const open = (): Promise<EventStore> => EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
  await (await open()).close();
  const empty = await count();
  const store = await open();
  const endpoint = new MllpEndpoint({
    config: { id: 'lis', listen: { host: '127.0.0.1', port: 0 }, ack: 'original', maxMessageBytes: 1 << 20, idleTimeoutMs: 0, maxConnections: 4, unknownMessageTypes: 'accept', defaultCharset: 'ascii' },
    store,
    telemetry: new Telemetry(),
    log: silentLogger,
  });
  await endpoint.start();
  const socket = net.connect({ host: '127.0.0.1', port: endpoint.address()!.port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let waiting: ((accepted: boolean) => void) | undefined;
  const decoder = new MllpDecoder({ maxFrameBytes: 1 << 20, onFrame: (f) => waiting?.(/\rMSA\|AA\|/.test(f.toString('latin1'))), onOversize: () => waiting?.(false) });
  socket.on('data', (c: Buffer) => decoder.push(c));
  for (let n = 0; n < messages; n++) {
    const id = `LK-${n}`;
    const reply = new Promise<boolean>((resolve) => (waiting = resolve));
    socket.write(
      wrapFrame(
        Buffer.from(
          `MSH|^~\\&|LIS|MAINLAB|GATEWAY|MAINLAB|20240301093000||ORU^R01^ORU_R01|${id}|P|2.5.1\r` +
            `PID|1||MRN${n}^^^LAB^MR\rORC|RE|A${id}|F${id}\r` +
            `OBR|1|A${id}|F${id}|BMP^Basic metabolic panel^L|||20240301090000||||||||||||||20240301092900|||F\r` +
            `OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L|3.9-6.1|N|||F\rOBX|2|NM|2951-2^Sodium^LN||140|mmol/L|135-145|N|||F\r`,
          'latin1',
        ),
      ),
    );
    if (!(await reply)) problems.push(`store probe: message ${id} not acknowledged AA`);
  }
  socket.destroy();
  await endpoint.stop(5_000);
  await store.close();
  const perMessage = ((await count()) - empty) / messages;
  await rm(dir, { recursive: true, force: true });
  return perMessage;
}

// Counted over two sizes: keys written once per store (counters) do not grow with the messages.
const probe = [await storeKeysPerMessage(20), await storeKeysPerMessage(40)];
const storeKeys = (probe[1]! * 40 - probe[0]! * 20) / 20;
const layoutKeys = keysOf('store', 0, '').length;
if (storeKeys !== layoutKeys) problems.push(`the store writes ${storeKeys} LevelDB keys per result message, the 'store' layout ${layoutKeys}: the layout no longer stands in for the store`);
process.stderr.write(`the store's keys per result message: ${storeKeys} (layout: ${layoutKeys})\n`);

const rounds: Array<Record<string, Record<Layout, Awaited<ReturnType<typeof run>>>>> = [];
for (let r = 0; r < (quick ? 1 : 2); r++) {
  const round: Record<string, Record<Layout, Awaited<ReturnType<typeof run>>>> = {};
  for (const batchSize of [16, 2048]) {
    const byLayout = {} as Record<Layout, Awaited<ReturnType<typeof run>>>;
    // Alternate the order between rounds, so that neither side always runs on a warmer machine.
    for (const layout of r % 2 === 0 ? LAYOUTS : [...LAYOUTS].reverse()) {
      byLayout[layout] = await run(layout, batchSize);
      process.stderr.write(`round ${r + 1} batch ${batchSize} ${layout}: ${JSON.stringify(byLayout[layout])}\n`);
    }
    round[`batchOf${batchSize}`] = byLayout;
  }
  rounds.push(round);
}

const result = {
  benchmark: 'level-keys',
  generatedAt: new Date().toISOString(),
  machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryBytes: totalmem(), node: process.version },
  messages: MESSAGES,
  quick,
  /** LevelDB keys per result message of the store as it is (counted through the HL7 intake), against the 'store' layout's. */
  storeKeysPerMessage: { measured: storeKeys, layout: layoutKeys },
  note: 'LevelDB CPU per message (whole process: main thread, write path, compaction) by the number of keys each message writes; sync: false, then a full compaction',
  rounds,
  /** Empty when the layouts stand for the store and every write landed; otherwise no measurement. */
  problems,
};
const resultsDir = here.includes(`${path.sep}dist${path.sep}`) ? path.resolve(here, '../../bench/results') : path.join(here, 'results');
await mkdir(resultsDir, { recursive: true });
await writeFile(path.join(resultsDir, 'level-keys.json'), JSON.stringify(result, null, 2) + '\n');
process.stdout.write(JSON.stringify(rounds, null, 2) + '\n');
if (problems.length > 0) {
  process.stderr.write(`the results are no measurement:\n${problems.map((p) => `  ${p}`).join('\n')}\n`);
  process.exitCode = 1;
}
