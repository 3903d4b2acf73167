/**
 * Review of e88d75a (an aliases.json that cannot be used): a site's profiles directory whose
 * aliases.json holds a note IT added as a list, or was left with a trailing comma, while every
 * analyzer names its profile file. The real CLI runs as a separate process on copies of the
 * shipped profiles.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, repo, runCli, useConfigDir } from '../fixtures/cli.ts';

const { dir, configFile } = useConfigDir('lgw-review-s22b-aliases-');

function profilesWith(name: string, edit: (text: string) => string): string {
  const profiles = path.join(dir, name);
  cpSync(path.join(repo, 'firmware-profiles'), profiles, { recursive: true });
  const aliases = path.join(profiles, 'aliases.json');
  writeFileSync(aliases, edit(readFileSync(aliases, 'utf8')));
  return name;
}

const site = (profilesDir: string, profile: string): Promise<string> =>
  configFile(
    [
      'gateway: { id: aliases-b-1, timeZone: UTC }',
      'hl7: []',
      `profilesDir: ${profilesDir}`,
      `analyzers: [ { id: xn-1, profile: ${profile}, tcp: { listen: { host: 127.0.0.1, port: 0 } } } ]`,
      'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
      'status: { listen: { host: 127.0.0.1, port: 0 } }',
      '',
    ].join('\n'),
  );

describe('an aliases.json that cannot be used, on a site whose analyzers name their profile files', () => {
  /**
   * User saw: after the upgrade, check (the unit's ExecStartPre) exited 1 on "profilesDir: …
   * aliases.json: "_notes" must name a profile file (a string): its aliases are not known until it
   * is fixed", and the gateway did not start; the analyzers name their profile files, start reads
   * them, and the other aliases of that file were read all along. Broke: a configuration that
   * worked is refused for a file nothing in it uses.
   */
  it('a note written as a list beside the aliases: a warning, the other aliases still used', async () => {
    const notes = profilesWith('profiles-notes', (t) => t.replace(/^\{/, '{\n  "_notes": ["sysmex-xn: our two XN-550", "ask the lab manager first"],'));
    const byFile = await site(notes, 'sysmex-xn-l');
    const r = await runCli(cliSource, ['check', '--config', byFile]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/warning +profilesDir: .*aliases\.json: "_notes" must name a profile file \(a string\): an entry that is not a string is left out, the file's other aliases are used/);
    // An alias of that file is read as before.
    const byAlias = await site(notes, 'sysmex-xn');
    const a = await runCli(cliSource, ['check', '--config', byAlias]);
    expect(a.code, a.out).toBe(0);
    expect(a.out).not.toMatch(/unknown profile/);
  });

  it('a trailing comma: a warning while every analyzer names its file; an error once one names an alias', async () => {
    const comma = profilesWith('profiles-comma', (t) => t.replace(/("mindray-bs": "mindray-bs-series")/, '$1,'));
    const r = await runCli(cliSource, ['check', '--config', await site(comma, 'sysmex-xn-l')]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/warning +profilesDir: .*aliases\.json is not valid JSON .*: no alias in it is known until it is fixed/);
    const a = await runCli(cliSource, ['check', '--config', await site(comma, 'sysmex-xn')]);
    expect(a.code, a.out).toBe(1);
    expect(a.out).toMatch(/error +profilesDir: .*aliases\.json is not valid JSON .*: its aliases are not known/);
    expect(a.out).toMatch(/error +analyzers\[0\]\.profile: unknown profile "sysmex-xn"/);
  });
});
