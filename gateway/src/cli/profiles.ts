import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { checkAllProfiles, listProfiles, readProfileFile } from '../profiles/load.ts';
import { checkProfile, defaultProfilesDir } from '../profiles/check.ts';
import type { ProfileIssue } from '../profiles/types.ts';
import { args, UsageError, type CliContext } from './main.ts';

/** `lab-gateway profiles list | show NAME | check [NAME|FILE...]`. */
export async function runProfiles(argv: string[], ctx: CliContext): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = args(rest, { dir: { type: 'string' }, json: { type: 'boolean' } }, true);
  const dir = values.dir ? path.resolve(values.dir) : defaultProfilesDir();
  switch (sub) {
    case 'list': {
      const rows = listProfiles(dir);
      if (values.json) {
        ctx.out(JSON.stringify(rows, null, 2));
        return 0;
      }
      ctx.out(`${'profile'.padEnd(28)} ${'vendor / model'.padEnd(42)} ${'protocol'.padEnd(22)} tests  consumption  host query`);
      for (const r of rows) {
        const model = `${r.vendor} ${r.model}${r.firmware ? ` (fw ${r.firmware})` : ''}`;
        ctx.out(`${r.name.padEnd(28)} ${model.slice(0, 42).padEnd(42)} ${r.protocol.padEnd(22)} ${String(r.tests).padStart(5)}  ${String(r.consumptionRows).padStart(11)}  ${r.hostQuery ? 'yes' : 'no'}${r.errors ? `  (${r.errors} error(s): run profiles check ${r.name})` : ''}`);
      }
      return 0;
    }
    case 'show': {
      const name = positionals[0];
      if (!name) throw new UsageError('profiles show needs a profile name (see profiles list)');
      ctx.out(JSON.stringify(readProfileFile(name, dir), null, 2));
      return 0;
    }
    case 'check': {
      const results: Array<{ name: string; issues: ProfileIssue[] }> = [];
      if (positionals.length === 0) results.push(...checkAllProfiles(dir));
      for (const target of positionals) {
        if (target.endsWith('.json') && existsSync(target)) {
          let obj: unknown;
          try {
            obj = JSON.parse(readFileSync(target, 'utf8'));
          } catch (err) {
            results.push({ name: target, issues: [{ severity: 'error', path: '(file)', message: `not valid JSON: ${(err as Error).message}` }] });
            continue;
          }
          results.push({ name: target, issues: checkProfile(obj, { fileName: path.basename(target, '.json') }) });
        } else {
          try {
            results.push({ name: target, issues: checkProfile(readProfileFile(target, dir), { fileName: target }) });
          } catch (err) {
            results.push({ name: target, issues: [{ severity: 'error', path: '(file)', message: (err as Error).message }] });
          }
        }
      }
      let errors = 0;
      if (values.json) ctx.out(JSON.stringify(results, null, 2));
      for (const r of results) {
        const e = r.issues.filter((i) => i.severity === 'error').length;
        errors += e;
        if (values.json) continue;
        ctx.out(`${r.name}: ${e === 0 ? 'ok' : `${e} error(s)`}${r.issues.length - e ? `, ${r.issues.length - e} warning(s)` : ''}`);
        for (const i of r.issues) ctx.out(`  ${i.severity === 'error' ? 'error  ' : 'warning'} ${i.path}: ${i.message}`);
      }
      return errors > 0 ? 1 : 0;
    }
    default:
      throw new UsageError('profiles needs a subcommand: list, show NAME or check [NAME|FILE...]');
  }
}
