import { describe, expect, it } from 'vitest';
import { buildAck, compactId, escapeText } from '../../gateway/src/hl7/ack.ts';
import { readMsh } from '../../gateway/src/hl7/msh.ts';
import { ids } from '../../gateway/src/ids.ts';

const header = (msh: string) => readMsh(msh).header;
const segs = (ack: string) => ack.split('\r').filter(Boolean);

describe('buildAck', () => {
  const h25 = header('MSH|^~\\&|LIS|LABFAC|GW|GWFAC|20240101||ORU^R01^ORU_R01|CTRL-9|P|2.5.1|||AL|NE||UNICODE UTF-8');

  it('swaps sender and receiver, echoes MSH-10 in MSA-2, copies MSH-11/12/18', () => {
    const ack = buildAck({ header: h25, code: 'AA', controlId: 'X1', now: new Date(2024, 0, 2, 3, 4, 5) });
    const [msh, msa] = segs(ack).map((s) => s.split('|'));
    expect(msh?.slice(0, 12)).toEqual(['MSH', '^~\\&', 'GW', 'GWFAC', 'LIS', 'LABFAC', '20240102030405', '', 'ACK^R01^ACK', 'X1', 'P', '2.5.1']);
    expect(msh?.[17]).toBe('UNICODE UTF-8');
    expect(msa).toEqual(['MSA', 'AA', 'CTRL-9']);
    expect(segs(ack)).toHaveLength(2);
  });

  it('reuses the sender\'s separators', () => {
    const h = header('MSH#*~\\&#LIS#L#GW#G#2024##ORU*R01#C7#P#2.4');
    const ack = buildAck({ header: h, code: 'AA', controlId: 'Y' });
    expect(ack.startsWith('MSH#*~\\&#GW#G#LIS#L#')).toBe(true);
    expect(segs(ack)[0]).toContain('#ACK*R01*ACK#Y#P#2.4');
    expect(segs(ack)[1]).toBe('MSA#AA#C7');
  });

  it('v2.5+: ERR-2 location, ERR-3 table 0357 code, ERR-4 severity, ERR-8 text; MSA-3 text', () => {
    const ack = buildAck({ header: h25, code: 'AR', controlId: 'Z', error: { code: 200, text: 'type XYZ not supported', location: 'MSH^1^9' } });
    const [, msa, err] = segs(ack).map((s) => s.split('|'));
    expect(msa).toEqual(['MSA', 'AR', 'CTRL-9', 'type XYZ not supported']);
    expect(err).toEqual(['ERR', '', 'MSH^1^9', '200^Unsupported message type^HL70357', 'E', '', '', '', 'type XYZ not supported']);
  });

  it('before v2.5: the code goes in ERR-1 as an ELD with subcomponents', () => {
    const ack = buildAck({ header: header('MSH|^~\\&|A|B|C|D|2024||ORM^O01|Q1|P|2.3'), code: 'AE', controlId: 'Z', error: { code: 207, text: 'store unavailable' } });
    expect(segs(ack)[0]).toContain('|ACK^O01|Z|P|2.3');
    expect(segs(ack)[2]).toBe('ERR|^^^207&Application internal error&HL70357');
  });

  it('v2.1 without trigger: MSH-9 is ACK', () => {
    const ack = buildAck({ header: header('MSH|^~\\&|A|B|C|D|2024||ACK|Q1|P|2.1'), code: 'AA', controlId: 'Z' });
    expect(segs(ack)[0]).toContain('||ACK|Z|P|2.1');
  });

  // Regression (found by hl7-fuzz): a VT quoted from the rejected input into ERR-8 split the
  // reply's own MLLP frame, so the sender never saw a complete ACK.
  it('never copies control characters (VT, FS, …) into the ACK', () => {
    const h = header('MSH|^~\\&|LIS\x0b|LAB|GW|LAB|2024||ORU^R01|ID\x1c7|P|2.5');
    const ack = buildAck({ header: h, code: 'AR', controlId: 'Z', error: { code: 100, text: 'bad \x0b segment', location: 'M\x0bS^1' } });
    expect(ack).not.toMatch(/[\x00-\x0c\x0e-\x1f]/);
    expect(segs(ack)[1]).toBe('MSA|AR|ID?7|bad ? segment');
  });

  it('escapes delimiters in error text', () => {
    expect(escapeText('a|b^c~d\\e&f', '|', '^~\\&')).toBe('a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f');
  });

  it('control ids are unique and fit MSH-10 (20 characters before v2.7)', () => {
    const many = new Set(Array.from({ length: 10_000 }, () => compactId(ids.next())));
    expect(many.size).toBe(10_000);
    for (const id of many) expect(id.length).toBeLessThanOrEqual(20);
  });
});

describe('readMsh', () => {
  it('rejects an invalid MSH-2 but still reads MSH-10', () => {
    const r = readMsh('MSH|^^|A|B|C|D|2024||ORU^R01|E1|P|2.5');
    expect(r.problem?.code).toBe(102);
    expect(r.header.controlId).toBe('E1');
  });
  it('requires MSH-9 and MSH-10', () => {
    expect(readMsh('MSH|^~\\&|A|B|C|D|2024||ORU^R01||P|2.5').problem?.code).toBe(101);
    expect(readMsh('MSH|^~\\&|A|B|C|D|2024|||X|P|2.5').problem?.location).toBe('MSH^1^9');
  });
  it('reads MSH-15/16 and the first repetition of MSH-18', () => {
    const h = readMsh('MSH|^~\\&|A|B|C|D|2024||ORU^R01|X|P|2.5|||al|er||8859/1~UNICODE UTF-8').header;
    expect([h.acceptAckType, h.appAckType, h.charset]).toEqual(['AL', 'ER', '8859/1']);
  });
});
