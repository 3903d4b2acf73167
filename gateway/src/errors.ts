/**
 * One error base class for the whole gateway. Every error carries a stable string `code`
 * (listed in README "Error codes") and an optional `cause`. Retry decisions branch on the code,
 * never on the message text.
 */
export const ErrorCodes = {
  GW_CONFIG_INVALID: 'configuration failed validation',
  GW_STORE_UNAVAILABLE: 'the store cannot commit (closed, failed or disk full)',
  GW_STORE_FULL: 'the data directory has no room left',
  GW_STORE_NOT_FOUND: 'no such record in the store',
  GW_STORE_STATE: 'the record is not in a state that allows this action',
  GW_STORE_CORRUPT: 'a stored record is damaged or missing',
  GW_HL7_PARSE: 'an HL7 message could not be parsed',
  GW_HL7_UNSUPPORTED: 'an HL7 message type the gateway does not handle',
  GW_HL7_TOO_LARGE: 'an inbound frame exceeded the configured maximum size',
  GW_ASTM_PARSE: 'an ASTM record could not be parsed',
  GW_ASTM_LINK: 'an ASTM link-layer failure (timeout, too many NAKs, interrupt)',
  GW_PROFILE_INVALID: 'a firmware profile failed validation',
  GW_PROFILE_UNKNOWN: 'a firmware profile name that does not exist',
  GW_ODOO_AUTH: 'Odoo refused the credentials or the key expired',
  GW_ODOO_TRANSIENT: 'Odoo or the network failed in a way that a retry can fix',
  GW_ODOO_AMBIGUOUS: 'the request may have been applied; look it up before retrying',
  GW_ODOO_PERMANENT: 'Odoo rejected the request; retrying will not help',
  GW_MAPPING_MISSING: 'an event refers to a code with no Odoo counterpart',
  GW_SHUTTING_DOWN: 'the gateway is stopping and takes no new work',
  GW_UNAUTHORIZED: 'an admin action without a valid token',
  GW_UNREACHABLE: 'the command line cannot reach the running gateway (its status API)',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.details = options?.details;
  }
}

export function isGatewayError(err: unknown, code?: ErrorCode): err is GatewayError {
  return err instanceof GatewayError && (code === undefined || err.code === code);
}

/** A readable one-line description of any thrown value. */
export function describeError(err: unknown): string {
  if (err instanceof GatewayError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ? `${(err as NodeJS.ErrnoException).code}: ${err.message}` : err.message;
  return String(err);
}
