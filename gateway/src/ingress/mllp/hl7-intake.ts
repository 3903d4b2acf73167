import type { Hl7EndpointConfig } from '../../config/types.ts';
import type { DraftEvent } from '../../events/types.ts';
import { describeError } from '../../errors.ts';
import { buildAck, compactId, escapeText, hl7Timestamp, planAcks, type AckCode, type AckError } from '../../hl7/ack.ts';
import { analyseBlock, type BlockStructure, type RawMessage, type RawSegment } from '../../hl7/block.ts';
import { charsetFromMsh18, chooseCharset, decodeText, encodeText, type Charset } from '../../hl7/charset.ts';
import { buildHostQueryReplies, readHl7HostQuery, type HostQueryAnswer, type HostQueryProblem, type Hl7HostQuery } from '../../hl7/host-query.ts';
import { readInbound, type InboundRead } from '../../hl7/inbound.ts';
import { normalizeLis, hl7SearchTerms } from '../../hl7/normalize-lis.ts';
import { ResultOrderNumbers } from '../../hl7/order-numbers.ts';
import { accessionCaseMarks, type AccessionCaseMarks } from '../../hl7/accession-case.ts';
import { KNOWN_MESSAGE_CODES, type Hl7NormalizeContext, type Hl7NormalizeProblem, type Hl7Normalizer } from '../../hl7/normalizer.ts';
import { messageFingerprints, messageTypeOf, readMsh, senderOf, type MshHeader } from '../../hl7/msh.ts';
import { ids } from '../../ids.ts';
import type { Logger } from '../../log.ts';
import type { CommitResult, GatewayStore, InboundMessage } from '../../store/types.ts';
import type { OversizeFrame, PartialFrame, UnframedBytes } from './mllp-decoder.ts';
import { unwrapFrames, wrapFrame } from './mllp-encoder.ts';

/**
 * The HL7 intake pipeline for one MLLP frame, independent of sockets (STYLE.md practice 1):
 *
 *   frame → split (batch?) → charset → parse → normalize → store.commit(raw, ack, events) → ACK
 *
 * The positive ACK is built before the commit and stored with it, so that a resend of the same
 * MSH-10 from the same sender is answered with the very same bytes (the store replays them).
 * Everything that cannot be accepted is committed too, with status 'rejected' and its raw bytes,
 * and answered AR/AE (or CR/CE) with an ERR segment naming the problem. When the store itself
 * fails, the answer is AE/CE "store unavailable" and nothing is kept (there is nowhere to keep it):
 * the sender keeps the message and resends it.
 *
 * Acknowledgement modes (HL7 v2.5 §2.9.2/§2.9.3):
 * - endpoint `ack: original` → always original mode: AA / AE / AR;
 * - endpoint `ack: enhanced` and the message fills MSH-15 or MSH-16 → a commit ACK (CA/CE/CR)
 *   when MSH-15 asks for one (AL always, ER on error, SU on success, NE never; empty = AL), then
 *   an application ACK (AA/AE/AR) when MSH-16 asks for one. For the gateway, "application
 *   processing" is the durable commit, so both follow it; both go back on the same connection, in
 *   that order. A message with neither field gets original mode.
 *
 * Inbound ACK messages are stored and never answered (an acknowledgement is not acknowledged).
 *
 * Batches (HL7 v2.5 §2.10.3): every message of the batch is committed on its own (own raw bytes,
 * own dedup key, own events), in order; the sender gets ONE reply for the block: a batch of ACK
 * messages (`[FHS] BHS {MSH MSA [ERR]} BTS [FTS]`, BTS-1 = number of ACKs), one per message (two
 * in enhanced mode: commit and application ACK, both unframed in the one batch), with BHS-12
 * echoing the received BHS-11 batch control id. A file of several batches gets one BHS … BTS per
 * batch, each around its own messages' ACKs, and FTS-1 = the number of batches. A batch of zero messages (`BHS … BTS|0`) is stored
 * and answered with an empty batch.
 */

/**
 * The reason of a message the store could not keep (closed, failed, disk full): answered AE/CE
 * with this text, or, when its sender asked for no answer, its connection is closed
 * (mllp-connection.ts): nothing kept and nothing said would be a silent loss.
 */
export const STORE_UNAVAILABLE = 'store unavailable';

export interface MessageResult {
  outcome: 'accepted' | 'rejected' | 'duplicate';
  messageType?: string;
  controlId?: string;
  reason?: string;
  /** The ACK code sent (first one in enhanced mode). */
  ackCode?: AckCode;
}

export interface FrameResult {
  /** Bytes to write back (MLLP-framed), or undefined when no acknowledgement is due. */
  reply: Buffer | undefined;
  results: MessageResult[];
}

export interface FrameMeta {
  remoteAddress?: string;
  /** ISO time the last byte of the frame arrived. */
  receivedAt: string;
}

/**
 * Why a frame ended without its end block (handlePartial): the sender half-closed (FIN), the
 * connection closed (reset, error), it was closed idle, the gateway stopped reading (stop()), the
 * sender abandoned it by starting a new frame (VT inside the open one), or it was not ended within
 * `hl7[].frameTimeoutMs` of its start and the connection was closed (`frame-timeout`). Also why
 * reading stopped: `unframed` when the gateway closed a connection that sent HL7 without MLLP
 * framing (mllp-connection.ts; no frame is open then).
 */
export type PartialCause = 'half-closed' | 'closed' | 'idle' | 'stopped' | 'abandoned' | 'frame-timeout' | 'unframed';

/**
 * The dedup key of HL7 kept as received without MLLP framing (Hl7Intake.handleUnframed): the
 * endpoint and the message's fingerprint (hl7/msh.ts `messageFingerprints`: its bytes with MSH-7
 * left out and segment terminators read as CR, as a framed message's dedup key has it), and for
 * one kept cut at maxMessageBytes the bytes beyond what was kept. The store's own duplicate
 * detection finds the message again (a LIS that reconnects and resends its stuck message, MSH-7
 * refreshed or not), across restarts of the gateway, for as long as the message kept is: a resend
 * is counted on it, not kept again. Before, the key hashed the bytes, MSH-7 included: a LIS that
 * rebuilds the message for each resend (a new MSH-7) left one copy per resend. One `|` where a
 * message's dedup key has three (endpoint|sender|control id|fingerprint): the two never meet.
 */
export function unframedDedupKey(endpoint: string, head: Buffer, size: number): string {
  const beyond = size - head.length;
  return `${endpoint}|unframed:${messageFingerprints(head, false).fingerprint}${beyond > 0 ? `+${beyond}` : ''}`;
}

export interface Hl7IntakeOptions {
  config: Hl7EndpointConfig;
  store: GatewayStore;
  log: Logger;
  normalize?: Hl7Normalizer;
  /**
   * Answers an analyzer's host query (Mindray BS QRY^Q02, BC-5380 ORM^O01 with ORC-1 = RF:
   * hl7/host-query.ts) from the orders the gateway holds. Absent: such messages are stored and
   * acknowledged like any other.
   */
  answerQuery?: (query: Hl7HostQuery) => Promise<HostQueryAnswer>;
  /**
   * An asynchronous step between normalize and commit, for HL7 analyzers: a tube barcode resolved
   * to the accession of the LIS order it belongs to (astm/accessions.ts `resolveAccessions`).
   * Absent on the LIS endpoint, whose messages reach the store without awaiting anything. The
   * steps of one endpoint run one at a time, in arrival order, and each issues its commit before
   * the next begins: commits stay in arrival order.
   */
  resolveEvents?: (draft: ResolvableEvents) => Promise<ResolvableEvents>;
}

/** The events of one message and its search terms, before the commit (resolveEvents). */
export interface ResolvableEvents {
  events: DraftEvent[];
  searchTerms: string[];
  /** Problems met while resolving (logged); the events are committed as they came back. */
  warnings: string[];
}

type Severity = 'reject' | 'error';

/** One batch of a batch reply: the BHS it answers (none when the block had none) and its ACK texts. */
interface BatchGroup {
  bhs: RawSegment | undefined;
  acks: string[];
  /** How many messages (MSH) of the block are this batch's. */
  members: number;
  /** What is wrong with the batch itself (a segment outside any message, a BTS-1 that disagrees): its reply's BTS-2. */
  problems: string[];
}

/** One empty group per BHS of the block, in order; one without BHS when the block has none. */
function batchGroups(block: BlockStructure): BatchGroup[] {
  const groups: BatchGroup[] = [];
  for (const s of block.envelope) if (s.name === 'BHS') groups.push({ bhs: s, acks: [], members: 0, problems: [] });
  if (groups.length === 0) groups.push({ bhs: undefined, acks: [], members: 0, problems: [] });
  return groups;
}

/** The index of the group a segment starting at `start` is in: the last one whose BHS is before it. */
function groupAt(groups: readonly BatchGroup[], start: number): number {
  let g = 0;
  while (g + 1 < groups.length && ((groups[g + 1] as BatchGroup).bhs as RawSegment).start < start) g++;
  return g;
}

/**
 * An ACK's text with its MSH-18 (character set) set to `label`: an ACK carried in a batch reply
 * written in another charset than its own message's. An empty label (the reply in the endpoint's
 * default charset) empties MSH-18, and adds nothing to an MSH without one.
 */
function withCharsetLabel(ack: string, label: string): string {
  return ack
    .split('\r')
    .map((line) => {
      if (!line.startsWith('MSH') || line.length < 4) return line;
      const fields = line.split(line[3] as string);
      // MSH-1 is the separator itself: MSH-n sits at index n - 1.
      if (fields.length <= 17 && label === '') return line;
      while (fields.length <= 17) fields.push('');
      fields[17] = label;
      return fields.join(line[3] as string);
    })
    .join('\r');
}

/**
 * How many members of one batch may be in their commit at once (#processBatch). Each member alive
 * (its parse, ACK, record and commit in the store) takes ~9 KiB of heap whatever its size: a
 * 16 MiB block of short messages all at once outgrew a small box's heap.
 */
export const BATCH_WINDOW = 1024;

/**
 * The order of a large batch's members' commits (#processBatch): each member's commit is issued
 * after the previous member's (`tail`), and the intake's other commits wait for the whole batch.
 */
interface MemberOrder {
  tail: Promise<void>;
}

/** BTS-2 (batch comment, ST) is 80 characters long in HL7 v2.1 to v2.6. */
const BATCH_COMMENT_MAX = 80;

/**
 * An escaped batch comment within BATCH_COMMENT_MAX characters: a longer one is cut, never inside
 * an escape sequence (`\S\`), and ends with `...`; the whole text is logged and kept with the block.
 */
function batchComment(escaped: string, enc: string): string {
  if (escaped.length <= BATCH_COMMENT_MAX) return escaped;
  const esc = enc[2] ?? '\\';
  let cut = escaped.slice(0, BATCH_COMMENT_MAX - 3);
  // The escape character only opens and closes sequences: an odd count means one is cut open.
  if (cut.split(esc).length % 2 === 0) cut = cut.slice(0, cut.lastIndexOf(esc));
  return `${cut}...`;
}

/** The first of `fingerprints` whose look-up (run at once, in parallel) found its key, or undefined. */
async function firstUsed(fingerprints: readonly string[], lookups: ReadonlyArray<Promise<boolean> | boolean>): Promise<string | undefined> {
  const i = (await Promise.all(lookups)).indexOf(true);
  return i === -1 ? undefined : fingerprints[i];
}

const FALLBACK_HEADER: MshHeader = readMsh('MSH|^~\\&').header;

interface MessageOutcome {
  reply: Buffer | undefined;
  result: MessageResult;
  header: MshHeader;
  charset: Charset;
}

function messageResult(outcome: MessageResult['outcome'], reason: string | undefined, messageType: string | undefined, controlId: string, ackCode: AckCode | undefined): MessageResult {
  const r: MessageResult = { outcome };
  if (reason !== undefined) r.reason = reason;
  if (messageType) r.messageType = messageType;
  if (controlId) r.controlId = controlId;
  if (ackCode) r.ackCode = ackCode;
  return r;
}

// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\x00-\x1f\x7f]/g;

/**
 * One reply message framed in `charset` (charset.ts encodeText): UTF-8 and Latin-1 straight into
 * the frame (nearly every message), the other ISO 8859 parts through their own table, so that
 * what the reply copies from the message (MSH-3..6, MSH-10) comes back in the sender's bytes.
 */
function frameIn(text: string, charset: Charset): Buffer {
  if (charset === 'utf8') return wrapFrame(text, 'utf8');
  if (charset === 'ascii' || charset === 'latin1') return wrapFrame(text, 'latin1');
  return wrapFrame(encodeText(text, charset));
}

/**
 * Field `n` of a batch envelope segment as received (empty when the segment is absent), decoded
 * as the reply it is copied into is encoded (`charset`): a UTF-8 facility name read as Latin-1
 * would be encoded twice. FHS/BHS-1 is the field separator itself, as MSH-1: their field n is
 * split index n - 1; BTS/FTS count from the field after the name.
 */
function envelopeField(frame: Buffer, seg: { name: string; start: number; end: number } | undefined, fs: string, n: number, charset: Charset): string {
  if (!seg) return '';
  const index = seg.name === 'FHS' || seg.name === 'BHS' ? n - 1 : n;
  return decodeText(frame.subarray(seg.start, seg.end), charset).split(fs)[index] ?? '';
}

/**
 * The head of an oversize frame without a UTF-8 sequence cut at its end (it is cut at a byte
 * count), so that a UTF-8 head is recognised as UTF-8 by chooseCharset.
 */
function withoutCutSequence(head: Buffer): Buffer {
  // A sequence has at most 4 bytes: its lead byte is among the last 4.
  for (let i = head.length - 1; i >= Math.max(0, head.length - 4); i--) {
    const b = head[i] as number;
    if (b < 0x80) return head; // ASCII: nothing cut
    if (b >= 0xc0) {
      const length = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
      return head.length - i < length ? head.subarray(0, i) : head;
    }
  }
  return head;
}

export class Hl7Intake {
  readonly #config: Hl7EndpointConfig;
  readonly #store: GatewayStore;
  readonly #log: Logger;
  readonly #normalize: Hl7Normalizer;
  readonly #answerQuery: Hl7IntakeOptions['answerQuery'];
  readonly #resolveEvents: Hl7IntakeOptions['resolveEvents'];
  /** Settles once the last asynchronous step before a commit (#orderedCommit) issued its commit. */
  #stepTail: Promise<void> = Promise.resolve();
  /** Steps before a commit not yet past their commit: while any is, every commit queues behind them. */
  #pendingSteps = 0;
  /**
   * A LIS link's results naming their order by its other number (placer / filler) attached to it
   * (hl7/order-numbers.ts); none on an analyzer endpoint.
   */
  readonly #orderNumbers: ResultOrderNumbers | undefined;
  /** A LIS link's numbers that upper case changes mark it (hl7/accession-case.ts); none on an analyzer endpoint. */
  readonly #accessionCase: AccessionCaseMarks | undefined;

  constructor(options: Hl7IntakeOptions) {
    this.#config = options.config;
    this.#store = options.store;
    this.#log = options.log;
    this.#normalize = options.normalize ?? normalizeLis;
    this.#answerQuery = options.answerQuery;
    this.#resolveEvents = options.resolveEvents;
    this.#orderNumbers = options.config.analyzer ? undefined : new ResultOrderNumbers(options.store, options.config.id, options.config.accessionPrefix);
    this.#accessionCase = options.config.analyzer ? undefined : accessionCaseMarks(options.store);
  }

  async handleFrame(frame: Buffer, meta: FrameMeta): Promise<FrameResult> {
    let block: BlockStructure;
    try {
      block = analyseBlock(frame);
    } catch (err) {
      // analyseBlock works on any bytes; this is a last line of defence, never expected.
      return this.#rejectBlock(frame, meta, { code: 207, text: `internal error reading the block: ${describeError(err)}` });
    }
    if (block.messages.length === 0 && block.envelope.length > 0 && block.stray.length === 0) {
      return this.#emptyBatch(frame, block, meta);
    }
    if (block.messages.length === 0) {
      const text = block.segments.length === 0 ? 'empty message' : block.envelope.length > 0 ? 'batch without any MSH segment' : 'the message does not start with an MSH segment';
      return this.#rejectBlock(frame, meta, { code: 100, text, location: 'MSH' });
    }
    if (block.stray.length > 0) {
      const s = block.stray[0];
      return this.#rejectBlock(frame, meta, { code: 100, text: `segment ${s?.name.replace(/[^\x20-\x7e]/g, '?')} before the first MSH`, location: 'MSH' });
    }
    if (!block.isBatch) {
      const one = await this.#processMessage(frame, block.messages[0] as RawMessage, meta, true);
      return { reply: one.reply, results: [one.result] };
    }
    return this.#processBatch(frame, block, meta);
  }

  /**
   * An oversize frame: AR with the head's MSH-10 (when readable), head kept for the operator, with
   * the charset its MSH-18 declares (corrected by its bytes, as for any message): the message
   * browser decodes the kept bytes with it.
   */
  handleOversize(oversize: OversizeFrame, meta: FrameMeta): Promise<FrameResult> {
    const text = `message of ${oversize.size} bytes exceeds the maximum of ${this.#config.maxMessageBytes} bytes`;
    return this.#rejectHead(oversize.head, meta, { code: 207, text }, `${text}; only the first ${oversize.head.length} bytes were kept`, { answer: true, wholeMsh: false });
  }

  /**
   * A frame the input ended inside of (no end block, PartialFrame): kept as rejected with its bytes
   * (the first 64 KiB of one that outgrew maxMessageBytes), like an oversize head, and counted.
   * Answered AR (ERR 100) only when the sender half-closed: it has finished sending and waits for
   * its replies. When the connection closed, went idle, was closed because the frame did not end
   * within `frameTimeoutMs`, or the gateway stops reading, the frame gets no answer: the sender,
   * without an acknowledgement, sends the message again. An abandoned frame gets none either: the
   * sender started over, and waits for one reply per frame it ends. MSH-10 is echoed only from an
   * MSH segment that ended before the cut.
   */
  handlePartial(partial: PartialFrame, cause: PartialCause, meta: FrameMeta): Promise<FrameResult> {
    const text = `incomplete message (${cause}): the frame ended after ${partial.size} bytes without its end block (FS)`;
    const reason = partial.truncated ? `${text}; only the first ${partial.head.length} bytes were kept` : text;
    return this.#rejectHead(partial.head, meta, { code: 100, text }, reason, { answer: cause === 'half-closed', wholeMsh: true });
  }

  /**
   * HL7 received outside any frame (UnframedBytes: a sender not set to MLLP framing): kept as
   * rejected with its bytes (the first 64 KiB of more than maxMessageBytes), reason `unframed …`,
   * its MSH read for the browser, and never answered (a framed answer means nothing to a sender
   * that does not speak MLLP; the connection closes it instead). Under its dedup key
   * (unframedDedupKey): the same message as one kept before at this endpoint (MSH-7 aside), before
   * a restart too, is not kept again; the store counts them on the message kept (a duplicate), and they
   * are logged.
   */
  async handleUnframed(unframed: UnframedBytes, meta: FrameMeta): Promise<FrameResult> {
    const text = `unframed: ${unframed.size} bytes of HL7 received without MLLP framing (no start block VT 0x0B)`;
    const reason = unframed.truncated ? `${text}; only the first ${unframed.head.length} bytes were kept` : text;
    const dedupKey = unframedDedupKey(this.#config.id, unframed.head, unframed.size);
    const result = await this.#rejectHead(unframed.head, meta, { code: 100, text }, reason, { answer: false, wholeMsh: true, dedupKey });
    const outcome = result.results[0];
    if (outcome?.outcome === 'duplicate') {
      outcome.reason = `${text}: the same message as kept before from this link (the same bytes, MSH-7 aside), not kept again`;
      this.#log.info('HL7 without MLLP framing: the same message as kept before from this link (the same bytes, MSH-7 aside), not kept again', { remote: meta.remoteAddress, bytes: unframed.size, controlId: outcome.controlId });
    }
    return result;
  }

  /**
   * The first bytes of a frame that cannot be taken (oversize, or cut): kept as rejected, with the
   * charset its MSH-18 declares (corrected by its bytes); the AR carries MSH-10 when the MSH is
   * readable (`wholeMsh`: only when a segment terminator follows it in `head`).
   */
  async #rejectHead(head: Buffer, meta: FrameMeta, error: AckError, rejectReason: string, options: { answer: boolean; wholeMsh: boolean; dedupKey?: string }): Promise<FrameResult> {
    const found = analyseBlock(head).messages[0]?.segments[0];
    const mshSeg = found && (!options.wholeMsh || found.end < head.length) ? found : undefined;
    // MSH-1/MSH-2 and MSH-18 are ASCII: the header is read as Latin-1 first (as readInbound does).
    const first = mshSeg ? readMsh(head.toString('latin1', mshSeg.start, mshSeg.end)) : undefined;
    const declared = charsetFromMsh18(first?.header.charset ?? '', this.#config.defaultCharset);
    const charset = chooseCharset(withoutCutSequence(head), declared).charset;
    // Again in the chosen charset when it is not one byte per character (MSH-3/4 may be non-ASCII).
    const read = mshSeg && first && charset !== 'ascii' && charset !== 'latin1' ? readMsh(decodeText(head.subarray(mshSeg.start, mshSeg.end), charset)) : first;
    const header = read && !read.problem ? read.header : FALLBACK_HEADER;
    const reply = this.#replyFor(header, charset, 'reject', error);
    const message = this.#inbound(meta, header, charset, head, 'rejected');
    message.rejectReason = rejectReason;
    if (reply.bytes && options.answer) message.ack = reply.bytes;
    if (options.dedupKey !== undefined) message.dedupKey = options.dedupKey;
    const committed = await this.#commitRejected(message);
    const result: MessageResult = { outcome: committed?.duplicate === true ? 'duplicate' : 'rejected', reason: error.text, controlId: header.controlId, ...(reply.first && options.answer ? { ackCode: reply.first } : {}) };
    if (!options.answer) return { reply: undefined, results: [result] };
    const bytes = committed ? reply.bytes : this.#replyFor(header, charset, 'error', { code: 207, text: STORE_UNAVAILABLE }).bytes;
    return { reply: bytes, results: [result] };
  }

  async #rejectBlock(frame: Buffer, meta: FrameMeta, error: AckError): Promise<FrameResult> {
    // Echo MSH-10 if the block starts with something MSH-like.
    const attempt = readMsh(frame.toString('latin1', 0, Math.min(frame.length, 4096)).split(/[\r\n]/)[0] ?? '');
    const header = attempt.problem && attempt.header.controlId === '' ? FALLBACK_HEADER : attempt.header;
    const safeHeader = attempt.problem?.code === 102 ? { ...FALLBACK_HEADER, controlId: header.controlId } : header;
    const charset: Charset = this.#config.defaultCharset;
    const reply = this.#replyFor(safeHeader, charset, 'reject', error);
    const message = this.#inbound(meta, safeHeader, charset, frame, 'rejected');
    message.rejectReason = error.text;
    if (reply.bytes) message.ack = reply.bytes;
    const committed = await this.#commitRejected(message);
    const bytes = committed ? reply.bytes : this.#replyFor(safeHeader, charset, 'error', { code: 207, text: STORE_UNAVAILABLE }).bytes;
    return { reply: bytes, results: [{ outcome: 'rejected', reason: error.text, ...(reply.first ? { ackCode: reply.first } : {}) }] };
  }

  async #processBatch(frame: Buffer, block: BlockStructure, meta: FrameMeta): Promise<FrameResult> {
    // Every member's commit is issued now, in order, before any is awaited: #processMessage
    // reaches store.commit() without awaiting anything (a host query, which awaits its answer
    // first, is never a batch member), and the store takes commits in call order. Awaiting each
    // member before starting the next let a frame pipelined behind the batch reach the store
    // before the batch's later members: a result queued before its order. The members stay
    // independent, as they were one after the other: a refused member is kept and answered AR
    // while the others go on; a member repeating an earlier one of the same batch finds that
    // commit in flight in the store and gets its ACK as a duplicate. Promise.all also takes the
    // rejections of the members not awaited yet (never expected: #processMessage answers failures).
    const outcomes = block.messages.length <= BATCH_WINDOW ? await Promise.all(block.messages.map((structure) => this.#processMessage(frame, structure, meta, false))) : await this.#processMembersInWindow(frame, block.messages, meta);
    const results: MessageResult[] = [];
    // A file may hold several batches (`FHS {BHS {MSH …} BTS} FTS`): each is answered under its own
    // BHS, with the ACKs of its own messages. A message before the first BHS goes with the first.
    const groups = batchGroups(block);
    // The reply is one block, which the LIS decodes with one charset: the first member's (the BHS
    // and FHS have no charset field; a LIS writes its batch in one encoding and declares it first).
    // Before, the last member's: a first member in Latin-1 got its MSA-2 back in UTF-8 bytes.
    const charset: Charset = outcomes[0]?.charset ?? this.#config.defaultCharset;
    const firstHeader: MshHeader | undefined = outcomes[0]?.header;
    let acks = 0;
    for (const [i, one] of outcomes.entries()) {
      results.push(one.result);
      const group = groupAt(groups, (block.messages[i] as RawMessage).start);
      (groups[group] as BatchGroup).members++;
      // Each message's stored reply is one framed ACK, or two in enhanced mode (commit, then
      // application ACK): the batch reply carries every one of them unframed.
      // Each is read in the charset it was written in (its message's); one whose member declared
      // another charset than the first names the reply's in its MSH-18, as its bytes now are.
      if (one.reply) {
        for (const content of unwrapFrames(one.reply)) {
          const text = decodeText(content, one.charset).replace(/\r+$/, '');
          (groups[group] as BatchGroup).acks.push(one.charset === charset ? text : withCharsetLabel(text, firstHeader?.charset ?? ''));
        }
        acks++;
      }
    }
    const header = firstHeader ?? FALLBACK_HEADER;
    const problems = this.#batchProblems(frame, block, groups, header.fieldSeparator, charset);
    // A batch of acknowledgements only is not answered (§2.9.2), whatever is wrong with it.
    const reply = acks > 0 ? this.#batchReply(frame, block, header, charset, groups) : undefined;
    if (problems.length > 0) results.push(await this.#keepBatchProblems(frame, block, groups, header, charset, problems, reply, meta));
    return { reply, results };
  }

  /**
   * The members of a batch larger than BATCH_WINDOW: at most that many in their commit at once
   * (member i starts once member i - BATCH_WINDOW is done). Their commits are issued in order, on
   * a chain of their own that starts where the intake's queue of commits stood when the batch
   * came; the intake's other commits (a frame pipelined behind the batch, another connection's)
   * queue behind the whole batch, as they queue behind a batch processed all at once.
   */
  async #processMembersInWindow(frame: Buffer, members: readonly RawMessage[], meta: FrameMeta): Promise<MessageOutcome[]> {
    const order: MemberOrder = { tail: this.#stepTail };
    let open = (): void => {};
    const issuedAll = new Promise<void>((resolve) => (open = resolve));
    this.#pendingSteps++;
    this.#stepTail = Promise.all([this.#stepTail, issuedAll]).then(() => void this.#pendingSteps--);
    const outcomes: MessageOutcome[] = [];
    // Settles, never rejects (#processMessage answers failures; one that throws all the same fails
    // the frame once every member is done, as Promise.all over the members did).
    const done: Array<Promise<void>> = [];
    let failure: { error: unknown } | undefined;
    try {
      for (const [i, structure] of members.entries()) {
        if (i >= BATCH_WINDOW) await done[i - BATCH_WINDOW];
        done.push(
          this.#processMessage(frame, structure, meta, false, order).then(
            (o) => void (outcomes[i] = o),
            (error: unknown) => void (failure ??= { error }),
          ),
        );
      }
      // Every member's commit issued: the intake's other commits may go.
      await order.tail;
    } finally {
      open();
    }
    await Promise.all(done);
    if (failure) throw failure.error;
    return outcomes;
  }

  /**
   * What is wrong with the batch envelope itself, its members aside (HL7 v2.5 §2.10.3), noted on
   * each batch's group (its reply's BTS-2) and returned for the operator: a segment after a
   * trailer (`BTS|1\rZZZ|1`), outside any message, which is not taken; a BTS-1 that counts other
   * than the messages the batch holds (messages lost on the way, a batch cut); an FTS-1 that counts
   * other than the batches of the file. The members are taken as they are: each is a whole message
   * with its own control id and ACK.
   */
  #batchProblems(frame: Buffer, block: BlockStructure, groups: readonly BatchGroup[], fs: string, charset: Charset): string[] {
    const all: string[] = [];
    const note = (g: number, text: string): void => {
      (groups[g] as BatchGroup).problems.push(text);
      all.push(text);
    };
    const field = (seg: RawSegment | undefined, n: number): string => envelopeField(frame, seg, fs, n, charset).replace(CONTROL_CHARS, '?').trim();
    for (const [g, group] of groups.entries()) {
      const from = group.bhs?.start ?? 0;
      const to = (groups[g + 1] as BatchGroup | undefined)?.bhs?.start ?? frame.length;
      const bts = block.envelope.find((e) => e.name === 'BTS' && e.start > from && e.start < to);
      const declared = field(bts, 1);
      // NM: `02` counts two.
      if (declared !== '' && !(/^\d+$/.test(declared) && Number(declared) === group.members)) {
        const id = field(group.bhs, 11);
        note(g, `batch ${id !== '' ? `${id} ` : ''}declares ${declared} messages (BTS-1) but holds ${group.members}`);
      }
    }
    const fhs = block.envelope.find((e) => e.name === 'FHS');
    const fts = block.envelope.find((e) => e.name === 'FTS');
    const batches = block.envelope.filter((e) => e.name === 'BHS').length;
    const files = field(fts, 1);
    if (fhs && files !== '' && files !== String(batches)) {
      const id = field(fhs, 11);
      note(groups.length - 1, `file ${id !== '' ? `${id} ` : ''}declares ${files} batches (FTS-1) but holds ${batches}`);
    }
    for (const t of block.trailing) {
      const name = t.name.replace(/[^\x20-\x7e]/g, '?');
      note(groupAt(groups, t.start), `segment ${name} after ${t.after} is outside any message and was not taken`);
    }
    return all;
  }

  /**
   * The batch's own problems kept for the operator: one rejected record with the whole block (the
   * members are stored on their own as well), the problems as its reason, the batch reply as its
   * ACK, counted as rejected; found by the batch control id (BHS-11, else FHS-11).
   */
  async #keepBatchProblems(frame: Buffer, block: BlockStructure, groups: readonly BatchGroup[], h: MshHeader, charset: Charset, problems: string[], reply: Buffer | undefined, meta: FrameMeta): Promise<MessageResult> {
    const fieldOf = (seg: RawSegment | undefined, n: number): string => envelopeField(frame, seg, h.fieldSeparator, n, charset).replace(CONTROL_CHARS, '').trim();
    const fhs = block.envelope.find((e) => e.name === 'FHS');
    const batchId = fieldOf(groups[0]?.bhs, 11) || fieldOf(fhs, 11);
    const messageType = fhs ? 'FHS' : 'BHS';
    const header: MshHeader = { ...h, controlId: batchId, messageCode: messageType, triggerEvent: '', messageStructure: '' };
    const message = this.#inbound(meta, header, charset, frame, 'rejected', messageType);
    if (!batchId) delete message.controlId;
    message.rejectReason = problems.join('; ');
    if (reply) message.ack = reply;
    if (batchId) message.searchTerms = [batchId];
    this.#log.warn('batch envelope problems; its messages were taken', { batchId, problems });
    const committed = await this.#commitRejected(message);
    return messageResult('rejected', committed ? message.rejectReason : STORE_UNAVAILABLE, messageType, batchId, undefined);
  }

  /**
   * A batch of zero messages (`BHS … BTS|0`; HL7 v2.5 §2.10.3: a batch holds "zero or more"
   * messages): kept like any message, with its bytes, and answered with an empty batch
   * (`[FHS] BHS BTS|0 [FTS]`). Without a BTS, or with a BTS-1 that counts messages the block does
   * not hold, the block is refused like any batch without MSH.
   */
  async #emptyBatch(frame: Buffer, block: BlockStructure, meta: FrameMeta): Promise<FrameResult> {
    const first = block.envelope[0] as BlockStructure['envelope'][number];
    // No MSH-18 to go by: the endpoint's charset, for the header as for the reply.
    const charset: Charset = this.#config.defaultCharset;
    const firstText = decodeText(frame.subarray(first.start, first.end), charset);
    // FHS/BHS-1 and -2 are the delimiters and FHS/BHS-3…6 the applications and facilities, as in
    // MSH; the rest of an MSH has no counterpart in them.
    const read = firstText.startsWith('HS', 1) ? readMsh(`MSH${firstText.slice(3)}`) : undefined;
    const r = read && read.problem?.code !== 102 ? read.header : FALLBACK_HEADER;
    const { fieldSeparator: fs, encodingCharacters, sendingApplication, sendingFacility, receivingApplication, receivingFacility } = r;
    // FHS/BHS-1 is the field separator itself (as MSH-1): their field n is split index n - 1.
    // Control characters are left out (they would break the reply's framing).
    const fieldOf = (name: 'FHS' | 'BHS' | 'BTS', n: number): string =>
      envelopeField(frame, block.envelope.find((e) => e.name === name), fs, n, charset).replace(CONTROL_CHARS, '').trim();
    // Empty only when the batch says so: a BTS that counts no message. A header alone may be the
    // head of a cut batch, and a count above zero means messages were lost on the way.
    const declared = fieldOf('BTS', 1);
    if (!block.envelope.some((e) => e.name === 'BTS') || (declared !== '' && declared !== '0')) {
      const text = declared !== '' && declared !== '0' ? `the batch declares ${declared} messages (BTS-1) but holds no MSH segment` : 'batch without any MSH segment';
      return this.#rejectBlock(frame, meta, { code: 100, text, location: 'MSH' });
    }
    // The batch control id (BHS-11, else FHS-11) stands for the control id of the stored record.
    const batchId = fieldOf('BHS', 11) || fieldOf('FHS', 11);
    const header: MshHeader = { ...FALLBACK_HEADER, fieldSeparator: fs, encodingCharacters, sendingApplication, sendingFacility, receivingApplication, receivingFacility, controlId: batchId };
    const reply = this.#batchReply(frame, block, header, charset, batchGroups(block));
    const messageType = first.name === 'FHS' ? 'FHS' : 'BHS';
    const message = this.#inbound(meta, header, charset, frame, 'accepted', messageType);
    message.ack = reply;
    try {
      await this.#orderedCommit(undefined, [], () => this.#store.commit(message, []));
      return { reply, results: [messageResult('accepted', undefined, messageType, batchId, undefined)] };
    } catch (err) {
      this.#store.countRejectedWithoutCommit();
      this.#log.warn('store unavailable; empty batch answered with a negative acknowledgement', { batchId, error: describeError(err) });
      const bytes = this.#replyFor(header, charset, 'error', { code: 207, text: STORE_UNAVAILABLE }).bytes;
      return { reply: bytes, results: [messageResult('rejected', STORE_UNAVAILABLE, messageType, batchId, undefined)] };
    }
  }

  /**
   * The framed batch reply `[FHS] {BHS {ACK} BTS} [FTS]` around unframed ACK texts: one BHS … BTS
   * per batch received (one when the block had no BHS), FTS-1 the number of batches.
   */
  #batchReply(frame: Buffer, block: BlockStructure, h: MshHeader, charset: Charset, groups: readonly BatchGroup[]): Buffer {
    const fs = h.fieldSeparator;
    const enc = h.encodingCharacters;
    const now = hl7Timestamp(new Date());
    const fhs = block.envelope.find((s) => s.name === 'FHS');
    // Copied envelope fields lose control characters (they would break the reply's framing).
    const fieldOf = (seg: RawSegment | undefined, n: number): string => envelopeField(frame, seg, fs, n, charset).replace(CONTROL_CHARS, '?');
    const lines: string[] = [];
    // FHS/BHS: sending and receiving application/facility swapped; -11 our control id; -12 the received one.
    const header = (name: 'FHS' | 'BHS', seg: RawSegment | undefined): string =>
      [name, enc, fieldOf(seg, 5) || h.receivingApplication, fieldOf(seg, 6) || h.receivingFacility, fieldOf(seg, 3) || h.sendingApplication, fieldOf(seg, 4) || h.sendingFacility, now, '', '', '', compactId(ids.next()), fieldOf(seg, 11)].join(fs);
    if (fhs) lines.push(header('FHS', fhs));
    for (const g of groups) {
      lines.push(header('BHS', g.bhs));
      lines.push(...g.acks);
      // BTS-2, the batch comment: what is wrong with the batch itself (#batchProblems), for the
      // sender's interface log.
      const bts = ['BTS', String(g.acks.length)];
      if (g.problems.length > 0) bts.push(batchComment(escapeText(g.problems.join('; '), fs, enc), enc));
      lines.push(bts.join(fs));
    }
    if (fhs) lines.push(['FTS', String(groups.length)].join(fs));
    return wrapFrame(encodeText(lines.join('\r') + '\r', charset));
  }

  async #processMessage(frame: Buffer, structure: RawMessage, meta: FrameMeta, whole: boolean, order?: MemberOrder): Promise<MessageOutcome> {
    // A lone message keeps the whole frame as its raw bytes; a batch member keeps its own slice.
    const raw = whole ? frame : frame.subarray(structure.start, structure.end);
    let read: InboundRead;
    try {
      read = readInbound(frame, structure, this.#config.defaultCharset);
    } catch (err) {
      read = { header: FALLBACK_HEADER, charset: this.#config.defaultCharset, problem: { code: 207, text: `internal error reading the message: ${describeError(err)}` } };
    }
    const { header, charset } = read;
    const messageType = header.messageCode ? messageTypeOf(header) : undefined;

    if (read.problem || !read.message) {
      const p = read.problem ?? { code: 207 as const, text: 'message could not be read' };
      return this.#rejectMessage(raw, whole, read, messageType, meta, p, 'reject', order);
    }
    const message = read.message;
    // A query is answered with frames of its own; inside a batch (which analyzers do not send) it
    // is acknowledged like any member.
    const query = this.#answerQuery && whole ? readHl7HostQuery(message) : undefined;
    if (query) return this.#answerHostQuery(query, raw, whole, read, messageType, meta);
    if (!KNOWN_MESSAGE_CODES.has(header.messageCode) && header.messageCode !== 'ACK' && this.#config.unknownMessageTypes === 'reject') {
      return this.#rejectMessage(raw, whole, read, messageType, meta, { code: 200, text: `message type ${messageType} is not supported by this endpoint`, location: 'MSH^1^9' }, 'reject', order);
    }

    const notes: string[] = [];
    const warnings: string[] = [];
    const normalizerTerms: string[] = [];
    const problems: Hl7NormalizeProblem[] = [];
    // The fingerprints an earlier release may have stored the message under are made (and looked
    // up, below) only while the store may hold such messages: not on a store this release began.
    // Outside that window a message in another form than the usual one is still looked up under
    // the key the releases before gave that same form (msh.ts messageFingerprints).
    const { fingerprint, earlier } = messageFingerprints(raw, this.#store.mayHoldEarlierReleaseKeys?.(2 /* the key era that changed the fingerprint */) ?? true);
    let events: DraftEvent[];
    const context = (fp: string): Hl7NormalizeContext => {
      const ctx: Hl7NormalizeContext = { message, fingerprint: fp, endpoint: this.#config.id, receivedAt: meta.receivedAt, notes, warnings, searchTerms: normalizerTerms, problems };
      if (this.#config.analyzer) ctx.analyzer = this.#config.analyzer;
      if (read.keySender !== undefined) ctx.keySender = read.keySender;
      return ctx;
    };
    // The events under another fingerprint (an earlier release's), the first normalization's notes,
    // warnings, terms and problems left as they are.
    const normalizeUnder = (fp: string): DraftEvent[] => this.#normalize({ ...context(fp), notes: [], warnings: [], searchTerms: [], problems: [] });
    try {
      events = this.#normalize(context(fingerprint));
    } catch (err) {
      this.#log.error('normalizer failed', { controlId: header.controlId, messageType, error: describeError(err) });
      return this.#rejectMessage(raw, whole, read, messageType, meta, { code: 207, text: `the message could not be turned into events: ${describeError(err)}` }, 'error', order);
    }
    if (notes.length > 0) this.#log.debug('normalizer notes', { controlId: header.controlId, notes });
    // What the operator must act on (an analyzer code the profile does not map): one line per message.
    if (warnings.length > 0) this.#log.warn('normalizer warnings', { controlId: header.controlId, warnings });
    // A fact the message states and the gateway cannot record (an order without any order
    // number, results tied to no order): refused with the reason and kept, none of its events
    // committed — acknowledging it AA would tell the LIS it was taken while it went nowhere.
    const problem = problems[0];
    if (problem) {
      this.#log.warn('message refused: a fact in it cannot be recorded', { controlId: header.controlId, messageType, reason: problem.error.text });
      return this.#rejectMessage(raw, whole, read, messageType, meta, problem.error, problem.severity, order);
    }

    const reply = this.#replyFor(header, charset, 'ok');
    const inbound = this.#inbound(meta, header, charset, whole ? raw : Buffer.from(raw), 'accepted', messageType);
    if (reply.bytes) inbound.ack = reply.bytes;
    // A resend (same sender, control id and content, MSH-7 aside) gets the stored ACK; a reused
    // control id with other content is a new message.
    // (The sender as the releases before read it, when it reads otherwise now: inbound.ts keySender.)
    const dedupPrefix = `${this.#config.id}|${read.keySender ?? senderOf(header)}|${header.controlId}|`;
    inbound.dedupKey = dedupPrefix + fingerprint;
    // With the run type of QC/calibration events (`runType:qc`), as ASTM messages have it.
    // Plus the normalizer's own (`unmapped:<code>` of an HL7 analyzer, as ASTM messages have it):
    // none on an LIS link, so nothing more is allocated per message there.
    const terms = hl7SearchTerms(message, events);
    for (const t of normalizerTerms) if (!terms.includes(t)) terms.push(t);
    inbound.searchTerms = terms;
    if (read.charsetNote) this.#log.warn('charset corrected', { controlId: header.controlId, note: read.charsetNote });
    // A message an earlier release took in another form than this one — without its final CR, with
    // an empty line after it (msh.ts messageFingerprints `earlier`), this one in the usual form or
    // not — is under the keys that release made of the form it came in. Its first event's key is
    // looked up under each such fingerprint before the commit; when the store has one, the message
    // is committed under those keys: answered with the stored ACK, no event made again. The
    // look-ups start at once (they read only what an earlier release wrote, nothing a commit of
    // this one is about to write), and the commits still go to the store in arrival order. A
    // message without events (ADT) is looked up by its dedup key under each such fingerprint.
    const found =
      earlier.length === 0 ? undefined : events.length > 0 ? this.#earlierFingerprint(header.controlId, fingerprint, earlier, events[0] as DraftEvent, normalizeUnder) : this.#earlierDedupFingerprint(dedupPrefix, earlier);
    // A look-up that fails (the store cannot read) is not skipped as other steps are: committed
    // under the current keys, a message an earlier release took would be taken again (a second
    // result for Odoo). The message is answered as when the store cannot commit: the sender resends.
    let lookupFailed: { error: unknown } | undefined;
    const lookedUp = found?.then(
      (hit) => {
        if (hit === undefined) return;
        try {
          if (events.length > 0) events = normalizeUnder(hit);
          inbound.dedupKey = dedupPrefix + hit;
        } catch (error) {
          lookupFailed = { error };
        }
      },
      (error: unknown) => void (lookupFailed = { error }),
    );
    const steps: Array<() => Promise<void>> = [];
    // A LIS result whose accession is not an order known in memory and that carries a filler
    // number: attached to the order of its other number (hl7/order-numbers.ts), before the
    // accession prefix. The usual result (its accession a known order) reads and awaits nothing.
    const normalized = events;
    const numbers = this.#orderNumbers;
    // Its warnings are logged once the commit says whether the message is a resend (a duplicate
    // keeps the events stored when it first came: nothing of it is attached now).
    let attachWarnings: string[] = [];
    // Synchronous (no read, no await): marks a LIS numbering by case before this commit.
    this.#accessionCase?.note(this.#config.id, events);
    if (numbers?.needsLookup(message, events))
      steps.push(() =>
        this.#draftStep(inbound, events, (draft) => numbers.attach(draft, message), 'the order of a result could not be looked up by its other number; committed as normalized', (attached, w) => {
          events = attached;
          attachWarnings = w;
        }),
      );
    // Only an analyzer endpoint resolves (its events' accessions); the LIS commits at once.
    const resolve = this.#resolveEvents;
    if (resolve && events.length > 0)
      steps.push(() =>
        this.#draftStep(inbound, events, resolve, 'events could not be resolved; committed as normalized', (resolved, w) => {
          events = resolved;
          if (w.length > 0) this.#log.warn('resolving the events', { controlId: inbound.controlId, warnings: w });
        }),
      );
    try {
      const committing = this.#orderedCommit(lookedUp, steps, () => (lookupFailed ? Promise.reject(lookupFailed.error) : this.#store.commit(inbound, events)), order);
      // An order carrying a filler number: the look-ups of the results behind it wait for its commit.
      numbers?.noteOrderCommit(message, normalized, committing);
      const result = await committing;
      // A resend of a message whose stored record is damaged: answered as the duplicate it is (it
      // was answered AE "store unavailable" before, at every resend); the operator hears of the
      // damage here, and of whether the record could be written again from the resend.
      if (result.damagedRecord) this.#log.warn('resend of a message whose stored record is damaged: answered as a duplicate', { controlId: header.controlId, ...result.damagedRecord });
      numbers?.noteCommitted(normalized);
      if (attachWarnings.length > 0) {
        if (result.duplicate)
          this.#log.warn('resend of a result looked up by its order number: a duplicate, its events stay as stored when it first came (under the accession they had then); nothing attached now', {
            controlId: header.controlId,
            lookedUp: attachWarnings,
          });
        else this.#log.warn('result attached by its order number', { controlId: header.controlId, warnings: attachWarnings });
      }
      return { reply: result.ack, header, charset, result: messageResult(result.duplicate ? 'duplicate' : 'accepted', undefined, messageType, header.controlId, reply.first) };
    } catch (err) {
      // The store cannot commit (closed, failed, disk full): a negative ACK, never a silent drop.
      this.#store.countRejectedWithoutCommit();
      this.#log.warn('store unavailable; message answered with a negative acknowledgement', { controlId: header.controlId, error: describeError(err) });
      const bytes = this.#replyFor(header, charset, 'error', { code: 207, text: STORE_UNAVAILABLE }).bytes;
      return { reply: bytes, header, charset, result: messageResult('rejected', STORE_UNAVAILABLE, messageType, header.controlId, undefined) };
    }
  }

  /**
   * The fingerprint, among `earlier`, under which an earlier release stored the message (its first
   * event's key is in the store), or undefined. The keys are the first event's with the
   * fingerprint exchanged (normalized again only when the key is too long to hold it as text).
   * All look-ups run at once; the first of `earlier` found wins.
   */
  async #earlierFingerprint(controlId: string, fingerprint: string, earlier: readonly string[], first: DraftEvent, normalizeUnder: (fp: string) => DraftEvent[]): Promise<string | undefined> {
    const part = `|${fingerprint}|`;
    const at = first.idempotencyKey.indexOf(part);
    const keyWith = (fp: string): string | undefined => {
      if (at !== -1) return first.idempotencyKey.slice(0, at) + `|${fp}|` + first.idempotencyKey.slice(at + part.length);
      try {
        return normalizeUnder(fp)[0]?.idempotencyKey;
      } catch (err) {
        this.#log.warn('the keys of the releases before could not be made; committed under the current ones', { controlId, error: describeError(err) });
        return undefined;
      }
    };
    const keys = earlier.map(keyWith);
    return firstUsed(earlier, keys.map((k) => (k === undefined || k === first.idempotencyKey ? false : this.#keyUsed(k))));
  }

  /**
   * The fingerprint, among `earlier`, under which an earlier release stored a message without
   * events (its dedup key `prefix + fingerprint` is in the store), or undefined. Without the
   * store's dedup look-up (a store of tests), none.
   */
  async #earlierDedupFingerprint(prefix: string, earlier: readonly string[]): Promise<string | undefined> {
    const store = this.#store;
    if (!store.dedupKeyUsed) return undefined;
    return firstUsed(earlier, earlier.map((fp) => store.dedupKeyUsed?.(prefix + fp) ?? false));
  }

  /**
   * The commit of a message, issued once its look-up under earlier keys (`ready`, started before)
   * has settled and after its steps (an analyzer's accession resolution). Each message's issue
   * waits for the previous one's, and while any message has one pending, a message without
   * look-up or steps queues behind it too, so that the commits of pipelined frames (and of a
   * batch's members) reach the store in arrival order. The steps run one message at a time (an
   * accession resolved may depend on the commit before); the look-ups do not wait for each other.
   * With nothing pending the commit is issued at once. A step that fails is logged and skipped:
   * the commit decides.
   */
  #orderedCommit(ready: Promise<void> | undefined, steps: ReadonlyArray<() => Promise<void>>, commit: () => Promise<CommitResult>, order?: MemberOrder): Promise<CommitResult> {
    if (order) return this.#memberCommit(order, ready, steps, commit);
    if (ready === undefined && steps.length === 0 && this.#pendingSteps === 0) return commit();
    this.#pendingSteps++;
    const issued = this.#stepTail.then(() => this.#issueAfterSteps(ready, steps, commit));
    this.#stepTail = issued.then(
      () => void this.#pendingSteps--,
      () => void this.#pendingSteps--,
    );
    return issued.then((step) => step.commit);
  }

  /**
   * A commit issued once its look-up has settled and its steps have run (a step that fails is
   * logged and skipped). Wrapped: the turn ends once the commit is issued, not once it is durable.
   */
  async #issueAfterSteps(ready: Promise<void> | undefined, steps: ReadonlyArray<() => Promise<void>>, commit: () => Promise<CommitResult>): Promise<{ commit: Promise<CommitResult> }> {
    await ready;
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        this.#log.warn('a step before the commit failed; committed without it', { error: describeError(err) });
      }
    }
    return { commit: commit() };
  }

  /**
   * The commit of a member of a large batch (#processMembersInWindow), on the batch's own chain:
   * issued after the previous member's, once its look-up and steps are done (as #orderedCommit).
   */
  #memberCommit(order: MemberOrder, ready: Promise<void> | undefined, steps: ReadonlyArray<() => Promise<void>>, commit: () => Promise<CommitResult>): Promise<CommitResult> {
    const issued = order.tail.then(() => this.#issueAfterSteps(ready, steps, commit));
    order.tail = issued.then(
      () => undefined,
      () => undefined,
    );
    return issued.then((step) => step.commit);
  }

  /** Whether the store holds (or held: a tombstone) an event with this key. */
  async #keyUsed(key: string): Promise<boolean> {
    if (this.#store.idempotencyKeyUsed) return this.#store.idempotencyKeyUsed(key);
    return (await this.#store.getEventByKey(key)) !== undefined;
  }

  /**
   * A message's events changed before its commit (a LIS result attached to the order of its other
   * number, an analyzer's accessions resolved); one that fails leaves them as normalized, with
   * `failure` logged. The events and warnings that came back go to `done`, the search terms to the
   * message.
   */
  async #draftStep(inbound: InboundMessage, events: DraftEvent[], change: (draft: ResolvableEvents) => Promise<ResolvableEvents>, failure: string, done: (events: DraftEvent[], warnings: string[]) => void): Promise<void> {
    let draft: ResolvableEvents = { events, searchTerms: inbound.searchTerms ?? [], warnings: [] };
    try {
      draft = await change(draft);
    } catch (err) {
      this.#log.warn(failure, { controlId: inbound.controlId, error: describeError(err) });
    }
    inbound.searchTerms = draft.searchTerms;
    done(draft.events, draft.warnings);
  }

  /**
   * A host query (QRY^Q02, or a BC-5380 worklist inquiry ORM^O01 with ORC-1 = RF): answered with
   * QCK^Q02 and, when orders are known, DSR^Q03 in the same write, or with ORR^O02
   * (hl7/host-query.ts). The query is kept like any message, its answer as its ACK. No duplicate
   * detection: the analyzer asks again for the same sample with the same control id (Mindray BS
   * numbers every message 1), and each query gets the orders as they are now.
   */
  async #answerHostQuery(query: Hl7HostQuery | HostQueryProblem, raw: Buffer, whole: boolean, read: InboundRead, messageType: string | undefined, meta: FrameMeta): Promise<MessageOutcome> {
    const { header, charset } = read;
    if ('problem' in query) return this.#rejectMessage(raw, whole, read, messageType, meta, query.problem, 'reject');
    let answer: HostQueryAnswer;
    try {
      answer = await (this.#answerQuery as NonNullable<Hl7IntakeOptions['answerQuery']>)(query);
    } catch (err) {
      this.#log.warn('host query could not be answered', { controlId: header.controlId, specimenId: query.specimenId, error: describeError(err) });
      return this.#rejectMessage(raw, whole, read, messageType, meta, { code: 207, text: `the host query could not be answered: ${describeError(err)}` }, 'error');
    }
    const reply = Buffer.concat(buildHostQueryReplies(header, query, answer, () => compactId(ids.next())).map((text) => frameIn(text, charset)));
    const inbound = this.#inbound(meta, header, charset, whole ? raw : Buffer.from(raw), 'accepted', messageType);
    inbound.ack = reply;
    inbound.searchTerms = [...new Set([header.controlId, query.specimenId].filter((t) => t !== ''))];
    try {
      await this.#store.commit(inbound, []);
      this.#log.info('host query answered', { specimenId: query.specimenId, tests: answer.tests.length });
      return { reply, header, charset, result: messageResult('accepted', undefined, messageType, header.controlId, query.kind === 'orm-worklist' && answer.tests.length === 0 ? 'AR' : 'AA') };
    } catch (err) {
      this.#store.countRejectedWithoutCommit();
      this.#log.warn('store unavailable; host query answered with a negative acknowledgement', { controlId: header.controlId, error: describeError(err) });
      const bytes = this.#replyFor(header, charset, 'error', { code: 207, text: STORE_UNAVAILABLE }).bytes;
      return { reply: bytes, header, charset, result: messageResult('rejected', STORE_UNAVAILABLE, messageType, header.controlId, undefined) };
    }
  }

  /** A message that is not accepted: kept with status 'rejected' and answered AR/AE (CR/CE). */
  async #rejectMessage(raw: Buffer, whole: boolean, read: InboundRead, messageType: string | undefined, meta: FrameMeta, error: AckError, severity: Severity, order?: MemberOrder): Promise<MessageOutcome> {
    const { header, charset } = read;
    const ackHeader = error.code === 102 && error.location?.startsWith('MSH^1^') ? { ...FALLBACK_HEADER, controlId: header.controlId } : header;
    const reply = this.#replyFor(ackHeader, charset, severity, error);
    const message = this.#inbound(meta, ackHeader, charset, whole ? raw : Buffer.from(raw), 'rejected');
    message.rejectReason = error.text;
    if (reply.bytes) message.ack = reply.bytes;
    if (header.controlId) message.searchTerms = [header.controlId];
    const committed = await this.#commitRejected(message, order);
    const bytes = committed ? reply.bytes : this.#replyFor(ackHeader, charset, 'error', { code: 207, text: STORE_UNAVAILABLE }).bytes;
    return { reply: bytes, header, charset, result: messageResult('rejected', committed ? error.text : STORE_UNAVAILABLE, messageType, header.controlId, reply.first) };
  }

  /**
   * Commit a rejected message; undefined when the store could not take it (counted as such). A
   * message with a dedup key (HL7 without framing) may be a duplicate of one kept before.
   */
  async #commitRejected(message: InboundMessage, order?: MemberOrder): Promise<CommitResult | undefined> {
    try {
      // In arrival order too: behind a message whose look-up or steps are pending (#orderedCommit).
      return await this.#orderedCommit(undefined, [], () => this.#store.commit(message, []), order);
    } catch (err) {
      this.#store.countRejectedWithoutCommit();
      this.#log.warn('store unavailable; rejected message not kept', { controlId: message.controlId, error: describeError(err) });
      return undefined;
    }
  }

  /** The stored record of a message, without what depends on its outcome (ack, dedup key, …). */
  #inbound(meta: FrameMeta, header: MshHeader, charset: Charset, raw: Buffer, status: InboundMessage['status'], messageType = header.messageCode ? messageTypeOf(header) : undefined): InboundMessage {
    const m: Partial<InboundMessage> = { kind: 'hl7', endpoint: this.#config.id };
    if (meta.remoteAddress) m.remoteAddress = meta.remoteAddress;
    m.receivedAt = meta.receivedAt;
    if (header.controlId) m.controlId = header.controlId;
    if (header.sendingApplication || header.sendingFacility) m.sender = senderOf(header);
    if (messageType) m.messageType = messageType;
    m.encoding = charset;
    m.raw = raw;
    m.status = status;
    return m as InboundMessage;
  }

  /** The framed reply bytes for a result, per the acknowledgement mode. */
  #replyFor(header: MshHeader, charset: Charset, result: 'ok' | Severity, error?: AckError): { bytes: Buffer | undefined; first?: AckCode } {
    // An acknowledgement is never acknowledged (HL7 v2.5 §2.9.2): an inbound ACK (e.g. a Mindray
    // BS answering our DSR^Q03) is stored, and nothing is sent back.
    if (header.messageCode === 'ACK') return { bytes: undefined };
    const plan = planAcks(this.#config.ack, header, result);
    // The reply is encoded in the message's charset (frameIn).
    const frame = (code: AckCode): Buffer =>
      frameIn(buildAck(error ? { header, code, controlId: compactId(ids.next()), error } : { header, code, controlId: compactId(ids.next()) }), charset);
    const one = plan.first ?? plan.second;
    if (!one) return { bytes: undefined };
    const bytes = plan.first && plan.second ? Buffer.concat([frame(plan.first), frame(plan.second)]) : frame(one);
    return { bytes, first: one };
  }
}
