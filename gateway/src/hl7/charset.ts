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
 * Pick the charset for the bytes of one message. Two real-world corrections:
 * - declared ASCII (or nothing) but bytes ≥ 0x80 present: decode as UTF-8 when the bytes are valid
 *   UTF-8, else as Latin-1 (nothing is lost either way: the raw bytes are kept);
 * - declared 8859/1 but the bytes are valid UTF-8 with multi-byte sequences: decode as UTF-8
 *   (a Latin-1 text with accents is practically never valid UTF-8; seen with Dutch ADT feeds).
 */
export function chooseCharset(bytes: Buffer, declared: CharsetChoice): CharsetChoice {
  const { charset } = declared;
  if (charset === 'utf8') return declared;
  if (!hasHighBytes(bytes)) return declared;
  if ((charset === 'ascii' || charset === 'latin1') && isUtf8(bytes)) {
    return { charset: 'utf8', note: `declared ${charset} but the bytes are UTF-8; decoded as UTF-8` };
  }
  if (charset === 'ascii') return { charset: 'latin1', note: 'declared ASCII but bytes ≥ 0x80 present; decoded as Latin-1' };
  return declared;
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

/**
 * Encode reply text (an ACK) in the charset of the message it answers. Charsets other than UTF-8
 * are written as Latin-1: ACK text is the gateway's own ASCII plus fields copied from the
 * sender's MSH, which in practice are ASCII.
 */
export function encodeText(text: string, charset: Charset): Buffer {
  return Buffer.from(text, charset === 'utf8' ? 'utf8' : 'latin1');
}
