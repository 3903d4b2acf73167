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

export class Database {
  private tables = new Map<string, Map<number, Row>>();
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
        if (u.before) this.table(u.model).set(u.id, u.before);
        else this.table(u.model).delete(u.id);
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
    this.table(model).set(row.id, row);
    if (!this.undo) this.dirty = true;
    return row;
  }

  update(model: string, id: number, values: Record<string, unknown>): void {
    const row = this.table(model).get(id);
    if (!row) return;
    this.remember(model, id);
    Object.assign(row, values);
  }

  delete(model: string, id: number): void {
    if (!this.table(model).has(id)) return;
    this.remember(model, id);
    this.table(model).delete(id);
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
    this.nextIds = new Map(Object.entries(snapshot.nextIds));
    this.sequences = new Map(Object.entries(snapshot.sequences));
    for (const [model, rows] of Object.entries(snapshot.tables)) {
      const t = this.table(model);
      for (const r of rows) t.set(r.id, r);
    }
  }

  clear(): void {
    this.tables.clear();
    this.nextIds.clear();
    this.sequences.clear();
  }
}
