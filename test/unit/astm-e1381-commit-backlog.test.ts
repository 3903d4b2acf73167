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
    // One warning when it begins (before, one per read: at serial rates, hundreds a second).
    expect(h.events.filter((e) => e.kind === 'overflow')).toHaveLength(1);
    // Closed with the cap held: the bytes behind the commit are read (README "Nothing received is
    // dropped"), those outside frames counted in runs (before, a byte at a time: about 20 s here).
    h.session.close();
    expect(h.ignored.reduce((a, n) => a + n, 0)).toBe(E1381_MAX_QUEUED_BYTES);
    expect(h.events.filter((e) => e.kind === 'overflow').at(-1)?.detail).toBe(`${3 * chunk.length} bytes were not kept (the link could not hold them); reading on`);
  });

  it('at the cap, bytes after the dropped ones are never joined to those before: no frame or message spans the gap', async () => {
    const h = makeHarness();
    let calls = 0;
    let release!: () => void;
    h.handler = (text) => {
      if (calls++ === 0) return new Promise<void>((r) => (release = r));
      return Promise.resolve(text.startsWith('H|') ? undefined : 'nak'); // a message without its head: refused, kept
    };
    h.session.push(b(ENQ));
    for (const [i, r] of MSG.entries()) h.session.push(frame(i + 1, r + '\r'));
    expect(h.session.state).toBe('committing');
    // Behind the commit: bytes outside frames up to near the cap, then patient X's first frames
    // (FN 6, 7, 0); the rest of X (eight frames, FN 1 … 0) comes in a read that does not fit; then,
    // in a read that would, the end of patient Y's message, numbered on (FN 1, 2).
    const xHead = Buffer.concat(['H|\\^&|||test-analyzer^1', 'P|1|PAT-X', 'O|1|SID-X||^^^K|R'].map((r, i) => frame((6 + i) % 8, r + '\r')));
    const xRest = Buffer.concat([...Array.from({ length: 7 }, (_, i) => `R|${i + 1}|^^^K|4.${i}|mmol/L||N||F`), 'L|1|N'].map((r, i) => frame((1 + i) % 8, r + '\r')));
    const yTail = Buffer.concat(['R|1|^^^K|9.9|mmol/L||N||F', 'L|1|N'].map((r, i) => frame(1 + i, r + '\r')));
    let room = E1381_MAX_QUEUED_BYTES - xHead.length - yTail.length;
    const filler = Buffer.alloc(1024 * 1024, 0x43);
    while (room >= filler.length) {
      h.session.push(filler);
      room -= filler.length;
    }
    h.session.push(filler.subarray(0, room));
    h.session.push(xHead);
    h.session.push(xRest); // does not fit: dropped
    h.session.push(yTail); // would fit
    expect(h.session.stats.overflowBytes).toBeGreaterThanOrEqual(xRest.length);
    release();
    for (let i = 0; i < 10; i++) await settle();
    // Before, X's head and Y's result were one message, taken: PAT-X with potassium 9.9.
    for (const m of h.messages) expect(m.text.includes('SID-X') && m.text.includes('9.9') ? m.text : 'not joined').toBe('not joined');
    expect(h.partials.map((p) => p.reason)).toEqual(['overflow']);
    expect(h.partials[0]?.raw.subarray(-xHead.length).equals(xHead)).toBe(true); // X as far as it came, kept once
    // Dropped from the first read that did not fit until the queue is read down: Y's tail too.
    expect(h.session.stats.overflowBytes).toBe(xRest.length + yTail.length);
    // What comes next is read on, its frame numbers taken as they come: Z's message whole.
    h.takeWire();
    const z = ['H|\\^&|||test-analyzer^1', 'P|1|PAT-Z', 'O|1|SID-Z||^^^K|R', 'R|1|^^^K|3.9|mmol/L||N||F', 'L|1|N'];
    for (const [i, r] of z.entries()) {
      h.session.push(frame((3 + i) % 8, r + '\r'));
      await settle();
    }
    expect(h.takeWire()).toBe('<ACK>'.repeat(z.length));
    expect(h.messages.at(-1)?.text).toBe(z.map((r) => r + '\r').join(''));
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
