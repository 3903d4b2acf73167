/**
 * Review of "one tube received for several orders" (hl7/README.md): the keys of the receipts are
 * stable for a resend, unique, and the first order's is the key it had before the change.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import { hl7EventKey } from '../../gateway/src/hl7/normalizer.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';
import { corpusDir } from '../fixtures/hl7/helpers.ts';

function receipts(text: string, receivedAt: string): Array<[string, string]> {
  const raw = Buffer.from(text.replace(/\r\n|\n/g, '\r'), 'latin1');
  const r = readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii');
  if (!r.message) throw new Error(r.problem?.text);
  const events: DraftEvent[] = normalizeLis({ message: r.message, endpoint: 'lis', fingerprint: 'fp', receivedAt, notes: [], problems: [] });
  return events.filter((e) => e.type === 'specimen.received').map((e) => [e.correlationId, e.idempotencyKey]);
}

describe('one tube received for several orders: the receipts keys', () => {
  // The corpus message with its tubes received (SPM-18): the lab's intake scanned them.
  const o33 = readFileSync(path.join(corpusDir, 'oml_o33_multi-specimen_hl7apy.hl7'), 'latin1')
    .split(/\r\n|\r|\n/)
    .map((line) => {
      const f = line.split('|');
      if (f[0] !== 'SPM') return line;
      f[18] = '20110708170000';
      return f.join('|');
    })
    .join('\r');

  it('one receipt per order, each key unique, the same for a resend received later', () => {
    const first = receipts(o33, '2026-03-01T10:00:00.000Z');
    expect(first.map(([a]) => a)).toEqual(['83428', '83425', '83426', '83427']);
    expect(new Set(first.map(([, k]) => k)).size).toBe(4);
    expect(receipts(o33, '2026-03-02T08:00:00.000Z')).toEqual(first);
  });

  it('the first order of a tube keeps the key it had before (its SPM position); the others take their OBR position', () => {
    const raw = Buffer.from(o33.replace(/\r\n|\n/g, '\r'), 'latin1');
    const message = readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii').message!;
    const ctx = { message, endpoint: 'lis', fingerprint: 'fp', receivedAt: '2026-03-01T10:00:00.000Z', notes: [] };
    const index = (prefix: string): number => message.segments.findIndex((s) => s.name === prefix.slice(0, 3) && s.get(2, 1, 1) === prefix.slice(4));
    const obr = (accession: string): number => message.segments.findIndex((s) => s.name === 'OBR' && s.get(2) === accession);
    expect(receipts(o33, ctx.receivedAt).map(([, k]) => k)).toEqual([
      hl7EventKey(ctx, index('SPM 100187400201'), 'specimen.received'),
      hl7EventKey(ctx, index('SPM 100187400101'), 'specimen.received'),
      hl7EventKey(ctx, obr('83426'), 'specimen.received'),
      hl7EventKey(ctx, obr('83427'), 'specimen.received'),
    ]);
  });
});
