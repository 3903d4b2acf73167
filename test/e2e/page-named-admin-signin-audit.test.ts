import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { useChromium } from '../fixtures/chromium.ts';
import { makeConfig, relayStandIn, useStatusServer } from '../fixtures/status/harness.ts';

/**
 * The status page signed in with a named admin token (status.adminTokenFile of `<name> <token>`
 * lines), in real Chromium against the real status server.
 */
const ALICE = 'alice-token-4f9c2e71d0b8a356';
const BOB = 'bob-token-91d3e0c47a2f6b58';

describe('the page signed in with a named admin token', () => {
  const rig = useStatusServer('page-named-token-', {
    config: (dir) => {
      const file = path.join(dir, 'admin.tokens');
      writeFileSync(file, `# admins\nalice ${ALICE}\nbob ${BOB}\n`);
      return makeConfig(path.join(dir, 'data'), { id: 'lab-named', status: { adminTokenFile: file } });
    },
    server: () => ({ version: '0.1.0', relayControl: relayStandIn() }),
  });
  const chromium = useChromium();

  /**
   * User sees (was): on the shared wall-screen PC the Admin tab read "Signed in as administrator
   * for this browser tab." whoever had signed in: before pausing billing, no one could tell whose
   * name the trail would write.
   * Promise: status/README.md "Admin token": the page says whose token the tab holds.
   */
  it('says "Signed in as <name>", after a reload too, and the pause it makes names that person', async () => {
    const page = await chromium.newPage();
    await page.goto(rig.url);
    await page.click('#tab-admin');
    await page.fill('#admin-token', BOB);
    await page.click('#admin-form button[type="submit"]');
    await page.waitForFunction(() => document.getElementById('admin-state')!.textContent!.startsWith('Signed in'));
    expect(await page.textContent('#admin-state')).toBe('Signed in as bob for this browser tab.');

    await page.reload();
    await page.waitForFunction(() => document.getElementById('admin-state')!.textContent!.startsWith('Signed in'));
    expect(await page.textContent('#admin-state')).toBe('Signed in as bob for this browser tab.');

    await page.click('#tab-admin');
    await page.fill('#relay-reason', 'month-end close');
    await page.click('#relay-pause');
    await page.waitForFunction(() => document.getElementById('admin-state')!.textContent!.includes('paused'));
    const status = (await (await fetch(`${rig.url}/api/status`)).json()) as { relayPause: { by: string } | null };
    expect(status.relayPause?.by).toBe('bob@127.0.0.1');

    // Signing out forgets the name with the token.
    await page.click('#admin-signout');
    expect(await page.textContent('#admin-state')).toMatch(/^Not signed in/);
    expect(await page.evaluate(() => Object.keys(sessionStorage).length)).toBe(0);
    await page.close();
  });
});
