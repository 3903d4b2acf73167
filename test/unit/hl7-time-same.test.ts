import { describe, expect, it } from 'vitest';
import { sameHl7Time } from '../../gateway/src/hl7/hl7-time.ts';

/**
 * Whether two ORC-9 of one order message name one time (hl7/normalize-lis.ts splits an order
 * message's lines where they do not): the coarser precision decides, a fraction of a second is no
 * other time, and a value without an offset is the sender's local time, the offset it writes on
 * the other value (whatever zone the gateway runs in).
 */
describe('sameHl7Time', () => {
  it('one time at two precisions, with a fraction, with and without the offset', () => {
    expect(sameHl7Time('20260301092000', '20260301092000')).toBe(true);
    expect(sameHl7Time('202603010920', '20260301092015')).toBe(true);
    expect(sameHl7Time('20260301', '20260301092015')).toBe(true);
    expect(sameHl7Time('20260301092000.1234', '20260301092000')).toBe(true);
    expect(sameHl7Time('20260301092000+0100', '20260301092000')).toBe(true);
    expect(sameHl7Time('20260301092000', '20260301092000-0330')).toBe(true);
    expect(sameHl7Time('20260301092000+0100', '20260301082000+0000')).toBe(true);
    expect(sameHl7Time('20260301082000-0000', '20260301082000+0000')).toBe(true);
    expect(sameHl7Time(' 20260301092000', '20260301092000 ')).toBe(true);
  });

  it('another time, in any format', () => {
    expect(sameHl7Time('20260301092000', '20260301103000')).toBe(false);
    expect(sameHl7Time('202603010920', '20260301092100')).toBe(false);
    expect(sameHl7Time('20260301092000+0100', '20260301092000+0000')).toBe(false);
    expect(sameHl7Time('20260301092000+0100', '20260301103000')).toBe(false);
    expect(sameHl7Time('20260301', '20260302')).toBe(false);
  });

  it('undefined when either is not a time', () => {
    expect(sameHl7Time('', '20260301092000')).toBeUndefined();
    expect(sameHl7Time('20260301092000', 'yesterday')).toBeUndefined();
    expect(sameHl7Time('20261301092000', '20260301092000')).toBeUndefined();
    expect(sameHl7Time('2026030109200', '20260301092000')).toBeUndefined();
  });
});
