import { GatewayError } from '../../errors.ts';
import { frameChecksum, frameRecord, hexDigit } from './checksum.ts';
import { ACK, BYTE, CR, ENQ, EOT, ETB, ETX, LF, NAK, STX } from './control-chars.ts';
import type { LinkOptions } from './link-options.ts';
import { encodeRecord } from './outgoing-text.ts';
import {
  type AstmLinkSession,
  emptyStats,
  isTerminatorRecord,
  type LinkEvent,
  type LinkSessionOptions,
  type LinkStats,
  type MessageMeta,
  type MessageReply,
  type PartialReason,
  type PartialRefusals,
  type RefusalCause,
  type SendOptions,
} from './link-session.ts';
import type { Scheduler, TimerHandle } from './scheduler.ts';

const RECORD_END = Buffer.from([CR]);
/**
 * Bytes ignored in neutral are reported at most this often while they keep coming: a line set to
 * the wrong baud rate or parity never shows an ENQ, so no session end would ever report them.
 */
const NEUTRAL_IGNORED_FLUSH_MS = 1_000;
/**
 * Bytes waiting behind a message being committed, past which the wire is paused (TCP's window, or
 * a serial line's RTS/CTS or XON/XOFF, then holds the analyzer); it is read again once they are
 * under half of this. An analyzer that waits for each reply (LIS1-A §6.3.4) sends nothing then;
 * one that does not, or a converter that buffers, streams on while the store is slow.
 */
export const E1381_PAUSE_BYTES = 1024 * 1024;
/**
 * A wire that cannot be paused (a serial line without flow control) is read on while a commit
 * waits; past this many waiting bytes what arrives is not kept (counted in `overflowBytes`, an
 * 'overflow' event, logged as a warning) rather than filling the gateway's memory.
 */
export const E1381_MAX_QUEUED_BYTES = 256 * 1024 * 1024;
/**
 * Where bytes were dropped at E1381_MAX_QUEUED_BYTES, in the queue: what came before and what came
 * after are not one stream (#onGap).
 */
const GAP = Buffer.alloc(0);

type ByteOutcome = 'ok' | 'consumed-run' | 'complete-here' | 'complete-before' | 'session-end' | 're-establish';

/**
 * One E1381 / CLSI LIS1-A data-link state machine per connection, for any transport. The gateway
 * is the "computer" side (LIS1-A §6.2.7.1): it receives from the instrument and sends host-query
 * answers and worklists to it, always yielding when both want the line.
 *
 *   neutral ──ENQ/ACK──▶ receiving ──frame──▶ (complete message) committing ──ACK──▶ receiving
 *      ▲                    │ EOT                                   │ reply (ACK|NAK|EOT)
 *      └────────────────────┘◀──────────────────────────────────────┘
 *   neutral ──(send queued) ENQ──▶ establishing ──ACK──▶ sending ──last ACK──▶ EOT, neutral
 *                                   │ NAK: wait busyRetryMs │ ENQ: contention, yield
 *
 * Receive rules: frames `<STX> FN text <ETB|ETX> C1 C2 <CR> <LF>` of any length (LIS1-A §6.3.1),
 * checksum compared case-insensitively (§6.3.3), FN equal to the last accepted one is a
 * retransmission — ACKed and kept once (§6.5.1.1) — and anything else out of sequence is NAKed.
 * A complete E1394 message (the end frame whose last record is L) is handed to `onMessage`, and
 * the reply to that frame waits for it: the store commits before the analyzer hears ACK.
 */
export class E1381Session implements AstmLinkSession {
  readonly stats: LinkStats = emptyStats();

  readonly #cb: LinkSessionOptions;
  readonly #opt: LinkOptions;
  readonly #clock: Scheduler;

  #state: 'neutral' | 'receiving' | 'committing' | 'establishing' | 'sending' | 'closed' = 'neutral';
  /** Input that arrived while a commit was pending, processed after the reply. */
  #queued: Buffer[] = [];
  /** The bytes in #queued (E1381_PAUSE_BYTES, E1381_MAX_QUEUED_BYTES). */
  #queuedBytes = 0;
  /** The wire was paused for the bytes waiting behind a commit. */
  #paused = false;
  /** Bytes are dropped at E1381_MAX_QUEUED_BYTES (until the queue is read down to half of it): how many so far. */
  #dropping = false;
  #dropped = 0;
  /** Bytes were dropped (#onGap): the next frame's number is taken as it comes. */
  #resync = false;
  #timer: TimerHandle | undefined;
  /** Sending is held off until this timer fires (busy retry, contention, interrupt hold-off). */
  #holdoff: TimerHandle | undefined;
  #holdoffKind: 'busy' | 'aborted' | 'contention' | 'interrupt' | undefined;

  // ---- receiver: frame parser -------------------------------------------------------------
  #parse: 'between' | 'fn' | 'text' | 'c1' | 'c2' | 'trailer-cr' | 'trailer-lf' = 'between';
  #fn = 0;
  #text: Buffer[] = [];
  #textLen = 0;
  #terminator = 0;
  #c1 = -1;
  #c2 = -1;
  #frameTooLong = false;
  #trailerTimer: TimerHandle | undefined;

  // ---- receiver: sequence and message ------------------------------------------------------
  /** FN of the last accepted frame in this session (0 right after ENQ: the first frame is 1). */
  #lastFn = 0;
  #lastText: Buffer | undefined;
  #lastTerminator = 0;
  /** Accepted frame texts of the message being assembled. */
  #message: Buffer[] = [];
  /**
   * The head of the message's last record, carried from frame to frame (nextRecordHead): what
   * tells its end (#isMessageComplete), also over the rest of a message past maxMessageBytes,
   * whose frames are not kept. `#lastRecordBefore`: as it was before the last frame, for a
   * completing frame that is forgotten (#settleCommit).
   */
  #lastRecord: RecordHead = NO_RECORD;
  #lastRecordBefore: RecordHead = NO_RECORD;
  #messageLen = 0;
  /** Exact bytes of the message being assembled (from ENQ or the previous message end). */
  #raw: Buffer[] = [];
  #rawLen = 0;
  #messageStarted = false;
  /**
   * An STX was read and its frame not yet checked. A message cut inside its first frame (a cable
   * pulled halfway through a one-frame message, the receiver timer) is kept as a partial too;
   * #messageStarted alone is not set on STX, or the repeated end frame of a message already
   * committed would be reported as a false partial.
   */
  #frameOpen = false;
  #msgFrames = 0;
  #msgDuplicates = 0;
  #msgRefused = 0;
  /** The last refusal of this message (reason and cause), for its partial. */
  #msgLastRefusal: { reason: string; cause: RefusalCause } | undefined;
  #ignoredInSession = 0;
  /** Reports the bytes ignored in neutral (NEUTRAL_IGNORED_FLUSH_MS). */
  #ignoredFlushTimer: TimerHandle | undefined;
  #messagesInSession = 0;
  /** The commit being awaited (a token, so a late settle after a timeout is ignored). */
  #commitToken = 0;
  /**
   * The handler kept the message and asked for NAK (a message the record layer rejects): if the
   * sender then gives up, its bytes are already stored, so no partial is reported for them.
   */
  #refusedButKept = false;
  /**
   * The end frame of the message being read was NAKed when its commit settled (refused by the
   * record layer and kept, or not committed): the sender is to send it again (same FN). A frame
   * numbered otherwise is new data, and the refused message ends there (#beginAfterRefusedEnd).
   */
  #endRefused = false;
  /** The rest of a message over maxMessageBytes is being read: its head is kept, its bytes are not. */
  #overflow = false;
  /** The end frame of a message over maxMessageBytes was refused: its retransmission is refused too. */
  #refusedEnd = false;
  /**
   * A commit the reply delay gave up on (its end frame NAKed) that may still land: if the analyzer
   * then abandons the message, its bytes are kept as a partial only if that commit fails.
   */
  #lateCommit: Promise<unknown> | undefined;
  /** The bytes of this message are past the bound (#capRaw): the rest is not kept. */
  #rawCapped = false;
  /**
   * Where in #raw the frame being read began (its STX), set at every STX of a receive session:
   * #beginAfterRefusedEnd keeps the message's bytes from there.
   */
  #frameRawAt = 0;
  /** close() is reading the input queued behind a commit (#readBehind): nothing is written. */
  #readingBehind = false;

  // ---- sender -----------------------------------------------------------------------------
  #outbox: OutgoingMessage[] = [];
  /** Messages handed to onMessage so far (orders sends against message boundaries). */
  #completed = 0;
  #frames: Buffer[] = [];
  #frameIndex = 0;
  #refusals = 0;

  constructor(options: LinkSessionOptions) {
    this.#cb = options;
    this.#opt = options.link;
    this.#clock = options.scheduler;
  }

  get state(): string {
    return this.#state;
  }

  // =========================================================================================
  // input
  // =========================================================================================

  push(bytes: Buffer): void {
    if (this.#state === 'closed' || bytes.length === 0) return;
    this.stats.bytesIn += bytes.length;
    if (this.#state === 'committing') {
      this.#enqueue(bytes);
      return;
    }
    this.#consume(bytes);
  }

  /**
   * Bytes that arrived while a message is being committed wait in order, bounded: past
   * E1381_PAUSE_BYTES the wire is paused (its flow control holds the analyzer); a wire that cannot
   * be paused is read on, kept up to E1381_MAX_QUEUED_BYTES, the rest counted and reported. Before,
   * every byte waited, without bound, while the store was slow.
   */
  #enqueue(bytes: Buffer): void {
    if (this.#dropping && this.#queuedBytes + bytes.length <= E1381_MAX_QUEUED_BYTES / 2) this.#endDropping();
    if (this.#dropping || this.#queuedBytes + bytes.length > E1381_MAX_QUEUED_BYTES) {
      // Once bytes are dropped, all are until the queue is read down to half the cap: one gap in
      // the stream, marked (GAP), never bytes kept from between dropped ones. Before, each read
      // that still fitted was kept: frames spliced across the holes (one patient's order, another's
      // result, passing the checksum one time in 256), and a warning per read.
      if (!this.#dropping) {
        this.#dropping = true;
        this.#queued.push(GAP);
        this.#event('overflow', `${this.#queuedBytes} bytes wait for the store, and this link cannot be paused (no flow control): what comes now is not kept until they are read`);
      }
      this.stats.overflowBytes += bytes.length;
      this.#dropped += bytes.length;
      return;
    }
    this.#queued.push(bytes);
    this.#queuedBytes += bytes.length;
    if (!this.#paused && this.#queuedBytes > E1381_PAUSE_BYTES && this.#cb.pause) {
      this.#paused = true;
      this.#cb.pause();
      this.#event('busy', `${this.#queuedBytes} bytes wait for the store: reading paused`);
    }
  }

  #endDropping(): void {
    if (!this.#dropping) return;
    this.#dropping = false;
    this.#event('overflow', `${this.#dropped} bytes were not kept (the link could not hold them); reading on`);
    this.#dropped = 0;
  }

  /**
   * The queue reached the point where bytes were dropped: what follows does not continue what came
   * before. A frame open there is cut, and the message being read ends there (kept as received,
   * 'overflow'); the next frame's number is taken as it comes, so nothing after the gap is joined
   * to the message before it, even when the frames lost were a multiple of eight.
   */
  #onGap(): void {
    if (this.#state !== 'receiving') return; // neutral: ignored up to the next ENQ; sending: its own timers
    this.#resetFrameParser();
    this.#partial('overflow');
    this.#resync = true;
  }

  /** A chunk taken from the queue, or the mark of a gap. */
  #consumeQueued(bytes: Buffer): void {
    if (bytes === GAP) this.#onGap();
    else this.#consume(bytes);
  }

  /** Put back the unread rest of a chunk, in front (a commit began in the middle of it). */
  #requeueFront(bytes: Buffer): void {
    this.#queued.unshift(bytes);
    this.#queuedBytes += bytes.length;
  }

  #dequeue(): Buffer {
    const bytes = this.#queued.shift() as Buffer;
    this.#queuedBytes -= bytes.length;
    return bytes;
  }

  /** Process `bytes`; stops early (queuing the rest) when a completed message starts a commit. */
  #consume(bytes: Buffer): void {
    let segStart = 0; // start of the slice not yet copied into #raw
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i] as number;
      switch (this.#state) {
        case 'neutral': {
          if (b !== ENQ) {
            // LIS1-A §6.2.5: everything up to the next ENQ is ignored, counted in one step (a line
            // at the wrong baud rate, or what waited behind a commit: up to E1381_MAX_QUEUED_BYTES).
            const enq = bytes.indexOf(ENQ, i);
            const stop = enq < 0 ? bytes.length : enq;
            this.#ignore(stop - i);
            i = stop - 1;
            segStart = stop;
            continue;
          }
          this.#onNeutralByte(b);
          // The ENQ that opens a session is the first raw byte of its first message.
          segStart = (this.#state as string) === 'receiving' ? i : i + 1;
          continue;
        }
        case 'establishing':
          this.#onEstablishingByte(b);
          segStart = i + 1;
          continue;
        case 'sending':
          this.#onSendingByte(b);
          segStart = i + 1;
          continue;
        case 'receiving': {
          this.#chunk = bytes;
          this.#segStart = segStart;
          const outcome = this.#onReceivingByte(b, bytes, i);
          segStart = this.#segStart; // a frame evaluated at this byte may have taken its bytes (#takeFrameBytes)
          switch (outcome) {
            case 'ok':
              continue;
            case 'consumed-run':
              i = this.#runEnd - 1; // a run of text bytes was taken in one step
              continue;
            case 'complete-here':
            case 'complete-before': {
              // The message's last byte is i (its LF) or i-1 (a frame without CR LF trailer).
              const end = outcome === 'complete-here' ? i + 1 : i;
              this.#appendRaw(bytes.subarray(segStart, end));
              if (end < bytes.length) this.#requeueFront(bytes.subarray(end));
              this.#completeMessage();
              return;
            }
            case 'session-end':
              this.#appendRaw(bytes.subarray(segStart, i + 1)); // the EOT belongs to a partial
              this.#endSession();
              segStart = i + 1;
              continue;
            case 're-establish':
              this.#appendRaw(bytes.subarray(segStart, i));
              this.#restartSession();
              segStart = i; // the new ENQ opens the new raw
              continue;
            default:
              outcome satisfies never;
          }
          continue;
        }
        case 'committing':
          // A handler settled synchronously in the middle of a buffer: keep the order.
          this.#requeueFront(bytes.subarray(i));
          return;
        case 'closed':
          return;
        default:
          this.#state satisfies never;
      }
    }
    this.#chunk = undefined;
    if (this.#state === 'receiving') {
      if (segStart < bytes.length) this.#appendRaw(bytes.subarray(segStart));
      this.#capRaw();
      this.#armReceiverTimer();
    } else if (this.#state === 'neutral' && this.#ignoredInSession > 0 && this.#ignoredFlushTimer === undefined) {
      this.#ignoredFlushTimer = this.#clock.schedule(NEUTRAL_IGNORED_FLUSH_MS, () => {
        this.#ignoredFlushTimer = undefined;
        if (this.#state === 'neutral') this.#flushIgnored();
      });
    }
  }

  /**
   * Copy the bytes of the frame just read (`frameEnd`: the index after its last byte in the chunk
   * being consumed) into #raw now rather than at the end of the chunk. A frame is checked at its
   * last byte, and its bytes are kept at the end of the chunk that brought them: a head cut off
   * at that frame (too large) lacked it — and all of a one-frame message that arrived in one read.
   * No chunk (the trailer timer): every byte received is in #raw already.
   */
  #takeFrameBytes(frameEnd: number | undefined): void {
    if (frameEnd === undefined || this.#chunk === undefined || frameEnd <= this.#segStart) return;
    this.#appendRaw(this.#chunk.subarray(this.#segStart, frameEnd));
    this.#segStart = frameEnd;
  }

  #appendRaw(slice: Buffer): void {
    if (slice.length === 0 || this.#rawCapped) return;
    this.#raw.push(slice);
    this.#rawLen += slice.length;
  }

  /**
   * The bytes kept of one message are bounded at twice maxMessageBytes, refused frames and framing
   * included. A frame that never ends (after STX, text with no ETX, ETB, EOT or ENQ: a device
   * streaming into the port) had its text bounded (maxReceiveFrameBytes) but every byte buffered
   * for its partial, and the receiver timer re-armed on each: memory grew as long as they came, and
   * the partial stored was as large as the stream. Past the bound the head is kept as too large
   * (as a message over maxMessageBytes is), the rest is read and not kept, and its end is refused.
   * Twice: a message the text check (#evaluateFrame) passes is never cut by this one, whatever its
   * framing, unless frames of a few characters each.
   */
  #capRaw(): void {
    if (this.#rawCapped || this.#rawLen <= 2 * this.#opt.maxMessageBytes) return;
    if (!(this.#messageStarted || this.#frameOpen)) {
      // Bytes after ENQ and before any STX (ignored, counted): nothing of them is kept unless a
      // frame follows, and then not this many.
      this.#raw = [];
      this.#rawLen = 0;
      return;
    }
    if (this.#overflow) {
      // Its head is kept already (over maxMessageBytes): the rest is not, this frame's bytes neither.
      this.#raw = [];
      this.#rawLen = 0;
      this.#rawCapped = true;
      return;
    }
    const lastRecord = this.#lastRecord;
    this.#event('overflow', `more than ${2 * this.#opt.maxMessageBytes} bytes received for one message`);
    this.#partial('too-large');
    this.#overflow = true;
    this.#rawCapped = true;
    this.#lastRecord = lastRecord;
  }

  #ignore(count = 1): void {
    this.stats.ignoredBytes += count;
    this.#ignoredInSession += count;
  }

  #flushIgnored(): void {
    this.#ignoredFlushTimer?.cancel();
    this.#ignoredFlushTimer = undefined;
    if (this.#ignoredInSession > 0) {
      this.#cb.onIgnoredBytes?.(this.#ignoredInSession);
      this.#ignoredInSession = 0;
    }
  }

  #event(kind: LinkEvent['kind'], detail?: string, cause?: RefusalCause): void {
    this.#cb.onEvent?.({ kind, ...(detail !== undefined ? { detail } : {}), ...(cause !== undefined ? { cause } : {}) });
  }

  #write(bytes: Buffer): void {
    if (this.#readingBehind) return; // the wire is closed (#readBehind)
    this.stats.bytesOut += bytes.length;
    this.#cb.write(bytes);
  }

  // ---- neutral --------------------------------------------------------------------------------

  #onNeutralByte(b: number): void {
    if (b !== ENQ) {
      // LIS1-A §6.2.5: in neutral, the receiver ignores all characters other than ENQ.
      this.#ignore();
      return;
    }
    if (this.#cb.isBusy?.() === true && !this.#readingBehind) {
      // LIS1-A §6.2.6: a receiver that is not ready answers ENQ with NAK.
      this.#write(BYTE.NAK);
      this.#event('busy');
      return;
    }
    this.#startReceiving();
  }

  #startReceiving(): void {
    // LIS1-A §6.2.5: ready receiver answers ACK; the transfer phase starts with FN 1 (§6.3.2.1).
    if (this.#holdoffKind === 'contention') this.#clearHoldoff(); // the instrument's ENQ came (§6.2.7.1)
    this.#flushIgnored(); // what came before this session, as its own count
    this.#state = 'receiving';
    this.#resetFrameParser();
    this.#lastFn = 0;
    this.#lastText = undefined;
    this.#resync = false;
    this.#messagesInSession = 0;
    this.#resetMessage();
    this.#write(BYTE.ACK);
    this.#event('session-start');
    this.#armReceiverTimer();
  }

  // ---- receiving --------------------------------------------------------------------------

  #runEnd = 0;
  /** The chunk #consume is reading, and the start of its slice not yet copied into #raw. */
  #chunk: Buffer | undefined;
  #segStart = 0;

  #onReceivingByte(b: number, bytes: Buffer, i: number): ByteOutcome {
    switch (this.#parse) {
      case 'between':
        if (b === STX) {
          this.#parse = 'fn';
          this.#frameOpen = true;
          this.#frameRawAt = this.#rawLen + (i - this.#segStart);
          return 'ok';
        }
        if (b === EOT) return 'session-end'; // LIS1-A §6.4: the sender ends the session
        if (b === ENQ) return 're-establish';
        // LIS1-A §6.5.1.1: bytes before STX are ignored (captures show ACK ACK and EF BF BD here),
        // the whole run up to the next STX, EOT or ENQ in one step. Byte by byte, the bytes read
        // behind a commit when the link closed (#readBehind) took about 20 s at their cap.
        {
          let end = i + 1;
          while (end < bytes.length) {
            const c = bytes[end] as number;
            if (c === STX || c === EOT || c === ENQ) break;
            end++;
          }
          this.#ignore(end - i);
          this.#runEnd = end;
          return 'consumed-run';
        }
      case 'fn':
        if (b === STX) return 'ok'; // repeated STX: still waiting for FN
        if (b === EOT) {
          // <STX><EOT>: the sender gave up before the frame number (a frame number is '0'..'7').
          this.#resetFrameParser();
          return 'session-end';
        }
        if (b === ENQ) {
          // <STX><ENQ>: the sender started over (LIS1-A §6.6: ENQ is never a frame number or text).
          this.#resetFrameParser();
          return 're-establish';
        }
        this.#fn = b;
        this.#parse = 'text';
        return 'ok';
      case 'text': {
        if (b === ETX || b === ETB) {
          this.#terminator = b;
          this.#parse = 'c1';
          return 'ok';
        }
        if (b === STX) {
          // A new frame started before this one ended: the unfinished frame is lost (the sender
          // gets no reply to it and retransmits after its timeout).
          this.#messageStarted = true;
          this.#refused('frame restarted before its end', 'garbled');
          this.#resetFrameParser();
          this.#parse = 'fn';
          this.#frameRawAt = this.#rawLen + (i - this.#segStart);
          return 'ok';
        }
        // LIS1-A §6.6: EOT and ENQ never appear in frame text, so one here means the frame was cut
        // (its ETX or ETB lost on the line, or the sender gave up): the sender aborted after its
        // reply timer (EOT, §6.5.2) or starts over (ENQ). Reading them as text left the gateway
        // deaf to every retry. The cut frame is kept in the partial (#frameOpen).
        if (b === EOT) {
          this.#resetFrameParser();
          return 'session-end';
        }
        if (b === ENQ) {
          this.#resetFrameParser();
          return 're-establish';
        }
        // Take the whole run of text bytes up to the next control character that ends it in one step.
        let end = i + 1;
        while (end < bytes.length) {
          const c = bytes[end] as number;
          if (c === ETX || c === ETB || c === STX || c === EOT || c === ENQ) break;
          end++;
        }
        this.#addText(bytes.subarray(i, end));
        this.#runEnd = end;
        return 'consumed-run';
      }
      case 'c1':
      case 'c2':
        // The checksum is two hex digits (LIS1-A §6.3.3): EOT or ENQ here means the frame was cut
        // after its ETX/ETB, as in the text.
        if (b === EOT || b === ENQ) {
          this.#resetFrameParser();
          return b === EOT ? 'session-end' : 're-establish';
        }
        if (this.#parse === 'c1') {
          this.#c1 = b;
          this.#parse = 'c2';
        } else {
          this.#c2 = b;
          this.#parse = 'trailer-cr';
        }
        return 'ok';
      case 'trailer-cr':
        if (b === CR) {
          this.#parse = 'trailer-lf';
          // Senders that end frames with CR only: evaluate after a short grace.
          this.#trailerTimer = this.#clock.schedule(this.#opt.timers.trailerGraceMs, () => this.#onTrailerGrace());
          return 'ok';
        }
        if (b === LF) return this.#evaluateFrame(i + 1) === 'complete' ? 'complete-here' : 'ok';
        // Trailer missing: evaluate the frame now and read this byte again as the next input.
        return this.#evaluateAndReplay(b, bytes, i);
      case 'trailer-lf':
        this.#trailerTimer?.cancel();
        this.#trailerTimer = undefined;
        if (b === LF) return this.#evaluateFrame(i + 1) === 'complete' ? 'complete-here' : 'ok';
        return this.#evaluateAndReplay(b, bytes, i);
      default:
        this.#parse satisfies never;
        return 'ok';
    }
  }

  #evaluateAndReplay(b: number, bytes: Buffer, i: number): ByteOutcome {
    if (this.#evaluateFrame(i) === 'complete') return 'complete-before'; // byte i is input after the reply
    return this.#onReceivingByte(b, bytes, i);
  }

  #onTrailerGrace(): void {
    this.#trailerTimer = undefined;
    if (this.#state !== 'receiving' || this.#parse !== 'trailer-lf') return;
    if (this.#evaluateFrame() === 'complete') this.#completeMessage();
  }

  #addText(slice: Buffer): void {
    if (this.#frameTooLong) return;
    if (this.#textLen + slice.length + 7 > this.#opt.maxReceiveFrameBytes) {
      this.#frameTooLong = true;
      this.#text = [];
      return;
    }
    this.#text.push(slice);
    this.#textLen += slice.length;
  }

  #resetFrameParser(): void {
    this.#trailerTimer?.cancel();
    this.#trailerTimer = undefined;
    this.#parse = 'between';
    this.#text = [];
    this.#textLen = 0;
    this.#terminator = 0;
    this.#c1 = -1;
    this.#c2 = -1;
    this.#frameTooLong = false;
  }

  #refused(reason: string, cause: RefusalCause): void {
    this.stats.framesRefused++;
    this.#msgRefused++;
    this.#msgLastRefusal = { reason, cause };
    this.#event('frame-refused', reason, cause);
  }

  /** A whole frame is in: check it and reply (or start the commit). LIS1-A §6.3.4, §6.5.1. */
  #evaluateFrame(frameEnd?: number): 'ok' | 'complete' {
    const fnByte = this.#fn;
    const terminator = this.#terminator;
    const tooLong = this.#frameTooLong;
    const text = this.#textLen === 0 ? Buffer.alloc(0) : this.#text.length === 1 ? (this.#text[0] as Buffer) : Buffer.concat(this.#text, this.#textLen);
    const c1 = hexDigit(this.#c1);
    const c2 = hexDigit(this.#c2);
    this.#resetFrameParser();
    this.#frameOpen = false; // checked: from here #messageStarted says whether its bytes are kept

    const nak = (reason: string, cause: RefusalCause): 'ok' => {
      if (cause === 'sequence' && this.#endRefused) this.#beginAfterRefusedEnd(frameEnd);
      this.#messageStarted = true; // refused bytes are kept if the message is never finished
      this.#refused(reason, cause);
      this.#write(BYTE.NAK); // LIS1-A §6.5.1: the sender retransmits the same frame
      return 'ok';
    };
    if (tooLong) return nak(`frame longer than ${this.#opt.maxReceiveFrameBytes} bytes`, 'size');
    if (c1 < 0 || c2 < 0) return nak('checksum is not two hex digits', 'garbled');
    // LIS1-A §6.3.3: compared as a number, so 'a7' and 'A7' are the same checksum.
    if (frameChecksum(fnByte, text, terminator) !== c1 * 16 + c2) return nak('checksum mismatch', 'garbled');
    // A NUL is no record text (no field, delimiter or escape is one), and it adds 0 to the sum: a
    // NUL a line glitch inserted (a noise pulse read as a start bit and eight zero bits, a break)
    // passes the checksum. LIS1-A §6.5.1.1 refuses a frame with character errors, so the sender
    // retransmits it clean. Before, it was ACKed with the NUL in the record (a value "5\0.4"),
    // and the analyzer never sent it again.
    if (text.includes(0)) return nak('NUL in frame text (a line glitch: a NUL adds nothing to the checksum)', 'garbled');
    const fn = fnByte - 0x30;
    if (fn < 0 || fn > 7) return nak('frame number is not 0..7', 'garbled');

    // After bytes were dropped (#onGap) the next frame's number is taken as it comes.
    const expected = this.#resync ? fn : (this.#lastFn + 1) % 8;
    if (fn !== expected) {
      const sameAsLast = this.#lastText !== undefined && fn === this.#lastFn;
      if (!sameAsLast) return nak(`frame number ${fn} out of sequence (expected ${expected})`, 'sequence');
      if (terminator === this.#lastTerminator && text.equals(this.#lastText as Buffer)) {
        if (this.#refusedEnd) return this.#refuseOverflowEnd();
        // LIS1-A §6.5.1.1: FN equal to the last accepted frame is a retransmission after a lost
        // reply. ACK it again and keep its text once.
        this.stats.duplicateFrames++;
        this.#msgDuplicates++;
        this.#event('duplicate-frame', `FN ${fn}`);
        this.#write(BYTE.ACK);
        return 'ok';
      }
      // Same FN, different text (Sysmex XN QC log, protocols.md §1.7): a retransmission would
      // repeat the frame byte for byte, so this is new data under a repeated number. Keep it.
      this.stats.fnRepeats++;
      this.#event('fn-repeat', `FN ${fn}`);
    }

    this.#resync = false;
    this.#refusedEnd = false;
    this.#lastFn = fn;
    this.#lastText = text;
    this.#lastTerminator = terminator;
    this.#lastRecordBefore = this.#lastRecord;
    this.#lastRecord = nextRecordHead(this.#lastRecord, text, terminator === ETX);
    if (this.#overflow) {
      // The rest of a message over maxMessageBytes: its head is kept already; these bytes are not
      // (memory stays bounded). The link stays in step, and the end frame is refused.
      this.#raw = [];
      this.#rawLen = 0;
      // LIS2-A2 §5.5: the message ends at its L record, read from where that record begins
      // (#lastRecord goes on over these frames). Before, the end frame's text was read alone: an
      // analyzer that cuts frames every 240 characters (cobas e 411) sent `…L|1` ETB, `|N` ETX,
      // and `|N` was ACKed as an intermediate frame — the analyzer took the refused message for
      // delivered, and the link read its next message as more of this one and refused it.
      if (terminator === ETX && this.#isMessageComplete()) return this.#refuseOverflowEnd();
      this.#write(BYTE.ACK);
      return 'ok';
    }
    this.#messageStarted = true;
    this.#refusedButKept = false;
    this.#endRefused = false;
    this.stats.framesAccepted++;
    this.#msgFrames++;
    this.#message.push(text);
    this.#messageLen += text.length;

    if (this.#messageLen > this.#opt.maxMessageBytes) {
      // Keep the head for an operator, drop the rest of the message, keep the link in step, and
      // refuse the message at its end frame: the analyzer must not hear ACK for a message whose
      // results the gateway will not take (it shows the transmission as failed).
      const ends = terminator === ETX && this.#isMessageComplete();
      const lastRecord = this.#lastRecord;
      this.#takeFrameBytes(frameEnd);
      this.#partial('too-large');
      this.#overflow = true;
      this.#lastRecord = lastRecord; // the rest is read on from this frame
      if (ends) return this.#refuseOverflowEnd();
      this.#write(BYTE.ACK);
      return 'ok';
    }
    if (terminator === ETX && this.#isMessageComplete()) return 'complete';
    // LIS1-A §6.3.4: intermediate frame (or end frame of a record in a longer message) accepted.
    this.#write(BYTE.ACK);
    return 'ok';
  }

  /**
   * After a message whose end frame was NAKed when its commit settled (the record layer refused it
   * and it is kept, or the store did not take it) the sender went on with a frame of another number
   * than that end frame's: not a retransmission of it but new data (firmware that ignores NAK and
   * goes on with its next message). The refused message ends before this frame: kept already, or
   * else kept now as received ('not-resent', once: not if its late commit lands), and what comes
   * from this frame on is a message of its own, kept as a partial if it never completes. Before,
   * those frames were refused one by one as part of the refused message, kept nowhere when the
   * sender gave up; and after a message the store did not take, the frame that came round to the
   * number the link waited for was taken into it, its end frame alone forgotten: one patient's
   * header and order with the next one's results, ACKed. Receive state only: the sender's state
   * (#outbox, #frames) is not touched, and a new session (#startReceiving) resets all of it.
   */
  #beginAfterRefusedEnd(frameEnd: number | undefined): void {
    this.#takeFrameBytes(frameEnd);
    const all = Buffer.concat(this.#raw, this.#rawLen);
    const at = Math.min(this.#frameRawAt, all.length);
    if (this.#refusedButKept) {
      this.#resetMessage();
    } else {
      this.#raw = [all.subarray(0, at)];
      this.#rawLen = at;
      this.#partial('not-resent');
    }
    const from = all.subarray(at);
    this.#raw = [from];
    this.#rawLen = from.length;
  }

  #isMessageComplete(): boolean {
    if (this.#opt.messageEnd === 'end-frame') return true;
    // LIS2-A2 §5.5: the message ends with the L record. Only its last record needs looking at,
    // read from where that record begins: the end frame of a record split with ETB (LIS1-A
    // §6.3.1) begins in the middle of it. Before, the end frame's text was read alone first, and
    // the tail of a long R record cut right before "L|" ("mmol/" | "L||N||F") read as an L record:
    // half a message was stored as a whole one and the rest refused.
    const { head } = this.#lastRecord;
    return isTerminatorRecord(head, 0, head.length);
  }

  /** NAK the end frame of a message over maxMessageBytes (and its retransmissions). */
  #refuseOverflowEnd(): 'ok' {
    this.#resetMessage();
    this.#refusedEnd = true;
    this.#refused(`message larger than ${this.#opt.maxMessageBytes} bytes (its head is kept)`, 'size');
    this.#write(BYTE.NAK);
    return 'ok';
  }

  #resetMessage(): void {
    this.#refusedButKept = false;
    this.#endRefused = false;
    this.#overflow = false;
    this.#rawCapped = false;
    this.#lateCommit = undefined;
    this.#message = [];
    this.#lastRecord = NO_RECORD;
    this.#lastRecordBefore = NO_RECORD;
    this.#messageLen = 0;
    this.#raw = [];
    this.#rawLen = 0;
    this.#messageStarted = false;
    this.#frameOpen = false;
    this.#msgFrames = 0;
    this.#msgDuplicates = 0;
    this.#msgRefused = 0;
    this.#msgLastRefusal = undefined;
  }

  #partial(reason: PartialReason): void {
    if (this.#refusedButKept) {
      // Everything of this message up to its refused end is stored already.
      this.#resetMessage();
      return;
    }
    // A frame still open (cut before its end) counts: its bytes were received (README "Nothing
    // received is dropped"). A session without any frame (ENQ then EOT, a keep-alive) has none.
    if ((this.#messageStarted || this.#frameOpen) && this.#rawLen > 0) {
      this.stats.partials++;
      const raw = Buffer.concat(this.#raw, this.#rawLen);
      const late = this.#lateCommit;
      const last = this.#msgLastRefusal;
      const refusals: PartialRefusals | undefined = last && this.#msgRefused > 0 ? { refusedFrames: this.#msgRefused, lastRefusal: last.reason, lastCause: last.cause } : undefined;
      this.#resetMessage();
      const hand = (): void => (refusals ? this.#cb.onPartial(raw, reason, refusals) : this.#cb.onPartial(raw, reason));
      // The whole message may still be stored by the commit the reply delay gave up on: kept
      // twice otherwise (accepted, and again as an incomplete message with a false alert).
      if (late) late.then(() => undefined, hand);
      else hand();
    } else {
      this.#resetMessage();
    }
  }

  /** A message is whole: hand it over, and reply to its last frame when the handler settles. */
  #completeMessage(): void {
    if (this.#readingBehind) {
      // Read behind a closed link (#readBehind): it can never be acknowledged; kept raw.
      this.#partial('closed');
      return;
    }
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#state = 'committing';
    const raw = Buffer.concat(this.#raw, this.#rawLen);
    const text = Buffer.concat(this.#message, this.#messageLen).toString('latin1');
    const lastFrameLen = (this.#message[this.#message.length - 1] as Buffer).length;
    const meta: MessageMeta = {
      frames: this.#msgFrames,
      duplicateFrames: this.#msgDuplicates,
      refusedFrames: this.#msgRefused,
      completedAt: this.#clock.now(),
    };
    const token = ++this.#commitToken;
    this.#completed++;
    let settled: Promise<MessageReply | void>;
    // LIS1-A §6.5.2: the receiver may delay its reply up to 15 s; a slower commit is refused.
    this.#timer = this.#clock.schedule(this.#opt.timers.receiverReplyDelayMs, () => {
      if (token !== this.#commitToken || this.#state !== 'committing') return;
      this.#event('timeout', 'commit slower than the receiver reply delay');
      // Before the settle: it reads what waited behind the commit, which may end this message
      // (EOT, a frame numbered on): kept then only if this commit fails.
      this.#lateCommit = settled;
      this.#settleCommit(token, 'nak', lastFrameLen, false);
    });
    try {
      settled = this.#cb.onMessage(text, raw, meta);
    } catch (err) {
      settled = Promise.reject(err);
    }
    settled.then(
      (reply) => this.#settleCommit(token, reply === 'nak' ? 'nak' : 'ack', lastFrameLen, reply === 'nak'),
      () => this.#settleCommit(token, 'nak', lastFrameLen, false),
    );
  }

  #settleCommit(token: number, reply: MessageReply, lastFrameLen: number, kept: boolean): void {
    if (token !== this.#commitToken || this.#state !== 'committing') return;
    this.#commitToken++;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#state = 'receiving';
    if (reply === 'ack') {
      this.stats.messages++;
      this.#messagesInSession++;
      this.#resetMessage();
      if (this.#holdoffKind === 'interrupt') this.#clearHoldoff(); // §6.3.5: "or until the receiver has sent a message"
      if (this.#opt.receiverInterrupt && this.#outbox.some((item) => item.queuedAfter < this.#completed)) {
        // LIS1-A §6.3.5: EOT in place of ACK accepts the end frame and asks the sender to stop.
        // Only at a message boundary, so an honoured interrupt never cuts a message in two, and
        // only for a send queued before this message completed: an answer computed from this
        // very message (a host query) waits for the analyzer's own EOT first.
        this.#write(BYTE.EOT);
        this.#event('interrupt-sent');
      } else {
        this.#write(BYTE.ACK);
      }
    } else {
      // Not accepted: forget the completing frame, so its retransmission (same FN) is taken as
      // new. The raw bytes keep everything received, including this attempt.
      this.#message.pop();
      this.#lastRecord = this.#lastRecordBefore;
      this.#messageLen -= lastFrameLen;
      this.#msgFrames--;
      this.stats.framesAccepted--;
      this.#lastFn = (this.#lastFn + 7) % 8;
      this.#lastText = undefined;
      this.#refusedButKept = kept;
      this.#endRefused = true;
      this.#refused(kept ? 'message rejected (kept)' : 'message not committed', 'message');
      this.#write(BYTE.NAK);
    }
    this.#armReceiverTimer();
    this.#drainQueued();
  }

  #drainQueued(): void {
    while (this.#queued.length > 0 && this.#state !== 'committing' && this.#state !== 'closed') {
      this.#consumeQueued(this.#dequeue());
    }
    if (this.#queued.length === 0) this.#endDropping();
    if (this.#paused && this.#state !== 'closed' && this.#queuedBytes < E1381_PAUSE_BYTES / 2) {
      this.#paused = false;
      this.#cb.resume?.();
    }
  }

  #armReceiverTimer(): void {
    if (this.#state !== 'receiving') return;
    // LIS1-A §6.5.2: the receiver waits 30 s for a frame or EOT. Re-armed on every byte: a 26 KB
    // frame at 9600 baud takes 27 s to arrive.
    this.#timer?.cancel();
    this.#timer = this.#clock.schedule(this.#opt.timers.receiverFrameMs, () => {
      if (this.#state !== 'receiving') return;
      this.#timer = undefined;
      this.#event('timeout', 'receiver waited for a frame or EOT');
      this.#resetFrameParser();
      this.#partial('receiver-timeout');
      this.#toNeutral();
    });
  }

  #endSession(): void {
    this.#resetFrameParser();
    this.#partial('eot-before-end');
    this.#toNeutral();
  }

  #restartSession(): void {
    // ENQ while receiving: the sender believes the line is neutral (it timed out and our view
    // is stale). Whatever was unfinished is kept as a partial; the new session starts over.
    this.#resetFrameParser();
    this.#partial('re-establishment');
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#state = 'neutral';
    this.#flushIgnored();
    this.#event('session-end', 're-establishment');
    this.#onNeutralByte(ENQ);
  }

  #toNeutral(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    const wasReceiving = this.#state === 'receiving';
    this.#state = 'neutral';
    this.#flushIgnored();
    if (wasReceiving) this.#event('session-end');
    // The delay after a message it refused ends too once the instrument has sent one of its own:
    // it is ready again. Before, a host query right after a refused order download was answered
    // only once the delay (10 s) ran out, near the cobas e 411's 15 s cancel
    // (test/integration/review-s22-astmb-answer-after-refused-download.test.ts). The delay after a
    // NAK to ENQ stays (§6.2.6: at least 10 s).
    if (wasReceiving && this.#messagesInSession > 0 && (this.#holdoffKind === 'interrupt' || this.#holdoffKind === 'aborted')) this.#clearHoldoff();
    this.#maybeStartSend();
  }

  // =========================================================================================
  // sender
  // =========================================================================================

  send(records: readonly string[], options: SendOptions = {}): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(new GatewayError('GW_ASTM_LINK', 'the link is closed'));
    if (records.length === 0) return Promise.resolve();
    if (options.signal?.aborted) return Promise.reject(withdrawn());
    return new Promise<void>((resolve, reject) => {
      const item = { records, resolve, reject, attempts: 0, queuedAfter: this.#completed, started: false };
      this.#outbox.push(item);
      options.signal?.addEventListener('abort', () => this.#withdraw(item), { once: true });
      this.#maybeStartSend();
    });
  }

  /**
   * Take a queued message back while no frame of it went out: nothing of it reached the receiver.
   * One whose frames started is left to finish or fail — the receiver may have accepted frames
   * of it (LIS1-A §6.3.5: EOT accepts the frame it answers), so sending it elsewhere could
   * deliver it twice.
   */
  #withdraw(item: OutgoingMessage): void {
    const at = this.#outbox.indexOf(item);
    if (at < 0 || item.started || this.#state === 'closed') return;
    if (at === 0 && this.#state === 'establishing') {
      // Its ENQ waits for a reply: terminate as the ENQ time-out does (LIS1-A §6.5.2).
      this.#timer?.cancel();
      this.#timer = undefined;
      this.#write(BYTE.EOT);
      this.#state = 'neutral';
    }
    this.#outbox.splice(at, 1);
    item.reject(withdrawn());
    this.#maybeStartSend();
  }

  #maybeStartSend(): void {
    if (this.#readingBehind || this.#state !== 'neutral' || this.#holdoff !== undefined || this.#outbox.length === 0) return;
    // LIS1-A §6.2: establishment — ENQ, then wait for ACK, NAK or ENQ.
    this.#state = 'establishing';
    this.#write(BYTE.ENQ);
    this.#timer = this.#clock.schedule(this.#opt.timers.establishmentMs, () => {
      if (this.#state !== 'establishing') return;
      this.#timer = undefined;
      // LIS1-A §6.5.2: no reply to ENQ within 15 s → termination.
      this.#event('timeout', 'no reply to ENQ');
      this.#write(BYTE.EOT);
      this.#state = 'neutral';
      this.#failedAttempt('no reply to ENQ');
    });
  }

  #onEstablishingByte(b: number): void {
    if (b === ACK) {
      this.#timer?.cancel();
      this.#timer = undefined;
      this.#beginTransfer();
      return;
    }
    if (b === NAK) {
      // LIS1-A §6.2.6: receiver busy; wait at least 10 s before the next ENQ.
      this.#timer?.cancel();
      this.#timer = undefined;
      this.#state = 'neutral';
      this.#event('busy', 'ENQ answered NAK');
      this.#failedAttempt('receiver busy (NAK to ENQ)');
      return;
    }
    if (b === ENQ) {
      // LIS1-A §6.2.7.1: contention. The instrument has priority: the computer stops trying to
      // transmit and prepares to receive; it answers the instrument's NEXT ENQ (which comes ≥1 s
      // later). If none comes within 20 s the line is neutral again (§6.5.2.2).
      this.#timer?.cancel();
      this.#timer = undefined;
      this.#state = 'neutral';
      this.#event('contention');
      this.#setHoldoff('contention', this.#opt.timers.contentionMs);
      return;
    }
    // LIS1-A §6.2.4: the sender ignores all responses other than ACK, NAK or ENQ.
    this.#ignore();
  }

  #failedAttempt(reason: string): void {
    const head = this.#outbox[0];
    if (head) {
      head.attempts++;
      if (head.attempts >= this.#opt.maxEnqAttempts) {
        this.#outbox.shift();
        this.stats.sendFailures++;
        this.#event('send-aborted', reason);
        head.reject(new GatewayError('GW_ASTM_LINK', `send failed after ${head.attempts} attempts: ${reason}`));
      }
    }
    this.#setHoldoff('busy', this.#opt.timers.busyRetryMs);
  }

  #setHoldoff(kind: 'busy' | 'aborted' | 'contention' | 'interrupt', ms: number): void {
    this.#holdoff?.cancel();
    this.#holdoffKind = kind;
    this.#holdoff = this.#clock.schedule(ms, () => {
      this.#holdoff = undefined;
      this.#holdoffKind = undefined;
      this.#maybeStartSend();
    });
  }

  #clearHoldoff(): void {
    this.#holdoff?.cancel();
    this.#holdoff = undefined;
    this.#holdoffKind = undefined;
  }

  #beginTransfer(): void {
    const head = this.#outbox[0];
    if (!head) {
      this.#write(BYTE.EOT);
      this.#state = 'neutral';
      return;
    }
    this.#state = 'sending';
    head.started = true;
    // LIS1-A §6.3.1.1: each record is a message and begins in a new frame; FN starts at 1 after
    // ENQ and continues modulo 8 across the session (§6.3.2.1).
    this.#frames = [];
    // Each record in the analyzer's charset, never with a control character in it (LIS1-A §6.6),
    // then its CR (LIS2-A2 §5.4.1).
    const records = head.records.map((r) => Buffer.concat([encodeRecord(r, this.#opt.charset), RECORD_END]));
    // 'message-per-frame' peers want the whole message as one E1381 message (ETB only at the size limit).
    const units = this.#opt.frameLayout === 'message-per-frame' ? [Buffer.concat(records)] : records;
    let fn = 1;
    for (const unit of units) {
      const frames = frameRecord(unit, fn, this.#opt.maxFrameText);
      for (const f of frames) this.#frames.push(f);
      fn = (fn + frames.length) % 8;
    }
    this.#frameIndex = 0;
    this.#sendCurrentFrame(true);
  }

  #sendCurrentFrame(fresh: boolean): void {
    if (fresh) this.#refusals = 0;
    this.#write(this.#frames[this.#frameIndex] as Buffer);
    this.#timer?.cancel();
    this.#timer = this.#clock.schedule(this.#opt.timers.senderFrameReplyMs, () => {
      if (this.#state !== 'sending') return;
      this.#timer = undefined;
      // LIS1-A §6.5.2: no reply to a frame within 15 s → abort with EOT.
      this.#event('timeout', 'no reply to frame');
      this.#abortSend('no reply to frame within the sender timer');
    });
  }

  #onSendingByte(b: number): void {
    if (b === ACK || (b === EOT && !this.#opt.honourInterrupt)) {
      this.#frameAccepted();
      return;
    }
    if (b === EOT) {
      // LIS1-A §6.3.5: EOT accepts the frame and asks us to stop.
      this.#event('interrupt-received');
      const last = this.#frameIndex === this.#frames.length - 1;
      if (last) {
        // The message is delivered (EOT accepts the end frame), but the receiver asked for the
        // line: no establishment for 15 s or until it has sent a message (§6.3.5). Without the
        // hold-off the next queued send's ENQ met the analyzer's own ENQ (contention, unanswered).
        this.#setHoldoff('interrupt', this.#opt.timers.interruptHoldoffMs);
        this.#frameAccepted();
        return;
      }
      this.#timer?.cancel();
      this.#timer = undefined;
      this.#write(BYTE.EOT);
      this.#state = 'neutral';
      // The message is repeated whole later; wait 15 s or until the receiver sent a message.
      this.#setHoldoff('interrupt', this.#opt.timers.interruptHoldoffMs);
      return;
    }
    // LIS1-A §6.5.1.2: NAK or any other character counts as a refusal; six refusals abort.
    this.#refusals++;
    if (this.#refusals >= this.#opt.maxRetransmissions) {
      this.#abortSend(`frame refused ${this.#refusals} times`);
      return;
    }
    this.#sendCurrentFrame(false); // LIS1-A §6.5.1: retransmit the same frame, same FN
  }

  #frameAccepted(): void {
    this.#frameIndex++;
    if (this.#frameIndex < this.#frames.length) {
      this.#sendCurrentFrame(true);
      return;
    }
    this.#timer?.cancel();
    this.#timer = undefined;
    // LIS1-A §6.4: termination.
    this.#write(BYTE.EOT);
    this.#state = 'neutral';
    const head = this.#outbox.shift();
    this.stats.sent++;
    this.#event('sent', `${this.#frames.length} frames`);
    this.#frames = [];
    head?.resolve();
    this.#maybeStartSend();
  }

  #abortSend(reason: string): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#write(BYTE.EOT); // LIS1-A §6.5.1.2 / §6.5.2: abort by proceeding to termination
    this.#state = 'neutral';
    this.#frames = [];
    const head = this.#outbox.shift();
    this.stats.sendFailures++;
    this.#event('send-aborted', reason);
    head?.reject(new GatewayError('GW_ASTM_LINK', `send aborted: ${reason}`));
    // Do not ENQ again right away: give the receiver the busy delay (ended by a message of its own).
    this.#setHoldoff('aborted', this.#opt.timers.busyRetryMs);
  }

  // =========================================================================================
  // close
  // =========================================================================================

  /**
   * The link closed while a message was being committed: the bytes that arrived behind it (an
   * analyzer that does not wait for the answers, or a converter that buffers, then closes the
   * connection) are read as they would have been, nothing written back, and what of them a message
   * was begun in is kept as a partial (README "Nothing received is dropped"). A message complete
   * among them is kept raw too: it can never be acknowledged, so the analyzer sends it again.
   * Before, close() forgot them: the start of the next message vanished.
   */
  #readBehind(reason: PartialReason): void {
    this.#readingBehind = true;
    this.#state = 'receiving';
    this.#resetMessage(); // the message being committed has its bytes already
    this.#resetFrameParser();
    while (this.#queued.length > 0) this.#consumeQueued(this.#dequeue());
    this.#chunk = undefined;
    if (this.#state === 'receiving') {
      this.#resetFrameParser();
      this.#partial(reason);
    }
    this.#readingBehind = false;
  }

  close(reason: PartialReason = 'closed'): void {
    if (this.#state === 'closed') return;
    const wasCommitting = this.#state === 'committing';
    if (wasCommitting && this.#queued.length > 0) this.#readBehind(reason);
    this.#state = 'closed';
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#clearHoldoff();
    this.#trailerTimer?.cancel();
    this.#commitToken++;
    if (!wasCommitting) this.#partial(reason);
    this.#queued = [];
    this.#queuedBytes = 0;
    this.#endDropping();
    this.#flushIgnored();
    const err = new GatewayError('GW_ASTM_LINK', `the link closed (${reason})`);
    for (const item of this.#outbox.splice(0)) {
      this.stats.sendFailures++;
      item.reject(err);
    }
  }
}

/** A message queued by `send`. `started`: a frame of it went out (it can no longer be taken back). */
interface OutgoingMessage {
  records: readonly string[];
  resolve: () => void;
  reject: (e: Error) => void;
  attempts: number;
  queuedAfter: number;
  started: boolean;
}

/** The error of a send taken back before its first frame (`SendOptions.signal`). */
function withdrawn(): GatewayError {
  return new GatewayError('GW_ASTM_LINK', 'send taken back before its first frame', { details: { withdrawn: true } });
}

/** The head of the last record read (its first two characters), and whether the next text begins a record. */
interface RecordHead {
  readonly head: string;
  readonly atStart: boolean;
}

/** Before the first frame of a message: a record begins. */
const NO_RECORD: RecordHead = { head: '', atStart: true };

function isSeparator(c: number | undefined): boolean {
  return c === CR || c === LF;
}

/**
 * The head of the last record once one more frame text is read, from the head before it (enough
 * to tell an L record, LIS2-A2 §5.5: `L|…` or a bare `L`): a record begins after CR or LF, and at
 * the start of a frame that follows an end frame (LIS1-A §6.3.1.1), also for senders that leave
 * out the record's CR; a record continued from the frame before (split with ETB) completes its two
 * characters. Only the frame's last record is looked at, and nothing is copied but those two bytes.
 */
function nextRecordHead(record: RecordHead, text: Buffer, endFrame: boolean): RecordHead {
  // An empty frame leaves the last record as it was (an empty end frame still ends it).
  if (text.length === 0) return endFrame && !record.atStart ? { head: record.head, atStart: true } : record;
  let end = text.length;
  while (end > 0 && isSeparator(text[end - 1])) end--;
  let head = record.head;
  if (end > 0) {
    let start = end;
    while (start > 0 && !isSeparator(text[start - 1])) start--;
    if (start > 0 || record.atStart) head = text.subarray(start, Math.min(start + 2, end)).toString('latin1');
    else if (head.length < 2) head += text.subarray(0, Math.min(2 - head.length, end)).toString('latin1');
  }
  return { head, atStart: end < text.length || endFrame };
}
