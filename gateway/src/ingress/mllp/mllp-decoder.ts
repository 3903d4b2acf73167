/**
 * MLLP framing as a pure state machine (STYLE.md practice 8): bytes in through `push()`, complete
 * frames out through callbacks. One instance per connection; sockets and tests drive the same code.
 *
 * MLLP release 1 (HL7 v2.5 Appendix C.4.3, "Minimal Lower Layer Protocol"):
 *   <SB> data <EB><CR>   with SB = VT (0x0B), EB = FS (0x1C), CR = 0x0D.
 *
 * Tolerances (each seen in real captures, see gateway/src/hl7/README.md):
 * - FS not followed by CR but by VT: the frame ends and the VT starts the next one.
 * - FS followed by LF (captures whose CRs were normalised to LF) ends the frame too.
 * - FS followed by any other byte is taken as data (FS is not allowed inside HL7 text, so this
 *   only happens with binary garbage, which then fails HL7 parsing and gets an AR).
 * - Bytes outside frames (keep-alive CR/LF, noise) are ignored and only counted.
 * - A VT inside an open frame means the sender abandoned that frame and started again: the partial
 *   frame goes to `onPartial` (marked `abandoned`: kept for the operator, never answered; without
 *   `onPartial` it is counted as ignored bytes) and the new frame is read.
 *
 * Frames larger than `maxFrameBytes` are not buffered: the decoder keeps only the first
 * `headBytes` (so the listener can echo MSH-10 in its AR and store the head), counts the rest, and
 * reports the frame through `onOversize` when it ends. The connection survives.
 *
 * A block whose FS is the last byte received so far (`awaitingEndCr`) may be one whose sender
 * omits the CR and waits for its ACK: the connection ends it with `endBlock()` when nothing has
 * followed for a moment (mllp-connection.ts END_CR_GRACE_MS). A CR or LF arriving after that is
 * the block's own late terminator and is skipped without being counted as noise.
 *
 * A frame open too long (mllp-connection.ts FRAME_TIMEOUT_MS) is ended like the input: the
 * connection reads `openBytes` and `openEndsWithLineEnd` for its warning, then calls `end()`.
 *
 * End of input (`end()`: the sender half-closed, the connection closed or is being closed): a
 * block whose FS arrived without its CR is complete (some senders omit the CR) and is emitted as a
 * frame; a frame without its FS is reported through `onPartial` with its bytes, so that it is
 * kept for the operator rather than dropped.
 */

/** MLLP control bytes (HL7 v2.5 Appendix C.4.3). */
export const MLLP = {
  /** Start block: vertical tab. */
  VT: 0x0b,
  /** End block: file separator. */
  FS: 0x1c,
  CR: 0x0d,
  LF: 0x0a,
} as const;

export interface OversizeFrame {
  /** Total bytes of the frame content (without VT/FS/CR). */
  size: number;
  /** The first bytes of the frame content. */
  head: Buffer;
}

/** A frame the input ended inside of (no end block): its bytes, for the operator. */
export interface PartialFrame {
  /** Bytes of the frame content received (without the VT). */
  size: number;
  /** The content, or its first `headBytes` when it outgrew `maxFrameBytes`. */
  head: Buffer;
  /** True when `head` is only the first bytes of the content. */
  truncated: boolean;
  /** Ended by a new start block (the sender started again), not by the end of the input. */
  abandoned?: true;
}

export interface MllpDecoderOptions {
  /** Largest accepted frame content in bytes. */
  maxFrameBytes: number;
  /** Bytes of an oversize frame kept for the reply and the operator (default 64 KiB). */
  headBytes?: number;
  onFrame: (frame: Buffer) => void;
  onOversize: (frame: OversizeFrame) => void;
  /** Called with the count of bytes ignored since the last call, just before a frame starts. */
  onIgnoredBytes?: (count: number) => void;
  /** A frame open when the input ended (`end()`). Without it, its bytes are counted as ignored. */
  onPartial?: (frame: PartialFrame) => void;
}

type DecoderState = 'outside' | 'inside' | 'after-fs';

export class MllpDecoder {
  readonly #maxFrameBytes: number;
  readonly #headBytes: number;
  readonly #onFrame: (frame: Buffer) => void;
  readonly #onOversize: (frame: OversizeFrame) => void;
  readonly #onIgnoredBytes: ((count: number) => void) | undefined;
  readonly #onPartial: ((frame: PartialFrame) => void) | undefined;

  #state: DecoderState = 'outside';
  /** Chunks of the open frame (only while it is within the size limit). */
  #parts: Buffer[] = [];
  #size = 0;
  #oversize = false;
  #ignoredPending = 0;
  #ignoredTotal = 0;
  #frames = 0;
  /** The last byte of the open frame's content (for the warning about a frame that never ends). */
  #lastByte = -1;
  /** Set by endBlock(): one CR or LF at the start of the next push is that block's late terminator. */
  #lateTerminator = false;

  constructor(options: MllpDecoderOptions) {
    if (!(options.maxFrameBytes > 0)) throw new RangeError('maxFrameBytes must be positive');
    this.#maxFrameBytes = options.maxFrameBytes;
    this.#headBytes = Math.min(options.headBytes ?? 65_536, options.maxFrameBytes);
    this.#onFrame = options.onFrame;
    this.#onOversize = options.onOversize;
    this.#onIgnoredBytes = options.onIgnoredBytes;
    this.#onPartial = options.onPartial;
  }

  /** Bytes ignored outside frames (and in abandoned frames) since construction. */
  get ignoredBytes(): number {
    return this.#ignoredTotal;
  }

  /** Complete frames emitted (including oversize ones). */
  get frames(): number {
    return this.#frames;
  }

  /** True while a frame is open (bytes received but no end block yet). */
  get inFrame(): boolean {
    return this.#state !== 'outside';
  }

  /** Bytes of the open frame's content received so far (0 outside a frame). */
  get openBytes(): number {
    return this.#state === 'outside' ? 0 : this.#size;
  }

  /** True when the open frame's content ends with a CR or LF (a message's last segment, its FS missing). */
  get openEndsWithLineEnd(): boolean {
    return this.#state === 'inside' && this.#size > 0 && (this.#lastByte === MLLP.CR || this.#lastByte === MLLP.LF);
  }

  /** True when the bytes so far end with a block's FS and the CR that completes it has not come yet. */
  get awaitingEndCr(): boolean {
    return this.#state === 'after-fs';
  }

  /**
   * End the block whose FS came without its CR (`awaitingEndCr`): it is emitted as a frame now. A
   * sender that omits the CR sends nothing more until it has its ACK; one whose CR was only late
   * (the FS ended a TCP segment) sends it next, and that CR or LF is skipped, not counted as noise.
   * Nothing happens in any other state.
   */
  endBlock(): void {
    if (this.#state !== 'after-fs') return;
    this.#finishFrame();
    this.#lateTerminator = true;
  }

  /** Bytes ignored and not yet reported through `onIgnoredBytes`. */
  takeIgnored(): number {
    const n = this.#ignoredPending;
    this.#ignoredPending = 0;
    return n;
  }

  push(buf: Buffer): void {
    let i = 0;
    const n = buf.length;
    if (this.#lateTerminator) {
      this.#lateTerminator = false;
      const b = buf[0];
      if (b === MLLP.CR || b === MLLP.LF) i = 1;
    }
    while (i < n) {
      switch (this.#state) {
        case 'outside': {
          const vt = buf.indexOf(MLLP.VT, i);
          if (vt === -1) {
            this.#ignore(n - i);
            return;
          }
          if (vt > i) this.#ignore(vt - i);
          this.#openFrame();
          i = vt + 1;
          break;
        }
        case 'inside': {
          // Scan to the next FS or VT, whichever comes first.
          const fs = buf.indexOf(MLLP.FS, i);
          const vt = buf.indexOf(MLLP.VT, i);
          if (vt !== -1 && (fs === -1 || vt < fs)) {
            // A new start block inside an open frame: the sender abandoned the frame. Its bytes
            // are kept for the operator (DESIGN §2: bad input is kept), its VT counted as ignored.
            this.#append(buf, i, vt);
            this.#releaseOpenFrame(true);
            this.#openFrame();
            i = vt + 1;
            break;
          }
          if (fs === -1) {
            this.#append(buf, i, n);
            return;
          }
          this.#append(buf, i, fs);
          this.#state = 'after-fs';
          i = fs + 1;
          break;
        }
        case 'after-fs': {
          const b = buf[i] as number;
          if (b === MLLP.CR || b === MLLP.LF) {
            this.#finishFrame();
            i += 1;
          } else if (b === MLLP.VT) {
            // FS without CR, the next frame starts right away: tolerated.
            this.#finishFrame();
          } else {
            // FS followed by data: not an end block; keep the FS as content.
            this.#append(Buffer.of(MLLP.FS), 0, 1);
            this.#state = 'inside';
          }
          break;
        }
        default:
          this.#state satisfies never;
      }
    }
  }

  /**
   * The input ended (nothing more will be pushed on this connection). A block ended by FS whose CR
   * never came is a frame; a frame without its FS goes to `onPartial` (a start block alone, with
   * nothing after it, is counted as an ignored byte). The decoder is then outside any frame.
   */
  end(): void {
    switch (this.#state) {
      case 'outside':
        return;
      case 'after-fs':
        this.#finishFrame();
        return;
      case 'inside':
        this.#releaseOpenFrame(false);
        return;
      default:
        this.#state satisfies never;
    }
  }

  /**
   * The open frame ends without its end block (`abandoned`: a new start block inside it; else the
   * end of the input): its bytes go to `onPartial`, the VT of an abandoned one counted as ignored.
   * Without `onPartial`, or with only line ends and spaces after the VT (a stray start block before
   * a keep-alive CR is no message), the content and its VT are counted as ignored. The decoder is
   * then outside any frame.
   */
  #releaseOpenFrame(abandoned: boolean): void {
    const size = this.#size;
    const parts = this.#parts;
    const truncated = this.#oversize;
    this.#resetFrame();
    this.#state = 'outside';
    const head = size > 0 && this.#onPartial ? Buffer.concat(parts) : undefined;
    if (!head || blank(head)) {
      this.#ignore(size + 1);
      return;
    }
    if (abandoned) {
      this.#ignore(1);
      this.#onPartial?.({ size, head, truncated, abandoned: true });
    } else this.#onPartial?.({ size, head, truncated });
  }

  #openFrame(): void {
    const ignored = this.#ignoredPending;
    if (ignored > 0 && this.#onIgnoredBytes) {
      this.#ignoredPending = 0;
      this.#onIgnoredBytes(ignored);
    }
    this.#state = 'inside';
    this.#parts = [];
    this.#size = 0;
    this.#oversize = false;
  }

  #append(buf: Buffer, from: number, to: number): void {
    if (to <= from) return;
    const len = to - from;
    this.#lastByte = buf[to - 1] as number;
    if (!this.#oversize) {
      if (this.#size + len <= this.#maxFrameBytes) {
        this.#parts.push(buf.subarray(from, to));
      } else {
        // Crossing the limit: keep only the head and stop buffering.
        this.#oversize = true;
        const head = Buffer.concat(this.#parts, this.#size);
        const room = Math.max(0, this.#headBytes - head.length);
        this.#parts = [head.subarray(0, this.#headBytes), Buffer.from(buf.subarray(from, from + Math.min(room, len)))];
      }
    }
    this.#size += len;
  }

  #finishFrame(): void {
    this.#frames++;
    const parts = this.#parts;
    const size = this.#size;
    const oversize = this.#oversize;
    this.#resetFrame();
    this.#state = 'outside';
    if (oversize) {
      this.#onOversize({ size, head: Buffer.concat(parts) });
      return;
    }
    // Copy: the chunks belong to the socket's buffers, and the frame outlives this call.
    const frame = parts.length === 1 ? Buffer.from(parts[0] as Buffer) : Buffer.concat(parts, size);
    this.#onFrame(frame);
  }

  #resetFrame(): void {
    this.#parts = [];
    this.#size = 0;
    this.#oversize = false;
  }

  #ignore(count: number): void {
    this.#ignoredPending += count;
    this.#ignoredTotal += count;
  }
}

/** Only line ends and spaces (a stray start block before a keep-alive CR is no message). */
function blank(bytes: Buffer): boolean {
  for (const b of bytes) if (b !== 0x0d && b !== 0x0a && b !== 0x20 && b !== 0x09) return false;
  return true;
}
