/**
 * From a decoded RPC to a model method: existence, public/private, argument binding per transport
 * (`odoo/api.py` call_kw for JSON-RPC, `inspect.signature.bind` for JSON-2), one transaction per call.
 */
import { versionedMethodName } from './base-methods.ts';
import type { MethodRegistry, MethodSpec } from './methods.ts';
import { accessError, attributeError, typeError, userError, werkzeug } from './odoo-errors.ts';
import type { Env } from './orm.ts';
import { pyRepr } from './python-repr.ts';
import type { OdooVersion } from './types.ts';

export type Transport = 'jsonrpc' | 'json2';

function privateMessage(version: OdooVersion, model: string, method: string): string {
  return version >= 18 ? `Private methods (such as '${model}.${method}') cannot be called remotely.` : `Private methods (such as ${method}) cannot be called remotely.`;
}

/** Resolves a public method or throws what Odoo throws on that transport. */
export function resolveMethod(reg: MethodRegistry, env: Env, model: string, method: string, transport: Transport): MethodSpec {
  if (!env.schema.has(model)) {
    if (transport === 'json2') throw werkzeug(404, `the model ${pyRepr(model)} does not exist`);
    throw userError(`Object ${model} doesn't exist`); // odoo-api.md §D
  }
  if (method.startsWith('_')) throw accessError(privateMessage(env.version, model, method));
  const spec = reg.get(model, versionedMethodName(method, env.version), env.version);
  if (!spec) {
    const msg = env.version >= 18 ? `The method '${model}.${method}' does not exist` : `The method '${method}' does not exist on the model '${model}'`;
    if (transport === 'json2') throw werkzeug(404, msg);
    throw attributeError(msg);
  }
  if (spec.apiPrivate && env.version >= 18) throw accessError(privateMessage(env.version, model, method));
  return spec;
}

function qualname(spec: MethodSpec, method: string): string {
  return `${spec.owner ?? 'BaseModel'}.${method}()`;
}

/** JSON-RPC: `args` positional (ids first for multi methods) + `kwargs`. */
export function bindPositional(spec: MethodSpec, method: string, args: unknown[], kwargs: Record<string, unknown>): { ids: number[]; named: Record<string, unknown> } {
  let rest = args;
  let ids: number[] = [];
  if (spec.api === 'multi') {
    if (rest.length === 0) throw typeError(`${qualname(spec, method)} missing 1 required positional argument: 'self'`);
    const first = rest[0];
    ids = Array.isArray(first) ? first.filter((x): x is number => typeof x === 'number') : typeof first === 'number' ? [first] : [];
    rest = rest.slice(1);
  }
  const named: Record<string, unknown> = {};
  const params = spec.params;
  if (spec.kwOnly && rest.length > 0) {
    throw typeError(`${qualname(spec, method)} takes 1 positional argument but ${rest.length + 1} were given`);
  }
  if (rest.length > params.length) {
    throw typeError(`${qualname(spec, method)} takes from 1 to ${params.length + 1} positional arguments but ${rest.length + 1} were given`);
  }
  rest.forEach((v, i) => { named[params[i]!.name] = v; });
  for (const [k, v] of Object.entries(kwargs)) {
    if (k === 'context') continue;
    const known = params.some((p) => p.name === k);
    if (!known && !spec.varKw) throw typeError(`${qualname(spec, method)} got an unexpected keyword argument '${k}'`);
    if (known && k in named) throw typeError(`${qualname(spec, method)} got multiple values for argument '${k}'`);
    named[k] = v;
  }
  const missing = params.filter((p) => !('default' in p) && !(p.name in named)).map((p) => p.name);
  if (missing.length > 0) {
    throw typeError(`${qualname(spec, method)} missing ${missing.length} required positional argument${missing.length > 1 ? 's' : ''}: ${missing.map((m) => `'${m}'`).join(' and ')}`);
  }
  for (const p of params) if (!(p.name in named)) named[p.name] = p.default;
  return { ids, named };
}

/** JSON-2: named parameters only; `inspect.signature(func).bind(records, **kwargs)` errors → 422. */
export function bindNamed(spec: MethodSpec, model: string, method: string, body: Record<string, unknown>): { ids: number[]; named: Record<string, unknown> } {
  const ids = Array.isArray(body.ids) ? body.ids.filter((x): x is number => typeof x === 'number') : [];
  if (spec.api === 'model' && ids.length > 0) throw werkzeug(422, `cannot call ${model}.${method} with ids`);
  const named: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) {
    if (k === 'ids' || k === 'context') continue;
    const known = spec.params.some((p) => p.name === k);
    if (!known && !spec.varKw) throw werkzeug(422, `got an unexpected keyword argument '${k}'`);
    named[k] = v;
  }
  const missing = spec.params.find((p) => !('default' in p) && !(p.name in named));
  if (missing) throw werkzeug(422, `missing a required argument: '${missing.name}'`);
  for (const p of spec.params) if (!(p.name in named)) named[p.name] = p.default;
  return { ids, named };
}

/**
 * Runs one method in one transaction; JSON-RPC `create` with a dict answers an int (§A.3); a
 * method returning a record answers its id over JSON-RPC and `[id]` over JSON-2 (§A.4).
 */
export function execute(env: Env, spec: MethodSpec, model: string, method: string, ids: number[], named: Record<string, unknown>, transport: Transport): unknown {
  return env.db.transaction(() => {
    const result = spec.run(env, model, ids, named);
    if (method === 'create' && transport === 'jsonrpc') {
      const single = named.vals_list !== null && typeof named.vals_list === 'object' && !Array.isArray(named.vals_list);
      return single ? (result as number[])[0] : result;
    }
    if (spec.returnsRecord && transport === 'json2' && typeof result === 'number') return [result];
    return result;
  });
}
