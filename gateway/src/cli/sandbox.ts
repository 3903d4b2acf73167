import { existsSync } from 'node:fs';
import { OdooEmulator } from '../../../test/odoo-emulator/emulator.ts';
import { SANDBOX_VIEWS, sandboxFile, summarise } from '../sandbox.ts';
import { displayUrl } from '../config/display-url.ts';
import { args, configFrom, limitArg, UsageError, type CliContext } from './main.ts';

/**
 * `lab-gateway sandbox list [--model M] [--limit N] [--json]`: the records the gateway created in
 * its local sandbox Odoo, the newest `--limit` (10) of each model. Reads the sandbox file directly
 * (it is plain JSON), so it works whether or not the gateway is running.
 */
export async function runSandbox(argv: string[], ctx: CliContext): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'list') throw new UsageError('sandbox needs a subcommand: list');
  const { values } = args(rest, { config: { type: 'string', short: 'c' }, model: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } });
  // Checked before anything is read: `--limit abc` (or 0, -1) printed every record, and a model
  // spelt otherwise (`sale_order`) printed nothing, both as if that were the sandbox's content.
  const limit = limitArg(values.limit, 10);
  const models = Object.keys(SANDBOX_VIEWS);
  if (values.model !== undefined && !models.includes(values.model)) throw new UsageError(`--model must be one of ${models.join(', ')} (got "${values.model}")`);
  const config = configFrom(values.config, ctx);
  if (config.odoo.url) {
    ctx.err(`this gateway posts to ${displayUrl(config.odoo.url)}, not to a sandbox`);
    return 1;
  }
  const file = sandboxFile(config.gateway.dataDir);
  if (!existsSync(file)) {
    const note = `no sandbox records yet (${file} does not exist; start the gateway without odoo.url first)`;
    // --json is one object whatever the sandbox holds: a fresh sandbox (an emulator that neither
    // listens nor persists) counts every model 0, and the note says why.
    if (values.json) ctx.out(JSON.stringify({ ...summarise(new OdooEmulator({ version: config.odoo.sandboxVersion, seed: 'lab-demo' }), limit, values.model), note }, null, 2));
    else ctx.out(note);
    return 0;
  }
  // Load the persisted records into an emulator that never listens: a read-only view.
  const emulator = new OdooEmulator({ version: config.odoo.sandboxVersion, persistFile: file, seed: 'lab-demo', persistDebounceMs: 3_600_000 });
  const summary = summarise(emulator, limit, values.model);
  if (values.json) {
    ctx.out(JSON.stringify(summary, null, 2));
    return 0;
  }
  ctx.out(`sandbox Odoo ${summary.version} (${file})`);
  for (const [model, { count, recent }] of Object.entries(summary.models)) {
    ctx.out(`\n${model}: ${count} record(s)`);
    for (const r of recent) ctx.out(`  ${Object.entries(r).map(([k, v]) => `${k}=${Array.isArray(v) ? v[1] ?? v[0] : typeof v === 'string' ? v.replace(/<[^>]+>/g, '').slice(0, 60) : String(v)}`).join('  ')}`);
  }
  return 0;
}
