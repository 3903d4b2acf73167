import { describe, expect, it } from 'vitest';
import { MllpDecoder, type OversizeFrame, type PartialFrame, type UnframedBytes } from '../../gateway/src/ingress/mllp/mllp-decoder.ts';
import { unwrapFrame, wrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';

const MSG_A = 'MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ORU^R01|A1|P|2.5\rPID|1||MRN1\rOBX|1|NM|GLU||5.4|mmol/L|||||F\r';
const MSG_B = 'MSH|^~\\&|LIS|LAB|GW|LAB|20240101120001||ORM^O01|B2|P|2.3\rORC|NW|ACC-2\rOBR|1|ACC-2||CBC^Blood count\r';

function collect(maxFrameBytes = 1_000_000) {
  const frames: string[] = [];
  const oversize: OversizeFrame[] = [];
  const ignored: number[] = [];
  const decoder = new MllpDecoder({
    maxFrameBytes,
    headBytes: 16,
    onFrame: (f) => frames.push(f.toString('latin1')),
    onOversize: (o) => oversize.push(o),
    onIgnoredBytes: (n) => ignored.push(n),
  });
  return { decoder, frames, oversize, ignored };
}

describe('MllpDecoder', () => {
  it('emits one frame for one block', () => {
    const { decoder, frames } = collect();
    decoder.push(wrapFrame(MSG_A));
    expect(frames).toEqual([MSG_A]);
  });

  it('emits every message when many arrive in one chunk', () => {
    const { decoder, frames } = collect();
    decoder.push(Buffer.concat([wrapFrame(MSG_A), wrapFrame(MSG_B), wrapFrame(MSG_A)]));
    expect(frames).toEqual([MSG_A, MSG_B, MSG_A]);
  });

  it('reassembles two messages split at every byte offset', () => {
    const wire = Buffer.concat([wrapFrame(MSG_A), wrapFrame(MSG_B)]);
    for (let cut = 0; cut <= wire.length; cut++) {
      const { decoder, frames } = collect();
      decoder.push(wire.subarray(0, cut));
      decoder.push(wire.subarray(cut));
      expect(frames, `split at ${cut}`).toEqual([MSG_A, MSG_B]);
    }
  });

  it('reassembles a message fed one byte at a time', () => {
    const { decoder, frames } = collect();
    const wire = wrapFrame(MSG_B);
    for (const b of wire) decoder.push(Buffer.of(b));
    expect(frames).toEqual([MSG_B]);
  });

  it('ignores and counts bytes outside frames, reporting them before the next frame', () => {
    const { decoder, frames, ignored } = collect();
    decoder.push(Buffer.concat([Buffer.from('\r\n\r\nnoise'), wrapFrame(MSG_A), Buffer.from('\n\n')]));
    expect(frames).toEqual([MSG_A]);
    expect(ignored).toEqual([9]);
    expect(decoder.ignoredBytes).toBe(11);
    decoder.push(wrapFrame(MSG_B));
    expect(ignored).toEqual([9, 2]);
  });

  it('tolerates FS without CR when the next block starts right away', () => {
    const { decoder, frames } = collect();
    const a = wrapFrame(MSG_A).subarray(0, -1); // drop the CR after FS
    decoder.push(Buffer.concat([a, wrapFrame(MSG_B)]));
    expect(frames).toEqual([MSG_A, MSG_B]);
  });

  it('tolerates FS followed by LF (CR normalised to LF by a capture)', () => {
    const { decoder, frames } = collect();
    decoder.push(Buffer.concat([Buffer.from('\x0b' + MSG_A + '\x1c\n'), wrapFrame(MSG_B)]));
    expect(frames).toEqual([MSG_A, MSG_B]);
  });

  // A LIS that omits the CR after FS on a connection it keeps open waited for its ACK until the
  // next block's VT or the idle close: the connection now ends such a block (endBlock) once nothing
  // has followed the FS for a moment (test/integration/mllp-end-cr-audit.test.ts).
  it('endBlock() ends a block whose FS came without its CR; the next block is read as usual', () => {
    const { decoder, frames, ignored } = collect();
    decoder.push(Buffer.from('\x0b' + MSG_A + '\x1c'));
    expect(decoder.awaitingEndCr).toBe(true);
    expect(frames).toEqual([]);
    decoder.endBlock();
    expect(decoder.awaitingEndCr).toBe(false);
    expect(frames).toEqual([MSG_A]);
    decoder.push(wrapFrame(MSG_B));
    expect(frames).toEqual([MSG_A, MSG_B]);
    expect(ignored).toEqual([]);
    expect(decoder.ignoredBytes).toBe(0);
  });

  it('after endBlock(), the late CR of that block is skipped, not counted as noise; a later CR is', () => {
    const { decoder, frames } = collect();
    decoder.push(Buffer.from('\x0b' + MSG_A + '\x1c'));
    decoder.endBlock();
    decoder.push(Buffer.from('\r'));
    expect(decoder.ignoredBytes).toBe(0);
    decoder.push(Buffer.from('\r'));
    expect(decoder.ignoredBytes).toBe(1);
    expect(frames).toEqual([MSG_A]);
  });

  it('endBlock() does nothing inside a frame or outside any', () => {
    const { decoder, frames } = collect();
    decoder.endBlock();
    decoder.push(Buffer.from('\x0b' + MSG_A));
    decoder.endBlock();
    expect(frames).toEqual([]);
    decoder.push(Buffer.from('\x1c\r'));
    expect(frames).toEqual([MSG_A]);
    expect(decoder.ignoredBytes).toBe(0);
  });

  it('keeps an FS followed by ordinary data as content', () => {
    const { decoder, frames } = collect();
    decoder.push(Buffer.from('\x0babc\x1cdef\x1c\r'));
    expect(frames).toEqual(['abc\x1cdef']);
  });

  it('counts a frame abandoned by a new start block as ignored when nobody keeps partials, and reads the new one', () => {
    const { decoder, frames } = collect();
    decoder.push(Buffer.from('\x0bMSH|^~\\&|half'));
    decoder.push(wrapFrame(MSG_A));
    expect(frames).toEqual([MSG_A]);
    expect(decoder.ignoredBytes).toBe('MSH|^~\\&|half'.length + 1);
  });

  it('hands a frame abandoned by a new start block to onPartial, marked abandoned, and reads the new one', () => {
    const frames: string[] = [];
    const partials: PartialFrame[] = [];
    const decoder = new MllpDecoder({ maxFrameBytes: 1_000_000, onFrame: (f) => frames.push(f.toString('latin1')), onOversize: () => undefined, onPartial: (p) => partials.push(p) });
    decoder.push(Buffer.from('\x0bMSH|^~\\&|ha'));
    decoder.push(Buffer.from('lf'));
    decoder.push(wrapFrame(MSG_A));
    expect(frames).toEqual([MSG_A]);
    expect(partials.map((p) => [p.head.toString('latin1'), p.size, p.truncated, p.abandoned])).toEqual([['MSH|^~\\&|half', 13, false, true]]);
    expect(decoder.ignoredBytes, 'only the abandoned frame\'s start block').toBe(1);
  });

  it('a start block followed by line ends only (a keep-alive after a stray VT) is no message: ignored, not a partial', () => {
    const frames: string[] = [];
    const partials: PartialFrame[] = [];
    const decoder = new MllpDecoder({ maxFrameBytes: 1_000_000, onFrame: (f) => frames.push(f.toString('latin1')), onOversize: () => undefined, onPartial: (p) => partials.push(p) });
    decoder.push(Buffer.from('\x0b\r\n'));
    decoder.push(wrapFrame(MSG_A));
    decoder.push(Buffer.from('\x0b\r'));
    decoder.end();
    expect(frames).toEqual([MSG_A]);
    expect(partials).toEqual([]);
    expect(decoder.ignoredBytes).toBe(5);
  });

  it('reports an oversize frame with its size and head, then resyncs on the next block', () => {
    const { decoder, frames, oversize } = collect(100);
    const big = 'MSH|^~\\&|' + 'X'.repeat(5000);
    const wire = Buffer.concat([wrapFrame(big), wrapFrame('A'.repeat(90)), wrapFrame('B'.repeat(101))]);
    // Deliver in awkward chunks to exercise the limit across pushes.
    for (let i = 0; i < wire.length; i += 37) decoder.push(wire.subarray(i, i + 37));
    expect(frames).toEqual(['A'.repeat(90)]);
    expect(oversize.map((o) => o.size)).toEqual([big.length, 101]);
    expect(oversize[0]?.head.toString('latin1')).toBe(big.slice(0, 16));
  });

  it('counts a frame exactly at the limit as accepted', () => {
    const { decoder, frames, oversize } = collect(MSG_A.length);
    decoder.push(wrapFrame(MSG_A));
    expect(frames).toEqual([MSG_A]);
    expect(oversize).toEqual([]);
  });

  it('does not crash on random binary input and keeps decoding afterwards', () => {
    const { decoder, frames } = collect(4096);
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 256);
    for (let k = 0; k < 200; k++) decoder.push(Buffer.from(Array.from({ length: 97 }, rnd)));
    // Close whatever frame the garbage left open, then a clean block must come through.
    decoder.push(Buffer.from('\x1c\r'));
    const before = frames.length;
    decoder.push(wrapFrame(MSG_B));
    expect(frames.slice(before)).toEqual([MSG_B]);
  });
});

describe('MllpDecoder: HL7 outside frames (onUnframed)', () => {
  function unframed(maxFrameBytes = 1_000_000) {
    const frames: string[] = [];
    const kept: UnframedBytes[] = [];
    const decoder = new MllpDecoder({ maxFrameBytes, headBytes: 64, onFrame: (f) => frames.push(f.toString('latin1')), onOversize: () => undefined, onUnframed: (u) => kept.push(u) });
    return { decoder, frames, kept };
  }

  it('takes HL7 split at every byte offset, from its MSH on, ended by end(); the blanks before it are ignored bytes', () => {
    const wire = Buffer.from(`\r\n \x02${MSG_A}`, 'latin1');
    for (let cut = 0; cut <= wire.length; cut++) {
      const { decoder, kept } = unframed();
      decoder.push(wire.subarray(0, cut));
      decoder.push(wire.subarray(cut));
      expect(decoder.inUnframed).toBe(true);
      decoder.end();
      expect(kept.map((k) => [k.head.toString('latin1'), k.size, k.truncated, k.endedBy])).toEqual([[MSG_A, MSG_A.length, false, 'end']]);
      expect(decoder.ignoredBytes).toBe(4);
      expect(decoder.takeNoise()).toBeUndefined();
    }
  });

  it('FHS and BHS start HL7 too, with any separator; a VT ends it and its frame is read', () => {
    const { decoder, frames, kept } = unframed();
    decoder.push(Buffer.concat([Buffer.from('BHS^~|\\&^LIS\rMSH^~|\\&^LIS\r', 'latin1'), wrapFrame(MSG_B)]));
    expect(kept.map((k) => [k.head.toString('latin1'), k.endedBy])).toEqual([['BHS^~|\\&^LIS\rMSH^~|\\&^LIS\r', 'start-block']]);
    expect(frames).toEqual([MSG_B]);
    const fhs = unframed();
    fhs.decoder.push(Buffer.from('FHS|^~\\&|LIS\r', 'latin1'));
    fhs.decoder.endUnframed();
    expect(fhs.kept.map((k) => k.head.toString('latin1'))).toEqual(['FHS|^~\\&|LIS\r']);
    expect(fhs.decoder.inUnframed).toBe(false);
  });

  it('a line of noise is ignored and previewed; HL7 on a later line is still found; MSH inside a line is noise', () => {
    const { decoder, kept } = unframed();
    decoder.push(Buffer.from('GET / HTTP/1.1 MSH|x\r\nMSX|\r', 'latin1'));
    expect(kept).toEqual([]);
    const noise = decoder.takeNoise();
    // The LF at the next line's start is a blank, ignored but no noise.
    expect(noise?.bytes).toBe(26);
    expect(noise?.preview.toString('latin1')).toBe('GET / HTTP/1.1 MSH|x\rMSX|\r');
    expect(decoder.ignoredBytes).toBe(27);
    decoder.push(Buffer.from(`\n${MSG_A}`, 'latin1'));
    decoder.end();
    expect(kept.map((k) => k.head.toString('latin1'))).toEqual([MSG_A]);
  });

  it('beyond maxFrameBytes only the head is kept, and the size counted', () => {
    const { decoder, kept } = unframed(100);
    const big = MSG_A.repeat(5);
    decoder.push(Buffer.from(big, 'latin1'));
    expect(decoder.unframedTruncated).toBe(true);
    decoder.endUnframed();
    expect(kept.map((k) => [k.head.toString('latin1'), k.size, k.truncated])).toEqual([[big.slice(0, 64), big.length, true]]);
  });

  it('without onUnframed, HL7 outside frames is counted as ignored, as before', () => {
    const { decoder, frames } = collect();
    decoder.push(Buffer.from(MSG_A, 'latin1'));
    decoder.push(wrapFrame(MSG_B));
    expect(frames).toEqual([MSG_B]);
    expect(decoder.ignoredBytes).toBe(MSG_A.length);
  });
});

describe('wrapFrame / unwrapFrame', () => {
  it('round-trips a message', () => {
    expect(unwrapFrame(wrapFrame(MSG_A)).toString('latin1')).toBe(MSG_A);
  });
  it('leaves an unwrapped message unchanged', () => {
    const raw = Buffer.from(MSG_A, 'latin1');
    expect(unwrapFrame(raw)).toBe(raw);
  });
});
