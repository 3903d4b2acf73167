import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { idempotencyKey } from '../../gateway/src/events/keys.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';
import type { Hl7NormalizeProblem } from '../../gateway/src/hl7/normalizer.ts';
import { corpusDir } from '../fixtures/hl7/helpers.ts';

/** The LIS normalizer over one message as the intake reads it (segments split on CR, LF or CRLF). */
function normalize(text: string): { events: DraftEvent[]; notes: string[]; problems: Hl7NormalizeProblem[] } {
  const raw = Buffer.from(text.replace(/\r\n|\n/g, '\r'), 'latin1');
  const r = readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii');
  if (!r.message) throw new Error(r.problem?.text);
  const notes: string[] = [];
  const problems: Hl7NormalizeProblem[] = [];
  const events = normalizeLis({ message: r.message, endpoint: 'lis', fingerprint: 'fp', receivedAt: '2026-03-01T10:00:00.000Z', notes, problems });
  return { events, notes, problems };
}

function corpus(name: string): string {
  return readFileSync(path.join(corpusDir, name), 'latin1');
}

/** The message with field `n` of every segment `name` set to `value` (HL7 numbering). */
function withField(text: string, name: string, n: number, value: string, which?: (seg: string[]) => boolean): string {
  return text
    .split(/\r\n|\r|\n/)
    .map((line) => {
      const f = line.split('|');
      if (f[0] !== name || (which && !which(f))) return line;
      while (f.length <= n) f.push('');
      f[n] = value;
      return f.join('|');
    })
    .join('\r');
}

describe('review s22: OBR-25 that says the report is not complete', () => {
  // corpus oru_r01_glucose_python-hl7: OBR-25 F, both OBX F. The same report with OBR-25 A (some,
  // but not all, results available) or P (preliminary), as a LIS sends the analytes verified so
  // far of a panel whose other parts are still on the bench.
  for (const status of ['A', 'P', 'I', 'R']) {
    it(`OBR-25 ${status} with every OBX final: no result.validated yet, each OBX a test.completed`, () => {
      const text = withField(corpus('oru_r01_glucose_python-hl7.hl7'), 'OBR', 25, status);
      const { events } = normalize(text);
      expect(events.map((e) => e.type)).toEqual(['test.completed', 'test.completed']);
      expect(events.map((e) => (e.type === 'test.completed' ? e.data.resultStatus : ''))).toEqual(['F', 'F']);
    });
  }

  it('the final report of the same test (OBR-25 F) is validated, as before', () => {
    const { events } = normalize(corpus('oru_r01_glucose_python-hl7.hl7'));
    expect(events.map((e) => e.type)).toEqual(['result.validated']);
  });

  it('OBR-25 C (a correction of a final report) or empty, every OBX final: validated, as before', () => {
    for (const status of ['C', '']) {
      const { events } = normalize(withField(corpus('oru_r01_glucose_python-hl7.hl7'), 'OBR', 25, status));
      expect(events.map((e) => e.type)).toEqual(['result.validated']);
    }
  });
});

describe('review s22: a cancellation naming a test without a code', () => {
  // corpus orm_o01_v2.2_hapi-npac: this LIS writes OBR-4 without its identifier (^KNEE-RIGHT AP
  // LAT^L). Its cancellation of that one exam, in the same dialect, beside another exam of the order.
  const orm = corpus('orm_o01_v2.2_hapi-npac.hl7');

  it('is refused (AR 101 at OBR-4), never taken for a cancellation of the whole order', () => {
    const text = withField(orm, 'ORC', 1, 'CA');
    const { events, problems } = normalize(text);
    expect(events.filter((e) => e.type === 'order.cancelled' && e.data.tests.length === 0)).toEqual([]);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.severity).toBe('reject');
    expect(problems[0]!.error.code).toBe(101);
    expect(problems[0]!.error.location).toBe('OBR^1^4');
    expect(problems[0]!.error.text).toMatch(/KNEE-RIGHT AP LAT/);
  });

  it('an ORC CA whose OBR carries only the order numbers (no OBR-4) still cancels the whole order', () => {
    const text = ['MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||ORM^O01|C1|P|2.3', 'PID|1||MRN1', 'ORC|CA|ACC-9|||||||20260301092500', 'OBR|1|ACC-9'].join('\r');
    const { events, problems } = normalize(text);
    expect(problems).toEqual([]);
    expect(events).toHaveLength(1);
    expect(events[0]!.type).toBe('order.cancelled');
    if (events[0]!.type === 'order.cancelled') expect(events[0]!.data.tests).toEqual([]);
  });

  it('a cancellation whose OBR-4 names the test by code keeps cancelling that test only', () => {
    const text = withField(withField(orm, 'ORC', 1, 'CA'), 'OBR', 4, 'KN1^KNEE-RIGHT AP LAT^L');
    const { events, problems } = normalize(text);
    expect(problems).toEqual([]);
    expect(events.map((e) => (e.type === 'order.cancelled' ? e.data.tests.map((t) => t.code) : e.type))).toEqual([['KN1']]);
  });
});

describe('review s22: one tube received for several orders', () => {
  // corpus oml_o33_multi-specimen_hl7apy: tube 100187400101 serves orders 83425, 83426 and 83427.
  // The same message with the tube's receipt time (SPM-18) filled in.
  const text = withField(corpus('oml_o33_multi-specimen_hl7apy.hl7'), 'SPM', 18, '20110708170000', (f) => f[2] === '100187400101^');

  it('every order of the tube gets its specimen.received, each under a key of its own', () => {
    const { events } = normalize(text);
    const received = events.filter((e) => e.type === 'specimen.received');
    expect(received.map((e) => e.correlationId)).toEqual(['83425', '83426', '83427']);
    expect(received.map((e) => e.partitionKey)).toEqual(['order:83425', 'order:83426', 'order:83427']);
    expect(new Set(received.map((e) => e.idempotencyKey)).size).toBe(3);
    // The first order keeps the key it had: the SPM's position (segment 8, index 7).
    expect(received[0]!.idempotencyKey).toBe(idempotencyKey('hl7', 'lis', 'SEND APP^SEND FAC', '978226056138290600', 'fp', '7', 'specimen.received'));
    // The others are keyed on their own OBR (indexes 13 and 16), as one SPM without SPM-2 always was.
    expect(received[1]!.idempotencyKey).toBe(idempotencyKey('hl7', 'lis', 'SEND APP^SEND FAC', '978226056138290600', 'fp', '13', 'specimen.received'));
    expect(received[2]!.idempotencyKey).toBe(idempotencyKey('hl7', 'lis', 'SEND APP^SEND FAC', '978226056138290600', 'fp', '16', 'specimen.received'));
  });

  it('O21: two orders each with the same tube after their OBR: both get the receipt', () => {
    const o21 = [
      'MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000+0100||OML^O21^OML_O21|R1|P|2.5.1',
      'PID|1||MRN1',
      'ORC|NW|ACC-1|||||||20260301080000',
      'OBR|1|ACC-1||GLU^Glucose^L',
      'SPM|1|TUBE-7||SER|||||||||||||20260301081000|20260301083000',
      'ORC|NW|ACC-2|||||||20260301080000',
      'OBR|1|ACC-2||TSH^TSH^L',
      'SPM|1|TUBE-7||SER|||||||||||||20260301081000|20260301083000',
    ].join('\r');
    const received = normalize(o21).events.filter((e) => e.type === 'specimen.received');
    expect(received.map((e) => e.correlationId)).toEqual(['ACC-1', 'ACC-2']);
    expect(new Set(received.map((e) => e.idempotencyKey)).size).toBe(2);
  });

  it('two lines of one order on one tube: one receipt, as before', () => {
    const o21 = [
      'MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000+0100||OML^O21^OML_O21|R2|P|2.5.1',
      'PID|1||MRN1',
      'ORC|NW|ACC-1|||||||20260301080000',
      'OBR|1|ACC-1||GLU^Glucose^L',
      'SPM|1|TUBE-7||SER|||||||||||||20260301081000|20260301083000',
      'ORC|NW|ACC-1|||||||20260301080000',
      'OBR|2|ACC-1||NA^Sodium^L',
      'SPM|1|TUBE-7||SER|||||||||||||20260301081000|20260301083000',
    ].join('\r');
    const received = normalize(o21).events.filter((e) => e.type === 'specimen.received');
    expect(received.map((e) => e.correlationId)).toEqual(['ACC-1']);
  });
});
