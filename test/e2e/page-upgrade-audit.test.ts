import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { useChromium } from '../fixtures/chromium.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusServer } from '../../gateway/src/status/http-server.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { freePort, makeConfig, openStore, tempDir } from '../fixtures/status/harness.ts';
import { until } from '../fixtures/gateway-process.ts';

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
      // (After the page's quiet time since the last key or input, 10 s: a generous bound.)
      await page.waitForFunction(() => (window as unknown as { __loadedBefore?: boolean }).__loadedBefore === undefined, undefined, { timeout: 45_000 });
      await page.waitForFunction(() => document.getElementById('gw-version')!.textContent === 'v0.2.0');
    } finally {
      await server.stop();
    }
  });

  /** Counts the page's document loads (the first one and every reload). */
  function countDocuments(page: Page): { readonly count: number } {
    const seen = { count: 0 };
    page.on('request', (r) => {
      if (r.resourceType() === 'document' && r.frame() === page.mainFrame()) seen.count++;
    });
    return seen;
  }

  /**
   * User sees: two gateways behind one address (a DNS name with two A records, a proxy in front of
   * a gateway and its stand-by, one upgraded and not the other), or a version that flaps while IT
   * tries an upgrade and goes back: each status answers another version. The page reloaded itself
   * at every other poll, for ever: the wall screen blinked white every 4 s, the tray's window too,
   * and a technician could never open a message or a dead letter before it was thrown back to the
   * Overview.
   * Promise: the page reloads itself once for an upgrade; a version it reloaded away from never
   * makes it reload again.
   */
  it('reloads once, not at every poll, when the version answered flaps', async () => {
    const port = await freePort();
    const server = await startServer(port, '0.1.0');
    try {
      const page = await newPage();
      const documents = countDocuments(page);
      let answers = 0;
      await page.route('**/api/status', async (route) => {
        try {
          const res = await route.fetch();
          const body = (await res.json()) as Record<string, unknown>;
          answers++;
          await route.fulfill({ response: res, json: { ...body, version: answers % 2 === 0 ? '0.2.0' : '0.1.0' } });
        } catch {
          await route.abort('connectionrefused').catch(() => undefined); // the test is over, its gateway stopped
        }
      });
      await page.goto(server.url());
      await until('the reload for 0.2.0', () => documents.count >= 2);
      const then = answers;
      await until('six more polls', () => answers >= then + 6, 60_000);
      expect(documents.count).toBe(2);
      expect(await page.textContent('#gw-version')).toMatch(/^v0\.[12]\.0$/);
      await page.close();
    } finally {
      await server.stop();
    }
  }, 90_000);

  /**
   * User sees: the gateway answered its new version, and was stopped again a moment later (IT
   * restarting it after a config fix, the upgrade's own second restart). The page reloaded itself
   * into a gateway that was not there: the browser's "This site can't be reached", which polls
   * nothing — the wall screen stayed on it after the gateway came back, where the old page had
   * said "Gateway offline" and then showed the status again by itself.
   * Promise: the page reloads only once the gateway serves the page; until then it goes on
   * showing the status.
   */
  it('does not reload into a gateway that does not serve the page at that moment', async () => {
    const port = await freePort();
    let server = await startServer(port, '0.1.0');
    try {
      const page = await newPage();
      const documents = countDocuments(page);
      await page.goto(server.url());
      await page.waitForFunction(() => document.getElementById('gw-version')!.textContent === 'v0.1.0');
      // The page itself is not served for now (the status is): as a gateway gone between two requests.
      const pageRequest = (url: URL): boolean => url.pathname === '/';
      await page.route(pageRequest, (route) => route.abort('connectionrefused'));
      await server.stop();
      server = await startServer(port, '0.2.0');
      await page.waitForFunction(() => document.getElementById('gw-version')!.textContent === 'v0.2.0');
      expect(documents.count).toBe(1);

      // The page is served again: the next poll loads it.
      await page.unroute(pageRequest);
      await until('the reload', () => documents.count >= 2);
      await page.waitForFunction(() => document.getElementById('gw-version')!.textContent === 'v0.2.0');
    } finally {
      await server.stop();
    }
  }, 90_000);
});
