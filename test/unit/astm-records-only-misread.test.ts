import { describe, expect, it } from 'vitest';
import { looksMisread } from '../../gateway/src/ingress/astm/records-only-session.ts';

/**
 * Which bytes a records-only link takes for a misread line (wrong baud rate, parity, data bits, or
 * an E1381 analyzer on a records-only link), so that the reason kept with them names the serial
 * settings (test/integration/astm-records-only-line-audit.test.ts shows what the IT person reads).
 */
describe('looksMisread: bytes a records-only link cannot have received as sent', () => {
  const latin1 = (s: string) => Buffer.from(s, 'latin1');

  it('a message that begins with its H record, Latin-1 text included, is not misread', () => {
    expect(looksMisread(latin1('H|\\^&|||an\rP|1||PID-1||M\xfcller^Hans\rL|1|N\r'))).toBe(false);
    expect(looksMisread(latin1('\xef\xbb\xbfH|\\^&\r'))).toBe(false);
    expect(looksMisread(latin1('\r\n H|\\^&\r'))).toBe(false);
    expect(looksMisread(latin1('H|\\^&|||an\rR|1|^^^GLU|5.4'))).toBe(false);
  });

  it('bytes that do not begin with an H record, or carry control characters, are', () => {
    expect(looksMisread(Buffer.from([0xa4, 0x40, 0xae, 0x70, 0x8d, 0x00]))).toBe(true);
    expect(looksMisread(latin1('\x05\x021H|\\^&|||an\r\x0317\r\n'))).toBe(true);
    expect(looksMisread(latin1('R|1|^^^GLU|5.4\rL|1|N\r'))).toBe(true);
    expect(looksMisread(latin1('H|\\^&|||an\x00\x80\rL|1|N\r'))).toBe(true);
  });
});
