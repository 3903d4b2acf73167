/**
 * `lab-gateway start` whose log reader goes away for a while: its stderr is a named pipe read by a
 * log shipper, and the shipper stops, then starts again (an update, a crash and its restart). The
 * lines written meanwhile cannot be taken (EPIPE) and are lost. Before, they were dropped without a
 * trace (7b50cad keeps the error from stopping the gateway): IT found a gap in the log and nothing
 * to explain it. Now `/metrics` counts them (`lab_gateway_log_lines_dropped_total`) and the first
 * line the pipe takes again is preceded by a `log lines lost` line saying how many, when and why.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fileWriter, TEST_LISTENERS, until } from '../fixtures/gateway-process.ts';
import { getWithHost, startWithLogPipe } from '../fixtures/log-pipe.ts';
import { series } from '../fixtures/status/harness.ts';

describe('start with its log reader gone for a while', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'log-dropped-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = fileWriter(() => dir);

  it('counts the lost lines in /metrics and says how many were lost once the log is read again', async () => {
    const config = await file(`gateway: { id: gap-1, dataDir: ${JSON.stringify(path.join(dir, 'data'))} }\n${TEST_LISTENERS}\n`);
    const gw = await startWithLogPipe(dir, config);
    const { ready } = gw;
    try {
      const metrics = async (): Promise<number> => {
        const text = await (await fetch(new URL('/metrics', ready.status.url))).text();
        return series(text, 'lab_gateway_log_lines_dropped_total') ?? Number.NaN;
      };
      expect(await metrics()).toBe(0);
      // The Odoo link's first state is logged a moment after start-up; wait for it, so that the only
      // lines written during the gap are the three below.
      await until('the Odoo link line', () => gw.shipper().text().includes('"odoo link"'));

      // The shipper stops. Three requests naming foreign hosts are each logged at warn: lost.
      gw.stopShipper();
      for (const host of ['lost-1.example', 'lost-2.example', 'lost-3.example']) expect(await getWithHost(ready.status.url, host)).toBe(421);
      const dropped = await metrics();
      expect(dropped).toBeGreaterThanOrEqual(3);

      // The shipper is back: the next line is preceded by what was lost.
      const shipper = gw.restartShipper();
      expect(await getWithHost(ready.status.url, 'back.example')).toBe(421);
      const text = await until('the line after the gap', () => (shipper.text().includes('back.example') ? shipper.text() : undefined));
      expect(text).not.toContain('lost-1.example');
      const lines = text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      const noteAt = lines.findIndex((l) => l['msg'] === 'log lines lost');
      expect(noteAt, text).toBeGreaterThanOrEqual(0);
      const note = lines[noteAt]!;
      // At least the lines lost when /metrics was read: another line (the gateway's own) may have
      // been lost after that read and before the shipper came back; the note counts it too.
      expect(note).toMatchObject({ level: 'warn', gateway: 'gap-1' });
      expect(Number(note['dropped'])).toBeGreaterThanOrEqual(dropped);
      expect(note['droppedTotal']).toBe(note['dropped']);
      expect(String(note['error'])).toContain('EPIPE');
      expect(Date.parse(String(note['firstDroppedAt']))).toBeLessThanOrEqual(Date.parse(String(note['lastDroppedAt'])));
      // The note is the first line the pipe takes again, before the line that found it open. What
      // the new reader gets before it can only be lines written before the gap that the stopped
      // shipper had left unread in the pipe's buffer (a FIFO keeps them while the writer holds it).
      for (const earlier of lines.slice(0, noteAt)) {
        expect(Date.parse(String(earlier['time'])), JSON.stringify(earlier)).toBeLessThanOrEqual(Date.parse(String(note['firstDroppedAt'])));
      }
      expect(lines.findIndex((l) => JSON.stringify(l).includes('back.example'))).toBeGreaterThan(noteAt);
      // Told once: a further line comes alone, and the count stays.
      expect(await getWithHost(ready.status.url, 'again.example')).toBe(421);
      await until('the next line', () => shipper.text().includes('again.example'));
      expect(shipper.text().split('log lines lost').length).toBe(2);
      expect(await metrics()).toBe(note['droppedTotal']);

      expect(await gw.stop()).toEqual({ code: 0, signal: null });
    } finally {
      await gw.dispose();
    }
  }, 60_000);
});
