/**
 * Character sets named in MSH-18 (HL7 table 0211) mapped to decoders. The raw bytes are always
 * what the store keeps; the decoded text is what the parser sees.
 *
 * Every supported charset is ASCII-compatible, so segment terminators (CR, LF), the MSH header and
 * the separators can be located on the raw bytes before the charset is known (HL7 v2.5 §2.15.9.18:
 * the delimiters "must be single-byte characters" and MSH-1/MSH-2 are always in ASCII).
 */
import { isAscii, isUtf8 } from 'node:buffer';
import { TextDecoder } from 'node:util';
import { trimmedUpper } from './text.ts';

export type Charset = 'ascii' | 'latin1' | 'utf8' | `iso-8859-${number}`;

export const DEFAULT_CHARSET: Charset = 'ascii';

/** HL7 table 0211 value → charset. 'UNICODE' alone is sent by Mindray BC-5380 for UTF-8. */
const TABLE_0211: Record<string, Charset> = {
  ASCII: 'ascii',
  'ISO IR6': 'ascii',
  '8859/1': 'latin1',
  'ISO IR100': 'latin1',
  '8859/2': 'iso-8859-2',
  '8859/3': 'iso-8859-3',
  '8859/4': 'iso-8859-4',
  '8859/5': 'iso-8859-5',
  '8859/6': 'iso-8859-6',
  '8859/7': 'iso-8859-7',
  '8859/8': 'iso-8859-8',
  '8859/9': 'iso-8859-9',
  '8859/15': 'iso-8859-15',
  'UNICODE UTF-8': 'utf8',
  'UTF-8': 'utf8',
  'ISO IR192': 'utf8',
  UNICODE: 'utf8',
};

/** Every charset the gateway reads and writes (the values of table 0211 above). */
const KNOWN_CHARSETS: ReadonlySet<string> = new Set(Object.values(TABLE_0211));

/**
 * A charset name as stored with a message (`InboundMessage.encoding`) back as a Charset; a name
 * this version does not know (a record of another version) is read as Latin-1, which shows every
 * byte.
 */
export function storedCharset(encoding: string): Charset {
  return KNOWN_CHARSETS.has(encoding) ? (encoding as Charset) : 'latin1';
}

export interface CharsetChoice {
  /** The charset the text was decoded with. */
  charset: Charset;
  /** Why it differs from what MSH-18 said (unknown value, mislabelled bytes), for the operator. */
  note?: string;
}

/** Map MSH-18 (first repetition) to a charset; unknown or empty values fall back to `fallback`. */
export function charsetFromMsh18(value: string, fallback: Charset): CharsetChoice {
  const key = trimmedUpper(value);
  if (key === '') return { charset: fallback };
  const known = TABLE_0211[key];
  if (known) return { charset: known };
  return { charset: fallback, note: `MSH-18 "${value}" is not a supported character set; decoded as ${fallback}` };
}

const decoders = new Map<string, TextDecoder>();

function hasHighBytes(bytes: Buffer): boolean {
  return !isAscii(bytes);
}

/**
 * Pick the charset for the bytes of one message. The real-world corrections:
 * - declared ASCII (or nothing) but bytes ≥ 0x80 present: decode as UTF-8 when the bytes are valid
 *   UTF-8, else as Latin-1 (nothing is lost either way: the raw bytes are kept);
 * - declared 8859/1 but the bytes are valid UTF-8 with multi-byte sequences: decode as UTF-8
 *   (a Latin-1 text with accents is practically never valid UTF-8; seen with Dutch ADT feeds);
 * - declared another ISO 8859 part (8859/2 … 8859/15) and the bytes are valid UTF-8 spelling only
 *   characters that part holds, or the unit signs µ ° ± ² ³ × (`spellsWithin`): decode as UTF-8
 *   (LIS templates labelled 8859/15 or 8859/2 over an engine that writes UTF-8, whose "µmol/L"
 *   was read "Âµmol/L"). Valid UTF-8 alone is not enough there: in 8859-2 capitals, Ó (0xD3)
 *   before Ł (0xA3) or Ż (0xAF) is a UTF-8 sequence, and a real "GÓŁKOWSKA" or "RÓŻOWY" read as
 *   UTF-8 became "GӣKOWSKA", "RӯOWY"; in 8859-5 and 8859-7, capitals pair up the same way. A real
 *   text still read as UTF-8 must spell, in every one of its non-ASCII runs, a character of its
 *   own part or a unit sign: "Ã©" (8859-15 é), "ТЕ" (8859-5 µ); no real text seen does;
 * - declared UTF-8 but the bytes are not valid UTF-8: decode as Latin-1 (an interface template
 *   that says UTF-8 over a database that writes Latin-1). Read as UTF-8, every such byte became
 *   U+FFFD: in the events, and in the ACK, whose MSA-2 then no longer matched the sender's MSH-10.
 */
export function chooseCharset(bytes: Buffer, declared: CharsetChoice): CharsetChoice {
  const { charset } = declared;
  if (charset === 'utf8') {
    if (!hasHighBytes(bytes) || isUtf8(bytes)) return declared;
    return { charset: 'latin1', note: 'declared UTF-8 but the bytes are not valid UTF-8; decoded as Latin-1' };
  }
  if (!hasHighBytes(bytes)) return declared;
  // Every charset other than UTF-8 is a single-byte one: ASCII, Latin-1 or another ISO 8859 part.
  if (isUtf8(bytes) && (charset === 'ascii' || charset === 'latin1' || spellsWithin(bytes, charset))) {
    return { charset: 'utf8', note: `declared ${charset} but the bytes are UTF-8; decoded as UTF-8` };
  }
  if (charset === 'ascii') return { charset: 'latin1', note: 'declared ASCII but bytes ≥ 0x80 present; decoded as Latin-1' };
  return declared;
}

/**
 * Characters a UTF-8 engine writes whatever its template's MSH-18 says, beside the part's own:
 * the unit signs µ ° ± ² ³ × (µ is in no ISO 8859 part but 1, 9 and 15), and a byte-order mark.
 */
const UNIT_SIGNS: ReadonlySet<number> = new Set([0xb5, 0xb0, 0xb1, 0xb2, 0xb3, 0xd7, 0xfeff]);

/** Per ISO 8859 part: the code points of its bytes 0xA0–0xFF (those it defines). */
const repertoires = new Map<string, ReadonlySet<number>>();

function repertoireOf(charset: Charset): ReadonlySet<number> {
  let held = repertoires.get(charset);
  if (!held) {
    const set = new Set<number>();
    for (const [ch, b] of encoderFor(charset)) if (b >= 0xa0) set.add(ch.charCodeAt(0));
    held = set;
    repertoires.set(charset, held);
  }
  return held;
}

/**
 * Whether `bytes`, valid UTF-8, spell only characters the ISO 8859 part `charset` holds, or unit
 * signs: what a UTF-8 engine writes under that part's label, and what a real text of that part
 * that happens to be valid UTF-8 practically never does. Walks the bytes (no decoding); only run
 * on messages both labelled so and valid UTF-8 (a real text of the part is mostly not).
 */
function spellsWithin(bytes: Buffer, charset: Charset): boolean {
  const held = repertoireOf(charset);
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    if (b < 0x80) continue;
    let cp: number;
    if (b < 0xe0) {
      cp = ((b & 0x1f) << 6) | ((bytes[++i] as number) & 0x3f);
    } else if (b < 0xf0) {
      cp = ((b & 0x0f) << 12) | (((bytes[i + 1] as number) & 0x3f) << 6) | ((bytes[i + 2] as number) & 0x3f);
      i += 2;
    } else {
      return false; // beyond the BMP: in no ISO 8859 part
    }
    if (!held.has(cp) && !UNIT_SIGNS.has(cp)) return false;
  }
  return true;
}

export function decodeText(bytes: Buffer, charset: Charset): string {
  switch (charset) {
    case 'ascii':
    case 'latin1':
      return bytes.toString('latin1');
    case 'utf8':
      return bytes.toString('utf8');
    default: {
      let d = decoders.get(charset);
      if (!d) {
        d = new TextDecoder(charset);
        decoders.set(charset, d);
      }
      return d.decode(bytes);
    }
  }
}

/** Per ISO 8859 charset (other than Latin-1): character → byte, the inverse of its decoder. */
const encoders = new Map<string, Map<string, number>>();

function encoderFor(charset: Charset): Map<string, number> {
  let table = encoders.get(charset);
  if (!table) {
    table = new Map<string, number>();
    const all = Buffer.alloc(256);
    for (let b = 0; b < 256; b++) all[b] = b;
    const chars = decodeText(all, charset);
    // Every byte of an ISO 8859 part decodes to one UTF-16 unit (bytes a part leaves undefined
    // decode to U+FFFD: never written back).
    for (let b = 0; b < 256 && b < chars.length; b++) {
      const ch = chars[b] as string;
      if (ch !== '\ufffd' && !table.has(ch)) table.set(ch, b);
    }
    encoders.set(charset, table);
  }
  return table;
}

/**
 * Encode reply text (an ACK) in the charset of the message it answers: UTF-8, Latin-1 (also for
 * ASCII: a message declared ASCII is read as Latin-1 when it holds higher bytes), or the ISO 8859
 * part MSH-18 names. The reply copies the sender's MSH-3..6 and MSH-10, so they come back in the
 * very bytes the sender wrote: a Polish LIS's `Ł` (0xA3 in 8859-2) must not come back as the low
 * byte of U+0141, 'A'. A character the charset cannot hold (none copied from the message: they
 * all came through its decoder) is written '?'.
 */
export function encodeText(text: string, charset: Charset): Buffer {
  if (charset === 'utf8' || charset === 'ascii' || charset === 'latin1') return Buffer.from(text, charset === 'utf8' ? 'utf8' : 'latin1');
  const table = encoderFor(charset);
  const out = Buffer.allocUnsafe(text.length);
  let n = 0;
  for (const ch of text) out[n++] = table.get(ch) ?? 0x3f;
  return out.subarray(0, n);
}
