/**
 * IT installs the tray with the gateway's DNS name (`gatewayUrl: http://lab-gw.example:8484`), a
 * name the gateway does not answer to (its `status.allowedHosts` lists 127.0.0.1 only): every
 * request of the tray is answered 421. The tray's main process (desktop/src/main.ts, Electron
 * stood in) against a real gateway process, its status window a real Chromium page.
 *
 * Before, the tray asked the gateway again every 5 s and said nothing: a grey or green dot, no
 * settings problem, and a status window showing the refusal's raw JSON
 * ({"error":"the Host header names …"}). Now the refusal is a settings problem naming the name
 * and `status.allowedHosts` (tooltip, menu, a notification, Copy diagnostics), the window says so,
 * and both clear once the gateway answers to the name.
 *
 * The name resolves to 127.0.0.1 for the tray's requests only: the test's fetch dispatcher and
 * Chromium's host resolver rules stand in for the site's DNS (the machine's /etc/hosts is left
 * alone; `localhost` cannot serve, every gateway answers to it).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { LookupFunction } from 'node:net';
import { Agent, getGlobalDispatcher, setGlobalDispatcher, type Dispatcher } from 'undici';
import { fileWriter, startGatewayProcess, until, type GatewayProcess } from '../fixtures/gateway-process.ts';
import { freePort } from '../fixtures/ports.ts';
import { clickMenu, resetScreen, screen, useChromium } from '../fixtures/tray/electron-stand-in.ts';
import { startTrayProcess } from '../fixtures/tray/start-tray.ts';
import { CHROMIUM_FLAGS } from '../fixtures/chromium.ts';

vi.mock('electron', () => import('../fixtures/tray/electron-stand-in.ts'));
vi.mock('node:fs', async (real) => (await import('../fixtures/tray/desktop-fs.ts')).desktopFs(await real()));

const NAME = 'lab-gw.example';

/** The site's DNS for the tray's fetch: NAME is 127.0.0.1, any other name as the system resolves it. */
const siteDns: LookupFunction = (hostname, options, callback) => {
  if (hostname !== NAME) return void import('node:dns').then((dns) => dns.lookup(hostname, options, callback));
  if (options.all) return void (callback as unknown as (err: null, addresses: Array<{ address: string; family: number }>) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
  callback(null, '127.0.0.1', 4);
};

let dir = '';
const file = fileWriter(() => dir);
const gateways: GatewayProcess[] = [];
let trayRunning = false;
let browser: Browser;
let savedDispatcher: Dispatcher;

beforeAll(async () => {
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: [...CHROMIUM_FLAGS, '--disable-auto-reload', `--host-resolver-rules=MAP ${NAME} 127.0.0.1`] });
});
afterAll(async () => {
  useChromium(undefined);
  await browser.close();
});
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tray-hosts-'));
  resetScreen(mkdtempSync(path.join(dir, 'user-data-')));
  for (const k of Object.keys(process.env)) if (k.startsWith('LAB_GATEWAY_')) vi.stubEnv(k, '');
  savedDispatcher = getGlobalDispatcher();
  setGlobalDispatcher(new Agent({ connect: { lookup: siteDns } }));
});
afterEach(async () => {
  if (trayRunning) clickMenu('Quit');
  trayRunning = false;
  await Promise.all(gateways.splice(0).map((g) => g.stop()));
  setGlobalDispatcher(savedDispatcher);
  vi.unstubAllEnvs();
  rmSync(dir, { recursive: true, force: true });
});

async function startGateway(config: string): Promise<GatewayProcess> {
  const g = startGatewayProcess(config);
  gateways.push(g);
  const ready = await g.ready;
  if (!ready) throw new Error(`gateway did not start: ${g.err().slice(-2000)}`);
  return g;
}

const tooltip = (): string => screen.tooltips.at(-1) ?? '';

describe('a tray whose gatewayUrl names a host the gateway does not answer to', () => {
  it('shows a settings problem naming the host and status.allowedHosts, in the window too, until the gateway answers to it', async () => {
    useChromium(browser);
    const [mqttPort, statusPort] = [await freePort(), await freePort()];
    const config = (allowed: string[]): Promise<string> =>
      file(
        [
          `gateway: { id: lab-hosts, dataDir: ${path.join(dir, 'data')} }`,
          'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
          `mqtt: { broker: embedded, listen: { host: 127.0.0.1, port: ${mqttPort} }, publishIntervalMs: 2000 }`,
          `status: { listen: { host: 127.0.0.1, port: ${statusPort} }, allowedHosts: [${allowed.join(', ')}] }`,
        ].join('\n') + '\n',
      );
    const first = await startGateway(await config(['127.0.0.1']));
    const gatewayUrl = `http://${NAME}:${statusPort}`;
    // What the gateway answers the tray, as it stood.
    const refused = await fetch(`${gatewayUrl}/api/status`);
    expect(refused.status).toBe(421);
    await refused.body?.cancel();

    await startTrayProcess([`--gateway-url=${gatewayUrl}`, `--mqtt-url=mqtt://127.0.0.1:${mqttPort}`]);
    trayRunning = true;

    const note = await until('the settings problem in the tooltip', () => (tooltip().includes('status.allowedHosts') ? tooltip() : undefined));
    expect(note).toContain('Tray settings:');
    expect(note).toContain(NAME);
    const menuLine = screen.menu.find((i) => i.label?.startsWith('Tray settings:'))?.label ?? '';
    expect(menuLine).toContain(`"${NAME}"`);
    expect(menuLine).toContain('status.allowedHosts');
    expect(screen.notifications.some((n) => n.shown && n.title.includes('settings') && n.body.includes('status.allowedHosts') && n.body.includes(NAME))).toBe(true);
    clickMenu('Copy diagnostics');
    expect(screen.clipboard.at(-1)).toContain(`Settings problems:\n- status.allowedHosts lacks "${NAME}"`);

    // The status window says why instead of the refusal's raw JSON.
    clickMenu('Open status window');
    const win = await until('the window', () => screen.windows[0]);
    const page = await until('its page', () => win.page());
    await until('the window\'s text', async () => ((await page.textContent('body').catch(() => null)) ?? '').includes('status.allowedHosts'));
    const text = (await page.textContent('body')) ?? '';
    expect(text).toContain(NAME);
    expect(text).not.toContain('"error"');

    // IT adds the name and restarts the gateway: the problem goes, the window shows the status page.
    await first.stop();
    await startGateway(await config(['127.0.0.1', NAME]));
    await until('the settings problem gone', () => !tooltip().includes('Tray settings:'), 30_000);
    expect(screen.menu.some((i) => i.label?.startsWith('Tray settings:'))).toBe(false);
    await until('the status page in the window', async () => (await page.title().catch(() => '')) === 'Lab gateway status', 30_000);
    await win.destroy();
  }, 90_000);
});
