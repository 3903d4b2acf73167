import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { runStatus } from '../../gateway/src/cli/remote.ts';
import { StatusServer } from '../../gateway/src/status/http-server.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { hl7Message, leaveOpenLeases, makeConfig, numberedValidatedEvent, requestJson, tempDir, waitFor } from '../fixtures/status/harness.ts';

/**
 * `lab-gateway status` after a power cut. Since dc0c165 the status page (and the tray's window)
 * says which deliveries wait for the settle time after the restart, until when and why
 * (`settleHold` of /api/status); the CLI, which IT runs over SSH on a box with no browser, read
 * only "retrying 3" for those three minutes with Odoo answering, and IT restarted the gateway
 * again or had the LIS send the orders again. Now it prints the gateway's words on a line of its
 * own while deliveries are held, and nothing of the kind otherwise (a store the release before
 * left, no `meta!settleHold`, and no lease open).
 *
 * The real store in a temp dir left with open leases as a power cut leaves it, the real status
 * server on it, runStatus against its URL. Settle time 12 s here (180 s in production).
 */
const SETTLE_MS = 12_000;

const event = numberedValidatedEvent;

describe('lab-gateway status: deliveries held after a restart', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function startGateway(dataDir: string, tmp: string): Promise<{ store: EventStore; server: StatusServer }> {
    const store = await EventStore.open({ dataDir, minFreeBytes: 1024 * 1024, pruneIntervalMs: 0, ambiguousSettleMs: SETTLE_MS });
    const config = makeConfig(path.join(tmp, 'data'), { id: 'lab-settle-cli' });
    const server = new StatusServer({ config, store, telemetry: new Telemetry(), log: silentLogger, version: '0.1.0', startedAt: new Date().toISOString(), processMetrics: false });
    await server.start();
    cleanups.push(async () => {
      await server.stop();
      await store.close();
    });
    return { store, server };
  }

  async function cli(url: string): Promise<{ code: number; lines: string[] }> {
    const lines: string[] = [];
    const code = await runStatus(['--url', url], { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) });
    return { code, lines };
  }

  it('prints how many wait, until when and why, under the queue line', async () => {
    const tmp = tempDir('review-s23d-settle-cli-');
    cleanups.push(tmp.cleanup);
    const dataDir = path.join(tmp.dir, 'data');
    expect(await leaveOpenLeases(dataDir, 'ACC-C1', 'ACC-C2')).toBe(3); // the power goes: the leases stay open

    const gw = await startGateway(dataDir, tmp.dir);
    const hold = await waitFor(async () => ((await requestJson(`${gw.server.url()}/api/status`)).json as { settleHold?: { message: string } }).settleHold, 'the hold in /api/status', 5_000);
    const { code, lines } = await cli(gw.server.url());
    expect(code).toBe(0);
    const queue = lines.findIndex((l) => l.startsWith('queue '));
    expect(lines[queue], 'the counts as before').toMatch(/retrying 3,/);
    expect(lines[queue + 1], 'the hold in the gateway\'s words, under the counts').toBe(`held     ${hold.message}`);
    expect(hold.message).toMatch(/^3 deliveries wait until \d\d:\d\d:\d\d \(UTC[+-]\d\d:\d\d\) /);
  }, 30_000);

  it('prints no such line when nothing is held (a store without the settle-hold record)', async () => {
    const tmp = tempDir('review-s23d-settle-cli-none-');
    cleanups.push(tmp.cleanup);
    const dataDir = path.join(tmp.dir, 'data');
    const before = await EventStore.open({ dataDir, minFreeBytes: 1024 * 1024, pruneIntervalMs: 0 });
    await before.commit(hl7Message(undefined, 'N1'), [event('ACC-N1', 1)]);
    await before.close();
    const gw = await startGateway(dataDir, tmp.dir);
    await waitFor(async () => (((await requestJson(`${gw.server.url()}/api/status`)).json as { queue: { pending: number } }).queue.pending === 1 ? true : undefined), 'the pending event', 5_000);
    const { code, lines } = await cli(gw.server.url());
    expect(code).toBe(0);
    expect(lines.some((l) => l.startsWith('held '))).toBe(false);
  }, 30_000);
});
