/**
 * HL7 DTM/TS values (HL7 v2.5 §2.A.22 DTM: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]) to
 * ISO 8601. Without an offset the value is local time at the sender, which for an on-premise
 * gateway is the gateway's own time zone. Returns undefined for anything that is not a date.
 */
const DTM = /^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?$/;

export function hl7TimeToIso(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const m = DTM.exec(value.trim());
  if (!m) return undefined;
  const [, y, mo = '01', d = '01', h = '00', mi = '00', s = '00', frac, tz] = m;
  const ms = frac === undefined ? 0 : Math.round(Number(`0.${frac}`) * 1000);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return undefined;
  let epoch: number;
  if (tz) {
    const sign = tz[0] === '-' ? -1 : 1;
    const offsetMin = sign * (Number(tz.slice(1, 3)) * 60 + Number(tz.slice(3, 5)));
    epoch = Date.UTC(Number(y), month - 1, day, hour, minute, second, ms) - offsetMin * 60_000;
  } else {
    epoch = new Date(Number(y), month - 1, day, hour, minute, second, ms).getTime();
  }
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
