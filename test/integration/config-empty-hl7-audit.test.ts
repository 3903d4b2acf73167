/**
 * A configuration whose `hl7:` list was left with no value (its entries commented out while
 * trying something): the real CLI as a separate process from the sources.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';

const { dir, configFile } = useConfigDir('lgw-empty-hl7-');
const rest = [`gateway: { id: site-h, dataDir: ${path.join(dir, 'data')} }`, 'mqtt: { listen: { host: 127.0.0.1, port: 0 } }', 'status: { listen: { host: 127.0.0.1, port: 0 } }'];

describe('check: hl7 with no value', () => {
  /**
   * User sees (was): `check` "0 error(s), 0 warning(s)" and `start` ready, with no MLLP listener
   * at all: the LIS's connections were refused, while the README says that `hl7` left out is the
   * endpoint lis on 127.0.0.1:2575 and only `hl7: []` is none.
   * Promise: README "Configuration reference", `hl7`: "Left out: that one endpoint; `hl7: []`: none".
   */
  it('is a warning at hl7 saying that no HL7 listener opens and how to write either intent', async () => {
    const cfg = await configFile([...rest, 'hl7:', '#  - { id: lis, listen: { host: 127.0.0.1, port: 2575 } }', ''].join('\n'));
    const r = await runCli(cliSource, ['check', '--config', cfg]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/warning\s+hl7: has no value: the gateway opens no HL7\/MLLP listener.*hl7: \[\].*leave hl7 out/);
  }, 30_000);

  it('hl7: [] says none on purpose: no warning', async () => {
    const cfg = await configFile([...rest, 'hl7: []', ''].join('\n'));
    const r = await runCli(cliSource, ['check', '--config', cfg]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('0 error(s), 0 warning(s)');
  }, 30_000);
});
