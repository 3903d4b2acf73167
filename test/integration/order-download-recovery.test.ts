/**
 * Order download across a crash: an LIS order is acknowledged when it is stored, and recorded
 * for the analyzer just after. If the process dies (or the write fails) in between, the next
 * start records it from the store, in order, once: the analyzer gets the order, never twice.
 * Real gateway, real LevelDB in a temp dir, real MLLP and E1381 over TCP.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ORDER_CURSOR_NS, ORDER_DOWNLOAD_NS } from '../../gateway/src/astm/order-download.ts';
import { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';
import { CENTAUR, connectAnalyzer, nextSession, orderRecords, orm } from '../fixtures/order-download.ts';

async function gatewayAt(dir: string, analyzers: unknown[]): Promise<Gateway> {
  const gateway = new Gateway({ config: testGatewayConfig('orders-recovery', dir, { analyzers }), log: silentLogger });
  await gateway.start();
  return gateway;
}

async function sendOrders(gateway: Gateway, orders: Buffer[]): Promise<void> {
  const lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
  try {
    for (const m of orders) expect((await lis.send(m)).toString('latin1')).toContain('MSA|AA|');
  } finally {
    await lis.close().catch(() => undefined);
  }
}

/** Sessions the analyzer receives until none comes for `quietMs`. */
async function sessions(sim: AnalyzerSim, quietMs = 2_500): Promise<string[]> {
  const out: string[] = [];
  for (let text = await nextSession(sim, 10_000); text !== ''; text = await nextSession(sim, quietMs)) out.push(text);
  return out;
}

async function withDir(fn: (dir: string, cleanup: Array<() => Promise<unknown>>) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'lgw-orders-recovery-'));
  const cleanup: Array<() => Promise<unknown>> = [];
  try {
    await fn(dir, cleanup);
  } finally {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

describe('order download recovers what a crash left unrecorded', () => {
  it('an order acknowledged but not recorded for the analyzer (its write failed, as a crash would leave it) is downloaded after the restart', async () => {
    await withDir(async (dir, cleanup) => {
      const first = await gatewayAt(dir, [CENTAUR]);
      cleanup.push(() => first.stop(5_000));
      const store = first.store!;
      // The outbox write never reaches the disk: what a power cut right after the ACK leaves.
      const realCommitLocal = store.commitLocal.bind(store);
      let refused = 0;
      store.commitLocal = async (...args) => {
        if (args[1]?.some((d) => d.namespace === ORDER_DOWNLOAD_NS)) {
          refused++;
          throw new Error('GW_STORE_UNAVAILABLE: simulated crash before the outbox write');
        }
        return realCommitLocal(...args);
      };
      await sendOrders(first, [orm('PC-1', 'ACC-PC-1', ['TSH'])]);
      await expect.poll(() => refused, { timeout: 10_000 }).toBeGreaterThan(0);
      expect(await store.getDoc(ORDER_DOWNLOAD_NS, 'centaur-1\u0000ACC-PC-1')).toBeUndefined();
      await first.stop(5_000);

      const second = await gatewayAt(dir, [CENTAUR]);
      cleanup.push(() => second.stop(5_000));
      const analyzer = await connectAnalyzer(second, 'centaur-1');
      cleanup.push(async () => analyzer.socket.destroy());
      const got = await sessions(analyzer.sim);
      expect(got.flatMap((t) => orderRecords(t).map((o) => o[2])), 'the acknowledged order never reached the analyzer').toEqual(['ACC-PC-1']);
    });
  });

  it('events recorded again after a restart (the cursor written a moment before they were) download nothing twice, and a cancel replayed stays a cancel', async () => {
    await withDir(async (dir, cleanup) => {
      let analyzer: { sim: AnalyzerSim; socket: net.Socket } | undefined;
      const first = await gatewayAt(dir, [CENTAUR]);
      cleanup.push(() => first.stop(5_000));
      await expect.poll(() => first.store!.getDoc(ORDER_CURSOR_NS, 'centaur-1'), { timeout: 10_000 }).toBeDefined();
      const cursorBefore = await first.store!.getDoc<{ after: string }>(ORDER_CURSOR_NS, 'centaur-1');
      expect(cursorBefore?.after, 'a first start writes the cursor').toMatch(/^[0-9a-f]{24}$/);
      analyzer = await connectAnalyzer(first, 'centaur-1');
      await sendOrders(first, [orm('RP-1', 'ACC-RP-1', ['TSH', 'FT4']), orm('RP-2', 'ACC-RP-2', ['TSH'])]);
      const firstRun = await sessions(analyzer.sim);
      expect(firstRun.flatMap((t) => orderRecords(t).map((o) => o[2])).sort()).toEqual(['ACC-RP-1', 'ACC-RP-2']);
      // The LIS cancels FT4 of ACC-RP-1: the analyzer gets the cancel.
      await sendOrders(first, [orm('RP-3', 'ACC-RP-1', ['FT4'], 'CA')]);
      const cancel = await sessions(analyzer.sim);
      expect(cancel.flatMap((t) => orderRecords(t).map((o) => o[11]))).toEqual(['C']);
      analyzer.socket.destroy();
      await first.stop(5_000);
      expect((await readCursor(dir))!.after > cursorBefore!.after, 'a graceful stop writes the cursor').toBe(true);

      // As a crash a moment after the orders would leave it: the cursor from before them.
      await writeCursor(dir, cursorBefore!.after);
      const second = await gatewayAt(dir, [CENTAUR]);
      cleanup.push(() => second.stop(5_000));
      analyzer = await connectAnalyzer(second, 'centaur-1');
      cleanup.push(async () => analyzer?.socket.destroy());
      expect(await nextSession(analyzer.sim, 3_000), 'a replayed order or cancel was downloaded again').toBe('');
      const doc = await second.store!.getDoc<{ sent: Array<{ code: string }>; cancelled: string[] }>(ORDER_DOWNLOAD_NS, 'centaur-1\u0000ACC-RP-1');
      expect(doc?.sent.map((t) => t.code)).toEqual(['TSH']);
      expect(doc?.cancelled).toEqual(['FT4']);
    });
  });

  it('turning order download off and on again does not replay the orders of the time it was off', async () => {
    await withDir(async (dir, cleanup) => {
      const on = await gatewayAt(dir, [CENTAUR]);
      await on.stop(5_000);
      const off = await gatewayAt(dir, [{ ...CENTAUR, pushOrders: false }]);
      await sendOrders(off, [orm('OFF-1', 'ACC-OFF-1', ['TSH'])]);
      await off.stop(5_000);
      expect(await readCursor(dir), 'the cursor of an analyzer without order download is deleted').toBeUndefined();

      const again = await gatewayAt(dir, [CENTAUR]);
      cleanup.push(() => again.stop(5_000));
      const analyzer = await connectAnalyzer(again, 'centaur-1');
      cleanup.push(async () => analyzer.socket.destroy());
      expect(await nextSession(analyzer.sim, 3_000), 'an order from while download was off was pushed').toBe('');
      await sendOrders(again, [orm('ON-1', 'ACC-ON-1', ['TSH'])]);
      const got = await sessions(analyzer.sim);
      expect(got.flatMap((t) => orderRecords(t).map((o) => o[2]))).toEqual(['ACC-ON-1']);
    });
  });
});

async function readCursor(dir: string): Promise<{ after: string } | undefined> {
  const store = await EventStore.open({ dataDir: dir });
  try {
    return await store.getDoc<{ after: string }>(ORDER_CURSOR_NS, 'centaur-1');
  } finally {
    await store.close();
  }
}

async function writeCursor(dir: string, after: string): Promise<void> {
  const store = await EventStore.open({ dataDir: dir });
  try {
    await store.putDoc(ORDER_CURSOR_NS, 'centaur-1', { after });
  } finally {
    await store.close();
  }
}
