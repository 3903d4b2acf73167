import { describe, expect, it } from 'vitest';
import { normalizeAstmMessage } from '../../gateway/src/astm/normalize.ts';
import { listProfiles, loadProfile } from '../../gateway/src/profiles/load.ts';
import { corpusFiles, corpusKind, corpusMessages } from '../fixtures/astm/corpus.ts';
import { prng } from '../fixtures/prng.ts';

/**
 * Bad input never takes the gateway down: mangled corpus messages (cut short, bytes flipped,
 * delimiters and escape characters sprayed in, records shuffled) are normalized or rejected, but
 * the normalizer never throws, for every profile. A fixed-seed generator keeps runs repeatable.
 */

const SPRAY = ['|', '\\', '^', '&', '@', '!', '~', '`', '\r', '\n', '&X', '&Z', 'H|', '\x02', '\x17', '\x00', 'Q|1|', 'R|', 'ÿ'];

function mangle(text: string, rnd: () => number): string {
  const chars = [...text];
  switch (Math.floor(rnd() * 4)) {
    case 0:
      return chars.slice(0, Math.floor(rnd() * chars.length)).join('');
    case 1:
      for (let i = 0; i < 1 + rnd() * 8; i++) chars.splice(Math.floor(rnd() * chars.length), 0, SPRAY[Math.floor(rnd() * SPRAY.length)]!);
      return chars.join('');
    case 2:
      for (let i = 0; i < 1 + rnd() * 8; i++) chars[Math.floor(rnd() * chars.length)] = String.fromCharCode(Math.floor(rnd() * 256));
      return chars.join('');
    default: {
      const lines = text.split('\r');
      for (let i = lines.length - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [lines[i], lines[j]] = [lines[j]!, lines[i]!];
      }
      return lines.join('\r');
    }
  }
}

describe('normalizer robustness', () => {
  const profiles = listProfiles()
    .filter((p) => p.protocol !== 'hl7-mllp')
    .map((p) => loadProfile(p.name));
  const messages = corpusFiles()
    .filter((f) => corpusKind(f) !== 'native')
    .flatMap((f) => corpusMessages(f));

  it('never throws on 3000 mangled corpus messages across all profiles', () => {
    const rnd = prng(1394);
    let rejected = 0;
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const text = mangle(messages[i % messages.length]!, rnd);
      const profile = profiles[i % profiles.length]!;
      const r = normalizeAstmMessage(text, { analyzerId: 'fz', endpoint: 'fz', profile, receivedAt: '2026-01-14T12:00:00.000Z' });
      if (r.reject !== undefined) {
        rejected++;
        expect(r.events).toEqual([]);
        expect(r.reject.length).toBeGreaterThan(10);
      } else {
        accepted++;
        for (const e of r.events) expect(e.idempotencyKey.length).toBeLessThanOrEqual(160 + 40);
      }
    }
    expect(rejected).toBeGreaterThan(0);
    expect(accepted).toBeGreaterThan(0);
  });
});
