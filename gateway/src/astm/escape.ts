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

/**
 * Escape one component value for an outgoing record (LIS2-A2 §5.4.5): the escape character first,
 * then the three delimiters; restricted control characters become `&Xhh&` hex sequences.
 */
export function escapeAstm(text: string, d: AstmDelimiters): string {
  const e = d.escape;
  let out = '';
  for (const ch of text) {
    if (ch === e) out += `${e}E${e}`;
    else if (ch === d.field) out += `${e}F${e}`;
    else if (ch === d.repeat) out += `${e}R${e}`;
    else if (ch === d.component) out += `${e}S${e}`;
    else if (ch === '\r') out += `${e}X0D${e}`;
    else if (RESTRICTED.test(ch)) out += `${e}X${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}${e}`;
    else out += ch;
  }
  return out;
}
