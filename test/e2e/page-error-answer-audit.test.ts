/**
 * The status page when the gateway answers its poll of `/api/status` with an HTTP error instead of
 * a status, in real Chromium against a real gateway's status server: what a technician (or IT)
 * reads in the banner. The page must tell a gateway that does not answer (a network error, a
 * timeout: page-outage-audit, page-audit) from one that answered with an error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../fixtures/chromium.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusServer } from '../../gateway/src/status/http-server.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { freePort, makeConfig, openStore, tempDir } from '../fixtures/status/harness.ts';

/** A name of the gateway in the lab's DNS (Chromium's resolver rules stand in for it). */
const NAME = 'lab-gw.example';

describe('the status page when the gateway answers with an error', () => {
  const tmp = tempDir('page-error-answer-');
  let store: EventStore;
  const telemetry = new Telemetry();
  let browser: Browser;
  const servers: StatusServer[] = [];

  beforeAll(async () => {
    store = await openStore(path.join(tmp.dir, 'data'));
    browser = await launchChromium([`--host-resolver-rules=MAP ${NAME} 127.0.0.1`]);
  });

  afterAll(async () => {
    await browser?.close();
    for (const s of servers) await s.stop().catch(() => undefined);
    await store?.close();
    tmp.cleanup();
  });

  async function startServer(port: number, allowedHosts?: string[]): Promise<StatusServer> {
    const config = makeConfig(path.join(tmp.dir, 'data'), { id: 'lab-err', status: { listen: { host: '127.0.0.1', port }, ...(allowedHosts ? { allowedHosts } : {}) } });
    const server = new StatusServer({ config, store, telemetry, log: silentLogger, version: '0.1.0', startedAt: new Date().toISOString(), processMetrics: false });
    await server.start();
    servers.push(server);
    return server;
  }

  async function newPage(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1024, height: 600 }, locale: 'en-GB', timezoneId: 'Europe/Berlin' });
    return context.newPage();
  }

  /** The page open and green: the analyzer connected, Odoo connected. */
  async function greenPage(url: string): Promise<Page> {
    telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'connected', connections: 1 });
    telemetry.emit('odoo.state', { state: 'connected' });
    const page = await newPage();
    await page.goto(url);
    await page.waitForFunction(() => document.querySelector('#o-state .pill')?.textContent === 'connected');
    expect(await page.locator('#panel-overview .pill-ok').count()).toBeGreaterThan(0);
    return page;
  }

  /**
   * Once the page got an answer `status` to its poll and has shown it: the poll after it is asked
   * only once that answer is handled (poll() sets its next turn last).
   */
  async function answered(page: Page, status: number): Promise<void> {
    await page.waitForResponse((r) => new URL(r.url()).pathname === '/api/status' && r.status() === status, { timeout: 15_000 });
    await page.waitForRequest((r) => new URL(r.url()).pathname === '/api/status', { timeout: 15_000 });
  }

  /** What the banner reads: its title and its reasons. */
  async function banner(page: Page): Promise<{ health: string | null; title: string | null; reasons: string | null }> {
    return { health: await page.getAttribute('#state', 'data-health'), title: await page.textContent('#state-title'), reasons: await page.textContent('#state-reasons') };
  }

  /**
   * User sees: IT gave the gateway a DNS name and the wall screen opens the page by it; at the next
   * restart the gateway's configuration no longer lists that name in status.allowedHosts, and the
   * gateway refuses every request naming it (421). The page read "Gateway offline — The gateway
   * does not answer": a technician restarted a gateway that was running, and IT looked for a
   * network fault that was not there.
   * Promise: the page says the gateway answered, and that the name it was opened with is not
   * accepted (status.allowedHosts); the overview shows the last status as last known.
   */
  it('a 421 from the Host check names the page\'s host name and status.allowedHosts', async () => {
    const port = await freePort();
    let server = await startServer(port, [NAME]);
    const page = await greenPage(`http://${NAME}:${port}/`);
    try {
      await server.stop();
      server = await startServer(port); // restarted without the name
      await answered(page, 421);
      const b = await banner(page);
      expect(b.reasons).not.toMatch(/does not answer/);
      expect(b.title).not.toBe('Gateway offline');
      expect(b.reasons).toContain('HTTP 421');
      expect(b.reasons).toContain(`"${NAME}"`);
      expect(b.reasons).toContain('status.allowedHosts');
      // What it still shows is the last status, said to be so, and nothing green.
      expect(await page.textContent('#endpoints tbody tr[data-endpoint="xn-1"]')).toContain('last known');
      expect(await page.locator('#panel-overview .pill-ok').count()).toBe(0);
    } finally {
      await page.context().close();
      await server.stop();
    }
  }, 60_000);

  /**
   * User sees: the gateway runs, and its status route fails (an internal error, its store not
   * available, a refusal); "The gateway does not answer". The gateway's own words, in the body of
   * its answer, were shown nowhere.
   * Promise: the banner says the gateway answered with an error, the HTTP status and the
   * gateway's message (`error` of the JSON body, DESIGN.md §5's error shape; none from a body that
   * is not the gateway's JSON, e.g. a proxy's HTML page). The page comes back once it answers.
   *
   * A real gateway's status route does not fail on demand, so a small HTTP proxy in front of the
   * real status server (as a site's reverse proxy is) answers `/api/status` with the error while
   * `fault` is set; everything else, the page itself among it, is the gateway's.
   */
  it('an HTTP error with the gateway\'s message is shown as such, with the status code', async () => {
    const server = await startServer(0);
    let fault: { status: number; type: string; body: string } | undefined;
    const proxy = http.createServer((req, res) => {
      if (fault && req.url?.startsWith('/api/status')) {
        res.writeHead(fault.status, { 'Content-Type': fault.type, 'Cache-Control': 'no-store' });
        res.end(fault.body);
        return;
      }
      const target = new URL(server.url());
      const up = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: { ...req.headers, host: target.host } }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const page = await greenPage(`http://127.0.0.1:${(proxy.address() as AddressInfo).port}/`);
    try {
      const json = (status: number, body: unknown) => ({ status, type: 'application/json; charset=utf-8', body: JSON.stringify(body) });
      const cases: Array<{ fault: { status: number; type: string; body: string }; says: string[] }> = [
        { fault: json(500, { error: 'internal error', detail: 'TypeError: cannot read properties of undefined' }), says: ['answered with an error (HTTP 500): internal error', 'TypeError: cannot read properties of undefined'] },
        { fault: json(503, { error: 'the store is closed', code: 'GW_STORE_UNAVAILABLE' }), says: ['answered with an error (HTTP 503): the store is closed'] },
        { fault: json(403, { error: 'a page of another site may not read the gateway\'s API' }), says: ['answered with an error (HTTP 403): a page of another site may not read'] },
        { fault: { status: 502, type: 'text/html', body: '<html><body><h1>502 Bad Gateway</h1></body></html>' }, says: ['HTTP 502'] },
      ];
      for (const c of cases) {
        fault = c.fault;
        await answered(page, c.fault.status);
        const b = await banner(page);
        expect(b.reasons).not.toMatch(/does not answer/);
        expect(b.title).not.toBe('Gateway offline');
        for (const s of c.says) expect(b.reasons).toContain(s);
        expect(b.reasons).not.toContain('<'); // no HTML of a proxy's page
        expect(await page.textContent('#endpoints tbody tr[data-endpoint="xn-1"]')).toContain('last known');
        expect(await page.locator('#panel-overview .pill-ok').count()).toBe(0);
      }
      fault = undefined;
      await page.waitForSelector('#state[data-health="ok"]', { timeout: 15_000 });
      expect(await page.locator('#panel-overview .pill-ok').count()).toBeGreaterThan(0);
    } finally {
      await page.context().close();
      await new Promise<void>((r) => proxy.close(() => r()));
      proxy.closeAllConnections();
      await server.stop();
    }
  }, 90_000);
});
