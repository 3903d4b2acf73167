/**
 * The tray said "the gateway runs (its status page answers)" of a gateway cut off from the broker
 * (its Last Will), and the PC slept meanwhile; the gateway died while it slept. The tray's main
 * process (desktop/src/main.ts) with its real MQTT client, a real Mosquitto, a real gateway process
 * whose MQTT connection goes through a TCP relay the test cuts; the sleep is Electron's
 * powerMonitor `suspend` and `resume` (the stand-in's). Only Electron is stood in.
 *
 * Before: at the wake the tray showed the page's answer from before the sleep as current, "the
 * gateway runs", until its next request (desktop/README.md: "the state from before the sleep is
 * never shown as current").
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { getJson, startGatewayProcess, until } from '../fixtures/gateway-process.ts';
import { useMosquitto } from '../fixtures/status/harness.ts';
import { powerEvent, screen } from '../fixtures/tray/electron-stand-in.ts';
import { startTrayProcess } from '../fixtures/tray/start-tray.ts';
import { useTrayRig } from '../fixtures/tray/tray-rig.ts';
import type { TcpRelay } from '../fixtures/net/tcp-relay.ts';
import { configBehindRelay } from '../fixtures/tray/behind-relay.ts';

vi.mock('electron', () => import('../fixtures/tray/electron-stand-in.ts'));
vi.mock('node:fs', async (real) => (await import('../fixtures/tray/desktop-fs.ts')).desktopFs(await real()));

const rig = useTrayRig('review-s22-tray-sleep-answer-');
const broker = useMosquitto('review-s22-tray-sleep-answer-broker-');

const relays: TcpRelay[] = [];
afterEach(async () => {
  for (const r of relays.splice(0)) await r.cut();
});

describe("the page's answer and the PC's sleep", () => {
  it('is not shown as current after the PC wakes', async () => {
    const { relay, config, gatewayUrl } = await configBehindRelay(rig, () => broker.port, relays);
    const g = startGatewayProcess(config);
    rig.gateways.push(g);
    if (!(await g.ready)) throw new Error(`gateway did not start: ${g.err().slice(-2000)}`);
    await until('the gateway publishing', async () => (await getJson<{ mqtt: { connected: boolean } | null }>(`${gatewayUrl}/api/status`)).mqtt?.connected);

    await startTrayProcess([`--gateway-url=${gatewayUrl}`, `--mqtt-url=mqtt://127.0.0.1:${broker.port}`]);
    rig.trayRunning = true;
    const tooltip = (): string => screen.tooltips.at(-1) ?? '';
    await until('the tray shows the gateway', () => tooltip() === 'Lab gateway lab-1: all good' || undefined, 20_000);
    await relay.cut();
    await until('the tray says the gateway runs', () => (/status page answers/.test(tooltip()) ? true : undefined), 30_000);

    // The PC sleeps; the gateway dies meanwhile; the PC wakes.
    powerEvent('suspend');
    g.child.kill('SIGKILL');
    await g.exited;
    powerEvent('resume');
    expect(tooltip()).toBe('Lab gateway lab-1: offline — the gateway is not running, or is cut off from the MQTT broker');
    expect(screen.icons.at(-1)).toBe('offline');
  }, 120_000);
});
