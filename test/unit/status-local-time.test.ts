/**
 * `localTime` (status-model.ts): how an instant is written inside a health reason — the gateway's
 * local time with its offset, the day only when it is not today, the year only when not this year.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { localTime } from '../../gateway/src/status/status-model.ts';

let savedTz: string | undefined;
beforeEach(() => {
  savedTz = process.env.TZ;
});
afterEach(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

describe('localTime', () => {
  it('writes the clock and the offset of the zone the gateway runs in', () => {
    process.env.TZ = 'Europe/Paris';
    const at = Date.UTC(2026, 2, 6, 17, 2, 11);
    expect(localTime(at, Date.UTC(2026, 2, 6, 18, 0))).toBe('18:02 (UTC+01:00)');
    expect(localTime(at, Date.UTC(2026, 2, 9, 8, 0))).toBe('6 Mar 18:02 (UTC+01:00)');
    expect(localTime(at, Date.UTC(2027, 0, 2, 8, 0))).toBe('6 Mar 2026 18:02 (UTC+01:00)');
    // Summer time: the offset of that instant.
    expect(localTime(Date.UTC(2026, 6, 1, 6, 30), Date.UTC(2026, 6, 1, 7, 0))).toBe('08:30 (UTC+02:00)');
  });

  it('writes negative and half-hour offsets, and a day that is today in the lab though not in UTC', () => {
    process.env.TZ = 'America/Sao_Paulo';
    // 01:30 UTC on the 7th is 22:30 on the 6th in São Paulo: "today" when the gateway's now is the 6th there.
    expect(localTime(Date.UTC(2026, 2, 7, 1, 30), Date.UTC(2026, 2, 6, 23, 0))).toBe('22:30 (UTC-03:00)');
    process.env.TZ = 'Asia/Kolkata';
    expect(localTime(Date.UTC(2026, 2, 6, 17, 2), Date.UTC(2026, 2, 6, 17, 5))).toBe('22:32 (UTC+05:30)');
  });

  it('says so for a time it cannot read instead of "Invalid Date"', () => {
    expect(localTime(Number.NaN, Date.now())).toBe('an unknown time');
  });
});
