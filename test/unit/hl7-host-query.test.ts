/**
 * The Mindray host query answers (hl7/host-query.ts) against the vendors' own example messages:
 * the BS series' QRY^Q02 and the QCK^Q02 (found / not found) and DSR^Q03 its manual shows the LIS
 * answering with; the BC-5380's worklist inquiry (ORM^O01, ORC-1 = RF) and its ORR^O02 answers.
 * Timestamps and our control ids differ by nature; everything else is compared line by line.
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
    expect(readHl7HostQuery(qry)).toEqual({
      kind: 'qry-q02',
      specimenId: '34567743',
      qrd: 'QRD|20070723170707|R|D|1|||RD|34567743|OTH|||T|',
      qrf: 'QRF|BS-200|20070723170749|20070723170749|||RCT|COR|ALL||',
    });
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
    const query: Hl7HostQuery = { kind: 'qry-q02', specimenId: 'A|B^C', qrd: 'QRD|20070723170707|R|D|1|||RD|A\\F\\B\\S\\C|OTH|||T|' };
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

describe('Mindray BC-5380 worklist inquiry (ORM^O01 with ORC-1 = RF → ORR^O02)', () => {
  const inquiry = parse(readFileSync(path.join(corpus, 'orm_o01_mindray-bc5380_worklist-query_vendor-manual.hl7')));
  const manual = (f: string): string[] => lines(readFileSync(path.join(corpus, f)).toString('utf8'));
  /** As `comparable`, and MSH-5/6 blanked: the manual leaves them empty, we address the analyzer. */
  const sameAs = (line: string): string => comparable(line.startsWith('MSH|') ? line.split('|').map((f, i) => (i === 4 || i === 5 ? '' : f)).join('|') : line);

  it('reads the sample id from ORC-3; an LIS order (ORC-1 = NW) and other messages are not queries', () => {
    expect(readHl7HostQuery(inquiry)).toEqual({ kind: 'orm-worklist', specimenId: 'SampleID1' });
    const order = parse(Buffer.from('MSH|^~\\&|LIS|LAB|GW|LAB|20261125101500||ORM^O01|7|P|2.5\rORC|NW|ACC-1||ACC-1|SC\rOBR|1|ACC-1||WBC^WBC^L\r'));
    expect(readHl7HostQuery(order)).toBeUndefined();
    expect(readHl7HostQuery(parse(load('oru_r01_mindray-bs200_patient-result_vendor-manual.mllp')))).toBeUndefined();
    const blank = parse(Buffer.from('MSH|^~\\&|BC-5380|Mindray|||20081120174836||ORM^O01|5|P|2.3.1||||||UNICODE\rORC|RF||||IP\r'));
    expect(readHl7HostQuery(blank)).toMatchObject({ problem: { code: 101, location: 'ORC^1^3' } });
  });

  it('an order known: the ORR^O02 of the manual (AF, the sample id in ORC-2 and OBR-2, the run settings)', () => {
    const [orr, more] = buildHostQueryReplies(inquiry.header, { kind: 'orm-worklist', specimenId: 'SampleID1' }, { tests: ['6690-2'], order: { accession: 'SampleID1', orderingClientRef: 'C', patientId: 'ChartNo', tests: [], orderedAt: '2006-05-06T10:00:00' } }, ids);
    expect(more).toBeUndefined();
    const ours = lines(orr!);
    const theirs = manual('orr_o02_mindray-bc5380_worklist-found_vendor-manual.hl7');
    expect(sameAs(ours[0]!)).toBe(sameAs(theirs[0]!));
    expect(ours[0]!.split('|').slice(2, 6)).toEqual(['LIS', '', 'BC-5380', 'Mindray']);
    expect(ours[1]).toBe('MSA|AA|4');
    expect(ours[2]).toBe('PID|1||ChartNo^^^');
    expect(ours).toContain('ORC|AF|SampleID1|||');
    expect(ours.find((l) => l.startsWith('OBR|'))).toBe('OBR|1|SampleID1||||20060506100000');
    // The three run settings are the manual's lines, byte for byte.
    expect(ours.filter((l) => l.startsWith('OBX|'))).toEqual(theirs.filter((l) => /^OBX\|[123]\|/.test(l)));
  });

  it('the profile\'s run settings replace the manual\'s example', () => {
    const [orr] = buildHostQueryReplies(inquiry.header, { kind: 'orm-worklist', specimenId: 'S-2' }, { tests: ['6690-2'], worklist: { takeMode: 'O', bloodMode: 'P', testMode: 'CBC+DIFF' } }, ids);
    expect(lines(orr!).filter((l) => l.startsWith('OBX|')).map((l) => l.split('|')[5])).toEqual(['O', 'P', 'CBC+DIFF']);
  });

  it('nothing known (or the barcode read as "Invalid"): ORR^O02 with MSA|AR alone, as the manual', () => {
    const [orr] = buildHostQueryReplies({ ...inquiry.header, controlId: '9' }, { kind: 'orm-worklist', specimenId: 'Invalid' }, { tests: [] }, ids);
    expect(lines(orr!).map(sameAs)).toEqual(manual('orr_o02_mindray-bc5380_worklist-notfound-AR_vendor-manual.hl7').map(sameAs));
  });
});
