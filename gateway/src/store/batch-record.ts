/**
 * The batch record: every LevelDB operation of one logged batch, written to the message log after
 * the batch's message records, in the same synced write. It is what makes that write the batch's
 * commit point: if LevelDB loses the batch (its own write was not synced), start-up applies the
 * operations again from here (see README.md, "Commit point").
 *
 *   byte 0      format (0xB7; a message record starts with 1)
 *   bytes 1-4   number of operations (UInt32BE)
 *   then per operation:
 *     byte      kind: 0 delete, 1 put of UTF-8 text, 2 put of bytes
 *     UInt32BE  key length, key (UTF-8)
 *     UInt32BE  value length, value (puts only)
 */
import { GatewayError } from '../errors.ts';
import type { LogPosition } from './message-log.ts';
import { payloadBytes, type Payload } from './message-record.ts';

/** A LevelDB operation as written: prefixed key, encoded value, `null` for a delete. */
export type EncodedOp = [key: string, value: string | Buffer | null];

const FORMAT = 0xb7;

export const isBatchRecord = (payload: Buffer): boolean => payload[0] === FORMAT;

/** The record's size; `writeTo` encodes the operations as they are when it is called. */
export function batchRecordPayload(ops: EncodedOp[]): Payload {
  let size = 5;
  for (const [key, value] of ops) size += 5 + Buffer.byteLength(key) + (value === null ? 0 : 4 + (typeof value === 'string' ? Buffer.byteLength(value) : value.length));
  return { size, writeTo: (out, at) => writeBatchRecord(ops, out, at) };
}

export function encodeBatchRecord(ops: EncodedOp[]): Buffer {
  return payloadBytes(batchRecordPayload(ops));
}

function writeBatchRecord(ops: EncodedOp[], out: Buffer, start: number): void {
  out[start] = FORMAT;
  out.writeUInt32BE(ops.length, start + 1);
  let at = start + 5;
  for (const [key, value] of ops) {
    out[at] = value === null ? 0 : typeof value === 'string' ? 1 : 2;
    const keyBytes = out.write(key, at + 5, 'utf8');
    out.writeUInt32BE(keyBytes, at + 1);
    at += 5 + keyBytes;
    if (value === null) continue;
    const valueBytes = typeof value === 'string' ? out.write(value, at + 4, 'utf8') : value.copy(out, at + 4);
    out.writeUInt32BE(valueBytes, at);
    at += 4 + valueBytes;
  }
}

export function decodeBatchRecord(payload: Buffer): EncodedOp[] {
  const bad = (): never => {
    throw new GatewayError('GW_STORE_CORRUPT', 'a batch record in the message log is malformed');
  };
  if (payload[0] !== FORMAT || payload.length < 5) bad();
  const count = payload.readUInt32BE(1);
  const ops: EncodedOp[] = [];
  let at = 5;
  for (let i = 0; i < count; i++) {
    if (at + 5 > payload.length) bad();
    const kind = payload[at] as number;
    const keyBytes = payload.readUInt32BE(at + 1);
    at += 5;
    if (at + keyBytes > payload.length) bad();
    const key = payload.toString('utf8', at, at + keyBytes);
    at += keyBytes;
    if (kind === 0) {
      ops.push([key, null]);
      continue;
    }
    if (at + 4 > payload.length) bad();
    const valueBytes = payload.readUInt32BE(at);
    at += 4;
    if (at + valueBytes > payload.length || (kind !== 1 && kind !== 2)) bad();
    ops.push([key, kind === 1 ? payload.toString('utf8', at, at + valueBytes) : Buffer.from(payload.subarray(at, at + valueBytes))]);
    at += valueBytes;
  }
  return ops;
}

/**
 * A log position as the checkpoint value: `segment:offset`, fixed width, so that a batch record's
 * size is known before the position after it is (the record holds its own end).
 */
export function encodePosition(at: LogPosition): string {
  return `${String(at.segment).padStart(10, '0')}:${String(at.offset).padStart(12, '0')}`;
}

export function decodePosition(value: string): LogPosition | undefined {
  const m = /^(\d+):(\d+)$/.exec(value);
  return m ? { segment: Number(m[1]), offset: Number(m[2]) } : undefined;
}
