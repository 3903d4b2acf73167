import type { EndpointState } from '../../telemetry.ts';

/**
 * How the endpoint sees a byte pipe, whatever carries it (a serial port, an accepted TCP
 * connection, an outbound TCP connection). One `Wire` = one link state machine.
 */
export interface Wire {
  /** `serial:/dev/ttyUSB0` or `tcp:192.0.2.7:50123`. */
  readonly remote: string;
  write(bytes: Buffer): void;
  /** Close this connection (a transport may then reopen or reconnect). */
  close(): void;
  /**
   * Stop reading, so the sender is held by flow control (TCP's window; RTS/CTS or XON/XOFF on a
   * serial line); `resume` reads again. Absent where nothing would hold the sender (a serial line
   * without flow control: the bytes would be lost in the driver instead).
   */
  pause?(): void;
  resume?(): void;
  /**
   * Drop the connection at once, without waiting for the peer (`close` ends it politely, which a
   * dead peer never completes); `reason` becomes the detail of its end. TCP wires only.
   */
  abort?(reason: string): void;
}

/**
 * TCP: a connection dropped because its analyzer's TCP stack acknowledged nothing for `seconds`:
 * where what it acknowledged ends, as an offset in the bytes handed to `Wire.write` (counted from
 * the connection's first). Known within bounds: exactly (`atLeast` = `atMost`) when every byte
 * written had reached the kernel, which holds the unacknowledged ones; wider when some still waited
 * in Node's buffer, part of a write perhaps in the kernel. Bytes at or past `atMost` never reached
 * the analyzer: the kernel dropped them with a reset, so they never arrive later either. Bytes
 * before `atLeast` did reach its TCP stack.
 *
 * `byPeerReset`: the connection ended with the analyzer's reset (it restarted within the bound:
 * its new TCP stack answered the gateway's retransmission with RST) while the gateway's last look
 * found it acknowledging nothing for `seconds`; the bounds are that look's.
 */
export interface AcknowledgedBytes {
  atLeast: number;
  atMost: number;
  seconds: number;
  byPeerReset?: boolean;
}

export interface WireHandlers {
  data(bytes: Buffer): void;
  /**
   * The wire is gone (peer closed, cable pulled, adapter removed). `acknowledged`: it was dropped
   * because its analyzer acknowledged nothing (TCP), or its analyzer reset it while acknowledging
   * nothing, and where what it acknowledged ends.
   */
  closed(detail?: string, acknowledged?: AcknowledgedBytes): void;
  /** TCP: every byte handed to `Wire.write` before offset `upTo` was acknowledged by the analyzer's TCP stack. */
  acknowledged?(upTo: number): void;
}

export interface TransportHost {
  /** A wire opened: returns where its bytes and its end go. */
  attach(wire: Wire): WireHandlers;
  /** Transport state for telemetry (`listening`, `connected`, `connecting`, `disconnected`, `error`). */
  state(state: EndpointState, detail?: string): void;
  /**
   * TCP: how long the analyzer may leave the gateway's bytes unacknowledged by its TCP stack,
   * having sent nothing since, before its connection is dropped (ms; absent or 0: never). The
   * endpoint gives its `silentPeerMs`.
   */
  peerAckMs?: number;
  /** TCP: the connection to `remote` is dropped: its analyzer acknowledged nothing for `seconds` (for the log). */
  peerGone?(remote: string, seconds: number): void;
  /** TCP server: a connection from `remote` was refused, `maxConnections` being open already (for the log). */
  refused?(remote: string, maxConnections: number): void;
}

export interface Transport {
  start(): Promise<void>;
  /** Stop listening/reconnecting and close every wire. Idempotent. */
  stop(): Promise<void>;
  address?(): { host: string; port: number } | undefined;
}

/** Reopen/reconnect delays: doubling from `initialMs` up to `maxMs`, with ±20 % jitter. */
export interface Backoff {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: Readonly<Backoff> = { initialMs: 500, maxMs: 30_000 };

/**
 * A connection that stayed open this long, or over which the analyzer sent bytes, was a working
 * one: the reopen after it starts the backoff over. One that closes sooner without a byte (an
 * analyzer port that accepts and closes at once, a USB adapter that drops right after opening)
 * counts as a failed attempt, so the delays keep growing. Before, every open started the backoff
 * over, and such a port was reopened twice a second forever: a warning pair in the log each time
 * and a status flickering between connected and disconnected.
 */
export const STABLE_CONNECTION_MS = 10_000;

/** Whether an open connection that just closed proved the line works (see STABLE_CONNECTION_MS). */
export function wasWorking(openedAt: number, heard: boolean): boolean {
  return heard || Date.now() - openedAt >= STABLE_CONNECTION_MS;
}

export function backoffDelay(policy: Backoff, attempt: number): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt, 20));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}
