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
 * - Bytes outside frames (keep-alive CR/LF, noise) are ignored and only counted; noise (a line that
 *   is neither blank nor HL7) is also held as a short preview for the log (`takeNoise()`).
 * - HL7 outside frames (with `onUnframed`): a line outside frames that starts, after blanks and
 *   control bytes, with `MSH`, `FHS` or `BHS` and a separator is a sender not set to MLLP framing.
 *   From that segment on the bytes are collected like a frame's (bounded by `maxFrameBytes`, the
 *   first `headBytes` kept beyond it) until a VT, `endUnframed()` or `end()`, then handed to
 *   `onUnframed`, not counted as ignored.
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

/** HL7 received outside any frame (no start block): its bytes, for the operator. */
export interface UnframedBytes {
  /** Bytes from the first segment's name on (blanks before it are ignored bytes). */
  size: number;
  /** The bytes, or their first `headBytes` when they outgrew `maxFrameBytes`. */
  head: Buffer;
  /** True when `head` is only the first bytes. */
  truncated: boolean;
  /** What ended them: a start block (VT) that followed, else `endUnframed()` or `end()`. */
  endedBy: 'start-block' | 'end';
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
  /** HL7 outside frames (UnframedBytes). Without it, such bytes are counted as ignored, like any. */
  onUnframed?: (bytes: UnframedBytes) => void;
}

type DecoderState = 'outside' | 'inside' | 'after-fs' | 'unframed';

/**
 * Where the scan of bytes outside frames is: at a line's start (blanks and control bytes skipped),
 * matching a segment name (`#sig`), or in a line of noise up to its CR or LF.
 */
type OutsideProbe = 'line-start' | 'matching' | 'noise';

/** Bytes of noise held for the log's preview. */
const NOISE_PREVIEW_BYTES = 48;

export class MllpDecoder {
  readonly #maxFrameBytes: number;
  readonly #headBytes: number;
  readonly #onFrame: (frame: Buffer) => void;
  readonly #onOversize: (frame: OversizeFrame) => void;
  readonly #onIgnoredBytes: ((count: number) => void) | undefined;
  readonly #onPartial: ((frame: PartialFrame) => void) | undefined;
  readonly #onUnframed: ((bytes: UnframedBytes) => void) | undefined;

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
  #probe: OutsideProbe = 'line-start';
  /** The bytes of a segment name matched so far outside frames (onUnframed only). */
  readonly #sig = Buffer.alloc(4);
  #sigLen = 0;
  /** The first bytes of noise outside frames since the last takeNoise(), and how many there were. */
  #noise: number[] = [];
  #noiseBytes = 0;

  constructor(options: MllpDecoderOptions) {
    if (!(options.maxFrameBytes > 0)) throw new RangeError('maxFrameBytes must be positive');
    this.#maxFrameBytes = options.maxFrameBytes;
    this.#headBytes = Math.min(options.headBytes ?? 65_536, options.maxFrameBytes);
    this.#onFrame = options.onFrame;
    this.#onOversize = options.onOversize;
    this.#onIgnoredBytes = options.onIgnoredBytes;
    this.#onPartial = options.onPartial;
    this.#onUnframed = options.onUnframed;
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
    return this.#state === 'inside' || this.#state === 'after-fs';
  }

  /** Bytes of the open frame's content received so far (0 outside a frame). */
  get openBytes(): number {
    return this.inFrame ? this.#size : 0;
  }

  /** True while HL7 received outside frames is being collected (onUnframed). */
  get inUnframed(): boolean {
    return this.#state === 'unframed';
  }

  /** True while the HL7 collected outside frames has outgrown `maxFrameBytes`. */
  get unframedTruncated(): boolean {
    return this.#state === 'unframed' && this.#oversize;
  }

  /**
   * End the HL7 being collected outside frames (`inUnframed`): handed to `onUnframed` now. The
   * decoder is then outside frames, at a line's start. Nothing happens in any other state.
   */
  endUnframed(): void {
    if (this.#state === 'unframed') this.#releaseUnframed('end');
  }

  /**
   * The noise outside frames since the last call (lines neither blank nor HL7): how many bytes, and
   * the first of them, for the log. Undefined when there was none.
   */
  takeNoise(): { bytes: number; preview: Buffer } | undefined {
    if (this.#noiseBytes === 0) return undefined;
    const out = { bytes: this.#noiseBytes, preview: Buffer.from(this.#noise) };
    this.#noise = [];
    this.#noiseBytes = 0;
    return out;
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
        case 'outside':
        case 'unframed': {
          const vt = buf.indexOf(MLLP.VT, i);
          const to = vt === -1 ? n : vt;
          if (to > i) this.#outside(buf, i, to);
          if (vt === -1) return;
          if (this.#state === 'unframed') this.#releaseUnframed('start-block');
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
      case 'unframed':
        this.#releaseUnframed('end');
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
   * Bytes outside frames, none a VT: counted as ignored, but for HL7 (a segment name at a line's
   * start, with `onUnframed`), which is collected from that name on. Scanned byte by byte only at
   * a line's start; lines of noise are skipped to their end with indexOf.
   */
  #outside(buf: Buffer, from: number, to: number): void {
    let k = from;
    while (k < to) {
      if (this.#state === 'unframed') {
        this.#append(buf, k, to);
        return;
      }
      switch (this.#probe) {
        case 'line-start': {
          const b = buf[k] as number;
          if (b <= 0x20 || b === 0x7f) {
            this.#ignore(1);
            k++;
            break;
          }
          if (!this.#onUnframed) {
            this.#probe = 'noise';
            break;
          }
          this.#probe = 'matching';
          this.#sigLen = 0;
          break;
        }
        case 'matching': {
          const b = buf[k] as number;
          if (!signatureGoesOn(this.#sig, this.#sigLen, b)) {
            // Not HL7: the bytes matched so far are noise, and so is the rest of the line.
            this.#noiseOf(this.#sig, 0, this.#sigLen);
            this.#sigLen = 0;
            this.#probe = 'noise';
            break;
          }
          this.#sig[this.#sigLen++] = b;
          k++;
          if (this.#sigLen === this.#sig.length) {
            // HL7 outside frames: collected from its segment's name on.
            this.#sigLen = 0;
            this.#probe = 'line-start';
            this.#resetFrame();
            this.#state = 'unframed';
            this.#append(Buffer.from(this.#sig), 0, this.#sig.length);
          }
          break;
        }
        case 'noise': {
          let eol = buf.indexOf(MLLP.CR, k);
          if (eol >= to) eol = -1;
          const lf = buf.indexOf(MLLP.LF, k);
          if (lf !== -1 && lf < to && (eol === -1 || lf < eol)) eol = lf;
          const end = eol === -1 ? to : eol + 1;
          this.#noiseOf(buf, k, end);
          k = end;
          if (eol !== -1) this.#probe = 'line-start';
          break;
        }
        default:
          this.#probe satisfies never;
      }
    }
  }

  /** Noise outside frames: ignored, counted, its first bytes held for the log (takeNoise). */
  #noiseOf(buf: Buffer, from: number, to: number): void {
    if (to <= from) return;
    this.#ignore(to - from);
    this.#noiseBytes += to - from;
    for (let k = from; k < to && this.#noise.length < NOISE_PREVIEW_BYTES; k++) this.#noise.push(buf[k] as number);
  }

  /** The HL7 collected outside frames goes to onUnframed; the decoder is outside frames again. */
  #releaseUnframed(endedBy: UnframedBytes['endedBy']): void {
    const size = this.#size;
    const truncated = this.#oversize;
    const head = Buffer.concat(this.#parts);
    this.#resetFrame();
    this.#state = 'outside';
    this.#probe = 'line-start';
    this.#onUnframed?.({ size, head, truncated, endedBy });
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
    // A segment name cut by the VT was noise; the scan outside frames starts over after this frame.
    if (this.#sigLen > 0) this.#noiseOf(this.#sig, 0, this.#sigLen);
    this.#sigLen = 0;
    this.#probe = 'line-start';
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

/**
 * Whether byte `b` continues a segment name that starts HL7 (`MSH`, `FHS` or `BHS`, then a field
 * separator: any printable punctuation, `|` in practice) after the `len` bytes of `sig`.
 */
function signatureGoesOn(sig: Buffer, len: number, b: number): boolean {
  switch (len) {
    case 0:
      return b === 0x4d || b === 0x46 || b === 0x42; // M F B
    case 1:
      return sig[0] === 0x4d ? b === 0x53 : b === 0x48; // MS, FH/BH
    case 2:
      return sig[0] === 0x4d ? b === 0x48 : b === 0x53; // MSH, FHS/BHS
    case 3:
      return (b >= 0x21 && b <= 0x2f) || (b >= 0x3a && b <= 0x40) || (b >= 0x5b && b <= 0x60) || (b >= 0x7b && b <= 0x7e);
    default:
      return false;
  }
}

/** Only line ends and spaces (a stray start block before a keep-alive CR is no message). */
function blank(bytes: Buffer): boolean {
  for (const b of bytes) if (b !== 0x0d && b !== 0x0a && b !== 0x20 && b !== 0x09) return false;
  return true;
}
