/**
 * Commissioning an analyzer on a serial port another program already holds (a terminal left open
 * on it while testing the cable, a second gateway, a vendor's tool): the real gateway process, a
 * socat pty pair as the line, and the other program a real serial port client holding the
 * gateway's end with its lock, as minicom or another gateway does.
 */
import path from 'node:path';
import { SerialPort } from 'serialport';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli } from '../fixtures/cli.ts';
import { getJson, startGatewayProcess, until, TEST_LISTENERS } from '../fixtures/gateway-process.ts';
import { useLineRig } from '../fixtures/astm-link/line-rig.ts';
import { startPtyPair } from '../fixtures/astm-link/pty-pair.ts';

const rig = useLineRig('lgw-commissioning-serial-busy-');
const { file, running, cleanups, ptys } = rig;

interface StatusBody {
  healthReasons: Array<{ code: string; message: string; endpoint?: string }>;
  endpoints: Array<{ id: string; state: string }>;
}

describe('an analyzer whose serial port another program holds', () => {
  /**
   * User sees (was): the analyzer in error, "cannot open /dev/ttyUSB0: Error Resource temporarily
   * unavailable Cannot lock port" (serialport's words): nothing said that another program has the
   * port open, nor what to do; IT swapped cables and adapters.
   * Promise: README "Analyzer line": an analyzer whose port cannot be opened is `error` with the
   * path and the reason; DESIGN.md §2, a clear reason.
   */
  it('the status and lab-gateway status say the port is in use by another program and what to do', async () => {
    const pty = await startPtyPair(rig.dir, ['busy-an', 'busy-gw']);
    ptys.push(pty);
    const holder = new SerialPort({ path: pty.b, baudRate: 9600, autoOpen: false });
    await new Promise<void>((resolve, reject) => holder.open((err) => (err ? reject(err) : resolve())));
    cleanups.push(() => new Promise<void>((r) => (holder.isOpen ? holder.close(() => r()) : r())));

    const cfg = await file([`gateway: { id: site-busy, dataDir: ${path.join(rig.dir, 'busy-data')} }`, TEST_LISTENERS, `analyzers: [ { id: xp-1, profile: sysmex-xp, serial: { path: ${pty.b} } } ]`, ''].join('\n'));
    const gw = startGatewayProcess(cfg);
    running.push(gw);
    const ready = await gw.ready;
    expect(ready, gw.err()).toBeDefined();
    const base = ready!.status.url.replace(/\/$/, '');
    const reason = await until('the analyzer reported down', async () => (await getJson<StatusBody>(`${base}/api/status`)).healthReasons.find((r) => r.endpoint === 'xp-1'));
    expect(reason.message).toContain(pty.b);
    expect(reason.message).toMatch(/in use by another program/);
    expect(reason.message).toMatch(/close it/);
    const cli = await runCli(cliSource, ['status', '--url', base]);
    expect(cli.out).toMatch(/in use by another program/);

    // Once the other program lets go, the gateway's next attempt opens the port.
    await new Promise<void>((r) => holder.close(() => r()));
    await until('the port opened once free', async () => ((await getJson<StatusBody>(`${base}/api/status`)).endpoints.find((e) => e.id === 'xp-1')?.state === 'connected' ? true : undefined));
  }, 60_000);
});
