/**
 * A flapping link, as a LIS on a bad network or a LIS interface that restarts does it: it connects,
 * sends, and drops the connection (FIN or reset) mid-frame or right after the frame, before it
 * read the ACK; or it pipelines several messages, the last one cut, and the connection drops. It
 * then reconnects and resends everything it holds no ACK for.
 *
 * The promise (hl7/README.md "ACK after durability", "Duplicates", "End of input"): every message
 * is either stored with its ACK kept for replay — its resend is answered with that very ACK, byte
 * for byte, and makes nothing again — or not stored and not acknowledged, and its resend is taken
 * as new. A frame cut by the drop is kept as rejected raw bytes and makes no event. In the end
 * each message is stored once as accepted, with its events once.
 *
 * Real TCP, a real LevelDB store in a temp dir.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { field, framesOf } from '../fixtures/hl7/helpers.ts';

let h: GatewayHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

const oru = (id: string): string =>
  `MSH|^~\\&|LIS|LAB|GW|LAB|20260301120000||ORU^R01^ORU_R01|${id}|P|2.5\rPID|1||MRN-${id}\rOBR|1|ACC-${id}||GLU^Glucose|||||||||||||||||||F\rOBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F\r`;

const frame = (text: string): Buffer => Buffer.concat([Buffer.of(0x0b), Buffer.from(text, 'latin1'), Buffer.of(0x1c, 0x0d)]);

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/**
 * Write and drop, reading nothing: `reset` sends an RST, else the socket is closed (FIN, or RST
 * when the ACK already came in unread).
 */
async function sendAndDrop(port: number, bytes: Buffer, reset: boolean): Promise<void> {
  const socket = await connect(port);
  await new Promise<void>((resolve) => socket.write(bytes, () => resolve()));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  if (reset) socket.resetAndDestroy();
  else socket.destroy();
  await closed;
}

/** The resends of the LIS once the link holds: every message on one connection, its ACK read. */
async function resendAll(port: number, ids: string[]): Promise<Map<string, Buffer>> {
  const socket = await connect(port);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.write(Buffer.concat(ids.map((id) => frame(oru(id)))));
  await expect.poll(() => framesOf(Buffer.concat(chunks)).length, { timeout: 30_000 }).toBe(ids.length);
  socket.destroy();
  const frames = framesOf(Buffer.concat(chunks));
  expect(frames.map((f) => [field(f, 'MSA', 1), field(f, 'MSA', 2)])).toEqual(ids.map((id) => ['AA', id]));
  // Each reply's content as it came, to compare with the stored ACK.
  const contents = Buffer.concat(chunks)
    .toString('latin1')
    .split('\x1c\r')
    .filter((s) => s.includes('MSA'))
    .map((s) => Buffer.from(s.slice(s.indexOf('\x0b') + 1), 'latin1'));
  return new Map(ids.map((id, i) => [id, contents[i] as Buffer]));
}

/** Each message stored once as accepted, with one result; a resend of a stored one got its stored ACK. */
async function expectEachOnce(harness: GatewayHarness, ids: string[], replies: Map<string, Buffer>): Promise<void> {
  for (const id of ids) {
    const stored = (await harness.store.listMessages({ controlId: id, endpoint: 'lis' })).filter((m) => m.status === 'accepted');
    expect(stored, `message ${id} stored as accepted`).toHaveLength(1);
    const record = await harness.store.getMessage((stored[0] as { id: string }).id);
    expect(record?.ack?.subarray(1, -2).toString('latin1'), `the ACK of ${id} is the stored one`).toBe(replies.get(id)?.toString('latin1'));
    const events = await harness.store.eventsByCorrelation(`ACC-${id}`);
    expect(events.map((e) => e.event.type), `the events of ${id}`).toEqual(['result.validated']);
  }
  const c = harness.store.intake();
  expect(c.accepted, 'each message accepted once').toBe(ids.length);
  expect(c.accepted + c.duplicates, 'every complete frame answered from the store').toBe(c.received - c.rejected);
}

describe('MLLP: a flapping link', () => {
  it('connect, send, drop right after the frame (FIN or reset) before reading the ACK, again and again; then resend all', async () => {
    h = await GatewayHarness.start();
    const ids = Array.from({ length: 24 }, (_, i) => `FLAP-${i}`);
    for (const [i, id] of ids.entries()) await sendAndDrop(h.port, frame(oru(id)), i % 2 === 1);
    const replies = await resendAll(h.port, ids);
    await expectEachOnce(h, ids, replies);
  });

  it('connect, send a frame cut at some byte, drop, again and again; then resend all', async () => {
    h = await GatewayHarness.start();
    const ids = Array.from({ length: 24 }, (_, i) => `CUT-${i}`);
    for (const [i, id] of ids.entries()) {
      const whole = frame(oru(id));
      await sendAndDrop(h.port, whole.subarray(0, 1 + ((i * 37) % (whole.length - 2))), i % 2 === 1);
    }
    const replies = await resendAll(h.port, ids);
    await expectEachOnce(h, ids, replies);
    // The cut frames made no event: only rejected records, never an accepted one.
    expect((await h.store.listMessages({ endpoint: 'lis', limit: 1000 })).filter((m) => m.status === 'accepted')).toHaveLength(ids.length);
  });

  it('pipelined messages, the last one cut, then the connection drops before any ACK is read; then resend all', async () => {
    h = await GatewayHarness.start();
    const ids = Array.from({ length: 60 }, (_, i) => `PIPE-${i}`);
    for (const [round, reset] of [false, true].entries()) {
      const batch = ids.slice(round * 30, round * 30 + 30);
      const bytes = Buffer.concat(batch.map((id) => frame(oru(id))));
      // The last message is cut in the middle.
      await sendAndDrop(h.port, bytes.subarray(0, bytes.length - 40), reset);
    }
    // The resends start at once, while commits of the dropped connections may still be in flight.
    const replies = await resendAll(h.port, ids);
    await expectEachOnce(h, ids, replies);
  });
});
