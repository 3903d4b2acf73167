import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { useChromium } from '../fixtures/chromium.ts';
import { makeConfig, makeDeadLetter, useStatusServer, writeAdminToken } from '../fixtures/status/harness.ts';

/**
 * The status page's admin sign-in across a rotation of the admin token, in real Chromium against
 * the real status server (its token file re-read on every admin request: status/README.md "Admin
 * token").
 */
describe('the admin token rotated while the page is signed in', () => {
  let tokenFile = '';
  const rig = useStatusServer('page-token-rotated-', {
    config: (dir) => {
      tokenFile = writeAdminToken(dir, 'token-of-the-morning-0123456789');
      return makeConfig(path.join(dir, 'data'), { id: 'lab-rotate', status: { adminTokenFile: tokenFile } });
    },
    server: () => ({ version: '0.1.0' }),
  });
  const chromium = useChromium();

  /**
   * User sees: IT signed in on the wall screen's page in the morning; at noon the token is rotated
   * (a new one written to status.adminTokenFile). A technician-admin replays a dead letter there:
   * "replay failed: the admin token is not accepted" — and the Admin tab still reads "Signed in
   * as administrator for this browser tab." Every later action fails the same way, each counted
   * by the gateway as a wrong token (10 in a minute lock the address out with 429), and nothing
   * says to sign in again.
   * Promise: status/README.md "a token written there is accepted at once and the one it replaced
   * is refused" — the page says so and asks for the current one.
   */
  it('a refused token signs the page out and says to sign in with the current one', async () => {
    const { eventId } = await makeDeadLetter(rig.store, 'ROT-1', 'product GLU has no Odoo counterpart');
    const page = await chromium.newPage();
    await page.goto(rig.url);
    await page.click('#tab-admin');
    await page.fill('#admin-token', 'token-of-the-morning-0123456789');
    await page.click('#admin-form button[type="submit"]');
    await page.waitForFunction(() => document.getElementById('admin-state')!.textContent!.startsWith('Signed in'));

    writeFileSync(tokenFile, 'token-of-the-afternoon-9876543210\n'); // the rotation
    await page.click('#tab-dead');
    const row = page.locator(`#dead-list tr[data-event="${eventId}"]`);
    await row.waitFor();
    await row.locator('button', { hasText: 'Replay' }).click();
    await page.waitForFunction(() => document.getElementById('dead-result')!.textContent!.includes('failed'));
    expect(await page.textContent('#dead-result')).toMatch(/not accepted.*sign in again/i);
    expect(await page.evaluate(() => sessionStorage.getItem('labGatewayAdminToken'))).toBeNull();
    expect(await page.textContent('#admin-state')).toMatch(/^Not signed in/);
    // The buttons that need the token say so again (disabled until signed in).
    expect(await row.locator('button', { hasText: 'Replay' }).isDisabled()).toBe(true);
    await page.close();
  });
});
