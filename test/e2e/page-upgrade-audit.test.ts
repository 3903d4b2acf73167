import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { useChromium } from '../fixtures/chromium.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusServer } from '../../gateway/src/status/http-server.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { freePort, makeConfig, openStore, tempDir } from '../fixtures/status/harness.ts';

/**
 * The status page left open (the lab's wall screen, the tray's status window kept for days) while
 * IT upgrades the gateway, in real Chromium.
 */
describe('status page across a gateway upgrade', () => {
  const tmp = tempDir('page-upgrade-');
  let store: EventStore;
  const telemetry = new Telemetry();
  const { newPage } = useChromium();

  beforeAll(async () => {
    store = await openStore(path.join(tmp.dir, 'data'));
  });
  afterAll(async () => {
    await store?.close();
    tmp.cleanup();
  });

  async function startServer(port: number, version: string): Promise<StatusServer> {
    const config = makeConfig(path.join(tmp.dir, 'data'), { id: 'lab-upgrade', status: { listen: { host: '127.0.0.1', port } } });
    const server = new StatusServer({ config, store, telemetry, log: silentLogger, version, startedAt: new Date().toISOString(), processMetrics: false });
    await server.start();
    return server;
  }

  /**
   * User sees: IT upgrades the gateway to get a fix of the status page. The wall screen's page
   * comes back from "Gateway offline" reading "v0.2.0" — and runs the page it loaded under 0.1.0,
   * without the fix, until somebody reloads it by hand (the tray's window: until the tray is
   * restarted). Nothing says the page is older than the gateway.
   * Promise: the page shown is the one the gateway serves; it loads the new one once the gateway
   * answers with another version, unless something is being typed in it (then at the next poll
   * after the text is cleared).
   */
  it('loads the new page once the gateway answers with another version, not while a reason is typed', async () => {
    const port = await freePort();
    let server = await startServer(port, '0.1.0');
    try {
      const page = await newPage();
      await page.goto(server.url());
      await page.waitForFunction(() => document.getElementById('gw-version')!.textContent === 'v0.1.0');
      await page.evaluate(() => ((window as unknown as { __loadedBefore: boolean }).__loadedBefore = true));
      // An administrator is typing a reason on the Admin tab: the upgrade does not wipe it.
      await page.click('#tab-admin');
      await page.fill('#relay-reason', 'month-end close');

      await server.stop();
      server = await startServer(port, '0.2.0');
      await page.waitForFunction(() => document.getElementById('gw-version')!.textContent === 'v0.2.0');
      await page.waitForResponse((r) => r.url().endsWith('/api/status')); // one more poll
      expect(await page.evaluate(() => (window as unknown as { __loadedBefore?: boolean }).__loadedBefore)).toBe(true);
      expect(await page.inputValue('#relay-reason')).toBe('month-end close');

      // The text cleared: the next poll loads the page the upgraded gateway serves.
      await page.fill('#relay-reason', '');
      await page.waitForFunction(() => (window as unknown as { __loadedBefore?: boolean }).__loadedBefore === undefined, undefined, { timeout: 15_000 });
      await page.waitForFunction(() => document.getElementById('gw-version')!.textContent === 'v0.2.0');
    } finally {
      await server.stop();
    }
  });
});
