/**
 * Order download (analyzers[].pushOrders) to an analyzer that refuses for a while and stays on the
 * line: the technician's orders must reach it once it is ready, exactly once.
 *
 * Real parts: a socat pty pair (the analyzer on one end through `serialport`, the AstmEndpoint on
 * the other), a real LevelDB store in a temp dir, the real OrderDownload. Timers are shortened
 * through the analyzer's link overrides and OrderDownload's options; the schedule is the same.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ORDER_DOWNLOAD_NS, OrderDownload, type OrderDownloadDoc, type OrderDownloadSummary } from '../../gateway/src/astm/order-download.ts';
import type { CanonicalEvent } from '../../gateway/src/events/types.ts';
import { IdGenerator } from '../../gateway/src/ids.ts';
import { AstmEndpoint } from '../../gateway/src/ingress/astm/astm-endpoint.ts';
import { ACK, describeBytes, ENQ, EOT, NAK, STX } from '../../gateway/src/ingress/astm/control-chars.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { type PtyPair, startPtyPair } from '../fixtures/astm-link/pty-pair.ts';
import { type Cleanups, connectTcpSim, openSerialSim } from '../fixtures/astm-link/sim-wires.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';
import { CENTAUR, connectAnalyzer, connections, nextSession, orderRecords, orm } from '../fixtures/order-download.ts';
import { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { lisOrderEvent } from '../fixtures/astm/lis-order.ts';

const ids = new IdGenerator('bbbbbb');
const lisOrder = (accession: string, codes: string[], priority?: string): CanonicalEvent => lisOrderEvent(ids, accession, codes, priority ? { priority } : {});

const PROFILE = 'siemens-advia-centaur-xp';

let dir: string;
let store: EventStore;
let pair: PtyPair;
const cleanups: Cleanups = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-od-retry-'));
  store = await EventStore.open({ dataDir: path.join(dir, 'data'), pruneIntervalMs: 0 });
  pair = await startPtyPair(dir);
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  await pair?.kill();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The gateway's side of a serial analyzer with order download, wired as gateway.ts does. */
async function serialAnalyzer(id: string, serialPath: string, overrides: Record<string, unknown>, download: { retryDelayMs: number; maxAttempts: number; maxRetryDelayMs?: number }) {
  const profile = loadProfile(PROFILE);
  const telemetry = new Telemetry();
  const alerts: string[] = [];
  telemetry.on('alert', (a) => alerts.push(a.message));
  let orders: OrderDownload | undefined;
  let links = 0;
  const endpoint = new AstmEndpoint({
    analyzer: { id, profile: PROFILE, serial: { path: serialPath }, pushOrders: true, overrides },
    profile,
    store,
    telemetry,
    log: silentLogger,
    normalize: () => ({ events: [], messageType: 'ASTM', searchTerms: [] }),
    onLink: () => {
      links++;
      orders?.onLink();
    },
    reconnect: { initialMs: 50, maxMs: 200 },
  });
  orders = new OrderDownload({ analyzerId: id, profile, link: endpoint, store, telemetry, log: silentLogger, ...download });
  const summaries: OrderDownloadSummary[] = [];
  orders.onSummary((s) => summaries.push(s));
  await endpoint.start();
  const od = orders;
  cleanups.push(async () => {
    await od.stop();
    await endpoint.stop(2_000);
  });
  return { endpoint, orders: od, alerts, summaries, links: () => links };
}

/** Answer `count` ENQs of the gateway with NAK (LIS1-A §6.2.6: the analyzer is busy). */
async function busyFor(sim: AnalyzerSim, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const b = await sim.nextByte(20_000);
    if (b !== ENQ) throw new Error(`expected ENQ ${i + 1} of ${count}, got 0x${b.toString(16)} (${sim.unread()})`);
    sim.write([NAK]);
  }
}

/**
 * Receive one session, ACKing every frame but the last, which gets EOT: LIS1-A §6.3.5, "The <EOT>
 * is a positive acknowledgment of the end frame … and is a request to the sender to stop".
 */
async function receiveWithInterrupt(sim: AnalyzerSim, timeoutMs: number): Promise<string> {
  const first = await sim.nextByte(timeoutMs);
  if (first !== ENQ) throw new Error(`expected ENQ, got 0x${first.toString(16)}`);
  sim.write([ACK]);
  let text = '';
  for (;;) {
    const b = await sim.nextByte(timeoutMs);
    if (b === EOT) return text;
    if (b !== STX) continue;
    let frame = '';
    for (let c = await sim.nextByte(timeoutMs); c !== 0x0a; c = await sim.nextByte(timeoutMs)) frame += String.fromCharCode(c);
    text += frame.slice(1, -4); // FN … text, without ETX/ETB, the checksum and CR
    // ETX (0x03) ends the text of the last frame of the last record (L).
    sim.write([frame.includes('\x03') && frame.slice(1).startsWith('L|') ? EOT : ACK]);
  }
}

describe('order download to a serial analyzer that stays on the line', () => {
  it('a worklist refused until the retries ran out still reaches the analyzer once it is ready, once', async () => {
    // What the technician saw: the analyzer was busy (NAK to every ENQ) for a few minutes; the
    // gateway tried 5 times, then waited for "the next connection". A serial port stays open —
    // there is no next connection — so the STAT order never reached the analyzer while the status
    // kept showing it waiting. Promise broken: the outbox is sent (astm/README.md "Order download").
    const { sim } = await openSerialSim(pair.a, cleanups);
    const gw = await serialAnalyzer('centaur-serial', pair.b, { nakRetryDelayMs: 50, maxEnqAttempts: 2, interruptHoldoffMs: 50 }, { retryDelayMs: 100, maxAttempts: 2, maxRetryDelayMs: 400 });
    await expect.poll(() => gw.endpoint.connections, { timeout: 5_000 }).toBe(1);

    gw.orders.onCommitted([lisOrder('ACC-STAT-1', ['TSH'], 'S')]);
    // Busy for 5 sends of 2 ENQs each: more than maxAttempts sends.
    await busyFor(sim, 10);
    // The status says what waits and why while the analyzer refuses.
    const refusing = gw.orders.summary();
    expect(refusing).toMatchObject({ waiting: 1, failing: 1, lastErrorAccession: 'ACC-STAT-1' });
    expect(refusing.lastError).toMatch(/busy/);
    expect(gw.alerts.some((a) => a.includes('ACC-STAT-1') && /not accepted/.test(a))).toBe(true);

    // Ready now, and still on the same open port: the worklist arrives.
    const session = await receiveWithInterrupt(sim, 20_000);
    expect(orderRecords(session).map((o) => [o[2], o[5]])).toEqual([['ACC-STAT-1', 'S']]);
    await expect.poll(() => gw.orders.summary().waiting, { timeout: 5_000 }).toBe(0);
    expect(gw.orders.summary()).toMatchObject({ failing: 0, lastError: null });
    expect(gw.endpoint.connections).toBe(1);
    expect(gw.links(), 'the port never closed and reopened').toBe(1);

    // The analyzer took it (EOT on the end frame accepts it): the next download carries only the
    // next order, never the first one again.
    gw.orders.onCommitted([lisOrder('ACC-STAT-2', ['TSH'])]);
    const next = await sim.receiveSession(20_000);
    expect(orderRecords(next).map((o) => o[2])).toEqual(['ACC-STAT-2']);
    await expect.poll(() => gw.orders.summary().waiting, { timeout: 5_000 }).toBe(0);
  });
});

describe('order download when the analyzer connects again while its old TCP connection looks open', () => {
  it('a worklist queued on the old, silent connection goes to the new one without waiting for its ENQ time-outs', async () => {
    // What IT staff saw: the analyzer's serial-to-LAN converter restarted; its old connection
    // still looked open (no FIN or RST reached the gateway). A STAT order queued just before was
    // sent on the old connection — ENQ, no reply, 6 tries 15 s and 10 s apart: about 140 s — while
    // the analyzer sat on its new connection, idle; then the order was reported "not accepted"
    // (a false alarm) and only then sent on the new connection. Promise broken: a download goes on
    // the connection the analyzer uses (astm-endpoint.ts sendWorklist).
    const gateway = new Gateway({
      // The ENQ time-out and busy delay shortened (1.5 s, 0.5 s; 6 tries as standard) so that the
      // old behaviour ends within the test too.
      config: testGatewayConfig('orders-stale', path.join(dir, 'stale'), { analyzers: [{ ...CENTAUR, id: 'centaur-tcp', overrides: { establishmentTimeoutMs: 1_500, nakRetryDelayMs: 500 } }] }),
      log: silentLogger,
    });
    const alerts: string[] = [];
    gateway.telemetry.on('alert', (a) => alerts.push(a.message));
    await gateway.start();
    cleanups.push(() => gateway.stop(5_000));
    const port = gateway.addresses().analyzers['centaur-tcp']!.port!;

    // The old connection: open, and nothing on the other end answers any more.
    const old = await connectTcpSim(port, cleanups);
    await expect.poll(() => connections(gateway, 'centaur-tcp'), { timeout: 5_000 }).toBe(1);
    const lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
    cleanups.push(() => lis.close().catch(() => undefined));
    expect((await lis.send(orm('ST-9', 'ACC-STALE-1', ['TSH']))).toString('latin1')).toContain('MSA|AA|');
    expect(await old.sim.nextByte(10_000), 'the ENQ of the download on the old connection').toBe(ENQ);

    // The analyzer connects again and waits, idle.
    const fresh = await connectTcpSim(port, cleanups);
    await expect.poll(() => connections(gateway, 'centaur-tcp'), { timeout: 5_000 }).toBe(2);
    const session = await nextSession(fresh.sim, 20_000);
    expect(orderRecords(session).map((o) => o[2]), 'the worklist on the new connection').toEqual(['ACC-STALE-1']);
    // Moved after its first ENQ, not after all six: the old connection got that ENQ, its end
    // (EOT) and no frame — the order went out once.
    expect(old.sim.received.filter((b) => b === ENQ).length, `the old connection got ${old.sim.unread()}`).toBe(1);
    await expect.poll(() => describeBytes(old.sim.received), { timeout: 5_000 }).toBe('<ENQ><EOT>');
    await expect.poll(() => gateway.statusModel?.toApiStatus().endpoints.find((e) => e.id === 'centaur-tcp')?.orderDownload?.waiting, { timeout: 5_000 }).toBe(0);
    expect(alerts.filter((a) => a.includes('not accepted')), 'no refusal reported').toEqual([]);
  }, 40_000);

  it('a worklist whose frames began on the old connection is not moved: the analyzer may hold part of it', async () => {
    // The guard of the move above: frames accepted on the old connection (LIS1-A §6.3.5: even an
    // EOT reply accepts its frame) mean the analyzer may keep part of the message; sending it on
    // the new connection at the same time could deliver the order twice. It finishes or fails
    // there first (here: no reply to a frame), and is sent whole afterwards, as E1381 repeats an
    // aborted message (§6.5.2).
    const gateway = new Gateway({
      config: testGatewayConfig('orders-started', path.join(dir, 'started'), { analyzers: [{ ...CENTAUR, id: 'centaur-tcp2', overrides: { replyTimeoutMs: 1_500, nakRetryDelayMs: 500 } }] }),
      log: silentLogger,
    });
    await gateway.start();
    cleanups.push(() => gateway.stop(5_000));
    const port = gateway.addresses().analyzers['centaur-tcp2']!.port!;
    const old = await connectTcpSim(port, cleanups);
    await expect.poll(() => connections(gateway, 'centaur-tcp2'), { timeout: 5_000 }).toBe(1);
    const lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
    cleanups.push(() => lis.close().catch(() => undefined));
    expect((await lis.send(orm('ST-10', 'ACC-STARTED-1', ['TSH']))).toString('latin1')).toContain('MSA|AA|');
    // The old connection takes the line and the first frame, then falls silent.
    expect(await old.sim.nextByte(10_000)).toBe(ENQ);
    old.sim.write([ACK]);
    await old.sim.nextFrame(5_000);
    old.sim.write([ACK]);
    await old.sim.nextFrame(5_000);

    const fresh = await connectTcpSim(port, cleanups);
    await expect.poll(() => connections(gateway, 'centaur-tcp2'), { timeout: 5_000 }).toBe(2);
    // The old send ends by its frame time-out (EOT); until then nothing went to the new connection.
    expect(await old.sim.nextByte(10_000), `the old connection got ${old.sim.unread()}`).toBe(EOT);
    expect(describeBytes(fresh.sim.received), 'sent on the new connection while frames were on the old').toBe('');
    const session = await nextSession(fresh.sim, 20_000);
    expect(orderRecords(session).map((o) => o[2])).toEqual(['ACC-STARTED-1']);
  }, 40_000);
});

describe('order download when the analyzer took a worklist but its record was not written', () => {
  it('the next pass records it and never sends it again', async () => {
    // What the technician saw: the analyzer accepted ACC-DUP-1 (every frame ACKed), then the
    // gateway's write of "sent" failed once (a disk hiccup). The next order, ACC-DUP-2, made the
    // gateway send ACC-DUP-1 again: the analyzer's worklist held the tube twice, and a second run
    // draws its reagent twice. Promise broken: the analyzer never gets a test twice
    // (astm/README.md "Order download": order.created).
    const gateway = new Gateway({ config: testGatewayConfig('orders-unrecorded', path.join(dir, 'unrecorded'), { analyzers: [CENTAUR] }), log: silentLogger });
    await gateway.start();
    cleanups.push(() => gateway.stop(5_000));
    const store = gateway.store!;
    const analyzer = await connectAnalyzer(gateway, 'centaur-1');
    cleanups.push(() => void analyzer.socket.destroy());
    // The write recording ACC-DUP-1 as sent fails once.
    const realPutDoc = store.putDoc.bind(store);
    let failed = 0;
    store.putDoc = async (namespace, key, value) => {
      if (failed === 0 && namespace === ORDER_DOWNLOAD_NS && key === 'centaur-1\u0000ACC-DUP-1' && (value as OrderDownloadDoc).sent.length > 0) {
        failed++;
        throw new Error('GW_STORE_UNAVAILABLE: simulated failed write');
      }
      return realPutDoc(namespace, key, value);
    };
    const lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
    cleanups.push(() => lis.close().catch(() => undefined));
    expect((await lis.send(orm('DUP-1', 'ACC-DUP-1', ['TSH']))).toString('latin1')).toContain('MSA|AA|');
    const first = await nextSession(analyzer.sim, 10_000);
    expect(orderRecords(first).map((o) => o[2])).toEqual(['ACC-DUP-1']);
    await expect.poll(() => failed, { timeout: 5_000 }).toBe(1);

    expect((await lis.send(orm('DUP-2', 'ACC-DUP-2', ['TSH']))).toString('latin1')).toContain('MSA|AA|');
    const sent: string[] = [];
    for (let session = await nextSession(analyzer.sim, 5_000); session !== ''; session = await nextSession(analyzer.sim, 2_000)) sent.push(...orderRecords(session).map((o) => o[2]!));
    expect(sent, 'what the analyzer got after the second order').toEqual(['ACC-DUP-2']);
    const doc = await store.getDoc<OrderDownloadDoc>(ORDER_DOWNLOAD_NS, 'centaur-1\u0000ACC-DUP-1');
    expect(doc?.sent.map((t) => t.code)).toEqual(['TSH']);
    expect(doc?.pending).toEqual([]);
    await expect.poll(() => gateway.statusModel?.toApiStatus().endpoints.find((e) => e.id === 'centaur-1')?.orderDownload?.waiting, { timeout: 5_000 }).toBe(0);
  }, 40_000);
});
