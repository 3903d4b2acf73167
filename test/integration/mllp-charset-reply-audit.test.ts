/**
 * The acknowledgement of a message in one of the ISO 8859 charsets other than Latin-1 (MSH-18
 * `8859/2` … `8859/15`: central European, Baltic, Greek, Turkish labs) must give back the
 * characters the LIS sent — its own MSH-10 in MSA-2, its MSH-3/4 as the ACK's MSH-5/6, its BHS
 * facility in the batch reply — in the bytes of the charset MSH-18 names.
 * Real parts: a LevelDB EventStore in a temp dir, the MllpEndpoint on a real TCP port, the
 * project's MllpClient as the LIS.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';

/** Text as a LIS writing ISO 8859-2 puts it on the wire (Ł 0xA3, ó 0xF3, ź 0xBC, ą 0xB1, ę 0xEA). */
function latin2(text: string): Buffer {
  const table: Record<string, number> = { Ł: 0xa3, ó: 0xf3, ź: 0xbc, ą: 0xb1, ę: 0xea, Ś: 0xa6 };
  return Buffer.from([...text].map((ch) => table[ch] ?? ch.charCodeAt(0)));
}

/** The bytes of field n (HL7 numbering) of the first segment `name` in a reply, split on the raw bytes. */
function fieldBytes(reply: Buffer, name: string, n: number): Buffer | undefined {
  const segments: Buffer[] = [];
  let at = 0;
  while (at < reply.length) {
    const cr = reply.indexOf(0x0d, at);
    const end = cr === -1 ? reply.length : cr;
    segments.push(reply.subarray(at, end));
    at = end + 1;
  }
  const seg = segments.find((s) => s.subarray(0, 3).toString('latin1') === name);
  if (!seg) return undefined;
  const fields: Buffer[] = [];
  let from = 0;
  for (let i = 0; i <= seg.length; i++) {
    if (i === seg.length || seg[i] === 0x7c) {
      fields.push(seg.subarray(from, i));
      from = i + 1;
    }
  }
  // MSH-1/BHS-1 is the separator itself: their field n sits at index n - 1.
  return fields[name === 'MSH' || name === 'BHS' ? n - 1 : n];
}

let h: GatewayHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

const adt = (controlId: string): Buffer =>
  Buffer.concat([latin2(`MSH|^~\\&|LIS|Szpital Łódź|GW|LAB|20240101120000||ADT^A01|${controlId}|P|2.5||||||8859/2\r`), latin2('PID|1||M-1||Kowalski^Łukasz\r')]);

describe('MLLP: replies to ISO 8859-2 messages (MSH-18 8859/2)', () => {
  /**
   * What the user saw: a Polish hospital LIS (MSH-18 `8859/2`, facility "Szpital Łódź", control
   * ids carrying its ward's letter) got `MSA|AA|Łód-1` back as `MSA|AA|Aód-1` and its own facility
   * as "Szpital Aódz": the ACK did not answer the message it sent, so the LIS kept resending it,
   * and every resend was answered with the same stored, wrong ACK — its queue stalled.
   * Promise broken: issue 2 "charsets from MSH-18", "MSA-2 echoes the received control id";
   * hl7/README.md "The ACK is encoded in the message's charset".
   * Cause: charset.ts encodeText (and hl7-intake.ts replyEncoding) wrote every charset other than
   * UTF-8 as Latin-1, which keeps only the low byte of characters outside Latin-1 (Ł U+0141 → 0x41).
   */
  it('the AA gives back MSH-10 and MSH-3/4 in the 8859-2 bytes the LIS sent, on a resend too', async () => {
    h = await GatewayHarness.start();
    const c = await MllpClient.connect({ host: '127.0.0.1', port: h.port, timeoutMs: 10_000 });
    const sent = adt('Łód-1');
    const first = await c.send(sent);
    const again = await c.send(sent);
    await c.close();
    for (const reply of [first, again]) {
      expect(fieldBytes(reply, 'MSA', 1)?.toString('latin1')).toBe('AA');
      expect(fieldBytes(reply, 'MSA', 2), 'MSA-2: the MSH-10 sent').toEqual(latin2('Łód-1'));
      expect(fieldBytes(reply, 'MSH', 6), 'MSH-6: the MSH-4 sent').toEqual(latin2('Szpital Łódź'));
      expect(fieldBytes(reply, 'MSH', 18)?.toString('latin1')).toBe('8859/2');
    }
  });

  /**
   * What the user saw: the same LIS sending its night's orders as a batch got a batch reply whose
   * BHS and every MSA-2 were rewritten the same way, so none of its messages were matched.
   * Promise broken: as above, and hl7/README.md "Batches": BHS-12 echoes BHS-11, one ACK per message.
   */
  it('the batch reply gives back the BHS facility, BHS-11 and each MSA-2 in 8859-2', async () => {
    h = await GatewayHarness.start();
    const c = await MllpClient.connect({ host: '127.0.0.1', port: h.port, timeoutMs: 10_000 });
    const batch = Buffer.concat([latin2('BHS|^~\\&|LIS|Szpital Łódź|GW|LAB|20240101120000||||Partia-ą\r'), adt('B-ą1'), adt('B-ę2'), latin2('BTS|2\r')]);
    const reply = await c.send(batch);
    await c.close();
    expect(fieldBytes(reply, 'BHS', 6), 'BHS-6: the BHS-4 sent').toEqual(latin2('Szpital Łódź'));
    expect(fieldBytes(reply, 'BHS', 12), 'BHS-12: the BHS-11 sent').toEqual(latin2('Partia-ą'));
    const msa2 = reply
      .toString('latin1')
      .split('\r')
      .filter((s) => s.startsWith('MSA'))
      .map((s) => Buffer.from(s.split('|')[2] ?? '', 'latin1'));
    expect(msa2).toEqual([latin2('B-ą1'), latin2('B-ę2')]);
  });
});

describe('MLLP: a message declared UTF-8 whose bytes are Latin-1', () => {
  /**
   * What the user saw: a LIS whose interface template says MSH-18 `UNICODE UTF-8` while its
   * database writes Latin-1 (a French clinic: control ids with the ward's letter, "Clinique
   * Sévigné") got `MSA|AA|R�A-1` for `RÉA-1`: the ACK matched nothing, the LIS resent, and every
   * resend replayed the same stored ACK. Its creatinine results went to Odoo in "�mol/L".
   * Promise broken: issue 2 "MSA-2 echoes the received control id", "charsets from MSH-18";
   * hl7/README.md corrects a mislabelled charset when the bytes say otherwise — the other way
   * round (declared ASCII/Latin-1, sent UTF-8) only.
   * Cause: charset.ts chooseCharset took a UTF-8 declaration as it was, even for bytes that are not
   * UTF-8; each invalid byte decoded to U+FFFD and came back in the ACK as EF BF BD.
   */
  it('is read as Latin-1: the AA gives back MSH-10 byte for byte, the stored text is the one sent', async () => {
    h = await GatewayHarness.start();
    const c = await MllpClient.connect({ host: '127.0.0.1', port: h.port, timeoutMs: 10_000 });
    const msg = Buffer.from(
      'MSH|^~\\&|LIS|Clinique Sévigné|GW|LAB|20240101120000||ORU^R01^ORU_R01|RÉA-1|P|2.5||||||UNICODE UTF-8\rPID|1||M-1\rORC|RE|ACC-REA1\rOBR|1|ACC-REA1||CREA^Créatinine\rOBX|1|NM|CREA^Créatinine||80|µmol/L|||||F\r',
      'latin1',
    );
    const reply = await c.send(msg);
    await c.close();
    expect(fieldBytes(reply, 'MSA', 1)?.toString('latin1')).toBe('AA');
    expect(fieldBytes(reply, 'MSA', 2), 'MSA-2: the MSH-10 sent').toEqual(Buffer.from('RÉA-1', 'latin1'));
    expect(fieldBytes(reply, 'MSH', 6), 'MSH-6: the MSH-4 sent').toEqual(Buffer.from('Clinique Sévigné', 'latin1'));
    const stored = (await h.store.listMessages({ controlId: 'RÉA-1', endpoint: 'lis' }))[0];
    expect(stored?.encoding).toBe('latin1');
    const events = await h.store.eventsByCorrelation('ACC-REA1');
    expect(events.map((e) => (e.event.data as { units?: string }).units), 'the units sent to Odoo').toEqual(['µmol/L']);
  });
});
