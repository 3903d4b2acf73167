import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../../gateway/src/errors.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { wrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { field, framesOf } from '../fixtures/hl7/helpers.ts';

const oru = (id: string, extra = '') =>
  Buffer.from(
    `MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ORU^R01^ORU_R01|${id}|P|2.5${extra}\rPID|1||MRN-${id}\rORC|RE|ACC-${id}\rOBR|1|ACC-${id}|S-${id}|GLU^Glucose\rOBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F\r`,
    'latin1',
  );
const reply = (buf: Buffer) => framesOf(wrapFrame(buf))[0];

let h: GatewayHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

async function connect(port: number): Promise<MllpClient> {
  return MllpClient.connect({ host: '127.0.0.1', port, timeoutMs: 10_000 });
}

describe('MllpEndpoint with the real store', () => {
  it('binds only the configured host, reports its port, and acknowledges after commit', async () => {
    h = await GatewayHarness.start();
    expect(h.endpoint.address()?.host).toBe('127.0.0.1');
    const c = await connect(h.port);
    const ack = reply(await c.send(oru('C1')));
    expect(field(ack, 'MSA', 1)).toBe('AA');
    expect(field(ack, 'MSA', 2)).toBe('C1');
    expect(field(ack, 'MSH', 9)).toBe('ACK^R01^ACK');
    expect(field(ack, 'MSH', 3)).toBe('GW');
    expect(field(ack, 'MSH', 5)).toBe('LIS');
    expect(field(ack, 'MSH', 10)).not.toBe('C1');
    const events = await h.store.eventsByCorrelation('ACC-C1');
    expect(events.map((e) => e.event.type)).toEqual(['result.validated']);
    await c.close();
  });

  it('answers pipelined messages on one connection in order, pausing the sender beyond 1024 in flight', async () => {
    h = await GatewayHarness.start();
    const c = await connect(h.port);
    const ids = Array.from({ length: 1500 }, (_, i) => `P${i}`);
    const replies = await Promise.all(ids.map((id) => c.send(oru(id))));
    expect(replies.map((r) => field(reply(r), 'MSA', 2))).toEqual(ids);
    expect(replies.every((r) => field(reply(r), 'MSA', 1) === 'AA')).toBe(true);
    await c.close();
  });

  it('serves many concurrent persistent clients', async () => {
    h = await GatewayHarness.start();
    const clients = await Promise.all(Array.from({ length: 16 }, () => connect(h!.port)));
    await Promise.all(
      clients.map(async (c, k) => {
        for (let i = 0; i < 20; i++) {
          const r = reply(await c.send(oru(`K${k}-${i}`)));
          expect(field(r, 'MSA', 2)).toBe(`K${k}-${i}`);
        }
      }),
    );
    expect(h.store.intake().accepted).toBe(320);
    expect(h.endpoint.connections).toBe(16);
    await Promise.all(clients.map((c) => c.close()));
  });

  it('replays the stored ACK for a resend of the same MSH-10 and creates no new events', async () => {
    h = await GatewayHarness.start();
    const c = await connect(h.port);
    const first = await c.send(oru('D1'));
    const second = await c.send(oru('D1'));
    expect(second.equals(first)).toBe(true);
    expect(h.store.intake().duplicates).toBe(1);
    expect((await h.store.eventsByCorrelation('ACC-D1')).length).toBe(1);
    expect(h.intakeEvents.map((e) => e.outcome)).toEqual(['accepted', 'duplicate']);
    await c.close();
  });

  it('answers AE "store unavailable" while the store fails, then accepts again once it recovers', async () => {
    h = await GatewayHarness.start();
    const c = await connect(h.port);
    h.store.simulateWriteFailure(new GatewayError('GW_STORE_UNAVAILABLE', 'disk went away'));
    const bad = reply(await c.send(oru('S1')));
    expect(field(bad, 'MSA', 1)).toBe('AE');
    expect(field(bad, 'MSA', 2)).toBe('S1');
    expect(field(bad, 'ERR', 3)).toBe('207^Application internal error^HL70357');
    expect(field(bad, 'ERR', 8)).toBe('store unavailable');
    expect(h.store.intake().rejected).toBeGreaterThanOrEqual(1);
    h.store.simulateWriteFailure(undefined);
    const deadline = Date.now() + 5_000;
    while (h.store.health !== 'ok' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const good = reply(await c.send(oru('S1')));
    expect(field(good, 'MSA', 1)).toBe('AA');
    expect(await h.rawOf('S1')).toBeDefined();
    await c.close();
  });

  it('answers malformed input with AR + ERR, keeps it raw, and the connection survives', async () => {
    h = await GatewayHarness.start({ maxMessageBytes: 1024 * 1024 });
    const c = await connect(h.port);
    const cases: Array<{ name: string; bytes: Buffer; err: RegExp }> = [
      { name: 'no MSH', bytes: Buffer.from('PID|1||X\rOBX|1|NM|A||1\r'), err: /^100\^/ },
      { name: 'wrong encoding characters', bytes: Buffer.from('MSH|^^|LIS|LAB|GW|LAB|2024||ORU^R01|E1|P|2.5\r'), err: /^102\^/ },
      { name: 'truncated', bytes: Buffer.from('MSH|^~\\&|LIS|LAB|GW|LAB|2024||ORU^R01'), err: /^101\^/ },
      { name: 'binary garbage', bytes: Buffer.from(Array.from({ length: 500 }, (_, i) => (i * 37 + 11) % 251).filter((b) => b !== 0x0b && b !== 0x1c)), err: /^100\^/ },
    ];
    for (const k of cases) {
      const r = reply(await c.send(k.bytes));
      expect(field(r, 'MSA', 1), k.name).toBe('AR');
      expect(field(r, 'ERR', 3), k.name).toMatch(k.err);
      expect(field(r, 'ERR', 8), k.name).toBeTruthy();
    }
    const stored = await h.store.listMessages({ endpoint: 'lis', limit: 10 });
    expect(stored.filter((m) => m.status === 'rejected')).toHaveLength(cases.length);
    const raws = await Promise.all(stored.map(async (m) => (await h!.store.getMessage(m.id))?.raw));
    for (const k of cases) expect(raws.some((r) => r?.equals(k.bytes)), k.name).toBe(true);
    // The wrong-encoding message still gets its MSH-10 echoed.
    const e1 = await c.send(Buffer.from('MSH|^^|LIS|LAB|GW|LAB|2024||ORU^R01|E2|P|2.5\r'));
    expect(field(reply(e1), 'MSA', 2)).toBe('E2');
    // The same connection still works.
    expect(field(reply(await c.send(oru('OK1'))), 'MSA', 1)).toBe('AA');
    await c.close();
  });

  it('answers a 10 MB frame AR (size limit), keeps its head, and keeps the connection', async () => {
    h = await GatewayHarness.start({ maxMessageBytes: 1024 * 1024 });
    const c = await connect(h.port);
    const big = Buffer.concat([oru('BIG1'), Buffer.from('NTE|1||'), Buffer.alloc(10 * 1024 * 1024, 0x41), Buffer.from('\r')]);
    const r = reply(await c.send(big));
    expect(field(r, 'MSA', 1)).toBe('AR');
    expect(field(r, 'MSA', 2)).toBe('BIG1');
    expect(field(r, 'ERR', 8)).toMatch(/exceeds the maximum of 1048576 bytes/);
    const head = await h.rawOf('BIG1', 'rejected');
    expect(head?.length).toBeGreaterThan(0);
    expect(big.subarray(0, head?.length).equals(head!)).toBe(true);
    expect(field(reply(await c.send(oru('AFTER-BIG'))), 'MSA', 1)).toBe('AA');
    await c.close();
  });

  it('rejects unknown message types with AR 200 when configured to', async () => {
    h = await GatewayHarness.start({ unknownMessageTypes: 'reject' });
    const c = await connect(h.port);
    const r = reply(await c.send(Buffer.from('MSH|^~\\&|LIS|LAB|GW|LAB|2024||QRY^Q01|U1|P|2.3\rQRD|1\r')));
    expect(field(r, 'MSA', 1)).toBe('AR');
    expect(field(r, 'ERR', 1)).toMatch(/^MSH\^1\^9\^200&Unsupported message type&HL70357$/); // v2.3: ERR-1 ELD
    const adt = reply(await c.send(Buffer.from('MSH|^~\\&|LIS|LAB|GW|LAB|2024||ADT^A01|U2|P|2.5\rPID|1||M1\r')));
    expect(field(adt, 'MSA', 1)).toBe('AA');
    await c.close();
  });

  it('enhanced mode: commit ACK CA then application ACK AA as MSH-15/16 ask', async () => {
    h = await GatewayHarness.start({ ack: 'enhanced' });
    const c = await connect(h.port);
    const both = await c.request(oru('EN1', '|||AL|AL'), 2);
    expect(both.map((f) => field(reply(f), 'MSA', 1))).toEqual(['CA', 'AA']);
    expect(both.map((f) => field(reply(f), 'MSA', 2))).toEqual(['EN1', 'EN1']);
    const commitOnly = reply(await c.send(oru('EN2', '|||AL|NE')));
    expect(field(commitOnly, 'MSA', 1)).toBe('CA');
    const appOnly = reply(await c.send(oru('EN3', '|||NE|AL')));
    expect(field(appOnly, 'MSA', 1)).toBe('AA');
    // Neither field: original mode.
    expect(field(reply(await c.send(oru('EN4'))), 'MSA', 1)).toBe('AA');
    await c.close();
  });

  it('answers a batch with one batch of ACKs and stores every message with its events', async () => {
    h = await GatewayHarness.start();
    const c = await connect(h.port);
    const batch = Buffer.concat([Buffer.from('BHS|^~\\&|LIS|LAB|GW|LAB|2024||||B-77\r'), oru('BA1'), oru('BA2'), Buffer.from('BTS|2\r')]);
    const frame = framesOf(wrapFrame(await c.send(batch)))[0] ?? [];
    expect(frame[0]?.[0]).toBe('BHS');
    expect(frame[0]?.[11]).toBe('B-77'); // BHS-12 reference batch control id
    expect(frame.filter((s) => s[0] === 'MSA').map((s) => [s[1], s[2]])).toEqual([['AA', 'BA1'], ['AA', 'BA2']]);
    expect(frame.at(-1)).toEqual(['BTS', '2']);
    expect((await h.rawOf('BA1'))?.equals(oru('BA1'))).toBe(true);
    expect((await h.store.eventsByCorrelation('ACC-BA2')).length).toBe(1);
    await c.close();
  });

  it('refuses connections beyond maxConnections', async () => {
    h = await GatewayHarness.start({ maxConnections: 1 });
    const a = await connect(h.port);
    expect(field(reply(await a.send(oru('L1'))), 'MSA', 1)).toBe('AA');
    const b = await connect(h.port);
    await expect(b.send(oru('L2'))).rejects.toThrow(/closed|reset|EPIPE/i);
    expect(field(reply(await a.send(oru('L3'))), 'MSA', 1)).toBe('AA');
    await a.close();
  });

  it('closes idle connections after idleTimeoutMs', async () => {
    h = await GatewayHarness.start({ idleTimeoutMs: 150 });
    const socket = net.connect({ host: '127.0.0.1', port: h.port });
    let endedByServer = false;
    socket.on('end', () => (endedByServer = true));
    const closed = await new Promise<boolean>((resolve) => {
      socket.on('close', () => resolve(true));
      setTimeout(() => resolve(false), 5_000).unref();
    });
    expect(closed).toBe(true);
    // Accepted and then closed by the gateway (its FIN), not refused at once or reset.
    expect(endedByServer, 'the gateway ended the connection').toBe(true);
    await expect.poll(() => h!.endpoint.connections).toBe(0);
    expect(h.stateEvents.map((e) => e.state)).toEqual(['starting', 'listening', 'connected', 'listening']);
  });

  it('stop() answers the messages already received, then closes; new connections are refused', async () => {
    h = await GatewayHarness.start();
    const c = await connect(h.port);
    const pending = Array.from({ length: 50 }, (_, i) => c.send(oru(`ST${i}`)));
    // Stop once the frames have arrived: the first of them are committed, their replies not all out.
    // (A fixed 5 ms wait stopped before the endpoint had read any frame when this process was
    // descheduled for longer than that.)
    await expect.poll(() => h!.intakeEvents.length, { timeout: 10_000, interval: 1 }).toBeGreaterThan(0);
    const stopping = h.endpoint.stop(5_000);
    const settled = await Promise.allSettled(pending);
    await stopping;
    const answered = settled.filter((s) => s.status === 'fulfilled').map((s) => field(reply((s as PromiseFulfilledResult<Buffer>).value), 'MSA', 2));
    // Every answered message is stored; replies came in order.
    for (const id of answered) expect(await h.rawOf(id as string)).toBeDefined();
    expect(answered).toEqual(answered.slice().sort((a, b) => Number(a?.slice(2)) - Number(b?.slice(2))));
    expect(answered.length).toBeGreaterThan(0);
    expect(h.endpoint.status).toBe('stopped');
    await expect(connect(h.port)).rejects.toThrow();
    expect(h.stateEvents.at(-1)?.state).toBe('stopped');
  });
});
