import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { GatewayError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { OdooLinkState, Telemetry } from '../../telemetry.ts';
import type { OdooConfig } from '../../config/types.ts';
import { displayUrl } from '../../config/display-url.ts';
import { FieldMap, RELAY_MODELS, type ModelFields } from './field-map.ts';
import { HttpTransport, type HttpReply } from './http-transport.ts';
import { classifyOdooException, cleanOdooMessage, databaseErrorMayHaveLanded, failureOf, isDatabaseDown, odooError, parseRetryAfter } from './odoo-error.ts';

export type OdooProtocol = 'json-rpc' | 'json-2';

export interface CallOptions {
  /** Record ids for record methods (`write`, `button_validate`, `message_post`…). */
  ids?: number[];
  context?: Record<string, unknown>;
}

/** What posting rules and the relay need from a client; tests and benches can pass another one. */
export interface OdooApi {
  readonly serverVersion: number;
  readonly fields: FieldMap;
  /** Named parameters as in JSON-2 (odoo-api.md A.4); JSON-RPC maps them to args/kwargs. */
  call<T = unknown>(model: string, method: string, params?: Record<string, unknown>, options?: CallOptions): Promise<T>;
}

export interface OdooClientLike extends OdooApi {
  readonly state: OdooLinkState;
  connect(): Promise<void>;
  close(): void;
  /** Keep at least `requests` connections to Odoo (the relay's requests in flight, relay.concurrency). */
  reserveConnections?(requests: number): void;
  /**
   * The major version the server answers as now, read afresh (the connection's version, protocol
   * and fields are left as they are): the relay asks when Odoo refuses a call as a changed server
   * would (odoo-error.ts `looksLikeServerDrift`).
   */
  serverVersionNow?(): Promise<number>;
}

export interface OdooClientOptions {
  url: string;
  database: string;
  login: string;
  apiKey: string;
  /**
   * Reads the key again (odoo.apiKeyFile / odoo.apiKeyEnv; fromConfig sets it): called before each
   * authentication that follows refused credentials, so a new key written to the file is used
   * without a restart.
   */
  readApiKey?: () => string;
  timeoutMs: number;
  caFile?: string;
  pinnedCertSha256?: string;
  proxy?: string;
  /** The proxy's `user:password` (odoo.proxyAuthFile's content). */
  proxyAuth?: string;
  apiKeyExpiresAt?: string;
  keyExpiryWarnDays?: number;
  telemetry?: Telemetry;
  log?: Logger;
  /** Models to run fields_get on at connect (default: every model the rules use). */
  models?: readonly string[];
  /** Sandbox: link state reported as 'sandbox' when connected. */
  sandbox?: boolean;
  maxSockets?: number;
}

/** Methods that change nothing: a lost answer is transient, not ambiguous. */
const READ_METHODS = new Set(['search_read', 'search', 'read', 'search_count', 'fields_get', 'check_object_reference', 'name_search', 'read_group', 'context_get', 'default_get', 'xmlid_to_res_id']);

/**
 * Leading positional parameters per method for JSON-RPC `execute_kw` (the rest go as kwargs, which
 * Odoo's call_kw passes through by name). Parameter names are the Python ones (A.4).
 */
const POSITIONAL: Record<string, readonly string[]> = {
  search_read: ['domain'],
  search: ['domain'],
  search_count: ['domain'],
  read: ['fields'],
  write: ['vals'],
  create: ['vals_list'],
  load: ['fields', 'data'],
  check_object_reference: ['module', 'xml_id'],
  fields_get: [],
};

export function parseMajorVersion(info: unknown, fallback?: unknown): number {
  const first = Array.isArray(info) ? info[0] : undefined;
  if (typeof first === 'number') return first;
  // SaaS puts "saas~18" in server_version_info[0] (A.1); 17.0+e style strings in server_version.
  const m = /(\d+)/.exec(String(first ?? fallback ?? ''));
  return m ? Number(m[1]) : 0;
}

/**
 * Odoo external API client for 16–19. Detects the server (`GET /web/version` on 19+, else JSON-RPC
 * `common.version`), then speaks JSON-2 with a bearer key (19+) or JSON-RPC authenticate +
 * execute_kw (16–18, odoo-api.md A.6). Never retries by itself.
 */
export class OdooClient implements OdooClientLike {
  readonly fields = new FieldMap();
  readonly #opts: OdooClientOptions;
  readonly #http: HttpTransport;
  #protocol: OdooProtocol | undefined;
  #version = 0;
  #versionText = '';
  #uid: number | undefined;
  #state: OdooLinkState = 'connecting';
  #lastError: string | undefined;
  /**
   * The last JSON-RPC id sent. It starts at a random number so that an answer a web proxy's cache
   * kept from an earlier run of the gateway (whose ids also counted up from its start) does not
   * carry an id this run sends again.
   */
  #rpcId = randomInt(0, 2 ** 31);
  /** The key's days left as last reported on `odoo.state`. */
  #reportedKeyDays: number | undefined;
  /** The key-expiry alert already raised (once each). */
  #keyAlerted: 'expiring' | 'expired' | undefined;
  /** `odoo.apiKeyExpiresAt`, until a renewed key signs in (the date was the previous key's). */
  #keyExpiresAt: string | undefined;
  /** The key was read again and differs: its first successful sign-in retires the configured date. */
  #keyRenewed = false;
  /** The API key in use: options.apiKey, then what readApiKey returned after refused credentials. */
  #apiKey: string;
  /** The last failure was refused credentials: read the key again before the next authentication. */
  #authRefused = false;

  constructor(options: OdooClientOptions) {
    this.#opts = options;
    this.#apiKey = options.apiKey;
    this.#keyExpiresAt = options.apiKeyExpiresAt;
    this.#http = new HttpTransport({
      url: options.url,
      timeoutMs: options.timeoutMs,
      ...(options.caFile ? { caFile: options.caFile } : {}),
      ...(options.pinnedCertSha256 ? { pinnedCertSha256: options.pinnedCertSha256 } : {}),
      ...(options.proxy ? { proxy: options.proxy } : {}),
      ...(options.proxyAuth ? { proxyAuth: options.proxyAuth } : {}),
      ...(options.maxSockets ? { maxSockets: options.maxSockets } : {}),
    });
  }

  /**
   * Build from config. The key comes from `odoo.apiKeyFile` or `odoo.apiKeyEnv` (never inline),
   * the proxy's credentials from `odoo.proxyAuthFile`.
   * `url` overrides `odoo.url` (the sandbox emulator's URL when `odoo.url` is absent).
   */
  static fromConfig(config: OdooConfig, deps: { telemetry?: Telemetry; log?: Logger; url?: string; apiKey?: string; sandbox?: boolean } = {}): OdooClient {
    const url = deps.url ?? config.url;
    if (!url) throw new GatewayError('GW_CONFIG_INVALID', 'odoo.url is not set and no sandbox URL was given');
    const apiKey = deps.apiKey ?? readApiKey(config);
    return new OdooClient({
      url,
      database: config.database ?? '',
      login: config.login ?? '',
      apiKey,
      ...(deps.apiKey === undefined ? { readApiKey: () => readApiKey(config) } : {}),
      timeoutMs: config.timeoutMs,
      ...(config.caFile ? { caFile: config.caFile } : {}),
      ...(config.pinnedCertSha256 ? { pinnedCertSha256: config.pinnedCertSha256 } : {}),
      ...(config.proxy ? { proxy: config.proxy } : {}),
      ...(config.proxy && config.proxyAuthFile ? { proxyAuth: readProxyAuth(config.proxyAuthFile) } : {}),
      ...(config.apiKeyExpiresAt ? { apiKeyExpiresAt: config.apiKeyExpiresAt } : {}),
      keyExpiryWarnDays: config.keyExpiryWarnDays,
      ...(deps.telemetry ? { telemetry: deps.telemetry } : {}),
      ...(deps.log ? { log: deps.log } : {}),
      ...(deps.sandbox ? { sandbox: true } : {}),
    });
  }

  get serverVersion(): number {
    return this.#version;
  }
  get serverVersionText(): string {
    return this.#versionText;
  }
  get protocol(): OdooProtocol | undefined {
    return this.#protocol;
  }
  get state(): OdooLinkState {
    return this.#state;
  }
  get lastError(): string | undefined {
    return this.#lastError;
  }
  get uid(): number | undefined {
    return this.#uid;
  }

  /**
   * Detect, authenticate, read the field maps. Throws a classified GatewayError. Run at start-up,
   * after refused credentials and at the end of every outage (the relay): the version, protocol
   * and fields are read anew each time, so an Odoo upgraded or given new modules while the link
   * was down is spoken to as it is now. An attempt passes through 'connecting', except one that
   * reconnects after an outage: the link stays 'unreachable' until it succeeds, as it did before
   * the end of an outage was a new connection (no state flapping on the status topic at every
   * back-off).
   */
  async connect(): Promise<void> {
    if (this.#authRefused) this.#rereadApiKey();
    if (this.#state !== 'unreachable' || this.#uid === undefined) this.#setState('connecting');
    try {
      this.checkKeyExpiry();
      await this.#detect();
      await this.#authenticate();
      if (this.#keyRenewed) this.#retireKeyExpiry();
      await this.#loadFields();
      this.#authRefused = false;
      this.#setState(this.#opts.sandbox ? 'sandbox' : 'connected');
    } catch (err) {
      this.noteFailure(err);
      throw err;
    }
  }

  /** Record a failure's effect on the link state (the relay calls this for call failures too). */
  noteFailure(err: unknown): void {
    const failure = failureOf(err);
    const message = err instanceof Error ? err.message : String(err);
    if (failure === 'auth') {
      this.#authRefused = true;
      this.#setState('auth-failed', message);
    } else if (err instanceof GatewayError && err.details?.['linkDown'] === true) this.#setState('unreachable', message);
  }

  /** Record a success (link back to connected after an outage). */
  noteSuccess(): void {
    const up = this.#opts.sandbox ? 'sandbox' : 'connected';
    if (this.#state !== up && this.#uid !== undefined) this.#setState(up);
  }

  /**
   * Days left before `apiKeyExpiresAt` (Odoo 18+ keys expire, A.5; negative once expired), or
   * undefined when no expiry is configured. The figure is reported on `odoo.state`
   * (`keyExpiresInDays`) when it changes; the status model turns it into its API_KEY_EXPIRY reason
   * (raised once, cleared when a new key is configured). The client's own alert, for the log, is
   * raised once when the key enters `keyExpiryWarnDays` and once when it has expired, not at every
   * connection attempt or hourly check.
   */
  checkKeyExpiry(now = Date.now()): number | undefined {
    const at = this.#keyExpiresAt;
    if (!at) return undefined;
    const expires = Date.parse(at);
    if (!Number.isFinite(expires)) return undefined;
    const days = Math.floor((expires - now) / 86_400_000);
    const warnDays = this.#opts.keyExpiryWarnDays ?? 14;
    if (days !== this.#reportedKeyDays) {
      this.#reportedKeyDays = days;
      this.#opts.telemetry?.emit('odoo.state', { state: this.#state, ...(this.#lastError ? { lastError: this.#lastError } : {}), ...(this.#versionText ? { serverVersion: this.#versionText } : {}), keyExpiresInDays: days });
    }
    if (days < 0 && this.#keyAlerted !== 'expired') {
      this.#keyAlerted = 'expired';
      this.#opts.telemetry?.alert('critical', 'ODOO_KEY_EXPIRED', `The Odoo API key expired on ${at}; create a new key and update odoo.apiKeyFile`);
    } else if (days >= 0 && days <= warnDays && this.#keyAlerted === undefined) {
      this.#keyAlerted = 'expiring';
      this.#opts.telemetry?.alert('warning', 'ODOO_KEY_EXPIRING', `The Odoo API key expires in ${days} day(s) (${at}); create a new key before then`);
    }
    return days;
  }

  async call<T = unknown>(model: string, method: string, params: Record<string, unknown> = {}, options: CallOptions = {}): Promise<T> {
    if (this.#protocol === undefined || (this.#protocol === 'json-rpc' && this.#uid === undefined)) {
      throw odooError('auth', 'not connected to Odoo', { model, method });
    }
    const started = performance.now();
    let ok = false;
    try {
      const result = this.#protocol === 'json-2' ? await this.#callJson2(model, method, params, options) : await this.#callJsonRpc(model, method, params, options);
      ok = true;
      return result as T;
    } catch (err) {
      if (err instanceof GatewayError && err.details) Object.assign(err.details, { model, method });
      throw err;
    } finally {
      this.#opts.telemetry?.emit('odoo.request', { model, method, latencyMs: performance.now() - started, ok });
    }
  }

  close(): void {
    this.#http.close();
  }

  reserveConnections(requests: number): void {
    this.#http.ensureSockets(requests);
  }

  /**
   * Odoo refused the key: IT creates a new one and writes it to odoo.apiKeyFile, as the
   * ODOO_AUTH_FAILED / ODOO_KEY_EXPIRED alerts ask. Read before the next authentication, so that is
   * enough (before, the key was read once at start-up and the new one needed a restart). A file
   * that cannot be read (being rewritten, empty) keeps the key in use; the next attempt reads again.
   */
  #rereadApiKey(): void {
    const read = this.#opts.readApiKey;
    if (!read) return;
    let key: string;
    try {
      key = read();
    } catch (err) {
      this.#opts.log?.warn('could not read the Odoo API key again; keeping the one in use', { error: err instanceof Error ? err.message : String(err) });
      return;
    }
    if (key === this.#apiKey) return;
    this.#apiKey = key;
    this.#keyRenewed = true;
    this.#opts.log?.info('the Odoo API key changed (odoo.apiKeyFile / odoo.apiKeyEnv): signing in with the new key');
  }

  /**
   * A renewed key signed in. `odoo.apiKeyExpiresAt` was the previous key's date: kept, the status
   * went on saying "Odoo API key has expired" (and the expiry alert stood) over a link that works,
   * until a restart. The date is dropped instead (the status shows no expiry), and IT is told to
   * write the new key's date into the config, read at the next start.
   */
  #retireKeyExpiry(): void {
    this.#keyRenewed = false;
    const old = this.#keyExpiresAt;
    if (old === undefined) return;
    this.#keyExpiresAt = undefined;
    this.#keyAlerted = undefined;
    this.#reportedKeyDays = undefined;
    this.#opts.telemetry?.emit('odoo.state', { state: this.#state, ...(this.#lastError ? { lastError: this.#lastError } : {}), ...(this.#versionText ? { serverVersion: this.#versionText } : {}), keyExpiresInDays: null });
    const text = `The renewed Odoo API key signed in; odoo.apiKeyExpiresAt (${old}) was the previous key's date. Write the new key's expiry date there (read at the next start) to be warned before it expires`;
    this.#opts.log?.warn(text);
    this.#opts.telemetry?.alert('info', 'ODOO_KEY_RENEWED', text);
  }

  // --- detection and authentication -----------------------------------------------------------

  async #detect(): Promise<void> {
    const found = await this.#readVersion();
    this.#protocol = found.protocol;
    this.#version = found.major;
    this.#versionText = found.text;
  }

  async serverVersionNow(): Promise<number> {
    return (await this.#readVersion()).major;
  }

  async #readVersion(): Promise<{ protocol: OdooProtocol; major: number; text: string }> {
    // 19+: GET /web/version (A.4). Older servers answer 404 or an HTML page.
    try {
      const reply = await this.#http.get('/web/version', { accept: 'application/json' });
      if (reply.status === 200) {
        const body = tryJson(reply.body) as { version_info?: unknown; version?: unknown } | undefined;
        const major = body ? parseMajorVersion(body.version_info, body.version) : 0;
        if (major >= 19) return { protocol: 'json-2', major, text: String(body?.version ?? major) };
      }
    } catch (err) {
      if (failureOf(err) !== 'transient') throw err;
      // fall through: JSON-RPC probe gives the definitive answer about reachability
    }
    const info = (await this.#rpc('common', 'version', [], true)) as { server_version?: string; server_version_info?: unknown } | null;
    // D: parse server_version_info, not the string ("17.0-20240709").
    const major = parseMajorVersion(info?.server_version_info, info?.server_version);
    if (major === 0) throw odooError('permanent', `could not read the Odoo version from ${displayUrl(this.#http.baseUrl)}`);
    return { protocol: major >= 19 ? 'json-2' : 'json-rpc', major, text: String(info?.server_version ?? major) };
  }

  async #authenticate(): Promise<void> {
    const { database, login } = this.#opts;
    const apiKey = this.#apiKey;
    if (this.#protocol === 'json-2') {
      // Who am I (A.4): validates the bearer key and the database header in one call.
      const ctx = (await this.#callJson2('res.users', 'context_get', {}, {})) as { uid?: number } | null;
      this.#uid = typeof ctx?.uid === 'number' ? ctx.uid : 0;
      return;
    }
    // A.1: authenticate → uid | false (bad credentials are a result, not an error). Called once;
    // never cached server-side, and a wrong key counts toward the login cooldown (A.3, D).
    const uid = await this.#rpc('common', 'authenticate', [database, login, apiKey, {}], false);
    if (typeof uid !== 'number' || uid <= 0) {
      this.#uid = undefined;
      throw odooError('auth', `Odoo refused login '${login}' on database '${database}' (authenticate returned false): check odoo.login and the API key`, { odooName: 'authenticate' });
    }
    this.#uid = uid;
  }

  async #loadFields(): Promise<void> {
    const models = this.#opts.models ?? RELAY_MODELS;
    await Promise.all(
      models.map(async (model) => {
        try {
          const fields = await this.call<ModelFields>(model, 'fields_get', { attributes: ['type', 'relation', 'required'] });
          this.fields.set(model, fields ?? {});
        } catch (err) {
          // An uninstalled module (no purchase, no sale) is not fatal: the rules that need the
          // model dead-letter with a clear reason. Anything else (auth, network) is.
          if (failureOf(err) === 'permanent') {
            this.fields.set(model, undefined);
            this.#opts.log?.warn('Odoo model not available', { model, error: (err as Error).message });
          } else throw err;
        }
      }),
    );
  }

  // --- transports ------------------------------------------------------------------------------

  async #callJsonRpc(model: string, method: string, params: Record<string, unknown>, options: CallOptions): Promise<unknown> {
    const names = POSITIONAL[method] ?? [];
    const args: unknown[] = options.ids ? [options.ids] : [];
    const kwargs: Record<string, unknown> = { ...params };
    for (const name of names) {
      if (!(name in kwargs)) break;
      args.push(kwargs[name]);
      delete kwargs[name];
    }
    if (options.context) kwargs['context'] = options.context;
    return this.#rpc('object', 'execute_kw', [this.#opts.database, this.#uid, this.#apiKey, model, method, args, kwargs], READ_METHODS.has(method));
  }

  /** A.1: POST /jsonrpc; errors are HTTP 200 envelopes; a None result has no `result` key. */
  async #rpc(service: string, method: string, args: unknown[], idempotent: boolean): Promise<unknown> {
    const id = ++this.#rpcId;
    const reply = await this.#http.post('/jsonrpc', { jsonrpc: '2.0', method: 'call', id, params: { service, method, args } }, {}, idempotent);
    if (reply.status !== 200) throw httpFailure(reply, idempotent, service === 'object' && method === 'execute_kw' ? `${String(args[3])}.${String(args[4])}` : `${service}.${method}`);
    const body = tryJson(reply.body) as { jsonrpc?: unknown; id?: unknown; result?: unknown; error?: { code?: number; message?: string; data?: { name?: string; message?: string } } } | undefined;
    if (body === undefined || typeof body !== 'object' || body === null) {
      throw unknownOutcome(idempotent, `Odoo answered HTTP 200 with a body that is not JSON-RPC`, 200);
    }
    // Odoo's every answer is an object with "jsonrpc": "2.0" (A.1, D; a None result has no
    // `result` key but has that). JSON without it is someone else's (a web proxy's or WAF's own
    // answer, HTTP 200): no answer of Odoo, a write may or may not have run. Before, an object with
    // none of `jsonrpc`, `result`, `error` was a success returning None: a chatter note never
    // posted counted as delivered, a look-up as "nothing found" (test/integration/relay-proxy-json-audit.test.ts).
    if (Array.isArray(body) || body.jsonrpc !== '2.0') {
      throw unknownOutcome(idempotent, `HTTP 200 with JSON that is not Odoo's JSON-RPC answer (no "jsonrpc": "2.0"): a web proxy's own answer? check odoo.url and the site's web proxy`, 200);
    }
    // Odoo echoes the request's id (JsonRPCDispatcher._response, A.1, D). An answer carrying
    // another id is another request's: a web proxy's cache answering from an earlier call, a late
    // answer on a reused connection. It says nothing of this call: a write may or may not have
    // run (ambiguous, looked up before any resend), a read is the link down. Before, it was taken
    // as this call's result: a stale `true` counted a write as done, a stale `[]` made a look-up
    // miss and the document was loaded again (test/integration/relay-answer-id-audit.test.ts).
    // The one exception: an error with `id: null`, which Odoo sends for a failure it met before
    // reading the request (its dispatcher's request_id is None until then); an error is no
    // success, and it is classified by its name as any other.
    if (body.id !== id && !(body.error && body.id === null)) {
      const got = 'id' in body ? JSON.stringify(body.id) : 'none';
      throw unknownOutcome(idempotent, `HTTP 200 with a JSON-RPC answer of another request (id ${got.slice(0, 40)}, sent ${id}): a web proxy's cache or a late answer? check the site's web proxy${idempotent ? '' : '; the write may or may not have run'}`, 200);
    }
    if (body.error) {
      const name = body.error.data?.name ?? 'unknown';
      const msg = body.error.data?.message ?? body.error.message ?? 'Odoo Server Error';
      // The gateway's own user is gone (deleted and created again, a database restored): every
      // call fails with MissingError naming res.users(<our uid>,) (odoo-api.md D). That is the
      // credentials, not the record: authenticate again (a new uid) rather than dead-letter each
      // event as a permanent refusal.
      const user = /MissingError/.test(name) ? /res\.users\((\d+),?\)/.exec(msg) : null;
      if (user && Number(user[1]) === this.#uid) {
        throw odooError('auth', `${name}: the gateway's Odoo user (uid ${this.#uid}) no longer exists; signing in again`, { odooName: name });
      }
      // Only the object service writes business records (authenticate's login bookkeeping is not one).
      throw exceptionError(name, msg, undefined, !idempotent && service === 'object');
    }
    // A.6 step 4: Odoo's envelope with neither result nor error = success with None.
    return 'result' in body ? body.result : null;
  }

  async #callJson2(model: string, method: string, params: Record<string, unknown>, options: CallOptions): Promise<unknown> {
    const body: Record<string, unknown> = { ...params };
    if (options.ids) body['ids'] = options.ids;
    if (options.context) body['context'] = options.context;
    const headers: Record<string, string> = { authorization: `bearer ${this.#apiKey}` };
    if (this.#opts.database) headers['x-odoo-database'] = this.#opts.database;
    const idempotent = READ_METHODS.has(method);
    const reply = await this.#http.post(`/json/2/${encodeURIComponent(model)}/${encodeURIComponent(method)}`, body, headers, idempotent);
    if (reply.status === 200) {
      // A proxy's page or a body cut short, sent with 200, is no answer: a write may or may not
      // have run (ambiguous), a read is retried. Taken as null, a write counted as done and a
      // look-up as "nothing found" (a second document). An empty body too: Odoo 19 answers a
      // None result with `null` (make_json_response, odoo-api.md A.4), never with nothing; read
      // as null, a look-up cut to nothing made the LIS's resend load the order's lines again.
      const parsed = tryJson(reply.body);
      if (parsed === undefined) throw unknownOutcome(idempotent, 'Odoo answered HTTP 200 with a body that is not JSON', 200);
      // JSON-2 returns the method's value bare: nothing in it says it is Odoo's. What can be
      // checked without refusing a real answer (json2Answer): Odoo sends it as
      // `application/json` (make_json_response), and an ORM method's value has the shape its
      // signature gives it (a search_read an array, a write true). Anything else is a web proxy's
      // own JSON: no answer of Odoo, a write may or may not have run (ambiguous), a read is the
      // link down. Before, a WAF's `{"status": "ok"}` read as "nothing found" by a look-up and
      // counted a chatter note as posted (test/integration/relay-json2-answer-audit.test.ts).
      const problem = json2Answer(method, reply.contentType, parsed);
      if (problem) throw unknownOutcome(idempotent, `HTTP 200 with ${problem}: not Odoo's answer to ${model}.${method} (a web proxy's own answer?); check odoo.url and the site's web proxy`, 200);
      return parsed;
    }
    throw httpFailure(reply, idempotent, `${model}.${method}`);
  }

  #setState(state: OdooLinkState, lastError?: string): void {
    if (lastError !== undefined) this.#lastError = lastError;
    // Connected again: the error of the outage is history, not the link's current error.
    else if (state === 'connected' || state === 'sandbox') this.#lastError = undefined;
    if (state === this.#state && lastError === undefined) return;
    this.#state = state;
    this.#opts.telemetry?.emit('odoo.state', { state, ...(this.#lastError ? { lastError: this.#lastError } : {}), ...(this.#versionText ? { serverVersion: this.#versionText } : {}) });
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isId = (v: unknown): boolean => Number.isInteger(v) && (v as number) > 0;

/**
 * What every answer of Odoo 19 to `method` over JSON-2 is, for the methods whose value Odoo's own
 * code fixes (json2.py returns the method's value, a recordset as its ids; `BaseModel.write`
 * and `unlink` return True, `load` `{ids, messages}`, `res.users.context_get` the user's
 * context with its `uid`). Methods not listed are not checked: business methods (`action_*`,
 * `button_*` and the like) may answer anything: true, false, None, ids, an action, a wizard, or
 * any object, since Odoo's web client gives a dict without `type` the type
 * 'ir.actions.act_window_close' (web/controllers/utils.py `clean_action`) and JSON-2 sends the
 * method's dict bare. A record id alone is taken where a recordset's ids are due (`create`,
 * `message_post`): the relay's readers take both. A JSON array or value a web proxy sends in the
 * expected shape cannot be told from Odoo's.
 */
const JSON2_SHAPES: Record<string, { expected: string; ok: (v: unknown) => boolean }> = {
  search_read: { expected: 'an array of records', ok: (v) => Array.isArray(v) && v.every((r) => isObject(r) && typeof r['id'] === 'number') },
  read: { expected: 'an array of records', ok: (v) => Array.isArray(v) && v.every((r) => isObject(r) && typeof r['id'] === 'number') },
  search: { expected: 'an array of ids', ok: (v) => Array.isArray(v) && v.every(isId) },
  create: { expected: 'ids (or an id)', ok: (v) => isId(v) || (Array.isArray(v) && v.every(isId)) },
  message_post: { expected: 'ids (or an id)', ok: (v) => isId(v) || (Array.isArray(v) && v.every(isId)) },
  name_search: { expected: 'an array', ok: (v) => Array.isArray(v) },
  read_group: { expected: 'an array', ok: (v) => Array.isArray(v) },
  // `[model, false]` for a record the user may not read (raise_on_access_error=False).
  check_object_reference: { expected: '[model, id]', ok: (v) => Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && (typeof v[1] === 'number' || v[1] === false) },
  search_count: { expected: 'a count', ok: (v) => Number.isInteger(v) && (v as number) >= 0 },
  write: { expected: 'true', ok: (v) => typeof v === 'boolean' || v === null },
  unlink: { expected: 'true', ok: (v) => typeof v === 'boolean' || v === null },
  load: { expected: '{ids, messages}', ok: (v) => isObject(v) && (Array.isArray(v['ids']) || v['ids'] === false) },
  fields_get: { expected: 'an object of fields', ok: isObject },
  default_get: { expected: 'an object of values', ok: isObject },
  context_get: { expected: 'a context with its uid', ok: (v) => isObject(v) && typeof v['uid'] === 'number' },
};

/** Why a JSON-2 answer HTTP 200 cannot be Odoo's (undefined: it can be). */
export function json2Answer(method: string, contentType: string, value: unknown): string | undefined {
  if (!/^\s*application\/json\s*(;|$)/i.test(contentType)) return `JSON sent as ${contentType ? `'${contentType.slice(0, 60)}'` : 'no Content-Type'} (Odoo sends application/json)`;
  const shape = JSON2_SHAPES[method];
  const describe = (): string => (Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value === 'object' ? `an object (${Object.keys(value).slice(0, 4).join(', ')})` : `${typeof value} ${JSON.stringify(value).slice(0, 40)}`);
  if (shape && !shape.ok(value)) return `${describe()} where Odoo's ${method} answers ${shape.expected}`;
  return undefined;
}

/**
 * An answer that says nothing of the call (not Odoo's, broken, another request's): a write may or
 * may not have run (ambiguous, looked up before any resend), a read is the link down.
 */
function unknownOutcome(idempotent: boolean, message: string, httpStatus: number): GatewayError {
  return odooError(idempotent ? 'transient' : 'ambiguous', message, { httpStatus, linkDown: idempotent });
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Odoo's error answer as a GatewayError. `write`: the call changes something (not a READ_METHODS
 * one), so a database error may come after its COMMIT (odoo-error.ts `databaseErrorMayHaveLanded`).
 */
function exceptionError(name: string, message: string, status: number | undefined, write: boolean): GatewayError {
  let failure = classifyOdooException(name, status, message);
  const clean = cleanOdooMessage(name, message);
  // The database under Odoo is down, restarting or unknown (D; isDatabaseDown) — the whole link.
  const lockedOut = /Too many login failures/i.test(message);
  const linkDown = isDatabaseDown(name) || lockedOut;
  if (lockedOut) failure = 'auth';
  const landed = write && databaseErrorMayHaveLanded(name);
  const text = landed ? `${name}: ${clean} (the write may have been committed: it is looked up before being sent again)` : `${name}: ${clean}`;
  return odooError(failure, text, { odooName: name, odooMessage: clean, ...(status ? { httpStatus: status } : {}), ...(linkDown ? { linkDown } : {}), ...(landed ? { mayHaveLanded: true } : {}) });
}

/** A non-200 HTTP reply (JSON-2 error statuses, A.4 table; or a front proxy's 5xx). `call`: `model.method`. */
function httpFailure(reply: HttpReply, idempotent: boolean, call: string): GatewayError {
  // A rate limiter (429) or a proxy in maintenance (503) may say when to come back (RFC 9110
  // §10.2.3): the relay sends nothing before then (relay.ts #linkTrouble). Ignored, the loop came
  // back on its own 1 s, 2 s, 4 s… and kept the lab's address blocked.
  const retryAfterMs = parseRetryAfter(reply.headers['retry-after']);
  const wait = retryAfterMs === undefined ? {} : { retryAfterMs };
  const body = reply.contentType.includes('json') ? tryJson(reply.body) : undefined;
  if (isOdooErrorBody(body)) {
    const err = exceptionError(body.name, body.message, reply.status, !idempotent);
    if (err.details) Object.assign(err.details, wait);
    return err;
  }
  const s = reply.status;
  // Odoo's own refusal of a body over its limit is its JSON error, above. Any other 413 is a web
  // proxy's in front of it (nginx's client_max_body_size, 1m by default): refused before Odoo saw
  // the request, nothing applied. Before, it fell through to "Odoo answered HTTP 413: <html>…",
  // permanent, with nginx's page in the dead letter (test/integration/relay-proxy-413-audit.test.ts).
  if (s === 413) return tooLargeForProxy(reply, call);
  const challenge = headerText(reply.headers['www-authenticate']);
  // Odoo refuses a key with `false` / AccessDenied over JSON-RPC and with its JSON 401 and a
  // `bearer` challenge over JSON-2 (odoo-api.md A.1, A.4). A 401 asking for another scheme (Basic,
  // Negotiate) is a web proxy wanting its own sign-in: reported as what it is, the link down.
  // Before, it raised "Odoo refused the API key" and IT made new Odoo keys to no effect.
  if (s === 401 && (challenge === undefined || /^\s*bearer\b/i.test(challenge))) return odooError('auth', 'Odoo refused the API key (HTTP 401)', { httpStatus: s });
  if (s === 401) {
    return odooError('transient', `Odoo's address answered HTTP 401 asking for credentials Odoo does not use (WWW-Authenticate: ${challenge!.slice(0, 120)}), a web proxy's sign-in: the request did not reach Odoo; the site's web proxy must let the gateway through`, { httpStatus: s, linkDown: true, ...wait });
  }
  const waitText = retryAfterMs === undefined ? '' : ` (Retry-After: ${Math.ceil(retryAfterMs / 1000)} s)`;
  if (s === 504 && !idempotent) {
    // The proxy gave up waiting for Odoo, which may still run the write and commit it: the link
    // is down for the loop's back-off, and the event is ambiguous (see relay.ts #failureOutcome).
    return odooError('transient', `Odoo's proxy answered HTTP 504 to a write (it may still land)${waitText}`, { httpStatus: s, linkDown: true, mayHaveLanded: true, ...wait });
  }
  if (s === 429 || s === 502 || s === 503 || s === 504) {
    return odooError('transient', `Odoo or its proxy answered HTTP ${s}${waitText}`, { httpStatus: s, linkDown: true, ...wait });
  }
  if (s === 404) {
    // A.4: a multi-database host answers 404 HTML without (or with a wrong) X-Odoo-Database.
    return odooError('transient', 'Odoo answered 404 (HTML): check odoo.url and odoo.database', { httpStatus: s, linkDown: true });
  }
  if (s > 200 && s < 300) {
    // Odoo answers with 200 or an error status, never 201-299 (make_json_response's status is the
    // result's 200 or handle_error's; odoo-api.md A.1, A.4): a 202 or 204 is a web proxy's own (a
    // buffering gateway, a misconfigured rule). Whether a write reached Odoo is unknown: ambiguous;
    // a read is the link down. Before, it fell through to "Odoo answered HTTP 204", permanent:
    // every event leased meanwhile was a dead letter (test/integration/relay-json-error-body-audit.test.ts).
    return unknownOutcome(idempotent, `${notOdoosAnswer(reply)}: whether the request reached Odoo is unknown; check the site's web proxy`, s);
  }
  if (s >= 500) {
    // A 500 without an Odoo error body: the server or a proxy crashed mid-request. The request
    // reached the server, so a write may have happened.
    return unknownOutcome(idempotent, `Odoo answered HTTP ${s} without an error body`, s);
  }
  if ((s >= 300 && s < 400) || s === 403 || s === 407 || s === 408) {
    // Not Odoo's answer: Odoo answers /jsonrpc with HTTP 200 envelopes and /json/2 with a JSON
    // error body (odoo-api.md A.1, A.4), and never redirects them. A web proxy or firewall between
    // the lab and Odoo answered for itself (a block page, its sign-in portal, a moved address):
    // the request never reached Odoo. The link is down until it lets the gateway through; before,
    // every event leased meanwhile was dead-lettered as "Odoo rejected the request".
    return odooError('transient', `${notOdoosAnswer(reply)}: the request did not reach Odoo; check odoo.url and the site's web proxy or firewall`, { httpStatus: s, linkDown: true, ...wait });
  }
  return odooError('permanent', `Odoo answered HTTP ${s}: ${reply.body.slice(0, 200)}`, { httpStatus: s });
}

/**
 * Odoo's JSON-2 error body: `serialize_exception`'s keys, always all of them (name, message,
 * arguments, context, debug; odoo-api.md A.4, asserted by Odoo's own test_webjson2). A JSON error
 * of a web proxy or API gateway (`{"name": "Forbidden", "message": "Request blocked"}` at 403, a
 * `{"name": …}` at 503) has not its `arguments`: it is no exception of Odoo and goes by its
 * status below (the link down). Before, any JSON with a `name` was: a proxy's 403 dead-lettered
 * every event as Odoo refusing it, a proxy's 503 charged each event an attempt without backing
 * the link off (test/integration/relay-json-error-body-audit.test.ts).
 */
function isOdooErrorBody(body: unknown): body is { name: string; message: string; arguments: unknown[] } {
  return isObject(body) && typeof body['name'] === 'string' && typeof body['message'] === 'string' && Array.isArray(body['arguments']);
}

/**
 * A web proxy's 413 in words finance and IT can act on: who refused what, how large it was, what
 * to raise. No HTML: the proxy is named from its Server header (or its page's signature line),
 * never by its page. Permanent and `needsOperator` (the dead letter's reason is this text, not
 * "Odoo rejected the request"); `tooLarge`: the relay may send the call's events again in smaller
 * calls (relay.ts #postChunk), since Odoo never saw this one.
 */
function tooLargeForProxy(reply: HttpReply, call: string): GatewayError {
  const bytes = reply.requestBytes;
  const server = headerText(reply.headers['server'])?.trim().slice(0, 60);
  const nginx = /nginx/i.test(server ?? '') || /<center>\s*nginx/i.test(reply.body);
  const who = server && /^[\w./ ()-]+$/.test(server) ? `The web proxy (${server})` : nginx ? 'The web proxy (nginx)' : 'A web proxy';
  const size = bytes >= 1024 * 1024 ? `${(bytes / (1024 * 1024)).toFixed(1)} MiB` : bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : undefined;
  const raise = nginx
    ? "raise nginx's client_max_body_size (1m by default) above that in the server or location that passes requests to Odoo"
    : "raise the proxy's request body limit above that (nginx: client_max_body_size, 1m by default; Apache: LimitRequestBody; HAProxy or a load balancer: its body size limit)";
  const text = `${who} between the gateway and Odoo refused ${call} as too large (HTTP 413 Request Entity Too Large): the request was ${bytes} bytes${size ? ` (${size})` : ''}; Odoo never received it, nothing was applied. IT: ${raise}, then replay the event`;
  return odooError('permanent', text, { httpStatus: 413, tooLarge: true, requestBytes: bytes, needsOperator: true });
}

function headerText(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.[0];
}

/** "HTTP 302, a redirect to <where>" / "HTTP 403 (page "Access denied")": what stood in the way, for IT. */
function notOdoosAnswer(reply: HttpReply): string {
  const s = reply.status;
  const where = headerText(reply.headers['location']);
  // The address without its query: a sign-in portal's redirect may carry a session token.
  if (s >= 300 && s < 400) return `Odoo's address answered HTTP ${s}, a redirect to ${where ? displayUrl(where.split(/[?#]/)[0]!) : 'no address'}`;
  const title = /<title[^>]*>([^<]{1,120})<\/title>/i.exec(reply.body)?.[1]?.trim();
  return `Odoo's address answered HTTP ${s}${title ? ` (page "${title}")` : ''}, not an answer of Odoo`;
}

export function readApiKey(config: Pick<OdooConfig, 'apiKeyFile' | 'apiKeyEnv'>): string {
  if (config.apiKeyFile) {
    let key: string;
    try {
      key = readFileSync(config.apiKeyFile, 'utf8').trim();
    } catch (err) {
      throw new GatewayError('GW_CONFIG_INVALID', `odoo.apiKeyFile: cannot read ${config.apiKeyFile}`, { cause: err });
    }
    // An empty key is no key: every login would be refused once the gateway is running.
    if (key === '') throw new GatewayError('GW_CONFIG_INVALID', `odoo.apiKeyFile: ${config.apiKeyFile} is empty: the gateway cannot start without the API key`, { details: { path: 'odoo.apiKeyFile' } });
    return key;
  }
  if (config.apiKeyEnv) {
    const v = process.env[config.apiKeyEnv];
    if (!v) throw new GatewayError('GW_CONFIG_INVALID', `odoo.apiKeyEnv: environment variable ${config.apiKeyEnv} is empty`);
    return v.trim();
  }
  throw new GatewayError('GW_CONFIG_INVALID', 'odoo: set apiKeyFile or apiKeyEnv');
}

/** The proxy's `user:password` from `odoo.proxyAuthFile` (one line; surrounding white space trimmed). */
export function readProxyAuth(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new GatewayError('GW_CONFIG_INVALID', `odoo.proxyAuthFile: cannot read ${file}`, { cause: err, details: { path: 'odoo.proxyAuthFile' } });
  }
  if (!text.includes(':') || text.startsWith(':')) throw new GatewayError('GW_CONFIG_INVALID', `odoo.proxyAuthFile: ${file} must hold the proxy's credentials as user:password`, { details: { path: 'odoo.proxyAuthFile' } });
  return text;
}
