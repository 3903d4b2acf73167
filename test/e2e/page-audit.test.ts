import { beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { useChromium } from '../fixtures/chromium.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusServer } from '../../gateway/src/status/http-server.ts';
import { freePort, makeConfig, makeDeadLetter, useStatusServer } from '../fixtures/status/harness.ts';

/**
 * Audit of the status page as a technician sees it, in real Chromium: what it shows for values
 * that look like markup, when the gateway stops answering without closing the connection, and
 * how it states times when the PC's clock is not the gateway's.
 */
const XSS_ID = 'xn-<img src=x onerror="window.__pwned=1">';
const XSS_TEXT = '<script>window.__pwned=2</script><b>bold</b>';

describe('status page audit in real Chromium', () => {
  const rig = useStatusServer('page-audit-', {
    config: (dir) => {
      const tokenFile = path.join(dir, 'admin.token');
      writeFileSync(tokenFile, 'page-audit-token');
      return makeConfig(path.join(dir, 'data'), { id: 'lab-audit', status: { adminTokenFile: tokenFile } });
    },
    server: () => ({ version: '0.1.0' }),
  });
  const { telemetry } = rig;
  let url: string;

  beforeAll(() => {
    url = rig.url;
    telemetry.emit('endpoint.state', { endpoint: 'lis', kind: 'hl7', state: 'listening', connections: 1 });
  });

  const { newPage } = useChromium();

  it('shows endpoint ids, reasons, Odoo errors and dead-letter reasons as text, never as markup', async () => {
    telemetry.emit('endpoint.state', { endpoint: XSS_ID, kind: 'astm', state: 'error', connections: 0, detail: XSS_TEXT });
    telemetry.emit('odoo.state', { state: 'auth-failed', lastError: XSS_TEXT });
    await makeDeadLetter(rig.store, 'AUDIT-XSS', XSS_TEXT);
    const page = await newPage();
    await page.goto(url);
    await page.waitForSelector('#state[data-health="degraded"]');
    await page.waitForFunction(() => document.getElementById('q-dead')!.textContent === '1');
    expect(await page.textContent('#state-reasons')).toContain(XSS_TEXT);
    expect(await page.locator('#endpoints tbody th', { hasText: XSS_ID }).count()).toBe(1);
    expect(await page.textContent('#o-error')).toBe(XSS_TEXT);
    await page.click('#tab-dead');
    await page.waitForSelector('#dead-list tr[data-event]');
    expect(await page.textContent('#dead-list')).toContain(XSS_TEXT);
    await page.click('#tab-messages');
    await page.waitForSelector('#msg-list tr[data-id]');
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await page.locator('body img, body b, body script').count()).toBe(0);
    telemetry.emit('endpoint.state', { endpoint: XSS_ID, kind: 'astm', state: 'stopped', connections: 0 });
    telemetry.emit('odoo.state', { state: 'sandbox' });
  });

  it('turns "Gateway offline" when the gateway accepts the connection but never answers (hung process)', async () => {
    const page = await newPage();
    await page.clock.install();
    await page.goto(url);
    await page.waitForSelector('#state[data-health]:not([data-health="unknown"]):not([data-health="offline"])');
    // From now on the gateway holds every status request open (a stopped or hung process whose
    // socket is still accepted by the kernel).
    let hung!: () => void;
    const firstHung = new Promise<void>((r) => (hung = r));
    await page.route('**/api/status', () => hung());
    await page.clock.runFor(5_000); // the next polls are due
    await firstHung;
    await page.clock.runFor(10 * 60_000); // ten minutes without an answer
    await page.waitForSelector('#state[data-health="offline"]', { timeout: 10_000 });
    expect(await page.textContent('#state-title')).toBe('Gateway offline');
  });

  it('states how long ago an analyzer last sent by the gateway\'s clock, not the PC\'s (a PC two hours fast)', async () => {
    telemetry.emit('endpoint.state', { endpoint: 'xn-skew', kind: 'astm', state: 'connected', connections: 1 });
    telemetry.emit('intake.message', { endpoint: 'xn-skew', kind: 'astm', outcome: 'accepted', ackLatencyMs: 1, bytes: 100 });
    const page = await newPage();
    await page.clock.install({ time: Date.now() + 2 * 3600_000 });
    await page.goto(url);
    const cell = page.locator('#endpoints tbody tr[data-endpoint="xn-skew"] td').nth(3);
    await cell.waitFor();
    // The gateway says the message came in a moment ago (its generatedAt vs lastMessageAt).
    expect(await cell.textContent()).toMatch(/^\d+ s ago$/);
  });

  it('comes back by itself when the gateway restarts on the same address', async () => {
    const port = await freePort();
    const config = makeConfig(path.join(rig.dir, 'data'), { id: 'lab-restart', status: { listen: { host: '127.0.0.1', port } } });
    const start = async (): Promise<StatusServer> => {
      const s = new StatusServer({ config, store: rig.store, telemetry, log: silentLogger, version: '0.1.0', startedAt: new Date().toISOString(), processMetrics: false });
      await s.start();
      return s;
    };
    let gw = await start();
    try {
      const page = await newPage();
      await page.goto(gw.url());
      await page.waitForFunction(() => document.getElementById('gw-id')!.textContent === 'lab-restart');
      await gw.stop();
      await page.waitForSelector('#state[data-health="offline"]', { timeout: 15_000 });
      gw = await start();
      await page.waitForSelector('#state:not([data-health="offline"]):not([data-health="unknown"])', { timeout: 15_000 });
      expect(await page.textContent('#gw-id')).toBe('lab-restart');
    } finally {
      await gw.stop();
    }
  });
});
