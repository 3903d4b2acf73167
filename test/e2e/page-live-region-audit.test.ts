import { describe, expect, it } from 'vitest';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { useChromium } from '../fixtures/chromium.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import { makeConfig, useStatusServer } from '../fixtures/status/harness.ts';

/**
 * The status page read with a screen reader through an outage, in real Chromium against the real
 * status server: what the page announces (its live regions) while the problems stay the same and
 * only their durations count on.
 */
describe('status page announcements during an outage', () => {
  const telemetry = new Telemetry();
  let modelNow = Date.parse('2026-03-06T08:00:00Z');
  const rig = useStatusServer('page-live-outage-', {
    telemetry,
    config: (dir) => makeConfig(path.join(dir, 'data'), { id: 'lab-live' }),
    server: (config, store) => ({
      version: '0.1.0',
      // The model's clock is the test's: an hour of outage in a few seconds.
      model: new StatusModel({ config, store, telemetry, version: '0.1.0', startedAt: new Date(modelNow).toISOString(), now: () => modelNow }),
    }),
  });
  const chromium = useChromium();

  /** Mutations inside any live region of the page (what a screen reader is told to read out). */
  async function watchLiveRegions(page: Page): Promise<void> {
    await page.evaluate(() => {
      const w = window as unknown as { __announced: string[] };
      w.__announced = [];
      const live = (n: Node | null): Element | null => {
        const e = n instanceof Element ? n : n?.parentElement ?? null;
        return e?.closest('[aria-live]:not([aria-live="off"]), [role="status"], [role="alert"], [role="log"]') ?? null;
      };
      new MutationObserver((records) => {
        for (const r of records) {
          const region = live(r.target);
          if (region) w.__announced.push(`${region.id}: ${region.textContent?.replace(/\s+/g, ' ').trim()}`);
        }
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
  }
  const announced = (page: Page): Promise<string[]> => page.evaluate(() => [...new Set((window as unknown as { __announced: string[] }).__announced)]);

  async function poll(page: Page): Promise<void> {
    const answered = page.waitForResponse((r) => r.url().endsWith('/api/status'));
    await page.clock.fastForward(2_100);
    await answered;
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(undefined))));
  }

  /**
   * User hears: the analyzers' switch died at 08:00; four analyzers are down, each "disconnected
   * for 3 min", "… for 4 min". The banner is a polite live region read as a whole (aria-atomic):
   * each time one analyzer's minutes move on, the screen reader reads the whole banner again —
   * four analyzers down at different seconds, four readings of every reason a minute, for as
   * long as the outage lasts, over whatever the technician was reading on the page.
   * Promise: status/README.md "the page's banner is a live region … the words change once a
   * minute" — a problem appearing or clearing is announced; a duration counting on is shown.
   */
  it('durations counting on are shown, not announced; a new problem is announced', async () => {
    for (const id of ['xn-1', 'xn-2', 'xn-3', 'xn-4']) {
      telemetry.emit('endpoint.state', { endpoint: id, kind: 'astm', state: 'disconnected', connections: 0 });
      modelNow += 15_000; // each found down a little after the previous
    }
    const page = await chromium.newPage();
    await page.clock.install();
    await page.goto(rig.url);
    await page.waitForSelector('#state[data-health="degraded"]');
    await poll(page);
    await watchLiveRegions(page);

    // Ten minutes of the same outage, polled every 2 s (the model's clock 20 s a poll).
    for (let i = 0; i < 30; i++) {
      modelNow += 20_000;
      await poll(page);
    }
    // The banner in sight counts on…
    expect(await page.textContent('#state-reasons')).toMatch(/Analyzer xn-1 disconnected for 1[01] min/);
    // …and nothing was read out.
    expect(await announced(page)).toEqual([]);

    // Another analyzer drops: that is announced.
    telemetry.emit('endpoint.state', { endpoint: 'xn-5', kind: 'astm', state: 'disconnected', connections: 0 });
    await poll(page);
    const said = await announced(page);
    expect(said.some((t) => t.includes('xn-5') && t.includes('Needs attention'))).toBe(true);
    await page.close();
  });
});
