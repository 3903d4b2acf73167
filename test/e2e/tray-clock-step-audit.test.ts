/**
 * The tray on a lab PC whose clock is stepped (the time service setting it right): the tray's
 * main process (desktop/src/main.ts) with its real MQTT client against a real gateway process.
 * Only Electron is stood in.
 */
import { describe, expect, it, vi } from 'vitest';
import path from 'node:path';
import { startGatewayProcess, until } from '../fixtures/gateway-process.ts';
import { freePort } from '../fixtures/status/harness.ts';
import { powerEvent, screen } from '../fixtures/tray/electron-stand-in.ts';
import { startTrayProcess } from '../fixtures/tray/start-tray.ts';
import { useTrayRig } from '../fixtures/tray/tray-rig.ts';

vi.mock('electron', () => import('../fixtures/tray/electron-stand-in.ts'));
vi.mock('node:fs', async (real) => (await import('../fixtures/tray/desktop-fs.ts')).desktopFs(await real()));

const rig = useTrayRig('tray-clock-');
const file = rig.file;
const gateways = rig.gateways;

/** A quiet gateway (it re-publishes once a minute) and the tray on it, green. */
async function greenTray(): Promise<void> {
  const mqttPort = await freePort();
  const config = await file(
    [
      `gateway: { id: lab-1, dataDir: ${path.join(rig.dir, 'data')} }`,
      'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
      `mqtt: { broker: embedded, listen: { host: 127.0.0.1, port: ${mqttPort} }, publishIntervalMs: 60000 }`,
      'status: { listen: { host: 127.0.0.1, port: 0 } }',
    ].join('\n') + '\n',
  );
  const g = startGatewayProcess(config);
  gateways.push(g);
  const ready = await g.ready;
  if (!ready) throw new Error(`gateway did not start: ${g.err().slice(-2000)}`);
  await startTrayProcess([`--gateway-url=${ready.status.url.replace(/\/$/, '')}`, `--mqtt-url=mqtt://127.0.0.1:${mqttPort}`]);
  rig.trayRunning = true;
  await until('all good', () => screen.icons.at(-1) === 'ok', 20_000);
}

describe("the lab PC's clock is stepped", () => {
  /**
   * User sees: the PC booted with its clock an hour slow (a flat CMOS battery); a few minutes
   * later the time service sets it right. The tray turns grey, "Gateway offline — no status for
   * 60 min", while the gateway runs and results flow: it counted the hour the clock jumped as an
   * hour without a status, until the gateway's next publish (a minute here, 10 at sites that set
   * it so). The technician calls IT about a gateway that never stopped.
   * Promise: desktop/README.md "no status arrived for three of the gateway's publish intervals"
   * shows grey — time that passed, not a clock that moved.
   */
  it('a clock set forward is not taken for time without a status', async () => {
    await greenTray();
    // The gateway's start-up statuses are out (its first disk read, …): it is quiet until its next minute.
    await new Promise((r) => setTimeout(r, 5_000));
    const realNow = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 3_600_000);
    // The tray's next look (every 15 s).
    const looks = screen.tooltips.length;
    await new Promise((r) => setTimeout(r, 16_000));
    expect(screen.icons.at(-1)).toBe('ok');
    expect(screen.tooltips.slice(looks)).not.toContainEqual(expect.stringMatching(/no status for/));
  }, 60_000);

  /** The other side: a PC that slept an hour (its monotonic clock stood still) turns grey at once as it wakes. */
  it('an hour of sleep still counts', async () => {
    await greenTray();
    powerEvent('suspend');
    const realNow = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 3_600_000);
    powerEvent('resume');
    expect(screen.icons.at(-1)).toBe('offline');
    expect(screen.tooltips.at(-1)).toMatch(/no status for 60 min/);
  }, 60_000);
});
