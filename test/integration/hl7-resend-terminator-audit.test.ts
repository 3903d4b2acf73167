/**
 * A LIS resend that differs from the first send only in how the message ends: sent first from a
 * file (by `lab-gateway send`, or an engine's file drop) without its final segment terminator or
 * with an empty line after it, then by the engine itself with one CR after each segment, under
 * the same MSH-10. Real parts: a LevelDB EventStore in a temp dir, the MllpEndpoint on a real TCP
 * port, the project's MllpClient as the LIS.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { wrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { glucoseOru as oru } from '../fixtures/hl7/messages.ts';

let h: GatewayHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

const msa = (reply: Buffer): string => reply.toString('latin1').split('\r').find((s) => s.startsWith('MSA')) ?? '';

async function eventsOf(gw: GatewayHarness): Promise<string[]> {
  return (await gw.store.listEvents({ limit: 1000 })).map((e) => `${e.event.type} ${e.event.correlationId}`);
}

describe('HL7 resend: a message that differs only in how it ends', () => {
  const variants: Array<[string, (text: string) => string]> = [
    ['without its final CR', (t) => t.slice(0, -1)],
    ['with an empty line after it (CR CR)', (t) => `${t}\r`],
    ['with an empty line after it (CRLF CRLF)', (t) => `${t.replaceAll('\r', '\r\n')}\r\n`],
    ['with LF line ends and no final LF', (t) => t.replaceAll('\r', '\n').slice(0, -1)],
    ['with a space-only line after it', (t) => `${t} \r`],
    ['after a UTF-8 byte-order mark and a blank line', (t) => `\ufeff\r\n${t}`],
  ];
  for (const [name, vary] of variants) {
    it(`first sent ${name}, then as the engine sends it: one message, one result`, async () => {
      h = await GatewayHarness.start();
      const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
      try {
        const first = await client.send(Buffer.from(vary(oru('R-1')), 'utf8'));
        expect(msa(first)).toBe('MSA|AA|R-1');
        const again = await client.send(Buffer.from(oru('R-1', '20240101120500'), 'latin1'));
        // The stored ACK, byte for byte, and no second event.
        expect(again.equals(first)).toBe(true);
        expect(h.store.intake()).toMatchObject({ accepted: 1, duplicates: 1 });
        expect(await eventsOf(h)).toEqual(['result.validated ACC-R-1']);
        // And the other way round: first as the engine sends it, then from the file.
        const third = await client.send(Buffer.from(oru('R-2'), 'latin1'));
        const fourth = await client.send(Buffer.from(vary(oru('R-2')), 'utf8'));
        expect(fourth.equals(third)).toBe(true);
        expect(h.store.intake()).toMatchObject({ accepted: 2, duplicates: 2 });
        expect((await eventsOf(h)).filter((e) => e.endsWith('R-2'))).toEqual(['result.validated ACC-R-2']);
      } finally {
        await client.close();
      }
    });
  }
});

describe('HL7 resend: a batch member that differs only in how it ends', () => {
  /**
   * The last message of a batch file without BTS ends where the block ends: without its CR when the
   * file had no final line end. The engine later sends the same message alone.
   */
  it('the last member of a batch without its final CR, then alone: a duplicate', async () => {
    h = await GatewayHarness.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      const batch = `BHS|^~\\&|LIS|LAB|GW|LAB|20240101120000||||B1\r${oru('B-1')}${oru('B-2').slice(0, -1)}`;
      const reply = await client.send(Buffer.from(batch, 'latin1'));
      expect(reply.toString('latin1').split('\r').filter((l) => l.startsWith('MSA'))).toEqual(['MSA|AA|B-1', 'MSA|AA|B-2']);
      const alone = await client.send(Buffer.from(oru('B-2'), 'latin1'));
      expect(msa(alone)).toBe('MSA|AA|B-2');
      expect(h.store.intake()).toMatchObject({ accepted: 2, duplicates: 1 });
      expect((await eventsOf(h)).sort()).toEqual(['result.validated ACC-B-1', 'result.validated ACC-B-2']);
    } finally {
      await client.close();
    }
  });
});

describe('HL7 resend: what stays a different message', () => {
  it('another value under the same MSH-10, also without its final CR, is another message', async () => {
    h = await GatewayHarness.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      await client.send(Buffer.from(oru('S-1'), 'latin1'));
      await client.send(Buffer.from(oru('S-1').replace('5.4', '5.5').slice(0, -1), 'latin1'));
      expect(h.store.intake()).toMatchObject({ accepted: 2, duplicates: 0 });
    } finally {
      await client.close();
    }
  });
});

describe('HL7 resend: order kept while a message is looked up under its earlier keys', () => {
  /**
   * A message without its final CR is looked up under the keys the releases before made of it
   * before its commit. An order sent so, and its result pipelined behind it on the same
   * connection, must still reach the store order first (the relay delivers a partition in commit
   * order: a result before its order finds no sale order).
   */
  it('an order without its final CR and its result pipelined behind it: committed in that order', async () => {
    h = await GatewayHarness.start();
    const orm =
      'MSH|^~\\&|LIS|LAB|GW|LAB|20240101100000||ORM^O01^ORM_O01|O-1|P|2.5\r' +
      'PID|1||MRN-P\r' +
      'ORC|NW|ACC-P\r' +
      'OBR|1|ACC-P||GLU^Glucose';
    const result = oru('P');
    const socket = net.connect({ host: '127.0.0.1', port: h.port });
    const replies: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      socket.on('error', reject);
      socket.on('data', (d) => {
        replies.push(d);
        if ((Buffer.concat(replies).toString('latin1').match(/MSA\|/g) ?? []).length >= 2) resolve();
      });
      socket.write(Buffer.concat([wrapFrame(orm, 'latin1'), wrapFrame(result, 'latin1')]));
    });
    socket.destroy();
    expect(Buffer.concat(replies).toString('latin1').split('\r').filter((l) => l.startsWith('MSA'))).toEqual(['MSA|AA|O-1', 'MSA|AA|P']);
    const events = (await h.store.listEvents({ limit: 100 })).sort((a, b) => (a.event.id < b.event.id ? -1 : 1)).map((e) => e.event.type);
    expect(events).toEqual(['order.created', 'result.validated']);
  });
});
