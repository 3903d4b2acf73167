/**
 * The message browser in real Chromium, after a site switched from the sandbox to its real Odoo:
 * a document the sandbox holds is listed as the sandbox's, so nobody looks it up in the real Odoo,
 * where the same id is another record. Documents stored before the mark existed show as before.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, type Page } from 'playwright-core';
import { launchChromium } from '../fixtures/chromium.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusServer } from '../../gateway/src/status/http-server.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import type { OdooRef } from '../../gateway/src/store/types.ts';
import { hl7Message, makeConfig, openStore, tempDir, validatedEvent } from '../fixtures/status/harness.ts';

/** One message with one event, delivered with these Odoo documents (as the relay completes it). */
async function delivered(store: EventStore, controlId: string, odoo: OdooRef[]): Promise<string> {
  const r = await store.commit(hl7Message(undefined, controlId), [validatedEvent(`ACC-${controlId}`)]);
  const eventId = r.eventIds[0]!;
  const lease = (await store.lease({ limit: 100 })).find((l) => l.events.some((e) => e.event.id === eventId));
  if (!lease) throw new Error(`could not lease ${eventId}`);
  await store.complete(lease, [{ eventId, outcome: 'delivered', odoo }]);
  return r.messageId;
}

describe('Odoo documents of a message after the switch to the real Odoo', () => {
  const tmp = tempDir('status-page-sandbox-');
  let store: EventStore;
  let server: StatusServer;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    // The gateway now posts to the site's Odoo.
    const config = makeConfig(path.join(tmp.dir, 'data'), { id: 'lab-switch', odoo: { url: 'https://lab.example.com', database: 'lab' } });
    store = await openStore(config.gateway.dataDir);
    server = new StatusServer({ config, store, telemetry: new Telemetry(), log: silentLogger, version: '0.1.0', startedAt: new Date().toISOString(), processMetrics: false });
    await server.start();
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1024, height: 600 } });
    await page.goto(server.url());
  });

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await store?.close();
    tmp.cleanup();
  });

  async function documentsOf(messageId: string, controlId: string): Promise<string[]> {
    await page.click('#tab-messages');
    await page.click('#msg-search button[type="submit"]');
    await page.click(`#msg-list tr[data-id="${messageId}"]`);
    // This message's detail, not the one shown before it.
    await page.waitForFunction((id) => document.querySelector('#msg-detail p.muted')?.textContent?.includes(`Control id ${id}`), controlId);
    return page.locator('#msg-detail ul:last-of-type li').allTextContents();
  }

  it('a document posted while commissioning is listed as the sandbox\'s', async () => {
    const messageId = await delivered(store, 'SWITCH-1', [{ model: 'sale.order', id: 1, name: 'S00001', sandbox: true }]);
    expect(await documentsOf(messageId, 'SWITCH-1')).toEqual(['sale.order #1 S00001 (sandbox)']);
  });

  it('a document stored without the mark (before it existed, or of the real Odoo) is listed as before', async () => {
    const messageId = await delivered(store, 'SWITCH-2', [{ model: 'sale.order', id: 7, name: 'S00007', externalId: 'lab_gateway.so_ACC_7' }]);
    expect(await documentsOf(messageId, 'SWITCH-2')).toEqual(['sale.order #7 S00007 (lab_gateway.so_ACC_7)']);
  });
});
