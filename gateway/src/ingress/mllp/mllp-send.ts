import { readFile } from 'node:fs/promises';
import type tls from 'node:tls';
import { readMsh } from '../../hl7/msh.ts';
import { MllpClient } from './mllp-client.ts';
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
  /** True when the reply holds at least one MSA and every MSA-1 is AA or CA. */
  ok: boolean;
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

/** MSH-10 of every message in `text`, in order. */
function sentControlIds(text: string): string[] {
  return text
    .split(SEGMENTS)
    .filter((seg) => seg.startsWith('MSH'))
    .map((seg) => readMsh(seg).header.controlId);
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
      const reply = await client.send(content);
      // Replies are decoded as UTF-8 when valid (MSH-18 UNICODE UTF-8), else Latin-1.
      const ack = (Buffer.from(reply).toString('utf8').includes('\ufffd') ? reply.toString('latin1') : reply.toString('utf8'));
      const msas = allMsa(ack);
      const sent = sentControlIds(text);
      const messages = msas.map((m, i) => ({ controlId: m.controlId !== '' && sent.includes(m.controlId) ? m.controlId : (sent[i] ?? ''), ackCode: m.code, ackControlId: m.controlId }));
      const first = msas[0] ?? { code: '', controlId: '' };
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
