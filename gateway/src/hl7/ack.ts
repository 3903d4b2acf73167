import { Hl7ErrorCodes, type Hl7ErrorCode } from './error-codes.ts';
import { versionAtLeast, type MshHeader } from './msh.ts';

/**
 * Acknowledgement messages (HL7 v2.5 §2.9 "Message processing rules", §2.14.1 ACK).
 *
 * - MSH-3/4 ↔ MSH-5/6 swapped, MSH-11 and MSH-12 copied, the received field separator and
 *   encoding characters reused, MSH-18 echoed so the reply is read in the sender's charset.
 * - MSH-10 is a fresh, unique control id; MSA-2 echoes the received MSH-10 (§2.15.8.2).
 * - MSH-9 is `ACK^<trigger>^ACK` from v2.3.1 on (the message structure component exists since
 *   2.3.1), `ACK^<trigger>` for 2.2–2.3, `ACK` for 2.1.
 * - Negative acknowledgements carry an ERR segment: from v2.5 ERR-2 location, ERR-3 the table 0357
 *   code, ERR-4 severity, ERR-8 the text (§2.15.5); before 2.5 the code goes in ERR-1 (ELD) as
 *   `segment^sequence^field^code&text&HL70357`. MSA-3 repeats the text for older receivers.
 */
export const AckCodes = ['AA', 'AE', 'AR', 'CA', 'CE', 'CR'] as const;
export type AckCode = (typeof AckCodes)[number];

export interface AckError {
  code: Hl7ErrorCode;
  text: string;
  /** ERR-2 / ELD location, e.g. 'MSH^1^9' (segment^sequence^field). */
  location?: string;
}

export interface AckSpec {
  /** The received header; fields that could not be read are ''. */
  header: MshHeader;
  code: AckCode;
  /** Unique MSH-10 of the ACK itself. */
  controlId: string;
  error?: AckError;
  now?: Date;
}

const DEFAULT_VERSION = '2.5';

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** HL7 DTM in the gateway's local time, second precision (readable by every version). */
export function hl7Timestamp(d: Date): string {
  return `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`;
}

/**
 * HL7 v2.5 §2.7.1 escape sequences for text placed in a field. Control characters (which may come
 * from the rejected input quoted in an error text) become '?': a VT or FS inside an ACK would
 * break the MLLP framing of the reply itself.
 */
export function escapeText(text: string, fieldSep: string, enc: string): string {
  const [comp = '^', rep = '~', esc = '\\', sub = '&'] = [...enc];
  let out = '';
  // eslint-disable-next-line no-control-regex
  for (const ch of text.replace(/[\r\n]+/g, ' ').replace(/[\x00-\x1f\x7f]/g, '?')) {
    if (ch === esc) out += `${esc}E${esc}`;
    else if (ch === fieldSep) out += `${esc}F${esc}`;
    else if (ch === comp) out += `${esc}S${esc}`;
    else if (ch === rep) out += `${esc}R${esc}`;
    else if (ch === sub) out += `${esc}T${esc}`;
    else out += ch;
  }
  return out;
}

/** Fields copied from the sender into the ACK lose control characters (they would break framing). */
// eslint-disable-next-line no-control-regex
const clean = (value: string): string => value.replace(/[\x00-\x1f\x7f]/g, '?');

export function buildAck(spec: AckSpec): string {
  const r = spec.header;
  const h: MshHeader = {
    ...r,
    sendingApplication: clean(r.sendingApplication),
    sendingFacility: clean(r.sendingFacility),
    receivingApplication: clean(r.receivingApplication),
    receivingFacility: clean(r.receivingFacility),
    triggerEvent: clean(r.triggerEvent),
    controlId: clean(r.controlId),
    processingId: clean(r.processingId),
    version: clean(r.version),
    charset: clean(r.charset),
  };
  const fs = h.fieldSeparator;
  const enc = h.encodingCharacters;
  const comp = enc[0] ?? '^';
  const sub = enc[3] ?? '&';
  const version = h.version || DEFAULT_VERSION;
  const messageType = !h.triggerEvent
    ? 'ACK'
    : versionAtLeast(version, '2.3.1')
      ? `ACK${comp}${h.triggerEvent}${comp}ACK`
      : versionAtLeast(version, '2.2')
        ? `ACK${comp}${h.triggerEvent}`
        : 'ACK';
  const msh = [
    'MSH',
    enc,
    h.receivingApplication,
    h.receivingFacility,
    h.sendingApplication,
    h.sendingFacility,
    hl7Timestamp(spec.now ?? new Date()),
    '',
    messageType,
    spec.controlId,
    h.processingId || 'P',
    version,
  ];
  if (h.charset) msh.push('', '', '', '', '', h.charset);
  const segments = [msh.join(fs)];
  const e = spec.error;
  const text = e ? escapeText(e.text, fs, enc) : '';
  segments.push(['MSA', spec.code, h.controlId, ...(e ? [text] : [])].join(fs));
  if (e) {
    const name = Hl7ErrorCodes[e.code];
    const locationParts = (e.location ?? '').split('^').map((part) => escapeText(part, fs, enc));
    const location = locationParts.join(comp);
    if (versionAtLeast(version, '2.5')) {
      // ERR-1 (withdrawn), ERR-2 location, ERR-3 code^text^HL70357, ERR-4 severity E, ERR-8 user message.
      segments.push(['ERR', '', location, `${e.code}${comp}${name}${comp}HL70357`, 'E', '', '', '', text].join(fs));
    } else {
      const loc = locationParts;
      const eld = [loc[0] ?? '', loc[1] ?? '', loc[2] ?? '', `${e.code}${sub}${name}${sub}HL70357`].join(comp);
      segments.push(['ERR', eld].join(fs));
    }
  }
  return segments.join('\r') + '\r';
}

/**
 * A control id unique to this gateway that fits the 20 characters of MSH-10 before v2.7: the
 * time-ordered id (12 hex ms, 6 hex counter, 6 hex process suffix; ids.ts) re-written in base 36,
 * each part zero-padded, so it stays unique and time-ordered.
 */
export function compactId(timeOrderedHexId: string): string {
  const ms = Number.parseInt(timeOrderedHexId.slice(0, 12), 16).toString(36).padStart(10, '0');
  const counter = Number.parseInt(timeOrderedHexId.slice(12, 18), 16).toString(36).padStart(5, '0');
  const suffix = Number.parseInt(timeOrderedHexId.slice(18, 24), 16).toString(36).padStart(5, '0');
  return (ms + counter + suffix).toUpperCase();
}
