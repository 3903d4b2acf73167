import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AstmEndpoint } from '../../gateway/src/ingress/astm/astm-endpoint.ts';
import { buildFrame } from '../../gateway/src/ingress/astm/checksum.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry, type TelemetryEvents } from '../../gateway/src/telemetry.ts';
import { MSG } from '../fixtures/astm-link/harness.ts';
import { type PtyPair, startPtyPair } from '../fixtures/astm-link/pty-pair.ts';
import { openSerialSim } from '../fixtures/astm-link/sim-wires.ts';

/**
 * The endpoint on a real kernel tty: a socat pty pair, `serialport` on BOTH ends (the simulated
 * analyzer on one, the AstmEndpoint on the other), a real LevelDB store.
 */
let dir: string;
let store: EventStore;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'astm-serial-'));
  store = await EventStore.open({ dataDir: path.join(dir, 'data'), pruneIntervalMs: 0 });
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const openSim = (p: string) => openSerialSim(p, cleanups);

function endpoint(id: string, serialPath: string) {
  const telemetry = new Telemetry();
  const intake: Array<TelemetryEvents['intake.message']> = [];
  const states: string[] = [];
  telemetry.on('intake.message', (e) => intake.push(e));
  telemetry.on('endpoint.state', (e) => states.push(e.state));
  const ep = new AstmEndpoint({
    analyzer: { id, profile: 'test', serial: { path: serialPath } },
    profile: { name: 'test', quirks: {}, transport: { serial: { baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1 } } },
    store,
    telemetry,
    log: silentLogger,
    normalize: () => ({ events: [], messageType: 'ASTM', searchTerms: [] }),
    reconnect: { initialMs: 50, maxMs: 200 },
  });
  cleanups.push(() => ep.stop(2_000));
  return { ep, intake, states };
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function storedRaw(id: string) {
  const list = await store.listMessages({ endpoint: id, limit: 100 });
  return Promise.all(list.map(async (m) => ({ message: m, raw: (await store.getMessage(m.id))?.raw as Buffer })));
}

describe('ASTM endpoint on a socat pty pair', () => {
  let pair: PtyPair;
  beforeAll(async () => {
    pair = await startPtyPair(dir);
  });
  afterAll(async () => {
    await pair.kill();
  });

  it('ACKs every ENQ and frame on the wire and stores the exact bytes', async () => {
    const { ep } = endpoint('pty-1', pair.b);
    await ep.start();
    expect(ep.connections).toBe(1);
    const { sim } = await openSim(pair.a);
    const { replies, sent } = await sim.sendMessage(MSG);
    expect(replies).toBe('<ACK>'.repeat(6));
    const stored = await storedRaw('pty-1');
    expect(stored).toHaveLength(1);
    expect(stored[0]?.raw.equals(sent)).toBe(true);
    expect(stored[0]?.message.remoteAddress).toBe(`serial:${pair.b}`);
  });
});

describe('adapter missing at start-up', () => {
  it('start() succeeds, reports the error, and the port opens once the device appears', async () => {
    const sub = path.join(dir, 'late');
    await import('node:fs/promises').then((fs) => fs.mkdir(sub, { recursive: true }));
    const { ep, states } = endpoint('pty-late', path.join(sub, 'b'));
    await ep.start();
    expect(ep.connections).toBe(0);
    expect(states).toContain('error');
    const pair = await startPtyPair(sub);
    cleanups.push(() => pair.kill());
    await until(() => ep.connections === 1, 5_000);
    const { sim } = await openSim(pair.a);
    expect((await sim.sendMessage(MSG)).replies).toBe('<ACK>'.repeat(6));
  });
});

describe('a 26 KB frame on the pty', () => {
  it('is ACKed once and stored byte for byte', async () => {
    const sub = path.join(dir, 'big');
    await import('node:fs/promises').then((fs) => fs.mkdir(sub, { recursive: true }));
    const pair = await startPtyPair(sub);
    cleanups.push(() => pair.kill());
    const { ep } = endpoint('pty-big', pair.b);
    await ep.start();
    const { sim } = await openSim(pair.a);
    // Yumizen H500: an M record with a base64 histogram, the whole message in one frame.
    const text = 'H|\\^&|||H500\rM|3|MATRIX|LMNE|' + 'QUJDRA=='.repeat(3300) + '\rL|1|N\r';
    const f = buildFrame(1, Buffer.from(text, 'latin1'), true);
    expect(f.length).toBeGreaterThan(26_000);
    const { replies, sent } = await sim.sendMessage([f]);
    expect(replies).toBe('<ACK><ACK>');
    const stored = await storedRaw('pty-big');
    expect(stored).toHaveLength(1);
    expect(stored[0]?.raw.equals(sent)).toBe(true);
  });
});

describe('cable pulled mid-message', () => {
  it('keeps the cut message as rejected raw bytes and reopens the port when the line returns', async () => {
    const sub = path.join(dir, 'pull');
    await import('node:fs/promises').then((fs) => fs.mkdir(sub, { recursive: true }));
    let pair = await startPtyPair(sub);
    cleanups.push(() => pair.kill());
    const { ep, intake, states } = endpoint('pty-pull', pair.b);
    await ep.start();
    const first = await openSim(pair.a);
    const frames = MSG.map((r, i) => buildFrame(i + 1, Buffer.from(r + '\r'), true));
    first.sim.write([0x05]);
    expect(await first.sim.nextByte()).toBe(0x06);
    first.sim.write(frames[0] as Buffer);
    expect(await first.sim.nextByte()).toBe(0x06);
    first.sim.write(frames[1] as Buffer);
    expect(await first.sim.nextByte()).toBe(0x06);

    await pair.kill(); // the cable is pulled
    await until(() => intake.length === 1);
    const cut = await storedRaw('pty-pull');
    expect(cut).toHaveLength(1);
    expect(cut[0]?.message.status).toBe('rejected');
    expect(cut[0]?.message.rejectReason).toBe('incomplete message (closed)');
    expect(cut[0]?.raw.equals(Buffer.concat([Buffer.from([0x05]), frames[0] as Buffer, frames[1] as Buffer]))).toBe(true);
    expect(states).toContain('disconnected');

    pair = await startPtyPair(sub); // plugged back in, same device paths
    await until(() => ep.connections === 1, 5_000);
    const second = await openSim(pair.a);
    const { replies, sent } = await second.sim.sendMessage(MSG);
    expect(replies).toBe('<ACK>'.repeat(6));
    const after = await storedRaw('pty-pull');
    expect(after.filter((m) => m.message.status === 'accepted').map((m) => m.raw.toString('latin1'))).toEqual([sent.toString('latin1')]);
  });
});
