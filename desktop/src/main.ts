/**
 * Electron main process of the tray app: thin glue between Electron, an MQTT subscription and the
 * pure logic in tray-state.ts / tray-config.ts / navigation.ts. It never opens the gateway's store;
 * it only reads the MQTT status topics and the gateway's HTTP status page.
 *
 * Started by desktop/main.cjs (`npm run desktop`, or the packaged app).
 */
import { app, BrowserWindow, clipboard, Menu, nativeImage, Notification, powerMonitor, session, Tray, type MenuItemConstructorOptions } from 'electron';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import {
  EMPTY_NOTIFY_STATE,
  clearedAlertKey,
  alertKey,
  decideNotification,
  diagnostics,
  forgetAlert,
  gatewayAnswerProblem,
  gatewayProblemPage,
  heldSummaryDue,
  isOffline,
  NO_STATUS_HINT_MS,
  alertIdentity,
  gatewayAnswerTells,
  missedAlerts,
  menuLabel,
  normalizeStatus,
  notificationBody,
  parseJson,
  reasonChanges,
  relayRefusal,
  summarizeHeld,
  trayIcon,
  trayMenu,
  trayTooltip,
  type NotifyState,
  type TrayAlert,
  type TrayIcon,
  type TrayInput,
  type TrayStatus,
} from './tray-state.ts';
import { adminTokenOf, resolveTrayConfig, statusTopics, type TrayConfig } from './tray-config.ts';
import { navigationDecision } from './navigation.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
/** desktop/ (source checkout: dist/desktop/src → ../../../desktop; packaged: same layout in app.asar). */
const desktopDir = path.resolve(here, '../../../desktop');
const assetsDir = path.join(desktopDir, 'assets');

/** A file's text, or the reason it cannot be read (never thrown: the tray shows it instead). */
function readText(file: string | undefined): { text?: string; error?: string } {
  if (!file) return {};
  try {
    return { text: readFileSync(file, 'utf8') };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

function loadConfig(): TrayConfig {
  const installerFile = process.platform === 'win32' ? path.join(process.resourcesPath ?? '', 'tray-config.json') : '/etc/lab-gateway/tray.json';
  const userFile = path.join(app.getPath('userData'), 'tray-config.json');
  // A config file that does not exist is normal (the next source is used); one that exists but
  // cannot be read is a problem to show.
  const configFile = (file: string): { path: string; text: string | undefined; issue?: string } => {
    const r = readText(file);
    const missing = r.error !== undefined && /ENOENT|ENOTDIR/.test(r.error);
    return { path: file, text: r.text, ...(r.error !== undefined && !missing ? { issue: `cannot read ${file}: ${r.error}` } : {}) };
  };
  const files = [configFile(userFile), configFile(installerFile)];
  const config = resolveTrayConfig({ argv: process.argv, env: process.env, files });
  for (const f of files) if (f.issue) config.issues.push(f.issue);
  return config;
}

const WILDCARD = statusTopics(undefined);
/** How often the tray asks a reconnected gateway its id while no status of the followed one arrived (ms). */
const RECHECK_MS = 5000;
/** How often the status window tries again to load a page that did not load (ms). */
const WINDOW_RETRY_MS = 5000;
/** Chromium's net::ERR_ABORTED: a load replaced by another navigation, not a failure. */
const NET_ERR_ABORTED = -3;

/**
 * The topics to subscribe, availability first: a broker sends the retained messages in the order
 * of the subscription's filters, so the tray knows a gateway is offline (its Last Will) before it
 * reads that gateway's last status — never showing a dead gateway's last "all good" meanwhile.
 */
function topicsInOrder(t: ReturnType<typeof statusTopics>): string[] {
  return [t.availability, t.status, t.alerts];
}

/** The gateway id in `lab-gateway/<id>/…`. */
function topicGateway(topic: string): string | undefined {
  const parts = topic.split('/');
  return parts.length >= 3 && parts[0] === 'lab-gateway' ? parts[1] : undefined;
}

/** Payload's own gatewayId, if it names one. */
function payloadGateway(body: unknown): string | undefined {
  const id = body && typeof body === 'object' ? (body as { gatewayId?: unknown }).gatewayId : undefined;
  return typeof id === 'string' ? id : undefined;
}

class TrayApp {
  readonly #config: TrayConfig;
  /**
   * The admin token as last read from adminTokenFile, and the version of the file it came from.
   * The file is looked at again (a stat) whenever the menu is built or an admin action is sent: IT
   * rotates the token by writing a new one there, and the gateway accepts only that one at once.
   */
  #adminToken: { token: string; version: string } | undefined;
  /** Settings problems: the config's issues and the files named by it that cannot be read. */
  readonly #issues: string[];
  #tray: Tray | undefined;
  #window: BrowserWindow | undefined;
  #client: MqttClient | undefined;
  /** The gateway this tray follows: from the HTTP status at start, else from the first MQTT status. */
  #gatewayId: string | undefined;
  /**
   * The gateway at gatewayUrl has named itself (its /api/status answered). Until then the tray
   * follows the first gateway whose status it found on the broker, and keeps asking (#confirmGatewayId).
   */
  #gatewayIdConfirmed = false;
  #state: TrayInput = { connection: 'connecting', now: Date.now() };
  #notify: NotifyState = EMPTY_NOTIFY_STATE;
  /** Notifications on screen, by alert key (code:endpoint), closed when the alarm clears. */
  readonly #shown = new Map<string, Notification>();
  /** Before the gateway is known (wildcard subscription): the latest availability per gateway, and early alerts. */
  readonly #pendingAvailability = new Map<string, 'online' | 'offline'>();
  #pendingAlerts: Array<{ gatewayId: string; alert: TrayAlert }> = [];
  #lastRendered = '';
  /**
   * The health reasons the tray knows of (key → startedAt of the gateway process that showed it;
   * kept across reconnections), and the alerts that arrived live since the last status: alarms
   * raised while the tray was not listening are notified from the status (see reasonChanges), once.
   */
  #seenReasons = new Map<string, string | undefined>();
  #liveAlertKeys = new Set<string>();
  /**
   * The gateway's one-off alerts the tray has handled (alertIdentity): arrived live, or notified
   * from a status's `recentAlerts` (missedAlerts) — each is notified once.
   */
  #seenAlerts = new Set<string>();
  /** `<CODE>_CLEARED` alerts of link alarms known from a live alert only: closed when the next status agrees (#onAlert). */
  readonly #pendingClears = new Set<string>();
  /** The status window's page could not be loaded (the gateway was not answering): it is retried. */
  #windowLoadFailed = false;
  #windowRetry: NodeJS.Timeout | undefined;
  /** A #recheckGatewayId loop is running. */
  #rechecking = false;
  /**
   * What the gateway's answer says of the tray's settings (gatewayAnswerProblem: it refuses the
   * name in gatewayUrl), shown beside the settings problems while it lasts.
   */
  #gatewayProblem: string | undefined;
  /** A #watchGatewayProblem loop is running. */
  #watchingProblem = false;
  /** Quit was chosen: the loops asking the gateway end. */
  #quitting = false;
  /**
   * When the last status arrived on the monotonic clock (performance.now), and the PC's sleep
   * since (which that clock may not count: Linux's does not): its age as time passed, which a step
   * of the PC's clock does not move (#statusAge).
   */
  #statusMono: number | undefined;
  #sleptSinceStatus = 0;
  #suspendedAt: { wall: number; mono: number } | undefined;
  /** The summary of the alerts the rate limit held back, due once it allows (#scheduleHeldSummary). */
  #heldTimer: NodeJS.Timeout | undefined;

  constructor(config: TrayConfig) {
    this.#config = config;
    this.#issues = [...config.issues];
    // Read once here so that a file the tray cannot read is a settings problem shown at start.
    if (this.#readFile('adminTokenFile', 'admin token file') !== undefined) this.#currentAdminToken();
  }

  /**
   * The token now in adminTokenFile (re-read when the file's inode, size or times changed). A file
   * found empty or unreadable keeps the token read before: an editor between truncating and
   * writing, as the gateway does with its own copy (status/README.md "Admin token").
   */
  #currentAdminToken(): string | undefined {
    const file = this.#config.adminTokenFile;
    if (!file) return undefined;
    try {
      const s = statSync(file, { bigint: true });
      const version = `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
      if (this.#adminToken?.version === version) return this.#adminToken.token;
      const token = adminTokenOf(readFileSync(file, 'utf8'));
      if (token) this.#adminToken = { token, version };
    } catch {
      // unreadable now: keep the last token (the start-up read reported the problem, if any)
    }
    return this.#adminToken?.token;
  }

  /** Read a file the config names; an unreadable one becomes a settings issue naming path and error. */
  #readFile(key: 'adminTokenFile' | 'mqttUsernameFile' | 'mqttPasswordFile' | 'mqttCaFile' | 'mqttCertFile' | 'mqttKeyFile', what: string): string | undefined {
    const file = this.#config[key];
    const r = readText(file);
    if (r.error !== undefined) this.#issues.push(`cannot read the ${what} ${file} (${key}): ${r.error}`);
    return r.text;
  }

  async start(): Promise<void> {
    this.#tray = new Tray(this.#icon('offline'));
    this.#tray.on('click', () => this.openWindow());
    const options = this.#connectOptions();
    this.#state = { ...this.#state, configIssues: [...this.#issues] };
    this.#render();
    this.#announceIssues();
    this.#gatewayId = await this.#learnGatewayId();
    this.#gatewayIdConfirmed = this.#gatewayId !== undefined;
    if (this.#gatewayId) this.#update({ gatewayId: this.#gatewayId });
    this.#connect(options);
    // Re-evaluate staleness even when nothing arrives; a status gone stale on a connected broker
    // is checked against the gateway's page (#recheckGatewayId: it may run, cut off from the broker).
    setInterval(() => {
      this.#render();
      const client = this.#client;
      if (client?.connected && this.#gatewayId !== undefined && isOffline(this.#input()).offline && gatewayAnswerTells(this.#input())) void this.#recheckGatewayId(client);
    }, 15_000).unref();
    // The PC woke from sleep: what the tray showed before is an hour old, and its 15 s tick (whose
    // clock stood still meanwhile) would show it as current for up to 15 s more.
    powerMonitor.on('suspend', () => (this.#suspendedAt = { wall: Date.now(), mono: performance.now() }));
    powerMonitor.on('resume', () => this.#onResume());
  }

  /**
   * The input of the tray's logic now: the last status's age as time passed. Before, it was the
   * PC's clock minus the clock at arrival: the time service setting a slow clock an hour forward
   * showed a running gateway grey, "no status for 60 min", until its next publish.
   */
  #input(): TrayInput {
    const statusAgeMs = this.#statusMono === undefined ? undefined : performance.now() - this.#statusMono + this.#sleptSinceStatus;
    return { ...this.#state, now: Date.now(), ...(statusAgeMs === undefined || this.#state.statusAt === undefined ? {} : { statusAgeMs }) };
  }

  /**
   * After sleep: look again at once (a status older than its staleness turns grey now), and ask
   * the broker for the retained topics again — the current state in one round trip, and a
   * connection the broker dropped while the PC slept fails at once instead of at the next
   * keep-alive.
   */
  #onResume(): void {
    // The sleep the monotonic clock did not count (all of it on Linux): the wall clock's share
    // beyond it. A resume without its suspend (missed) counts nothing.
    const at = this.#suspendedAt;
    this.#suspendedAt = undefined;
    if (at) this.#sleptSinceStatus += Math.max(0, Date.now() - at.wall - (performance.now() - at.mono));
    // The gateway's page answered before the sleep: not known now (asked again below).
    if (this.#state.gatewayAnswers !== undefined) this.#update({ gatewayAnswers: undefined, answeredStartedAt: undefined });
    else this.#render();
    const client = this.#client;
    if (client?.connected) {
      client.subscribe(topicsInOrder(statusTopics(this.#gatewayId)), { qos: 1 });
      if (this.#gatewayId !== undefined && isOffline(this.#input()).offline && gatewayAnswerTells(this.#input())) void this.#recheckGatewayId(client);
    }
  }

  /** Settings problems are shown once at start as a notification (and stay in tooltip and diagnostics). */
  #announceIssues(): void {
    if (!this.#issues.length || !Notification.isSupported()) return;
    const more = this.#issues.length > 1 ? `\n(+${this.#issues.length - 1} more: see Copy diagnostics)` : '';
    new Notification({ title: 'Lab gateway tray: check its settings', body: notificationBody(`${this.#issues[0]}${more}`, process.platform) }).show();
  }

  #icon(name: TrayIcon): Electron.NativeImage {
    const img = nativeImage.createFromPath(path.join(assetsDir, `${name}-32.png`));
    img.addRepresentation({ scaleFactor: 2, buffer: readFileSync(path.join(assetsDir, `${name}-64.png`)) });
    return img;
  }

  async #learnGatewayId(): Promise<string | undefined> {
    return (await this.#askGateway()).id;
  }

  /** The gateway at gatewayUrl: its id, and when its process started (nothing when it does not answer). */
  async #askGateway(): Promise<{ id?: string; startedAt?: string }> {
    try {
      const res = await fetch(`${this.#config.gatewayUrl}/api/status`, { signal: AbortSignal.timeout(3000) });
      this.#setGatewayProblem(gatewayAnswerProblem(this.#config.gatewayUrl, res.status));
      const body = (await res.json()) as { gatewayId?: unknown; startedAt?: unknown };
      if (typeof body.gatewayId !== 'string' || !body.gatewayId) return {};
      return { id: body.gatewayId, ...(typeof body.startedAt === 'string' ? { startedAt: body.startedAt } : {}) };
    } catch {
      return {}; // subscribe with a wildcard; the first status names the gateway
    }
  }

  /**
   * The gateway's answer says something of the tray's settings (it refuses the name in
   * gatewayUrl), or no longer does: shown as a settings problem (tooltip, menu, diagnostics, a
   * notification when it appears), and asked again every RECHECK_MS while it lasts, so that it
   * clears once IT has added the name to the gateway's status.allowedHosts.
   */
  #setGatewayProblem(problem: string | undefined): void {
    if (problem === this.#gatewayProblem) return;
    this.#gatewayProblem = problem;
    this.#update({ configIssues: this.#allIssues() });
    if (problem === undefined) return;
    if (Notification.isSupported()) new Notification({ title: 'Lab gateway tray: check its settings', body: notificationBody(problem, process.platform) }).show();
    void this.#watchGatewayProblem();
  }

  /** Settings problems: the config's, then what the gateway's answer says of gatewayUrl. */
  #allIssues(): string[] {
    return [...this.#issues, ...(this.#gatewayProblem === undefined ? [] : [this.#gatewayProblem])];
  }

  async #watchGatewayProblem(): Promise<void> {
    if (this.#watchingProblem) return;
    this.#watchingProblem = true;
    try {
      while (this.#gatewayProblem !== undefined && !this.#quitting) {
        await new Promise((r) => setTimeout(r, RECHECK_MS).unref());
        if (this.#quitting) return;
        const id = await this.#learnGatewayId();
        const client = this.#client;
        if (id === undefined || client === undefined || this.#gatewayIdConfirmed) continue;
        // The gateway at gatewayUrl answers at last: follow it (as #confirmGatewayId would).
        this.#gatewayIdConfirmed = true;
        if (this.#gatewayId === undefined) this.#follow(client, id);
        else if (id !== this.#gatewayId) this.#switchGateway(client, id);
      }
    } finally {
      this.#watchingProblem = false;
    }
  }

  /**
   * While the followed gateway looks offline (after a reconnection, its availability `offline`),
   * ask the gateway at gatewayUrl its id again: IT may have renamed it (`gateway.id`) while it was
   * restarted, and the tray would wait for the old id's status for good. Asked every RECHECK_MS
   * until the gateway answers or the followed one is seen running.
   */
  async #recheckGatewayId(client: MqttClient): Promise<void> {
    if (this.#rechecking) return;
    this.#rechecking = true;
    const waiting = (): boolean => this.#client === client && client.connected && isOffline(this.#input()).offline;
    try {
      while (waiting()) {
        const { id, startedAt } = await this.#askGateway();
        if (!waiting()) return;
        if (id !== undefined) {
          this.#gatewayIdConfirmed = true;
          if (id !== this.#gatewayId) {
            this.#switchGateway(client, id);
            return;
          }
          // The followed gateway answers, and its answer changes nothing the tray shows (its
          // status does not come for another reason: the broker's ACL): asked no more.
          if (!gatewayAnswerTells(this.#input())) return;
        }
        // The followed gateway answers (or no longer does) while its MQTT says offline: it runs,
        // cut off from the broker (a Last Will, a status gone stale). Asked on while it lasts.
        if (this.#state.gatewayAnswers !== (id !== undefined) || this.#state.answeredStartedAt !== startedAt) this.#update({ gatewayAnswers: id !== undefined, answeredStartedAt: startedAt });
        await new Promise((r) => setTimeout(r, RECHECK_MS).unref());
      }
    } finally {
      this.#rechecking = false;
    }
  }

  /**
   * The tray follows a gateway found on the broker (the one at gatewayUrl did not answer at start):
   * on a site broker that may be another site's or another department's gateway. Ask gatewayUrl
   * every RECHECK_MS until it answers, and follow the gateway there from then on. Before, the
   * first status found was followed for good: a tray started while its gateway box was still
   * booting showed the neighbouring gateway's green "all good" all day.
   */
  async #confirmGatewayId(client: MqttClient): Promise<void> {
    while (this.#client === client && !this.#gatewayIdConfirmed) {
      await new Promise((r) => setTimeout(r, RECHECK_MS).unref());
      if (this.#gatewayIdConfirmed) return;
      const id = await this.#learnGatewayId();
      if (id === undefined || this.#gatewayIdConfirmed) continue;
      this.#gatewayIdConfirmed = true;
      if (id !== this.#gatewayId) this.#switchGateway(client, id);
    }
  }

  /**
   * Follow another gateway id (the gateway was renamed, or the one at gatewayUrl is not the one
   * found first on the broker): nothing known of the old one applies.
   */
  #switchGateway(client: MqttClient, gatewayId: string): void {
    client.unsubscribe(topicsInOrder(statusTopics(this.#gatewayId)));
    this.#gatewayId = gatewayId;
    this.#seenReasons = new Map();
    this.#seenAlerts = new Set();
    this.#liveAlertKeys.clear();
    this.#pendingClears.clear();
    this.#update({ gatewayId, status: undefined, statusAt: undefined, availability: undefined, availabilityReason: undefined, availabilityStoppedAt: undefined, gatewayAnswers: undefined, answeredStartedAt: undefined });
    client.subscribe(topicsInOrder(statusTopics(gatewayId)), { qos: 1 });
  }

  /** Credentials and TLS files, read once (mqtt.js reconnects with the same options). */
  #connectOptions(): IClientOptions {
    const username = this.#readFile('mqttUsernameFile', 'MQTT username file')?.trim();
    const password = this.#readFile('mqttPasswordFile', 'MQTT password file')?.trim();
    const ca = this.#readFile('mqttCaFile', 'MQTT CA file');
    const cert = this.#readFile('mqttCertFile', 'MQTT client certificate file');
    const key = this.#readFile('mqttKeyFile', 'MQTT client key file');
    return {
      reconnectPeriod: 5000,
      // A refused CONNACK is tried again too: "server unavailable" is the embedded broker's answer
      // while it has its mqtt.maxConnections subscribers, and a tray that gave up there stayed grey
      // until restarted (mqtt.js stops after a refusal by default). A wrong password is retried as
      // well: the broker summarises those refusals in its log.
      reconnectOnConnackError: true,
      connectTimeout: 10_000,
      keepalive: 15,
      clean: true,
      // Subscriptions are made on each connect for the gateway known then (see below), so that a
      // wildcard dropped after the gateway was named does not come back with a reconnect.
      resubscribe: false,
      ...(username ? { username } : {}),
      ...(password ? { password } : {}),
      ...(ca ? { ca } : {}),
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
    };
  }

  #connect(options: IClientOptions): void {
    const client = mqtt.connect(this.#config.mqttUrl, options);
    this.#client = client;
    client.on('connect', () => {
      // Nothing from before this connection is current: the gateway may have restarted (or died)
      // meanwhile. Wait for fresh retained messages.
      this.#pendingAvailability.clear();
      this.#pendingAlerts = [];
      this.#pendingClears.clear(); // a clearing not confirmed before the connection dropped is not known
      this.#update({ connection: 'connected', connectionError: undefined, status: undefined, statusAt: undefined, availability: undefined, availabilityReason: undefined, availabilityStoppedAt: undefined, gatewayAnswers: undefined, answeredStartedAt: undefined });
      const t = statusTopics(this.#gatewayId);
      client.subscribe(topicsInOrder(t), { qos: 1 });
      if (this.#gatewayId !== undefined) void this.#recheckGatewayId(client);
    });
    // With the embedded broker a dead gateway takes its broker along: a lost connection is "offline".
    client.on('close', () => this.#update({ connection: 'lost' }));
    client.on('offline', () => this.#update({ connection: 'lost' }));
    client.on('error', (err: Error) => this.#update({ connection: 'lost', connectionError: err.message }));
    client.on('message', (topic, payload, packet) => this.#onMessage(client, topic, payload, packet.retain));
  }

  #onMessage(client: MqttClient, topic: string, payload: Buffer, retained: boolean): void {
    const from = topicGateway(topic);
    if (from === undefined) return;
    if (topic.endsWith('/status')) {
      const status = normalizeStatus(parseJson<unknown>(payload));
      if (!status || status.gatewayId !== from) return;
      if (this.#gatewayId === undefined) this.#follow(client, from);
      if (status.gatewayId !== this.#gatewayId) return;
      this.#statusMono = performance.now();
      this.#sleptSinceStatus = 0;
      this.#update({ status, statusAt: Date.now(), statusRetained: retained, gatewayAnswers: undefined, answeredStartedAt: undefined });
      this.#notifyMissedAlarms(status);
      return;
    }
    const body = parseJson<unknown>(payload);
    const named = payloadGateway(body);
    if (named !== undefined && named !== from) return; // topic and payload disagree: trust neither
    if (this.#gatewayId !== undefined && from !== this.#gatewayId) return; // another gateway on the same broker
    if (topic.endsWith('/availability')) {
      const state = (body as { state?: unknown } | undefined)?.state;
      if (state !== 'online' && state !== 'offline') return;
      const why = (body as { reason?: unknown }).reason;
      const reason = state === 'offline' && typeof why === 'string' ? why : undefined;
      const at = (body as { at?: unknown }).at;
      const stoppedAt = state === 'offline' && typeof at === 'string' ? at : undefined;
      if (this.#gatewayId === undefined) this.#pendingAvailability.set(from, state);
      else {
        // Since when it says so (re-published every interval: the first one counts).
        const since = this.#state.availability === state ? this.#state.availabilityAt : undefined;
        // A change of availability is news the gateway's page, asked before, did not tell.
        this.#update({ availability: state, availabilityAt: since ?? Date.now(), availabilityReason: reason, availabilityStoppedAt: stoppedAt, ...(since === undefined ? { gatewayAnswers: undefined, answeredStartedAt: undefined } : {}) });
        // Looked at again once a status should have come with it (NO_STATUS_HINT_MS).
        if (state === 'online' && !this.#state.status) setTimeout(() => this.#render(), NO_STATUS_HINT_MS + 100).unref();
        if (state === 'offline') void this.#recheckGatewayId(client);
      }
    } else if (topic.endsWith('/alerts') && !retained) {
      // Live alerts only (RETAIN 0). The topic is retained (DESIGN.md §5): the broker hands each
      // subscription the gateway's last alert (RETAIN 1), however old, and of a gateway stopped
      // since; what the tray missed it takes from the status's `recentAlerts` (#notifyMissedAlarms).
      const alert = body as TrayAlert | undefined;
      if (!alert || typeof alert.code !== 'string') return;
      if (this.#gatewayId !== undefined) {
        this.#liveAlertKeys.add(alertKey(alert));
        this.#seenAlerts.add(alertIdentity(alert));
        this.#onAlert(alert);
      }
      else this.#pendingAlerts = [...this.#pendingAlerts, { gatewayId: from, alert }].slice(-20);
    }
  }

  /** The first status named the gateway: follow it only, and drop the wildcard subscription. */
  #follow(client: MqttClient, gatewayId: string): void {
    this.#gatewayId = gatewayId;
    const t = statusTopics(gatewayId);
    client.subscribe(topicsInOrder(t), { qos: 1 });
    client.unsubscribe([WILDCARD.status, WILDCARD.availability, WILDCARD.alerts]);
    const availability = this.#pendingAvailability.get(gatewayId);
    const alerts = this.#pendingAlerts.filter((p) => p.gatewayId === gatewayId).map((p) => p.alert);
    this.#pendingAvailability.clear();
    this.#pendingAlerts = [];
    this.#update({ gatewayId, ...(availability ? { availability, availabilityAt: Date.now() } : {}) });
    if (availability === 'online') setTimeout(() => this.#render(), NO_STATUS_HINT_MS + 100).unref();
    for (const alert of alerts) {
      this.#seenAlerts.add(alertIdentity(alert));
      this.#onAlert(alert);
    }
    if (!this.#gatewayIdConfirmed) void this.#confirmGatewayId(client);
  }

  #update(patch: Partial<TrayInput>): void {
    this.#state = { ...this.#state, ...patch };
    this.#render();
  }

  #render(): void {
    const tray = this.#tray;
    if (!tray) return;
    const input = this.#input();
    const icon = trayIcon(input);
    const tooltip = trayTooltip(input);
    const items = trayMenu(input, { isAdmin: this.#currentAdminToken() !== undefined });
    const key = JSON.stringify([icon, tooltip, items]);
    if (key === this.#lastRendered) return;
    this.#lastRendered = key;
    tray.setImage(this.#icon(icon));
    tray.setToolTip(tooltip);
    const template: MenuItemConstructorOptions[] = items.map((item) =>
      item.id === 'separator'
        ? { type: 'separator' }
        : item.enabled
          ? { label: menuLabel(item.label), enabled: true, click: () => void this.#onMenu(item.id) }
          : { label: menuLabel(item.label), enabled: false },
    );
    tray.setContextMenu(Menu.buildFromTemplate(template));
  }

  async #onMenu(id: string): Promise<void> {
    switch (id) {
      case 'open':
        return this.openWindow();
      case 'pause-relay':
      case 'resume-relay':
        return this.#relay(id === 'pause-relay' ? 'pause' : 'resume');
      case 'copy-diagnostics':
        return this.#copyDiagnostics();
      case 'quit':
        this.#quitting = true;
        clearTimeout(this.#heldTimer);
        this.#client?.end(true);
        this.#client = undefined; // ends the loops that ask the gateway its id
        app.quit();
        return;
    }
  }

  #copyDiagnostics(): void {
    clipboard.writeText(
      diagnostics(
        this.#input(),
        { gatewayUrl: this.#config.gatewayUrl, mqttUrl: this.#config.mqttUrl, appVersion: app.getVersion(), sources: this.#config.sources, issues: this.#allIssues() },
      ),
    );
  }

  async #relay(action: 'pause' | 'resume'): Promise<void> {
    try {
      const res = await fetch(`${this.#config.gatewayUrl}/api/relay/${action}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${this.#currentAdminToken() ?? ''}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ reason: `from the tray of ${process.env.USERNAME ?? process.env.USER ?? 'a technician'}` }),
        signal: AbortSignal.timeout(5000),
      });
      if (!res.ok) {
        const body = parseJson<{ error?: unknown }>(await res.text().catch(() => ''));
        throw new Error(relayRefusal(res.status, typeof body?.error === 'string' ? body.error : undefined, this.#config.adminTokenFile));
      }
    } catch (err) {
      new Notification({ title: 'Lab gateway', body: notificationBody(`Could not ${action} sending to Odoo: ${(err as Error).message}`, process.platform) }).show();
    }
  }

  /**
   * A status of the gateway as it runs now: alarms it shows that the tray was not told about
   * (raised while the tray was not connected) are notified, and those gone are closed; so are its
   * recent one-off alerts the tray was not told about. A status the tray takes as offline (the
   * last one of a stopped or dead gateway, one of a gateway stopping) says nothing current.
   */
  #notifyMissedAlarms(status: TrayStatus): void {
    const pendingClears = [...this.#pendingClears];
    this.#pendingClears.clear();
    // A stopping gateway's `_CLEARED` alerts (pendingClears) cleared nothing: they are dropped.
    if (isOffline(this.#input()).offline) return;
    const changes = reasonChanges(this.#seenReasons, status, new Date().toISOString());
    this.#seenReasons = changes.seen;
    // changes.seen holds every reason the status shows: a pending clear outside it is confirmed.
    for (const key of new Set([...changes.cleared, ...pendingClears.filter((k) => !changes.seen.has(k))])) this.#closeAlarm(key);
    // An alert that arrived live was decided on already (shown, or counted as held back).
    for (const alert of changes.appeared) if (!this.#liveAlertKeys.has(alertKey(alert))) this.#onAlert(alert);
    this.#liveAlertKeys.clear();
    // The one-off alerts raised while the tray was not listening (with the embedded broker, all of
    // the gateway's start-up): the status lists the recent ones; the alerts topic keeps only the
    // last one (retained), which the tray does not notify.
    const missed = missedAlerts(this.#seenAlerts, status);
    this.#seenAlerts = missed.seen;
    for (const alert of missed.missed) this.#onAlert(alert);
  }

  /** The alarm is over: its notification goes away, and if it comes back it is notified again. */
  #closeAlarm(key: string): void {
    this.#shown.get(key)?.close();
    this.#shown.delete(key);
    this.#notify = forgetAlert(this.#notify, key);
  }

  #onAlert(alert: TrayAlert): void {
    // `<CODE>_CLEARED`: the alarm is over (not held back as a duplicate of the one that cleared
    // if it comes back). For an alarm the status shows (a health reason), the status that follows
    // says so (reasonChanges): a stopping gateway also clears the alarms of the links it stops (an
    // analyzer it no longer watches is not an analyzer back), and its status tells that apart
    // (`stopping`). So does a link's alarm the tray was told of live before any status showed it.
    const cleared = clearedAlertKey(alert);
    if (cleared !== undefined && !this.#seenReasons.has(cleared)) {
      if (alert.endpoint !== undefined) this.#pendingClears.add(cleared);
      else this.#closeAlarm(cleared);
    }
    const d = decideNotification(this.#notify, alert, Date.now());
    this.#notify = d.state;
    if (d.notify) this.#show(alertKey(alert), d);
    this.#scheduleHeldSummary();
  }

  /** A notification on screen, kept by `key` (an alarm's, or the held-back summary's) to be closed. */
  #show(key: string, d: { title: string; body: string; urgency: 'normal' | 'critical' }): void {
    if (!Notification.isSupported()) return;
    this.#shown.get(key)?.close();
    // Linux's notification servers read the body as markup (notificationBody).
    const n = new Notification({ title: d.title, body: notificationBody(d.body, process.platform), urgency: d.urgency });
    n.on('click', () => this.openWindow());
    n.on('close', () => {
      if (this.#shown.get(key) === n) this.#shown.delete(key);
    });
    this.#shown.set(key, n);
    n.show();
  }

  /**
   * Alerts the rate limit held back (a burst: many analyzers down at once) are shown together in
   * one notification once the limit allows, naming them; before, they were only counted in the
   * next notification, whenever one came.
   */
  #scheduleHeldSummary(): void {
    const due = heldSummaryDue(this.#notify, Date.now());
    if (due === undefined || this.#heldTimer !== undefined || this.#quitting) return;
    this.#heldTimer = setTimeout(() => {
      this.#heldTimer = undefined;
      if (this.#quitting) return;
      const d = summarizeHeld(this.#notify, Date.now());
      this.#notify = d.state;
      if (d.notify) this.#show('held-summary', d);
      this.#scheduleHeldSummary(); // still held: the window filled meanwhile (a critical alert)
    }, Math.max(0, due - Date.now()) + 100);
    this.#heldTimer.unref();
  }

  openWindow(): void {
    if (this.#window && !this.#window.isDestroyed()) {
      // A window whose page did not load shows nothing (or why the gateway refuses the tray): a
      // click loads it again at once.
      if (this.#windowLoadFailed || this.#gatewayProblem !== undefined) this.#loadStatusPage(this.#window);
      this.#window.show();
      this.#window.focus();
      return;
    }
    const gatewayUrl = this.#config.gatewayUrl;
    const win = new BrowserWindow({
      width: 1024,
      height: 600,
      minWidth: 800,
      minHeight: 500,
      title: 'Lab gateway status',
      icon: path.join(assetsDir, 'app-icon-256.png'),
      autoHideMenuBar: true,
      webPreferences: {
        contextIsolation: true,
        nodeIntegration: false,
        sandbox: true,
        webSecurity: true,
        preload: path.join(desktopDir, 'preload.cjs'),
      },
    });
    // The window shows the gateway's page only: other origins are refused, new windows denied.
    win.webContents.on('will-navigate', (event, url) => {
      if (navigationDecision(url, gatewayUrl) === 'deny') event.preventDefault();
    });
    win.webContents.on('will-redirect', (event, url) => {
      if (navigationDecision(url, gatewayUrl) === 'deny') event.preventDefault();
    });
    win.webContents.setWindowOpenHandler(() => ({ action: 'deny' }));
    // Opened while the gateway is not answering (still starting, restarting), the page fails to
    // load and Electron leaves the window blank — it never tries again by itself. Try every
    // WINDOW_RETRY_MS while the window is open; the page, once loaded, follows the gateway itself.
    win.webContents.on('did-fail-load', (_event, errorCode, _description, _url, isMainFrame) => {
      if (!isMainFrame || errorCode === NET_ERR_ABORTED) return;
      this.#windowLoadFailed = true;
      clearTimeout(this.#windowRetry);
      this.#windowRetry = setTimeout(() => {
        if (this.#window === win && !win.isDestroyed()) this.#loadStatusPage(win);
      }, WINDOW_RETRY_MS);
      this.#windowRetry.unref();
    });
    win.webContents.on('did-finish-load', () => {
      this.#windowLoadFailed = false;
    });
    this.#window = win;
    this.#loadStatusPage(win);
  }

  #loadStatusPage(win: BrowserWindow): void {
    clearTimeout(this.#windowRetry);
    // The gateway refuses the tray's address: its page would be the refusal's raw JSON. Say why
    // instead, and look again every WINDOW_RETRY_MS (#watchGatewayProblem asks the gateway).
    const problem = this.#gatewayProblem;
    if (problem !== undefined) {
      win.loadURL(gatewayProblemPage(problem, WINDOW_RETRY_MS / 1000)).catch(() => undefined);
      this.#windowRetry = setTimeout(() => {
        if (this.#window === win && !win.isDestroyed()) this.#loadStatusPage(win);
      }, WINDOW_RETRY_MS);
      this.#windowRetry.unref();
      return;
    }
    // loadURL rejects when the page fails to load: did-fail-load (above) has it in hand.
    win.loadURL(this.#config.gatewayUrl + '/').catch(() => undefined);
  }
}

/**
 * The tray's Application User Model ID on Windows: electron-builder's `appId`
 * (build/electron-builder.yml), which its installer gives the Start menu shortcut. Windows shows an
 * app's toasts, and keeps the user's notification settings for it, by that ID; without it Electron
 * runs as `electron.app.<name>`, which no shortcut carries, and the tray's notifications went
 * unshown (or shown under that name, deaf to the settings).
 */
const APP_USER_MODEL_ID = 'org.labgateway.tray';
if (process.platform === 'win32') app.setAppUserModelId(APP_USER_MODEL_ID);

// One tray per desktop session.
if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  let trayApp: TrayApp | undefined;
  app.on('second-instance', () => trayApp?.openWindow());
  // A tray app keeps running with no window open.
  app.on('window-all-closed', () => {});
  void app.whenReady().then(async () => {
    // The page needs no permission (camera, notifications, geolocation…): refuse them all.
    session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
    trayApp = new TrayApp(loadConfig());
    await trayApp.start();
  });
}
