/**
 * Fault injection: what the network, a front proxy (nginx, Odoo.sh, Odoo Online) or PostgreSQL
 * do to a client in real life. Rules match requests by transport, service, model and method and
 * fire a given number of times (optionally with a probability, drawn from a seeded generator so
 * runs repeat).
 *
 *   emulator.faults.next(2, 'stock.picking', 'button_validate').timeoutAfterCommit();
 *   emulator.faults.next(1, 'sale.order', 'message_post').dbErrorAfterCommit();
 *   emulator.faults.script({ model: 'sale.order' }, [{ kind: 'status', status: 502 }, 'ok', { kind: 'reset' }]);
 *   emulator.faults.random({ probability: 0.2, statuses: [502, 503, 504] });
 *   emulator.faults.latencyMs = 40;
 *   emulator.faults.outage(5_000, 'refuse');
 */

export type ProxyStatus = 429 | 500 | 502 | 503 | 504;

export type FaultAction =
  /** The front proxy answers with this status; the request never reaches Odoo. */
  | { kind: 'status'; status: ProxyStatus; retryAfterSeconds?: number }
  /** The front proxy gives up at once with this status, while Odoo still runs the call `runAfterMs` later (and commits it). */
  | { kind: 'status-then-run'; status: ProxyStatus; runAfterMs: number }
  /** The request is held and never answered (or processed and answered after `afterMs`). Nothing is applied before that. */
  | { kind: 'timeout'; afterMs?: number }
  /** The call runs and COMMITS, then the answer never comes (or comes after `afterMs`). */
  | { kind: 'timeout-after-commit'; afterMs?: number }
  /** TCP reset before Odoo runs anything. */
  | { kind: 'reset' }
  /** The call runs and commits, then the connection is reset. */
  | { kind: 'reset-after-commit' }
  /**
   * The call runs and commits, Odoo's answer starts (status, headers with its Content-Length, the
   * first half of the body), then the connection is cut: a proxy restarted, a TLS session or a
   * Wi-Fi link dropped while the answer was on its way. The client sees a body shorter than
   * announced.
   */
  | { kind: 'cut-after-commit' }
  /**
   * The call runs and COMMITS, then Odoo answers with the database error it met after the method
   * ran: the connection to PostgreSQL lost during COMMIT, or in a post-commit hook on a new one.
   * `odoo/service/model.py` `retrying` calls `env.cr.commit()` outside its retry loop, so the error
   * is re-raised as it is (`psycopg2.OperationalError` "server closed the connection
   * unexpectedly"), serialised like any exception (A.1 envelope; A.4 HTTP 500). A call whose
   * method failed answers that failure instead (it was rolled back).
   */
  | { kind: 'db-error-after-commit' }
  /** Row lock not available: 19 `odoo.exceptions.LockError` (JSON-2 409); ≤18 `psycopg2.errors.LockNotAvailable`. Nothing applied. */
  | { kind: 'lock' }
  /** Serialization failure surviving Odoo's 5 server-side retries (`psycopg2.errors.SerializationFailure`). Nothing applied. */
  | { kind: 'serialization' }
  /** Extra latency for the matching calls. */
  | { kind: 'latency'; ms: number }
  /** Pass through (a placeholder in scripts). */
  | { kind: 'none' };

export interface FaultMatch {
  transport?: 'jsonrpc' | 'json2' | 'http';
  /** JSON-RPC service: 'common' | 'object' | 'db'. */
  service?: string;
  /** RPC method of the service (`authenticate`, `execute_kw`, `version`). */
  rpcMethod?: string;
  model?: string;
  method?: string;
}

export interface FaultRule {
  match?: FaultMatch;
  /** How many matching requests this rule fires for (default 1; Infinity = always). */
  times?: number;
  /** 0..1 chance to fire on a matching request (default 1). */
  probability?: number;
  action: FaultAction;
}

export interface RequestInfo {
  transport: 'jsonrpc' | 'json2' | 'http';
  service?: string;
  rpcMethod?: string;
  model?: string;
  method?: string;
}

export interface FaultEvent {
  at: string;
  action: FaultAction['kind'];
  request: RequestInfo;
}

export type OutageMode = 'refuse' | 'reset' | '503';

interface LiveRule extends FaultRule {
  remaining: number;
  /** Rules of one script fire strictly in order. */
  scriptId?: number;
}

/** mulberry32: a small seeded PRNG so "random" faults repeat from run to run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FaultBuilder {
  private readonly faults: Faults;
  private readonly count: number;
  private readonly match: FaultMatch;

  constructor(faults: Faults, count: number, match: FaultMatch) {
    this.faults = faults;
    this.count = count;
    this.match = match;
  }

  private add(action: FaultAction): Faults {
    return this.faults.inject({ match: this.match, times: this.count, action });
  }
  status(status: ProxyStatus, retryAfterSeconds?: number): Faults { return this.add({ kind: 'status', status, ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}) }); }
  statusThenRun(status: ProxyStatus, runAfterMs: number): Faults { return this.add({ kind: 'status-then-run', status, runAfterMs }); }
  timeout(afterMs?: number): Faults { return this.add({ kind: 'timeout', ...(afterMs !== undefined ? { afterMs } : {}) }); }
  timeoutAfterCommit(afterMs?: number): Faults { return this.add({ kind: 'timeout-after-commit', ...(afterMs !== undefined ? { afterMs } : {}) }); }
  reset(): Faults { return this.add({ kind: 'reset' }); }
  resetAfterCommit(): Faults { return this.add({ kind: 'reset-after-commit' }); }
  cutAfterCommit(): Faults { return this.add({ kind: 'cut-after-commit' }); }
  dbErrorAfterCommit(): Faults { return this.add({ kind: 'db-error-after-commit' }); }
  lockError(): Faults { return this.add({ kind: 'lock' }); }
  serializationFailure(): Faults { return this.add({ kind: 'serialization' }); }
  latency(ms: number): Faults { return this.add({ kind: 'latency', ms }); }
}

export class Faults {
  /** Fixed latency added to every request, in ms. */
  latencyMs = 0;
  /**
   * Cost of a credential check that misses the server's cache, in ms (odoo-api.md §D: ≈300 ms on a
   * real 17.0 — pbkdf2 — against ≈35–40 ms for a cached call). Paid by every `authenticate`/`login`,
   * by every failed check, and by the first successful call of each (db, uid, key) or bearer key.
   */
  credentialCheckMs = 0;
  /** Every fault that fired, oldest first (bounded to the last 1000). */
  readonly log: FaultEvent[] = [];
  private rules: LiveRule[] = [];
  private rng: () => number = prng(1);
  private outageUntil = 0;
  private outageMode: OutageMode = 'refuse';
  private outageTimer: NodeJS.Timeout | undefined;
  /** Set by the emulator: stop/start accepting connections for 'refuse' outages. */
  onOutageChange: ((active: boolean, mode: OutageMode) => void) | undefined;

  /** Adds a rule; rules are tried in insertion order and the first that fires wins. */
  inject(rule: FaultRule): this {
    this.rules.push({ ...rule, remaining: rule.times ?? 1 });
    return this;
  }

  /** `faults.next(2, 'stock.picking', 'button_validate').timeoutAfterCommit()`. */
  next(count: number, model?: string, method?: string): FaultBuilder {
    return new FaultBuilder(this, count, { ...(model ? { model } : {}), ...(method ? { method } : {}) });
  }

  /** Consecutive matching requests get these actions in order ('ok' lets one through). */
  script(match: FaultMatch, actions: ReadonlyArray<FaultAction | 'ok'>): this {
    const scripted: LiveRule[] = actions.map((a) => ({ match, times: 1, remaining: 1, action: a === 'ok' ? { kind: 'none' } : a }));
    // Scripts run in order: only the first live rule of a script may fire per request (see pick()).
    this.rules.push(...scripted.map((r) => ({ ...r, scriptId: this.scriptSeq })));
    this.scriptSeq++;
    return this;
  }
  private scriptSeq = 1;

  /** Every matching request gets one of `statuses` with `probability` (seeded, repeatable). */
  random(opts: { probability: number; statuses?: ProxyStatus[]; match?: FaultMatch; seed?: number }): this {
    if (opts.seed !== undefined) this.rng = prng(opts.seed);
    const statuses = opts.statuses ?? [502, 503, 504];
    for (const status of statuses) {
      this.rules.push({ match: opts.match ?? {}, times: Infinity, remaining: Infinity, probability: opts.probability / statuses.length, action: { kind: 'status', status } });
    }
    return this;
  }

  /** Makes the server unreachable for `ms`: 'refuse' closes the listener, 'reset' drops connections, '503' answers 503. */
  outage(ms: number, mode: OutageMode = 'refuse'): this {
    this.outageUntil = Date.now() + ms;
    this.outageMode = mode;
    if (this.outageTimer) clearTimeout(this.outageTimer);
    this.onOutageChange?.(true, mode);
    this.outageTimer = setTimeout(() => this.endOutage(), ms);
    this.outageTimer.unref();
    return this;
  }

  endOutage(): this {
    if (this.outageTimer) clearTimeout(this.outageTimer);
    this.outageTimer = undefined;
    const was = this.outageUntil > 0;
    this.outageUntil = 0;
    if (was) this.onOutageChange?.(false, this.outageMode);
    return this;
  }

  /** The outage in force for a new request, if any. */
  outageNow(): OutageMode | undefined {
    return this.outageUntil > Date.now() ? this.outageMode : undefined;
  }

  /** Disarms every rule, the latency and any outage; `log` keeps what already fired. */
  clear(): this {
    this.rules = [];
    this.latencyMs = 0;
    this.credentialCheckMs = 0;
    this.endOutage();
    return this;
  }

  clearLog(): this {
    this.log.length = 0;
    return this;
  }

  /** Rules still armed (finite ones with calls left). */
  pending(): number {
    return this.rules.filter((r) => r.remaining > 0 && r.remaining !== Infinity).length;
  }

  /** Picks the action for one request and consumes it. */
  pick(req: RequestInfo): FaultAction | undefined {
    const seenScripts = new Set<number>();
    for (const r of this.rules) {
      const sid = r.scriptId;
      if (r.remaining <= 0) continue;
      if (!matches(r.match, req)) continue;
      if (sid !== undefined) {
        if (seenScripts.has(sid)) continue;
        seenScripts.add(sid);
      }
      if (r.probability !== undefined && this.rng() >= r.probability) continue;
      r.remaining -= 1;
      this.rules = this.rules.filter((x) => x.remaining > 0);
      if (r.action.kind !== 'none') {
        this.log.push({ at: new Date().toISOString(), action: r.action.kind, request: req });
        if (this.log.length > 1000) this.log.shift();
      }
      return r.action;
    }
    return undefined;
  }
}

function matches(m: FaultMatch | undefined, req: RequestInfo): boolean {
  if (!m) return true;
  if (m.transport && m.transport !== req.transport) return false;
  if (m.service && m.service !== req.service) return false;
  if (m.rpcMethod && m.rpcMethod !== req.rpcMethod) return false;
  if (m.model && m.model !== req.model) return false;
  if (m.method && m.method !== req.method) return false;
  return true;
}
