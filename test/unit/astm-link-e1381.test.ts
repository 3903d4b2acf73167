import { describe, expect, it } from 'vitest';
import { frameRecord } from '../../gateway/src/ingress/astm/checksum.ts';
import { ACK, ENQ, EOT, NAK, STX } from '../../gateway/src/ingress/astm/control-chars.ts';
import { DEFAULT_TIMERS, resolveLinkOptions } from '../../gateway/src/ingress/astm/link-options.ts';
import { frame, framesFor, makeHarness, MSG, MSG_TEXT, settle } from '../fixtures/astm-link/harness.ts';

const b = (...bytes: number[]): Buffer => Buffer.from(bytes);

/** Send ENQ and every frame, replying as the state machine expects; returns the wire. */
async function sendMessage(h: ReturnType<typeof makeHarness>, frames: Buffer[]): Promise<void> {
  h.session.push(b(ENQ));
  for (const f of frames) {
    h.session.push(f);
    await settle();
  }
}

describe('E1381 receiver', () => {
  it('answers ENQ with ACK and each frame with ACK, and hands over the whole message once', async () => {
    const h = makeHarness();
    await sendMessage(h, framesFor(MSG));
    h.session.push(b(EOT));
    expect(h.wire()).toBe('<ACK>'.repeat(6));
    expect(h.messages).toHaveLength(1);
    expect(h.messages[0]?.text).toBe(MSG_TEXT);
    expect(h.messages[0]?.meta.frames).toBe(5);
    // raw = the exact bytes: ENQ and every frame, without the EOT that follows the message.
    expect(h.messages[0]?.raw.equals(Buffer.concat([b(ENQ), ...framesFor(MSG)]))).toBe(true);
    expect(h.partials).toHaveLength(0);
    expect(h.session.state).toBe('neutral');
  });

  it('holds the ACK of the completing frame until the commit resolves', async () => {
    const h = makeHarness();
    let release!: () => void;
    h.handler = () => new Promise<void>((r) => (release = r));
    await sendMessage(h, framesFor(MSG));
    expect(h.takeWire()).toBe('<ACK>'.repeat(5)); // ENQ + 4 frames; the L frame waits
    expect(h.session.state).toBe('committing');
    h.session.push(b(EOT)); // arrives while committing: queued, not lost
    release();
    await settle();
    expect(h.takeWire()).toBe('<ACK>');
    expect(h.session.state).toBe('neutral');
    expect(h.partials).toHaveLength(0);
  });

  it('NAKs the completing frame when the commit fails and accepts its retransmission', async () => {
    const h = makeHarness();
    let calls = 0;
    h.handler = async () => {
      calls++;
      if (calls === 1) throw new Error('disk full');
    };
    const frames = framesFor(MSG);
    await sendMessage(h, frames);
    expect(h.takeWire()).toBe('<ACK>'.repeat(5) + '<NAK>');
    h.session.push(frames[4] as Buffer); // same FN 5: new again, because it was refused
    await settle();
    expect(h.takeWire()).toBe('<ACK>');
    expect(h.messages).toHaveLength(2);
    expect(h.messages[1]?.text).toBe(MSG_TEXT);
    // The raw bytes of the accepted attempt keep the refused copy too: exactly what arrived.
    expect(h.messages[1]?.raw.length).toBe(1 + frames.reduce((n, f) => n + f.length, 0) + (frames[4] as Buffer).length);
  });

  it('a message the endpoint kept but refused (NAK) is not reported again as a partial when the sender gives up', async () => {
    const h = makeHarness();
    h.handler = async () => 'nak';
    await sendMessage(h, framesFor(MSG));
    h.session.push(b(EOT));
    expect(h.wire()).toBe('<ACK>'.repeat(5) + '<NAK>');
    expect(h.partials).toHaveLength(0);
    // whereas a message that was NOT stored (commit failed) is kept as a partial
    const g = makeHarness();
    g.handler = async () => {
      throw new Error('store down');
    };
    await sendMessage(g, framesFor(MSG));
    g.session.push(b(EOT));
    expect(g.partials.map((p) => p.reason)).toEqual(['eot-before-end']);
  });

  it('NAKs a frame whose checksum is wrong and accepts the retransmission', async () => {
    const h = makeHarness();
    h.session.push(b(ENQ));
    const good = frame(1, MSG_TEXT);
    const bad = Buffer.from(good);
    bad[5] = bad[5] === 0x41 ? 0x42 : 0x41; // corrupt one text byte
    h.session.push(bad);
    await settle();
    expect(h.takeWire()).toBe('<ACK><NAK>');
    expect(h.events.some((e) => e.kind === 'frame-refused' && e.detail === 'checksum mismatch')).toBe(true);
    h.session.push(good);
    await settle();
    expect(h.takeWire()).toBe('<ACK>');
    expect(h.messages.map((m) => m.text)).toEqual([MSG_TEXT]);
  });

  it('compares the checksum case-insensitively', async () => {
    const h = makeHarness();
    // '1L|1|N<CR><ETX>' sums to 0x4F... build one whose checksum has a letter and lower-case it.
    let f = frame(1, MSG_TEXT);
    const cs = f.subarray(f.length - 4, f.length - 2).toString('latin1');
    if (!/[A-F]/.test(cs)) f = frame(1, MSG_TEXT + 'C|1|I|x|G\rL|1|N\r');
    const lower = Buffer.from(f);
    lower.write(lower.subarray(lower.length - 4, lower.length - 2).toString('latin1').toLowerCase(), lower.length - 4, 'latin1');
    expect(lower.equals(f)).toBe(false);
    h.session.push(b(ENQ));
    h.session.push(lower);
    await settle();
    expect(h.wire()).toBe('<ACK><ACK>');
    expect(h.messages).toHaveLength(1);
  });

  it('ACKs a retransmitted frame (same FN, same text) and keeps its text once', async () => {
    const h = makeHarness();
    const frames = framesFor(MSG);
    h.session.push(b(ENQ));
    h.session.push(frames[0] as Buffer);
    h.session.push(frames[1] as Buffer);
    h.session.push(frames[1] as Buffer); // our ACK was lost; the sender repeats FN 2
    for (const f of frames.slice(2)) h.session.push(f);
    await settle();
    expect(h.wire()).toBe('<ACK>'.repeat(7));
    expect(h.messages).toHaveLength(1);
    expect(h.messages[0]?.text).toBe(MSG_TEXT);
    expect(h.messages[0]?.meta.duplicateFrames).toBe(1);
    expect(h.session.stats.duplicateFrames).toBe(1);
  });

  it('ACKs a repeated completing frame after the message was committed, without a second message or a partial', async () => {
    const h = makeHarness();
    const frames = framesFor(MSG);
    await sendMessage(h, frames);
    h.session.push(frames[4] as Buffer); // the ACK of the L frame was lost
    h.session.push(b(EOT));
    await settle();
    expect(h.wire()).toBe('<ACK>'.repeat(7));
    expect(h.messages).toHaveLength(1);
    expect(h.partials).toHaveLength(0);
  });

  it('keeps a frame that repeats the FN with different text (Sysmex XN quirk) as new data', async () => {
    const h = makeHarness();
    h.session.push(b(ENQ));
    h.session.push(frame(1, 'H|\\^&\r'));
    h.session.push(frame(2, 'R|29|^^^^SCAT_WDF|x\r'));
    h.session.push(frame(2, 'R|29|^^^^HGB_WDF|10.28\r'));
    h.session.push(frame(3, 'L|1|N\r'));
    await settle();
    expect(h.wire()).toBe('<ACK>'.repeat(5));
    expect(h.messages[0]?.text).toBe('H|\\^&\rR|29|^^^^SCAT_WDF|x\rR|29|^^^^HGB_WDF|10.28\rL|1|N\r');
    expect(h.session.stats.fnRepeats).toBe(1);
  });

  it('NAKs a frame number out of sequence (LIS1-A §6.5.1.1)', async () => {
    const h = makeHarness();
    h.session.push(b(ENQ));
    h.session.push(frame(1, 'H|\\^&\r'));
    h.session.push(frame(3, 'L|1|N\r'));
    await settle();
    expect(h.wire()).toBe('<ACK><ACK><NAK>');
    expect(h.messages).toHaveLength(0);
  });

  it('wraps FN 7 to 0', async () => {
    const h = makeHarness();
    const records = ['H|\\^&', ...Array.from({ length: 9 }, (_, i) => `R|${i + 1}|^^^T${i}|1`), 'L|1|N'];
    await sendMessage(h, framesFor(records));
    expect(h.wire()).toBe('<ACK>'.repeat(12));
    expect(h.messages[0]?.text.split('\r')).toHaveLength(12);
  });

  it('ignores and counts bytes outside frames', async () => {
    const h = makeHarness();
    h.session.push(Buffer.from('noise')); // neutral: only ENQ matters (LIS1-A §6.2.5)
    h.session.push(b(ENQ, ACK, ACK)); // captures show ACK ACK before STX
    h.session.push(frame(1, MSG_TEXT));
    await settle();
    h.session.push(b(0xef, 0xbf, 0xbd, EOT)); // garbage before EOT
    expect(h.wire()).toBe('<ACK><ACK>');
    expect(h.messages[0]?.text).toBe(MSG_TEXT);
    expect(h.session.stats.ignoredBytes).toBe(5 + 2 + 3);
    expect(h.ignored.reduce((a, n) => a + n, 0)).toBe(10);
  });

  it('accepts EOT right after ENQ as an empty session', () => {
    const h = makeHarness();
    h.session.push(b(ENQ, EOT));
    expect(h.wire()).toBe('<ACK>');
    expect(h.messages).toHaveLength(0);
    expect(h.partials).toHaveLength(0);
    expect(h.session.state).toBe('neutral');
  });

  it('keeps a message cut off by EOT as a partial with its exact bytes', async () => {
    const h = makeHarness();
    const frames = framesFor(MSG);
    h.session.push(b(ENQ));
    h.session.push(Buffer.concat(frames.slice(0, 3)));
    h.session.push(b(EOT));
    expect(h.messages).toHaveLength(0);
    expect(h.partials).toHaveLength(1);
    expect(h.partials[0]?.reason).toBe('eot-before-end');
    expect(h.partials[0]?.raw.equals(Buffer.concat([b(ENQ), ...frames.slice(0, 3), b(EOT)]))).toBe(true);
  });

  it('ends the session at once when the sender gives up right after STX (<STX><EOT>), keeping what came before', () => {
    const h = makeHarness();
    const frames = framesFor(MSG);
    h.session.push(b(ENQ));
    h.session.push(Buffer.concat(frames.slice(0, 2)));
    h.session.push(b(STX, EOT));
    // Not read as a frame numbered EOT waiting for the 30 s receiver timer: the link is free now.
    expect(h.session.state).toBe('neutral');
    expect(h.messages).toHaveLength(0);
    expect(h.partials.map((p) => p.reason)).toEqual(['eot-before-end']);
    expect(h.partials[0]?.raw.subarray(0, 1 + frames[0]!.length + frames[1]!.length).equals(Buffer.concat([b(ENQ), ...frames.slice(0, 2)]))).toBe(true);
  });

  it('answers ENQ with NAK while busy (LIS1-A §6.2.6)', () => {
    const h = makeHarness();
    h.busy = true;
    h.session.push(b(ENQ));
    expect(h.wire()).toBe('<NAK>');
    expect(h.session.state).toBe('neutral');
  });

  it('accepts a 26 KB frame', async () => {
    const h = makeHarness();
    const big = 'M|1|MATRIX|LMNE|' + 'QUJD'.repeat(6600) + '\r';
    const f = frame(1, 'H|\\^&\r' + big + 'L|1|N\r');
    expect(f.length).toBeGreaterThan(26_000);
    h.session.push(b(ENQ));
    for (let off = 0; off < f.length; off += 1000) h.session.push(f.subarray(off, off + 1000));
    await settle();
    expect(h.wire()).toBe('<ACK><ACK>');
    expect(h.messages[0]?.text).toContain(big);
  });

  it('NAKs a frame longer than maxReceiveFrameBytes', async () => {
    const h = makeHarness({ maxReceiveFrameBytes: 100 });
    h.session.push(b(ENQ));
    h.session.push(frame(1, 'H|' + 'x'.repeat(200) + '\rL|1|N\r'));
    await settle();
    expect(h.wire()).toBe('<ACK><NAK>');
  });

  it('joins records split mid-field across ETB frames (cobas e411)', async () => {
    const h = makeHarness();
    const frames = frameRecord(Buffer.from(MSG_TEXT, 'latin1'), 1, 17);
    expect(frames.length).toBeGreaterThan(3);
    await sendMessage(h, frames);
    expect(h.wire()).toBe('<ACK>'.repeat(frames.length + 1));
    expect(h.messages[0]?.text).toBe(MSG_TEXT);
  });

  it('does not complete a message on ETB frames even when the record is whole (cobas c111)', async () => {
    const h = makeHarness();
    const frames = MSG.map((r, i) => frame(i + 1, r + '\r', i === MSG.length - 1));
    h.session.push(b(ENQ));
    h.session.push(Buffer.concat(frames.slice(0, 4)));
    expect(h.messages).toHaveLength(0);
    h.session.push(frames[4] as Buffer);
    await settle();
    expect(h.messages[0]?.text).toBe(MSG_TEXT);
  });

  it('evaluates a frame that ends with CR only after the trailer grace', async () => {
    const h = makeHarness();
    const f = frame(1, MSG_TEXT);
    h.session.push(b(ENQ));
    h.session.push(f.subarray(0, f.length - 1)); // no LF
    expect(h.messages).toHaveLength(0);
    h.clock.advance(DEFAULT_TIMERS.trailerGraceMs - 1);
    expect(h.messages).toHaveLength(0);
    h.clock.advance(1);
    await settle();
    expect(h.messages).toHaveLength(1);
    expect(h.wire()).toBe('<ACK><ACK>');
  });

  it('replies to the ENQ of a sender that restarts mid-message and keeps the unfinished part', async () => {
    const h = makeHarness();
    const frames = framesFor(MSG);
    h.session.push(b(ENQ));
    h.session.push(Buffer.concat(frames.slice(0, 2)));
    h.session.push(b(ENQ));
    await sendMessage(h, []);
    for (const f of frames) h.session.push(f);
    await settle();
    expect(h.partials.map((p) => p.reason)).toEqual(['re-establishment']);
    expect(h.messages).toHaveLength(1);
  });
});

describe('E1381 timers (fake clock, each at its bound)', () => {
  it('receiver: 30 s without a frame or EOT discards the incomplete message (LIS1-A §6.5.2)', () => {
    const h = makeHarness();
    h.session.push(b(ENQ));
    h.session.push(framesFor(MSG)[0] as Buffer);
    h.clock.advance(29_999);
    expect(h.partials).toHaveLength(0);
    expect(h.session.state).toBe('receiving');
    h.clock.advance(1);
    expect(h.partials.map((p) => p.reason)).toEqual(['receiver-timeout']);
    expect(h.session.state).toBe('neutral');
  });

  it('receiver: a commit slower than 15 s is NAKed (LIS1-A §6.5.2 reply delay)', async () => {
    const h = makeHarness();
    let release!: () => void;
    h.handler = () => new Promise<void>((r) => (release = r));
    await sendMessage(h, [frame(1, MSG_TEXT)]);
    h.clock.advance(14_999);
    expect(h.takeWire()).toBe('<ACK>');
    h.clock.advance(1);
    expect(h.takeWire()).toBe('<NAK>');
    release(); // a late success changes nothing on the wire
    await settle();
    expect(h.takeWire()).toBe('');
  });

  it('sender: no reply to ENQ within 15 s → EOT, then ENQ again after 10 s', async () => {
    const h = makeHarness();
    const sent = h.session.send(MSG);
    expect(h.takeWire()).toBe('<ENQ>');
    h.clock.advance(14_999);
    expect(h.takeWire()).toBe('');
    h.clock.advance(1);
    expect(h.takeWire()).toBe('<EOT>');
    h.clock.advance(9_999);
    expect(h.takeWire()).toBe('');
    h.clock.advance(1);
    expect(h.takeWire()).toBe('<ENQ>');
    h.session.close();
    await expect(sent).rejects.toMatchObject({ code: 'GW_ASTM_LINK' });
  });

  it('sender: NAK to ENQ waits 10 s before the next ENQ, and gives up after maxEnqAttempts (LIS1-A §6.2.6)', async () => {
    const h = makeHarness({ maxEnqAttempts: 3 });
    const sent = h.session.send(MSG);
    for (let attempt = 1; attempt <= 3; attempt++) {
      expect(h.takeWire()).toBe('<ENQ>');
      h.session.push(b(NAK));
      if (attempt < 3) {
        h.clock.advance(9_999);
        expect(h.takeWire()).toBe('');
        h.clock.advance(1);
      }
    }
    await expect(sent).rejects.toMatchObject({ code: 'GW_ASTM_LINK' });
    h.clock.advance(60_000);
    expect(h.takeWire()).toBe('');
  });

  it('sender: no reply to a frame within 15 s aborts with EOT (LIS1-A §6.5.2)', async () => {
    const h = makeHarness();
    const sent = h.session.send(MSG);
    h.session.push(b(ACK));
    expect(h.takeWire()).toMatch(/^<ENQ><STX>1H/);
    h.clock.advance(14_999);
    expect(h.takeWire()).toBe('');
    h.clock.advance(1);
    expect(h.takeWire()).toBe('<EOT>');
    await expect(sent).rejects.toThrow(/no reply to frame/);
  });

  it('contention: the gateway yields to the instrument, answers its next ENQ, then retries (LIS1-A §6.2.7.1)', async () => {
    const h = makeHarness();
    const sent = h.session.send(MSG);
    expect(h.takeWire()).toBe('<ENQ>');
    h.session.push(b(ENQ)); // both sent ENQ: the instrument wins
    expect(h.takeWire()).toBe(''); // that ENQ is not answered
    h.clock.advance(1_000); // the instrument waits ≥ 1 s and sends ENQ again
    h.session.push(b(ENQ));
    expect(h.takeWire()).toBe('<ACK>');
    for (const f of framesFor(MSG)) h.session.push(f);
    await settle();
    expect(h.messages).toHaveLength(1);
    h.takeWire();
    h.session.push(b(EOT)); // the instrument is done: the gateway now sends
    expect(h.takeWire()).toBe('<ENQ>');
    h.session.push(b(ACK));
    for (let i = 0; i < MSG.length; i++) h.session.push(b(ACK));
    await sent;
    expect(h.takeWire()).toMatch(/<EOT>$/);
  });

  it('contention: no ENQ from the instrument within 20 s → the line is neutral and the gateway retries', () => {
    const h = makeHarness();
    void h.session.send(MSG).catch(() => {});
    h.takeWire();
    h.session.push(b(ENQ));
    h.clock.advance(19_999);
    expect(h.takeWire()).toBe('');
    h.clock.advance(1);
    expect(h.takeWire()).toBe('<ENQ>');
    h.session.close();
  });

  it('timers are configurable from profile quirks and site overrides', () => {
    const link = resolveLinkOptions({ timers: { receiverFrameMs: 5_000 }, maxFrameText: 64 }, { receiverFrameMs: 7_000 });
    expect(link.timers.receiverFrameMs).toBe(7_000);
    expect(link.maxFrameText).toBe(64);
    expect(link.timers.establishmentMs).toBe(15_000);
    expect(() => resolveLinkOptions({ timers: { busyRetryMs: -1 } })).toThrow(/busyRetryMs/);
    // The firmware profile spelling (profiles/types.ts ProfileQuirks) maps onto the link options.
    const fromProfile = resolveLinkOptions({ lowLevel: 'e1381', establishmentTimeoutMs: 1_000, frameTimeoutMs: 2_000, replyTimeoutMs: 3_000, nakRetryDelayMs: 4_000, contentionTimeoutMs: 5_000, maxRetries: 3, maxIncomingFrame: 64_000, outgoingFrameLayout: 'message-per-frame' });
    expect(fromProfile.timers).toMatchObject({ establishmentMs: 1_000, receiverFrameMs: 2_000, senderFrameReplyMs: 3_000, busyRetryMs: 4_000, contentionMs: 5_000 });
    expect(fromProfile).toMatchObject({ maxRetransmissions: 3, maxReceiveFrameBytes: 64_000, frameLayout: 'message-per-frame' });
    expect(resolveLinkOptions({ lowLevel: 'none' }).lowLevel).toBe('records-only');
    const h = makeHarness({ timers: { receiverFrameMs: 5_000 } });
    h.session.push(b(ENQ));
    h.session.push(frame(1, 'H|\\^&\r'));
    h.clock.advance(5_000);
    expect(h.partials).toHaveLength(1);
  });
});

describe('E1381 sender', () => {
  it('sends ENQ, one frame per record (≤ 240 text chars, ETB splits), EOT', async () => {
    const h = makeHarness();
    const long = 'O|1|SID||' + '^^^T'.repeat(100);
    const sent = h.session.send(['H|\\^&', long, 'L|1|N']);
    expect(h.takeWire()).toBe('<ENQ>');
    h.session.push(b(ACK));
    const frames: string[] = [];
    for (let i = 0; i < 10 && h.session.state === 'sending'; i++) {
      frames.push(h.takeWire());
      h.session.push(b(ACK));
    }
    await sent;
    expect(h.takeWire()).toBe('<EOT>');
    expect(frames).toHaveLength(4); // H, O split in two (409 chars), L
    expect(frames[1]).toMatch(/^<STX>2O\|1\|SID/);
    expect(frames[1]).toContain('<ETB>');
    expect(frames[2]).toMatch(/^<STX>3.*<ETX>/);
    const textLen = (s: string) => s.replace(/<[A-Z]+>/g, '').length - 3; // FN + 2 checksum chars
    expect(textLen(frames[1] as string)).toBe(240);
    expect(frames[3]).toMatch(/^<STX>4L\|1\|N<CR><ETX>/);
  });

  it('retransmits a NAKed frame with the same FN and aborts after six refusals (LIS1-A §6.5.1.2)', async () => {
    const h = makeHarness();
    const sent = h.session.send(MSG);
    h.session.push(b(ACK));
    const first = h.takeWire();
    for (let i = 1; i <= 5; i++) {
      h.session.push(b(NAK));
      expect(h.takeWire()).toBe(first.replace('<ENQ>', ''));
    }
    h.session.push(b(NAK)); // sixth refusal
    expect(h.takeWire()).toBe('<EOT>');
    await expect(sent).rejects.toThrow(/refused 6 times/);
  });

  it('counts any character other than ACK or EOT as a refusal', async () => {
    const h = makeHarness({ maxRetransmissions: 2 });
    const sent = h.session.send(MSG);
    h.session.push(b(ACK));
    h.takeWire();
    h.session.push(Buffer.from('?'));
    h.session.push(b(ENQ));
    expect(h.takeWire()).toMatch(/<STX>1H.*<EOT>$/);
    await expect(sent).rejects.toMatchObject({ code: 'GW_ASTM_LINK' });
  });

  it('honours a receiver interrupt: EOT, hold-off 15 s, then the whole message again (LIS1-A §6.3.5)', async () => {
    const h = makeHarness();
    const sent = h.session.send(MSG);
    h.session.push(b(ACK));
    h.session.push(b(ACK));
    h.takeWire();
    h.session.push(b(EOT)); // interrupt after frame 2
    expect(h.takeWire()).toBe('<EOT>');
    h.clock.advance(14_999);
    expect(h.takeWire()).toBe('');
    h.clock.advance(1);
    expect(h.takeWire()).toBe('<ENQ>');
    h.session.push(b(ACK));
    expect(h.takeWire()).toMatch(/^<STX>1H/); // repeated from the start
    for (let i = 0; i < MSG.length; i++) h.session.push(b(ACK));
    await sent;
  });

  it('treats the interrupt as ACK when the profile says to ignore it', async () => {
    const h = makeHarness({ honourInterrupt: false });
    const sent = h.session.send(MSG);
    h.session.push(b(ACK));
    h.session.push(b(EOT));
    expect(h.takeWire()).toMatch(/<STX>2P/);
    for (let i = 0; i < MSG.length - 1; i++) h.session.push(b(ACK));
    await sent;
  });

  it('receiver interrupt: with a send queued, the completing frame of a message is answered EOT', async () => {
    const h = makeHarness();
    h.session.push(b(ENQ));
    const frames = framesFor(MSG);
    h.session.push(frames[0] as Buffer);
    const sent = h.session.send(['H|\\^&', 'L|1|N']); // the gateway now needs the line
    for (const f of frames.slice(1)) h.session.push(f);
    await settle();
    expect(h.takeWire()).toBe('<ACK>'.repeat(5) + '<EOT>');
    h.session.push(b(EOT)); // the instrument honours it
    expect(h.takeWire()).toBe('<ENQ>');
    h.session.push(b(ACK));
    h.session.push(b(ACK));
    h.session.push(b(ACK));
    await sent;
    expect(h.events.some((e) => e.kind === 'interrupt-sent')).toBe(true);
  });

  it('a send queued while a message commits waits for that message\'s ACK and interrupts only at the next one', async () => {
    const h = makeHarness();
    let sent: Promise<void> | undefined;
    h.handler = async () => {
      sent ??= h.session.send(['H|\\^&', 'L|1|N']); // e.g. a host query answer computed from this message
    };
    await sendMessage(h, framesFor(MSG));
    expect(h.takeWire()).toBe('<ACK>'.repeat(6)); // the analyzer is not interrupted for its own query
    // A second message in the same session: FN continues 6, 7, 0, 1, 2 (LIS1-A §6.3.2.1).
    MSG.map((r) => r.replace('SID-1', 'SID-9')).forEach((r, i) => h.session.push(frame((6 + i) % 8, r + '\r')));
    await settle();
    expect(h.takeWire()).toBe('<ACK>'.repeat(4) + '<EOT>'); // now the gateway asks for the line
    h.session.push(b(EOT));
    expect(h.takeWire()).toBe('<ENQ>');
    h.session.close();
    await expect(sent).rejects.toMatchObject({ code: 'GW_ASTM_LINK' });
  });

  it('a send on a closed link fails with GW_ASTM_LINK', async () => {
    const h = makeHarness();
    h.session.close();
    await expect(h.session.send(MSG)).rejects.toMatchObject({ code: 'GW_ASTM_LINK' });
  });

  it('sends the bytes a strict receiver checks (checksums valid, FN 1..)', async () => {
    const sender = makeHarness();
    const receiver = makeHarness();
    const sent = sender.session.send(MSG);
    // Wire the two state machines back to back.
    let guard = 0;
    while (guard++ < 50) {
      const out = Buffer.concat(sender.writes.splice(0));
      if (out.length > 0) receiver.session.push(out);
      await settle();
      const back = Buffer.concat(receiver.writes.splice(0));
      if (back.length > 0) sender.session.push(back);
      if (out.length === 0 && back.length === 0) break;
    }
    await sent;
    expect(receiver.messages.map((m) => m.text)).toEqual([MSG_TEXT]);
    expect(receiver.session.state).toBe('neutral');
    expect(sender.session.state).toBe('neutral');
  });
});
