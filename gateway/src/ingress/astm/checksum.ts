import { CR, ETB, ETX, LF, STX } from './control-chars.ts';

/**
 * LIS1-A §6.3.3: the checksum is the sum of the bytes from FN through ETB/ETX inclusive, modulo 256,
 * sent as two ASCII hex digits, most significant first. STX, the checksum and CR LF are excluded.
 */
export function frameChecksum(fn: number, text: Uint8Array, terminator: number): number {
  let sum = fn + terminator;
  for (const b of text) sum += b;
  return sum & 0xff;
}

/** Two uppercase hex digits, as every implementation sends them (protocols.md §1.4). */
export function checksumHex(sum: number): string {
  return (sum & 0xff).toString(16).toUpperCase().padStart(2, '0');
}

/** Value of one ASCII hex digit (either case: receivers compare case-insensitively), or -1. */
export function hexDigit(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x41 + 10;
  if (b >= 0x61 && b <= 0x66) return b - 0x61 + 10;
  return -1;
}

/** Build one frame: `<STX> FN text <ETB|ETX> C1 C2 <CR> <LF>` (LIS1-A §6.3). `frameNumber` is 0..7. */
export function buildFrame(frameNumber: number, text: Buffer, final: boolean): Buffer {
  const fnByte = 0x30 + (frameNumber & 7);
  const terminator = final ? ETX : ETB;
  const cs = checksumHex(frameChecksum(fnByte, text, terminator));
  const out = Buffer.allocUnsafe(text.length + 7);
  out[0] = STX;
  out[1] = fnByte;
  text.copy(out, 2);
  let i = text.length + 2;
  out[i++] = terminator;
  out[i++] = cs.charCodeAt(0);
  out[i++] = cs.charCodeAt(1);
  out[i++] = CR;
  out[i] = LF;
  return out;
}

/**
 * Split one E1394 record (text ending with CR) into frames of at most `maxText` text bytes:
 * intermediate frames end with ETB, the last with ETX (LIS1-A §6.3.1; one record per message,
 * every message begins in a new frame, §6.3.1.1). FN continues from `firstFrameNumber` modulo 8.
 */
export function frameRecord(record: Buffer, firstFrameNumber: number, maxText: number): Buffer[] {
  const frames: Buffer[] = [];
  let fn = firstFrameNumber;
  for (let off = 0; off < record.length || frames.length === 0; off += maxText) {
    const end = Math.min(record.length, off + maxText);
    frames.push(buildFrame(fn, record.subarray(off, end), end >= record.length));
    fn = (fn + 1) % 8;
  }
  return frames;
}
