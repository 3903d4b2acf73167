/**
 * A configuration whose analyzers share their settings through a YAML merge key (`<<: *name`),
 * as IT staff write docker-compose and CI files. The real CLI as a separate process from the
 * sources; what is asserted is what the IT person reads: the exit code and the issues.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';
import { TEST_LISTENERS } from '../fixtures/gateway-process.ts';

const { dir, configFile } = useConfigDir('lgw-yaml-merge-');

describe('check: YAML merge keys', () => {
  /**
   * User sees (was): `error analyzers[1].<<: unknown key (allowed: id, profile, serial, tcp,
   * overrides, pushOrders)` for a valid YAML idiom, with nothing saying that merge keys were the
   * problem, while the anchor and alias themselves were accepted.
   * Promise: README "Configuration reference": the configuration is YAML; anchors and aliases
   * are read.
   */
  it('a second analyzer made from the first with <<: *anchor is read with the merged settings', async () => {
    const cfg = await configFile(
      [
        `gateway: { id: site-m, dataDir: ${path.join(dir, 'data')} }`,
        TEST_LISTENERS,
        'analyzers:',
        '  - &xn',
        '    id: xn-1',
        '    profile: sysmex-xn',
        '    serial: { path: /dev/ttyUSB0, baudRate: 9600 }',
        '  - <<: *xn',
        '    id: xn-2',
        '    serial: { path: /dev/ttyUSB1, baudRate: 9600 }',
        '',
      ].join('\n'),
    );
    const r = await runCli(cliSource, ['check', '--json', '--config', cfg]);
    expect(r.code, r.out).toBe(0);
    // The ports themselves are not on this machine: a warning each that the gateway would keep
    // trying them (commissioning-serial-device-audit); nothing else.
    const issues = (JSON.parse(r.out) as { issues: Array<{ path: string; message: string }> }).issues;
    expect(issues.filter((i) => !/^analyzers\[[01]\]\.serial\.path$/.test(i.path) || !/does not exist/.test(i.message))).toEqual([]);
  }, 30_000);

  /** The merged values are validated as if written out: the copied serial port is named. */
  it('a setting taken through the merge key is checked like one written out', async () => {
    const cfg = await configFile(
      [
        `gateway: { id: site-m, dataDir: ${path.join(dir, 'data')} }`,
        TEST_LISTENERS,
        'analyzers:',
        '  - &xn { id: xn-1, profile: sysmex-xn, serial: { path: /dev/ttyUSB0 } }',
        '  - { <<: *xn, id: xn-2 }',
        '',
      ].join('\n'),
    );
    const r = await runCli(cliSource, ['check', '--config', cfg]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error\s+analyzers\[1\]\.serial\.path: \/dev\/ttyUSB0 is already used by analyzers\[0\] \(xn-1\)/);
    expect(r.out).not.toMatch(/<</);
  }, 30_000);

  /** A merge key given something else than a mapping is an error at its key and line. */
  it('a merge key whose alias names a plain value is an error at that key with its line', async () => {
    const cfg = await configFile([`gateway: { id: site-m, dataDir: ${path.join(dir, 'data')} }`, TEST_LISTENERS, 'analyzers:', '  - id: xn-1', '    profile: &p sysmex-xn', '    serial: { path: /dev/ttyUSB0 }', '  - <<: *p', '    id: xn-2', ''].join('\n'));
    const r = await runCli(cliSource, ['check', '--config', cfg]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error\s+analyzers\[1\]\.<<: a merge key takes a mapping .*\(line 9, column 5\)/);
  }, 30_000);
});
