/**
 * The LIS normalizer on corrected reports (hl7/README.md "a corrected report validates its test"):
 * which reports validate their test, and that the events a correction always made keep their keys.
 */
import { describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';

function normalize(lines: string[]): DraftEvent[] {
  const raw = Buffer.from(lines.join('\r'), 'latin1');
  const r = readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii');
  if (!r.message) throw new Error(r.problem?.text);
  return normalizeLis({ message: r.message, endpoint: 'lis', fingerprint: 'fp', receivedAt: '2026-03-01T10:00:00.000Z', notes: [], problems: [] });
}

const MSH = 'MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||ORU^R01^ORU_R01|C-1|P|2.5.1';
const OBR = (status: string): string => `OBR|1|92001|F-92001|CMP^Metabolic panel|||20260301100000|||||||||||||||20260301120000|||${status}`;
const obx = (n: number, code: string, value: string, status: string): string => `OBX|${n}|NM|${code}^${code}||${value}|mmol/L|||||${status}`;
const shape = (events: DraftEvent[]): string[] => events.map((e) => `${e.type}:${e.type === 'result.validated' ? e.data.testCode : e.type === 'test.completed' ? `${e.data.testCode}/${e.data.resultStatus}` : ''}`);

describe('a corrected report validates its ordered test', () => {
  it('one analyte corrected (C) beside the others final (F), OBR-25 C: validated, every analyte still noted', () => {
    const events = normalize([MSH, 'ORC|RE|92001', OBR('C'), obx(1, 'NA', '140', 'F'), obx(2, 'K', '4.9', 'C'), obx(3, 'CL', '101', 'F')]);
    expect(shape(events)).toEqual(['result.validated:CMP', 'test.completed:NA/F', 'test.completed:K/C', 'test.completed:CL/F']);
    // The notes keep the keys a correction always had (each OBX's position); the validation is keyed at the OBR (segment index 2).
    expect(events.map((e) => e.idempotencyKey.split('|').slice(-2).join('|'))).toEqual(['2|result.validated', '3|test.completed', '4|test.completed', '5|test.completed']);
  });

  it('OBR-25 C with a W (the original posted as wrong) beside the corrected analyte: validated', () => {
    expect(shape(normalize([MSH, 'ORC|RE|92001', OBR('C'), obx(1, 'K', '4.2', 'W'), obx(2, 'K', '4.9', 'C')]))).toEqual(['result.validated:CMP', 'test.completed:K/C']);
  });

  it('OBR-25 C without OBX: validated, and completed as before', () => {
    expect(shape(normalize([MSH, 'ORC|RE|92001', OBR('C')]))).toEqual(['result.validated:CMP', 'test.completed:CMP/C']);
  });

  it('a correction under an OBR-25 that says the report is incomplete (A, P, R): not validated', () => {
    for (const s of ['A', 'P', 'R']) {
      expect(shape(normalize([MSH, 'ORC|RE|92001', OBR(s), obx(1, 'K', '4.9', 'C')]))).toEqual(['test.completed:K/C']);
    }
  });

  it('a corrected analyte beside a preliminary one: not validated', () => {
    expect(shape(normalize([MSH, 'ORC|RE|92001', OBR('C'), obx(1, 'NA', '140', 'P'), obx(2, 'K', '4.9', 'C')]))).toEqual(['test.completed:NA/P', 'test.completed:K/C']);
  });

  it('a final report keeps its one result.validated and nothing else, as before', () => {
    expect(shape(normalize([MSH, 'ORC|RE|92001', OBR('F'), obx(1, 'NA', '140', 'F'), obx(2, 'K', '4.9', 'F')]))).toEqual(['result.validated:CMP']);
    expect(shape(normalize([MSH, 'ORC|RE|92001', OBR('C'), obx(1, 'NA', '140', 'F'), obx(2, 'K', '4.9', 'F')]))).toEqual(['result.validated:CMP']);
  });
});
