import { describe, expect, it } from 'vitest';
import { AdminLockout, adminLockoutKeys } from '../../gateway/src/status/http-server.ts';

/**
 * The lockout after wrong admin tokens, as a LAN user on IPv6 meets it. The machines these tests
 * run on have one address per /64 (::1, the LAN address), so rotating addresses within a /64 is
 * driven here on the lockout itself; test/integration/status-admin-lockout-ipv6.test.ts drives the
 * server over ::1.
 */
/** Wrong tokens a guesser gets in at `now`, one per address in turn, until it is refused. */
function guessesUntilRefused(lockout: AdminLockout, addresses: string[], now: number, max = 10_000): number {
  for (let n = 0; n < max; n++) {
    const remote = addresses[n % addresses.length]!;
    if (lockout.refused(remote, now)) return n;
    lockout.failed(remote, now);
  }
  return max;
}

describe('the admin lockout on IPv6', () => {
  // What IT saw: the admin token of a lab's gateway guessed from one LAN PC: the lockout (10 wrong
  // tokens a minute, then 429) counted per address, and an IPv6 host picks any of 2^64 addresses
  // of its /64 (privacy addresses, or simply `ip addr add`), each with ten fresh guesses: as many
  // guesses as it cared to send. Promise broken: "after 10 wrong tokens from one address within
  // a minute, admin requests from it get 429" (status/README.md) slows guessing down; on IPv6 one
  // machine is a /64, not an address.
  it('a guesser rotating addresses within one /64 gets a bounded number of guesses a minute', () => {
    const lockout = new AdminLockout();
    const rotating = Array.from({ length: 1000 }, (_, i) => `fd00:1:2:3:${(i + 1).toString(16)}::${(7 * i + 1).toString(16)}`);
    const guesses = guessesUntilRefused(lockout, rotating, 1000);
    expect(guesses).toBeLessThanOrEqual(30);
    expect(lockout.refused('fd00:1:2:3:ffff:ffff:ffff:fffe', 1000)?.key).toBe('fd00:1:2:3::/64');
    // The minute over, guessing may go on at that pace: slowed down, not a lock for good.
    expect(lockout.refused('fd00:1:2:3:ffff:ffff:ffff:fffe', 1000 + 61_000)).toBeUndefined();
  });

  // Kept: one PC with a stale token in a script is locked out on its own address after 10, and
  // does not lock its neighbours on the same /64 out (they share the LAN's prefix); other /64s,
  // IPv4 clients (also as IPv4-mapped addresses of a dual-stack listener, all inside ::/64) and
  // ::1 are counted apart.
  it('one address is locked after 10; its neighbours, other networks, IPv4 and ::1 are not', () => {
    const lockout = new AdminLockout();
    expect(guessesUntilRefused(lockout, ['fd00:1:2:3::a'], 0)).toBe(10);
    expect(lockout.refused('fd00:1:2:3::a', 0)?.limit).toBe(10);
    expect(lockout.refused('fd00:1:2:3::b', 0)).toBeUndefined();
    expect(lockout.refused('fd00:1:2:4::a', 0)).toBeUndefined();
    expect(guessesUntilRefused(lockout, ['::ffff:192.168.1.20'], 0)).toBe(10);
    expect(lockout.refused('192.168.1.20', 0), 'the same IPv4 client, as a plain address').toBeDefined();
    expect(lockout.refused('::ffff:192.168.1.21', 0)).toBeUndefined();
    expect(lockout.refused('::ffff:127.0.0.1', 0)).toBeUndefined();
    expect(lockout.refused('::1', 0)).toBeUndefined();
    // Zone ids and spellings of one address are one address.
    expect(guessesUntilRefused(lockout, ['fe80::1%eth0', 'FE80:0:0:0:0:0:0:1'], 0)).toBe(10);
  });

  it('reads the address key of each spelling', () => {
    expect(adminLockoutKeys('::1')).toEqual({ address: '0:0:0:0:0:0:0:1', network: '0:0:0:0::/64' });
    expect(adminLockoutKeys('::ffff:10.1.2.3')).toEqual({ address: '10.1.2.3' });
    expect(adminLockoutKeys('10.1.2.3')).toEqual({ address: '10.1.2.3' });
    expect(adminLockoutKeys('2001:db8:a:b:1:2:3:4')).toEqual({ address: '2001:db8:a:b:1:2:3:4', network: '2001:db8:a:b::/64' });
    expect(adminLockoutKeys('64:ff9b::192.0.2.1')).toEqual({ address: '64:ff9b:0:0:0:0:c000:201', network: '64:ff9b:0:0::/64' });
    expect(adminLockoutKeys('fe80::fc:ff:fe00:1%eth0').network).toBe('fe80:0:0:0::/64');
  });
});
