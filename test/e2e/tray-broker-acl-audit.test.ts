/**
 * The tray on a site's Mosquitto whose ACL lets the tray's user read the gateway's availability
 * but not its status: the tray's main process (desktop/src/main.ts) with its real MQTT client, a
 * real gateway process publishing there, a real Mosquitto. Only Electron is stood in.
 */
import { describe, expect, it, vi } from 'vitest';
import path from 'node:path';
import { getJson, startGatewayProcess, until } from '../fixtures/gateway-process.ts';
import { freePort, useMosquitto, writeMqttCredentials } from '../fixtures/status/harness.ts';
import { screen } from '../fixtures/tray/electron-stand-in.ts';
import { startTrayProcess } from '../fixtures/tray/start-tray.ts';
import { useTrayRig } from '../fixtures/tray/tray-rig.ts';

vi.mock('electron', () => import('../fixtures/tray/electron-stand-in.ts'));
vi.mock('node:fs', async (real) => (await import('../fixtures/tray/desktop-fs.ts')).desktopFs(await real()));

const rig = useTrayRig('tray-acl-');
const file = rig.file;
const gateways = rig.gateways;

describe("the broker does not let the tray read the gateway's status", () => {
  // IT wrote the site's ACL for the trays with the availability and alerts topics, and forgot the
  // status topic (the gateway's user, the same here, may write them all).
  const broker = useMosquitto('tray-acl-broker-', {
    user: ['lab', 'secret-pw'],
    acl: 'user lab\ntopic read $SYS/#\ntopic write lab-gateway/#\ntopic read lab-gateway/+/availability\ntopic read lab-gateway/+/alerts\n',
  });

  /**
   * User sees: the gateway runs and results flow; the tray is grey, "offline — no status received
   * yet", all day. Mosquitto grants the subscription (SUBACK 0) and then delivers nothing on it:
   * nothing tells the tray it may not read there. The gateway's own availability, which the tray
   * does read, says it is online. IT looks for a dead gateway.
   * Promise: desktop/README.md "Settings problems are shown, never ignored"; the tray's grey
   * says why.
   */
  it('says the gateway is online and what to check when its status never comes', async () => {
    const creds = writeMqttCredentials(rig.dir, 'lab', 'lab', 'secret-pw');
    const statusPort = await freePort();
    const config = await file(
      [
        `gateway: { id: tray-acl, dataDir: ${path.join(rig.dir, 'data')} }`,
        'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
        `mqtt: { broker: 'mqtt://127.0.0.1:${broker.port}', usernameFile: ${creds.usernameFile}, passwordFile: ${creds.passwordFile}, publishIntervalMs: 2000 }`,
        `status: { listen: { host: 127.0.0.1, port: ${statusPort} } }`,
      ].join('\n') + '\n',
    );
    const g = startGatewayProcess(config);
    gateways.push(g);
    if (!(await g.ready)) throw new Error(`gateway did not start: ${g.err().slice(-2000)}`);
    const gatewayUrl = `http://127.0.0.1:${statusPort}`;
    await until('the gateway publishing', async () => (await getJson<{ mqtt: { connected: boolean } | null }>(`${gatewayUrl}/api/status`)).mqtt?.connected);

    await startTrayProcess([`--gateway-url=${gatewayUrl}`, `--mqtt-url=mqtt://127.0.0.1:${broker.port}`, `--mqtt-username-file=${creds.usernameFile}`, `--mqtt-password-file=${creds.passwordFile}`]);
    rig.trayRunning = true;
    const tooltip = (): string => screen.tooltips.at(-1) ?? '';
    await until('the tray says what to check', () => /read lab-gateway\/tray-acl\/status/.test(tooltip()) || undefined, 30_000).catch(() => undefined);
    expect(tooltip()).toMatch(/online/);
    expect(tooltip()).toMatch(/may this tray's MQTT user read lab-gateway\/tray-acl\/status\?/);
    expect(tooltip().length).toBeLessThanOrEqual(127);
    expect(screen.icons.at(-1)).toBe('offline');
  }, 60_000);
});
