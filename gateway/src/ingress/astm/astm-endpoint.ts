import { createHash } from 'node:crypto';
import type { AnalyzerConfig } from '../../config/types.ts';
import { describeError, GatewayError } from '../../errors.ts';
import type { DraftEvent } from '../../events/types.ts';
import type { Component, ComponentStatus } from '../../lifecycle.ts';
import type { Logger } from '../../log.ts';
import type { GatewayStore, InboundMessage } from '../../store/types.ts';
import type { EndpointState, Telemetry } from '../../telemetry.ts';
import { BYTE, EOT, NAK } from './control-chars.ts';
import { createLinkSession } from './create-link-session.ts';
import { type LinkOptions, resolveLinkOptions } from './link-options.ts';
import {
  type AstmLinkSession,
  emptyStats,
  type LinkStats,
  type MessageMeta,
  type MessageReply,
  type PartialReason,
  type PartialRefusals,
  type RefusalCause,
} from './link-session.ts';
import { looksMisread } from './records-only-session.ts';
import { realScheduler, type Scheduler, type TimerHandle } from './scheduler.ts';
import { type SerialSettings, SerialTransport, serialSettings } from './serial-transport.ts';
import { TcpClientTransport, TcpServerTransport } from './tcp-transport.ts';
import { type AcknowledgedBytes, type Backoff, DEFAULT_BACKOFF, type Transport, type TransportHost, type Wire, type WireHandlers } from './transport.ts';

/** What the endpoint needs of a firmware profile (a `Profile` from gateway/src/profiles fits). */
export interface AstmProfileLike {
  name?: string;
  /** Link quirks: `lowLevel`, timers, `maxFrameText`, … (see link-options.ts for every key). */
  quirks?: object;
  transport?: { serial?: Partial<Omit<SerialSettings, 'path'>> };
}

export interface AstmNormalizeContext {
  analyzerId: string;
  endpoint: string;
  /** ISO 8601 time the message's last byte arrived. */
  receivedAt: string;
  remoteAddress: string;
}

/** The record layer's answer for one message (gateway/src/astm/normalize.ts `NormalizeResult` fits). */
export interface AstmNormalizeResult<Q = unknown> {
  events: DraftEvent[];
  controlId?: string;
  sender?: string;
  messageType: string;
  searchTerms: string[];
  hostQuery?: Q;
  /** Not a valid message: kept raw as rejected, no events. */
  reject?: string;
}

/** A host query answer whose sender is told when the analyzer took it (AstmEndpointOptions.answerHostQuery). */
export interface HostQueryReply {
  records: string[];
  delivered: () => void;
}

export interface AstmEndpointOptions<Q = unknown> {
  analyzer: AnalyzerConfig;
  profile: AstmProfileLike;
  store: GatewayStore;
  telemetry: Telemetry;
  log: Logger;
  /**
   * Text → events. May be asynchronous (the gateway resolves a tube barcode to its order's accession
   * from the store, astm/accessions.ts): the commit, and the ACK, wait for it.
   */
  normalize: (text: string, ctx: AstmNormalizeContext) => AstmNormalizeResult<Q> | Promise<AstmNormalizeResult<Q>>;
  /**
   * Records (without CR) to send back for a host query, in a new session; [] sends nothing. With
   * `delivered`, it is called once the analyzer took the answer (the send resolved: every frame
   * acknowledged, EOT sent), never for an answer refused or lost with its link.
   */
  answerHostQuery?: (query: Q) => Promise<string[] | HostQueryReply>;
  /** Called when a connection opens (the serial port, a TCP connection): order download sends its outbox. */
  onLink?: () => void;
  /** Injected clock (tests); the real one by default. */
  scheduler?: Scheduler;
  /** Serial reopen / TCP reconnect backoff. */
  reconnect?: Partial<Backoff>;
  /**
   * The analyzer's key in the configuration, as `lab-gateway check` names it: `analyzers[<index>]`
   * (the entry's place in the list). Without it, `analyzers[<id>]`.
   */
  configKey?: string;
}

/**
 * What became of a download (or a host query's answer) a records-only TCP link wrote, learnt when
 * its connection was dropped because the analyzer's TCP stack acknowledged nothing for
 * `silentPeerMs` (tcp-transport.ts): `received: false`, none of its bytes was acknowledged (they
 * never reached the analyzer, and never will: the connection was reset); `'unknown'`, part of it
 * was, or the kernel's count could not tell (bytes still in Node's buffer): the analyzer may hold
 * it. `reason` says so for the status and the alert. `connection`: the same object for every send
 * its close reports, told in the order written (order download sets a test back once for all).
 */
export interface UnreceivedSend {
  received: false | 'unknown';
  reason: string;
  connection: object;
}

export interface SendWorklistOptions {
  /**
   * Records-only TCP link: called at most once, after the send resolved, if the connection is
   * dropped before the analyzer's TCP stack acknowledged the download's bytes (UnreceivedSend).
   * Not called for a download it acknowledged, nor on an E1381 link (a send resolves there only
   * once the analyzer accepted every frame).
   */
  onUnreceived?(fate: UnreceivedSend): void;
}

/** A send written on a records-only TCP link, its bytes not yet known acknowledged (Link.unconfirmed). */
interface UnconfirmedSend {
  /** Its bytes' offsets among those the link wrote (Link.written): [start, end). */
  start: number;
  end: number;
  onUnreceived(fate: UnreceivedSend): void;
}

/**
 * Sends kept per connection until their bytes are known acknowledged. A look of the transport
 * that finds everything acknowledged (a quiet connection) empties it; one whose analyzer talks all
 * the time may go long without one: past this many, the oldest are forgotten (acknowledged long
 * since, unless the analyzer had stopped reading for that long).
 */
const MAX_UNCONFIRMED_SENDS = 1_000;

interface Link {
  id: number;
  wire: Wire;
  /** Bytes handed to the wire since the connection opened. */
  written: number;
  /** Records-only TCP: sends whose bytes are not yet known acknowledged, oldest first. */
  unconfirmed: UnconfirmedSend[];
  session: AstmLinkSession;
  /** Scheduler time the connection opened or last delivered bytes: which one the analyzer uses. */
  heardAt: number;
  /**
   * Scheduler time of the first byte the gateway wrote that the analyzer has not answered yet (no
   * byte from it since); undefined once it answers. A lone EOT asks for no answer.
   */
  unansweredSince: number | undefined;
  /**
   * The link stopped reading the wire (bytes wait behind a slow commit, e1381-session.ts
   * E1381_PAUSE_BYTES): nothing of the analyzer's can be heard, so its silence is not counted.
   */
  paused?: boolean;
  /** Scheduler time reading resumed: the analyzer's silence counts from it at the earliest (not heardAt, which picks the download's connection). */
  resumedAt?: number;
  /** The check that closes a TCP connection whose analyzer went silent (#peerSilent). */
  silentCheck: TimerHandle | undefined;
}

/**
 * Line trouble (frames refused, bytes ignored) is logged as one warning per this period at most,
 * with the counts of the period: a line set to the wrong parity refuses every frame, and a warning
 * per frame would bury the log.
 */
const LINE_WARN_INTERVAL_MS = 60_000;
/** Fewer bytes ignored than this in a period are stray bytes (ACK ACK before STX), not worth a warning. */
const IGNORED_WARN_BYTES = 64;

/** What to check when frames arrive garbled or nothing but stray bytes arrives, per transport. */
function lineHint(transport: 'serial' | 'tcp'): string {
  return transport === 'serial'
    ? "check the analyzer's serial settings (baud, data bits, parity) and the profile"
    : "check the analyzer's profile (E1381 framing and checksum, lowLevel)";
}

/**
 * What a records-only link adds to the reason kept with bytes that are not E1394 records
 * (`looksMisread`): that mode has no frames to refuse, so the reason itself must point at the line.
 */
function misreadHint(transport: 'serial' | 'tcp'): string {
  return `the bytes are not ASTM records (no H record where the message begins, or control characters in it) — ${lineHint(transport)}`;
}

/** Errors of a listening socket that the configuration's address or port causes. */
const LISTEN_CODES: ReadonlySet<string> = new Set(['EADDRINUSE', 'EADDRNOTAVAIL', 'EACCES']);

/**
 * The reason kept with a message cut off before its end, for the message browser: the cut, and
 * when frames of it were refused, how many and why (with what to check for a garbled line).
 */
function partialRejectReason(reason: PartialReason, refusals: PartialRefusals | undefined, transport: 'serial' | 'tcp', link: LinkOptions): string {
  // Not cut off by the line: refused for its size. The reason names the limit and the setting,
  // so that IT staff do not look for a line fault ("incomplete message (too-large)" before).
  if (reason === 'too-large') {
    return `message larger than ${link.maxMessageBytes} bytes (maxMessageBytes): its head is kept, the rest was not (refused frame by frame on an E1381 link, skipped to its end on a records-only one); raise analyzers[].overrides.maxMessageBytes if this analyzer's messages are this large`;
  }
  if (reason === 'overflow') {
    return `incomplete message (overflow): the bytes that came in the middle of it were not kept — more than 256 MiB waited for the store on a line the gateway cannot hold (a serial line without hardware flow control: set serial.rtscts if the analyzer and its cable support it)`;
  }
  // Whole, but not stored (the store failed or was slower than the reply delay), and the analyzer
  // went on with its next message rather than send it again (e1381-session.ts #beginAfterRefusedEnd).
  if (reason === 'not-resent') {
    return `message not stored (${refusals?.lastRefusal ?? 'not committed'}) and not sent again: the analyzer went on with its next message instead of repeating the refused end frame (it ignores NAK); kept as received`;
  }
  const base = `incomplete message (${reason})`;
  // A records-only link has no EOT and no frames: the receiver timer running out means the
  // analyzer stopped sending in the middle of a message. Before, the reason said only
  // "(receiver-timeout)", nothing a lab technician could act on.
  if (reason === 'receiver-timeout' && link.lowLevel === 'records-only') {
    const seconds = Math.max(1, Math.round(link.timers.receiverFrameMs / 1000));
    return `${base}: no L record, and nothing more from the analyzer for ${seconds} s (receiverFrameMs) — was it switched off, or its cable pulled, in the middle of the message? Its results may need to be sent again from the analyzer`;
  }
  if (!refusals) return base;
  const n = refusals.refusedFrames;
  const hint = refusals.lastCause === 'garbled' ? ` — ${lineHint(transport)}` : '';
  return `${base} after ${n} frame${n === 1 ? '' : 's'} refused: ${refusals.lastRefusal}${hint}`;
}

/**
 * An analyzer endpoint speaking ASTM (E1381 link + E1394 records) over serial, TCP server or TCP
 * client. It owns the commit: link message → normalize → `store.commit()` (raw bytes, status,
 * events, the ACK) → only then the ACK of the frame that completed the message (DESIGN.md §1.3).
 * A message cut off before its end is kept as rejected raw bytes, never turned into events.
 */
export class AstmEndpoint<Q = unknown> implements Component {
  readonly name: string;
  readonly #opt: AstmEndpointOptions<Q>;
  readonly #link: LinkOptions;
  readonly #scheduler: Scheduler;
  /** Misread records-only bytes already counted as line trouble (#misread). */
  readonly #misreadCounted = new WeakSet<Buffer>();
  readonly #log: Logger;
  readonly #links = new Set<Link>();
  readonly #pendingWrites = new Set<Promise<unknown>>();
  readonly #linkWaiters = new Set<(link: Link) => void>();
  /** Order downloads queued on a connection (sendWorklist), each with its way to be taken back. */
  readonly #worklists = new Map<AbortController, Link>();
  /** Link counters of connections already closed (open ones are added on read). */
  readonly #closedStats: LinkStats = emptyStats();
  #transport: Transport | undefined;
  #status: ComponentStatus = 'created';
  #nextLinkId = 1;
  #lastMessageAt: string | undefined;
  #state: EndpointState = 'starting';
  /** The state and detail last logged at info/warn: a failed reopen reported again is logged at debug. */
  #loggedState = '';
  /** Line-level refusals and ignored bytes since start (all links), for the status (`endpoint.link`). */
  readonly #line = { refused: 0, ignored: 0, lastRefusal: undefined as string | undefined, lastCause: undefined as RefusalCause | undefined, lastTroubleAt: -Infinity };
  /** The period of the rate-limited line warning (LINE_WARN_INTERVAL_MS). */
  readonly #lineWarn = { refused: 0, ignored: 0, since: -Infinity, loggedAt: -Infinity, timer: undefined as TimerHandle | undefined };
  /** Text encoding of the analyzer (profile `quirks.charset`): LIS1-A is 7-bit ASCII, most send Latin-1. */
  readonly #charset: 'ascii' | 'latin1' | 'utf8';

  constructor(options: AstmEndpointOptions<Q>) {
    this.#opt = options;
    this.name = `astm:${options.analyzer.id}`;
    this.#log = options.log;
    this.#scheduler = options.scheduler ?? realScheduler;
    // Profile quirks (with the site's overrides already applied, or applied here) → link options.
    this.#link = resolveLinkOptions(options.profile.quirks as Record<string, unknown> | undefined, options.analyzer.overrides);
    const charset = (options.profile.quirks as { charset?: unknown } | undefined)?.charset;
    this.#charset = charset === 'utf8' || charset === 'ascii' ? charset : 'latin1';
    const a = options.analyzer;
    const kinds = [a.serial ? 'serial' : '', a.tcp?.listen ? 'tcp.listen' : '', a.tcp?.connect ? 'tcp.connect' : ''].filter(Boolean);
    if (kinds.length !== 1) {
      const key = options.configKey ?? `analyzers[${a.id}]`;
      throw new GatewayError('GW_CONFIG_INVALID', `${key}: exactly one of serial, tcp.listen, tcp.connect is required (got ${kinds.join(', ') || 'none'})`, {
        details: { path: key },
      });
    }
  }

  get status(): ComponentStatus {
    return this.#status;
  }

  get linkOptions(): Readonly<LinkOptions> {
    return this.#link;
  }

  /** Open connections (1 for serial when the port is open). */
  get connections(): number {
    return this.#links.size;
  }

  get lastMessageAt(): string | undefined {
    return this.#lastMessageAt;
  }

  /** Link-layer counters since start (frames, refusals, duplicates, ignored bytes, partials…), for metrics. */
  linkStats(): LinkStats {
    const total = { ...this.#closedStats };
    for (const l of this.#links) addStats(total, l.session.stats);
    return total;
  }

  address(): { host: string; port: number } | undefined {
    return this.#transport?.address?.();
  }

  async start(): Promise<void> {
    if (this.#status === 'running' || this.#status === 'starting') return;
    this.#status = 'starting';
    this.#setState('starting');
    const a = this.#opt.analyzer;
    const backoff: Backoff = { ...DEFAULT_BACKOFF, ...this.#opt.reconnect };
    const host: TransportHost = {
      attach: (wire: Wire) => this.#attach(wire),
      state: (s: EndpointState, detail?: string) => this.#setState(s, detail),
      // TCP: an analyzer whose stack acknowledged nothing the gateway wrote for silentPeerMs is
      // gone (tcp-transport.ts); its connection is dropped with the reason, as #peerSilent's.
      peerAckMs: this.#link.timers.silentPeerMs,
      peerGone: (remote, seconds) => this.#log.warn('analyzer silent: connection closed', { remote, seconds, unacknowledged: true }),
      refused: (remote, maxConnections) =>
        this.#log.warn('connection refused: limit reached', {
          remote,
          maxConnections,
          hint: `this analyzer's port holds ${maxConnections} connections already: connections its converter left open as it reconnected (closed within about a minute once dead), or other programs connecting to the port`,
        }),
    };
    if (a.serial) this.#transport = new SerialTransport(serialSettings(a.serial, this.#opt.profile.transport?.serial), host, backoff);
    else if (a.tcp?.listen) this.#transport = new TcpServerTransport(a.tcp.listen, host);
    else if (a.tcp?.connect) this.#transport = new TcpClientTransport(a.tcp.connect, host, backoff);
    try {
      await this.#transport?.start();
      this.#status = 'running';
    } catch (err) {
      this.#status = 'failed';
      this.#setState('error', describeError(err));
      // A listening port that cannot be had (taken, not this machine's address, privileged) is
      // the configuration's to fix: named by its key, as an HL7 link's is.
      const listen = a.serial ? undefined : a.tcp?.listen;
      if (listen && LISTEN_CODES.has((err as NodeJS.ErrnoException).code ?? '')) {
        throw new GatewayError('GW_CONFIG_INVALID', `${this.#opt.configKey ?? `analyzers[${a.id}]`}.tcp.listen cannot listen on ${listen.host}:${listen.port}: ${describeError(err)}`, { cause: err });
      }
      throw new GatewayError('GW_ASTM_LINK', `analyzer ${a.id}: cannot start: ${describeError(err)}`, { cause: err });
    }
  }

  /**
   * Stop: refuse new sessions (ENQ → NAK), let commits in flight finish and their ACKs go out
   * (up to the deadline), then close the port/connections. Unfinished messages are kept as partials.
   */
  async stop(deadlineMs = 5_000): Promise<void> {
    if (this.#status === 'stopped' || this.#status === 'stopping') return;
    this.#status = 'stopping';
    const until = Date.now() + deadlineMs;
    while (Date.now() < until && [...this.#links].some((l) => l.session.state === 'committing')) {
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const link of [...this.#links]) link.session.close('stopped');
    await this.#transport?.stop();
    this.#lineWarn.timer?.cancel();
    this.#lineWarn.timer = undefined;
    this.#logLineTrouble();
    const rest = Math.max(0, until - Date.now());
    await Promise.race([Promise.allSettled([...this.#pendingWrites]), new Promise((r) => setTimeout(r, rest).unref())]);
    this.#status = 'stopped';
    this.#setState('stopped');
  }

  /**
   * Send an order download (worklist) to the analyzer: records without CR, H … L. Goes out when
   * the line is free on the connection the analyzer opened or spoke on last; rejects with
   * GW_ASTM_LINK when no connection is open or the analyzer refuses it.
   *
   * Not the first connection: an analyzer (or its serial-to-LAN converter) that restarts connects
   * again while its old connection still looks open here — no FIN or RST reached the gateway, and
   * it stays until keep-alive or TCP's retransmissions give up on it, many minutes when a firewall
   * drops its packets. Before, the download went to that old connection: no reply to ENQ, six
   * attempts, "not accepted", while the analyzer waited, connected and idle, on the new one.
   *
   * Moved when a connection opens: a download queued on an older connection whose first frame has
   * not gone out (its ENQ unanswered, or waiting its turn) is taken back (the session ends its ENQ
   * with EOT) and sent on the new one. Before, one queued just before the analyzer reconnected
   * stayed on the old connection through its six ENQ time-outs (about 140 s), was reported not
   * accepted, and only then went to the new connection. One whose frames started stays where it
   * is: the analyzer may hold part of it.
   *
   * A records-only link resolves once the download is written (it expects no answer):
   * `options.onUnreceived` is told later if its TCP connection is dropped before the analyzer's
   * stack acknowledged it (SendWorklistOptions; order download then sends it again).
   */
  async sendWorklist(records: readonly string[], options: SendWorklistOptions = {}): Promise<void> {
    for (;;) {
      let link: Link | undefined;
      for (const l of this.#links) if (!link || l.heardAt >= link.heardAt) link = l;
      if (!link) throw new GatewayError('GW_ASTM_LINK', `analyzer ${this.#opt.analyzer.id}: no open connection to send to`);
      const move = new AbortController();
      this.#worklists.set(move, link);
      try {
        await this.#sendTracked(link, records, options.onUnreceived, { signal: move.signal });
        return;
      } catch (err) {
        // Taken back for a newer connection: send it there (the loop picks the newest).
        const moved = move.signal.aborted && err instanceof GatewayError && err.details?.withdrawn === true;
        if (!moved || this.#status !== 'running') throw err;
        this.#log.info('order download moved to the newer connection', { from: link.id });
      } finally {
        this.#worklists.delete(move);
      }
    }
  }

  /**
   * `session.send`, and on a records-only TCP link the send's bytes kept with `onUnreceived` until
   * they are known acknowledged (#unconfirmed). A records-only session writes the whole message at
   * once, inside `send`: its bytes are those the link wrote during the call.
   */
  #sendTracked(link: Link, records: readonly string[], onUnreceived: ((fate: UnreceivedSend) => void) | undefined, options?: { signal: AbortSignal }): Promise<void> {
    const start = link.written;
    const sent = link.session.send(records, options);
    if (onUnreceived && this.#link.lowLevel === 'records-only' && link.wire.remote.startsWith('tcp:') && link.written > start) {
      link.unconfirmed.push({ start, end: link.written, onUnreceived });
      if (link.unconfirmed.length > MAX_UNCONFIRMED_SENDS) link.unconfirmed.shift();
    }
    return sent;
  }

  /**
   * The connection was dropped because its analyzer acknowledged nothing, or reset by the analyzer
   * while it acknowledged nothing (tcp-transport.ts): each
   * send written on it whose bytes were not all acknowledged is told (UnreceivedSend). Those none
   * of whose bytes were acknowledged never reached the analyzer; those wholly acknowledged did
   * (never told: sending them again would have the analyzer run an order twice).
   */
  #unconfirmedOnClose(link: Link, acked: AcknowledgedBytes, log: Logger): void {
    const sends = link.unconfirmed.splice(0);
    const why = acked.byPeerReset
      ? `the analyzer reset the connection (restarted?) after it acknowledged nothing for ${acked.seconds} s`
      : `the connection was closed after it acknowledged nothing for ${acked.seconds} s`;
    const connection = {};
    for (const send of sends) {
      if (send.end <= acked.atLeast) continue;
      const fate: UnreceivedSend =
        send.start >= acked.atMost
          ? { received: false, reason: `not received by the analyzer: ${why}`, connection }
          : { received: 'unknown', reason: `perhaps received by the analyzer, perhaps not (part of it, or all, was acknowledged before ${why})`, connection };
      try {
        send.onUnreceived(fate);
      } catch (err) {
        log.warn('observer of an unreceived send failed', { error: describeError(err) });
      }
    }
  }

  // ---------------------------------------------------------------------------------------------

  #setState(state: EndpointState, detail?: string): void {
    this.#state = state;
    this.#opt.telemetry.emit('endpoint.state', {
      endpoint: this.#opt.analyzer.id,
      kind: 'astm',
      state,
      connections: this.#links.size,
      ...(detail !== undefined ? { detail } : {}),
    });
    // A transport reports its error again after every failed reopen (so that the status keeps it);
    // the log says it once, until the state or the reason changes.
    const key = `${state}\n${detail ?? ''}`;
    if (key === this.#loggedState) this.#log.debug('analyzer link', { state, detail });
    else if (state === 'error' || state === 'disconnected') this.#log.warn('analyzer link', { state, detail });
    else this.#log.info('analyzer link', { state, detail });
    this.#loggedState = key;
  }

  get #transportKind(): 'serial' | 'tcp' {
    return this.#opt.analyzer.serial ? 'serial' : 'tcp';
  }

  /**
   * Frames refused for the line's sake, or bytes ignored outside frames: counted for the status
   * (`endpoint.link`), logged as one warning per LINE_WARN_INTERVAL_MS at most.
   */
  #lineTrouble(refused: number, ignored: number, refusal?: { reason: string; cause: RefusalCause }): void {
    const now = this.#scheduler.now();
    const line = this.#line;
    line.refused += refused;
    line.ignored += ignored;
    if (refusal) {
      line.lastRefusal = refusal.reason;
      line.lastCause = refusal.cause;
    }
    line.lastTroubleAt = now;
    this.#emitLine();
    const w = this.#lineWarn;
    if (now - w.since >= LINE_WARN_INTERVAL_MS && w.timer === undefined) {
      // A period that never reached a warning (a few stray bytes) is forgotten.
      w.refused = 0;
      w.ignored = 0;
      w.since = now;
    }
    w.refused += refused;
    w.ignored += ignored;
    if (w.refused === 0 && w.ignored < IGNORED_WARN_BYTES) return;
    if (now - w.loggedAt >= LINE_WARN_INTERVAL_MS) this.#logLineTrouble();
    else if (w.timer === undefined) {
      w.timer = this.#scheduler.schedule(w.loggedAt + LINE_WARN_INTERVAL_MS - now, () => {
        w.timer = undefined;
        this.#logLineTrouble();
      });
    }
  }

  #logLineTrouble(): void {
    const w = this.#lineWarn;
    if (w.refused === 0 && w.ignored < IGNORED_WARN_BYTES) return;
    const now = this.#scheduler.now();
    const garbled = w.ignored >= IGNORED_WARN_BYTES || (w.refused > 0 && this.#line.lastCause === 'garbled');
    this.#log.warn('analyzer line: frames refused or bytes ignored', {
      framesRefused: w.refused,
      ...(w.refused > 0 ? { lastRefusal: this.#line.lastRefusal } : {}),
      ignoredBytes: w.ignored,
      seconds: Math.max(1, Math.round((now - w.since) / 1000)),
      ...(garbled ? { hint: lineHint(this.#transportKind) } : {}),
    });
    w.loggedAt = now;
    w.since = now;
    w.refused = 0;
    w.ignored = 0;
  }

  /**
   * Bytes a records-only link read that are not E1394 records (`looksMisread`): counted as line
   * trouble like an E1381 line's bytes outside frames, so the log's line warning and the status'
   * LINE_ERRORS name the serial settings (ingress/astm README "Line trouble"). Before, such a line
   * read OK and its bytes were kept as "incomplete message (receiver-timeout)".
   */
  #misread(raw: Buffer): boolean {
    if (this.#link.lowLevel !== 'records-only' || !looksMisread(raw)) return false;
    // A message the store did not take is committed again with the same bytes: counted once.
    if (!this.#misreadCounted.has(raw)) {
      this.#misreadCounted.add(raw);
      this.#lineTrouble(0, raw.length);
    }
    return true;
  }

  #emitLine(): void {
    const line = this.#line;
    // The settings hint fits a line that garbles frames or delivers bytes no frame starts with.
    const garbled = line.lastCause === 'garbled' || line.ignored > 0;
    this.#opt.telemetry.emit('endpoint.link', {
      endpoint: this.#opt.analyzer.id,
      framesAccepted: this.linkStats().framesAccepted,
      framesRefused: line.refused,
      ignoredBytes: line.ignored,
      ...(line.lastRefusal !== undefined ? { lastRefusal: line.lastRefusal } : {}),
      ...(garbled ? { hint: lineHint(this.#transportKind) } : {}),
    });
  }

  #attach(wire: Wire): WireHandlers {
    const id = this.#nextLinkId++;
    const log = this.#log.child({ link: id, remote: wire.remote });
    const session: AstmLinkSession = createLinkSession({
      link: this.#link,
      scheduler: this.#scheduler,
      write: (bytes) => {
        if (link.unansweredSince === undefined && !(bytes.length === 1 && bytes[0] === EOT)) link.unansweredSince = this.#scheduler.now();
        link.written += bytes.length;
        wire.write(bytes);
      },
      onMessage: (text, raw, meta) => this.#onMessage(link, text, raw, meta),
      onPartial: (raw, reason, refusals) => this.#onPartial(link, raw, reason, refusals),
      onIgnoredBytes: (count) => {
        this.#opt.telemetry.emit('endpoint.ignored-bytes', { endpoint: this.#opt.analyzer.id, count });
        log.debug('ignored bytes outside frames', { count });
        this.#lineTrouble(0, count);
      },
      onEvent: (e) => {
        if (e.kind === 'send-aborted' || e.kind === 'timeout' || e.kind === 'overflow') log.warn(`link ${e.kind}`, e.detail ? { detail: e.detail } : undefined);
        else log.debug(`link ${e.kind}`, e.detail ? { detail: e.detail } : undefined);
        // A message the record layer or the store refused is not the line's fault: the message
        // browser and the store's health say why.
        if (e.kind === 'frame-refused' && e.cause !== undefined && e.cause !== 'message') this.#lineTrouble(1, 0, { reason: e.detail ?? 'refused', cause: e.cause });
        if (e.kind === 'timeout') this.#peerSilent(link, log);
      },
      // LIS1-A §6.2.6: not ready → NAK to ENQ. Stopping, or a store that cannot commit (DESIGN.md §2).
      isBusy: () => this.#status === 'stopping' || this.#status === 'stopped' || this.#opt.store.health !== 'ok',
      // A paused wire is the gateway's doing: the analyzer's silence is not counted meanwhile
      // (#peerSilent), and counts again from the resume. Before, a store slower than the reply
      // delay had a streaming analyzer's paused connection dropped as silent after silentPeerMs,
      // and what waited in its socket lost with it.
      ...(wire.pause && wire.resume
        ? {
            pause: () => {
              link.paused = true;
              link.silentCheck?.cancel();
              link.silentCheck = undefined;
              wire.pause?.();
            },
            resume: () => {
              link.paused = false;
              link.resumedAt = this.#scheduler.now();
              link.unansweredSince = undefined;
              wire.resume?.();
            },
          }
        : {}),
    });
    const link: Link = { id, wire, written: 0, unconfirmed: [], session, heardAt: this.#scheduler.now(), unansweredSince: undefined, silentCheck: undefined };
    this.#links.add(link);
    // Downloads queued on older connections and not started there go on this one (sendWorklist).
    for (const [move, queuedOn] of this.#worklists) if (queuedOn !== link) move.abort();
    for (const w of this.#linkWaiters) w(link);
    this.#linkWaiters.clear();
    this.#setState(this.#opt.analyzer.tcp?.listen ? 'listening' : 'connected', wire.remote);
    try {
      this.#opt.onLink?.();
    } catch (err) {
      log.warn('link observer failed', { error: describeError(err) });
    }
    return {
      data: (bytes) => {
        link.heardAt = this.#scheduler.now();
        link.unansweredSince = undefined;
        link.silentCheck?.cancel();
        link.silentCheck = undefined;
        link.session.push(bytes);
      },
      acknowledged: (upTo) => {
        // Sends wholly acknowledged by the analyzer's TCP stack: received, nothing more to know.
        let n = 0;
        while (n < link.unconfirmed.length && (link.unconfirmed[n] as UnconfirmedSend).end <= upTo) n++;
        if (n > 0) link.unconfirmed.splice(0, n);
      },
      closed: (detail, acked) => {
        link.silentCheck?.cancel();
        link.silentCheck = undefined;
        if (!this.#links.delete(link)) return;
        link.session.close(this.#status === 'stopping' ? 'stopped' : 'closed');
        addStats(this.#closedStats, link.session.stats);
        log.info('link closed', detail ? { detail } : undefined);
        if (this.#opt.analyzer.tcp?.listen) this.#setState('listening', `connection closed: ${detail ?? ''}`);
        // After the state: the downloads put back are sent again when the analyzer connects.
        if (acked) this.#unconfirmedOnClose(link, acked, log);
        link.unconfirmed = [];
      },
    };
  }

  /**
   * A link timer ran out waiting for the analyzer (no reply to ENQ or to a frame, no frame or EOT
   * after an ACK). On an E1381 TCP link whose analyzer has answered nothing since the gateway's
   * first unanswered byte, the connection is closed once that silence reaches `silentPeerMs`:
   * the TCP client then reconnects, and the status shows the link down. An analyzer powered off or
   * unplugged without FIN leaves that byte unacknowledged, and the kernel sends no keepalive probe
   * while it is (it retransmits for about 15 minutes): before, the tray showed the analyzer
   * connected all that time while nothing arrived (test/integration/astm-silent-peer-audit.test.ts).
   * A serial port is left open: reopening it would not reach a switched-off analyzer sooner.
   *
   * A records-only link has no reply to wait for; its only timer is the receiver's, which runs out
   * when the analyzer stopped in the middle of a message (no L record). Its connection is closed
   * once the analyzer has sent nothing for `silentPeerMs` since its last byte: an order download
   * or a host query answer written to it meanwhile held the kernel's keepalive off, and the link
   * read "connected" for about 15 minutes (test/integration/astm-records-only-silent-audit.test.ts).
   * An analyzer idle after a whole message is never closed by it.
   */
  #peerSilent(link: Link, log: Logger): void {
    const recordsOnly = this.#link.lowLevel === 'records-only';
    const waitedSince = (): number | undefined => (recordsOnly ? Math.max(link.heardAt, link.resumedAt ?? 0) : link.unansweredSince);
    const since = waitedSince();
    if (since === undefined || link.silentCheck !== undefined || !link.wire.abort || link.paused === true) return;
    const limit = this.#link.timers.silentPeerMs;
    link.silentCheck = this.#scheduler.schedule(Math.max(0, since + limit - this.#scheduler.now()), () => {
      link.silentCheck = undefined;
      if (waitedSince() !== since || !this.#links.has(link) || link.paused === true) return;
      const seconds = Math.round((this.#scheduler.now() - since) / 1000);
      log.warn('analyzer silent: connection closed', { seconds });
      link.wire.abort?.(
        recordsOnly
          ? `the analyzer stopped in the middle of a message and sent nothing for ${seconds} s (switched off, or its cable pulled?): connection closed`
          : `no answer from the analyzer for ${seconds} s (switched off, or its cable pulled?): connection closed`,
      );
    });
  }

  async #onMessage(link: Link, latin1Text: string, raw: Buffer, meta: MessageMeta): Promise<MessageReply> {
    const receivedAt = new Date().toISOString();
    // The link hands over bytes as Latin-1 (one char per byte); a UTF-8 analyzer's text is re-read.
    const text = this.#charset === 'utf8' ? Buffer.from(latin1Text, 'latin1').toString('utf8') : latin1Text;
    const endpoint = this.#opt.analyzer.id;
    let result: AstmNormalizeResult<Q>;
    try {
      result = await this.#opt.normalize(text, { analyzerId: endpoint, endpoint, receivedAt, remoteAddress: link.wire.remote });
    } catch (err) {
      // A record-layer bug must not take the link down: keep the bytes, answer per profile.
      result = { events: [], messageType: 'ASTM', searchTerms: [], reject: `normalize failed: ${describeError(err)}` };
    }
    if (result.reject !== undefined && this.#misread(raw)) result = { ...result, reject: `${result.reject} — ${misreadHint(this.#transportKind)}` };
    const rejected = result.reject !== undefined;
    const reply: MessageReply = rejected ? this.#link.rejectedReply : 'ack';
    const message: InboundMessage = {
      kind: 'astm',
      endpoint,
      remoteAddress: link.wire.remote,
      receivedAt,
      encoding: this.#charset,
      raw,
      status: rejected ? 'rejected' : 'accepted',
      ack: reply === 'ack' ? BYTE.ACK : BYTE.NAK,
      // A retransmitted message (the ACK of its last frame was lost) has the same text.
      dedupKey: `astm|${endpoint}|${createHash('sha256').update(latin1Text, 'latin1').digest('hex')}`,
      searchTerms: result.searchTerms,
      messageType: result.messageType,
      ...(result.controlId !== undefined ? { controlId: result.controlId } : {}),
      ...(result.sender !== undefined ? { sender: result.sender } : {}),
      ...(rejected ? { rejectReason: result.reject } : {}),
    };
    const commit = this.#opt.store.commit(message, rejected ? [] : result.events);
    this.#track(commit);
    let outcome: 'accepted' | 'rejected' | 'duplicate';
    let finalReply: MessageReply;
    try {
      const res = await commit;
      outcome = res.duplicate ? 'duplicate' : rejected ? 'rejected' : 'accepted';
      // A resend of a message whose stored record is damaged (store README "A resend of a damaged
      // record"): answered as the duplicate it is; the operator hears of the damage here, as on an
      // HL7 link (hl7-intake.ts), and of whether the record was written again from the resend.
      if (res.damagedRecord) this.#log.warn('resend of a message whose stored record is damaged: answered as a duplicate', { controlId: result.controlId, ...res.damagedRecord });
      finalReply = res.ack && res.ack[0] === NAK ? 'nak' : reply;
    } catch (err) {
      // Not stored → NAK (LIS1-A §6.5.1): the analyzer retransmits; nothing was acknowledged.
      this.#log.error('store commit failed; frame refused', { error: describeError(err) });
      this.#opt.store.countRejectedWithoutCommit();
      this.#opt.telemetry.emit('intake.message', {
        endpoint,
        kind: 'astm',
        outcome: 'rejected',
        ackLatencyMs: this.#scheduler.now() - meta.completedAt,
        bytes: raw.length,
        messageType: result.messageType,
        reason: `store: ${describeError(err)}`,
      });
      throw err;
    }
    this.#lastMessageAt = receivedAt;
    // The frames of this message count against the refusals of the last minute (status health).
    if (this.#scheduler.now() - this.#line.lastTroubleAt < LINE_WARN_INTERVAL_MS) this.#emitLine();
    this.#opt.telemetry.emit('intake.message', {
      endpoint,
      kind: 'astm',
      outcome,
      ackLatencyMs: this.#scheduler.now() - meta.completedAt,
      bytes: raw.length,
      messageType: result.messageType,
      ...(rejected ? { reason: result.reject } : {}),
    });
    if (rejected) this.#log.warn('message rejected', { reason: result.reject, bytes: raw.length });
    if (!rejected && result.hostQuery !== undefined && this.#opt.answerHostQuery) this.#answer(link, result.hostQuery);
    return finalReply;
  }

  /**
   * Answer a host query in a new session once the analyzer's session has ended (protocols.md §2.4).
   *
   * An answer written to a records-only TCP analyzer that was switched off meanwhile, its
   * connection dropped because it acknowledged none of it (#unconfirmedOnClose), is not sent again:
   * the analyzer back on no longer waits for it, would read it as an order download, and asks again
   * for the specimen when it is loaded again. Before, it was logged "host query answered" and
   * nothing said it was lost; now a warning and an alert say so.
   */
  #answer(link: Link, query: Q): void {
    const answer = this.#opt.answerHostQuery as (q: Q) => Promise<string[] | HostQueryReply>;
    const unreceived = (fate: UnreceivedSend): void => {
      this.#log.warn('host query answer not received by the analyzer', { reason: fate.reason });
      if (fate.received === false) this.#opt.telemetry.alert('warning', 'GW_ASTM_LINK', `analyzer ${this.#opt.analyzer.id}: host query answer ${fate.reason}; not sent again: load the specimen again for the analyzer to ask for it`, this.#opt.analyzer.id);
    };
    const p = (async () => {
      const reply = await answer(query);
      const records = Array.isArray(reply) ? reply : reply.records;
      if (records.length === 0) return;
      // The session sends only from a neutral line: after the analyzer's EOT, or after it
      // honours our receiver interrupt at a message boundary.
      try {
        await this.#sendTracked(link, records, unreceived);
      } catch (err) {
        // Analyzers that close TCP right after EOT (MALDI Biotyper: a connection per session)
        // take the answer on their next connection.
        if (this.#links.has(link) || this.#status !== 'running') throw err;
        const next = await this.#nextLink(this.#link.timers.contentionMs);
        if (!next) throw err;
        await this.#sendTracked(next, records, unreceived);
      }
      this.#log.info('host query answered', { records: records.length });
      // Only an answer the analyzer took counts (order download: its tests are downloaded). Before,
      // they counted once the answer was built: one NAKed or lost with its link left the order
      // marked downloaded and never sent (test/integration/review-s22-astmb-query-answer-refused.test.ts).
      if (!Array.isArray(reply)) reply.delivered();
    })().catch((err: unknown) => {
      this.#log.warn('host query answer not delivered', { error: describeError(err) });
      this.#opt.telemetry.alert('warning', 'GW_ASTM_LINK', `host query answer not delivered: ${describeError(err)}`, this.#opt.analyzer.id);
    });
    this.#track(p);
  }

  /** The next connection to open, or undefined after `ms`. */
  #nextLink(ms: number): Promise<Link | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#linkWaiters.delete(waiter);
        resolve(undefined);
      }, ms);
      timer.unref();
      const waiter = (l: Link): void => {
        clearTimeout(timer);
        resolve(l);
      };
      this.#linkWaiters.add(waiter);
    });
  }

  #onPartial(link: Link, raw: Buffer, reason: PartialReason, refusals?: PartialRefusals): void {
    const endpoint = this.#opt.analyzer.id;
    // Frames refused to the sender's retry limit are often why it gave up: the reason says so
    // (before, "incomplete message (eot-before-end)" alone hid a garbled serial line).
    let rejectReason = partialRejectReason(reason, refusals, this.#transportKind, this.#link);
    if (this.#misread(raw)) rejectReason += ` — ${misreadHint(this.#transportKind)}`;
    this.#log.warn('incomplete message kept as rejected raw bytes', { reason: rejectReason, bytes: raw.length });
    this.#opt.telemetry.alert('warning', 'GW_ASTM_LINK', `analyzer ${endpoint}: ${rejectReason}, kept as rejected raw bytes`, endpoint);
    const commit = this.#opt.store
      .commit(
        {
          kind: 'astm',
          endpoint,
          remoteAddress: link.wire.remote,
          receivedAt: new Date().toISOString(),
          encoding: 'latin1',
          raw,
          status: 'rejected',
          rejectReason,
          messageType: 'ASTM',
        },
        [],
      )
      .then(
        () =>
          this.#opt.telemetry.emit('intake.message', { endpoint, kind: 'astm', outcome: 'rejected', ackLatencyMs: 0, bytes: raw.length, reason: rejectReason }),
        (err: unknown) => {
          this.#opt.store.countRejectedWithoutCommit();
          this.#log.error('incomplete message could not be stored', { error: describeError(err), bytes: raw.length });
        },
      );
    this.#track(commit);
  }

  #track(p: Promise<unknown>): void {
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    this.#pendingWrites.add(settled);
    void settled.then(() => this.#pendingWrites.delete(settled));
  }
}

function addStats(into: LinkStats, from: Readonly<LinkStats>): void {
  for (const key of Object.keys(into) as Array<keyof LinkStats>) into[key] += from[key];
}
