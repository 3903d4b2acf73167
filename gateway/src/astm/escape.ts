import type { ProfileQuirks } from '../profiles/types.ts';
import type { AstmDelimiters } from './delimiters.ts';

/**
 * LIS2-A2 §5.4.5 escape sequences, written here with `&` as the escape character:
 *   &F& field delimiter   &S& component delimiter   &R& repeat delimiter   &E& escape character
 *   &H& start highlighting  &N& normal text  (display hints: dropped on decode)
 *   &Xhhhh& hexadecimal data (decoded to characters)   &Zcccc& local sequence (kept verbatim)
 * "No nesting is allowed." Text is split on the real delimiters first, then each component is
 * unescaped, so an escaped delimiter never splits a value. GeneXpert uses `\` as the escape
 * character and sends restricted characters as `\Xhh\` (GeneXpert LIS spec §4.4.3).
 */
export function unescapeAstm(text: string, d: AstmDelimiters): string {
  const e = d.escape;
  if (!text.includes(e)) return text;
  let out = '';
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch !== e) {
      out += ch;
      i++;
      continue;
    }
    const close = text.indexOf(e, i + 1);
    if (close === -1) {
      // An unterminated escape is kept literally: the value is still readable and nothing is lost.
      out += text.slice(i);
      break;
    }
    const seq = text.slice(i + 1, close);
    const decoded = decodeSequence(seq, d);
    if (decoded === undefined) {
      // Not a sequence we know: keep the escape character and continue after it, so that a
      // literal escape character in sloppy data does not swallow the text that follows.
      out += ch;
      i++;
      continue;
    }
    out += decoded;
    i = close + 1;
  }
  return out;
}

function decodeSequence(seq: string, d: AstmDelimiters): string | undefined {
  switch (seq) {
    case 'F':
      return d.field;
    case 'S':
      return d.component;
    case 'R':
      return d.repeat;
    case 'E':
      return d.escape;
    case 'H':
    case 'N':
      return '';
    default:
      break;
  }
  if (/^X([0-9A-Fa-f]{2})+$/.test(seq)) {
    let out = '';
    for (let k = 1; k < seq.length; k += 2) out += String.fromCharCode(parseInt(seq.slice(k, k + 2), 16));
    return out;
  }
  if (/^Z[^\r\n]*$/.test(seq)) return `${d.escape}${seq}${d.escape}`;
  return undefined;
}

/** Characters LIS1-A §6.6 forbids in frame text (besides CR, which ends records). */
const RESTRICTED = /[\x01-\x06\x0A\x10-\x17]/;
/** C1 controls: a 7-bit line (LIS1-A §5.2.2.4 allows 7 data bits) delivers them as C0 controls (0x83 → ETX). */
const C1 = /[\x80-\x9F]/;

/** Text encoding of the analyzer (profile quirk `charset`): LIS1-A §6.1.2 is 7-bit ASCII; most send Latin-1. */
export type AstmCharset = ProfileQuirks['charset'];

/**
 * Escape one component value for an outgoing record (LIS2-A2 §5.4.5): the escape character first,
 * then the three delimiters; restricted control characters become `&Xhh&` hex sequences.
 *
 * A character the analyzer's `charset` cannot carry becomes '?' first (above U+00FF for Latin-1,
 * above U+007F for ASCII), before the escape step, so a '?' that is a delimiter is escaped too.
 * Before, such characters reached the link, which wrote Latin-1 and kept only their low byte:
 * 'ą' (U+0105) went out as ENQ, 'č' (U+010D) as CR — the check here had looked at the character,
 * not at the byte that went out. The link encodes in the same charset (ingress/astm/outgoing-text.ts).
 */
export function escapeAstm(text: string, d: AstmDelimiters, charset: AstmCharset = 'latin1'): string {
  const e = d.escape;
  let out = '';
  for (const given of text) {
    const ch = carried(given, charset) ? given : '?';
    if (ch === e) out += `${e}E${e}`;
    else if (ch === d.field) out += `${e}F${e}`;
    else if (ch === d.repeat) out += `${e}R${e}`;
    else if (ch === d.component) out += `${e}S${e}`;
    else if (ch === '\r') out += `${e}X0D${e}`;
    else if (RESTRICTED.test(ch) || (charset !== 'utf8' && C1.test(ch))) out += `${e}X${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}${e}`;
    else out += ch;
  }
  return out;
}

function carried(ch: string, charset: AstmCharset): boolean {
  const cp = ch.codePointAt(0) as number;
  return cp < 0x80 || charset === 'utf8' || (charset === 'latin1' && cp <= 0xff);
}
