import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { describeError } from '../../errors.ts';
import { isoTime } from '../../hl7/hl7-time.ts';
import type { Logger } from '../../log.ts';
import { UnacknowledgedWatch } from '../../net/unacknowledged-bytes.ts';
import { STORE_UNAVAILABLE, type FrameMeta, type FrameResult, type Hl7Intake, type PartialCause } from './hl7-intake.ts';
import { MllpDecoder, type UnframedBytes } from './mllp-decoder.ts';

/**
 * One MLLP connection: decodes frames, hands each to the intake as soon as it is complete (so the
 * commits of pipelined messages share the store's group commit), and writes the replies strictly
 * in the order the frames arrived, whatever order the commits finish in.
 *
 * Back-pressure: at most `maxInFlight` frames, or `maxInFlightBytes` bytes of frames, awaiting
 * their reply; beyond that the socket is paused (TCP flow control pushes back on the sender)
 * until replies go out. Without it a sender pipelining large frames could exhaust memory.
 *
 * Closing: when the peer half-closes, when the connection was idle `idleTimeoutMs`, when a frame
 * did not end within `frameTimeoutMs` of its start (#frameTimedOut), when HL7 came without MLLP
 * framing (#cutUnframed), or at stop(), the replies still owed are written first, then the socket
 * is ended (#closeWhenAnswered).
 *
 * End of input (#endInput: the peer's FIN, stop(), the gateway's own FIN, the socket closing): a
 * block ended by FS without its CR is taken as a frame; a frame without its FS is kept as rejected
 * raw bytes (Hl7Intake.handlePartial), answered only after the peer's FIN.
 */
export interface MllpConnectionOptions {
  socket: Socket;
  intake: Hl7Intake;
  maxFrameBytes: number;
  idleTimeoutMs: number;
  /**
   * How long a frame may stay open, from its start block, before the connection is closed and its
   * bytes kept as rejected (ms; FRAME_TIMEOUT_MS by default, 0 = never).
   */
  frameTimeoutMs?: number;
  maxInFlight?: number;
  maxInFlightBytes?: number;
  log: Logger;
  /**
   * How long the peer may leave the gateway's replies unacknowledged by its TCP stack, having sent
   * nothing since, before the connection is closed (ms; PEER_ACK_MS by default, 0 = never).
   */
  peerAckMs?: number;
  /** Who the peer is, for the log: `the LIS` (default) or `the analyzer`. */
  peerName?: string;
  /**
   * Whether a warning about noise outside frames may be logged now (the endpoint's rate limit,
   * NOISE_WARN_INTERVAL_MS); asked at most once per connection. Absent: always.
   */
  mayWarnNoise?: () => boolean;
  /** After each reply was written (or when none was due). */
  onAnswered: (result: FrameResult, info: { latencyMs: number; bytes: number }) => void;
  onIgnoredBytes: (count: number) => void;
  /** The socket closed; `detail` when the gateway closed it for a reason the status should show. */
  onClose: (detail?: string) => void;
}

/**
 * How long a peer may leave the gateway's replies unacknowledged (ms): its TCP stack, not its
 * program, acknowledges them, within milliseconds on a LAN however busy the LIS is. One that
 * vanished (power cut, cable pulled: no FIN, no RST) in the instant a reply was on the wire never
 * does, and keepalive sends no probe while sent bytes wait for their acknowledgement: the kernel
 * retransmitted for about 15 minutes (tcp_retries2), and the socket held a slot of maxConnections
 * and showed the LIS connected all that time. A minute matches what keepalive gives a quiet
 * connection whose LIS vanished (closed about 70 s after its last byte). TCP's own
 * retransmissions ride out an outage (a switch that restarts) that ends within about 50 s, not
 * any shorter than the bound: their interval doubles from about 0.2 s, so after the one at about
 * 51 s the next goes out at about 102 s, past the bound. A reply caught by an outage that ends
 * between the two is not acknowledged in time: the connection is closed, and the LIS sends its
 * message again on a new one, answered from what the store holds. Linux only
 * (net/unacknowledged-bytes.ts); elsewhere the kernel's limit stays.
 */
export const PEER_ACK_MS = 60_000;

/**
 * How long the peer has to close its side once the gateway's FIN and every reply are out (ms).
 * A peer that reads its socket closes at once; many LIS interfaces read only while they wait for
 * an ACK and keep their side open until they next send. Waiting for them held the connection (a
 * slot of maxConnections, "connected" in the status) for as long as the link stayed quiet, and a
 * graceful stop until its deadline. After this grace the socket is closed outright: the peer's
 * next read sees the FIN (its next write a reset), and it reconnects.
 */
export const PEER_CLOSE_GRACE_MS = 2_000;
/**
 * How long a connection being closed may take to write the replies it owes before it is closed
 * anyway: a peer that reads none of them (its receive window closed) would hold it for good.
 */
export const REPLY_FLUSH_MS = 30_000;

/**
 * How long a block whose FS came without its CR waits for that CR before it is taken as ended (ms).
 * MLLP ends a block with FS CR (HL7 v2.5 Appendix C.4.3), and a conforming sender writes both at
 * once: the CR is late only when the FS ended a TCP segment, by a delayed ACK at most (≤ 200 ms).
 * A sender that omits the CR sends nothing more until it has its ACK. Waiting for the next block's
 * VT, or for the idle close (30 minutes by default), left such a LIS without its ACK: it timed out
 * and resent, and from then on read the previous message's ACK after each message
 * (test/integration/mllp-end-cr-audit.test.ts). Armed only when a chunk ends right after an FS.
 */
export const END_CR_GRACE_MS = 1_000;

/**
 * How long a frame may stay open, from the start block (VT) that began it, before the connection is
 * closed (ms; `hl7[].frameTimeoutMs`, 0 = never). A LIS not set to MLLP framing (it sends VT and
 * the message but no end block FS CR) waits for its ACK while the gateway waits for the frame's
 * end; a sender that trickles bytes puts the idle close off with each one. Either held the
 * connection and its slot of maxConnections, saying nothing, until the idle close (30 minutes by
 * default) or for ever. A minute: a LIS's ACK timeout is 10 to 60 s, and a frame of 16 MiB
 * (maxMessageBytes) needs about 2.3 Mbit/s to come in a minute; a LAN sends the usual message of a
 * few KiB in milliseconds. The bound counts from the first start block of frames none of which
 * ended (a resend's VT abandons the open frame and starts another, and would otherwise start the
 * bound again), and not while the gateway itself is not reading (back-pressure).
 */
export const FRAME_TIMEOUT_MS = 60_000;

/**
 * How long HL7 received without MLLP framing (no start block VT) may pause before it is taken as
 * ended, kept and the connection closed (ms). A sender not set to MLLP framing writes its message
 * and waits for an ACK: nothing follows. Waiting a moment keeps a message that comes in several
 * TCP segments whole; the end is also reached by a VT, the sender's FIN, `maxMessageBytes`, or
 * `frameTimeoutMs` from its first segment name (a sender that trickles bytes).
 */
export const UNFRAMED_QUIET_MS = 1_000;

/**
 * How often an endpoint logs a warning about noise outside frames (bytes neither blank nor HL7: a
 * browser or a port scanner at the port, a sender speaking another protocol), at most once per
 * connection too (ms). The bytes are counted whatever the rate (lab_gateway_ignored_bytes_total).
 */
export const NOISE_WARN_INTERVAL_MS = 60_000;

/**
 * How many bytes of replies the kernel has not taken yet (the peer reads none of them) the
 * connection holds before it stops reading (bytes). Frames awaiting their commit are bounded
 * (maxInFlight, maxInFlightBytes); replies written are bounded here. A sender that writes
 * everything before it reads anything, with blocking writes, waits once this and the kernels'
 * buffers are full (some 90,000 short ACKs on loopback): room enough for any queue a LIS sends
 * ahead, and 256 MiB at most for 64 connections.
 */
export const REPLY_BACKLOG_BYTES = 4 * 1024 * 1024;

/** A frame awaiting its reply, in arrival order. */
interface Pending {
  /** Set when the intake finished with the frame. */
  result: FrameResult | undefined;
  bytes: number;
  held: number;
  started: number;
}

/** A duration for the log: milliseconds below 10 s (tests use short bounds), else seconds. */
function span(ms: number): string {
  return ms < 10_000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;
}

/** Bytes for a log line: printable ASCII as is, CR, LF and tab escaped, other bytes as \xNN. */
export function printable(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) {
    if (b === 0x0d) out += '\\r';
    else if (b === 0x0a) out += '\\n';
    else if (b === 0x09) out += '\\t';
    else if (b >= 0x20 && b < 0x7f && b !== 0x5c) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The arrival time of the last frame, by millisecond (frames arrive many per millisecond). */
let arrivalMs = Number.NaN;
let arrivalIso = '';

function arrivalTime(): string {
  const now = Date.now();
  if (now !== arrivalMs) {
    arrivalMs = now;
    arrivalIso = isoTime(now);
  }
  return arrivalIso;
}

export class MllpConnection {
  readonly remoteAddress: string;
  readonly #socket: Socket;
  readonly #intake: Hl7Intake;
  readonly #decoder: MllpDecoder;
  readonly #log: Logger;
  readonly #maxInFlight: number;
  readonly #maxInFlightBytes: number;
  #inFlightBytes = 0;
  readonly #onAnswered: MllpConnectionOptions['onAnswered'];
  readonly #onIgnoredBytes: (count: number) => void;
  /** Who the peer is, for the log. */
  readonly #peerName: string;
  /** Frames awaiting their reply, oldest first: replies go out from the head, in frame order. */
  readonly #pending: Pending[] = [];
  /** drained() callers, resolved when #pending is empty. */
  #drainWaiters: Array<() => void> = [];
  #inFlight = 0;
  /** Reading paused: too many frames await their reply (maxInFlight, maxInFlightBytes). */
  #paused = false;
  /** Reading paused: the peer reads none of the replies (REPLY_BACKLOG_BYTES), until they drain. */
  #repliesUnread = false;
  #accepting = true;
  /** Set once the connection is to close when its replies are written (#closeWhenAnswered). */
  #closing = false;
  /** Set once nothing more is read (#endInput): the decoder was told the input ended. */
  #inputEnded = false;
  /** Why the input ended, for a frame it ended inside of. */
  #endCause: PartialCause = 'closed';
  #closed = false;
  /** Armed while the bytes read end with an FS whose CR has not come (END_CR_GRACE_MS). */
  #endCrTimer: NodeJS.Timeout | undefined;
  /** Whether the peer's stack still acknowledges the replies (PEER_ACK_MS). */
  readonly #acks: UnacknowledgedWatch;
  /** FRAME_TIMEOUT_MS or the configured bound; 0 = never. */
  readonly #frameTimeoutMs: number;
  /** When the frames open without one ending began (performance.now(); undefined: no frame open). */
  #frameOpenSince: number | undefined;
  /** The decoder's count of ended frames when #frameOpenSince was set: a change means one ended. */
  #framesAtOpen = 0;
  /** Frames abandoned (a new VT) since #frameOpenSince: the sender started over without ending one. */
  #abandonedSinceOpen = 0;
  /** When the last chunk arrived (performance.now()), for the warning about a frame that never ends. */
  #lastDataAt = 0;
  /** Armed while a frame is open (lazily: re-armed for what is left when it fires early). */
  #frameTimer: NodeJS.Timeout | undefined;
  /** When the HL7 being received without framing began (performance.now(); undefined: none). */
  #unframedSince: number | undefined;
  /** Armed while HL7 without framing is being received: UNFRAMED_QUIET_MS after the last chunk. */
  #unframedTimer: NodeJS.Timeout | undefined;
  /** Set when the gateway itself ended the HL7 received without framing (#cutUnframed). */
  #unframedCut = false;
  /** Blocks of HL7 received without framing on this connection: the first is kept, the rest counted. */
  #unframedBlocks = 0;
  /** Whether noise outside frames was logged (or passed over by the rate limit) on this connection. */
  #noiseNoticed = false;
  readonly #mayWarnNoise: () => boolean;
  /** Why the gateway closed the socket itself, for the status. */
  #closeDetail: string | undefined;
  readonly #closedPromise: Promise<void>;

  constructor(options: MllpConnectionOptions) {
    const socket = options.socket;
    this.#socket = socket;
    this.#intake = options.intake;
    this.#log = options.log;
    this.#maxInFlight = options.maxInFlight ?? 1024;
    this.#maxInFlightBytes = options.maxInFlightBytes ?? 64 * 1024 * 1024;
    this.#onAnswered = options.onAnswered;
    this.#onIgnoredBytes = options.onIgnoredBytes;
    this.#peerName = options.peerName ?? 'the LIS';
    this.#frameTimeoutMs = options.frameTimeoutMs ?? FRAME_TIMEOUT_MS;
    this.#mayWarnNoise = options.mayWarnNoise ?? (() => true);
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.#decoder = new MllpDecoder({
      maxFrameBytes: options.maxFrameBytes,
      onFrame: (frame) => this.#enqueue(frame.length, frame.length, (meta) => this.#intake.handleFrame(frame, meta)),
      onOversize: (o) => this.#enqueue(o.size, o.head.length, (meta) => this.#intake.handleOversize(o, meta)),
      onIgnoredBytes: (n) => this.#reportIgnored(n),
      onPartial: (p) => {
        const cause = p.abandoned ? 'abandoned' : this.#endCause;
        if (p.abandoned && this.#frameOpenSince !== undefined) this.#abandonedSinceOpen++;
        this.#log.warn('incomplete frame kept as rejected raw bytes', { remote: this.remoteAddress, cause, bytes: p.size });
        this.#enqueue(p.size, p.head.length, (meta) => this.#intake.handlePartial(p, cause, meta));
      },
      onUnframed: (u) => this.#unframedEnded(u),
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    // A peer gone while a reply waits for its acknowledgement: keepalive is off then (PEER_ACK_MS).
    this.#acks = new UnacknowledgedWatch({
      socket,
      boundMs: options.peerAckMs ?? PEER_ACK_MS,
      onUnacknowledged: (seconds) => {
        const reason = `${options.peerName ?? 'the LIS'} acknowledged nothing the gateway sent for ${seconds} s (switched off, or its cable pulled?): connection closed`;
        this.#log.warn(reason, { remote: this.remoteAddress, seconds });
        this.#closeDetail = reason;
        socket.destroy();
      },
    });
    // A sender may half-close once it has sent (socat, `nc -N` at the end of their input) and still
    // wait for its replies. Node's default ends the socket's writing side at the sender's FIN, and
    // the ACKs, ready only after the commit, would be dropped: this connection ends the socket
    // itself once they are written (#closeWhenAnswered). Set here and not on the server, so that a
    // socket nothing ends this way (a TLS handshake that never completes) keeps the default.
    socket.allowHalfOpen = true;
    if (options.idleTimeoutMs > 0) {
      socket.setTimeout(options.idleTimeoutMs, () => {
        // Idle = nothing received for idleTimeoutMs (a frame left half-sent that long is abandoned).
        // Replies still owed are written first.
        this.#log.info('closing idle connection', { remote: this.remoteAddress });
        this.#closeWhenAnswered('idle');
      });
    }
    // The peer half-closed (allowHalfOpen above): it still waits for the replies to what it sent,
    // including the last frame when its FS came without the CR.
    socket.on('end', () => {
      this.#endInput('half-closed');
      this.#closeWhenAnswered('half-closed');
    });
    socket.on('data', (chunk: Buffer) => {
      this.#acks.heard();
      if (!this.#accepting) return;
      try {
        this.#disarmEndCr();
        this.#decoder.push(chunk);
        if (this.#decoder.awaitingEndCr) this.#armEndCr();
        if (this.#frameTimeoutMs > 0) this.#watchFrame();
        if (this.#decoder.inUnframed) this.#watchUnframed();
        const noise = this.#decoder.takeNoise();
        if (noise) this.#noticeNoise(noise);
      } catch (err) {
        // The decoder is pure and total; this is a last line of defence.
        this.#log.error('framing failed; closing the connection', { remote: this.remoteAddress, error: describeError(err) });
        socket.destroy();
      }
    });
    // The replies held for a peer that read none of them went out: reading goes on.
    socket.on('drain', () => {
      if (!this.#repliesUnread) return;
      this.#repliesUnread = false;
      this.#log.info('the peer reads its replies again: reading resumed', { remote: this.remoteAddress });
      if (!this.#paused && this.#accepting) this.#resumeReading();
    });
    socket.on('error', (err) => this.#log.debug('connection error', { remote: this.remoteAddress, error: describeError(err) }));
    this.#closedPromise = new Promise((resolve) => {
      socket.once('close', () => {
        this.#closed = true;
        this.#acks.stop();
        // A frame cut by a reset is kept (unanswered: there is no one to answer).
        this.#endInput('closed');
        const ignored = this.#decoder.takeIgnored();
        if (ignored > 0) this.#reportIgnored(ignored);
        options.onClose(this.#closeDetail);
        resolve();
      });
    });
  }

  /**
   * A block ended by FS without its CR is taken as ended when nothing follows for END_CR_GRACE_MS.
   * Disarmed by the next chunk and when the input ends (#endInput: every way reading stops, the
   * socket's close included), so it never fires on a connection that no longer reads.
   */
  #armEndCr(): void {
    this.#endCrTimer = setTimeout(() => {
      this.#endCrTimer = undefined;
      try {
        this.#decoder.endBlock();
      } catch (err) {
        // The decoder is pure and total; this is a last line of defence.
        this.#log.error('framing failed ending a block without its CR', { remote: this.remoteAddress, error: describeError(err) });
      }
    }, END_CR_GRACE_MS);
    this.#endCrTimer.unref();
  }

  #disarmEndCr(): void {
    if (this.#endCrTimer === undefined) return;
    clearTimeout(this.#endCrTimer);
    this.#endCrTimer = undefined;
  }

  /**
   * After each chunk: a frame open (its FS not come) starts the bound when none was open or when a
   * frame ended since (the open one began in this chunk); a frame abandoned by a new VT does not
   * (the sender started over without ending one). The timer is armed once and re-armed when it
   * fires for what is left, not on every chunk.
   */
  #watchFrame(): void {
    const d = this.#decoder;
    if (!d.inFrame || d.awaitingEndCr) {
      this.#frameOpenSince = undefined;
      return;
    }
    const now = performance.now();
    this.#lastDataAt = now;
    if (this.#frameOpenSince !== undefined && d.frames === this.#framesAtOpen) return;
    this.#frameOpenSince = now;
    this.#framesAtOpen = d.frames;
    this.#abandonedSinceOpen = 0;
    if (this.#frameTimer === undefined) this.#armFrame(this.#frameTimeoutMs);
  }

  #armFrame(ms: number): void {
    this.#frameTimer = setTimeout(() => this.#frameTimerFired(), ms);
    this.#frameTimer.unref();
  }

  #disarmFrame(): void {
    this.#frameOpenSince = undefined;
    if (this.#frameTimer === undefined) return;
    clearTimeout(this.#frameTimer);
    this.#frameTimer = undefined;
  }

  #frameTimerFired(): void {
    this.#frameTimer = undefined;
    const since = this.#frameOpenSince;
    if (since === undefined || this.#inputEnded || this.#closing || this.#closed) return;
    // The gateway is not reading (frames await their commit, or replies their reader): the frame
    // cannot end, by no fault of the sender. Its bound starts again when reading resumes.
    if (this.#paused || this.#repliesUnread) {
      this.#armFrame(this.#frameTimeoutMs);
      return;
    }
    const left = since + this.#frameTimeoutMs - performance.now();
    if (left > 0) {
      this.#armFrame(left);
      return;
    }
    this.#frameTimedOut(since);
  }

  /**
   * Reading resumes after back-pressure: an open frame's bound starts again (#frameTimerFired), and
   * so does its silence, for the warning (#frameTimedOut): both count only time the gateway read.
   * Before, the silence counted from the frame's last bytes, before the pause, and the warning of a
   * frame cut after it said "after 171 bytes in 401 ms … nothing came for 3082 ms".
   */
  #resumeReading(): void {
    if (this.#frameOpenSince !== undefined) {
      this.#frameOpenSince = performance.now();
      this.#lastDataAt = this.#frameOpenSince;
    }
    // HL7 without framing begun before the pause: its bound too counts only time the gateway read.
    if (this.#unframedSince !== undefined) this.#unframedSince = performance.now();
    this.#socket.resume();
  }

  /**
   * A frame not ended within frameTimeoutMs: warned with its likely cause, its bytes kept as a
   * rejected message (the decoder's end, as for any incomplete frame: no answer, the sender sends
   * the message again), the connection closed once the replies owed before it are written.
   */
  #frameTimedOut(since: number): void {
    const d = this.#decoder;
    const now = performance.now();
    const bytes = d.openBytes;
    const openMs = Math.round(now - since);
    const quietMs = Math.round(now - this.#lastDataAt);
    const started = this.#abandonedSinceOpen + 1;
    const framing = `is ${this.#peerName} set to MLLP framing (VT, the message, then FS CR)?`;
    let why: string;
    if (this.#abandonedSinceOpen > 0) {
      why = `${this.#peerName} started ${started} frames and ended none (it sends again while it waits for an ACK): ${framing}`;
    } else if (quietMs >= this.#frameTimeoutMs / 4) {
      const ending = d.openEndsWithLineEnd ? "the message ends with a segment's CR and " : '';
      why = `${ending}nothing came for ${span(quietMs)}: ${this.#peerName} likely waits for its ACK; ${framing}`;
    } else {
      why = `bytes still arriving (the last ${span(quietMs)} ago): a sender this slow, or a message larger than its link sends within hl7[].frameTimeoutMs`;
    }
    const reason = `no end block FS CR after ${bytes} bytes in ${span(openMs)}: connection closed, the bytes kept as a rejected message. ${why[0]?.toUpperCase()}${why.slice(1)}`;
    this.#log.warn(reason, { remote: this.remoteAddress, bytes, openMs, quietMs, frames: started, frameTimeoutMs: this.#frameTimeoutMs });
    this.#closeDetail = reason;
    // Nothing more is read: the open frame goes to the intake as incomplete (kept, unanswered).
    this.#accepting = false;
    this.#endInput('frame-timeout');
    this.#closeWhenAnswered('frame-timeout');
  }

  /**
   * After each chunk while HL7 without framing is being received: ended at once when it outgrew
   * maxMessageBytes or has come for frameTimeoutMs (a trickle), else UNFRAMED_QUIET_MS after the
   * last chunk (the timer is set again per chunk: this happens on a misconfigured link only).
   */
  #watchUnframed(): void {
    const now = performance.now();
    this.#unframedSince ??= now;
    if (this.#decoder.unframedTruncated || (this.#frameTimeoutMs > 0 && now - this.#unframedSince >= this.#frameTimeoutMs)) {
      this.#cutUnframed();
      return;
    }
    this.#disarmUnframed();
    this.#unframedTimer = setTimeout(() => {
      this.#unframedTimer = undefined;
      if (this.#inputEnded || this.#closing || this.#closed || !this.#decoder.inUnframed) return;
      // The gateway is not reading (back-pressure): the pause is not the sender's. Wait again,
      // without the bound: it starts again when reading resumes (#resumeReading).
      if (this.#paused || this.#repliesUnread) {
        this.#unframedSince = undefined;
        this.#watchUnframed();
        return;
      }
      this.#cutUnframed();
    }, UNFRAMED_QUIET_MS);
    this.#unframedTimer.unref();
  }

  #disarmUnframed(): void {
    if (this.#unframedTimer === undefined) return;
    clearTimeout(this.#unframedTimer);
    this.#unframedTimer = undefined;
  }

  /**
   * HL7 without framing has ended (quiet, its bound, a trickle): nothing more is read, its bytes go
   * to the intake (#unframedEnded, through the decoder's end), and the connection is closed once the
   * replies owed before it are written, so that the sender reports a failure instead of waiting
   * for an ACK that cannot come.
   */
  #cutUnframed(): void {
    this.#unframedCut = true;
    this.#accepting = false;
    this.#endInput('unframed');
    this.#closeWhenAnswered('unframed');
  }

  /**
   * HL7 received without framing, ended (UnframedBytes): the first on this connection is kept as a
   * rejected message (Hl7Intake.handleUnframed), unanswered, with a warning naming the cause in
   * plain words and what to set on the sender; later ones on the same connection (possible only
   * when a VT ended the first and the connection went on) are counted as ignored bytes.
   */
  #unframedEnded(u: UnframedBytes): void {
    this.#unframedSince = undefined;
    this.#disarmUnframed();
    if (++this.#unframedBlocks > 1) {
      this.#log.debug('more HL7 without MLLP framing on this connection: counted as ignored bytes, not kept', { remote: this.remoteAddress, bytes: u.size });
      this.#reportIgnored(u.size);
      return;
    }
    let after: string;
    if (u.endedBy === 'start-block') after = 'a start block VT followed: what follows is read as MLLP';
    else if (this.#unframedCut) after = `connection closed so that ${this.#peerName} reports a failure instead of waiting for an ACK`;
    else if (this.#endCause === 'half-closed') after = `${this.#peerName} closed its side of the connection`;
    else if (this.#endCause === 'stopped') after = 'the gateway is stopping';
    else after = 'the connection closed';
    const kept = u.truncated ? `its first ${u.head.length} of ${u.size} bytes kept` : `${u.size} bytes kept`;
    const reason = `HL7 received without MLLP framing (no start block VT 0x0B): set ${this.#peerName} to MLLP framing (VT, message, FS CR). ${kept} as a rejected message (unframed; the same message resent is counted on the one kept, not kept again), not answered; ${after}`;
    this.#log.warn(reason, { remote: this.remoteAddress, bytes: u.size, kept: u.head.length });
    if (u.endedBy === 'end') this.#closeDetail ??= reason;
    this.#enqueue(u.size, u.head.length, (meta) => this.#intake.handleUnframed(u, meta));
  }

  /**
   * Noise outside frames (lines neither blank nor HL7): still only counted, but named once per
   * connection in a warning with a printable preview, within the endpoint's rate limit.
   */
  #noticeNoise(noise: { bytes: number; preview: Buffer }): void {
    if (this.#noiseNoticed) return;
    this.#noiseNoticed = true;
    if (!this.#mayWarnNoise()) {
      this.#log.debug('bytes outside MLLP frames ignored (not HL7)', { remote: this.remoteAddress, bytes: noise.bytes, preview: printable(noise.preview) });
      return;
    }
    this.#log.warn(`bytes outside MLLP frames ignored (not HL7, no start block VT 0x0B): is ${this.#peerName} set to MLLP framing, or is this another program at the port?`, { remote: this.remoteAddress, bytes: noise.bytes, preview: printable(noise.preview) });
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  #reportIgnored(count: number): void {
    this.#log.debug(`ignored ${count} bytes outside frames`, { remote: this.remoteAddress });
    this.#onIgnoredBytes(count);
  }

  /** `bytes`: the frame's size as received; `held`: what this connection keeps in memory for it. */
  #enqueue(bytes: number, held: number, handle: (meta: FrameMeta) => Promise<FrameResult>): void {
    const started = performance.now();
    const meta: FrameMeta = { remoteAddress: this.remoteAddress, receivedAt: arrivalTime() };
    this.#inFlight++;
    this.#inFlightBytes += held;
    if ((this.#inFlight >= this.#maxInFlight || this.#inFlightBytes >= this.#maxInFlightBytes) && !this.#paused) {
      this.#paused = true;
      this.#socket.pause();
    }
    const entry: Pending = { result: undefined, bytes, held, started };
    this.#pending.push(entry);
    // Start the work now (concurrently with earlier frames), write the reply in order.
    handle(meta).then(
      (result) => this.#finished(entry, result),
      (err: unknown) => {
        this.#log.error('intake failed unexpectedly', { remote: this.remoteAddress, error: describeError(err) });
        this.#finished(entry, { reply: undefined, results: [{ outcome: 'rejected', reason: `internal error: ${describeError(err)}` }] });
      },
    );
  }

  #finished(entry: Pending, result: FrameResult): void {
    entry.result = result;
    if (this.#pending[0] === entry) this.#flush();
  }

  /** Write the replies of the finished frames at the head of the queue. */
  #flush(): void {
    const pending = this.#pending;
    const socket = this.#socket;
    // Several replies ready at once (a pipelining sender) leave in one write.
    const corked = pending.length > 1 && pending[1]?.result !== undefined && !socket.destroyed;
    if (corked) socket.cork();
    while (pending.length > 0 && (pending[0] as Pending).result !== undefined) {
      const entry = pending.shift() as Pending;
      const result = entry.result as FrameResult;
      if (result.reply && !socket.destroyed && socket.writable) {
        socket.write(result.reply);
        this.#acks.wrote();
        // Replies the kernel does not take (the peer reads none of them) wait in memory: beyond
        // REPLY_BACKLOG_BYTES, nothing more is read until they drain (the 'drain' listener).
        if (!this.#repliesUnread && socket.writableLength > REPLY_BACKLOG_BYTES) {
          this.#repliesUnread = true;
          socket.pause();
          this.#log.warn(`${this.#peerName} reads none of its replies: reading paused until it does`, { remote: this.remoteAddress, unreadBytes: socket.writableLength });
        }
      }
      // A message the store could not keep, whose sender asked for no answer (enhanced mode,
      // MSH-15 and MSH-16 NE; an inbound ACK): the connection is closed once the replies owed
      // before it are written, so that the sender sees the link drop and sends it again. Kept
      // open, the sender took it as delivered: nothing stored, nothing said.
      if (!result.reply && !this.#closing && result.results.some((r) => r.reason === STORE_UNAVAILABLE)) {
        this.#log.warn(`a message could not be stored and ${this.#peerName} asked for no acknowledgement: connection closed so that it sends the message again`, { remote: this.remoteAddress, controlId: result.results.find((r) => r.reason === STORE_UNAVAILABLE)?.controlId });
        this.#closeDetail ??= 'a message could not be stored (store unavailable) and its sender asked for no acknowledgement: connection closed so that it is sent again';
        this.#closeWhenAnswered('stopped');
      }
      this.#inFlight--;
      this.#inFlightBytes -= entry.held;
      if (this.#paused && this.#inFlight < this.#maxInFlight / 2 && this.#inFlightBytes < this.#maxInFlightBytes / 2) {
        this.#paused = false;
        if (this.#accepting && !this.#repliesUnread) this.#resumeReading();
      }
      try {
        this.#onAnswered(result, { latencyMs: performance.now() - entry.started, bytes: entry.bytes });
      } catch (err) {
        this.#log.error('reply bookkeeping failed', { remote: this.remoteAddress, error: describeError(err) });
      }
    }
    if (corked) socket.uncork();
    if (pending.length === 0 && this.#drainWaiters.length > 0) {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /**
   * Stop reading new frames (stop()): frames already received are still answered, a block whose
   * FS came without its CR included; a frame still open is kept as rejected, unanswered (the
   * sender resends it after reconnecting).
   */
  stopReading(): void {
    this.#accepting = false;
    this.#socket.pause();
    this.#endInput('stopped');
  }

  /** Nothing more is read: the decoder emits a frame whose CR never came, or the open frame's bytes. */
  #endInput(cause: PartialCause): void {
    this.#disarmEndCr();
    this.#disarmFrame();
    this.#disarmUnframed();
    if (this.#inputEnded) return;
    this.#inputEnded = true;
    this.#endCause = cause;
    try {
      this.#decoder.end();
    } catch (err) {
      // The decoder is pure and total; this is a last line of defence.
      this.#log.error('framing failed at the end of input', { remote: this.remoteAddress, error: describeError(err) });
    }
  }

  /** Resolves when every frame received so far has been answered. */
  async drained(): Promise<void> {
    if (this.#pending.length === 0) return;
    await new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Half-close after the replies went out; resolves when the socket is closed. */
  async end(): Promise<void> {
    this.#closeWhenAnswered('stopped');
    await this.#closedPromise;
  }

  /**
   * Write the replies still owed, then end the socket: stop(), the idle timeout and the peer's
   * half-close all close this way. Frames arriving meanwhile are answered too (drained() waits for
   * them), unless stop() stopped reading. Reading stops when the FIN is sent: a frame read after
   * it would be committed and its reply never sent; unread, the sender sends it again on its next
   * connection. Then the input ends (#endInput): a block that lacks only its CR is answered before
   * the FIN; a frame still open is kept, unanswered (the sender resends it).
   */
  #closeWhenAnswered(cause: PartialCause): void {
    if (this.#closing) return;
    this.#closing = true;
    const finish = (): void => {
      if (this.#closed) return;
      this.#accepting = false;
      if (!this.#inputEnded) {
        this.#endInput(cause);
        if (this.#pending.length > 0) {
          void this.drained().then(finish);
          return;
        }
      }
      // Reading goes on (the data is ignored) so that the peer's FIN is seen and the socket closes.
      this.#socket.resume();
      // Once the replies and the FIN are handed to the kernel, the peer has PEER_CLOSE_GRACE_MS to
      // close its side; then the socket is closed (the kernel still delivers what it holds).
      this.#socket.end(() => {
        if (this.#closed) return;
        const grace = setTimeout(() => this.#socket.destroy(), PEER_CLOSE_GRACE_MS);
        grace.unref();
        this.#socket.once('close', () => clearTimeout(grace));
      });
      // Replies a peer does not read (its window stays closed) never finish writing, and end()'s
      // callback never comes: the socket is closed REPLY_FLUSH_MS after this if they are still
      // not written. Before, the connection, its slot of maxConnections and its unread replies
      // were held for as long as the peer's process lived.
      const flush = setTimeout(() => {
        if (this.#closed || this.#socket.destroyed || this.#socket.writableLength === 0) return;
        this.#log.warn(`closing the connection: ${this.#peerName} did not read its replies within ${span(REPLY_FLUSH_MS)} of the close (${cause}); the replies it did not read are dropped`, { remote: this.remoteAddress, unwrittenBytes: this.#socket.writableLength });
        this.#socket.destroy();
      }, REPLY_FLUSH_MS);
      flush.unref();
      this.#socket.once('close', () => clearTimeout(flush));
    };
    void this.drained().then(finish);
  }

  destroy(): void {
    this.#socket.destroy();
  }

  get closed(): Promise<void> {
    return this.#closedPromise;
  }
}
