import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { maskAstmNames, maskHl7Names, maskNames } from '../../gateway/src/status/mask-names.ts';
import { ASTM_WITH_NAME, ORU_WITH_NAME } from '../fixtures/status/harness.ts';

describe('masking person names in raw messages', () => {
  it('masks HL7 PID-5 and NK1-2 and keeps every other byte', () => {
    const masked = maskHl7Names(ORU_WITH_NAME);
    expect(masked).not.toMatch(/DOE|JANE|JOHN/);
    expect(masked).toContain('PID|1||MRN123^^^LAB^MR||***||19800101|F\r');
    expect(masked).toContain('NK1|1|***|SPO\r');
    expect(masked.length).toBe(ORU_WITH_NAME.length - 'DOE^JANE^Q'.length + 3 - 'DOE^JOHN'.length + 3);
    expect(masked.startsWith('MSH|^~\\&|LIS|LAB')).toBe(true);
  });

  it('honours a non-default HL7 field separator and leaves empty name fields empty', () => {
    const text = 'MSH#^~\\&#LIS\rPID#1##123##SMITH^J#PEREZ^M\rPID#2##456###\r';
    expect(maskHl7Names(text)).toBe('MSH#^~\\&#LIS\rPID#1##123##***#***\rPID#2##456###\r');
  });

  it('masks ASTM P-record fields 6 and 7, also with a frame number in front', () => {
    const masked = maskAstmNames(ASTM_WITH_NAME);
    expect(masked).toContain('P|1||PAT-9||***||19700202|F\r');
    expect(masked).not.toContain('SMITH');
    const framed = '1H|\\^&\r2P|1||ID-1||MUSTER^MAX|MAIDEN\r';
    expect(maskAstmNames(framed)).toBe('1H|\\^&\r2P|1||ID-1||***|***\r');
  });

  it('dispatches on the message kind', () => {
    expect(maskNames('hl7', ORU_WITH_NAME)).toBe(maskHl7Names(ORU_WITH_NAME));
    expect(maskNames('astm', ASTM_WITH_NAME)).toBe(maskAstmNames(ASTM_WITH_NAME));
  });

  it('no patient family name of any corpus HL7 message survives masking (guarantor and insured names too)', () => {
    const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
    const dir = path.resolve(repo, '../shared/corpus/hl7');
    let checked = 0;
    for (const file of readdirSync(dir)) {
      const text = readFileSync(path.join(dir, file), 'latin1');
      const sep = text.match(/MSH(.)/)?.[1] ?? '|';
      const pid = text.split(/\r\n|\r|\n/).find((l) => l.startsWith(`PID${sep}`));
      const family = pid?.split(sep)[5]?.split('^')[0]?.trim();
      if (!family || family.length < 3 || family === '""') continue;
      checked++;
      // Identifiers (PID-3) may contain the same letters (a fiscal code): they are not names.
      const withoutIds = maskHl7Names(text)
        .split(/(\r\n|\r|\n)/)
        .map((l) => (l.startsWith(`PID${sep}`) ? l.split(sep).map((f, i) => (i === 3 ? '' : f)).join(sep) : l))
        .join('');
      expect(withoutIds, file).not.toContain(family);
    }
    expect(checked).toBeGreaterThanOrEqual(5);
  });
});

