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
}

export interface WireHandlers {
  data(bytes: Buffer): void;
  /** The wire is gone (peer closed, cable pulled, adapter removed). */
  closed(detail?: string): void;
}

export interface TransportHost {
  /** A wire opened: returns where its bytes and its end go. */
  attach(wire: Wire): WireHandlers;
  /** Transport state for telemetry (`listening`, `connected`, `connecting`, `disconnected`, `error`). */
  state(state: EndpointState, detail?: string): void;
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

export function backoffDelay(policy: Backoff, attempt: number): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt, 20));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}
