import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, type Page } from 'playwright-core';
import { launchChromium } from '../fixtures/chromium.ts';
import { makeDeadLetter, useStatusServer } from '../fixtures/status/harness.ts';

/**
 * The status page's dead-letter list on a gateway holding more dead letters than one answer of
 * GET /api/events?state=dead carries (the page asks for 200), in real Chromium: a real EventStore
 * (LevelDB in a temp dir) with 205 dead letters and the real status server.
 */
describe('status page dead-letter list with more than one page of dead letters', () => {
  const rig = useStatusServer('page-dead-paging-');
  const DEAD = 205;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    for (let i = 0; i < DEAD; i++) await makeDeadLetter(rig.store, `DEAD-${i}`);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1024, height: 600 } });
    await page.goto(rig.url);
    await page.waitForFunction((n) => document.getElementById('dead-badge')!.textContent === String(n), DEAD);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
  });

  // What an operator saw: the Dead letters tab's badge read 205, the list showed 200 rows and
  // nothing said there were more; they replayed or discarded "all" of them and five stayed dead,
  // their orders blocked behind them. The answer's `next` said there were more (status/README.md,
  // Paging: a page with a non-null `next` is not the end). The list now says more exist and offers
  // "Show more dead letters", which follows `next`.
  it('says more dead letters exist and shows the rest on request', async () => {
    await page.click('#tab-dead');
    await page.waitForSelector('#dead-list tr[data-event]');
    await page.waitForFunction(() => !document.getElementById('dead-list')!.hasAttribute('aria-busy'));
    expect(await page.locator('#dead-list tbody tr[data-event]').count()).toBe(200);
    expect(await page.locator('#dead-more').isVisible(), 'a "Show more dead letters" button').toBe(true);
    expect(await page.textContent('#dead-more')).toBe('Show more dead letters');
    expect(await page.textContent('#dead-progress')).toContain('more dead letters are not listed yet');
    await page.click('#dead-more');
    await page.waitForFunction((n) => document.querySelectorAll('#dead-list tbody tr[data-event]').length === n, DEAD, { timeout: 20_000 });
    const ids = await page.$$eval('#dead-list tbody tr[data-event]', (rows) => rows.map((r) => r.getAttribute('data-event')));
    expect(new Set(ids).size, 'each dead letter once').toBe(DEAD);
    expect(await page.locator('#dead-more').isVisible(), 'nothing more to show').toBe(false);
    expect(await page.textContent('#dead-progress')).not.toContain('not listed yet');
  });
});
