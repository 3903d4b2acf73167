import { describe, expect, it } from 'vitest';
import { decodeText, encodeText, type Charset } from '../../gateway/src/hl7/charset.ts';

/**
 * A reply copies text the gateway decoded from the message (MSH-3..6, MSH-10): encoded back in the
 * same charset it must be the sender's bytes again, for every ISO 8859 part MSH-18 may name.
 * Before, every charset but UTF-8 was encoded as Latin-1 (Ł of 8859-2 came back as 'A').
 */
describe('encodeText gives back the bytes decodeText read', () => {
  const parts: Charset[] = ['ascii', 'latin1', 'utf8', 'iso-8859-2', 'iso-8859-3', 'iso-8859-4', 'iso-8859-5', 'iso-8859-6', 'iso-8859-7', 'iso-8859-8', 'iso-8859-9', 'iso-8859-15'];
  for (const charset of parts) {
    it(`${charset}: every byte the charset defines`, () => {
      const bytes = charset === 'utf8' ? Buffer.from('Łódź Kraków €µ', 'utf8') : Buffer.from(Array.from({ length: 256 }, (_, b) => b).filter((b) => !decodeText(Buffer.of(b), charset).includes('\ufffd')));
      expect(bytes.length).toBeGreaterThan(charset === 'utf8' ? 10 : 128);
      expect(encodeText(decodeText(bytes, charset), charset).equals(bytes)).toBe(true);
    });
  }

  it('a character the charset cannot hold is written ?', () => {
    expect(encodeText('Ł€', 'iso-8859-2').toString('latin1')).toBe('\xa3?');
  });
});
