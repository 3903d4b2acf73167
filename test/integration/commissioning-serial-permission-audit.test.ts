/**
 * Commissioning an analyzer on a serial port the gateway's user may not open (the service user not
 * in the `dialout` group): the real gateway process run as an unprivileged user (`setpriv`, as
 * systemd's `User=` runs it), a socat pty pair as the line, its gateway end left as socat makes it
 * (mode 600, owner root), so the kernel answers EACCES.
 */
import { spawn } from 'node:child_process';
import { chmod, chown, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, repo, runCli } from '../fixtures/cli.ts';
import { getJson, until, TEST_LISTENERS, type GatewayReady } from '../fixtures/gateway-process.ts';
import { useLineRig } from '../fixtures/astm-link/line-rig.ts';
import { startPtyPair } from '../fixtures/astm-link/pty-pair.ts';

const rig = useLineRig('lgw-commissioning-serial-permission-');
const { file, cleanups, ptys } = rig;

const NOBODY = 65534;

interface StatusBody {
  healthReasons: Array<{ code: string; message: string; endpoint?: string }>;
  endpoints: Array<{ id: string; state: string }>;
}

/** `lab-gateway start --config FILE` as the user nobody (group nogroup, no other group). */
function startAsNobody(cfg: string): { ready: Promise<GatewayReady | undefined>; err: () => string; stop: () => Promise<void> } {
  const child = spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, cliSource, 'start', '--config', cfg], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const ready = new Promise<GatewayReady | undefined>((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"event":"ready"'));
      if (line) resolve(JSON.parse(line) as GatewayReady);
    });
    void exited.then(() => resolve(undefined));
  });
  return {
    ready,
    err: () => err,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

describe('an analyzer whose serial port the gateway\'s user may not open', () => {
  /**
   * User sees (was): the analyzer in error, "cannot open /dev/ttyUSB0: Error: Permission denied,
   * cannot open /dev/ttyUSB0": nothing said that the gateway runs as a user of its own, which one,
   * nor that serial ports are opened through the dialout group.
   * Promise: README "Analyzer line": an analyzer whose port cannot be opened is `error` with the
   * path and the reason; DESIGN.md §2, a clear reason.
   */
  it('the status and lab-gateway status name the user, the dialout group, and the restart', async () => {
    // A folder nobody may enter, with a data dir nobody may write.
    await chmod(rig.dir, 0o755);
    const dataDir = path.join(rig.dir, 'perm-data');
    await mkdir(dataDir);
    await chown(dataDir, NOBODY, NOBODY);
    const pty = await startPtyPair(rig.dir, ['perm-an', 'perm-gw']);
    ptys.push(pty);

    const cfg = await file([`gateway: { id: site-perm, dataDir: ${dataDir} }`, TEST_LISTENERS, `analyzers: [ { id: xp-1, profile: sysmex-xp, serial: { path: ${pty.b} } } ]`, ''].join('\n'));
    const gw = startAsNobody(cfg);
    cleanups.push(gw.stop);
    const ready = await gw.ready;
    expect(ready, gw.err()).toBeDefined();
    const base = ready!.status.url.replace(/\/$/, '');
    const reason = await until('the analyzer reported down', async () => (await getJson<StatusBody>(`${base}/api/status`)).healthReasons.find((r) => r.endpoint === 'xp-1'));
    expect(reason.message).toContain(`cannot open ${pty.b}: the gateway's user (nobody) may not open it (permission denied)`);
    expect(reason.message).toContain('add nobody to the dialout group (usermod -aG dialout nobody) and restart the gateway');
    // This device (socat's pty) lets no group open it: said too, with what a serial device normally is.
    expect(reason.message).toMatch(/mode 600, owner root/);
    const cli = await runCli(cliSource, ['status', '--url', base]);
    expect(cli.out).toContain("the gateway's user (nobody) may not open it");
  }, 60_000);
});
