import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, type Page } from 'playwright-core';
import { launchChromium } from '../fixtures/chromium.ts';
import { useStatusServer } from '../fixtures/status/harness.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';

/**
 * The status page on a busy lab's gateway, in real Chromium: a real EventStore (LevelDB in a temp
 * dir) holding a few messages of an analyzer under thousands of the LIS link's, and the real
 * status server. GET /api/messages?endpoint= reads at most 5,000 records per request and then
 * answers a short (or empty) page with `next` (status/README.md, Paging).
 */
describe('status page message browser on a busy store', () => {
  const rig = useStatusServer('page-msg-paging-');
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    const store = rig.store;
    // xn-1 sent three results this morning; the LIS link has sent 6,000 orders since.
    for (let i = 0; i < 3; i++) await store.commit(inboundMessage(`XN-${i}`, { endpoint: 'xn-1', kind: 'astm', dedupKey: `astm|xn-1|${i}` }), []);
    for (let chunk = 0; chunk < 12; chunk++) {
      await Promise.all(Array.from({ length: 500 }, (_, i) => store.commit(inboundMessage(`L-${chunk}-${i}`), [])));
    }
    rig.telemetry.emit('endpoint.state', { endpoint: 'lis', kind: 'hl7', state: 'listening', connections: 1 });
    rig.telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'connected', connections: 1 });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1024, height: 600 } });
    await page.goto(rig.url);
    await page.waitForSelector('#msg-endpoint option[value="xn-1"]', { state: 'attached' });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
  });

  /** Waits until the message list shows rows or a one-line verdict, and returns its text. */
  async function listSettled(): Promise<string> {
    await page.waitForSelector('#msg-list tbody tr:not([data-stale])', { timeout: 20_000 });
    // Rows may still be coming while older pages are fetched: wait for the search to be done.
    await page.waitForFunction(() => !document.getElementById('msg-list')!.hasAttribute('aria-busy'), undefined, { timeout: 20_000 });
    return (await page.textContent('#msg-list tbody')) ?? '';
  }

  /** Searches the messages of one connection ('' for all) and returns the list's text once done. */
  async function search(endpoint: string): Promise<string> {
    await page.$$eval('#msg-list tbody tr', (rows) => rows.forEach((r) => r.setAttribute('data-stale', '')));
    await page.selectOption('#msg-endpoint', endpoint);
    await page.click('#msg-search button[type="submit"]');
    return listSettled();
  }

  // What a technician saw: looking for xn-1's result of this morning in a busy lab, they chose the
  // connection xn-1 in the message browser and got "No message found." — the gateway had answered
  // the first 5,000 records read with an empty page and `next` (more to read), and the page took
  // the empty page for the end. Broke: the paging promise of GET /api/messages (status/README.md:
  // a short or empty page with a non-null `next` is not the end) and the page's word "No message
  // found" for messages the store holds.
  it("finds an analyzer's messages older than the newest 5,000 records", async () => {
    await page.click('#tab-messages');
    await listSettled();
    const text = await search('xn-1');
    expect(text).not.toContain('No message found');
    const controlIds = await page.$$eval('#msg-list tbody tr[data-id] td:nth-child(4)', (tds) => tds.map((td) => td.textContent));
    expect(controlIds, "xn-1's three messages, newest first").toEqual(['XN-2', 'XN-1', 'XN-0']);
    expect(await page.locator('#msg-more').isVisible(), 'nothing older to search: no "older" button').toBe(false);
  });

  // What a technician saw: with "All" connections, the list stopped at the newest 50 messages and
  // there was no way to see the one sent an hour ago without knowing its control id. The answer's
  // `next` said there were more. The page now offers them.
  it('shows older messages on request when the first page is full', async () => {
    await search('');
    expect(await page.locator('#msg-list tbody tr[data-id]').count()).toBe(50);
    await page.click('#msg-more');
    await page.waitForFunction(() => document.querySelectorAll('#msg-list tbody tr[data-id]').length === 100, undefined, { timeout: 20_000 });
    const controlIds = await page.$$eval('#msg-list tbody tr[data-id] td:nth-child(4)', (tds) => tds.map((td) => td.textContent));
    expect(new Set(controlIds).size, 'the older page follows on, no message twice').toBe(100);
  });
});

describe('status page message browser on a store at its busiest', () => {
  const rig = useStatusServer('page-msg-bound-');
  let browser: Browser;

  beforeAll(async () => {
    const store = rig.store;
    // xn-1's three results, then more of the LIS link's messages than one click searches (50,000 records).
    for (let i = 0; i < 3; i++) await store.commit(inboundMessage(`XN-${i}`, { endpoint: 'xn-1', kind: 'astm', dedupKey: `astm|xn-1|${i}` }), []);
    for (let chunk = 0; chunk < 102; chunk++) {
      await Promise.all(Array.from({ length: 500 }, (_, i) => store.commit(inboundMessage(`B-${chunk}-${i}`), [])));
    }
    rig.telemetry.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'connected', connections: 1 });
    browser = await launchChromium();
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
  });

  // What a technician saw: on a store of 51,000 messages, one click on Search for xn-1 cannot read
  // them all (each request reads at most 5,000 records, the page makes ten on its own). It must
  // then say the search is not over and offer to go on — not "No message found." for messages the
  // store holds (status/README.md, Paging: a page with a non-null `next` is not the end).
  it('says the search is not over and goes on when asked', async () => {
    const page = await browser.newPage({ viewport: { width: 1024, height: 600 } });
    await page.goto(rig.url);
    await page.waitForSelector('#msg-endpoint option[value="xn-1"]', { state: 'attached' });
    await page.click('#tab-messages');
    await page.waitForSelector('#msg-list tbody tr[data-id]');
    await page.$$eval('#msg-list tbody tr', (rows) => rows.forEach((r) => r.setAttribute('data-stale', '')));
    await page.selectOption('#msg-endpoint', 'xn-1');
    await page.click('#msg-search button[type="submit"]');
    await page.waitForSelector('#msg-list tbody tr:not([data-stale])', { timeout: 60_000 });
    await page.waitForFunction(() => !document.getElementById('msg-list')!.hasAttribute('aria-busy'), undefined, { timeout: 60_000 });
    expect(await page.textContent('#msg-list tbody')).not.toContain('No message found');
    expect(await page.textContent('#msg-list tbody')).toContain('older ones are not searched yet');
    expect(await page.textContent('#msg-more')).toBe('Search older messages');
    await page.click('#msg-more');
    await page.waitForSelector('#msg-list tbody tr[data-id]', { timeout: 60_000 });
    await page.waitForFunction(() => !document.getElementById('msg-list')!.hasAttribute('aria-busy'), undefined, { timeout: 60_000 });
    const controlIds = await page.$$eval('#msg-list tbody tr[data-id] td:nth-child(4)', (tds) => tds.map((td) => td.textContent));
    expect(controlIds).toEqual(['XN-2', 'XN-1', 'XN-0']);
    expect(await page.locator('#msg-more').isVisible(), 'the log is read to its start').toBe(false);
  });
});

describe('status page while the gateway stops', () => {
  const rig = useStatusServer('page-stopping-');
  let browser: Browser;

  beforeAll(async () => {
    rig.telemetry.emit('endpoint.state', { endpoint: 'lis', kind: 'hl7', state: 'listening', connections: 1 });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
  });

  // What IT saw: during a restart (SIGTERM; the gateway stops its links, then waits on Odoo for its
  // last deliveries) the page read "All good" in green, every link `stopped`, while the status said
  // `stopping: true` (status/README.md) — a technician glancing at it took the gateway for healthy
  // and sent an analyzer's run through it. The page now says "Gateway stopping".
  it('says "Gateway stopping" instead of a healthy look', async () => {
    const page = await browser.newPage({ viewport: { width: 1024, height: 600 } });
    await page.goto(rig.url);
    await page.waitForSelector('#state[data-health="ok"]');
    rig.server.model.markStopping();
    await page.waitForSelector('#state[data-health="stopping"]', { timeout: 10_000 });
    expect(await page.textContent('#state-title')).toBe('Gateway stopping');
    const bg = await page.$eval('#state', (el) => getComputedStyle(el).backgroundColor);
    expect(bg, 'not the healthy green').not.toBe('rgb(27, 94, 32)');
  });
});
