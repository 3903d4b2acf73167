/**
 * HL7 sent without MLLP framing, resent across a restart of the gateway
 * (gateway/src/ingress/mllp/README.md "HL7 without MLLP framing").
 *
 * What the user saw: plain HL7 (no VT, no FS CR) is kept once as a rejected message (`unframed`)
 * and the same bytes resent on a new connection are not kept again. But what had been kept was
 * remembered in memory only: after a restart (an upgrade, a reboot, the service restarted by its
 * watchdog) the LIS's next resend of its stuck message was kept again, and again after each
 * restart: copies of one message in the rejected list, which the operator must tell apart.
 *
 * Now the kept message carries a dedup key made of the endpoint and the bytes' SHA-256: the
 * store's own duplicate detection finds a resend whatever happened in between, and counts it on
 * the kept message (its duplicates) instead of keeping a copy.
 *
 * Real TCP, a real LevelDB store in a temp dir closed and opened again between the two endpoints,
 * as a restart does. No timed assertion: the tests wait for the socket's 'close' and the store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MllpEndpoint } from '../../gateway/src/ingress/mllp/mllp-endpoint.ts';
import { createLogger } from '../../gateway/src/log.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { endpointConfig } from '../fixtures/hl7/helpers.ts';
import { oru } from '../fixtures/hl7/link-rig.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Running {
  store: EventStore;
  endpoint: MllpEndpoint;
  logs: Array<Record<string, unknown>>;
  outcomes: string[];
  stop: () => Promise<void>;
}

/** A gateway's store and HL7 endpoint `id` on `dir`, as one start of the gateway opens them. */
async function start(dir: string, id = 'lis'): Promise<Running> {
  const store = await EventStore.open({ dataDir: dir, healthCheckIntervalMs: 50, pruneIntervalMs: 0 });
  const logs: Array<Record<string, unknown>> = [];
  const outcomes: string[] = [];
  const telemetry = new Telemetry();
  telemetry.on('intake.message', (m) => outcomes.push(m.outcome));
  const endpoint = new MllpEndpoint({ config: endpointConfig({ id }), store, telemetry, log: createLogger({ level: 'info', write: (line) => logs.push(JSON.parse(line) as Record<string, unknown>) }) });
  await endpoint.start();
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await endpoint.stop(2_000);
    await store.close();
  };
  cleanups.push(stop);
  return { store, endpoint, logs, outcomes, stop };
}

/** A LIS that sends `bytes` without framing and waits until the gateway closes the connection. */
async function sendPlain(running: Running, bytes: Buffer): Promise<{ received: number }> {
  const socket = net.connect({ host: '127.0.0.1', port: running.endpoint.address()?.port ?? 0 });
  let received = 0;
  socket.on('data', (c: Buffer) => (received += c.length));
  socket.on('error', () => {});
  socket.on('end', () => socket.end());
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(bytes);
  await closed;
  return { received };
}

/** Every message the store keeps from the endpoint, oldest first, with its raw bytes. */
async function kept(running: Running, endpoint = 'lis'): Promise<Array<{ status: string; rejectReason?: string; duplicates: number; raw: string }>> {
  const list = (await running.store.listMessages({ endpoint, limit: 1000 })).reverse();
  const out = [];
  for (const m of list) {
    const got = await running.store.getMessage(m.id);
    out.push({ status: m.status, ...(m.rejectReason ? { rejectReason: m.rejectReason } : {}), duplicates: got?.message.duplicates ?? 0, raw: got?.raw.toString('latin1') ?? '' });
  }
  return out;
}

describe('MLLP: HL7 without framing resent across a restart', () => {
  it('the same plain HL7 resent after a restart is not kept again: counted as a resend of the message kept before', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-gw-unframed-restart-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const message = oru('RESTART-1');

    const before = await start(dir);
    expect((await sendPlain(before, Buffer.from(message, 'latin1'))).received).toBe(0);
    await expect.poll(() => kept(before).then((k) => k.length), { timeout: 10_000 }).toBe(1);
    await before.stop();

    // The gateway restarted; the LIS, stuck on its message, resends it on a new connection.
    const after = await start(dir);
    expect((await sendPlain(after, Buffer.from(message, 'latin1'))).received, 'still no answer').toBe(0);
    // Warned and closed as the first time: the LIS must still be set to MLLP framing.
    expect(after.logs.some((l) => l.level === 'warn' && String(l.msg).includes('without MLLP framing'))).toBe(true);
    await expect.poll(() => after.logs.some((l) => String(l.msg).includes('same bytes')), { timeout: 10_000 }).toBe(true);
    const list = await kept(after);
    expect(list.map((k) => [k.status, k.raw]), 'kept once, not once per restart').toEqual([['rejected', message]]);
    expect(list[0]?.rejectReason).toMatch(/unframed/);
    expect(list[0]?.duplicates, 'the resend is counted on the message kept').toBe(1);
    expect(after.outcomes).toEqual(['duplicate']);
    expect(after.store.intake()).toMatchObject({ rejected: 1, duplicates: 1 });

    // Another message, and the same bytes at another endpoint, are kept as before.
    const other = oru('RESTART-2');
    await sendPlain(after, Buffer.from(other, 'latin1'));
    await expect.poll(() => kept(after).then((k) => k.map((m) => m.raw)), { timeout: 10_000 }).toEqual([message, other]);
    expect(after.outcomes).toEqual(['duplicate', 'rejected']);
  });

  it('the same bytes at another endpoint of the same store are kept there: the key is the endpoint\'s', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lab-gw-unframed-restart-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const message = oru('TWO-LINKS-1');
    const first = await start(dir, 'lis');
    await sendPlain(first, Buffer.from(message, 'latin1'));
    await expect.poll(() => kept(first, 'lis').then((k) => k.length), { timeout: 10_000 }).toBe(1);
    await first.stop();
    const second = await start(dir, 'lis-2');
    await sendPlain(second, Buffer.from(message, 'latin1'));
    await expect.poll(() => kept(second, 'lis-2').then((k) => k.map((m) => [m.status, m.raw])), { timeout: 10_000 }).toEqual([['rejected', message]]);
    expect(second.outcomes).toEqual(['rejected']);
  });
});
