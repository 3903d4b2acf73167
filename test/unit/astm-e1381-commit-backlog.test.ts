import { describe, expect, it } from 'vitest';
import { ENQ } from '../../gateway/src/ingress/astm/control-chars.ts';
import { E1381_MAX_QUEUED_BYTES, E1381_PAUSE_BYTES } from '../../gateway/src/ingress/astm/e1381-session.ts';
import { frame, makeHarness, MSG, settle } from '../fixtures/astm-link/harness.ts';

/**
 * The bytes an E1381 link holds behind a message being committed are bounded. An analyzer that
 * waits for each reply (LIS1-A §6.3.4) sends nothing then; one that does not (or a serial-to-LAN
 * converter that buffers) streams on while the store is slow, and every byte waited in memory,
 * without bound (ingress/astm/README.md "The bytes waiting behind a commit are bounded").
 */

const b = (...bytes: number[]): Buffer => Buffer.from(bytes);
/** A result message with a long comment record (about 10 KB), its records one frame each. */
const big = (n: number): string[] => [MSG[0]!, MSG[1]!, MSG[2]!.replace('SID-1', `SID-${n}`), MSG[3]!, `C|1|L|${'x'.repeat(10_000)}|G`, MSG[4]!];

describe('E1381 link: bytes waiting behind a commit', () => {
  it('pauses the wire once a megabyte waits, reads on when the store has taken it, and takes every message once, in order', async () => {
    const calls: string[] = [];
    const h = makeHarness({}, { pause: () => calls.push('pause'), resume: () => calls.push('resume') });
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    h.handler = (text) => (text.includes('SID-1|') ? slow : Promise.resolve());
    const count = Math.ceil((1.5 * E1381_PAUSE_BYTES) / 10_200);
    // The analyzer does not wait for replies: ENQ, then message after message, frame numbers going on.
    let fn = 1;
    h.session.push(b(ENQ));
    for (let n = 1; n <= count; n++) {
      for (const r of big(n)) {
        h.session.push(frame(fn, r + '\r'));
        fn = (fn + 1) % 8;
      }
    }
    await settle();
    expect(h.session.state).toBe('committing');
    expect(calls).toEqual(['pause']); // once, past the threshold
    expect(h.messages).toHaveLength(1);
    release();
    for (let i = 0; i < count + 5 && h.messages.length < count; i++) await settle();
    await settle();
    expect(h.messages.map((m) => m.text.match(/SID-\d+/)?.[0])).toEqual(Array.from({ length: count }, (_, i) => `SID-${i + 1}`));
    expect(calls).toEqual(['pause', 'resume']);
    expect(h.session.stats.overflowBytes).toBe(0);
    expect(h.partials).toEqual([]);
  });

  it('a wire that cannot be paused (serial without flow control) is read on up to a cap; what it could not keep is counted and reported', () => {
    const h = makeHarness();
    h.handler = () => new Promise(() => undefined); // the store does not answer (the reply delay is not reached: manual clock)
    h.session.push(b(ENQ));
    for (const [i, r] of MSG.entries()) h.session.push(frame(i + 1, r + '\r'));
    expect(h.session.state).toBe('committing');
    const chunk = Buffer.alloc(1024 * 1024, 0x43); // one buffer, queued by reference
    const chunks = E1381_MAX_QUEUED_BYTES / chunk.length + 3;
    for (let i = 0; i < chunks; i++) h.session.push(chunk);
    expect(h.session.stats.overflowBytes).toBe(3 * chunk.length);
    expect(h.events.filter((e) => e.kind === 'overflow')).toHaveLength(3);
    // Not closed: close() would read the 256 MiB held (README "Nothing received is dropped"), a
    // byte at a time outside frames. The session holds no timer on the manual clock, nothing to end.
  });
});

describe('E1381 link: what waits behind a commit the reply delay gives up on', () => {
  it('an EOT already waiting ends the message, kept again only if that commit fails: a late commit that lands stores it once', async () => {
    const h = makeHarness();
    let land!: () => void;
    h.handler = () => new Promise<void>((r) => (land = r));
    // The analyzer does not wait for the reply: its EOT is read behind the commit.
    h.session.push(Buffer.concat([b(ENQ), ...MSG.map((r, i) => frame(i + 1, r + '\r')), b(0x04)]));
    await settle();
    expect(h.session.state).toBe('committing');
    h.clock.advance(h.link.timers.receiverReplyDelayMs); // NAK; the EOT is read: the message is given up
    await settle();
    expect(h.session.state).toBe('neutral');
    land();
    await settle();
    // Before, the EOT was read before the late commit was noted: kept twice (accepted, and again
    // as an incomplete message with a false alert).
    expect(h.partials).toEqual([]);
  });
});
