import { describe, expect, it } from 'vitest';
import { RECORDS_ONLY_MAX_QUEUED_BYTES, RECORDS_ONLY_PAUSE_BYTES } from '../../gateway/src/ingress/astm/records-only-session.ts';
import { makeHarness, MSG, settle } from '../fixtures/astm-link/harness.ts';

/** Instruments with no low-level protocol: bare E1394 records, the message ends at its L record. */
describe('records-only link', () => {
  const quirks = { lowLevel: 'none' };

  it('delivers a message at its L record, whatever the separators and chunking, and writes nothing', async () => {
    const bytes = Buffer.from(MSG.join('\r\n') + '\r\n', 'latin1');
    for (let cut = 1; cut < bytes.length; cut++) {
      const h = makeHarness(quirks);
      h.session.push(bytes.subarray(0, cut));
      await settle();
      h.session.push(bytes.subarray(cut));
      await settle();
      expect(h.messages.map((m) => m.text)).toEqual([MSG.join('\r\n') + '\r']);
      expect(h.writes).toEqual([]);
    }
  });

  it('keeps messages apart and in order', async () => {
    const h = makeHarness(quirks);
    const second = MSG.map((r) => r.replace('SID-1', 'SID-2'));
    h.session.push(Buffer.from(MSG.join('\r') + '\r' + second.join('\r') + '\r', 'latin1'));
    await settle();
    expect(h.messages.map((m) => m.text)).toEqual([MSG.join('\r') + '\r', second.join('\r') + '\r']);
  });

  it('an unfinished message is a partial after the receiver timer or when the connection closes', async () => {
    const h = makeHarness(quirks);
    h.session.push(Buffer.from('H|\\^&\rP|1\r'));
    h.clock.advance(29_999);
    expect(h.partials).toHaveLength(0);
    h.clock.advance(1);
    expect(h.partials.map((p) => p.reason)).toEqual(['receiver-timeout']);
    expect(h.partials[0]?.raw.toString()).toBe('H|\\^&\rP|1\r');
    h.session.push(Buffer.from('H|\\^&\r'));
    h.session.close();
    expect(h.partials.map((p) => p.reason)).toEqual(['receiver-timeout', 'closed']);
  });

  it('sends records with the configured separator', async () => {
    const h = makeHarness({ ...quirks, recordSeparator: '\r\n' });
    await h.session.send(['H|\\^&', 'L|1|N']);
    expect(Buffer.concat(h.writes).toString()).toBe('H|\\^&\r\nL|1|N\r\n');
  });

  describe('while the store refuses (no NAK exists in this mode: the gateway must keep what comes)', () => {
    /** A result with a long comment record: about 10 KB. */
    const big = (n: number): string => [MSG[0], MSG[1], MSG[2]!.replace('SID-1', `SID-${n}`), MSG[3], `C|1|L|${'x'.repeat(10_000)}|G`, MSG[4]].join('\r') + '\r';

    it('pauses the wire once a megabyte waits, reads on when the backlog is stored, and keeps every message once, in order', async () => {
      const calls: string[] = [];
      const h = makeHarness(quirks, { pause: () => calls.push('pause'), resume: () => calls.push('resume') });
      let refusing = true;
      h.handler = async () => {
        if (refusing) throw new Error('store unavailable');
      };
      const count = Math.ceil((1.5 * RECORDS_ONLY_PAUSE_BYTES) / big(0).length);
      for (let n = 1; n <= count; n++) h.session.push(Buffer.from(big(n), 'latin1'));
      await settle();
      expect(calls).toEqual(['pause']); // once, past the threshold
      expect(h.messages.map((m) => m.text.match(/SID-\d+/)?.[0])).toEqual(['SID-1']); // only the first is tried meanwhile
      h.clock.advance(1_000);
      await settle();
      expect(h.messages).toHaveLength(2); // tried again, refused again
      refusing = false;
      h.clock.advance(1_000);
      for (let i = 0; i < count + 5; i++) await settle();
      const tried = h.messages.map((m) => m.text.match(/SID-\d+/)?.[0]);
      const stored = [...new Set(tried)];
      expect(stored).toEqual(Array.from({ length: count }, (_, i) => `SID-${i + 1}`));
      expect(tried.filter((t) => t === 'SID-1')).toHaveLength(3); // refused twice, then stored: nothing else twice
      expect(calls).toEqual(['pause', 'resume']);
      expect(h.session.stats.overflowBytes).toBe(0);
    });

    it('a wire that cannot be paused (serial without flow control) is read on up to a cap; what it could not keep is counted and reported', async () => {
      const h = makeHarness(quirks);
      h.handler = () => new Promise(() => undefined); // the store never answers
      h.session.push(Buffer.from(MSG.join('\r') + '\r', 'latin1'));
      await settle();
      expect(h.session.state).toBe('committing');
      const chunk = Buffer.alloc(1024 * 1024, 0x43); // one buffer, queued by reference
      const chunks = RECORDS_ONLY_MAX_QUEUED_BYTES / chunk.length + 3;
      for (let i = 0; i < chunks; i++) h.session.push(chunk);
      expect(h.session.stats.overflowBytes).toBe(3 * chunk.length);
      expect(h.events.filter((e) => e.kind === 'overflow')).toHaveLength(3);
      expect(h.session.stats.bytesIn).toBe(MSG.join('\r').length + 1 + chunks * chunk.length);
      h.session.close();
    });
  });
});
