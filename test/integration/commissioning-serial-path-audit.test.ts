/**
 * Commissioning an analyzer on a serial line, the path of its port as IT writes it: the real CLI
 * (`lab-gateway check|start`, separate processes from the sources, run from the repository root as
 * a service runs from its own folder, not the config's) and a socat pty pair as the RS-232 line.
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli } from '../fixtures/cli.ts';
import { getJson, startGatewayProcess, until, TEST_LISTENERS } from '../fixtures/gateway-process.ts';
import { useLineRig } from '../fixtures/astm-link/line-rig.ts';
import { startPtyPair } from '../fixtures/astm-link/pty-pair.ts';
import { openSerialSim } from '../fixtures/astm-link/sim-wires.ts';

const rig = useLineRig('lgw-commissioning-serial-path-');
const { file, running, cleanups, ptys } = rig;

interface StatusBody {
  endpoints: Array<{ id: string; state: string; connections: number }>;
}

describe('a serial.path written relative to the config file', () => {
  /**
   * User sees (was): the config kept beside its ports' links (`serial: { path: xp-line }`, the link
   * in the config's folder): `check` said "0 error(s)" (it compared the path as resolved against
   * the config's folder), `start` was ready, and the analyzer was "in error": "cannot open xp-line:
   * No such file or directory" — the gateway opened the path from the folder it was started in.
   * Promise: README "Relative paths are resolved against the config file's folder".
   * Cause (was): config/validate.ts resolved serial.path only for the one-port-one-analyzer check
   * and kept it as written; serial-transport.ts opened it relative to the process.
   */
  it('is opened from the config file\'s folder, whatever folder the gateway runs in, and the analyzer\'s message is stored', async () => {
    const pty = await startPtyPair(rig.dir, ['xp-analyzer', 'xp-line']);
    ptys.push(pty);
    const cfg = await file([`gateway: { id: site-rel, dataDir: ${path.join(rig.dir, 'rel-data')} }`, TEST_LISTENERS, 'analyzers: [ { id: xp-1, profile: sysmex-xp, serial: { path: xp-line } } ]', ''].join('\n'));
    const checked = await runCli(cliSource, ['check', '--config', cfg]);
    expect(checked.code, checked.out).toBe(0);

    const gw = startGatewayProcess(cfg);
    running.push(gw);
    const ready = await gw.ready;
    expect(ready, gw.err()).toBeDefined();
    const base = ready!.status.url.replace(/\/$/, '');
    const st = await until('the analyzer line opened or in error', async () => {
      const s = await getJson<StatusBody>(`${base}/api/status`);
      const e = s.endpoints.find((x) => x.id === 'xp-1');
      return e && (e.state === 'connected' || e.state === 'error') ? e : undefined;
    });
    expect(st.state, gw.err()).toBe('connected');

    const { sim } = await openSerialSim(pty.a, cleanups);
    const sent = await sim.sendMessage(['H|\\^&|||XP-100^00-10^11001^^^^12345678||||||||E1394-97', 'P|1', 'O|1||^^1002345^B|^^^^WBC\\^^^^RBC|||||||N', 'R|1|^^^^WBC^1|6.3|10*3/uL||N||||||20260114101500', 'L|1|N']);
    expect(sent.replies).toBe('<ACK><ACK><ACK><ACK><ACK><ACK>');
    const stored = await until('the message stored', async () => {
      const r = await getJson<{ messages: Array<{ endpoint: string; status: string }> }>(`${base}/api/messages?endpoint=xp-1`);
      return r.messages[0];
    });
    expect(stored.status).toBe('accepted');
  }, 60_000);
});

describe('a serial.path written without /dev/', () => {
  /**
   * User sees (was): `serial: { path: ttyUSB0 }` (the port's name as `dmesg` prints it): `check`
   * said "0 error(s), 0 warning(s)"; the analyzer was then in error, "cannot open ttyUSB0". The path
   * is read from the config's folder, where no such port is: check warns, naming the key, the path
   * read and the port under /dev it most likely means. A warning, not an error: start keeps trying
   * a port that is missing (an adapter plugged in later opens by itself).
   */
  it('check warns at the analyzer\'s serial.path and names the port under /dev', async () => {
    const pty = await startPtyPair(rig.dir, ['an-dev', 'gw-dev']);
    ptys.push(pty);
    const device = realpathSync(pty.b); // /dev/pts/N: the pty's own name under /dev
    const written = path.relative('/dev', device); // pts/N, as ttyUSB0 is written for /dev/ttyUSB0
    const cfg = await file([`gateway: { id: site-dev, dataDir: ${path.join(rig.dir, 'dev-data')} }`, TEST_LISTENERS, `analyzers: [ { id: xp-2, profile: sysmex-xp, serial: { path: ${written} } } ]`, ''].join('\n'));
    const checked = await runCli(cliSource, ['check', '--config', cfg]);
    expect(checked.code, checked.out).toBe(0);
    const line = checked.out.split('\n').find((l) => l.includes('analyzers[0].serial.path'));
    expect(line).toMatch(/^\s*warning\s+analyzers\[0\]\.serial\.path: /);
    expect(line).toContain(`${path.join(path.dirname(cfg), written)} does not exist; did you mean ${device}?`);
  }, 60_000);
});
