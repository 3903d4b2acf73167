/**
 * The generic ORM: create/read/write/unlink/search with Odoo's value formats, x2many commands,
 * domains, ordering, `_inherits` delegation (product.product → product.template), access rights of a
 * non-admin bot, and the exact errors of odoo-api.md §A.1/§A.3 (ValueError on unknown fields,
 * MissingError on write of deleted ids, NOT NULL / FK violations as ValidationError).
 */
import type { Database } from './database.ts';
import { accessError, missingError, OdooError, validationError, valueError } from './odoo-errors.ts';
import { pyRepr } from './python-repr.ts';
import { formatDatetime, uomPrecisionName, type ResolvedModel } from './schema.ts';
import { contextLang, translateTerm } from './translations.ts';
import type { ComputeEnv, EmulatorSettings, FieldSpec, OdooVersion, Row } from './types.ts';

export type Vals = Record<string, unknown>;
export type Domain = unknown[];

export interface ModelHooks {
  /** Adjust vals before insert (sequence names, defaults taken from other records). */
  beforeCreate?: (env: Env, vals: Vals) => void;
  afterCreate?: (env: Env, id: number, vals: Vals) => void;
  beforeWrite?: (env: Env, ids: number[], vals: Vals) => void;
  afterWrite?: (env: Env, ids: number[], vals: Vals) => void;
  beforeUnlink?: (env: Env, ids: number[]) => void;
  /** Inverses of writable computed fields (`quantity` on stock.move, `qty_delivered` on sale lines…). */
  inverse?: Record<string, (env: Env, id: number, value: unknown) => void>;
  /**
   * A `create` override that may answer an existing record instead of inserting one (stock.quant
   * in inventory mode); `undefined` = the ordinary create. Runs before the access check, as the
   * override works as superuser in Odoo.
   */
  replaceCreate?: (env: Env, vals: Vals) => number | undefined;
}

export type UserRights = 'admin' | 'bot';

export class Env implements ComputeEnv {
  readonly version: OdooVersion;
  readonly db: Database;
  readonly schema: Map<string, ResolvedModel>;
  readonly uid: number;
  readonly rights: UserRights;
  context: Record<string, unknown>;
  private readonly clock: () => Date;
  readonly hooks: Map<string, ModelHooks>;
  /** The database's settings (shared with the emulator, so a change applies to the next call). */
  readonly settings: EmulatorSettings;
  /** Set while a business method runs as superuser (sudo): skips access checks. */
  su = false;

  constructor(opts: { version: OdooVersion; db: Database; schema: Map<string, ResolvedModel>; uid: number; rights: UserRights; context?: Record<string, unknown>; clock: () => Date; hooks: Map<string, ModelHooks>; settings?: EmulatorSettings }) {
    this.version = opts.version;
    this.db = opts.db;
    this.schema = opts.schema;
    this.uid = opts.uid;
    this.rights = opts.rights;
    this.context = opts.context ?? {};
    this.clock = opts.clock;
    this.hooks = opts.hooks;
    this.settings = opts.settings ?? { lockConfirmedSales: false };
  }

  now(): Date { return this.clock(); }
  nowString(): string { return formatDatetime(this.clock()); }

  withContext(extra: Record<string, unknown>): Env {
    const e = new Env({ version: this.version, db: this.db, schema: this.schema, uid: this.uid, rights: this.rights, context: { ...this.context, ...extra }, clock: this.clock, hooks: this.hooks, settings: this.settings });
    e.su = this.su;
    return e;
  }

  sudo(): Env {
    const e = this.withContext({});
    e.su = true;
    return e;
  }

  table(model: string): Map<number, Row> { return this.db.table(model); }

  rowsBy(model: string, field: string, value: unknown): Row[] {
    const t = this.db.table(model);
    const ids = this.db.lookup(model, field, value);
    if (ids) return ids.map((i) => t.get(i)!).filter(Boolean);
    return [...t.values()].filter((r) => (r[field] ?? false) === value).sort((a, b) => a.id - b.id);
  }

  model(name: string): ResolvedModel {
    const m = this.schema.get(name);
    if (!m) throw valueError(`Invalid model name '${name}'`);
    return m;
  }

  field(model: string, name: string): FieldSpec {
    const f = this.model(model).fields[name];
    if (!f) throw valueError(`Invalid field ${pyRepr(name)} on model ${pyRepr(model)}`);
    return f;
  }

  // --------------------------------------------------------------------------------- access rights

  /** ir.model.access for a bot with Inventory/Sales/Purchase user + Billing groups (odoo-api.md §D "Rights"). */
  checkAccess(model: string, op: 'read' | 'write' | 'create' | 'unlink'): void {
    if (this.su || this.rights === 'admin') return;
    const spec = this.model(model);
    const allowed = spec.botRights === 'full' || (spec.botRights === 'read' && op === 'read');
    if (allowed) return;
    const verb = { read: 'access', write: 'modify', create: 'create', unlink: 'delete' }[op];
    throw accessError(`You are not allowed to ${verb} '${spec.description}' (${model}) records.\n\nThis operation is allowed for the following groups:\n\t- Administration/Settings\n\nContact your administrator to request access if necessary.`);
  }

  // --------------------------------------------------------------------------------------- values

  /** Value of a field as stored/computed (many2one: id | false, x2many: ids). */
  value(model: string, row: Row, field: string): unknown {
    const spec = this.model(model);
    if (field === 'id') return row.id;
    if (field === 'display_name') return this.displayName(model, row);
    const f = spec.fields[field];
    if (!f) throw valueError(`Invalid field ${pyRepr(field)} on model ${pyRepr(model)}`);
    if (f.delegated && spec.inherits) {
      const parent = this.table(spec.inherits.model).get(row[spec.inherits.field] as number);
      return parent ? this.value(spec.inherits.model, parent, field) : false;
    }
    if (f.compute) return f.compute(this, row);
    if (f.type === 'one2many') {
      const inv = f.inverse!;
      const rel = this.model(f.relation!);
      const activeTest = 'active' in rel.fields && this.context.active_test !== false;
      return this.rowsBy(f.relation!, inv, row.id).filter((r) => !activeTest || r.active !== false).map((r) => r.id);
    }
    const v = row[field];
    if (v === undefined || v === null) return f.type === 'many2many' ? [] : f.type === 'boolean' ? false : (f.type === 'float' || f.type === 'monetary' || f.type === 'integer') ? 0 : false;
    if (f.translate && typeof v === 'string') {
      const lang = contextLang(this.context);
      if (lang && lang !== 'en_US') return translateTerm(v, lang);
    }
    return v;
  }

  displayName(model: string, row: Row): string {
    const spec = this.model(model);
    if (spec.displayName) return spec.displayName(this, row);
    const rec = spec.recName ?? (spec.fields.name ? 'name' : undefined);
    if (!rec) return `${model},${row.id}`;
    const v = this.value(model, row, rec);
    return typeof v === 'string' ? v : `${model},${row.id}`;
  }

  /** A field value converted for `read` (many2one → [id, display_name]). */
  readValue(model: string, row: Row, field: string, load: string | null): unknown {
    const f = this.model(model).fields[field];
    const v = this.value(model, row, field);
    if (!f) return v;
    if (f.type === 'many2one') {
      if (typeof v !== 'number') return false;
      if (load !== '_classic_read') return v;
      const target = this.table(f.relation!).get(v);
      return target ? [v, this.displayName(f.relation!, target)] : false;
    }
    if (f.type === 'one2many' || f.type === 'many2many') return Array.isArray(v) ? v : [];
    if (f.type === 'integer' || f.type === 'float' || f.type === 'monetary') return typeof v === 'number' ? v : 0;
    if (f.type === 'boolean') return v === true;
    return v === undefined || v === null || v === '' && f.type !== 'char' && f.type !== 'text' && f.type !== 'html' ? false : v;
  }

  // ---------------------------------------------------------------------------------------- search

  search(model: string, domain: Domain, opts: { offset?: number; limit?: number | null; order?: string | null } = {}): number[] {
    this.checkAccess(model, 'read');
    return this.searchInternal(model, domain, opts);
  }

  searchInternal(model: string, domain: Domain, opts: { offset?: number; limit?: number | null; order?: string | null } = {}): number[] {
    const spec = this.model(model);
    const dom = Array.isArray(domain) ? domain : [];
    const filter = compileDomain(this, model, dom);
    const activeTest = 'active' in spec.fields && this.context.active_test !== false && !domainMentions(dom, 'active');
    let rows = this.candidates(model, dom).filter((r) => (!activeTest || r.active !== false) && filter(r));
    rows = this.sortRows(model, rows, opts.order ?? spec.order ?? 'id');
    const offset = opts.offset ?? 0;
    const sliced = typeof opts.limit === 'number' ? rows.slice(offset, offset + opts.limit) : rows.slice(offset);
    return sliced.map((r) => r.id);
  }

  /**
   * Rows worth testing against a domain: when the domain is a plain conjunction with an equality
   * on a stored field (`origin`, `client_order_ref`, `default_code`, `ref`…), only the rows an index
   * gives for that value — what PostgreSQL's indexes do for Odoo.
   */
  private candidates(model: string, domain: Domain): Row[] {
    const t = this.table(model);
    if (domain.every((d) => Array.isArray(d))) {
      const spec = this.model(model);
      for (const leaf of domain as unknown[][]) {
        const [field, op, value] = leaf as [unknown, unknown, unknown];
        if (op !== '=' || typeof field !== 'string' || field.includes('.')) continue;
        if (typeof value !== 'string' && typeof value !== 'number') continue;
        const f = spec.fields[field];
        if (!f || f.compute || f.delegated || !['char', 'integer', 'selection', 'many2one'].includes(f.type)) continue;
        const ids = this.db.lookup(model, field, value, true);
        if (ids) return ids.map((i) => t.get(i)!).filter(Boolean);
      }
    }
    return [...t.values()];
  }

  private sortRows(model: string, rows: Row[], order: string): Row[] {
    const keys = order.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
      const [name = 'id', dir = 'asc'] = s.split(/\s+/);
      if (!(name in this.model(model).fields)) throw valueError(`Invalid "order" specified (${order}). A valid "order" specification is a comma-separated list of valid field names (optionally followed by asc/desc for the direction)`);
      return { name, desc: dir.toLowerCase() === 'desc' };
    });
    const spec = this.model(model);
    const keyOf = (r: Row, name: string): unknown => {
      const f = spec.fields[name];
      const v = this.value(model, r, name);
      if (f?.type === 'many2one' && typeof v === 'number') {
        const target = this.table(f.relation!).get(v);
        return target ? this.displayName(f.relation!, target) : v;
      }
      return v;
    };
    const cmp = (a: unknown, b: unknown): number => {
      const an = a === false || a === null || a === undefined;
      const bn = b === false || b === null || b === undefined;
      if (an && bn) return 0;
      if (an) return 1; // NULLS LAST for ASC (PostgreSQL default)
      if (bn) return -1;
      if (typeof a === 'number' && typeof b === 'number') return a - b;
      return String(a).localeCompare(String(b));
    };
    return rows.sort((a, b) => {
      for (const k of keys) {
        const c = cmp(keyOf(a, k.name), keyOf(b, k.name));
        if (c !== 0) return k.desc ? -c : c;
      }
      return a.id - b.id;
    });
  }

  // ------------------------------------------------------------------------------------------ read

  read(model: string, ids: number[], fields: string[] | null | undefined, load: string | null = '_classic_read'): Record<string, unknown>[] {
    this.checkAccess(model, 'read');
    const spec = this.model(model);
    const names = fields && fields.length > 0 ? fields : Object.keys(spec.fields).filter((n) => n !== '__last_update');
    for (const n of names) if (!(n in spec.fields)) throw valueError(`Invalid field ${pyRepr(n)} on model ${pyRepr(model)}`);
    const out: Record<string, unknown>[] = [];
    const seen = new Set<number>();
    for (const id of ids) {
      if (seen.has(id)) continue;
      seen.add(id);
      const row = this.table(model).get(id);
      if (!row) continue; // odoo-api.md §D: read of a nonexistent id → [] (no MissingError)
      const rec: Record<string, unknown> = { id };
      for (const n of names) if (n !== 'id') rec[n] = this.readValue(model, row, n, load);
      out.push(rec);
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------- create

  create(model: string, vals: Vals): number {
    const replaced = this.hooks.get(model)?.replaceCreate?.(this, vals);
    if (replaced !== undefined) return replaced;
    this.checkAccess(model, 'create');
    return this.createInternal(model, vals);
  }

  createInternal(model: string, valsIn: Vals): number {
    const spec = this.model(model);
    const vals: Vals = { ...valsIn };
    for (const k of Object.keys(vals)) {
      if (!(k in spec.fields)) throw valueError(`Invalid field ${pyRepr(k)} on model ${pyRepr(model)}`);
    }
    // Defaults from context (`default_<field>`), then field defaults.
    for (const [k, v] of Object.entries(this.context)) {
      if (k.startsWith('default_')) {
        const fname = k.slice(8);
        if (fname in spec.fields && !(fname in vals)) vals[fname] = v;
      }
    }
    if (spec.inherits) return this.createDelegating(model, spec, vals);
    this.hooks.get(model)?.beforeCreate?.(this, vals);
    const id = this.db.nextId(model);
    const row: Row = { id };
    const later: Array<[string, unknown]> = [];
    const inverses: Array<[string, unknown]> = [];
    for (const [name, f] of Object.entries(spec.fields)) {
      if (name === 'id' || name === 'display_name' || f.compute && !(name in vals)) continue;
      if (f.compute) { inverses.push([name, vals[name]]); continue; }
      if (f.type === 'one2many') { if (name in vals) later.push([name, vals[name]]); continue; }
      if (name in vals) {
        if (f.type === 'many2many') { later.push([name, vals[name]]); row[name] = []; continue; }
        row[name] = this.convertScalar(model, name, f, vals[name]);
      } else if (f.default !== undefined) {
        row[name] = typeof f.default === 'function' ? (f.default as (e: ComputeEnv, v: Vals) => unknown)(this, vals) : structuredClone(f.default);
      }
    }
    row.create_date = row.write_date = this.nowString();
    row.create_uid = row.write_uid = this.uid;
    this.checkRequired(model, spec, row);
    this.db.insert(model, row);
    for (const [name, cmds] of later) this.applyX2many(model, id, name, cmds);
    const hooks = this.hooks.get(model);
    for (const [name, v] of inverses) hooks?.inverse?.[name]?.(this, id, v);
    hooks?.afterCreate?.(this, id, vals);
    return id;
  }

  private createDelegating(model: string, spec: ResolvedModel, vals: Vals): number {
    const { model: parentModel, field: link } = spec.inherits!;
    const own: Vals = {};
    const parentVals: Vals = {};
    for (const [k, v] of Object.entries(vals)) (spec.fields[k]?.delegated ? parentVals : own)[k] = v;
    if (typeof own[link] !== 'number') {
      // `create_product_product: False` keeps product.template from creating its own variant.
      own[link] = this.withContext({ create_product_product: false }).createInternal(parentModel, parentVals);
    } else if (Object.keys(parentVals).length > 0) {
      this.writeInternal(parentModel, [own[link] as number], parentVals);
    }
    const ownSpec = { ...spec, inherits: undefined, fields: Object.fromEntries(Object.entries(spec.fields).filter(([, f]) => !f.delegated)) };
    return this.createPlain(model, ownSpec, own);
  }

  private createPlain(model: string, spec: ResolvedModel, vals: Vals): number {
    const id = this.db.nextId(model);
    const row: Row = { id };
    for (const [name, f] of Object.entries(spec.fields)) {
      if (name === 'id' || name === 'display_name' || f.compute || f.type === 'one2many') continue;
      if (name in vals) row[name] = this.convertScalar(model, name, f, vals[name]);
      else if (f.default !== undefined) row[name] = typeof f.default === 'function' ? (f.default as (e: ComputeEnv, v: Vals) => unknown)(this, vals) : structuredClone(f.default);
    }
    row.create_date = row.write_date = this.nowString();
    row.create_uid = row.write_uid = this.uid;
    this.checkRequired(model, spec, row);
    this.db.insert(model, row);
    this.hooks.get(model)?.afterCreate?.(this, id, vals);
    return id;
  }

  private checkRequired(model: string, spec: ResolvedModel, row: Row): void {
    for (const [name, f] of Object.entries(spec.fields)) {
      if (!f.required || f.compute || f.delegated || f.type === 'one2many' || f.type === 'many2many') continue;
      const v = row[name];
      if (v === undefined || v === null || v === false || v === '') {
        // `v17:odoo/service/model.py` _as_validation_error (NotNullViolation)
        throw validationError(`The operation cannot be completed:\n- Create/update: a mandatory field is not set.\n- Delete: another model requires the record being deleted. If possible, archive it instead.\n\nModel: ${spec.description} (${model})\nField: ${f.string} (${name})\n`);
      }
    }
  }

  /**
   * A Float with `digits` rounded as `float_round(value, precision_digits)` does (half-up, a
   * relative epsilon for binary noise): the digits of the decimal.precision record of that name
   * (2 when there is none, Odoo's default).
   */
  roundDigits(precision: string, v: number): number {
    const name = precision === 'Product Unit of Measure' ? uomPrecisionName(this.version) : precision;
    let digits = 2;
    for (const r of this.table('decimal.precision').values()) if (r.name === name) digits = Number(r.digits);
    const scale = 10 ** digits;
    const n = Math.abs(v) * scale;
    return (Math.sign(v) * Math.round(n + n * 2 ** -50)) / scale || 0;
  }

  /** Coerce a scalar value the way the ORM's convert_to_cache does, with Odoo's errors. */
  convertScalar(model: string, name: string, f: FieldSpec, v: unknown): unknown {
    if (v === null || v === undefined) return false;
    switch (f.type) {
      case 'many2one': {
        let idv = v;
        if (Array.isArray(v)) idv = v[0];
        if (idv === false || idv === 0) return false;
        if (typeof idv !== 'number' || !Number.isInteger(idv)) throw valueError(`Wrong value for ${model}.${name}: ${pyRepr(v)}`);
        if (!this.table(f.relation!).has(idv)) {
          // PostgreSQL ForeignKeyViolation, converted by `_as_validation_error`.
          throw validationError(`The operation cannot be completed: another model requires the record being deleted. If possible, archive it instead.\n\nModel: ${this.model(model).description} (${model})\nConstraint: ${model.replace(/\./g, '_')}_${name}_fkey\n`);
        }
        return idv;
      }
      case 'selection':
        if (v === false) return false;
        if (!f.selection!.some(([k]) => k === v)) throw valueError(`Wrong value for ${model}.${name}: ${pyRepr(v)}`);
        return v;
      case 'integer':
        if (v === false) return 0;
        if (typeof v !== 'number') throw valueError(`invalid literal for int() with base 10: ${pyRepr(v)}`);
        return Math.trunc(v);
      case 'float': case 'monetary':
        if (v === false) return 0;
        if (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v))) return Number(v);
        if (typeof v !== 'number') throw valueError(`could not convert string to float: ${pyRepr(v)}`);
        return f.digits ? this.roundDigits(f.digits, v) : v;
      case 'boolean':
        return Boolean(v);
      case 'date':
        if (v === false) return false;
        if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}/.test(v)) throw valueError(`time data ${pyRepr(v)} does not match format '%Y-%m-%d'`);
        return v.slice(0, 10);
      case 'datetime': {
        if (v === false) return false;
        // `fields.Datetime.to_datetime`: strptime(value[:19], '%Y-%m-%d %H:%M:%S'), or a bare date.
        if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(v)) return `${v} 00:00:00`;
        const head = typeof v === 'string' ? v.slice(0, 19) : v;
        if (typeof head !== 'string' || !/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/.test(head)) throw valueError(`time data ${pyRepr(head)} does not match format '%Y-%m-%d %H:%M:%S'`);
        return head;
      }
      case 'char': case 'text': case 'html':
        if (v === false) return false;
        return typeof v === 'string' ? v : String(v);
      case 'many2many': case 'one2many':
        return v;
      default:
        return f.type satisfies never;
    }
  }

  /** x2many command lists (`Command` tuples: 0 create, 1 update, 2 delete, 3 unlink, 4 link, 5 clear, 6 set). */
  applyX2many(model: string, id: number, name: string, commands: unknown): void {
    const f = this.model(model).fields[name]!;
    const rel = f.relation!;
    const isO2m = f.type === 'one2many';
    const inv = f.inverse;
    let cmds: unknown[] = Array.isArray(commands) ? commands : [];
    if (cmds.length > 0 && cmds.every((c) => typeof c === 'number')) cmds = [[6, 0, cmds]];
    const row = () => this.table(model).get(id)!;
    const current = (): number[] => (isO2m ? (this.value(model, row(), name) as number[]) : [...((row()[name] as number[]) ?? [])]);
    const setM2m = (ids: number[]) => this.db.update(model, id, { [name]: [...new Set(ids)] });
    for (const c of cmds) {
      if (!Array.isArray(c)) throw valueError(`Wrong value for ${model}.${name}: ${pyRepr(commands)}`);
      const [op, cid, cvals] = c as [number, number, unknown];
      switch (op) {
        case 0: {
          const subVals = { ...(cvals as Vals) };
          if (isO2m) subVals[inv!] = id;
          const nid = this.createInternal(rel, subVals);
          if (!isO2m) setM2m([...current(), nid]);
          break;
        }
        case 1:
          this.writeInternal(rel, [cid], cvals as Vals);
          break;
        case 2:
          this.unlinkInternal(rel, [cid]);
          if (!isO2m) setM2m(current().filter((x) => x !== cid));
          break;
        case 3:
          if (isO2m) this.unlinkInternal(rel, [cid]);
          else setM2m(current().filter((x) => x !== cid));
          break;
        case 4:
          if (isO2m) this.writeInternal(rel, [cid], { [inv!]: id });
          else { this.assertExists(rel, [cid]); setM2m([...current(), cid]); }
          break;
        case 5:
          if (isO2m) this.unlinkInternal(rel, current());
          else setM2m([]);
          break;
        case 6: {
          const ids = (c[2] as number[]) ?? [];
          if (isO2m) {
            const keep = new Set(ids);
            this.unlinkInternal(rel, current().filter((x) => !keep.has(x)));
            for (const x of ids) this.writeInternal(rel, [x], { [inv!]: id });
          } else { this.assertExists(rel, ids); setM2m(ids); }
          break;
        }
        default:
          throw valueError(`Wrong value for ${model}.${name}: ${pyRepr(commands)}`);
      }
    }
  }

  assertExists(model: string, ids: number[]): void {
    const missing = ids.filter((i) => !this.table(model).has(i));
    if (missing.length > 0) {
      throw missingError(`Record does not exist or has been deleted.\n(Record: ${model}(${missing.join(', ')},), User: ${this.uid})`);
    }
  }

  // ----------------------------------------------------------------------------------------- write

  write(model: string, ids: number[], vals: Vals): true {
    this.checkAccess(model, 'write');
    this.writeInternal(model, ids, vals);
    return true;
  }

  writeInternal(model: string, ids: number[], valsIn: Vals): void {
    const spec = this.model(model);
    const vals: Vals = { ...valsIn };
    for (const k of Object.keys(vals)) {
      if (!(k in spec.fields)) throw valueError(`Invalid field ${pyRepr(k)} on model ${pyRepr(model)}`);
    }
    this.assertExists(model, ids);
    const hooks = this.hooks.get(model);
    hooks?.beforeWrite?.(this, ids, vals);
    if (spec.inherits) {
      const parentVals: Vals = {};
      for (const [k, v] of Object.entries(vals)) if (spec.fields[k]?.delegated) { parentVals[k] = v; delete vals[k]; }
      if (Object.keys(parentVals).length > 0) {
        const parents = ids.map((i) => this.table(model).get(i)![spec.inherits!.field] as number);
        this.writeInternal(spec.inherits.model, [...new Set(parents)], parentVals);
      }
    }
    const scalar: Vals = {};
    const x2m: Array<[string, unknown]> = [];
    const inverses: Array<[string, unknown]> = [];
    for (const [name, v] of Object.entries(vals)) {
      const f = spec.fields[name]!;
      if (name === 'id' || name === 'display_name') continue;
      if (f.compute) { inverses.push([name, v]); continue; }
      if (f.type === 'one2many' || f.type === 'many2many') { x2m.push([name, v]); continue; }
      scalar[name] = this.convertScalar(model, name, f, v);
    }
    for (const id of ids) {
      if (Object.keys(scalar).length > 0) {
        this.db.update(model, id, { ...scalar, write_date: this.nowString(), write_uid: this.uid });
        this.checkRequired(model, { ...spec, fields: Object.fromEntries(Object.entries(spec.fields).filter(([n]) => n in scalar)) }, this.table(model).get(id)!);
      }
      for (const [name, cmds] of x2m) this.applyX2many(model, id, name, cmds);
      for (const [name, v] of inverses) hooks?.inverse?.[name]?.(this, id, v);
    }
    hooks?.afterWrite?.(this, ids, vals);
  }

  // ---------------------------------------------------------------------------------------- unlink

  unlink(model: string, ids: number[]): true {
    this.checkAccess(model, 'unlink');
    this.unlinkInternal(model, ids);
    return true;
  }

  unlinkInternal(model: string, idsIn: number[]): void {
    const ids = idsIn.filter((i) => this.table(model).has(i)); // unlink of missing ids is a no-op (§A.1)
    if (ids.length === 0) return;
    this.hooks.get(model)?.beforeUnlink?.(this, ids);
    const spec = this.model(model);
    // Cascade one2many children whose inverse is required (order lines, move lines…).
    for (const f of Object.values(spec.fields)) {
      if (f.type !== 'one2many' || f.compute) continue;
      const inv = this.model(f.relation!).fields[f.inverse!];
      if (!inv) continue;
      const children = ids.flatMap((id) => this.rowsBy(f.relation!, f.inverse!, id).map((r) => r.id));
      if (inv.required) this.unlinkInternal(f.relation!, children);
      else for (const c of children) this.db.update(f.relation!, c, { [f.inverse!]: false });
    }
    for (const id of ids) this.db.delete(model, id);
    // Drop external ids of deleted records (ir.model.data is cleaned by unlink in Odoo too).
    for (const id of ids) {
      for (const x of this.rowsBy('ir.model.data', 'res_id', id)) if (x.model === model) this.db.delete('ir.model.data', x.id);
    }
  }

  // -------------------------------------------------------------------------------------- helpers

  browse(model: string, id: number): Row {
    const r = this.table(model).get(id);
    if (!r) throw missingError(`Record does not exist or has been deleted.\n(Record: ${model}(${id},), User: ${this.uid})`);
    return r;
  }

  /** Expected singleton check (`ensure_one`). */
  ensureOne(model: string, ids: number[]): number {
    if (ids.length !== 1) throw valueError(`Expected singleton: ${model}(${ids.join(', ')}${ids.length === 1 ? ',' : ''})`);
    this.assertExists(model, ids);
    return ids[0]!;
  }

  /** `ir.sequence` numbering of documents. */
  sequence(code: string, prefix: string, padding: number): string {
    return `${prefix}${String(this.db.nextSequence(code)).padStart(padding, '0')}`;
  }
}

export function isOdooError(e: unknown): e is OdooError {
  return e instanceof OdooError;
}

// ------------------------------------------------------------------------------------------ domains

function domainMentions(domain: Domain, field: string): boolean {
  return domain.some((t) => Array.isArray(t) && typeof t[0] === 'string' && (t[0] === field || t[0].startsWith(`${field}.`)));
}

function leafRepr(leaf: unknown[]): string {
  return pyRepr(leaf, true);
}

type Pred = (r: Row) => boolean;

/** Compiles a prefix-notation domain (`&`, `|`, `!`, implicit `&`) into a predicate. */
export function compileDomain(env: Env, model: string, domain: Domain): Pred {
  const stack: Pred[] = [];
  for (let i = domain.length - 1; i >= 0; i--) {
    const t = domain[i];
    if (t === '&' || t === '|') {
      const a = stack.pop();
      const b = stack.pop();
      if (!a || !b) throw valueError(`Invalid domain ${pyRepr(domain)}`);
      stack.push(t === '&' ? (r) => a(r) && b(r) : (r) => a(r) || b(r));
    } else if (t === '!') {
      const a = stack.pop();
      if (!a) throw valueError(`Invalid domain ${pyRepr(domain)}`);
      stack.push((r) => !a(r));
    } else if (Array.isArray(t) && t.length === 3) {
      stack.push(compileLeaf(env, model, t));
    } else {
      throw valueError(`Invalid leaf ${pyRepr(t)}`);
    }
  }
  let pred: Pred = () => true;
  while (stack.length > 0) {
    const p = stack.pop()!;
    const prev = pred;
    pred = (r) => prev(r) && p(r);
  }
  return pred;
}

const OPERATORS = new Set(['=', '!=', '<>', '<', '>', '<=', '>=', '=?', 'in', 'not in', 'like', 'not like', 'ilike', 'not ilike', '=like', '=ilike', 'child_of', 'parent_of', 'any', 'not any']);

function compileLeaf(env: Env, model: string, leaf: unknown[]): Pred {
  const [left, opRaw, right] = leaf as [unknown, unknown, unknown];
  if ((left === 1 || left === 0) && opRaw === '=' && right === 1) return () => left === 1;
  if (typeof left !== 'string' || typeof opRaw !== 'string') throw valueError(`Invalid leaf ${leafRepr(leaf)}`);
  const op = opRaw.toLowerCase() === '<>' ? '!=' : opRaw.toLowerCase();
  if (!OPERATORS.has(op)) throw valueError(`Invalid operator ${pyRepr(opRaw)} in domain term ${leafRepr(leaf)}`);
  const [head, ...rest] = left.split('.');
  const spec = env.model(model);
  const f = spec.fields[head!];
  if (!f) {
    // 16-18: `Invalid field %s.%s in leaf %s`; 19: `... in condition ...` (odoo-api.md §A.4 500 example)
    throw valueError(env.version >= 19 ? `Invalid field ${model}.${head} in condition ${leafRepr(leaf)}` : `Invalid field ${model}.${head} in leaf ${leafRepr(leaf)}`);
  }
  if (op === '=?' ) {
    if (right === false || right === null || right === undefined) return () => true;
    return compileLeaf(env, model, [left, '=', right]);
  }
  if (rest.length > 0 || op === 'any' || op === 'not any') {
    if (!f.relation) throw valueError(`Invalid field ${model}.${left} in leaf ${leafRepr(leaf)}`);
    const sub = op === 'any' || op === 'not any'
      ? compileDomain(env, f.relation, (right as Domain) ?? [])
      : compileLeaf(env, f.relation, [rest.join('.'), opRaw, right]);
    const negate = op === 'not any';
    return (r) => {
      const v = env.value(model, r, head!);
      const ids = Array.isArray(v) ? (v as number[]) : typeof v === 'number' ? [v] : [];
      const hit = ids.some((x) => { const t = env.table(f.relation!).get(x); return t ? sub(t) : false; });
      return negate ? !hit : hit;
    };
  }
  if (head === 'display_name') return stringPred(op, right, (r) => env.displayName(model, r));
  if (f.type === 'many2one' || f.type === 'one2many' || f.type === 'many2many') return relationalPred(env, model, head!, f, op, right, leaf);
  const get = (r: Row) => env.value(model, r, head!);
  if (op.includes('like')) return stringPred(op, right, (r) => { const v = get(r); return typeof v === 'string' ? v : false; });
  return scalarPred(op, right, get, f.type === 'boolean');
}

function isNull(v: unknown): boolean {
  return v === false || v === null || v === undefined || v === '';
}

/**
 * Unset (SQL NULL) for `=`, `!=`, `in`, `not in`: only False/None mean IS NULL in the ORM; `= ''`
 * compares with the empty string and never matches an unset value, and `!= ''` matches unset
 * values (the ORM adds `OR col IS NULL` to a negative comparison with a value).
 */
function isUnset(v: unknown): boolean {
  return v === false || v === null || v === undefined;
}

function likeRegex(pattern: string, insensitive: boolean, exact: boolean): RegExp {
  let src = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '\\' && i + 1 < pattern.length) { src += pattern[++i]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); continue; }
    if (ch === '%') src += '.*';
    else if (ch === '_') src += '.';
    else src += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(exact ? `^${src}$` : src, insensitive ? 'is' : 's');
}

function stringPred(op: string, right: unknown, get: (r: Row) => unknown): Pred {
  const negative = op.startsWith('not ') || op === '!=' || op === 'not in';
  if (op === '=' || op === '!=') {
    return (r) => { const v = get(r); const eq = isUnset(right) ? isUnset(v) : v === right; return op === '=' ? eq : !eq; };
  }
  if (op === 'in' || op === 'not in') {
    const list = Array.isArray(right) ? right : [right];
    return (r) => { const v = get(r); const hit = list.some((x) => (isUnset(x) ? isUnset(v) : x === v)); return op === 'in' ? hit : !hit; };
  }
  if (isNull(right) && (op === 'ilike' || op === 'like')) return () => true;
  const pattern = String(right ?? '');
  const exact = op.startsWith('=');
  const re = likeRegex(exact ? pattern : `%${pattern}%`, op.includes('ilike'), true);
  return (r) => {
    const v = get(r);
    if (isNull(v)) return negative; // `not ilike` matches NULL in Odoo 17+
    const hit = re.test(String(v));
    return negative ? !hit : hit;
  };
}

function scalarPred(op: string, right: unknown, get: (r: Row) => unknown, isBool: boolean): Pred {
  const norm = (v: unknown) => (isBool ? v === true : v);
  switch (op) {
    case '=': return (r) => (isBool ? norm(get(r)) === (right === true) : isUnset(right) ? isUnset(get(r)) : get(r) === right);
    case '!=': return (r) => (isBool ? norm(get(r)) !== (right === true) : isUnset(right) ? !isUnset(get(r)) : get(r) !== right);
    case 'in': case 'not in': {
      const list = Array.isArray(right) ? right : [right];
      return (r) => {
        const v = get(r);
        const hit = list.some((x) => (isBool ? norm(v) === (x === true) : isUnset(x) ? isUnset(v) : x === v));
        return op === 'in' ? hit : !hit;
      };
    }
    case '<': case '>': case '<=': case '>=':
      return (r) => {
        const v = get(r);
        if (isNull(v) && !(typeof v === 'number')) return false;
        const a = v as number | string;
        const b = right as number | string;
        return op === '<' ? a < b : op === '>' ? a > b : op === '<=' ? a <= b : a >= b;
      };
    default:
      return () => false;
  }
}

function relationalPred(env: Env, model: string, name: string, f: FieldSpec, op: string, right: unknown, leaf: unknown[]): Pred {
  const rel = f.relation!;
  const idsOf = (r: Row): number[] => { const v = env.value(model, r, name); return Array.isArray(v) ? (v as number[]) : typeof v === 'number' ? [v] : []; };
  if (op === 'child_of' || op === 'parent_of') {
    const roots = (Array.isArray(right) ? right : [right]).filter((x): x is number => typeof x === 'number');
    const parentField = rel === 'stock.location' ? 'location_id' : 'parent_id';
    const closure = new Set<number>(roots);
    if (op === 'child_of') {
      let grew = true;
      while (grew) { grew = false; for (const t of env.table(rel).values()) if (!closure.has(t.id) && closure.has(t[parentField] as number)) { closure.add(t.id); grew = true; } }
    } else {
      for (const rid of roots) { let cur = env.table(rel).get(rid); while (cur && typeof cur[parentField] === 'number') { closure.add(cur[parentField] as number); cur = env.table(rel).get(cur[parentField] as number); } }
    }
    return (r) => idsOf(r).some((x) => closure.has(x));
  }
  const stringy = typeof right === 'string' || (Array.isArray(right) && right.some((x) => typeof x === 'string'));
  if (stringy || op.includes('like')) {
    // name_search semantics: compare against the related records' display names.
    const match = stringPred(op.startsWith('not') || op === '!=' ? op.replace('not ', '').replace('!=', '=') : op, right, (t) => env.displayName(rel, t));
    const negative = op.startsWith('not') || op === '!=';
    return (r) => { const hit = idsOf(r).some((x) => { const t = env.table(rel).get(x); return t ? match(t) : false; }); return negative ? !hit : hit; };
  }
  switch (op) {
    case '=': return (r) => (isNull(right) ? idsOf(r).length === 0 : idsOf(r).includes(right as number));
    case '!=': return (r) => (isNull(right) ? idsOf(r).length > 0 : !idsOf(r).includes(right as number));
    case 'in': case 'not in': {
      const list = Array.isArray(right) ? right : [right];
      const wantsNull = list.some(isNull);
      const set = new Set(list.filter((x): x is number => typeof x === 'number'));
      return (r) => {
        const ids = idsOf(r);
        const hit = ids.some((x) => set.has(x)) || (wantsNull && ids.length === 0);
        return op === 'in' ? hit : !hit;
      };
    }
    case '<': case '>': case '<=': case '>=':
      return scalarPred(op, right, (r) => idsOf(r)[0] ?? false, false);
    default:
      throw valueError(`Invalid leaf ${leafRepr(leaf)}`);
  }
}
