/**
 * The message log's write buffer: one buffer, allocated once, that each append encodes its
 * records into and hands to its write, reused once the write is over.
 *
 * Why: V8 counts the memory behind Buffers as external memory and starts a full collection each
 * time that grows by 64 MB. At 7,600 messages/s a buffer of its own for every message record
 * (~2 KB) and every batch record (~11 KB a batch) crossed that every ~2.6 s, and each full
 * collection put a 30–60 ms latency peak on the ACKs (measured: 15 of 17 full collections in
 * 40 s were started by external memory; with the records in one reused buffer, 1 of 7).
 *
 * A ring: slices are handed out in order and released when their write ends (in any order); the
 * space of a slice is reused once it and every slice handed out before it are released. A slice
 * that does not fit (a write still holds the space, or it is larger than a quarter of the ring:
 * a 10 MB message) gets a buffer of its own: taking never waits.
 */
export interface ArenaSlice {
  readonly bytes: Buffer;
  /** The write that used `bytes` is over: the space may be handed out again. */
  release(): void;
}

/** 4 MiB: about a hundred batches of 16 result messages. */
export const ARENA_BYTES = 4 * 1024 * 1024;

export class WriteArena {
  readonly #buf: Buffer;
  #head = 0;
  /** Slices handed out and not yet reclaimed, oldest first. */
  readonly #out: Array<{ start: number; released: boolean }> = [];

  constructor(bytes = ARENA_BYTES) {
    this.#buf = Buffer.allocUnsafeSlow(bytes);
  }

  /** Slices still holding their space (diagnostics and tests). */
  get inUse(): number {
    return this.#out.length;
  }

  take(length: number): ArenaSlice {
    const at = this.#place(length);
    if (at === undefined) return { bytes: Buffer.allocUnsafe(length), release: () => undefined };
    const slot = { start: at, released: false };
    this.#out.push(slot);
    this.#head = at + length;
    return {
      bytes: this.#buf.subarray(at, at + length),
      release: () => {
        slot.released = true;
        while (this.#out[0]?.released) this.#out.shift();
        if (this.#out.length === 0) this.#head = 0;
      },
    };
  }

  /** Where `length` bytes fit without touching a slice still held, or undefined. */
  #place(length: number): number | undefined {
    if (length === 0 || length > this.#buf.length / 4) return undefined;
    const oldest = this.#out[0];
    if (!oldest) return 0;
    if (this.#head > oldest.start) {
      // Held: [oldest.start, head). Free: after head, then from 0 to the oldest slice.
      if (this.#head + length <= this.#buf.length) return this.#head;
      return length <= oldest.start ? 0 : undefined;
    }
    // Wrapped: held from oldest.start to the end and from 0 to head. Free: [head, oldest.start).
    return this.#head + length <= oldest.start ? this.#head : undefined;
  }
}
