/**
 * `lab-gateway sandbox list`: what the local Odoo sandbox holds, read from its JSON file without
 * starting anything.
 */
import { readState } from './persistence.ts';

export interface SandboxModelSummary {
  model: string;
  count: number;
  /** Up to `sample` records: id, a readable name and the state when the model has one. */
  records: Array<{ id: number; name: string; state?: string }>;
}

export interface SandboxSummary {
  file: string;
  exists: boolean;
  version?: number;
  database?: string;
  savedAt?: string;
  models: SandboxModelSummary[];
  externalIds: number;
}

const NAME_FIELDS = ['complete_name', 'name', 'login', 'default_code', 'ref'] as const;

/** Lists records per model of a sandbox file (models with no records are left out). */
export function sandboxSummary(persistFile: string, opts: { sample?: number } = {}): SandboxSummary {
  const state = readState(persistFile);
  if (!state) return { file: persistFile, exists: false, models: [], externalIds: 0 };
  const sample = opts.sample ?? 10;
  const models: SandboxModelSummary[] = [];
  for (const [model, rows] of Object.entries(state.data.tables).sort(([a], [b]) => a.localeCompare(b))) {
    if (rows.length === 0) continue;
    const sorted = [...rows].sort((a, b) => b.id - a.id);
    models.push({
      model,
      count: rows.length,
      records: sorted.slice(0, sample).map((r) => {
        const key = NAME_FIELDS.find((k) => typeof r[k] === 'string' && r[k] !== '');
        const name = model === 'ir.model.data' ? `${String(r.module)}.${String(r.name)}` : key ? String(r[key]) : `${model},${r.id}`;
        return { id: r.id, name, ...(typeof r.state === 'string' ? { state: r.state } : {}) };
      }),
    });
  }
  return {
    file: persistFile, exists: true, version: state.version, database: state.database, savedAt: state.savedAt, models,
    externalIds: state.data.tables['ir.model.data']?.length ?? 0,
  };
}

/** Plain-text rendering for the CLI. */
export function formatSandboxSummary(s: SandboxSummary): string {
  if (!s.exists) return `No sandbox at ${s.file} (it is created when the gateway first posts to the sandbox).\n`;
  const lines = [`Odoo ${s.version} sandbox "${s.database}" — ${s.file} (saved ${s.savedAt})`, ''];
  for (const m of s.models) {
    lines.push(`${m.model} (${m.count})`);
    for (const r of m.records) lines.push(`  ${String(r.id).padStart(5)}  ${r.name}${r.state ? `  [${r.state}]` : ''}`);
    if (m.count > m.records.length) lines.push(`  … ${m.count - m.records.length} more`);
  }
  return `${lines.join('\n')}\n`;
}
