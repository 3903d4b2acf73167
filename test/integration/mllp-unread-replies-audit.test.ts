/**
 * A LIS that sends and does not read its ACKs (an interface that pipelines its queue and reads
 * replies only once it has sent everything, or one whose reading side is stuck).
 *
 * What was wrong: the connection bounded the frames awaiting their commit (1024 frames, 64 MiB),
 * but not the replies once written: `socket.write` queued each ACK in the gateway's memory when
 * the kernel's buffers were full, and the socket went on reading. A LIS that never read kept the
 * gateway taking its messages and holding every ACK in memory, without bound (hl7/README.md
 * "Bounded memory"). Now, beyond REPLY_BACKLOG_BYTES of replies the kernel has not taken, the
 * connection stops reading until they drain: TCP flow control pushes back on the LIS, as for
 * frames awaiting their commit.
 *
 * Real TCP, a real LevelDB store in a temp dir.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MllpEndpoint } from '../../gateway/src/ingress/mllp/mllp-endpoint.ts';
import { REPLY_BACKLOG_BYTES } from '../../gateway/src/ingress/mllp/mllp-connection.ts';
import { createLogger } from '../../gateway/src/log.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { endpointConfig, field, framesOf } from '../fixtures/hl7/helpers.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * An ADT whose receiving application and facility (MSH-5/6) are long: the ACK copies them into its
 * MSH-3/4, so each ACK is ~`pad` bytes and a few hundred of them outgrow the kernel's buffers.
 */
const adt = (id: string, pad: number): string =>
  `MSH|^~\\&|LIS|LAB|${'R'.repeat(pad / 2)}|${'F'.repeat(pad / 2)}|20260301120000||ADT^A08^ADT_A01|${id}|P|2.5\rEVN|A08|20260301120000\rPID|1||MRN-${id}\r`;

const frame = (text: string): Buffer => Buffer.concat([Buffer.of(0x0b), Buffer.from(text, 'latin1'), Buffer.of(0x1c, 0x0d)]);

/**
 * An endpoint over a real store in a temp dir (removed with the cleanups), its log lines kept,
 * and a LIS connected to it that reads nothing of what the gateway answers.
 */
async function endpointWithDeafLis(overrides: Parameters<typeof endpointConfig>[0] = {}): Promise<{ endpoint: MllpEndpoint; store: EventStore; lis: net.Socket; logs: Array<{ level: string; msg: string; unwrittenBytes?: number }>; telemetry: Telemetry }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lab-gw-unread-'));
  const store = await EventStore.open({ dataDir: dir, healthCheckIntervalMs: 50, pruneIntervalMs: 0 });
  const logs: Array<{ level: string; msg: string; unwrittenBytes?: number }> = [];
  const telemetry = new Telemetry();
  const endpoint = new MllpEndpoint({ config: endpointConfig(overrides), store, telemetry, log: createLogger({ level: 'info', write: (line) => logs.push(JSON.parse(line) as { level: string; msg: string }) }) });
  await endpoint.start();
  cleanups.push(async () => {
    await endpoint.stop(2_000);
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const lis = net.connect({ host: '127.0.0.1', port: endpoint.address()?.port ?? 0 });
  cleanups.push(() => void lis.destroy());
  await new Promise<void>((resolve, reject) => {
    lis.once('connect', resolve);
    lis.once('error', reject);
  });
  // The LIS reads nothing: its kernel's receive buffer fills, then the gateway's send buffer.
  lis.pause();
  return { endpoint, store, lis, logs, telemetry };
}

describe('MLLP: a LIS that does not read its ACKs', () => {
  it('the gateway stops reading once its unread replies pass the bound; every message is answered in order once the LIS reads', async () => {
    const { store, lis, logs, telemetry } = await endpointWithDeafLis();
    let answered = 0;
    telemetry.on('intake.message', () => answered++);
    const pad = 64 * 1024;
    // Far more ACK bytes than the loopback's kernel buffers (a few MiB) and the bound together.
    const count = Math.ceil((24 * 1024 * 1024 + REPLY_BACKLOG_BYTES) / pad);
    const chunks: Buffer[] = [];
    lis.on('data', (c: Buffer) => chunks.push(c));
    for (let i = 0; i < count; i++) lis.write(frame(adt(`U-${i}`, pad)));

    const paused = (): boolean => logs.some((l) => l.level === 'warn' && /reads none of its replies/.test(l.msg));
    await expect
      .poll(() => paused() || answered === count, { timeout: 120_000, interval: 50 })
      .toBe(true);
    expect(paused(), `the gateway read and answered all ${count} messages while the LIS read none of the replies`).toBe(true);
    const takenWhilePaused = answered;
    expect(takenWhilePaused).toBeLessThan(count);

    // The LIS reads again: the gateway resumes, and every message is answered, in order, once.
    lis.resume();
    await expect.poll(() => framesOf(Buffer.concat(chunks)).length, { timeout: 120_000, interval: 100 }).toBe(count);
    const acks = framesOf(Buffer.concat(chunks)).map((f) => [field(f, 'MSA', 1), field(f, 'MSA', 2)]);
    expect(acks).toEqual(Array.from({ length: count }, (_, i) => ['AA', `U-${i}`]));
    expect(store.intake()).toMatchObject({ accepted: count, rejected: 0, duplicates: 0 });
  }, 240_000);

  // The same LIS, and the idle close (or any close the gateway decides: a frame timeout, HL7 without
  // framing, a half-close) comes while it reads none of its replies. The close writes the replies
  // owed, then ends the socket; those never finished writing, so end()'s callback never came and the
  // socket was never closed: the connection, its slot of maxConnections and its unread replies were
  // held for as long as the LIS process lived. Now the socket is closed REPLY_FLUSH_MS after the
  // close began if its replies are still not written, with a warning saying so.
  it('a connection closed while its LIS reads none of its replies is closed within a bound, its slot freed', async () => {
    const { endpoint, lis, logs } = await endpointWithDeafLis({ idleTimeoutMs: 1_000 });
    lis.on('error', () => undefined);
    const pad = 64 * 1024;
    const count = Math.ceil((24 * 1024 * 1024 + REPLY_BACKLOG_BYTES) / pad);
    for (let i = 0; i < count; i++) lis.write(frame(adt(`C-${i}`, pad)));

    await expect.poll(() => logs.some((l) => l.level === 'warn' && /reads none of its replies/.test(l.msg)), { timeout: 120_000, interval: 50 }).toBe(true);
    await expect.poll(() => logs.some((l) => /closing idle connection/.test(l.msg)), { timeout: 60_000, interval: 50 }).toBe(true);
    expect(endpoint.connections, 'the connection is still open right after the close began').toBe(1);
    // A wait, not a bound: the gateway's side is closed, its slot free, though the LIS never read.
    await expect.poll(() => endpoint.connections, { timeout: 120_000, interval: 100 }).toBe(0);
    const dropped = logs.find((l) => l.level === 'warn' && /replies it did not read/.test(l.msg));
    expect(dropped, JSON.stringify(logs.filter((l) => l.level !== 'info'))).toBeDefined();
    expect(Number(dropped?.unwrittenBytes)).toBeGreaterThan(0);
  }, 240_000);
});
