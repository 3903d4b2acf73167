import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { makeRig, startEmulator, type Rig } from '../fixtures/relay/harness.ts';
import { consumableUsed, milestone, orderCreated, resultValidated, waitFor } from '../fixtures/relay/helpers.ts';

/** The relay's two limits: attempts per event (relay.maxAttempts) and Odoo requests in flight (relay.concurrency). */

const rigs: Rig[] = [];
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const r of rigs) await r.close();
  for (const c of cleanups) await c();
});

describe('a transient failure on every attempt', () => {
  it.each([
    [17, 'lock', /LockNotAvailable/],
    [19, 'lock', /LockError/],
    [18, 'serialization', /SerializationFailure/],
  ] as const)('Odoo %i, %s error on every load: dead after exactly relay.maxAttempts attempts, with a readable reason', async (version, kind, detail) => {
    const rig = await makeRig(version, { relay: { maxAttempts: 3 } });
    rigs.push(rig);
    await waitFor(() => rig.client.state === 'connected');
    rig.emu.faults.inject({ match: { model: 'sale.order', method: 'load' }, times: Infinity, action: { kind } });
    const [id] = await rig.commit([orderCreated(`GIVEUP-${version}`, 'CLINIC-A', ['GLU'])]);
    await waitFor(async () => (await rig.store.getEvent(id!))?.state === 'dead');
    const e = (await rig.store.getEvent(id!))!;
    expect(e.deadReason).toMatch(/^gave up after 3 attempts: /);
    expect(e.attempts).toBe(3);
    expect(e.deadReason).toMatch(detail);
    expect(rig.emu.faults.log.filter((f) => f.action === kind)).toHaveLength(3);
    expect(rig.emu.calls.filter((c) => c.model === 'sale.order' && c.method === 'load')).toHaveLength(3);
    expect(rig.emu.count('sale.order', [['client_order_ref', '=', `GIVEUP-${version}`]])).toBe(0);
  });

  it('a 503 on every attempt (Odoo unreachable) charges no attempt and dead-letters nothing', async () => {
    const rig = await makeRig(17, { relay: { maxAttempts: 3 } });
    rigs.push(rig);
    await waitFor(() => rig.client.state === 'connected');
    rig.emu.faults.inject({ match: { model: 'sale.order', method: 'load' }, times: 8, action: { kind: 'status', status: 503 } });
    const [id] = await rig.commit([orderCreated('DOWN-1', 'CLINIC-A', ['GLU'])]);
    await waitFor(async () => (await rig.store.getEvent(id!))?.state === 'delivered');
    expect(rig.emu.faults.pending()).toBe(0);
    expect((await rig.store.getEvent(id!))!.attempts).toBeLessThanOrEqual(1);
  });
});

const READS = new Set(['search_read', 'read', 'search', 'search_count', 'fields_get', 'check_object_reference', 'name_search', 'read_group', 'version', 'authenticate', 'login']);

/** An HTTP proxy in front of the emulator that counts write requests in flight. */
async function countingProxy(target: string): Promise<{ url: string; maxWrites: () => number; writes: () => number; close: () => Promise<void> }> {
  const to = new URL(target);
  const agent = new http.Agent({ keepAlive: true });
  let open = 0;
  let max = 0;
  let total = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let method: string | undefined;
      const json2 = /^\/json\/2\/[^/]+\/([^/?]+)/.exec(req.url ?? '');
      if (json2) method = json2[1];
      else {
        try {
          const rpc = JSON.parse(body.toString('utf8')) as { params?: { service?: string; method?: string; args?: unknown[] } };
          method = rpc.params?.service === 'object' ? String(rpc.params.args?.[4]) : rpc.params?.method;
        } catch {
          method = undefined;
        }
      }
      const write = method !== undefined && !READS.has(method);
      if (write) {
        open++;
        total++;
        max = Math.max(max, open);
      }
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        if (write) open--;
      };
      const up = http.request({ host: to.hostname, port: to.port, path: req.url, method: req.method, headers: req.headers, agent }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.on('end', finish);
      });
      up.on('error', () => {
        finish();
        res.destroy();
      });
      res.on('close', finish);
      up.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    maxWrites: () => max,
    writes: () => total,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      agent.destroy();
    },
  };
}

describe('bounded concurrency', () => {
  it('with relay.concurrency 2, Odoo never sees more than 2 write requests in flight', async () => {
    const { emu, url } = await startEmulator(17);
    const proxy = await countingProxy(url);
    cleanups.push(async () => {
      await proxy.close();
      await emu.close();
    });
    const rig = await makeRig(17, { emu: { emu, url: proxy.url }, relay: { concurrency: 2 } });
    rigs.push(rig);
    await waitFor(() => rig.client.state === 'connected');
    const ORDERS = 24;
    await rig.commit(Array.from({ length: ORDERS }, (_, i) => orderCreated(`CC${i}`, i % 2 ? 'CLINIC-A' : 'CLINIC-B', ['GLU', 'CRP'])));
    await rig.waitDrained();
    emu.faults.latencyMs = 25;
    const work: DraftEvent[] = [];
    for (let i = 0; i < ORDERS; i++) work.push(milestone('specimen.received', `CC${i}`, i), resultValidated(`CC${i}`, 'GLU'));
    for (let n = 0; n < 6; n++) work.push(consumableUsed(`cc-an-${n % 3}`, n % 2 ? 'TIP-200' : 'CUV-01', 1, n));
    const before = proxy.writes();
    await rig.commit(work);
    await rig.waitDrained();
    expect(rig.store.stats()).toMatchObject({ deadLettered: 0, delivered: ORDERS + work.length });
    expect(proxy.writes() - before).toBeGreaterThan(ORDERS); // the notes alone are one per order
    expect(proxy.maxWrites()).toBeLessThanOrEqual(2);
    expect(proxy.maxWrites()).toBe(2); // and the bound is used, not serialized to one
  }, 30_000);
});
