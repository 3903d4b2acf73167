/**
 * A message whose MSH-18 names a character set the gateway does not read (HL7 table 0211 has
 * `GB 18030`, `BIG-5`, `KS X 1001`, `ISO IR87` … beside the ISO 8859 parts and UTF-8 it reads:
 * hl7/README.md "Segment terminators and charsets"). It is taken (its codes, numbers and values
 * are ASCII), decoded in the endpoint's charset as corrected by its bytes, with a warning; its raw
 * bytes are kept as they came; and its ACK gives back MSH-3/4 and MSH-10 in the very bytes the LIS
 * sent, so that the LIS matches it. Holds; tested here over real TCP into the real store.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';

let h: GatewayHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

/** 北京 in GB 18030 (not valid UTF-8). */
const BEIJING = Buffer.from([0xb1, 0xb1, 0xbe, 0xa9]);

describe('MLLP: MSH-18 names a charset the gateway does not read', () => {
  it('GB 18030: taken, its result made, raw bytes kept; the AA gives back MSH-4 and MSH-10 byte for byte', async () => {
    h = await GatewayHarness.start();
    const message = Buffer.concat([
      Buffer.from('MSH|^~\\&|LIS|', 'latin1'),
      BEIJING,
      Buffer.from('|GW|LAB|20260301120000||ORU^R01^ORU_R01|', 'latin1'),
      BEIJING,
      Buffer.from('-1|P|2.5||||||GB 18030\rPID|1||MRN-1||', 'latin1'),
      BEIJING,
      Buffer.from('\rOBR|1|ACC-GB1||GLU^Glucose|||||||||||||||||||F\rOBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F\r', 'latin1'),
    ]);
    const socket = net.connect({ host: '127.0.0.1', port: h.port });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.write(Buffer.concat([Buffer.of(0x0b), message, Buffer.of(0x1c, 0x0d)]));
    await expect.poll(() => Buffer.concat(chunks).includes(0x1c), { timeout: 10_000 }).toBe(true);
    socket.destroy();

    const reply = Buffer.concat(chunks);
    const controlId = Buffer.concat([BEIJING, Buffer.from('-1', 'latin1')]);
    expect(reply.includes(Buffer.concat([Buffer.from('\rMSA|AA|', 'latin1'), controlId, Buffer.from('\r', 'latin1')])), `MSA-2 is not the bytes sent: ${reply.toString('latin1')}`).toBe(true);
    // The ACK's MSH-5/6 are the message's MSH-3/4, as sent.
    expect(reply.includes(Buffer.concat([Buffer.from('|LIS|', 'latin1'), BEIJING, Buffer.from('|', 'latin1')]))).toBe(true);

    const [stored] = await h.store.listMessages({ endpoint: 'lis', limit: 10 });
    expect(stored?.status).toBe('accepted');
    expect((await h.store.getMessage(stored?.id as string))?.raw).toEqual(message);
    expect((await h.store.eventsByCorrelation('ACC-GB1')).map((e) => e.event.type)).toEqual(['result.validated']);
  });
});
