/**
 * The Mindray BS host query answer (hl7/host-query.ts) against the vendor's own example messages:
 * the QRY^Q02 the analyzer sends, and the QCK^Q02 (found / not found) and DSR^Q03 the manual shows
 * the LIS answering with. Timestamps and our control ids differ by nature; everything else is
 * compared line by line.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { buildHostQueryReplies, readHl7HostQuery, type Hl7HostQuery } from '../../gateway/src/hl7/host-query.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import type { Hl7Message } from '../../gateway/src/hl7/message.ts';
import { unwrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';

const corpus = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../shared/corpus/hl7');
const load = (f: string): Buffer => unwrapFrame(readFileSync(path.join(corpus, f)));
const lines = (text: string): string[] => text.split('\r').filter((l) => l !== '');
/** MSH-7 (time) and MSH-10 (control id) blanked: the only fields that differ by nature. */
const comparable = (line: string): string => (line.startsWith('MSH|') ? line.split('|').map((f, i) => (i === 6 || i === 9 ? '*' : f)).join('|') : line);

function parse(raw: Buffer): Hl7Message {
  const block = analyseBlock(raw);
  const read = readInbound(raw, block.messages[0]!, 'latin1');
  if (!read.message) throw new Error(`did not parse: ${JSON.stringify(read.problem)}`);
  return read.message;
}

const qry = parse(load('qry_q02_mindray-bs200_host-query_vendor-manual.mllp'));
let n = 0;
const ids = (): string => `GW${++n}`;

describe('Mindray BS host query (QRY^Q02 → QCK^Q02 + DSR^Q03)', () => {
  it('reads the barcode from QRD-8 and keeps QRD and QRF for the echo', () => {
    const query = readHl7HostQuery(qry) as Hl7HostQuery;
    expect(query.specimenId).toBe('34567743');
    expect(query.qrd).toBe('QRD|20070723170707|R|D|1|||RD|34567743|OTH|||T|');
    expect(query.qrf).toBe('QRF|BS-200|20070723170749|20070723170749|||RCT|COR|ALL||');
  });

  it('a query without QRD or without a barcode is a problem with the ERR it needs', () => {
    const noQrd = parse(Buffer.from('MSH|^~\\&|Manufacturer|Model|||20070723170707||QRY^Q02|7|P|2.3.1||||||ASCII|||\r'));
    expect(readHl7HostQuery(noQrd)).toEqual({ problem: { code: 100, text: 'QRY^Q02 without a QRD segment', location: 'QRD' } });
    const noBarcode = parse(Buffer.from('MSH|^~\\&|Manufacturer|Model|||20070723170707||QRY^Q02|8|P|2.3.1||||||ASCII|||\rQRD|20070723170707|R|D|1|||RD||OTH|||T|\r'));
    expect(readHl7HostQuery(noBarcode)).toMatchObject({ problem: { code: 101, location: 'QRD^1^8' } });
  });

  it('nothing known: the QCK of the manual with QAK NF, and no DSR', () => {
    const replies = buildHostQueryReplies(qry.header, readHl7HostQuery(qry) as Hl7HostQuery, { tests: [] }, ids);
    expect(replies).toHaveLength(1);
    expect(lines(replies[0]!).map(comparable)).toEqual(lines(load('qck_q02_mindray-bs200_notfound_vendor-manual.mllp').toString('latin1')).map(comparable));
  });

  it('orders known: the QCK with QAK OK, then a DSR laid out as the manual\'s, test numbers from DSP-29 on', () => {
    const query = readHl7HostQuery(qry) as Hl7HostQuery;
    const replies = buildHostQueryReplies(qry.header, query, { tests: ['1', '3'], order: { accession: '34567743', orderingClientRef: 'C', patientId: '123', priority: 'R', tests: [], orderedAt: '2007-07-23T16:00:00Z' }, specimenType: 'urine' }, ids, new Date('2007-07-23T17:07:07Z'));
    expect(replies).toHaveLength(2);
    expect(lines(replies[0]!).map(comparable)).toEqual(lines(load('qck_q02_mindray-bs200_found_vendor-manual.mllp').toString('latin1')).map(comparable));

    const ours = lines(replies[1]!);
    const manual = lines(load('dsr_q03_mindray-bs200_order-download_vendor-manual.mllp').toString('latin1'));
    expect(ours.map((l) => l.slice(0, 3))).toEqual(manual.map((l) => l.slice(0, 3)));
    expect(ours.length).toBe(manual.length);
    // Header, MSA, ERR, QAK and the echoed QRD/QRF are the manual's.
    expect(ours.slice(0, 6).map(comparable)).toEqual(manual.slice(0, 6).map(comparable));
    // The DSP lines the gateway knows are the manual's, position by position: patient id (1),
    // barcode (21), STAT flag (24), sample type (26), the test numbers (29, 30); the DSC closes.
    for (const position of [1, 21, 24, 26, 29, 30]) expect(ours[5 + position], `DSP-${position}`).toBe(manual[5 + position]);
    expect(ours.at(-1)).toBe(manual.at(-1));
    // Sample time from the order (time zone aside), and names, birth date, sex, doctor and
    // department left empty: the gateway never holds them.
    expect(ours[5 + 23]).toMatch(/^DSP\|23\|\|\d{14}\|\|\|$/);
    for (const position of [3, 4, 5, 27, 28]) expect(ours[5 + position]).toBe(`DSP|${position}|||||`);
    // Every reply has its own control id; the MSA names the query's.
    expect(new Set([replies[0]!, replies[1]!].map((r) => r.split('|')[9])).size).toBe(2);
    expect(ours[1]).toBe('MSA|AA|1|Message accepted|||0|');
  });

  it('a STAT order is flagged Y, and values with delimiters are escaped, never break the DSP line', () => {
    const query: Hl7HostQuery = { specimenId: 'A|B^C', qrd: 'QRD|20070723170707|R|D|1|||RD|A\\F\\B\\S\\C|OTH|||T|' };
    const [, dsr] = buildHostQueryReplies(qry.header, query, { tests: ['7'], order: { accession: 'A|B^C', orderingClientRef: 'C', patientId: 'P&1', priority: 'STAT', tests: [] } }, ids);
    const dsp = lines(dsr!).filter((l) => l.startsWith('DSP|'));
    expect(dsp[0]).toBe('DSP|1||P\\T\\1|||');
    expect(dsp[20]).toBe('DSP|21||A\\F\\B\\S\\C|||');
    expect(dsp[23]).toBe('DSP|24||Y|||');
    expect(dsp[28]).toBe('DSP|29||7^^^|||');
    expect(dsp).toHaveLength(29);
    for (const l of dsp) expect(l.split('|')).toHaveLength(7);
  });
});
