import { describe, expect, it } from 'vitest';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';

/**
 * The LIS normalizer's QC mark, MSH-11 `Q`, read like the training and debugging ids T and D
 * (hl7/processing-id.ts): first component, trimmed, any case.
 */

describe('the LIS normalizer reads MSH-11 Q as the other processing ids are read', () => {
  /** Run types of an ORU whose MSH-11 is `processing`. */
  const runTypes = (processing: string): string[] => {
    const frame = Buffer.from(
      [`MSH|^~\\&|LIS|LAB|GW|LAB|20260302070000||ORU^R01^ORU_R01|K-1|${processing}|2.5.1`, 'PID|1||MRN-1', 'ORC|RE|A-1', 'OBR|1|A-1||GLU|||20260302065500', 'OBX|1|NM|GLU||5.4||||||F'].join('\r'),
      'latin1',
    );
    const message = readInbound(frame, analyseBlock(frame).messages[0]!, 'ascii').message!;
    return normalizeLis({ message, endpoint: 'lis', receivedAt: '2026-03-02T07:00:00.000Z', notes: [], fingerprint: 'fp' }).map((e) => `${e.type}:${(e.data as { runType?: string }).runType ?? '-'}`);
  };

  // Review finding: `T`/`D` are read trimmed and in any case (hl7/processing-id.ts), `Q` only
  // exactly: a LIS forwarding QC as `q` had the control validated on the patient's order (billed).
  it('q and " Q" are QC like Q; P stays a patient result', () => {
    expect(runTypes('Q')).toEqual(['test.completed:qc']);
    expect(runTypes('q')).toEqual(['test.completed:qc']);
    expect(runTypes(' Q ^T')).toEqual(['test.completed:qc']);
    expect(runTypes('P')).toEqual(['result.validated:-']);
  });
});
