import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type Page } from 'playwright-core';
import { launchChromium } from '../fixtures/chromium.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusServer } from '../../gateway/src/status/http-server.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { freePort, makeConfig, makeDeadLetter, openStore, tempDir, waitFor } from '../fixtures/status/harness.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = path.resolve(here, '../../test-artifacts');
const TOKEN = 'page-admin-token-42';

describe('status page in real Chromium', () => {
  const tmp = tempDir('status-page-');
  let store: EventStore;
  const telemetry = new Telemetry();
  let server: StatusServer;
  let browser: Browser;
  let page: Page;
  let url: string;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    const tokenFile = path.join(tmp.dir, 'admin.token');
    writeFileSync(tokenFile, TOKEN);
    // On a freePort() port: the last test stops the gateway and waits for the page to say so; a
    // listen(0) port, once released, may be handed to another test's listener, which then answers.
    const config = makeConfig(path.join(tmp.dir, 'data'), { id: 'lab-page', status: { listen: { host: '127.0.0.1', port: await freePort() }, adminTokenFile: tokenFile } });
    store = await openStore(config.gateway.dataDir);
    server = new StatusServer({ config, store, telemetry, log: silentLogger, version: '0.1.0', startedAt: new Date().toISOString(), processMetrics: false });
    await server.start();
    url = server.url();
    telemetry.emit('endpoint.state', { endpoint: 'lis', kind: 'hl7', state: 'listening', connections: 1 });
    telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'connected', connections: 1 });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1024, height: 600 } });
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
  });

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await store?.close();
    tmp.cleanup();
  });

  it('loads and shows the state in words, each connection and the queue', async () => {
    await page.goto(url);
    await page.waitForSelector('#state[data-health="ok"]');
    expect(await page.textContent('#state-title')).toBe('All good');
    expect(await page.textContent('#gw-id')).toBe('lab-page');
    expect(await page.locator('#endpoints tbody tr').count()).toBe(2);
    expect(await page.textContent('#endpoints tbody tr[data-endpoint="xn-1"]')).toContain('connected');
    expect(await page.textContent('#o-state')).toBe('sandbox');
    // One screen at 1024×600: no horizontal scrolling.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(1024);
  });

  it('shows a live state change: an analyzer goes down → amber with the reason', async () => {
    telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'disconnected', connections: 0, detail: 'no carrier' });
    await page.waitForSelector('#state[data-health="degraded"]', { timeout: 10_000 });
    expect(await page.textContent('#state-title')).toBe('Needs attention');
    expect(await page.textContent('#state-reasons')).toMatch(/Analyzer xn-1 disconnected for (less than 1 min|\d+ min) \(no carrier\)/);
    const bg = await page.$eval('#state', (el) => getComputedStyle(el).backgroundColor);
    expect(bg).toBe('rgb(255, 179, 0)');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'status-page.png') });
  });

  it('browses messages: raw text with visible control characters and names masked', async () => {
    const { messageId } = await makeDeadLetter(store, 'PAGE-1');
    await page.click('#tab-messages');
    await page.fill('#msg-q', 'PAGE-1');
    await page.click('#msg-search button[type="submit"]');
    await page.click(`#msg-list tr[data-id="${messageId}"]`);
    await page.waitForSelector('#msg-detail pre.raw');
    const raw = await page.textContent('#msg-detail pre.raw');
    expect(raw).toContain('PID|1||MRN123^^^LAB^MR||***||19800101|F<CR>');
    expect(await page.textContent('body')).not.toContain('DOE');
    expect(await page.textContent('#msg-detail')).toContain('result.validated · dead');
  });

  it('replays a dead letter from the page after the admin signs in; the action is audited', async () => {
    const { eventId } = await makeDeadLetter(store, 'PAGE-2', 'Odoo rejected: unknown product GLU');
    await page.click('#tab-dead');
    const row = page.locator(`#dead-list tr[data-event="${eventId}"]`);
    await row.waitFor();
    expect(await row.textContent()).toContain('Odoo rejected: unknown product GLU');
    expect(await row.locator('button', { hasText: 'Replay' }).isDisabled()).toBe(true);

    await page.click('#tab-admin');
    await page.fill('#admin-token', 'wrong');
    await page.click('#admin-form button[type="submit"]');
    await page.waitForFunction(() => document.getElementById('admin-state')!.textContent!.includes('not accepted'));
    await page.fill('#admin-token', TOKEN);
    await page.click('#admin-form button[type="submit"]');
    await page.waitForFunction(() => document.getElementById('admin-state')!.textContent!.startsWith('Signed in'));
    expect(await page.evaluate(() => sessionStorage.getItem('labGatewayAdminToken'))).toBe(TOKEN);

    await page.click('#tab-dead');
    await row.waitFor();
    await row.locator('input').fill('product mapped');
    // A refresh of the list while the admin types keeps what is typed, and the keys typed next land in it.
    await page.evaluate((id) => {
      (document.querySelector(`#dead-list tr[data-event="${id}"]`) as HTMLElement).dataset['stale'] = '1';
      document.getElementById('tab-dead')!.click(); // a click from script: the focus stays in the input
    }, eventId);
    await page.locator(`#dead-list tr[data-event="${eventId}"]:not([data-stale])`).waitFor();
    await page.keyboard.type(' in Odoo');
    expect(await row.locator('input').inputValue()).toBe('product mapped in Odoo');
    await row.locator('button', { hasText: 'Replay' }).click();
    await page.waitForFunction(() => document.getElementById('dead-result')!.textContent!.startsWith('Replayed'));
    const ev = await store.getEvent(eventId);
    expect(ev?.state).not.toBe('dead');
    expect(ev?.audit?.at(-1)).toMatchObject({ action: 'replay', reason: 'product mapped in Odoo' });
    const audit = await waitFor(async () => (await server.auditLog.read()).find((a) => a.action === 'replay' && a.target === eventId), 'audit entry');
    expect(audit.outcome).toBe('ok');
  });

  it('an admin can reveal names; the reveal is audited', async () => {
    const found = await store.listMessages({ controlId: 'PAGE-1' });
    await page.click('#tab-messages');
    await page.click(`#msg-list tr[data-id="${found[0]!.id}"]`);
    // The detail re-renders for the signed-in admin with the reveal button enabled.
    await page.waitForSelector('#msg-detail button.admin-only:not([disabled])');
    await page.fill('#reveal-reason', 'phone call');
    // Showing the message again while the admin types keeps what is typed, and the keys typed next land in it.
    await page.evaluate((id) => {
      (document.querySelector('#msg-detail h3') as HTMLElement).dataset['stale'] = '1';
      (document.querySelector(`#msg-list tr[data-id="${id}"]`) as HTMLElement).click();
    }, found[0]!.id);
    await page.waitForSelector('#msg-detail h3:first-child:not([data-stale])');
    await page.keyboard.type(' from ward');
    expect(await page.inputValue('#reveal-reason')).toBe('phone call from ward');
    await page.click('#msg-detail button:has-text("Reveal names")');
    await page.waitForFunction(() => document.querySelector('#msg-detail pre.raw')!.textContent!.includes('DOE^JANE'));
    const audit = await waitFor(async () => (await server.auditLog.read()).find((a) => a.action === 'reveal-names'), 'reveal audit');
    expect(audit).toMatchObject({ target: found[0]!.id, reason: 'phone call from ward', outcome: 'ok' });
  });

  it('a slow answer to an earlier click does not replace the message clicked since', async () => {
    const [first] = await store.listMessages({ controlId: 'PAGE-1' });
    const [second] = await store.listMessages({ controlId: 'PAGE-2' });
    await page.click('#tab-messages');
    await page.fill('#msg-q', '');
    await page.click('#msg-search button[type="submit"]');
    await page.locator(`#msg-list tr[data-id="${second!.id}"]`).waitFor();
    // The answer about the first message is held until the second one is shown.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const isFirst = (u: URL): boolean => u.pathname === `/api/messages/${encodeURIComponent(first!.id)}`;
    await page.route(isFirst, async (route) => {
      await held;
      await route.continue();
    });
    const slow = page.waitForResponse((r) => isFirst(new URL(r.url())));
    await page.click(`#msg-list tr[data-id="${first!.id}"]`);
    await page.click(`#msg-list tr[data-id="${second!.id}"]`);
    await page.waitForFunction(() => document.querySelector('#msg-detail p.muted')?.textContent?.includes('Control id PAGE-2'));
    release();
    await (await slow).finished();
    await page.unroute(isFirst);
    // One more round trip of the page: the slow answer, in before it, has been handled.
    await page.evaluate(() => fetch('/api/status').then((r) => r.text()));
    expect(await page.textContent('#msg-detail p.muted')).toContain('Control id PAGE-2');
    expect(await page.getAttribute(`#msg-list tr[data-id="${second!.id}"]`, 'aria-selected')).toBe('true');
  });

  it('turns grey "Gateway offline" when the gateway stops answering, with no script errors before', async () => {
    expect(consoleErrors.filter((e) => !/401|Failed to load resource/.test(e))).toEqual([]);
    await page.click('#tab-overview');
    await server.stop();
    await page.waitForSelector('#state[data-health="offline"]', { timeout: 10_000 });
    expect(await page.textContent('#state-title')).toBe('Gateway offline');
  });
});
