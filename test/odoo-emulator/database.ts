/**
 * The emulator's "PostgreSQL": one table per model, id sequences, document sequences
 * (S00001, P00001, WH/INT/00001, INV/2026/00001), and one transaction per RPC call
 * (odoo-api.md §A.3: committed on success, rolled back on error) implemented with an undo log.
 */
import type { Row } from './types.ts';

export interface DatabaseSnapshot {
  format: 1;
  tables: Record<string, Row[]>;
  nextIds: Record<string, number>;
  sequences: Record<string, number>;
}

type Undo =
  | { kind: 'row'; model: string; id: number; before: Row | undefined }
  | { kind: 'nextId'; model: string; before: number | undefined }
  | { kind: 'sequence'; code: string; before: number | undefined };

/** Secondary indexes kept for the hot one2many / lookup paths (model → fields). */
const INDEXED: Record<string, readonly string[]> = {
  'stock.move': ['picking_id', 'product_id', 'sale_line_id', 'purchase_line_id'],
  'stock.move.line': ['move_id', 'picking_id'],
  'stock.quant': ['product_id', 'lot_id'],
  'sale.order.line': ['order_id'],
  'purchase.order.line': ['order_id'],
  'account.move.line': ['move_id'],
  'mail.message': ['res_id'],
  'ir.model.data': ['name', 'res_id'],
};

export class Database {
  private tables = new Map<string, Map<number, Row>>();
  /** model → field → value → ids, maintained on every insert/update/delete/rollback. */
  private indexes = new Map<string, Map<string, Map<unknown, Set<number>>>>();
  private nextIds = new Map<string, number>();
  private sequences = new Map<string, number>();
  private undo: Undo[] | undefined;
  private touchedRows: Set<string> | undefined;
  /** Called after every commit that changed something (persistence hooks in here). */
  onCommit: (() => void) | undefined;
  private dirty = false;

  table(model: string): Map<number, Row> {
    let t = this.tables.get(model);
    if (!t) { t = new Map(); this.tables.set(model, t); }
    return t;
  }

  /** Fields indexed per model: the static set plus those searched by equality (`ensureIndex`). */
  private readonly indexedFields = new Map<string, Set<string>>(Object.entries(INDEXED).map(([m, f]) => [m, new Set(f)]));

  /**
   * Ids of `model` rows whose `field` equals `value`, ordered by id, when that field is indexed
   * (else undefined). `create` adds an index for the field first.
   */
  lookup(model: string, field: string, value: unknown, create = false): number[] | undefined {
    const byField = this.indexes.get(model)?.get(field);
    if (!byField) {
      const known = this.indexedFields.get(model)?.has(field) ?? false;
      if (!known && !create) return undefined;
      if (!known) {
        const set = this.indexedFields.get(model) ?? new Set<string>();
        set.add(field);
        this.indexedFields.set(model, set);
      }
      this.rebuildIndex(model);
      return this.lookup(model, field, value);
    }
    const ids = byField.get(value);
    return ids ? [...ids].sort((a, b) => a - b) : [];
  }

  private rebuildIndex(model: string): void {
    const fields = this.indexedFields.get(model);
    if (!fields) return;
    const m = new Map<string, Map<unknown, Set<number>>>();
    for (const f of fields) m.set(f, new Map());
    this.indexes.set(model, m);
    for (const row of this.table(model).values()) this.indexRow(model, row, 1);
  }

  private indexRow(model: string, row: Row, sign: 1 | -1): void {
    const m = this.indexes.get(model);
    if (!m) return;
    for (const [field, byValue] of m) {
      const v = row[field] ?? false;
      let ids = byValue.get(v);
      if (sign > 0) {
        if (!ids) { ids = new Set(); byValue.set(v, ids); }
        ids.add(row.id);
      } else if (ids) {
        ids.delete(row.id);
        if (ids.size === 0) byValue.delete(v);
      }
    }
  }

  /** Every write to a table goes through put/drop so the indexes follow. */
  private put(model: string, row: Row): void {
    const old = this.table(model).get(row.id);
    if (old) this.indexRow(model, old, -1);
    this.table(model).set(row.id, row);
    this.indexRow(model, row, 1);
  }

  private drop(model: string, id: number): void {
    const old = this.table(model).get(id);
    if (!old) return;
    this.indexRow(model, old, -1);
    this.table(model).delete(id);
  }

  models(): string[] {
    return [...this.tables.keys()].sort();
  }

  /** Runs `fn` as one transaction: every change is undone if it throws. */
  transaction<T>(fn: () => T): T {
    if (this.undo) return fn();
    this.undo = [];
    this.touchedRows = new Set();
    try {
      const result = fn();
      const changed = this.undo.length > 0;
      this.undo = undefined;
      this.touchedRows = undefined;
      if (changed) { this.dirty = true; this.onCommit?.(); }
      return result;
    } catch (err) {
      this.rollbackTo(0);
      this.undo = undefined;
      this.touchedRows = undefined;
      throw err;
    }
  }

  /** A savepoint inside the current transaction (Model.load uses one per batch). */
  savepoint(): number {
    return this.undo?.length ?? 0;
  }

  rollbackTo(savepoint: number): void {
    if (!this.undo) return;
    while (this.undo.length > savepoint) {
      const u = this.undo.pop()!;
      if (u.kind === 'row') {
        if (u.before) this.put(u.model, u.before);
        else this.drop(u.model, u.id);
        this.touchedRows?.delete(`${u.model}:${u.id}`);
      } else if (u.kind === 'nextId') {
        if (u.before === undefined) this.nextIds.delete(u.model); else this.nextIds.set(u.model, u.before);
      } else {
        if (u.before === undefined) this.sequences.delete(u.code); else this.sequences.set(u.code, u.before);
      }
    }
  }

  private remember(model: string, id: number): void {
    if (!this.undo || !this.touchedRows) return;
    const key = `${model}:${id}`;
    if (this.touchedRows.has(key)) return;
    this.touchedRows.add(key);
    const before = this.table(model).get(id);
    this.undo.push({ kind: 'row', model, id, before: before ? structuredClone(before) : undefined });
  }

  nextId(model: string): number {
    const current = this.nextIds.get(model);
    this.undo?.push({ kind: 'nextId', model, before: current });
    const next = current ?? 1;
    this.nextIds.set(model, next + 1);
    return next;
  }

  insert(model: string, row: Row): Row {
    this.remember(model, row.id);
    this.put(model, row);
    if (!this.undo) this.dirty = true;
    return row;
  }

  update(model: string, id: number, values: Record<string, unknown>): void {
    const row = this.table(model).get(id);
    if (!row) return;
    this.remember(model, id);
    const m = this.indexes.get(model);
    const touchesIndex = m !== undefined && Object.keys(values).some((k) => m.has(k));
    if (touchesIndex) this.indexRow(model, row, -1);
    Object.assign(row, values);
    if (touchesIndex) this.indexRow(model, row, 1);
  }

  delete(model: string, id: number): void {
    if (!this.table(model).has(id)) return;
    this.remember(model, id);
    this.drop(model, id);
  }

  /** Next number of a document sequence (`ir.sequence.next_by_code`). */
  nextSequence(code: string): number {
    const current = this.sequences.get(code);
    this.undo?.push({ kind: 'sequence', code, before: current });
    const next = (current ?? 0) + 1;
    this.sequences.set(code, next);
    return next;
  }

  takeDirty(): boolean {
    const d = this.dirty;
    this.dirty = false;
    return d;
  }

  snapshot(): DatabaseSnapshot {
    const tables: Record<string, Row[]> = {};
    for (const [model, t] of this.tables) if (t.size > 0) tables[model] = [...t.values()];
    return { format: 1, tables, nextIds: Object.fromEntries(this.nextIds), sequences: Object.fromEntries(this.sequences) };
  }

  restore(snapshot: DatabaseSnapshot): void {
    this.tables.clear();
    this.indexes.clear();
    this.nextIds = new Map(Object.entries(snapshot.nextIds));
    this.sequences = new Map(Object.entries(snapshot.sequences));
    for (const [model, rows] of Object.entries(snapshot.tables)) {
      const t = this.table(model);
      for (const r of rows) t.set(r.id, r);
    }
  }

  clear(): void {
    this.tables.clear();
    this.indexes.clear();
    this.nextIds.clear();
    this.sequences.clear();
  }
}
