/**
 * The .deb's post-install (build/deb-after-install.tpl) writes /etc/lab-gateway/tray.json, the
 * address the tray reads (desktop/src/tray-config.ts). Its part between `# >>> tray.json` and
 * `# <<< tray.json` is run here by bash, as dpkg runs it, with its folder moved to a temporary
 * one, after the template is filled in as electron-builder does; what it wrote is then read by
 * the tray's own settings code.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveTrayConfig } from '../../desktop/src/tray-config.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const template = readFileSync(path.join(root, 'build/deb-after-install.tpl'), 'utf8');
let dir = '';
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tray-deb-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/**
 * The template as electron-builder fills it in (app-builder-lib FpmTarget writeConfigFile): every
 * `${name}` is one of its values, and a name it does not know fails the build.
 */
function filled(text: string): string {
  const values: Record<string, string> = { executable: 'lab-gateway-tray', sanitizedProductName: 'Lab Gateway Tray', productFilename: 'Lab Gateway Tray' };
  return text.replace(/\${([a-zA-Z]+)}/g, (_m, name: string) => {
    if (!(name in values)) throw new Error(`Macro ${name} is not defined`);
    return values[name]!;
  });
}

/** Run the tray.json part of the post-install, as dpkg would with this environment. */
function postinst(env: Record<string, string> = {}, umask = '022'): { status: number | null; stderr: string } {
  const part = /# >>> tray\.json[^\n]*\n([\s\S]*?)# <<< tray\.json/.exec(filled(template))?.[1];
  if (!part) throw new Error('no "# >>> tray.json" part in build/deb-after-install.tpl');
  // stdin not a socket, no rc file: the script alone, as dpkg runs it.
  const r = spawnSync('bash', ['--norc', '-e', '-c', `umask ${umask}\n${part.replaceAll('/etc/lab-gateway', dir)}`], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  return { status: r.status, stderr: r.stderr };
}

const conf = (): string => path.join(dir, 'tray.json');
/** What the tray makes of the file: its address, and the settings problems it would show. */
function trayReads(): { gatewayUrl: string; adminTokenFile?: string; issues: string[] } {
  const c = resolveTrayConfig({ argv: [], env: {}, files: [{ path: conf(), text: readFileSync(conf(), 'utf8') }] });
  return { gatewayUrl: c.gatewayUrl, ...(c.adminTokenFile ? { adminTokenFile: c.adminTokenFile } : {}), issues: c.issues };
}
const installed = '{\n  "gatewayUrl": "http://10.0.0.5:8484",\n  "adminTokenFile": "/etc/lab-gateway/admin.token"\n}\n';

describe('.deb post-install: /etc/lab-gateway/tray.json', () => {
  it('first install: the default address, or the one given', () => {
    expect(postinst().status).toBe(0);
    expect(trayReads()).toEqual({ gatewayUrl: 'http://127.0.0.1:8484', issues: [] });
    rmSync(conf());
    expect(postinst({ LAB_GATEWAY_URL: 'http://10.0.0.5:8484' }).status).toBe(0);
    expect(trayReads()).toEqual({ gatewayUrl: 'http://10.0.0.5:8484', issues: [] });
  });

  it('an upgrade without LAB_GATEWAY_URL leaves the file as it was', () => {
    writeFileSync(conf(), installed);
    expect(postinst().status).toBe(0);
    expect(readFileSync(conf(), 'utf8')).toBe(installed);
  });

  /**
   * User sees: IT's upgrade script passes the address again (sudo env LAB_GATEWAY_URL=… dpkg -i);
   * the file was rewritten with the address only, so the admin token file IT had added was gone
   * and Pause/Resume vanished from every tray's menu.
   */
  it('an upgrade with LAB_GATEWAY_URL replaces the address and keeps the other settings', () => {
    writeFileSync(conf(), installed);
    expect(postinst({ LAB_GATEWAY_URL: 'http://10.0.0.9:8484' }).status).toBe(0);
    expect(trayReads()).toEqual({ gatewayUrl: 'http://10.0.0.9:8484', adminTokenFile: '/etc/lab-gateway/admin.token', issues: [] });
  });

  /**
   * User sees: IT typed the address as the gateway's page shows it without the scheme
   * (10.0.0.5:8484); the tray refused it and watched 127.0.0.1 on every PC, grey.
   */
  it('an address without http:// is completed', () => {
    expect(postinst({ LAB_GATEWAY_URL: ' 10.0.0.5:8484 ' }).status).toBe(0);
    expect(trayReads()).toEqual({ gatewayUrl: 'http://10.0.0.5:8484', issues: [] });
  });

  /**
   * User sees: an address with a quote in it (a copy-paste) made the file invalid JSON: the tray
   * ignored the whole file. Refused, the installed file stays usable and the install says why.
   */
  it('an address the tray would refuse is not written, and the install says why', () => {
    writeFileSync(conf(), installed);
    for (const bad of ['ftp://10.0.0.5', 'http://10.0.0.5:8484"x', 'http://tray:secret@10.0.0.5:8484', 'http://']) {
      const r = postinst({ LAB_GATEWAY_URL: bad });
      expect(r.status, bad).toBe(0); // a failed post-install would leave the package half-configured
      expect(r.stderr, bad).toMatch(/LAB_GATEWAY_URL/);
      expect(readFileSync(conf(), 'utf8'), bad).toBe(installed);
    }
  });

  /**
   * User sees: IT's tray.json had an address with an escaped quote in it; the upgrade's edit cut
   * the value at the escape and left a stray fragment: invalid JSON, the tray ignored the whole
   * file (and its admin token file). An address kept as null or a number got a second
   * "gatewayUrl" key inserted. A file the edit cannot safely change is left as it was, and the
   * install says why.
   */
  it('an installed address that is not a plain one-line string is left as it was, and the install says why', () => {
    for (const value of ['"http://10.0.0.5:8484/?x=\\"a\\""', 'null', '8484', '"http://10.0.0.5:8484" ,\n  "gatewayUrl": "http://10.0.0.6:8484"']) {
      const text = `{\n  "gatewayUrl": ${value},\n  "adminTokenFile": "/etc/lab-gateway/admin.token"\n}\n`;
      writeFileSync(conf(), text);
      const r = postinst({ LAB_GATEWAY_URL: 'http://10.0.0.9:8484' });
      expect(r.status, value).toBe(0);
      expect(r.stderr, value).toMatch(/LAB_GATEWAY_URL.*gatewayUrl/);
      expect(readFileSync(conf(), 'utf8'), value).toBe(text);
    }
  });

  /** The one-line file a first install writes is still updated by a later upgrade. */
  it('the file a first install wrote takes a new address on upgrade', () => {
    expect(postinst().status).toBe(0);
    expect(postinst({ LAB_GATEWAY_URL: 'http://10.0.0.9:8484' }).status).toBe(0);
    expect(trayReads()).toEqual({ gatewayUrl: 'http://10.0.0.9:8484', issues: [] });
  });

  /**
   * User sees: IT made tray.json readable by a group only (mode 0640 or 0600, it names the admin
   * token file); every upgrade made it world-readable again. Only a file the install creates gets
   * its mode set.
   */
  it('an upgrade keeps the mode IT chose; a file the install creates is readable by all', () => {
    writeFileSync(conf(), installed);
    chmodSync(conf(), 0o600);
    expect(postinst().status).toBe(0);
    expect(statSync(conf()).mode & 0o777).toBe(0o600);
    expect(postinst({ LAB_GATEWAY_URL: 'http://10.0.0.9:8484' }).status).toBe(0);
    expect(statSync(conf()).mode & 0o777).toBe(0o600);
    expect(trayReads().gatewayUrl).toBe('http://10.0.0.9:8484');
    rmSync(conf());
    expect(postinst({}, '077').status).toBe(0);
    expect(statSync(conf()).mode & 0o777).toBe(0o644);
  });
});
