/**
 * The Windows installer's own code (build/installer.nsh: the gateway address page, /GATEWAY_URL=,
 * keeping the installed address on an upgrade) compiled with Debian's makensis (package `nsis`,
 * installed by .ci/setup), inside test/fixtures/tray/installer-harness.nsi, which uses its macros
 * where electron-builder's installer does. Warnings are errors, as electron-builder builds it.
 *
 * What it guards: IT upgraded the tray on every lab PC with `Setup.exe /S` and every tray went back
 * to 127.0.0.1 (the include rewrote tray-config.json on every install), and the documented
 * `/GATEWAY_URL=http://10.0.0.5:8484` was read as `http:` (FileFunc's GetOptions ends a value at
 * the next "/"), so an unattended install never pointed a tray anywhere. Those were shown by running
 * the compiled harness under Wine (`Target amd64-unicode`, wine64): too large a package for the
 * test machines, so this test proves what needs makensis only — that the include, as changed for
 * them, compiles in both the installer and the uninstaller, and that a mistake in it fails here
 * instead of on the machine that builds the installers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const harness = path.join(root, 'test/fixtures/tray/installer-harness.nsi');
let dir = '';

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tray-nsis-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** makensis on the harness around `include`; its exit code and what it printed. */
function makensis(include: string, extra: string[] = []): { status: number | null; output: string } {
  const r = spawnSync(
    'makensis',
    ['-WX', '-V2', `-DINSTALLER_NSH=${include}`, `-DDEFAULT_CONFIG=${path.join(root, 'build/tray-config.json')}`, `-DOUTFILE=${path.join(dir, 'lab-gateway-tray.exe')}`, ...extra, harness],
    { encoding: 'utf8' },
  );
  if (r.error) throw r.error; // makensis missing: run .ci/setup (Debian package nsis)
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('build/installer.nsh (makensis)', () => {
  it('compiles into the installer, warnings counted as errors', () => {
    const r = makensis(path.join(root, 'build/installer.nsh'));
    expect(r.output).not.toMatch(/warning/i);
    expect(r.status).toBe(0);
  });

  it('compiles into the uninstaller', () => {
    const r = makensis(path.join(root, 'build/installer.nsh'), ['-DBUILD_UNINSTALLER']);
    expect(r.status).toBe(0);
  });

  it('a mistake in the include fails the build here (so the checks above mean something)', () => {
    const broken = path.join(dir, 'broken.nsh');
    const text = readFileSync(path.join(root, 'build/installer.nsh'), 'utf8');
    expect(text).toContain('    Call LabGatewayUrlOption\n');
    writeFileSync(broken, text.replace('    Call LabGatewayUrlOption\n', '    Call LabGatewayUrlOptions\n'));
    const r = makensis(broken);
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/LabGatewayUrlOptions/);
  });
});
