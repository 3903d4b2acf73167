/**
 * The gateway's log lost lines (its stderr a named pipe read by a log shipper that stopped): IT
 * looking at the status page, the tray or `/api/status` learns that the log has a gap, and since
 * when. `lab-gateway start` as its own process (TZ=Europe/Berlin), the page in real Chromium.
 *
 * Before, the lost lines were counted in `/metrics` only (lab_gateway_log_lines_dropped_total):
 * GET /api/status, the page and the tray said "all good", and whoever looked into the log for the
 * night's trouble found nothing and no word of why. Then (review): the reason cleared an hour after
 * the last line lost though the shipper was still stopped, and its words, with the count and the
 * last time, changed at every poll of a busy lab (the page's banner read out again each time). Now
 * it names when the gap began, the same words while it lasts, and `log.gapSince` says it is open.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { useChromium } from '../fixtures/chromium.ts';
import { fileWriter, TEST_LISTENERS, until } from '../fixtures/gateway-process.ts';
import { getWithHost, startWithLogPipe } from '../fixtures/log-pipe.ts';

interface LogStatus {
  health: string;
  healthReasons: Array<{ level: string; code: string; message: string }>;
  log?: { droppedLines: number; lastDroppedAt: string | null; lastError: string | null; gapSince: string | null };
}

/** "HH:MM" of an instant in Berlin in winter or summer, as the gateway run with TZ=Europe/Berlin writes it. */
function berlinClock(ms: number): string {
  const parts = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(new Date(ms));
  return `${parts.find((p) => p.type === 'hour')?.value}:${parts.find((p) => p.type === 'minute')?.value}`;
}

describe('a gateway whose log lost lines', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'status-log-lost-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = fileWriter(() => dir);
  const { newPage } = useChromium();

  it('says so in /api/status (log, LOG_LINES_LOST) and on the page', async () => {
    const config = await file(`gateway: { id: gap-2, dataDir: ${JSON.stringify(path.join(dir, 'data'))} }\n${TEST_LISTENERS}\n`);
    const gw = await startWithLogPipe(dir, config, { TZ: 'Europe/Berlin' });
    const { ready } = gw;
    try {
      const status = async (): Promise<LogStatus> => (await (await fetch(new URL('/api/status', ready.status.url))).json()) as LogStatus;

      // Nothing lost yet: the field says so, and no reason.
      const before = await status();
      expect(before.log).toEqual({ droppedLines: 0, lastDroppedAt: null, lastError: null, gapSince: null });
      expect(before.healthReasons.map((r) => r.code)).not.toContain('LOG_LINES_LOST');

      // The shipper stops; three warn lines (foreign Host names) go nowhere.
      gw.stopShipper();
      for (const host of ['lost-1.example', 'lost-2.example', 'lost-3.example']) expect(await getWithHost(ready.status.url, host)).toBe(421);
      const after = await until('the lost lines in the status', async () => {
        const s = await status();
        return (s.log?.droppedLines ?? 0) >= 3 && s.healthReasons.some((r) => r.code === 'LOG_LINES_LOST') ? s : undefined;
      });
      expect(after.log?.lastError).toContain('EPIPE');
      // The log takes no line: its gap is open, since the first line lost.
      const gapSince = Date.parse(after.log?.gapSince ?? '');
      expect(Number.isFinite(gapSince)).toBe(true);
      expect(gapSince).toBeLessThanOrEqual(Date.parse(after.log?.lastDroppedAt ?? ''));
      expect(after.health).toBe('degraded');
      const reason = after.healthReasons.find((r) => r.code === 'LOG_LINES_LOST')!;
      expect(reason.level).toBe('degraded');
      // When it started, not how many (the banner is read out whenever its words change).
      expect(reason.message).toMatch(new RegExp(`^Log lines lost, the first at ${berlinClock(gapSince)} \\(UTC\\+0[12]:00\\) \\(EPIPE`));
      expect(reason.message).not.toMatch(/\d+ log lines? lost|the last at/);

      // The page: the banner names the gap, the Intake card counts the lines.
      const page = await newPage();
      await page.goto(ready.status.url);
      await page.waitForSelector('#state[data-health="degraded"] li[data-code="LOG_LINES_LOST"]');
      expect(await page.textContent('#state-reasons li[data-code="LOG_LINES_LOST"]')).toBe(reason.message);
      await page.waitForFunction(() => /^\d+, the last /.test(document.getElementById('i-log')?.textContent ?? ''));
      const cell = (await page.textContent('#i-log')) ?? '';
      expect(cell).toMatch(/^\d+, the last \d{2}:\d{2} \(EPIPE/);
      expect(Number(cell.split(',')[0])).toBeGreaterThanOrEqual(3);

      // More lines lost: counted, the reason's words the same.
      for (const host of ['lost-4.example', 'lost-5.example']) expect(await getWithHost(ready.status.url, host)).toBe(421);
      const more = await until('more lines lost', async () => {
        const s = await status();
        return (s.log?.droppedLines ?? 0) >= (after.log?.droppedLines ?? 0) + 2 ? s : undefined;
      });
      expect(more.healthReasons.find((r) => r.code === 'LOG_LINES_LOST')?.message).toBe(reason.message);

      // The shipper is back and a line gets through: the gap is closed, the reason stays (an hour), its words too.
      const shipper = gw.restartShipper();
      expect(await getWithHost(ready.status.url, 'back.example')).toBe(421);
      await until('the line after the gap', () => shipper.text().includes('back.example'));
      const back = await until('the gap closed in the status', async () => {
        const s = await status();
        return s.log?.gapSince === null ? s : undefined;
      });
      expect(back.healthReasons.find((r) => r.code === 'LOG_LINES_LOST')?.message).toBe(reason.message);

      expect(await gw.stop()).toEqual({ code: 0, signal: null });
    } finally {
      await gw.dispose();
    }
  }, 60_000);
});
