import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The installer configuration is checked with electron-builder's own loader and JSON-schema
 * validator (app-builder-lib getConfig + validateConfiguration), the same code `electron-builder`
 * runs before building — without downloading Electron.
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(import.meta.url);
type Config = Record<string, any>; // electron-builder's Configuration; the test reads a few fields
const { getConfig, validateConfiguration } = require('app-builder-lib/out/util/config/config.js') as {
  getConfig(projectDir: string, configPath: string | null, fromOptions: null): Promise<Config>;
  validateConfiguration(config: Config, debugLogger: unknown): Promise<void>;
};
const { DebugLogger } = require('builder-util') as { DebugLogger: new (enabled: boolean) => unknown };

async function load(): Promise<Config> {
  return getConfig(root, 'build/electron-builder.yml', null);
}

describe('build/electron-builder.yml', () => {
  it('passes electron-builder validation', async () => {
    const config = await load();
    await expect(validateConfiguration(config, new DebugLogger(false))).resolves.toBeUndefined();
  });

  it('the validator does catch a mistake (so the check above means something)', async () => {
    const config = await load();
    const broken = { ...config, nsis: { ...config.nsis, oneclick: false } };
    await expect(validateConfiguration(broken, new DebugLogger(false))).rejects.toThrow(/nsis/);
  });

  it('targets AppImage and deb for Linux and NSIS for Windows, with a category and deb dependencies', async () => {
    const c = await load();
    expect(c.appId).toBe('org.labgateway.tray');
    expect(c.productName).toBe('Lab Gateway Tray');
    expect(c.linux.target).toEqual(['AppImage', 'deb']);
    expect(c.linux.category).toBe('System');
    expect(c.deb.depends).toEqual(expect.arrayContaining(['libnotify4', 'libnss3']));
    expect(c.win.target[0].target).toBe('nsis');
    expect(c.nsis).toMatchObject({ oneClick: false, perMachine: true, include: 'build/installer.nsh' });
    expect(c.extraMetadata.main).toBe('desktop/main.cjs');
  });

  it('every file it names exists in the repository', async () => {
    const c = await load();
    const named = [c.linux.icon, c.win.icon, c.nsis.include, c.deb.afterInstall, c.deb.afterRemove, ...c.extraResources.map((r: { from: string }) => r.from), c.extraMetadata.main, 'desktop/preload.cjs'];
    for (const f of named) expect(existsSync(path.join(root, f)), f).toBe(true);
    for (const icon of ['ok', 'degraded', 'down', 'offline']) expect(existsSync(path.join(root, `desktop/assets/${icon}-32.png`)), icon).toBe(true);
    const png = readFileSync(path.join(root, c.linux.icon));
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.readUInt32BE(16)).toBeGreaterThanOrEqual(256); // width: electron-builder needs ≥ 256 px
  });

  it('the NSIS include writes the gateway address chosen at install time', () => {
    const nsh = readFileSync(path.join(root, 'build/installer.nsh'), 'utf8');
    expect(nsh).toContain('!macro customInstall');
    expect(nsh).toContain('/GATEWAY_URL=');
    expect(nsh).toContain('$INSTDIR\\resources\\tray-config.json');
    const tpl = readFileSync(path.join(root, 'build/deb-after-install.tpl'), 'utf8');
    expect(tpl).toContain('LAB_GATEWAY_URL');
    expect(tpl).toContain('/etc/lab-gateway/tray.json');
  });
});
