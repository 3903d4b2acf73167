/**
 * A site's profiles directory whose aliases.json was edited by hand and left broken (a trailing
 * comma). The real CLI runs as a separate process on copies of the shipped profiles.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, repo, runCli, useConfigDir } from '../fixtures/cli.ts';

const { dir, configFile } = useConfigDir('lgw-review-s22-aliases-');
const profiles = path.join(dir, 'profiles');
cpSync(path.join(repo, 'firmware-profiles'), profiles, { recursive: true });
const aliases = path.join(profiles, 'aliases.json');
writeFileSync(aliases, readFileSync(aliases, 'utf8').replace(/("mindray-bs": "mindray-bs-series")/, '$1,'));

describe('an aliases.json that is not JSON', () => {
  /**
   * User saw: `profile: sysmex-xn` (an alias of sysmex-xn-l) became `unknown profile "sysmex-xn"
   * (did you mean "sysmex-xp"?)`, the profile of another analyzer, and `profiles check` said
   * "0 error(s)": the broken aliases.json was ignored without a word. Broke: no silent default;
   * a clear error naming the file.
   */
  it('is an error naming the file in check and in profiles check, and no other analyzer\'s profile is suggested', async () => {
    const file = await configFile(
      [
        'gateway: { id: aliases-1, timeZone: UTC }',
        'hl7: []',
        'profilesDir: profiles',
        'analyzers: [ { id: xn-1, profile: sysmex-xn, tcp: { listen: { host: 127.0.0.1, port: 0 } } } ]',
        'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
        'status: { listen: { host: 127.0.0.1, port: 0 } }',
        '',
      ].join('\n'),
    );
    const r = await runCli(cliSource, ['check', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/error +profilesDir: .*aliases\.json is not valid JSON .*line \d+ column \d+.*: its aliases are not known/);
    expect(r.out).not.toMatch(/did you mean "sysmex-xp"/);
    const p = await runCli(cliSource, ['profiles', 'check', '--dir', profiles]);
    expect(p.code).toBe(1);
    expect(p.out).toMatch(/aliases\.json:\n +error +\(file\): .*not valid JSON/);
  });
});
