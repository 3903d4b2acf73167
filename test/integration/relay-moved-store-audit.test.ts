import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { Gateway } from '../../gateway/src/gateway.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { thisMachine } from '../../gateway/src/relay/machine-guard.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';
import { requestJson, tempDir, writeAdminToken } from '../fixtures/status/harness.ts';

/**
 * A backup of the gateway's store restored onto a new box while the old box still runs: both
 * send the same queue, both look each accession up in Odoo before the other wrote it, and both
 * create it: every order and invoice line twice, no dead letter to tell anyone (relay README,
 * "Two gateways with one queue"). Now the store names the machine it last sent from; a store
 * that comes from another machine starts with sending paused, said why in RELAY_PAUSED, until an
 * administrator resumes. Real LevelDB, the whole gateway with its sandbox Odoo, the status API.
 */
const TOKEN = 'moved-store-token-51c0';
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('a store restored on another machine', () => {
  it('starts with sending to Odoo paused by the gateway, says why, and sends again once resumed', async () => {
    expect(thisMachine(), 'this machine has a machine id (/etc/machine-id)').toBeDefined();
    const t = tempDir('relay-moved-store-');
    cleanups.push(t.cleanup);
    const dataDir = path.join(t.dir, 'data');
    const config = testGatewayConfig('moved', dataDir, { relay: { enabled: true }, status: { listen: { host: '127.0.0.1', port: 0 }, adminTokenFile: writeAdminToken(t.dir, TOKEN) } });
    const start = async (): Promise<Gateway> => {
      const g = new Gateway({ config, log: silentLogger });
      await g.start();
      cleanups.push(() => g.stop(5_000));
      return g;
    };
    const status = async (g: Gateway): Promise<{ paused: boolean; reason?: string }> => {
      const { json } = await requestJson(`${g.statusServer!.url()}/api/status`);
      return { paused: json.relayPaused === true, reason: (json.healthReasons as Array<{ code: string; message: string }>).find((r) => r.code === 'RELAY_PAUSED')?.message };
    };

    // Made here: a restart on the same machine sends at once.
    const first = await start();
    expect(await status(first)).toEqual({ paused: false });
    await first.stop(5_000);
    const again = await start();
    expect(await status(again)).toEqual({ paused: false });
    await again.stop(5_000);

    // The store as a restored backup of another box holds it: that box last sent from it.
    const store = await EventStore.open({ dataDir, pruneIntervalMs: 0 });
    await store.putDoc('relay', 'machine', { machineId: 'f'.repeat(32), host: 'lab-box-old', since: '2026-11-01T08:00:00.000Z' });
    await store.close();

    const moved = await start();
    const shown = await status(moved);
    expect(shown.paused).toBe(true);
    expect(shown.reason).toMatch(/^Sending to Odoo is paused by the gateway since .*: "this store last sent to Odoo from another machine \(lab-box-old, id ffffffff…\): a restored backup or a copied disk\. If that box still runs, Odoo gets every order and invoice line twice\. Stop it, then resume here"$/);

    // The administrator stopped the old box and resumes: sending again, and a restart keeps sending.
    const resumed = await requestJson(`${moved.statusServer!.url()}/api/relay/resume`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ reason: 'old box switched off' }) });
    expect(resumed.status).toBe(200);
    expect((await status(moved)).paused).toBe(false);
    await moved.stop(5_000);
    const later = await start();
    expect(await status(later)).toEqual({ paused: false });
  });
});
