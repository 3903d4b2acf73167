/**
 * A LIS whose MLLP blocks end in FS without the final CR (HL7 v2.5 Appendix C.4.3 asks for
 * `<FS><CR>`; some interface engines and scripts omit the CR, hl7/README.md "End of input") and
 * that keeps its connection open, as nearly every LIS does.
 *
 * What the user saw: the gateway waited for the CR before it took the block as ended. On a
 * persistent connection that CR never comes: the message was committed and answered only when the
 * next block's VT arrived, or at the idle close (`hl7[].idleTimeoutMs`, 30 minutes by default).
 * The LIS timed out waiting for its ACK and sent the message again; the VT of that resend ended
 * the first block, whose ACK then reached the LIS while it waited for the resend's, and from then
 * on every ACK it read was the one of the message before. Promise broken: every frame is answered
 * once its commit is durable (hl7/README.md "ACK after durability", "Nothing vanishes").
 *
 * Real TCP, a real LevelDB store (GatewayHarness), the default idle timeout.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { field, framesOf } from '../fixtures/hl7/helpers.ts';

const VT = 0x0b;
const FS = 0x1c;
const CR = 0x0d;

const oru = (id: string): string =>
  `MSH|^~\\&|LIS|LAB|GW|LAB|20260301120000||ORU^R01^ORU_R01|${id}|P|2.5\rPID|1||MRN-${id}\rOBR|1|ACC-${id}||GLU^Glucose\rOBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F\r`;

/** The idle close a site runs with when it sets nothing (config/defaults.ts). */
const DEFAULT_IDLE_MS = 30 * 60 * 1000;

let h: GatewayHarness | undefined;
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await h?.stop();
  h = undefined;
});

/** A persistent connection that collects every byte the gateway writes back. */
async function connect(port: number): Promise<{ socket: net.Socket; replies: () => string[][][] }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  sockets.push(socket);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, replies: () => framesOf(Buffer.concat(chunks)) };
}

const acks = (frames: string[][][]): Array<[string | undefined, string | undefined]> => frames.map((f) => [field(f, 'MSA', 1), field(f, 'MSA', 2)]);

describe('MLLP: a LIS that ends its blocks with FS and no CR, on a connection it keeps open', () => {
  it('each message is answered with its own ACK while the connection stays open', async () => {
    h = await GatewayHarness.start({ idleTimeoutMs: DEFAULT_IDLE_MS });
    const lis = await connect(h.port);

    lis.socket.write(Buffer.concat([Buffer.of(VT), Buffer.from(oru('NOCR-1')), Buffer.of(FS)]));
    await expect.poll(() => acks(lis.replies()), { timeout: 10_000, message: 'the first message got no ACK' }).toEqual([['AA', 'NOCR-1']]);

    // The next message gets its own ACK, not the previous one's.
    lis.socket.write(Buffer.concat([Buffer.of(VT), Buffer.from(oru('NOCR-2')), Buffer.of(FS)]));
    await expect.poll(() => acks(lis.replies()), { timeout: 10_000, message: 'the second message got no ACK of its own' }).toEqual([
      ['AA', 'NOCR-1'],
      ['AA', 'NOCR-2'],
    ]);

    expect(lis.socket.destroyed, 'the connection stays open').toBe(false);
    expect(await h.rawOf('NOCR-1')).toBeDefined();
    expect(await h.rawOf('NOCR-2')).toBeDefined();
    expect(h.store.intake()).toMatchObject({ accepted: 2, rejected: 0, duplicates: 0 });
  });

  /**
   * The other side of the same change: a conforming LIS whose FS and CR arrive in two TCP
   * segments (the block ends on a segment boundary, and the sender's Nagle holds the last byte
   * back) gets one ACK, and its CR is not counted as noise outside frames.
   */
  it('a conforming block whose CR arrives in a later segment is answered once, nothing ignored', async () => {
    h = await GatewayHarness.start({ idleTimeoutMs: DEFAULT_IDLE_MS });
    const ignored: number[] = [];
    h.telemetry.on('endpoint.ignored-bytes', (e) => ignored.push(e.count));
    const lis = await connect(h.port);
    lis.socket.write(Buffer.concat([Buffer.of(VT), Buffer.from(oru('SPLIT-1')), Buffer.of(FS)]));
    await new Promise((r) => setTimeout(r, 100));
    lis.socket.write(Buffer.of(CR));
    lis.socket.write(wrapped(oru('SPLIT-2')));
    await expect.poll(() => acks(lis.replies()), { timeout: 10_000 }).toEqual([
      ['AA', 'SPLIT-1'],
      ['AA', 'SPLIT-2'],
    ]);
    lis.socket.end();
    await new Promise<void>((resolve) => lis.socket.once('close', () => resolve()));
    expect(ignored).toEqual([]);
    expect(h.store.intake()).toMatchObject({ accepted: 2, rejected: 0 });
  });
});

function wrapped(text: string): Buffer {
  return Buffer.concat([Buffer.of(VT), Buffer.from(text), Buffer.of(FS, CR)]);
}
