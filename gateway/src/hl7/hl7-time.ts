/**
 * HL7 DTM/TS values (HL7 v2.5 §2.A.22 DTM: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]) to
 * ISO 8601. Without an offset the value is local time at the sender, read here in the gateway's own
 * time zone: the LIS normalizer first writes on it the offset the message's other times say
 * (normalize-lis.ts messageZone, inHl7Zone below), and billing compares two times of two messages
 * as written (compareHl7Time). Returns undefined for anything that is not a date.
 */
import { trimmed } from './text.ts';

/** The number written by the decimal digits value[from, to), or -1 when one of them is not a digit. */
function digits(value: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = value.charCodeAt(i) - 0x30;
    if (!(d >= 0 && d <= 9)) return -1;
    n = n * 10 + d;
  }
  return n;
}

export function hl7TimeToIso(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const v = trimmed(value);
  // YYYY[MM[DD[HH[MM[SS]]]]]: an even run of 4 to 14 digits.
  let run = 0;
  while (run < v.length && digits(v, run, run + 1) !== -1) run++;
  if (run < 4 || run > 14 || run % 2 !== 0) return undefined;
  let at = run;
  // [.S[S[S[S]]]]
  let ms = 0;
  if (v[at] === '.') {
    let end = at + 1;
    while (end < v.length && digits(v, end, end + 1) !== -1) end++;
    if (end === at + 1 || end - at - 1 > 4) return undefined;
    ms = Math.round(Number(`0.${v.slice(at + 1, end)}`) * 1000);
    at = end;
  }
  // [+/-ZZZZ]
  let offsetMin: number | undefined;
  if (v[at] === '+' || v[at] === '-') {
    const hh = digits(v, at + 1, at + 3);
    const mm = digits(v, at + 3, at + 5);
    if (at + 5 > v.length || hh === -1 || mm === -1) return undefined;
    offsetMin = (v[at] === '-' ? -1 : 1) * (hh * 60 + mm);
    at += 5;
  }
  if (at !== v.length) return undefined;
  const year = digits(v, 0, 4);
  const month = run >= 6 ? digits(v, 4, 6) : 1;
  const day = run >= 8 ? digits(v, 6, 8) : 1;
  const hour = run >= 10 ? digits(v, 8, 10) : 0;
  const minute = run >= 12 ? digits(v, 10, 12) : 0;
  const second = run >= 14 ? digits(v, 12, 14) : 0;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return undefined;
  const epoch =
    offsetMin === undefined
      ? new Date(year, month - 1, day, hour, minute, second, ms).getTime()
      : Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMin * 60_000;
  return Number.isFinite(epoch) ? isoTime(epoch) : undefined;
}

const DAY_MS = 86_400_000;

function two(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

/**
 * `new Date(epochMs).toISOString()` for years 0000–9999, by arithmetic (Date#toISOString costs
 * about as much as the rest of the HL7 time conversion). Other years go through Date.
 */
export function isoTime(epochMs: number): string {
  const days = Math.floor(epochMs / DAY_MS);
  let rest = epochMs - days * DAY_MS;
  // Civil date from days since 1970-01-01 (proleptic Gregorian; H. Hinnant's days_from_civil inverse).
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  if (!(year >= 0 && year <= 9999)) return new Date(epochMs).toISOString();
  const hour = Math.floor(rest / 3_600_000);
  rest -= hour * 3_600_000;
  const minute = Math.floor(rest / 60_000);
  rest -= minute * 60_000;
  const second = Math.floor(rest / 1000);
  const ms = rest - second * 1000;
  const yyyy = year < 1000 ? String(year).padStart(4, '0') : `${year}`;
  const mmm = ms < 10 ? `00${ms}` : ms < 100 ? `0${ms}` : `${ms}`;
  return `${yyyy}-${two(month)}-${two(day)}T${two(hour)}:${two(minute)}:${two(second)}.${mmm}Z`;
}

/** A DTM's digits (YYYY…SS), its fraction and its offset, as written. */
const DTM_PARTS = /^(\d{4,14})(?:\.\d{1,4})?([+-]\d{4})?$/;

/**
 * Whether two DTM values name one time as far as their writer says, for telling whether two lines
 * of a message were placed at one time (normalize-lis.ts splits an order message's lines where
 * ORC-9 differs): compared at the coarser of the two precisions (202603010920 and 20260301092015
 * are one; a fraction of a second is no other time), and a value without an offset taken in the
 * other's offset (20260301092000+0100 and 20260301092000 are one: the sender writes its own local
 * time, whatever zone the gateway runs in). Undefined when either is not a date.
 */
export function sameHl7Time(a: string, b: string): boolean | undefined {
  const pa = DTM_PARTS.exec(trimmed(a));
  const pb = DTM_PARTS.exec(trimmed(b));
  if (!pa || !pb || hl7TimeToIso(a) === undefined || hl7TimeToIso(b) === undefined) return undefined;
  const da = pa[1] as string;
  const db = pb[1] as string;
  const n = Math.min(da.length, db.length);
  const oa = pa[2] ?? pb[2] ?? '';
  const ob = pb[2] ?? pa[2] ?? '';
  if (oa === ob) return da.slice(0, n) === db.slice(0, n);
  return hl7TimeToIso(da.slice(0, n) + oa) === hl7TimeToIso(db.slice(0, n) + ob);
}

/** The offset (+/-ZZZZ) a DTM value is written with, undefined when it has none or is no DTM. */
export function hl7Offset(value: string): string | undefined {
  return DTM_PARTS.exec(trimmed(value))?.[2];
}

/**
 * `value` with `offset` written on it when it has none of its own (a DTM without offset is the
 * writer's local time, and `offset` is that writer's zone as another of its times says): the value
 * as written otherwise, and anything that is not a DTM unchanged.
 */
export function inHl7Zone(value: string, offset: string | undefined): string {
  const v = trimmed(value);
  const parts = DTM_PARTS.exec(v);
  return offset === undefined || !parts || parts[2] !== undefined ? v : v + offset;
}

/** When the DTM digits `d` (4 to 14, even) written in `offset` begin and end, epoch ms [from, to). */
function span(d: string, offset: string): [number, number] {
  const n = (from: number, to: number, none: number): number => (d.length >= to ? Number(d.slice(from, to)) : none);
  const f = [n(0, 4, 0), n(4, 6, 1) - 1, n(6, 8, 1), n(8, 10, 0), n(10, 12, 0), n(12, 14, 0)];
  const unit = (d.length - 4) / 2; // 0 year … 5 second: the last field written
  const next = [...f];
  next[unit] = (next[unit] as number) + 1;
  const shift = (offset[0] === '-' ? -1 : 1) * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(3, 5))) * 60_000;
  const at = (p: number[]): number => Date.UTC(p[0] as number, p[1] as number, p[2], p[3], p[4], p[5]) - shift;
  return [at(f), at(next)];
}

/**
 * The order of two DTM values as their writer wrote them: negative when `a` is before `b`, positive
 * when after, 0 when neither is known to come first; undefined when either is not a date.
 * Each value is the span its precision names (202603011030 is the whole minute, a fraction of a
 * second is no other time), and two spans that overlap are one time: 20260301103015 is neither
 * before nor after 202603011030. A value without an offset is in the other's offset (the LIS
 * writes its own local time whatever zone the gateway runs in; a LIS that writes its offset on
 * ORC-9 and none on MSH-7 writes both in one zone), and two without an offset are compared as
 * written (one writer, one zone), in no time zone of the gateway's.
 */
export function compareHl7Time(a: string, b: string): number | undefined {
  const pa = DTM_PARTS.exec(trimmed(a));
  const pb = DTM_PARTS.exec(trimmed(b));
  if (!pa || !pb || hl7TimeToIso(a) === undefined || hl7TimeToIso(b) === undefined) return undefined;
  const [fromA, toA] = span(pa[1] as string, pa[2] ?? pb[2] ?? '+0000');
  const [fromB, toB] = span(pb[1] as string, pb[2] ?? pa[2] ?? '+0000');
  if (toA <= fromB) return -1;
  if (toB <= fromA) return 1;
  return 0;
}
