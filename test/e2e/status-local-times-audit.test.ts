/**
 * The times inside the health reasons, as a technician reads them on the page and the tray: in
 * the lab's time, the gateway's local time zone, with its offset. `lab-gateway start` as its own
 * process, run with TZ=Asia/Kolkata (UTC+05:30, no daylight saving: a half-hour offset no UTC
 * stamp can pass for), its store real LevelDB in a temp dir.
 *
 * Before, the reasons quoted raw UTC stamps: "Sending to Odoo is paused by an administrator (…)
 * since 2026-03-06T17:02:11.000Z", "System clock 3 h behind the data the gateway stored (newest
 * 2026-03-06T20:02:11.000Z)": in Kolkata the pause read five and a half hours early.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { fileWriter, startGatewayProcess, type GatewayProcess } from '../fixtures/gateway-process.ts';
import { hl7Message, openStore } from '../fixtures/status/harness.ts';

const TOKEN = 'local-times-token-5c2e';
const KOLKATA_OFFSET_MS = (5 * 60 + 30) * 60_000;
const HOUR = 3_600_000;

interface Reason {
  code: string;
  message: string;
}

/** "HH:MM" of an instant in Kolkata, worked out without the process's zone. */
function kolkataClock(ms: number): string {
  const d = new Date(ms + KOLKATA_OFFSET_MS);
  return `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
}

/** The local form a reason writes: the clock, a day before it when not today (by the gateway's zone), the offset. */
function localForm(ms: number): RegExp {
  return new RegExp(`(?:\\d{1,2} [A-Z][a-z]{2}(?: \\d{4})? )?${kolkataClock(ms)} \\(UTC\\+05:30\\)`);
}

describe('times in health reasons, in the lab\'s time zone', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'status-local-times-'));
  const file = fileWriter(() => dir);
  const gateways: GatewayProcess[] = [];
  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('RELAY_PAUSED and CLOCK_BEHIND_STORED_DATA write their times as local time with the offset, not UTC stamps', async () => {
    const dataDir = path.join(dir, 'data');
    // The data a box stored before a power cut, three hours "ahead" of the clock it booted with.
    const ahead = Date.now() + 3 * HOUR;
    vi.useFakeTimers({ toFake: ['Date'], now: ahead });
    try {
      const store = await openStore(dataDir);
      await store.commit(hl7Message(undefined, 'BEFORE-CUT'), []);
      await store.close();
    } finally {
      vi.useRealTimers();
    }
    const tokenFile = path.join(dir, 'admin.token');
    writeFileSync(tokenFile, TOKEN + '\n');
    const config = await file(
      [
        `gateway: { id: lab-ist, dataDir: ${JSON.stringify(dataDir)} }`,
        'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
        'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
        `status: { listen: { host: 127.0.0.1, port: 0 }, adminTokenFile: ${JSON.stringify(tokenFile)} }`,
      ].join('\n') + '\n',
    );
    const g = startGatewayProcess(config, { TZ: 'Asia/Kolkata' });
    gateways.push(g);
    const ready = await g.ready;
    if (!ready) throw new Error(`gateway did not start: ${g.err().slice(-2000)}`);

    const paused = await fetch(new URL('/api/relay/pause', ready.status.url), {
      method: 'POST',
      headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ reason: 'month-end close' }),
    });
    expect(paused.status).toBe(200);
    const status = (await (await fetch(new URL('/api/status', ready.status.url))).json()) as { healthReasons: Reason[]; relayPause: { since: string } | null };

    // The machine-readable time keeps its field, as ISO.
    const since = Date.parse(status.relayPause?.since ?? '');
    expect(Number.isFinite(since)).toBe(true);
    expect(status.relayPause?.since).toMatch(/Z$/);

    const pause = status.healthReasons.find((r) => r.code === 'RELAY_PAUSED')?.message ?? '';
    expect(pause).toContain('month-end close');
    expect(pause).toMatch(new RegExp(`since ${localForm(since).source}`));
    expect(pause).not.toMatch(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/);

    const clock = status.healthReasons.find((r) => r.code === 'CLOCK_BEHIND_STORED_DATA')?.message ?? '';
    expect(clock).toMatch(/3 h behind/);
    // The newest stored instant is the message's receive time, at most a few seconds after `ahead`.
    expect(clock).toMatch(/\(newest (?:\d{1,2} [A-Z][a-z]{2}(?: \d{4})? )?\d{2}:\d{2} \(UTC\+05:30\)\)/);
    const shown = /\(newest (?:\d{1,2} [A-Z][a-z]{2}(?: \d{4})? )?(\d{2}:\d{2}) /.exec(clock)?.[1];
    expect([kolkataClock(ahead), kolkataClock(ahead + 60_000)]).toContain(shown);
    expect(clock).not.toMatch(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/);
  }, 60_000);
});
