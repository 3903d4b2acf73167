import type { LinkOptions } from './link-options.ts';
import type { Scheduler } from './scheduler.ts';

/**
 * What every ASTM link state machine (E1381 and records-only) offers its transport and its
 * endpoint. One instance per connection; bytes in through `push`, bytes out and messages through
 * the callbacks, time through the injected scheduler (STYLE.md practice 8).
 */
export interface AstmLinkSession {
  /** Feed bytes exactly as received (any chunking). */
  push(bytes: Buffer): void;
  /**
   * Queue one E1394 message (records without their CR) to send when the line is free. Aborting
   * `options.signal` takes the message back while no frame of it has gone out (a session that
   * sends at once ignores it): it rejects with GW_ASTM_LINK, `details.withdrawn` true.
   */
  send(records: readonly string[], options?: SendOptions): Promise<void>;
  /** The transport closed: an unfinished inbound message becomes a partial, queued sends fail. */
  close(reason?: PartialReason): void;
  readonly state: string;
  readonly stats: Readonly<LinkStats>;
}

export interface SendOptions {
  /** Abort to take the message back before its first frame (the endpoint moves it to a newer connection). */
  signal?: AbortSignal;
}

/** Reply the endpoint asks for after handling a complete message. */
export type MessageReply = 'ack' | 'nak';

export interface MessageMeta {
  /** Frames accepted for this message (0 in records-only mode). */
  frames: number;
  /** Retransmitted frames dropped as duplicates while receiving this message. */
  duplicateFrames: number;
  /** Frames refused (NAKed) while receiving this message. */
  refusedFrames: number;
  /** Scheduler time of the last byte of the message. */
  completedAt: number;
}

export const PartialReasons = [
  'eot-before-end', // EOT while a message was incomplete (LIS1-A §6.4)
  'receiver-timeout', // no frame or EOT within the receiver timer (LIS1-A §6.5.2)
  'closed', // the port or connection closed
  're-establishment', // ENQ while a message was incomplete: the sender started over
  'too-large', // the message exceeded maxMessageBytes
  'stopped', // the gateway is stopping
  'overflow', // bytes behind a commit were dropped in the middle of it (a link that cannot be paused, at its cap)
  'not-resent', // its end frame was NAKed (not committed) and the sender went on with new frames instead of sending it again
] as const;
export type PartialReason = (typeof PartialReasons)[number];

/**
 * Why a frame was refused (NAK), by what it says about the line:
 * - `garbled`: the frame is not what was sent — checksum mismatch, checksum or frame number not
 *   readable, a frame cut by the next STX. On a serial line: baud, data bits or parity set wrong,
 *   or noise; on TCP: an analyzer computing the checksum its own way (the profile).
 * - `sequence`: a frame number out of sequence (a lost frame).
 * - `size`: a frame over maxReceiveFrameBytes, a message over maxMessageBytes.
 * - `message`: the line is fine, the message was not taken (the record layer rejected it, the
 *   store could not commit it); the store and the message browser say why.
 */
export const RefusalCauses = ['garbled', 'sequence', 'size', 'message'] as const;
export type RefusalCause = (typeof RefusalCauses)[number];

/** The frames refused while a message was received, handed over with its partial. */
export interface PartialRefusals {
  /** Frames of this message NAKed (retransmissions of one frame count each time). */
  refusedFrames: number;
  /** The last refusal's reason (`checksum mismatch`, …) and cause. */
  lastRefusal: string;
  lastCause: RefusalCause;
}

export interface LinkEvent {
  kind:
    | 'session-start'
    | 'session-end'
    | 'busy'
    | 'frame-refused'
    | 'duplicate-frame'
    | 'fn-repeat'
    | 'interrupt-sent'
    | 'interrupt-received'
    | 'contention'
    | 'timeout'
    | 'send-aborted'
    | 'sent'
    | 'overflow';
  detail?: string;
  /** `frame-refused` only: what the refusal says about the line. */
  cause?: RefusalCause;
}

export interface LinkCallbacks {
  /** Write bytes to the wire (synchronous hand-off to the transport). */
  write(bytes: Buffer): void;
  /**
   * A complete message. The reply to the frame that completed it is held until this settles:
   * resolve (or resolve 'ack') → ACK, resolve 'nak' or reject → NAK (LIS1-A §6.5.1; the sender
   * retransmits). This is where the endpoint commits to the store.
   */
  onMessage(text: string, raw: Buffer, meta: MessageMeta): Promise<MessageReply | void>;
  /**
   * An inbound message cut off before its end: keep the exact bytes, derive nothing. `refusals`
   * when frames of it were refused: often why the sender gave up (a garbled line NAKed to the
   * retry limit), which the reason kept for the operator must say.
   */
  onPartial(raw: Buffer, reason: PartialReason, refusals?: PartialRefusals): void;
  /**
   * Bytes ignored outside frames, summarised: once per session, and in neutral at most once a
   * second (NEUTRAL_IGNORED_FLUSH_MS) while they keep coming.
   */
  onIgnoredBytes?(count: number): void;
  /** Link events for logs and counters. */
  onEvent?(event: LinkEvent): void;
  /** True while the gateway cannot accept a message (store down, stopping): ENQ gets NAK (LIS1-A §6.2.6). */
  isBusy?(): boolean;
  /** Stop reading the wire (its flow control holds the sender), and read it again (Wire.pause). */
  pause?(): void;
  resume?(): void;
}

export interface LinkSessionOptions extends LinkCallbacks {
  link: LinkOptions;
  scheduler: Scheduler;
}

export interface LinkStats {
  bytesIn: number;
  bytesOut: number;
  framesAccepted: number;
  framesRefused: number;
  duplicateFrames: number;
  fnRepeats: number;
  ignoredBytes: number;
  messages: number;
  partials: number;
  sent: number;
  sendFailures: number;
  /** Bytes read while the link could neither store nor hold them (records-only, see RecordsOnlySession). */
  overflowBytes: number;
}

export function emptyStats(): LinkStats {
  return {
    bytesIn: 0,
    bytesOut: 0,
    framesAccepted: 0,
    framesRefused: 0,
    duplicateFrames: 0,
    fnRepeats: 0,
    ignoredBytes: 0,
    messages: 0,
    partials: 0,
    sent: 0,
    sendFailures: 0,
    overflowBytes: 0,
  };
}

/** `L` followed by a delimiter (not a letter or digit), or a bare `L`. */
export function isTerminatorRecord(text: string, start: number, end: number): boolean {
  if (text.charCodeAt(start) !== 0x4c /* L */) return false;
  if (end - start === 1) return true;
  const next = text.charCodeAt(start + 1);
  const alnum = (next >= 0x30 && next <= 0x39) || (next >= 0x41 && next <= 0x5a) || (next >= 0x61 && next <= 0x7a);
  return !alnum;
}
