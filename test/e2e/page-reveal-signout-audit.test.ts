import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { useChromium } from '../fixtures/chromium.ts';
import { makeConfig, makeDeadLetter, useStatusServer } from '../fixtures/status/harness.ts';

const TOKEN = 'reveal-signout-token-17';

describe('status page: names revealed by an administrator', () => {
  const rig = useStatusServer('page-reveal-', {
    config: (dir) => {
      const tokenFile = path.join(dir, 'admin.token');
      writeFileSync(tokenFile, TOKEN);
      return makeConfig(path.join(dir, 'data'), { id: 'lab-reveal', status: { adminTokenFile: tokenFile } });
    },
    server: () => ({ version: '0.1.0' }),
  });
  const chromium = useChromium();

  /**
   * User sees: the lab manager signs in on the bench PC's status page, reveals the names of one
   * message to answer a ward's call (audited), and clicks "Sign out" before leaving the PC. The
   * patient's name stays on screen, unmasked, for whoever sits down next — signed out, and no
   * longer allowed to reveal it.
   * Promise: status/README.md "raw text with person names masked"; only an administrator sees
   * them unmasked, audited — not the next person at a signed-out page.
   */
  it('signing out masks the names it revealed again', async () => {
    const { messageId } = await makeDeadLetter(rig.store, 'REVEAL-1');
    const page = await chromium.browser.newPage();
    try {
      await page.goto(rig.url);
      await page.click('#tab-admin');
      await page.fill('#admin-token', TOKEN);
      await page.click('#admin-form button[type="submit"]');
      await page.waitForFunction(() => document.getElementById('admin-state')!.textContent!.startsWith('Signed in'));
      await page.click('#tab-messages');
      await page.click(`#msg-list tr[data-id="${messageId}"]`);
      await page.waitForSelector('#msg-detail button.admin-only:not([disabled])');
      await page.fill('#reveal-reason', 'call from ward 3');
      await page.click('#msg-detail button:has-text("Reveal names")');
      await page.waitForFunction(() => document.querySelector('#msg-detail pre.raw')?.textContent?.includes('DOE^JANE'));

      await page.click('#tab-admin');
      await page.click('#admin-signout');
      await page.click('#tab-messages');
      await page.waitForFunction(() => !document.querySelector('#msg-detail pre.raw')?.textContent?.includes('DOE^JANE'), undefined, { timeout: 5000 }).catch(() => undefined);
      expect(await page.textContent('body')).not.toContain('DOE');
      // The message is still shown, masked.
      expect(await page.textContent('#msg-detail pre.raw')).toContain('||***||');
    } finally {
      await page.close();
    }
  });
});
