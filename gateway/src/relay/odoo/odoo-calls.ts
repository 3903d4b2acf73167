import { createHash } from 'node:crypto';
import type { OdooApi, CallOptions } from './odoo-client.ts';
import { CONCURRENCY_FAILURE, failureOf, needsOperator, odooError } from './odoo-error.ts';

/** Typed helpers over `OdooApi.call` shared by the posting rules and reference pulls. */

export type Domain = unknown[];
export type OdooRecord = Record<string, unknown> & { id: number };

export async function searchRead<T extends OdooRecord = OdooRecord>(
  odoo: OdooApi,
  model: string,
  domain: Domain,
  fields: string[],
  options: { limit?: number; order?: string; offset?: number; context?: Record<string, unknown> } = {},
): Promise<T[]> {
  const existing = odoo.fields.existing(model, fields);
  const params: Record<string, unknown> = { domain, fields: existing };
  if (options.offset) params['offset'] = options.offset;
  if (options.limit) params['limit'] = options.limit;
  if (options.order) params['order'] = options.order;
  const rows = await odoo.call<T[] | null>(model, 'search_read', params, options.context ? { context: options.context } : {});
  return Array.isArray(rows) ? rows : [];
}

/** `create` with a list: JSON-RPC returns an int for a dict and a list for a list; JSON-2 always a list (A.3, A.4). */
export async function create(odoo: OdooApi, model: string, valsList: Array<Record<string, unknown>>, options: CallOptions = {}): Promise<number[]> {
  const filtered = valsList.map((v) => odoo.fields.filter(model, v));
  const result = await odoo.call<number | number[]>(model, 'create', { vals_list: filtered }, options);
  const ids = typeof result === 'number' ? [result] : Array.isArray(result) ? result : [];
  if (ids.length !== valsList.length) throw odooError('ambiguous', `${model}.create returned ${JSON.stringify(result)} for ${valsList.length} record(s)`);
  return ids;
}

export async function write(odoo: OdooApi, model: string, ids: number[], vals: Record<string, unknown>, options: CallOptions = {}): Promise<void> {
  await odoo.call(model, 'write', { vals: odoo.fields.filter(model, vals) }, { ...options, ids });
}

export async function read<T extends OdooRecord = OdooRecord>(odoo: OdooApi, model: string, ids: number[], fields: string[]): Promise<T[]> {
  const rows = await odoo.call<T[] | null>(model, 'read', { fields: odoo.fields.existing(model, fields) }, { ids });
  return Array.isArray(rows) ? rows : [];
}

/** many2one values read back as `[id, "name"]` (or false). */
export function m2oId(value: unknown): number | undefined {
  if (Array.isArray(value) && typeof value[0] === 'number') return value[0];
  if (typeof value === 'number') return value;
  return undefined;
}

export const XMLID_MODULE = 'lab_gateway';

/**
 * External id for a gateway record: `lab_gateway.<sanitised key>`. Odoo external id names are
 * word characters; the hash keeps two keys that sanitise alike apart.
 */
export function externalId(prefix: string, key: string): { module: string; name: string; full: string } {
  const slug = key.replace(/[^A-Za-z0-9_]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 60);
  const hash = createHash('sha1').update(key).digest('hex').slice(0, 10);
  const name = `${prefix}_${slug}_${hash}`;
  return { module: XMLID_MODULE, name, full: `${XMLID_MODULE}.${name}` };
}

/**
 * For each key `found` has no record for yet, the record the gateway created under the external id
 * `<prefix>_<key>` (one `check_object_reference` per miss), read in one call and added to `found`.
 * A record deleted in Odoo since reads back as nothing: its key stays a miss. How every rule finds
 * a document whose searchable reference a user may have edited (a sale order's Customer Reference,
 * an invoice's ref).
 */
export async function addByExternalId(odoo: OdooApi, found: Map<string, OdooRecord>, keys: readonly string[], prefix: string, model: string, fields: readonly string[]): Promise<void> {
  const byId = new Map<number, string>();
  // Side by side (the relay's call limit bounds them): one round trip for a batch, not one each.
  const missed = [...new Set(keys)].filter((key) => !found.has(key));
  const ids = await Promise.all(missed.map((key) => {
    const xid = externalId(prefix, key);
    return lookupExternalId(odoo, xid.module, xid.name);
  }));
  missed.forEach((key, i) => {
    const id = ids[i];
    if (id !== undefined) byId.set(id, key);
  });
  if (byId.size === 0) return;
  for (const row of await read(odoo, model, [...byId.keys()], [...fields])) {
    const key = byId.get(row.id);
    if (key !== undefined && !found.has(key)) found.set(key, row);
  }
}

/**
 * `ir.model.data.check_object_reference(module, name)` → [model, id], or undefined when absent
 * (B.4); a record the user cannot see is an operator's matter (below), never a miss
 * (test/integration/relay-external-id-hidden-audit.test.ts).
 */
export async function lookupExternalId(odoo: OdooApi, module: string, name: string): Promise<number | undefined> {
  try {
    const ref = await odoo.call<[string, number | false] | null>('ir.model.data', 'check_object_reference', { module, xml_id: name });
    if (Array.isArray(ref) && ref[1] === false) {
      // The external id exists and names a record the gateway's user does not see (archived, or
      // of a company the user is not in): check_object_reference's `(model, False)`. No miss:
      // loading it again would write that record again (its lines twice, odoo-api.md D) or be
      // refused with a message naming neither. Odoo's state needs a person.
      throw needsOperator(`Odoo has the gateway's record ${module}.${name} (${String(ref[0])}) but the gateway's Odoo user cannot see it (archived, or of a company the user is not allowed in): it is not created again; make it visible to that user again (unarchive it, or allow the user in its company), then replay the event`, { odooName: 'check_object_reference' });
    }
    return Array.isArray(ref) && typeof ref[1] === 'number' ? ref[1] : undefined;
  } catch (err) {
    // ValueError "External ID not found in the system" is the expected miss: Odoo's refusal of
    // the call (permanent), not any failure whose text says "not found". Before, a web proxy's
    // block page titled "404 Not Found" (HTTP 403, the link down) read as a miss, and the rule
    // loaded the document again: its lines twice (test/integration/relay-external-id-miss-audit.test.ts).
    const msg = err instanceof Error ? err.message : '';
    if (failureOf(err) === 'permanent' && /External ID not found/i.test(msg)) return undefined;
    throw err;
  }
}

/** Cell values for `load()`: CSV-like; a JSON boolean crashes the server (D) → "True"/"False". */
function cell(value: unknown): string | number {
  if (value === true) return 'True';
  if (value === false || value === null || value === undefined) return '';
  if (typeof value === 'number') return value;
  return String(value);
}

/**
 * Create records and their external ids in ONE transaction with `Model.load(fields, data)` (B.4,
 * race-safe by construction). Header fields become columns (`field/.id` for many2one: plain m2o
 * columns would be name-searched); one2many `[0,0,vals]` commands become extra rows under their
 * record. The caller MUST have looked the external ids up first: re-loading an existing xmlid
 * writes the record again and duplicates its lines (D). Returns the ids in input order.
 */
export async function loadWithExternalIds(odoo: OdooApi, model: string, records: Array<{ xmlid: string; vals: Record<string, unknown> }>, context?: Record<string, unknown>): Promise<number[]> {
  const { fields, rows } = loadRows(odoo, model, records);
  const result = await odoo.call<{ ids: number[] | false; messages?: Array<{ type: string; message: string; field?: string }> } | null>(model, 'load', { fields, data: rows }, context ? { context } : {});
  const ids = result?.ids;
  if (!Array.isArray(ids) || ids.length !== records.length) {
    const messages = result?.messages ?? [];
    const msgs = messages.map((m) => String(m.message).trim()).join('; ');
    // load() catches every psycopg2 error of a row into its messages and rolls the whole load
    // back (`ids: false`), so Odoo's own retry of serialization failures never sees them: a row
    // that met a concurrent update or a lock is retried with the store's back-off (nothing was
    // written; the rule looks up first). Conversion and validation messages stay permanent.
    // Before, every `ids: false` was a dead letter, a momentary conflict included.
    const failure = messages.some((m) => m.type !== 'warning' && CONCURRENCY_FAILURE.test(String(m.message))) ? 'transient' : 'permanent';
    throw odooError(failure, `${model}.load refused the record(s): ${msgs || `returned ${JSON.stringify(ids)}`}`, { odooName: 'load', odooMessage: msgs });
  }
  return ids;
}

/** Ids of a many2many value given as commands (`[6, 0, ids]`, `[4, id]`) or as a plain id list. */
function m2mIds(value: unknown): number[] {
  if (!Array.isArray(value)) return [];
  const ids: number[] = [];
  for (const v of value) {
    if (typeof v === 'number') ids.push(v);
    else if (Array.isArray(v) && v[0] === 6 && Array.isArray(v[2])) ids.splice(0, ids.length, ...(v[2] as unknown[]).filter((x): x is number => typeof x === 'number'));
    else if (Array.isArray(v) && v[0] === 4 && typeof v[1] === 'number') ids.push(v[1]);
  }
  return ids;
}

/**
 * `load()` columns and rows. many2one columns are `field/.id` (database ids); many2many columns
 * are `field/.id` too, with the ids comma-separated (`ir.fields.converter`), from `[6, 0, ids]`
 * commands; an empty cell clears the relation.
 */
export function loadRows(odoo: OdooApi, model: string, records: Array<{ xmlid: string; vals: Record<string, unknown> }>): { fields: string[]; rows: Array<Array<string | number>> } {
  const filtered = records.map((r) => ({ xmlid: r.xmlid, vals: odoo.fields.filter(model, r.vals) }));
  const headerCols: string[] = [];
  const o2mCols = new Map<string, { relation: string; cols: string[] }>();
  for (const r of filtered) {
    for (const [name, value] of Object.entries(r.vals)) {
      const info = odoo.fields.info(model, name);
      if (info?.type === 'one2many' && Array.isArray(value)) {
        const entry = o2mCols.get(name) ?? { relation: info.relation ?? '', cols: [] };
        for (const cmd of value) if (Array.isArray(cmd) && cmd[0] === 0) for (const c of Object.keys(cmd[2] as object)) if (!entry.cols.includes(c)) entry.cols.push(c);
        o2mCols.set(name, entry);
      } else if (!headerCols.includes(name)) headerCols.push(name);
    }
  }
  const byId = (t: string | undefined): boolean => t === 'many2one' || t === 'many2many';
  const isM2m = (m: string, c: string): boolean => odoo.fields.info(m, c)?.type === 'many2many';
  const fields = ['id', ...headerCols.map((c) => (byId(odoo.fields.info(model, c)?.type) ? `${c}/.id` : c))];
  for (const [o2m, { relation, cols }] of o2mCols) for (const c of cols) fields.push(byId(odoo.fields.info(relation, c)?.type) ? `${o2m}/${c}/.id` : `${o2m}/${c}`);
  const value = (m: string, c: string, v: unknown): string | number => (isM2m(m, c) ? m2mIds(v).join(',') : cell(v));
  const rows: Array<Array<string | number>> = [];
  for (const r of filtered) {
    const lines = new Map<string, Array<Record<string, unknown>>>();
    for (const o2m of o2mCols.keys()) {
      const v = r.vals[o2m];
      lines.set(o2m, Array.isArray(v) ? v.filter((c): c is [number, number, Record<string, unknown>] => Array.isArray(c) && c[0] === 0).map((c) => c[2]) : []);
    }
    const height = Math.max(1, ...[...lines.values()].map((l) => l.length));
    for (let i = 0; i < height; i++) {
      const row: Array<string | number> = i === 0 ? [r.xmlid, ...headerCols.map((c) => value(model, c, r.vals[c]))] : ['', ...headerCols.map(() => '')];
      for (const [o2m, { relation, cols }] of o2mCols) for (const c of cols) row.push(value(relation, c, lines.get(o2m)?.[i]?.[c]));
      rows.push(row);
    }
  }
  return { fields, rows };
}
