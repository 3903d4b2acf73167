import { GatewayError } from '../errors.ts';
import { type AstmDelimiters, DEFAULT_DELIMITERS, delimiterDefinition, delimitersFromHeader } from './delimiters.ts';
import { type AstmCharset, escapeAstm, unescapeAstm } from './escape.ts';

/**
 * LIS2-A2 (formerly ASTM E1394-97) record layer: one message = the records H … L, each record a
 * line ended by CR (LIS2-A2 §5.4.1), fields split by the delimiters declared in H.2.
 *
 * Field numbering follows the standard: field n of a record is section x.n, the record type is
 * field 1, so `O.3` (specimen ID) is `fields[2]`. Values are kept escaped in `fields`; the accessors
 * split on repeat/component delimiters and then unescape (§5.4.5), so escaped delimiters never
 * split a value.
 */

export const RecordTypes = {
  H: { name: 'Message Header', level: 0 },
  P: { name: 'Patient', level: 1 },
  O: { name: 'Test Order', level: 2 },
  R: { name: 'Result', level: 3 },
  C: { name: 'Comment', level: -1 },
  Q: { name: 'Request Information', level: 1 },
  M: { name: 'Manufacturer Information', level: -1 },
  S: { name: 'Scientific', level: 1 },
  L: { name: 'Message Terminator', level: 0 },
} as const;

export type RecordType = keyof typeof RecordTypes;

export function isRecordType(value: string): value is RecordType {
  return Object.hasOwn(RecordTypes, value);
}

export interface AstmRecord {
  type: RecordType;
  /** The record text exactly as received, without its separator. */
  raw: string;
  /** Escaped field texts; `fields[0]` is the record type, `fields[n - 1]` is field x.n. */
  fields: string[];
  /** 0-based position of the record in the message. */
  index: number;
}

export interface ResultGroup {
  record: AstmRecord;
  comments: AstmRecord[];
}

export interface OrderGroup {
  record: AstmRecord;
  comments: AstmRecord[];
  results: ResultGroup[];
  /** M records that followed this order or its results (opaque manufacturer data). */
  manufacturer: AstmRecord[];
}

export interface PatientGroup {
  /** Absent when O records arrive without a P record (tolerated). */
  record?: AstmRecord;
  comments: AstmRecord[];
  orders: OrderGroup[];
}

export interface AstmMessage {
  delimiters: AstmDelimiters;
  header: AstmRecord;
  records: AstmRecord[];
  patients: PatientGroup[];
  queries: AstmRecord[];
  /** Manufacturer records not attached to an order, kept opaque (LIS2-A2 §14). */
  manufacturer: AstmRecord[];
  /** Scientific records, kept opaque (LIS2-A2 §13). */
  scientific: AstmRecord[];
  /** Comments on the header or on a query. */
  comments: AstmRecord[];
  terminator?: AstmRecord;
  /** Tolerated deviations (missing L, records after L, quirks), for diagnostics. */
  warnings: string[];
}

/** Split message text into record lines; CR, LF and CRLF are all accepted (corpus logs alter CRs). */
export function splitRecordLines(text: string): string[] {
  return text.split(/\r\n|\r|\n/).filter((line) => line.trim().length > 0);
}

function tidyLine(line: string): string {
  // Leading blanks and a BOM come from logs and editors, never from the standard.
  return line.replace(/^[\uFEFF\s]+/, '');
}

/**
 * Split a stream of records (e.g. everything received in one E1381 session) into messages,
 * each starting at an H record. Records before the first H are returned as `orphans`.
 */
export function splitMessages(text: string): { messages: string[]; orphans: string[] } {
  const messages: string[][] = [];
  const orphans: string[] = [];
  for (const raw of splitRecordLines(text)) {
    const line = tidyLine(raw);
    if (line.startsWith('H') && line.length > 1 && !/[A-Za-z0-9]/.test(line[1]!)) messages.push([line]);
    else if (messages.length > 0) messages[messages.length - 1]!.push(line);
    else orphans.push(line);
  }
  return { messages: messages.map((m) => m.join('\r')), orphans };
}

/**
 * A record named for a refusal reason without its content: the reason is shown unmasked in the
 * message list and logged at warn, and a P record's first fields are the patient's name.
 */
function describeLine(line: string): string {
  const head = line.slice(0, 2).replace(/[^\x20-\x7e]/g, '?');
  return `a line of ${line.length} characters starting ${JSON.stringify(head)}`;
}

export function parseError(message: string, details?: Record<string, unknown>): GatewayError {
  return new GatewayError('GW_ASTM_PARSE', message, details ? { details } : undefined);
}

/**
 * Parse one LIS2-A2 message (records H … L). Throws `GW_ASTM_PARSE` with a readable reason when
 * the text is not a message: no H record first, bad delimiters, no known record type.
 */
export function parseAstmMessage(text: string): AstmMessage {
  const lines = splitRecordLines(text).map(tidyLine);
  if (lines.length === 0) throw parseError('empty message: no records');
  const first = lines[0]!;
  if (first[0] !== 'H') {
    throw parseError(`not a LIS2-A2 message: the first record must be H (message header), got ${describeLine(first)}`);
  }
  const delim = delimitersFromHeader(first);
  if (!delim.ok) throw parseError(`not a LIS2-A2 message: ${delim.reason}`);
  const d = delim.delimiters;
  const warnings: string[] = delim.quirk ? [delim.quirk] : [];

  const records: AstmRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const type = line[0] ?? '';
    if (!isRecordType(type) || (line.length > 1 && line[1] !== d.field)) {
      throw parseError(`record ${i + 1} is not a LIS2-A2 record: ${describeLine(line)} (expected one of H P O R C Q M S L followed by ${JSON.stringify(d.field)})`, { index: i });
    }
    records.push({ type, raw: line, fields: splitFields(line, d, type === 'H'), index: i });
  }

  const message: AstmMessage = {
    delimiters: d,
    header: records[0]!,
    records,
    patients: [],
    queries: [],
    manufacturer: [],
    scientific: [],
    comments: [],
    warnings,
  };
  buildHierarchy(message);
  return message;
}

function splitFields(line: string, d: AstmDelimiters, isHeader: boolean): string[] {
  if (!isHeader) return line.split(d.field);
  // H.2 holds the delimiters themselves and is never split or unescaped (LIS2-A2 §6.2).
  const end = line.indexOf(d.field, 2);
  const h2 = end === -1 ? line.slice(2) : line.slice(2, end);
  const rest = end === -1 ? [] : line.slice(end + 1).split(d.field);
  return ['H', h2, ...rest];
}

/**
 * LIS2-A2 §5.5 hierarchy: H(0) > P(1) > O(2) > R(3); C applies to the record before it; Q and S
 * are level 1; M may appear anywhere. Deviations are tolerated and noted in `warnings`.
 */
function buildHierarchy(m: AstmMessage): void {
  let patient: PatientGroup | undefined;
  let order: OrderGroup | undefined;
  let result: ResultGroup | undefined;
  let last: AstmRecord = m.header;
  for (const rec of m.records.slice(1)) {
    if (m.terminator) m.warnings.push(`record ${rec.index + 1} (${rec.type}) after the L record`);
    switch (rec.type) {
      case 'H':
        m.warnings.push(`second H record at ${rec.index + 1}: split sessions into messages first`);
        break;
      case 'P':
        patient = { record: rec, comments: [], orders: [] };
        m.patients.push(patient);
        order = undefined;
        result = undefined;
        break;
      case 'O':
        if (!patient) {
          patient = { comments: [], orders: [] };
          m.patients.push(patient);
          m.warnings.push(`O record ${rec.index + 1} without a P record`);
        }
        order = { record: rec, comments: [], results: [], manufacturer: [] };
        patient.orders.push(order);
        result = undefined;
        break;
      case 'R':
        if (!order) {
          m.warnings.push(`R record ${rec.index + 1} without an O record: ignored for results`);
          break;
        }
        result = { record: rec, comments: [] };
        order.results.push(result);
        break;
      case 'C':
        // "A comment record applies to the record immediately preceding it" (LIS2-A2 §10).
        if (last.type === 'R' && result) result.comments.push(rec);
        else if (last.type === 'O' && order) order.comments.push(rec);
        else if (last.type === 'C' && result && last === result.comments.at(-1)) result.comments.push(rec);
        else if (last.type === 'C' && order && last === order.comments.at(-1)) order.comments.push(rec);
        else if ((last.type === 'P' || last.type === 'C') && patient && (last === patient.record || last === patient.comments.at(-1))) patient.comments.push(rec);
        else m.comments.push(rec);
        break;
      case 'Q':
        m.queries.push(rec);
        patient = undefined;
        order = undefined;
        result = undefined;
        break;
      case 'M':
        if (order) order.manufacturer.push(rec);
        else m.manufacturer.push(rec);
        break;
      case 'S':
        m.scientific.push(rec);
        break;
      case 'L':
        if (!m.terminator) m.terminator = rec;
        break;
      default:
        rec.type satisfies never;
    }
    last = rec;
  }
  if (!m.terminator) m.warnings.push('no L (message terminator) record');
}

// ---------------------------------------------------------------------------------------------
// Field access. `n` is the LIS2-A2 field number (record type = 1), components are 1-based.

/** The escaped text of field n ('' when absent). */
export function rawField(rec: AstmRecord, n: number): string {
  return rec.fields[n - 1] ?? '';
}

/** Field n split into repeats of components, each unescaped. */
export function fieldRepeats(rec: AstmRecord, n: number, d: AstmDelimiters): string[][] {
  const raw = rawField(rec, n);
  if (rec.type === 'H' && n === 2) return [[raw]];
  if (raw === '') return [];
  return raw.split(d.repeat).map((rep) => rep.split(d.component).map((c) => unescapeAstm(c, d)));
}

/** Component c (1-based) of repeat r (0-based) of field n, unescaped ('' when absent). */
export function component(rec: AstmRecord, n: number, c: number, d: AstmDelimiters, r = 0): string {
  return fieldRepeats(rec, n, d)[r]?.[c - 1] ?? '';
}

/** Field n as plain text: the first repeat's components joined by the component delimiter. */
export function fieldText(rec: AstmRecord, n: number, d: AstmDelimiters): string {
  if (rec.type === 'H' && n === 2) return rawField(rec, 2);
  return unescapeAstm(rawField(rec, n), d);
}

/**
 * A field reference as used by profiles: `O.3` (whole field, first repeat, components joined),
 * `O.3.1` (component 1 of the first repeat), `O.3.1.2` would be a subcomponent (not in LIS2-A2).
 */
export interface FieldRef {
  record: RecordType;
  field: number;
  component?: number;
}

export function parseFieldRef(text: string): FieldRef | undefined {
  const m = /^([HPORCQMSL])\.(\d{1,2})(?:\.(\d{1,2}))?$/.exec(text);
  if (!m) return undefined;
  const ref: FieldRef = { record: m[1] as RecordType, field: Number(m[2]) };
  if (m[3] !== undefined) ref.component = Number(m[3]);
  return ref;
}

/** Read a field reference from a record of the matching type (trimmed). */
export function readRef(rec: AstmRecord | undefined, ref: FieldRef, d: AstmDelimiters): string {
  if (!rec || rec.type !== ref.record) return '';
  if (ref.component === undefined) {
    const first = fieldRepeats(rec, ref.field, d)[0];
    if (rec.type === 'H' && ref.field === 2) return rawField(rec, 2);
    return (first ?? []).join(d.component).trim();
  }
  return component(rec, ref.field, ref.component, d).trim();
}

// ---------------------------------------------------------------------------------------------
// Building outgoing records (host query answers, worklists).

/** A field value: text, components, or repeats of components. `undefined` = empty field. */
export type FieldValue = string | undefined | string[] | string[][];

function encodeField(value: FieldValue, d: AstmDelimiters, charset: AstmCharset): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return escapeAstm(value, d, charset);
  if (value.length === 0) return '';
  if (Array.isArray(value[0])) {
    return (value as string[][]).map((rep) => rep.map((c) => escapeAstm(c, d, charset)).join(d.component)).join(d.repeat);
  }
  return (value as string[]).map((c) => escapeAstm(c, d, charset)).join(d.component);
}

/**
 * Build one record (without CR). `fields[0]` is field 2 (the sequence number for most records).
 * Trailing empty fields are omitted (LIS2-A2 §5.4: "trailing empty fields may be omitted").
 * `charset` is the analyzer's (profile quirk): what it cannot carry is sent as '?' (escapeAstm).
 */
export function buildRecord(type: Exclude<RecordType, 'H'>, fields: FieldValue[], d: AstmDelimiters = DEFAULT_DELIMITERS, charset: AstmCharset = 'latin1'): string {
  const encoded = fields.map((f) => encodeField(f, d, charset));
  while (encoded.length > 0 && encoded[encoded.length - 1] === '') encoded.pop();
  return [type, ...encoded].join(d.field);
}

/** Build an H record: `fields[0]` is H.3 (message control id); H.2 comes from the delimiters. */
export function buildHeader(fields: FieldValue[], d: AstmDelimiters = DEFAULT_DELIMITERS, charset: AstmCharset = 'latin1'): string {
  const encoded = fields.map((f) => encodeField(f, d, charset));
  while (encoded.length > 0 && encoded[encoded.length - 1] === '') encoded.pop();
  return ['H', delimiterDefinition(d), ...encoded].join(d.field);
}

/** LIS2-A2 date-time YYYYMMDDHHMMSS in local time of the gateway box (the analyzer's clock is local too). */
export function astmTimestamp(date: Date = new Date()): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(date.getFullYear(), 4)}${p(date.getMonth() + 1)}${p(date.getDate())}${p(date.getHours())}${p(date.getMinutes())}${p(date.getSeconds())}`;
}

/**
 * Convert a LIS2-A2 date/time (YYYYMMDD[HHMM[SS]]) to an ISO 8601 instant. Analyzer clocks carry
 * no zone: the text is read in the gateway's local time zone (the box sits in the lab).
 * Returns undefined when the text is not a date.
 */
export function astmDateToIso(text: string): string | undefined {
  const t = text.trim();
  const m = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?$/.exec(t);
  if (!m) return undefined;
  const [y, mo, da, h, mi, s] = m.slice(1).map((v) => (v === undefined ? 0 : Number(v))) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || da < 1 || da > 31 || h > 23 || mi > 59 || s > 59) return undefined;
  const date = new Date(y, mo - 1, da, h, mi, s);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}
