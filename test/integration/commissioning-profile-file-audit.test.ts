/**
 * Commissioning: the analyzer's profile written as the file it is in (the README's table calls it
 * "a file name in firmware-profiles/"), the real CLI (`lab-gateway check|start` from the sources).
 */
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, repo, runCli, useConfigDir } from '../fixtures/cli.ts';
import { TEST_LISTENERS } from '../fixtures/gateway-process.ts';

const { dir, configFile } = useConfigDir('lgw-commissioning-profile-file-');

function site(profile: string, id: string): string {
  return [`gateway: { id: ${id}, dataDir: ${path.join(dir, `${id}-data`)} }`, TEST_LISTENERS, `analyzers: [ { id: xp-1, profile: "${profile}", tcp: { listen: { host: 127.0.0.1, port: 0 } } } ]`, ''].join('\n');
}

describe('analyzers[].profile written as a file name or path', () => {
  /**
   * User sees (was): `profile: sysmex-xp.json` → check: `unknown profile "sysmex-xp.json"; known
   * profiles: …, sysmex-xp` (the name is in the list, the reason is not said); start: `"sysmex-xp.json"
   * is not a profile name (lower-case letters, digits and dashes)`.
   */
  it('sysmex-xp.json: check and start both say to write the name without ".json", and which name', async () => {
    const cfg = await configFile(site('sysmex-xp.json', 'pf-1'));
    const checked = await runCli(cliSource, ['check', '--config', cfg]);
    expect(checked.code).toBe(1);
    expect(checked.out).toMatch(/error\s+analyzers\[0\]\.profile: "sysmex-xp\.json" names a file: write the profile's name alone, without folder or "\.json" \(profile: sysmex-xp\)\n/);
    const started = await runCli(cliSource, ['start', '--config', cfg]);
    expect(started.code).toBe(1);
    expect(started.err).toContain('(profile: sysmex-xp)');
  }, 30_000);

  /**
   * A profile written for the site, kept beside the config and named by its path: the name alone is
   * not enough (it is not one of the shipped profiles): its folder goes in profilesDir.
   */
  it('a path to a profile of the site\'s own: the name to write, and that its folder is profilesDir', async () => {
    const own = path.join(dir, 'acme-hemo-1.json');
    await copyFile(path.join(repo, 'firmware-profiles/generic-astm.json'), own);
    const cfg = await configFile(site(own, 'pf-2'));
    const checked = await runCli(cliSource, ['check', '--config', cfg]);
    expect(checked.code).toBe(1);
    expect(checked.out).toContain(`analyzers[0].profile: "${own}" names a file: write the profile's name alone, without folder or ".json" (profile: acme-hemo-1); a profile of the site's own is read from the folder named by profilesDir`);
  }, 30_000);
});
