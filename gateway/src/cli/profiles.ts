import path from 'node:path';
import { listProfiles, loadProfile } from '../profiles/load.ts';
import { defaultProfilesDir } from '../profiles/check.ts';
import { fingerprintProfiles, renderProfile, renderProfileCheck, renderProfileList } from '../profiles/render.ts';
import { args, UsageError, type CliContext } from './main.ts';

/** `lab-gateway profiles list | show NAME | check [NAME|FILE...] | fingerprint [NAME...] [--write]`. */
export async function runProfiles(argv: string[], ctx: CliContext): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = args(rest, { dir: { type: 'string' }, json: { type: 'boolean' }, write: { type: 'boolean' } }, true);
  const dir = values.dir ? path.resolve(values.dir) : defaultProfilesDir();
  switch (sub) {
    case 'list':
      ctx.out(values.json ? JSON.stringify(listProfiles(dir), null, 2) : renderProfileList(dir));
      return 0;
    case 'show': {
      const name = positionals[0];
      if (!name) throw new UsageError('profiles show needs a profile name (see profiles list)');
      const profile = loadProfile(name, dir);
      ctx.out(values.json ? JSON.stringify(profile, null, 2) : renderProfile(profile));
      return 0;
    }
    case 'check': {
      const r = renderProfileCheck(positionals, dir);
      ctx.out(r.text);
      return r.exitCode;
    }
    case 'fingerprint': {
      const r = fingerprintProfiles(positionals, { dir, write: values.write === true });
      ctx.out(r.text);
      return r.refused.length > 0 ? 1 : 0;
    }
    default:
      throw new UsageError('profiles needs a subcommand: list, show NAME, check [NAME|FILE...] or fingerprint [NAME...] [--write]');
  }
}
