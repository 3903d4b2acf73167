import { isAscii } from 'node:buffer';
import { isGatewayError } from '../errors.ts';
import type { RawMessage, RawSegment } from './block.ts';
import { charsetFromMsh18, chooseCharset, decodeText, type Charset } from './charset.ts';
import type { Hl7ErrorCode } from './error-codes.ts';
import { parseMessage, type Hl7Message } from './message.ts';
import { readMsh, senderOf, type MshHeader, type MshProblem } from './msh.ts';

/**
 * One inbound message read from its raw bytes: header first (from the bytes, so that even a broken
 * message gets an ACK echoing its MSH-10), then the charset (MSH-18, corrected when the bytes
 * disagree), then the full parse. Never throws.
 */
export interface InboundRead {
  header: MshHeader;
  charset: Charset;
  /** Why the charset differs from MSH-18 (for the operator). */
  charsetNote?: string;
  /**
   * The sender (MSH-3^MSH-4) as the message's keys name it, when it is not `senderOf(header)`:
   * UTF-8 bytes under an ISO 8859 label other than Latin-1 are read as UTF-8 since b7977f6, and
   * the releases before read them, and keyed them (dedup key, event keys), in the labelled part.
   * A non-ASCII sender keeps that reading in its keys, so that a message taken before the upgrade
   * and resent after it is still its duplicate, and its events are not recorded twice.
   */
  keySender?: string;
  /** The parsed message, when it parsed. */
  message?: Hl7Message;
  /** Why it was not accepted, when it was not. */
  problem?: MshProblem;
}

export function readInbound(raw: Buffer, structure: RawMessage, defaultCharset: Charset): InboundRead {
  const segs = structure.segments;
  const mshSeg = segs[0];
  if (!mshSeg) {
    const { header, problem } = readMsh('');
    return problem ? { header, charset: defaultCharset, problem } : { header, charset: defaultCharset };
  }
  // MSH-1/MSH-2 and MSH-18 are ASCII: read the header from the bytes as Latin-1 first.
  const bytes = raw.subarray(structure.start, structure.end);
  const latin1 = raw.toString('latin1', structure.start, structure.end);
  const base = structure.start;
  const first = readMsh(latin1.slice(mshSeg.start - base, mshSeg.end - base));
  const declared = charsetFromMsh18(first.header.charset, defaultCharset);
  const chosen = chooseCharset(bytes, declared);
  const charset = chosen.charset;
  const note = chosen.note ?? declared.note;
  const singleByte = charset === 'ascii' || charset === 'latin1';
  const texts: string[] = new Array<string>(segs.length);
  // ASCII and Latin-1 are one character per byte: the segments are slices of one decoded text,
  // and their names are the ones block.ts read from the bytes.
  const names: string[] | undefined = singleByte ? new Array<string>(segs.length) : undefined;
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i] as RawSegment;
    if (names) {
      const text = latin1.slice(s.start - base, s.end - base);
      texts[i] = text;
      // (block.ts reads the name before trimming trailing line ends: only a full one is the same.)
      names[i] = text.length >= 3 ? s.name : text;
    } else {
      texts[i] = decodeText(raw.subarray(s.start, s.end), charset);
    }
  }
  // Re-read the header in the right charset (MSH-3/4 may hold non-ASCII names).
  const { header, problem } = singleByte ? first : readMsh(texts[0] as string);
  const read: InboundRead = { header, charset };
  if (note) read.charsetNote = note;
  // (Only a non-ASCII MSH can read otherwise: an ASCII one costs no second reading.)
  if (charset === 'utf8' && declared.charset.startsWith('iso-8859-') && !problem && !isAscii(bytes.subarray(mshSeg.start - base, mshSeg.end - base))) {
    const before = senderOf(readMsh(decodeText(raw.subarray(mshSeg.start, mshSeg.end), declared.charset)).header);
    if (before !== senderOf(header)) read.keySender = before;
  }
  if (problem) {
    read.problem = problem;
    return read;
  }
  try {
    read.message = parseMessage(header, texts, names);
    return read;
  } catch (err) {
    const code = (isGatewayError(err) ? (err.details?.['hl7ErrorCode'] as Hl7ErrorCode | undefined) : undefined) ?? 100;
    const location = isGatewayError(err) ? (err.details?.['location'] as string | undefined) : undefined;
    read.problem = { code, text: (err as Error).message, ...(location ? { location } : {}) };
    return read;
  }
}
