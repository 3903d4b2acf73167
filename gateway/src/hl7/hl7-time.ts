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
  const [, y, mo = '01', d = '01', h = '00', mi = '00', s = '00', frac = '0', tz] = m;
  const ms = Math.round(Number(`0.${frac}`) * 1000);
  const month = Number(mo);
  const day = Number(d);
  if (month < 1 || month > 12 || day < 1 || day > 31 || Number(h) > 23 || Number(mi) > 59 || Number(s) > 60) return undefined;
  let epoch: number;
  if (tz) {
    const sign = tz[0] === '-' ? -1 : 1;
    const offsetMin = sign * (Number(tz.slice(1, 3)) * 60 + Number(tz.slice(3, 5)));
    epoch = Date.UTC(Number(y), month - 1, day, Number(h), Number(mi), Number(s), ms) - offsetMin * 60_000;
  } else {
    epoch = new Date(Number(y), month - 1, day, Number(h), Number(mi), Number(s), ms).getTime();
  }
  return Number.isFinite(epoch) ? new Date(epoch).toISOString() : undefined;
}
