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

/** The acknowledgements due for one message (planAcks). */
export interface AckPlan {
  /** Commit-level (enhanced) or the only (original) acknowledgement, if due. */
  first?: AckCode;
  /** Application acknowledgement (enhanced mode only), if due. */
  second?: AckCode;
}

/** How a message came out: accepted, refused (AR/CR) or failed (AE/CE). */
export type AckOutcome = 'ok' | 'reject' | 'error';

/** HL7 table 0155 (accept/application acknowledgment conditions). */
const ACK_CONDITIONS = new Set(['AL', 'NE', 'ER', 'SU']);

const ORIGINAL = { ok: 'AA', reject: 'AR', error: 'AE' } as const;
const COMMIT = { ok: 'CA', reject: 'CR', error: 'CE' } as const;
/** The original-mode plans (constant: callers only read them). */
const ORIGINAL_PLANS: Readonly<Record<AckOutcome, AckPlan>> = { ok: { first: 'AA' }, reject: { first: 'AR' }, error: { first: 'AE' } };

/**
 * The acknowledgements a message gets (HL7 v2.5 §2.9.2, §2.9.3): original mode one AA/AE/AR;
 * enhanced mode (`mode` enhanced and the message fills MSH-15 or MSH-16) a commit ACK CA/CE/CR
 * when MSH-15 asks for one (AL always, ER on error, SU on success, NE never; empty = AL), then an
 * application ACK AA/AE/AR when MSH-16 asks for one. The intake answers by it, and `lab-gateway
 * send` reads by it how many replies a message it sends is due.
 */
export function planAcks(mode: 'original' | 'enhanced', header: MshHeader, result: AckOutcome): AckPlan {
  if (mode !== 'enhanced') return ORIGINAL_PLANS[result];
  // Values outside table 0155 count as empty: Mindray BS analyzers put their run type (0/1/2) in
  // MSH-16 and expect an original-mode ACK.
  const accept = ACK_CONDITIONS.has(header.acceptAckType) ? header.acceptAckType : '';
  const app = ACK_CONDITIONS.has(header.appAckType) ? header.appAckType : '';
  if (accept === '' && app === '') return ORIGINAL_PLANS[result];
  const due = (type: string): boolean => type === 'AL' || type === '' || (type === 'ER' && result !== 'ok') || (type === 'SU' && result === 'ok');
  const plan: AckPlan = {};
  if (due(accept)) plan.first = COMMIT[result];
  // MSH-16 empty in enhanced mode means no application acknowledgement (§2.9.3.1).
  if (app !== '' && due(app)) plan.second = ORIGINAL[result];
  return plan;
}

const DEFAULT_VERSION = '2.5';

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** The last timestamp formatted, by epoch second: replies within one second share it. */
let stampSecond = Number.NaN;
let stampText = '';

/** HL7 DTM in the gateway's local time, second precision (readable by every version). */
export function hl7Timestamp(d: Date): string {
  const second = Math.floor(d.getTime() / 1000);
  if (second === stampSecond) return stampText;
  const text = `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`;
  stampSecond = second;
  stampText = text;
  return text;
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

/** Fields copied from the sender into a reply lose control characters (they would break framing). */
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\x00-\x1f\x7f]/g;
export function clean(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return value.replace(CONTROLS, '?');
  }
  return value;
}

/**
 * MSH-1 to MSH-12 of a reply to `h`: MSH-3/4 ↔ MSH-5/6 swapped, MSH-7 now, MSH-8 empty, MSH-9
 * `messageType`, MSH-10 `controlId`, MSH-11 and MSH-12 copied. What follows MSH-12 is the
 * caller's (an ACK echoes MSH-18 after MSH-13..17 left empty).
 */
export function replyMsh(h: MshHeader, messageType: string, controlId: string, now = new Date()): string {
  const fs = h.fieldSeparator;
  return (
    'MSH' + fs + h.encodingCharacters + fs + clean(h.receivingApplication) + fs + clean(h.receivingFacility) + fs + clean(h.sendingApplication) + fs + clean(h.sendingFacility) +
    fs + hl7Timestamp(now) + fs + fs + messageType + fs + controlId + fs + (clean(h.processingId) || 'P') + fs + (clean(h.version) || DEFAULT_VERSION)
  );
}

export function buildAck(spec: AckSpec): string {
  const h = spec.header;
  const fs = h.fieldSeparator;
  const enc = h.encodingCharacters;
  const comp = enc[0] ?? '^';
  const sub = enc[3] ?? '&';
  const triggerEvent = clean(h.triggerEvent);
  const controlId = clean(h.controlId);
  const charset = clean(h.charset);
  const version = clean(h.version) || DEFAULT_VERSION;
  const messageType = !triggerEvent
    ? 'ACK'
    : versionAtLeast(version, '2.3.1')
      ? `ACK${comp}${triggerEvent}${comp}ACK`
      : versionAtLeast(version, '2.2')
        ? `ACK${comp}${triggerEvent}`
        : 'ACK';
  let out = replyMsh(h, messageType, spec.controlId, spec.now);
  if (charset) out += fs + fs + fs + fs + fs + fs + charset;
  const e = spec.error;
  if (!e) return out + '\rMSA' + fs + spec.code + fs + controlId + '\r';
  const text = escapeText(e.text, fs, enc);
  out += '\rMSA' + fs + spec.code + fs + controlId + fs + text + '\r';
  const name = Hl7ErrorCodes[e.code];
  const locationParts = (e.location ?? '').split('^').map((part) => escapeText(part, fs, enc));
  if (versionAtLeast(version, '2.5')) {
    // ERR-1 (withdrawn), ERR-2 location, ERR-3 code^text^HL70357, ERR-4 severity E, ERR-8 user message.
    out += ['ERR', '', locationParts.join(comp), `${e.code}${comp}${name}${comp}HL70357`, 'E', '', '', '', text].join(fs);
  } else {
    const loc = locationParts;
    const eld = [loc[0] ?? '', loc[1] ?? '', loc[2] ?? '', `${e.code}${sub}${name}${sub}HL70357`].join(comp);
    out += ['ERR', eld].join(fs);
  }
  return out + '\r';
}

const BASE36 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** `n.toString(36).padStart(5, '0').toUpperCase()` for 0 ≤ n < 36^5 (a 24-bit counter always is). */
function base36Upper5(n: number): string {
  if (!(n >= 0 && n < 60_466_176 && Number.isInteger(n))) return n.toString(36).padStart(5, '0').toUpperCase();
  const d0 = n % 36;
  const d1 = Math.floor(n / 36) % 36;
  const d2 = Math.floor(n / 1296) % 36;
  const d3 = Math.floor(n / 46_656) % 36;
  const d4 = Math.floor(n / 1_679_616);
  return (BASE36[d4] as string) + (BASE36[d3] as string) + (BASE36[d2] as string) + (BASE36[d1] as string) + (BASE36[d0] as string);
}

/** The last converted millisecond and suffix parts of compactId. */
let lastMsHex: string | undefined;
let lastMsPart = '';
let lastSuffixHex: string | undefined;
let lastSuffixPart = '';

/**
 * A control id unique to this gateway that fits the 20 characters of MSH-10 before v2.7: the
 * time-ordered id (12 hex ms, 6 hex counter, 6 hex process suffix; ids.ts) re-written in base 36,
 * each part zero-padded, so it stays unique and time-ordered.
 */
export function compactId(timeOrderedHexId: string): string {
  const msHex = timeOrderedHexId.slice(0, 12);
  const suffixHex = timeOrderedHexId.slice(18, 24);
  // Ids made within one millisecond share the first part, and one process keeps its suffix.
  if (msHex !== lastMsHex) {
    lastMsHex = msHex;
    lastMsPart = Number.parseInt(msHex, 16).toString(36).padStart(10, '0').toUpperCase();
  }
  if (suffixHex !== lastSuffixHex) {
    lastSuffixHex = suffixHex;
    lastSuffixPart = Number.parseInt(suffixHex, 16).toString(36).padStart(5, '0').toUpperCase();
  }
  return lastMsPart + base36Upper5(Number.parseInt(timeOrderedHexId.slice(12, 18), 16)) + lastSuffixPart;
}
