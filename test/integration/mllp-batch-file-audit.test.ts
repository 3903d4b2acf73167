/**
 * A batch file (HL7 v2.5 §2.10.3: `FHS {BHS {MSH …} BTS} FTS`) may hold several batches. Its reply
 * must acknowledge each batch under its own header: a BHS whose BHS-12 names that batch's BHS-11,
 * the ACKs of that batch's messages, a BTS counting them; FTS-1 the number of batches.
 * Real parts: a LevelDB EventStore in a temp dir, the MllpEndpoint on a real TCP port, the
 * project's MllpClient as the LIS.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { segmentsOf } from '../fixtures/hl7/helpers.ts';
import { adtA01 as adt } from '../fixtures/hl7/messages.ts';

let h: GatewayHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

/** Each reply segment as `NAME f1 f2…` reduced to what the test reads. */
function outline(reply: Buffer): string[] {
  return segmentsOf(reply).map((f) => {
    switch (f[0]) {
      case 'FHS':
      case 'BHS':
        return `${f[0]} ${f[11] ?? ''}`; // FHS/BHS-12 (split index 11: FHS-1 is the separator)
      case 'MSA':
        return `MSA ${f[1]} ${f[2]}`;
      case 'BTS':
      case 'FTS':
        return `${f[0]} ${f[1] ?? ''}`;
      default:
        return f[0] as string;
    }
  });
}

describe('MLLP: a batch file holding two batches', () => {
  /**
   * What the user saw: a LIS sending its night's orders as one file of two batches (B1 with two
   * ADT, B2 with one) got one BHS answering B1 with all three ACKs and BTS|3, and FTS|1: its
   * engine, which matches batch acknowledgements by BHS-12, found batch B2 unacknowledged and
   * B1 acknowledged with a message count it never sent, and flagged both.
   * Cause: hl7-intake.ts #batchReply wrote the first BHS of the block only, around every ACK.
   */
  it('each batch is answered under its own BHS and BTS, FTS-1 counts the batches', async () => {
    h = await GatewayHarness.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      const file =
        'FHS|^~\\&|LIS|LAB|GW|LAB|20240101120000||||F1\r' +
        'BHS|^~\\&|LIS|LAB|GW|LAB|20240101120000||||B1\r' +
        adt('a1') +
        adt('a2') +
        'BTS|2\r' +
        'BHS|^~\\&|LIS|LAB|GW|LAB|20240101120000||||B2\r' +
        adt('b1') +
        'BTS|1\r' +
        'FTS|2\r';
      const reply = await client.send(Buffer.from(file, 'latin1'));
      expect(outline(reply)).toEqual(['FHS F1', 'BHS B1', 'MSH', 'MSA AA a1', 'MSH', 'MSA AA a2', 'BTS 2', 'BHS B2', 'MSH', 'MSA AA b1', 'BTS 1', 'FTS 2']);
      for (const id of ['a1', 'a2', 'b1']) expect(await h.rawOf(id)).toEqual(Buffer.from(adt(id), 'latin1'));
      // A resend of the file gets the same structure, every message a duplicate.
      expect(outline(await client.send(Buffer.from(file, 'latin1')))).toEqual(outline(reply));
    } finally {
      await client.close();
    }
  });

  it('a single batch, with or without its header, is answered as before', async () => {
    h = await GatewayHarness.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      const batch = `FHS|^~\\&|LIS|LAB|||||||F9\rBHS|^~\\&|LIS|LAB|||||||B9\r${adt('c1')}${adt('c2')}BTS|2\rFTS|1\r`;
      expect(outline(await client.send(Buffer.from(batch, 'latin1')))).toEqual(['FHS F9', 'BHS B9', 'MSH', 'MSA AA c1', 'MSH', 'MSA AA c2', 'BTS 2', 'FTS 1']);
      expect(outline(await client.send(Buffer.from(adt('d1') + adt('d2'), 'latin1')))).toEqual(['BHS ', 'MSH', 'MSA AA d1', 'MSH', 'MSA AA d2', 'BTS 2']);
    } finally {
      await client.close();
    }
  });

  it('a batch of zero messages in the file is answered with its own empty batch', async () => {
    h = await GatewayHarness.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      const file = 'FHS|^~\\&|LIS|LAB|GW|LAB|20240101120000||||F3\rBHS|^~\\&|LIS|LAB|||||||E1\rBTS|0\rBHS|^~\\&|LIS|LAB|||||||E2\r' + adt('e1') + 'BTS|1\rFTS|2\r';
      expect(outline(await client.send(Buffer.from(file, 'latin1')))).toEqual(['FHS F3', 'BHS E1', 'BTS 0', 'BHS E2', 'MSH', 'MSA AA e1', 'BTS 1', 'FTS 2']);
    } finally {
      await client.close();
    }
  });
});
