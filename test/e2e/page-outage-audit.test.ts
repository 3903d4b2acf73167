import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { useChromium } from '../fixtures/chromium.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusServer } from '../../gateway/src/status/http-server.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { freePort, makeConfig, openStore, tempDir, useStatusServer } from '../fixtures/status/harness.ts';

/**
 * The status page left open on the lab's wall screen through a gateway outage, in real Chromium:
 * what a technician reads on it once the gateway has not answered for an hour.
 */
describe('status page through a gateway outage', () => {
  const tmp = tempDir('page-outage-');
  let store: EventStore;
  const telemetry = new Telemetry();

  beforeAll(async () => {
    store = await openStore(path.join(tmp.dir, 'data'));
  });

  afterAll(async () => {
    await store?.close();
    tmp.cleanup();
  });

  const { newPage } = useChromium();

  async function startServer(port: number): Promise<StatusServer> {
    const config = makeConfig(path.join(tmp.dir, 'data'), { id: 'lab-outage', status: { listen: { host: '127.0.0.1', port } } });
    const server = new StatusServer({ config, store, telemetry, log: silentLogger, version: '0.1.0', startedAt: new Date().toISOString(), processMetrics: false });
    await server.start();
    return server;
  }

  /**
   * User sees: the page shows the analyzer "connected" in green, its last message "4 s ago", Odoo
   * "connected" with its last success "2 s ago". The gateway box then loses power. An hour later
   * the banner reads "Gateway offline" — and every line under it still reads as it did an hour
   * ago: green "connected" pills, "4 s ago", "2 s ago", frozen at the moment the gateway stopped
   * answering. A technician glancing at the table reads a running analyzer that sent a moment
   * ago, and an Odoo link that just worked.
   * Promise: a stale status must not show green; times on the page are counted to now (the page
   * states ages by the gateway's clock, status/README.md), not to the last answer.
   */
  it('after an hour without an answer, nothing on the overview is green and ages count the hour', async () => {
    const port = await freePort();
    const server = await startServer(port);
    let stopped = false;
    try {
      telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'connected', connections: 1 });
      telemetry.emit('intake.message', { endpoint: 'xn-1', kind: 'astm', outcome: 'accepted', ackLatencyMs: 1, bytes: 100 });
      telemetry.emit('odoo.state', { state: 'connected' });
      const page = await newPage();
      await page.clock.install();
      await page.goto(server.url());
      const lastMessage = page.locator('#endpoints tbody tr[data-endpoint="xn-1"] td').nth(3);
      await page.waitForFunction(() => document.querySelector('#o-state .pill')?.textContent === 'connected');
      await expect.poll(() => lastMessage.textContent()).toMatch(/^\d+ s ago$/);
      expect(await page.locator('#panel-overview .pill-ok').count()).toBeGreaterThan(0);

      await server.stop(); // the gateway box loses power
      stopped = true;
      await page.clock.fastForward(60 * 60_000);
      await page.waitForSelector('#state[data-health="offline"]', { timeout: 15_000 });
      // A few more failed polls: whatever the page does on a failed poll, it has done.
      await page.clock.fastForward(10_000);
      await page.clock.fastForward(10_000);
      await page.waitForSelector('#state[data-health="offline"]');

      expect(await page.locator('#panel-overview .pill-ok').count()).toBe(0);
      expect(await lastMessage.textContent()).toBe('1 h ago');
      expect(await page.textContent('#o-success')).toBe('1 h ago');
      // What it still shows is said to be the last known state.
      expect(await page.textContent('#endpoints tbody tr[data-endpoint="xn-1"]')).toContain('last known');
    } finally {
      if (!stopped) await server.stop();
    }
  });
});

describe('status page read with a screen reader', () => {
  const rig = useStatusServer('page-live-', { config: (dir) => makeConfig(path.join(dir, 'data'), { id: 'lab-live' }), server: () => ({ version: '0.1.0' }) });
  const { telemetry } = rig;
  const chromium = useChromium();

  /**
   * User sees (hears): the state banner is a polite live region read as a whole (aria-atomic), so
   * that a change — "Needs attention: Analyzer xn-1 disconnected" — is read out. The page rebuilt
   * its text on every poll, every 2 s, though nothing had changed: a screen reader reads "All good"
   * again and again (new text nodes in a live region are a change to announce), burying every
   * other thing the technician tries to read on the page.
   * Promise: the banner is the page's at-a-glance state, for every technician (WCAG 2.1 §4.1.3,
   * status messages: announced when they change).
   */
  it('the live state banner is left untouched while the state stays the same', async () => {
    telemetry.emit('endpoint.state', { endpoint: 'lis', kind: 'hl7', state: 'listening', connections: 1 });
    telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'connected', connections: 1 });
    const page = await chromium.browser.newPage();
    try {
      await page.clock.install();
      await page.goto(rig.url);
      await page.waitForSelector('#state[data-health="ok"]');
      await page.evaluate(() => {
        const w = window as unknown as { __liveChanges: number };
        w.__liveChanges = 0;
        new MutationObserver((records) => (w.__liveChanges += records.length)).observe(document.getElementById('state')!, { subtree: true, childList: true, characterData: true, attributes: true });
      });
      const polls = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i++) {
          const answered = page.waitForResponse((r) => r.url().endsWith('/api/status'));
          await page.clock.fastForward(2_100);
          await answered;
        }
        await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(undefined))));
      };
      await polls(3);
      expect(await page.evaluate(() => (window as unknown as { __liveChanges: number }).__liveChanges)).toBe(0);
      // A change is still shown (and so announced).
      telemetry.emit('odoo.state', { state: 'auth-failed', lastError: 'Access Denied' });
      await page.waitForSelector('#state[data-health="degraded"]');
      expect(await page.evaluate(() => (window as unknown as { __liveChanges: number }).__liveChanges)).toBeGreaterThan(0);
    } finally {
      await page.close();
    }
  });
});
