import { GatewayError } from '../../errors.ts';
import { CR, LF } from './control-chars.ts';
import type { LinkOptions } from './link-options.ts';
import { type AstmLinkSession, emptyStats, isTerminatorRecord, type LinkSessionOptions, type LinkStats, type PartialReason } from './link-session.ts';
import { encodeRecord } from './outgoing-text.ts';
import type { Scheduler, TimerHandle } from './scheduler.ts';

/** A message the store did not take is committed again after this long (ms). */
const RECOMMIT_MS = 1_000;
/**
 * Bytes waiting behind a message being committed, past which the wire is paused (its flow control
 * then holds the analyzer); it is read again once the backlog is under half of this.
 */
export const RECORDS_ONLY_PAUSE_BYTES = 1024 * 1024;
/**
 * A wire that cannot be paused (a serial line without flow control) keeps being read while the
 * store refuses; past this many waiting bytes, what arrives is not kept (counted in
 * `overflowBytes`, and reported as an 'overflow' event) rather than filling the gateway's memory.
 */
export const RECORDS_ONLY_MAX_QUEUED_BYTES = 256 * 1024 * 1024;

/** An H record begins (LIS2-A2 §6.2: `H` and then the field delimiter, never a letter or digit). */
function isHeaderStart(head: string): boolean {
  return head.length === 2 && head[0] === 'H' && !/[A-Za-z0-9]/.test(head[1]!);
}

/**
 * Whether bytes a records-only link read cannot be E1394 records sent as they were meant: the
 * message does not begin with an H record (LIS2-A2 §6.2), or it holds a control character no record
 * text carries (LIS1-A §6.6; CR and LF separate records, TAB is tolerated). What a line at the wrong
 * baud rate, parity or data bits delivers, or an analyzer speaking E1381 (ENQ, STX) to a link set
 * to records-only. This mode has no checksum to refuse such bytes by: without this, they were kept
 * as "incomplete message (receiver-timeout)" with nothing pointing at the line's settings.
 */
export function looksMisread(raw: Buffer): boolean {
  let i = 0;
  // Separators, blanks and a UTF-8 BOM before the H record: the record layer reads past them too.
  if (raw[0] === 0xef && raw[1] === 0xbb && raw[2] === 0xbf) i = 3;
  while (i < raw.length && (raw[i] === CR || raw[i] === LF || raw[i] === 0x20 || raw[i] === 0x09)) i++;
  if (i < raw.length && !isHeaderStart(raw.toString('latin1', i, Math.min(raw.length, i + 2)))) {
    // A lone 'H' at the very end (a message cut after one byte) is not told either way.
    if (!(raw.length - i === 1 && raw[i] === 0x48)) return true;
  }
  for (let j = i; j < raw.length; j++) {
    const b = raw[j] as number;
    if ((b < 0x20 && b !== CR && b !== LF && b !== 0x09) || b === 0x7f) return true;
  }
  return false;
}

/**
 * The link for instruments that speak E1394 records with NO low-level protocol (protocols.md
 * §1.7, §4: some TCP analyzers and serial-to-TCP adapters): records separated by CR and/or LF, a
 * message ends with its L record (LIS2-A2 §5.5). Nothing is acknowledged on the wire — there is
 * no ACK in this mode — but messages are still committed one at a time, in order.
 */
export class RecordsOnlySession implements AstmLinkSession {
  readonly stats: LinkStats = emptyStats();

  readonly #cb: LinkSessionOptions;
  readonly #opt: LinkOptions;
  readonly #clock: Scheduler;
  #state: 'idle' | 'message' | 'committing' | 'closed' = 'idle';
  #queued: Buffer[] = [];
  /** Bytes in #queued. */
  #queuedBytes = 0;
  /** The wire was paused for the backlog (see RECORDS_ONLY_PAUSE_BYTES). */
  #paused = false;
  #raw: Buffer[] = [];
  #rawLen = 0;
  /**
   * The first characters (at most two) of the record being read, all that tells an L record or an
   * H record, and its length so far: in a message, and in the rest of an oversized one (#skipping).
   */
  #recordHead = '';
  #recordLen = 0;
  #timer: TimerHandle | undefined;
  /** close() came while a message was being committed: finished once the queue is read (#done). */
  #closing: PartialReason | undefined;
  /**
   * The rest of a message over maxMessageBytes is being read (its head is kept): skipped up to
   * its L record, or up to the H of a next message when it never ends (told by #recordHead).
   */
  #skipping = false;

  constructor(options: LinkSessionOptions) {
    this.#cb = options;
    this.#opt = options.link;
    this.#clock = options.scheduler;
  }

  get state(): string {
    return this.#state;
  }

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
   * Bytes that arrived while a message is being committed wait in order. The wire is paused once
   * the backlog passes RECORDS_ONLY_PAUSE_BYTES (a store refusing for hours must not fill the
   * memory); a wire that cannot be paused is read on, kept up to RECORDS_ONLY_MAX_QUEUED_BYTES.
   */
  #enqueue(bytes: Buffer): void {
    if (this.#queuedBytes + bytes.length > RECORDS_ONLY_MAX_QUEUED_BYTES) {
      this.stats.overflowBytes += bytes.length;
      this.#cb.onEvent?.({ kind: 'overflow', detail: `${bytes.length} bytes not kept: ${this.#queuedBytes} bytes already wait for the store, and this link cannot be paused (no flow control)` });
      return;
    }
    this.#queued.push(bytes);
    this.#queuedBytes += bytes.length;
    if (!this.#paused && this.#queuedBytes > RECORDS_ONLY_PAUSE_BYTES && this.#cb.pause) {
      this.#paused = true;
      this.#cb.pause();
      this.#cb.onEvent?.({ kind: 'busy', detail: `${this.#queuedBytes} bytes wait for the store: reading paused` });
    }
  }

  #dequeue(): Buffer {
    const bytes = this.#queued.shift() as Buffer;
    this.#queuedBytes -= bytes.length;
    return bytes;
  }

  #consume(bytes: Buffer): void {
    let segStart = 0;
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i] as number;
      if (this.#skipping) {
        if (b === CR || b === LF) {
          // LIS2-A2 §5.5: the oversized message ends with its L record; what follows is new.
          if (isTerminatorRecord(this.#recordHead, 0, this.#recordHead.length)) this.#stopSkipping();
          this.#recordHead = '';
          segStart = i + 1;
          continue;
        }
        if (this.#recordHead.length < 2) {
          this.#recordHead += String.fromCharCode(b);
          if (!isHeaderStart(this.#recordHead)) continue;
          // An H record: the oversized message ended without its L, and this is the next
          // message. It is read from its H (which came at the end of the last read when i is 0).
          this.#stopSkipping();
          if (i > 0) {
            i -= 2; // the loop reads the H again, as the first byte of a message
            continue;
          }
          this.#state = 'message';
          this.#raw.push(Buffer.from('H', 'latin1'));
          this.#rawLen += 1;
          this.#recordHead = 'H';
          this.#recordLen = 1;
          segStart = 0;
        } else {
          // The rest of the record up to its separator, in one step.
          while (i + 1 < bytes.length && bytes[i + 1] !== CR && bytes[i + 1] !== LF) i++;
          continue;
        }
      }
      if (this.#state === 'idle') {
        // Separators between messages belong to no message.
        if (b === CR || b === LF) {
          segStart = i + 1;
          continue;
        }
        this.#state = 'message';
        segStart = i;
      }
      if (b !== CR && b !== LF) {
        // Take the run up to the next separator in one step.
        let end = i + 1;
        while (end < bytes.length && bytes[end] !== CR && bytes[end] !== LF) end++;
        if (this.#recordHead.length < 2) this.#recordHead += bytes.toString('latin1', i, Math.min(end, i + 2 - this.#recordHead.length));
        this.#recordLen += end - i;
        i = end - 1;
        continue;
      }
      // End of a record (an empty one between CR and LF ends nothing).
      if (this.#recordLen === 0) continue;
      const head = this.#recordHead;
      this.#recordHead = '';
      this.#recordLen = 0;
      if (isTerminatorRecord(head, 0, head.length)) {
        this.#raw.push(bytes.subarray(segStart, i + 1));
        this.#rawLen += i + 1 - segStart;
        const rest = bytes.subarray(i + 1);
        if (rest.length > 0) {
          this.#queued.unshift(rest);
          this.#queuedBytes += rest.length;
        }
        this.#complete();
        return;
      }
    }
    if (this.#state === 'message' && segStart < bytes.length) {
      this.#raw.push(bytes.subarray(segStart));
      this.#rawLen += bytes.length - segStart;
    }
    if (this.#state === 'message') {
      if (this.#rawLen > this.#opt.maxMessageBytes) {
        // Its head is kept; the rest is read up to its end and not kept, so that it is neither
        // taken for a message of its own nor swallows the next one. Before, the rest was read as
        // a new message: stored as a second rejected message ("the first record must be H"), and
        // when a read ended inside the L record (`…L|1` | `|N`) the next message went into it too
        // and its results were lost (this mode has no NAK: the analyzer never sends them again).
        const head = this.#recordHead;
        this.#partial('too-large');
        this.#skipping = true;
        this.#recordHead = head; // the record being read goes on in the next read
        this.#armTimer();
        return;
      }
      this.#armTimer();
    } else if (this.#skipping) {
      this.#armTimer();
    }
  }

  #stopSkipping(): void {
    this.#skipping = false;
    this.#recordHead = '';
    this.#recordLen = 0;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #armTimer(): void {
    this.#timer?.cancel();
    // Without a link protocol there is no EOT: a message silent for the receiver timer
    // (LIS1-A §6.5.2, 30 s) is incomplete.
    this.#timer = this.#clock.schedule(this.#opt.timers.receiverFrameMs, () => {
      this.#timer = undefined;
      // The rest of an oversized message that never ended: what comes next is new.
      if (this.#skipping) this.#stopSkipping();
      if (this.#state === 'message') {
        this.#cb.onEvent?.({ kind: 'timeout', detail: 'no L record' });
        this.#partial('receiver-timeout');
      }
    });
  }

  #partial(reason: PartialReason): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    const raw = Buffer.concat(this.#raw, this.#rawLen);
    this.#raw = [];
    this.#rawLen = 0;
    this.#recordHead = '';
    this.#recordLen = 0;
    if (this.#state !== 'closed') this.#state = 'idle';
    if (raw.length > 0) {
      this.stats.partials++;
      this.#cb.onPartial(raw, reason);
    }
  }

  #complete(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#state = 'committing';
    const raw = Buffer.concat(this.#raw, this.#rawLen);
    this.#raw = [];
    this.#rawLen = 0;
    const text = raw.toString('latin1');
    const meta = { frames: 0, duplicateFrames: 0, refusedFrames: 0, completedAt: this.#clock.now() };
    const done = (): void => {
      if (this.#state !== 'committing') return;
      this.stats.messages++;
      this.#state = 'idle';
      // Messages that arrived meanwhile are read (and committed) even when the link has closed.
      while (this.#queued.length > 0 && this.#accepting()) {
        this.#consume(this.#dequeue());
      }
      if (this.#paused && this.#queuedBytes < RECORDS_ONLY_PAUSE_BYTES / 2) {
        this.#paused = false;
        this.#cb.resume?.();
      }
      if (this.#closing !== undefined && this.#accepting()) this.#finishClose(this.#closing);
    };
    // This mode has no NAK: the analyzer never resends. A message the store could not take (it is
    // failing, or full) is committed again until it is, one at a time and in order; later bytes
    // wait in the queue meanwhile.
    const attempt = (): void => {
      let settled: Promise<unknown>;
      try {
        settled = this.#cb.onMessage(text, raw, meta);
      } catch (err) {
        settled = Promise.reject(err);
      }
      settled.then(done, () => {
        this.#cb.onEvent?.({ kind: 'busy', detail: 'the store did not take the message: committing it again' });
        this.#timer = this.#clock.schedule(RECOMMIT_MS, () => {
          this.#timer = undefined;
          attempt();
        });
      });
    };
    attempt();
  }

  #accepting(): boolean {
    return this.#state === 'idle' || this.#state === 'message';
  }

  send(records: readonly string[]): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(new GatewayError('GW_ASTM_LINK', 'the link is closed'));
    if (records.length === 0) return Promise.resolve();
    // Each record in the analyzer's charset, without a CR or LF inside that would split it
    // (outgoing-text.ts: Latin-1 kept only the low byte, 'č' U+010D went out as CR).
    const sep = Buffer.from(this.#opt.recordSeparator, 'latin1');
    const bytes = Buffer.concat(records.flatMap((r) => [encodeRecord(r, this.#opt.charset), sep]));
    this.stats.bytesOut += bytes.length;
    this.stats.sent++;
    this.#cb.write(bytes);
    return Promise.resolve();
  }

  close(reason: PartialReason = 'closed'): void {
    if (this.#state === 'closed') return;
    if (this.#state === 'committing') {
      // What arrived behind the message being committed is read once it is in (#done).
      this.#closing = reason;
      return;
    }
    this.#finishClose(reason);
  }

  #finishClose(reason: PartialReason): void {
    const wasMessage = this.#state === 'message';
    this.#state = 'closed';
    if (wasMessage) this.#partial(reason);
    this.#timer?.cancel();
    this.#queued = [];
    this.#queuedBytes = 0;
  }
}
