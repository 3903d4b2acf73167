/**
 * Commissioning an analyzer: IT staff write its profile's name in analyzers[].profile, as the
 * analyzer's model reads (`Sysmex-XN`). check promises a clear answer naming the key, and "did you mean" the
 * closest profile. Every command runs as a real separate process from the sources.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliSource, runCli } from '../fixtures/cli.ts';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-cfg-profile-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function checkProfile(profile: string): Promise<{ code: number; out: string }> {
  const f = path.join(dir, `${profile.replace(/[^a-z0-9]/gi, '_')}.yaml`);
  await writeFile(f, `gateway: { id: prof-1 }\nanalyzers: [ { id: xn-1, profile: ${profile}, serial: { path: /dev/ttyUSB0 } } ]\n`);
  return runCli(cliSource, ['check', '--config', f]);
}

describe('check: an analyzer profile name not quite right', () => {
  /**
   * User saw: `profile: Sysmex-XN` for the lab's Sysmex XN answered `did you mean "sysmex-xp"?`,
   * the profile of another analyzer (other test codes, other reagents), because the suggestion
   * looked at file names only, not at the documented alias `sysmex-xn`. Broke: the hint names the
   * closest profile, not a wrong one.
   */
  it('suggests the alias of the analyzer named, not another analyzer', async () => {
    const r = await checkProfile('Sysmex-XN');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/analyzers\[0\]\.profile: unknown profile "Sysmex-XN" \(did you mean "sysmex-xn"\?\)/);
  });
});
