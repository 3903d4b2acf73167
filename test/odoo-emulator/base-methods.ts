/**
 * BaseModel methods every model has (create, read, write, unlink, search*, fields_get, name_search,
 * load, default_get, exists, name_get ≤16) — odoo-api.md §A.3/§A.4 parameter names.
 */
import type { MethodRegistry } from './methods.ts';
import { attributeError, keyError, OdooError } from './odoo-errors.ts';
import type { Domain, Env, Vals } from './orm.ts';
import type { FieldSpec } from './types.ts';

const asDomain = (v: unknown): Domain => (Array.isArray(v) ? v : []);
/** Python truthiness: `limit=0` means no limit. */
const asLimit = (v: unknown): number | null => (typeof v === 'number' && v > 0 ? v : null);

export function registerBaseMethods(reg: MethodRegistry): void {
  reg.add('*', 'create', {
    api: 'model', owner: 'BaseModel', params: [{ name: 'vals_list' }],
    run: (env, model, _ids, a) => {
      const list = Array.isArray(a.vals_list) ? a.vals_list : [a.vals_list];
      for (const v of list) if (v === null || typeof v !== 'object' || Array.isArray(v)) throw attributeError(`'${Array.isArray(v) ? 'list' : typeof v === 'string' ? 'str' : 'int'}' object has no attribute 'items'`);
      return list.map((v) => env.create(model, v as Vals));
    },
  });
  reg.add('*', 'read', {
    api: 'multi', owner: 'BaseModel', params: [{ name: 'fields', default: null }, { name: 'load', default: '_classic_read' }],
    run: (env, model, ids, a) => env.read(model, ids, a.fields as string[] | null, a.load as string | null),
  });
  reg.add('*', 'write', {
    api: 'multi', owner: 'BaseModel', params: [{ name: 'vals' }],
    run: (env, model, ids, a) => env.write(model, ids, (a.vals ?? {}) as Vals),
  });
  reg.add('*', 'unlink', { api: 'multi', owner: 'BaseModel', params: [], run: (env, model, ids) => env.unlink(model, ids) });
  reg.add('*', 'exists', {
    api: 'multi', owner: 'BaseModel', params: [],
    run: (env, model, ids) => ids.filter((i) => env.table(model).has(i)),
  });
  reg.add('*', 'search', {
    api: 'model', owner: 'BaseModel', params: [{ name: 'domain' }, { name: 'offset', default: 0 }, { name: 'limit', default: null }, { name: 'order', default: null }],
    versions: [17, 18, 19],
    run: (env, model, _ids, a) => env.search(model, asDomain(a.domain), { offset: (a.offset as number) ?? 0, limit: asLimit(a.limit), order: a.order as string | null }),
  });
  reg.add('*', 'search_16', {
    api: 'model', owner: 'BaseModel', params: [{ name: 'args' }, { name: 'offset', default: 0 }, { name: 'limit', default: null }, { name: 'order', default: null }, { name: 'count', default: false }],
    run: (env, model, _ids, a) => {
      const ids = env.search(model, asDomain(a.args), { offset: (a.offset as number) ?? 0, limit: asLimit(a.limit), order: a.order as string | null });
      return a.count ? ids.length : ids;
    },
  });
  reg.add('*', 'search_read', {
    api: 'model', owner: 'BaseModel', varKw: true,
    params: [{ name: 'domain', default: null }, { name: 'fields', default: null }, { name: 'offset', default: 0 }, { name: 'limit', default: null }, { name: 'order', default: null }],
    run: (env, model, _ids, a) => {
      const ids = env.search(model, asDomain(a.domain), { offset: (a.offset as number) ?? 0, limit: asLimit(a.limit), order: a.order as string | null });
      return env.read(model, ids, a.fields as string[] | null, (a.load as string | undefined) ?? '_classic_read');
    },
  });
  reg.add('*', 'search_count', {
    api: 'model', owner: 'BaseModel', params: [{ name: 'domain' }, { name: 'limit', default: null }],
    run: (env, model, _ids, a) => env.search(model, asDomain(a.domain), { limit: asLimit(a.limit) }).length,
  });
  reg.add('*', 'fields_get', {
    api: 'model', owner: 'BaseModel', params: [{ name: 'allfields', default: null }, { name: 'attributes', default: null }],
    run: (env, model, _ids, a) => fieldsGet(env, model, a.allfields as string[] | null, a.attributes as string[] | null),
  });
  reg.add('*', 'name_search', {
    api: 'model', owner: 'BaseModel', versions: [16, 17],
    params: [{ name: 'name', default: '' }, { name: 'args', default: null }, { name: 'operator', default: 'ilike' }, { name: 'limit', default: 100 }],
    run: (env, model, _ids, a) => nameSearch(env, model, String(a.name ?? ''), asDomain(a.args), String(a.operator ?? 'ilike'), asLimit(a.limit)),
  });
  reg.add('*', 'name_search_18', {
    api: 'model', owner: 'BaseModel',
    params: [{ name: 'name', default: '' }, { name: 'domain', default: null }, { name: 'operator', default: 'ilike' }, { name: 'limit', default: 100 }],
    run: (env, model, _ids, a) => nameSearch(env, model, String(a.name ?? ''), asDomain(a.domain), String(a.operator ?? 'ilike'), asLimit(a.limit)),
  });
  reg.add('*', 'name_get', {
    api: 'multi', owner: 'BaseModel', params: [], versions: [16],
    run: (env, model, ids) => { env.checkAccess(model, 'read'); return ids.filter((i) => env.table(model).has(i)).map((i) => [i, env.displayName(model, env.table(model).get(i)!)]); },
  });
  reg.add('*', 'default_get', {
    api: 'model', owner: 'BaseModel', params: [{ name: 'fields_list' }],
    run: (env, model, _ids, a) => defaultGet(env, model, (a.fields_list as string[]) ?? []),
  });
  reg.add('*', 'load', {
    api: 'model', owner: 'BaseModel', params: [{ name: 'fields' }, { name: 'data' }],
    run: (env, model, _ids, a) => load(env, model, (a.fields as string[]) ?? [], (a.data as unknown[][]) ?? []),
  });
}

/** Resolves version-suffixed registrations (`search_16`, `name_search_18`) to their public names. */
export function versionedMethodName(name: string, version: number): string {
  if (name === 'search' && version === 16) return 'search_16';
  if (name === 'name_search' && version >= 18) return 'name_search_18';
  if (name === 'search_16' || name === 'name_search_18') return '\u0000'; // not callable by these names
  return name;
}

export function fieldsGet(env: Env, model: string, allfields: string[] | null, attributes: string[] | null): Record<string, Record<string, unknown>> {
  env.checkAccess(model, 'read');
  const spec = env.model(model);
  const out: Record<string, Record<string, unknown>> = {};
  for (const [name, f] of Object.entries(spec.fields)) {
    if (allfields && allfields.length > 0 && !allfields.includes(name)) continue;
    const d: Record<string, unknown> = {
      type: f.type, string: f.string, required: !!f.required, readonly: !!f.readonly || (!!f.compute && !['quantity', 'quantity_done', 'qty_delivered', 'default_code', 'barcode'].includes(name)),
      store: !f.compute, searchable: true, sortable: !f.compute, name,
    };
    if (f.relation) d.relation = f.relation;
    if (f.inverse) d.relation_field = f.inverse;
    if (f.selection) d.selection = f.selection.map(([k, v]) => [k, v]);
    out[name] = attributes && attributes.length > 0 ? Object.fromEntries(Object.entries(d).filter(([k]) => attributes.includes(k))) : d;
  }
  return out;
}

export function nameSearch(env: Env, model: string, name: string, domain: Domain, operator: string, limit: number | null): Array<[number, string]> {
  const spec = env.model(model);
  const extra: Domain = [];
  if (name) {
    if (model === 'product.product' || model === 'product.template') {
      const codeOp = operator === '=' || operator === 'ilike' ? operator : operator;
      extra.push('|', ['default_code', codeOp, name], ['name', operator, name]);
    } else if (model === 'res.partner') {
      extra.push('|', '|', ['complete_name', operator, name], ['ref', operator, name], ['email', operator, name]);
    } else {
      extra.push([spec.recName ?? (spec.fields.name ? 'name' : 'display_name'), operator, name]);
    }
  }
  const ids = env.search(model, [...extra, ...domain], { limit: limit ?? null });
  return ids.map((i) => [i, env.displayName(model, env.table(model).get(i)!)]);
}

function defaultGet(env: Env, model: string, fields: string[]): Record<string, unknown> {
  const spec = env.model(model);
  const out: Record<string, unknown> = {};
  for (const n of fields) {
    const f = spec.fields[n];
    if (!f) continue;
    const ctxDefault = env.context[`default_${n}`];
    if (ctxDefault !== undefined) out[n] = ctxDefault;
    else if (f.default !== undefined && !f.compute) out[n] = typeof f.default === 'function' ? (f.default as (e: Env, v: Vals) => unknown)(env, {}) : f.default;
  }
  return out;
}

// -------------------------------------------------------------------------------------------- load

export interface LoadMessage {
  type: 'error' | 'warning';
  message: string;
  record: number;
  rows: { from: number; to: number };
  field?: string;
}

interface Column {
  index: number;
  path: string[];
}

function isEmptyCell(v: unknown): boolean {
  return v === undefined || v === null || v === '';
}

/**
 * `Model.load(fields, data)` (`v17:odoo/models.py` load): CSV-like import. An `id` column names the
 * external id: an existing one updates its record, a new one creates record + ir.model.data in the
 * same transaction. Conversion and business errors come back in `messages` with `ids: false` and
 * everything rolled back; an unknown column is a KeyError (odoo-api.md §D).
 */
export function load(env: Env, model: string, fields: string[], data: unknown[][]): { ids: number[] | false; messages: LoadMessage[] } {
  env.checkAccess(model, 'create');
  const spec = env.model(model);
  const columns: Column[] = fields.map((f, index) => ({ index, path: f.split('/') }));
  for (const c of columns) {
    const head = c.path[0]!;
    if (head === 'id' || head === '.id') continue;
    const f = spec.fields[head];
    if (!f) throw keyError(head);
    if (f.type === 'one2many' && c.path.length > 1) {
      const sub = c.path[1]!;
      if (sub !== 'id' && sub !== '.id' && !(sub in env.model(f.relation!).fields)) throw keyError(sub);
    }
  }
  const isO2mColumn = (c: Column) => { const f = spec.fields[c.path[0]!]; return f?.type === 'one2many' && c.path.length > 1; };
  // Group rows: a row with any value outside one2many columns starts a record.
  const groups: Array<{ from: number; to: number }> = [];
  data.forEach((row, i) => {
    const starts = columns.some((c) => !isO2mColumn(c) && !isEmptyCell(row[c.index]));
    if (starts || groups.length === 0) groups.push({ from: i, to: i });
    else groups[groups.length - 1]!.to = i;
  });

  const messages: LoadMessage[] = [];
  const ids: number[] = [];
  const savepoint = env.db.savepoint();
  groups.forEach((g, recordIndex) => {
    const first = data[g.from] ?? [];
    const vals: Vals = {};
    let xmlid: string | undefined;
    let dbId: number | undefined;
    const err = (message: string, field?: string) => messages.push({ type: 'error', message, record: recordIndex, rows: g, ...(field ? { field } : {}) });
    const before = messages.length;
    for (const c of columns) {
      if (isO2mColumn(c)) continue;
      const cell = first[c.index];
      const head = c.path[0]!;
      if (head === 'id') { if (!isEmptyCell(cell)) xmlid = String(cell); continue; }
      if (head === '.id') { if (!isEmptyCell(cell)) dbId = Number(cell); continue; }
      const f = spec.fields[head]!;
      try {
        vals[head] = convertCell(env, f, c.path[1], cell);
      } catch (e) {
        if (e instanceof CellError) err(e.message.replace('%(field)s', f.string), head);
        else throw e;
      }
    }
    // one2many sub-records, one per row of the group.
    const o2mFields = [...new Set(columns.filter(isO2mColumn).map((c) => c.path[0]!))];
    for (const name of o2mFields) {
      const f = spec.fields[name]!;
      const relSpec = env.model(f.relation!);
      const cmds: unknown[] = [];
      for (let r = g.from; r <= g.to; r++) {
        const row = data[r] ?? [];
        const cols = columns.filter((c) => isO2mColumn(c) && c.path[0] === name);
        if (cols.every((c) => isEmptyCell(row[c.index]))) continue;
        const sub: Vals = {};
        for (const c of cols) {
          const sname = c.path[1]!;
          if (sname === 'id' || sname === '.id') continue;
          const sf = relSpec.fields[sname]!;
          try {
            sub[sname] = convertCell(env, sf, c.path[2], row[c.index]);
          } catch (e) {
            if (e instanceof CellError) err(e.message.replace('%(field)s', sf.string), name);
            else throw e;
          }
        }
        cmds.push([0, 0, sub]); // re-loading adds the lines again (odoo-api.md §D)
      }
      vals[name] = cmds;
    }
    if (messages.length > before) return;
    const sp = env.db.savepoint();
    try {
      const id = upsertRecord(env, model, vals, xmlid, dbId);
      ids.push(id);
    } catch (e) {
      env.db.rollbackTo(sp);
      if (e instanceof OdooError) err(e.message);
      else throw e;
    }
  });
  if (messages.some((m) => m.type === 'error')) {
    env.db.rollbackTo(savepoint);
    return { ids: false, messages };
  }
  return { ids, messages };
}

class CellError extends Error {}

function splitXmlid(xmlid: string): { module: string; name: string } {
  const dot = xmlid.indexOf('.');
  return dot > 0 ? { module: xmlid.slice(0, dot), name: xmlid.slice(dot + 1) } : { module: '__import__', name: xmlid };
}

export function lookupXmlid(env: Env, xmlid: string): { model: string; res_id: number; rowId: number } | undefined {
  const { module, name } = splitXmlid(xmlid);
  const x = env.rowsBy('ir.model.data', 'name', name).find((r) => r.module === module);
  return x ? { model: x.model as string, res_id: x.res_id as number, rowId: x.id } : undefined;
}

function upsertRecord(env: Env, model: string, vals: Vals, xmlid: string | undefined, dbId: number | undefined): number {
  if (dbId !== undefined) {
    env.write(model, [dbId], vals);
    return dbId;
  }
  if (xmlid) {
    const found = lookupXmlid(env, xmlid);
    if (found && found.model === model && env.table(model).has(found.res_id)) {
      env.write(model, [found.res_id], vals);
      return found.res_id;
    }
    const id = env.create(model, vals);
    // ir.model.data written with sudo() in one transaction with the record (`v17:models.py:4996`).
    const { module, name } = splitXmlid(xmlid);
    if (found) env.db.update('ir.model.data', found.rowId, { model, res_id: id });
    else env.sudo().createInternal('ir.model.data', { module, name, model, res_id: id, noupdate: false });
    return id;
  }
  return env.create(model, vals);
}

/** `ir.fields.converter`: cells are CSV-like strings; JSON numbers work; JSON booleans crash (§D). */
function convertCell(env: Env, f: FieldSpec, sub: string | undefined, cell: unknown): unknown {
  if (typeof cell === 'boolean') {
    if (f.type === 'boolean') throw attributeError("'bool' object has no attribute 'lower'");
    throw new CellError(`'${String(cell)}' is not a valid value for field '%(field)s'`);
  }
  if (isEmptyCell(cell)) return f.type === 'one2many' || f.type === 'many2many' ? [] : false;
  const s = typeof cell === 'number' ? String(cell) : String(cell);
  switch (f.type) {
    case 'char': case 'text': case 'html': return s;
    case 'integer': {
      if (!/^-?\d+$/.test(s.trim())) throw new CellError(`'${s}' does not seem to be an integer for field '%(field)s'`);
      return Number(s);
    }
    case 'float': case 'monetary': {
      if (s.trim() === '' || Number.isNaN(Number(s))) throw new CellError(`'${s}' does not seem to be a number for field '%(field)s'`);
      return Number(s);
    }
    case 'boolean': {
      const l = s.toLowerCase();
      if (['1', 'true', 'yes'].includes(l)) return true;
      if (['0', 'false', 'no'].includes(l)) return false;
      return true;
    }
    case 'selection': {
      const hit = f.selection!.find(([k, label]) => k === s || label.toLowerCase() === s.toLowerCase());
      if (!hit) throw new CellError(`Value '${s}' not found in selection field '%(field)s'`);
      return hit[0];
    }
    case 'date': case 'datetime': {
      if (!/^\d{4}-\d{2}-\d{2}/.test(s)) throw new CellError(`'${s}' does not seem to be a valid ${f.type} for field '%(field)s'`);
      return f.type === 'date' ? s.slice(0, 10) : s.length === 10 ? `${s} 00:00:00` : s;
    }
    case 'many2one': return resolveReference(env, f.relation!, sub, s);
    case 'many2many': return [[6, 0, s.split(',').map((p) => resolveReference(env, f.relation!, sub, p.trim()))]];
    case 'one2many': throw new CellError(`one2many field '%(field)s' needs sub-columns`);
    default: return f.type satisfies never;
  }
}

function resolveReference(env: Env, relation: string, sub: string | undefined, s: string): number {
  if (sub === '.id') {
    const id = Number(s);
    if (!Number.isInteger(id) || !env.table(relation).has(id)) throw new CellError(`No matching record found for database id '${s}' in field '%(field)s'`);
    return id;
  }
  if (sub === 'id') {
    const found = lookupXmlid(env, s);
    if (!found || found.model !== relation || !env.table(relation).has(found.res_id)) throw new CellError(`No matching record found for external id '${s}' in field '%(field)s'`);
    return found.res_id;
  }
  const hits = nameSearch(env.sudo(), relation, s, [], '=', 2);
  if (hits.length === 0) throw new CellError(`No matching record found for name '${s}' in field '%(field)s'`);
  return hits[0]![0];
}

