/**
 * The scope of duplicate detection (hl7/README.md "Duplicates", "Idempotency key"): a message is a
 * resend of another only with the same endpoint, the same sender (MSH-3^MSH-4) and the same
 * MSH-10. Two applications on one link that number their messages alike (a LIS and its
 * middleware, two facilities of one LIS) are not each other's resends, and a link's messages are
 * not another link's. Each resend gets its own message's stored ACK.
 *
 * Real TCP, a real LevelDB store in a temp dir, two endpoints on it.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { field, framesOf } from '../fixtures/hl7/helpers.ts';

let h: GatewayHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

const oru = (app: string, facility: string, id: string, accession: string): string =>
  `MSH|^~\\&|${app}|${facility}|GW|LAB|20260301120000||ORU^R01^ORU_R01|${id}|P|2.5\rPID|1||MRN-1\rOBR|1|${accession}||GLU^Glucose|||||||||||||||||||F\rOBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F\r`;

const frame = (text: string): Buffer => Buffer.concat([Buffer.of(0x0b), Buffer.from(text, 'latin1'), Buffer.of(0x1c, 0x0d)]);

/** Each message on one connection; the reply contents (between VT and FS) in order. */
async function exchange(port: number, texts: string[]): Promise<string[]> {
  const socket = net.connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  for (const t of texts) socket.write(frame(t));
  await expect.poll(() => framesOf(Buffer.concat(chunks)).length, { timeout: 10_000 }).toBe(texts.length);
  socket.destroy();
  return Buffer.concat(chunks)
    .toString('latin1')
    .split('\x1c\r')
    .filter((s) => s.includes('MSA'))
    .map((s) => s.slice(s.indexOf('\x0b') + 1));
}

const msa = (reply: string): [string | undefined, string | undefined, string | undefined] => {
  const f = framesOf(Buffer.concat([Buffer.of(0x0b), Buffer.from(reply, 'latin1'), Buffer.of(0x1c, 0x0d)]))[0];
  return [field(f, 'MSA', 1), field(f, 'MSA', 2), field(f, 'MSH', 5)];
};

describe('duplicate detection is scoped by endpoint and sender', () => {
  it('one MSH-10 from two senders on one endpoint: two messages, each with its events; each resend gets its own stored ACK', async () => {
    h = await GatewayHarness.start();
    const a = oru('LIS', 'LAB', '1001', 'ACC-A');
    const b = oru('MIDDLEWARE', 'LAB', '1001', 'ACC-B');
    const c = oru('LIS', 'ANNEX', '1001', 'ACC-C');
    const first = await exchange(h.port, [a, b, c]);
    expect(first.map(msa)).toEqual([
      ['AA', '1001', 'LIS'],
      ['AA', '1001', 'MIDDLEWARE'],
      ['AA', '1001', 'LIS'],
    ]);
    expect(h.store.intake()).toMatchObject({ accepted: 3, duplicates: 0 });
    for (const accession of ['ACC-A', 'ACC-B', 'ACC-C']) {
      expect((await h.store.eventsByCorrelation(accession)).map((e) => e.event.type), accession).toEqual(['result.validated']);
    }
    // The resends, in another order: each is answered with its own message's ACK, byte for byte.
    const again = await exchange(h.port, [c, a, b]);
    expect(again).toEqual([first[2], first[0], first[1]]);
    expect(h.store.intake()).toMatchObject({ accepted: 3, duplicates: 3 });
  });

  it('the same message on two endpoints is a message of each; each endpoint replays its own ACK', async () => {
    h = await GatewayHarness.start();
    const second = await h.addEndpoint({ id: 'lis-2' });
    const port2 = second.address()?.port as number;
    const m = oru('LIS', 'LAB', '2002', 'ACC-E');
    const [one] = await exchange(h.port, [m]);
    const [two] = await exchange(port2, [m]);
    expect([one, two].map((r) => msa(r as string))).toEqual([
      ['AA', '2002', 'LIS'],
      ['AA', '2002', 'LIS'],
    ]);
    expect(one).not.toBe(two);
    expect(h.store.intake()).toMatchObject({ accepted: 2, duplicates: 0 });
    expect(await exchange(port2, [m])).toEqual([two]);
    expect(await exchange(h.port, [m])).toEqual([one]);
    expect(h.store.intake()).toMatchObject({ accepted: 2, duplicates: 2 });
  });
});
