import { MLLP } from './mllp-decoder.ts';

/** Wrap one message in an MLLP block: VT … FS CR (HL7 v2.5 Appendix C.4.3). */
export function wrapFrame(content: Buffer | string, encoding: BufferEncoding = 'utf8'): Buffer {
  if (typeof content === 'string') {
    // Encode straight into the frame (no intermediate buffer).
    const length = encoding === 'latin1' || encoding === 'binary' || encoding === 'ascii' ? content.length : Buffer.byteLength(content, encoding);
    const out = Buffer.allocUnsafe(length + 3);
    out[0] = MLLP.VT;
    const written = out.write(content, 1, length, encoding);
    out[written + 1] = MLLP.FS;
    out[written + 2] = MLLP.CR;
    return written === length ? out : out.subarray(0, written + 3);
  }
  const out = Buffer.allocUnsafe(content.length + 3);
  out[0] = MLLP.VT;
  content.copy(out, 1);
  out[content.length + 1] = MLLP.FS;
  out[content.length + 2] = MLLP.CR;
  return out;
}

/**
 * The content of a single MLLP block (VT … FS CR), or the input unchanged when it is not wrapped.
 * Used for corpus `.mllp` files and for stored ACKs that are re-assembled into a batch reply.
 */
export function unwrapFrame(block: Buffer): Buffer {
  let start = 0;
  let end = block.length;
  while (start < end && (block[start] === MLLP.CR || block[start] === MLLP.LF)) start++;
  if (block[start] !== MLLP.VT) return block;
  start++;
  while (end > start && (block[end - 1] === MLLP.CR || block[end - 1] === MLLP.LF)) end--;
  if (block[end - 1] === MLLP.FS) end--;
  return block.subarray(start, end);
}

/**
 * The contents of the MLLP blocks (VT … FS CR) in `bytes`: one for an original-mode reply, two
 * for an enhanced-mode one (commit ACK, then application ACK). Bytes without framing: themselves.
 */
export function unwrapFrames(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = bytes.indexOf(MLLP.VT);
  if (at === -1) return [bytes];
  while (at !== -1) {
    let end = bytes.indexOf(MLLP.FS, at + 1);
    if (end === -1) end = bytes.length;
    out.push(bytes.subarray(at + 1, end));
    at = bytes.indexOf(MLLP.VT, end);
  }
  return out;
}
