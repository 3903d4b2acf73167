/**
 * OdooEmulator: an HTTP server that speaks the subset of Odoo 16/17/18/19 the gateway uses, with
 * the wire formats of odoo-api.md (§A: JSON-RPC envelopes with HTTP 200 errors, JSON-2 with real
 * statuses; §D: what a real 17.0 server did), the business state machines of §B, fault injection
 * and optional JSON persistence (the gateway's sandbox).
 *
 *   const odoo = new OdooEmulator({ version: 17, users: [{ login: 'gw', password: 'x', apiKeys: [{ key: 'k' }], rights: 'bot' }] });
 *   const { url } = await odoo.listen();
 *   …
 *   await odoo.close();
 */
import { contextLang } from './translations.ts';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Authenticator, type AuthUser, type EmulatorUser } from './auth.ts';
import { registerBaseMethods } from './base-methods.ts';
import { miscHooks, registerMiscMethods } from './business-misc.ts';
import { orderHooks, registerOrderMethods } from './business-orders.ts';
import { registerStockMethods, stockHooks } from './business-stock.ts';
import { Database } from './database.ts';
import { bindNamed, bindPositional, execute, resolveMethod, type Transport } from './dispatch.ts';
import { Faults, type FaultAction, type RequestInfo } from './faults.ts';
import { MethodRegistry } from './methods.ts';
import { keyError, lockError, OdooError, pgError, serializeError, typeError, valueError, werkzeug } from './odoo-errors.ts';
import { Env, type Domain, type ModelHooks, type UserRights } from './orm.ts';
import { DebouncedWriter, readState, writeStateAtomic } from './persistence.ts';
import { buildSchema, type ResolvedModel } from './schema.ts';
import { seedBase, seedLabDemo } from './seed.ts';
import { ODOO_VERSIONS, type EmulatorSettings, type OdooVersion } from './types.ts';

export type { EmulatorUser } from './auth.ts';
export type { FaultAction, FaultRule, FaultMatch, OutageMode, ProxyStatus } from './faults.ts';
export { Faults } from './faults.ts';
export type { OdooVersion } from './types.ts';

export interface OdooEmulatorOptions {
  version: OdooVersion;
  /** Database name (default 'lab'). */
  database?: string;
  /** Users (default: admin/admin with full rights). The first user gets uid 2, like Odoo's admin. */
  users?: EmulatorUser[];
  /** JSON file to persist to and reload from (the sandbox). */
  persistFile?: string;
  /** Initial contents when no persisted file exists (default 'lab-demo'). */
  seed?: 'lab-demo' | 'empty';
  /** The host serves several databases: JSON-2 then needs `X-Odoo-Database` (404 HTML otherwise). */
  multiDatabase?: boolean;
  /** Clock (default: real time). Expiry dates, cooldowns and timestamps use it. */
  now?: () => Date;
  /** `server_version` string (default like a community build, e.g. '17.0-20240709'). */
  serverVersion?: string;
  /** Debounce of sandbox writes in ms (default 200). */
  persistDebounceMs?: number;
  /** Site settings that change business rules (types.ts EmulatorSettings); all off by default. */
  settings?: Partial<EmulatorSettings>;
  /** The largest request body Odoo reads (bytes; default 128 MiB, `DEFAULT_MAX_CONTENT_LENGTH`). */
  maxContentLength?: number;
}

export interface CallRecord {
  transport: Transport | 'http';
  service?: string;
  model?: string;
  method?: string;
  /** `data.name` / error `name` when the call failed. */
  error?: string;
  fault?: FaultAction['kind'];
  /**
   * The call has run (and a write committed): set when Odoo ran it, which for a call a fault holds
   * (`timeout` with `afterMs`, `status-then-run`) is after the client gave up or was killed.
   */
  ran?: true;
}

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

interface Prepared {
  info: RequestInfo;
  /** Produces the reply (runs the call, committing it). */
  run: () => Reply;
  /** The reply for a server-side error raised instead of running (lock/serialization faults). */
  fail: (err: OdooError) => Reply;
  /** The credential checked by this call, for the credential-cost model (`faults.credentialCheckMs`). */
  credential?: { key: string; cacheable: boolean };
}

const AUTH_ERRORS = new Set(['odoo.exceptions.AccessDenied', 'odoo.exceptions.MissingError', 'werkzeug.exceptions.Unauthorized', 'psycopg2.OperationalError']);
const DEFAULT_USERS: EmulatorUser[] = [{ login: 'admin', password: 'admin', apiKeys: [], rights: 'admin' }];
const BUILD_DATE: Record<OdooVersion, string> = { 16: '20240710', 17: '20240709', 18: '20250115', 19: '20251001' };

function html(status: number, title: string, text: string): string {
  return `<!doctype html>\n<html lang=en>\n<title>${status} ${title}</title>\n<h1>${title}</h1>\n<p>${text}</p>\n`;
}
function proxyPage(status: number): string {
  const titles: Record<number, string> = { 429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Temporarily Unavailable', 504: 'Gateway Time-out' };
  const t = `${status} ${titles[status] ?? 'Error'}`;
  return `<html>\r\n<head><title>${t}</title></head>\r\n<body>\r\n<center><h1>${t}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`;
}
const NOT_FOUND_TEXT = 'The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.';
const escapeHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&#34;').replace(/'/g, '&#39;');
const sleep = (ms: number) => new Promise<void>((r) => { const t = setTimeout(r, ms); t.unref?.(); });

export class OdooEmulator {
  readonly version: OdooVersion;
  readonly database: string;
  /** Fault injection (see faults.ts). */
  readonly faults = new Faults();
  /** Every RPC seen, oldest first (bounded to the last 5000). */
  readonly calls: CallRecord[] = [];
  /**
   * The database's settings; change them at run time like an administrator in Settings
   * (`odoo.settings.lockConfirmedSales = true`). The next call sees the change.
   */
  readonly settings: EmulatorSettings;
  /**
   * The largest request body Odoo reads (`DEFAULT_MAX_CONTENT_LENGTH`, 128 MiB, odoo-api.md §A.3);
   * change it at run time. A larger one is refused by Odoo itself (`tooLargeReply`).
   */
  maxContentLength: number;

  private readonly options: OdooEmulatorOptions;
  private readonly schema: Map<string, ResolvedModel>;
  private readonly db = new Database();
  private readonly registry = new MethodRegistry();
  private readonly hooks = new Map<string, ModelHooks>();
  private readonly auth: Authenticator;
  private readonly clock: () => Date;
  private readonly writer: DebouncedWriter | undefined;
  private readonly sessions = new Map<string, number>();
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private listenAddress: { port: number; host: string } | undefined;
  private closed = false;
  private users: AuthUser[] = [];
  /** (db, uid, secret) / bearer pairs that passed a check: Odoo memoises them per worker (§A.3). */
  private readonly credentialCache = new Set<string>();

  constructor(options: OdooEmulatorOptions) {
    if (!ODOO_VERSIONS.includes(options.version)) throw new Error(`unsupported Odoo version ${String(options.version)} (16, 17, 18 or 19)`);
    this.options = options;
    this.version = options.version;
    this.database = options.database ?? 'lab';
    this.clock = options.now ?? (() => new Date());
    this.settings = { lockConfirmedSales: false, ...options.settings };
    this.maxContentLength = options.maxContentLength ?? MAX_CONTENT_LENGTH;
    this.schema = buildSchema(this.version);
    this.auth = new Authenticator(this.version, this.clock);
    registerBaseMethods(this.registry);
    registerStockMethods(this.registry);
    registerOrderMethods(this.registry);
    registerMiscMethods(this.registry, [...this.schema.values()].filter((m) => m.chatter).map((m) => m.name));
    for (const [model, h] of Object.entries({ ...stockHooks(), ...orderHooks(), ...miscHooks() })) this.hooks.set(model, h);
    if (options.persistFile) {
      const file = options.persistFile;
      this.writer = new DebouncedWriter(options.persistDebounceMs ?? 200, () => this.save(file));
      this.db.onCommit = () => this.writer!.schedule();
    }
    const persisted = options.persistFile ? readState(options.persistFile) : undefined;
    if (persisted) this.db.restore(persisted.data);
    else this.seed();
    this.syncUsers();
    this.faults.onOutageChange = (active, mode) => this.onOutage(active, mode);
  }

  // ------------------------------------------------------------------------------------ lifecycle

  /** Starts the HTTP server (port 0 = any free port). */
  async listen(port = 0, host = '127.0.0.1'): Promise<{ url: string }> {
    if (this.server) return { url: this.url };
    this.closed = false;
    const server = createServer((req, res) => {
      // An emulator bug must not take down the process hosting it (the gateway runs the sandbox in-process).
      this.handle(req, res).catch((err: unknown) => {
        this.send(res, { status: 500, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body: `emulator error: ${err instanceof Error ? err.message : String(err)}` });
      });
    });
    server.keepAliveTimeout = 5_000;
    server.on('connection', (s) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => { server.off('error', reject); resolve(); });
    });
    const addr = server.address();
    if (!addr || typeof addr === 'string') throw new Error('no TCP address');
    this.listenAddress = { port: addr.port, host };
    this.server = server;
    server.on('error', () => undefined); // after listen: nothing to recover; never an unhandled 'error'
    return { url: this.url };
  }

  /** Base URL, e.g. http://127.0.0.1:40123 (throws before listen()). */
  get url(): string {
    if (!this.listenAddress) throw new Error('OdooEmulator is not listening');
    const h = this.listenAddress.host.includes(':') ? `[${this.listenAddress.host}]` : this.listenAddress.host;
    return `http://${h}:${this.listenAddress.port}`;
  }

  /** Stops the server, drops held connections and writes the sandbox file. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.faults.endOutage();
    this.faults.onOutageChange = undefined;
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    this.writer?.flush();
  }

  /** Writes pending sandbox changes now. */
  flush(): void {
    this.writer?.flush();
  }

  // ----------------------------------------------------------------------------- in-process API

  /**
   * Records of `model` matching `domain`, oldest first, archived included: every field (or
   * `fields`), many2one as plain ids — or as `[id, display_name]` with `load: '_classic_read'`.
   */
  records(model: string, domain: Domain = [], opts: { fields?: string[]; load?: '_classic_read' } = {}): Array<Record<string, unknown>> {
    const env = this.adminEnv({ active_test: false });
    if (!this.schema.has(model)) throw new Error(`unknown model ${model}`);
    return env.read(model, env.searchInternal(model, domain, { order: 'id' }), opts.fields ?? null, opts.load ?? null);
  }

  count(model: string, domain: Domain = []): number {
    if (!this.schema.has(model)) throw new Error(`unknown model ${model}`);
    return this.adminEnv({ active_test: false }).searchInternal(model, domain).length;
  }

  /** Every external id: `module.name` → model and record id. */
  externalIds(): Array<{ xmlid: string; model: string; resId: number }> {
    return [...this.db.table('ir.model.data').values()].sort((a, b) => a.id - b.id)
      .map((x) => ({ xmlid: `${String(x.module)}.${String(x.name)}`, model: String(x.model), resId: x.res_id as number }));
  }

  /** Calls a model method in-process as the admin (or `uid`), like execute_kw, without HTTP or faults. */
  call(model: string, method: string, args: unknown[] = [], kwargs: Record<string, unknown> = {}, opts: { uid?: number } = {}): unknown {
    const user = this.users.find((u) => u.uid === (opts.uid ?? 2)) ?? this.users[0];
    const env = this.makeEnv(user?.uid ?? 2, user?.rights ?? 'admin', (kwargs.context as Record<string, unknown>) ?? {});
    const spec = resolveMethod(this.registry, env, model, method, 'jsonrpc');
    const { ids, named } = bindPositional(spec, method, args, kwargs);
    return execute(env, spec, model, method, ids, named, 'jsonrpc');
  }

  /** Adds an API key to a configured user at run time (key rotation tests). */
  addApiKey(login: string, apiKey: { key: string; expiresAt?: string | Date }): void {
    const u = this.users.find((x) => x.login === login);
    if (!u) throw new Error(`no user ${login}`);
    u.apiKeys = [...(u.apiKeys ?? []), apiKey];
  }

  /** Revokes an API key at once (Preferences → Account Security → delete). Later calls with it are refused. */
  revokeApiKey(key: string): boolean {
    let found = false;
    for (const u of this.users) {
      const before = u.apiKeys?.length ?? 0;
      u.apiKeys = (u.apiKeys ?? []).filter((k) => k.key !== key);
      if (u.apiKeys.length !== before) found = true;
    }
    for (const c of [...this.credentialCache]) if (c.endsWith(`:${key}`) || c === `bearer:bearer ${key}`) this.credentialCache.delete(c);
    return found;
  }

  /** Back to the initial seed: data, faults, cooldowns, sessions, call log. */
  reset(): void {
    this.db.clear();
    this.seed();
    this.syncUsers();
    this.faults.clear().clearLog();
    this.auth.resetCooldowns();
    this.credentialCache.clear();
    this.sessions.clear();
    this.calls.length = 0;
    if (this.options.persistFile) this.save(this.options.persistFile);
  }

  // ---------------------------------------------------------------------------------- internals

  private seed(): void {
    const env = this.adminEnv({});
    this.db.transaction(() => {
      const base = seedBase(env);
      env.sudo().createInternal('res.users', { login: '__system__', partner_id: 2, active: false });
      if ((this.options.seed ?? 'lab-demo') === 'lab-demo') seedLabDemo(env, base);
    });
  }

  private syncUsers(): void {
    const env = this.adminEnv({ active_test: false });
    const wanted = this.options.users && this.options.users.length > 0 ? this.options.users : DEFAULT_USERS;
    const out: AuthUser[] = [];
    this.db.transaction(() => {
      for (const u of wanted) {
        // On a fresh database __system__ is uid 1, so the first user becomes uid 2 like Odoo's admin.
        let row = [...this.db.table('res.users').values()].find((r) => r.login === u.login);
        if (!row) {
          const partner = env.createInternal('res.partner', { name: u.name ?? u.login });
          row = this.db.table('res.users').get(env.createInternal('res.users', { login: u.login, partner_id: partner }))!;
        }
        out.push({ ...u, rights: u.rights ?? 'admin', uid: row.id });
      }
    });
    this.users = out;
    this.auth.setUsers(out, (uid) => {
      const row = this.db.table('res.users').get(uid);
      return row ? { active: row['active'] } : undefined;
    });
  }

  /** `get_lang` without a context lang: the user's company's partner's language when installed, else en_US. */
  private companyLang(uid: number): string {
    const user = this.db.table('res.users').get(uid);
    const company = this.db.table('res.company').get((user?.company_id as number | undefined) ?? 1);
    const partner = typeof company?.partner_id === 'number' ? this.db.table('res.partner').get(company.partner_id) : undefined;
    return contextLang({ lang: partner?.lang }) ?? 'en_US';
  }

  private makeEnv(uid: number, rights: UserRights, context: Record<string, unknown>): Env {
    return new Env({ version: this.version, db: this.db, schema: this.schema, uid, rights, context, clock: this.clock, hooks: this.hooks, settings: this.settings });
  }

  private adminEnv(context: Record<string, unknown>): Env {
    return this.makeEnv(2, 'admin', context).sudo();
  }

  private save(file: string): void {
    writeStateAtomic(file, { kind: 'lab-gateway-odoo-sandbox', version: this.version, database: this.database, savedAt: new Date().toISOString(), data: this.db.snapshot() });
  }

  private onOutage(active: boolean, mode: string): void {
    if (!active) {
      if (!this.server && this.listenAddress && !this.closed) void this.listen(this.listenAddress.port, this.listenAddress.host).catch(() => undefined);
      return;
    }
    for (const s of this.sockets) s.destroy();
    if (mode === 'refuse' && this.server) {
      const server = this.server;
      this.server = undefined;
      server.close();
    }
  }

  private record(c: CallRecord): void {
    this.calls.push(c);
    if (this.calls.length > 5000) this.calls.shift();
  }

  private versionInfo(): Record<string, unknown> {
    const v = this.version;
    return {
      server_version: this.options.serverVersion ?? `${v}.0-${BUILD_DATE[v]}`,
      server_version_info: [v, 0, 0, 'final', 0, ''],
      server_serie: `${v}.0`,
      protocol_version: 1,
    };
  }

  // ------------------------------------------------------------------------------------ HTTP

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const outage = this.faults.outageNow();
    if (outage === 'reset' || outage === 'refuse') { req.socket.resetAndDestroy(); return; }
    if (outage === '503') { this.send(res, { status: 503, headers: { 'Content-Type': 'text/html' }, body: proxyPage(503) }); return; }
    const path0 = (req.url ?? '/').split('?')[0]!;
    const tooLarge = Number(req.headers['content-length'] ?? 0) > this.maxContentLength ? this.tooLargeReply(path0) : undefined;
    if (tooLarge) {
      req.resume(); // not read: the body is over the limit
      this.record({ transport: 'http', error: 'werkzeug.exceptions.RequestEntityTooLarge' });
      this.send(res, tooLarge);
      return;
    }
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch {
      req.socket.destroy();
      return;
    }
    if (this.faults.latencyMs > 0) await sleep(this.faults.latencyMs);
    if (this.closed) return; // a client that gave up meanwhile does not stop Odoo from running the call
    const ip = req.socket.remoteAddress ?? '127.0.0.1';
    const path = (req.url ?? '/').split('?')[0]!;
    const prepared = this.route(req, path, body, ip);
    if ('status' in prepared) { this.record({ transport: 'http' }); this.send(res, prepared); return; }
    const action = this.faults.pick(prepared.info);
    const rec: CallRecord = { transport: prepared.info.transport === 'http' ? 'http' : prepared.info.transport, ...(prepared.info.service ? { service: prepared.info.service } : {}), ...(prepared.info.model ? { model: prepared.info.model } : {}), ...(prepared.info.method ? { method: prepared.info.method } : {}) };
    if (action) rec.fault = action.kind;
    this.record(rec);
    const cred = prepared.credential;
    const credentialCost = this.faults.credentialCheckMs > 0 && cred && (!cred.cacheable || !this.credentialCache.has(cred.key)) ? this.faults.credentialCheckMs : 0;
    const runSync = (): Reply => {
      if (this.closed) return { status: 503, headers: {}, body: '' }; // nothing runs once close() began
      const reply = prepared.run();
      rec.ran = true;
      const errName = errorNameOf(reply);
      if (errName) rec.error = errName;
      if (cred?.cacheable && !AUTH_ERRORS.has(errName ?? '')) this.credentialCache.add(cred.key);
      return reply;
    };
    /** Runs the call after the credential check's cost (odoo-api.md §D: ≈300 ms uncached). */
    const runAndNote = async (): Promise<Reply> => {
      if (credentialCost > 0) await sleep(credentialCost);
      return runSync();
    };
    if (!action) { const r = await runAndNote(); if (!this.closed) this.send(res, r); return; }
    switch (action.kind) {
      case 'none': { const r = await runAndNote(); if (!this.closed) this.send(res, r); return; }
      case 'latency': { await sleep(action.ms); if (this.closed) return; const r = await runAndNote(); if (!this.closed) this.send(res, r); return; }
      case 'status': {
        const headers: Record<string, string> = { 'Content-Type': 'text/html' };
        if (action.retryAfterSeconds !== undefined) headers['Retry-After'] = String(action.retryAfterSeconds);
        this.send(res, { status: action.status, headers, body: proxyPage(action.status) });
        return;
      }
      case 'status-then-run': {
        this.send(res, { status: action.status, headers: { 'Content-Type': 'text/html' }, body: proxyPage(action.status) });
        await sleep(action.runAfterMs);
        if (!this.closed) await runAndNote(); // Odoo finishes what the proxy stopped waiting for
        return;
      }
      case 'timeout':
        if (action.afterMs === undefined) return; // held until the client gives up or close()
        await sleep(action.afterMs);
        if (this.closed) return;
        this.send(res, await runAndNote()); // runs even if the client gave up meanwhile
        return;
      case 'timeout-after-commit': {
        const reply = await runAndNote(); // committed now
        if (action.afterMs === undefined) return;
        await sleep(action.afterMs);
        if (!this.closed && !res.destroyed) this.send(res, reply);
        return;
      }
      case 'reset': req.socket.resetAndDestroy(); return;
      case 'reset-after-commit': await runAndNote(); req.socket.resetAndDestroy(); return;
      case 'cut-after-commit': {
        const reply = await runAndNote(); // committed now
        if (this.closed || res.headersSent || res.destroyed) return;
        const bytes = Buffer.from(reply.body);
        res.writeHead(reply.status, { ...reply.headers, 'Content-Length': bytes.length });
        // The first half goes out (at least a byte), then the connection drops mid-answer.
        res.write(bytes.subarray(0, Math.max(1, Math.floor(bytes.length / 2))), () => req.socket.destroy());
        return;
      }
      case 'db-error-after-commit': {
        const reply = await runAndNote(); // committed now (unless the method itself failed)
        if (this.closed) return;
        this.send(res, errorNameOf(reply) ? reply : prepared.fail(pgError('psycopg2.OperationalError', 'server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore or while processing the request.\n')));
        return;
      }
      case 'lock':
        this.send(res, prepared.fail(this.version >= 19
          ? lockError('Cannot grab a lock on records')
          : pgError('psycopg2.errors.LockNotAvailable', 'could not obtain lock on row in relation "stock_quant"\n')));
        return;
      case 'serialization':
        this.send(res, prepared.fail(pgError('psycopg2.errors.SerializationFailure', 'could not serialize access due to concurrent update\n')));
        return;
      default:
        action satisfies never;
    }
  }

  /**
   * Odoo's own answer to a body over `maxContentLength`: werkzeug raises RequestEntityTooLarge
   * when the dispatcher reads the body (`get_json_data`), before the request's id or method is
   * known, and the dispatcher's handle_error answers it in its shape: JSON-RPC an HTTP 200
   * envelope with `id: null`, JSON-2 HTTP 413 with the JSON error body (built from
   * `v17:odoo/http.py` JsonRPCDispatcher, `v19:odoo/http.py` Json2Dispatcher). Undefined for
   * other paths (read as usual).
   */
  private tooLargeReply(path: string): Reply | undefined {
    const text = '413 Request Entity Too Large: The data value transmitted exceeds the capacity limit.';
    const err = new OdooError('werkzeug.exceptions.RequestEntityTooLarge', text, 413, [text, 413]);
    if (path === '/jsonrpc') return json(200, { jsonrpc: '2.0', id: null, error: { code: this.version >= 19 ? 0 : 200, message: 'Odoo Server Error', data: serializeError(err, this.version) } });
    if (path.startsWith('/json/2/') && this.version >= 19) return { status: 413, headers: { 'Content-Type': 'application/json; charset=utf-8' }, body: JSON.stringify(serializeError(err)) };
    return undefined;
  }

  private send(res: ServerResponse, reply: Reply): void {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(reply.status, { ...reply.headers, 'Content-Length': Buffer.byteLength(reply.body) });
    res.end(reply.body);
  }

  private route(req: IncomingMessage, path: string, body: Buffer, ip: string): Prepared | Reply {
    const method = req.method ?? 'GET';
    if (path === '/web/health') return json(200, { status: 'pass' });
    if ((path === '/web/version' || path === '/json/version') && this.version >= 19 && method === 'GET') {
      return json(200, { version_info: [this.version, 0, 0, 'final', 0, ''], version: `${this.version}.0` });
    }
    if (path === '/jsonrpc' || path === '/web/session/authenticate' || path === '/web/webclient/version_info' || path.startsWith('/web/dataset/call_kw')) {
      return this.jsonRpcRoute(req, path, body, ip); // a GET has no JSON Content-Type: refused like one
    }
    if (path === '/json/2' || path.startsWith('/json/2/')) {
      if (this.version < 19) return notFoundHtml();
      return this.json2Route(req, path, body);
    }
    return notFoundHtml();
  }

  // --------------------------------------------------------------------------------- JSON-RPC

  private jsonRpcRoute(req: IncomingMessage, path: string, body: Buffer, ip: string): Prepared | Reply {
    const ctype = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (ctype !== 'application/json' && ctype !== 'application/json-rpc') {
      // `v17:odoo/http.py:248`: 17 → 400 HTML; 19 → 415 HTML with `Accept: application/json` (§A.1).
      if (this.version >= 19) return { status: 415, headers: { 'Content-Type': 'text/html; charset=utf-8', Accept: 'application/json' }, body: html(415, 'Unsupported Media Type', 'The server does not support the media type transmitted in the request.') };
      return { status: 400, headers: { 'Content-Type': 'text/html; charset=utf-8' }, body: html(400, 'Bad Request', escapeHtml(`Request inferred type is compatible with ['http'] but '${path}' is type='json'.`)) };
    }
    let envelope: { id?: unknown; params?: unknown };
    try {
      envelope = JSON.parse(body.toString('utf8')) as { id?: unknown; params?: unknown };
      if (envelope === null || typeof envelope !== 'object') throw new Error('not an object');
    } catch {
      return { status: 400, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body: 'Invalid JSON data' };
    }
    const id = envelope.id ?? null;
    const params = (envelope.params && typeof envelope.params === 'object' && !Array.isArray(envelope.params) ? envelope.params : {}) as Record<string, unknown>;
    const ok = (result: unknown): Reply => json(200, result === undefined ? { jsonrpc: '2.0', id } : { jsonrpc: '2.0', id, result });
    const fail = (err: OdooError): Reply => json(200, { jsonrpc: '2.0', id, error: { code: this.version >= 19 ? 0 : 200, message: 'Odoo Server Error', data: serializeError(err, this.version) } });
    const guard = (fn: () => unknown): Reply => {
      try {
        return ok(fn());
      } catch (e) {
        if (e instanceof OdooError) return fail(e);
        return fail(new OdooError('builtins.Exception', e instanceof Error ? e.message : String(e), 500));
      }
    };

    if (path === '/web/webclient/version_info') return { info: { transport: 'jsonrpc', service: 'web', rpcMethod: 'version_info' }, run: () => ok(this.versionInfo()), fail };
    if (path === '/web/session/authenticate') {
      return {
        info: { transport: 'jsonrpc', service: 'web', rpcMethod: 'session_authenticate' }, fail,
        run: () => {
          let sid: string | undefined;
          const reply = guard(() => {
            const session = this.sessionAuthenticate(params, ip);
            sid = session.sid;
            return session.info;
          });
          if (sid) reply.headers['Set-Cookie'] = `session_id=${sid}; HttpOnly; Path=/; SameSite=Lax`;
          return reply;
        },
      };
    }
    if (path.startsWith('/web/dataset/call_kw')) {
      const model = String(params.model ?? '');
      const method = String(params.method ?? '');
      return {
        info: { transport: 'jsonrpc', service: 'web', rpcMethod: 'call_kw', model, method }, fail,
        run: () => {
          const sid = /(?:^|;\s*)session_id=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
          const uid = sid ? this.sessions.get(sid) : undefined;
          if (uid === undefined) {
            return json(200, { jsonrpc: '2.0', id, error: { code: 100, message: 'Odoo Session Expired', data: serializeError(new OdooError('odoo.http.SessionExpiredException', 'Session expired', 401), this.version) } });
          }
          return guard(() => this.callKw(uid, model, method, (params.args as unknown[]) ?? [], (params.kwargs as Record<string, unknown>) ?? {}, 'jsonrpc'));
        },
      };
    }
    const service = String(params.service ?? '');
    const rpcMethod = String(params.method ?? '');
    const args = Array.isArray(params.args) ? params.args : [];
    const info: RequestInfo = { transport: 'jsonrpc', service, rpcMethod };
    if (service === 'object' && (rpcMethod === 'execute_kw' || rpcMethod === 'execute')) {
      if (typeof args[3] === 'string') info.model = args[3];
      if (typeof args[4] === 'string') info.method = args[4];
    }
    const credential = service === 'object' ? { key: `${String(args[0])}:${String(args[1])}:${String(args[2])}`, cacheable: true }
      : service === 'common' && (rpcMethod === 'authenticate' || rpcMethod === 'login') ? { key: 'authenticate', cacheable: false } : undefined;
    return { info, fail, run: () => guard(() => this.dispatchRpc(service, rpcMethod, args, ip)), ...(credential ? { credential } : {}) };
  }

  private checkDb(db: unknown): void {
    if (db !== this.database) {
      // odoo-api.md §D: unknown database → psycopg2.OperationalError naming the database host and port.
      throw pgError('psycopg2.OperationalError', `connection to server at "localhost" (127.0.0.1), port 5432 failed: FATAL:  database "${String(db)}" does not exist\n`);
    }
  }

  private dispatchRpc(service: string, method: string, args: unknown[], ip: string): unknown {
    switch (service) {
      case 'common':
        if (method === 'version') return this.versionInfo();
        if (method === 'login') {
          if (args.length !== 3) throw typeError(`exp_login() takes 3 positional arguments but ${args.length} were given`);
          this.checkDb(args[0]);
          return this.auth.authenticate(String(args[1]), String(args[2]), ip);
        }
        if (method === 'authenticate') {
          if (args.length !== 4) throw typeError(`exp_authenticate() takes 4 positional arguments but ${args.length} were given`);
          this.checkDb(args[0]);
          return this.auth.authenticate(String(args[1]), String(args[2]), ip);
        }
        if (method === 'about') return `See http://openerp.com`;
        throw new OdooError('builtins.Exception', `Method not found: ${method}`, 500);
      case 'db':
        if (method === 'list') return [this.database];
        if (method === 'server_version') return this.versionInfo().server_version;
        throw keyError(method);
      case 'object': {
        if (method !== 'execute_kw' && method !== 'execute') throw new OdooError('builtins.NameError', `Method not available ${method}`, 500);
        if (args.length < 5) throw typeError(`execute_kw() missing ${5 - args.length} required positional argument(s)`);
        const [db, uid, password, model, meth] = args;
        this.checkDb(db);
        const user = this.auth.check(uid, password, ip);
        const posArgs = method === 'execute_kw' ? ((args[5] as unknown[] | undefined) ?? []) : args.slice(5);
        const kwargs = method === 'execute_kw' ? ((args[6] as Record<string, unknown> | undefined) ?? {}) : {};
        if (!Array.isArray(posArgs)) throw typeError(`'${typeof posArgs}' object is not iterable`);
        return this.callKw(user.uid, String(model), String(meth), posArgs, kwargs, 'jsonrpc');
      }
      default:
        throw new OdooError('builtins.KeyError', `'${service}'`, 500);
    }
  }

  private callKw(uid: number, model: string, method: string, args: unknown[], kwargs: Record<string, unknown>, transport: Transport): unknown {
    const user = this.auth.byUid(uid);
    const context = (kwargs.context && typeof kwargs.context === 'object' ? kwargs.context : {}) as Record<string, unknown>;
    const env = this.makeEnv(uid, user?.rights ?? 'admin', context);
    const spec = resolveMethod(this.registry, env, model, method, transport);
    const { ids, named } = bindPositional(spec, method, args, kwargs);
    if (method === 'create' && args.length === 0) {
      // `_call_kw_model_create` reads args[0] after creating: vals_list passed as a keyword fails (and rolls back).
      throw new OdooError('builtins.IndexError', 'list index out of range', 500);
    }
    return execute(env, spec, model, method, ids, named, transport);
  }

  private sessionAuthenticate(params: Record<string, unknown>, ip: string): { sid: string; info: Record<string, unknown> } {
    this.checkDb(params.db);
    const uid = this.auth.authenticate(String(params.login ?? ''), String(params.password ?? ''), ip);
    if (uid === false) throw new OdooError('odoo.exceptions.AccessDenied', 'Access Denied', 403);
    const sid = randomBytes(20).toString('hex');
    this.sessions.set(sid, uid);
    const u = this.db.table('res.users').get(uid);
    return {
      sid,
      info: {
        uid, is_system: uid === 2, is_admin: this.auth.byUid(uid)?.rights === 'admin', db: this.database, username: u?.login,
        partner_id: u?.partner_id, user_context: { lang: u?.lang ?? 'en_US', tz: u?.tz ?? 'Europe/Brussels', uid },
        server_version: this.versionInfo().server_version, server_version_info: this.versionInfo().server_version_info,
      },
    };
  }

  // ----------------------------------------------------------------------------------- JSON-2

  private json2Route(req: IncomingMessage, path: string, body: Buffer): Prepared | Reply {
    const jsonError = (err: OdooError): Reply => ({ status: err.httpStatus, headers: { 'Content-Type': 'application/json; charset=utf-8', ...err.headers }, body: JSON.stringify(serializeError(err)) });
    const dbHeader = req.headers['x-odoo-database'];
    if ((this.options.multiDatabase && !dbHeader) || (typeof dbHeader === 'string' && dbHeader !== this.database)) return notFoundHtml();
    const m = /^\/json\/2\/([^/]+)\/([^/]+)$/.exec(path);
    if (!m) return jsonError(werkzeug(404, 'Did you mean POST /json/2/<model>/<method>?'));
    if ((req.method ?? 'GET') !== 'POST') return { status: 405, headers: { 'Content-Type': 'text/html; charset=utf-8', Allow: 'POST' }, body: html(405, 'Method Not Allowed', 'The method is not allowed for the requested URL.') };
    const ctype = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (ctype !== 'application/json') return { status: 415, headers: { 'Content-Type': 'text/html; charset=utf-8' }, body: html(415, 'Unsupported Media Type', 'The server does not support the media type transmitted in the request.') };
    const model = decodeURIComponent(m[1]!);
    const method = decodeURIComponent(m[2]!);
    return {
      info: { transport: 'json2', model, method },
      credential: { key: `bearer:${req.headers.authorization ?? ''}`, cacheable: true },
      fail: jsonError,
      run: () => {
        try {
          const user = this.auth.bearer(req.headers.authorization);
          let parsed: unknown;
          try {
            parsed = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
          } catch (e) {
            throw werkzeug(400, `could not parse the body as json: ${e instanceof Error ? e.message : String(e)}`);
          }
          if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw werkzeug(400, 'could not parse the body, the JSON must be an object');
          const b = parsed as Record<string, unknown>;
          const given = (b.context && typeof b.context === 'object' ? b.context : {}) as Record<string, unknown>;
          // ir.http._pre_dispatch: lang = get_lang(env) — the context's, else the company's (translations.ts).
          const context = contextLang(given) ? given : { ...given, lang: this.companyLang(user.uid) };
          const env = this.makeEnv(user.uid, user.rights ?? 'admin', context);
          const spec = resolveMethod(this.registry, env, model, method, 'json2');
          const { ids, named } = bindNamed(spec, model, method, b);
          const result = execute(env, spec, model, method, ids, named, 'json2');
          return json(200, result === undefined ? null : result);
        } catch (e) {
          if (e instanceof OdooError) return jsonError(e);
          return jsonError(valueError(e instanceof Error ? e.message : String(e)));
        }
      },
    };
  }
}

function json(status: number, value: unknown): Reply {
  return { status, headers: { 'Content-Type': 'application/json; charset=utf-8' }, body: JSON.stringify(value) };
}

function notFoundHtml(): Reply {
  return { status: 404, headers: { 'Content-Type': 'text/html; charset=utf-8' }, body: html(404, 'Not Found', NOT_FOUND_TEXT) };
}

function errorNameOf(reply: Reply): string | undefined {
  if (!reply.headers['Content-Type']?.startsWith('application/json')) return reply.status >= 400 ? `HTTP ${reply.status}` : undefined;
  try {
    const v = JSON.parse(reply.body) as { error?: { data?: { name?: string } }; name?: string };
    if (v && typeof v === 'object' && 'error' in v && v.error) return v.error.data?.name;
    if (reply.status >= 400 && v && typeof v === 'object' && typeof v.name === 'string') return v.name;
  } catch { /* not JSON */ }
  return undefined;
}

/** `DEFAULT_MAX_CONTENT_LENGTH` (`v17:odoo/http.py:238`, odoo-api.md §A.3). */
const MAX_CONTENT_LENGTH = 128 * 1024 * 1024;

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    const b = c as Buffer;
    size += b.length;
    if (size > MAX_CONTENT_LENGTH) throw new Error('request too large'); // DEFAULT_MAX_CONTENT_LENGTH (§A.3)
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}
