import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AnalyzerConfig } from '../../gateway/src/config/types.ts';
import { AstmEndpoint, type AstmNormalizeResult } from '../../gateway/src/ingress/astm/astm-endpoint.ts';
import { buildFrame } from '../../gateway/src/ingress/astm/checksum.ts';
import { EOT } from '../../gateway/src/ingress/astm/control-chars.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry, type TelemetryEvents } from '../../gateway/src/telemetry.ts';
import { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { connectTcpSim } from '../fixtures/astm-link/sim-wires.ts';
import { MSG, MSG_TEXT } from '../fixtures/astm-link/harness.ts';

/**
 * The endpoint over real TCP sockets with a real LevelDB store: the analyzer simulator checks
 * the bytes on the wire, the store is read back for the exact bytes kept.
 */
let dir: string;
let store: EventStore;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'astm-tcp-'));
  store = await EventStore.open({ dataDir: dir, healthCheckIntervalMs: 50, pruneIntervalMs: 0 });
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const normalizedTexts: string[] = [];

/** The record layer is not under test here: a message is accepted as is, H.5 as sender. */
function trivialNormalize(text: string): AstmNormalizeResult<string> {
  normalizedTexts.push(text);
  const q = /(?:^|\r)Q\|[^\r]*\|\^([^|^\r]*)/.exec(text);
  if (!text.startsWith('H')) return { events: [], messageType: 'ASTM', searchTerms: [], reject: 'no H record' };
  return { events: [], messageType: q ? 'ASTM-Q' : 'ASTM', searchTerms: [], ...(q ? { hostQuery: q[1] as string } : {}) };
}

function endpoint(analyzer: AnalyzerConfig, extra: { answer?: (q: string) => Promise<string[]>; quirks?: Record<string, unknown> } = {}) {
  const telemetry = new Telemetry();
  const intake: Array<TelemetryEvents['intake.message']> = [];
  telemetry.on('intake.message', (e) => intake.push(e));
  const ep = new AstmEndpoint<string>({
    analyzer,
    profile: { name: 'test', quirks: { ...extra.quirks } },
    store,
    telemetry,
    log: silentLogger,
    normalize: trivialNormalize,
    ...(extra.answer ? { answerHostQuery: extra.answer } : {}),
    reconnect: { initialMs: 50, maxMs: 200 },
  });
  cleanups.push(() => ep.stop(2_000));
  return { ep, intake, telemetry };
}

const connectSim = (port: number) => connectTcpSim(port, cleanups);

async function messagesOf(endpointId: string) {
  const list = await store.listMessages({ endpoint: endpointId, limit: 100 });
  return Promise.all(list.map(async (m) => (await store.getMessage(m.id)) as NonNullable<Awaited<ReturnType<EventStore['getMessage']>>>));
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('ASTM endpoint, TCP server role (the analyzer connects)', () => {
  it('ACKs the ENQ and every frame and stores the exact bytes of the message', async () => {
    const { ep, intake } = endpoint({ id: 'tcp-srv-1', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } });
    await ep.start();
    const { sim } = await connectSim(ep.address()?.port as number);
    const { replies, sent } = await sim.sendMessage(MSG);
    expect(replies).toBe('<ACK>'.repeat(6));
    const stored = await messagesOf('tcp-srv-1');
    expect(stored).toHaveLength(1);
    expect(stored[0]?.message.status).toBe('accepted');
    expect(stored[0]?.raw.equals(sent)).toBe(true);
    expect(stored[0]?.ack?.toString('latin1')).toBe('\x06');
    expect(intake.map((e) => e.outcome)).toEqual(['accepted']);
  });

  it('one state machine per connection: two analyzers interleaved', async () => {
    const { ep } = endpoint({ id: 'tcp-srv-2', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } });
    await ep.start();
    const port = ep.address()?.port as number;
    const a = await connectSim(port);
    const b = await connectSim(port);
    const msgB = MSG.map((r) => r.replace('SID-1', 'SID-2'));
    const [ra, rb] = await Promise.all([a.sim.sendMessage(MSG), b.sim.sendMessage(msgB)]);
    expect(ra.replies).toBe('<ACK>'.repeat(6));
    expect(rb.replies).toBe('<ACK>'.repeat(6));
    const stored = await messagesOf('tcp-srv-2');
    expect(stored.map((m) => m.raw.toString('latin1')).sort()).toEqual([ra.sent.toString('latin1'), rb.sent.toString('latin1')].sort());
  });

  it('a retransmitted message is stored once (duplicate) and ACKed again', async () => {
    const { ep, intake } = endpoint({ id: 'tcp-srv-3', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } });
    await ep.start();
    const { sim } = await connectSim(ep.address()?.port as number);
    await sim.sendMessage(MSG);
    const again = await sim.sendMessage(MSG);
    expect(again.replies).toBe('<ACK>'.repeat(6));
    await until(() => intake.length === 2);
    expect(intake.map((e) => e.outcome)).toEqual(['accepted', 'duplicate']);
    expect(await messagesOf('tcp-srv-3')).toHaveLength(1);
  });

  it('NAKs the completing frame when the store cannot commit, and ACKs its retransmission', async () => {
    const { ep } = endpoint({ id: 'tcp-srv-4', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } });
    await ep.start();
    const { sim } = await connectSim(ep.address()?.port as number);
    const frames = MSG.map((r, i) => buildFrame(i + 1, Buffer.from(r + '\r'), true));
    sim.write([0x05]);
    expect(await sim.nextByte()).toBe(0x06);
    for (const f of frames.slice(0, 4)) {
      sim.write(f);
      expect(await sim.nextByte()).toBe(0x06);
    }
    store.simulateWriteFailure(new Error('disk unplugged'));
    sim.write(frames[4] as Buffer);
    expect(await sim.nextByte()).toBe(0x15); // NAK: not stored, not acknowledged
    store.simulateWriteFailure(undefined);
    await until(() => store.health === 'ok');
    sim.write(frames[4] as Buffer); // LIS1-A §6.5.1: retransmission of the same frame
    expect(await sim.nextByte()).toBe(0x06);
    sim.write([EOT]);
    const stored = await messagesOf('tcp-srv-4');
    expect(stored).toHaveLength(1);
    expect(stored[0]?.raw.toString('latin1')).toContain(MSG_TEXT.slice(-6));
  });

  it('answers ENQ with NAK while the store is down (stop accepting rather than lose)', async () => {
    const { ep } = endpoint({ id: 'tcp-srv-5', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } });
    await ep.start();
    const { sim } = await connectSim(ep.address()?.port as number);
    store.simulateWriteFailure(new Error('disk full'));
    try {
      const { replies } = await sim.sendMessage(MSG);
      expect(replies).toBe('<NAK>');
    } finally {
      store.simulateWriteFailure(undefined);
      await until(() => store.health === 'ok');
    }
  });

  it('keeps a message cut off by a dropped connection as a rejected partial', async () => {
    const { ep, intake } = endpoint({ id: 'tcp-srv-6', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } });
    await ep.start();
    const { sim, socket } = await connectSim(ep.address()?.port as number);
    const frames = MSG.map((r, i) => buildFrame(i + 1, Buffer.from(r + '\r'), true));
    sim.write([0x05]);
    await sim.nextByte();
    sim.write(frames[0] as Buffer);
    sim.write(frames[1] as Buffer);
    await sim.nextByte();
    await sim.nextByte();
    socket.destroy();
    await until(() => intake.length === 1);
    const stored = await messagesOf('tcp-srv-6');
    expect(stored).toHaveLength(1);
    expect(stored[0]?.message.status).toBe('rejected');
    expect(stored[0]?.message.rejectReason).toMatch(/incomplete message \(closed\)/);
    expect(stored[0]?.message.eventIds).toEqual([]);
    expect(stored[0]?.raw.equals(Buffer.concat([Buffer.from([0x05]), frames[0] as Buffer, frames[1] as Buffer]))).toBe(true);
    expect(ep.linkStats()).toMatchObject({ framesAccepted: 2, partials: 1, messages: 0 });
  });

  it('a message the record layer rejects is kept raw and NAKed', async () => {
    const { ep, intake } = endpoint({ id: 'tcp-srv-7', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } });
    await ep.start();
    const { sim } = await connectSim(ep.address()?.port as number);
    const { replies } = await sim.sendMessage(['X|garbage', 'L|1|N']);
    expect(replies).toBe('<ACK><ACK><NAK>');
    await until(() => intake.length === 1);
    await new Promise((r) => setTimeout(r, 50)); // the EOT that followed the NAK has been read
    const stored = await messagesOf('tcp-srv-7');
    expect(stored).toHaveLength(1); // kept once: no second copy as an incomplete message
    expect(stored[0]?.message.status).toBe('rejected');
    expect(stored[0]?.message.rejectReason).toBe('no H record');
  });

  it('answers a host query in a new session after the analyzer EOT', async () => {
    const queries: string[] = [];
    const { ep } = endpoint(
      { id: 'tcp-srv-8', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } },
      {
        answer: async (q) => {
          queries.push(q);
          return ['H|\\^&|||host', 'P|1', `O|1|${q}||^^^GLU|R`, 'L|1|F'];
        },
      },
    );
    await ep.start();
    const { sim } = await connectSim(ep.address()?.port as number);
    const { replies } = await sim.sendMessage(['H|\\^&|||analyzer', 'Q|1|^SPEC-42||ALL||||||||O', 'L|1|N']);
    expect(replies).toBe('<ACK>'.repeat(4));
    const text = await sim.receiveSession();
    expect(queries).toEqual(['SPEC-42']);
    expect(text).toBe('H|\\^&|||host\rP|1\rO|1|SPEC-42||^^^GLU|R\rL|1|F\r');
  });

  it('an analyzer that closes after EOT gets the host query answer on its next connection (MALDI style)', async () => {
    const { ep } = endpoint(
      { id: 'tcp-srv-11', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } },
      { answer: async (q) => ['H|\\^&|||host', `O|1|${q}||^^^ID|R`, 'L|1|F'] },
    );
    await ep.start();
    const port = ep.address()?.port as number;
    const first = await connectSim(port);
    const { replies } = await first.sim.sendMessage(['H|\\^&|||maldi', 'Q|1|^TARGET-7||ALL||||||||O', 'L|1|N']);
    expect(replies).toBe('<ACK>'.repeat(4));
    first.socket.end(); // EOT, then the connection closes at once
    await until(() => ep.connections === 0);
    const second = await connectSim(port);
    expect(await second.sim.receiveSession()).toBe('H|\\^&|||host\rO|1|TARGET-7||^^^ID|R\rL|1|F\r');
  });

  it('reads the text of a UTF-8 analyzer (profile charset) while storing the bytes as received', async () => {
    const { ep } = endpoint({ id: 'tcp-srv-12', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } }, { quirks: { charset: 'utf8' } });
    await ep.start();
    const { sim } = await connectSim(ep.address()?.port as number);
    const records = ['H|\\^&|||analyzer', 'P|1||PID-1||Müller^Zoë', 'L|1|N'];
    const frames = records.map((r, i) => buildFrame(i + 1, Buffer.from(r + '\r', 'utf8'), true));
    const { replies, sent } = await sim.sendMessage(frames);
    expect(replies).toBe('<ACK>'.repeat(4));
    expect(normalizedTexts).toContain(records.join('\r') + '\r');
    const stored = await messagesOf('tcp-srv-12');
    expect(stored[0]?.raw.equals(sent)).toBe(true);
    expect(stored[0]?.message.encoding).toBe('utf8');
  });

  it('sendWorklist pushes an order download to a connected analyzer', async () => {
    const { ep } = endpoint({ id: 'tcp-srv-9', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } });
    await ep.start();
    await expect(ep.sendWorklist(['H|\\^&', 'L|1|N'])).rejects.toMatchObject({ code: 'GW_ASTM_LINK' });
    const { sim } = await connectSim(ep.address()?.port as number);
    await until(() => ep.connections === 1);
    const sending = ep.sendWorklist(['H|\\^&|||host', 'O|1|S1||^^^NA|R', 'L|1|N']);
    expect(await sim.receiveSession()).toBe('H|\\^&|||host\rO|1|S1||^^^NA|R\rL|1|N\r');
    await sending;
  });

  it('records-only mode: bare records, message ends at L, nothing written back', async () => {
    const { ep } = endpoint({ id: 'tcp-srv-10', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } }, { quirks: { lowLevel: 'records-only' } });
    await ep.start();
    const { sim } = await connectSim(ep.address()?.port as number);
    const bytes = Buffer.from(MSG.join('\r\n') + '\r\n', 'latin1');
    sim.write(bytes.subarray(0, 10));
    sim.write(bytes.subarray(10));
    await until(async () => (await messagesOf('tcp-srv-10')).length === 1);
    const stored = await messagesOf('tcp-srv-10');
    expect(stored[0]?.raw.toString('latin1')).toBe(MSG.join('\r\n') + '\r');
    expect(sim.received.length).toBe(0);
  });
});

describe('ASTM endpoint, TCP client role (the gateway connects)', () => {
  it('connects, receives a message, and reconnects after the analyzer drops the connection', async () => {
    const sims: AnalyzerSim[] = [];
    const sockets: net.Socket[] = [];
    const server = net.createServer((socket) => {
      const sim = new AnalyzerSim((b) => socket.write(b));
      socket.on('data', (b: Buffer) => sim.feed(b));
      sims.push(sim);
      sockets.push(socket);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    cleanups.push(() => sockets.forEach((s) => s.destroy()));
    const port = (server.address() as net.AddressInfo).port;
    const { ep, telemetry } = endpoint({ id: 'tcp-cli-1', profile: 'test', tcp: { connect: { host: '127.0.0.1', port } } });
    const states: string[] = [];
    telemetry.on('endpoint.state', (e) => states.push(e.state));
    await ep.start();
    await until(() => sims.length === 1);
    const first = await (sims[0] as AnalyzerSim).sendMessage(MSG);
    expect(first.replies).toBe('<ACK>'.repeat(6));
    (sockets[0] as net.Socket).destroy();
    await until(() => sims.length === 2, 5_000);
    const second = await (sims[1] as AnalyzerSim).sendMessage(MSG.map((r) => r.replace('5.4', '5.5')));
    expect(second.replies).toBe('<ACK>'.repeat(6));
    const stored = await messagesOf('tcp-cli-1');
    expect(stored.map((m) => m.raw.toString('latin1')).sort()).toEqual([first.sent.toString('latin1'), second.sent.toString('latin1')].sort());
    expect(states).toContain('disconnected');
    expect(states.filter((s) => s === 'connected').length).toBeGreaterThanOrEqual(2);
  });
});
