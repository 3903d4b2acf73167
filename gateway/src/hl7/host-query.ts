import type { OrderCreatedData } from '../events/types.ts';
import { escapeText, hl7Timestamp, type AckError } from './ack.ts';
import type { Hl7Message } from './message.ts';
import type { MshHeader } from './msh.ts';

/**
 * Host query over HL7, in the Mindray BS-series dialect (HL7 v2.3.1, protocols.md §3 "Analyzer
 * HL7 dialects"; the vendor's example messages are in ../shared/corpus/hl7, `*_mindray-bs200_*`):
 *
 *   analyzer → gateway   QRY^Q02   QRD-8 = the specimen barcode it scanned
 *   gateway → analyzer   QCK^Q02   MSA|AA … QAK|SR|OK  (or QAK|SR|NF: nothing known, nothing follows)
 *   gateway → analyzer   DSR^Q03   MSA, ERR, QAK, the query's QRD and QRF, DSP|1 … DSP|28 sample
 *                                  and patient fields by position, DSP|29… one analyzer test number
 *                                  each, DSC
 *   analyzer → gateway   ACK^Q03   stored; an acknowledgement is never acknowledged
 *
 * Both replies leave as two MLLP frames in one write, QCK first: the analyzer reads the QCK as the
 * answer to its query and the DSR as the order download. Patient names and birth dates are not
 * known to the gateway (orders carry the patient id only), so their DSP lines stay empty, as do
 * the lines the manual leaves to the analyzer (sample position, volume).
 */

/** What the analyzer asked: the barcode and the QRD/QRF segments the DSR must echo. */
export interface Hl7HostQuery {
  specimenId: string;
  /** QRD and QRF as received (raw field text), echoed in the DSR. */
  qrd: string;
  qrf?: string;
}

/** Why a query cannot be answered: the ERR of the negative acknowledgement. */
export interface HostQueryProblem {
  problem: AckError;
}

/** The query of a QRY^Q02, or why it cannot be answered. */
export function readHl7HostQuery(message: Hl7Message): Hl7HostQuery | HostQueryProblem {
  const qrd = message.first('QRD');
  if (!qrd) return { problem: { code: 100, text: 'QRY^Q02 without a QRD segment', location: 'QRD' } };
  // QRD-8 "who subject filter": the sample barcode (the manual's example: 34567743).
  const specimenId = qrd.get(8);
  if (specimenId === '') return { problem: { code: 101, text: 'QRD-8 (the sample barcode) is empty', location: 'QRD^1^8' } };
  const qrf = message.first('QRF');
  return qrf ? { specimenId, qrd: qrd.text, qrf: qrf.text } : { specimenId, qrd: qrd.text };
}

export interface HostQueryAnswer {
  /** The analyzer's test numbers for the specimen (empty: nothing known, QAK NF). */
  tests: string[];
  /** The order the tests come from (patient id, priority, time), when one was found. */
  order?: OrderCreatedData;
  /** Sample type for DSP-26, when the LIS told us. */
  specimenType?: string;
}

/** DSP positions (1-based) the answer fills; the rest of 1..28 stay empty. */
const DSP_PATIENT_ID = 1;
const DSP_BARCODE = 21;
const DSP_SAMPLE_TIME = 23;
const DSP_STAT = 24;
const DSP_SAMPLE_TYPE = 26;
const DSP_FIELDS = 28;

function isStat(priority: string | undefined): boolean {
  return priority !== undefined && /^(s|stat|a|asap)$/i.test(priority.trim());
}

function hl7Time(iso: string | undefined): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? '' : hl7Timestamp(new Date(t));
}

/**
 * The QCK^Q02 and, when tests were found, the DSR^Q03 segments answering `query` (each message's
 * segments joined by CR, ending in CR). `controlIds` gives each reply its own MSH-10.
 */
export function buildHostQueryReplies(header: MshHeader, query: Hl7HostQuery, answer: HostQueryAnswer, controlIds: () => string, now = new Date()): string[] {
  const fs = header.fieldSeparator;
  const enc = header.encodingCharacters;
  const comp = enc[0] ?? '^';
  const text = (value: string): string => escapeText(value, fs, enc);
  // eslint-disable-next-line no-control-regex
  const clean = (value: string): string => value.replace(/[\x00-\x1f\x7f]/g, '?');
  const found = answer.tests.length > 0;
  const msh = (type: string): string =>
    ['MSH', enc, clean(header.receivingApplication), clean(header.receivingFacility), clean(header.sendingApplication), clean(header.sendingFacility), hl7Timestamp(now), '', type, controlIds(), clean(header.processingId) || 'P', clean(header.version) || '2.3.1', '', '', '', '', '', clean(header.charset) || 'ASCII', '', '', ''].join(fs);
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
