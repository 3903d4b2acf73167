import { createHash } from 'node:crypto';
import type { Hl7ErrorCode } from './error-codes.ts';

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

function isDelimiterChar(ch: string | undefined): boolean {
  // HL7 v2.5 §2.5.4: delimiters are printable, non-alphanumeric ASCII.
  return ch !== undefined && ch.length === 1 && /[\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e]/.test(ch);
}

/** Read the MSH segment text (terminator excluded). */
export function readMsh(segment: string): MshReadResult {
  if (!segment.startsWith('MSH')) {
    return { header: { ...EMPTY }, problem: { code: 100, text: 'the message does not start with an MSH segment', location: 'MSH' } };
  }
  const fs = segment[3];
  if (!isDelimiterChar(fs)) {
    return { header: { ...EMPTY }, problem: { code: 102, text: 'MSH-1 field separator missing or invalid', location: 'MSH^1^1' } };
  }
  const fields = segment.split(fs as string);
  // fields[0] = 'MSH', fields[1] = MSH-2, so MSH-n = fields[n - 1] for n ≥ 2.
  const f = (n: number): string => fields[n - 1] ?? '';
  const enc = f(2);
  const comp = enc[0] ?? '^';
  const rep = enc[1] ?? '~';
  const first = (value: string, sep: string): string => value.split(sep)[0] ?? '';
  const msh9 = f(9).split(comp);
  const header: MshHeader = {
    fieldSeparator: fs as string,
    encodingCharacters: enc,
    sendingApplication: f(3),
    sendingFacility: f(4),
    receivingApplication: f(5),
    receivingFacility: f(6),
    dateTime: first(f(7), comp),
    messageCode: (msh9[0] ?? '').trim().toUpperCase(),
    triggerEvent: (msh9[1] ?? '').trim().toUpperCase(),
    messageStructure: (msh9[2] ?? '').trim().toUpperCase(),
    controlId: f(10).trim(),
    processingId: f(11),
    version: first(first(f(12), rep), comp).trim(),
    acceptAckType: f(15).trim().toUpperCase(),
    appAckType: f(16).trim().toUpperCase(),
    charset: first(f(18), rep).trim(),
  };
  const chars = [...enc];
  const distinct = new Set([...chars, fs]).size === chars.length + 1;
  if (chars.length < 2 || chars.length > 5 || !distinct || !chars.every(isDelimiterChar)) {
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

/** The sender identity used for duplicate detection: MSH-3^MSH-4 as received. */
/**
 * What makes two messages with one control id the same message: a hash of the bytes with MSH-7
 * (the time the message was built, which senders refresh on a resend) left out. A resend hashes
 * the same; a sender that reuses control ids for different messages (Mindray analyzers send
 * MSH-10 = 1 every time) hashes differently, so neither is mistaken for the other.
 */
export function contentFingerprint(raw: Buffer): string {
  const text = raw.toString('latin1');
  const end = text.search(/[\r\n]/);
  const msh = end === -1 ? text : text.slice(0, end);
  const sep = msh[3] ?? '|';
  const fields = msh.split(sep);
  if (fields[0] === 'MSH' && fields.length > 6) fields[6] = '';
  return createHash('sha256')
    .update(fields.join(sep))
    .update(end === -1 ? '' : text.slice(end))
    .digest('hex')
    .slice(0, 16);
}

export function senderOf(header: MshHeader): string {
  return `${header.sendingApplication}^${header.sendingFacility}`;
}

/** Compare HL7 version strings numerically ('2.3.1' < '2.4'); unknown versions sort as 2.5. */
export function versionAtLeast(version: string, min: string): boolean {
  const parse = (v: string): number[] => (/^\d+(\.\d+)*$/.test(v) ? v.split('.').map(Number) : [2, 5]);
  const a = parse(version);
  const b = parse(min);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}
