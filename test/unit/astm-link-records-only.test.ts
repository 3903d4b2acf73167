import { describe, expect, it } from 'vitest';
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
});
