/**
 * `check` reading a `status.adminTokenFile` of named tokens (`<name> <token>` per line): the real
 * CLI as a separate process from the sources, on real files.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { dir, configFile } = useConfigDir('lgw-admin-tokens-');
const rest = [`gateway: { id: site-t, dataDir: ${path.join(dir, 'data')} }`, 'hl7: []', 'mqtt: { listen: { host: 127.0.0.1, port: 0 } }'];

async function checkWith(tokens: string): Promise<{ code: number; out: string }> {
  const file = await configFile(tokens, `admin-${Math.random().toString(36).slice(2)}.tokens`);
  const cfg = await configFile([...rest, `status: { listen: { host: 127.0.0.1, port: 0 }, adminTokenFile: ${file} }`, ''].join('\n'));
  const r = await runCli(cliSource, ['check', '--config', cfg]);
  return { code: r.code, out: r.out + r.err };
}

const ALICE = 'alice-token-4f9c2e71d0b8a356';
const BOB = 'bob-token-91d3e0c47a2f6b58';

describe('check: status.adminTokenFile with named tokens', () => {
  /**
   * User sees (was): a file of `<name> <token>` lines was taken whole as one token: `check` said
   * nothing, and no one could sign in.
   * Promise: README "Configuration reference", `status.adminTokenFile`; status/README.md "Admin token".
   */
  it('a well-formed file (comments, blank lines, several people) passes', async () => {
    const r = await checkWith(['# admins of the lab', '', `alice ${ALICE}`, `bob.smith@lab ${BOB}`, ''].join('\n'));
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('0 error(s), 0 warning(s)');
  }, 30_000);

  it('one bare token, the format of before, passes as before', async () => {
    const r = await checkWith('just-one-shared-token-0123\n');
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('0 error(s), 0 warning(s)');
  }, 30_000);

  it('a malformed line, a name used twice, a token used twice and a short token are errors naming the key and the line, never the token', async () => {
    const shortToken = 'tiny-tok';
    const malformedToken = 'pasted-alone-0f3b9c2d7e18a465';
    const r = await checkWith(
      [
        '# admins',
        `alice ${ALICE}`,
        `${malformedToken}`, // line 3: no name
        `alice ${BOB}`, // line 4: alice again
        `carol ${ALICE}`, // line 5: alice's token again
        `dave ${shortToken}`, // line 6: too short
        `e:ve ${'x'.repeat(24)}`, // line 7: a name with a character not allowed
        '',
      ].join('\n'),
    );
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error\s+status\.adminTokenFile: line 3: /);
    expect(r.out).toMatch(/error\s+status\.adminTokenFile: line 4: .*"alice".*line 2/);
    expect(r.out).toMatch(/error\s+status\.adminTokenFile: line 5: .*same token as line 2/);
    expect(r.out).toMatch(/error\s+status\.adminTokenFile: line 6: .*"dave".*8 characters.*at least 16/);
    expect(r.out).toMatch(/error\s+status\.adminTokenFile: line 7: /);
    for (const secret of [ALICE, BOB, shortToken, malformedToken, 'x'.repeat(24)]) expect(r.out).not.toContain(secret);
  }, 30_000);

  it('a file of comments only holds no token: admin actions stay disabled (a warning, as for an empty file)', async () => {
    const r = await checkWith('# nobody yet\n');
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/warning\s+status\.adminTokenFile: .*(empty|no token)/);
  }, 30_000);
});
