import { describe, expect, it } from 'vitest';
import { DEFAULT_DELIMITERS, delimitersFromHeader, parseDelimiterString } from '../../gateway/src/astm/delimiters.ts';
import { escapeAstm, unescapeAstm } from '../../gateway/src/astm/escape.ts';
import {
  astmDateToIso,
  buildHeader,
  buildRecord,
  component,
  fieldRepeats,
  fieldText,
  parseAstmMessage,
  parseFieldRef,
  readRef,
  splitMessages,
} from '../../gateway/src/astm/records.ts';
import { isGatewayError } from '../../gateway/src/errors.ts';
import { corpusFiles, corpusKind, corpusMessages, stripFrames } from '../fixtures/astm/corpus.ts';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { corpusDir } from '../fixtures/astm/corpus.ts';

describe('delimiters (LIS2-A2 §6.2)', () => {
  it('reads the four delimiters of every variant in the corpus from H.2', () => {
    const cases: Array<[string, string]> = [
      ['H|\\^&|||x', '|\\^&'],
      ['H|@^\\|URM', '|@^\\'],
      ['H|\\!~|||DxH', '|\\!~'],
      ['H|`^&||||', '|`^&'],
    ];
    for (const [header, expected] of cases) {
      const r = delimitersFromHeader(header);
      expect(r.ok, header).toBe(true);
      if (r.ok) expect(r.delimiters.field + r.delimiters.repeat + r.delimiters.component + r.delimiters.escape).toBe(expected);
    }
  });

  it('tolerates the doubled repeat delimiter of Yumizen H550 / mini VIDAS mock (H|\\\\^&)', () => {
    const r = delimitersFromHeader('H|\\\\^&|||miniVidas');
    expect(r).toMatchObject({ ok: true, delimiters: DEFAULT_DELIMITERS, quirk: 'doubled repeat delimiter in H.2' });
  });

  it('refuses alphanumeric, duplicate or missing delimiters with a reason', () => {
    expect(delimitersFromHeader('H|\\^A|')).toMatchObject({ ok: false, reason: expect.stringMatching(/alphanumeric/) });
    expect(delimitersFromHeader('H|^^&|')).toMatchObject({ ok: false, reason: expect.stringMatching(/distinct/) });
    expect(delimitersFromHeader('H|\\^|')).toMatchObject({ ok: false, reason: expect.stringMatching(/exactly three/) });
    expect(delimitersFromHeader('P|1')).toMatchObject({ ok: false, reason: expect.stringMatching(/not an H/) });
    expect(parseDelimiterString('|\\^')).toMatchObject({ ok: false });
  });
});

describe('escape sequences (LIS2-A2 §5.4.5)', () => {
  it('decodes &F& &S& &R& &E&, drops &H&/&N&, decodes &Xhh& and keeps &Z..& verbatim', () => {
    const d = DEFAULT_DELIMITERS;
    expect(unescapeAstm('a&F&b&S&c&R&d&E&e', d)).toBe('a|b^c\\d&e');
    expect(unescapeAstm('&H&bold&N& text', d)).toBe('bold text');
    expect(unescapeAstm('x&X0D0A&y', d)).toBe('x\r\ny');
    expect(unescapeAstm('&Zabc&', d)).toBe('&Zabc&');
    expect(unescapeAstm('AT&T', d)).toBe('AT&T');
  });

  it('Sysmex image paths: &R& becomes the active repeat delimiter', () => {
    const m = parseAstmMessage('H|\\^&\rP|1\rO|1||x||\rR|1|^^^^SCAT_WDF|PNG&R&20181106&R&QC_WDF.PNG|||N\rL|1|N');
    const r = m.patients[0]!.orders[0]!.results[0]!.record;
    expect(fieldText(r, 4, m.delimiters)).toBe('PNG\\20181106\\QC_WDF.PNG');
    expect(fieldRepeats(r, 4, m.delimiters)).toHaveLength(1);
  });

  it('uses the active escape character: GeneXpert \\F\\ with |@^\\ delimiters', () => {
    const m = parseAstmMessage('H|@^\\|id\rP|1\rO|1|S1||^^^A\rC|1|I|a \\F\\ b^c|I\rL|1|N');
    const c = m.patients[0]!.orders[0]!.comments[0]!;
    expect(component(c, 4, 1, m.delimiters)).toBe('a | b');
    expect(component(c, 4, 2, m.delimiters)).toBe('c');
  });

  it('escape then unescape is the identity for every delimiter set', () => {
    const value = 'a|b\\c^d&e@f!g~h`i\x05j';
    for (const def of ['|\\^&', '|@^\\', '|\\!~', '|`^&']) {
      const d = parseDelimiterString(def);
      if (!d.ok) throw new Error(d.reason);
      const escaped = escapeAstm(value, d.delimiters);
      for (const ch of [d.delimiters.field, d.delimiters.repeat, d.delimiters.component]) expect(escaped.includes(ch), `${def}: ${ch}`).toBe(false);
      expect(escaped).not.toMatch(/[\x05]/);
      expect(unescapeAstm(escaped, d.delimiters)).toBe(value);
    }
  });
});

describe('records and hierarchy (LIS2-A2 §5.5)', () => {
  it('builds H > P > O > R with comments attached to the record before them', () => {
    const m = parseAstmMessage(
      [
        'H|\\^&||PSWD|Harper Labs',
        'P|1|2734',
        'C|1|L|patient note|G',
        'O|1|032989325||^^^BUN|R',
        'R|1|^^^BUN|8.71',
        'C|1|I|TGP^Test Growth Positive|P',
        'C|2|I|colony count >10,000|P',
        'O|2|032989325||^^^ISE|R',
        'R|1|^^^ISE^NA|139|mEq/L',
        'M|1|curve|1\\2\\3',
        'S|1|data',
        'L|1|N',
      ].join('\r'),
    );
    expect(m.patients).toHaveLength(1);
    const p = m.patients[0]!;
    expect(p.comments.map((c) => c.raw)).toEqual(['C|1|L|patient note|G']);
    expect(p.orders).toHaveLength(2);
    expect(p.orders[0]!.results[0]!.comments).toHaveLength(2);
    expect(p.orders[1]!.manufacturer.map((r) => r.raw)).toEqual(['M|1|curve|1\\2\\3']);
    expect(m.scientific).toHaveLength(1);
    expect(m.terminator?.raw).toBe('L|1|N');
    expect(m.warnings).toEqual([]);
  });

  it('accepts CR, LF and CRLF separators, blank lines and trailing blanks', () => {
    const base = ['H|\\^&', 'P|1', 'O|1|A1||^^^X', 'R|1|^^^X|1', 'L|1|N '];
    for (const sep of ['\r', '\n', '\r\n', '\r\n\r\n']) {
      const m = parseAstmMessage(base.join(sep) + sep);
      expect(m.records.map((r) => r.type).join('')).toBe('HPORL');
    }
  });

  it('tolerates missing L, O without P, and R without O, with warnings', () => {
    const m = parseAstmMessage('H|\\^&\rR|1|^^^X|1\rO|1|A||^^^X\rR|1|^^^X|2');
    expect(m.patients[0]!.record).toBeUndefined();
    expect(m.patients[0]!.orders[0]!.results).toHaveLength(1);
    expect(m.warnings.join(' ')).toMatch(/without an O record.*without a P record.*no L/);
  });

  it('rejects text that is not a LIS2-A2 message with a readable reason', () => {
    const reasons = ['', 'P|1|x\rL|1', 'H|\\^&\rX|1|y', 'HELLO WORLD', 'H'].map((t) => {
      try {
        parseAstmMessage(t);
        return 'parsed';
      } catch (err) {
        expect(isGatewayError(err, 'GW_ASTM_PARSE')).toBe(true);
        return (err as Error).message;
      }
    });
    expect(reasons[0]).toMatch(/empty/);
    expect(reasons[1]).toMatch(/first record must be H/);
    expect(reasons[2]).toMatch(/record 2 is not a LIS2-A2 record/);
    expect(reasons[3]).toMatch(/H\.2|delimiter/);
    expect(reasons[4]).toMatch(/too short/);
  });

  it('field references read components in LIS2-A2 numbering', () => {
    const m = parseAstmMessage('H|\\^&|||XN-550^00-24^22723\rP|1\rO|1||^^          27^M|^^^^WBC\\^^^^RBC\rL|1|N');
    const o = m.patients[0]!.orders[0]!.record;
    expect(readRef(o, parseFieldRef('O.4.3')!, m.delimiters)).toBe('27');
    expect(readRef(m.header, parseFieldRef('H.5.1')!, m.delimiters)).toBe('XN-550');
    expect(fieldRepeats(o, 5, m.delimiters).map((r) => r[4])).toEqual(['WBC', 'RBC']);
    expect(readRef(o, parseFieldRef('P.3')!, m.delimiters)).toBe('');
    expect(parseFieldRef('X.1')).toBeUndefined();
  });

  it('splits a session with two messages (Erba EM200) at each H', () => {
    const { messages, orphans } = splitMessages('H|`^&\rP|1\rL|1|N\rH|`^&\rP|1\rL|1|N\r');
    expect(messages).toHaveLength(2);
    expect(orphans).toEqual([]);
  });

  it('converts LIS2-A2 dates, refusing non-dates', () => {
    expect(astmDateToIso('20240627135407')).toBe(new Date(2024, 5, 27, 13, 54, 7).toISOString());
    expect(astmDateToIso('20240627')).toBe(new Date(2024, 5, 27).toISOString());
    expect(astmDateToIso('2024')).toBeUndefined();
    expect(astmDateToIso('20241327')).toBeUndefined();
    expect(astmDateToIso('               ')).toBeUndefined();
  });
});

describe('builder', () => {
  it('escapes values, omits trailing empty fields and round-trips through the parser', () => {
    const d = DEFAULT_DELIMITERS;
    const h = buildHeader(['', '', ['host', '1'], '', '', '', '', 'cobas-e411', ['TSDWN', 'REPLY'], 'P', '1'], d);
    expect(h).toBe('H|\\^&|||host^1|||||cobas-e411|TSDWN^REPLY|P|1');
    const o = buildRecord('O', ['1', 'A|B^C', ['40', '0', '5', '', 'S1', 'SC'], [['', '', '', '10'], ['', '', '', '30']], 'R', undefined, undefined], d);
    expect(o).toBe('O|1|A&F&B&S&C|40^0^5^^S1^SC|^^^10\\^^^30|R');
    const m = parseAstmMessage([h, 'P|1', o, buildRecord('L', ['1', 'N'], d)].join('\r'));
    const rec = m.patients[0]!.orders[0]!.record;
    expect(fieldText(rec, 3, d)).toBe('A|B^C');
    expect(fieldRepeats(rec, 5, d).map((r) => r[3])).toEqual(['10', '30']);
  });

  it('builds with non-default delimiters (DxH |\\!~)', () => {
    const d = parseDelimiterString('|\\!~');
    if (!d.ok) throw new Error(d.reason);
    expect(buildHeader(['', '', 'LIS'], d.delimiters)).toBe('H|\\!~|||LIS');
    expect(buildRecord('O', ['1', 'S!1', [['', '', '', 'CD']]], d.delimiters)).toBe('O|1|S~S~1|!!!CD');
  });
});

describe('every ASTM file of the corpus', () => {
  const expectedRecords: Record<string, string> = {
    'abbott_afinion2_hba1c_result.frame': 'HPORL',
    'beckman_unicel-dxh_hostquery_1.astm': 'HQL',
    'beckman_unicel-dxh_order-download_1.astm': 'HPOL',
    'beckman_unicel-dxh_result_1.astm': 'HPOC' + 'R'.repeat(28) + 'L',
    'biomerieux_mini-vidas_as-astm_mock.frames': 'HPORL',
    'biorad_ih-com-v5.2_bloodtype_result.astm': 'HPORCRCRCRCL',
    'cepheid_genexpert_mtb-rif_result.frame': 'HPORC' + 'R'.repeat(18) + 'RC' + 'R'.repeat(18) + 'RC' + 'R'.repeat(45) + 'L',
    'clsi-lis2a2_fig4_standard-example.astm': 'HPORRPORRL',
    'clsi-lis2a2_fig5_standard-example.astm': 'HQL',
    'clsi-lis2a2_fig6_standard-example.astm': 'HPOOOPOPOL',
    'erba_em200_hostquery.frame': 'HQL',
    'horiba_pentra-xlr_cbc_result.frames': 'HPORCC' + 'R'.repeat(18) + 'CRRL',
    'horiba_yumizen-h500_qc_result.frames': 'HPOCCMMMM' + 'R'.repeat(21) + 'L',
    'immucor_galileo-echo_order.astm': 'HPOCL',
    'roche_cobas-c111_result.frames': 'HPORCML',
    'roche_cobas-c311_result.frame': 'HPO' + 'RC'.repeat(7) + 'L',
    'roche_cobas-e411_hostquery_TSREQ.repaired.bin': 'HQL',
    'roche_cobas-e411_multiframe_capture.bin': 'HPORRRRRRCRL',
    'roche_cobas-e411_result_capture.bin': 'HPORL',
    'siemens_advia-centaur-xp_result_1.astm': 'HPORRRL',
    'sysmex_xn-550_cbc_result.frame': 'HPCOC' + 'R'.repeat(41) + 'CL',
    'sysmex_xn-550_qc_capture.repaired.bin': 'HPCOC' + 'R'.repeat(33) + 'CL',
    'sysmex_xp-100_cbc_result.frame': 'HPO' + 'R'.repeat(20) + 'L',
  };

  it('names only files the corpus has (a renamed capture would skip its record-type check)', () => {
    const files = corpusFiles();
    expect(Object.keys(expectedRecords).filter((f) => !files.includes(f))).toEqual([]);
  });

  for (const f of corpusFiles()) {
    it(`${f}`, () => {
      const messages = corpusMessages(f);
      if (corpusKind(f) === 'native') {
        expect(() => parseAstmMessage(messages[0]!)).toThrow(/first record must be H/);
        return;
      }
      expect(messages.length).toBeGreaterThan(0);
      for (const text of messages) {
        const m = parseAstmMessage(text);
        expect(m.header.type).toBe('H');
        expect(m.terminator?.type).toBe('L');
        expect(m.records.length).toBeGreaterThanOrEqual(3);
      }
      const types = parseAstmMessage(messages[0]!).records.map((r) => r.type).join('');
      if (expectedRecords[f]) expect(types).toBe(expectedRecords[f]);
      if (f.startsWith('erba_em200_result')) expect(messages).toHaveLength(2);
    });
  }

  it('frame checksums of the raw and repaired captures validate (LIS1-A §6.3.3)', () => {
    const files = corpusFiles().filter((x) => x.endsWith('.bin') || x.endsWith('c111_result.frames') || x.endsWith('pentra-xlr_cbc_result.frames'));
    expect(files).toEqual(expect.arrayContaining(['roche_cobas-c111_result.frames', 'horiba_pentra-xlr_cbc_result.frames', 'roche_cobas-e411_multiframe_capture.bin']));
    for (const f of files) {
      const s = stripFrames(readFileSync(path.join(corpusDir, f)));
      // 0 of 0 frames would "validate" too: each capture has frames, and all of them check.
      expect(s.frames, f).toBeGreaterThan(0);
      expect(s.validChecksums, f).toBe(s.frames);
    }
  });
});
