/**
 * Consumption finer than Odoo keeps a stock quantity. Odoo rounds a Float to its decimal
 * precision on write ('Product Unit of Measure' 16-18, 'Product Unit' 19; 2 decimals by default):
 * a CBC profile consuming 24 mL of a diluent stocked in litres (0.024 L a run) moves 0.02 L when a
 * run is posted alone, and Odoo's stock drifts from the shelf's. `check --odoo` as IT staff run it
 * (the real CLI as a process, a real Odoo emulator), and the consumption rule against the emulator
 * (real store in a temp dir, relay, HTTP), whose quantities are rounded as Odoo rounds them.
 */
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { defaultProfilesDir } from '../../gateway/src/profiles/check.ts';
import { profileFingerprint } from '../../gateway/src/profiles/fingerprint.ts';
import { cliSource, runCli, useConfigDir } from '../fixtures/cli.ts';
import { TEST_LISTENERS } from '../fixtures/gateway-process.ts';
import { makeRig, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, idOf, productId, receiveLot } from '../fixtures/relay/helpers.ts';
import { OdooEmulator } from '../odoo-emulator/emulator.ts';

const { dir, configFile } = useConfigDir('lgw-consumption-precision-');

describe.each([17, 19] as const)('check --odoo: consumption finer than Odoo keeps it (Odoo %i)', (version) => {
  let odoo: OdooEmulator;
  let url: string;
  const profilesDir = path.join(dir, `profiles-${version}`);

  beforeAll(async () => {
    odoo = new OdooEmulator({ version, seed: 'lab-demo', users: [{ login: 'gw', password: 'pw', apiKeys: [{ key: 'good-key-123' }], rights: 'bot' }] });
    ({ url } = await odoo.listen(0));
    await writeFile(path.join(dir, 'odoo.key'), 'good-key-123\n');
    await mkdir(profilesDir, { recursive: true });
    await copyFile(path.join(defaultProfilesDir(), 'schema.json'), path.join(profilesDir, 'schema.json'));
    const profile = JSON.parse(await readFile(path.join(defaultProfilesDir(), 'generic-astm.json'), 'utf8')) as Record<string, unknown>;
    profile.name = 'site-cbc';
    profile.tests = { WBC: { code: 'WBC', name: 'White cells' } };
    profile.unmappedTests = 'report';
    profile.consumption = [
      // 0.024 L of a diluent stocked in litres: finer than 0.01 L.
      { per: 'test', test: 'WBC', productCode: 'DIL-CBC', quantity: 24, uom: 'mL' },
      // 20 mL is 0.02 L: Odoo keeps it.
      { per: 'run', productCode: 'DIL-CBC', quantity: 20, uom: 'mL', deadVolume: true },
      { per: 'test', test: 'WBC', productCode: 'TIP-200', quantity: 1, uom: 'Units' },
    ];
    profile.revision = profileFingerprint(profile);
    await writeFile(path.join(profilesDir, 'site-cbc.json'), `${JSON.stringify(profile, null, 2)}\n`);
  });
  afterAll(async () => {
    await odoo.close();
  });

  /**
   * User sees (was): `check --odoo` said "0 error(s), 0 warning(s)"; weeks later the stock keeper
   * found Odoo showing a sixth more diluent than the shelf held (0.02 L booked per 0.024 L used).
   */
  it("warns naming the profile, the product, its quantity and Odoo's precision", async () => {
    const cfg = await configFile(
      [
        `gateway: { id: site-p${version}, dataDir: ${path.join(dir, `data-${version}`)} }`,
        TEST_LISTENERS,
        `profilesDir: ${profilesDir}`,
        'analyzers:',
        '  - { id: cbc-1, profile: site-cbc, tcp: { listen: { host: 127.0.0.1, port: 0 } } }',
        `odoo: { url: ${url}, database: lab, login: gw, apiKeyFile: ${path.join(dir, 'odoo.key')}, mapping: { labLocation: WH/Stock/Lab } }`,
        '',
      ].join('\n'),
    );
    const r = await runCli(cliSource, ['check', '--odoo', '--config', cfg]);
    expect(r.code, r.out).toBe(0);
    const name = version >= 19 ? 'Product Unit' : 'Product Unit of Measure';
    expect(r.out).toMatch(new RegExp(`warning\\s+profiles\\.site-cbc\\.consumption: DIL-CBC: 24 mL per test is 0\\.024 L, finer than Odoo keeps stock quantities \\(decimal precision '${name}': 2 decimal\\(s\\), 0\\.01 L\\); a run posted on its own is posted as a multiple of 0\\.01 L, what Odoo cannot keep carried to the next consumption of that lot`));
    // Not "drifts": the carry keeps Odoo's stock right (test/integration/consumption-carry-audit.test.ts).
    expect(r.out).not.toMatch(/drifts/);
    // 20 mL and whole tips are kept as they are.
    expect(r.out).not.toMatch(/20 mL/);
    expect(r.out).not.toMatch(/TIP-200/);
  }, 30_000);
});

describe('consumption summed in a window is rounded once by Odoo', () => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  /** A consumption of the diluent as the CBC profile reports it: `mL` millilitres. */
  const aspiration = (mL: number, n: number): DraftEvent => {
    const d = consumableUsed('cbc-1', 'DIL-CBC', mL, n);
    return { ...d, data: { ...(d.data as object), uom: 'mL' } } as DraftEvent;
  };

  /**
   * Ten aspirations of 24 mL in one window (0.24 L), across two bottles (the first-expiring one
   * held 0.12 L): the gateway sends each bottle's sum of the window, not ten 0.024 L parts, so
   * Odoo's rounding to 0.01 L is applied to the sums and its stock goes down by the 0.24 L used.
   * One run posted alone moves 0.02 L for its 0.024 L (what `check --odoo` warns about).
   */
  it("Odoo's stock goes down by the window's total; a run alone by Odoo's rounding of it", async () => {
    rig = await makeRig(17, { start: false });
    const emu = rig.emu;
    const pid = productId(emu, 'DIL-CBC');
    const lab = idOf(emu, 'stock.location', [['name', '=', 'Lab']]);
    receiveLot(emu, pid, 'D24-EARLY', lab, 0.12, 20);
    const onHand = (): number => emu.records('stock.quant', [['product_id', '=', pid]]).filter((q) => q['location_id'] === lab).reduce((s, q) => s + Number(q['quantity']), 0);
    const round = (n: number): number => Math.round(n * 1e6) / 1e6;
    const before = onHand();
    await rig.commit(Array.from({ length: 10 }, (_, i) => aspiration(24, i + 1)));
    await rig.relay.start();
    await rig.waitDrained();
    const lines = emu.records('stock.move.line', [['product_id', '=', pid], ['location_dest_id', '!=', lab]]);
    expect(lines.map((l) => l['quantity'])).toEqual([0.12, 0.12]);
    expect(round(before - onHand())).toBe(0.24);
    // A run on its own: 0.024 L, kept by Odoo as 0.02 L.
    await rig.commit([aspiration(24, 11)]);
    await rig.waitDrained();
    expect(round(before - onHand())).toBe(0.26);
  });
});
