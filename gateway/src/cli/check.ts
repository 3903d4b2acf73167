import { formatIssues, loadConfig } from '../config/load.ts';
import type { ConfigIssue } from '../config/types.ts';
import { checkSiteAnalyzers } from '../profiles/load.ts';
import { args, type CliContext } from './main.ts';

/** `lab-gateway check`: validate the config and each analyzer against its profile; every issue at once. */
export async function runCheck(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = args(argv, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' } });
  const loaded = loadConfig(values.config);
  const issues: ConfigIssue[] = [...loaded.issues];
  if (loaded.config) {
    issues.push(...checkSiteAnalyzers(loaded.config.analyzers, loaded.config.profilesDir));
  }
  const errors = issues.filter((i) => i.severity === 'error').length;
  const warnings = issues.length - errors;
  if (values.json) {
    ctx.out(JSON.stringify({ file: loaded.file ?? null, ok: errors === 0, issues }, null, 2));
  } else {
    ctx.out(`${loaded.file ?? '(embedded defaults)'}: ${errors} error(s), ${warnings} warning(s)`);
    if (issues.length) ctx.out(formatIssues(issues));
  }
  return errors > 0 ? 1 : 0;
}
