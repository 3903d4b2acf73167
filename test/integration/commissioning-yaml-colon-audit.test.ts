/**
 * Commissioning: a key written without the space after its colon (`profile:sysmex-xp`), which YAML
 * reads as one plain string, not a key and its value. The real CLI (`lab-gateway check|start` from
 * the sources) on files written as IT writes them.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { dir, configFile } = useConfigDir('lgw-commissioning-yaml-colon-');

async function check(body: string): Promise<{ code: number; out: string }> {
  const cfg = await configFile(body);
  const r = await runCli(cliSource, ['check', '--config', cfg]);
  return { code: r.code, out: r.out };
}

describe('a key without the space after its colon', () => {
  /**
   * User sees (was): "line 3: Implicit keys need to be on a single line (line 3, column 5)" (the
   * YAML library's words), or "gateway: must be a mapping (found string)", or an unknown key
   * "profile:sysmex-xp": nothing pointed at the missing space.
   */
  it('in a block mapping: the parser\'s error at its line gets the hint, with the key written right', async () => {
    const r = await check(['analyzers:', '  - id: xp-1', '    profile:sysmex-xp', '    serial: { path: /dev/ttyUSB0 }', ''].join('\n'));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/error\s+line 3: .*\(line 3, column 5\); a key needs a space after its colon: `profile: sysmex-xp`\n/);

    const last = await check(['status:', '  listen:', '    host: 127.0.0.1', '    port:8484', ''].join('\n'));
    expect(last.out).toMatch(/error\s+line 4: .*; a key needs a space after its colon: `port: 8484`\n/);
  }, 30_000);

  it('in a flow mapping: the unknown key gets the hint at its path', async () => {
    const r = await check('analyzers: [ { id: xp-1, profile:sysmex-xp, serial: { path: /dev/ttyUSB0 } } ]\n');
    expect(r.code).toBe(1);
    expect(r.out).toContain('analyzers[0].profile:sysmex-xp: unknown key (allowed: id, profile, serial, tcp, overrides, pushOrders, quietAlert); a key needs a space after its colon: `profile: sysmex-xp` (line 1)');
  }, 30_000);

  it('the only key of a mapping: the wrong-type error gets the hint, a URL value kept whole', async () => {
    const r = await check(['gateway:', '  id:lab-1', 'odoo:', '  url:https://lab.example.com', ''].join('\n'));
    expect(r.code).toBe(1);
    expect(r.out).toContain('gateway: must be a mapping (found string); a key needs a space after its colon: `id: lab-1` (line 2)');
    expect(r.out).toContain('odoo: must be a mapping (found string); a key needs a space after its colon: `url: https://lab.example.com` (line 4)');

    const item = await check(['analyzers:', '  - id:xp-1', ''].join('\n'));
    expect(item.out).toContain('analyzers[0]: must be a mapping (found string); a key needs a space after its colon: `id: xp-1` (line 2)');
    // Said once, at the first issue of that key.
    expect(item.out.match(/a key needs a space/g)).toHaveLength(1);
  }, 30_000);

  it('start says the same, and a file with colons in its values (URLs, addresses) gets no hint', async () => {
    const cfg = await configFile(['gateway:', '  id:lab-1', ''].join('\n'));
    const started = await runCli(cliSource, ['start', '--config', cfg]);
    expect(started.code).toBe(1);
    expect(started.err).toContain('a key needs a space after its colon: `id: lab-1`');

    const fine = await check(
      [
        `gateway: { id: lab-1, dataDir: ${path.join(dir, 'data')} }`,
        'odoo: { url: "https://lab.example.com", database: lab, login: gw, apiKeyFile: /nonexistent/key }',
        'mqtt: { broker: mqtt://127.0.0.1:1883 }',
        'analyzers: [ { id: xp-1, profile:  sysmex-xp, tcp: { connect: { host: 10.0.0.7, port: 5000 } } } ]',
        '',
      ].join('\n'),
    );
    expect(fine.out).not.toContain('a key needs a space');
  }, 30_000);
});
