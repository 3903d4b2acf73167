/**
 * What the technician and IT read from the tray when many things go wrong at once, or when the
 * gateway refuses what the tray asked: the tray's main process (desktop/src/main.ts) with its real
 * MQTT client against a real gateway process (`lab-gateway start`, its embedded broker). Only
 * Electron is stood in (test/fixtures/tray/electron-stand-in.ts records the icon, tooltip, menu and
 * notifications): its binary cannot be downloaded on the build machines.
 */
import { describe, expect, it, vi } from 'vitest';
import path from 'node:path';
import { getJson, startGatewayProcess, until, type GatewayProcess } from '../fixtures/gateway-process.ts';
import { freePort, refusedPort } from '../fixtures/status/harness.ts';
import { clickMenu, screen } from '../fixtures/tray/electron-stand-in.ts';
import { startTrayProcess } from '../fixtures/tray/start-tray.ts';
import { useTrayRig } from '../fixtures/tray/tray-rig.ts';

vi.mock('electron', () => import('../fixtures/tray/electron-stand-in.ts'));
vi.mock('node:fs', async (real) => (await import('../fixtures/tray/desktop-fs.ts')).desktopFs(await real()));

const rig = useTrayRig('tray-flood-');
const file = rig.file;
const gateways = rig.gateways;

async function startGateway(lines: string[]): Promise<{ g: GatewayProcess; gatewayUrl: string; mqttUrl: string }> {
  const mqttPort = await freePort();
  const config = await file(
    [
      `gateway: { id: lab-1, dataDir: ${path.join(rig.dir, 'data')} }`,
      'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
      `mqtt: { broker: embedded, listen: { host: 127.0.0.1, port: ${mqttPort} }, publishIntervalMs: 2000 }`,
      ...lines,
    ].join('\n') + (lines.some((l) => l.startsWith('status:')) ? '' : '\nstatus: { listen: { host: 127.0.0.1, port: 0 } }') + '\n',
  );
  const g = startGatewayProcess(config);
  gateways.push(g);
  const ready = await g.ready;
  if (!ready) throw new Error(`gateway did not start: ${g.err().slice(-2000)}`);
  return { g, gatewayUrl: ready.status.url.replace(/\/$/, ''), mqttUrl: `mqtt://127.0.0.1:${mqttPort}` };
}

async function startTray(site: { gatewayUrl: string; mqttUrl: string }, argv: string[] = []): Promise<void> {
  await startTrayProcess([`--gateway-url=${site.gatewayUrl}`, `--mqtt-url=${site.mqttUrl}`, ...argv]);
  rig.trayRunning = true;
}

const shown = (): string[] => screen.notifications.filter((n) => n.shown).map((n) => `${n.title}: ${n.body}`);

describe('many analyzers down at once', () => {
  /**
   * User sees: the switch of the lab's analyzer network dies; eight analyzers drop at once. The
   * tray pops up three notifications (its limit: 3 a minute) naming three analyzers, and nothing
   * more, ever: the five alarms held back by the limit were counted in a figure added to the next
   * notification ("… (and 5 other alerts)"), which may come hours later about something else, or
   * never. The technician checks the three analyzers named and believes the others are running.
   * Promise: desktop/README.md "one per new alarm (… at most 3 per minute)": the limit delays a
   * notification, it does not drop it.
   */
  it('every alarm held back by the rate limit is notified once the limit allows', async () => {
    const ids = ['xn-1', 'xn-2', 'xn-3', 'xn-4', 'xn-5', 'xn-6', 'xn-7', 'xn-8'];
    // Nothing listens there: each analyzer off the network (one loopback address each: one analyzer, one address).
    const port = await refusedPort();
    const analyzers = ids.map((id, i) => `{ id: ${id}, profile: sysmex-xn, tcp: { connect: { host: 127.0.0.${i + 1}, port: ${port} } } }`);
    const site = await startGateway([`analyzers: [ ${analyzers.join(', ')} ]`]);
    await until('every analyzer down in the status', async () => {
      const st = await getJson<{ healthReasons: Array<{ code: string; endpoint?: string }> }>(`${site.gatewayUrl}/api/status`);
      return st.healthReasons.filter((r) => r.code === 'ENDPOINT_DOWN').length === ids.length || undefined;
    }, 30_000);
    await startTray(site);
    await until('the first notifications', () => shown().length >= 3 || undefined, 20_000);
    // The rate limit's minute passes; every analyzer is named by then.
    const named = (): string[] => ids.filter((id) => shown().some((n) => new RegExp(`\\b${id}\\b`).test(n)));
    await until('every analyzer named in a notification', () => named().length === ids.length || undefined, 90_000).catch(() => undefined);
    expect(named()).toEqual(ids);
    // In a few notifications, not one per analyzer beyond the limit.
    expect(shown().length).toBeLessThanOrEqual(4);
  }, 150_000);
});

describe('the gateway refuses a pause from the tray', () => {
  /**
   * User sees: IT rotated the admin token on the gateway, and wrote the new one on the lab PCs'
   * token file with a typo on one of them. The technician there clicks "Pause sending to Odoo"
   * before an Odoo maintenance: a notification says "Could not pause sending to Odoo: HTTP 401".
   * Nobody at the lab knows what 401 means; the gateway's answer said why ("the token sent is not
   * the admin token in status.adminTokenFile (rotated since?)") and the tray dropped it.
   * Promise: desktop/README.md "Settings problems are shown, never ignored" — what the gateway
   * says of a refused action reaches the person who asked for it.
   */
  it("says the gateway's reason, not an HTTP status", async () => {
    const gatewayToken = await file('token-on-the-gateway-0123456789\n', 'admin.token');
    const trayToken = await file('token-with-a-typo-0123456789\n', 'tray-admin.token');
    const site = await startGateway([`status: { listen: { host: 127.0.0.1, port: 0 }, adminTokenFile: ${gatewayToken} }`]);
    await startTray(site, [`--admin-token-file=${trayToken}`]);
    await until('all good', () => (screen.tooltips.at(-1) ?? '').endsWith('all good'), 20_000);
    clickMenu('Pause sending to Odoo');
    const refusal = await until('the refusal notified', () => shown().find((n) => n.includes('Could not pause')), 10_000);
    expect(refusal).toMatch(/not the admin token in status\.adminTokenFile/);
    expect(refusal).toContain(trayToken); // the file to fix, on this PC
    expect(refusal).not.toMatch(/HTTP 401/);
    expect((await getJson<{ relayPaused: boolean }>(`${site.gatewayUrl}/api/status`)).relayPaused).toBe(false);
  });

  /** The same, for a gateway with no admin token at all: the tray's menu offers what the gateway cannot do. */
  it('says admin actions are disabled on the gateway', async () => {
    const trayToken = await file('some-token-0123456789\n', 'tray-admin.token');
    const site = await startGateway([]);
    await startTray(site, [`--admin-token-file=${trayToken}`]);
    await until('all good', () => (screen.tooltips.at(-1) ?? '').endsWith('all good'), 20_000);
    clickMenu('Pause sending to Odoo');
    const refusal = await until('the refusal notified', () => shown().find((n) => n.includes('Could not pause')), 10_000);
    expect(refusal).toMatch(/admin actions are disabled: set status\.adminTokenFile/);
  });
});
