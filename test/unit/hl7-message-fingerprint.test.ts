/**
 * messageFingerprints (msh.ts): a message's ends do not count, and a message that ends with one CR
 * after its last segment and starts with its MSH keeps the fingerprint the releases before gave
 * it (contentFingerprint), so the keys they stored still match.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { contentFingerprint, messageFingerprints } from '../../gateway/src/hl7/msh.ts';
import { unwrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { corpusDir } from '../fixtures/hl7/helpers.ts';

/** Every corpus message with one CR after its last segment (LF and CRLF read as CR). */
const corpus = readdirSync(corpusDir)
  .filter((f) => f.endsWith('.hl7') || f.endsWith('.mllp'))
  .sort()
  .map((f) => unwrapFrame(readFileSync(path.join(corpusDir, f))).toString('latin1').replace(/\r?\n/g, '\r').replace(/[\r \t]*$/, '\r'))
  .filter((t) => t.startsWith('MSH'));

const ends: Array<[string, (t: string) => string]> = [
  ['no final CR', (t) => t.slice(0, -1)],
  ['an empty line after it', (t) => `${t}\r`],
  ['CRLF and an empty line', (t) => `${t.replaceAll('\r', '\r\n')}\r\n`],
  ['LF, no final LF', (t) => t.replaceAll('\r', '\n').slice(0, -1)],
  ['a line of spaces and a tab after it', (t) => `${t}  \t\r`],
  ['a byte-order mark', (t) => `\u00ef\u00bb\u00bf${t}`],
  ['blank lines before the MSH', (t) => `\r\n\r\n${t}`],
];

describe('messageFingerprints', () => {
  it('a message ending with one CR keeps the fingerprint of the releases before; earlier: the ones they gave it from a file', () => {
    expect(corpus.length).toBeGreaterThan(10);
    for (const text of corpus) {
      const raw = Buffer.from(text, 'latin1');
      // What the releases before made of it without its final CR, and with an empty line after it.
      const fromFile = [text.slice(0, -1), `${text}\r`].map((t) => contentFingerprint(Buffer.from(t, 'latin1')));
      expect(messageFingerprints(raw)).toEqual({ fingerprint: contentFingerprint(raw), earlier: fromFile });
    }
  });

  for (const [name, vary] of ends) {
    it(`${name}: the same fingerprint, and the one of the releases before beside it`, () => {
      for (const text of corpus) {
        const raw = Buffer.from(vary(text), 'latin1');
        const r = messageFingerprints(raw);
        expect(r.fingerprint).toBe(contentFingerprint(Buffer.from(text, 'latin1')));
        expect(r.legacy).toBe(contentFingerprint(raw));
        expect(r.earlier[0]).toBe(r.legacy);
      }
    });
  }

  it('outside the upgrade window: one hash for the usual form; another form keeps only the key the releases before gave it', () => {
    for (const text of corpus) {
      expect(messageFingerprints(Buffer.from(text, 'latin1'), false)).toEqual({ fingerprint: contentFingerprint(Buffer.from(text, 'latin1')), earlier: [] });
      for (const [, vary] of ends) {
        const raw = Buffer.from(vary(text), 'latin1');
        expect(messageFingerprints(raw, false)).toEqual({ fingerprint: contentFingerprint(Buffer.from(text, 'latin1')), legacy: contentFingerprint(raw), earlier: [contentFingerprint(raw)] });
      }
    }
  });

  it('MSH-7 is left out also after a byte-order mark', () => {
    const a = 'MSH|^~\\&|LIS|LAB|GW|LAB|20240301093000||ORU^R01|C1|P|2.5.1\rPID|1||M1\r';
    const b = `\u00ef\u00bb\u00bf${a.replace('20240301093000', '20240301094500')}`;
    expect(messageFingerprints(Buffer.from(b, 'latin1')).fingerprint).toBe(contentFingerprint(Buffer.from(a, 'latin1')));
  });

  it('content still counts: a space ending the last segment, another value', () => {
    const a = 'MSH|^~\\&|LIS|LAB|GW|LAB|20240301093000||ORU^R01|C1|P|2.5.1\rOBX|1|NM|GLU||5.4\r';
    const fp = (t: string): string => messageFingerprints(Buffer.from(t, 'latin1')).fingerprint;
    expect(fp(a.replace('5.4\r', '5.4 \r'))).not.toBe(fp(a));
    expect(fp(a.replace('5.4\r', '5.4 '))).toBe(fp(a.replace('5.4\r', '5.4 \r')));
    expect(fp(a.replace('5.4', '5.5'))).not.toBe(fp(a));
  });
});
