import { describe, expect, it } from 'vitest';
import { analyseBlock, splitSegments } from '../../gateway/src/hl7/block.ts';
import { charsetFromMsh18, chooseCharset, decodeText, encodeText, type Charset } from '../../gateway/src/hl7/charset.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';

const names = (text: string) => splitSegments(Buffer.from(text, 'latin1')).map((s) => text.slice(s.start, s.end));

describe('segment terminators', () => {
  it('accepts CR, LF and CRLF, and skips blank lines', () => {
    expect(names('MSH|a\rPID|b\r')).toEqual(['MSH|a', 'PID|b']);
    expect(names('MSH|a\nPID|b\n')).toEqual(['MSH|a', 'PID|b']);
    expect(names('MSH|a\r\nPID|b\r\n\r\nOBX|c')).toEqual(['MSH|a', 'PID|b', 'OBX|c']);
  });
  it('ignores a UTF-8 byte-order mark before MSH', () => {
    const raw = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('MSH|^~\\&|A\rPID|1\r')]);
    const b = analyseBlock(raw);
    expect(b.stray).toEqual([]);
    expect(b.messages[0]?.segments.map((s) => s.name)).toEqual(['MSH', 'PID']);
  });
  it('keeps a literal newline inside a field (not followed by a segment id)', () => {
    expect(names('MSH|a\rNTE|1||first line\nsecond line\rOBX|1')).toEqual(['MSH|a', 'NTE|1||first line\nsecond line', 'OBX|1']);
  });
});

describe('batches', () => {
  it('splits BHS/MSH/MSH/BTS into messages with their own byte ranges', () => {
    const text = 'BHS|^~\\&|A\rMSH|^~\\&|1\rPID|x\rMSH|^~\\&|2\rBTS|2\r';
    const b = analyseBlock(Buffer.from(text));
    expect(b.isBatch).toBe(true);
    expect(b.messages.map((m) => text.slice(m.start, m.end))).toEqual(['MSH|^~\\&|1\rPID|x\r', 'MSH|^~\\&|2\r']);
    expect(b.envelope.map((s) => s.name)).toEqual(['BHS', 'BTS']);
  });
});

describe('charsets (MSH-18)', () => {
  it('maps table 0211 values and falls back to the default', () => {
    expect(charsetFromMsh18('UNICODE UTF-8', 'ascii').charset).toBe('utf8');
    expect(charsetFromMsh18('8859/1', 'ascii').charset).toBe('latin1');
    expect(charsetFromMsh18('', 'latin1').charset).toBe('latin1');
    expect(charsetFromMsh18('KLINGON', 'ascii').note).toMatch(/not a supported character set/);
  });
  it('decodes 8859/1 bytes as Latin-1 and keeps UTF-8 declared as Latin-1 readable', () => {
    const latin = Buffer.from('Testpatiënt', 'latin1');
    expect(decodeText(latin, chooseCharset(latin, { charset: 'latin1' }).charset)).toBe('Testpatiënt');
    const utf8 = Buffer.from('Testpatiënt', 'utf8');
    const chosen = chooseCharset(utf8, { charset: 'latin1' });
    expect(chosen.charset).toBe('utf8');
    expect(decodeText(utf8, chosen.charset)).toBe('Testpatiënt');
  });
  it('decodes the whole message in its charset before parsing', () => {
    const raw = Buffer.from('MSH|^~\\&|cobas®|LAB|GW|LAB|2024||ORU^R01|U1|P|2.5||||||UNICODE UTF-8\rOBX|1|ST|X^Größe||weiß\r', 'utf8');
    const b = analyseBlock(raw);
    const r = readInbound(raw, b.messages[0]!, 'ascii');
    expect(r.header.sendingApplication).toBe('cobas®');
    expect(r.message?.first('OBX')?.get(3, 2)).toBe('Größe');
    expect(r.message?.first('OBX')?.get(5)).toBe('weiß');
  });
  it('reads UTF-8 under another ISO 8859 label only when it spells that part\'s characters or unit signs', () => {
    const utf8 = (text: string, charset: Charset) => chooseCharset(Buffer.from(text, 'utf8'), { charset }).charset;
    expect(utf8('Köln 80 µmol/L ±2 °C', 'iso-8859-15')).toBe('utf8');
    expect(utf8('Łódź 80 µmol/L', 'iso-8859-2')).toBe('utf8');
    expect(utf8('Иванов 5 ×10*9/L', 'iso-8859-5')).toBe('utf8');
    // Real texts of the part that are valid UTF-8 by accident keep their part.
    const real = (text: string, charset: Charset) => {
      const bytes = encodeText(text, charset);
      expect(bytes.toString('utf8')).not.toContain('\ufffd');
      return chooseCharset(bytes, { charset }).charset;
    };
    expect(real('GÓŁKOWSKA^RÓŻA', 'iso-8859-2')).toBe('iso-8859-2');
    expect(real('CÂŞTIG', 'iso-8859-2')).toBe('iso-8859-2');
    expect(real('ΣΆ', 'iso-8859-7')).toBe('iso-8859-7');
  });
  it('reads 8859-15 with the euro sign', () => {
    const raw = Buffer.from([...Buffer.from('MSH|^~\\&|A|B|C|D|2024||ORU^R01|E|P|2.5||||||8859/15\rNTE|1||'), 0xa4, 0x0d]);
    const r = readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii');
    expect(r.message?.first('NTE')?.get(3)).toBe('€');
  });
});
