import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compactId, hl7Timestamp } from '../../gateway/src/hl7/ack.ts';
import { analyseBlock, splitSegments } from '../../gateway/src/hl7/block.ts';
import { hl7TimeToIso, isoTime } from '../../gateway/src/hl7/hl7-time.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import { contentFingerprint, readMsh, versionAtLeast } from '../../gateway/src/hl7/msh.ts';
import { trimmed, trimmedUpper, upper } from '../../gateway/src/hl7/text.ts';
import { unwrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { corpusDir } from '../fixtures/hl7/helpers.ts';
import { prng } from '../fixtures/prng.ts';

/**
 * The intake's hot path reads HL7 with hand-written scans instead of split/regex/Date built-ins.
 * Each is checked here against the straightforward version it replaces, on the corpus and on
 * generated edge cases: same results, value for value.
 */
const corpus = readdirSync(corpusDir)
  .filter((f) => f.endsWith('.hl7') || f.endsWith('.mllp'))
  .sort()
  .map((f) => unwrapFrame(readFileSync(path.join(corpusDir, f))));

/** Corpus messages as sent, with LF and CRLF terminators, and with MSH-7 removed. */
const variants: Buffer[] = corpus.flatMap((c) => {
  const text = c.toString('latin1');
  return [c, Buffer.from(text.replace(/\r/g, '\n'), 'latin1'), Buffer.from(text.replace(/\r/g, '\r\n'), 'latin1'), Buffer.from(text.replace(/^(MSH(?:\|[^|\r]*){5}\|)[^|\r]*/, '$1'), 'latin1')];
});

describe('contentFingerprint', () => {
  /**
   * The definition: SHA-256 of the Latin-1 text (as UTF-8) with MSH-7 emptied and LF / CRLF read
   * as CR, first 16 hex digits.
   */
  function reference(raw: Buffer): string {
    const latin1 = raw.toString('latin1');
    const text = latin1.includes('\n') ? latin1.replace(/\r?\n/g, '\r') : latin1;
    const end = text.search(/[\r\n]/);
    const msh = end === -1 ? text : text.slice(0, end);
    const sep = msh[3] ?? '|';
    const fields = msh.split(sep);
    if (fields[0] === 'MSH' && fields.length > 6) fields[6] = '';
    return createHash('sha256')
      .update(fields.join(sep))
      .update(end === -1 ? '' : text.slice(end))
      .digest('hex')
      .slice(0, 16);
  }

  it('keeps the values stored dedup and event keys were made with', () => {
    // Pinned: a change here would split stored messages from their resends.
    const a = Buffer.from('MSH|^~\\&|LIS|LAB|GW|LAB|20240301093000||ORU^R01|C1|P|2.5.1\rPID|1||M1\r', 'latin1');
    const b = Buffer.from('MSH|^~\\&|LIS|LAB|GW|LAB|20250101000000||ORU^R01|C1|P|2.5.1\rPID|1||M1\r', 'latin1');
    const c = Buffer.from('MSH|^~\\&|LIS|LAB|GW|LAB|20240301093000||ADT^A01|C1|P|2.5|||||||8859/1\rPID|1||M1^^^H\xe9l\xe8ne\r', 'latin1');
    expect(contentFingerprint(a)).toBe('a1ec9cfebf7b0e69');
    expect(contentFingerprint(b)).toBe('a1ec9cfebf7b0e69');
    expect(contentFingerprint(c)).toBe('9277e0ed76ef1ade');
  });

  it('a resend with LF or CRLF segment ends is the same message as its CR original', () => {
    const cr = 'MSH|^~\\&|LIS|LAB|GW|LAB|20240301093000||ORU^R01|C1|P|2.5.1\rPID|1||M1\rOBX|1|NM|GLU||5.4\r';
    const lf = cr.replace(/\r/g, '\n');
    const crlf = cr.replace(/\r/g, '\r\n');
    expect(contentFingerprint(Buffer.from(lf, 'latin1'))).toBe(contentFingerprint(Buffer.from(cr, 'latin1')));
    expect(contentFingerprint(Buffer.from(crlf, 'latin1'))).toBe(contentFingerprint(Buffer.from(cr, 'latin1')));
    // A different message with the same control id still differs.
    expect(contentFingerprint(Buffer.from(cr.replace('5.4', '5.5'), 'latin1'))).not.toBe(contentFingerprint(Buffer.from(cr, 'latin1')));
  });

  it('equals the definition on the corpus, its variants and odd headers', () => {
    const odd = ['', 'MSH', 'MSH|', 'MSH|^~\\&|A|B|C|D', 'MSH|^~\\&|A|B|C|D|', 'MSH|^~\\&|A|B|C|D|2024', 'MSHM^~\\&MAMBMCMDM2024MMX', 'MSHS1S2S3S4S5S6S7', 'PID|1|2|3|4|5|6|7\rMSH|1', 'MSH#^~\\&#A#B#C#D#2024##ADT\n#x', '\nMSH|a|b|c|d|e|f|g', 'MSH|^~\\&|A|B|C|D|2024\xe9|\xff|ADT|1\rOBX|\xe9'];
    const inputs = [...variants, ...odd.map((s) => Buffer.from(s, 'latin1')), Buffer.from('MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\rPID|||Zo\u00eb\r', 'utf8')];
    for (const raw of inputs) expect(contentFingerprint(raw), JSON.stringify(raw.toString('latin1').slice(0, 60))).toBe(reference(raw));
  });
});

describe('readMsh', () => {
  /** The former split-based reading, as the reference for the fields. */
  function reference(segment: string): Record<string, string> {
    const fs = segment[3] as string;
    const fields = segment.split(fs);
    const f = (n: number): string => fields[n - 1] ?? '';
    const enc = f(2);
    const comp = enc[0] ?? '^';
    const rep = enc[1] ?? '~';
    const first = (value: string, sep: string): string => value.split(sep)[0] ?? '';
    const msh9 = f(9).split(comp);
    return {
      fieldSeparator: fs,
      encodingCharacters: enc,
      sendingApplication: f(3),
      sendingFacility: f(4),
      receivingApplication: f(5),
      receivingFacility: f(6),
      dateTime: first(f(7), comp),
      messageCode: (msh9[0] ?? '').trim().toUpperCase(),
      triggerEvent: (msh9[1] ?? '').trim().toUpperCase(),
      messageStructure: (msh9[2] ?? '').trim().toUpperCase(),
      controlId: f(10).trim(),
      processingId: f(11),
      version: first(first(f(12), rep), comp).trim(),
      acceptAckType: f(15).trim().toUpperCase(),
      appAckType: f(16).trim().toUpperCase(),
      charset: first(f(18), rep).trim(),
    };
  }

  it('reads every corpus header as the split-based reading did', () => {
    let n = 0;
    for (const raw of corpus) {
      for (const m of analyseBlock(raw).messages) {
        const seg = m.segments[0];
        if (!seg) continue;
        const text = raw.toString('latin1', seg.start, seg.end);
        expect(readMsh(text).header, text).toEqual(reference(text));
        n++;
      }
    }
    expect(n).toBeGreaterThan(40);
  });

  it('trims, upper-cases and cuts fields like the built-ins, including past MSH-18 and with non-ASCII text', () => {
    const cases = [
      'MSH|^~\\&| app |fac\t|\u00a0r|f|20240101^x|| oru ^ r01 ^ oru_r01 | c1 |P^T|2.3.1~2.4^v|||al |er|x|utf-8~latin|19|20|21',
      'MSH|^~\\&|A|B|C|D|2024||\u00dfoo^stra\u00dfe|\ufeffC\ufeff|P|2.5|||\u00e9r|su||unicode utf-8 ',
      'MSH|^~\\&',
      'MSH|^~\\&|||||||',
      'MSH|^~|A|B|C|D|2024||ADT^A01|1|P|2.5',
      'MSH#^~\\&#A#B#C#D#2024##ADT^A01^ADT_A01#1#P#2.5#####NE#AL##8859/1',
    ];
    for (const c of cases) expect(readMsh(c).header, c).toEqual(reference(c));
  });

  it('validates MSH-2 as before: 2–5 distinct delimiters, none the field separator', () => {
    const problem = (enc: string): number | undefined => readMsh(`MSH|${enc}|A|B|C|D|2024||ADT^A01|1|P|2.5`).problem?.code;
    expect(problem('^~\\&')).toBeUndefined();
    expect(problem('^~')).toBeUndefined();
    expect(problem('^~\\&#')).toBeUndefined();
    expect(problem('^')).toBe(102);
    expect(problem('^~\\&#$')).toBe(102);
    expect(problem('^^\\&')).toBe(102);
    expect(problem('^~a&')).toBe(102);
    expect(problem('^~ &')).toBe(102);
    expect(problem('^\u00e9')).toBe(102);
    expect(problem('^\u{1f600}')).toBe(102);
    expect(readMsh('MSHa^~\\&').problem?.code).toBe(102);
    expect(readMsh('MSH').problem?.code).toBe(102);
  });
});

describe('versionAtLeast', () => {
  it('compares numerically and takes unknown versions as 2.5, also when asked again', () => {
    for (let round = 0; round < 2; round++) {
      expect(versionAtLeast('2.3.1', '2.3.1')).toBe(true);
      expect(versionAtLeast('2.3', '2.3.1')).toBe(false);
      expect(versionAtLeast('2.10', '2.5')).toBe(true);
      expect(versionAtLeast('2.2', '2.2')).toBe(true);
      expect(versionAtLeast('2.1', '2.2')).toBe(false);
      expect(versionAtLeast('x', '2.5')).toBe(true);
      expect(versionAtLeast('x', '2.6')).toBe(false);
      expect(versionAtLeast('2.5.', '2.5')).toBe(true);
    }
  });
});

describe('segment fields', () => {
  /** The former split-based field access, as the reference. */
  function referenceGet(text: string, isMsh: boolean, d: { field: string; component: string; repetition: string; subcomponent: string }, field: number, component: number, sub: number, rep: number): string {
    const fields = text.split(d.field);
    let v = isMsh ? (field === 1 ? d.field : (fields[field - 1] ?? '')) : (fields[field] ?? '');
    if (v === '') return '';
    if (isMsh && field <= 2) return v;
    if (v.includes(d.repetition)) v = v.split(d.repetition)[rep] ?? '';
    else if (rep > 0) return '';
    if (v.includes(d.component)) v = v.split(d.component)[component - 1] ?? '';
    else if (component > 1) return '';
    if (v.includes(d.subcomponent)) v = v.split(d.subcomponent)[sub - 1] ?? '';
    else if (sub > 1) return '';
    v = v.trim();
    return v === '""' ? '' : v;
  }

  it('reads every field, component, subcomponent and repetition of the corpus like split did', () => {
    let checked = 0;
    for (const raw of corpus) {
      for (const structure of analyseBlock(raw).messages) {
        const message = readInbound(raw, structure, 'ascii').message;
        if (!message) continue;
        const d = message.delimiters;
        for (const seg of message.segments) {
          const hasEscape = seg.text.includes(d.escape);
          const actual: Array<string | number> = [];
          const expected: Array<string | number> = [];
          for (let f = 0; f <= 26; f++) {
            const rawRef = seg.name === 'MSH' ? (f === 1 ? d.field : f === 0 ? '' : (seg.text.split(d.field)[f - 1] ?? '')) : (seg.text.split(d.field)[f] ?? '');
            actual.push(seg.raw(f), seg.repetitions(f));
            expected.push(rawRef, rawRef === '' ? 0 : rawRef.split(d.repetition).length);
            if (hasEscape) continue; // unescaping is node-hl7-client's; covered by the corpus tests
            for (let c = 0; c <= 4; c++) {
              for (let s = 0; s <= 2; s++) {
                for (let r = -1; r <= 2; r++) {
                  actual.push(seg.get(f, c, s, r));
                  expected.push(referenceGet(seg.text, seg.name === 'MSH', d, f, c, s, r));
                }
              }
            }
            checked++;
          }
          expect(actual, seg.text).toEqual(expected);
        }
      }
    }
    expect(checked).toBeGreaterThan(2_000);
  });
});

describe('readInbound', () => {
  it('names a bad segment id as decoded, also when line ends were trimmed from a short segment', () => {
    const problem = (tail: string): string | undefined => {
      const raw = Buffer.from(`MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\r${tail}`, 'latin1');
      return readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii').problem?.text;
    };
    expect(problem('AB\n\n')).toBe('segment 2 has no valid segment id ("AB")');
    expect(problem('A\n\n')).toBe('segment 2 has no valid segment id ("A")');
    expect(problem('ab|x\n')).toBe('segment 2 has no valid segment id ("ab|")');
    expect(problem('OBX\n\n')).toBeUndefined();
  });
});

describe('segment fields without stand-ins', () => {
  it('reads a message whose missing encoding characters found no free stand-in as before', () => {
    // MSH-2 names two characters and the text holds all four stand-in candidates: the escape and
    // subcomponent delimiters stay unset, and values are read the general way.
    const raw = Buffer.from('MSH|^~|LIS|LAB|GW|LAB|2024||ORU^R01|U1|P|2.5\rPID|1||M1\x1a\x1e\x1f\x7f\rOBR|1|A1undefinedB|F1|T1^x^L|||2024||||||||||||||||F\rOBX|1|NM|G^Gl||5undefined4|mmol|1|N|||F\r', 'latin1');
    const message = readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii').message!;
    expect(message.delimiters.subcomponent).toBeUndefined();
    const obr = message.first('OBR')!;
    const obx = message.first('OBX')!;
    expect(obr.get(2)).toBe('A1undefinedB');
    expect(obr.get(2, 1, 2)).toBe('');
    expect(obr.get(4, 2)).toBe('x');
    expect(obx.get(5)).toBe('5undefined4');
    expect(obx.get(11)).toBe('F');
  });
});

describe('splitSegments', () => {
  /** The former byte-by-byte splitter, as the reference. */
  function reference(raw: Buffer): Array<{ name: string; start: number; end: number }> {
    const CR = 0x0d;
    const LF = 0x0a;
    const id = (b: number | undefined): boolean => b !== undefined && ((b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39));
    const segments: Array<{ name: string; start: number; end: number }> = [];
    let i = 0;
    const n = raw.length;
    if (raw[0] === 0xef && raw[1] === 0xbb && raw[2] === 0xbf) i = 3;
    while (i < n && (raw[i] === CR || raw[i] === LF || raw[i] === 0x20 || raw[i] === 0x09)) i++;
    const fsb = raw[i + 3];
    const fieldSep = fsb !== undefined && fsb !== CR && fsb !== LF ? fsb : 0x7c;
    const starts = (at: number): boolean => id(raw[at]) && id(raw[at + 1]) && id(raw[at + 2]) && [undefined, fieldSep, CR, LF].includes(raw[at + 3]);
    let start = i;
    const push = (end: number): void => {
      if (end > start) segments.push({ name: raw.toString('latin1', start, Math.min(start + 3, end)), start, end });
    };
    while (i < n) {
      const b = raw[i];
      if (b === CR) {
        push(i);
        i++;
        while (i < n && (raw[i] === CR || raw[i] === LF)) i++;
        start = i;
      } else if (b === LF && (starts(i + 1) || i + 1 === n)) {
        push(i);
        i++;
        start = i;
      } else {
        i++;
      }
    }
    push(n);
    for (const s of segments) while (s.end > s.start && (raw[s.end - 1] === LF || raw[s.end - 1] === CR)) s.end--;
    // Lines of only spaces and tabs are blank lines, like empty ones.
    return segments.filter((s) => s.end > s.start && !/^[ \t]+$/.test(raw.toString('latin1', s.start, s.end)));
  }

  it('finds the same segments as the byte-by-byte splitter on the corpus and on 3,000 mutations', () => {
    const rnd = prng(4242);
    const pieces = ['\r', '\n', '\r\n', '\n\n', '\rOBX|', '\nOBX|', '\nob|', '\nAB', ' ', '\t', '\r \t\r', '|', 'MSH|', '\xef\xbb\xbf'];
    const inputs = [...variants];
    for (let k = 0; k < 3000; k++) {
      let b = variants[Math.floor(rnd() * variants.length)] as Buffer;
      for (let j = 0; j < 3; j++) {
        const at = Math.floor(rnd() * (b.length + 1));
        const piece = Buffer.from(pieces[Math.floor(rnd() * pieces.length)] as string, 'latin1');
        b = rnd() < 0.2 ? b.subarray(0, at) : Buffer.concat([b.subarray(0, at), piece, b.subarray(at)]);
      }
      inputs.push(b);
    }
    for (const raw of inputs) expect(splitSegments(raw)).toEqual(reference(raw));
  });
});

describe('HL7 times', () => {
  const DTM = /^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?$/;
  /** The former regex-and-Date conversion, as the reference. */
  function reference(value: string | undefined): string | undefined {
    if (!value) return undefined;
    const m = DTM.exec(value.trim());
    if (!m) return undefined;
    const [, y, mo = '01', d = '01', h = '00', mi = '00', s = '00', frac = '0', tz] = m;
    const ms = Math.round(Number(`0.${frac}`) * 1000);
    const month = Number(mo);
    const day = Number(d);
    if (month < 1 || month > 12 || day < 1 || day > 31 || Number(h) > 23 || Number(mi) > 59 || Number(s) > 60) return undefined;
    let epoch: number;
    if (tz) {
      const sign = tz[0] === '-' ? -1 : 1;
      const offsetMin = sign * (Number(tz.slice(1, 3)) * 60 + Number(tz.slice(3, 5)));
      epoch = Date.UTC(Number(y), month - 1, day, Number(h), Number(mi), Number(s), ms) - offsetMin * 60_000;
    } else {
      epoch = new Date(Number(y), month - 1, day, Number(h), Number(mi), Number(s), ms).getTime();
    }
    return Number.isFinite(epoch) ? new Date(epoch).toISOString() : undefined;
  }

  it('converts like the regex version, on valid, invalid and random values', () => {
    const values: Array<string | undefined> = [undefined, '', ' ', '2024', '202403', '20240301', '2024030109', '202403010930', '20240301093000', '20240301093000.1', '20240301093000.12', '20240301093000.1234', '20240301093000.0005', '20240301093000.9995', '20240301093000+0100', '20240301093000.5-0530', '20240301-0000', '20241301', '20240132', '20240230', '20240301250000', '20240301096000', '20240301093060', '20240301093061', ' 20240301 ', '\t20240301\n', '2024030109300', 'abcd', '2024a', '20240301093000.12345', '20240301093000.', '20240301093000+01', '20240301093000+0100x', '19991231235959.9999+1400', '00000101', '00500101', '99991231235959.999-1200', '20240310023000', '20241103013000', '２０２４'];
    const rnd = prng(77);
    for (let i = 0; i < 3000; i++) {
      let s = '';
      const n = Math.floor(rnd() * 22);
      for (let k = 0; k < n; k++) s += '0123456789.+- 9'[Math.floor(rnd() * 15)];
      values.push(s);
    }
    for (let i = 0; i < 2000; i++) {
      const d = new Date(Math.floor(rnd() * 4e12));
      const p = (x: number, w = 2): string => String(x).padStart(w, '0');
      values.push(`${p(d.getFullYear(), 4)}${p(d.getMonth() + 1)}${p(d.getDate())}${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}${rnd() < 0.3 ? '.' + String(Math.floor(rnd() * 10_000)).slice(0, 1 + Math.floor(rnd() * 4)) : ''}${rnd() < 0.3 ? (rnd() < 0.5 ? '+' : '-') + p(Math.floor(rnd() * 14)) + p(Math.floor(rnd() * 60)) : ''}`);
    }
    for (const v of values) expect(hl7TimeToIso(v), JSON.stringify(v)).toBe(reference(v));
  });

  it('formats epochs like Date#toISOString, across eras and at the edges of the four-digit years', () => {
    const rnd = prng(99);
    const epochs = [0, -1, 1, 951_782_400_000, 951_868_800_000, 4_107_542_400_000, -2_208_988_800_000, -62_167_219_200_000, -62_167_219_200_001, 253_402_300_799_999, 253_402_300_800_000, 8.64e15, -8.64e15];
    for (let i = 0; i < 20_000; i++) epochs.push(Math.floor((rnd() * 2 - 1) * 2.6e14));
    for (let t = -62_167_219_200_000 - 5 * 86_400_000; t < -62_167_219_200_000 + 800 * 86_400_000; t += 86_399_999) epochs.push(t);
    for (const t of epochs) expect(isoTime(t)).toBe(new Date(t).toISOString());
  });
});

describe('text helpers', () => {
  it('trim and upper-case like the built-ins', () => {
    const samples = ['', ' ', 'a', 'A', ' oru ', 'ORU', 'oRu', '\t\r\nx\v\f', '\u00a0x\u00a0', '\ufeffC', 'C\u2028', '\u3000', 'stra\u00dfe', '\u00e9r', 'x\u0000', '\u0000x\u0000', '~\x7f', 'a\x7f', '""', '12.5', 'ŉ'];
    for (const s of samples) {
      expect(trimmed(s)).toBe(s.trim());
      expect(upper(s)).toBe(s.toUpperCase());
      expect(trimmedUpper(s)).toBe(s.trim().toUpperCase());
    }
  });
});

describe('ACK helpers', () => {
  it('compactId equals the plain base-36 conversion, across milliseconds and process suffixes', () => {
    const rnd = prng(5);
    const plain = (id: string): string =>
      (
        Number.parseInt(id.slice(0, 12), 16).toString(36).padStart(10, '0') +
        Number.parseInt(id.slice(12, 18), 16).toString(36).padStart(5, '0') +
        Number.parseInt(id.slice(18, 24), 16).toString(36).padStart(5, '0')
      ).toUpperCase();
    const hex = (n: number, w: number): string => n.toString(16).padStart(w, '0');
    let ms = 1_700_000_000_000;
    for (let i = 0; i < 5000; i++) {
      if (rnd() < 0.3) ms += Math.floor(rnd() * 3);
      const suffix = rnd() < 0.9 ? 'a1b2c3' : hex(Math.floor(rnd() * 0xffffff), 6);
      const id = hex(ms, 12) + hex(Math.floor(rnd() * 0xffffff), 6) + suffix;
      expect(compactId(id)).toBe(plain(id));
    }
  });

  it('hl7Timestamp gives each second its own local time stamp', () => {
    const p = (x: number, w = 2): string => String(x).padStart(w, '0');
    const stamp = (d: Date): string => `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
    const base = new Date(2024, 1, 29, 23, 59, 58, 900).getTime();
    for (const offset of [0, 50, 99, 100, 101, 1100, 2100, 2100, 0, -1000, 86_400_000]) {
      const d = new Date(base + offset);
      expect(hl7Timestamp(d)).toBe(stamp(d));
    }
  });
});
