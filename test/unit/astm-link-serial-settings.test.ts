import { describe, expect, it } from 'vitest';
import { serialSettings } from '../../gateway/src/ingress/astm/serial-transport.ts';
import { backoffDelay } from '../../gateway/src/ingress/astm/transport.ts';

describe('serial settings', () => {
  it('default to LIS1-A §5.2: 9600 baud, 8 data bits, no parity, 1 stop bit, no flow control', () => {
    expect(serialSettings({ path: '/dev/ttyUSB0' })).toEqual({ path: '/dev/ttyUSB0', baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1, rtscts: false, xon: false, xoff: false });
  });

  it('take the profile defaults, and the site config over those', () => {
    const profile = { baudRate: 4800, dataBits: 7 as const, parity: 'even' as const, stopBits: 2 as const, rtscts: true };
    expect(serialSettings({ path: '/dev/ttyS0' }, profile)).toMatchObject({ baudRate: 4800, dataBits: 7, parity: 'even', stopBits: 2, rtscts: true });
    expect(serialSettings({ path: '/dev/ttyS0', baudRate: 19200, parity: 'none', rtscts: false }, profile)).toMatchObject({ baudRate: 19200, dataBits: 7, parity: 'none', stopBits: 2, rtscts: false });
  });

  it('reopen backoff doubles up to its ceiling, with jitter', () => {
    const policy = { initialMs: 500, maxMs: 30_000 };
    // Attempt n waits 500 ms × 2^n (1 s, 2 s, 4 s, …) until 30 s, each ±20 %.
    const base = [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000, 30_000, 30_000, 30_000];
    for (const [attempt, ms] of base.entries()) {
      const draws = Array.from({ length: 20 }, () => backoffDelay(policy, attempt));
      for (const d of draws) {
        expect(d, `attempt ${attempt}`).toBeGreaterThanOrEqual(ms * 0.8);
        expect(d, `attempt ${attempt}`).toBeLessThanOrEqual(ms * 1.2);
      }
      // Jitter: reconnecting analyzers do not all retry at the same instant.
      expect(new Set(draws).size, `attempt ${attempt}: jitter`).toBeGreaterThan(1);
    }
    // The ceiling holds far out too (no overflow to Infinity or NaN).
    expect(backoffDelay(policy, 1_000)).toBeLessThanOrEqual(36_000);
    expect(backoffDelay(policy, 1_000)).toBeGreaterThanOrEqual(24_000);
  });
});
