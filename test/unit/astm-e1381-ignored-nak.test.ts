import { describe, expect, it } from 'vitest';
import { ACK, ENQ, EOT, STX } from '../../gateway/src/ingress/astm/control-chars.ts';
import { frame, makeHarness, settle } from '../fixtures/astm-link/harness.ts';

/**
 * An analyzer whose firmware ignores the NAK of a message the record layer refused (kept as
 * rejected, its end frame NAKed) and goes on in the same session with its next message, frame
 * numbers going on (LIS1-A §6.5.1 wants the refused frame sent again). The frames after it are
 * refused as out of sequence; they are new data and are kept once, as a message of their own
 * (ingress/astm/README.md "Bad messages are kept once"). Before, they were counted as part of the
 * message already kept and kept nowhere. The session's sending side (order downloads) is not
 * touched by it.
 */

const b = (...bytes: number[]): Buffer => Buffer.from(bytes);
/** A message the record layer refuses: its handler answers 'nak' (rejectedReply), kept as rejected. */
const BAD = ['H||||bad delimiters', 'P|1', 'L|1|N'];
/** The analyzer's next message, numbered on from the refused one's end frame (FN 3). */
const NEXT = ['H|\\^&|||test-analyzer^1|||||host||P|1', 'P|1', 'O|1|SID-2||^^^GLU|R', 'R|1|^^^GLU|5.4|mmol/L||N||F', 'R|2|^^^NA|140|mmol/L||N||F', 'L|1|N'];

function refusingHarness(): ReturnType<typeof makeHarness> {
  const h = makeHarness();
  h.handler = async (text) => (text.startsWith('H|\\^&') ? undefined : 'nak'); // no usable H record: refused, kept
  return h;
}

/** ENQ and the refused message, frame by frame; the end frame (FN 3) is NAKed. */
async function refusedMessage(h: ReturnType<typeof makeHarness>): Promise<Buffer[]> {
  const sent = [b(ENQ), ...BAD.map((r, i) => frame(i + 1, r + '\r'))];
  for (const bytes of sent) {
    h.session.push(bytes);
    await settle();
  }
  expect(h.takeWire()).toBe('<ACK><ACK><ACK><NAK>');
  expect(h.messages.map((m) => m.text)).toEqual([BAD.map((r) => r + '\r').join('')]);
  return sent;
}

/** The next message's frames as the deaf analyzer numbers them: FN 4, 5, … after the end frame's 3. */
const nextFrames = (records: string[]): Buffer[] => records.map((r, i) => frame((4 + i) % 8, r + '\r'));

describe('E1381 receiver: an analyzer that ignores the NAK of a refused message', () => {
  it('keeps the frames it sends after, from the first one, once, with a reason naming the out-of-sequence frame', async () => {
    const h = refusingHarness();
    await refusedMessage(h);
    const after = nextFrames(NEXT.slice(0, 4));
    for (const f of after) {
      h.session.push(f);
      await settle();
    }
    expect(h.takeWire()).toBe('<NAK>'.repeat(4));
    h.session.push(b(EOT));
    expect(h.partials.map((p) => p.reason)).toEqual(['eot-before-end']);
    expect(h.partials[0]?.raw.equals(Buffer.concat([...after, b(EOT)]))).toBe(true);
    expect(h.events.filter((e) => e.kind === 'frame-refused').at(-1)?.detail).toBe('frame number 7 out of sequence (expected 3)');
    expect(h.messages).toHaveLength(1); // the refused one, once
    expect(h.session.state).toBe('neutral');
  });

  it('keeps the same bytes when they arrive one at a time (a frame begun in one read, checked in a later one)', async () => {
    const h = refusingHarness();
    await refusedMessage(h);
    const after = nextFrames(NEXT.slice(0, 3));
    const stream = Buffer.concat([...after, b(EOT)]);
    for (const byte of stream) {
      h.session.push(b(byte));
      await settle();
    }
    expect(h.takeWire()).toBe('<NAK>'.repeat(3));
    expect(h.partials).toHaveLength(1);
    expect(h.partials[0]?.raw.equals(stream)).toBe(true);
  });

  it('keeps every byte once when the numbers come round to the one the link waits for (more than 7 frames after)', async () => {
    const h = refusingHarness();
    await refusedMessage(h);
    // Twelve more records: the 8th frame after the end frame bears FN 3 again, the number the
    // link waits for, and is taken (into a message that lacks its head); what follows is read on.
    const more = Array.from({ length: 11 }, (_, i) => `R|${i + 3}|^^^K|4.${i}|mmol/L||N||F`);
    const after = nextFrames([...NEXT.slice(0, 5), ...more, 'L|1|N']);
    for (const f of after) {
      h.session.push(f);
      await settle();
    }
    h.session.push(b(EOT));
    await settle();
    // That message, whole then, has no H record: refused and kept, from the first frame after the
    // refused message on. Every byte the analyzer sent is kept once; the EOT ends nothing more.
    expect(h.messages).toHaveLength(2);
    expect(h.messages[1]?.raw.equals(Buffer.concat(after))).toBe(true);
    expect(h.partials).toEqual([]);
    expect(h.session.state).toBe('neutral');
  });

  it('leaves the sending side alone: a download queued meanwhile goes out after the EOT, whole', async () => {
    const h = refusingHarness();
    await refusedMessage(h);
    let sent = false;
    const download = h.session.send(['H|\\^&|||LIS', 'P|1', 'O|1|ACC-1||^^^TSH|R', 'L|1|N']).then(() => (sent = true));
    for (const f of nextFrames(NEXT.slice(0, 2))) {
      h.session.push(f);
      await settle();
    }
    expect(h.takeWire()).toBe('<NAK><NAK>');
    h.session.push(b(EOT));
    expect(h.takeWire()).toBe('<ENQ>'); // the download's establishment, at once
    h.session.push(b(ACK));
    for (let i = 0; i < 4; i++) {
      expect(h.writes.at(-1)?.[0]).toBe(STX);
      expect(h.writes.at(-1)?.[1]).toBe(0x30 + i + 1); // the download's own numbering, from 1
      h.session.push(b(ACK));
    }
    expect(h.wire().endsWith('<EOT>')).toBe(true);
    await download;
    expect(sent).toBe(true);
    expect(h.partials).toHaveLength(1);
    // And the analyzer's next session is read as usual.
    h.takeWire();
    h.session.push(b(ENQ));
    for (const [i, r] of NEXT.entries()) {
      h.session.push(frame((i + 1) % 8, r + '\r'));
      await settle();
    }
    expect(h.takeWire()).toBe('<ACK>'.repeat(NEXT.length + 1));
    expect(h.messages).toHaveLength(2);
  });
});

/**
 * The same firmware after a message the store did not take (its commit failed, or was slower than
 * the reply delay): its end frame is NAKed, not kept, and the analyzer goes on with its next
 * message. Before, its frames were refused as out of sequence until the numbers came round, and
 * the frame bearing the number the link waited for was taken into the refused message, whose end
 * frame alone had been forgotten: patient A's header and order with patient B's results, ACKed
 * and stored as one accepted message. Now the refused message ends at the first frame numbered
 * out of sequence (kept raw, once, unless its late commit lands), and what follows is a message of
 * its own.
 */
describe('E1381 receiver: an analyzer that ignores the NAK of a message the store did not take', () => {
  const A = ['H|\\^&|||test-analyzer^1', 'P|1|PAT-A', 'O|1|SID-A||^^^GLU|R', 'L|1|N'];
  const kRecords = Array.from({ length: 8 }, (_, i) => `R|${i + 1}|^^^K|4.${i}|mmol/L||N||F`);
  const B = ['H|\\^&|||test-analyzer^1', 'P|1|PAT-B', 'O|1|SID-B||^^^K|R', ...kRecords, 'L|1|N'];
  /** B's frames as the deaf analyzer numbers them: on from A's end frame (FN 4). */
  const bFrames = B.map((r, i) => frame((5 + i) % 8, r + '\r'));

  async function sendA(h: ReturnType<typeof makeHarness>): Promise<Buffer> {
    const sent = [b(ENQ), ...A.map((r, i) => frame(i + 1, r + '\r'))];
    for (const bytes of sent) {
      h.session.push(bytes);
      await settle();
    }
    return Buffer.concat(sent);
  }

  it('a failed commit: no message mixes the two, the refused one is kept raw once, the rest is a message of its own', async () => {
    const h = makeHarness();
    let calls = 0;
    // The store fails the first commit; the record layer refuses a message without its H (kept, NAK).
    h.handler = async (text) => {
      if (calls++ === 0) throw new Error('store commit failed');
      return text.startsWith('H|') ? undefined : 'nak';
    };
    const aBytes = await sendA(h);
    expect(h.takeWire()).toBe('<ACK><ACK><ACK><ACK><NAK>');
    for (const f of bFrames) {
      h.session.push(f);
      await settle();
    }
    h.session.push(b(EOT));
    await settle();
    for (const m of h.messages.slice(1)) expect(m.text).not.toContain('SID-A');
    expect(h.messages.slice(1).map((m) => m.text.slice(0, 3))).toEqual(['R|5']); // the frames from the one the link waited for: refused at its end
    // Every byte once: A as received, B from its first frame (the headless tail handed as a message).
    expect(h.partials.map((p) => p.reason)).toEqual(['not-resent']);
    expect(h.partials[0]?.raw.equals(aBytes)).toBe(true);
    expect(h.messages[1]?.raw.equals(Buffer.concat(bFrames))).toBe(true);
    expect(h.session.state).toBe('neutral');
  });

  it('a commit slower than the reply delay that lands later: not kept again, and no message mixes the two', async () => {
    const h = makeHarness();
    let calls = 0;
    let land!: () => void;
    h.handler = (text) => {
      if (calls++ === 0) return new Promise<void>((r) => (land = r));
      return Promise.resolve(text.startsWith('H|') ? undefined : 'nak');
    };
    await sendA(h);
    h.clock.advance(h.link.timers.receiverReplyDelayMs);
    expect(h.takeWire()).toBe('<ACK><ACK><ACK><ACK><NAK>');
    for (const f of bFrames) {
      h.session.push(f);
      await settle();
    }
    land();
    h.session.push(b(EOT));
    await settle();
    for (const m of h.messages.slice(1)) expect(m.text).not.toContain('SID-A');
    expect(h.partials).toEqual([]); // A is stored by its late commit
  });

  it('the same when the frames after were already waiting behind the commit (an analyzer that does not wait for replies)', async () => {
    const h = makeHarness();
    let calls = 0;
    let land!: () => void;
    h.handler = (text) => {
      if (calls++ === 0) return new Promise<void>((r) => (land = r));
      return Promise.resolve(text.startsWith('H|') ? undefined : 'nak');
    };
    // ENQ, A and B in one read: B waits behind A's commit, read when the reply delay gives up on it.
    h.session.push(Buffer.concat([b(ENQ), ...A.map((r, i) => frame(i + 1, r + '\r')), ...bFrames, b(EOT)]));
    await settle();
    expect(h.session.state).toBe('committing');
    h.clock.advance(h.link.timers.receiverReplyDelayMs);
    await settle();
    for (const m of h.messages.slice(1)) expect(m.text).not.toContain('SID-A');
    land();
    await settle();
    expect(h.partials).toEqual([]); // A is stored by its late commit: not kept a second time
    expect(h.session.state).toBe('neutral');
  });
});
