/**
 * The tray's logic as pure functions (no Electron, no MQTT): what the tray shows for what it
 * knows about the gateway. The Electron main process feeds it from its MQTT subscription.
 *
 * "Offline" has three causes, all shown the same way:
 * - the MQTT connection to the broker is lost (with the embedded broker that is how a killed
 *   gateway looks: its broker died with it);
 * - the retained availability topic says `offline` (graceful stop, or the Last Will an external
 *   broker publishes when the gateway process dies);
 * - no status arrived for a while (the gateway publishes at least every `mqtt.publishIntervalMs`).
 */
import { displayUrl } from './tray-config.ts';

export const TrayIcons = ['ok', 'degraded', 'down', 'offline'] as const;
export type TrayIcon = (typeof TrayIcons)[number];

/** One reason of the gateway's health (status/README.md "Health"); `endpoint` for a link's own. */
export interface HealthReason {
  level: string;
  code: string;
  message: string;
  endpoint?: string;
}

/** The part of the `/api/status` body the tray reads. */
export interface TrayStatus {
  gatewayId: string;
  version?: string;
  health: 'ok' | 'degraded' | 'down';
  healthReasons?: HealthReason[];
  queue?: { pending: number; deadLettered: number };
  relayPaused?: boolean;
  online?: boolean;
  /** How often the gateway republishes its status when nothing changes (ms). */
  publishIntervalMs?: number;
  /** When the gateway process started, and when it wrote this status (both by its clock). */
  startedAt?: string;
  generatedAt?: string;
  /**
   * The gateway is stopping (a restart, an update, a shutdown): its links are being closed, and its
   * health keeps the reasons it had. Absent from a gateway older than the field (see isStopping).
   */
  stopping?: boolean;
  /** Its analyzers and LIS links; the tray reads only their state (`stopped`: the gateway is stopping). */
  endpoints?: Array<{ id?: string; state?: string }>;
  /**
   * The gateway's one-off alerts since it started, newest first (status/README.md `recentAlerts`):
   * those raised while the tray was not connected are notified from here (missedAlerts).
   */
  recentAlerts?: TrayAlert[];
}

export interface TrayInput {
  /** State of the tray's own MQTT connection. */
  connection: 'connecting' | 'connected' | 'lost';
  /** Why the broker refused or dropped the connection (its words), while not connected. */
  connectionError?: string;
  /** The gateway the tray follows, once known (named even before a fresh status arrives). */
  gatewayId?: string;
  /** Problems with the tray's own settings (bad values, unreadable files), shown on a second line. */
  configIssues?: readonly string[];
  /** Last retained availability payload's state. */
  availability?: 'online' | 'offline';
  /** Epoch ms that availability arrived (see NO_STATUS_HINT_MS). */
  availabilityAt?: number;
  /**
   * The `reason` of an `offline` availability: "gateway stopped" (a graceful stop) or the Last
   * Will's "connection to the gateway lost", which the broker publishes when it loses the
   * gateway's connection, whether the gateway died or runs cut off from the broker.
   */
  availabilityReason?: string;
  /**
   * While the tray shows the gateway offline, the gateway at gatewayUrl answered its last
   * `/api/status` request, naming the followed gateway: it runs, and only its status does not
   * reach this tray over MQTT.
   */
  gatewayAnswers?: boolean;
  /** The `at` of an `offline` availability (the gateway's clock): when its graceful stop began. */
  availabilityStoppedAt?: string;
  /**
   * The `startedAt` of the gateway process whose page answered (gatewayAnswers): one started
   * after a graceful stop's `at` is the gateway started again, whose status does not reach the broker.
   */
  answeredStartedAt?: string;
  status?: TrayStatus;
  /** Epoch ms the last status arrived. */
  statusAt?: number;
  /**
   * How long ago it arrived, as time passed (the main process's monotonic clock, plus the PC's
   * sleeps): used instead of `now - statusAt`, which a step of the PC's clock moves. Optional
   * (without it, the wall clock's difference).
   */
  statusAgeMs?: number;
  /**
   * The status came as the broker's retained copy (handed out on subscribing: RETAIN 1), not live
   * as the gateway published it: it may have been published long before it arrived (see
   * publishedBeforeArrival). Absent: live.
   */
  statusRetained?: boolean;
  now: number;
  /** A status older than this counts as offline (ms). Default 90 s (3 × the default interval). */
  staleAfterMs?: number;
}

const DEFAULT_STALE_MS = 90_000;
/**
 * The gateway's availability says `online` and no status came for this long: the tray names what
 * to check (its MQTT user's read access to the status topic). A running gateway's status comes
 * with its availability, retained, and at least every publish interval.
 */
export const NO_STATUS_HINT_MS = 10_000;
/** Windows truncates tray tooltips at 127 characters (NOTIFYICONDATA szTip is 128 WCHARs). */
export const TOOLTIP_MAX = 127;

const KNOWN_HEALTH = ['ok', 'degraded', 'down'] as const;

/**
 * The health to show. A value this tray does not know (a newer gateway, a broken payload) or a
 * missing one is "needs attention", never "all good".
 */
function healthOf(status: TrayStatus): TrayStatus['health'] {
  const h: unknown = status.health;
  return (KNOWN_HEALTH as readonly unknown[]).includes(h) ? (h as TrayStatus['health']) : 'degraded';
}

/**
 * Accept a status payload only with the shape the tray relies on: a gatewayId, a known health (an
 * unknown one becomes `degraded` with an "unknown status" reason first), reasons as a list.
 */
export function normalizeStatus(value: unknown): TrayStatus | undefined {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const raw = value as Record<string, unknown>;
  if (typeof raw.gatewayId !== 'string' || !raw.gatewayId) return undefined;
  const reasons = (Array.isArray(raw.healthReasons) ? raw.healthReasons : []).filter(
    (r): r is HealthReason => !!r && typeof r === 'object' && typeof (r as { message?: unknown }).message === 'string',
  );
  const status = { ...raw, healthReasons: reasons } as unknown as TrayStatus;
  if (healthOf(status) === raw.health) return status;
  const said = raw.health === undefined ? 'no health' : `health ${JSON.stringify(raw.health)}`;
  return {
    ...status,
    health: 'degraded',
    healthReasons: [{ level: 'degraded', code: 'UNKNOWN_STATUS', message: `unknown status (${said})` }, ...reasons],
  };
}

/**
 * A status published while the gateway stops, still `online`: the gateway says so (`stopping`,
 * from the moment the stop begins, while its links still drain their connections). Its health
 * says nothing new about the lab: an analyzer no longer watched is not an analyzer back. Before,
 * the tray guessed from a link's state `stopped`, reached only once the link had closed: while
 * the LIS connection drained, a stopping gateway read "all good" in green, or amber with an
 * alarm. A gateway older than the field still tells it that way (a link `stopped`).
 */
function isStopping(status: TrayStatus): boolean {
  if (typeof status.stopping === 'boolean') return status.stopping;
  return Array.isArray(status.endpoints) && status.endpoints.some((e) => !!e && typeof e === 'object' && e.state === 'stopped');
}

/** Said of a stopping gateway, after "stopping — " (as the status page says it). */
const STOPPING_WHY = 'a restart, an update or a shutdown; analyzers and the LIS cannot send through it until it is back';

/**
 * How long before it arrived the status was published (ms), for a status the broker handed out
 * retained: the PC's clock at its arrival minus the gateway's clock when it wrote it (its
 * `generatedAt`); 0 for a live one, or without those times. A retained status is whatever the
 * gateway published last, however long ago: a gateway that died without its Last Will reaching
 * the broker (a broker restarted with persistence, a network cut) leaves its last "all good" there,
 * and before, a tray that started or reconnected an hour later counted it fresh for the stale
 * bound (90 s), green on a dead gateway each time. Both clocks are read once, at arrival: a step
 * of the PC's clock afterwards changes nothing (the age since arrival stays on the monotonic
 * clock). The two machines' clocks may differ: isOffline allows the stale bound again for that.
 */
export function publishedBeforeArrival(input: Pick<TrayInput, 'status' | 'statusAt' | 'statusRetained'>): number {
  if (!input.statusRetained || input.statusAt === undefined) return 0;
  const published = Date.parse(input.status?.generatedAt ?? '');
  return Number.isFinite(published) ? Math.max(0, input.statusAt - published) : 0;
}

/**
 * Whether the gateway's page answering (or not) changes what the tray shows now: a Last Will, a
 * graceful stop (the gateway may be started again), a status gone stale. Elsewhere (a status that
 * never arrives: the broker's ACL; a stop under way) the tray does not keep asking it every
 * RECHECK_MS: before, it asked for as long as that lasted, days, for an answer that changed nothing.
 */
export function gatewayAnswerTells(input: TrayInput): boolean {
  const why = (answers: boolean): string => isOffline({ ...input, gatewayAnswers: answers, answeredStartedAt: answers ? '9999-12-31T23:59:59.999Z' : undefined }).why;
  return why(true) !== why(false);
}

/**
 * Whether the tray shows the gateway grey, and why. `stopping`: a planned stop under way, shown
 * as "stopping", not as an offline gateway nor with its alarms.
 */
export function isOffline(input: TrayInput): { offline: boolean; why: string; stopping?: true } {
  if (input.connection === 'lost') {
    return { offline: true, why: input.connectionError ? `connection to the gateway lost: ${input.connectionError}` : 'connection to the gateway lost' };
  }
  if (input.connection === 'connecting' && !input.status) return { offline: true, why: 'connecting to the gateway…' };
  if (input.availability === 'offline') {
    // The broker's Last Will says it lost the gateway's connection: a dead gateway, or one that
    // runs cut off from the broker (its status page tells them apart). Before, both read "not
    // running", and a technician restarted a gateway that took every result.
    const will = input.availabilityReason !== undefined && input.availabilityReason !== 'gateway stopped';
    // After a graceful stop, a page answering from a process started since is the gateway started
    // again (an update, a reboot) whose status does not reach the broker: the stop's retained
    // "gateway stopped" stays there until the new process reaches it. Before, that read "not
    // running" for as long as it ran cut off. A page answering from the stopping process itself
    // (still draining its links) is the stop it says.
    const restarted = !will && input.gatewayAnswers === true && Date.parse(input.answeredStartedAt ?? '') > Date.parse(input.availabilityStoppedAt ?? '');
    if ((will || restarted) && input.gatewayAnswers) return { offline: true, why: 'the gateway runs (its status page answers), but its status does not reach the MQTT broker' };
    return { offline: true, why: will ? 'the gateway is not running, or is cut off from the MQTT broker' : 'the gateway is not running' };
  }
  if (!input.status) {
    // The gateway says it is online, and its status (published with it, re-published every
    // interval) does not come: a broker whose ACL lets this tray read the availability and not the
    // status grants the subscription and delivers nothing on it (Mosquitto), and says nothing.
    const id = input.gatewayId;
    const waited = input.availabilityAt === undefined ? 0 : input.now - input.availabilityAt;
    if (input.availability === 'online' && id && waited >= NO_STATUS_HINT_MS) {
      return { offline: true, why: `online, but no status: may this tray's MQTT user read lab-gateway/${id}/status?` };
    }
    return { offline: true, why: 'no status received yet' };
  }
  if (input.status.online === false) return { offline: true, why: 'the gateway stopped' };
  if (isStopping(input.status)) return { offline: true, why: STOPPING_WHY, stopping: true };
  // A quiet gateway publishes only on its interval: a status is stale after three missed ones
  // (never sooner than 90 s), so a gateway set to publish every 10 minutes does not flash grey.
  const interval = input.status.publishIntervalMs;
  const stale = input.staleAfterMs ?? (typeof interval === 'number' && interval > 0 ? Math.max(DEFAULT_STALE_MS, 3 * interval) : DEFAULT_STALE_MS);
  const age = input.statusAgeMs ?? (input.statusAt === undefined ? undefined : input.now - input.statusAt);
  // A retained status published before it arrived: what exceeds the bound (the tolerance for
  // the clocks of the gateway and the PC) counts as time without a status. A dead gateway's
  // hour-old status is grey at once, with its age; a running gateway's is green (it republishes
  // within the bound), and its next status, live, counts from its arrival only.
  const before = publishedBeforeArrival(input);
  const beyond = Math.max(0, before - stale);
  if (age !== undefined && age + beyond > stale) {
    const min = Math.max(1, Math.round((age + (beyond > 0 ? before : 0)) / 60_000));
    if (input.gatewayAnswers) return { offline: true, why: `no status for ${min} min, but the gateway runs (its status page answers)` };
    return { offline: true, why: `no status for ${min} min` };
  }
  return { offline: false, why: '' };
}

export function trayIcon(input: TrayInput): TrayIcon {
  if (isOffline(input).offline) return 'offline';
  return healthOf(input.status!);
}

function clip(text: string, max = TOOLTIP_MAX): string {
  return text.length <= max ? text : text.slice(0, max - 1) + '…';
}

/**
 * The state line in its parts: the gateway and its state (`head`), the main reason in words, and
 * how many other problems there are (`more`, " (+2 more)"). Cut to a length by stateLine, which
 * shortens the reason and keeps the count.
 */
function stateParts(input: TrayInput): { head: string; reason: string; more: string; problems: number } {
  const id = input.status?.gatewayId ?? input.gatewayId;
  const name = id ? `Lab gateway ${id}` : 'Lab gateway';
  const off = isOffline(input);
  if (off.stopping) return { head: `${name}: stopping — `, reason: off.why, more: '', problems: 0 };
  if (off.offline) return { head: `${name}: offline — `, reason: off.why, more: '', problems: 0 };
  const s = input.status!;
  const health = healthOf(s);
  const known = health === s.health;
  if (health === 'ok') return { head: `${name}: all good`, reason: '', more: '', problems: 0 };
  const reasons = Array.isArray(s.healthReasons) ? s.healthReasons : [];
  const first = reasons[0]?.message ?? (!known ? 'unknown status' : health === 'down' ? 'not accepting messages' : 'needs attention');
  const more = reasons.length > 1 ? ` (+${reasons.length - 1} more)` : '';
  return { head: `${name}: ${health === 'down' ? 'DOWN' : 'needs attention'} — `, reason: first, more, problems: reasons.length };
}

/**
 * The state line: the gateway, its state, and the main reason in words, on one line of at most
 * `max` characters. The reason is what gets cut: the count of the other problems stays at the
 * end. Before, the whole line was cut from its end, and a long first reason (a dead letter's, a
 * quiet analyzer's, about 200 characters) took the "(+2 more)" with it: the technician read one
 * problem while an analyzer was unplugged as well.
 */
function stateLine(input: TrayInput, max = Number.POSITIVE_INFINITY): string {
  const one = (t: string): string => t.replace(/\s+/g, ' ');
  const { head, reason, more, problems } = stateParts(input);
  const line = one(`${head}${reason}${more}`);
  if (line.length <= max || more === '') return clip(line, max);
  const room = max - one(head).length - more.length;
  if (room >= 12) return `${one(head)}${clip(one(reason), room)}${more}`;
  // No room for the reason's first words beside the count (the tooltip's state line beside a
  // settings problem): how many problems, which the status window lists.
  return clip(`${one(head)}${problems} problems`, max);
}

/**
 * The tooltip: the state line, and — only when the tray's own settings have a problem — a second
 * line naming it. Both together stay within the Windows limit.
 */
export function trayTooltip(input: TrayInput): string {
  const issues = input.configIssues ?? [];
  if (!issues.length) return stateLine(input, TOOLTIP_MAX);
  const note = `Tray settings: ${issues[0]!.replace(/\s+/g, ' ')}${issues.length > 1 ? ` (+${issues.length - 1} more)` : ''}`;
  // The state line keeps 48 characters at least (the gateway, its state, the reason's first
  // words) and gives the note up to 78: a settings problem's key and value come first and must
  // stay in sight (a refused host name is what IT has to add).
  const first = stateLine(input, Math.min(72, Math.max(48, TOOLTIP_MAX - 1 - note.length)));
  return `${first}\n${clip(note, TOOLTIP_MAX - first.length - 1)}`;
}

export interface TrayMenuItem {
  id: 'state' | 'settings' | 'open' | 'pause-relay' | 'resume-relay' | 'copy-diagnostics' | 'quit' | 'separator';
  label: string;
  enabled: boolean;
}

/** Longest state line in the menu (a menu is wider than a tooltip, but not a page wide). */
export const MENU_LINE_MAX = 200;

/**
 * The context menu. It opens with the tooltip's lines as disabled entries: on Linux the tray is
 * an AppIndicator — a click opens this menu, and many desktops show no tooltip — so the state
 * (and a settings problem) must be read here. Pause/resume appear only for an administrator (a
 * token is configured).
 */
export function trayMenu(input: TrayInput, options: { isAdmin: boolean }): TrayMenuItem[] {
  const offline = isOffline(input).offline;
  const items: TrayMenuItem[] = [{ id: 'state', label: stateLine(input, MENU_LINE_MAX), enabled: false }];
  const issues = input.configIssues ?? [];
  if (issues.length) {
    const note = `Tray settings: ${issues[0]!.replace(/\s+/g, ' ')}${issues.length > 1 ? ` (+${issues.length - 1} more: see Copy diagnostics)` : ''}`;
    items.push({ id: 'settings', label: clip(note, MENU_LINE_MAX), enabled: false });
  }
  items.push({ id: 'separator', label: '', enabled: false }, { id: 'open', label: 'Open status window', enabled: true });
  if (options.isAdmin) {
    const paused = input.status?.relayPaused === true;
    items.push(
      paused
        ? { id: 'resume-relay', label: 'Resume sending to Odoo', enabled: !offline }
        : { id: 'pause-relay', label: 'Pause sending to Odoo', enabled: !offline },
    );
  }
  items.push({ id: 'copy-diagnostics', label: 'Copy diagnostics', enabled: true }, { id: 'separator', label: '', enabled: false }, { id: 'quit', label: 'Quit', enabled: true });
  return items;
}

/**
 * Plain-text diagnostics for a support ticket (no patient data: the status has none; no secrets:
 * URLs are shown without a user name or password).
 */
export function diagnostics(
  input: TrayInput,
  extra: {
    gatewayUrl: string;
    mqttUrl: string;
    appVersion: string;
    /** Where each setting came from (TrayConfig.sources). */
    sources?: Readonly<Record<string, string>>;
    /** Problems with the tray's settings (TrayConfig.issues and files it could not read). */
    issues?: readonly string[];
  },
): string {
  const lines = [
    `Lab gateway tray ${extra.appVersion}`,
    `Time: ${new Date(input.now).toISOString()}`,
    `Gateway: ${displayUrl(extra.gatewayUrl)}`,
    `MQTT: ${displayUrl(extra.mqttUrl)} (${input.connection}${input.connectionError ? `: ${input.connectionError}` : ''})`,
    `Availability: ${input.availability ?? 'unknown'}`,
    `State: ${trayIcon(input)} — ${stateLine(input)}`,
  ];
  if (input.statusAt !== undefined) {
    const before = publishedBeforeArrival(input);
    const retained = input.statusRetained ? ` (retained, published ${input.status?.generatedAt ?? 'at an unknown time'}${before > 0 ? `, ${Math.round(before / 1000)} s before it arrived` : ''})` : '';
    lines.push(`Last status: ${new Date(input.statusAt).toISOString()}${retained}`);
  }
  const sources = Object.entries(extra.sources ?? {});
  if (sources.length) lines.push('Settings from:', ...sources.map(([k, v]) => `- ${k}: ${v}`));
  const issues = extra.issues ?? input.configIssues ?? [];
  lines.push(issues.length ? 'Settings problems:' : 'Settings problems: none', ...issues.map((i) => `- ${i}`));
  for (const r of input.status?.healthReasons ?? []) lines.push(`- [${r.level}] ${r.message}`);
  const recent = Array.isArray(input.status?.recentAlerts) ? input.status.recentAlerts : [];
  if (recent.length) lines.push('Recent alerts (newest first):', ...recent.map((a) => `- ${a.at} [${a.severity}] ${a.code}: ${a.message}`));
  if (input.status) lines.push('', JSON.stringify(input.status, null, 2));
  return lines.join('\n');
}

// ---------------------------------------------------------------- notifications

export interface TrayAlert {
  severity: 'info' | 'warning' | 'critical';
  code: string;
  message: string;
  at: string;
  endpoint?: string;
}

export interface NotifyPolicy {
  /** The same alert (code + endpoint) is shown at most once per this window (ms). */
  dedupWindowMs: number;
  /** At most this many notifications per `rateWindowMs` (critical ones always pass the limit). */
  maxPerWindow: number;
  rateWindowMs: number;
  /** Info alerts (e.g. a problem cleared) are not notified unless true. */
  notifyInfo: boolean;
}

export const DEFAULT_NOTIFY_POLICY: NotifyPolicy = { dedupWindowMs: 10 * 60_000, maxPerWindow: 3, rateWindowMs: 60_000, notifyInfo: false };

export interface NotifyState {
  /** Last time each alert key was notified. */
  lastByKey: Record<string, number>;
  /** Times of recent notifications (within the rate window). */
  recent: number[];
  /** Alerts held back by the rate limit, counted in the next notification. */
  suppressed: number;
  /**
   * Those alerts themselves (one per alarm key, oldest first), shown in one summary notification
   * once the rate limit allows (heldSummaryDue, summarizeHeld); an alarm that clears meanwhile is
   * dropped from it (forgetAlert).
   */
  held?: TrayAlert[];
}

export const EMPTY_NOTIFY_STATE: NotifyState = { lastByKey: {}, recent: [], suppressed: 0 };

export type NotifyDecision =
  | { notify: true; title: string; body: string; urgency: 'normal' | 'critical'; state: NotifyState }
  | { notify: false; reason: 'info' | 'duplicate' | 'rate-limited'; state: NotifyState };

/** An alarm's key (`code:endpoint`): of an alert, and of the health reason the gateway raised it for. */
export function alertKey(alert: Pick<TrayAlert, 'code' | 'endpoint'>): string {
  return `${alert.code}:${alert.endpoint ?? ''}`;
}

const CLEARED_SUFFIX = '_CLEARED';

/** For a `<CODE>_CLEARED` alert, the key of the alarm it clears; otherwise undefined. */
export function clearedAlertKey(alert: TrayAlert): string | undefined {
  if (typeof alert.code !== 'string' || !alert.code.endsWith(CLEARED_SUFFIX) || alert.code.length === CLEARED_SUFFIX.length) return undefined;
  return alertKey({ ...alert, code: alert.code.slice(0, -CLEARED_SUFFIX.length) });
}

/**
 * Forget an alarm's dedup entry (it cleared): if it comes back, it is notified again. One held
 * back by the rate limit is over too: it is not summarised.
 */
export function forgetAlert(state: NotifyState, key: string): NotifyState {
  const isHeld = (state.held ?? []).some((a) => alertKey(a) === key);
  if (!(key in state.lastByKey) && !isHeld) return state;
  const lastByKey = { ...state.lastByKey };
  delete lastByKey[key];
  return { ...state, lastByKey, ...(isHeld ? { held: state.held!.filter((a) => alertKey(a) !== key) } : {}) };
}

/**
 * A restarted gateway finds its problems again over its first minutes (an analyzer's connection
 * attempt fails, Odoo is counted unreachable after 2 min of failures): until its status is this
 * old, a reason the previous process had and this one does not show yet is not taken as cleared.
 */
export const RESTART_GRACE_MS = 5 * 60_000;

/**
 * The alarms of a live status compared with those the tray saw before (`seen`: reason key → the
 * `startedAt` of the gateway process that showed it; empty before the first status). The gateway
 * raises an alert when a reason appears, but only to whoever listens then: one raised while the
 * tray was not connected — the gateway started after the tray, restarted, or the PC was asleep —
 * was never notified. `appeared` are those reasons as the alerts the gateway raised for them
 * (`critical` for a `down` reason, else `warning`; the notification dedup keeps one that did
 * arrive live from being shown twice). `cleared` are the keys of reasons gone since (their
 * notification is closed, as with `<CODE>_CLEARED`): gone from the same gateway process, or from
 * a restarted one past RESTART_GRACE_MS — before that it may not have found them again yet, and
 * the analyzer still unplugged would be notified anew for every restart.
 */
export function reasonChanges(
  seen: ReadonlyMap<string, string | undefined>,
  status: TrayStatus,
  at: string,
): { appeared: TrayAlert[]; cleared: string[]; seen: Map<string, string | undefined> } {
  const reasons = (status.healthReasons ?? []).filter((r) => typeof r.code === 'string' && r.code !== '');
  const appeared = reasons
    .filter((r) => !seen.has(alertKey(r)))
    .map((r): TrayAlert => ({ severity: r.level === 'down' ? 'critical' : 'warning', code: r.code, message: r.message, at, ...(r.endpoint ? { endpoint: r.endpoint } : {}) }));
  const keys = new Set(reasons.map(alertKey));
  const uptime = Date.parse(status.generatedAt ?? '') - Date.parse(status.startedAt ?? '');
  const settled = Number.isFinite(uptime) && uptime >= RESTART_GRACE_MS;
  const cleared: string[] = [];
  const next = new Map<string, string | undefined>();
  for (const [key, startedAt] of seen) {
    if (keys.has(key)) continue;
    if (startedAt === status.startedAt || settled) cleared.push(key);
    else next.set(key, startedAt); // a restarted gateway that may not have found it again yet
  }
  for (const key of keys) next.set(key, status.startedAt);
  return { appeared, cleared, seen: next };
}

/**
 * A one-off alert older than this when the status listing it was written (by the gateway's own
 * clock: `generatedAt` against the alert's `at`) is not notified from the status: a tray started
 * days after the gateway does not pop up the start-up's alerts (Copy diagnostics lists them).
 */
export const MISSED_ALERT_MAX_AGE_MS = 60 * 60_000;
/** Identities of handled alerts missedAlerts keeps (the gateway lists at most 20). */
const SEEN_ALERTS_KEPT = 200;

/** An alert's identity across statuses (the gateway lists the same alert with the same fields). */
export function alertIdentity(alert: Pick<TrayAlert, 'at' | 'code' | 'endpoint'>): string {
  return `${alert.at}|${alert.code}|${alert.endpoint ?? ''}`;
}

/**
 * The gateway's one-off alerts (`recentAlerts`) that the tray has not handled yet (`seen`: their
 * identities, those that arrived live among them): an alert goes live to whoever listens when it
 * is raised, and the alerts topic keeps only the last one retained (which the tray does not
 * notify), so one raised while the tray was not connected — with the embedded broker, every alert
 * of the gateway's start-up — was never notified. `missed`
 * are those, oldest first, raised at most MISSED_ALERT_MAX_AGE_MS before the status and not
 * cleared since (a `<CODE>_CLEARED` listed after it); `_CLEARED` ones themselves are not. `seen`
 * comes back as the identities the status lists (kept to what the gateway still lists).
 */
export function missedAlerts(seen: ReadonlySet<string>, status: TrayStatus): { missed: TrayAlert[]; seen: Set<string> } {
  const listed = (Array.isArray(status.recentAlerts) ? status.recentAlerts : [])
    .filter((a): a is TrayAlert => !!a && typeof a === 'object' && typeof a.code === 'string' && typeof a.message === 'string' && typeof a.at === 'string')
    .reverse();
  const written = Date.parse(status.generatedAt ?? '');
  const missed: TrayAlert[] = [];
  listed.forEach((a, i) => {
    if (seen.has(alertIdentity(a)) || clearedAlertKey(a) !== undefined) return;
    const age = written - Date.parse(a.at);
    if (Number.isFinite(age) && age > MISSED_ALERT_MAX_AGE_MS) return;
    const key = alertKey(a);
    if (listed.slice(i + 1).some((later) => clearedAlertKey(later) === key)) return;
    missed.push(a);
  });
  // Those it handled that the status does not list yet (arrived live, before the status that
  // lists them) are kept too; the newest SEEN_ALERTS_KEPT in all.
  const next = [...new Set([...seen, ...listed.map(alertIdentity)])];
  return { missed, seen: new Set(next.slice(-SEEN_ALERTS_KEPT)) };
}

/** Decide whether a new alert becomes a desktop notification (dedup + rate limit). */
export function decideNotification(state: NotifyState, alert: TrayAlert, now: number, policy: NotifyPolicy = DEFAULT_NOTIFY_POLICY): NotifyDecision {
  const recent = state.recent.filter((t) => now - t < policy.rateWindowMs);
  const base: NotifyState = { lastByKey: state.lastByKey, recent, suppressed: state.suppressed };
  if (alert.severity === 'info' && !policy.notifyInfo) return { notify: false, reason: 'info', state: base };
  const key = alertKey(alert);
  const last = state.lastByKey[key];
  if (last !== undefined && now - last < policy.dedupWindowMs) return { notify: false, reason: 'duplicate', state: base };
  if (alert.severity !== 'critical' && recent.length >= policy.maxPerWindow) {
    // Held, not dropped: summarised once the limit allows (summarizeHeld). The same alarm held
    // twice is held once, with its latest words.
    const held = [...(state.held ?? []).filter((a) => alertKey(a) !== key), alert];
    return { notify: false, reason: 'rate-limited', state: { ...base, suppressed: base.suppressed + 1, held } };
  }
  const count = base.suppressed;
  const body = count > 0 ? `${alert.message} (and ${count} other alert${count === 1 ? '' : 's'})` : alert.message;
  return {
    notify: true,
    title: alert.severity === 'critical' ? 'Lab gateway: action needed now' : 'Lab gateway: needs attention',
    body,
    urgency: alert.severity === 'critical' ? 'critical' : 'normal',
    state: { lastByKey: { ...state.lastByKey, [key]: now }, recent: [...recent, now], suppressed: 0, held: (state.held ?? []).filter((a) => alertKey(a) !== key) },
  };
}

/** Held-back alerts a summary shows in their words; the rest by analyzer id or code ("+3 more (xn-5, …)"). */
export const HELD_SUMMARY_LINES = 4;
/** Longest line naming the rest (a toast shows a few lines; the status window lists them all). */
const HELD_REST_MAX = 300;

/**
 * When the alerts held back by the rate limit may be summarised (epoch ms: once the rate window
 * has room for one more notification), or undefined when none is held.
 */
export function heldSummaryDue(state: NotifyState, now: number, policy: NotifyPolicy = DEFAULT_NOTIFY_POLICY): number | undefined {
  if (!state.held?.length) return undefined;
  const recent = state.recent.filter((t) => now - t < policy.rateWindowMs).sort((a, b) => a - b);
  if (recent.length < policy.maxPerWindow) return now;
  return recent[recent.length - policy.maxPerWindow]! + policy.rateWindowMs;
}

/**
 * One notification for the alerts the rate limit held back (a burst: the analyzers' switch died,
 * eight analyzers down at once), naming them: before, they were only counted, in whatever
 * notification came next ("… (and 5 other alerts)"), hours later or never, and the technician
 * checked the three analyzers named and took the others for running. Not yet (`rate-limited`)
 * while the rate window is full; nothing when none is held.
 */
export function summarizeHeld(state: NotifyState, now: number, policy: NotifyPolicy = DEFAULT_NOTIFY_POLICY): NotifyDecision {
  const held = state.held ?? [];
  const recent = state.recent.filter((t) => now - t < policy.rateWindowMs);
  if (!held.length) return { notify: false, reason: 'duplicate', state };
  if (recent.length >= policy.maxPerWindow) return { notify: false, reason: 'rate-limited', state };
  const lines = held.slice(0, HELD_SUMMARY_LINES).map((a) => a.message.replace(/\s+/g, ' '));
  // The rest by what they are about (an analyzer's id, else the alarm's code): all named, briefly.
  const rest = held.slice(HELD_SUMMARY_LINES).map((a) => a.endpoint ?? a.code);
  const restLine = rest.length ? [clip(`+${rest.length} more (${rest.join(', ')}): open the status window`, HELD_REST_MAX)] : [];
  const body = [...lines, ...restLine].join('\n');
  const critical = held.some((a) => a.severity === 'critical');
  const lastByKey = { ...state.lastByKey };
  for (const a of held) lastByKey[alertKey(a)] = now;
  return {
    notify: true,
    title: `Lab gateway: ${held.length} more alert${held.length === 1 ? '' : 's'}`,
    body,
    urgency: critical ? 'critical' : 'normal',
    state: { lastByKey, recent: [...recent, now], suppressed: 0, held: [] },
  };
}

/**
 * What the gateway's answer to the tray's `GET <gatewayUrl>/api/status` says of the tray's
 * settings, as a settings problem (undefined: nothing). A 421 (Misdirected Request) is the gateway
 * refusing the host name gatewayUrl names (its `status.allowedHosts`, status/README.md): every
 * request of the tray is refused, the tray cannot learn which gateway to follow, and its status
 * window shows the refusal's raw JSON. Before, the tray asked again every 5 s and said nothing.
 */
export function gatewayAnswerProblem(gatewayUrl: string, httpStatus: number): string | undefined {
  if (httpStatus !== 421) return undefined;
  let host = gatewayUrl;
  try {
    host = new URL(gatewayUrl).hostname;
  } catch {
    // an address the config accepted always parses; shown whole otherwise
  }
  // Key and host first: the tooltip keeps 63 characters of it at least (Windows' 127 in all,
  // trayTooltip), so a host name of up to 35 characters stays whole.
  return `status.allowedHosts lacks "${host}" (gatewayUrl's host; the gateway answers 421 to every request): add it to the gateway's status.allowedHosts and restart the gateway, or set gatewayUrl to the gateway's IP address`;
}

/**
 * The status window's page while the gateway refuses the tray's address (gatewayAnswerProblem):
 * the problem in words instead of the refusal's raw JSON. A `data:` URL the window loads itself.
 */
export function gatewayProblemPage(problem: string, retrySeconds: number): string {
  const esc = (t: string): string => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Lab gateway status: check the tray's settings</title></head><body style="font-family:sans-serif;margin:2em;max-width:48em">` +
    `<h1 style="font-size:1.3em">The tray cannot show the gateway's status page</h1>` +
    `<p id="problem">Tray settings: ${esc(problem)}.</p>` +
    `<p>This window tries again every ${retrySeconds} s.</p></body></html>`;
  return `data:text/html;charset=utf-8,${encodeURIComponent(html)}`;
}

/**
 * Why the gateway refused a pause or resume sent from the menu: its own words (the JSON `error` of
 * its answer: "the token sent is not the admin token in status.adminTokenFile (rotated since?)",
 * "admin actions are disabled: set status.adminTokenFile", "too many wrong admin tokens …"), and
 * for a token it did not accept, the file this tray read it from. Before, the notification said
 * "HTTP 401": nobody at the lab could tell a typo in the PC's token file from a gateway fault.
 */
export function relayRefusal(httpStatus: number, error: string | undefined, tokenFile: string | undefined): string {
  const why = error?.replace(/\s+/g, ' ').trim() || `HTTP ${httpStatus}`;
  return httpStatus === 401 && tokenFile ? `${why}; this tray reads its token from ${tokenFile} (adminTokenFile)` : why;
}

/**
 * A notification's body as the platform's notification server reads it. On Linux Electron hands
 * it to libnotify as it is, and the servers (GNOME Shell, KDE Plasma, xfce4-notifyd, MATE, dunst,
 * mako: those with the `body-markup` capability of the Desktop Notifications Specification) read
 * it as markup: `&`, `<` and `>` are escaped there. Before, a reason quoting Odoo's words ("<Fault
 * 2: … 'GLU & HbA1c' …>") was a markup error: the notification came without its body, or with the
 * words between `<` and `>` dropped. The cost: a server without `body-markup` (rare) shows `&amp;`.
 * Windows and macOS show the text as it is.
 */
export function notificationBody(text: string, platform: string): string {
  if (platform !== 'linux') return text;
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * A menu entry's label as Electron's Menu reads it: a single `&` marks the next letter as the
 * entry's access key (Windows, and `_` on Linux) and is not shown; `&&` shows one. Before, the
 * state line quoting the gateway's words ("product 'GLU & HbA1c'") lost its `&` in the menu.
 */
export function menuLabel(label: string): string {
  return label.replace(/&/g, '&&');
}

/** Parse a retained/alert payload defensively: a malformed message never crashes the tray. */
export function parseJson<T>(payload: Buffer | string): T | undefined {
  try {
    const v: unknown = JSON.parse(payload.toString());
    return v && typeof v === 'object' ? (v as T) : undefined;
  } catch {
    return undefined;
  }
}
