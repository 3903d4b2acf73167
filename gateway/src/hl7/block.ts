/**
 * Byte-level structure of one inbound block (the content of one MLLP frame): segments, and the
 * messages of a batch. Works on the raw bytes so that each message of a batch can be stored with
 * exactly the bytes it arrived with, whatever its charset (all supported charsets are
 * ASCII-compatible; see charset.ts).
 *
 * Segment terminators (HL7 v2.5 §2.5.1 says CR; real feeds also send LF and CRLF):
 * - CR always ends a segment; an LF right after it belongs to the same terminator (CRLF);
 * - a lone LF ends a segment only when what follows looks like a segment header (three upper-case
 *   letters/digits then the field separator). Senders put literal newlines inside NTE/OBX text, and
 *   splitting there would invent segments;
 * - empty lines, and lines of only spaces, tabs and NULs, are skipped (a sender in C may send its
 *   string's terminating NUL, or a buffer padded with NULs, after the last segment).
 *
 * Batches (HL7 v2.5 §2.10.3): `[FHS] [BHS] { MSH … } [BTS] [FTS]`; a block may also hold several
 * MSH without a batch header.
 */
const CR = 0x0d;
const LF = 0x0a;

export interface RawSegment {
  /** Three-character segment id as received. */
  name: string;
  /** Byte offset of the first character. */
  start: number;
  /** Byte offset just past the last character (terminator excluded). */
  end: number;
}

export interface RawMessage {
  /** Byte offset of its MSH. */
  start: number;
  /** Byte offset just past its last terminator (the start of the next segment group). */
  end: number;
  segments: RawSegment[];
}

export interface BlockStructure {
  segments: RawSegment[];
  messages: RawMessage[];
  /** FHS/BHS/BTS/FTS segments, when the block is a batch. */
  envelope: RawSegment[];
  /** Segments before the first MSH that are not batch envelope (a malformed block). */
  stray: RawSegment[];
  /**
   * Segments after the first MSH that belong to no message: they follow a batch envelope segment
   * (`BTS|2\rZZZ|1`: after the batch trailer), `after` naming it.
   */
  trailing: TrailingSegment[];
  /** True when the block has an envelope or more than one MSH. */
  isBatch: boolean;
}

/** A segment outside any message, after the envelope segment `after` (BTS, FTS, BHS, FHS). */
export interface TrailingSegment extends RawSegment {
  after: string;
}

const ENVELOPE = new Set(['FHS', 'BHS', 'BTS', 'FTS']);

function isIdChar(b: number | undefined): boolean {
  return b !== undefined && ((b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39));
}

/** The field separator declared by the first MSH/BHS/FHS, or '|' as a guess. */
function guessFieldSeparator(raw: Buffer, first: number): number {
  const b = raw[first + 3];
  return b !== undefined && b !== CR && b !== LF ? b : 0x7c;
}

function looksLikeSegmentStart(raw: Buffer, at: number, fieldSep: number): boolean {
  if (!(isIdChar(raw[at]) && isIdChar(raw[at + 1]) && isIdChar(raw[at + 2]))) return false;
  const next = raw[at + 3];
  return next === undefined || next === fieldSep || next === CR || next === LF;
}

/** Three-byte segment names seen so far, by their bytes as one number (a few dozen in practice). */
const names = new Map<number, string>();

function nameAt(raw: Buffer, start: number, end: number): string {
  if (end - start < 3) return raw.toString('latin1', start, end);
  const key = ((raw[start] as number) << 16) | ((raw[start + 1] as number) << 8) | (raw[start + 2] as number);
  let name = names.get(key);
  if (name === undefined) {
    name = raw.toString('latin1', start, start + 3);
    if (names.size < 4096) {
      // Stored as a property key, i.e. internalized: comparing it with a literal ('OBX') is then a
      // pointer comparison.
      name = Object.keys({ [name]: 0 })[0] as string;
      names.set(key, name);
    }
  }
  return name;
}

export function splitSegments(raw: Buffer): RawSegment[] {
  const segments: RawSegment[] = [];
  let i = 0;
  const n = raw.length;
  // A UTF-8 byte-order mark (files saved by Windows editors and sent as they are) is not content.
  if (raw[0] === 0xef && raw[1] === 0xbb && raw[2] === 0xbf) i = 3;
  // Skip leading blank lines, spaces, tabs and NULs.
  while (i < n && (raw[i] === CR || raw[i] === LF || raw[i] === 0x20 || raw[i] === 0x09 || raw[i] === 0x00)) i++;
  const fieldSep = guessFieldSeparator(raw, i);
  let start = i;
  const push = (end: number): void => {
    if (end > start) {
      segments.push({ name: nameAt(raw, start, end), start, end });
    }
  };
  // Only CR and LF matter: jump from one to the next (native search) instead of visiting every byte.
  let nextCr = raw.indexOf(CR, i);
  let nextLf = raw.indexOf(LF, i);
  while (i < n) {
    if (nextCr !== -1 && nextCr < i) nextCr = raw.indexOf(CR, i);
    if (nextLf !== -1 && nextLf < i) nextLf = raw.indexOf(LF, i);
    if (nextCr === -1 && nextLf === -1) break;
    i = nextCr === -1 ? nextLf : nextLf === -1 ? nextCr : Math.min(nextCr, nextLf);
    if (raw[i] === CR) {
      push(i);
      i++;
      while (i < n && (raw[i] === CR || raw[i] === LF)) i++;
      start = i;
    } else if (looksLikeSegmentStart(raw, i + 1, fieldSep)) {
      push(i);
      i++;
      start = i;
    } else if (i + 1 === n) {
      push(i);
      i++;
      start = i;
    } else {
      i++;
    }
  }
  push(n);
  // Trailing LFs of a lone-LF segment that was not split (LF followed by blank lines).
  for (const s of segments) {
    while (s.end > s.start && (raw[s.end - 1] === LF || raw[s.end - 1] === CR)) s.end--;
  }
  return segments.filter((s) => s.end > s.start && !isBlank(raw, s));
}

/**
 * A line of only spaces, tabs and NULs (a segment id never starts with any): a blank line. NULs: a
 * C string's terminator or a buffer's padding after the last segment.
 */
function isBlank(raw: Buffer, s: RawSegment): boolean {
  for (let k = s.start; k < s.end; k++) {
    const b = raw[k];
    if (b !== 0x20 && b !== 0x09 && b !== 0x00) return false;
  }
  return true;
}

export function analyseBlock(raw: Buffer): BlockStructure {
  const segments = splitSegments(raw);
  const messages: RawMessage[] = [];
  const envelope: RawSegment[] = [];
  const stray: RawSegment[] = [];
  const trailing: TrailingSegment[] = [];
  let current: RawMessage | undefined;
  let lastEnvelope = '';
  for (let k = 0; k < segments.length; k++) {
    const seg = segments[k] as RawSegment;
    // A message's bytes run up to the next segment (its terminators included).
    const next = segments[k + 1]?.start ?? raw.length;
    if (seg.name === 'MSH') {
      current = { start: seg.start, end: next, segments: [seg] };
      messages.push(current);
    } else if (ENVELOPE.has(seg.name)) {
      envelope.push(seg);
      current = undefined;
      lastEnvelope = seg.name;
    } else if (current) {
      current.segments.push(seg);
      current.end = next;
    } else if (messages.length > 0) {
      trailing.push({ ...seg, after: lastEnvelope });
    } else {
      stray.push(seg);
    }
  }
  return { segments, messages, envelope, stray, trailing, isBatch: envelope.length > 0 || messages.length > 1 };
}
