import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import path from 'node:path';
import { builderFiles, root, trayRuntimePackages } from '../fixtures/tray/packaging.ts';

/**
 * What the packaged tray ships, worked out with electron-builder's own code: its npm node-module
 * collector (the list of production packages it copies into app.asar) and the `files` patterns of
 * build/electron-builder.yml, read by its own config loader.
 */
const require = createRequire(import.meta.url);

interface NodeModuleInfo {
  name: string;
  dir: string;
  dependencies?: NodeModuleInfo[];
}
const { getCollectorByPackageManager, PM } = require('app-builder-lib/out/node-module-collector/index.js') as {
  getCollectorByPackageManager(pm: string, dir: string, tmp: unknown): { getNodeModules(o: { packageName: string }): Promise<{ nodeModules: NodeModuleInfo[] }> };
  PM: { NPM: string };
};
const { TmpDir } = require('temp-file') as { TmpDir: new (name: string) => { cleanup(): Promise<void> } };

describe('the packaged tray', () => {
  /**
   * IT sees: the tray installer carries the gateway's own libraries — Odoo's HTTP client stack
   * (keyv, normalize-url, get-stream, mimic-response…), the config validator's (fast-deep-equal,
   * json-schema-traverse, require-from-string), OpenTelemetry's API, the C++ headers of
   * node-addon-api — on every technician's PC, though the tray loads none of them.
   * Promise: build/electron-builder.yml "Gateway-only dependencies stay out of the tray"; the
   * tray "uses only `mqtt` at run time". The exclusion list named each gateway library but not
   * the libraries those pull in, which electron-builder then copied.
   */
  it('ships no production package the tray does not load (only mqtt and its dependencies)', async () => {
    const tmp = new TmpDir('tray-packaging');
    let modules: NodeModuleInfo[];
    try {
      modules = (await getCollectorByPackageManager(PM.NPM, root, tmp).getNodeModules({ packageName: 'lab-gateway' })).nodeModules;
    } finally {
      await tmp.cleanup();
    }
    const { excluded } = await builderFiles();

    const all: NodeModuleInfo[] = [];
    const walk = (list: NodeModuleInfo[]): void => {
      for (const m of list) {
        all.push(m);
        walk(m.dependencies ?? []);
      }
    };
    walk(modules);
    expect(all.map((m) => m.name)).toContain('mqtt'); // the collector did list the production tree
    const needed = trayRuntimePackages();
    const shipped = all.map((m) => path.relative(root, m.dir).split(path.sep).join('/')).filter((rel) => !excluded(`${rel}/package.json`));
    expect(shipped.filter((rel) => !needed.has(rel))).toEqual([]);
    // And everything the tray loads is still there.
    for (const rel of needed) expect(shipped, rel).toContain(rel);
  });
});
