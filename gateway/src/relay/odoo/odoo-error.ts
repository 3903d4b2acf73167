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

/** See OdooErrorDetails.mayHaveLanded. */
export function mayHaveLanded(err: unknown): boolean {
  return err instanceof GatewayError && err.details?.['mayHaveLanded'] === true;
}

/** See OdooErrorDetails.waitsForQueued. */
export function waitsForQueued(err: unknown): boolean {
  return err instanceof GatewayError && err.details?.['waitsForQueued'] === true;
}

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

const AUTH_NAMES = ['odoo.exceptions.AccessDenied', 'werkzeug.exceptions.Unauthorized', 'odoo.http.SessionExpiredException'];

/**
 * Classify an Odoo exception by its Python name (never by `error.code`, which is 200 in 16–18 and
 * 0 in 19: odoo-api.md A.1) and, for JSON-2, the HTTP status (A.4 table).
 */
export function classifyOdooException(name: string, httpStatus?: number, message = ''): OdooFailureClass {
  if (AUTH_NAMES.includes(name)) return 'auth';
  if (httpStatus === 401) return 'auth';
  if (TRANSIENT_NAMES.includes(name) || /SerializationFailure|TransactionRollback|Deadlock|LockNotAvailable/.test(name)) return 'transient';
  if (/could not serialize access|deadlock detected|could not obtain lock/i.test(message)) return 'transient';
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
