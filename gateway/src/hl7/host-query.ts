import type { OrderCreatedData } from '../events/types.ts';
import { clean, escapeText, hl7Timestamp, replyMsh, type AckError } from './ack.ts';
import type { Hl7Message } from './message.ts';
import type { MshHeader } from './msh.ts';

/**
 * Host queries over HL7 in the two Mindray dialects (HL7 v2.3.1, protocols.md §3 "Analyzer HL7
 * dialects"; the vendor's example messages are in ../shared/corpus/hl7, `*_mindray-*`).
 *
 * BS series (chemistry), `QRY^Q02`:
 *
 *   analyzer → gateway   QRY^Q02   QRD-8 = the specimen barcode it scanned
 *   gateway → analyzer   QCK^Q02   MSA|AA … QAK|SR|OK  (or QAK|SR|NF: nothing known, nothing follows)
 *   gateway → analyzer   DSR^Q03   MSA, ERR, QAK, the query's QRD and QRF, DSP|1 … DSP|28 sample
 *                                  and patient fields by position, DSP|29… one analyzer test number
 *                                  each, DSC
 *   analyzer → gateway   ACK^Q03   stored; an acknowledgement is never acknowledged
 *
 * Both replies leave as two MLLP frames in one write, QCK first: the analyzer reads the QCK as the
 * answer to its query and the DSR as the order download.
 *
 * BC-5380 (hematology), worklist inquiry `ORM^O01` with ORC-1 = `RF` and ORC-3 = the sample id
 * (`Invalid` when the barcode could not be read):
 *
 *   gateway → analyzer   ORR^O02   MSA|AA, PID, PV1, ORC|AF|<sample id>, OBR|1|<sample id>, and
 *                                  the run settings as OBX 08001 take mode, 08002 blood mode,
 *                                  08003 test mode (the profile's `hl7.worklist`, else the manual's
 *                                  example A / W / CBC); nothing known: ORR^O02 with MSA|AR alone
 *
 * Patient names and birth dates are not known to the gateway (orders carry the patient id only),
 * so those fields stay empty, as do the ones the manuals leave to the analyzer.
 */

/** What the analyzer asked for: a sample id, and for QRY^Q02 the QRD/QRF the DSR must echo. */
export type Hl7HostQuery =
  | { kind: 'qry-q02'; specimenId: string; /** QRD and QRF as received (raw text), echoed in the DSR. */ qrd: string; qrf?: string }
  | { kind: 'orm-worklist'; specimenId: string };

/** Why a query cannot be answered: the ERR of the negative acknowledgement. */
export interface HostQueryProblem {
  problem: AckError;
}

/**
 * The host query a message carries (QRY^Q02, or ORM^O01 with ORC-1 = RF), why it cannot be
 * answered, or undefined when the message is not a query.
 */
export function readHl7HostQuery(message: Hl7Message): Hl7HostQuery | HostQueryProblem | undefined {
  const h = message.header;
  if (h.messageCode === 'QRY' && h.triggerEvent === 'Q02') {
    const qrd = message.first('QRD');
    if (!qrd) return { problem: { code: 100, text: 'QRY^Q02 without a QRD segment', location: 'QRD' } };
    // QRD-8 "who subject filter": the sample barcode (the manual's example: 34567743).
    const specimenId = qrd.get(8);
    if (specimenId === '') return { problem: { code: 101, text: 'QRD-8 (the sample barcode) is empty', location: 'QRD^1^8' } };
    const qrf = message.first('QRF');
    return qrf ? { kind: 'qry-q02', specimenId, qrd: qrd.text, qrf: qrf.text } : { kind: 'qry-q02', specimenId, qrd: qrd.text };
  }
  const orc = h.messageCode === 'ORM' ? message.first('ORC') : undefined;
  if (orc && orc.get(1) === 'RF') {
    // ORC-3 (filler order number) carries the sample id the analyzer read.
    const specimenId = orc.get(3);
    if (specimenId === '') return { problem: { code: 101, text: 'ORC-3 (the sample id) is empty', location: 'ORC^1^3' } };
    return { kind: 'orm-worklist', specimenId };
  }
  return undefined;
}

/** BC-5380 run settings sent with a worklist answer (OBX 08001..08003). */
export interface WorklistModes {
  takeMode: string;
  bloodMode: string;
  testMode: string;
}

/** The manual's example answer (BC-5380 LIS protocol, App. C): autoloader, whole blood, CBC. */
export const DEFAULT_WORKLIST_MODES: Readonly<WorklistModes> = Object.freeze({ takeMode: 'A', bloodMode: 'W', testMode: 'CBC' });

export interface HostQueryAnswer {
  /** The analyzer's test numbers for the specimen (empty: nothing known, QAK NF / MSA AR). */
  tests: string[];
  /** The order the tests come from (patient id, priority, time), when one was found. */
  order?: OrderCreatedData;
  /** Sample type for DSP-26, when the LIS told us. */
  specimenType?: string;
  /** Run settings of a BC-5380 worklist answer (default DEFAULT_WORKLIST_MODES). */
  worklist?: WorklistModes;
}

/** DSP positions (1-based) the answer fills; the rest of 1..28 stay empty. */
const DSP_PATIENT_ID = 1;
const DSP_BARCODE = 21;
const DSP_SAMPLE_TIME = 23;
const DSP_STAT = 24;
const DSP_SAMPLE_TYPE = 26;
const DSP_FIELDS = 28;

/** An order priority that means "urgent" (LIS values S, STAT, A, ASAP). */
export function isStat(priority: string | undefined): boolean {
  return priority !== undefined && /^(s|stat|a|asap)$/i.test(priority.trim());
}

function hl7Time(iso: string | undefined): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? '' : hl7Timestamp(new Date(t));
}

/** The query's delimiters, and a value escaped for a field of the reply. */
function delimitersOf(header: MshHeader): { fs: string; comp: string; text: (value: string) => string } {
  const fs = header.fieldSeparator;
  const enc = header.encodingCharacters;
  return { fs, comp: enc[0] ?? '^', text: (value) => escapeText(value, fs, enc) };
}

/**
 * The reply messages answering `query` (each message's segments joined by CR, ending in CR), in
 * the order they are sent: QCK^Q02 and, when tests were found, DSR^Q03; or one ORR^O02.
 * `controlIds` gives each reply its own MSH-10.
 */
export function buildHostQueryReplies(header: MshHeader, query: Hl7HostQuery, answer: HostQueryAnswer, controlIds: () => string, now = new Date()): string[] {
  const fs = header.fieldSeparator;
  // To the analyzer (its MSH-3/4), from whom it addressed (its MSH-5/6; the BC-5380 manual's LIS
  // when it named no one); MSH-18 echoed after MSH-13..17 left empty, as the manuals show.
  const from = query.kind === 'orm-worklist' && header.receivingApplication === '' ? { ...header, receivingApplication: 'LIS' } : header;
  const msh = (type: string, trailing: string[]): string => [replyMsh(from, type, controlIds(), now), '', '', '', '', '', clean(header.charset) || 'ASCII', ...trailing].join(fs);
  return query.kind === 'qry-q02' ? qryReplies(header, query, answer, (type) => msh(type, ['', '', ''])) : [worklistReply(header, query, answer, (type) => msh(type, []))];
}

function qryReplies(header: MshHeader, query: Extract<Hl7HostQuery, { kind: 'qry-q02' }>, answer: HostQueryAnswer, msh: (type: string) => string): string[] {
  const { fs, comp, text } = delimitersOf(header);
  const found = answer.tests.length > 0;
  // MSA-6 and ERR-1: the manual's error code, 0 = no error.
  const acknowledged = [['MSA', 'AA', clean(header.controlId), 'Message accepted', '', '', '0', ''].join(fs), ['ERR', '0', ''].join(fs)];
  const qak = ['QAK', 'SR', found ? 'OK' : 'NF', ''].join(fs);
  const qck = [msh(`QCK${comp}Q02`), ...acknowledged, qak].join('\r') + '\r';
  if (!found) return [qck];
  const dsp = new Array<string>(DSP_FIELDS).fill('');
  const order = answer.order;
  dsp[DSP_PATIENT_ID - 1] = text(order?.patientId ?? '');
  dsp[DSP_BARCODE - 1] = text(query.specimenId);
  dsp[DSP_SAMPLE_TIME - 1] = hl7Time(order?.orderedAt);
  dsp[DSP_STAT - 1] = isStat(order?.priority) ? 'Y' : 'N';
  dsp[DSP_SAMPLE_TYPE - 1] = text(answer.specimenType ?? '');
  const lines = [...dsp, ...answer.tests.map((t) => text(t) + comp.repeat(3))].map((value, i) => ['DSP', String(i + 1), '', value, '', '', ''].join(fs));
  const dsr = [msh(`DSR${comp}Q03`), ...acknowledged, qak, clean(query.qrd), ...(query.qrf !== undefined ? [clean(query.qrf)] : []), ...lines, ['DSC', '', ''].join(fs)].join('\r') + '\r';
  return [qck, dsr];
}

function worklistReply(header: MshHeader, query: Extract<Hl7HostQuery, { kind: 'orm-worklist' }>, answer: HostQueryAnswer, msh: (type: string) => string): string {
  const { fs, comp, text } = delimitersOf(header);
  const type = `ORR${comp}O02`;
  const msa = (code: string): string => ['MSA', code, clean(header.controlId)].join(fs);
  // Nothing known for the sample (or "Invalid": the barcode was not read): AR alone, as the manual.
  if (answer.tests.length === 0) return [msh(type), msa('AR')].join('\r') + '\r';
  const sample = text(query.specimenId);
  const modes = answer.worklist ?? DEFAULT_WORKLIST_MODES;
  const setting = (n: number, code: string, name: string, value: string): string => ['OBX', String(n), 'IS', `${code}${comp}${name}${comp}99MRC`, '', text(value), '', '', '', '', '', 'F'].join(fs);
  return (
    [
      msh(type),
      msa('AA'),
      ['PID', '1', '', text(answer.order?.patientId ?? '') + comp.repeat(3)].join(fs),
      ['PV1', '1'].join(fs),
      // ORC-2 and OBR-2 must equal the sample id (the manual).
      ['ORC', 'AF', sample, '', '', ''].join(fs),
      // OBR-6 requested date/time: when the LIS ordered it.
      ['OBR', '1', sample, '', '', '', hl7Time(answer.order?.orderedAt)].join(fs),
      setting(1, '08001', 'Take Mode', modes.takeMode),
      setting(2, '08002', 'Blood Mode', modes.bloodMode),
      setting(3, '08003', 'Test Mode', modes.testMode),
    ].join('\r') + '\r'
  );
}
