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
});
