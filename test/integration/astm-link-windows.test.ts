import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { AnalyzerConfig } from '../../gateway/src/config/types.ts';
import { AstmEndpoint, type AstmNormalizeResult } from '../../gateway/src/ingress/astm/astm-endpoint.ts';
import { RECORDS_ONLY_PAUSE_BYTES } from '../../gateway/src/ingress/astm/records-only-session.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { MSG, MSG_TEXT } from '../fixtures/astm-link/harness.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { until } from '../fixtures/astm-link/wait.ts';

/**
 * ASTM link windows where an inbound message was lost, stored twice or answered wrongly; each test
 * failed before its fix. Real sockets, a real store; commits held with interceptLevelWrites (a
 * lone message's batch kept inline, so its LevelDB write IS its commit point) or failed with
 * simulateWriteFailure.
 */
const tmp = useTempStore('lgw-astm-windows-', { pruneIntervalMs: 0, minFreeBytes: 0, healthCheckIntervalMs: 50, messageLogMinBatch: 1000 });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Holds LevelDB writes until opened. */
function gate(): { hook: () => Promise<void>; open: () => void; held: () => number } {
  let release: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => (release = resolve));
  let held = 0;
  return {
    hook: async () => {
      held++;
      await opened;
    },
    open: () => release(),
    held: () => held,
  };
}

function acceptAll(text: string): AstmNormalizeResult<string> {
  if (!text.startsWith('H')) return { events: [], messageType: 'ASTM', searchTerms: [], reject: 'no H record' };
  return { events: [], messageType: 'ASTM', searchTerms: [] };
}

function astmEndpoint(store: EventStore, analyzer: AnalyzerConfig, quirks: Record<string, unknown> = {}) {
  const ep = new AstmEndpoint<string>({
    analyzer,
    profile: { name: 'test', quirks },
    store,
    telemetry: new Telemetry(),
    log: silentLogger,
    normalize: acceptAll,
  });
  cleanups.push(() => ep.stop(2_000));
  return ep;
}

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => undefined);
  cleanups.push(() => void socket.destroy());
  return socket;
}

async function rawsOf(store: EventStore, endpoint: string): Promise<string[]> {
  const list = await store.listMessages({ endpoint, limit: 100 });
  const full = await Promise.all(list.map((m) => store.getMessage(m.id)));
  return full.map((m) => m?.raw.toString('latin1') ?? '');
}

describe('ASTM records-only link (no low-level protocol: nothing is acknowledged on the wire)', () => {
  it('a second message received while the first commits is kept when the connection closes', async () => {
    const store = await tmp.open();
    const ep = astmEndpoint(store, { id: 'ro-close', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } }, { lowLevel: 'records-only' });
    await ep.start();
    const g = gate();
    store.interceptLevelWrites(g.hook);
    const socket = await connect(ep.address()?.port as number);
    const msg2 = MSG.map((r) => r.replace('SID-1', 'SID-2'));
    // A serial-to-TCP adapter dumps two results and disconnects (records-only: no ACK to wait for).
    socket.end(Buffer.from([...MSG, ...msg2].join('\r') + '\r', 'latin1'));
    await until(() => g.held() === 1); // message 1 is committing, message 2 waits in the session
    await until(() => ep.connections === 0); // the connection is gone meanwhile
    store.interceptLevelWrites(undefined);
    g.open();
    // Both messages were sent and none was refused (there is no NAK in this mode): both are kept.
    await until(async () => (await rawsOf(store, 'ro-close')).some((r) => r.includes('SID-2')), 5_000).catch(() => undefined);
    const raws = await rawsOf(store, 'ro-close');
    expect(raws.filter((r) => r.includes('SID-1'))).toHaveLength(1);
    expect(raws.filter((r) => r.includes('SID-2'))).toHaveLength(1);
  });

  it('a message received while the store briefly fails is kept once the store is back', async () => {
    const store = await tmp.open();
    const ep = astmEndpoint(store, { id: 'ro-fail', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } }, { lowLevel: 'records-only' });
    await ep.start();
    const socket = await connect(ep.address()?.port as number);
    store.simulateWriteFailure(new Error('transient I/O error'));
    socket.write(Buffer.from(MSG.join('\r') + '\r', 'latin1'));
    await until(() => store.intake().rejected >= 1); // handed over, commit refused
    store.simulateWriteFailure(undefined);
    await until(() => store.health === 'ok');
    // The analyzer got no NAK (none exists in this mode) and will never resend: the gateway must keep it.
    await until(async () => (await rawsOf(store, 'ro-fail')).length > 0, 5_000).catch(() => undefined);
    expect(await rawsOf(store, 'ro-fail')).toHaveLength(1);
  });

  it('a store refusing for long does not fill the memory: the connection stops being read (TCP holds the analyzer), and every message is kept once it is back', async () => {
    const store = await tmp.open();
    const ep = astmEndpoint(store, { id: 'ro-hold', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } }, { lowLevel: 'records-only' });
    await ep.start();
    const socket = await connect(ep.address()?.port as number);
    store.simulateWriteFailure(new Error('disk full'));
    // 3 MiB of results (about 10 KB each), sent at once: three times the pause threshold.
    const count = 300;
    const msg = (n: number): string => [MSG[0], MSG[1], MSG[2]!.replace('SID-1', `SID-${n}`), MSG[3], `C|1|L|${'x'.repeat(10_000)}|G`, MSG[4]].join('\r') + '\r';
    socket.write(Buffer.from(Array.from({ length: count }, (_, i) => msg(i + 1)).join(''), 'latin1'));
    await until(() => ep.linkStats().bytesIn > RECORDS_ONLY_PAUSE_BYTES);
    await new Promise((r) => setTimeout(r, 300)); // time enough to read all 3 MiB over loopback, were it read on
    expect(ep.linkStats().bytesIn).toBeLessThan(1.5 * RECORDS_ONLY_PAUSE_BYTES);
    store.simulateWriteFailure(undefined);
    await until(() => store.health === 'ok');
    await until(async () => (await store.listMessages({ endpoint: 'ro-hold', limit: count + 10 })).length >= count, 30_000);
    const list = await store.listMessages({ endpoint: 'ro-hold', limit: count + 10 });
    const ids = (await Promise.all(list.map((m) => store.getMessage(m.id)))).map((m) => m?.raw.toString('latin1').match(/SID-\d+/)?.[0]);
    expect(new Set(ids).size).toBe(count); // each once
    expect(ids).toHaveLength(count);
    expect(ep.linkStats().overflowBytes).toBe(0);
  });
});

async function connectSim(port: number): Promise<{ sim: AnalyzerSim; socket: net.Socket }> {
  const socket = await connect(port);
  const sim = new AnalyzerSim((b) => socket.write(b));
  socket.on('data', (b: Buffer) => sim.feed(b));
  return { sim, socket };
}

describe('ASTM E1381 link', () => {
  it('a message over maxMessageBytes whose LAST frame crosses the limit is not ACKed as if accepted', async () => {
    const store = await tmp.open();
    // The limit falls inside the L record's frame: every earlier frame fits.
    const limit = MSG_TEXT.length - 2;
    const ep = astmEndpoint(store, { id: 'e-too-large', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } }, { maxMessageBytes: limit });
    await ep.start();
    const { sim } = await connectSim(ep.address()?.port as number);
    const { replies } = await sim.sendMessage(MSG);
    await until(async () => (await rawsOf(store, 'e-too-large')).length === 1);
    const [stored] = await store.listMessages({ endpoint: 'e-too-large', limit: 10 });
    expect(stored?.status).toBe('rejected'); // kept for an operator, no events
    // The analyzer must hear that the message was refused (NAK on its end frame), not ACK.
    expect(replies).toBe('<ACK>'.repeat(5) + '<NAK>');
  });

  it('a commit slower than the reply delay (NAKed), then EOT from the analyzer: the message is not kept twice', async () => {
    const store = await tmp.open();
    const ep = astmEndpoint(store, { id: 'e-slow', profile: 'test', tcp: { listen: { host: '127.0.0.1', port: 0 } } }, { receiverReplyDelayMs: 300 });
    await ep.start();
    const { sim } = await connectSim(ep.address()?.port as number);
    const g = gate();
    store.interceptLevelWrites(g.hook);
    const { replies } = await sim.sendMessage(MSG); // ends with EOT after the NAK
    expect(replies).toBe('<ACK>'.repeat(5) + '<NAK>');
    await until(() => g.held() >= 1);
    await new Promise((r) => setTimeout(r, 200)); // let the EOT be read (not a timing assertion)
    store.interceptLevelWrites(undefined);
    g.open();
    await until(async () => (await store.listMessages({ endpoint: 'e-slow', limit: 10 })).length >= 1);
    // Give a second copy every chance to appear (a pass needs this wait to run out).
    await until(async () => (await store.listMessages({ endpoint: 'e-slow', limit: 10 })).length >= 2, 2_000).catch(() => undefined);
    const list = await store.listMessages({ endpoint: 'e-slow', limit: 10 });
    expect(list.map((m) => `${m.status}:${m.rejectReason ?? ''}`)).toEqual(['accepted:']);
  });
});
