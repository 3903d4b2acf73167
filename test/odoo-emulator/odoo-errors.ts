/**
 * Server-side exceptions as Odoo serialises them (`odoo/http.py` serialize_exception): a fully
 * qualified Python class name, a message, the exception's `args`, and the HTTP status JSON-2 maps
 * it to (`v19:odoo/exceptions.py` http_status; odoo-api.md §A.4 status table).
 */
export class OdooError extends Error {
  /** `f"{type.__module__}.{type.__name__}"`, e.g. `odoo.exceptions.UserError`. */
  readonly pythonName: string;
  /** `exception.args` as serialised in `data.arguments`. */
  readonly args: unknown[];
  /** Status JSON-2 answers with (JSON-RPC always answers 200). */
  readonly httpStatus: number;
  /** Extra response headers (JSON-2 401 carries `WWW-Authenticate: bearer`). */
  readonly headers: Record<string, string>;

  constructor(pythonName: string, message: string, httpStatus: number, args?: unknown[], headers?: Record<string, string>) {
    super(message);
    this.name = 'OdooError';
    this.pythonName = pythonName;
    this.args = args ?? [message];
    this.httpStatus = httpStatus;
    this.headers = headers ?? {};
  }
}

const E = {
  accessDenied: 'odoo.exceptions.AccessDenied',
  accessError: 'odoo.exceptions.AccessError',
  userError: 'odoo.exceptions.UserError',
  validationError: 'odoo.exceptions.ValidationError',
  missingError: 'odoo.exceptions.MissingError',
  lockError: 'odoo.exceptions.LockError',
  valueError: 'builtins.ValueError',
  typeError: 'builtins.TypeError',
  keyError: 'builtins.KeyError',
  attributeError: 'builtins.AttributeError',
} as const;

export const accessDenied = (message = 'Access Denied'): OdooError => new OdooError(E.accessDenied, message, 403);
export const accessError = (message: string): OdooError => new OdooError(E.accessError, message, 403);
export const userError = (message: string): OdooError => new OdooError(E.userError, message, 422);
export const validationError = (message: string): OdooError => new OdooError(E.validationError, message, 422);
export const missingError = (message: string): OdooError => new OdooError(E.missingError, message, 404);
export const lockError = (message: string): OdooError => new OdooError(E.lockError, message, 409);
export const valueError = (message: string): OdooError => new OdooError(E.valueError, message, 500);
export const typeError = (message: string): OdooError => new OdooError(E.typeError, message, 500);
/** Python's `str(KeyError('x'))` is the repr of the key. */
export const keyError = (key: string): OdooError => new OdooError(E.keyError, `'${key}'`, 500, [key]);
export const attributeError = (message: string): OdooError => new OdooError(E.attributeError, message, 500);
export const pgError = (pythonName: string, message: string): OdooError => new OdooError(pythonName, message, 500);

/** werkzeug.exceptions.* raised inside the JSON-2 dispatcher (JSON body, `arguments: [msg, status]`). */
export function werkzeug(status: 400 | 401 | 404 | 405 | 422, message: string): OdooError {
  const names = {
    400: 'werkzeug.exceptions.BadRequest',
    401: 'werkzeug.exceptions.Unauthorized',
    404: 'werkzeug.exceptions.NotFound',
    405: 'werkzeug.exceptions.MethodNotAllowed',
    422: 'werkzeug.exceptions.UnprocessableEntity',
  } as const;
  const headers: Record<string, string> = status === 401 ? { 'WWW-Authenticate': 'bearer' } : {};
  return new OdooError(names[status], message, status, [message, status], headers);
}

/** Odoo's `debug` member: a Python traceback. The emulator writes a plausible one. */
export function fakeTraceback(err: OdooError): string {
  return `Traceback (most recent call last):\n  File "/opt/odoo/odoo/service/model.py", line 156, in retrying\n    result = func()\n  File "/opt/odoo/odoo/api.py", line 468, in call_kw\n    result = _call_kw_multi(method, model, args, kwargs)\n${err.pythonName}: ${err.message}\n`;
}

/**
 * serialize_exception (`v17:odoo/http.py:398`): the five keys JSON-RPC and JSON-2 both use, in the
 * order each version writes them (16–18: name, debug, message, arguments, context; 19: debug last).
 */
export function serializeError(err: OdooError, version = 19): { name: string; message: string; arguments: unknown[]; context: Record<string, unknown>; debug: string } {
  const debug = fakeTraceback(err);
  if (version <= 18) return { name: err.pythonName, debug, message: err.message, arguments: err.args, context: {} };
  return { name: err.pythonName, message: err.message, arguments: err.args, context: {}, debug };
}
