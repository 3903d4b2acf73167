/**
 * Commissioning day, YAML as IT staff write it: aliases, several documents in one file.
 * `lab-gateway check` promises every problem at once in its report (text or --json), each naming
 * its key or line. Every command runs as a real separate process from the sources.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { dir, configFile } = useConfigDir('lgw-cfg-yaml-');

const check = (file: string, ...extra: string[]) => runCli(cliSource, ['check', '--config', file, ...extra]);

describe('check: YAML the parser takes apart late', () => {
  /**
   * User saw: a config reusing a block with an alias whose anchor was spelt differently
   * (`<<: *lis-defaults` for `&lis_defaults`); check printed one bare line, "Unresolved alias (the
   * anchor must be set before the alias): lis-defaults", with no line and no key, and with
   * --json that same line instead of the JSON report a script parses. Broke: check reports every
   * issue in its format, naming where it is.
   */
  it('an alias without its anchor is an issue with its line, in the JSON report too', async () => {
    const file = await configFile(['gateway: { id: yaml-1 }', 'hl7:', '  - id: lis', '    listen: *lis-listen', ''].join('\n'));
    const r = await check(file, '--json');
    expect(r.code).toBe(1);
    const report = JSON.parse(r.out) as { ok: boolean; issues: Array<{ severity: string; path: string; message: string }> };
    expect(report.ok).toBe(false);
    expect(report.issues).toEqual([expect.objectContaining({ severity: 'error', path: 'hl7[0].listen', message: expect.stringMatching(/lis-listen.*line 4/) })]);
  });

  /**
   * User saw: two configurations pasted into one file (a `---` between them); check answered
   * "please use YAML.parseAllDocuments()", an instruction to a programmer, not to IT staff.
   */
  it('two documents in one file are named as such, without a programming instruction', async () => {
    const file = await configFile(['gateway: { id: yaml-2 }', '---', 'gateway: { id: yaml-3 }', ''].join('\n'));
    const r = await check(file);
    expect(r.code).toBe(1);
    expect(r.out).not.toMatch(/parseAllDocuments/);
    expect(r.out).toMatch(/line 2: .*one YAML document/);
  });
});

describe('check: a file saved in another encoding', () => {
  /**
   * User saw: the config edited on a Windows machine and saved as Windows-1252, with the lab's
   * stock location `WH/Stock/Größe`; check passed, and the gateway looked for "WH/Stock/Gr��e" in
   * Odoo, a location no one made (the bytes that are not UTF-8 were silently replaced). Broke: bad
   * input gets a clear answer naming the key.
   */
  it('bytes that are not UTF-8 are an error naming the key and line', async () => {
    const f = path.join(dir, 'latin1.yaml');
    await writeFile(f, Buffer.concat([Buffer.from('gateway: { id: enc-1 }\nodoo:\n  mapping:\n    labLocation: "WH/Stock/Gr'), Buffer.from([0xf6, 0xdf]), Buffer.from('e"\n')]));
    const r = await check(f);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error +odoo\.mapping\.labLocation: line 4 .*not UTF-8/);
  });
});
