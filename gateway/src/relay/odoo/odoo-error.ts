import { GatewayError, type ErrorCode } from '../../errors.ts';

/**
 * One error shape for both transports (odoo-api.md A.6 step 3). JSON-RPC reports failures as
 * HTTP 200 envelopes whose `error.data.name` is the Python exception; JSON-2 (Odoo 19) uses real
 * HTTP statuses with the same `name`/`message` body. Retry decisions branch on the class, never on
 * the message text.
 *
 * - transient: nothing landed and a retry can fix it (network, 429/502/503/504, 409 LockError,
 *   serialization failures).
 * - ambiguous: the request left the gateway and the answer was lost (timeout or reset after the body
 *   was sent): the write may have committed, so look it up before resending.
 * - permanent: Odoo refused the request on its merits (AccessError, ValidationError, UserError,
 *   ValueError on a field, a missing mapping): dead-letter with the reason.
 * - auth: the credentials were refused (authenticate → false, AccessDenied, 401, expired key, login
 *   cooldown): the link stops and backs off for minutes, events are not charged an attempt.
 */
export const OdooFailureClasses = ['transient', 'ambiguous', 'permanent', 'auth'] as const;
export type OdooFailureClass = (typeof OdooFailureClasses)[number];

const CODE_OF: Record<OdooFailureClass, ErrorCode> = {
  transient: 'GW_ODOO_TRANSIENT',
  ambiguous: 'GW_ODOO_AMBIGUOUS',
  permanent: 'GW_ODOO_PERMANENT',
  auth: 'GW_ODOO_AUTH',
};

export interface OdooErrorDetails {
  failure: OdooFailureClass;
  /** Python exception name (`odoo.exceptions.UserError`) or a network code (`ECONNRESET`). */
  odooName?: string;
  /** Odoo's message, without traceback. */
  odooMessage?: string;
  httpStatus?: number;
  model?: string;
  method?: string;
  /** True when the failure concerns the whole link (Odoo unreachable), not this event. */
  linkDown?: boolean;
  /** A write the link failed on may still have reached Odoo and land (a proxy's 504). */
  mayHaveLanded?: boolean;
  /**
   * The event needs an earlier event that is still in the gateway's queue (an invoice whose
   * order's events have not all reached Odoo yet): retried without being charged an attempt.
   */
  waitsForQueued?: boolean;
  /**
   * With `waitsForQueued`: when the earlier event waited for is next tried (its partition head's
   * `dueAt`, on the store's due clock); absent when that is now (due, or being delivered). The
   * waiting event is due again no earlier (relay.ts #failureOutcome).
   */
  queuedDueAt?: number;
  /**
   * How long the server asked the gateway to stay away (ms), from a `Retry-After` header on a
   * 429/502/503/504 (RFC 9110 §10.2.3): the relay sends nothing to Odoo before it has passed.
   */
  retryAfterMs?: number;
  /** The call was never sent: the link had already failed (call-limit.ts, notSent). */
  notSent?: boolean;
  /** Odoo answers as another major version than at connect (serverChanged). */
  serverChanged?: boolean;
  /**
   * A web proxy between the gateway and Odoo refused the request as too large (its own HTTP 413,
   * not Odoo's error): Odoo never received it, so nothing of it was applied (refusedAsTooLarge).
   */
  tooLarge?: boolean;
  /** The size of the request's body (bytes), for `tooLarge`. */
  requestBytes?: number;
  /** The message says what a person must do: the dead letter's reason is the message as written (needsOperator). */
  needsOperator?: boolean;
}

export function odooError(failure: OdooFailureClass, message: string, details: Omit<OdooErrorDetails, 'failure'> = {}, cause?: unknown): GatewayError {
  return new GatewayError(CODE_OF[failure], message, { ...(cause === undefined ? {} : { cause }), details: { failure, ...details } });
}

/** A missing mapping is permanent: replay after the operator fixes master data in Odoo. */
export function mappingMissing(message: string, details: Record<string, unknown> = {}): GatewayError {
  return new GatewayError('GW_MAPPING_MISSING', message, { details: { failure: 'permanent', ...details } });
}

/**
 * Odoo holds a state the gateway must not change by itself (a posted invoice bills a cancelled
 * test): permanent, and the dead letter's reason is the message as written, telling the operator
 * what to do in Odoo.
 */
export function needsOperator(message: string, details: Record<string, unknown> = {}): GatewayError {
  return new GatewayError('GW_ODOO_PERMANENT', message, { details: { failure: 'permanent', needsOperator: true, ...details } });
}

export function failureOf(err: unknown): OdooFailureClass {
  if (err instanceof GatewayError) {
    const f = err.details?.['failure'];
    if (typeof f === 'string' && (OdooFailureClasses as readonly string[]).includes(f)) return f as OdooFailureClass;
    switch (err.code) {
      case 'GW_ODOO_AUTH':
        return 'auth';
      case 'GW_ODOO_AMBIGUOUS':
        return 'ambiguous';
      case 'GW_ODOO_TRANSIENT':
      case 'GW_SHUTTING_DOWN':
        return 'transient';
      default:
        return 'permanent';
    }
  }
  // An unexpected exception inside a posting rule is a bug or bad data, not a network failure;
  // it is retried (so a fix + restart delivers) and dead-lettered after maxAttempts.
  return 'transient';
}

export function isLinkDown(err: unknown): boolean {
  return err instanceof GatewayError && err.details?.['linkDown'] === true;
}

/**
 * A failure of the whole link or of the credentials (not of this event): once one is seen, nothing
 * more of the round goes to Odoo (call-limit.ts) and the rules' loops leave their remaining items
 * for later (notSent).
 */
export function stopsTheLink(err: unknown): boolean {
  return isLinkDown(err) || failureOf(err) === 'auth';
}

/**
 * The link failure `err` as the failure of a call that was never sent because of it: the same
 * code, message and class, so the event is released (not charged, not dead-lettered) as `err`'s
 * would be, but never "may have landed" (only the request that met a proxy's 504 may have).
 * Anything else is returned as it is.
 */
export function notSent(err: unknown, where: { model?: string; method?: string } = {}): unknown {
  if (!(err instanceof GatewayError)) return err;
  const { mayHaveLanded: _landed, model: _model, method: _method, ...details } = err.details ?? {};
  return new GatewayError(err.code, err.message, { cause: err, details: { ...details, ...where, notSent: true } });
}

/** See OdooErrorDetails.mayHaveLanded. */
export function mayHaveLanded(err: unknown): boolean {
  return err instanceof GatewayError && err.details?.['mayHaveLanded'] === true;
}

/** See OdooErrorDetails.waitsForQueued. */
export function waitsForQueued(err: unknown): boolean {
  return err instanceof GatewayError && err.details?.['waitsForQueued'] === true;
}

/** See OdooErrorDetails.queuedDueAt. */
export function queuedDueAt(err: unknown): number | undefined {
  const at = err instanceof GatewayError ? err.details?.['queuedDueAt'] : undefined;
  return typeof at === 'number' && Number.isFinite(at) ? at : undefined;
}

/**
 * A web proxy refused the call as too large before Odoo saw it (OdooErrorDetails.tooLarge): the
 * call is known not applied, so the relay may send its events again in smaller calls.
 */
export function refusedAsTooLarge(err: unknown): boolean {
  return err instanceof GatewayError && err.details?.['tooLarge'] === true;
}

/** See OdooErrorDetails.retryAfterMs. */
export function retryAfterOf(err: unknown): number | undefined {
  const v = err instanceof GatewayError ? err.details?.['retryAfterMs'] : undefined;
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined;
}

/** The longest Retry-After honoured: a proxy's typo (`Retry-After: 86400000`) must not stop the lab for weeks. */
export const RETRY_AFTER_CAP_MS = 3_600_000;

/**
 * A `Retry-After` value in ms from `now`: delta-seconds (`30`) or an HTTP-date
 * (`Wed, 21 Oct 2026 07:28:00 GMT`), capped at RETRY_AFTER_CAP_MS; a date in the past is 0.
 * Anything else (absent, negative, a fraction, garbage) is undefined.
 */
export function parseRetryAfter(value: string | readonly string[] | undefined, now = Date.now()): number | undefined {
  const text = (typeof value === 'string' ? value : value?.[0])?.trim();
  if (!text) return undefined;
  let ms: number;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    // An HTTP-date names its weekday or month; Date.parse alone reads "30.5" as a date.
    const at = /[A-Za-z]/.test(text) ? Date.parse(text) : Number.NaN;
    if (!Number.isFinite(at)) return undefined;
    ms = at - now;
  }
  return Math.min(RETRY_AFTER_CAP_MS, Math.max(0, ms));
}

/**
 * PostgreSQL's texts for a serialization failure (40001), a deadlock (40P01) and a lock not
 * available (55P03), and Odoo's "concurrent update": a retry a moment later can succeed. Odoo
 * reports them as exceptions (after its own 5 tries), and `Model.load()` as row messages.
 */
export const CONCURRENCY_FAILURE = /could not serialize access|deadlock detected|could not obtain lock|concurrent update/i;

/** Exception names whose retry can succeed (server-side retries were exhausted). */
const TRANSIENT_NAMES = [
  'odoo.exceptions.LockError',
  'odoo.exceptions.ConcurrencyError',
  'psycopg2.errors.SerializationFailure',
  'psycopg2.extensions.TransactionRollbackError',
  'psycopg2.errors.DeadlockDetected',
  'psycopg2.errors.LockNotAvailable',
  'psycopg2.OperationalError',
  'odoo.service.model.SerializationFailure',
];

/**
 * The PostgreSQL under Odoo is down or restarting (a minor update, a failover, Odoo.sh
 * maintenance): `psycopg2.OperationalError` for a database Odoo cannot reach (or an unknown one,
 * odoo-api.md D); on a pooled connection the restart cut, `psycopg2.errors.AdminShutdown` (57P01,
 * "terminating connection due to administrator command") and its siblings of SQLSTATE class 57P
 * and 08, or `psycopg2.InterfaceError` ("connection already closed") when the dead connection is
 * used again. Odoo's `retrying` re-raises them (only serialization failures are retried, A.3).
 * The event was never judged: the whole link is down, as for an unreachable Odoo. Before, the
 * ones other than OperationalError were permanent and every event of the restart was dead-lettered.
 */
const DATABASE_DOWN = /^psycopg2\.(OperationalError|InterfaceError|errors\.(AdminShutdown|CrashShutdown|CannotConnectNow|DatabaseDropped|ConnectionException|ConnectionDoesNotExist|ConnectionFailure|SqlclientUnableToEstablishSqlconnection|SqlserverRejectedEstablishmentOfSqlconnection))$/;

/** See DATABASE_DOWN. */
export function isDatabaseDown(name: string): boolean {
  return DATABASE_DOWN.test(name);
}

/**
 * Whether Odoo's database error `name`, answered to a write, may come after the write committed.
 * Odoo runs a call in `retrying` (`odoo/service/model.py`, 16–19): the method and its flush inside
 * a loop that rolls back and retries serialization failures, deadlocks and unavailable locks up to
 * 5 times, then `env.cr.commit()` (and the post-commit hooks) OUTSIDE it, whose errors are re-raised
 * as they are. So:
 * - a concurrency failure (`SerializationFailure`, `DeadlockDetected`, `LockNotAvailable`,
 *   19's `LockError` / `ConcurrencyError`) was rolled back, in the loop or by PostgreSQL refusing
 *   the COMMIT: known not applied, retried as a transient failure of the event;
 * - the connection to PostgreSQL lost or closed (`isDatabaseDown`: `OperationalError` "server
 *   closed the connection unexpectedly", `InterfaceError`, `AdminShutdown`…) may have met the
 *   COMMIT, or a post-commit hook on a connection of its own after it: the write may be in Odoo.
 *   Such an answer to a write "may have landed" (`mayHaveLanded`, the relay holds the event
 *   ambiguous, uncharged, and the rule looks it up before sending again), as a proxy's 504 does.
 *   The same name before the method ran (the database down at the start of the call) cannot be
 *   told apart; taking it as landed costs that event the settle time, never a duplicate.
 * Before, every database error was "the link is down, nothing happened": the event was released
 * unchanged, a rule that looks a document up by its external id only for an event attempted or
 * ambiguous did not, and a new RFQ committed before the error was loaded again onto the order the
 * buyer had confirmed meanwhile (test/integration/relay-commit-error-audit.test.ts).
 */
export function databaseErrorMayHaveLanded(name: string): boolean {
  return isDatabaseDown(name);
}

/**
 * What Odoo raises for a call the server no longer understands: a field or a load column it does
 * not have (`KeyError`, `ValueError` "Invalid field"), a method or signature it does not have
 * (`AttributeError`, `TypeError`; JSON-2's 404 and 422). After an upgrade (18 → 19: `product_uom`
 * became `product_uom_id`) every call written for the old server fails so.
 */
const DRIFT_NAMES = new Set(['builtins.KeyError', 'builtins.ValueError', 'builtins.AttributeError', 'builtins.TypeError', 'werkzeug.exceptions.NotFound', 'werkzeug.exceptions.UnprocessableEntity']);

/**
 * A permanent refusal that a changed server would give (DRIFT_NAMES). The relay then reads the
 * server's version afresh before dead-lettering anything: an Odoo upgraded while the gateway had
 * nothing to send (no outage seen, so no new connection) refused every order of the morning as
 * "KeyError: 'product_uom'" (test/integration/relay-upgrade-unseen-audit.test.ts).
 */
export function looksLikeServerDrift(err: unknown): boolean {
  if (!(err instanceof GatewayError) || failureOf(err) !== 'permanent') return false;
  const name = err.details?.['odooName'];
  return typeof name === 'string' && DRIFT_NAMES.has(name);
}

/**
 * The server answers as another major version than the one the gateway connected to: the call
 * that met it is released for a new connection (version, protocol, fields), looked up first
 * (ambiguous: an earlier step of its workflow may have been written), not charged.
 */
export function serverChanged(before: number, now: number, original: unknown): GatewayError {
  const text = `Odoo now answers as version ${now} (the gateway connected to ${before}) and refused a call written for ${before}: reconnecting to read its protocol and fields again`;
  return odooError('transient', text, { linkDown: true, serverChanged: true }, original);
}

/** See serverChanged. */
export function isServerChanged(err: unknown): boolean {
  return err instanceof GatewayError && err.details?.['serverChanged'] === true;
}

const AUTH_NAMES = ['odoo.exceptions.AccessDenied', 'werkzeug.exceptions.Unauthorized', 'odoo.http.SessionExpiredException'];

/**
 * Classify an Odoo exception by its Python name (never by `error.code`, which is 200 in 16–18 and
 * 0 in 19: odoo-api.md A.1) and, for JSON-2, the HTTP status (A.4 table).
 */
export function classifyOdooException(name: string, httpStatus?: number, message = ''): OdooFailureClass {
  if (AUTH_NAMES.includes(name)) return 'auth';
  if (httpStatus === 401) return 'auth';
  if (isDatabaseDown(name) || TRANSIENT_NAMES.includes(name) || /SerializationFailure|TransactionRollback|Deadlock|LockNotAvailable/.test(name)) return 'transient';
  if (CONCURRENCY_FAILURE.test(message)) return 'transient';
  if (httpStatus === 409 || httpStatus === 429 || httpStatus === 502 || httpStatus === 503 || httpStatus === 504) return 'transient';
  // AccessError, ValidationError, UserError, MissingError, ValueError, TypeError, AttributeError,
  // KeyError, RedirectWarning and anything else Odoo raised on the request's merits.
  return 'permanent';
}

/** The Odoo message without the traceback and without database host/port details (D: psycopg2). */
export function cleanOdooMessage(name: string, message: string): string {
  if (name.startsWith('psycopg2')) return 'database error on the Odoo server';
  const first = message.split('\n').filter((l) => l.trim() !== '').slice(0, 3).join(' ').trim();
  return first.length > 300 ? `${first.slice(0, 297)}...` : first;
}
