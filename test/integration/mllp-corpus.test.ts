import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Client, { Message, type InboundResponse } from 'node-hl7-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { unwrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { corpusDir, field, framesOf } from '../fixtures/hl7/helpers.ts';
import { wrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';

/**
 * Every corpus/hl7 file over a real TCP MLLP connection into the real store.
 * Single messages go through node-hl7-client's Client (a real, independent peer) when it can
 * represent them: its Message must parse the text, its per-connection version must be one it
 * knows, and the text must survive its re-serialisation. The rest (batches, LF-separated text,
 * unknown versions, the malformed batch) go byte-for-byte through our own MllpClient.
 * Either way the stored raw bytes must equal the bytes put on the wire.
 */
const CLIENT_VERSIONS = new Set(['2.1', '2.2', '2.3', '2.3.1', '2.4', '2.5', '2.5.1', '2.6', '2.7', '2.7.1', '2.8']);

let h: GatewayHarness;
beforeAll(async () => {
  h = await GatewayHarness.start();
});
afterAll(async () => {
  await h.stop();
});

const files = readdirSync(corpusDir).filter((f) => f.endsWith('.hl7') || f.endsWith('.mllp')).sort();

async function viaHl7Client(port: number, text: string, version: string, encoding: BufferEncoding): Promise<string> {
  const client = new Client({ host: '127.0.0.1', version } as ConstructorParameters<typeof Client>[0]);
  const replies: string[] = [];
  let done!: () => void;
  const got = new Promise<void>((resolve) => (done = resolve));
  const conn = client.createConnection({ port, waitAck: true, encoding } as Parameters<typeof client.createConnection>[0], async (res: InboundResponse) => {
    replies.push(res.getMessage().toString());
    done();
  });
  try {
    await conn.sendMessage(new Message({ text }));
    await got;
    return replies[0] as string;
  } finally {
    await conn.close();
    client.closeAll();
  }
}

describe('corpus/hl7 over TCP into the real store', () => {
  const viaLibrary: string[] = [];
  afterAll(() => {
    // The library path must really be exercised, not silently skipped.
    expect(viaLibrary.length).toBeGreaterThanOrEqual(20);
  });

  // Several corpus files share sender and MSH-10 (e.g. the Mindray manual numbers every example
  // 1): each file gets its own endpoint id so that it is not taken for a resend of another.
  for (const [index, file] of files.entries()) {
    it(`${file} is acknowledged with its MSH-10 and stored byte-exact`, async () => {
      const endpointId = `lis-${index}`;
      const port = (await h.addEndpoint({ id: endpointId })).address()?.port as number;
      let content = unwrapFrame(readFileSync(path.join(corpusDir, file)));
      // The Siemens capture ends with the block trailer FS LF (its CR normalised to LF by the
      // capture log): that is framing, not content, so it is not sent as content.
      const trailer = content.lastIndexOf(0x1c);
      if (trailer !== -1 && content.subarray(trailer + 1).every((b) => b === 0x0a || b === 0x0d)) content = content.subarray(0, trailer);
      const block = analyseBlock(content);
      const reads = block.messages.map((m) => readInbound(content, m, 'ascii'));
      const encoding: BufferEncoding = reads[0]?.charset === 'utf8' ? 'utf8' : 'latin1';
      const text = content.toString(encoding);
      const version = reads[0]?.header.version ?? '';
      let wire: Buffer = content;
      let replyText: string;
      let libraryOk = false;
      if (!block.isBatch && block.messages.length === 1 && CLIENT_VERSIONS.has(version) && !/\n/.test(text)) {
        try {
          const serialised = new Message({ text: text.trim() }).toString();
          libraryOk = serialised === text.trim() || serialised === text.replace(/\r$/, '');
          if (libraryOk) wire = Buffer.from(serialised, encoding);
        } catch {
          libraryOk = false;
        }
      }
      if (reads[0]?.header.messageCode === 'ACK' && !block.isBatch) {
        // An inbound ACK is stored and not answered (HL7 v2.5 §2.9.2): send it, wait until it is
        // stored, then check that nothing came back.
        const client = await MllpClient.connect({ host: '127.0.0.1', port });
        let replied = 0;
        client.socket.on('data', () => replied++);
        client.writeRaw(wrapFrame(content));
        const controlId = reads[0].header.controlId;
        let raw: Buffer | undefined;
        for (const until = Date.now() + 10_000; !raw && Date.now() < until; ) {
          raw = await h.rawOf(controlId, 'accepted', endpointId);
          if (!raw) await new Promise((r) => setTimeout(r, 10));
        }
        await new Promise((r) => setTimeout(r, 50));
        await client.close();
        expect(raw?.equals(content)).toBe(true);
        expect(replied).toBe(0);
        return;
      }
      if (libraryOk) {
        viaLibrary.push(file);
        replyText = await viaHl7Client(port, wire.toString(encoding), version, encoding);
      } else {
        const client = await MllpClient.connect({ host: '127.0.0.1', port });
        const reply = await client.send(content);
        await client.close();
        replyText = reply.toString(encoding);
      }
      const reply = framesOf(wrapFrame(Buffer.from(replyText, 'latin1')))[0] ?? [];
      if (block.messages.length === 0) {
        expect(field(reply, 'MSA', 1)).toBe('AR');
        return;
      }
      const msas = reply.filter((s) => s[0] === 'MSA');
      expect(msas.map((s) => s[2])).toEqual(reads.map((r) => r.header.controlId));
      expect(msas.every((s) => s[1] === 'AA')).toBe(true);
      // Stored byte-exact.
      if (!block.isBatch) {
        const controlId = reads[0]?.header.controlId as string;
        const raw = await h.rawOf(controlId, 'accepted', endpointId);
        expect(raw?.equals(wire), `raw of ${controlId}`).toBe(true);
      } else {
        for (const [i, m] of block.messages.entries()) {
          const expected = content.subarray(m.start, m.end);
          const list = await h.store.listMessages({ controlId: reads[i]?.header.controlId as string, endpoint: endpointId });
          const raws = await Promise.all(list.map(async (x) => (await h.store.getMessage(x.id))?.raw));
          expect(raws.some((r) => r?.equals(expected))).toBe(true);
        }
      }
    });
  }
});
