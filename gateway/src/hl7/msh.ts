import { hash } from 'node:crypto';
import type { Hl7ErrorCode } from './error-codes.ts';
import { trimmed, trimmedUpper } from './text.ts';

/**
 * The message header read straight from the MSH text, before (and independently of) the full
 * parse: the ACK needs MSH-3..6, MSH-10, MSH-11, MSH-12 even when the rest of the message is
 * broken, and it copies them as received (escaped form), not re-encoded.
 */
export interface MshHeader {
  /** MSH-1 */
  fieldSeparator: string;
  /** MSH-2 as received (component, repetition, escape, subcomponent[, truncation]). */
  encodingCharacters: string;
  /** MSH-3 .. MSH-6, raw (escaped) field text. */
  sendingApplication: string;
  sendingFacility: string;
  receivingApplication: string;
  receivingFacility: string;
  /** MSH-7 */
  dateTime: string;
  /** MSH-9.1 / 9.2 / 9.3 */
  messageCode: string;
  triggerEvent: string;
  messageStructure: string;
  /** MSH-10 */
  controlId: string;
  /** MSH-11 raw (processing id, optionally ^mode). */
  processingId: string;
  /** MSH-12.1 */
  version: string;
  /** MSH-15 accept acknowledgment type (AL, NE, ER, SU; empty = original mode). */
  acceptAckType: string;
  /** MSH-16 application acknowledgment type. */
  appAckType: string;
  /** MSH-18 first repetition. */
  charset: string;
}

export interface MshProblem {
  code: Hl7ErrorCode;
  text: string;
  /** ERR-2 location, e.g. 'MSH^1^9'. */
  location?: string;
}

export interface MshReadResult {
  /** Whatever could be read (fields stay '' when unreadable). */
  header: MshHeader;
  /** Set when the header is not usable. */
  problem?: MshProblem;
}

const EMPTY: MshHeader = {
  fieldSeparator: '|',
  encodingCharacters: '^~\\&',
  sendingApplication: '',
  sendingFacility: '',
  receivingApplication: '',
  receivingFacility: '',
  dateTime: '',
  messageCode: '',
  triggerEvent: '',
  messageStructure: '',
  controlId: '',
  processingId: '',
  version: '',
  acceptAckType: '',
  appAckType: '',
  charset: '',
};

/** HL7 v2.5 §2.5.4: delimiters are printable, non-alphanumeric ASCII. */
function isDelimiterCode(c: number): boolean {
  return (c >= 0x21 && c <= 0x2f) || (c >= 0x3a && c <= 0x40) || (c >= 0x5b && c <= 0x60) || (c >= 0x7b && c <= 0x7e);
}

/** MSH-2 is 2 to 5 distinct delimiter characters, none of them the field separator. */
function validEncodingCharacters(enc: string, fs: string): boolean {
  // Every delimiter is one ASCII code unit, so counting code units is counting characters here.
  const n = enc.length;
  if (n < 2 || n > 5) return false;
  for (let i = 0; i < n; i++) {
    const ch = enc[i] as string;
    if (!isDelimiterCode(enc.charCodeAt(i)) || ch === fs || enc.indexOf(ch) !== i) return false;
  }
  return true;
}

/** The part of `value` before the first `sep`. */
function firstOf(value: string, sep: string): string {
  const i = value.indexOf(sep);
  return i === -1 ? value : value.slice(0, i);
}

/** Read the MSH segment text (terminator excluded). */
export function readMsh(segment: string): MshReadResult {
  if (!segment.startsWith('MSH')) {
    return { header: { ...EMPTY }, problem: { code: 100, text: 'the message does not start with an MSH segment', location: 'MSH' } };
  }
  if (segment.length < 4 || !isDelimiterCode(segment.charCodeAt(3))) {
    return { header: { ...EMPTY }, problem: { code: 102, text: 'MSH-1 field separator missing or invalid', location: 'MSH^1^1' } };
  }
  const fs = segment[3] as string;
  // Split index j (0 = 'MSH', 1 = MSH-2, so MSH-n is index n - 1) runs between separators j - 1
  // and j; only the separators up to MSH-18 are looked for.
  const seps: number[] = [];
  for (let at = 3; at !== -1 && seps.length < 18; at = segment.indexOf(fs, at + 1)) seps.push(at);
  const f = (k: number): string => {
    const j = k - 1;
    if (j > seps.length) return '';
    return segment.slice((seps[j - 1] as number) + 1, j < seps.length ? seps[j] : segment.length);
  };
  const enc = f(2);
  const comp = enc[0] ?? '^';
  const rep = enc[1] ?? '~';
  const msh9 = f(9);
  const c1 = msh9.indexOf(comp);
  const c2 = c1 === -1 ? -1 : msh9.indexOf(comp, c1 + 1);
  const c3 = c2 === -1 ? -1 : msh9.indexOf(comp, c2 + 1);
  const header: MshHeader = {
    fieldSeparator: fs,
    encodingCharacters: enc,
    sendingApplication: f(3),
    sendingFacility: f(4),
    receivingApplication: f(5),
    receivingFacility: f(6),
    dateTime: firstOf(f(7), comp),
    messageCode: trimmedUpper(c1 === -1 ? msh9 : msh9.slice(0, c1)),
    triggerEvent: trimmedUpper(c1 === -1 ? '' : msh9.slice(c1 + 1, c2 === -1 ? msh9.length : c2)),
    messageStructure: trimmedUpper(c2 === -1 ? '' : msh9.slice(c2 + 1, c3 === -1 ? msh9.length : c3)),
    controlId: trimmed(f(10)),
    processingId: f(11),
    version: trimmed(firstOf(firstOf(f(12), rep), comp)),
    acceptAckType: trimmedUpper(f(15)),
    appAckType: trimmedUpper(f(16)),
    charset: trimmed(firstOf(f(18), rep)),
  };
  if (!validEncodingCharacters(enc, fs)) {
    return { header, problem: { code: 102, text: `MSH-2 encoding characters "${enc}" are invalid`, location: 'MSH^1^2' } };
  }
  if (header.messageCode === '') {
    return { header, problem: { code: 101, text: 'MSH-9 message type is empty', location: 'MSH^1^9' } };
  }
  if (header.controlId === '') {
    return { header, problem: { code: 101, text: 'MSH-10 message control id is empty', location: 'MSH^1^10' } };
  }
  return { header };
}

/** 'ORU^R01' (or just the code when there is no trigger). */
export function messageTypeOf(header: MshHeader): string {
  return header.triggerEvent ? `${header.messageCode}^${header.triggerEvent}` : header.messageCode;
}

/**
 * A hash of the message's bytes with MSH-7 (the time the message was built, which senders refresh
 * on a resend) left out and every segment terminator read as CR; its ends (a final terminator or
 * not, blank lines after it, a byte-order mark before it) count. The fingerprint of the releases
 * before this one: the keys they stored were made with it. `messageFingerprints` is the one the
 * intake uses now; it equals this one for a message that ends with one CR after its last segment
 * and starts with its MSH (nearly every message).
 */
export function contentFingerprint(raw: Buffer): string {
  return fingerprintOf(withoutMsh7(raw.toString('latin1')));
}

/**
 * What makes two messages with one control id the same message (`fingerprint`, part of the dedup
 * and event keys): the bytes with MSH-7 left out and segment terminators read as CR, as in
 * `contentFingerprint`. A resend with a refreshed MSH-7 or LF / CRLF line ends hashes the same; a
 * sender that reuses control ids for different messages (Mindray analyzers send MSH-10 = 1 every
 * time) hashes differently, so neither is mistaken for the other. How the message ends and begins
 * does not count either: a last segment without its terminator, empty lines (or lines of spaces
 * and tabs) after it, a UTF-8 byte-order mark or blank lines before the MSH — what a message sent
 * from a file may have and the same message sent by an interface engine has not — hash as the
 * message with one CR after its last segment. `legacy`, set only when it differs, is the
 * fingerprint of the releases before (`contentFingerprint`): the intake looks a message in such a
 * form up under it, and `earlier` lists every fingerprint an earlier release may have given it
 * (below). Without `withEarlier` (outside the upgrade window: EventStore
 * mayHoldEarlierReleaseKeys) `earlier` holds `legacy` alone: one hash for a message in the usual
 * form, two for the others, which are still looked up under the key their own form had.
 */
export function messageFingerprints(raw: Buffer, withEarlier = true): { fingerprint: string; legacy?: string; earlier: string[] } {
  // One Latin-1 string of the bytes (hashed as UTF-8, as it always was: the value is part of the
  // stored dedup and event keys).
  const text = raw.toString('latin1');
  const head = leadingBlankLength(text);
  const legacyData = withoutMsh7(text);
  // The MSH-7 of a message after a byte-order mark or a blank line is left out too (the releases
  // before hashed such a message with its MSH-7: a resend with a refreshed one was a new message).
  const data = endedWithOneCr(head === 0 ? legacyData : withoutMsh7(text.slice(head)));
  const fingerprint = fingerprintOf(data);
  // Outside the upgrade window, a message in the usual form: one hash. One in another form keeps
  // the key the releases before gave that same form (`legacy`) for good: its events' keys outlive
  // retention as tombstones, so they never made a resent result's events again.
  const fromFile = withEarlier ? earlierEndFingerprints(data) : [];
  if (data === legacyData) return { fingerprint, earlier: fromFile };
  const legacy = fingerprintOf(legacyData);
  return { fingerprint, legacy, earlier: [legacy, ...fromFile.filter((f) => f !== legacy)] };
}

/**
 * The fingerprints the releases before gave this message (`data`: MSH-7 left out, one CR after
 * its last segment) had it come in the two other forms a file gives it: without its final
 * terminator, and with an empty line after it (CR CR, CRLF CRLF, LF LF: terminators read as CR).
 * A message an earlier release took so and the engine resends in the usual form is found under
 * them (hl7-intake.ts). The forms with a byte-order mark or a blank line before the MSH are not
 * among them: the releases before hashed those with their MSH-7, which a resend refreshes.
 */
function earlierEndFingerprints(data: string): string[] {
  return [fingerprintOf(data.slice(0, -1)), fingerprintOf(`${data}\r`)];
}

/** The first 16 hex digits of the text's SHA-256 (hashed as UTF-8, as it always was): a fingerprint. */
function fingerprintOf(text: string): string {
  return hash('sha256', text, 'hex').slice(0, 16);
}

/** A UTF-8 byte-order mark (read as Latin-1) and then CR, LF, spaces, tabs and NULs: their length. */
function leadingBlankLength(text: string): number {
  let i = text.startsWith('\u00ef\u00bb\u00bf') ? 3 : 0;
  for (let c = text.charCodeAt(i); c === 0x0d || c === 0x0a || c === 0x20 || c === 0x09 || c === 0x00; c = text.charCodeAt(++i));
  return i;
}

/**
 * The text with its last segment ended by one CR: a missing terminator added, and empty lines or
 * lines of spaces, tabs and NULs after the last segment left out (block.ts skips them too). Spaces at the end of the last segment
 * itself (before its terminator, or at the end of the text) are its content and stay.
 */
function endedWithOneCr(data: string): string {
  let end = data.length;
  for (;;) {
    let j = end;
    while (j > 0 && (data.charCodeAt(j - 1) === 0x20 || data.charCodeAt(j - 1) === 0x09 || data.charCodeAt(j - 1) === 0x00)) j--;
    if (j > 0 && data.charCodeAt(j - 1) === 0x0d) end = j - 1;
    else break;
  }
  // The common case — one CR after the last segment — allocates nothing.
  if (end === data.length - 1) return data;
  return `${data.slice(0, end)}\r`;
}

/** The text with MSH-7 cut out and every segment terminator (CR, LF, CRLF) read as CR. */
function withoutMsh7(text: string): string {
  const cr = text.indexOf('\r');
  const lf = text.indexOf('\n');
  const end = cr === -1 ? lf : lf === -1 ? cr : Math.min(cr, lf);
  const mshEnd = end === -1 ? text.length : end;
  let data = text;
  const sep = mshEnd > 3 ? (text[3] as string) : '|';
  // The MSH-7 blanking applies when the first field is exactly 'MSH' and MSH-7 exists.
  if (mshEnd > 3 && text.startsWith('MSH') && sep !== 'M' && sep !== 'S' && sep !== 'H') {
    // Field k (0-based, field 0 = 'MSH') starts after the k-th separator; MSH-7 is field 6.
    let at = 3;
    let k = 0;
    while (k < 6) {
      const next = text.indexOf(sep, at);
      if (next === -1 || next >= mshEnd) break;
      at = next + 1;
      k++;
    }
    if (k === 6) {
      const next = text.indexOf(sep, at);
      const stop = next === -1 || next >= mshEnd ? mshEnd : next;
      if (stop > at) data = text.slice(0, at) + text.slice(stop);
    }
  }
  // Segments end with CR (HL7 v2.5 §2.5.4); a resend whose terminators a sender or an interface
  // engine turned into LF or CRLF is the same message. Only text with an LF changes here, so the
  // fingerprints of CR-only messages (nearly all) are what they always were.
  if (data.includes('\n')) data = data.replace(/\r?\n/g, '\r');
  return data;
}

/** The sender identity used for duplicate detection: MSH-3^MSH-4 as received. */
export function senderOf(header: MshHeader): string {
  return `${header.sendingApplication}^${header.sendingFacility}`;
}

const VERSION = /^\d+(\.\d+)*$/;
/** Parsed version numbers by version string (a handful of distinct values in practice). */
const parsedVersions = new Map<string, readonly number[]>();

function parseVersion(v: string): readonly number[] {
  let parsed = parsedVersions.get(v);
  if (parsed === undefined) {
    parsed = VERSION.test(v) ? v.split('.').map(Number) : [2, 5];
    if (parsedVersions.size >= 256) parsedVersions.clear();
    parsedVersions.set(v, parsed);
  }
  return parsed;
}

/** Compare HL7 version strings numerically ('2.3.1' < '2.4'); unknown versions sort as 2.5. */
export function versionAtLeast(version: string, min: string): boolean {
  const a = parseVersion(version);
  const b = parseVersion(min);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}
