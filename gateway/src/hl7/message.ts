import { Message } from 'node-hl7-client';
import { GatewayError } from '../errors.ts';
import type { Hl7ErrorCode } from './error-codes.ts';
import type { MshHeader } from './msh.ts';
import { trimmed } from './text.ts';

/**
 * A parsed HL7 v2 message with a small, 1-based API in HL7's own numbering for normalizers
 * (`seg.get(4, 1)` is OBR-4.1; `seg.get(3, 1, 1, 1)` is the second repetition of PID-3.1.1).
 *
 * Division of labour with node-hl7-client (details and measurements in README.md):
 * - node-hl7-client decodes escape sequences (HL7 v2.5 §2.7: \F\ \S\ \T\ \R\ \E\ \Xhh\; \H\ \N\
 *   \C..\ \M..\ \Zxx\ dropped; \.br\ kept literally) with the message's own delimiters;
 * - segment and field splitting is done here, on the segments the block splitter found: the
 *   library's node tree cost ~60 µs per lab result (≈ 20 % of the gateway's CPU at full intake),
 *   it splits segments on CR only when any CR is present (CRLF and LF feeds mis-parse), and with a
 *   three-character MSH-2 it takes the field separator for the subcomponent separator.
 * Every corpus file is checked through this path (test/unit/hl7-corpus.test.ts).
 */

export interface Delimiters {
  field: string;
  component: string;
  repetition: string;
  escape: string;
  subcomponent: string;
}

type Unescape = (text: string) => string;

/** Characters used to pad MSH-2 for the library when the sender sent fewer than four. */
const PAD_CANDIDATES = ['\x1a', '\x1e', '\x1f', '\x7f'];
const unescapers = new Map<string, Unescape>();

/** node-hl7-client's unescape for one delimiter set (a Message per set, cached). */
function unescaperFor(d: Delimiters): Unescape {
  const key = d.field + d.component + d.repetition + d.escape + d.subcomponent;
  let fn = unescapers.get(key);
  if (!fn) {
    const carrier = new Message({ text: `MSH${d.field}${d.component}${d.repetition}${d.escape}${d.subcomponent}${d.field}` });
    fn = (text) => carrier.unescape(text);
    if (unescapers.size > 64) unescapers.clear();
    unescapers.set(key, fn);
  }
  return fn;
}

/**
 * The part `n` (0-based) of `value` cut at `sep`, as the reading has always been
 * (`value.includes(sep) ? value.split(sep)[n] ?? '' : n > 0 ? '' : value`), without the array.
 */
function nthPart(value: string, sep: string, n: number): string {
  if (typeof sep !== 'string' || sep.length === 0) {
    // No stand-in was left for a missing encoding character (delimitersOf): the general form.
    return value.includes(sep) ? (value.split(sep)[n] ?? '') : n > 0 ? '' : value;
  }
  if (n < 0) return value.includes(sep) ? '' : value;
  let from = 0;
  for (let k = 0; k < n; k++) {
    const at = value.indexOf(sep, from);
    if (at === -1) return '';
    from = at + sep.length;
  }
  const to = value.indexOf(sep, from);
  return from === 0 && to === -1 ? value : value.slice(from, to === -1 ? value.length : to);
}

export class Hl7Segment {
  readonly name: string;
  /** Position in the message, 0 = MSH. */
  readonly index: number;
  /** The segment text as received (decoded, terminator removed). */
  readonly text: string;
  readonly #d: Delimiters;
  readonly #unescape: Unescape;
  readonly #isMsh: boolean;
  /** Offsets of the field separators in `text` (found on first use; fields are cut on demand). */
  #seps: number[] | undefined;

  constructor(name: string, index: number, text: string, delimiters: Delimiters, unescape: Unescape) {
    this.name = name;
    this.index = index;
    this.text = text;
    this.#d = delimiters;
    this.#unescape = unescape;
    this.#isMsh = name === 'MSH';
  }

  #separators(): number[] {
    const seps: number[] = [];
    const text = this.text;
    const fs = this.#d.field;
    for (let at = text.indexOf(fs); at !== -1; at = text.indexOf(fs, at + fs.length)) seps.push(at);
    this.#seps = seps;
    return seps;
  }

  /** Raw (escaped) text of a field, all repetitions. */
  raw(field: number): string {
    // MSH-1 is the field separator itself, so MSH-n sits at split index n - 1.
    let i = field;
    if (this.#isMsh) {
      if (field === 1) return this.#d.field;
      i = field - 1;
    }
    // Split index i runs from the i-th separator to the next one (index 0 would be the name).
    if (!(i >= 0) || !Number.isInteger(i)) return '';
    const seps = this.#seps ?? this.#separators();
    if (i === 0) return this.text.slice(0, seps[0] ?? this.text.length);
    if (i > seps.length) return '';
    const from = (seps[i - 1] as number) + this.#d.field.length;
    const to = i < seps.length ? (seps[i] as number) : this.text.length;
    return this.text.slice(from, to);
  }

  /** Whether the raw (escaped) text of a field is exactly `value`, without cutting the field out. */
  rawEquals(field: number, value: string): boolean {
    const i = this.#isMsh ? field - 1 : field;
    if (!(i >= 1) || !Number.isInteger(i)) return this.raw(field) === value;
    const seps = this.#seps ?? this.#separators();
    if (i > seps.length) return value === '';
    const from = (seps[i - 1] as number) + this.#d.field.length;
    const to = i < seps.length ? (seps[i] as number) : this.text.length;
    return to - from === value.length && this.text.startsWith(value, from);
  }

  /** Unescaped value of field[repetition].component.subcomponent (1-based; repetition 0-based). */
  get(field: number, component = 1, subcomponent = 1, repetition = 0): string {
    let v = this.raw(field);
    if (v === '') return '';
    if (this.#isMsh && field <= 2) return v;
    const d = this.#d;
    v = nthPart(v, d.repetition, repetition);
    if (v === '') return '';
    v = nthPart(v, d.component, component - 1);
    if (v === '') return '';
    v = nthPart(v, d.subcomponent, subcomponent - 1);
    if (v === '') return '';
    v = trimmed(v);
    // HL7 v2.5 §2.5.3: "" is an explicit null ("delete this value"); for reading it is empty.
    if (v === '""') return '';
    return v.includes(d.escape) ? this.#unescape(v) : v;
  }

  /** Number of repetitions of a field (0 when empty). */
  repetitions(field: number): number {
    const v = this.raw(field);
    return v === '' ? 0 : v.split(this.#d.repetition).length;
  }
}

export class Hl7Message {
  readonly header: MshHeader;
  readonly segments: readonly Hl7Segment[];
  readonly delimiters: Delimiters;

  constructor(header: MshHeader, segments: Hl7Segment[], delimiters: Delimiters) {
    this.header = header;
    this.segments = segments;
    this.delimiters = delimiters;
  }

  first(name: string): Hl7Segment | undefined {
    return this.segments.find((s) => s.name === name);
  }

  all(name: string): Hl7Segment[] {
    return this.segments.filter((s) => s.name === name);
  }
}

export function parseError(code: Hl7ErrorCode, text: string, location?: string, cause?: unknown): GatewayError {
  return new GatewayError('GW_HL7_PARSE', text, { cause, details: { hl7ErrorCode: code, ...(location ? { location } : {}) } });
}

/** The delimiters of a message; missing encoding characters get unused stand-ins. */
export function delimitersOf(header: MshHeader, text: () => string): Delimiters {
  const enc = [...header.encodingCharacters];
  const pads = enc.length >= 4 ? [] : PAD_CANDIDATES.filter((c) => !text().includes(c));
  const pick = (i: number): string => enc[i] ?? (pads.shift() as string);
  return { field: header.fieldSeparator, component: pick(0), repetition: pick(1), escape: pick(2), subcomponent: pick(3) };
}

/** Delimiters (and their unescape) by field separator + MSH-2, when MSH-2 names all four. */
const fullDelimiters = new Map<string, { delimiters: Delimiters; unescape: Unescape }>();

function delimitersFor(header: MshHeader, segmentTexts: string[]): { delimiters: Delimiters; unescape: Unescape } {
  const enc = header.encodingCharacters;
  // Stand-ins depend on the text (they must not occur in it); four or more characters do not.
  const complete = enc.length >= 4 && [...enc].length >= 4;
  const key = header.fieldSeparator + enc;
  let entry = complete ? fullDelimiters.get(key) : undefined;
  if (!entry) {
    const delimiters = delimitersOf(header, () => segmentTexts.join('\r'));
    entry = { delimiters, unescape: unescaperFor(delimiters) };
    if (complete) {
      Object.freeze(delimiters);
      if (fullDelimiters.size > 64) fullDelimiters.clear();
      fullDelimiters.set(key, entry);
    }
  }
  return entry;
}

function isUpper(c: number): boolean {
  return c >= 0x41 && c <= 0x5a;
}

function isUpperOrDigit(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39);
}

/**
 * Parse one message from its segment texts (terminators already removed; MSH first).
 * `segmentNames`, when given, are the texts' first three characters (block.ts has them already).
 * Throws GatewayError GW_HL7_PARSE with `details.hl7ErrorCode` (table 0357) on failure.
 */
export function parseMessage(header: MshHeader, segmentTexts: string[], segmentNames?: readonly string[]): Hl7Message {
  const segments: Hl7Segment[] = [];
  const { delimiters, unescape } = delimitersFor(header, segmentTexts);
  const fs = header.fieldSeparator;
  for (let i = 0; i < segmentTexts.length; i++) {
    const text = segmentTexts[i] as string;
    const name = segmentNames?.[i] ?? text.slice(0, 3);
    // A segment id is an upper-case letter and two upper-case letters or digits.
    if (name.length !== 3 || !isUpper(name.charCodeAt(0)) || !isUpperOrDigit(name.charCodeAt(1)) || !isUpperOrDigit(name.charCodeAt(2))) {
      throw parseError(100, `segment ${i + 1} has no valid segment id ("${name.replace(/[^\x20-\x7e]/g, '?')}")`, `${name}^1`);
    }
    if (text.length > 3 && text[3] !== fs) {
      throw parseError(100, `segment ${i + 1} (${name}) is not followed by the field separator`, `${name}^1`);
    }
    if (i > 0 && name === 'MSH') throw parseError(100, `a second MSH at segment ${i + 1}`, `MSH^${i + 1}`);
    segments.push(new Hl7Segment(name, i, text, delimiters, unescape));
  }
  return new Hl7Message(header, segments, delimiters);
}
