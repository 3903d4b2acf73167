/**
 * The gateway runs, and the site's broker publishes its Last Will: the gateway's connection to the
 * broker is cut (a firewall rule, a switch port between the two), not the gateway. The tray's main
 * process (desktop/src/main.ts) with its real MQTT client, a real Mosquitto, a real gateway
 * process whose MQTT connection goes through a TCP relay the test cuts. Only Electron is stood in.
 *
 * Before: the tray read "Lab gateway lab-1: offline — the gateway is not running" for as long as
 * the cut lasted, while the gateway took every result and its status page answered: the
 * technician restarted a gateway that ran, or called IT for a dead box.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { getJson, startGatewayProcess, until } from '../fixtures/gateway-process.ts';
import { useMosquitto } from '../fixtures/status/harness.ts';
import { screen } from '../fixtures/tray/electron-stand-in.ts';
import { startTrayProcess } from '../fixtures/tray/start-tray.ts';
import { useTrayRig } from '../fixtures/tray/tray-rig.ts';
import type { TcpRelay } from '../fixtures/net/tcp-relay.ts';
import { configBehindRelay } from '../fixtures/tray/behind-relay.ts';

vi.mock('electron', () => import('../fixtures/tray/electron-stand-in.ts'));
vi.mock('node:fs', async (real) => (await import('../fixtures/tray/desktop-fs.ts')).desktopFs(await real()));

const rig = useTrayRig('review-s22-tray-will-');
const broker = useMosquitto('review-s22-tray-will-broker-');

const relays: TcpRelay[] = [];
afterEach(async () => {
  for (const r of relays.splice(0)) await r.cut();
});

describe('the Last Will of a gateway that runs', () => {
  it('says the gateway answers and its status does not reach the broker, not that it is not running', async () => {
    const { relay, relayPort, config, gatewayUrl } = await configBehindRelay(rig, () => broker.port, relays);
    const g = startGatewayProcess(config);
    rig.gateways.push(g);
    if (!(await g.ready)) throw new Error(`gateway did not start: ${g.err().slice(-2000)}`);
    await until('the gateway publishing', async () => (await getJson<{ mqtt: { connected: boolean } | null }>(`${gatewayUrl}/api/status`)).mqtt?.connected);

    await startTrayProcess([`--gateway-url=${gatewayUrl}`, `--mqtt-url=mqtt://127.0.0.1:${broker.port}`]);
    rig.trayRunning = true;
    const tooltip = (): string => screen.tooltips.at(-1) ?? '';
    await until('the tray shows the gateway', () => tooltip() === 'Lab gateway lab-1: all good' || undefined, 20_000);

    // The gateway's connection to the broker is cut: the broker publishes its Last Will.
    await relay.cut();
    await until('the tray reads the Last Will', () => (screen.icons.at(-1) === 'offline' ? true : undefined), 30_000);
    // The gateway runs all along: its status page answers.
    expect((await getJson<{ gatewayId: string }>(`${gatewayUrl}/api/status`)).gatewayId).toBe('lab-1');
    await until('the tray has asked the gateway', () => (/status page answers/.test(tooltip()) ? true : undefined), 20_000).catch(() => undefined);
    expect(tooltip()).not.toMatch(/not running/);
    expect(tooltip()).toMatch(/^Lab gateway lab-1: offline — the gateway runs \(its status page answers\)/);
    expect(tooltip().length).toBeLessThanOrEqual(127);
    expect(screen.icons.at(-1)).toBe('offline');

    // The connection is back: the gateway publishes `online` and its status, and the tray is green.
    await relay.listen(relayPort);
    await until('the tray green again', () => (tooltip() === 'Lab gateway lab-1: all good' ? true : undefined), 30_000);
    expect(screen.icons.at(-1)).toBe('ok');

    // Cut again, and the gateway then dies: the page no longer answers, and the tray says so.
    await relay.cut();
    await until('the tray says the gateway runs', () => (/status page answers/.test(tooltip()) ? true : undefined), 30_000);
    g.child.kill('SIGKILL');
    await g.exited;
    await until('the tray no longer says it runs', () => (/not running, or is cut off/.test(tooltip()) ? true : undefined), 30_000);
    expect(screen.icons.at(-1)).toBe('offline');
  }, 120_000);
});
