import { statfs } from 'node:fs/promises';
import { certificateValidity, expiryProblem, tlsCertificateFiles, type CertificateValidity } from '../config/certificates.ts';
import type { GatewayConfig } from '../config/types.ts';
import type { Component, ComponentStatus } from '../lifecycle.ts';
import type { IntakeCounters, GatewayStore, QueueStats, SettleHold } from '../store/types.ts';
import { StartupAlerts, type AlertSeverity, type EndpointKind, type EndpointState, type OdooLinkState, type Telemetry, type TelemetryEvents } from '../telemetry.ts';
import { describeError } from '../errors.ts';
import type { OrderDownloadSummary } from '../astm/order-download.ts';
import { maskAstmNames } from './mask-names.ts';
import { savedLastSuccess } from '../relay/last-success.ts';
import type { RelayPauseDetail } from '../relay/paused.ts';
import { waitingSince, waitsForLisOrder } from '../relay/rules/waiting-for-order.ts';
import { GATEWAY_PAUSE } from '../relay/machine-guard.ts';
import { SteadyWallClock, span } from '../wall-clock.ts';
import { logOutputLoss, type LogOutputLoss } from '../log.ts';
import { quietFrom, quietSchedule, quietSince, type QuietMark, type QuietSchedule } from '../config/quiet-alert.ts';

/**
 * The one status model of the gateway. It is fed by the typed telemetry events (never by the
 * components directly) and by polling the store's counters, and every status surface reads it:
 * `GET /api/status`, the retained MQTT topics, the status page, the tray.
 *
 * Health has three levels, each with the reasons in words a technician can act on:
 * - `down`: the gateway cannot take messages (the store cannot commit, the data disk is full).
 * - `degraded`: messages are taken and kept, but something needs a person (Odoo unreachable,
 *   dead letters waiting, an analyzer disconnected, the API key about to expire, …).
 * - `ok`: nothing to do.
 */

export const HealthLevels = ['ok', 'degraded', 'down'] as const;
export type Health = (typeof HealthLevels)[number];

/** A connection open at least this long is a persistent link, missed when it is gone (ENDPOINT_DOWN). */
const PERSISTENT_CONNECTION_MS = 60_000;

export interface HealthReason {
  level: Exclude<Health, 'ok'>;
  /** Stable code (alerts, tray notifications dedup on it). */
  code: string;
  message: string;
  endpoint?: string;
}

/** An administrator's pause of sending to Odoo, as the audit trail has it. */
export type { RelayPauseDetail };

export interface EndpointStatus {
  id: string;
  kind: EndpointKind;
  /** 'lis' for HL7 links to the LIS, 'analyzer' for analyzers (ASTM or HL7). */
  role: 'lis' | 'analyzer';
  state: EndpointState;
  connections: number;
  lastMessageAt: string | null;
  /** When `state` last changed. */
  since: string;
  detail: string | null;
  /**
   * A listener that had connections and has none now: since when (ISO), else null. After
   * `endpointIdleMs` without a connection it is reported like a disconnected link (ENDPOINT_DOWN).
   */
  noConnectionSince: string | null;
  received: number;
  accepted: number;
  rejected: number;
  duplicates: number;
  /**
   * ASTM analyzers with `pushOrders`: the orders waiting to go to the analyzer, since when, and
   * why the last send failed (`lastError` masked, see shownReason). Absent on other endpoints, and
   * until the analyzer's outbox was read at start-up.
   */
  orderDownload?: OrderDownloadSummary;
  /**
   * ASTM analyzers whose line has had trouble since the gateway started: frames refused for the
   * line's sake (checksum, sequence, size), bytes ignored outside frames, the last refusal. Absent
   * until the first; a line that misreads every frame raises LINE_ERRORS.
   */
  link?: EndpointLinkStatus;
}

/** An analyzer line's trouble since start (telemetry `endpoint.link`). */
export interface EndpointLinkStatus {
  framesAccepted: number;
  framesRefused: number;
  ignoredBytes: number;
  /** `checksum mismatch`, `frame number 3 out of sequence (expected 2)`, … */
  lastRefusal: string | null;
  lastRefusalAt: string | null;
}

export interface OdooStatus {
  state: OdooLinkState;
  lastError: string | null;
  lastSuccessAt: string | null;
  since: string;
  serverVersion: string | null;
  sandbox: boolean;
  apiKeyExpiresInDays: number | null;
}

export interface DiskStatus {
  path: string;
  freeBytes: number;
  totalBytes: number;
  /** The store refuses messages below this (config store.minFreeBytes). */
  minFreeBytes: number;
}

export interface ThroughputStatus {
  /** Messages answered in the last 60 s, by outcome. */
  receivedPerMinute: number;
  acceptedPerMinute: number;
  /** Relay outcomes in the last 60 s. */
  deliveredPerMinute: number;
  failedPerMinute: number;
}

/**
 * The MQTT publisher's connection to its broker (the embedded one over loopback, or the site's):
 * whether the status reaches the subscribers, and since when it does not.
 */
export interface MqttLinkStatus {
  /** The broker's URL, without credentials. */
  broker: string;
  connected: boolean;
  /** When `connected` last changed (ISO). */
  since: string;
  /** The last connection error (refused, unreachable, bad credentials), null once connected. */
  lastError: string | null;
}

/**
 * Deliveries a stopped gateway left in flight, held after the restart until the settle time has
 * passed (`settleHold` of `/api/status`; store.settleHold): `until` ISO, `message` in words.
 */
export interface SettleHoldStatus {
  events: number;
  /** The orders (partitions) they belong to. */
  orders: number;
  /** Later events of those orders, queued behind them. */
  behind: number;
  until: string;
  message: string;
}

/** DESIGN.md §5 body of `GET /api/status` (contract fields first), plus additive fields. */
export interface ApiStatus {
  gatewayId: string;
  version: string;
  startedAt: string;
  health: Health;
  intake: IntakeCounters;
  queue: {
    pending: number;
    inFlight: number;
    retrying: number;
    deadLettered: number;
    delivered: number;
    oldestPendingAgeSeconds: number;
  };
  odoo: { state: OdooLinkState; lastError: string | null; lastSuccessAt: string | null };
  endpoints: Array<{ id: string; kind: EndpointKind; state: EndpointState; connections: number; lastMessageAt: string | null; orderDownload?: OrderDownloadSummary }>;
  // Additive fields (never rename or remove the contract fields above).
  online: boolean;
  /**
   * The gateway is stopping (a restart, an update, a shutdown): its links are being stopped, and
   * the health reasons are those it had when the stop began (none is reported cleared on the way
   * out). The last status a graceful stop publishes carries it with `online: false`.
   */
  stopping: boolean;
  generatedAt: string;
  healthReasons: HealthReason[];
  store: { health: GatewayStore['health']; reason: string | null };
  blockedPartitions: number;
  discarded: number;
  relayPaused: boolean;
  /**
   * Who paused sending to Odoo, since when and why (the pause's audit entry), while it is paused;
   * null when running, or when the entry is no longer in the audit trail.
   */
  relayPause: RelayPauseDetail | null;
  odooDetail: OdooStatus;
  endpointDetail: EndpointStatus[];
  disk: DiskStatus | null;
  throughput: ThroughputStatus;
  sandbox: boolean;
  /**
   * How often (ms) the retained MQTT topics are published even when nothing changed: a subscriber
   * (the tray) takes a status older than a few intervals for a gateway that stopped answering.
   */
  publishIntervalMs: number;
  /** The MQTT publisher's broker connection; null until the publisher starts (no MQTT status). */
  mqtt: MqttLinkStatus | null;
  /**
   * The components' one-off alerts raised since the gateway started, newest first, at most
   * RECENT_ALERTS (the clock far ahead of the stored data at start-up, another Odoo target, Odoo
   * upgraded, a refused order download, …; each message shown as a reason is: one line, names
   * masked). Not the health reasons' alerts: `healthReasons` shows those while they last. The
   * alerts topic keeps only the last alert (retained): a subscriber that connects after alerts
   * (with the embedded broker, every subscriber of those raised at start-up) reads them here.
   */
  recentAlerts: StatusAlert[];
  /**
   * Log lines stderr could not take since the process started (gateway/src/log.ts: its reader
   * gone, EPIPE; a log file on a full disk, ENOSPC): how many, when the last was lost (ISO, null
   * when none was), why, and since when the log has its present gap (`gapSince`, null while it
   * takes lines). `LOG_LINES_LOST` while the gap lasts and for an hour after lines get through again.
   */
  log: LogOutputLoss;
  /**
   * Present only while deliveries a stopped gateway (a power cut, a kill) left in flight wait for
   * the settle time after the restart before the relay looks them up in Odoo: how many, how many
   * later events of their orders wait behind them, until when, and why in words. Not a health
   * reason (nothing for a person to do; it ends by itself within 180 s). Before, the status said
   * only "retrying 3", and IT restarted the gateway again or sent the orders again by hand.
   */
  settleHold?: SettleHoldStatus;
}

export interface StatusAlert {
  severity: AlertSeverity;
  code: string;
  message: string;
  at: string;
  endpoint?: string;
}

export interface StatusModelOptions {
  config: GatewayConfig;
  store: GatewayStore;
  telemetry: Telemetry;
  version: string;
  startedAt: string;
  /** Store counters are polled this often (ms). Default 1000. */
  pollIntervalMs?: number;
  /** Free disk space is read this often (ms). Default 30000. */
  diskIntervalMs?: number;
  /** Odoo unreachable this long before health turns degraded (ms). Default 120000. */
  odooGraceMs?: number;
  /** The MQTT broker unreachable this long before health turns degraded (ms). Default 120000. */
  mqttGraceMs?: number;
  /**
   * A TCP listener (analyzer or LIS link) that had a connection and has had none for this long is
   * reported disconnected (ENDPOINT_DOWN), like a serial analyzer (ms). Default 3600000 (1 hour).
   */
  endpointIdleMs?: number;
  /** Oldest pending event older than this turns health degraded (s). Default 900. */
  staleQueueSeconds?: number;
  /** Relay pause flag, read when the status is built. */
  relayPaused?: () => boolean;
  /**
   * The clock of the model's times and ages (epoch ms). Default: the wall clock, except that it
   * never goes backwards (wall-clock.ts): after NTP stepped the clock back two hours, an outage's
   * `since` lay in the future and ODOO_UNREACHABLE was not raised for two hours.
   */
  now?: () => number;
  /**
   * The monotonic clock (ms; default `performance.now()`), which no clock step moves: quiet time
   * (ENDPOINT_QUIET) is counted on it, the wall clock (`now` when given, else `Date.now()`) only
   * placing it in the lab's hours. Tests step one clock and not the other.
   */
  mono?: () => number;
  /** The log lines lost so far (default: this process's, gateway/src/log.ts `logOutputLoss`). */
  logOutputLoss?: () => LogOutputLoss;
  /** Free-space reader (tests inject a fake full disk). */
  readDisk?: (path: string) => Promise<{ freeBytes: number; totalBytes: number }>;
}

const EMPTY_QUEUE: QueueStats = {
  pending: 0,
  inFlight: 0,
  retrying: 0,
  deadLettered: 0,
  delivered: 0,
  discarded: 0,
  blockedPartitions: 0,
  oldestPendingAgeSeconds: 0,
};

const DOWN_ODOO_STATES: ReadonlySet<OdooLinkState> = new Set(['unreachable', 'auth-failed', 'degraded']);
/**
 * Link states that end an Odoo problem (the link works, or nobody is trying). 'connecting' is not
 * one: every reconnection attempt passes through it, and an outage or refused key lasts until an
 * attempt succeeds.
 */
const UP_ODOO_STATES: ReadonlySet<OdooLinkState> = new Set(['connected', 'sandbox', 'disabled', 'paused']);
/**
 * Component alerts the model raises itself, as a health reason with its `_CLEARED`: passed through
 * they made a second notification for the same condition that never cleared. They stay in the log.
 */
const RESTATED_ALERTS: ReadonlySet<string> = new Set(['ODOO_AUTH_FAILED', 'ODOO_AUTH_FAILED_CLEARED', 'ODOO_KEY_EXPIRING', 'ODOO_KEY_EXPIRED', 'CLOCK_BEHIND_STORED_DATA']);
const DAY_MS = 86_400_000;
/**
 * LOG_LINES_LOST lasts this long after lines get through again (ms, on the model's clock): the gap
 * is recent enough to look for. While none gets through it stays, however long.
 */
const LOG_LOSS_SHOWN_MS = 3_600_000;
/**
 * One-off alerts the status keeps (`recentAlerts`): enough for a start-up's (clock, Odoo target,
 * Odoo version, a refused reference read) and the latest of a burst, small enough for a status
 * published on every change (at most MAX_REASON_CHARS each).
 */
export const RECENT_ALERTS = 20;
/** States of an event still waiting in the queue (leased again, retried, released). */
const STILL_WAITING: ReadonlySet<string> = new Set(['pending', 'inflight', 'retrying']);
const BAD_ENDPOINT_STATES: ReadonlySet<EndpointState> = new Set(['disconnected', 'error']);
/**
 * LINE_ERRORS: at least this many frames refused in the last minute, and more than were accepted —
 * a line that misreads most of what it gets (a wrong baud rate, parity or data bits; noise).
 */
const LINE_MIN_REFUSED = 3;
/** LINE_ERRORS: this many bytes ignored outside frames in the last minute with no frame accepted. */
const LINE_MIN_IGNORED = 256;

async function readDiskSpace(path: string): Promise<{ freeBytes: number; totalBytes: number }> {
  const s = await statfs(path);
  return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

/**
 * An instant inside a reason's words, as the lab reads it: the gateway's local time (the box runs
 * in the lab's time zone, `TZ` or the system's) with its offset — "17:02 (UTC+01:00)" on the day
 * of `now`, "6 Mar 17:02 (UTC+01:00)" on another day, "6 Mar 2025 17:02 (UTC+01:00)" in another
 * year. Before, reasons quoted the raw UTC stamp ("since 2026-03-06T17:02:11.000Z"): a technician
 * in UTC+1 read the pause an hour early. The machine-readable time stays in its own field
 * (`relayPause.since`).
 */
export function localTime(ms: number, now: number, seconds = false): string {
  if (!Number.isFinite(ms)) return 'an unknown time';
  const d = new Date(ms);
  const n = new Date(now);
  const two = (v: number): string => String(v).padStart(2, '0');
  const offset = -d.getTimezoneOffset();
  const zone = `UTC${offset < 0 ? '-' : '+'}${two(Math.floor(Math.abs(offset) / 60))}:${two(Math.abs(offset) % 60)}`;
  const clock = `${two(d.getHours())}:${two(d.getMinutes())}${seconds ? `:${two(d.getSeconds())}` : ''}`;
  const sameYear = d.getFullYear() === n.getFullYear();
  const sameDay = sameYear && d.getMonth() === n.getMonth() && d.getDate() === n.getDate();
  const day = sameDay ? '' : `${d.getDate()} ${MONTHS[d.getMonth()]}${sameYear ? '' : ` ${d.getFullYear()}`} `;
  return `${day}${clock} (${zone})`;
}

function minutes(ms: number): string {
  const m = Math.max(1, Math.round(ms / 60_000));
  return m === 1 ? '1 min' : `${m} min`;
}

/**
 * How long a link has been down, as a technician reads it: "less than 1 min", "2 min",
 * "3 h 20 min", "2 days 6 h" (each unit whole, counted down: never more than the time passed).
 * Before, ENDPOINT_DOWN counted in minutes with a floor of one: "for 1 min" three seconds after
 * the adapter was pulled, "for 840 min" the next morning.
 */
export function downFor(ms: number): string {
  const s = Math.floor(Math.max(0, ms) / 1000);
  // The first minute in one set of words: the page's banner is a live region, and words that
  // changed every second were read out again at each poll (2 s) for that minute.
  if (s < 60) return 'less than 1 min';
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  const days = d === 1 ? '1 day' : `${d} days`;
  return h % 24 ? `${days} ${h % 24} h` : days;
}

/**
 * The settle hold in words (`settleHold.message`): how many deliveries wait, until when (the lab's
 * time, to the second: the hold lasts three minutes), why, what waits behind them, and that they go
 * by themselves. `now` places the day (localTime).
 */
export function settleHoldWords(hold: SettleHold, now: number): string {
  const n = hold.events;
  const b = hold.behind;
  // One delivery is "it" (before, "them" and "They go" for one as for several: the technician
  // looked for deliveries the page did not count; test/unit/review-s23d-settle-hold-words.test.ts).
  const them = n === 1 ? 'it' : 'them';
  const behind = b > 0 ? ` ${b} more event${b === 1 ? '' : 's'} of the same order${hold.partitions === 1 ? '' : 's'} wait${b === 1 ? 's' : ''} behind ${them}.` : '';
  const go = n === 1 ? 'It goes on its own then' : 'They go on their own then';
  return (
    `${n} deliver${n === 1 ? 'y waits' : 'ies wait'} until ${localTime(hold.until, now, true)} to check Odoo for writes the gateway may have left running when it stopped (a power cut, a kill): ` +
    `looked up sooner, a write Odoo still runs is not found and is sent twice.${behind} ${go}; restarting the gateway does not make ${them} go sooner.`
  );
}

/** Longest reason text shown; a longer one is cut (the log has it whole). */
const MAX_REASON_CHARS = 300;
const RECORD_CUT = '\uE000';

/**
 * A component's failure reason as the status surfaces show it: on one line, at most
 * MAX_REASON_CHARS, and under the rule of the raw-message view (mask-names.ts): reasons name
 * records, they do not quote them, and should one quote an ASTM P record anyway, its name fields
 * (and those names anywhere else in the reason) read `***`.
 */
/** The oldest dead letter as DEAD_LETTERS names it. */
interface OldestDead {
  type: string;
  correlationId: string | undefined;
  reason: string | undefined;
}

/** Longest dead letter's reason quoted in DEAD_LETTERS (the rest of the words must stay in MAX_REASON_CHARS). */
const DEAD_REASON_CHARS = 140;

function clipped(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function shownReason(text: string): string {
  const masked = maskedText(text);
  return masked.length > MAX_REASON_CHARS ? `${masked.slice(0, MAX_REASON_CHARS - 1)}…` : masked;
}

/**
 * A text on one line under the rule of the raw-message view (see shownReason), not cut: a live
 * alert's message, which carries the operator's instruction whole.
 */
function maskedText(text: string): string {
  const oneLine = text.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  // Each quoted P record on a line of its own for maskAstmNames, then joined again.
  const cut = oneLine.replace(/(?<![\p{L}\p{N}])(?=\d?P\|)/gu, `${RECORD_CUT}\n`);
  return maskAstmNames(cut).replaceAll(`${RECORD_CUT}\n`, '');
}

function mib(bytes: number): string {
  return `${Math.round(bytes / (1024 * 1024))} MB`;
}

/** Sliding one-minute window of counts, one bucket per second. */
class MinuteWindow {
  readonly #buckets = new Float64Array(60);
  #second = 0;

  add(nowMs: number, n = 1): void {
    this.#advance(nowMs);
    this.#buckets[this.#second % 60]! += n;
  }

  sum(nowMs: number): number {
    this.#advance(nowMs);
    let total = 0;
    for (const b of this.#buckets) total += b;
    return total;
  }

  #advance(nowMs: number): void {
    const second = Math.floor(nowMs / 1000);
    if (second <= this.#second) return;
    const gap = Math.min(60, second - this.#second);
    for (let i = 1; i <= gap; i++) this.#buckets[(this.#second + i) % 60] = 0;
    this.#second = second;
  }
}

export class StatusModel implements Component {
  readonly name = 'status-model';
  #status: ComponentStatus = 'created';
  readonly #o: StatusModelOptions;
  readonly #now: () => number;
  /** The system clock as it reads (no smoothing after a step back): whether the lab's hours are open (ENDPOINT_QUIET). */
  readonly #wall: () => number;
  readonly #mono: () => number;
  readonly #endpoints = new Map<string, EndpointStatus>();
  readonly #odoo: OdooStatus;
  /**
   * The last problem state of the link, kept through 'connecting' until a connection succeeds,
   * and since when the link has had a problem (the first problem state of the outage).
   */
  #odooProblem: { state: OdooLinkState; since: number } | null = null;
  /** Days left on the API key as the Odoo client last reported them, and when. */
  #reportedKeyDays: { days: number | null; at: number } | null = null;
  #storeReason: string | null = null;
  /** The MQTT publisher's link (setMqttLink), with `since` in epoch ms for the grace period. */
  #mqtt: (MqttLinkStatus & { sinceMs: number }) | null = null;
  #relayPause: RelayPauseDetail | null = null;
  /** The log lines lost, as last read (poll). */
  #logLoss: LogOutputLoss = { droppedLines: 0, lastDroppedAt: null, lastError: null, gapSince: null };
  /**
   * The loss LOG_LINES_LOST tells of: when its first line was lost (ISO, the log's own time, as IT
   * finds the gap in the log) and when the model saw lines written again (its own clock, the one
   * the hour is counted on; null while the log takes none). Lines lost again within that hour are
   * the same loss: the reason and its words stay. Null when nothing is to be told.
   */
  #logGap: { firstAt: string; throughSeenAt: number | null } | null = null;
  #storeHealthEvent: 'ok' | 'failed' | 'full' = 'ok';
  /**
   * Events the relay retries because they wait for the LIS's order (a result, a milestone or a
   * cancellation that came before its order), by id, and since when they wait (epoch ms: received,
   * or an operator's last replay; see WAITING_FOR_ORDERS). Fed by `relay.outcome`.
   */
  readonly #waitingForOrder = new Map<string, number>();
  #queue: QueueStats = { ...EMPTY_QUEUE };
  /** Deliveries held after a restart (store.settleHold), as last read; undefined when none. */
  #settleHold: SettleHold | undefined;
  /** A read of the settle hold is under way (one at a time: the poll is every second). */
  #settleReading = false;
  /** Accessions whose billing events retention keeps for want of their memory (RETENTION_HELD). */
  #retentionHeld: { accessions: number; first?: string } = { accessions: 0 };
  /** The store's write on its way to the disk past its bound, in whole minutes (-1: none; see poll). */
  #writeStallMinutes = -1;
  #writeStallMs = 0;
  #intake: IntakeCounters = { received: 0, accepted: 0, rejected: 0, duplicates: 0 };
  #disk: DiskStatus | null = null;
  /** The kept disk reading was taken for rising over a threshold within the jitter (refreshDisk). */
  #diskRoseOver = false;
  readonly #received = new MinuteWindow();
  readonly #accepted = new MinuteWindow();
  readonly #delivered = new MinuteWindow();
  readonly #failed = new MinuteWindow();
  readonly #unsubscribe: Array<() => void> = [];
  readonly #changeListeners = new Set<(changed: ReadonlySet<string>) => void>();
  readonly #alertListeners = new Set<(alert: StatusAlert) => void>();
  /** Alerts raised until a listener subscribes with `startup` (onAlert). */
  readonly #startupAlerts = new StartupAlerts<StatusAlert>();
  /** The components' one-off alerts, oldest first, the newest RECENT_ALERTS (`recentAlerts`). */
  readonly #recentAlerts: StatusAlert[] = [];
  #pendingChanges = new Set<string>();
  #changeScheduled = false;
  #pollTimer: NodeJS.Timeout | undefined;
  #diskTimer: NodeJS.Timeout | undefined;
  /**
   * The TLS certificates' validity, read at start (the links read the files then, and only then);
   * the days left are counted against the calendar each time health is computed (TLS_CERT_EXPIRY).
   */
  #certificates: CertificateValidity[] = [];
  #lastHealth: Health = 'ok';
  /** When each listener's connections went from none to some (epoch ms; see #onEndpoint). */
  readonly #connectedAt = new Map<string, number>();
  /** Per analyzer line: the last minute of each count (the cumulative ones are its `link` entry). */
  readonly #lineWindows = new Map<string, { accepted: MinuteWindow; refused: MinuteWindow; ignored: MinuteWindow; hint: string | null }>();
  #lastReasonCodes = new Set<string>();
  /**
   * From markStopping on: every reason shown since the stop began, by `code:endpoint`, kept in the
   * health until the end (see markStopping). Undefined while the gateway runs.
   */
  #stoppingReasons: Map<string, HealthReason> | undefined;
  /**
   * The newest instant the store held when it opened (store.newestStoredAt) and the monotonic time
   * the model read it: the true time is at least that instant plus the time passed since, so a
   * system clock behind it is wrong (CLOCK_BEHIND_STORED_DATA). Undefined for an empty store.
   */
  #storedData: { newest: number; mono: number } | undefined;
  /** The endpoints with a quiet alert (`quietAlert` of their config entry), by id (ENDPOINT_QUIET). */
  readonly #quiet = new Map<string, QuietSchedule>();
  /**
   * Where each quiet-alert endpoint's silence began (its last message: both clocks then), and the
   * model's start (an endpoint that never sent is quiet since then). Undefined before start().
   * `stored`: the last message as the store had it at the start (its stamp, the time before the
   * start read on the clock of the start).
   */
  readonly #quietMarks = new Map<string, QuietMark & { stored?: true }>();
  #startMark: QuietMark | undefined;

  constructor(options: StatusModelOptions) {
    this.#o = options;
    this.#wall = options.now ?? (() => Date.now());
    this.#mono = options.mono ?? (() => performance.now());
    if (options.now) this.#now = options.now;
    else {
      const steady = new SteadyWallClock();
      this.#now = () => steady.now();
    }
    const at = new Date(this.#now()).toISOString();
    for (const h of options.config.hl7) {
      this.#endpoints.set(h.id, this.#newEndpoint(h.id, 'hl7', h.analyzer ? 'analyzer' : 'lis', at));
    }
    for (const a of options.config.analyzers) {
      this.#endpoints.set(a.id, this.#newEndpoint(a.id, 'astm', 'analyzer', at));
    }
    for (const e of [...options.config.hl7, ...options.config.analyzers]) {
      const q = e.quietAlert ? quietSchedule(e.quietAlert) : undefined;
      if (q) this.#quiet.set(e.id, q);
    }
    const sandbox = !options.config.odoo.url;
    this.#odoo = {
      state: sandbox ? 'sandbox' : 'connecting',
      lastError: null,
      lastSuccessAt: null,
      since: at,
      serverVersion: null,
      sandbox,
      apiKeyExpiresInDays: this.#keyDays(this.#now()),
    };
  }

  get status(): ComponentStatus {
    return this.#status;
  }

  /** Idempotent: several status surfaces may share one model and each calls start(). */
  async start(): Promise<void> {
    if (this.#status === 'running' || this.#status === 'starting') return;
    this.#status = 'starting';
    const start: QuietMark = { wall: this.#wall(), mono: this.#mono() };
    this.#startMark = start;
    const t = this.#o.telemetry;
    this.#unsubscribe.push(
      t.on('intake.message', (e) => this.#onIntake(e)),
      t.on('endpoint.state', (e) => this.#onEndpoint(e)),
      t.on('endpoint.link', (e) => this.#onLink(e)),
      t.on('store.health', (e) => this.#onStoreHealth(e)),
      t.on('relay.outcome', (e) => this.#onRelay(e)),
      t.on('odoo.state', (e) => this.#onOdooState(e)),
      t.on('odoo.request', (e) => this.#onOdooRequest(e)),
      t.on('alert', (e) => this.#onComponentAlert(e)),
    );
    // Those raised before this subscription (the composition root's ODOO_TARGET_CHANGED, as the
    // store opens), passed through once, with the time they were raised.
    for (const e of t.takeStartupAlerts()) this.#onComponentAlert(e);
    // When each link last spoke survives a restart (the store keeps it); "never" would be wrong.
    try {
      for (const [id, at] of Object.entries(this.#o.store.lastMessageAt?.() ?? {})) {
        const ep = this.#endpoints.get(id);
        if (ep && (ep.lastMessageAt === null || ep.lastMessageAt < at)) ep.lastMessageAt = at;
      }
    } catch {
      /* a closed store: the poll below reports it */
    }
    // A restart neither hides nor restarts a silence: counted from the stored message, the time
    // before this start read once on the wall clock (and never longer than its stamp says once the
    // clock is set right: #quietReason). One stored ahead of the clock (a box booted behind, no
    // battery-backed clock) is counted from the start: how long before it is unknown.
    for (const id of this.#quiet.keys()) {
      const lastMs = Date.parse(this.#endpoints.get(id)?.lastMessageAt ?? '');
      if (Number.isFinite(lastMs) && lastMs <= start.wall) this.#quietMarks.set(id, { wall: lastMs, mono: start.mono - (start.wall - lastMs), stored: true });
    }
    try {
      const newest = this.#o.store.newestStoredAt?.();
      if (newest !== undefined) this.#storedData = { newest, mono: performance.now() };
    } catch {
      /* a closed store: no clock check */
    }
    // So does when Odoo last answered (the relay keeps it, relay/last-success.ts): restarted during
    // an Odoo outage, the status said "never" for an Odoo that had taken the morning's events.
    const saved = await savedLastSuccess(this.#o.store).catch(() => undefined);
    if (saved && (this.#odoo.lastSuccessAt === null || this.#odoo.lastSuccessAt < saved)) this.#odoo.lastSuccessAt = saved;
    this.poll();
    await this.refreshDisk();
    this.#lastHealth = this.health().health;
    this.#pollTimer = setInterval(() => this.poll(), this.#o.pollIntervalMs ?? 1000);
    this.#pollTimer.unref();
    this.#diskTimer = setInterval(() => void this.refreshDisk(), this.#o.diskIntervalMs ?? 30_000);
    this.#diskTimer.unref();
    this.refreshCertificates();
    this.#status = 'running';
  }

  async stop(): Promise<void> {
    if (this.#status === 'stopped' || this.#status === 'created') {
      this.#status = 'stopped';
      return;
    }
    clearInterval(this.#pollTimer);
    clearInterval(this.#diskTimer);
    for (const u of this.#unsubscribe.splice(0)) u();
    this.#status = 'stopped';
  }

  /**
   * The gateway is stopping (the composition root calls this before it stops its links). A link
   * stopped, an order download dropped with its connection, are the gateway no longer looking,
   * not a fault repaired: from now on the health keeps every reason it had (and any raised during
   * the stop), so no `<CODE>_CLEARED` goes out, and the status says `stopping`. Before, the links
   * stopping cleared their ENDPOINT_DOWN: every subscriber got "Resolved: endpoint down (xn-1)" for
   * an analyzer still unplugged, then a status `online`, health OK, links `stopped` (the retained
   * one on an external broker until the `offline`), and the same alarm again after the restart.
   * Idempotent.
   */
  markStopping(): void {
    if (this.#stoppingReasons) return;
    // Transitions up to now are real ones: raised or cleared as usual, before the freeze.
    this.#checkHealth();
    this.#stoppingReasons = new Map(this.health().reasons.map((r) => [reasonKey(r), r]));
    this.#changed('status');
  }

  /** Called when anything visible changed; `changed` holds 'status' and `endpoint:<id>` keys. */
  onChange(listener: (changed: ReadonlySet<string>) => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  /**
   * Alerts from components plus the model's own (health transitions). With `startup`, the listener
   * is first handed the alerts raised before it subscribed (kept until the first such listener,
   * the newest MAX_STARTUP_ALERTS): the MQTT publisher subscribes once its client is set up, after
   * the model's first poll and certificate check (DEAD_LETTERS, TLS_CERT_EXPIRY, …) and after an
   * Odoo that refused the key at once (ODOO_AUTH); those alerts reached no tray or dashboard.
   */
  onAlert(listener: (alert: StatusAlert) => void, options: { startup?: boolean } = {}): () => void {
    if (options.startup) {
      for (const a of this.#startupAlerts.take()) {
        try {
          listener(a);
        } catch {
          /* a faulty subscriber never breaks the model */
        }
      }
    }
    this.#alertListeners.add(listener);
    return () => this.#alertListeners.delete(listener);
  }

  /**
   * The oldest dead letter, for DEAD_LETTERS' words: what it is, of which order, and why. Read from
   * the store when the count of dead letters changes (the dead index: one record); null while
   * none is known (none read yet, a store that cannot list them).
   */
  #oldestDead: OldestDead | null = null;
  #oldestDeadRead = 0;
  /**
   * The count of dead letters DEAD_LETTERS tells of: the store's, once the oldest was read for
   * it, so that the reason, and the alert raised as it appears (the tray's notification), carry
   * what and why from the first.
   */
  #deadShown = 0;
  /**
   * The relay dead-lettered an event since the oldest dead letter was last read: read it again at
   * the next poll, also when the count is the same (a replay refused again before that poll, for
   * another reason, left it unchanged, and the words kept the old refusal).
   */
  #deadOutcomeSeen = false;

  async #readOldestDead(count: number): Promise<void> {
    const read = ++this.#oldestDeadRead;
    let next: OldestDead | null = null;
    try {
      const [e] = await this.#o.store.listEvents({ state: 'dead', limit: 1 });
      if (e) next = { type: e.event.type, correlationId: e.event.correlationId || undefined, reason: e.deadReason ?? e.lastError };
    } catch {
      /* a closed store, a store that cannot list: the count alone */
    }
    if (read !== this.#oldestDeadRead) return; // a later read is under way
    const same = JSON.stringify(next) === JSON.stringify(this.#oldestDead) && count === this.#deadShown;
    this.#oldestDead = next;
    this.#deadShown = count;
    if (!same) {
      this.#changed('status');
      this.#checkHealth();
    }
  }

  /** Read the store's counters now (also run on the poll interval). */
  poll(): void {
    let queue: QueueStats;
    let intake: IntakeCounters;
    try {
      queue = this.#o.store.stats();
      intake = this.#o.store.intake();
      const stall = this.#o.store.writeStalled?.();
      this.#writeStallMs = stall?.forMs ?? 0;
      // A change of the words (raised, cleared, another minute) is a change of the status.
      const stallMinutes = stall ? Math.floor(stall.forMs / 60_000) : -1;
      if (stallMinutes !== this.#writeStallMinutes) {
        this.#writeStallMinutes = stallMinutes;
        this.#changed('status');
      }
      const held = this.#o.store.retentionHeld?.() ?? { accessions: 0 };
      if (held.accessions !== this.#retentionHeld.accessions || held.first !== this.#retentionHeld.first) {
        this.#retentionHeld = held;
        this.#changed('status');
      }
    } catch (err) {
      // A closed store throws; keep the last counters, the store health says why.
      this.#storeReason ??= describeError(err);
      this.#checkHealth();
      return;
    }
    // An operator discarded an event: it may be one that waited for its order (no relay outcome says so).
    if (queue.discarded !== this.#queue.discarded && this.#waitingForOrder.size > 0) void this.#recheckWaitingForOrder();
    if (queue.deadLettered !== this.#queue.deadLettered || (queue.deadLettered > 0 && (this.#oldestDeadRead === 0 || this.#deadOutcomeSeen))) {
      this.#deadOutcomeSeen = false;
      void this.#readOldestDead(queue.deadLettered);
    }
    if (!sameRecord(queue, this.#queue) || !sameRecord(intake, this.#intake)) {
      this.#queue = { ...queue };
      this.#intake = { ...intake };
      this.#changed('status');
    }
    this.#readLogLoss();
    if (!this.#settleReading) void this.#readSettleHold();
    this.#checkHealth();
  }

  /**
   * The deliveries held after a restart (store.settleHold: nothing is read while none is held). A
   * change is a change of the status; the hold's words are made when the status is built.
   */
  async #readSettleHold(): Promise<void> {
    const read = this.#o.store.settleHold;
    if (!read) return;
    this.#settleReading = true;
    let next: SettleHold | undefined;
    try {
      next = await read.call(this.#o.store);
    } catch {
      next = undefined; // a closed store: the store's health says why
    } finally {
      this.#settleReading = false;
    }
    if (next === undefined && this.#settleHold === undefined) return;
    if (next !== undefined && this.#settleHold !== undefined && sameRecord(next, this.#settleHold)) return;
    this.#settleHold = next;
    this.#changed('status');
  }

  /**
   * The log lines lost so far (log.ts counts them as stderr refuses them): a change is a change of
   * the status. Also follows the loss LOG_LINES_LOST tells of (#logGap), on the model's clock.
   */
  #readLogLoss(): void {
    const loss = (this.#o.logOutputLoss ?? logOutputLoss)();
    const now = this.#now();
    // An hour after lines got through again, the loss is told; a new one is a new loss.
    if (!this.#logGapShown(now)) this.#logGap = null;
    if (loss.droppedLines > this.#logLoss.droppedLines || loss.gapSince !== null) {
      // A gap opened and closed again between two reads: its first line was lost within a poll of its last.
      this.#logGap ??= { firstAt: loss.gapSince ?? loss.lastDroppedAt ?? new Date(now).toISOString(), throughSeenAt: null };
      this.#logGap.throughSeenAt = null;
    }
    if (this.#logGap !== null && loss.gapSince === null) this.#logGap.throughSeenAt ??= now;
    if (sameRecord(loss, this.#logLoss)) return;
    this.#logLoss = { droppedLines: loss.droppedLines, lastDroppedAt: loss.lastDroppedAt, lastError: loss.lastError, gapSince: loss.gapSince };
    this.#changed('status');
  }

  /** LOG_LINES_LOST is due at `now`: a gap still open, or lines written again less than an hour ago. */
  #logGapShown(now: number): boolean {
    const gap = this.#logGap;
    return gap !== null && (gap.throughSeenAt === null || now - gap.throughSeenAt < LOG_LOSS_SHOWN_MS);
  }

  async refreshDisk(): Promise<void> {
    const path = this.#o.config.gateway.dataDir;
    try {
      const d = await (this.#o.readDisk ?? readDiskSpace)(path);
      const next: DiskStatus = { path, freeBytes: d.freeBytes, totalBytes: d.totalBytes, minFreeBytes: this.#o.config.store.minFreeBytes };
      // Publish disk changes only when they move by more than 1 MB (the free count jitters), or
      // cross a threshold: the health is worked out from the reading kept, and a store full at
      // 0.5 MB under its minimum, given 0.8 MB back, stayed DISK_FULL while it accepted again.
      // A fall back under the threshold the kept reading rose over, within the jitter, is the
      // jitter: taken, DISK_LOW (or DISK_FULL) came and went at every reading of a disk whose free
      // count hovers there. The store's own refusal says itself meanwhile (STORE_DOWN).
      const level = (d: DiskStatus): number => (d.freeBytes < d.minFreeBytes ? 0 : d.freeBytes < d.minFreeBytes * 2 ? 1 : 2);
      const moved = !this.#disk || Math.abs(this.#disk.freeBytes - next.freeBytes) > 1024 * 1024;
      const crossed = this.#disk !== null && level(this.#disk) !== level(next);
      const fallBack = crossed && this.#diskRoseOver && level(next) < level(this.#disk!);
      if (moved || (crossed && !fallBack)) {
        this.#diskRoseOver = !moved && crossed && level(next) > level(this.#disk!);
        this.#disk = next;
        this.#changed('status');
      }
    } catch {
      if (this.#disk !== null) this.#changed('status');
      this.#disk = null;
    }
    this.#checkHealth();
  }

  /**
   * Read the validity of every TLS certificate of the configuration (`hl7[].tls.cert`/`.ca`,
   * `mqtt.tls.cert`/`.ca`), as the links loaded them at start: a file renewed since is taken at
   * the next restart, by the links and by this figure alike.
   */
  refreshCertificates(): void {
    const now = this.#now();
    this.#certificates = tlsCertificateFiles(this.#o.config).flatMap((f) => certificateValidity(f, now) ?? []);
    this.#checkHealth();
  }

  /** Health with its reasons, worst first. */
  health(): { health: Health; reasons: HealthReason[] } {
    const now = this.#now();
    const reasons: HealthReason[] = [];
    const storeHealth = this.#storeHealth();
    if (storeHealth !== 'ok') {
      const reason = this.#storeReasonText();
      const why = reason ? `: ${reason}` : '';
      const what = storeHealth === 'full' ? 'the data disk is full' : storeHealth === 'closed' ? 'the store is closed' : 'the store cannot commit';
      reasons.push({ level: 'down', code: 'STORE_DOWN', message: `Not accepting messages: ${what}${why}` });
    }
    // A write that does not return (a dying disk, a hung mount): nothing fails, so the store's
    // health stays ok, but no message is answered meanwhile.
    if (this.#writeStallMinutes >= 0) {
      reasons.push({ level: 'down', code: 'STORE_STALLED', message: `Not answering messages: a write to the data disk has not returned for ${downFor(this.#writeStallMs)} (a failing disk or a hung mount?); the LIS and analyzers wait for their acknowledgements` });
    }
    const disk = this.#disk;
    if (disk && disk.freeBytes < disk.minFreeBytes) {
      reasons.push({ level: 'down', code: 'DISK_FULL', message: `Not accepting messages: only ${mib(disk.freeBytes)} free on ${disk.path}` });
    } else if (disk && disk.freeBytes < disk.minFreeBytes * 2) {
      reasons.push({ level: 'degraded', code: 'DISK_LOW', message: `Data disk almost full: ${mib(disk.freeBytes)} free on ${disk.path}` });
    }
    const o = this.#odoo;
    // Between two attempts the link is 'connecting': the problem stays until one succeeds.
    const problem = this.#odooProblem !== null && (DOWN_ODOO_STATES.has(o.state) || o.state === 'connecting') ? this.#odooProblem : null;
    if (problem?.state === 'auth-failed') {
      reasons.push({ level: 'degraded', code: 'ODOO_AUTH', message: `Odoo refused the gateway's credentials${o.lastError ? ` (${o.lastError})` : ''}; results are kept and sent once fixed` });
    } else if (problem !== null && now - problem.since >= (this.#o.odooGraceMs ?? 120_000)) {
      const what = problem.state === 'degraded' ? 'failing' : 'unreachable';
      reasons.push({ level: 'degraded', code: 'ODOO_UNREACHABLE', message: `Odoo ${what} for ${minutes(now - problem.since)}; messages are kept and sent when it is back` });
    }
    // No status reaches the tray or the dashboards: the HTTP surfaces are the ones left to say so.
    const mq = this.#mqtt;
    if (mq && !mq.connected && now - mq.sinceMs >= (this.#o.mqttGraceMs ?? 120_000)) {
      const why = mq.lastError ? ` (${mq.lastError})` : '';
      reasons.push({ level: 'degraded', code: 'MQTT_UNREACHABLE', message: shownReason(`MQTT broker ${mq.broker} unreachable for ${minutes(now - mq.sinceMs)}${why}; the tray and dashboards get no status`) });
    }
    // A box that booted behind its data (no battery-backed clock, the time server not reached yet):
    // every time the gateway writes, and every age shown, is off by as much until it is set right.
    const stored = this.#storedData;
    const behind = stored === undefined ? 0 : stored.newest + Math.max(0, performance.now() - stored.mono) - now;
    if (behind > SteadyWallClock.STEP_REPORT_MS) {
      const at = localTime(stored!.newest, now);
      reasons.push({
        level: 'degraded',
        code: 'CLOCK_BEHIND_STORED_DATA',
        message: `System clock ${span(behind)} behind the data the gateway stored (newest ${at}): times recorded and ages shown are off by as much until it is set right; check the box's time source (NTP, RTC)`,
      });
    }
    // The log has a gap (its reader went away, its disk is full): IT looking for what happened then finds nothing.
    // Its words stay while lines go on being lost (no count, no last time: the banner, a live
    // region, is read out again whenever they change); the count is in `log` and the Intake card.
    const gap = this.#logGap;
    if (gap !== null && this.#logGapShown(now)) {
      const why = this.#logLoss.lastError ? ` (${this.#logLoss.lastError})` : '';
      reasons.push({
        level: 'degraded',
        code: 'LOG_LINES_LOST',
        message: shownReason(`Log lines lost, the first at ${localTime(Date.parse(gap.firstAt), now)}${why}: the log has a gap from then (how many: Intake); check what reads the gateway's output (journald, a tee or log shipper) and the free space where the log is written`),
      });
    }
    if (this.#deadShown > 0) {
      const n = this.#deadShown;
      // Which sample and why (the oldest, #readOldestDead), and who decides where: a technician
      // told "1 dead letter waiting for a decision" knew neither.
      const d = this.#oldestDead;
      const what = d ? ` (${n === 1 ? '' : 'the oldest: '}${d.type}${d.correlationId ? ` of ${d.correlationId}` : ''}${d.reason ? `: ${clipped(d.reason, DEAD_REASON_CHARS)}` : ''})` : '';
      reasons.push({
        level: 'degraded',
        code: 'DEAD_LETTERS',
        message: shownReason(`${n} dead letter${n === 1 ? '' : 's'}${what} waiting for an administrator's decision (replay or discard, on the status page's Dead letters tab)`),
      });
    }
    if (this.#queue.blockedPartitions > 0) {
      const n = this.#queue.blockedPartitions;
      reasons.push({ level: 'degraded', code: 'BLOCKED_PARTITIONS', message: `${n} order${n === 1 ? '' : 's'}/lot${n === 1 ? '' : 's'} blocked behind a dead letter` });
    }
    // Billing events retention may not prune bare (their memory could not be written): they stay,
    // past the size cap the disk is sized by, until the cause is mended.
    const heldBack = this.#retentionHeld.accessions;
    if (heldBack > 0) {
      const first = this.#retentionHeld.first;
      reasons.push({
        level: 'degraded',
        code: 'RETENTION_HELD',
        message: shownReason(`Retention keeps the billing events of ${heldBack} accession${heldBack === 1 ? '' : 's'} past their age and the size cap: billing's memory of ${heldBack === 1 ? 'it' : 'them'} could not be written${first ? ` (${first})` : ''}`),
      });
    }
    const stale = this.#o.staleQueueSeconds ?? 900;
    if (this.#queue.oldestPendingAgeSeconds > stale) {
      reasons.push({ level: 'degraded', code: 'QUEUE_STALE', message: `Oldest event waiting for Odoo for ${minutes(this.#queue.oldestPendingAgeSeconds * 1000)}` });
    }
    const waiting = this.#waitingForOrderReason(now, stale);
    if (waiting) reasons.push(waiting);
    const idleMs = this.#o.endpointIdleMs ?? 3_600_000;
    for (const e of this.#endpoints.values()) {
      const who = e.role === 'analyzer' ? `Analyzer ${e.id}` : `LIS link ${e.id}`;
      const down = reasons.length;
      if (BAD_ENDPOINT_STATES.has(e.state)) {
        const since = Math.max(0, now - Date.parse(e.since));
        const detail = e.detail ? ` (${e.detail})` : '';
        reasons.push({ level: 'degraded', code: 'ENDPOINT_DOWN', endpoint: e.id, message: `${who} ${e.state === 'error' ? 'in error' : 'disconnected'} for ${downFor(since)}${detail}` });
      } else if (e.state === 'listening' && e.connections === 0 && e.noConnectionSince !== null) {
        // A TCP peer that connected and went away: nothing else tells it from a quiet one.
        const since = Math.max(0, now - Date.parse(e.noConnectionSince));
        if (since >= idleMs) reasons.push({ level: 'degraded', code: 'ENDPOINT_DOWN', endpoint: e.id, message: `${who} disconnected for ${downFor(since)} (listening, no connection since its last one closed)` });
      }
      // Connected (or listening) and silent in the lab's hours: a disconnected one says more already.
      if (reasons.length === down) {
        const quiet = this.#quietReason(e, who);
        if (quiet) reasons.push(quiet);
      }
      // Worklists the analyzer refused: its technicians would run those tubes without orders.
      const od = e.orderDownload;
      if (od && od.failing > 0) {
        const waited = od.oldestWaitingSince ? ` for ${minutes(Math.max(0, now - Date.parse(od.oldestWaitingSince)))}` : '';
        const last = od.lastError ? `; last refusal${od.lastErrorAccession ? ` (${od.lastErrorAccession})` : ''}: ${od.lastError}` : '';
        const n = od.failing;
        reasons.push({ level: 'degraded', code: 'ORDER_DOWNLOAD_FAILING', endpoint: e.id, message: shownReason(`${who} did not accept ${n} order download${n === 1 ? '' : 's'} (${od.waiting} waiting${waited})${last}`) });
      }
      const line = this.#lineReason(e, who, now);
      if (line) reasons.push(line);
    }
    const days = this.#keyDays(now);
    o.apiKeyExpiresInDays = days;
    if (days !== null && days <= this.#o.config.odoo.keyExpiryWarnDays) {
      const text = days < 0 ? 'Odoo API key has expired' : days === 0 ? 'Odoo API key expires today' : `Odoo API key expires in ${days} day${days === 1 ? '' : 's'}`;
      reasons.push({ level: 'degraded', code: 'API_KEY_EXPIRY', message: text });
    }
    // A certificate the peers will refuse soon, or refuse already (every TLS handshake fails).
    for (const c of this.#certificates) {
      const left = c.validTo.getTime() - now;
      const daysLeft = Math.floor(left / DAY_MS);
      let problem = expiryProblem({ ...c, daysLeft, expired: left <= 0 });
      if (!problem) continue;
      // Its last 24 hours: the hour, in the lab's time (expiryProblem quotes the UTC stamp, for
      // `check`); "today" only on the lab's today, else the day named ("expires at 7 Mar 12:40").
      if (left > 0 && daysLeft === 0) {
        const today = new Date(c.validTo.getTime()).toDateString() === new Date(now).toDateString();
        problem = `certificate ${c.key} expires ${today ? 'today ' : ''}at ${localTime(c.validTo.getTime(), now)}`;
      }
      const who = c.endpoint ? `${this.#endpoints.get(c.endpoint)?.role === 'analyzer' ? 'Analyzer' : 'LIS link'} ${c.endpoint}: ` : 'MQTT: ';
      const then = left <= 0 ? '; TLS peers refuse the connection until it is renewed (read at the next restart)' : '; renew it (read at the next restart)';
      reasons.push({ level: 'degraded', code: 'TLS_CERT_EXPIRY', ...(c.endpoint ? { endpoint: c.endpoint } : {}), message: `${who}${problem}${then}` });
    }
    if (this.#o.relayPaused?.()) {
      const p = this.#relayPause;
      // Paused by the gateway itself: its store was last sending from another machine (relay/machine-guard.ts).
      const byGateway = p?.by === GATEWAY_PAUSE;
      const detail = p ? `${byGateway ? '' : ` (${p.by})`} since ${localTime(Date.parse(p.since), now)}${p.reason ? `: "${p.reason}"` : ''}` : '';
      reasons.push({ level: 'degraded', code: 'RELAY_PAUSED', message: `Sending to Odoo is paused by ${byGateway ? 'the gateway' : 'an administrator'}${detail}` });
    }
    // Stopping: the reasons shown since the stop began stay (markStopping), with their last wording.
    const kept = this.#stoppingReasons;
    if (kept) {
      const current = new Set<string>();
      for (const r of reasons) {
        const key = reasonKey(r);
        current.add(key);
        kept.set(key, r);
      }
      for (const [key, r] of kept) if (!current.has(key)) reasons.push(r);
    }
    const health: Health = reasons.some((r) => r.level === 'down') ? 'down' : reasons.length > 0 ? 'degraded' : 'ok';
    reasons.sort((a, b) => (a.level === b.level ? 0 : a.level === 'down' ? -1 : 1));
    return { health, reasons };
  }

  endpoint(id: string): EndpointStatus | undefined {
    const e = this.#endpoints.get(id);
    return e ? { ...e } : undefined;
  }

  /** The model's clock (epoch ms, never going backwards): the time its payloads carry as `generatedAt`. */
  now(): number {
    return this.#now();
  }

  endpointIds(): string[] {
    return [...this.#endpoints.keys()];
  }

  /** The DESIGN.md §5 `/api/status` body (plus additive fields). */
  toApiStatus(): ApiStatus {
    const now = this.#now();
    const { health, reasons } = this.health();
    const q = this.#queue;
    const o = this.#odoo;
    const endpoints = [...this.#endpoints.values()];
    return {
      gatewayId: this.#o.config.gateway.id,
      version: this.#o.version,
      startedAt: this.#o.startedAt,
      health,
      intake: { ...this.#intake },
      queue: {
        pending: q.pending,
        inFlight: q.inFlight,
        retrying: q.retrying,
        deadLettered: q.deadLettered,
        delivered: q.delivered,
        oldestPendingAgeSeconds: q.oldestPendingAgeSeconds,
      },
      odoo: { state: o.state, lastError: o.lastError, lastSuccessAt: o.lastSuccessAt },
      endpoints: endpoints.map((e) => ({ id: e.id, kind: e.kind, state: e.state, connections: e.connections, lastMessageAt: e.lastMessageAt, ...(e.orderDownload ? { orderDownload: e.orderDownload } : {}) })),
      online: true,
      stopping: this.#stoppingReasons !== undefined,
      generatedAt: new Date(now).toISOString(),
      healthReasons: reasons,
      store: { health: this.#storeHealth(), reason: this.#storeHealth() === 'ok' ? null : this.#storeReasonText() },
      blockedPartitions: q.blockedPartitions,
      discarded: q.discarded,
      relayPaused: this.#o.relayPaused?.() ?? false,
      relayPause: this.#o.relayPaused?.() && this.#relayPause ? { ...this.#relayPause } : null,
      odooDetail: { ...o },
      endpointDetail: endpoints.map((e) => ({ ...e })),
      disk: this.#disk ? { ...this.#disk } : null,
      throughput: {
        receivedPerMinute: this.#received.sum(now),
        acceptedPerMinute: this.#accepted.sum(now),
        deliveredPerMinute: this.#delivered.sum(now),
        failedPerMinute: this.#failed.sum(now),
      },
      sandbox: o.sandbox,
      publishIntervalMs: this.#o.config.mqtt.publishIntervalMs,
      mqtt: this.#mqtt ? { broker: this.#mqtt.broker, connected: this.#mqtt.connected, since: this.#mqtt.since, lastError: this.#mqtt.lastError } : null,
      recentAlerts: this.#recentAlerts.map((a) => ({ ...a })).reverse(),
      log: { ...this.#logLoss },
      ...(this.#settleHold ? { settleHold: this.#settleHoldStatus(this.#settleHold, now) } : {}),
    };
  }

  #settleHoldStatus(hold: SettleHold, now: number): SettleHoldStatus {
    return { events: hold.events, orders: hold.partitions, behind: hold.behind, until: new Date(hold.until).toISOString(), message: settleHoldWords(hold, now) };
  }

  /**
   * Who paused sending to Odoo, when and why (the status API, as the relay keeps it), or null at
   * a resume. Shown with RELAY_PAUSED and as `relayPause` while the relay is paused.
   */
  setRelayPause(detail: RelayPauseDetail | null): void {
    this.#relayPause = detail ? { since: detail.since, by: shownReason(detail.by), reason: detail.reason ? shownReason(detail.reason) : null } : null;
    this.touch();
  }

  /** Whether the MQTT publisher reaches its broker; undefined until the publisher starts (`GET /metrics`). */
  mqttConnected(): boolean | undefined {
    return this.#mqtt?.connected;
  }

  /**
   * The MQTT publisher's connection (mqtt-publisher.ts): connected or not, and the last error.
   * Disconnected for `mqttGraceMs` raises MQTT_UNREACHABLE; `since` moves only when `connected`
   * changes (a reconnection attempt failing again does not restart the count).
   */
  setMqttLink(link: { broker: string; connected: boolean; lastError?: string | null }): void {
    const now = this.#now();
    const prev = this.#mqtt;
    const flipped = !prev || prev.connected !== link.connected;
    const lastError = link.connected ? null : link.lastError !== undefined && link.lastError !== null ? shownReason(link.lastError) : (prev?.lastError ?? null);
    if (!flipped && prev.lastError === lastError && prev.broker === link.broker) return;
    this.#mqtt = {
      broker: link.broker,
      connected: link.connected,
      since: flipped ? new Date(now).toISOString() : prev.since,
      sinceMs: flipped ? now : prev.sinceMs,
      lastError,
    };
    this.#changed('status');
    this.#checkHealth();
  }

  /**
   * The order download state of an analyzer (astm/order-download.ts, wired by the composition
   * root): shown on its endpoint entry, in /api/status and on its MQTT endpoint topic.
   */
  setOrderDownload(endpointId: string, summary: OrderDownloadSummary): void {
    const ep = this.#endpoints.get(endpointId);
    if (!ep) return;
    ep.orderDownload = { ...summary, lastError: summary.lastError === null ? null : shownReason(summary.lastError) };
    this.#changed(`endpoint:${ep.id}`);
    this.#changed('status');
    this.#checkHealth();
  }

  /** Mark the status changed from outside (e.g. the relay was paused). */
  touch(): void {
    this.#changed('status');
    this.#checkHealth();
  }

  /**
   * LINE_ERRORS while an analyzer's line misreads most of what it gets: in the last minute, frames
   * refused outnumber those accepted (at least LINE_MIN_REFUSED), or LINE_MIN_IGNORED bytes or more
   * were ignored outside frames and no frame was accepted. Before, such a line read "connected",
   * health OK; only the partials in the message browser hinted at it.
   */
  #lineReason(e: EndpointStatus, who: string, now: number): HealthReason | undefined {
    const w = this.#lineWindows.get(e.id);
    if (!w) return undefined;
    const refused = w.refused.sum(now);
    const accepted = w.accepted.sum(now);
    const ignored = w.ignored.sum(now);
    const hint = w.hint ? ` — ${w.hint}` : '';
    if (refused >= LINE_MIN_REFUSED && refused > accepted) {
      const last = e.link?.lastRefusal ? ` (last: ${e.link.lastRefusal})` : '';
      return { level: 'degraded', code: 'LINE_ERRORS', endpoint: e.id, message: shownReason(`${who}: ${refused} of ${refused + accepted} frames refused in the last minute${last}${hint}`) };
    }
    if (ignored >= LINE_MIN_IGNORED && accepted === 0) {
      return { level: 'degraded', code: 'LINE_ERRORS', endpoint: e.id, message: shownReason(`${who}: ${ignored} bytes ignored outside frames in the last minute, no frame accepted${hint}`) };
    }
    return undefined;
  }

  /**
   * ENDPOINT_QUIET: an endpoint with a quiet alert has had no message for its `afterMinutes`
   * within its hours (config/quiet-alert.ts `quietSince`). Before, a serial analyzer whose cable
   * came loose at its end, or whose host interface was switched off, kept its port open: it read
   * "connected", health OK, while its results stopped reaching Odoo.
   */
  #quietReason(e: EndpointStatus, who: string): HealthReason | undefined {
    const q = this.#quiet.get(e.id);
    if (!q || e.state === 'stopped') return undefined;
    const mark = this.#quietMarks.get(e.id);
    const from = mark ?? this.#startMark;
    if (from === undefined) return undefined;
    // Counted on the monotonic clock; the wall clock only says when the lab's hours were open.
    const wall = this.#wall();
    let since = quietFrom(from, wall, this.#mono());
    // A stored last message: the time before the start was read on the clock of the start, which
    // may have been wrong then (an RTC an hour ahead at boot, set back by NTP a minute later)
    // while the stamp was right (NTP kept the clock of the run before). Of the two, the shorter
    // silence: a clock wrong at the start raises no alert early, and one wrong all along (stamps
    // three days behind too, set forward after the start) none either.
    if (mark?.stored) since = Math.max(since, from.wall);
    const { due, quietMs } = quietSince(q, since, wall);
    if (!due) return undefined;
    // The words give the time the wall clock gave the message, unless the clock was stepped since
    // (it was wrong then or is now): then the time counted back from now.
    const shown = Math.abs(since - from.wall) <= SteadyWallClock.STEP_REPORT_MS ? from.wall : since;
    const hours = q.hours ? ` of its hours (${q.hours})` : '';
    const last = mark ? `${hours}, the last at ${localTime(shown, wall)}` : `${hours} since the gateway started at ${localTime(shown, wall)}`;
    const check =
      e.role === 'analyzer'
        ? "its results are not reaching Odoo: is the analyzer's host interface (LIS output) on in its menu and its cable in at both ends?"
        : 'nothing from the LIS reaches Odoo: is the LIS still sending on this link (its HL7 interface or outbound queue stopped)?';
    return { level: 'degraded', code: 'ENDPOINT_QUIET', endpoint: e.id, message: shownReason(`${who} quiet: no message for ${downFor(quietMs)}${last}; ${check}`) };
  }

  #onLink(e: TelemetryEvents['endpoint.link']): void {
    const now = this.#now();
    const ep = this.#endpoints.get(e.endpoint);
    if (!ep) return;
    let w = this.#lineWindows.get(e.endpoint);
    if (!w) {
      w = { accepted: new MinuteWindow(), refused: new MinuteWindow(), ignored: new MinuteWindow(), hint: null };
      this.#lineWindows.set(e.endpoint, w);
    }
    // Cumulative counts in (the previous report's are on `ep.link`), the last minute's share out
    // (a count taken back — a frame accepted, then its message not committed — never goes below nothing).
    const prev = ep.link ?? { framesAccepted: 0, framesRefused: 0, ignoredBytes: 0 };
    w.accepted.add(now, Math.max(0, e.framesAccepted - prev.framesAccepted));
    w.refused.add(now, Math.max(0, e.framesRefused - prev.framesRefused));
    w.ignored.add(now, Math.max(0, e.ignoredBytes - prev.ignoredBytes));
    const refusedNow = e.framesRefused > prev.framesRefused;
    w.hint = e.hint ?? null;
    const lastRefusal = e.lastRefusal !== undefined ? shownReason(e.lastRefusal) : null;
    ep.link = {
      framesAccepted: e.framesAccepted,
      framesRefused: e.framesRefused,
      ignoredBytes: e.ignoredBytes,
      lastRefusal,
      lastRefusalAt: refusedNow ? new Date(now).toISOString() : (ep.link?.lastRefusalAt ?? null),
    };
    this.#changed(`endpoint:${ep.id}`);
    this.#changed('status');
    this.#checkHealth();
  }

  #newEndpoint(id: string, kind: EndpointKind, role: 'lis' | 'analyzer', at: string): EndpointStatus {
    return { id, kind, role, state: 'starting', connections: 0, lastMessageAt: null, since: at, detail: null, noConnectionSince: null, received: 0, accepted: 0, rejected: 0, duplicates: 0 };
  }

  /**
   * Days left on the Odoo API key at `now`: the Odoo client's latest figure when it reported one
   * (counted down since), else `odoo.apiKeyExpiresAt` against the calendar. Null when unknown.
   */
  #keyDays(now: number): number | null {
    const r = this.#reportedKeyDays;
    // Null from the client: a renewed key signed in and the configured date was the old key's.
    if (r) return r.days === null ? null : r.days - Math.floor(Math.max(0, now - r.at) / DAY_MS);
    const at = this.#o.config.odoo.apiKeyExpiresAt;
    if (!at) return null;
    const t = Date.parse(at);
    if (Number.isNaN(t)) return null;
    return Math.floor((t - now) / DAY_MS);
  }

  #storeHealth(): GatewayStore['health'] {
    const h = this.#o.store.health;
    if (h !== 'ok') return h;
    return this.#storeHealthEvent === 'ok' ? 'ok' : this.#storeHealthEvent;
  }

  #isoCacheMs = -1;
  #isoCache = '';

  /** ISO time of `ms`, cached per millisecond (the intake path calls this per message). */
  #isoAt(ms: number): string {
    if (ms !== this.#isoCacheMs) {
      this.#isoCacheMs = ms;
      this.#isoCache = new Date(ms).toISOString();
    }
    return this.#isoCache;
  }

  #storeReasonText(): string | null {
    // EventStore exposes `healthReason` beside the interface's `health`.
    const fromStore = (this.#o.store as { healthReason?: string }).healthReason;
    return this.#storeReason ?? fromStore ?? null;
  }

  #onIntake(e: TelemetryEvents['intake.message']): void {
    const now = this.#now();
    let ep = this.#endpoints.get(e.endpoint);
    if (!ep) {
      ep = this.#newEndpoint(e.endpoint, e.kind, e.kind === 'astm' ? 'analyzer' : 'lis', new Date(now).toISOString());
      ep.state = 'connected';
      this.#endpoints.set(e.endpoint, ep);
    }
    ep.kind = e.kind; // an analyzer may speak HL7 (Mindray BS) rather than ASTM
    ep.lastMessageAt = this.#isoAt(now);
    if (this.#quiet.has(ep.id)) this.#quietMarks.set(ep.id, { wall: this.#wall(), mono: this.#mono() });
    ep.received++;
    if (e.outcome === 'accepted') ep.accepted++;
    else if (e.outcome === 'rejected') ep.rejected++;
    else ep.duplicates++;
    this.#received.add(now);
    if (e.outcome === 'accepted') this.#accepted.add(now);
    this.#changed(`endpoint:${ep.id}`);
    this.#changed('status');
    // The endpoint spoke: its ENDPOINT_QUIET clears now, not at the next poll (only then: this is the intake path).
    if (this.#lastReasonCodes.has(`ENDPOINT_QUIET:${ep.id}`)) this.#checkHealth();
  }

  #onEndpoint(e: TelemetryEvents['endpoint.state']): void {
    const at = new Date(this.#now()).toISOString();
    let ep = this.#endpoints.get(e.endpoint);
    if (!ep) {
      ep = this.#newEndpoint(e.endpoint, e.kind, e.kind === 'astm' ? 'analyzer' : 'lis', at);
      this.#endpoints.set(e.endpoint, ep);
    }
    if (ep.state !== e.state) ep.since = at;
    // A listener whose last connection closed (it had one): since when it has none. An ASTM
    // analyzer keeps its link open, so it is missed when it is gone. An HL7 peer only when its
    // last connection was a lasting one (PERSISTENT_CONNECTION_MS or more): a LIS that connects
    // once per message leaves after each ACK, and an hour of quiet at night is no fault (it was
    // reported down every night).
    const now = this.#now();
    if (e.connections > 0 && ep.connections === 0) this.#connectedAt.set(ep.id, now);
    if (e.connections > 0 || e.state !== 'listening') ep.noConnectionSince = null;
    else if (ep.connections > 0) {
      const opened = this.#connectedAt.get(ep.id);
      const brief = e.kind === 'hl7' && opened !== undefined && now - opened < PERSISTENT_CONNECTION_MS;
      ep.noConnectionSince = brief ? null : at;
    }
    ep.kind = e.kind;
    ep.state = e.state;
    ep.connections = e.connections;
    ep.detail = e.detail ?? null;
    this.#changed(`endpoint:${ep.id}`);
    this.#changed('status');
    this.#checkHealth();
  }

  #onStoreHealth(e: TelemetryEvents['store.health']): void {
    this.#storeHealthEvent = e.state;
    this.#storeReason = e.state === 'ok' ? null : (e.reason ?? null);
    this.#changed('status');
    this.#checkHealth();
  }

  /**
   * WAITING_FOR_ORDERS: events have waited for the LIS's order longer than the stale-queue limit.
   * Their retry is not due most of the time, so the queue's oldest-waiting age (QUEUE_STALE) skips
   * them: with the LIS's order interface down, the lab saw nothing for 24 h, then dead letters.
   */
  #waitingForOrderReason(now: number, staleSeconds: number): HealthReason | undefined {
    if (this.#waitingForOrder.size === 0) return undefined;
    let oldest = Number.POSITIVE_INFINITY;
    for (const since of this.#waitingForOrder.values()) if (since < oldest) oldest = since;
    if (!(now - oldest > staleSeconds * 1000)) return undefined;
    const n = this.#waitingForOrder.size;
    return {
      level: 'degraded',
      code: 'WAITING_FOR_ORDERS',
      message: `${n} event${n === 1 ? '' : 's'} (results, milestones or cancellations) waiting for ${n === 1 ? 'its order' : 'their orders'} from the LIS, the oldest for ${minutes(now - oldest)}: check the LIS's order interface; each is dead-lettered 24 h after it came without its order`,
    };
  }

  /**
   * A relay outcome of an event waiting for its order: counted from when it was received (read
   * from the store; meanwhile from now). Any other outcome of it ends its wait.
   */
  #trackWaitingForOrder(e: TelemetryEvents['relay.outcome']): void {
    if (e.outcome === 'retry' && waitsForLisOrder(e.error)) {
      if (this.#waitingForOrder.has(e.eventId)) return;
      this.#waitingForOrder.set(e.eventId, this.#now());
      void this.#readWaitingSince(e.eventId);
    } else if (this.#waitingForOrder.delete(e.eventId)) {
      this.#checkHealth();
    }
  }

  async #readWaitingSince(id: string): Promise<void> {
    try {
      const rec = await this.#o.store.getEvent(id);
      if (!this.#waitingForOrder.has(id)) return;
      if (!rec || !STILL_WAITING.has(rec.state)) this.#waitingForOrder.delete(id);
      else {
        const since = waitingSince(rec);
        if (Number.isFinite(since)) this.#waitingForOrder.set(id, since);
      }
      this.#checkHealth();
    } catch {
      /* a closed store: counted from when the relay said so */
    }
  }

  /** Drop the waiting events that are no longer waiting (an operator discarded them). */
  async #recheckWaitingForOrder(): Promise<void> {
    for (const id of [...this.#waitingForOrder.keys()]) await this.#readWaitingSince(id);
  }

  #onRelay(e: TelemetryEvents['relay.outcome']): void {
    this.#trackWaitingForOrder(e);
    const now = this.#now();
    if (e.outcome === 'delivered') {
      this.#delivered.add(now);
      this.#odoo.lastSuccessAt = new Date(now).toISOString();
    } else if (e.outcome === 'retry' && (e.waiting === true || waitsForLisOrder(e.error))) {
      // Waiting (for an earlier event of the queue, for the LIS's order): no failure of Odoo's.
      // Counted and shown as one, an invoice waiting behind its order made Odoo's last error read
      // "…the invoice follows them" and the failures per minute climb while Odoo answered well.
    } else {
      this.#failed.add(now);
      if (e.error) this.#odoo.lastError = e.error;
      if (e.outcome === 'dead') this.#deadOutcomeSeen = true;
    }
    this.#changed('status');
  }

  #onOdooState(e: TelemetryEvents['odoo.state']): void {
    const now = this.#now();
    if (e.state !== this.#odoo.state) this.#odoo.since = new Date(now).toISOString();
    if (DOWN_ODOO_STATES.has(e.state)) {
      this.#odooProblem = { state: e.state, since: this.#odooProblem?.since ?? now };
    } else if (UP_ODOO_STATES.has(e.state)) {
      this.#odooProblem = null;
    }
    // The link connected again: the last error was the outage's, it is not current any more.
    if ((e.state === 'connected' || e.state === 'sandbox') && e.state !== this.#odoo.state) this.#odoo.lastError = null;
    this.#odoo.state = e.state;
    if (e.lastError !== undefined) this.#odoo.lastError = e.lastError;
    if (e.serverVersion !== undefined) this.#odoo.serverVersion = e.serverVersion;
    if (e.keyExpiresInDays !== undefined) {
      this.#reportedKeyDays = { days: e.keyExpiresInDays, at: now };
      this.#odoo.apiKeyExpiresInDays = e.keyExpiresInDays;
    }
    if (e.state === 'connected') this.#odoo.lastSuccessAt = new Date(now).toISOString();
    this.#changed('status');
    this.#checkHealth();
  }

  #onOdooRequest(e: TelemetryEvents['odoo.request']): void {
    if (!e.ok) return;
    this.#odoo.lastSuccessAt = new Date(this.#now()).toISOString();
    // Not a visible change worth a publish on its own: the next poll or interval carries it.
  }

  /**
   * A component's alert, passed through unless it restates a health reason of the model, and kept
   * in `recentAlerts` for the subscribers that were not connected when it went out.
   */
  #onComponentAlert(e: TelemetryEvents['alert']): void {
    if (RESTATED_ALERTS.has(e.code)) return;
    this.#recentAlerts.push({ ...e, message: shownReason(e.message) });
    if (this.#recentAlerts.length > RECENT_ALERTS) this.#recentAlerts.shift();
    this.#changed('status');
    // Masked as the status shows it (a link's refusal may quote a patient record), not cut.
    this.#emitAlert({ ...e, message: maskedText(e.message) });
  }

  #emitAlert(alert: StatusAlert): void {
    this.#startupAlerts.keep(alert);
    for (const l of this.#alertListeners) {
      try {
        l(alert);
      } catch {
        /* a faulty subscriber never breaks the model */
      }
    }
  }

  /** Turn health transitions into alerts (a reason appearing or clearing). */
  #checkHealth(): void {
    const { health, reasons } = this.health();
    const codes = new Set(reasons.map(reasonKey));
    const at = new Date(this.#now()).toISOString();
    // A reason added to or taken from a health already degraded is a change too (ODOO_UNREACHABLE
    // after its grace, ENDPOINT_DOWN after an idle hour, LINE_ERRORS cleared): only a change of
    // level was one, and /api/stream, which pushes on change only, kept showing the old reasons
    // in a quiet lab (the retained MQTT status until the next interval).
    let reasonsChanged = false;
    for (const r of reasons) {
      const key = reasonKey(r);
      if (!this.#lastReasonCodes.has(key)) {
        reasonsChanged = true;
        this.#emitAlert({ severity: r.level === 'down' ? 'critical' : 'warning', code: r.code, message: r.message, at, ...(r.endpoint ? { endpoint: r.endpoint } : {}) });
      }
    }
    for (const key of this.#lastReasonCodes) {
      if (!codes.has(key)) {
        reasonsChanged = true;
        const [code, endpoint] = key.split(':') as [string, string];
        this.#emitAlert({ severity: 'info', code: `${code}_CLEARED`, message: `Resolved: ${code.toLowerCase().replaceAll('_', ' ')}${endpoint ? ` (${endpoint})` : ''}`, at, ...(endpoint ? { endpoint } : {}) });
      }
    }
    this.#lastReasonCodes = codes;
    if (health !== this.#lastHealth || reasonsChanged) {
      this.#lastHealth = health;
      this.#changed('status');
    }
  }

  #changed(key: string): void {
    this.#pendingChanges.add(key);
    if (this.#changeScheduled) return;
    this.#changeScheduled = true;
    // Batch the changes of one tick (a burst of telemetry makes one notification).
    queueMicrotask(() => {
      this.#changeScheduled = false;
      const changed = this.#pendingChanges;
      this.#pendingChanges = new Set();
      for (const l of this.#changeListeners) {
        try {
          l(changed);
        } catch {
          /* a faulty subscriber never breaks the model */
        }
      }
    });
  }
}

/** A reason's identity across health computations (its alerts and their `_CLEARED` go by it). */
function reasonKey(r: HealthReason): string {
  return `${r.code}:${r.endpoint ?? ''}`;
}

function sameRecord<T extends object>(a: T, b: T): boolean {
  for (const k of Object.keys(a) as Array<keyof T>) if (a[k] !== b[k]) return false;
  return true;
}
