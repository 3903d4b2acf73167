import { lookup, lookupService } from 'node:dns/promises';
import http from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { GatewayConfig } from '../config/types.ts';
import type { Component, ComponentStatus } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import type { Telemetry } from '../telemetry.ts';
import type { EventQuery, EventState, GatewayStore, MessageQuery, StoredEvent } from '../store/types.ts';
import { EventStates } from '../store/types.ts';
import { EventTypes } from '../events/types.ts';
import { GatewayError, describeError, isGatewayError } from '../errors.ts';
import { StatusModel, type RelayPauseDetail } from './status-model.ts';
import { StatusMetrics, type MqttBrokerCounters } from './metrics.ts';
import { AdminAuth, adminActor, AuditLog, AuditOutcomes, auditPage, bearerToken, parseAuditCursor, type AdminIdentity, type AdminTokensChange, type AuditEntry, type AuditQuery } from './admin-audit.ts';
import { maskNames } from './mask-names.ts';
import { decodeText, storedCharset } from '../hl7/charset.ts';
import { loadPageAssets, type PageAsset } from './page-assets.ts';

/**
 * The HTTP status API and page (DESIGN.md §5), on `status.listen`, with node:http only.
 *
 *   GET  /api/status                 the status body (contract fields + additive fields)
 *   GET  /api/stream                 the same body as server-sent events, on change
 *   GET  /api/messages?controlId=&endpoint=&q=&limit=&before=
 *   GET  /api/messages/:id[?reveal=1]  raw message (names masked unless an admin reveals), events, Odoo refs
 *   GET  /api/events?state=&type=&correlationId=&limit=&after=
 *   GET  /api/events/:id
 *   POST /api/events/:id/replay|discard   admin; body { reason }
 *   POST /api/relay/pause|resume          admin; body { reason }
 *   GET  /api/admin/check               admin
 *   GET  /api/audit?action=&target=&outcome=&actor=&limit=&before=   admin
 *   GET  /api/sandbox                sandbox Odoo records when no odoo.url
 *   GET  /metrics                    Prometheus text
 *   GET  /healthz                    200 only while intake can commit, else 503
 *   GET  /                           the status page
 *
 * Every route but /healthz answers only requests whose Host header names this gateway (see
 * hostAllowed): a web page that a browser on the LAN opened cannot read the API through a DNS
 * name it controls and points at the gateway (DNS rebinding). A request a browser marks as made
 * by a page of another site gets 403 on the read routes unless it is a top-level navigation
 * (#refuseReadFromAnotherSite), and on the admin routes always (#requireAdmin).
 */
export interface RelayControl {
  /**
   * In effect at once; resolves once kept (the relay's pause holds across restarts, with who,
   * when and why: relay/paused.ts).
   */
  pause(detail: RelayPauseDetail): void | Promise<void>;
  resume(): void | Promise<void>;
  readonly paused: boolean;
  /** Who paused it, when and why, as kept with the pause; undefined when not kept (see #restoreRelayPause). */
  readonly pausedBy?: RelayPauseDetail | undefined;
}

export interface StatusServerOptions {
  config: GatewayConfig;
  store: GatewayStore;
  telemetry: Telemetry;
  log: Logger;
  version: string;
  startedAt: string;
  relayControl?: RelayControl;
  /** Sandbox Odoo records to show when there is no odoo.url. */
  sandbox?: { summary(): Promise<unknown> };
  /** Admin token (else read from status.adminTokenFile). */
  adminToken?: string;
  /** A shared model (the MQTT publisher reads the same one); created here when absent. */
  model?: StatusModel;
  /** Collect Node process metrics too (default true). */
  processMetrics?: boolean;
  /** The embedded MQTT broker's counters for `/metrics`, read at each scrape (it starts after this server). */
  mqttBroker?: () => MqttBrokerCounters | undefined;
}

const MAX_BODY = 16 * 1024;
/** Failed admin attempts allowed per remote address and window before answering 429. */
const MAX_FAILED_ADMIN = 10;
/**
 * Failed admin attempts allowed per IPv6 /64 (all its addresses together) and window. An IPv6 host
 * picks any address of its /64 (privacy addresses, `ip addr add`), each with MAX_FAILED_ADMIN fresh
 * guesses; counted per address only, it could guess without limit. Higher than the per-address
 * limit because a LAN's hosts share one /64: a PC whose script holds a stale token is locked out
 * on its own address after 10 and never locks its neighbours out.
 */
const MAX_FAILED_ADMIN_PER_NETWORK = 30;
const FAILED_ADMIN_WINDOW_MS = 60_000;
/** Past this many counted addresses and networks, those whose minute is over are dropped. */
const FAILED_ADMIN_SWEEP_AT = 4096;

/** The eight 16-bit groups of an IPv6 address (no zone id), or undefined when it cannot be read. */
function ipv6Groups(address: string): number[] | undefined {
  let text = address;
  const tail: number[] = [];
  // An IPv4 tail (`::ffff:192.0.2.1`, `64:ff9b::192.0.2.1`) is two groups.
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[2]!.split('.').map(Number);
    tail.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!);
    text = v4[1]!.endsWith('::') ? v4[1]! : v4[1]!.slice(0, -1);
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const part = (h: string): number[] => (h === '' ? [] : h.split(':').map((g) => parseInt(g, 16)));
  const head = part(halves[0]!);
  const rest = halves.length === 2 ? part(halves[1]!) : [];
  const fill = 8 - head.length - rest.length - tail.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return undefined;
  const groups = [...head, ...Array<number>(fill).fill(0), ...rest, ...tail];
  return groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}

/**
 * What wrong admin tokens are counted under for a remote address: the address (IPv4; IPv6 in one
 * spelling, without its zone id), and for IPv6 its /64 too. An IPv4 client of a dual-stack
 * listener (`::ffff:192.0.2.1`) is that IPv4 address: all of them lie in ::/64 with ::1, and one
 * guesser on IPv4 would otherwise lock every IPv4 client and the IPv6 loopback out.
 */
export function adminLockoutKeys(remote: string): { address: string; network?: string } {
  const address = remote.replace(/%.*$/, '').toLowerCase();
  if (isIP(address) !== 6) return { address };
  const groups = ipv6Groups(address);
  if (!groups) return { address };
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return { address: `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}` };
  }
  const hex = groups.map((g) => g.toString(16));
  return { address: hex.join(':'), network: `${hex.slice(0, 4).join(':')}::/64` };
}

/**
 * Wrong admin tokens within a minute (monotonic ms), per address and, on IPv6, per /64: an
 * address is refused after MAX_FAILED_ADMIN, a /64 after MAX_FAILED_ADMIN_PER_NETWORK, until its
 * minute (from its first wrong token) is over.
 */
export class AdminLockout {
  readonly #counts = new Map<string, { count: number; since: number; limitAudited: boolean }>();

  /** Whether `remote` is refused at `now`: under which key, its limit, and whether this is the first refusal of its minute. */
  refused(remote: string, now: number): { key: string; limit: number; first: boolean } | undefined {
    const { address, network } = adminLockoutKeys(remote);
    for (const [key, limit] of [[address, MAX_FAILED_ADMIN], [network, MAX_FAILED_ADMIN_PER_NETWORK]] as const) {
      const c = key === undefined ? undefined : this.#current(key, now);
      if (c && key !== undefined && c.count >= limit) {
        const first = !c.limitAudited;
        c.limitAudited = true;
        return { key, limit, first };
      }
    }
    return undefined;
  }

  /** Count a wrong token of `remote` at `now`. */
  failed(remote: string, now: number): void {
    if (this.#counts.size >= FAILED_ADMIN_SWEEP_AT) {
      for (const [key, c] of this.#counts) if (now - c.since > FAILED_ADMIN_WINDOW_MS) this.#counts.delete(key);
    }
    const { address, network } = adminLockoutKeys(remote);
    for (const key of network === undefined ? [address] : [address, network]) {
      const c = this.#current(key, now);
      if (c) c.count++;
      else this.#counts.set(key, { count: 1, since: now, limitAudited: false });
    }
  }

  #current(key: string, now: number): { count: number; since: number; limitAudited: boolean } | undefined {
    const c = this.#counts.get(key);
    if (c && now - c.since > FAILED_ADMIN_WINDOW_MS) {
      this.#counts.delete(key);
      return undefined;
    }
    return c;
  }
}
const STREAM_MIN_INTERVAL_MS = 250;
/**
 * Open `/api/stream` connections at most; one more gets 503 with Retry-After (STREAM_RETRY_AFTER_S).
 * The page and the tray do not use the stream (they poll /api/status and read MQTT); it is for a
 * few dashboards and scripts. Without a cap, a script that opened a stream on every tick and never
 * closed the old ones held a socket and a descriptor each until the process ran out of them.
 */
export const MAX_STREAMS = 64;
const STREAM_RETRY_AFTER_S = 30;

/**
 * The clock of throttles and windows (ms, monotonic). A gap measured on the wall clock lasts as
 * long as the step when NTP sets the clock back: the stream stood still for an hour after a
 * one-hour step, and an address refused for a minute stayed refused for the hour. The global
 * `performance` (not node:perf_hooks') so that tests can fake it.
 */
const monotonicNow = (): number => performance.now();

/**
 * Host names a request may name besides IP addresses and `status.allowedHosts`: the listener's
 * host, loopback, and this machine's names — its host name, the short name, and its mDNS name
 * `<short name>.local` (avahi: how a Debian box is found on a LAN without DNS). The machine's
 * fully qualified name is added at start (machineFqdn). No web page can choose any of these.
 */
function defaultAllowedHosts(listenHost: string): string[] {
  const host = hostname();
  const short = host.split('.')[0] ?? host;
  return [listenHost, 'localhost', '127.0.0.1', '::1', host, short, `${short}.local`].filter((h) => h !== '');
}

/** How long start() waits for the machine's FQDN before listening goes on without it (ms). */
const FQDN_WAIT_MS = 1000;

/**
 * The machine's fully qualified name, as `hostname -f` finds it: the address of the host name,
 * then that address's name (getnameinfo: /etc/hosts first — Debian's `127.0.1.1 box.lab.example.org
 * box` — then reverse DNS). Undefined when either step fails or the name found has no domain.
 */
async function machineFqdn(): Promise<string | undefined> {
  const host = hostname();
  if (host === '') return undefined;
  const { address } = await lookup(host);
  const { hostname: name } = await lookupService(address, 0);
  const fqdn = name.toLowerCase().replace(/\.$/, '');
  return fqdn.includes('.') && isIP(fqdn) === 0 && !fqdn.startsWith('localhost') ? fqdn : undefined;
}

/**
 * The host name of a Host header (`name:port`, `[v6]:port`), lower case, without a trailing dot;
 * undefined when it cannot be read.
 */
function hostOf(header: string): string | undefined {
  const m = /^(?:\[([0-9A-Za-z:.%]+)\]|([^:[\]]+))(?::\d{1,5})?$/.exec(header.trim());
  if (!m) return undefined;
  return (m[1] ?? m[2]!).toLowerCase().replace(/\.$/, '');
}

/**
 * Whether a request's Host header names this gateway: an IP address (a browser sends one only
 * for a page whose origin is that address, never for a page of another site), or one of
 * `allowed`. No Host header: not a browser (they always send one). Any other name is what a
 * page served from that name sends after its DNS has been re-pointed at the gateway.
 */
export function hostAllowed(header: string | undefined, allowed: ReadonlySet<string>): boolean {
  if (header === undefined) return true;
  const host = hostOf(header);
  if (host === undefined) return false;
  return isIP(host) !== 0 || allowed.has(host);
}

/**
 * Whether a browser made this request for a page of another site (or another origin of this
 * machine: another port, another name): Fetch Metadata's `Sec-Fetch-Site` (every current
 * browser sends it) other than `same-origin` or `none` (typed, bookmarked), else, from a browser
 * too old to send it, an `Origin` that does not name the host the request was sent to. Programs
 * (the tray, `lab-gateway`, curl, scripts) send neither. Such a request can carry no admin token
 * (setting Authorization across sites needs a CORS preflight this server never grants), so it is
 * never an administrator; it is refused before the token is looked at, so that it is not counted
 * as a wrong token of the address it comes from — on the gateway PC, 127.0.0.1, the address of
 * the technician's own page, the tray and `lab-gateway` too.
 */
export function fromAnotherSite(headers: http.IncomingHttpHeaders): string | undefined {
  const site = headers['sec-fetch-site'];
  if (typeof site === 'string') return site === 'same-origin' || site === 'none' ? undefined : site;
  const origin = headers.origin;
  if (origin === undefined) return undefined;
  if (origin === 'null') return 'opaque origin';
  try {
    return new URL(origin).host === (headers.host ?? '').toLowerCase() ? undefined : 'cross-origin';
  } catch {
    return 'unreadable origin';
  }
}

/**
 * Whether a request of another site (fromAnotherSite) is a top-level navigation: a link followed
 * or an address opened in a tab (Fetch Metadata: `Sec-Fetch-Mode: navigate` to a `document`). It
 * costs one request per click and replaces the page that made it, so no page can loop it; a
 * frame (`iframe`, `frame`), an image, a script or a fetch can be fired in a loop.
 */
function topLevelNavigation(headers: http.IncomingHttpHeaders): boolean {
  const dest = headers['sec-fetch-dest'];
  return headers['sec-fetch-mode'] === 'navigate' && (dest === undefined || dest === 'document');
}

/**
 * The routes refused to requests of another site that are not top-level navigations: the API's
 * reads and `/metrics`. Its other routes are the admin ones (every POST, the token check, the
 * audit log), which #requireAdmin refuses to any request of another site, navigations too.
 */
function readRoute(method: string, pathname: string): boolean {
  if (method !== 'GET' && method !== 'HEAD') return false;
  if (pathname === '/api/admin/check' || pathname === '/api/audit') return false;
  return pathname.startsWith('/api/') || pathname === '/metrics';
}

/**
 * The page that made a request of another site, for the log: its `Origin`, else its Referer's
 * origin (no path, no query: those could name a patient's page).
 */
function pageOrigin(headers: http.IncomingHttpHeaders): string {
  if (typeof headers.origin === 'string') return headers.origin;
  if (typeof headers.referer !== 'string') return '(no Origin header)';
  try {
    return new URL(headers.referer).origin;
  } catch {
    return 'unreadable referer';
  }
}

/** What a refused request of another site is told, and the log line, per kind of route. */
const ANOTHER_SITE = {
  read: {
    log: 'API request refused: a web page of another site sent it (only a link followed to it is answered)',
    answer: "API requests from a page of another site are refused: use the gateway's own page, lab-gateway, or open the address in a tab",
  },
  admin: {
    log: 'admin request refused: a web page of another site sent it (not counted as a wrong token, not audited)',
    answer: "admin requests from a page of another site are refused: use the gateway's own page or lab-gateway",
  },
} as const;

/**
 * Whether a refusal is the first of its kind (`key`), noting it: refusals are logged once per
 * host name or origin, for the first 64, so that a scanner or a page in a loop does not flood the log.
 */
function firstRefusal(logged: Set<string>, key: string): boolean {
  if (logged.has(key) || logged.size >= 64) return false;
  logged.add(key);
  return true;
}

class HttpError extends Error {
  readonly statusCode: number;
  constructor(statusCode: number, message: string) {
    super(message);
    this.statusCode = statusCode;
  }
}

/** A path parameter, percent-decoded; malformed escapes are a client error, not a crash. */
function param(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, `malformed path parameter: ${raw}`);
  }
}

function isEventState(value: unknown): value is EventState {
  return typeof value === 'string' && (EventStates as readonly string[]).includes(value);
}

/**
 * A query parameter the route does not take is a 400 naming it and those it takes. Ignored, a
 * filter the API does not know (`correlationId` before it was one, a misspelt `stat=dead`) answered
 * 200 with the unfiltered list, and a script acted on every order's events as if on one's.
 */
function refuseUnknownParams(q: URLSearchParams, route: string, known: readonly string[]): void {
  for (const name of q.keys()) {
    if (!known.includes(name)) throw new HttpError(400, `unknown query parameter "${name}": ${route} takes ${known.join(', ')}`);
  }
}

/** The routes with a path parameter: read with GET/HEAD (`/api/messages/:id`, `/api/events/:id`), or admin actions taken with POST. */
const MESSAGE_DETAIL = /^\/api\/messages\/([^/]+)$/;
const EVENT_DETAIL = /^\/api\/events\/([^/]+)$/;
const EVENT_ACTION = /^\/api\/events\/([^/]+)\/(replay|discard)$/;
const RELAY_ACTION = /^\/api\/relay\/(pause|resume)$/;

/**
 * The routes read with GET/HEAD besides `MESSAGE_DETAIL`, `EVENT_DETAIL` and the page's files. The
 * wrong method on a route (these, or an action: `EVENT_ACTION`, `RELAY_ACTION`) is 405 with Allow
 * (RFC 9110 §15.5.6), not 404. A `curl` of a replay without `-X POST` read "no such resource", and
 * IT went looking for an event id that was right.
 */
const GET_ROUTES: ReadonlySet<string> = new Set(['/api/status', '/api/stream', '/healthz', '/metrics', '/api/messages', '/api/events', '/api/sandbox', '/api/admin/check', '/api/audit']);

function clampLimit(raw: string | null, fallback = 50, max = 500): number {
  if (raw === null || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new HttpError(400, `limit must be a positive integer, got "${raw}"`);
  return Math.min(n, max);
}

export class StatusServer implements Component {
  readonly name = 'status-http';
  readonly model: StatusModel;
  #status: ComponentStatus = 'created';
  readonly #o: StatusServerOptions;
  readonly #log: Logger;
  readonly #ownsModel: boolean;
  #server: http.Server | undefined;
  #metrics: StatusMetrics | undefined;
  #auth = new AdminAuth(undefined);
  readonly #audit: AuditLog;
  #assets = new Map<string, PageAsset>();
  readonly #streams = new Set<http.ServerResponse>();
  /** The refusal of a stream over MAX_STREAMS was logged (again once half of them have closed). */
  #streamsFullLogged = false;
  /** Streams skipped while their socket is full; each gets the current status at its next drain. */
  readonly #behind = new WeakSet<http.ServerResponse>();
  #streamTimer: NodeJS.Timeout | undefined;
  /** When the last frame was pushed (monotonicNow). */
  #streamLastSent = Number.NEGATIVE_INFINITY;
  #unsubscribeModel: (() => void) | undefined;
  /** Wrong admin tokens per remote address and IPv6 /64; on monotonicNow. */
  readonly #failedAdmin = new AdminLockout();
  /** Names the Host header may use (lower case, no trailing dot); the FQDN is added at start. */
  readonly #allowedHosts: Set<string>;
  /** Host names already logged as refused (firstRefusal). */
  readonly #refusedHosts = new Set<string>();
  /** Origins already logged as refused, per kind of route (firstRefusal). */
  readonly #refusedOrigins = { read: new Set<string>(), admin: new Set<string>() };

  constructor(options: StatusServerOptions) {
    this.#o = options;
    this.#log = options.log.child({ component: 'status-http' });
    this.#ownsModel = options.model === undefined;
    this.model =
      options.model ??
      new StatusModel({
        config: options.config,
        store: options.store,
        telemetry: options.telemetry,
        version: options.version,
        startedAt: options.startedAt,
        relayPaused: () => options.relayControl?.paused ?? false,
      });
    this.#audit = new AuditLog(options.config.gateway.dataDir);
    const { listen, allowedHosts } = options.config.status;
    this.#allowedHosts = new Set([...defaultAllowedHosts(listen.host), ...(allowedHosts ?? [])].map((h) => h.toLowerCase().replace(/\.$/, '')));
  }

  get status(): ComponentStatus {
    return this.#status;
  }

  get auditLog(): AuditLog {
    return this.#audit;
  }

  /** The bound address (use with `status.listen.port: 0`). */
  address(): { host: string; port: number } {
    const a = this.#server?.address() as AddressInfo | null | undefined;
    if (!a) throw new GatewayError('GW_SHUTTING_DOWN', 'the status server is not listening');
    return { host: a.address, port: a.port };
  }

  url(): string {
    const { host, port } = this.address();
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  async start(): Promise<void> {
    if (this.#status !== 'created') return;
    this.#status = 'starting';
    try {
      this.#auth = await AdminAuth.fromFile(this.#o.config.status.adminTokenFile, this.#o.adminToken);
      this.#logTokenProblems(this.#auth.problems);
      this.#assets = loadPageAssets();
      await this.model.start();
      await this.#restoreRelayPause();
      this.#metrics = new StatusMetrics({
        store: this.#o.store,
        telemetry: this.#o.telemetry,
        model: this.model,
        gatewayId: this.#o.config.gateway.id,
        defaultMetrics: this.#o.processMetrics ?? true,
        ...(this.#o.mqttBroker ? { mqttBroker: this.#o.mqttBroker } : {}),
      });
      this.#unsubscribeModel = this.model.onChange(() => this.#scheduleStream());
      // Best effort, once: a resolver that does not answer must not hold the start-up.
      const fqdn = machineFqdn().then(
        (name) => {
          if (name !== undefined) this.#allowedHosts.add(name);
          return name;
        },
        () => undefined,
      );
      const server = http.createServer((req, res) => void this.#handle(req, res));
      server.keepAliveTimeout = 5000;
      server.headersTimeout = 10_000;
      server.requestTimeout = 30_000;
      this.#server = server;
      const { host, port } = this.#o.config.status.listen;
      await new Promise<void>((resolve, reject) => {
        const failed = (err: Error): void => reject(new GatewayError('GW_CONFIG_INVALID', `status.listen: cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
        server.once('error', failed);
        server.listen(port, host, () => {
          server.off('error', failed);
          resolve();
        });
      });
      let timer: NodeJS.Timeout | undefined;
      const known = await Promise.race([fqdn.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), FQDN_WAIT_MS)).unref())]);
      clearTimeout(timer);
      // IT learns here which names the API answers for (IP addresses always), and what to add to
      // status.allowedHosts for any other.
      this.#log.info('status API listening', { url: this.url(), admin: this.#auth.enabled, ...(this.#auth.names.length > 0 ? { admins: this.#auth.names } : {}), hosts: [...this.#allowedHosts] });
      if (!known) {
        void fqdn.then((name) => {
          if (name !== undefined && this.#status === 'running') this.#log.info('status API also answers for the machine\'s full name', { host: name });
        });
      }
      this.#status = 'running';
    } catch (err) {
      this.#status = 'failed';
      throw err;
    }
  }

  async stop(deadlineMs = 5000): Promise<void> {
    if (this.#status === 'stopped' || this.#status === 'stopping') return;
    this.#status = 'stopping';
    clearTimeout(this.#streamTimer);
    this.#unsubscribeModel?.();
    for (const s of this.#streams) s.end();
    this.#streams.clear();
    const server = this.#server;
    if (server) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.closeAllConnections();
          resolve();
        }, deadlineMs);
        t.unref();
        server.close(() => {
          clearTimeout(t);
          resolve();
        });
        server.closeIdleConnections();
      });
    }
    this.#metrics?.close();
    if (this.#ownsModel) await this.model.stop();
    this.#status = 'stopped';
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    // The target is parsed inside the try: a target that is not a URL (`GET //[`, sent by scanners
    // and misconfigured proxies) throws, and a throw outside it would reject the promise the
    // request listener discards, leaving the connection without an answer.
    let path = req.url ?? '/';
    try {
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.setHeader('X-Frame-Options', 'DENY');
      res.setHeader('Referrer-Policy', 'no-referrer');
      let url: URL;
      try {
        url = new URL(path, 'http://status.local');
      } catch {
        throw new HttpError(400, 'malformed request target');
      }
      path = url.pathname;
      if (path !== '/healthz' && !hostAllowed(req.headers.host, this.#allowedHosts)) return this.#refuseHost(req, res);
      if (readRoute(method, path)) this.#refuseReadFromAnotherSite(req, path);
      await this.#route(method, url, req, res);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof HttpError) return this.#json(res, err.statusCode, { error: err.message });
      if (isGatewayError(err, 'GW_STORE_NOT_FOUND')) return this.#json(res, 404, { error: err.message, code: err.code });
      if (isGatewayError(err, 'GW_STORE_STATE')) return this.#json(res, 409, { error: err.message, code: err.code });
      if (isGatewayError(err, 'GW_STORE_UNAVAILABLE') || isGatewayError(err, 'GW_STORE_FULL')) return this.#json(res, 503, { error: err.message, code: err.code });
      this.#log.error('status request failed', { method, path, error: describeError(err) });
      this.#json(res, 500, { error: 'internal error', detail: describeError(err) });
    }
  }

  /**
   * 403 for an API request a page of another site made (fetches, images, frames, forms), other
   * than a top-level navigation (a link to /api/status followed from the lab's intranet). Such a
   * page can read none of the answers (the API sends no CORS headers), but each request was
   * served: one loading `/api/events?state=discarded` in a loop read up to 5,000 records a time
   * beside intake's commits. The gateway's own page is same-origin; programs (the tray,
   * `lab-gateway`, scripts, Prometheus) send no Sec-Fetch-Site and no Origin. The admin routes
   * have their own refusal, navigations too (#requireAdmin, never counted as a wrong token).
   */
  #refuseReadFromAnotherSite(req: http.IncomingMessage, path: string): void {
    const crossSite = fromAnotherSite(req.headers);
    if (crossSite === undefined || topLevelNavigation(req.headers)) return;
    this.#refuseAnotherSite(req, crossSite, 'read', { path, fetchMode: req.headers['sec-fetch-mode'] ?? null });
  }

  /** 403 for a request of another site (fromAnotherSite says `crossSite`), logged once per origin and kind of route. */
  #refuseAnotherSite(req: http.IncomingMessage, crossSite: string, route: keyof typeof ANOTHER_SITE, fields: Record<string, unknown>): never {
    const origin = pageOrigin(req.headers);
    if (firstRefusal(this.#refusedOrigins[route], origin)) this.#log.warn(ANOTHER_SITE[route].log, { ...fields, origin, fetchSite: crossSite, remote: req.socket.remoteAddress });
    throw new HttpError(403, ANOTHER_SITE[route].answer);
  }

  /** 421 Misdirected Request (RFC 9110 §15.5.20): this server does not answer for that name. */
  #refuseHost(req: http.IncomingMessage, res: http.ServerResponse): void {
    const host = req.headers.host ?? '';
    if (firstRefusal(this.#refusedHosts, host)) {
      this.#log.warn('status request refused: the Host header does not name this gateway (add the name to status.allowedHosts if it is one)', { host, remote: req.socket.remoteAddress });
    }
    this.#json(res, 421, {
      error: `the Host header names "${host}", which is not a name of this gateway: use its IP address, or add the name to status.allowedHosts`,
    });
  }

  async #route(method: string, url: URL, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const p = url.pathname;
    const q = url.searchParams;
    if (method === 'GET' || method === 'HEAD') {
      if (p === '/api/status') return this.#json(res, 200, this.model.toApiStatus());
      if (p === '/api/stream') return this.#openStream(req, res);
      if (p === '/healthz') return this.#healthz(res);
      if (p === '/metrics') return this.#metricsText(res);
      if (p === '/api/messages') return this.#listMessages(q, res);
      if (p === '/api/events') return this.#listEvents(q, res);
      if (p === '/api/sandbox') return this.#sandboxSummary(res);
      if (p === '/api/admin/check') {
        // Who the token is: its name (null for a bare token), its id, the actor the trail writes.
        const { actor, who } = await this.#admin(req, 'check');
        return this.#json(res, 200, { ok: true, name: who.name ?? null, tokenId: who.id, actor });
      }
      if (p === '/api/audit') {
        await this.#requireAdmin(req, 'read-audit');
        return this.#auditTrail(q, res);
      }
      let m = MESSAGE_DETAIL.exec(p);
      if (m) return this.#messageDetail(param(m[1]!), q, req, res);
      m = EVENT_DETAIL.exec(p);
      if (m) {
        const ev = await this.#o.store.getEvent(param(m[1]!));
        if (!ev) throw new HttpError(404, 'no such event');
        return this.#json(res, 200, ev);
      }
      const asset = this.#assets.get(p);
      if (asset) return this.#asset(res, asset);
      if (EVENT_ACTION.test(p) || RELAY_ACTION.test(p)) {
        res.setHeader('Allow', 'POST');
        throw new HttpError(405, `${p} is an action: send it with POST (and the admin token)`);
      }
      throw new HttpError(404, `no such resource: ${p}`);
    }
    if (method === 'POST') {
      let m = EVENT_ACTION.exec(p);
      if (m) return this.#eventAction(param(m[1]!), m[2] as 'replay' | 'discard', req, res);
      m = RELAY_ACTION.exec(p);
      if (m) return this.#relayAction(m[1] as 'pause' | 'resume', req, res);
      if (GET_ROUTES.has(p) || MESSAGE_DETAIL.test(p) || EVENT_DETAIL.test(p) || this.#assets.has(p)) {
        res.setHeader('Allow', 'GET, HEAD');
        throw new HttpError(405, `${p} is read with GET`);
      }
      throw new HttpError(404, `no such action: ${p}`);
    }
    res.setHeader('Allow', 'GET, HEAD, POST');
    throw new HttpError(405, `method ${method} not allowed`);
  }

  #json(res: http.ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  #asset(res: http.ServerResponse, asset: PageAsset): void {
    res.writeHead(200, {
      'Content-Type': asset.contentType,
      'Content-Length': asset.body.length,
      'Cache-Control': 'no-cache',
      // Everything the page needs is served from here: no CDN, no inline script.
      'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    });
    res.end(asset.body);
  }

  #healthz(res: http.ServerResponse): void {
    // Intake can commit only while the store is healthy; load balancers and systemd watchers use this.
    const store = this.#o.store.health;
    const ok = store === 'ok' && this.model.health().health !== 'down';
    this.#json(res, ok ? 200 : 503, { ok, store });
  }

  async #metricsText(res: http.ServerResponse): Promise<void> {
    const metrics = this.#metrics;
    if (!metrics) throw new HttpError(503, 'metrics not ready');
    const text = await metrics.text();
    res.writeHead(200, { 'Content-Type': metrics.contentType, 'Cache-Control': 'no-store' });
    res.end(text);
  }

  async #listMessages(q: URLSearchParams, res: http.ServerResponse): Promise<void> {
    refuseUnknownParams(q, '/api/messages', ['controlId', 'endpoint', 'q', 'limit', 'before']);
    const query: MessageQuery = { limit: clampLimit(q.get('limit')) };
    for (const k of ['controlId', 'endpoint', 'q', 'before'] as const) {
      const v = q.get(k);
      if (v) query[k] = v;
    }
    // `next`: the `before` of the next page (null at the end). An endpoint filter reads a bounded
    // part of the log per request, so a short page with a `next` is not the end.
    const { messages, next } = await this.#o.store.listMessagePage(query);
    this.#json(res, 200, { messages, count: messages.length, next });
  }

  async #listEvents(q: URLSearchParams, res: http.ServerResponse): Promise<void> {
    refuseUnknownParams(q, '/api/events', ['state', 'type', 'correlationId', 'limit', 'after']);
    const query: EventQuery = { limit: clampLimit(q.get('limit')) };
    const state = q.get('state');
    if (state) {
      if (!isEventState(state)) throw new HttpError(400, `state must be one of ${EventStates.join(', ')}`);
      query.state = state;
    }
    const type = q.get('type');
    if (type) {
      if (!(EventTypes as readonly string[]).includes(type)) throw new HttpError(400, `type must be one of ${EventTypes.join(', ')}`);
      query.type = type as EventQuery['type'];
    }
    const after = q.get('after');
    if (after) query.after = after;
    const correlationId = q.get('correlationId');
    if (correlationId) return this.#json(res, 200, await this.#orderEvents(correlationId, query));
    // `next`: the `after` of the next page (null at the end); for delivered|discarded it names the
    // place itself, which retention cannot take away.
    const { events, next } = await this.#o.store.listEventPage(query);
    this.#json(res, 200, { events, count: events.length, next });
  }

  /**
   * A page of the audit trail, oldest first: the newest `limit` entries matching the filters
   * (`action`, `target`, `outcome`, `actor`: part of it) older than `before`, `total` matching in
   * the whole trail kept, and `next` (the `before` of the older page, null at the oldest). Before,
   * only the newest 1,000 entries could be read: a script refused with a stale token (11 lines a
   * minute) pushed yesterday's discards out of reach within two hours, though audit.log kept them.
   */
  async #auditTrail(q: URLSearchParams, res: http.ServerResponse): Promise<void> {
    refuseUnknownParams(q, '/api/audit', ['action', 'target', 'outcome', 'actor', 'limit', 'before']);
    const query: AuditQuery = { limit: clampLimit(q.get('limit'), 100, 1000) };
    for (const k of ['action', 'target', 'actor'] as const) {
      const v = q.get(k);
      if (v) query[k] = v;
    }
    const outcome = q.get('outcome');
    if (outcome) {
      if (!(AuditOutcomes as readonly string[]).includes(outcome)) throw new HttpError(400, `outcome must be one of ${AuditOutcomes.join(', ')}`);
      query.outcome = outcome as AuditEntry['outcome'];
    }
    const before = q.get('before');
    if (before) {
      if (!parseAuditCursor(before)) throw new HttpError(400, 'before must be the `next` of a previous /api/audit page');
      query.before = before;
    }
    const { entries, unreadableLines } = await this.#audit.readAll();
    this.#json(res, 200, { ...auditPage(entries, query), unreadableLines });
  }

  /**
   * The events of one order/accession (`correlationId=`), in id order, with the other filters:
   * read from the store's correlation index, one order's events (bounded by the order, not the
   * store); `after` and `next` are event ids in that order, also with state=delivered|discarded
   * (which the whole list pages by completion instead).
   */
  async #orderEvents(correlationId: string, query: EventQuery): Promise<{ events: StoredEvent[]; count: number; next: string | null }> {
    const limit = query.limit ?? 50;
    const matching = (await this.#o.store.eventsByCorrelation(correlationId, query.type ? [query.type] : undefined)).filter(
      (e) => (query.state === undefined || e.state === query.state) && (query.after === undefined || e.event.id > query.after),
    );
    matching.sort((x, y) => (x.event.id < y.event.id ? -1 : x.event.id > y.event.id ? 1 : 0));
    const events = matching.slice(0, limit);
    return { events, count: events.length, next: matching.length > limit ? events[events.length - 1]!.event.id : null };
  }

  async #messageDetail(id: string, q: URLSearchParams, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const reveal = q.get('reveal') === '1';
    let actor: string | undefined;
    if (reveal) actor = await this.#requireAdmin(req, 'reveal-names', id);
    const found = await this.#o.store.getMessage(id);
    if (!found) throw new HttpError(404, 'no such message');
    const { message } = found;
    // Read with the charset intake used (a Polish LIS's 8859-2, a Greek one's 8859-7): read as
    // Latin-1, every letter outside it showed as another one ("£UKASZ" for "ŁUKASZ"). The ACK
    // was written in the message's charset, so it is read with it too.
    const charset = storedCharset(message.encoding);
    const text = decodeText(found.raw, charset);
    if (reveal && actor) {
      await this.#auditEntry({ actor, action: 'reveal-names', target: id, outcome: 'ok', reason: q.get('reason') ?? undefined });
    }
    const events: StoredEvent[] = [];
    for (const eventId of message.eventIds) {
      const e = await this.#o.store.getEvent(eventId);
      if (e) events.push(e);
    }
    // A document posted to the sandbox while commissioning says so (`sandbox: true`, OdooRef): it
    // is not a record of the Odoo the gateway posts to now. Refs stored before carry no mark.
    const odoo = events.flatMap((e) => (e.odoo ?? []).map((ref) => ({ eventId: e.event.id, ...ref })));
    this.#json(res, 200, {
      message,
      raw: reveal ? text : maskNames(message.kind, text),
      namesMasked: !reveal,
      ack: found.ack ? decodeText(found.ack, charset) : null,
      events,
      odoo,
    });
  }

  async #sandboxSummary(res: http.ServerResponse): Promise<void> {
    if (!this.#o.sandbox || this.#o.config.odoo.url) throw new HttpError(404, 'not in sandbox mode');
    this.#json(res, 200, { sandbox: true, records: await this.#o.sandbox.summary() });
  }

  async #eventAction(id: string, action: 'replay' | 'discard', req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    await this.#requireAdmin(req, action, id);
    const body = await readJsonBody(req);
    // Looked at again once the body is in (it may come minutes after the headers): a token
    // removed from the file meanwhile acts no more.
    const actor = await this.#requireAdmin(req, action, id);
    const reason = typeof body.reason === 'string' ? body.reason.trim() : '';
    if (action === 'discard' && !reason) throw new HttpError(400, 'a discard needs a reason');
    const expected = body.expectedState;
    if (expected !== undefined && !isEventState(expected)) throw new HttpError(400, `expectedState must be one of ${EventStates.join(', ')}`);
    // The state the operator saw is checked by the store under its queue lock, with the action:
    // neither another operator nor the relay changes the event in between (OperatorGuard).
    const guard = expected !== undefined ? { expected } : {};
    let result: StoredEvent;
    try {
      result = action === 'replay' ? await this.#o.store.replay(id, actor, reason || undefined, guard) : await this.#o.store.discard(id, actor, reason, guard);
    } catch (err) {
      await this.#auditEntry({ actor, action, target: id, reason, outcome: 'failed', detail: describeError(err) });
      throw err;
    }
    this.model.poll();
    await this.#auditDone({ actor, action, target: id, reason, outcome: 'ok' }, `event ${id} was ${action === 'replay' ? 'replayed' : 'discarded'}`);
    this.#log.info(`event ${action} by admin`, { eventId: id, actor });
    this.#json(res, 200, result);
  }

  async #relayAction(action: 'pause' | 'resume', req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    await this.#requireAdmin(req, `relay-${action}`);
    const body = await readJsonBody(req);
    const actor = await this.#requireAdmin(req, `relay-${action}`);
    const reason = typeof body.reason === 'string' ? body.reason.trim() : '';
    const rc = this.#o.relayControl;
    if (!rc) throw new HttpError(501, 'this gateway has no relay to pause');
    // In effect at once; awaited so that the answer means the store keeps it, with who, when and
    // why (a pause holds across restarts: relay/paused.ts). The status says them (RELAY_PAUSED,
    // `relayPause`).
    const pause = action === 'pause' ? { since: new Date().toISOString(), by: actor, reason: reason || null } : null;
    if (pause) await rc.pause(pause);
    else await rc.resume();
    // A pause's entry is dated with its `since`: a status restored from the trail (a pause kept by
    // an earlier version, without who and why) shows the same time as before the restart.
    this.model.setRelayPause(pause);
    await this.#auditDone({ actor, action: `relay-${action}`, reason, outcome: 'ok' }, `the relay was ${action}d`, pause?.since);
    this.#log.info(`relay ${action}d by admin`, { actor });
    this.#json(res, 200, { paused: rc.paused });
  }

  /**
   * The audit entry of an action done. One that cannot be written (a full data disk) is answered
   * as such, with the action, which stands: before, "500: internal error" read as not done.
   */
  async #auditDone(e: Omit<AuditEntry, 'at'>, done: string, at?: string): Promise<void> {
    try {
      await this.#auditEntry(e, at);
    } catch (err) {
      this.#log.error('admin action done, its audit entry not written', { action: e.action, target: e.target, actor: e.actor, error: describeError(err) });
      throw new HttpError(500, `${done}, but the audit log could not be written (${describeError(err)}): the action stands${e.target !== undefined ? " and is in the event's own trail" : ''}; do not repeat it, free the data disk or fix ${this.#audit.file}`);
    }
  }

  /** Returns the actor string, or throws 401/403 after auditing the refusal. */
  async #requireAdmin(req: http.IncomingMessage, action: string, target?: string): Promise<string> {
    return (await this.#admin(req, action, target)).actor;
  }

  /** The admin a request is (its token's name and id, the actor), or throws 401/403 after auditing the refusal. */
  async #admin(req: http.IncomingMessage, action: string, target?: string): Promise<{ actor: string; who: AdminIdentity }> {
    const remote = req.socket.remoteAddress ?? 'unknown';
    // A web page open in a browser (of another site) cannot be the administrator: answered at
    // once, neither counted towards the wrong-token limit of its address nor audited (any page can
    // send these in a loop; counted, they kept the technician locked out and filled the trail).
    const crossSite = fromAnotherSite(req.headers);
    if (crossSite !== undefined) this.#refuseAnotherSite(req, crossSite, 'admin', { action });
    // The token file is looked at on every admin request (rare): a rotated token is in force at
    // once, and the retired one refused, without a restart.
    const changed = await this.#auth.refresh();
    if (changed) this.#logTokensChange(changed);
    // A file set that holds none in force (every line with a problem, comments only) is not a
    // setting missing: said so (which lines: the log, not an answer anyone can read).
    if (!this.#auth.enabled) throw new HttpError(403, this.#auth.fromFile ? 'admin actions are refused: status.adminTokenFile holds no admin token in force (empty, comments only, or no line that can be read: the gateway log names the lines)' : 'admin actions are disabled: set status.adminTokenFile');
    const now = monotonicNow();
    // Guessing the token is slowed down per address (and IPv6 /64); the refusals are in the audit log.
    const locked = this.#failedAdmin.refused(remote, now);
    if (locked) {
      const network = locked.key.endsWith('/64');
      // The first refusal of the window is audited; the rest of the minute is not (a flood of
      // requests would otherwise be a flood of synced writes).
      if (locked.first) {
        const from = network ? ` from the network ${locked.key}` : '';
        void this.#auditEntry({ actor: `anonymous@${remote}`, action, target, outcome: 'refused', detail: `too many wrong admin tokens${from} (${locked.limit} within a minute): refused until the minute is over, further refusals not logged` }).catch(() => {});
      }
      throw new HttpError(429, `too many wrong admin tokens from this ${network ? 'network' : 'address'}: wait a minute`);
    }
    const who = this.#auth.check(req.headers.authorization);
    if (!who) {
      this.#failedAdmin.failed(remote, now);
      void this.#auditEntry({ actor: `anonymous@${remote}`, action, target, outcome: 'refused', detail: 'missing or wrong admin token' }).catch(() => {});
      // A token sent and refused is said so: "required" sent IT looking for a flag it had given,
      // when the token was the one before a rotation.
      const sent = bearerToken(req.headers.authorization) !== undefined;
      const refusal = this.#auth.id !== undefined ? 'the token sent is not the admin token in status.adminTokenFile (rotated since?)' : 'the token sent is not one of the admin tokens in status.adminTokenFile (removed or rotated since?)';
      throw new HttpError(401, sent ? refusal : 'admin token required (Authorization: Bearer <token>)');
    }
    return { actor: adminActor(who, remote), who };
  }

  /**
   * A re-read of status.adminTokenFile that changed the tokens in force: who was added, removed
   * or given a new token (names, and ids for a bare token: never a token), and the lines not in
   * force. A file of one bare token before and after is logged as before.
   */
  #logTokensChange(change: AdminTokensChange): void {
    if (change.single) {
      this.#log.info('admin token changed: the token now in status.adminTokenFile is accepted, the previous one refused', { tokenId: change.single.id, previousTokenId: change.single.previousId ?? null });
    } else if (change.added.length > 0 || change.removed.length > 0 || change.replaced.length > 0) {
      this.#log.info('admin tokens changed: the tokens now in status.adminTokenFile are accepted, those removed or replaced refused', { added: change.added, removed: change.removed, replaced: change.replaced, names: this.#auth.names });
    }
    this.#logTokenProblems(change.problems);
  }

  /** The lines of status.adminTokenFile not in force (each names its line, never its token). */
  #logTokenProblems(problems: readonly string[]): void {
    for (const p of problems) this.#log.error(`status.adminTokenFile ${p}: this line is not in force until it is fixed, the others are`, { path: 'status.adminTokenFile' });
  }

  async #auditEntry(e: Omit<AuditEntry, 'at'>, at = new Date().toISOString()): Promise<AuditEntry> {
    const entry: AuditEntry = { at, ...e };
    if (entry.reason === undefined || entry.reason === '') delete entry.reason;
    if (entry.target === undefined) delete entry.target;
    await this.#audit.append(entry);
    return entry;
  }

  /**
   * A relay found paused at start (the pause holds across restarts): who paused it, when and why,
   * as the relay kept them with the pause. Before, a restart over the weekend left Monday's IT
   * with "paused by an administrator" and nothing more. A pause kept without them (by an earlier
   * version) has them from its entry in the audit trail (the last pause or resume done), while the
   * trail still holds it.
   */
  async #restoreRelayPause(): Promise<void> {
    const rc = this.#o.relayControl;
    if (!rc?.paused) return;
    if (rc.pausedBy) return this.model.setRelayPause(rc.pausedBy);
    try {
      const { entries } = await this.#audit.readAll();
      const last = entries.findLast((e) => e.outcome === 'ok' && (e.action === 'relay-pause' || e.action === 'relay-resume'));
      if (last?.action === 'relay-pause') this.model.setRelayPause({ since: last.at, by: last.actor, reason: last.reason ?? null });
    } catch (err) {
      this.#log.warn('audit trail not read: the relay pause is shown without who, when and why', { error: describeError(err) });
    }
  }

  #openStream(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.method !== 'HEAD' && this.#streams.size >= MAX_STREAMS) {
      if (!this.#streamsFullLogged) {
        this.#streamsFullLogged = true;
        this.#log.warn('status stream refused: too many open streams (a program that opens streams and does not close them?)', { max: MAX_STREAMS, remote: req.socket.remoteAddress });
      }
      res.setHeader('Retry-After', String(STREAM_RETRY_AFTER_S));
      throw new HttpError(503, `too many open status streams (${MAX_STREAMS}): try again later, or poll /api/status`);
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    // A HEAD response has no body: Node drops write() and sends the headers only at end(), so a
    // HEAD left open as a stream would never be answered. It gets the headers and ends.
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.write(`retry: 2000\ndata: ${JSON.stringify(this.model.toApiStatus())}\n\n`);
    this.#streams.add(res);
    req.on('close', () => {
      this.#streams.delete(res);
      if (this.#streams.size < MAX_STREAMS / 2) this.#streamsFullLogged = false;
    });
  }

  /**
   * Coalesce changes: at most one stream push per STREAM_MIN_INTERVAL_MS. A client whose socket
   * has not taken the previous frame (it stopped reading: a script sleeping between lines, a
   * frozen tab) is skipped, and gets the status of that moment once its socket drains: each
   * frame is the whole status, so the newest replaces the ones it missed. Writing every frame
   * kept them all in the gateway's memory for it, without limit (hundreds of MB a day).
   */
  #scheduleStream(): void {
    if (this.#streams.size === 0 || this.#streamTimer) return;
    const wait = Math.max(0, this.#streamLastSent + STREAM_MIN_INTERVAL_MS - monotonicNow());
    this.#streamTimer = setTimeout(() => {
      this.#streamTimer = undefined;
      this.#streamLastSent = monotonicNow();
      const frame = `data: ${JSON.stringify(this.model.toApiStatus())}\n\n`;
      for (const s of this.#streams) {
        if (this.#behind.has(s)) continue;
        if (s.writableNeedDrain) this.#catchUpOnDrain(s);
        else s.write(frame);
      }
    }, wait);
    this.#streamTimer.unref();
  }

  /** A stream that missed frames: the current status once its socket has taken what it holds. */
  #catchUpOnDrain(s: http.ServerResponse): void {
    this.#behind.add(s);
    s.once('drain', () => {
      this.#behind.delete(s);
      if (this.#streams.has(s)) s.write(`data: ${JSON.stringify(this.model.toApiStatus())}\n\n`);
    });
  }
}

async function readJsonBody(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, `body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return {};
  try {
    const v: unknown = JSON.parse(text);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* fall through */
  }
  throw new HttpError(400, 'body must be a JSON object, e.g. {"reason":"…"}');
}
