/**
 * A batch whose trailer is not where HL7 v2.5 §2.10.3 puts it: a segment after BTS/FTS, outside
 * any message, and a BTS-1 that counts messages the batch does not hold (lost on the way, or a
 * batch cut by a file copy). Real parts: a LevelDB EventStore in a temp dir, the MllpEndpoint on a
 * real TCP port, the project's MllpClient as the LIS's interface engine.
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

const bhs = (id: string): string => `BHS|^~\\&|LIS|LAB|GW|LAB|20240101120000||||${id}\r`;

/** Reply segments reduced to what the test reads. */
function outline(reply: Buffer): string[] {
  return segmentsOf(reply).map((f) => {
    if (f[0] === 'MSA') return `MSA ${f[1]} ${f[2]}`;
    if (f[0] === 'BTS' || f[0] === 'FTS') return f.slice(0, 3).join(' ').trim();
    return f[0] as string;
  });
}

async function rejected(gw: GatewayHarness): Promise<Array<{ reason: string; raw: string }>> {
  const list = (await gw.store.listMessages({ endpoint: 'lis' })).filter((m) => m.status === 'rejected');
  return Promise.all(list.map(async (m) => ({ reason: m.rejectReason ?? '', raw: (await gw.store.getMessage(m.id))!.raw.toString('latin1') })));
}

describe('MLLP batch: a segment after the batch trailer', () => {
  it('the members are taken, the trailing segment is named in the reply and kept for the operator', async () => {
    h = await GatewayHarness.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      const batch = `${bhs('B1')}${adt('a1')}${adt('a2')}BTS|2\rZZZ|1\r`;
      const reply = await client.send(Buffer.from(batch, 'latin1'));
      const lines = outline(reply);
      expect(lines.filter((l) => l.startsWith('MSA'))).toEqual(['MSA AA a1', 'MSA AA a2']);
      const bts = lines.find((l) => l.startsWith('BTS')) ?? '';
      expect(bts).toMatch(/^BTS 2 .*ZZZ.*after BTS/);
      expect(bts).not.toMatch(/before the first MSH/);
      for (const id of ['a1', 'a2']) expect(await h.rawOf(id)).toEqual(Buffer.from(adt(id), 'latin1'));
      const kept = await rejected(h);
      expect(kept).toHaveLength(1);
      expect(kept[0]?.reason).toMatch(/segment ZZZ after BTS/);
      expect(kept[0]?.raw).toBe(batch);
      expect(h.store.intake()).toMatchObject({ accepted: 2, rejected: 1 });
    } finally {
      await client.close();
    }
  });

  it('after FTS too', async () => {
    h = await GatewayHarness.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      const file = `FHS|^~\\&|LIS|LAB|GW|LAB|20240101120000||||F1\r${bhs('B1')}${adt('f1')}BTS|1\rFTS|1\rNTE|1||late comment\r`;
      const lines = outline(await client.send(Buffer.from(file, 'latin1')));
      expect(lines.filter((l) => l.startsWith('MSA'))).toEqual(['MSA AA f1']);
      expect(lines.find((l) => l.startsWith('BTS'))).toMatch(/NTE.*after FTS/);
      expect((await rejected(h)).map((r) => r.reason)).toEqual([expect.stringMatching(/segment NTE after FTS/)]);
    } finally {
      await client.close();
    }
  });
});

describe('MLLP batch: BTS-1 disagrees with the messages the batch holds', () => {
  it('BTS|3 with one MSH: the message is taken, the shortfall answered in BTS-2 and kept for the operator', async () => {
    h = await GatewayHarness.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      const batch = `${bhs('B3')}${adt('c1')}BTS|3\r`;
      const lines = outline(await client.send(Buffer.from(batch, 'latin1')));
      expect(lines.filter((l) => l.startsWith('MSA'))).toEqual(['MSA AA c1']);
      expect(lines.find((l) => l.startsWith('BTS'))).toMatch(/^BTS 1 .*declares 3 messages.*holds 1/);
      const kept = await rejected(h);
      expect(kept.map((r) => r.reason)).toEqual([expect.stringMatching(/batch B3 declares 3 messages \(BTS-1\) but holds 1/)]);
      expect(kept[0]?.raw).toBe(batch);
    } finally {
      await client.close();
    }
  });

  it('a BTS-1 that agrees, or no BTS-1, is answered as before: nothing kept apart', async () => {
    h = await GatewayHarness.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      expect(outline(await client.send(Buffer.from(`${bhs('B4')}${adt('d1')}${adt('d2')}BTS|2\r`, 'latin1')))).toEqual(['BHS', 'MSH', 'MSA AA d1', 'MSH', 'MSA AA d2', 'BTS 2']);
      expect(outline(await client.send(Buffer.from(`${bhs('B5')}${adt('e1')}BTS\r`, 'latin1')))).toEqual(['BHS', 'MSH', 'MSA AA e1', 'BTS 1']);
      expect(await rejected(h)).toEqual([]);
    } finally {
      await client.close();
    }
  });
});

describe('MLLP batch: the reply BTS-2 within HL7 bounds', () => {
  it('BTS-2 (ST, 80 characters up to v2.6) holds at most 80: the full text is kept for the operator', async () => {
    h = await GatewayHarness.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      const batch = `${bhs('BATCH-20240101-000017')}${adt('g1')}BTS|5\rZZZ|1\rYYY|1\rNTE|1||x\r`;
      const reply = await client.send(Buffer.from(batch, 'latin1'));
      expect(outline(reply).filter((l) => l.startsWith('MSA'))).toEqual(['MSA AA g1']);
      const bts2 = reply.toString('latin1').split('\r').find((s) => s.startsWith('BTS|'))?.split('|')[2] ?? '';
      expect(bts2.length).toBeGreaterThan(20);
      expect(bts2.length).toBeLessThanOrEqual(80);
      expect(bts2).toMatch(/^batch BATCH-20240101-000017 declares 5 messages \(BTS-1\) but holds 1; .*\.\.\.$/);
      const [kept] = await rejected(h);
      expect(kept?.reason).toMatch(/holds 1; segment ZZZ after BTS .*; segment YYY after BTS .*; segment NTE after BTS/);
    } finally {
      await client.close();
    }
  });

  it('an escape sequence is never cut', async () => {
    h = await GatewayHarness.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      // BHS-11 with component separators: escaped in BTS-2 as \S\ (3 characters each).
      const id = 'B^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^';
      const reply = await client.send(Buffer.from(`${bhs(id)}${adt('k1')}BTS|2\r`, 'latin1'));
      const bts2 = reply.toString('latin1').split('\r').find((s) => s.startsWith('BTS|'))?.split('|')[2] ?? '';
      expect(bts2.length).toBeLessThanOrEqual(80);
      expect(bts2.replace(/\\[SEFRT]\\/g, '')).not.toMatch(/\\/);
    } finally {
      await client.close();
    }
  });

  it('a BTS-1 with a leading zero (NM) that counts the messages held is no mismatch', async () => {
    h = await GatewayHarness.start();
    const client = await MllpClient.connect({ host: '127.0.0.1', port: h.port });
    try {
      expect(outline(await client.send(Buffer.from(`${bhs('B6')}${adt('h1')}${adt('h2')}BTS|02\r`, 'latin1')))).toEqual(['BHS', 'MSH', 'MSA AA h1', 'MSH', 'MSA AA h2', 'BTS 2']);
      expect(await rejected(h)).toEqual([]);
    } finally {
      await client.close();
    }
  });
});
