/**
 * `trim()` and `toUpperCase()` for the short field values the intake reads per message, which are
 * almost always plain ASCII that needs no change: those are returned as they are, without the
 * built-ins' allocation; anything else goes through the built-ins (same result either way).
 */

/** True when `c` is printable ASCII other than space (never trimmed, never case-mapped beyond a–z). */
function plain(c: number): boolean {
  return c > 0x20 && c < 0x7f;
}

/** `s.trim()` */
export function trimmed(s: string): string {
  const n = s.length;
  if (n === 0 || (plain(s.charCodeAt(0)) && plain(s.charCodeAt(n - 1)))) return s;
  return s.trim();
}

/** `s.toUpperCase()` */
export function upper(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c >= 0x61 && c <= 0x7a) || c >= 0x80) return s.toUpperCase();
  }
  return s;
}

/** `s.trim().toUpperCase()` */
export function trimmedUpper(s: string): string {
  return upper(trimmed(s));
}
