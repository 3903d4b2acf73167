/**
 * A gateway stopped gracefully (its retained availability: `offline`, "gateway stopped") and
 * started again, whose new process does not reach the site's broker (a firewall rule, a broker
 * password changed with the update it was restarted for). The tray's main process
 * (desktop/src/main.ts) with its real MQTT client, a real Mosquitto, a real gateway process whose
 * MQTT connection goes through a TCP relay the test cuts. Only Electron is stood in.
 *
 * Before: the tray asked the gateway's page every 5 s and had its answer, but a graceful stop read
 * "the gateway is not running" whatever the page answered: the retained "gateway stopped" of the
 * process before stayed on the broker, and the tray read "not running" for as long as the new
 * process ran cut off from it. A technician restarted a gateway that took every result.
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

const rig = useTrayRig('review-s22-tray-restarted-');
const broker = useMosquitto('review-s22-tray-restarted-broker-');

const relays: TcpRelay[] = [];
afterEach(async () => {
  for (const r of relays.splice(0)) await r.cut();
});

describe('a gateway restarted after a graceful stop, cut off from the broker', () => {
  it('reads that the gateway runs, not that it is not running', async () => {
    const { relay, relayPort, config, gatewayUrl } = await configBehindRelay(rig, () => broker.port, relays);
    const first = startGatewayProcess(config);
    rig.gateways.push(first);
    if (!(await first.ready)) throw new Error(`gateway did not start: ${first.err().slice(-2000)}`);
    await until('the gateway publishing', async () => (await getJson<{ mqtt: { connected: boolean } | null }>(`${gatewayUrl}/api/status`)).mqtt?.connected);

    await startTrayProcess([`--gateway-url=${gatewayUrl}`, `--mqtt-url=mqtt://127.0.0.1:${broker.port}`]);
    rig.trayRunning = true;
    const tooltip = (): string => screen.tooltips.at(-1) ?? '';
    await until('the tray shows the gateway', () => tooltip() === 'Lab gateway lab-1: all good' || undefined, 20_000);

    // A graceful stop: the broker keeps "gateway stopped".
    await first.stop();
    await until('the tray reads the stop', () => (tooltip() === 'Lab gateway lab-1: offline — the gateway is not running' ? true : undefined), 30_000);

    // Started again, its way to the broker cut: it runs, its page answers, nothing reaches MQTT.
    await relay.cut();
    const again = startGatewayProcess(config);
    rig.gateways.push(again);
    if (!(await again.ready)) throw new Error(`gateway did not start again: ${again.err().slice(-2000)}`);
    expect((await getJson<{ gatewayId: string }>(`${gatewayUrl}/api/status`)).gatewayId).toBe('lab-1');
    await until('the tray has asked the gateway', () => (/status page answers/.test(tooltip()) ? true : undefined), 20_000).catch(() => undefined);
    expect(tooltip()).toBe('Lab gateway lab-1: offline — the gateway runs (its status page answers), but its status does not reach the MQTT broker');
    expect(screen.icons.at(-1)).toBe('offline');

    // Its way to the broker is back: green again.
    await relay.listen(relayPort);
    await until('the tray green again', () => (tooltip() === 'Lab gateway lab-1: all good' ? true : undefined), 30_000);
  }, 150_000);
});
