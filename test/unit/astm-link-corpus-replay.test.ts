import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ENQ } from '../../gateway/src/ingress/astm/control-chars.ts';
import { captureChunks, captureReplay, corpusAstmDir, rawCaptures } from '../fixtures/astm-link/corpus-captures.ts';
import { makeHarness, settle } from '../fixtures/astm-link/harness.ts';

/**
 * Every raw capture in the shared corpus (`.bin`, `.repaired.bin`) replayed through the receiver:
 * with its original TCP chunks where they are known, and split in two at every offset. The
 * expected replies and texts come from a separate, deliberately simple reading of the capture
 * (a regular expression over whole frames), not from the state machine.
 */
const captures = rawCaptures();
const expectedFor = captureReplay;

async function replay(input: Buffer, chunks: Buffer[]) {
  const h = makeHarness();
  for (const c of chunks) {
    h.session.push(c);
    await settle();
  }
  return h;
}

const chunksJsonFor = captureChunks;

describe('corpus captures replayed through the E1381 receiver', () => {
  it('finds the captures', () => {
    expect(captures.length).toBeGreaterThanOrEqual(8);
  });

  for (const file of captures) {
    describe(file, () => {
      const exp = expectedFor(file);

      it('in one piece: ACKs every ENQ and frame, delivers each message once, keeps the exact bytes', async () => {
        expect(exp.texts.length).toBeGreaterThan(0);
        const h = await replay(exp.input, [exp.input]);
        expect(h.wire()).toBe(exp.wire);
        expect(h.messages.map((m) => m.text)).toEqual(exp.texts);
        expect(h.partials).toEqual([]);
        for (const m of h.messages) {
          expect(m.raw[0]).toBe(ENQ);
          expect(exp.input.indexOf(m.raw)).toBeGreaterThanOrEqual(0); // a contiguous slice of what arrived
          expect(m.raw.toString('latin1').endsWith('\r\n')).toBe(true);
        }
        expect(h.session.state).toBe('neutral');
      });

      const original = chunksJsonFor(file);
      if (original) {
        it('in its original TCP chunks', async () => {
          expect(Buffer.concat(original).equals(readFileSync(path.join(corpusAstmDir, file)))).toBe(true);
          // The capture has its ENQ and EOT; the chunks are replayed as they came off the socket.
          const h = await replay(exp.input, original);
          expect(h.wire()).toBe(exp.wire);
          expect(h.messages.map((m) => m.text)).toEqual(exp.texts);
          expect(h.partials).toEqual([]);
        });
      }

      it('split in two at every offset', async () => {
        const failures: string[] = [];
        for (let cut = 1; cut < exp.input.length; cut++) {
          const h = await replay(exp.input, [exp.input.subarray(0, cut), exp.input.subarray(cut)]);
          const texts = h.messages.map((m) => m.text);
          if (h.wire() !== exp.wire || JSON.stringify(texts) !== JSON.stringify(exp.texts) || h.partials.length > 0) {
            failures.push(`cut ${cut}: wire ${h.wire()} messages ${texts.length} partials ${h.partials.length}`);
          }
        }
        expect(failures).toEqual([]);
      });
    });
  }
});
