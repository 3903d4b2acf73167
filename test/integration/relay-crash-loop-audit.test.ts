/**
 * A gateway that stops on an error of its own while an order is being sent to Odoo.
 *
 * What IT saw: the gateway restarted every few minutes, all night. A bug in handling one order's
 * answer threw an uncaught exception; `lab-gateway start` stopped gracefully, as it should, and
 * systemd restarted it; the order was sent again after its settle time, and the gateway stopped
 * again. Every restart cut the LIS and the analyzers off, and nothing ever ended the loop. Now the
 * run loop notes the events being delivered when it stops on its own error (Gateway.noteCrash);
 * the next start counts them, and holds an event as a dead letter after CRASHED_DELIVERY_LIMIT
 * such stops in a row (test/unit/store-crash-loop.test.ts proves the count and the hold).
 * Here: the whole path in a real process, from the uncaught exception to the count after a
 * restart.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { CRASHED_DELIVERY_LIMIT } from '../../gateway/src/store/types.ts';
import { lisOrm } from '../fixtures/lis-rig.ts';
import { BOT, startEmulator } from '../fixtures/relay/harness.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';

const CHILD = path.resolve(import.meta.dirname, '../fixtures/relay/crash-child.ts');
const closers: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

describe('a gateway that stops on its own error while delivering', () => {
  it('notes the delivery it was making, and the next start counts it towards a crash loop', async () => {
    const { emu, url } = await startEmulator(17);
    closers.push(() => emu.close());
    // Odoo takes the order's request and never answers within the stop.
    for (const method of ['load', 'create']) emu.faults.inject({ match: { model: 'sale.order', method }, times: Infinity, action: { kind: 'timeout' } });
    const dir = mkdtempSync(path.join(tmpdir(), 'lgw-crash-loop-'));
    closers.push(() => rmSync(dir, { recursive: true, force: true }));

    const child = spawn(process.execPath, [CHILD, dir, url, BOT.login], { env: { ...process.env, LGW_CRASH_CHILD_KEY: BOT.key }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    closers.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    await waitFor(() => out.includes('"ready":true') || child.exitCode !== null, 30_000);
    const ready = JSON.parse(out.split('\n').find((l) => l.includes('"ready":true'))!) as { port: number };

    const client = await MllpClient.connect({ host: '127.0.0.1', port: ready.port });
    const ack = (await client.send(Buffer.from(lisOrm('CRASH-1', 'CR-100', ['GLU']), 'latin1'))).toString('latin1');
    await client.close();
    expect(ack).toMatch(/MSA\|AA\|CRASH-1/);
    await waitFor(() => emu.faults.log.some((f) => f.request.model === 'sale.order' && f.action === 'timeout'), 30_000);

    // The bug: an uncaught exception while the order's request is out.
    child.kill('SIGUSR2');
    const code = await exited;
    expect(code, 'stopped as an error, for the supervisor to restart').toBe(1);
    expect(err).toContain("uncaught exception");

    // The next start (the store as the gateway opens it) counts the unfinished delivery.
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
    closers.push(() => store.close());
    const [order] = (await store.listEvents({ type: 'order.created' })).filter((e) => e.event.correlationId.endsWith('CR-100'));
    expect(order, 'the order event').toBeDefined();
    expect(order).toMatchObject({ state: 'retrying', ambiguous: true, crashes: 1 });
    expect(order?.lastError).toContain(`1 of ${CRASHED_DELIVERY_LIMIT}`);
    expect(order?.lastError).toContain("reading 'lot_id'");
  }, 90_000);
});
