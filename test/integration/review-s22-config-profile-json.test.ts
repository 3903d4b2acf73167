/**
 * A site's own profiles directory (`profilesDir`), its files edited on a Windows machine or by
 * hand: the real CLI runs as a separate process on copies of the shipped profiles.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, repo, runCli, useConfigDir } from '../fixtures/cli.ts';

const { dir, configFile } = useConfigDir('lgw-review-s22-profile-json-');
const profiles = path.join(dir, 'profiles');
cpSync(path.join(repo, 'firmware-profiles'), profiles, { recursive: true });

describe('profiles saved with a byte-order mark (Windows Notepad)', () => {
  /**
   * User saw: a profile and aliases.json saved by Notepad (UTF-8 with BOM): `profiles check` and
   * `check` answered `not valid JSON: Unexpected token '﻿', "﻿{` (an invisible character, the
   * report broken over two lines), and aliases.json was silently ignored, so `profile: sysmex-xn`
   * became "unknown profile". Broke: a file the lab's editor writes is read as written (the admin
   * tokens file is, BOM and all).
   */
  it('is read as the same profile, and its aliases stand', async () => {
    for (const f of ['generic-astm.json', 'aliases.json']) writeFileSync(path.join(profiles, f), `\uFEFF${readFileSync(path.join(profiles, f), 'utf8')}`);
    const r = await runCli(cliSource, ['profiles', 'check', '--dir', profiles, 'generic-astm', path.join(profiles, 'generic-astm.json')]);
    expect(r.out + r.err).not.toMatch(/not valid JSON|Unexpected token/);
    expect(r.code, r.out).toBe(0);
    const file = await configFile(
      [
        'gateway: { id: bom-1, timeZone: UTC }',
        'hl7: []',
        'profilesDir: profiles',
        'analyzers:',
        '  - { id: g-1, profile: generic-astm, tcp: { listen: { host: 127.0.0.1, port: 0 } } }',
        '  - { id: xn-1, profile: sysmex-xn, tcp: { listen: { host: 127.0.0.1, port: 0 } } }',
        'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
        'status: { listen: { host: 127.0.0.1, port: 0 } }',
        '',
      ].join('\n'),
    );
    const c = await runCli(cliSource, ['check', '--config', file]);
    expect(c.out).toMatch(/0 error\(s\)/);
    expect(c.code, c.out).toBe(0);
  });
});

describe('profiles check NAME… with a profile that is not JSON among them', () => {
  /**
   * User saw: `profiles check cepheid-genexpert generic-astm` with a stray comma in the first
   * printed its JSON error, then "generic-astm: ok" and "1 profile(s), 0 error(s), 0 warning(s)"
   * as the last line (exit 1): the summary counted the last name alone. Broke: every issue at once,
   * one summary of them all.
   */
  it('ends with one summary counting every profile named and every error', async () => {
    const bad = path.join(profiles, 'cepheid-genexpert.json');
    writeFileSync(bad, readFileSync(bad, 'utf8').replace('"tests"', '"x": 1,, "tests"'));
    const r = await runCli(cliSource, ['profiles', 'check', '--dir', profiles, 'cepheid-genexpert', 'sysmex-xp']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/cepheid-genexpert:\n +error +\(file\): .*not valid JSON.*line \d+ column \d+/);
    expect(r.out).toMatch(/sysmex-xp: ok/);
    expect(r.out.trim().split('\n').at(-1)).toBe('2 profile(s), 1 error(s), 0 warning(s)');
    expect(r.out.match(/profile\(s\)/g)).toHaveLength(1);
  });
});
