import { GatewayError } from '../../errors.ts';

/**
 * Every link-layer timer and limit, with its default and the clause it comes from. Profiles set
 * them under `quirks.timers` (or `quirks` for the non-timer limits); a site overrides them per
 * analyzer under `analyzers[].overrides` with the same shape. All times are milliseconds.
 */
export interface LinkTimers {
  /** LIS1-A §6.5.2: the sender waits this long for ACK, NAK or ENQ after its ENQ; then EOT. */
  establishmentMs: number;
  /** LIS1-A §6.5.2: the sender waits this long for the reply to a frame; then EOT (abort). */
  senderFrameReplyMs: number;
  /** LIS1-A §6.5.2: the receiver waits this long for a frame or EOT; then the line is neutral. */
  receiverFrameMs: number;
  /** LIS1-A §6.5.2: "A receiver can delay its reply for up to 15 s" — a commit slower than this is NAKed. */
  receiverReplyDelayMs: number;
  /** LIS1-A §6.2.6: after NAK to ENQ, wait at least this long before the next ENQ. */
  busyRetryMs: number;
  /** LIS1-A §6.2.7.1 / §6.5.2.2: after yielding in contention, the computer waits this long for the instrument's ENQ. */
  contentionMs: number;
  /** LIS1-A §6.3.5: after honouring a receiver interrupt, do not re-enter establishment for this long. */
  interruptHoldoffMs: number;
  /**
   * Not a standard timer: after the CR of a frame trailer, how long to wait for its LF before
   * evaluating the frame anyway (senders that end frames with CR only).
   */
  trailerGraceMs: number;
  /**
   * Not a standard timer: on a TCP link, how long the analyzer may leave the gateway's bytes
   * unanswered, once a link timer above ran out waiting for it, before its connection is taken for
   * dead and closed (the TCP client then reconnects). An analyzer powered off or unplugged while
   * the gateway's last ACK or ENQ was on its way sends no FIN, and the kernel's keepalive probes
   * wait for that byte's acknowledgement: without this the connection looked open for about 15
   * minutes (tcp_retries2). An idle link needs no answer and is never closed by it. On a
   * records-only link: how long the analyzer may stay silent after stopping in the middle of a
   * message (its receiver timer ran out) before its connection is closed. On any TCP link (Linux):
   * how long the analyzer's TCP stack may leave bytes the gateway wrote unacknowledged, with nothing
   * from it since, before its connection is dropped (tcp-transport.ts).
   */
  silentPeerMs: number;
}

export const DEFAULT_TIMERS: Readonly<LinkTimers> = {
  establishmentMs: 15_000,
  senderFrameReplyMs: 15_000,
  receiverFrameMs: 30_000,
  receiverReplyDelayMs: 15_000,
  busyRetryMs: 10_000,
  contentionMs: 20_000,
  interruptHoldoffMs: 15_000,
  trailerGraceMs: 200,
  silentPeerMs: 60_000,
};

/** Text encoding of the analyzer (profile quirk `charset`): LIS1-A §6.1.2 is 7-bit ASCII; most send Latin-1. */
export type LinkCharset = 'ascii' | 'latin1' | 'utf8';

export const LowLevelModes = ['e1381', 'records-only'] as const;
export type LowLevelMode = (typeof LowLevelModes)[number];

export interface LinkOptions {
  /** 'e1381': ENQ/frames/ACK (LIS1-A §6); 'records-only': bare E1394 records, no replies. */
  lowLevel: LowLevelMode;
  timers: LinkTimers;
  /** LIS1-A §6.5.1.2: a frame refused this many times aborts the message. */
  maxRetransmissions: number;
  /** ENQ attempts (NAK or timeout) before a send fails; cobas e411 uses six (protocols.md §4). */
  maxEnqAttempts: number;
  /** Text characters per frame when sending: 240 (E1381-95/-02, S3 §3.2.3.1); LIS1-A allows up to 63 993. */
  maxFrameText: number;
  /** Largest frame accepted on receive (bytes); longer frames are NAKed. LIS1-A §6.3.1 allows 64 000; Yumizen sends 26 KB. */
  maxReceiveFrameBytes: number;
  /** Largest message accepted (bytes); a longer one is kept as a rejected partial. */
  maxMessageBytes: number;
  /** Send EOT in place of ACK at a message boundary when the gateway has something to send (LIS1-A §6.3.5). */
  receiverInterrupt: boolean;
  /** Honour the receiver's interrupt (EOT reply) when the gateway is the sender (LIS1-A §6.3.5). */
  honourInterrupt: boolean;
  /** What a message ends with: the L record (E1394), or any end frame (ETX) for senders that send no L. */
  messageEnd: 'l-record' | 'end-frame';
  /** Reply to a message the record layer rejects (kept raw either way). */
  rejectedReply: 'nak' | 'ack';
  /** Record separator when sending records-only. */
  recordSeparator: '\r' | '\r\n' | '\n';
  /** Outgoing layout: one record per frame (LIS1-A §6.3.1.1, standard) or the whole message in one frame. */
  frameLayout: 'record-per-frame' | 'message-per-frame';
  /** How outgoing records are encoded (outgoing-text.ts); the endpoint decodes incoming text by the same quirk. */
  charset: LinkCharset;
}

export const DEFAULT_LINK_OPTIONS: Readonly<LinkOptions> = {
  lowLevel: 'e1381',
  timers: DEFAULT_TIMERS,
  maxRetransmissions: 6,
  maxEnqAttempts: 6,
  maxFrameText: 240,
  maxReceiveFrameBytes: 1_048_576,
  maxMessageBytes: 16 * 1_048_576,
  receiverInterrupt: true,
  honourInterrupt: true,
  messageEnd: 'l-record',
  rejectedReply: 'nak',
  recordSeparator: '\r',
  frameLayout: 'record-per-frame',
  charset: 'latin1',
};

/**
 * Profile quirk names (gateway/src/profiles/types.ts `ProfileQuirks`) → link option names. Both
 * spellings are accepted; the profile's win when both are given in one source.
 */
const QUIRK_ALIASES = {
  establishmentTimeoutMs: 'establishmentMs',
  replyTimeoutMs: 'senderFrameReplyMs',
  frameTimeoutMs: 'receiverFrameMs',
  nakRetryDelayMs: 'busyRetryMs',
  contentionTimeoutMs: 'contentionMs',
  maxRetries: 'maxRetransmissions',
  maxIncomingFrame: 'maxReceiveFrameBytes',
  outgoingFrameLayout: 'frameLayout',
} as const;

type Source = Record<string, unknown> | undefined;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Resolve link options from a profile's quirks and a site's overrides (later wins). Unknown keys
 * are ignored (they belong to the record layer); a known key with a bad value is a config error
 * naming the key.
 */
export function resolveLinkOptions(...sources: Source[]): LinkOptions {
  const out: LinkOptions = { ...DEFAULT_LINK_OPTIONS, timers: { ...DEFAULT_TIMERS } };
  for (const given of sources) {
    if (!isRecord(given)) continue;
    const src: Record<string, unknown> = { ...given };
    for (const [alias, key] of Object.entries(QUIRK_ALIASES)) if (given[alias] !== undefined) src[key] = given[alias];
    const timers = isRecord(src.timers) ? src.timers : {};
    for (const key of Object.keys(DEFAULT_TIMERS) as Array<keyof LinkTimers>) {
      // Timers may sit under `timers` or at the top level of the quirks.
      const v = timers[key] ?? src[key];
      if (v === undefined) continue;
      out.timers[key] = positiveNumber(v, key, true);
    }
    const lowLevel = src.lowLevel;
    if (lowLevel !== undefined) {
      // 'none' is the record layer's spelling of records-only.
      if (lowLevel === 'none' || lowLevel === 'records-only') out.lowLevel = 'records-only';
      else if (lowLevel === 'e1381') out.lowLevel = 'e1381';
      else throw invalid('lowLevel', lowLevel);
    }
    for (const key of ['maxRetransmissions', 'maxEnqAttempts', 'maxFrameText', 'maxReceiveFrameBytes', 'maxMessageBytes'] as const) {
      if (src[key] !== undefined) out[key] = Math.floor(positiveNumber(src[key], key, false));
    }
    if (out.maxFrameText > 63_993) throw invalid('maxFrameText', out.maxFrameText, 'LIS1-A §6.3.1 allows at most 63 993 text characters');
    for (const key of ['receiverInterrupt', 'honourInterrupt'] as const) {
      const v = src[key];
      if (v === undefined) continue;
      if (typeof v !== 'boolean') throw invalid(key, v);
      out[key] = v;
    }
    if (src.messageEnd !== undefined) {
      if (src.messageEnd !== 'l-record' && src.messageEnd !== 'end-frame') throw invalid('messageEnd', src.messageEnd);
      out.messageEnd = src.messageEnd;
    }
    if (src.rejectedReply !== undefined) {
      if (src.rejectedReply !== 'nak' && src.rejectedReply !== 'ack') throw invalid('rejectedReply', src.rejectedReply);
      out.rejectedReply = src.rejectedReply;
    }
    if (src.frameLayout !== undefined) {
      if (src.frameLayout !== 'record-per-frame' && src.frameLayout !== 'message-per-frame') throw invalid('frameLayout', src.frameLayout);
      out.frameLayout = src.frameLayout;
    }
    if (src.charset !== undefined) {
      if (src.charset !== 'ascii' && src.charset !== 'latin1' && src.charset !== 'utf8') throw invalid('charset', src.charset);
      out.charset = src.charset;
    }
    if (src.recordSeparator !== undefined) {
      const v = src.recordSeparator;
      if (v !== '\r' && v !== '\r\n' && v !== '\n') throw invalid('recordSeparator', v);
      out.recordSeparator = v;
    }
  }
  return out;
}

function positiveNumber(v: unknown, key: string, allowZero: boolean): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) throw invalid(key, v);
  return v;
}

function invalid(key: string, value: unknown, why = 'invalid value'): GatewayError {
  return new GatewayError('GW_CONFIG_INVALID', `ASTM link option ${key}: ${why} (${JSON.stringify(value)})`, { details: { key } });
}
