import { describe, expect, it } from 'vitest';
import { compareHl7Time, hl7Offset, inHl7Zone } from '../../gateway/src/hl7/hl7-time.ts';

/** hl7-time.ts compareHl7Time: two times as their writer wrote them (billing, events/invoice-eligibility.ts). */
describe('compareHl7Time', () => {
  it('compares at the coarser of the two precisions: one minute is one time', () => {
    expect(compareHl7Time('20260301103015', '202603011030')).toBe(0);
    expect(compareHl7Time('202603011030', '20260301103059')).toBe(0);
    expect(compareHl7Time('20260301102959', '202603011030')).toBeLessThan(0);
    expect(compareHl7Time('202603011031', '20260301103059')).toBeGreaterThan(0);
    expect(compareHl7Time('20260301103015.2', '20260301103015.7')).toBe(0);
    expect(compareHl7Time('2026', '20261231235959')).toBe(0);
    expect(compareHl7Time('202612', '2027')).toBeLessThan(0);
  });

  it('reads a time without an offset in the other one’s offset, whatever the gateway’s zone', () => {
    expect(compareHl7Time('20260301110000', '20260301103000-0500')).toBeGreaterThan(0);
    expect(compareHl7Time('20260301103000-0500', '20260301110000')).toBeLessThan(0);
    expect(compareHl7Time('20260301153000+0000', '20260301103000-0500')).toBe(0);
    expect(compareHl7Time('20260301160000+0000', '202603011030-0500')).toBeGreaterThan(0);
    expect(compareHl7Time('20260301100000', '20260301093000')).toBeGreaterThan(0);
  });

  it('says nothing of what is not a date', () => {
    expect(compareHl7Time('x', '2026')).toBeUndefined();
    expect(compareHl7Time('20261301', '2026')).toBeUndefined();
  });
});

describe('inHl7Zone', () => {
  it('writes the offset on a time without one, and leaves the rest as written', () => {
    expect(inHl7Zone(' 20260301103000 ', '-0500')).toBe('20260301103000-0500');
    expect(inHl7Zone('20260301103000+0100', '-0500')).toBe('20260301103000+0100');
    expect(inHl7Zone('20260301103000', undefined)).toBe('20260301103000');
    expect(inHl7Zone('not a time', '-0500')).toBe('not a time');
    expect(hl7Offset('20260301103000-0500')).toBe('-0500');
    expect(hl7Offset('20260301103000')).toBeUndefined();
  });
});
