import type { LinkCharset } from './link-options.ts';

/**
 * LIS1-A §6.6: characters that may not appear in frame text (SOH STX ETX EOT ENQ ACK, LF, DLE
 * DC1–DC4 NAK SYN ETB), and CR, which ends a record (LIS2-A2 §5.4.1), so never sits inside one.
 */
const NOT_IN_RECORD = /[\x01-\x06\x0A\x0D\x10-\x17]/;
/** Text that is the same bytes in every charset and holds nothing restricted: the usual record. */
const PLAIN = /^[\x20-\x7E]*$/;

/**
 * One outgoing E1394 record (without its CR) as the bytes that go into frame text, in the
 * analyzer's charset (profile quirk `charset`, a site's override).
 *
 * Before, every record was written with Buffer.from(…, 'latin1'), which keeps only the low byte of
 * each character: 'ą' (U+0105) went out as ENQ, 'č' (U+010D) as CR, 'Ċ' as LF — control
 * characters inside frame text, which the analyzer takes for framing (LIS1-A §6.6). Now:
 * - `utf8`: UTF-8; every byte of a character beyond ASCII is ≥ 0x80, never a control character.
 * - `latin1`: characters Latin-1 cannot carry (above U+00FF) become '?'; so do the C1 controls
 *   U+0080–U+009F, which a 7-bit line (LIS1-A §5.2.2.4 allows 7 data bits) would deliver as C0
 *   controls (0x83 → ETX).
 * - `ascii` (LIS1-A §6.1.2: 7-bit ASCII): everything above U+007F becomes '?'.
 * A restricted character or CR still in the record becomes '?' as well. The record builder escapes
 * those (`&Xhh&`, LIS2-A2 §5.4.5) and substitutes before escaping, so this only catches a record
 * that did not come from it: the link cannot escape (it does not know the delimiters), and must
 * never put a control character into frame text.
 */
export function encodeRecord(record: string, charset: LinkCharset): Buffer {
  if (PLAIN.test(record)) return Buffer.from(record, 'latin1');
  let out = '';
  for (const ch of record) {
    const cp = ch.codePointAt(0) as number;
    out += NOT_IN_RECORD.test(ch) || !carried(cp, charset) ? '?' : ch;
  }
  return Buffer.from(out, charset === 'utf8' ? 'utf8' : 'latin1');
}

function carried(cp: number, charset: LinkCharset): boolean {
  if (cp < 0x80) return true;
  if (charset === 'utf8') return true;
  if (charset === 'ascii') return false;
  return cp >= 0xa0 && cp <= 0xff;
}
