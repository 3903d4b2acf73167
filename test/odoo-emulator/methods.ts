/**
 * Public model methods with their Python signatures, so both transports bind arguments the way
 * Odoo does: JSON-RPC maps positional `args` + `kwargs` (`odoo/api.py` call_kw: for non-@api.model
 * methods `args[0]` is the id list), JSON-2 binds named parameters with `inspect.signature.bind`
 * (odoo-api.md §A.4) and answers 422 on a bad binding.
 */
import type { Env } from './orm.ts';
import type { OdooVersion } from './types.ts';

export interface ParamSpec {
  name: string;
  /** Absent = required. */
  default?: unknown;
}

export interface MethodSpec {
  api: 'model' | 'multi';
  params: readonly ParamSpec[];
  /** Accepts **kwargs. */
  varKw?: boolean;
  /** Every parameter is keyword-only (`def message_post(self, *, body='', …)`). */
  kwOnly?: boolean;
  /** Python qualname prefix used in TypeError messages (`BaseModel.search()`). */
  owner?: string;
  /** Versions the method exists in; absent = all. */
  versions?: readonly OdooVersion[];
  /** Decorated `@api.private` (refused remotely from 18 on, odoo-api.md §A.3). */
  apiPrivate?: boolean;
  /**
   * Returns one record (`run` answers its id). `call_kw` (JSON-RPC) downgrades it to the id
   * (`@api.returns(model, lambda value: value.id)`); JSON-2 calls the method directly and
   * serialises the recordset as its id list (`result.ids`, odoo-api.md A.4): `[id]`.
   */
  returnsRecord?: boolean;
  run: (env: Env, model: string, ids: number[], args: Record<string, unknown>) => unknown;
}

export type MethodTable = Map<string, MethodSpec>;

/** model → method → spec; the key '*' holds methods every model has (BaseModel). */
export class MethodRegistry {
  private readonly byModel = new Map<string, MethodTable>();

  add(model: string, name: string, spec: MethodSpec): void {
    let t = this.byModel.get(model);
    if (!t) { t = new Map(); this.byModel.set(model, t); }
    t.set(name, spec);
  }

  get(model: string, name: string, version: OdooVersion): MethodSpec | undefined {
    const own = this.byModel.get(model)?.get(name);
    const spec = own ?? this.byModel.get('*')?.get(name);
    if (!spec || (spec.versions && !spec.versions.includes(version))) return undefined;
    return spec;
  }

  /** Methods available on chatter models only. */
  addChatter(models: readonly string[], name: string, spec: MethodSpec): void {
    for (const m of models) this.add(m, name, spec);
  }
}
