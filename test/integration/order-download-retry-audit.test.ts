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
import { OrderDownload, type OrderDownloadSummary } from '../../gateway/src/astm/order-download.ts';
import type { CanonicalEvent } from '../../gateway/src/events/types.ts';
import { EVENT_SCHEMA_VERSION } from '../../gateway/src/events/types.ts';
import { IdGenerator } from '../../gateway/src/ids.ts';
import { AstmEndpoint } from '../../gateway/src/ingress/astm/astm-endpoint.ts';
import { ACK, ENQ, EOT, NAK, STX } from '../../gateway/src/ingress/astm/control-chars.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { loadProfile } from '../../gateway/src/profiles/load.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { type PtyPair, startPtyPair } from '../fixtures/astm-link/pty-pair.ts';
import { type Cleanups, openSerialSim } from '../fixtures/astm-link/sim-wires.ts';
import { orderRecords } from '../fixtures/order-download.ts';

const ids = new IdGenerator('bbbbbb');
/** A committed LIS order (order.created from HL7), as the store hands it to order download. */
const lisOrder = (accession: string, codes: string[], priority?: string): CanonicalEvent => ({
  schemaVersion: EVENT_SCHEMA_VERSION,
  id: ids.next(),
  type: 'order.created',
  occurredAt: new Date().toISOString(),
  receivedAt: new Date().toISOString(),
  idempotencyKey: `order:${accession}:${ids.next()}`,
  correlationId: accession,
  partitionKey: `order:${accession}`,
  source: { kind: 'hl7', endpoint: 'lis', messageId: 'm' },
  data: { accession, orderingClientRef: 'CLINIC-A', tests: codes.map((code) => ({ code })), ...(priority ? { priority } : {}) },
});

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
