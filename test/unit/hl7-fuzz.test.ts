import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Hl7Intake } from '../../gateway/src/ingress/mllp/hl7-intake.ts';
import { unwrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { corpusDir, endpointConfig, field, framesOf } from '../fixtures/hl7/helpers.ts';
import { MemoryIntakeStore } from '../fixtures/hl7/memory-store.ts';
import { prng } from '../fixtures/prng.ts';

/**
 * Bad input never takes the gateway down: 3,000 seeded mutations of the corpus (byte flips,
 * cuts, inserted delimiters, CR/LF, control bytes, duplicated and dropped ranges) go through the
 * intake. Every one must resolve with either a well-formed acknowledgement (AA, AR or AE, MSA-2
 * echoing what could be read) or, for an inbound ACK, no reply; and every one must be stored.
 */
const corpus = readdirSync(corpusDir)
  .filter((f) => f.endsWith('.hl7') || f.endsWith('.mllp'))
  .sort()
  .map((f) => unwrapFrame(readFileSync(path.join(corpusDir, f))));

const INSERTS = ['|', '^', '~', '\\', '&', '\r', '\n', '\r\n', '\x0b', '\x1c', '\x00', 'MSH|', 'MSH|^~\\&|', '\\X0\\', '""', '\xff\xfe'];

function mutate(src: Buffer, rnd: () => number): Buffer {
  let b = Buffer.from(src);
  const steps = 1 + Math.floor(rnd() * 4);
  for (let k = 0; k < steps; k++) {
    const at = Math.floor(rnd() * (b.length + 1));
    switch (Math.floor(rnd() * 5)) {
      case 0: // flip a byte
        if (b.length > 0) b[Math.min(at, b.length - 1)] = Math.floor(rnd() * 256);
        break;
      case 1: // cut
        b = b.subarray(0, at);
        break;
      case 2: // insert a delimiter or control sequence
        b = Buffer.concat([b.subarray(0, at), Buffer.from(INSERTS[Math.floor(rnd() * INSERTS.length)] as string, 'latin1'), b.subarray(at)]);
        break;
      case 3: {
        // drop a range
        const len = Math.floor(rnd() * 40);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
        break;
      }
      default: {
        // duplicate a range
        const len = Math.floor(rnd() * 80);
        b = Buffer.concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)]);
      }
    }
  }
  return b;
}

describe('intake robustness', () => {
  it('answers 3,000 mutated corpus messages without throwing, and keeps every one', async () => {
    const rnd = prng(20261125);
    const store = new MemoryIntakeStore();
    const intake = new Hl7Intake({ config: endpointConfig({ maxMessageBytes: 1 << 20 }), store: store.asStore(), log: silentLogger });
    const codes = new Map<string, number>();
    let unanswered = 0;
    for (let i = 0; i < 3000; i++) {
      const input = mutate(corpus[Math.floor(rnd() * corpus.length)] as Buffer, rnd);
      const before = store.messages.length + store.counters.duplicates;
      const result = await intake.handleFrame(input, { receivedAt: '2024-01-01T00:00:00.000Z' });
      expect(store.messages.length + store.counters.duplicates, `input ${i} kept`).toBeGreaterThan(before);
      const frames = framesOf(result.reply);
      if (frames.length === 0) {
        unanswered++;
        continue;
      }
      for (const f of frames) {
        const code = field(f, 'MSA', 1) ?? 'none';
        codes.set(code, (codes.get(code) ?? 0) + 1);
        expect(['AA', 'AR', 'AE'], `input ${i}: ${input.toString('latin1').slice(0, 80)}`).toContain(code);
      }
    }
    // Both outcomes really occur (the mutations are neither all harmless nor all fatal).
    expect(codes.get('AA') ?? 0).toBeGreaterThan(100);
    expect(codes.get('AR') ?? 0).toBeGreaterThan(100);
    // Only inbound ACKs go unanswered.
    expect(unanswered).toBeLessThan(1000);
  });
});
