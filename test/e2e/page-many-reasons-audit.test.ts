import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { useChromium } from '../fixtures/chromium.ts';
import { makeConfig, useStatusServer } from '../fixtures/status/harness.ts';

/**
 * The status page on the lab's wall screen (1024×600) of a site with thirty analyzers, in real
 * Chromium: what a technician glancing at the banner learns when many things need attention at once.
 */
describe('status page with many reasons at once', () => {
  const rig = useStatusServer('page-many-reasons-', { config: (dir) => makeConfig(path.join(dir, 'data'), { id: 'lab-many' }), server: () => ({ version: '0.1.0' }) });
  const { newPage } = useChromium();

  /**
   * User sees: a night shift left eight of thirty analyzers unplugged, and the Odoo API key
   * expires in 3 days. The banner read "Needs attention" over the first two analyzers
   * ("Analyzer chem-04 disconnected for 1 min (…)"), the rest of its list out of sight in a box
   * 4.6 lines high with nothing saying more was there: nobody learnt of the key (listed last,
   * after every link's reason) until the results stopped reaching Odoo.
   * Promise: the banner says how many problems there are, and a problem of the whole gateway is
   * in sight before the reasons of single links (status/README.md "Health").
   */
  it('counts the problems and shows a problem of the whole gateway before the links\' ones', async () => {
    const t = rig.telemetry;
    t.emit('endpoint.state', { endpoint: 'lis', kind: 'hl7', state: 'listening', connections: 1 });
    t.emit('endpoint.state', { endpoint: 'xn-1', kind: 'astm', state: 'connected', connections: 1 });
    for (let i = 1; i <= 30; i++) {
      const down = i % 4 === 0;
      t.emit('endpoint.state', {
        endpoint: `chem-${String(i).padStart(2, '0')}`,
        kind: 'astm',
        state: down ? 'disconnected' : 'connected',
        connections: down ? 0 : 1,
        ...(down ? { detail: 'connect ECONNREFUSED 10.0.0.1:5000: the analyzer refuses the connection, check its host port setting' } : {}),
      });
    }
    t.emit('odoo.state', { state: 'sandbox', keyExpiresInDays: 3 });

    const page = await newPage();
    await page.goto(rig.url);
    await page.waitForSelector('#state[data-health="degraded"] li[data-code="API_KEY_EXPIRY"]');
    expect(await page.locator('#state-reasons li').count()).toBe(8);
    expect(await page.textContent('#state-count')).toBe('8 problems');

    // The key's reason is in sight in the banner, without scrolling its list.
    const inSight = await page.$eval('#state-reasons li[data-code="API_KEY_EXPIRY"]', (li) => {
      const list = li.parentElement!.getBoundingClientRect();
      const item = li.getBoundingClientRect();
      return item.top >= list.top && item.bottom <= list.bottom + 0.5;
    });
    expect(inSight).toBe(true);

    // One problem is not counted; none at all shows no count.
    for (let i = 4; i <= 28; i += 4) t.emit('endpoint.state', { endpoint: `chem-${String(i).padStart(2, '0')}`, kind: 'astm', state: 'connected', connections: 1 });
    await page.waitForFunction(() => document.querySelectorAll('#state-reasons li').length === 1);
    expect(await page.isHidden('#state-count')).toBe(true);
  });
});
