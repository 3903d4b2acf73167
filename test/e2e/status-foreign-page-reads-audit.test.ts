import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { startForeignSite, type ForeignSite } from '../fixtures/chromium.ts';
import { createLogger } from '../../gateway/src/log.ts';
import { hl7Message, makeConfig, requestJson, useStatusServer, waitFor } from '../fixtures/status/harness.ts';

/**
 * The read routes of the status API as a web page the technician visits on the gateway PC sees
 * them, in real Chromium: the page is served under a foreign name (`news.example`, mapped to
 * 127.0.0.1 by the browser's resolver rules), cross-site to the gateway as any page of the web
 * is. What reached the store is counted on the real store (its list and read calls), not timed.
 */
const ATTACK_HOST = 'news.example';

describe('read routes and requests a page of another site makes', () => {
  const logLines: string[] = [];
  /** Store reads the status routes made (message and event lists, single records). */
  let storeReads = 0;
  const counted = <A extends unknown[], R>(fn: (...args: A) => R): ((...args: A) => R) => (...args: A) => {
    storeReads++;
    return fn(...args);
  };
  // The store's reads are counted from before the server starts; the set-up's commits below are
  // not counted.
  const rig = useStatusServer('status-xsite-reads-', {
    config: (dir) => makeConfig(path.join(dir, 'data'), { id: 'lab-xreads' }),
    server: (_config, store) => {
      store.listEventPage = counted(store.listEventPage.bind(store));
      store.listMessagePage = counted(store.listMessagePage.bind(store));
      store.listEvents = counted(store.listEvents.bind(store));
      store.listMessages = counted(store.listMessages.bind(store));
      store.getEvent = counted(store.getEvent.bind(store));
      store.getMessage = counted(store.getMessage.bind(store));
      return { log: createLogger({ level: 'warn', write: (l) => logLines.push(l) }) };
    },
  });
  let gateway: string;
  let site: ForeignSite;

  beforeAll(async () => {
    for (let i = 0; i < 5; i++) await rig.store.commit(hl7Message(undefined, `XR-${i}`), []);
    storeReads = 0;
    gateway = rig.url;
    site = await startForeignSite(ATTACK_HOST);
  });

  afterAll(async () => {
    await site?.close();
  });

  // What the user saw: with a web page of the Internet open in a tab on the gateway PC, intake
  // slowed down: the page fired no-cors requests at /api/events?state=discarded and
  // /api/messages?endpoint= in a loop, each reading up to 5,000 records of the store beside the
  // LIS's and the analyzers' commits, though the page could read none of the answers (no CORS).
  // Promise broken: the status surfaces observe, they do not load the store for whoever asks
  // (status/README.md, Paging: read budgets), and the gateway PC's browser is not a door into
  // the gateway (the admin routes already refuse requests of another site).
  it("a foreign page's fetches, images and frames of the read routes reach no store", async () => {
    site.html = `<!doctype html><html><body><script>
      (async () => {
        const routes = ['/api/events?state=discarded&limit=500', '/api/messages?endpoint=lis&limit=500', '/api/events/E1', '/api/messages/M1', '/api/status', '/metrics'];
        for (let i = 0; i < 10; i++) {
          for (const r of routes) await fetch('${gateway}' + r + (r.includes('?') ? '&' : '?') + 'n=' + i, { mode: 'no-cors' }).catch(() => {});
          await new Promise((r) => { const img = new Image(); img.onload = img.onerror = r; img.src = '${gateway}/api/events?state=discarded&limit=500&img=' + i; });
        }
        await new Promise((r) => { const f = document.createElement('iframe'); f.onload = f.onerror = r; f.src = '${gateway}/api/messages?endpoint=lis&frame=1'; document.body.appendChild(f); });
        document.title = 'done';
      })();
    </script></body></html>`;
    const context = await site.browser.newContext();
    const page = await context.newPage();
    await page.goto(`${site.origin}/`);
    await page.waitForFunction(() => document.title === 'done', undefined, { timeout: 30_000 });
    await context.close();

    expect(storeReads, 'store reads the foreign page caused').toBe(0);
    // The requests did reach the gateway (a browser blocking them would prove nothing).
    expect(logLines.filter((l) => l.includes('API request refused') && l.includes(site.origin)).length).toBeGreaterThan(0);
  });

  // Kept working: the gateway's own page lists the messages (same-origin requests), a link on
  // another site (the lab's intranet) to an API route opens it (a top-level navigation, one
  // request per click), and programs (the tray, `lab-gateway`, scripts: no Sec-Fetch headers)
  // read as before.
  it("the gateway's own page, a link from another site and programs still read", async () => {
    storeReads = 0;
    const context = await site.browser.newContext();
    const page = await context.newPage();
    await page.goto(`${gateway}/`);
    await page.waitForFunction(() => document.getElementById('gw-id')?.textContent === 'lab-xreads');
    await page.click('#tab-messages');
    await page.waitForFunction(() => (document.querySelector('#msg-list tbody')?.textContent ?? '').includes('XR-4'));
    expect(storeReads, 'the page listed the messages from the store').toBeGreaterThan(0);

    site.html = `<!doctype html><html><body><a id="go" href="${gateway}/api/messages?limit=2">Lab gateway messages</a></body></html>`;
    await page.goto(`${site.origin}/`);
    const [response] = await Promise.all([page.waitForNavigation(), page.click('#go')]);
    expect(response?.status()).toBe(200);
    expect(JSON.parse(await page.locator('body').innerText()).count).toBe(2);
    await context.close();

    const r = await requestJson(`${gateway}/api/events?state=discarded`);
    expect(r.status, r.text).toBe(200);
    expect(r.json.events).toEqual([]);
    await waitFor(async () => (await requestJson(`${gateway}/api/messages?endpoint=lis`)).json?.count === 5, 'a script listing the messages');
  });
});
