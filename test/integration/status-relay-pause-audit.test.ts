import { afterEach, describe, expect, it } from 'vitest';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Gateway } from '../../gateway/src/gateway.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusServer } from '../../gateway/src/status/http-server.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';
import { makeConfig, relayStandIn, requestJson, tempDir, writeAdminToken } from '../fixtures/status/harness.ts';

/**
 * A pause of sending to Odoo, read by the IT person who finds it days later: the status says who
 * paused it, since when and why, also after a restart. Real LevelDB in a temp dir, the real status
 * server over HTTP, the real audit log.
 */
const TOKEN = 'relay-pause-token-9d1f';
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * A whole gateway (status API on a free port, an admin token) paused by the operator with
 * `reason`; `start` starts another on the same data dir (the restart).
 */
async function pausedGateway(id: string, reason: string): Promise<{ start: () => Promise<Gateway>; first: Gateway }> {
  const t = tempDir(`status-relay-${id}-`);
  cleanups.push(t.cleanup);
  const config = testGatewayConfig(id, path.join(t.dir, 'data'), { status: { listen: { host: '127.0.0.1', port: 0 }, adminTokenFile: writeAdminToken(t.dir, TOKEN) } });
  const start = async (): Promise<Gateway> => {
    const g = new Gateway({ config, log: silentLogger });
    await g.start();
    return g;
  };
  const first = await start();
  const paused = await requestJson(`${first.statusServer!.url()}/api/relay/pause`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ reason }),
  });
  expect(paused.status).toBe(200);
  return { start, first };
}

describe('a paused relay says who paused it, when and why', () => {
  it('RELAY_PAUSED and /api/status name the pause\'s author, time and reason, across a restart, and forget them at the resume', async () => {
    // What IT saw on Monday: "Sending to Odoo is paused by an administrator", nothing more. Finance
    // had paused it on Friday for the month-end close with the reason "month-end close: resume
    // after the accountant's sign-off"; the reason was in the audit trail only (admin token
    // needed), so IT either resumed it into the closing period or left a weekend's results
    // waiting while asking around.
    const t = tempDir('status-relay-pause-');
    cleanups.push(t.cleanup);
    const dataDir = path.join(t.dir, 'data');
    mkdirSync(dataDir, { recursive: true });
    const config = makeConfig(dataDir, { status: { adminTokenFile: writeAdminToken(t.dir, TOKEN) } });
    const store = await EventStore.open({ dataDir, pruneIntervalMs: 0 });
    cleanups.push(() => store.close());
    const relay = relayStandIn();
    const serve = async (): Promise<StatusServer> => {
      const s = new StatusServer({ config, store, telemetry: new Telemetry(), log: silentLogger, version: 't', startedAt: new Date().toISOString(), relayControl: relay, processMetrics: false });
      await s.start();
      return s;
    };
    const post = (s: StatusServer, p: string, reason: string) =>
      requestJson(`${s.url()}${p}`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ reason }) });
    const pausedReason = async (s: StatusServer) => {
      const { json } = await requestJson(`${s.url()}/api/status`);
      return { reason: (json.healthReasons as Array<{ code: string; message: string }>).find((r) => r.code === 'RELAY_PAUSED'), pause: json.relayPause, paused: json.relayPaused };
    };

    const first = await serve();
    const reason = "month-end close: resume after the accountant's sign-off";
    expect((await post(first, '/api/relay/pause', reason)).status).toBe(200);
    const shown = await pausedReason(first);
    expect(shown.paused).toBe(true);
    expect(shown.pause).toMatchObject({ by: expect.stringMatching(/^token:[0-9a-f]{12}@127\.0\.0\.1$/), reason });
    expect(Number.isNaN(Date.parse(shown.pause.since))).toBe(false);
    expect(shown.reason?.message).toContain(reason);
    // Since when, in the gateway's local time (status-local-times-audit); the ISO stamp stays in relayPause.since.
    expect(shown.reason?.message).toMatch(/ since (\d{1,2} [A-Z][a-z]{2} )?\d{2}:\d{2} \(UTC[+-]\d{2}:\d{2}\)/);
    await first.stop();

    // The gateway restarted over the weekend (an update): the pause holds, and so does its story.
    const second = await serve();
    cleanups.push(() => second.stop());
    const after = await pausedReason(second);
    expect(after.pause).toEqual(shown.pause);
    expect(after.reason?.message).toBe(shown.reason?.message);

    expect((await post(second, '/api/relay/resume', 'sign-off received')).status).toBe(200);
    const resumed = await pausedReason(second);
    expect(resumed.reason).toBeUndefined();
    expect(resumed.pause).toBeNull();
  });

  it('a whole gateway restarted while paused shows the pause with its reason (the relay holds it, the status tells it)', async () => {
    const { start, first } = await pausedGateway('pause-gw', 'Odoo 17 to 18 migration');
    await first.stop(5_000);
    const second = await start();
    cleanups.push(() => second.stop(5_000));
    const { json } = await requestJson(`${second.statusServer!.url()}/api/status`);
    expect(json.relayPaused).toBe(true);
    expect(json.relayPause?.reason).toBe('Odoo 17 to 18 migration');
    expect((json.healthReasons as Array<{ code: string; message: string }>).find((r) => r.code === 'RELAY_PAUSED')?.message).toContain('Odoo 17 to 18 migration');
  });

  it('the pause keeps who and why itself: a restart after its audit entry rotated out still names them', async () => {
    // Read back from the audit trail only, a pause of a quarter-end close outlived its entry (the
    // trail rotates; a technician may remove it): the status went back to "paused by an
    // administrator" with nobody to ask. The relay keeps them with the pause (relay/paused.ts).
    const { start, first } = await pausedGateway('pause-rotated', 'quarter-end close');
    const before = (await requestJson(`${first.statusServer!.url()}/api/status`)).json.relayPause;
    const audit = first.statusServer!.auditLog;
    await first.stop(5_000);
    rmSync(audit.file, { force: true });
    rmSync(audit.previousFile, { force: true });

    const second = await start();
    cleanups.push(() => second.stop(5_000));
    const { json } = await requestJson(`${second.statusServer!.url()}/api/status`);
    expect(json.relayPaused).toBe(true);
    expect(json.relayPause).toEqual(before);
    expect(json.relayPause).toMatchObject({ by: expect.stringMatching(/^token:[0-9a-f]{12}@127\.0\.0\.1$/), reason: 'quarter-end close' });
    expect((json.healthReasons as Array<{ code: string; message: string }>).find((r) => r.code === 'RELAY_PAUSED')?.message).toContain('quarter-end close');
  });
});
