import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusServer } from '../../gateway/src/status/http-server.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { hl7Message, makeConfig, requestJson, tempDir, validatedEvent, waitFor } from '../fixtures/status/harness.ts';

/**
 * A write to the data disk that never returns (a dying disk or controller, a hung network mount):
 * the store answers nothing more, the LIS's messages wait unanswered, and the LIS times out. Before,
 * the health stayed OK: nothing failed, so nothing said so, and the tray stayed green while no
 * result got in. Now a batch not through its writes for `writeStallMs` (15 s in the gateway) raises
 * STORE_STALLED (down) with how long; it clears once the write returns.
 */
describe('a write to the data disk that does not return', () => {
  const tmp = tempDir('status-store-stalled-');
  let store: EventStore | undefined;
  let server: StatusServer | undefined;
  afterEach(async () => {
    await server?.stop();
    await store?.close();
    tmp.cleanup();
    server = undefined;
    store = undefined;
  });

  it('turns health down with STORE_STALLED while it hangs, and clears once it returns', async () => {
    const config = makeConfig(path.join(tmp.dir, 'data'));
    store = await EventStore.open({ dataDir: config.gateway.dataDir, minFreeBytes: 1024 * 1024, pruneIntervalMs: 0, writeStallMs: 300 });
    server = new StatusServer({ config, store, telemetry: new Telemetry(), log: silentLogger, version: 't', startedAt: new Date().toISOString(), processMetrics: false });
    await server.start();
    const url = server.url();
    interface Reason { code: string; level: string; message: string }
    const status = async (): Promise<{ health: string; reasons: Reason[] }> => {
      const r = await requestJson(`${url}/api/status`);
      return { health: r.json.health as string, reasons: r.json.healthReasons as Reason[] };
    };
    // A healthy store: committed, nothing said.
    await store.commit(hl7Message(undefined, 'ST-1'), [validatedEvent('ACC-ST-1')]);
    expect((await status()).reasons.map((r) => r.code)).not.toContain('STORE_STALLED');
    // LevelDB's write hangs (held here until released).
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    store.interceptLevelWrites(() => held);
    const pending = store.commit(hl7Message(undefined, 'ST-2'), [validatedEvent('ACC-ST-2')]).catch(() => undefined);
    const stalled = await waitFor(async () => (await status()).reasons.find((r) => r.code === 'STORE_STALLED'), 'STORE_STALLED raised', 10_000);
    expect(stalled.level).toBe('down');
    expect(stalled.message).toMatch(/^Not answering messages: a write to the data disk has not returned for less than 1 min/);
    expect((await status()).health).toBe('down');
    // The write returns: the reason goes.
    store.interceptLevelWrites(undefined);
    release();
    await pending;
    await waitFor(async () => ((await status()).reasons.some((r) => r.code === 'STORE_STALLED') ? undefined : true), 'STORE_STALLED cleared', 10_000);
  });
});
