import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SerialPort } from 'serialport';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAstmMessage, splitRecordLines } from '../../gateway/src/astm/records.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { startPtyPair, type PtyPair } from '../fixtures/astm-link/pty-pair.ts';
import { corpusFiles, corpusKind, corpusMessages } from '../fixtures/astm/corpus.ts';
import { fileWriter, getJson, startGatewayProcess, TEST_LISTENERS, until, type GatewayProcess } from '../fixtures/gateway-process.ts';
import { prng } from '../fixtures/prng.ts';

/**
 * An adversarial audit of the ASTM path, the way an analyzer with a glitchy line or odd firmware
 * behaves. A real gateway process (`lab-gateway start`) with the generic-astm profile listens for
 * an analyzer on TCP (and, in a smaller round, on a socat pty pair); a simulated analyzer sends it
 * seeded mutations of the corpus transmissions (../shared/corpus/astm, read in place):
 *
 *   flipped bytes inside frames (checksum left as it was: refused; recomputed: the record text
 *   changes and is taken), truncated frames and frames without ETX (the analyzer's reply timer
 *   then ends the session with EOT), frames split at every position, a frame sent again after its
 *   ACK, wrong frame numbers, ENQ in the middle of a transmission, frames longer than 247
 *   characters (taken) and longer than the site's limit (refused), wrong delimiters in the H
 *   record, empty frames and records, escape sequences, binary garbage and EOT without ENQ
 *   between transmissions, a transmission without EOT.
 *
 * The analyzer behaves as LIS1-A has it: a refused frame is sent again (at most 6 times), a frame
 * without answer is given up with EOT (its reply timer), a transmission cut off is sent again
 * whole. After every mutation a clean transmission must go through.
 *
 * Invariants (DESIGN.md §2), not implementation details:
 *  - the gateway process stays up, and exits cleanly on SIGTERM at the end;
 *  - every ENQ and every whole frame is answered ACK or NAK, nothing else, and nothing more (a
 *    byte the gateway writes where none is expected shows up in place of the next answer);
 *  - the store holds exactly what was expected, byte for byte: every transmission whose end frame
 *    was ACKed once as accepted (its raw bytes from its ENQ on), every refused or cut off one once
 *    as rejected with a reason, nothing else (no duplicate from a frame sent again, nothing lost).
 *
 * The PRNG is seeded: a failure repeats. No timed assertion: the analyzer waits for answers (a
 * missing answer fails after REPLY_MS with the gateway's bytes in the message).
 * Site override: `maxIncomingFrame: 4000` (a frame over 4,000 bytes is refused), documented in
 * ingress/astm/README.md "Timers and limits".
 */

const REPLY_MS = 10_000;
const MAX_FRAME = 4_000;
const ENQ = 0x05;
const EOT = 0x04;
const ACK = 0x06;
const NAK = 0x15;
const STX = 0x02;
const ETX = 0x03;
const ETB = 0x17;

const pick = <T>(rnd: () => number, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
const int = (rnd: () => number, lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- the corpus ------------------------------------------------------------------------------

/** Corpus messages an analyzer sends as results (H … L, no host query: the gateway would answer it). */
const pool = corpusFiles()
  .filter((f) => corpusKind(f) !== 'native')
  .flatMap((f) => corpusMessages(f))
  .filter((text) => {
    const recs = splitRecordLines(text);
    if (recs.some((r) => r.startsWith('Q')) || !recs.at(-1)?.startsWith('L') || text.length > 8_000 || /[\x00-\x0c\x0e-\x1f]/.test(text)) return false;
    try {
      parseAstmMessage(text);
      return true;
    } catch {
      return false;
    }
  });

/** The records of a corpus message with H.3 (message control id) set to `tag`: every transmission is its own message. */
function tagged(text: string, tag: string): string[] {
  const recs = splitRecordLines(text);
  const h = recs[0] as string;
  const fd = h[1] as string;
  const f = h.split(fd);
  while (f.length < 3) f.push('');
  f[2] = tag;
  recs[0] = f.join(fd);
  return recs;
}

// ---- frames, built here (independent of the gateway's code) ---------------------------------

interface Part {
  text: Buffer;
  end: boolean; // ETX (else ETB)
}

function partsOf(records: string[], maxText = 240): Part[] {
  const parts: Part[] = [];
  for (const r of records) {
    const bytes = Buffer.from(r + '\r', 'latin1');
    for (let off = 0; off < bytes.length; off += maxText) parts.push({ text: bytes.subarray(off, off + maxText), end: off + maxText >= bytes.length });
  }
  return parts;
}

function frame(fnByte: number, text: Buffer, end: boolean): Buffer {
  const term = end ? ETX : ETB;
  let sum = fnByte + term;
  for (const b of text) sum += b;
  const cs = (sum & 0xff).toString(16).toUpperCase().padStart(2, '0');
  return Buffer.concat([Buffer.from([STX, fnByte]), text, Buffer.from([term]), Buffer.from(cs + '\r\n', 'latin1')]);
}

/** The frames of a transmission, FN 1, 2, … 7, 0, 1 … */
const framesOf = (parts: Part[]): Buffer[] => parts.map((p, i) => frame(0x30 + ((i + 1) % 8), p.text, p.end));
const fnOf = (i: number): number => (i + 1) % 8;

// ---- the analyzer ------------------------------------------------------------------------------

interface Expected {
  status: 'accepted' | 'rejected';
  raw: Buffer;
  reason?: RegExp;
  what: string;
}

/** The simulated analyzer's side of a line, and what the store must hold once it is done. */
class Analyzer {
  readonly sim: AnalyzerSim;
  readonly expected: Expected[] = [];
  /** Bytes written since the message being sent began (its ENQ, or the previous message's end). */
  #pending: Buffer[] = [];
  replies = 0;
  readonly what: string;
  constructor(write: (b: Buffer) => void, what: string) {
    this.sim = new AnalyzerSim(write);
    this.what = what;
  }

  /** Write bytes, in pieces when `cuts` are given (each a separate write, a pause between). */
  async put(bytes: Buffer, cuts: number[] = []): Promise<void> {
    this.#pending.push(bytes);
    let at = 0;
    for (const c of [...cuts, bytes.length]) {
      if (c <= at) continue;
      this.sim.write(bytes.subarray(at, c));
      at = c;
      if (c < bytes.length) await sleep(1);
    }
  }

  async reply(context: string): Promise<number> {
    let b: number;
    try {
      b = await this.sim.nextByte(REPLY_MS);
    } catch (err) {
      throw new Error(`${this.what}: ${context}: ${(err as Error).message}`);
    }
    this.replies++;
    expect([ACK, NAK], `${this.what}: ${context}: answered ${b}`).toContain(b);
    return b;
  }

  async expectReply(want: number, context: string): Promise<void> {
    const got = await this.reply(context);
    expect(got === ACK ? 'ACK' : 'NAK', `${this.what}: ${context}`).toBe(want === ACK ? 'ACK' : 'NAK');
  }

  /** The bytes written since the message began, as the store must keep them. */
  keep(status: Expected['status'], what: string, reason?: RegExp): void {
    this.expected.push({ status, raw: Buffer.concat(this.#pending), what: `${this.what}: ${what}`, ...(reason ? { reason } : {}) });
    this.#pending = [];
  }

  /** A message the store must hold, its bytes given (not the ones written since the last keep). */
  expect(status: Expected['status'], raw: Buffer, what: string, reason?: RegExp): void {
    this.expected.push({ status, raw, what: `${this.what}: ${what}`, ...(reason ? { reason } : {}) });
  }

  /** Bytes the store keeps nothing of (outside any message, or after a message's end). */
  forget(): void {
    this.#pending = [];
  }

  async enq(context: string): Promise<void> {
    this.forget();
    await this.put(Buffer.from([ENQ]));
    await this.expectReply(ACK, `${context}: ENQ`);
  }

  async eot(): Promise<void> {
    await this.put(Buffer.from([EOT]));
  }

  /** Send a frame until it is ACKed (LIS1-A §6.5.1.2: at most 6 times). */
  async frameAcked(f: Buffer, context: string, cuts: number[] = []): Promise<void> {
    await this.put(f, cuts);
    await this.expectReply(ACK, context);
  }

  /** A whole transmission, every frame ACKed: kept once as accepted. */
  async deliver(parts: Part[], context: string, options: { eot?: boolean; cuts?: (f: Buffer) => number[] } = {}): Promise<void> {
    await this.enq(context);
    const frames = framesOf(parts);
    for (const [i, f] of frames.entries()) await this.frameAcked(f, `${context}: frame ${i + 1}/${frames.length}`, options.cuts?.(f));
    this.keep('accepted', context);
    if (options.eot !== false) await this.eot();
    this.forget();
  }
}

// ---- mutations --------------------------------------------------------------------------------

const KINDS = [
  'clean',
  'flip-bad-checksum',
  'flip-good-checksum',
  'truncated',
  'missing-etx',
  'duplicate-after-ack',
  'wrong-fn',
  'enq-mid',
  'long-frames',
  'too-long-frame',
  'bad-h-delimiters',
  'empty-records',
  'escapes',
  'garbage-between',
  'eot-without-enq',
  'missing-eot',
  'no-wait',
  'glitch-control',
  'two-in-session',
] as const;
type Kind = (typeof KINDS)[number];

const STRUCTURAL = new Set([STX, ETX, ETB, EOT, ENQ]);

/** One mutated transmission of `text` (tagged `tag`), as the analyzer would go through it. */
async function mutated(a: Analyzer, kind: Kind, text: string, tag: string, rnd: () => number): Promise<void> {
  const recs = tagged(text, tag);
  const parts = partsOf(recs);
  const frames = framesOf(parts);
  const ctx = `${kind} ${tag}`;
  const H = recs[0] as string;
  const [fd, rd, cd, ed] = [H[1], H[2], H[3], H[4]] as [string, string, string, string];
  switch (kind) {
    case 'clean':
      return a.deliver(parts, ctx);

    case 'flip-bad-checksum': {
      // A byte garbled on the line between STX and the checksum: refused, sent again clean.
      const k = int(rnd, 0, frames.length - 1);
      const f = frames[k] as Buffer;
      const termAt = f.length - 5;
      let p: number;
      do p = int(rnd, 1, f.length - 3);
      while (p === termAt);
      let v: number;
      do v = int(rnd, 0, 255);
      while (v === f[p] || STRUCTURAL.has(v) || (p >= f.length - 4 && parseInt(String.fromCharCode(v), 16) === parseInt(String.fromCharCode(f[p] as number), 16)));
      const bad = Buffer.from(f);
      bad[p] = v;
      await a.enq(ctx);
      for (let i = 0; i < frames.length; i++) {
        if (i === k) {
          await a.put(bad);
          await a.expectReply(NAK, `${ctx}: frame ${i + 1} byte ${p} = ${v}`);
        }
        await a.frameAcked(frames[i] as Buffer, `${ctx}: frame ${i + 1}`);
      }
      a.keep('accepted', ctx);
      await a.eot();
      return;
    }

    case 'flip-good-checksum': {
      // A byte of a field changed, checksum right (firmware oddity): the text as sent is taken.
      const candidates = recs.map((r, i) => ({ r, i })).filter(({ r, i }) => (i === 0 ? r.length > 6 + tag.length + 1 : r.length > 2));
      const { r, i } = pick(rnd, candidates);
      const from = i === 0 ? H.indexOf(tag) + tag.length : 2;
      const p = int(rnd, from, r.length - 1);
      let v: number;
      do v = rnd() < 0.7 ? int(rnd, 0x20, 0x7e) : int(rnd, 0xa0, 0xff);
      while (v === r.charCodeAt(p));
      const changed = [...recs];
      changed[i] = r.slice(0, p) + String.fromCharCode(v) + r.slice(p + 1);
      return a.deliver(partsOf(changed), ctx);
    }

    case 'truncated':
    case 'missing-etx': {
      // The frame never ends (cut before its checksum's second digit, or its ETX and checksum
      // lost): no answer can come; the analyzer's reply timer ends the session (EOT), and it sends
      // the transmission again later.
      const k = int(rnd, 0, frames.length - 1);
      const f = frames[k] as Buffer;
      const cut = kind === 'truncated' ? f.subarray(0, int(rnd, 1, f.length - 3)) : Buffer.concat([f.subarray(0, f.length - 5), Buffer.from('\r\n')]);
      await a.enq(ctx);
      for (let i = 0; i < k; i++) await a.frameAcked(frames[i] as Buffer, `${ctx}: frame ${i + 1}`);
      await a.put(cut);
      await a.eot();
      a.keep('rejected', `${ctx}: cut frame ${k + 1}`, /incomplete message/);
      return a.deliver(parts, `${ctx}: sent again`);
    }

    case 'duplicate-after-ack': {
      // The ACK was lost for the analyzer: it sends the same frame (same FN) again.
      const k = int(rnd, 0, frames.length - 1);
      await a.enq(ctx);
      for (let i = 0; i < frames.length; i++) {
        await a.frameAcked(frames[i] as Buffer, `${ctx}: frame ${i + 1}`);
        if (i === k) {
          if (i === frames.length - 1) a.keep('accepted', ctx);
          await a.frameAcked(frames[i] as Buffer, `${ctx}: frame ${i + 1} again`);
        }
      }
      if (k !== frames.length - 1) a.keep('accepted', ctx);
      await a.eot();
      return;
    }

    case 'wrong-fn': {
      // A frame number out of sequence (checksum right): refused; the right one is taken.
      const k = int(rnd, 0, frames.length - 1);
      const expectedFn = fnOf(k);
      const previous = k > 0 ? fnOf(k - 1) : -1;
      const choices = [0, 1, 2, 3, 4, 5, 6, 7].filter((n) => n !== expectedFn && n !== previous).map((n) => 0x30 + n);
      choices.push(0x38, 0x39, 0x41, 0x20);
      const wrong = frame(pick(rnd, choices), (parts[k] as Part).text, (parts[k] as Part).end);
      await a.enq(ctx);
      for (let i = 0; i < frames.length; i++) {
        if (i === k) {
          await a.put(wrong);
          await a.expectReply(NAK, `${ctx}: frame ${i + 1} with FN ${String.fromCharCode(wrong[1] as number)}`);
        }
        await a.frameAcked(frames[i] as Buffer, `${ctx}: frame ${i + 1}`);
      }
      a.keep('accepted', ctx);
      await a.eot();
      return;
    }

    case 'enq-mid': {
      // The analyzer restarts in the middle of a transmission: what came is kept, the new one taken.
      const k = int(rnd, 0, frames.length - 1);
      await a.enq(ctx);
      for (let i = 0; i < k; i++) await a.frameAcked(frames[i] as Buffer, `${ctx}: frame ${i + 1}`);
      if (k > 0) a.keep('rejected', `${ctx}: cut after ${k} frames`, /incomplete message \(re-establishment\)/);
      return a.deliver(parts, `${ctx}: started over`);
    }

    case 'long-frames':
      // Frames of 248 … 3,900 characters (E1381-95 allows 247; LIS1-A §6.3.1 more): taken.
      return a.deliver(partsOf(recs, int(rnd, 248, MAX_FRAME - 100)), ctx);

    case 'too-long-frame': {
      // The whole message in one frame longer than the site's limit: refused six times, given up.
      const long = [...recs];
      long.splice(1, 0, `C${fd}1${fd}I${fd}${'x'.repeat(MAX_FRAME + int(rnd, 0, 500))}${fd}G`);
      const one = frame(0x31, Buffer.from(long.join('\r') + '\r', 'latin1'), true);
      await a.enq(ctx);
      for (let n = 0; n < 6; n++) {
        await a.put(one);
        await a.expectReply(NAK, `${ctx}: try ${n + 1}`);
      }
      await a.eot();
      a.keep('rejected', ctx, new RegExp(`incomplete message .*frame longer than ${MAX_FRAME} bytes`));
      return a.deliver(parts, `${ctx}: within the limit`);
    }

    case 'bad-h-delimiters': {
      // Firmware that sends no usable delimiters: every frame is taken, the end frame refused
      // (the record layer rejects the message, kept raw once), its retransmissions too.
      const variants = [`H${fd}${fd}${cd}${ed}`, `H${fd}${rd}${cd}${fd}`, `H${fd}A${cd}${ed}`, `H1${rd}${cd}${ed}`, `H${rd}${fd}${cd}${ed}`, `h${fd}${rd}${cd}${ed}`, `H${fd}${rd}${rd}${ed}`];
      const bad = [...recs];
      bad[0] = pick(rnd, variants) + H.slice(5);
      const bparts = partsOf(bad);
      const bframes = framesOf(bparts);
      await a.enq(ctx);
      for (let i = 0; i < bframes.length - 1; i++) await a.frameAcked(bframes[i] as Buffer, `${ctx}: frame ${i + 1}`);
      const last = bframes.at(-1) as Buffer;
      await a.put(last);
      await a.expectReply(NAK, `${ctx}: end frame (${JSON.stringify(bad[0]?.slice(0, 5))})`);
      a.keep('rejected', ctx, /./);
      for (let n = 1; n < 6; n++) {
        await a.put(last);
        await a.expectReply(NAK, `${ctx}: end frame again (${n})`);
      }
      await a.eot();
      a.forget();
      return a.deliver(parts, `${ctx}: fixed`);
    }

    case 'empty-records': {
      // Empty frames (no text, a lone CR) and records of empty fields between the records: taken.
      const out: Part[] = [];
      const base = partsOf(recs);
      for (const [i, p] of base.entries()) {
        out.push(p);
        if (i < base.length - 1 && p.end && rnd() < 0.5) {
          const e = pick(rnd, ['', '\r', `C${fd}1${fd}${fd}${fd}\r`]);
          out.push({ text: Buffer.from(e, 'latin1'), end: e !== '' && rnd() < 0.5 });
        }
      }
      return a.deliver(out, ctx);
    }

    case 'escapes': {
      // Escape sequences, valid and not (LIS2-A2 §5.4.5), in fields of any record but H: taken.
      const seqs = [`${ed}F${ed}`, `${ed}S${ed}`, `${ed}R${ed}`, `${ed}E${ed}`, `${ed}X0D0A${ed}`, `${ed}H${ed}`, `${ed}N${ed}`, `${ed}Zab${ed}`, `${ed}Q${ed}`, `${ed}X${ed}`, ed, `${ed}${ed}`, `${ed}XZZ${ed}`, `${ed}X00${ed}`, `${ed}X`];
      const out = [...recs];
      for (let n = int(rnd, 1, 4); n > 0; n--) {
        const i = int(rnd, 1, out.length - 1);
        const f = (out[i] as string).split(fd);
        const j = int(rnd, 1, Math.max(1, f.length - 1));
        f[j] = (f[j] ?? '') + pick(rnd, seqs);
        out[i] = f.join(fd);
      }
      return a.deliver(partsOf(out), ctx);
    }

    case 'garbage-between': {
      // Line noise between transmissions (no ENQ in it): ignored, never answered.
      const g = Buffer.alloc(int(rnd, 1, 64));
      for (let i = 0; i < g.length; i++) {
        let v: number;
        do v = int(rnd, 0, 255);
        while (v === ENQ);
        g[i] = v;
      }
      await a.put(g);
      a.forget();
      return a.deliver(parts, ctx);
    }

    case 'eot-without-enq':
      await a.put(Buffer.alloc(int(rnd, 1, 3), EOT));
      a.forget();
      return a.deliver(parts, ctx);

    case 'missing-eot':
      // No EOT after the last frame: the next ENQ (the next transmission) starts over.
      return a.deliver(parts, ctx, { eot: false });

    case 'no-wait': {
      // Firmware that does not wait for the answers: one or two whole transmissions in one write,
      // answered afterwards, in order, one answer per ENQ and per frame.
      const one = Buffer.concat([Buffer.from([ENQ]), ...frames]);
      const two = rnd() < 0.5 ? Buffer.concat([Buffer.from([ENQ]), ...framesOf(partsOf(tagged(pick(rnd, pool), `${tag}b`)))]) : undefined;
      a.forget();
      // The EOT between them may be missing: the second ENQ then starts over.
      await a.put(Buffer.concat([one, ...(rnd() < 0.7 ? [Buffer.from([EOT])] : []), ...(two ? [two, Buffer.from([EOT])] : [])]));
      a.forget();
      const answers = (two ? 2 : 1) + frames.length + (two ? two.filter((x) => x === STX).length : 0);
      for (let n = 0; n < answers; n++) await a.expectReply(ACK, `${ctx}: answer ${n + 1}/${answers}`);
      a.expect('accepted', one, ctx);
      if (two) a.expect('accepted', two, `${ctx}: second transmission`);
      return;
    }

    case 'two-in-session': {
      // Two messages in one session (LIS2-A2 allows H…L H…L), frame numbers going on; the second
      // one cut off in a frame half of the time (its reply timer, EOT): the first is taken, what
      // came of the second is kept from its first frame on.
      const second = partsOf(tagged(pick(rnd, pool), `${tag}b`));
      const all = framesOf([...parts, ...second]);
      await a.enq(ctx);
      for (let i = 0; i < parts.length; i++) await a.frameAcked(all[i] as Buffer, `${ctx}: frame ${i + 1}`);
      a.keep('accepted', ctx);
      if (rnd() < 0.5) {
        for (let i = parts.length; i < all.length; i++) await a.frameAcked(all[i] as Buffer, `${ctx}: frame ${i + 1}`);
        a.keep('accepted', `${ctx}: second message`);
        await a.eot();
        a.forget();
        return;
      }
      const k = int(rnd, parts.length, all.length - 1);
      for (let i = parts.length; i < k; i++) await a.frameAcked(all[i] as Buffer, `${ctx}: frame ${i + 1}`);
      const f = all[k] as Buffer;
      await a.put(f.subarray(0, int(rnd, 1, f.length - 3)));
      await a.eot();
      a.keep('rejected', `${ctx}: second message cut`, /incomplete message \(eot-before-end\)/);
      return;
    }

    case 'glitch-control': {
      // A text byte turned into a control character of the link on the line (LIS1-A §6.6 keeps
      // them out of frame text). ETX/ETB/STX: the frame is refused and sent again. EOT: the session
      // ends there (kept as a partial), the analyzer hears nothing, gives up and sends it all again.
      // ENQ: a new session (ACK, which the analyzer takes for its frame's): its next frame is out of
      // sequence and refused six times, the analyzer gives up; both pieces kept; sent again whole.
      const ks = frames.map((_, k) => k).filter((k) => k < frames.length - 1 && fnOf(k + 1) !== 1 && (frames[k] as Buffer).length >= 12);
      if (ks.length === 0) return a.deliver(parts, ctx);
      const k = pick(rnd, ks);
      const f = frames[k] as Buffer;
      const termAt = f.length - 5;
      const c = pick(rnd, [ETX, ETB, STX, EOT, ENQ]);
      const p = int(rnd, 2, termAt - 4);
      const bad = Buffer.from(f);
      bad[p] = c;
      const what = `${ctx}: frame ${k + 1} byte ${p} = ${c}`;
      await a.enq(ctx);
      for (let i = 0; i < k; i++) await a.frameAcked(frames[i] as Buffer, `${ctx}: frame ${i + 1}`);
      if (c === ETX || c === ETB || c === STX) {
        await a.put(bad);
        await a.expectReply(NAK, what);
        for (let i = k; i < frames.length; i++) await a.frameAcked(frames[i] as Buffer, `${ctx}: frame ${i + 1}`);
        a.keep('accepted', ctx);
        await a.eot();
        return;
      }
      const head = Buffer.concat([Buffer.from([ENQ]), ...frames.slice(0, k), bad.subarray(0, p + (c === EOT ? 1 : 0))]);
      if (c === EOT) {
        await a.put(bad);
        await a.eot(); // its reply timer ran out
        a.expect('rejected', head, `${what}: cut`, /incomplete message \(eot-before-end\)/);
        a.forget();
        return a.deliver(parts, `${ctx}: sent again`);
      }
      await a.put(bad);
      await a.expectReply(ACK, `${what}: the new session`);
      const next = frames[k + 1] as Buffer;
      for (let n = 0; n < 6; n++) {
        await a.put(next);
        await a.expectReply(NAK, `${what}: frame ${k + 2} out of sequence (${n + 1})`);
      }
      await a.eot();
      a.expect('rejected', head, `${what}: before the ENQ`, /incomplete message \(re-establishment\)/);
      a.expect('rejected', Buffer.concat([bad.subarray(p), ...Array.from({ length: 6 }, () => next), Buffer.from([EOT])]), `${what}: after the ENQ`, /incomplete message \(eot-before-end\) after 6 frames refused: frame number/);
      a.forget();
      return a.deliver(parts, `${ctx}: sent again`);
    }

    default:
      kind satisfies never;
  }
}

// ---- the gateway --------------------------------------------------------------------------------

interface Stored {
  status: string;
  raw: Buffer;
  reason?: string;
}

let dir: string | undefined;
let gw: GatewayProcess | undefined;
const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await gw?.stop();
  gw = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

async function startGateway(analyzer: string): Promise<{ statusUrl: string; analyzerPort?: number; dataDir: string }> {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-astm-fuzz-'));
  const dataDir = path.join(dir, 'data');
  const cfg = await fileWriter(() => dir as string)([`gateway: { id: fuzz, dataDir: ${dataDir} }`, TEST_LISTENERS, 'relay: { enabled: false }', `analyzers: [ ${analyzer} ]`, ''].join('\n'));
  gw = startGatewayProcess(cfg);
  const ready = await gw.ready;
  expect(ready, gw.err()).toBeDefined();
  const port = ready?.analyzers.fz?.port;
  return { statusUrl: (ready?.status.url ?? '').replace(/\/$/, ''), ...(port ? { analyzerPort: port } : {}), dataDir };
}

/** The gateway stayed up all along: it answers, then stops cleanly; its store is read afterwards. */
async function stopAndRead(statusUrl: string, dataDir: string): Promise<Stored[]> {
  const g = gw as GatewayProcess;
  expect(g.child.exitCode, g.err()).toBeNull();
  expect(g.child.signalCode).toBeNull();
  const status = await getJson<{ endpoints: Array<{ id: string }> }>(`${statusUrl}/api/status`);
  expect(status.endpoints.some((e) => e.id === 'fz')).toBe(true);
  await g.stop();
  expect((await g.exited).code, g.err()).toBe(0);
  gw = undefined;
  const store = await EventStore.open({ dataDir, pruneIntervalMs: 0 });
  try {
    const out: Stored[] = [];
    // Page by page (a listing holds at most 1,000, and reads a bounded part of the log).
    let before: string | undefined;
    for (;;) {
      const page = await store.listMessagePage({ endpoint: 'fz', limit: 1000, ...(before ? { before } : {}) });
      for (const m of page.messages) {
        const full = await store.getMessage(m.id);
        out.push({ status: m.status, raw: full?.raw ?? Buffer.alloc(0), ...(m.rejectReason ? { reason: m.rejectReason } : {}) });
      }
      if (!page.next) return out;
      before = page.next;
    }
  } finally {
    await store.close();
  }
}

const show = (b: Buffer): string => JSON.stringify(b.toString('latin1').slice(0, 160));

/** The store holds exactly the expected messages: same status, same raw bytes, as many times; rejected ones with their reason. */
function expectStoreHolds(stored: Stored[], expected: Expected[]): void {
  const key = (status: string, raw: Buffer): string => `${status}:${raw.toString('latin1')}`;
  const want = new Map<string, Expected[]>();
  for (const e of expected) want.set(key(e.status, e.raw), [...(want.get(key(e.status, e.raw)) ?? []), e]);
  const got = new Map<string, Stored[]>();
  for (const s of stored) got.set(key(s.status, s.raw), [...(got.get(key(s.status, s.raw)) ?? []), s]);
  const problems: string[] = [];
  for (const [k, es] of want) {
    const ss = got.get(k) ?? [];
    if (ss.length !== es.length) problems.push(`${es[0]?.what}: expected ${es.length} ${es[0]?.status} message(s) with raw ${show(es[0]?.raw as Buffer)}, stored ${ss.length}`);
    for (const s of ss) {
      if (s.status === 'rejected') {
        if (!s.reason) problems.push(`${es[0]?.what}: rejected without a reason`);
        else if (!es.some((e) => e.reason === undefined || e.reason.test(s.reason as string))) problems.push(`${es[0]?.what}: reason ${JSON.stringify(s.reason)} does not match ${es.map((e) => String(e.reason)).join(' or ')}`);
      }
    }
  }
  for (const [k, ss] of got) if (!want.has(k)) problems.push(`stored but not expected: ${ss.length} ${ss[0]?.status} (${ss[0]?.reason ?? ''}) raw ${show(ss[0]?.raw as Buffer)}`);
  expect(problems, problems.slice(0, 10).join('\n')).toEqual([]);
}

/** `rounds` seeded mutations, each followed by a clean transmission (the link recovers). */
async function fuzz(a: Analyzer, seed: number, rounds: number): Promise<Map<Kind, number>> {
  const rnd = prng(seed);
  const counts = new Map<Kind, number>();
  for (let i = 0; i < rounds; i++) {
    const kind = KINDS[i % KINDS.length] as Kind;
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
    await mutated(a, kind, pick(rnd, pool), `FZ${seed}-${i}`, rnd);
    await a.deliver(partsOf(tagged(pick(rnd, pool), `OK${seed}-${i}`)), `round ${i} (${kind}): next good transmission`);
  }
  return counts;
}

/** Bytes a glitchy line or a confused converter puts into a stream. */
const NOISE_INSERTS: Buffer[] = [[ENQ], [EOT], [STX], [ETX], [ETB], [0x0d], [0x0a], [0x0d, 0x0a], [ACK], [NAK], [0x00], [0xff], [STX, 0x31], [ETX, 0x30, 0x30, 0x0d, 0x0a]].map((b) => Buffer.from(b));

/** The whole byte stream of a transmission, mutated as the HL7 fuzz test does (flip, cut, insert, drop, duplicate). */
function noiseStream(rnd: () => number, tag: string): Buffer {
  let b = Buffer.concat([Buffer.from([ENQ]), ...framesOf(partsOf(tagged(pick(rnd, pool), tag))), Buffer.from([EOT])]);
  if (rnd() < 0.3) b = Buffer.concat([b, Buffer.from([ENQ]), ...framesOf(partsOf(tagged(pick(rnd, pool), `${tag}b`))), Buffer.from([EOT])]);
  for (let k = int(rnd, 1, 4); k > 0; k--) {
    const at = int(rnd, 0, b.length);
    switch (int(rnd, 0, 4)) {
      case 0:
        if (b.length > 0) b[Math.min(at, b.length - 1)] = int(rnd, 0, 255);
        break;
      case 1:
        b = b.subarray(0, Math.max(1, at));
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), pick(rnd, NOISE_INSERTS), b.subarray(at)]);
        break;
      case 3:
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + int(rnd, 0, 40))]);
        break;
      default: {
        const len = int(rnd, 0, 80);
        b = Buffer.concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)]);
      }
    }
  }
  return b;
}

/** ENQ, later STX, no EOT between: a frame was begun in a session, so something of it must be kept. */
function beginsAFrame(b: Buffer): boolean {
  let inSession = false;
  for (const x of b) {
    if (x === ENQ) inSession = true;
    else if (x === EOT) inSession = false;
    else if (x === STX && inSession) return true;
  }
  return false;
}

/**
 * `count` noise streams, each on its own connection, written in pieces, then the connection closed
 * by the analyzer. Every byte the gateway writes back is ACK or NAK. Returns the streams.
 */
async function noiseConnections(port: number, seed: number, count: number): Promise<Buffer[]> {
  const rnd = prng(seed);
  const streams: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const stream = noiseStream(rnd, `NZ${seed}-${i}`);
    streams.push(stream);
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.on('error', () => undefined);
    let answers = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => (answers = Buffer.concat([answers, d])));
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    const cuts = Array.from({ length: int(rnd, 0, 4) }, () => int(rnd, 1, stream.length - 1)).sort((x, y) => x - y);
    let at = 0;
    for (const c of [...cuts, stream.length]) {
      if (c <= at) continue;
      socket.write(stream.subarray(at, c));
      at = c;
      await sleep(1);
    }
    socket.end();
    await closed;
    expect([...answers].filter((x) => x !== ACK && x !== NAK), `noise ${i}: the gateway answered only ACK or NAK`).toEqual([]);
  }
  return streams;
}

/** What the store holds beyond the expected messages comes from the noise, byte for byte, and every noise stream that began a frame left something. */
function splitNoise(stored: Stored[], expected: Expected[], streams: Buffer[]): Stored[] {
  const exact = new Map<string, number>();
  const reasons = new Map<string, Array<RegExp | undefined>>();
  for (const e of expected) {
    const k = `${e.status}:${e.raw.toString('latin1')}`;
    exact.set(k, (exact.get(k) ?? 0) + 1);
    reasons.set(k, [...(reasons.get(k) ?? []), e.reason]);
  }
  const rest: Stored[] = [];
  const fromNoise: Stored[] = [];
  for (const s of stored) {
    const k = `${s.status}:${s.raw.toString('latin1')}`;
    const n = exact.get(k) ?? 0;
    const fits = s.status === 'accepted' || (reasons.get(k) ?? []).some((r) => r === undefined || r.test(s.reason ?? ''));
    if (n > 0 && fits) {
      // Expected first: a short piece kept of a transmission ("ENQ STX 1 H|\^&|") may also be
      // a piece of some noise stream.
      exact.set(k, n - 1);
      rest.push(s);
    } else if (streams.some((st) => st.includes(s.raw))) fromNoise.push(s);
    else rest.push(s);
  }
  for (const s of fromNoise) if (s.status === 'rejected') expect(s.reason, `noise kept ${show(s.raw)}`).toBeTruthy();
  streams.forEach((st, i) => {
    if (beginsAFrame(st)) expect(stored.some((s) => st.includes(s.raw)), `noise ${i} began a frame and left nothing: ${show(st)}`).toBe(true);
  });
  return rest;
}

describe('ASTM fuzz audit: a glitchy analyzer on a real gateway process', () => {
  it('the corpus gives enough transmissions to mutate', () => {
    expect(pool.length).toBeGreaterThan(15);
  });

  it('over TCP: every mutation answered ACK or NAK, kept exactly once as what it was, the link recovering', async () => {
    const { statusUrl, analyzerPort, dataDir } = await startGateway(`{ id: fz, profile: generic-astm, tcp: { listen: { host: 127.0.0.1, port: 0 } }, overrides: { maxIncomingFrame: ${MAX_FRAME} } }`);
    const socket = net.connect({ host: '127.0.0.1', port: analyzerPort as number });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    closers.push(() => socket.destroy());
    const a = new Analyzer((b) => socket.write(b), 'tcp');
    socket.on('data', (b: Buffer) => a.sim.feed(b));

    const counts = await fuzz(a, 20261207, KINDS.length * 8);
    expect([...counts.values()].every((n) => n >= 8)).toBe(true);

    // Frames split at every position: transmission j writes every frame in two pieces cut at j,
    // and one transmission goes byte by byte.
    const small = pool.reduce((s, t) => (t.length < s.length ? t : s));
    const splitParts = partsOf(tagged(small, 'SPLIT-ALL'), 60);
    const longest = Math.max(...framesOf(splitParts).map((f) => f.length));
    for (let j = 1; j < longest; j++) await a.deliver(partsOf(tagged(small, `SPLIT-${j}`), 60), `split at ${j}`, { cuts: (f) => [j] });
    await a.deliver(splitParts, 'byte by byte', { cuts: (f) => Array.from({ length: f.length }, (_, i) => i) });

    // Noise on other connections meanwhile, then the link still takes a good transmission.
    const streams = await noiseConnections(analyzerPort as number, 4242, 120);
    await a.deliver(partsOf(tagged(small, 'AFTER-NOISE')), 'after the noise');

    expect(a.sim.unread()).toBe('');
    expectStoreHolds(splitNoise(await stopAndRead(statusUrl, dataDir), a.expected, streams), a.expected);
  }, 120_000);

  it('over a serial line (socat pty pair): a smaller round, the same invariants', async () => {
    // The line first, so the gateway opens its end at once.
    const lineDir = await mkdtemp(path.join(tmpdir(), 'lgw-astm-fuzz-pty-'));
    closers.push(() => rm(lineDir, { recursive: true, force: true }));
    const pty: PtyPair = await startPtyPair(lineDir);
    closers.push(() => pty.kill());
    const { statusUrl, dataDir } = await startGateway(`{ id: fz, profile: generic-astm, serial: { path: ${pty.b} }, overrides: { maxIncomingFrame: ${MAX_FRAME} } }`);
    await until('the serial line open', async () => ((await getJson<{ endpoints: Array<{ id: string; state: string }> }>(`${statusUrl}/api/status`)).endpoints.find((e) => e.id === 'fz')?.state === 'connected' ? true : undefined));
    const port = new SerialPort({ path: pty.a, baudRate: 9600, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    closers.push(() => new Promise<void>((r) => (port.isOpen ? port.close(() => r()) : r())));
    const a = new Analyzer((b) => port.write(b), 'serial');
    port.on('data', (b: Buffer) => a.sim.feed(b));
    port.on('error', () => undefined);

    await fuzz(a, 7, KINDS.length * 2);

    expect(a.sim.unread()).toBe('');
    expectStoreHolds(await stopAndRead(statusUrl, dataDir), a.expected);
  }, 90_000);

  /**
   * An analyzer that does not wait for the answers (or a serial-to-LAN converter that buffers)
   * writes a whole transmission and the start of the next, then closes its connection: the first
   * message is being committed when the connection closes. The bytes behind it were dropped
   * (E1381Session.close forgot its queued input): the start of the second message vanished, kept
   * nowhere (ingress/astm README "Nothing received is dropped").
   */
  it('a connection closed while a message is committed keeps the bytes that came behind it', async () => {
    const { statusUrl, analyzerPort, dataDir } = await startGateway(`{ id: fz, profile: generic-astm, tcp: { listen: { host: 127.0.0.1, port: 0 } } }`);
    const expected: Expected[] = [];
    for (let i = 0; i < 5; i++) {
      const socket = net.connect({ host: '127.0.0.1', port: analyzerPort as number });
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      socket.on('error', () => undefined);
      socket.resume(); // the gateway's answers are read and dropped: it closes its end once they are
      const first = Buffer.concat([Buffer.from([ENQ]), ...framesOf(partsOf(tagged(pool[i] as string, `CLOSE-A${i}`)))]);
      const next = framesOf(partsOf(tagged(pool[i + 1] as string, `CLOSE-B${i}`)));
      const second = Buffer.concat([Buffer.from([ENQ]), ...next.slice(0, Math.max(1, next.length - 1))]);
      expected.push({ status: 'accepted', raw: first, what: `connection ${i}: the message committed` });
      expected.push({ status: 'rejected', raw: second, reason: /incomplete message \(closed\)/, what: `connection ${i}: the bytes behind it` });
      const closed = new Promise<void>((r) => socket.once('close', () => r()));
      socket.end(Buffer.concat([first, Buffer.from([EOT]), second]));
      await closed;
    }
    // The gateway has taken the connections' ends before it is stopped: one more round trip.
    const socket = net.connect({ host: '127.0.0.1', port: analyzerPort as number });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    closers.push(() => socket.destroy());
    const a = new Analyzer((b) => socket.write(b), 'tcp');
    socket.on('data', (b: Buffer) => a.sim.feed(b));
    await a.deliver(partsOf(tagged(pool[0] as string, 'CLOSE-LAST')), 'the next good transmission');
    expectStoreHolds(await stopAndRead(statusUrl, dataDir), [...expected, ...a.expected]);
  }, 60_000);

  /**
   * An analyzer that goes silent in the middle of a frame (switched off, cable pulled) and later
   * starts over: the receiver timer (LIS1-A §6.5.2, shortened to 1 s, the least a site may set, for this analyzer with
   * `overrides.frameTimeoutMs`) ends the session, and the cut transmission is kept. No timed
   * assertion: whether the timer or the analyzer's next ENQ ends it, the bytes kept are the same.
   */
  it('a silent analyzer: the link recovers, nothing received vanishes', async () => {
    const { statusUrl, analyzerPort, dataDir } = await startGateway(`{ id: fz, profile: generic-astm, tcp: { listen: { host: 127.0.0.1, port: 0 } }, overrides: { frameTimeoutMs: 1000 } }`);
    const socket = net.connect({ host: '127.0.0.1', port: analyzerPort as number });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    closers.push(() => socket.destroy());
    const a = new Analyzer((b) => socket.write(b), 'tcp');
    socket.on('data', (b: Buffer) => a.sim.feed(b));
    const rnd = prng(99);
    for (let i = 0; i < 6; i++) {
      const frames = framesOf(partsOf(tagged(pick(rnd, pool), `SILENT-${i}`)));
      const k = int(rnd, 0, frames.length - 1);
      const f = frames[k] as Buffer;
      await a.enq(`silent ${i}`);
      for (let j = 0; j < k; j++) await a.frameAcked(frames[j] as Buffer, `silent ${i}: frame ${j + 1}`);
      await a.put(f.subarray(0, int(rnd, 1, f.length - 3)));
      a.keep('rejected', `silent ${i}: cut`, /incomplete message \((receiver-timeout|re-establishment)\)/);
      await sleep(rnd() < 0.5 ? 1_200 : 10); // the analyzer is off a while, or back at once (the receiver timer may run out)
      await a.deliver(partsOf(tagged(pick(rnd, pool), `SILENT-OK-${i}`)), `silent ${i}: back`);
    }
    expect(a.sim.unread()).toBe('');
    expectStoreHolds(await stopAndRead(statusUrl, dataDir), a.expected);
  }, 60_000);

  /**
   * An analyzer that ignores the NAK at the end of a message the record layer refused (kept as
   * rejected) and goes on in the same session with its next message, its frame numbers going on,
   * then gives up (EOT). The frames it sent after are refused as out of sequence; they are new
   * data, not the refused end frame sent again, and must be kept once, as a message of their own
   * whose reason names the out-of-sequence frame. Before, the link counted them as part of the
   * message already kept and they were kept nowhere. The link then takes the next transmission.
   */
  it('an analyzer that ignores NAK after a refused message: what it sent after is kept once, the link recovers', async () => {
    const { statusUrl, analyzerPort, dataDir } = await startGateway(`{ id: fz, profile: generic-astm, tcp: { listen: { host: 127.0.0.1, port: 0 } } }`);
    const socket = net.connect({ host: '127.0.0.1', port: analyzerPort as number });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    closers.push(() => socket.destroy());
    const a = new Analyzer((b) => socket.write(b), 'tcp');
    socket.on('data', (b: Buffer) => a.sim.feed(b));
    const rnd = prng(77);
    for (let i = 0; i < 6; i++) {
      const recs = tagged(pick(rnd, pool), `DEAF-${i}`);
      const H = recs[0] as string;
      recs[0] = `H${H[1]}${H[1]}${H.slice(3)}`; // no usable delimiters: refused at its end
      const bad = framesOf(partsOf(recs));
      await a.enq(`deaf ${i}`);
      for (let j = 0; j < bad.length - 1; j++) await a.frameAcked(bad[j] as Buffer, `deaf ${i}: frame ${j + 1}`);
      await a.put(bad.at(-1) as Buffer);
      await a.expectReply(NAK, `deaf ${i}: end frame`);
      a.keep('rejected', `deaf ${i}: refused`, /./);
      // It does not send the frame again: it goes on with its next message, FN going on (up to six
      // frames: a seventh would bear the number the link waits for), then gives up.
      const nextParts = partsOf(tagged(pick(rnd, pool), `DEAF-NEXT-${i}`));
      const sent = nextParts.slice(0, int(rnd, 1, 6));
      for (const [j, p] of sent.entries()) {
        await a.put(frame(0x30 + ((bad.length + j + 1) % 8), p.text, p.end));
        await a.expectReply(NAK, `deaf ${i}: next message frame ${j + 1}`);
      }
      await a.eot();
      a.keep('rejected', `deaf ${i}: the next message, refused frame by frame`, new RegExp(`^incomplete message \\(eot-before-end\\) after ${sent.length} frames? refused: frame number \\d out of sequence \\(expected ${fnOf(bad.length - 1)}\\)`));
      await a.deliver(partsOf(tagged(pick(rnd, pool), `DEAF-OK-${i}`)), `deaf ${i}: next good transmission`);
    }
    expect(a.sim.unread()).toBe('');
    expectStoreHolds(await stopAndRead(statusUrl, dataDir), a.expected);
  }, 60_000);

  /**
   * A frame that never ends: after ENQ and STX, text with no ETX, ETB, EOT or ENQ in it (a device
   * streaming a file into the analyzer port, a converter repeating its buffer). The frame's text
   * was bounded (maxIncomingFrame), but its bytes were all buffered for the partial and the
   * receiver timer re-armed on each: memory grew without bound while they came, and the partial
   * stored was as large as the stream. The bytes kept of one message are bounded now (twice
   * `maxMessageBytes`, 100,000 here), the head kept as too large, the rest read and dropped.
   */
  it('a frame that never ends is kept as its head, bounded, and the link recovers', async () => {
    const limit = 100_000;
    const { statusUrl, analyzerPort, dataDir } = await startGateway(`{ id: fz, profile: generic-astm, tcp: { listen: { host: 127.0.0.1, port: 0 } }, overrides: { maxMessageBytes: ${limit} } }`);
    const socket = net.connect({ host: '127.0.0.1', port: analyzerPort as number });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    closers.push(() => socket.destroy());
    const a = new Analyzer((b) => socket.write(b), 'tcp');
    socket.on('data', (b: Buffer) => a.sim.feed(b));
    await a.enq('endless frame');
    const head = Buffer.from([STX, 0x31]);
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    socket.write(head);
    for (let i = 0; i < 48; i++) await new Promise<void>((r) => (socket.write(chunk) ? r() : socket.once('drain', () => r())));
    await a.eot(); // the analyzer gives up on it
    a.forget();
    await a.deliver(partsOf(tagged(pool[0] as string, 'ENDLESS-OK')), 'the next good transmission');
    // A message over maxMessageBytes (its head kept, the rest read frame by frame), then a frame
    // that never ends: still one message kept, its head.
    const big = tagged(pool[0] as string, 'ENDLESS-BIG');
    big.splice(1, 0, ...Array.from({ length: 200 }, (_, n) => `C|${n + 1}|I|${'y'.repeat(600)}|G`));
    const bigFrames = framesOf(partsOf(big)).slice(0, -1);
    await a.enq('over the limit');
    for (const [n, f] of bigFrames.entries()) await a.frameAcked(f, `over the limit: frame ${n + 1}`);
    socket.write(Buffer.from([STX, 0x30 + ((bigFrames.length + 1) % 8)]));
    for (let i = 0; i < 48; i++) await new Promise<void>((r) => (socket.write(chunk) ? r() : socket.once('drain', () => r())));
    await a.eot();
    a.forget();
    await a.deliver(partsOf(tagged(pool[0] as string, 'ENDLESS-OK2')), 'the next good transmission, again');
    const stored = await stopAndRead(statusUrl, dataDir);
    const rejected = stored.filter((s) => s.status === 'rejected');
    expect(rejected.map((s) => s.raw.length)).toHaveLength(2);
    const heads = rejected.filter((s) => s.raw.includes('ENDLESS-BIG'));
    expect(heads).toHaveLength(1);
    expect(heads[0]?.reason).toMatch(new RegExp(`larger than ${limit} bytes`));
    expect(heads[0]?.raw.length).toBeLessThan(limit * 1.1); // the head up to the frame that crossed the limit, framing included
    const kept = rejected.find((s) => !s.raw.includes('ENDLESS-BIG')) as Stored;
    expect(kept.reason).toMatch(new RegExp(`larger than ${limit} bytes`));
    expect(kept.raw.length).toBeGreaterThan(limit);
    expect(kept.raw.length).toBeLessThanOrEqual(2 * limit + chunk.length);
    expect(kept.raw.equals(Buffer.concat([Buffer.from([ENQ]), head, Buffer.alloc(kept.raw.length - 3, 0x41)]))).toBe(true);
    expectStoreHolds(stored.filter((s) => s.status === 'accepted'), a.expected);
  }, 60_000);
});
