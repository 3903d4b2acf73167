import type { EventType, SyncMode } from '../events/types.ts';

/**
 * The gateway configuration (DESIGN.md §5). YAML on disk, validated all-or-nothing by
 * `validateConfig` before anything is applied. Secrets are never inline: `*File` keys name files,
 * `*Env` keys name environment variables.
 */
export interface ListenConfig {
  host: string;
  port: number;
}

export interface TlsConfig {
  cert: string;
  key: string;
  /** CA bundle used to verify client certificates (mutual TLS). */
  ca?: string;
  requireClientCert: boolean;
}

export type AckMode = 'original' | 'enhanced';

/**
 * Opt-in: say so when the endpoint has received no message for `afterMinutes` counted within its
 * hours (ENDPOINT_QUIET in the status; config/quiet-alert.ts). Times are the lab's local time.
 */
export interface QuietAlertConfig {
  /** Minutes without a message within one opening of the window (1 to 43200). */
  afterMinutes: number;
  /** Daily hours, `HH:MM-HH:MM` (`22:00-06:00` over midnight). Absent: all day. */
  between?: string;
  /** Days the window opens: `Mon-Fri`, `Mon,Wed,Fri`. Absent: every day. */
  days?: string;
}

export interface Hl7EndpointConfig {
  id: string;
  listen: ListenConfig;
  ack: AckMode;
  tls?: TlsConfig;
  /** Largest accepted frame in bytes; a larger frame is answered AR and the connection survives. */
  maxMessageBytes: number;
  /** Close a connection idle this long (ms); 0 = never. */
  idleTimeoutMs: number;
  /**
   * Close a connection whose frame (VT seen) has not ended this long after it started (ms); 0 =
   * never. Absent: FRAME_TIMEOUT_MS (ingress/mllp/mllp-connection.ts).
   */
  frameTimeoutMs?: number;
  maxConnections: number;
  /** What to answer for message types the gateway does not turn into events. */
  unknownMessageTypes: 'accept' | 'reject';
  /** Charset when MSH-18 is empty. */
  defaultCharset: 'ascii' | 'latin1' | 'utf8';
  /** Analyzer id when this endpoint is an HL7 analyzer (e.g. Mindray BS) rather than the LIS. */
  analyzer?: string;
  /**
   * A second LIS's accession namespace: its orders and results are keyed `<prefix>-<accession>`
   * (correlation, queue, Odoo's sale order), its tube barcodes stay as printed
   * (hl7/accession-namespace.ts). Absent: the bare accession, as before.
   */
  accessionPrefix?: string;
  /** Say so when no message came for a while in the lab's hours (ENDPOINT_QUIET). Absent: never. */
  quietAlert?: QuietAlertConfig;
}

export interface SerialConfig {
  path: string;
  baudRate?: number;
  dataBits?: 5 | 6 | 7 | 8;
  parity?: 'none' | 'even' | 'odd' | 'mark' | 'space';
  stopBits?: 1 | 1.5 | 2;
  rtscts?: boolean;
  xon?: boolean;
  xoff?: boolean;
}

export interface AnalyzerTcpConfig {
  /** The analyzer connects to us. */
  listen?: ListenConfig;
  /** We connect to the analyzer. */
  connect?: { host: string; port: number };
}

export interface AnalyzerConfig {
  id: string;
  /** File name (without .json) in firmware-profiles/. */
  profile: string;
  serial?: SerialConfig;
  tcp?: AnalyzerTcpConfig;
  /** Per-site overrides of profile quirks/timers (same shape as the profile's `quirks`). */
  overrides?: Record<string, unknown>;
  /**
   * Push each LIS order (`order.created`) the analyzer can run to it as an order download, as
   * soon as the order is stored. Needs a profile that describes order download (`hostQuery`).
   * Default false: the analyzer asks (host query) when it sees the specimen.
   */
  pushOrders?: boolean;
  /** Say so when no message came for a while in the lab's hours (ENDPOINT_QUIET). Absent: never. */
  quietAlert?: QuietAlertConfig;
}

export interface OdooConfig {
  /** Absent: post to the in-process sandbox emulator. */
  url?: string;
  database?: string;
  login?: string;
  apiKeyFile?: string;
  apiKeyEnv?: string;
  /** ISO date the API key expires (Odoo 18+ keys expire); warn `keyExpiryWarnDays` before. */
  apiKeyExpiresAt?: string;
  keyExpiryWarnDays: number;
  /** Custom CA bundle for private deployments. */
  caFile?: string;
  /** SHA-256 fingerprint of the server certificate (hex, colons optional). */
  pinnedCertSha256?: string;
  /** HTTP proxy (`http://host:port`) for a CONNECT tunnel; never with credentials inline. */
  proxy?: string;
  /** File holding the proxy's `user:password` (Proxy-Authorization: Basic). */
  proxyAuthFile?: string;
  timeoutMs: number;
  /** Sandbox emulator's version when `url` is absent. */
  sandboxVersion: 16 | 17 | 18 | 19;
  /** Company-specific names the posting rules need. */
  mapping: OdooMappingConfig;
}

export interface OdooMappingConfig {
  /** Internal location reagents are consumed from (complete name, e.g. 'WH/Stock/Lab'). */
  labLocation: string;
  /** Destination of consumption moves (e.g. 'Virtual Locations/Lab Consumption'). */
  consumptionLocation: string;
  /** Picking type used for consumption transfers (e.g. 'Lab Consumption' or 'WH: Internal'). */
  consumptionPickingType?: string;
  /** Vendor partner ref for RFQs when the product has no supplier info. */
  defaultVendorRef?: string;
}

export interface RelayConfig {
  enabled: boolean;
  /** Parallel partitions in flight. */
  concurrency: number;
  maxAttempts: number;
  backoff: { initialMs: number; maxMs: number; multiplier: number; jitter: number };
  /** Which posting rules are on. */
  rules: Partial<Record<EventType, boolean>>;
  /** Sync mode per event type; DESIGN.md §3 defaults. */
  syncModes: Partial<Record<EventType, SyncMode>>;
  /** Micro-batch window (ms). */
  microBatchWindowMs: number;
  /** Scheduled batch: run at these minutes past each hour. */
  scheduledEveryMinutes: number;
  /** Create draft invoices for invoice.eligible. */
  invoicing: boolean;
  /** Let the gateway confirm/post documents (off: drafts only, a human approves). */
  autoConfirm: boolean;
  /** Refresh interval of pulled reference data (ms). */
  referenceRefreshMs: number;
}

export interface StoreConfig {
  /** Delivered events and their messages are pruned after this age (days) … */
  retentionDays: number;
  /** … or when more than this many delivered events are kept. */
  maxDeliveredEvents: number;
  /** Dead letters and rejected messages are kept at least this long (days). */
  deadLetterRetentionDays: number;
  /** Refuse new messages when the data dir has less free space than this. */
  minFreeBytes: number;
}

export interface MqttConfig {
  /** 'embedded' (aedes) or an mqtt://, mqtts://, ws:// or wss:// URL of an external broker. */
  broker: string;
  listen: ListenConfig;
  usernameFile?: string;
  passwordFile?: string;
  tls?: { cert: string; key: string; ca?: string };
  /** Re-publish retained status this often (ms). */
  publishIntervalMs: number;
  /**
   * Embedded broker only: at most this many subscriber connections at once (the gateway's own
   * publisher aside); one more is refused with CONNACK 3, server unavailable. Set by validation
   * (default `EMBEDDED_BROKER_DEFAULTS.maxConnections`).
   */
  maxConnections?: number;
}

export interface StatusConfig {
  listen: ListenConfig;
  /**
   * Host names (besides the listener's host, localhost, 127.0.0.1, ::1, the machine's names —
   * host name, short name, `<short name>.local`, fully qualified name — and any IP address) that
   * requests may name in their Host header: the names the tray, a browser or Prometheus use to
   * reach the gateway. Any other name is refused (DNS rebinding).
   */
  allowedHosts?: string[];
  /** File holding the admin bearer token. */
  adminTokenFile?: string;
}

export interface GatewayConfig {
  gateway: {
    id: string;
    dataDir: string;
    logLevel: 'debug' | 'info' | 'warn' | 'error';
    /**
     * The lab's IANA time zone (`Europe/Berlin`), canonical as Intl spells it: times analyzers and
     * the LIS write without an offset are read in it, and times written to analyzers are written
     * in it (config/time-zone.ts). Absent: the process's zone (TZ, else the system's), as before.
     */
    timeZone?: string;
  };
  hl7: Hl7EndpointConfig[];
  analyzers: AnalyzerConfig[];
  odoo: OdooConfig;
  relay: RelayConfig;
  store: StoreConfig;
  mqtt: MqttConfig;
  status: StatusConfig;
  /** Directory with firmware profiles (default: the package's firmware-profiles/). */
  profilesDir?: string;
}

export interface ConfigIssue {
  severity: 'error' | 'warning';
  /** Dotted path of the key, e.g. `hl7[0].listen.port`. */
  path: string;
  message: string;
}
