/**
 * A batch of very many small messages in one MLLP block (an initial load or a night's ADT queue
 * sent as one FHS/BHS file), within the largest message a link takes (`hl7[].maxMessageBytes`,
 * 16 MiB by default).
 *
 * What was wrong: every member of the batch was processed at once (its parse, its ACK, its record
 * and its commit in the store all alive together until the last one was durable): about 9 KiB of
 * heap per member, whatever its size. A 3.6 MiB block of 100,000 short ADT messages took ~900 MiB
 * of heap; a 16 MiB one more than a Node process is given by default on a small box: the gateway
 * died of "heap out of memory", every link and the relay with it, and the LIS resent the block
 * after the restart, to the same end. Now at most BATCH_WINDOW members are in the store at once;
 * frames behind the batch still commit after it (hl7/README.md "Order").
 *
 * The gateway runs in a child process with its heap limited as a small appliance's is; the LIS is
 * a real TCP connection, the store a real LevelDB in a temp dir.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { BATCH_WINDOW } from '../../gateway/src/ingress/mllp/hl7-intake.ts';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { field, framesOf, repoRoot } from '../fixtures/hl7/helpers.ts';

const childScript = path.join(repoRoot, 'test/fixtures/hl7/mllp-heap-child.ts');
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const ormNew = (id: string, acc: string): string =>
  `MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ORM^O01^ORM_O01|${id}|P|2.5\rPID|1||MRN-${id}\rORC|NW|${acc}|||||||||||||||||||CLINIC-A\rOBR|1|${acc}||GLU^Glucose\r`;
const oruFinal = (id: string, acc: string): string =>
  `MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ORU^R01^ORU_R01|${id}|P|2.5\rPID|1||MRN-${id}\rORC|RE|${acc}\rOBR|1|${acc}|S-${id}|GLU^Glucose\rOBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F\r`;
const frame = (text: string): Buffer => Buffer.concat([Buffer.of(0x0b), Buffer.from(text, 'latin1'), Buffer.of(0x1c, 0x0d)]);

/** The gateway in a child process whose old space is limited to `heapMiB`. */
async function gateway(heapMiB: number): Promise<{ port: number; next: () => Promise<Record<string, unknown>>; send: (line: string) => void; exited: () => string | undefined }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-gw-large-batch-'));
  const proc: ChildProcessWithoutNullStreams = spawn(process.execPath, [`--max-old-space-size=${heapMiB}`, childScript, dir], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
  cleanups.push(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  let err = '';
  let exit: string | undefined;
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  proc.once('exit', (code, signal) => (exit = `exited (${code ?? signal}): ${err.slice(-600)}`));
  const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, unknown>> => {
    const line = await lines.next();
    if (line.done) throw new Error(`the gateway ${exit ?? 'closed its output'}`);
    return JSON.parse(line.value as string) as Record<string, unknown>;
  };
  const ready = await next();
  return { port: ready.port as number, next, send: (line) => void proc.stdin.write(`${line}\n`), exited: () => exit };
}

describe('MLLP: one block holding a batch of very many small messages', () => {
  it('is taken and answered, one ACK per message, by a gateway with a small heap', async () => {
    const gw = await gateway(160);
    const count = 60_000;
    const parts = ['BHS|^~\\&|LIS|LAB|GW|LAB|20260301120000||||B-1\r'];
    for (let i = 0; i < count; i++) parts.push(`MSH|^~\\&|LIS|LAB|GW|LAB|20260301120000||ADT^A08|L-${i}|P|2.5\r`);
    parts.push(`BTS|${count}\r`);
    const block = Buffer.from(parts.join(''), 'latin1');

    const lis = net.connect({ host: '127.0.0.1', port: gw.port });
    cleanups.push(() => void lis.destroy());
    const chunks: Buffer[] = [];
    lis.on('data', (c: Buffer) => chunks.push(c));
    let closed = false;
    lis.on('close', () => (closed = true));
    lis.on('error', () => {});
    await new Promise<void>((resolve) => lis.once('connect', () => resolve()));
    lis.write(Buffer.concat([Buffer.of(0x0b), block, Buffer.of(0x1c, 0x0d)]));

    await expect.poll(() => closed || framesOf(Buffer.concat(chunks)).length === 1, { timeout: 180_000, interval: 200 }).toBe(true);
    expect(gw.exited(), 'the gateway died').toBeUndefined();
    const [reply] = framesOf(Buffer.concat(chunks));
    const msa = (reply ?? []).filter((s) => s[0] === 'MSA');
    expect(msa).toHaveLength(count);
    expect(msa.every((s, i) => s[1] === 'AA' && s[2] === `L-${i}`)).toBe(true);
    expect(field(reply, 'BTS', 1)).toBe(String(count));

    gw.send('stop');
    expect(await gw.next()).toEqual({ event: 'stopped', accepted: count });
  }, 240_000);

  /**
   * The members of a batch larger than the window still commit in order and stay independent, and
   * a result pipelined behind the batch is committed after the batch's order of its accession
   * (the relay posts the order first), as for a small batch (mllp-audit.test.ts).
   */
  it('a larger batch than the window: members in order and independent, a result pipelined behind it queued after its order', async () => {
    const h = await GatewayHarness.start({ maxMessageBytes: 16 * 1024 * 1024 });
    cleanups.push(() => h.stop());
    const count = BATCH_WINDOW + 300;
    const texts = Array.from({ length: count }, (_, i) => ormNew(`W-${i}`, `ACC-W${i}`));
    // A member refused (no MSH-9) and a member repeating an earlier one, past the first window.
    texts[BATCH_WINDOW + 10] = 'MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000|||W-X|P|2.5\rPID|1||MRN-X\r';
    texts[BATCH_WINDOW + 20] = ormNew('W-3', 'ACC-W3');
    const batch = `BHS|^~\\&|LIS|LAB|GW|LAB|20240101120000||||B-W\r${texts.join('')}BTS|${count}\r`;
    const last = count - 1;

    const lis = net.connect({ host: '127.0.0.1', port: h.port });
    cleanups.push(() => void lis.destroy());
    const chunks: Buffer[] = [];
    lis.on('data', (c: Buffer) => chunks.push(c));
    await new Promise<void>((resolve) => lis.once('connect', () => resolve()));
    // One write: the batch, then the result of its last order, pipelined.
    lis.write(Buffer.concat([frame(batch), frame(oruFinal('W-R', `ACC-W${last}`))]));
    await expect.poll(() => framesOf(Buffer.concat(chunks)).length, { timeout: 60_000 }).toBe(2);

    const [batchReply, resultReply] = framesOf(Buffer.concat(chunks));
    const acks = (batchReply ?? []).filter((s) => s[0] === 'MSA').map((s) => `${s[1]} ${s[2]}`);
    const expected = texts.map((_, i) => (i === BATCH_WINDOW + 10 ? 'AR W-X' : i === BATCH_WINDOW + 20 ? 'AA W-3' : `AA W-${i}`));
    expect(acks).toEqual(expected);
    expect(field(resultReply, 'MSA', 1)).toBe('AA');
    expect(h.store.intake()).toMatchObject({ accepted: count - 1, rejected: 1, duplicates: 1 });
    const leases = await h.store.lease({ limit: count + 10, maxPerPartition: 10, sameTypeOnly: false });
    expect(leases.find((l) => l.partitionKey === `order:ACC-W${last}`)?.events.map((e) => e.event.type)).toEqual(['order.created', 'result.validated']);
  }, 120_000);
});
