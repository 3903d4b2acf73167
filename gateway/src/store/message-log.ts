/**
 * The message log: append-only segment files holding every inbound message's packed record (its
 * metadata, the exact bytes received and the ACK sent). LevelDB keeps only a small pointer per
 * message (segment, offset, length), so the bulk of the bytes is written once and never passes
 * through LevelDB's compactions, which otherwise rewrite it several times and compete with intake
 * for the CPU (see README.md, "The message log").
 *
 * Records: [length UInt32BE][CRC-32 of the payload UInt32BE][payload]. A batch of records (the
 * messages, then the store's batch record) is written with one positional writev to a file opened
 * with O_DSYNC (durable when the call returns, as after an fdatasync) before the LevelDB batch that
 * points at them is written; a pointer is therefore never durable before its bytes. Records no
 * applied batch refers to (a torn write) are never read and go with their segment.
 *
 * Each open starts a new segment, so appends never follow a torn tail. A segment is deleted by the
 * store once no pointer refers to it any more.
 */
import { constants } from 'node:fs';
import { mkdir, open, readdir, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { GatewayError } from '../errors.ts';
import type { Payload } from './message-record.ts';
import { WriteArena } from './write-arena.ts';

export interface LogPointer {
  segment: number;
  /** Offset of the record header in the segment file. */
  offset: number;
  /** Payload length. */
  length: number;
}

/** A place in the log: the offset of a record header (or of the end) in a segment. */
export interface LogPosition {
  segment: number;
  offset: number;
}

export interface MessageLogOptions {
  /** A new segment is started once the active one reaches this size (bytes). */
  segmentBytes?: number;
  /** Make the next segment ready before the roll (default true; false only to measure the difference, bench/stalls.ts). */
  prepareAhead?: boolean;
}

const HEADER = 8;
/** Bytes before each record's payload: its length and CRC. */
export const RECORD_HEADER_BYTES = HEADER;
const NAME = /^(\d{10})\.seg$/;
const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
/**
 * The active segment is zero-filled ahead of the appends, in the background: a synced write over
 * blocks that already exist changes no file metadata, so it costs the disk one data write instead
 * of a journal commit as well (measured: ~40 % less CPU and half the latency of an appending
 * write). A fill starts when less than FILL_LOW is left ahead of the end. Fills are kept small:
 * an append that reaches the disk while a fill is being synced waits behind it (measured at 1,000
 * messages/s, alternating pairs: with 512 KiB fills instead of 2 MiB, ACK p99 4.5 ms against
 * 5.2 ms on average, better in 7 of 8 pairs).
 */
const FILL_BYTES = 512 * 1024;
const FILL_LOW = 256 * 1024;
/**
 * The next segment is created and its first FILL_BYTES zero-filled in the background once the
 * active one has this little room left (or a quarter of a segment, if less): a roll then only
 * switches files. Done at the roll itself, creating the file and its first synced fill
 * held every append behind it (appends at the start of a segment wait for its fill): 30–50 ms
 * latency peaks every few seconds at 6,000 messages/s, measured.
 */
const PREPARE_BEFORE = 16 * 1024 * 1024;
/** Segments smaller than this (tests) roll as before: preparing ahead is for the real, large ones. */
const PREPARE_FROM = 8 * 1024 * 1024;
let zeros: Buffer | undefined;

/** Zero-fill `length` bytes (at most FILL_BYTES) at `from`; false when the write failed (only costs speed). */
function zeroFill(handle: FileHandle, from: number, length: number): Promise<boolean> {
  zeros ??= Buffer.alloc(FILL_BYTES);
  return handle.write(zeros, 0, length, from).then(
    () => true,
    () => false,
  );
}

/** An append as reserved: where it goes, its encoded bytes, and the arena slice to give back. */
interface Place {
  handle: FileHandle;
  start: number;
  end: number;
  /** Every record of the append, headers included, as written from `start`. */
  bytes: Buffer;
  pointers: LogPointer[];
  release: () => void;
}

const sizeOf = (payload: Buffer | Payload): number => (Buffer.isBuffer(payload) ? payload.length : payload.size);

const segmentName = (n: number): string => `${String(n).padStart(10, '0')}.seg`;
/**
 * Segments are written with O_DSYNC: each write returns once its data is on the disk, so a batch
 * is one call on the thread pool instead of a write and an fdatasync, each waiting for its turn
 * on the busy main thread in between.
 */
const SEGMENT_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC;

export class MessageLog {
  readonly dir: string;
  readonly #segmentBytes: number;
  readonly #prepareAhead: boolean;
  /** Segments on disk (the active one included), ascending. */
  readonly #segments: number[];
  readonly #readers = new Map<number, Promise<FileHandle>>();
  #active: number;
  #activeHandle: FileHandle;
  #position = 0;
  /** Bytes of the active segment known to be written (zeros or records) and durable. */
  #filledEnd = 0;
  /** The zero fill in progress: the range it writes. */
  #fill: { from: number; to: number; done: Promise<void> } | undefined;
  #closed = false;
  /** The reservation of the last append (see append): the next one waits for it. */
  #reserving: Promise<void> = Promise.resolve();
  /** Appends being written. */
  readonly #writes = new Set<Promise<void>>();
  /** A write to the active segment failed: the next append starts a new segment. */
  #gap = false;
  /** Where appends encode their records (write-arena.ts). */
  readonly #arena = new WriteArena();
  /**
   * The next segment, created and zero-filled ahead of the roll (see PREPARE_BEFORE); undefined
   * when its creation failed (the roll then creates it itself). Not in #segments until active.
   */
  #next: { segment: number; ready: Promise<{ handle: FileHandle; filled: number } | undefined> } | undefined;

  private constructor(dir: string, segments: number[], active: number, handle: FileHandle, options: MessageLogOptions) {
    this.dir = dir;
    this.#segments = segments;
    this.#active = active;
    this.#activeHandle = handle;
    this.#segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.#prepareAhead = options.prepareAhead ?? true;
  }

  static async open(dir: string, options: MessageLogOptions = {}): Promise<MessageLog> {
    await mkdir(dir, { recursive: true });
    const segments = (await readdir(dir))
      .map((name) => NAME.exec(name)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    const active = (segments[segments.length - 1] ?? 0) + 1;
    const handle = await open(path.join(dir, segmentName(active)), SEGMENT_FLAGS);
    segments.push(active);
    const log = new MessageLog(dir, segments, active, handle, options);
    log.#fillAhead();
    return log;
  }

  get activeSegment(): number {
    return this.#active;
  }

  /** The size at which a segment rolls over (retention weighs what a segment still holds by it). */
  get segmentBytes(): number {
    return this.#segmentBytes;
  }

  /** Segment numbers on disk, ascending (a copy). */
  segments(): number[] {
    return [...this.#segments];
  }

  /**
   * Append payloads in one write and fdatasync them. Resolves with their pointers once durable.
   * `trailer`, given the payloads' pointers and the place of the record it returns, builds one
   * more record written last in the same write (the store's batch record).
   *
   * Places are reserved one append at a time, in call order (`trailer` runs then); the writes
   * themselves may overlap: a second append is written while the first is still being synced,
   * so a message that arrives meanwhile does not wait for the other's sync first. A write that
   * fails leaves a gap that ends its segment's records for a reader, so the next append starts
   * a new segment: nothing written after the gap would otherwise be reachable by a replay.
   */
  async append(payloads: Array<Buffer | Payload>, trailer?: (pointers: LogPointer[], at: LogPosition) => Buffer | Payload): Promise<LogPointer[]> {
    const turn = this.#reserving;
    let reserved!: () => void;
    this.#reserving = new Promise<void>((resolve) => (reserved = resolve));
    let place: Place;
    try {
      await turn;
      place = await this.#reserve(payloads, trailer);
    } finally {
      reserved();
    }
    const write = this.#write(place);
    this.#writes.add(write);
    try {
      await write;
    } finally {
      this.#writes.delete(write);
    }
    return place.pointers;
  }

  /**
   * The append's place in the log, and its records encoded into one slice of the write arena
   * (write-arena.ts): headers and payloads side by side, so the write is one buffer and no record
   * needs a buffer of its own.
   */
  async #reserve(payloads: Array<Buffer | Payload>, trailer: ((pointers: LogPointer[], at: LogPosition) => Buffer | Payload) | undefined): Promise<Place> {
    if (this.#closed) throw new GatewayError('GW_STORE_UNAVAILABLE', 'the message log is closed');
    if (this.#position >= this.#segmentBytes || this.#gap) await this.#roll();
    const segment = this.#active;
    const handle = this.#activeHandle;
    const start = this.#position;
    const pointers: LogPointer[] = [];
    let offset = start;
    for (const payload of payloads) {
      const length = sizeOf(payload);
      pointers.push({ segment, offset, length });
      offset += HEADER + length;
    }
    const records = [...payloads];
    if (trailer) {
      const last = trailer(pointers, { segment, offset });
      records.push(last);
      offset += HEADER + sizeOf(last);
    }
    const slice = this.#arena.take(offset - start);
    const out = slice.bytes;
    try {
      let at = 0;
      for (const record of records) {
        const length = sizeOf(record);
        if (Buffer.isBuffer(record)) record.copy(out, at + HEADER);
        else record.writeTo(out, at + HEADER);
        out.writeUInt32BE(length, at);
        out.writeUInt32BE(crc32(out.subarray(at + HEADER, at + HEADER + length)), at + 4);
        at += HEADER + length;
      }
    } catch (err) {
      slice.release(); // nothing was reserved: the place stays free for the next append
      throw err;
    }
    this.#position = offset;
    this.#prepareNext();
    return { handle, start, end: offset, bytes: out, pointers, release: slice.release };
  }

  async #write(place: Place): Promise<void> {
    try {
      // Never write where a zero fill is still writing.
      if (this.#fill && place.end > this.#fill.from) await this.#fill.done;
      const { bytesWritten } = await place.handle.writev([place.bytes], place.start);
      if (bytesWritten !== place.bytes.length) throw new GatewayError('GW_STORE_UNAVAILABLE', `short write to the message log (${bytesWritten} of ${place.bytes.length} bytes)`);
    } catch (err) {
      // Appends reserved after this one fail with it in the store (their batches were sealed
      // behind it); whatever they wrote lies past the gap, where no reader goes.
      if (place.handle === this.#activeHandle) this.#gap = true;
      throw err;
    } finally {
      place.release();
    }
    if (place.handle === this.#activeHandle && place.end > this.#filledEnd) this.#filledEnd = place.end;
    this.#fillAhead();
  }

  /** Where the next append goes (a new segment starts at offset 0). */
  get end(): LogPosition {
    return { segment: this.#active, offset: this.#position };
  }

  /**
   * Every intact record from `from` to the end of the log, in order (recovery). A segment's
   * records end at its zero fill, at a torn or damaged record, or at its end; the next segment
   * then starts at offset 0.
   */
  async *scan(from: LogPosition): AsyncGenerator<Buffer> {
    for await (const { payload } of this.records(from)) yield payload;
  }

  /** As `scan`, with where the log continues after each record. */
  async *records(from: LogPosition): AsyncGenerator<{ payload: Buffer; end: LogPosition }> {
    for (const segment of this.#segments) {
      if (segment < from.segment) continue;
      const handle = await this.#reader(segment);
      const size = (await handle.stat()).size;
      let offset = segment === from.segment ? from.offset : 0;
      const header = Buffer.alloc(HEADER);
      while (offset + HEADER <= size) {
        const { bytesRead } = await handle.read(header, 0, HEADER, offset);
        const length = header.readUInt32BE(0);
        if (bytesRead < HEADER || length === 0 || offset + HEADER + length > size) break;
        const payload = Buffer.allocUnsafe(length);
        const got = (await handle.read(payload, 0, length, offset + HEADER)).bytesRead;
        if (got !== length || crc32(payload) !== header.readUInt32BE(4)) break;
        offset += HEADER + length;
        yield { payload, end: { segment, offset } };
      }
    }
  }

  /** The payload a pointer refers to, checked against its length and CRC. */
  async read(pointer: LogPointer): Promise<Buffer> {
    const handle = await this.#reader(pointer.segment);
    const buf = Buffer.allocUnsafe(HEADER + pointer.length);
    const { bytesRead } = await handle.read(buf, 0, buf.length, pointer.offset);
    const payload = buf.subarray(HEADER);
    if (bytesRead !== buf.length || buf.readUInt32BE(0) !== pointer.length || buf.readUInt32BE(4) !== crc32(payload)) {
      throw new GatewayError('GW_STORE_CORRUPT', `message log record ${pointer.segment}@${pointer.offset} is damaged or missing`);
    }
    return payload;
  }

  /** Delete a segment nobody points at any more (never the active one). */
  async remove(segment: number): Promise<void> {
    if (segment === this.#active) return;
    const i = this.#segments.indexOf(segment);
    if (i < 0) return;
    this.#segments.splice(i, 1);
    const reader = this.#readers.get(segment);
    this.#readers.delete(segment);
    if (reader) await (await reader.catch(() => undefined))?.close().catch(() => undefined);
    await unlink(path.join(this.dir, segmentName(segment))).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#writes]);
    await this.#fill?.done;
    await this.#activeHandle.close().catch(() => undefined);
    // A segment made ready ahead and never used goes: nothing was written to it.
    const next = this.#next;
    this.#next = undefined;
    const unused = await next?.ready;
    if (next && unused) {
      await unused.handle.close().catch(() => undefined);
      await unlink(path.join(this.dir, segmentName(next.segment))).catch(() => undefined);
    }
    for (const reader of this.#readers.values()) await (await reader.catch(() => undefined))?.close().catch(() => undefined);
    this.#readers.clear();
  }

  async #roll(): Promise<void> {
    const next = this.#active + 1;
    const prepared = this.#next?.segment === next ? await this.#next.ready : undefined;
    this.#next = undefined;
    const handle = prepared?.handle ?? (await open(path.join(this.dir, segmentName(next)), SEGMENT_FLAGS));
    const previous = this.#activeHandle;
    // The previous segment's handle closes once nothing is writing to it.
    await Promise.allSettled([...this.#writes]);
    await this.#fill?.done;
    this.#gap = false;
    this.#active = next;
    this.#activeHandle = handle;
    this.#position = 0;
    this.#filledEnd = prepared?.filled ?? 0;
    this.#segments.push(next);
    await previous.close().catch(() => undefined);
    this.#fillAhead();
  }

  /** Create and zero-fill the next segment when the active one is nearly full (see PREPARE_BEFORE). */
  #prepareNext(): void {
    if (this.#closed || !this.#prepareAhead || this.#next !== undefined || this.#segmentBytes < PREPARE_FROM) return;
    if (this.#segmentBytes - this.#position > Math.min(PREPARE_BEFORE, this.#segmentBytes / 4)) return;
    const segment = this.#active + 1;
    const ready = (async (): Promise<{ handle: FileHandle; filled: number } | undefined> => {
      let handle: FileHandle;
      try {
        handle = await open(path.join(this.dir, segmentName(segment)), SEGMENT_FLAGS);
      } catch {
        return undefined; // the roll tries again itself and reports what fails
      }
      // A failed fill only costs speed: the segment's appends extend the file themselves.
      return { handle, filled: (await zeroFill(handle, 0, FILL_BYTES)) ? FILL_BYTES : 0 };
    })();
    this.#next = { segment, ready };
  }

  /** Start zero-filling past the end when little filled room is left (see FILL_BYTES). */
  #fillAhead(): void {
    if (this.#closed || this.#fill || this.#filledEnd - this.#position >= FILL_LOW || this.#filledEnd >= this.#segmentBytes) return;
    const from = Math.max(this.#filledEnd, this.#position);
    const length = Math.min(FILL_BYTES, this.#segmentBytes + FILL_BYTES - from);
    const handle = this.#activeHandle;
    const fill = {
      from,
      to: from + length,
      // A failed fill only costs speed: appends extend the file themselves.
      done: zeroFill(handle, from, length).then((ok) => {
        if (ok && this.#activeHandle === handle && fill.to > this.#filledEnd) this.#filledEnd = fill.to;
      }),
    };
    this.#fill = fill;
    void fill.done.then(() => {
      if (this.#fill === fill) this.#fill = undefined;
    });
  }

  #reader(segment: number): Promise<FileHandle> {
    if (this.#closed) return Promise.reject(new GatewayError('GW_STORE_UNAVAILABLE', 'the message log is closed'));
    let reader = this.#readers.get(segment);
    if (!reader) {
      reader = open(path.join(this.dir, segmentName(segment)), 'r');
      // A failed open is not cached: the next read tries again.
      reader.catch(() => this.#readers.delete(segment));
      this.#readers.set(segment, reader);
    }
    return reader;
  }
}

/** A pointer as stored in LevelDB (format byte 2), with the message's duplicate count. */
export const POINTER_FORMAT = 2;

export function encodePointer(pointer: LogPointer, duplicates: number): Buffer {
  const out = Buffer.allocUnsafe(17);
  out[0] = POINTER_FORMAT;
  out.writeUInt32BE(pointer.segment, 1);
  out.writeUInt32BE(pointer.offset, 5);
  out.writeUInt32BE(pointer.length, 9);
  out.writeUInt32BE(duplicates, 13);
  return out;
}

export function decodePointer(value: Buffer): (LogPointer & { duplicates: number }) | undefined {
  if (value[0] !== POINTER_FORMAT || value.length < 17) return undefined;
  return { segment: value.readUInt32BE(1), offset: value.readUInt32BE(5), length: value.readUInt32BE(9), duplicates: value.readUInt32BE(13) };
}
