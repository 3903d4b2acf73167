/**
 * One inbound message is one value in the `m` sublevel: its metadata, the exact bytes received and
 * the acknowledgement sent, packed together so that a message costs LevelDB one key instead of
 * three (the store's write cost grows with the number of keys per batch).
 *
 *   byte 0      format (1)
 *   bytes 1-4   length of the metadata (UInt32BE)
 *   bytes 5-8   length of the raw bytes (UInt32BE)
 *   then        metadata as UTF-8 JSON, the raw bytes, the ACK bytes (the rest)
 *
 * Values written before this format are plain JSON metadata (first byte `{`), with the raw bytes
 * and the ACK under the `r` and `a` sublevels; `decodeMessage` reports them as `legacy`.
 */
const FORMAT = 1;
const HEAD = 9;

export interface PackedMessage<R> {
  record: R;
  raw: Buffer;
  ack?: Buffer;
}

/**
 * Bytes written where the writer places them: the message log encodes a batch's records straight
 * into its reusable write buffer instead of allocating a buffer per record (write-arena.ts).
 */
export interface Payload {
  readonly size: number;
  writeTo(out: Buffer, at: number): void;
}

/** A packed message not yet written anywhere: its size is known, its bytes are written on demand. */
export function messagePayload(record: object, raw: Buffer, ack?: Buffer): Payload {
  const json = JSON.stringify(record);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  return {
    size: HEAD + jsonBytes + raw.length + (ack?.length ?? 0),
    writeTo(out: Buffer, at: number): void {
      out[at] = FORMAT;
      out.writeUInt32BE(jsonBytes, at + 1);
      out.writeUInt32BE(raw.length, at + 5);
      out.write(json, at + HEAD, jsonBytes, 'utf8');
      raw.copy(out, at + HEAD + jsonBytes);
      ack?.copy(out, at + HEAD + jsonBytes + raw.length);
    },
  };
}

/** A payload's bytes in a buffer of their own (a Buffer is returned as it is). */
export function payloadBytes(payload: Payload | Buffer): Buffer {
  if (Buffer.isBuffer(payload)) return payload;
  const out = Buffer.allocUnsafe(payload.size);
  payload.writeTo(out, 0);
  return out;
}

export function encodeMessage(record: object, raw: Buffer, ack?: Buffer): Buffer {
  return payloadBytes(messagePayload(record, raw, ack));
}

/** The metadata only (listings read many records and need no bytes). */
export function decodeMessageRecord<R>(value: Buffer): R {
  if (value[0] !== FORMAT) return JSON.parse(value.toString('utf8')) as R;
  const jsonBytes = value.readUInt32BE(1);
  return JSON.parse(value.toString('utf8', HEAD, HEAD + jsonBytes)) as R;
}

/** Metadata, raw bytes and ACK; `legacy` when the bytes live under the old `r`/`a` sublevels. */
export function decodeMessage<R>(value: Buffer): PackedMessage<R> | { legacy: R } {
  if (value[0] !== FORMAT) return { legacy: JSON.parse(value.toString('utf8')) as R };
  const jsonBytes = value.readUInt32BE(1);
  const rawBytes = value.readUInt32BE(5);
  const rawStart = HEAD + jsonBytes;
  const ackStart = rawStart + rawBytes;
  const record = JSON.parse(value.toString('utf8', HEAD, rawStart)) as R;
  // Copies: the caller may keep them long after the (possibly pooled) value is gone.
  const raw = Buffer.from(value.subarray(rawStart, ackStart));
  return ackStart < value.length ? { record, raw, ack: Buffer.from(value.subarray(ackStart)) } : { record, raw };
}
