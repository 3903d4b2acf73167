import diagnostics_channel from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { formatIssues, loadConfig } from '../config/load.ts';
import { displayUrl } from '../config/display-url.ts';
import { readAdminTokens } from '../config/admin-tokens.ts';
import { ErrorCodes, GatewayError, isGatewayError, type ErrorCode } from '../errors.ts';
import { EventStates } from '../store/types.ts';
import type { ConfigIssue, GatewayConfig } from '../config/types.ts';
import { isUnreadableFileIssue, validateConfig } from '../config/validate.ts';
import { args, limitArg, UsageError, type CliContext } from './main.ts';
import type { OrderDownloadSummary } from '../astm/order-download.ts';

/**
 * Commands that talk to the running gateway over its status API. The store is locked by the
 * gateway process (LevelDB's exclusive lock), so the CLI goes through the API, like any client.
 */
/**
 * The configuration `--config` names, when it names one: a file that is missing or invalid is an
 * error naming it (before, the CLI silently asked 127.0.0.1:8484, another gateway perhaps).
 */
function namedConfig(file: string | undefined): GatewayConfig | undefined {
  if (file === undefined) return undefined;
  const loaded = loadConfig(file);
  if (loaded.config) return loaded.config;
  const errors = loaded.issues.filter((i) => i.severity === 'error');
  // These commands need the `status` section only. Problems elsewhere (an Odoo key read from an
  // environment variable only the service has, a key file the operator cannot read) are the
  // running gateway's business: its own section is read and checked alone.
  // So is an admin token file the operator may not read (kept for the gateway's user and the
  // admins): `status` and `events list` do not read it, and replay or discard say so when they
  // read it (adminToken()). Before, `status --config` was "configuration invalid" for that
  // operator (test/integration/review-s22-configb-operator-token-file.test.ts).
  const tokenUnreadable = (i: ConfigIssue): boolean => i.path === 'status.adminTokenFile' && isUnreadableFileIssue(i);
  const aboutStatus = errors.some((i) => !tokenUnreadable(i) && (i.path === '' || i.path === 'status' || i.path.startsWith('status.')));
  if (!aboutStatus && loaded.file) {
    const dir = path.dirname(loaded.file);
    const doc = parseDocument(readFileSync(loaded.file, 'utf8')).toJS() as { status?: unknown } | null;
    const status = doc && typeof doc === 'object' ? doc.status : undefined;
    const own = validateConfig(status !== undefined ? { status } : {}, dir);
    if (own.config) return own.config;
    const tokenFile = status && typeof status === 'object' ? (status as { adminTokenFile?: unknown }).adminTokenFile : undefined;
    if (typeof tokenFile === 'string' && own.issues.filter((i) => i.severity === 'error').every(tokenUnreadable)) {
      const { adminTokenFile: _unread, ...rest } = status as Record<string, unknown>;
      const again = validateConfig({ status: rest }, dir);
      if (again.config) return { ...again.config, status: { ...again.config.status, adminTokenFile: path.resolve(dir, tokenFile) } };
    }
  }
  throw new GatewayError('GW_CONFIG_INVALID', `configuration ${loaded.file ?? file} is invalid:\n${formatIssues(errors)}`);
}

export function baseUrl(values: { url?: string | undefined; config?: string | undefined }): string {
  if (values.url) return values.url.replace(/\/$/, '');
  const listen = namedConfig(values.config)?.status.listen ?? loadConfig(undefined).config?.status.listen ?? { host: '127.0.0.1', port: 8484 };
  const host = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${listen.port}`;
}

/**
 * The admin token and where it was taken from (`from`, for the message of a refusal: a stale
 * token is found where the command read it).
 */
function adminToken(values: { 'token-file'?: string | undefined; config?: string | undefined }): { token: string; from: string } | undefined {
  const read = (file: string, from: string): { token: string; from: string } | undefined => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new GatewayError('GW_CONFIG_INVALID', `${from}: cannot read the admin token file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
    }
    return fromText(text, from);
  };
  const fromText = (text: string, from: string): { token: string; from: string } | undefined => {
    // One bare token, or `<name> <token>` lines (config/admin-tokens.ts): the token of a file that
    // holds one person's; a file of several people's cannot say who runs the command.
    const { tokens, problems } = readAdminTokens(text);
    if (tokens.length > 1) {
      const names = tokens.map((t) => t.name).join(', ');
      throw new GatewayError('GW_CONFIG_INVALID', `${from} holds the tokens of several people (${names}): say whose with --token-file FILE (a file holding your token, or your "<name> <token>" line) or LAB_GATEWAY_ADMIN_TOKEN`);
    }
    if (tokens.length === 0 && problems.length > 0) throw new GatewayError('GW_CONFIG_INVALID', `${from}: no admin token could be read (${problems.join('; ')})`);
    return tokens[0] ? { token: tokens[0].token, from } : undefined;
  };
  const tokenFile = values['token-file'];
  if (tokenFile) return read(tokenFile, `--token-file ${tokenFile}`);
  // Read as a file's text is: a bare token, or one's own `<name> <token>` line. Before, the line
  // was sent whole as the token, refused as "removed or rotated", and counted as a wrong token.
  // One word is the token, whatever its first character: a token starting with '#' (a password
  // generator's) is not a comment line here (test/integration/review-s22-adminb-cli-env-token.test.ts).
  const env = process.env.LAB_GATEWAY_ADMIN_TOKEN?.trim();
  if (env && !/\s/.test(env)) return { token: env, from: 'LAB_GATEWAY_ADMIN_TOKEN' };
  if (env) return fromText(env, 'LAB_GATEWAY_ADMIN_TOKEN');
  const file = (namedConfig(values.config) ?? loadConfig(undefined).config)?.status.adminTokenFile;
  return file ? read(file, `status.adminTokenFile ${file}`) : undefined;
}

/**
 * `unanswered`: for an action, what to tell when the request reached a connection to the gateway
 * but no answer came (the connection closed, the 10 s ran out): it may have been carried out.
 * Whether it was sent is what Node's fetch says on undici's `undici:client:sendHeaders` channel
 * (the request's headers written to the connection). Before, every failure but a few connect
 * errors was told "The request was sent": a connection never taken (a host switched off behind a
 * router, a firewall dropping: the 10 s ran out connecting), a token the header cannot carry, a
 * port fetch refuses (test/integration/review-s22-adminb-cli-not-sent.test.ts).
 */
export async function call(url: string, init: RequestInit = {}, unanswered?: string): Promise<unknown> {
  let res: Response;
  let sent = false;
  const { pathname, search } = new URL(url);
  const onSend = (message: unknown): void => {
    if ((message as { request?: { path?: unknown } } | undefined)?.request?.path === pathname + search) sent = true;
  };
  if (unanswered !== undefined) diagnostics_channel.subscribe('undici:client:sendHeaders', onSend);
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    // fetch says "fetch failed"; why (ECONNREFUSED: nothing listens there, ETIMEDOUT, ENOTFOUND)
    // is its cause.
    const cause = (err as { cause?: unknown }).cause;
    const why = cause instanceof Error ? `${(err as Error).message}: ${cause.message}` : (err as Error).message;
    // Before, an action the gateway received and never answered (stopped or restarted meanwhile,
    // busy past 10 s) read "cannot reach the gateway (is it running?)": IT took it as not done.
    if (unanswered !== undefined && sent) {
      throw new GatewayError('GW_UNREACHABLE', `no answer from the gateway at ${displayUrl(url)}: ${why}. The request was sent: ${unanswered}`, { cause: err });
    }
    throw new GatewayError('GW_UNREACHABLE', `cannot reach the gateway at ${displayUrl(url)}: ${why} (is it running? see --url / --config)`, { cause: err });
  } finally {
    if (unanswered !== undefined) diagnostics_channel.unsubscribe('undici:client:sendHeaders', onSend);
  }
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  if (!res.ok) throw apiError(res.status, body, text);
  return body;
}

/**
 * The error of a refused request, with the code the gateway answered: scripts branch on the code
 * (README "Error codes"), so a mistyped event id must say GW_STORE_NOT_FOUND, not "wrong state".
 * The gateway's JSON error body carries the code for store errors; for the rest the status says
 * it. A 400 means the request the command built from its arguments was refused: a usage error.
 */
function apiError(status: number, body: unknown, text: string): Error {
  const fields = typeof body === 'object' && body !== null ? (body as { error?: unknown; code?: unknown }) : {};
  const msg = `${status}: ${fields.error !== undefined ? String(fields.error) : text}`;
  if (typeof fields.code === 'string' && Object.hasOwn(ErrorCodes, fields.code)) return new GatewayError(fields.code as ErrorCode, msg);
  if (status === 400) return new UsageError(`the gateway refused the request: ${msg}`);
  if (status === 401 || status === 403 || status === 429) return new GatewayError('GW_UNAUTHORIZED', msg);
  if (status === 404) return new GatewayError('GW_STORE_NOT_FOUND', msg);
  if (status === 409) return new GatewayError('GW_STORE_STATE', msg);
  if (status >= 500) return new GatewayError('GW_STORE_UNAVAILABLE', msg);
  return new GatewayError('GW_UNREACHABLE', `the gateway's status API answered ${msg}`);
}

/** Something answered that is not this gateway's status API (a wrong port, another web server). */
function notTheApi(url: string): GatewayError {
  return new GatewayError('GW_UNREACHABLE', `${displayUrl(url)} answered, but not as a lab-gateway status API (see --url / --config)`);
}

interface ApiStatusBody {
  gatewayId: string;
  version: string;
  startedAt: string;
  health: string;
  healthReasons?: Array<{ message?: string } | string>;
  intake: Record<string, number>;
  queue: Record<string, number>;
  odoo: { state: string; lastError: string | null; lastSuccessAt: string | null };
  endpoints: Array<{ id: string; kind: string; state: string; connections: number; lastMessageAt: string | null; orderDownload?: OrderDownloadSummary }>;
  /** Deliveries held after a restart for the settle time (status-model.ts SettleHoldStatus); absent when none. */
  settleHold?: { message?: unknown };
}

/** "2 waiting since …, 1 not accepted — last refusal (ACC-1, …): …; last sent …" */
function orderDownloadLine(o: OrderDownloadSummary): string {
  const sent = o.lastSentAt ? `last sent ${o.lastSentAt}` : 'none sent since the gateway started';
  if (o.waiting === 0) return `none waiting, ${sent}`;
  const refusal = o.failing > 0 ? `, ${o.failing} not accepted — last refusal (${o.lastErrorAccession ?? '?'}, ${o.lastErrorAt ?? '?'}): ${o.lastError ?? 'no reason given'}` : '';
  return `${o.waiting} waiting since ${o.oldestWaitingSince ?? '?'}${refusal}; ${sent}`;
}

export async function runStatus(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = args(argv, { config: { type: 'string', short: 'c' }, url: { type: 'string' }, json: { type: 'boolean' } });
  const url = `${baseUrl(values)}/api/status`;
  const body = (await call(url)) as ApiStatusBody;
  if (typeof body !== 'object' || body === null || typeof body.health !== 'string' || typeof body.intake !== 'object' || typeof body.queue !== 'object' || !Array.isArray(body.endpoints)) throw notTheApi(url);
  if (values.json) {
    ctx.out(JSON.stringify(body, null, 2));
    // The exit status says what the text does: 1 while the gateway is down.
    return body.health === 'down' ? 1 : 0;
  }
  ctx.out(`${body.gatewayId} ${body.version}: ${body.health.toUpperCase()}`);
  for (const r of body.healthReasons ?? []) ctx.out(`  - ${typeof r === 'string' ? r : (r.message ?? JSON.stringify(r))}`);
  ctx.out(`intake   received ${body.intake.received}, accepted ${body.intake.accepted}, rejected ${body.intake.rejected}, duplicates ${body.intake.duplicates}`);
  ctx.out(
    `queue    pending ${body.queue.pending}, in flight ${body.queue.inFlight}, retrying ${body.queue.retrying}, dead letters ${body.queue.deadLettered}, delivered ${body.queue.delivered}, oldest pending ${body.queue.oldestPendingAgeSeconds}s`,
  );
  // Deliveries a stopped gateway (a power cut, a kill) left in flight, held after the restart for
  // the settle time before the relay looks them up in Odoo: the gateway's words, as the status page
  // shows them (dc0c165). Before, the CLI said only "retrying 3" for those three minutes, with Odoo
  // answering, and IT restarted the gateway again or had the LIS send the orders again
  // (test/integration/review-s23d-settle-hold-cli.test.ts).
  if (typeof body.settleHold?.message === 'string') ctx.out(`held     ${body.settleHold.message}`);
  ctx.out(`odoo     ${body.odoo.state}${body.odoo.lastError ? ` (last error: ${body.odoo.lastError})` : ''}`);
  for (const e of body.endpoints) {
    ctx.out(`${e.kind.padEnd(8)} ${e.id}: ${e.state}, ${e.connections} connection(s), last message ${e.lastMessageAt ?? 'never'}`);
    if (e.orderDownload) ctx.out(`         orders: ${orderDownloadLine(e.orderDownload)}`);
  }
  return body.health === 'down' ? 1 : 0;
}

interface EventRow {
  event: { id: string; type: string; correlationId: string; occurredAt: string };
  state: string;
  attempts: number;
  lastError?: string;
  deadReason?: string;
}

/** `--state` names one of the store's event states (a usage error otherwise). */
function checkState(state: string | undefined): void {
  if (state !== undefined && !(EventStates as readonly string[]).includes(state)) throw new UsageError(`--state must be one of ${EventStates.join(', ')} (got "${state}")`);
}

export async function runEvents(argv: string[], ctx: CliContext): Promise<number> {
  const [sub, ...rest] = argv;
  const common = { config: { type: 'string', short: 'c' }, url: { type: 'string' }, 'token-file': { type: 'string' } } as const;
  switch (sub) {
    case 'list': {
      const { values } = args(rest, { ...common, state: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } });
      // Checked here, before the gateway is asked: a typo is a usage error (exit 2) that names
      // the values, not a failure of the gateway that a script would retry.
      checkState(values.state);
      const limit = limitArg(values.limit, 50);
      const q = new URLSearchParams();
      if (values.state) q.set('state', values.state);
      // A page may stop at the gateway's read budget short of --limit, with `next` where it
      // stopped (status/README.md, Paging): follow it until the limit or the end of the listing.
      const body: { events: EventRow[] } = { events: [] };
      let after: string | null = null;
      do {
        if (after !== null) q.set('after', after);
        q.set('limit', String(limit - body.events.length));
        const url = `${baseUrl(values)}/api/events?${q.toString()}`;
        const page = (await call(url)) as { events: EventRow[]; next?: string | null };
        if (typeof page !== 'object' || page === null || !Array.isArray(page.events)) throw notTheApi(url);
        body.events.push(...page.events);
        after = typeof page.next === 'string' ? page.next : null;
      } while (after !== null && body.events.length < limit);
      if (values.json) {
        ctx.out(JSON.stringify(body.events, null, 2));
        return 0;
      }
      if (body.events.length === 0) ctx.out('no events');
      for (const e of body.events) {
        ctx.out(`${e.event.id}  ${e.state.padEnd(9)} ${e.event.type.padEnd(24)} ${e.event.correlationId}  attempts ${e.attempts}${e.deadReason ? `  — ${e.deadReason}` : e.lastError ? `  — ${e.lastError}` : ''}`);
      }
      return 0;
    }
    case 'replay':
    case 'discard': {
      const { values, positionals } = args(rest, { ...common, reason: { type: 'string' }, state: { type: 'string' } }, true);
      // An id holds no white space: one pasted with the space or line break around it is that id
      // (before: "404: no event 01a2… " for an event in the list).
      const id = positionals[0]?.trim();
      if (!id) throw new UsageError(`events ${sub} needs an event id`);
      // A reason of spaces only is none (the gateway trims it): said here, gateway up or down.
      if (sub === 'discard' && !values.reason?.trim()) throw new UsageError('events discard needs --reason (it goes to the audit log)');
      // --state: act only while the event is in that state (the gateway answers 409 otherwise);
      // also how a replayed event still waiting for Odoo is discarded on purpose.
      checkState(values.state);
      const admin = adminToken(values);
      if (!admin) throw new UsageError('an admin token is needed: --token-file FILE, LAB_GATEWAY_ADMIN_TOKEN, or status.adminTokenFile in the config');
      let body: { state?: string; event?: { state?: string } };
      try {
        const unanswered = `the event may have been ${sub === 'replay' ? 'replayed' : 'discarded'}. Look at it (lab-gateway events list --state ${sub === 'replay' ? 'pending' : 'discarded'}, or GET /api/events/${encodeURIComponent(id)}) before running the command again`;
        body = (await call(
          `${baseUrl(values)}/api/events/${encodeURIComponent(id)}/${sub}`,
          {
            method: 'POST',
            headers: { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ reason: values.reason ?? `${sub} from the command line`, ...(values.state !== undefined ? { expectedState: values.state } : {}) }),
          },
          unanswered,
        )) as { state?: string; event?: { state?: string } };
      } catch (err) {
        // A refused token: say which one the command sent, so that a stale copy is found.
        if (isGatewayError(err, 'GW_UNAUTHORIZED') && /^401:/.test(err.message)) throw new GatewayError('GW_UNAUTHORIZED', `${err.message} — the token was read from ${admin.from}`, { cause: err });
        throw err;
      }
      ctx.out(`${id}: ${sub === 'replay' ? 'replayed' : 'discarded'} (now ${body.state ?? body.event?.state ?? 'updated'})`);
      return 0;
    }
    default:
      throw new UsageError('events needs a subcommand: list, replay or discard');
  }
}
