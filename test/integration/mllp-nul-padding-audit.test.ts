/**
 * A LIS written in C that sends its message buffer with the string's terminating NUL (or a buffer
 * padded with NULs) after the last segment: `VT MSH…CR OBX…CR NUL FS CR`. Interface engines see it
 * often enough that their users strip NULs in a preprocessor.
 *
 * What was wrong: the NUL after the last CR was read as a segment whose id is not one, and every
 * such message was refused `AR` ("segment 5 has no valid segment id"), kept as rejected: none of
 * the LIS's orders or results got through. Now a line of only NULs (and spaces, tabs) is a blank
 * line, skipped as blank lines are; the raw bytes keep it, and the message hashes as the one
 * without it (a resend without the padding is its duplicate).
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

const frame = (bytes: Buffer): Buffer => Buffer.concat([Buffer.of(0x0b), bytes, Buffer.of(0x1c, 0x0d)]);

const oru = (id: string): string =>
  `MSH|^~\\&|LIS|LAB|GW|LAB|20260301120000||ORU^R01^ORU_R01|${id}|P|2.5\rPID|1||MRN-${id}\rOBR|1|ACC-${id}||GLU^Glucose|||||||||||||||||||F\rOBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F\r`;

/** Send each frame on one connection and collect the (MSA-1, MSA-2, MSA-3) of the replies. */
async function exchange(port: number, frames: Buffer[]): Promise<Array<Array<string | undefined>>> {
  const socket = net.connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  for (const f of frames) socket.write(f);
  await expect.poll(() => framesOf(Buffer.concat(chunks)).length, { timeout: 10_000 }).toBe(frames.length);
  socket.destroy();
  return framesOf(Buffer.concat(chunks)).map((f) => [field(f, 'MSA', 1), field(f, 'MSA', 2), field(f, 'MSA', 3)]);
}

describe('MLLP: NUL bytes after the last segment (a C string terminator, buffer padding)', () => {
  it('the message is taken, its result made and its bytes kept; a resend without the NULs is its duplicate', async () => {
    h = await GatewayHarness.start();
    const one = Buffer.concat([Buffer.from(oru('NUL-1'), 'latin1'), Buffer.of(0)]);
    const padded = Buffer.concat([Buffer.from(oru('NUL-2'), 'latin1'), Buffer.alloc(16)]);
    const replies = await exchange(h.port, [frame(one), frame(padded), frame(Buffer.from(oru('NUL-1'), 'latin1'))]);
    expect(replies).toEqual([
      ['AA', 'NUL-1', undefined],
      ['AA', 'NUL-2', undefined],
      ['AA', 'NUL-1', undefined],
    ]);
    expect(await h.rawOf('NUL-1')).toEqual(one);
    expect(await h.rawOf('NUL-2')).toEqual(padded);
    const results = await h.store.eventsByCorrelation('ACC-NUL-1');
    expect(results.map((e) => e.event.type)).toEqual(['result.validated']);
    expect(h.store.intake()).toMatchObject({ accepted: 2, rejected: 0, duplicates: 1 });
  });

  it('a line of NULs before the MSH is blank too', async () => {
    h = await GatewayHarness.start();
    const before = Buffer.concat([Buffer.of(0, 0x0d), Buffer.from(oru('NUL-3'), 'latin1')]);
    const replies = await exchange(h.port, [frame(before)]);
    expect(replies).toEqual([['AA', 'NUL-3', undefined]]);
    expect(await h.rawOf('NUL-3')).toEqual(before);
  });
});
