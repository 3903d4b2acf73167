/**
 * Sandbox persistence: the whole database (records, id counters, document sequences, external
 * ids) as one JSON file, written debounced and atomically (write a temp file, fsync, rename).
 */
import { mkdirSync, readFileSync, writeFileSync, renameSync, openSync, fsyncSync, closeSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DatabaseSnapshot } from './database.ts';
import type { OdooVersion } from './types.ts';

export interface PersistedState {
  kind: 'lab-gateway-odoo-sandbox';
  version: OdooVersion;
  database: string;
  savedAt: string;
  data: DatabaseSnapshot;
}

export function readState(file: string): PersistedState | undefined {
  if (!existsSync(file)) return undefined;
  let parsed: PersistedState;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as PersistedState;
  } catch (err) {
    throw new Error(`${file} is not an Odoo sandbox file (unreadable JSON: ${err instanceof Error ? err.message : String(err)})`);
  }
  if (parsed === null || typeof parsed !== 'object' || parsed.kind !== 'lab-gateway-odoo-sandbox' || parsed.data?.format !== 1) {
    throw new Error(`${file} is not an Odoo sandbox file`);
  }
  return parsed;
}

export function writeStateAtomic(file: string, state: PersistedState): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeFileSync(fd, JSON.stringify(state));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** Coalesces commits into one write per `delayMs`. */
export class DebouncedWriter {
  private timer: NodeJS.Timeout | undefined;
  private readonly delayMs: number;
  private readonly write: () => void;

  constructor(delayMs: number, write: () => void) {
    this.delayMs = delayMs;
    this.write = write;
  }

  schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => { this.timer = undefined; this.write(); }, this.delayMs);
    this.timer.unref();
  }

  /** Writes now if a write is pending. */
  flush(): void {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.write();
  }
}
