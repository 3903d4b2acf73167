/**
 * `lab-gateway check` as IT staff run it while commissioning a new analyzer on a fresh box: the
 * real CLI as a separate process from the sources, a real Odoo emulator for `--odoo`. What is
 * asserted is what the IT person reads: the exit code and the issue naming the key.
 */
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultProfilesDir } from '../../gateway/src/profiles/check.ts';
import { profileFingerprint } from '../../gateway/src/profiles/fingerprint.ts';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';
import { TEST_LISTENERS } from '../fixtures/gateway-process.ts';
import { OdooEmulator } from '../odoo-emulator/emulator.ts';

const { dir, configFile } = useConfigDir('lgw-commissioning-check-');

describe('check: two analyzers the gateway connects to at one address', () => {
  /**
   * User sees (was): a second analyzer block copied from the first, its tcp.connect address left
   * unchanged: `check` said "0 error(s)" and `start` ran two links to one analyzer (most take one
   * LIS connection and refuse or starve the other; one that takes both sends its results on
   * either, filed under either analyzer's id and read with either's profile).
   * Promise: DESIGN.md §5 `check` "validate config and profiles, print every issue, exit 1 on any
   * error"; the rule check already applies to two analyzers on one serial port or one listener.
   */
  it('names the second analyzer\'s tcp.connect and the analyzer that already connects there', async () => {
    const cfg = await configFile(
      [
        `gateway: { id: site-c, dataDir: ${path.join(dir, 'data-c')} }`,
        TEST_LISTENERS,
        'analyzers:',
        '  - { id: gx-1, profile: cepheid-genexpert, tcp: { connect: { host: 10.20.0.15, port: 12000 } } }',
        '  - { id: gx-2, profile: cepheid-genexpert, tcp: { connect: { host: 10.20.0.15, port: 12000 } } }',
        '',
      ].join('\n'),
    );
    const r = await runCli(cliSource, ['check', '--config', cfg]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error\s+analyzers\[1\]\.tcp\.connect: 10\.20\.0\.15:12000 is already used by analyzers\[0\] \(gx-1\)/);
  }, 30_000);

  /** A host name is matched whatever its case (DNS names are case-blind); other ports are fine. */
  it('a host name in another case is the same analyzer; another port is another analyzer', async () => {
    const cfg = await configFile(
      [
        `gateway: { id: site-d, dataDir: ${path.join(dir, 'data-d')} }`,
        TEST_LISTENERS,
        'analyzers:',
        '  - { id: gx-1, profile: cepheid-genexpert, tcp: { connect: { host: genexpert.lab.example, port: 12000 } } }',
        '  - { id: gx-2, profile: cepheid-genexpert, tcp: { connect: { host: GeneXpert.Lab.Example, port: 12000 } } }',
        '  - { id: gx-3, profile: cepheid-genexpert, tcp: { connect: { host: genexpert.lab.example, port: 12001 } } }',
        '',
      ].join('\n'),
    );
    const r = await runCli(cliSource, ['check', '--config', cfg]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error\s+analyzers\[1\]\.tcp\.connect: .*analyzers\[0\] \(gx-1\)/);
    expect(r.out).not.toMatch(/analyzers\[2\]/);
  }, 30_000);
});

describe('check --odoo: a profile whose consumption names a product Odoo does not have', () => {
  let odoo: OdooEmulator;
  let url: string;
  const profilesDir = path.join(dir, 'profiles');

  beforeAll(async () => {
    odoo = new OdooEmulator({ version: 17, seed: 'lab-demo', users: [{ login: 'gw', password: 'pw', apiKeys: [{ key: 'good-key-123' }], rights: 'bot' }] });
    ({ url } = await odoo.listen(0));
    await writeFile(path.join(dir, 'odoo.key'), 'good-key-123\n');
    // The site's own profile for a glucose analyzer: its cartridge is in Odoo (RGT-GLU), its
    // cuvettes are written with a code no product carries (CUV-1000 for the seeded CUV-01).
    await mkdir(profilesDir, { recursive: true });
    await copyFile(path.join(defaultProfilesDir(), 'schema.json'), path.join(profilesDir, 'schema.json'));
    const profile = JSON.parse(await readFile(path.join(defaultProfilesDir(), 'generic-astm.json'), 'utf8')) as Record<string, unknown>;
    profile.name = 'site-glucose';
    profile.tests = { GLU: { code: 'GLU', name: 'Glucose' } };
    profile.unmappedTests = 'report';
    profile.consumption = [
      { per: 'test', test: 'GLU', productCode: 'RGT-GLU', quantity: 1, uom: 'Units' },
      { per: 'test', test: '*', productCode: 'CUV-1000', quantity: 1, uom: 'Units' },
    ];
    profile.revision = profileFingerprint(profile);
    await writeFile(path.join(profilesDir, 'site-glucose.json'), `${JSON.stringify(profile, null, 2)}\n`);
  });
  afterAll(async () => {
    await odoo.close();
  });

  /**
   * User sees (was): `check --odoo` said "0 error(s)" (it checked the consumption units of the
   * products it found and skipped those it did not); from the first patient on, every run's
   * consumption went to the dead letters "has no Odoo product with default_code CUV-1000".
   * Promise: README `check --odoo` connects to the configured Odoo and reports what does not
   * resolve; DESIGN.md §3 "mapping problems surface before posting, not as Odoo errors".
   */
  it('names the profile, the product code and that Odoo has no such product; a product Odoo has is not reported', async () => {
    const cfg = await configFile(
      [
        `gateway: { id: site-e, dataDir: ${path.join(dir, 'data-e')} }`,
        TEST_LISTENERS,
        `profilesDir: ${profilesDir}`,
        'analyzers:',
        '  - { id: glu-1, profile: site-glucose, tcp: { listen: { host: 127.0.0.1, port: 0 } } }',
        `odoo: { url: ${url}, database: lab, login: gw, apiKeyFile: ${path.join(dir, 'odoo.key')}, mapping: { labLocation: WH/Stock/Lab } }`,
        '',
      ].join('\n'),
    );
    const r = await runCli(cliSource, ['check', '--odoo', '--config', cfg]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/error\s+profiles\.site-glucose\.consumption: .*CUV-1000.*no Odoo product/);
    expect(r.out).not.toMatch(/RGT-GLU/);
  }, 30_000);
});
