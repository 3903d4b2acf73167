import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { useChromium } from '../fixtures/chromium.ts';
import { makeConfig, makeDeadLetter, useStatusServer } from '../fixtures/status/harness.ts';

const TOKEN = 'keyboard-audit-token';

/**
 * The status page used from the keyboard alone (a technician who cannot use a mouse, a screen
 * reader's user), in real Chromium: where the focus is after an action on the dead-letter list,
 * and what a poll does to the table being read.
 */
describe('status page from the keyboard and a screen reader', () => {
  const rig = useStatusServer('page-keyboard-', {
    config: (dir) => {
      const tokenFile = path.join(dir, 'admin.token');
      writeFileSync(tokenFile, TOKEN);
      return makeConfig(path.join(dir, 'data'), { id: 'lab-keys', status: { adminTokenFile: tokenFile } });
    },
    server: () => ({ version: '0.1.0' }),
  });
  const { newPage } = useChromium();

  async function signIn(page: Page): Promise<void> {
    await page.goto(rig.url);
    await page.click('#tab-admin');
    await page.fill('#admin-token', TOKEN);
    await page.press('#admin-token', 'Enter');
    await page.waitForFunction(() => document.getElementById('admin-state')!.textContent!.startsWith('Signed in'));
    await page.click('#tab-dead');
  }

  /** What has the keyboard focus: the element's tag and what tells it (its reason-for, its text). */
  const focused = (page: Page): Promise<string> =>
    page.evaluate(() => {
      const a = document.activeElement as HTMLElement | null;
      if (!a || a === document.body) return 'body';
      return `${a.tagName.toLowerCase()}:${a.dataset['reasonFor'] ?? a.id ?? ''}:${a.tagName === 'BUTTON' ? a.textContent : ''}`;
    });

  /**
   * User sees (hears): tabbing to a dead letter's reason, typing it, Tab to "Replay", Enter. The
   * list is listed again and the row is gone — and the focus with it, to the top of the page: the
   * next Tab lands on the first tab ("Overview"), the screen reader says nothing of where it is,
   * and the technician with eleven more dead letters to go tabs through the whole page again for
   * each one. A refused discard (no reason given) and a failed action left the focus nowhere too
   * (their row is drawn again).
   * Promise: keyboard and screen-reader use (WCAG 2.1 §2.4.3 focus order): after an action the
   * focus is where the work goes on.
   */
  it('after a replay the focus is on the next dead letter\'s reason; after a refused discard, on its own reason', async () => {
    const first = await makeDeadLetter(rig.store, 'KEYS-1', 'product GLU has no Odoo counterpart');
    const second = await makeDeadLetter(rig.store, 'KEYS-2', 'product GLU has no Odoo counterpart');
    const page = await newPage();
    await signIn(page);
    // Listed in id order: KEYS-1 first.
    await page.waitForSelector(`#dead-list tr[data-event="${second.eventId}"] button:not([disabled])`);

    // A discard without a reason is refused: the focus goes to the reason to type.
    await page.focus(`#dead-list tr[data-event="${first.eventId}"] input`);
    await page.keyboard.press('Tab'); // Replay
    await page.keyboard.press('Tab'); // Discard
    expect(await focused(page)).toBe('button::Discard');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.getElementById('dead-result')!.textContent === 'A discard needs a reason.');
    expect(await focused(page)).toBe(`input:${first.eventId}:`);

    await page.keyboard.type('product mapped in Odoo');
    await page.keyboard.press('Tab');
    expect(await focused(page)).toBe('button::Replay');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.getElementById('dead-result')!.textContent!.startsWith('Replayed'));
    await page.waitForSelector(`#dead-list tr[data-event="${first.eventId}"]`, { state: 'detached' });
    await page.waitForFunction(() => document.activeElement !== document.body);
    expect(await focused(page)).toBe(`input:${second.eventId}:`);

    // The last one: replayed, the list is empty; the focus is on the result said.
    await page.keyboard.type('same mapping');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.getElementById('dead-list')!.textContent!.includes('No dead letters.'));
    await page.waitForFunction(() => document.activeElement !== document.body);
    expect(await focused(page)).toBe('p:dead-result:');
  });

  /**
   * User sees (hears): reading the analyzers table with a screen reader, row by row, at row 9 of
   * 30. The page rebuilt every row of the table (and the recent alerts) on each poll, every 2 s,
   * though nothing had changed: the screen reader's reading place in a table whose rows are all
   * new is lost, and it starts again from the top or from wherever it lands, every 2 s — the
   * table cannot be read through. Also a row a keyboard user had tabbed into was a new element.
   * Promise: what did not change is left as it is; a change (an analyzer disconnected) changes its
   * own row's words, in the same row.
   */
  it('a poll that brings nothing new leaves the analyzers table and the recent alerts as they are', async () => {
    const t = rig.telemetry;
    t.emit('endpoint.state', { endpoint: 'lis', kind: 'hl7', state: 'listening', connections: 1 });
    for (let i = 1; i <= 30; i++) t.emit('endpoint.state', { endpoint: `an-${String(i).padStart(2, '0')}`, kind: 'astm', state: 'connected', connections: 1 });
    t.emit('alert', { severity: 'warning', code: 'ODOO_VERSION_CHANGED', message: 'Odoo was upgraded from 17 to 18', at: new Date().toISOString() });
    const page = await newPage();
    await page.clock.install();
    await page.goto(rig.url);
    await page.waitForSelector('#endpoints tbody tr[data-endpoint="an-30"]');
    await page.waitForSelector('#recent-alerts li[data-code="ODOO_VERSION_CHANGED"]');
    await page.evaluate(() => {
      const w = window as unknown as { __changes: number; __row: Element };
      w.__changes = 0;
      w.__row = document.querySelector('#endpoints tbody tr[data-endpoint="an-09"]')!;
      const watch = new MutationObserver((records) => (w.__changes += records.length));
      for (const id of ['endpoints', 'recent-alerts']) watch.observe(document.getElementById(id)!, { subtree: true, childList: true, characterData: true, attributes: true });
    });
    for (let i = 0; i < 3; i++) {
      const answered = page.waitForResponse((r) => r.url().endsWith('/api/status'));
      await page.clock.fastForward(2_100);
      await answered;
    }
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(undefined))));
    expect(await page.evaluate(() => (window as unknown as { __changes: number }).__changes)).toBe(0);

    t.emit('endpoint.state', { endpoint: 'an-09', kind: 'astm', state: 'disconnected', connections: 0, detail: 'no carrier' });
    await page.clock.fastForward(2_100);
    await page.waitForFunction(() => document.querySelector('#endpoints tbody tr[data-endpoint="an-09"]')!.textContent!.includes('disconnected'));
    expect(await page.evaluate(() => (window as unknown as { __row: Element }).__row === document.querySelector('#endpoints tbody tr[data-endpoint="an-09"]'))).toBe(true);
    expect(await page.textContent('#endpoints tbody tr[data-endpoint="an-09"] .pill')).toBe('disconnected');
  });
});
