/**
 * `lab-gateway start` whose log reader goes away for a while: its stderr is a named pipe read by a
 * log shipper, and the shipper stops, then starts again (an update, a crash and its restart). The
 * lines written meanwhile cannot be taken (EPIPE) and are lost. Before, they were dropped without a
 * trace (7b50cad keeps the error from stopping the gateway): IT found a gap in the log and nothing
 * to explain it. Now `/metrics` counts them (`lab_gateway_log_lines_dropped_total`) and the first
 * line the pipe takes again is preceded by a `log lines lost` line saying how many, when and why.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cliSource, repo } from '../fixtures/cli.ts';
import { fileWriter, TEST_LISTENERS, until, type GatewayReady } from '../fixtures/gateway-process.ts';
import { series } from '../fixtures/status/harness.ts';

/** A GET with its own Host header (fetch does not let a test choose it); resolves with the status code. */
function getWithHost(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

/** A reader of the named pipe `fifo`, as a log shipper opens it: everything it got so far. */
function openReader(fifo: string): { text: () => string; close: () => void } {
  const socket = new net.Socket({ fd: openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK), readable: true, writable: false });
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString()));
  return { text: () => text, close: () => socket.destroy() };
}

describe('start with its log reader gone for a while', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'log-dropped-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = fileWriter(() => dir);

  it('counts the lost lines in /metrics and says how many were lost once the log is read again', async () => {
    const config = await file(`gateway: { id: gap-1, dataDir: ${JSON.stringify(path.join(dir, 'data'))} }\n${TEST_LISTENERS}\n`);
    const fifo = path.join(dir, 'log.fifo');
    execFileSync('mkfifo', [fifo]);
    let shipper = openReader(fifo);
    const stderr = openSync(fifo, constants.O_WRONLY);
    const child = spawn(process.execPath, [cliSource, 'start', '--config', config], { cwd: repo, stdio: ['ignore', 'pipe', stderr] });
    closeSync(stderr);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
    try {
      let out = '';
      child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
      const ready = await until('the ready line', () => {
        const line = out.split('\n').find((l) => l.includes('"event":"ready"'));
        return line === undefined ? undefined : (JSON.parse(line) as GatewayReady);
      });
      const metrics = async (): Promise<number> => {
        const text = await (await fetch(new URL('/metrics', ready.status.url))).text();
        return series(text, 'lab_gateway_log_lines_dropped_total') ?? Number.NaN;
      };
      await until('the start-up log read', () => shipper.text().includes('status API listening'));
      expect(await metrics()).toBe(0);

      // The shipper stops. Three requests naming foreign hosts are each logged at warn: lost.
      shipper.close();
      for (const host of ['lost-1.example', 'lost-2.example', 'lost-3.example']) expect(await getWithHost(ready.status.url, host)).toBe(421);
      const dropped = await metrics();
      expect(dropped).toBeGreaterThanOrEqual(3);

      // The shipper is back: the next line is preceded by what was lost.
      shipper = openReader(fifo);
      expect(await getWithHost(ready.status.url, 'back.example')).toBe(421);
      const text = await until('the line after the gap', () => (shipper.text().includes('back.example') ? shipper.text() : undefined));
      expect(text).not.toContain('lost-1.example');
      const lines = text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      const noteAt = lines.findIndex((l) => l['msg'] === 'log lines lost');
      expect(noteAt, text).toBeGreaterThanOrEqual(0);
      const note = lines[noteAt]!;
      expect(note).toMatchObject({ level: 'warn', gateway: 'gap-1', dropped, droppedTotal: dropped });
      expect(String(note['error'])).toContain('EPIPE');
      expect(Date.parse(String(note['firstDroppedAt']))).toBeLessThanOrEqual(Date.parse(String(note['lastDroppedAt'])));
      expect(JSON.stringify(lines[noteAt + 1])).toContain('back.example');
      // Told once: a further line comes alone, and the count stays.
      expect(await getWithHost(ready.status.url, 'again.example')).toBe(421);
      await until('the next line', () => shipper.text().includes('again.example'));
      expect(shipper.text().split('log lines lost').length).toBe(2);
      expect(await metrics()).toBe(dropped);

      child.kill('SIGTERM');
      expect(await exited).toEqual({ code: 0, signal: null });
    } finally {
      shipper.close();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    }
  }, 60_000);
});
