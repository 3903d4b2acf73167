/**
 * The tray on a site's Mosquitto whose ACL lets the tray's user read the gateway's availability but
 * not its status ("online, but no status: may this tray's MQTT user read …?"), which IT may leave
 * so for days. The tray's main process (desktop/src/main.ts) with its real MQTT client, a real
 * gateway process publishing there, a real Mosquitto; the tray's gatewayUrl goes through an HTTP
 * relay that counts the requests to the gateway's page. Only Electron is stood in.
 *
 * Before: ceab4f0 had the tray ask the gateway's page every 5 s while it shows the gateway grey
 * (and its 15 s tick start asking again), to tell a Last Will of a running gateway from a dead
 * one. Here the answer changes nothing the tray shows, and the tray asked every 5 s for as long as
 * the ACL stayed wrong: 17,000 requests a day from each technician's PC. Before ceab4f0 the
 * gateway's answer naming the followed gateway ended the asking.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import http from 'node:http';
import path from 'node:path';
import { getJson, startGatewayProcess, until } from '../fixtures/gateway-process.ts';
import { freePort, useMosquitto, writeMqttCredentials } from '../fixtures/status/harness.ts';
import { screen } from '../fixtures/tray/electron-stand-in.ts';
import { startTrayProcess } from '../fixtures/tray/start-tray.ts';
import { useTrayRig } from '../fixtures/tray/tray-rig.ts';

vi.mock('electron', () => import('../fixtures/tray/electron-stand-in.ts'));
vi.mock('node:fs', async (real) => (await import('../fixtures/tray/desktop-fs.ts')).desktopFs(await real()));

const rig = useTrayRig('review-s22-tray-acl-poll-');

/** An HTTP relay to `target` counting the requests for /api/status. */
async function countingRelay(target: string): Promise<{ url: string; count: () => number; close: () => Promise<void> }> {
  let n = 0;
  const server = http.createServer((req, res) => {
    if (req.url === '/api/status') n++;
    void fetch(`${target}${req.url}`)
      .then(async (r) => {
        res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' });
        res.end(Buffer.from(await r.arrayBuffer()));
      })
      .catch(() => res.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, count: () => n, close: () => new Promise((r) => server.close(() => r())) };
}

const relays: Array<{ close: () => Promise<void> }> = [];
afterEach(async () => {
  for (const r of relays.splice(0)) await r.close();
});

describe("the tray that may not read the gateway's status", () => {
  const broker = useMosquitto('review-s22-tray-acl-poll-broker-', {
    user: ['lab', 'secret-pw'],
    acl: 'user lab\ntopic read $SYS/#\ntopic write lab-gateway/#\ntopic read lab-gateway/+/availability\ntopic read lab-gateway/+/alerts\n',
  });

  it('does not ask the gateway page every 5 s when the answer changes nothing it shows', async () => {
    const creds = writeMqttCredentials(rig.dir, 'lab', 'lab', 'secret-pw');
    const statusPort = await freePort();
    const config = await rig.file(
      [
        `gateway: { id: tray-acl, dataDir: ${path.join(rig.dir, 'data')} }`,
        'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
        `mqtt: { broker: 'mqtt://127.0.0.1:${broker.port}', usernameFile: ${creds.usernameFile}, passwordFile: ${creds.passwordFile}, publishIntervalMs: 2000 }`,
        `status: { listen: { host: 127.0.0.1, port: ${statusPort} } }`,
      ].join('\n') + '\n',
    );
    const g = startGatewayProcess(config);
    rig.gateways.push(g);
    if (!(await g.ready)) throw new Error(`gateway did not start: ${g.err().slice(-2000)}`);
    const gatewayUrl = `http://127.0.0.1:${statusPort}`;
    await until('the gateway publishing', async () => (await getJson<{ mqtt: { connected: boolean } | null }>(`${gatewayUrl}/api/status`)).mqtt?.connected);
    const relay = await countingRelay(gatewayUrl);
    relays.push(relay);

    await startTrayProcess([`--gateway-url=${relay.url}`, `--mqtt-url=mqtt://127.0.0.1:${broker.port}`, `--mqtt-username-file=${creds.usernameFile}`, `--mqtt-password-file=${creds.passwordFile}`]);
    rig.trayRunning = true;
    const tooltip = (): string => screen.tooltips.at(-1) ?? '';
    await until('the tray says what to check', () => /read lab-gateway\/tray-acl\/status/.test(tooltip()) || undefined, 30_000);
    const asked = relay.count();
    expect(asked).toBeGreaterThanOrEqual(1);
    // Three of its 5 s periods and one of its 15 s ticks: the state has not changed, and the
    // gateway's answer, had for it, tells nothing more.
    await new Promise((r) => setTimeout(r, 16_000));
    expect(tooltip()).toMatch(/may this tray's MQTT user read lab-gateway\/tray-acl\/status\?/);
    expect(relay.count() - asked).toBe(0);
  }, 90_000);
});
