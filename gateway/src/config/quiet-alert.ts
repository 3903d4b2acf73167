/**
 * `quietAlert` of an analyzer (`analyzers[]`) or an HL7 endpoint (`hl7[]`): the lab's hours in
 * which the endpoint is expected to send, and how long it may stay quiet in them before the status
 * says so (ENDPOINT_QUIET, status/status-model.ts). Only the lab knows its rhythm (closed at night,
 * an analyzer run twice a week), so it is opt-in and per endpoint.
 *
 * Times are the lab's local time: the process runs in `gateway.timeZone` (config/time-zone.ts), so
 * plain local Date methods read the lab's clock, and a window keeps its hours across summer time.
 */
import type { QuietAlertConfig } from './types.ts';

export const QUIET_AFTER_MINUTES_MAX = 30 * 24 * 60;

const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
const FULL_DAY_NAMES = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'] as const;
const DAY_MIN = 24 * 60;
const WEEK_MIN = 7 * DAY_MIN;
/**
 * Quiet time is counted at most this far back (beyond `afterMinutes`): any longer gap holds a
 * whole window of a weekly rhythm after the last message, so the alert is due whatever the window.
 */
const LOOKBACK_MS = 15 * 86_400_000;

/** A quiet alert read: minutes of the day its window opens and closes (close > open; past 1440 over midnight), the days it opens. */
export interface QuietSchedule {
  afterMs: number;
  open: number;
  close: number;
  /** By `Date.getDay()` (0 = Sunday): the window opens that day. */
  days: readonly boolean[];
  /** The hours as the lab wrote them, for the reason's words ("Mon-Fri 07:00-19:00"); '' for all the time. */
  hours: string;
}

/** `between: '07:00-19:00'` → minutes of the day; a close at or before the open is the next day's (over midnight). */
export function parseBetween(written: string): { open: number; close: number } | { problem: string } {
  const m = /^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$/.exec(written);
  const form = "write the lab's opening hours as HH:MM-HH:MM in its local time, e.g. 07:00-19:00 (22:00-06:00 runs over midnight)";
  if (!m) return { problem: `"${written}" is not a time range: ${form}` };
  const [oh, om, ch, cm] = [m[1], m[2], m[3], m[4]].map(Number) as [number, number, number, number];
  if (oh > 23 || om > 59 || ch > 24 || cm > 59 || (ch === 24 && cm !== 0)) return { problem: `"${written}" has a time that does not exist: ${form}` };
  const open = oh * 60 + om;
  let close = ch * 60 + cm;
  if (close === open) return { problem: `"${written}" opens and closes at the same time: leave between out for all day` };
  if (close < open) close += DAY_MIN;
  return { open, close };
}

function dayIndex(name: string): number {
  const n = name.trim().toLowerCase();
  const i = DAY_NAMES.indexOf(n as (typeof DAY_NAMES)[number]);
  return i >= 0 ? i : FULL_DAY_NAMES.indexOf(n as (typeof FULL_DAY_NAMES)[number]);
}

/** `days: 'Mon-Fri'`, `'Mon,Wed,Fri'`, `'Mon-Wed,Sat'`, `'Fri-Mon'` → by `Date.getDay()`. */
export function parseDays(written: string): boolean[] | { problem: string } {
  const form = 'write day names (Mon, Tue, Wed, Thu, Fri, Sat, Sun) and ranges, comma-separated, e.g. Mon-Fri or Mon,Wed,Fri';
  const days = [false, false, false, false, false, false, false];
  const parts = written.split(',');
  for (const part of parts) {
    const ends = part.split('-');
    if (part.trim() === '' || ends.length > 2) return { problem: `"${written}" is not a list of days: ${form}` };
    const idx = ends.map(dayIndex);
    const bad = ends.find((_, k) => idx[k]! < 0);
    if (bad !== undefined) return { problem: `"${bad.trim()}" in "${written}" is not a day: ${form}` };
    const [from, to = from] = idx as [number, number?];
    for (let d = from; ; d = (d + 1) % 7) {
      days[d] = true;
      if (d === to) break;
    }
  }
  return days;
}

/**
 * The longest stretch the window stays open (minutes; Infinity when it never closes): quiet time
 * counts within one stretch, so an `afterMinutes` longer than it would never be reached.
 */
export function longestOpenMinutes(open: number, close: number, days: readonly boolean[]): number {
  // Minutes of the week, from Sunday 00:00, covered by the window.
  const covered = new Uint8Array(WEEK_MIN);
  days.forEach((on, d) => {
    if (!on) return;
    for (let m = d * DAY_MIN + open; m < d * DAY_MIN + close; m++) covered[m % WEEK_MIN] = 1;
  });
  if (covered.every((c) => c === 1)) return Number.POSITIVE_INFINITY;
  // Longest run of covered minutes, around the week's end too.
  const start = covered.indexOf(0);
  let longest = 0;
  let run = 0;
  for (let k = 1; k <= WEEK_MIN; k++) {
    if (covered[(start + k) % WEEK_MIN]) longest = Math.max(longest, ++run);
    else run = 0;
  }
  return longest;
}

/** A validated quiet alert as the status model counts it; undefined for one that does not read (never after validation). */
export function quietSchedule(q: QuietAlertConfig): QuietSchedule | undefined {
  const between = q.between === undefined ? { open: 0, close: DAY_MIN } : parseBetween(q.between);
  const days = q.days === undefined ? [true, true, true, true, true, true, true] : parseDays(q.days);
  if ('problem' in between || !Array.isArray(days) || !(q.afterMinutes > 0)) return undefined;
  const hours = [q.days?.trim(), q.between?.replace(/\s+/g, '')].filter((s) => s !== undefined && s !== '').join(' ');
  return { afterMs: q.afterMinutes * 60_000, open: between.open, close: between.close, days, hours };
}

/** The window's stretches (epoch ms, merged where one closes as the next opens) from the day before `from` to `to`. */
function stretches(s: QuietSchedule, from: number, to: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const f = new Date(from);
  const last = new Date(to);
  const lastDay = new Date(last.getFullYear(), last.getMonth(), last.getDate()).getTime();
  for (let d = new Date(f.getFullYear(), f.getMonth(), f.getDate() - 1); d.getTime() <= lastDay; d = new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1)) {
    if (!s.days[d.getDay()]) continue;
    // Local wall-clock times: the Date constructor carries minutes past 1440 into the next day and keeps summer time.
    const open = new Date(d.getFullYear(), d.getMonth(), d.getDate(), 0, s.open).getTime();
    const close = new Date(d.getFullYear(), d.getMonth(), d.getDate(), 0, s.close).getTime();
    const prev = out.at(-1);
    if (prev && open <= prev[1]) prev[1] = Math.max(prev[1], close);
    else out.push([open, close]);
  }
  return out;
}

/**
 * Where an endpoint's silence began: its last message (or the gateway's start), as the wall clock
 * (epoch ms) and the monotonic clock (ms, `performance.now()`) read then.
 */
export interface QuietMark {
  wall: number;
  mono: number;
}

/**
 * The wall-clock instant the silence began, as the wall clock reads now (`wall`): the monotonic time
 * since `mark` counted back from it. A clock step moves neither the time counted nor, since the wall
 * clock places it, whether the lab's hours were open in it: after NTP set a box forward three days
 * the silence is the minutes that really passed, not three days; set back an hour, it is not an hour
 * shorter. The monotonic clock does not run while the machine is suspended (a VM paused, a laptop
 * asleep), so that time is not counted either: it cannot be told from a step forward.
 */
export function quietFrom(mark: QuietMark, wall: number, mono: number): number {
  return wall - Math.max(0, mono - mark.mono);
}

/**
 * Quiet since `last` (epoch ms; quietFrom) at `now`: `due` once the endpoint has been quiet `afterMinutes`
 * within one stretch of its window (counted from the stretch's opening, or from the last message
 * when it came inside it: on Monday 07:00 after a quiet weekend the count starts then, not on
 * Friday evening), and stays due until the next message. `quietMs` is the window time since
 * `last` (the reason's "how long"), counted at most LOOKBACK_MS back.
 */
export function quietSince(s: QuietSchedule, last: number, now: number): { due: boolean; quietMs: number } {
  const from = Math.max(last, now - s.afterMs - LOOKBACK_MS);
  let due = false;
  let quietMs = 0;
  if (!(now > from)) return { due, quietMs };
  for (const [open, close] of stretches(s, from, now)) {
    const lo = Math.max(open, from);
    const hi = Math.min(close, now);
    if (hi <= lo) continue;
    quietMs += hi - lo;
    if (hi - lo >= s.afterMs) due = true;
  }
  return { due, quietMs };
}
