import { readFile } from 'node:fs/promises';
import type tls from 'node:tls';
import { planAcks, type AckOutcome } from '../../hl7/ack.ts';
import { readMsh, type MshHeader } from '../../hl7/msh.ts';
import { MllpClient, type ReplyWait } from './mllp-client.ts';
import { unwrapFrame } from './mllp-encoder.ts';

/**
 * `lab-gateway send`: send HL7 files over MLLP, one block per file (a file may hold a batch), each
 * after the reply to the previous one, and report every acknowledgement. Files may be plain HL7
 * or already MLLP-wrapped (`.mllp`); the bytes are sent as they are, without re-encoding.
 */
export interface SendHl7Options {
  host: string;
  port: number;
  files: string[];
  /** TLS: true for the system trust store, or node:tls options (ca, cert, key, servername). */
  tls?: tls.ConnectionOptions | boolean;
  timeoutMs?: number;
  /**
   * How long to wait for a reply to a message whose MSH-15/MSH-16 ask for none when it is accepted
   * (an enhanced-mode link then sends nothing) before taking the silence as that; default 2 s
   * (an original-mode link answers such a message AA within milliseconds).
   */
  quietMs?: number;
}

export interface SendHl7Result {
  file: string;
  /** MSH-10 of the (first) message sent. */
  controlId: string;
  /** The reply text (segments separated by CR). */
  ack: string;
  /** MSA-1 of the (first) MSA in the reply: AA, AE, AR, CA, CE, CR. */
  ackCode: string;
  /** MSA-2 of that MSA. */
  ackControlId: string;
  /**
   * Every MSA of the reply, in order (a file may hold several messages, each acknowledged):
   * `controlId` is the MSH-10 of the message it answers (matched by MSA-2, else by position).
   */
  messages: Array<{ controlId: string; ackCode: string; ackControlId: string }>;
  /**
   * True when the reply holds at least one MSA and every MSA-1 is AA or CA; or when no reply came
   * to a message that asks for none on success (enhanced mode: MSH-15/MSH-16 NE or ER), see `note`.
   */
  ok: boolean;
  /** Why there is no acknowledgement to show, when none came and none was asked for. */
  note?: string;
}

const SEGMENTS = /\r\n|\r|\n/;

function allMsa(reply: string): Array<{ code: string; controlId: string }> {
  const out: Array<{ code: string; controlId: string }> = [];
  for (const seg of reply.split(SEGMENTS)) {
    if (seg.startsWith('MSA')) {
      const f = seg.split(seg[3] ?? '|');
      out.push({ code: f[1] ?? '', controlId: f[2] ?? '' });
    }
  }
  return out;
}

/** The header of every message in `text`, in order. */
function sentHeaders(text: string): MshHeader[] {
  return text
    .split(SEGMENTS)
    .filter((seg) => seg.startsWith('MSH'))
    .map((seg) => readMsh(seg).header);
}

const COMMIT_OUTCOMES: Readonly<Record<string, AckOutcome>> = { CA: 'ok', CR: 'reject', CE: 'error' };

/**
 * What a block is due back (HL7 v2.5 §2.9.3, hl7/ack.ts planAcks). One message: after a commit
 * ACK (CA/CE/CR, so the link is in enhanced mode) the application ACK its MSH-16 asks for under
 * that outcome comes in the same write; after an AA/AE/AR nothing more. A batch is answered with
 * one batch. When every message asks for no acknowledgement on success (MSH-15 and MSH-16 NE or
 * ER), an enhanced-mode link answers nothing: a quiet wait, not a failure.
 */
function replyWait(headers: readonly MshHeader[], batch: boolean, quietMs: number): ReplyWait {
  const single = !batch && headers.length === 1 ? headers[0] : undefined;
  const more = (got: readonly Buffer[]): boolean => {
    if (!single || got.length !== 1) return false;
    const first = allMsa((got[0] as Buffer).toString('latin1'))[0];
    const outcome = first ? COMMIT_OUTCOMES[first.code] : undefined;
    return outcome !== undefined && planAcks('enhanced', single, outcome).second !== undefined;
  };
  const silentOnSuccess = headers.length > 0 && headers.every((h) => {
    const plan = planAcks('enhanced', h, 'ok');
    return plan.first === undefined && plan.second === undefined;
  });
  return silentOnSuccess ? { more, quietMs } : { more };
}

export async function* sendHl7Files(options: SendHl7Options): AsyncGenerator<SendHl7Result> {
  const client = await MllpClient.connect({
    host: options.host,
    port: options.port,
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
  });
  try {
    for (const file of options.files) {
      const content = unwrapFrame(await readFile(file));
      const text = content.toString('latin1');
      const mshAt = text.search(/(^|[\r\n])MSH/);
      const mshLine = mshAt === -1 ? '' : (text.slice(mshAt).replace(/^[\r\n]/, '').split(/[\r\n]/)[0] ?? '');
      const controlId = readMsh(mshLine).header.controlId;
      const headers = sentHeaders(text);
      const batch = /(^|[\r\n])[BF]HS/.test(text);
      const replies = await client.exchange(content, replyWait(headers, batch, options.quietMs ?? Math.min(2_000, options.timeoutMs ?? 2_000)));
      // Replies are decoded as UTF-8 when valid (MSH-18 UNICODE UTF-8), else Latin-1; an
      // enhanced-mode commit ACK and application ACK are shown one after the other.
      const ack = replies.map((reply) => (reply.toString('utf8').includes('\ufffd') ? reply.toString('latin1') : reply.toString('utf8'))).join('\r');
      const msas = allMsa(ack);
      const sent = headers.map((h) => h.controlId);
      const messages = msas.map((m, i) => ({ controlId: m.controlId !== '' && sent.includes(m.controlId) ? m.controlId : (sent[i] ?? ''), ackCode: m.code, ackControlId: m.controlId }));
      const first = msas[0] ?? { code: '', controlId: '' };
      if (replies.length === 0) {
        const asked = headers.map((h) => `MSH-15 ${h.acceptAckType || 'empty'}, MSH-16 ${h.appAckType || 'empty'}`);
        const note = `no reply: the message asks for no acknowledgement when it is accepted (${[...new Set(asked)].join('; ')}); the link is in enhanced mode`;
        yield { file, controlId, ack, ackCode: '', ackControlId: '', messages, ok: true, note };
        continue;
      }
      const ok = msas.length > 0 && msas.every((m) => m.code === 'AA' || m.code === 'CA');
      yield { file, controlId, ack, ackCode: first.code, ackControlId: first.controlId, messages, ok };
    }
  } finally {
    await client.close().catch(() => undefined);
  }
}

/** All results at once (convenience for scripts and tests). */
export async function sendHl7FilesAll(options: SendHl7Options): Promise<SendHl7Result[]> {
  const out: SendHl7Result[] = [];
  for await (const r of sendHl7Files(options)) out.push(r);
  return out;
}
