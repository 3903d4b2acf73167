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
    for (let i = 0; i < 20; i++) {
      const d0 = backoffDelay(policy, 0);
      expect(d0).toBeGreaterThanOrEqual(400);
      expect(d0).toBeLessThanOrEqual(600);
      const big = backoffDelay(policy, 12);
      expect(big).toBeGreaterThanOrEqual(24_000);
      expect(big).toBeLessThanOrEqual(36_000);
    }
  });
});
