/**
 * The gateway's log lost lines (its stderr a named pipe read by a log shipper that stopped): IT
 * looking at the status page, the tray or `/api/status` learns that the log has a gap, and since
 * when. `lab-gateway start` as its own process (TZ=Europe/Berlin), the page in real Chromium.
 *
 * Before, the lost lines were counted in `/metrics` only (lab_gateway_log_lines_dropped_total):
 * GET /api/status, the page and the tray said "all good", and whoever looked into the log for the
 * night's trouble found nothing and no word of why.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { useChromium } from '../fixtures/chromium.ts';
import { cliSource, repo } from '../fixtures/cli.ts';
import { fileWriter, TEST_LISTENERS, until, type GatewayReady } from '../fixtures/gateway-process.ts';

/** A GET with its own Host header (fetch does not let a test choose it): each foreign name is logged once at warn. */
function getWithHost(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

/** A reader of the named pipe `fifo`, as a log shipper opens it. */
function openReader(fifo: string): { text: () => string; close: () => void } {
  const socket = new net.Socket({ fd: openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK), readable: true, writable: false });
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString()));
  return { text: () => text, close: () => socket.destroy() };
}

interface LogStatus {
  health: string;
  healthReasons: Array<{ level: string; code: string; message: string }>;
  log?: { droppedLines: number; lastDroppedAt: string | null; lastError: string | null };
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
    const fifo = path.join(dir, 'log.fifo');
    execFileSync('mkfifo', [fifo]);
    const shipper = openReader(fifo);
    const stderr = openSync(fifo, constants.O_WRONLY);
    const child = spawn(process.execPath, [cliSource, 'start', '--config', config], { cwd: repo, env: { ...process.env, TZ: 'Europe/Berlin' }, stdio: ['ignore', 'pipe', stderr] });
    closeSync(stderr);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
    try {
      let out = '';
      child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
      const ready = await until('the ready line', () => {
        const line = out.split('\n').find((l) => l.includes('"event":"ready"'));
        return line === undefined ? undefined : (JSON.parse(line) as GatewayReady);
      });
      const status = async (): Promise<LogStatus> => (await (await fetch(new URL('/api/status', ready.status.url))).json()) as LogStatus;
      await until('the start-up log read', () => shipper.text().includes('status API listening'));

      // Nothing lost yet: the field says so, and no reason.
      const before = await status();
      expect(before.log).toEqual({ droppedLines: 0, lastDroppedAt: null, lastError: null });
      expect(before.healthReasons.map((r) => r.code)).not.toContain('LOG_LINES_LOST');

      // The shipper stops; three warn lines (foreign Host names) go nowhere.
      shipper.close();
      for (const host of ['lost-1.example', 'lost-2.example', 'lost-3.example']) expect(await getWithHost(ready.status.url, host)).toBe(421);
      const after = await until('the lost lines in the status', async () => {
        const s = await status();
        return (s.log?.droppedLines ?? 0) >= 3 && s.healthReasons.some((r) => r.code === 'LOG_LINES_LOST') ? s : undefined;
      });
      expect(after.log?.lastError).toContain('EPIPE');
      const lastAt = Date.parse(after.log?.lastDroppedAt ?? '');
      expect(Number.isFinite(lastAt)).toBe(true);
      expect(after.health).toBe('degraded');
      const reason = after.healthReasons.find((r) => r.code === 'LOG_LINES_LOST')!;
      expect(reason.level).toBe('degraded');
      expect(reason.message).toContain(`${after.log?.droppedLines} log lines lost`);
      expect(reason.message).toMatch(new RegExp(`the last at ${berlinClock(lastAt)} \\(UTC\\+0[12]:00\\)`));
      expect(reason.message).toContain('EPIPE');

      // The page: the banner names the gap, the Intake card counts the lines.
      const page = await newPage();
      await page.goto(ready.status.url);
      await page.waitForSelector('#state[data-health="degraded"] li[data-code="LOG_LINES_LOST"]');
      expect(await page.textContent('#state-reasons li[data-code="LOG_LINES_LOST"]')).toContain('the log has a gap');
      await page.waitForFunction(() => /^\d+, the last /.test(document.getElementById('i-log')?.textContent ?? ''));
      const cell = (await page.textContent('#i-log')) ?? '';
      expect(cell).toMatch(/^\d+, the last \d{2}:\d{2} \(EPIPE/);
      expect(Number(cell.split(',')[0])).toBeGreaterThanOrEqual(3);

      child.kill('SIGTERM');
      expect(await exited).toEqual({ code: 0, signal: null });
    } finally {
      shipper.close();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    }
  }, 60_000);
});
