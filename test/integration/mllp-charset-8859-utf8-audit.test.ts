/**
 * A message whose MSH-18 names an ISO 8859 part other than Latin-1 (`8859/15`, the Latin-1 with
 * the euro sign that French, German and Finnish LIS templates name; `8859/2` in Polish and Czech
 * labs) while the interface engine writes UTF-8 must be read as the UTF-8 it is, as a message
 * labelled `8859/1` already was (hl7/README.md "Segment terminators and charsets").
 * Real parts: a LevelDB EventStore in a temp dir, the MllpEndpoint on a real TCP port, the
 * project's MllpClient as the LIS.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { wrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { field, framesOf } from '../fixtures/hl7/helpers.ts';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { decodeText, encodeText, type Charset } from '../../gateway/src/hl7/charset.ts';
import { parseMessage } from '../../gateway/src/hl7/message.ts';
import { contentFingerprint, readMsh, senderOf } from '../../gateway/src/hl7/msh.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';
import type { InboundMessage } from '../../gateway/src/store/types.ts';

let h: GatewayHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

/** A final creatinine result in µmol/L, written in UTF-8 whatever MSH-18 says. */
const oruUtf8 = (controlId: string, accession: string, msh18: string): Buffer =>
  Buffer.from(
    `MSH|^~\\&|LIS|Labor Köln|GW|LAB|20240101120000||ORU^R01^ORU_R01|${controlId}|P|2.5||||||${msh18}\r` +
      `PID|1||MRN-1\rORC|RE|${accession}\rOBR|1|${accession}||CREA^Créatinine\rOBX|1|NM|CREA^Créatinine||80|µmol/L|||||F\r`,
    'utf8',
  );

describe('MLLP: UTF-8 bytes under an ISO 8859 label other than Latin-1', () => {
  /**
   * What the user saw: a lab whose LIS template says MSH-18 `8859/15` (its engine writes UTF-8)
   * had every creatinine result reach Odoo in "Âµmol/L", and the message browser showed the
   * sender as "Labor KÃ¶ln"; the same feed labelled `8859/1` read "µmol/L". A Polish LIS
   * labelled `8859/2` got "Âľmol/L".
   * Cause: charset.ts chooseCharset corrected a UTF-8 text only under an ASCII or Latin-1 label;
   * under any other ISO 8859 part it decoded each byte of a UTF-8 sequence as a character of its
   * own.
   */
  it.each(['8859/15', '8859/2'])('declared %s: the result keeps µmol/L, the message is kept as UTF-8, the ACK gives back the bytes sent', async (msh18) => {
    h = await GatewayHarness.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      const sent = oruUtf8('CREA-1', 'ACC-CREA-1', msh18);
      const reply = await client.send(sent);
      const ack = framesOf(wrapFrame(reply))[0];
      expect(field(ack, 'MSA', 1)).toBe('AA');
      expect(field(ack, 'MSA', 2)).toBe('CREA-1');
      // The ACK's MSH-6 is the sender's MSH-4, in the bytes it was sent in.
      expect(reply.includes(Buffer.from('|Labor Köln|', 'utf8'))).toBe(true);

      const events = await h.store.eventsByCorrelation('ACC-CREA-1');
      const validated = events.find((e) => e.event.type === 'result.validated');
      expect(validated?.event.data).toMatchObject({ testCode: 'CREA', value: '80', units: 'µmol/L' });

      const [message] = await h.store.listMessages({ controlId: 'CREA-1', endpoint: 'lis' });
      expect(message?.encoding).toBe('utf8');
      expect(message?.sender).toBe('LIS^Labor Köln');
      expect(await h.rawOf('CREA-1')).toEqual(sent);
    } finally {
      await client.close();
    }
  });

  it('a real 8859-15 text (é, € as single bytes) is still read as 8859-15', async () => {
    h = await GatewayHarness.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      // é = 0xE9, € = 0xA4 in ISO 8859-15: not UTF-8.
      const text = 'MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ORU^R01|EUR-1|P|2.5||||||8859/15\rPID|1\rORC|RE|ACC-EUR-1\rOBR|1|ACC-EUR-1||FEE^Frais\rOBX|1|ST|FEE^Frais||12 \u20ac pay\u00e9||||||F\r';
      const sent = Buffer.from([...text].map((ch) => (ch === '\u20ac' ? 0xa4 : ch.charCodeAt(0))));
      const ack = framesOf(wrapFrame(await client.send(sent)))[0];
      expect(field(ack, 'MSA', 1)).toBe('AA');
      const events = await h.store.eventsByCorrelation('ACC-EUR-1');
      expect(events.find((e) => e.event.type === 'result.validated')?.event.data).toMatchObject({ value: '12 € payé' });
      const [message] = await h.store.listMessages({ controlId: 'EUR-1', endpoint: 'lis' });
      expect(message?.encoding).toBe('iso-8859-15');
    } finally {
      await client.close();
    }
  });

  /**
   * A genuine 8859-2 text can be valid UTF-8 by accident: in capitals, Ó (0xD3) followed by Ł
   * (0xA3) or Ż (0xAF) is a two-byte UTF-8 sequence. A urine colour "RÓŻOWY" (pink) or a patient
   * "GÓŁKOWSKA" read as UTF-8 became "RӯOWY" / "GӣKOWSKA" (Cyrillic letters no 8859-2 LIS wrote).
   */
  it('a real 8859-2 text that happens to be valid UTF-8 (RÓŻOWY, GÓŁKOWSKA) is still read as 8859-2', async () => {
    h = await GatewayHarness.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      const text =
        'MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ORU^R01|PL-1|P|2.5||||||8859/2\rPID|1||MRN-PL||GÓŁKOWSKA^RÓŻA\r' +
        'ORC|RE|ACC-PL-1\rOBR|1|ACC-PL-1||UCOL^Barwa moczu\rOBX|1|ST|UCOL^Barwa moczu||RÓŻOWY||||||F\r';
      const sent = encodeText(text, 'iso-8859-2');
      expect(sent.toString('utf8')).toContain('RӯOWY'); // the trap: these bytes are valid UTF-8
      const ack = framesOf(wrapFrame(await client.send(sent)))[0];
      expect(field(ack, 'MSA', 2)).toBe('PL-1');
      const events = await h.store.eventsByCorrelation('ACC-PL-1');
      expect(events.find((e) => e.event.type === 'result.validated')?.event.data).toMatchObject({ value: 'RÓŻOWY' });
      const [message] = await h.store.listMessages({ controlId: 'PL-1', endpoint: 'lis' });
      expect(message?.encoding).toBe('iso-8859-2');
    } finally {
      await client.close();
    }
  });

  /**
   * The release before read such a message in the part its label names, and keyed it (dedup key,
   * event keys) by its sender read so: "LIS^Labor KÃ¶ln". A LIS resending it after the upgrade
   * (no ACK received before the restart) must get the stored ACK, and the results must not be
   * recorded a second time — a second result line, a second invoice line.
   */
  it('declared 8859/15: a message taken by the release before, resent after the upgrade, is its duplicate', async () => {
    h = await GatewayHarness.start();
    const sent = oruUtf8('CREA-9', 'ACC-CREA-9', '8859/15');
    const before = asReadBefore(sent, 'iso-8859-15');
    expect(before.sender).toBe('LIS^Labor KÃ¶ln');
    const storedAck = wrapFrame(Buffer.from('MSH|^~\\&|GW|LAB|LIS|Labor KÃ¶ln|20240101120001||ACK^R01^ACK|A9|P|2.5\rMSA|AA|CREA-9\r', 'latin1'));
    await h.store.commit({ ...before.inbound, ack: storedAck }, before.events);
    expect(before.events.length).toBeGreaterThan(0);
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      expect(wrapFrame(await client.send(sent))).toEqual(storedAck);
      expect(h.intakeEvents.map((e) => e.outcome)).toEqual(['duplicate']);
      expect(await h.store.eventsByCorrelation('ACC-CREA-9')).toHaveLength(before.events.length);
    } finally {
      await client.close();
    }
  });

  it('declared 8859/15: the events of a message the release before took keep their keys (no second result)', async () => {
    h = await GatewayHarness.start();
    const sent = oruUtf8('CREA-8', 'ACC-CREA-8', '8859/15');
    const before = asReadBefore(sent, 'iso-8859-15');
    // Its message record found no more by its dedup key (as after a dedup key of another form):
    // only the event keys stand between the resend and a second result.
    await h.store.commit({ ...before.inbound, dedupKey: 'lis|other' }, before.events);
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      expect(field(framesOf(wrapFrame(await client.send(sent)))[0], 'MSA', 1)).toBe('AA');
      expect(await h.store.eventsByCorrelation('ACC-CREA-8')).toHaveLength(before.events.length);
    } finally {
      await client.close();
    }
  });
});

/**
 * What the release before b7977f6 committed for `sent`: the message read in the part its MSH-18
 * names, its record keyed `endpoint|sender|MSH-10|fingerprint` and its events normalized from
 * that reading.
 */
function asReadBefore(sent: Buffer, charset: Charset): { sender: string; inbound: InboundMessage; events: ReturnType<typeof normalizeLis> } {
  const structure = analyseBlock(sent).messages[0];
  if (!structure) throw new Error('no message');
  const texts = structure.segments.map((s) => decodeText(sent.subarray(s.start, s.end), charset));
  const { header } = readMsh(texts[0] as string);
  const fingerprint = contentFingerprint(sent);
  const receivedAt = new Date().toISOString();
  const events = normalizeLis({ message: parseMessage(header, texts), fingerprint, endpoint: 'lis', receivedAt, notes: [] });
  const sender = senderOf(header);
  const inbound: InboundMessage = {
    kind: 'hl7',
    endpoint: 'lis',
    receivedAt,
    controlId: header.controlId,
    sender,
    messageType: 'ORU^R01^ORU_R01',
    encoding: charset,
    raw: sent,
    status: 'accepted',
    dedupKey: `lis|${sender}|${header.controlId}|${fingerprint}`,
  };
  return { sender, inbound, events };
}
