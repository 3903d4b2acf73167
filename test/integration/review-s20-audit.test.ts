/**
 * A review, as the next owner, of the features added on one day: the crash-loop note, the lab's
 * time zone, named admin tokens, HL7 without MLLP framing, quiet alerts. Each test states a promise
 * at an edge case (real store in a temp dir, real decoder, real config parsing); those that failed
 * on the code of the day name the fix in their module's README.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readAdminTokens } from '../../gateway/src/config/admin-tokens.ts';
import { longestOpenMinutes, parseBetween, quietSchedule, quietSince } from '../../gateway/src/config/quiet-alert.ts';
import { AdminAuth } from '../../gateway/src/status/admin-audit.ts';
import { adminTokenOf } from '../../desktop/src/tray-config.ts';
import { applyTimeZone, timeZoneIssues } from '../../gateway/src/config/time-zone.ts';
import type { GatewayConfig } from '../../gateway/src/config/types.ts';
import type { Lease } from '../../gateway/src/store/types.ts';
import { MllpDecoder, type UnframedBytes } from '../../gateway/src/ingress/mllp/mllp-decoder.ts';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const tmp = useTempStore('lgw-review-s20-', { pruneIntervalMs: 0, minFreeBytes: 0, ambiguousSettleMs: 0 });

const leaseOf = (leases: Lease[], id: string): Lease => {
  const l = leases.find((x) => x.events.some((e) => e.event.id === id));
  if (!l) throw new Error(`${id} is not leased`);
  return l;
};

describe('crash-loop note (store/event-store.ts noteCrash)', () => {
  it('a second uncaught exception during the same stop keeps the events the first one noted', async () => {
    let store = await tmp.open();
    const [a] = (await store.commit(inboundMessage('CRASH-A'), [resultValidated('ACC-A', 'k-a')])).eventIds;
    const [b] = (await store.commit(inboundMessage('CRASH-B'), [resultValidated('ACC-B', 'k-b')])).eventIds;
    const leases = await store.lease({ limit: 10, maxPerPartition: 10 });
    // The first error: both deliveries under way are noted.
    store.noteCrash(new TypeError('first'));
    // The stop cuts A's request: released unchanged (a retry), still counted.
    await store.complete(leaseOf(leases, a!), [{ eventId: a!, outcome: 'retry', error: 'socket hang up' }]);
    // A second uncaught exception while the stop goes on: start's handler notes again.
    store.noteCrash(new TypeError('second'));
    await store.close();
    store = await tmp.open();
    expect((await store.getEvent(a!))?.crashes, 'A, noted at the first error and cut by the stop, is counted').toBe(1);
    expect((await store.getEvent(b!))?.crashes).toBe(1);
  });
});

describe('the lab time zone (config/time-zone.ts)', () => {
  const original = process.env.TZ;
  afterEach(() => {
    if (original === undefined) delete process.env.TZ;
    else process.env.TZ = original;
  });
  const cfg = (timeZone?: string): GatewayConfig => ({ gateway: { id: 'g', dataDir: '/tmp/x', ...(timeZone ? { timeZone } : {}) } }) as unknown as GatewayConfig;

  it('two gateways in one process, stopped in the order they started: the one still running keeps its zone, and the last stop puts TZ back as it was', () => {
    const a = applyTimeZone(cfg('America/New_York'));
    const b = applyTimeZone(cfg('Asia/Tokyo'));
    expect(process.env.TZ).toBe('Asia/Tokyo');
    a.restore();
    expect(process.env.TZ, 'B still runs: its zone stays').toBe('Asia/Tokyo');
    b.restore();
    expect(process.env.TZ, 'both stopped: TZ as before either started').toBe(original);
  });

  it('two gateways stopped in reverse order: TZ back to as it was', () => {
    const a = applyTimeZone(cfg('America/New_York'));
    const b = applyTimeZone(cfg('Asia/Tokyo'));
    b.restore();
    expect(process.env.TZ).toBe('America/New_York');
    a.restore();
    expect(process.env.TZ).toBe(original);
  });

  it('a TZ that names no zone (a typo in the unit file) is warned at check and start, not read silently as UTC', () => {
    const issues = timeZoneIssues(cfg(), { TZ: 'Europe/Berln' }, 'UTC');
    expect(issues).toHaveLength(1);
    expect(issues[0]?.message).toContain('Europe/Berln');
    expect(issues[0]?.message).toContain('Europe/Berlin');
    // Valid spellings of TZ stay quiet: a zone, the glibc ':' form.
    expect(timeZoneIssues(cfg(), { TZ: 'Europe/Paris' }, 'Europe/Paris')).toEqual([]);
    expect(timeZoneIssues(cfg(), { TZ: ':Europe/Paris' }, 'Europe/Paris')).toEqual([]);
    // gateway.timeZone set: TZ does not matter.
    expect(timeZoneIssues(cfg('Europe/Berlin'), { TZ: 'Europe/Berln' }, 'UTC')).toEqual([]);
  });
});

describe('HL7 without MLLP framing (ingress/mllp/mllp-decoder.ts onUnframed): no mis-fire on a framed stream', () => {
  const MSG = (id: string): string => `MSH|^~\\&|LIS|LAB|GW|LAB|20260114092810||ORU^R01|${id}|P|2.5\rPID|1||P1\r`;
  function decode(chunks: Buffer[]): { frames: string[]; unframed: UnframedBytes[]; noise: number } {
    const frames: string[] = [];
    const unframed: UnframedBytes[] = [];
    const d = new MllpDecoder({ maxFrameBytes: 1_000_000, onFrame: (f) => frames.push(f.toString('latin1')), onOversize: () => undefined, onPartial: () => undefined, onUnframed: (u) => unframed.push(u) });
    let noise = 0;
    for (const c of chunks) {
      d.push(c);
      noise += d.takeNoise()?.bytes ?? 0;
    }
    d.end();
    return { frames, unframed, noise };
  }
  const bytewise = (s: string): Buffer[] => [...Buffer.from(s, 'latin1')].map((b) => Buffer.of(b));

  it('CR LF between frames, FS without CR before the next VT, NULs and spaces between frames, read one byte at a time: every frame, nothing unframed, no noise', () => {
    const stream = `\x0b${MSG('A')}\x1c\r\r\n\x0b${MSG('B')}\x1c\x0b${MSG('C')}\x1c\r\x00 \t\n\x0b${MSG('D')}\x1c\r`;
    for (const chunks of [[Buffer.from(stream, 'latin1')], bytewise(stream)]) {
      const r = decode(chunks);
      expect(r.frames).toEqual([MSG('A'), MSG('B'), MSG('C'), MSG('D')]);
      expect(r.unframed).toEqual([]);
      expect(r.noise).toBe(0);
    }
  });

  it('a VT arriving mid-line after noise, or after a segment name cut short ("MS" then VT): the frame is read whole, nothing taken as unframed HL7', () => {
    for (const before of ['hello', 'MS', 'MSH', '\r\nFH']) {
      const stream = `${before}\x0b${MSG('E')}\x1c\r`;
      for (const chunks of [[Buffer.from(stream, 'latin1')], bytewise(stream)]) {
        const r = decode(chunks);
        expect(r.frames, before).toEqual([MSG('E')]);
        expect(r.unframed, before).toEqual([]);
      }
    }
  });

  it('MSH not at a line start is noise; MSH after blanks at a line start is unframed HL7, ended by the next VT, which is read as a frame', () => {
    expect(decode([Buffer.from('XMSH|^~\\&|\r', 'latin1')]).unframed).toEqual([]);
    const r = decode([Buffer.from(`\r\n  ${MSG('U')}\x0b${MSG('F')}\x1c\r`, 'latin1')]);
    expect(r.unframed.map((u) => [u.head.toString('latin1'), u.endedBy])).toEqual([[MSG('U'), 'start-block']]);
    expect(r.frames).toEqual([MSG('F')]);
  });
});

describe('named admin tokens (config/admin-tokens.ts, status AdminAuth, tray adminTokenOf): files as editors write them', () => {
  const ALICE = 'a1b2c3d4e5f6a7b8c9d0e1f2';
  const BOB = 'f0e1d2c3b4a5968778695a4b';
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });
  async function authFrom(text: string): Promise<{ auth: AdminAuth; file: string }> {
    const d = await mkdtemp(path.join(tmpdir(), 'lgw-review-tokens-'));
    dirs.push(d);
    const file = path.join(d, 'admin-tokens');
    await writeFile(file, text);
    return { auth: await AdminAuth.fromFile(file), file };
  }

  it('a BOM at the start, CRLF line ends and a tab between name and token read as the lines written', async () => {
    const text = `\uFEFF# lab admins\r\nalice\t${ALICE}\r\n\r\nbob ${BOB}\r\n`;
    expect(readAdminTokens(text)).toEqual({ tokens: [expect.objectContaining({ name: 'alice', token: ALICE, line: 2 }), expect.objectContaining({ name: 'bob', token: BOB, line: 4 })], problems: [] });
    const { auth } = await authFrom(text);
    expect(auth.check(`Bearer ${ALICE}`)).toMatchObject({ name: 'alice' });
    expect(auth.check(`Bearer ${BOB}`)).toMatchObject({ name: 'bob' });
    // One bare token saved by Notepad (BOM, CRLF): the token, not the BOM with it.
    const bare = await authFrom(`\uFEFF${ALICE}\r\n`);
    expect(bare.auth.check(`Bearer ${ALICE}`)).toMatchObject({ name: undefined });
    expect(adminTokenOf(`\uFEFF${ALICE}\r\n`)).toBe(ALICE);
    expect(adminTokenOf(`\uFEFFalice\t${ALICE}\r\n`)).toBe(ALICE);
  });

  it('the file emptied by an editor between truncating and writing keeps the tokens in force; the rewrite puts the new set in force at the next request', async () => {
    const { auth, file } = await authFrom(`alice ${ALICE}\nbob ${BOB}\n`);
    await writeFile(file, '');
    expect(await auth.refresh()).toBeUndefined();
    expect(auth.check(`Bearer ${BOB}`)).toMatchObject({ name: 'bob' });
    await writeFile(file, `alice ${ALICE}\n`);
    expect(await auth.refresh()).toMatchObject({ removed: ['bob'] });
    expect(auth.check(`Bearer ${BOB}`)).toBeUndefined();
    expect(auth.check(`Bearer ${ALICE}`)).toMatchObject({ name: 'alice' });
  });
});

describe('quiet alerts (config/quiet-alert.ts) at the edges of the clock', () => {
  const original = process.env.TZ;
  afterEach(() => {
    if (original === undefined) delete process.env.TZ;
    else process.env.TZ = original;
  });

  it('00:00-24:00 on Mon-Fri: one opening from Monday 00:00 to Saturday 00:00; quiet counted from Monday 00:00 after a weekend, not from Friday evening', () => {
    process.env.TZ = 'Europe/Berlin';
    expect(parseBetween('00:00-24:00')).toEqual({ open: 0, close: 1440 });
    const s = quietSchedule({ afterMinutes: 60, between: '00:00-24:00', days: 'Mon-Fri' })!;
    expect(longestOpenMinutes(s.open, s.close, s.days)).toBe(5 * 1440);
    const last = new Date(2026, 0, 16, 23, 30).getTime(); // Friday 23:30
    expect(quietSince(s, last, new Date(2026, 0, 19, 0, 30).getTime()).due, 'Monday 00:30: 30 min on Friday, 30 on Monday').toBe(false);
    expect(quietSince(s, last, new Date(2026, 0, 19, 1, 0).getTime()).due, 'Monday 01:00: an hour since the opening').toBe(true);
  });

  it('a day whose midnight does not exist (America/Santiago, clocks 00:00 → 01:00): the window opens at 01:00 and counts real time', () => {
    process.env.TZ = 'America/Santiago';
    const s = quietSchedule({ afterMinutes: 60, between: '00:00-06:00' })!;
    const last = new Date(2026, 8, 5, 12, 0).getTime(); // the day before, after its window closed
    // 6 September 2026: 00:00 does not exist, the day starts at 01:00 -03.
    const opens = new Date(2026, 8, 6, 0, 0);
    expect(opens.getHours()).toBe(1);
    expect(quietSince(s, last, opens.getTime() + 59 * 60_000).due).toBe(false);
    expect(quietSince(s, last, opens.getTime() + 60 * 60_000).due).toBe(true);
  });
});
