/**
 * Commissioning an analyzer on a serial line whose `serial.path` is written absolute, as IT staff
 * write it (/dev/ttyUSB0, /dev/serial/by-id/…): the real CLI (`lab-gateway check|start`, separate
 * processes from the sources), a socat pty pair as the real character device, a temp regular file
 * and a directory for the paths that name no serial port at all.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli } from '../fixtures/cli.ts';
import { startGatewayProcess, TEST_LISTENERS } from '../fixtures/gateway-process.ts';
import { useLineRig } from '../fixtures/astm-link/line-rig.ts';
import { startPtyPair } from '../fixtures/astm-link/pty-pair.ts';

const rig = useLineRig('lgw-commissioning-serial-device-');
const { file, running, ptys } = rig;

/** A config with one analyzer on `serialPath`, its data under the rig's folder. */
function site(id: string, serialPath: string): Promise<string> {
  return file([`gateway: { id: ${id}, dataDir: ${path.join(rig.dir, `${id}-data`)} }`, TEST_LISTENERS, `analyzers: [ { id: xp-1, profile: sysmex-xp, serial: { path: ${serialPath} } } ]`, ''].join('\n'));
}

/** The line check printed for `key`, or undefined. */
function lineOf(out: string, key: string): string | undefined {
  return out.split('\n').find((l) => l.includes(`${key}:`));
}

describe('an absolute serial.path', () => {
  /**
   * A real character device (the gateway end of a socat pty pair, through its link): nothing to say.
   */
  it('a character device that is there: check says nothing of it', async () => {
    const pty = await startPtyPair(rig.dir, ['dev-an', 'dev-gw']);
    ptys.push(pty);
    const r = await runCli(cliSource, ['check', '--config', await site('site-ok', pty.b)]);
    expect(r.code, r.out).toBe(0);
    expect(lineOf(r.out, 'analyzers[0].serial.path')).toBeUndefined();
  }, 30_000);

  /**
   * User sees (was): `serial: { path: /dev/serial/by-id/usb-…-port0 }`, the USB adapter not plugged
   * in yet (or another adapter's name copied): `check` said "0 error(s), 0 warning(s)"; the analyzer
   * was then in error, "cannot open …: No such file or directory". Only a relative path was looked
   * for. Now a warning, not an error: start keeps trying a port that is missing, and an adapter
   * plugged in later opens by itself.
   */
  it('a path that does not exist: a warning at the key, saying the gateway keeps trying to open it', async () => {
    const absent = '/dev/serial/by-id/usb-lgw-test-absent-adapter-if00-port0';
    const r = await runCli(cliSource, ['check', '--config', await site('site-absent', absent)]);
    expect(r.code, r.out).toBe(0);
    const line = lineOf(r.out, 'analyzers[0].serial.path');
    expect(line).toMatch(/^\s*warning\s+analyzers\[0\]\.serial\.path: /);
    expect(line).toContain(`${absent} does not exist`);
    expect(line).toContain('the gateway would keep trying to open it');
  }, 30_000);

  /**
   * User sees (was): a regular file named as the port (a log file, a capture of the line saved
   * where the port's name was meant): `check` said nothing, `start` was ready, and the analyzer was
   * in error forever, retrying a file that can never be a line. Now an error at the key, and
   * `start` refuses it as check does.
   */
  it('a regular file: an error at the key, and start refuses it', async () => {
    const plain = path.join(rig.dir, 'ttyUSB0.log');
    await writeFile(plain, 'H|\\^&\r');
    const cfg = await site('site-file', plain);
    const r = await runCli(cliSource, ['check', '--config', cfg]);
    expect(r.code, r.out).toBe(1);
    const line = lineOf(r.out, 'analyzers[0].serial.path');
    expect(line).toMatch(/^\s*error\s+analyzers\[0\]\.serial\.path: /);
    expect(line).toContain(`${plain} is a regular file, not a serial port`);

    const gw = startGatewayProcess(cfg);
    running.push(gw);
    expect(await gw.ready, 'start refuses what check refuses').toBeUndefined();
    expect((await gw.exited).code).not.toBe(0);
    expect(gw.err()).toContain('analyzers[0].serial.path');
  }, 30_000);

  /** A directory (the folder of the by-id links, without the link's name): an error at the key. */
  it('a directory: an error at the key, naming what to write instead', async () => {
    const folder = path.join(rig.dir, 'by-id');
    await mkdir(folder, { recursive: true });
    const r = await runCli(cliSource, ['check', '--config', await site('site-dir', folder)]);
    expect(r.code, r.out).toBe(1);
    const line = lineOf(r.out, 'analyzers[0].serial.path');
    expect(line).toMatch(/^\s*error\s+analyzers\[0\]\.serial\.path: /);
    expect(line).toContain(`${folder} is a directory, not a serial port`);
    expect(line).toContain('/dev/serial/by-id/');
  }, 30_000);
});
