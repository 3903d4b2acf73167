import { EventEmitter } from 'node:events';

/**
 * Typed events the components publish. Components never import the MQTT broker, the HTTP server
 * or the logger: they emit here, and `status/` and the log subscribe (STYLE.md practice 10).
 */
export type EndpointKind = 'hl7' | 'astm';
export type EndpointState = 'starting' | 'listening' | 'connected' | 'connecting' | 'disconnected' | 'error' | 'stopped';
export type OdooLinkState = 'connecting' | 'connected' | 'auth-failed' | 'unreachable' | 'degraded' | 'sandbox' | 'disabled' | 'paused';
export type AlertSeverity = 'info' | 'warning' | 'critical';

export interface TelemetryEvents {
  /** One inbound message answered. */
  'intake.message': {
    endpoint: string;
    kind: EndpointKind;
    outcome: 'accepted' | 'rejected' | 'duplicate';
    /** Time from the last byte received to the acknowledgement written (ms). */
    ackLatencyMs: number;
    bytes: number;
    messageType?: string;
    reason?: string;
  };
  /** Endpoint lifecycle and connection count. */
  'endpoint.state': {
    endpoint: string;
    kind: EndpointKind;
    state: EndpointState;
    connections: number;
    detail?: string;
  };
  /** Bytes outside frames ignored (summarised, not per byte). */
  'endpoint.ignored-bytes': { endpoint: string; count: number };
  /**
   * An ASTM analyzer line's health, cumulative since the endpoint started: frames accepted, frames
   * refused for the line's sake (checksum, sequence, size; not a message the record layer or the
   * store refused) and bytes ignored outside frames. Sent when a frame is refused or bytes are
   * ignored, and with each message for a minute after either.
   */
  'endpoint.link': {
    endpoint: string;
    framesAccepted: number;
    framesRefused: number;
    ignoredBytes: number;
    lastRefusal?: string;
    /** What to check, in the IT person's words (serial settings, profile), when the line misreads. */
    hint?: string;
  };
  /** Store health: ok, or why it cannot commit. */
  'store.health': { state: 'ok' | 'failed' | 'full'; reason?: string };
  /** One relay attempt finished. */
  'relay.outcome': {
    eventId: string;
    eventType: string;
    outcome: 'delivered' | 'retry' | 'dead';
    latencyMs: number;
    error?: string;
    /**
     * A retry that only waits for an earlier event of the gateway's own queue (an invoice behind
     * its order's queued event): no failure of Odoo's (the status neither counts it per minute nor
     * shows it as Odoo's last error).
     */
    waiting?: true;
  };
  /** Odoo link state changed. */
  'odoo.state': {
    state: OdooLinkState;
    lastError?: string;
    serverVersion?: string;
    /**
     * Days until the API key expires, when known; null once the configured date no longer
     * describes the key in use (a renewed key signed in: the date was the previous key's).
     */
    keyExpiresInDays?: number | null;
  };
  /** One HTTP round trip to Odoo. */
  'odoo.request': { model: string; method: string; latencyMs: number; ok: boolean };
  /** Something a human should see (MQTT alerts topic, tray notification). */
  alert: { severity: AlertSeverity; code: string; message: string; at: string; endpoint?: string };
}

export type TelemetryName = keyof TelemetryEvents;

/**
 * Alerts kept for a subscriber that comes later (StartupAlerts): those raised while the gateway
 * starts. A process where none comes keeps the newest this many.
 */
export const MAX_STARTUP_ALERTS = 100;

/**
 * Alerts raised before their subscriber came, handed over once: the newest MAX_STARTUP_ALERTS are
 * kept until take(), none after. Telemetry keeps them for the status model, the model for the MQTT
 * publisher (StatusModel.onAlert with `startup`).
 */
export class StartupAlerts<A> {
  #kept: A[] | undefined = [];

  keep(alert: A): void {
    if (!this.#kept) return;
    this.#kept.push(alert);
    if (this.#kept.length > MAX_STARTUP_ALERTS) this.#kept.shift();
  }

  /** Those kept (the first call only; later calls return none), and keep no more. */
  take(): A[] {
    const kept = this.#kept ?? [];
    this.#kept = undefined;
    return kept;
  }
}

export class Telemetry {
  readonly #emitter = new EventEmitter({ captureRejections: false });
  /** Alerts raised so far, until the status model takes them. */
  readonly #startupAlerts = new StartupAlerts<TelemetryEvents['alert']>();

  constructor() {
    this.#emitter.setMaxListeners(100);
  }

  emit<K extends TelemetryName>(name: K, payload: TelemetryEvents[K]): void {
    if (name === 'alert') this.#startupAlerts.keep(payload as TelemetryEvents['alert']);
    // A faulty subscriber must never break the data path that emitted.
    try {
      this.#emitter.emit(name, payload);
    } catch {
      /* subscribers log their own failures */
    }
  }

  on<K extends TelemetryName>(name: K, listener: (payload: TelemetryEvents[K]) => void): () => void {
    this.#emitter.on(name, listener);
    return () => this.#emitter.off(name, listener);
  }

  alert(severity: AlertSeverity, code: string, message: string, endpoint?: string): void {
    this.emit('alert', { severity, code, message, at: new Date().toISOString(), ...(endpoint ? { endpoint } : {}) });
  }

  /**
   * The alerts raised before now (the oldest dropped beyond MAX_STARTUP_ALERTS), once: the status
   * model takes them as it subscribes, and they go to the MQTT alerts topic like those raised after.
   * The gateway raises some before the model starts (ODOO_TARGET_CHANGED, as the store opens);
   * without this they went to the log only: no tray or dashboard was told. Later calls return
   * nothing; alerts raised after the first call are no longer kept.
   */
  takeStartupAlerts(): Array<TelemetryEvents['alert']> {
    return this.#startupAlerts.take();
  }
}
