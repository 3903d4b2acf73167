/**
 * A batch whose members declare different charsets (MSH-18): the reply is one MLLP block, one byte
 * stream, which the LIS decodes with one charset. It is written in the charset of the batch's first
 * member (the BHS has no charset field), and every ACK in it says so in its MSH-18, so that no ACK
 * carries bytes of another charset than its MSH-18 names. Before, the reply was written in the
 * charset of the batch's LAST member: the first member's MSA-2 came back in bytes it never sent.
 * Real parts: a LevelDB EventStore in a temp dir, the MllpEndpoint on a real TCP port, the
 * project's MllpClient as the LIS.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';

let h: GatewayHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

const adt = (id: string, msh18: string): string => `MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ADT^A01^ADT_A01|${id}|P|2.5||||||${msh18}\rPID|1||MRN-1\r`;

/** The segments of a reply read as bytes in `charset`, as the LIS reads the block. */
const segmentsOf = (reply: Buffer, charset: BufferEncoding): string[][] =>
  reply
    .toString(charset)
    .replace(/^\x0b|\x1c\r$/g, '')
    .split('\r')
    .filter((s) => s !== '')
    .map((s) => s.split('|'));

describe('MLLP: the reply to a batch of members in different charsets', () => {
  it('is written in the first member\'s charset, every ACK\'s MSH-18 naming it; a member resent alone gets its own', async () => {
    h = await GatewayHarness.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      // A Latin-1 member first (ü is 0xFC), then one in UTF-8 (é is C3 A9).
      const batch = Buffer.concat([
        Buffer.from('BHS|^~\\&|LIS|LAB|GW|LAB|20240101120000||||B-CS\r', 'latin1'),
        Buffer.from(adt('Mü-1', '8859/1'), 'latin1'),
        Buffer.from(adt('Zé-2', 'UNICODE UTF-8'), 'utf8'),
        Buffer.from('BTS|2\r', 'latin1'),
      ]);
      const reply = await client.send(batch);
      // Read as Latin-1, the first member's charset: both control ids come back as sent in it.
      const segs = segmentsOf(reply, 'latin1');
      expect(segs.filter((s) => s[0] === 'MSA').map((s) => [s[1], s[2]])).toEqual([
        ['AA', 'Mü-1'],
        ['AA', 'Zé-2'],
      ]);
      // No ACK declares a charset its bytes are not in.
      expect(segs.filter((s) => s[0] === 'MSH').map((s) => s[17])).toEqual(['8859/1', '8859/1']);
      expect(reply.includes(Buffer.from('é', 'utf8'))).toBe(false);

      // The second member alone (a resend): its stored ACK, in its own charset, as always.
      const alone = await client.send(Buffer.from(adt('Zé-2', 'UNICODE UTF-8'), 'utf8'));
      const own = segmentsOf(alone, 'utf8');
      expect(own.find((s) => s[0] === 'MSA')?.[2]).toBe('Zé-2');
      expect(own.find((s) => s[0] === 'MSH')?.[17]).toBe('UNICODE UTF-8');
      expect(h.store.intake()).toMatchObject({ accepted: 2, duplicates: 1 });
    } finally {
      await client.close();
    }
  });

  it('a batch whose members share one charset is answered in it, MSH-18 as each sent it', async () => {
    h = await GatewayHarness.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      const batch = Buffer.from(`BHS|^~\\&|LIS|LAB|GW|LAB|20240101120000||||B-U8\r${adt('Ä-1', 'UNICODE UTF-8')}${adt('Ö-2', 'UNICODE UTF-8')}BTS|2\r`, 'utf8');
      const segs = segmentsOf(await client.send(batch), 'utf8');
      expect(segs.filter((s) => s[0] === 'MSA').map((s) => s[2])).toEqual(['Ä-1', 'Ö-2']);
      expect(segs.filter((s) => s[0] === 'MSH').map((s) => s[17])).toEqual(['UNICODE UTF-8', 'UNICODE UTF-8']);
    } finally {
      await client.close();
    }
  });
});
