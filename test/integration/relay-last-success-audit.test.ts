import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Gateway } from '../../gateway/src/gateway.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';
import { getJson, until } from '../fixtures/gateway-process.ts';
import { freePort } from '../fixtures/ports.ts';
import { BOT, startEmulator } from '../fixtures/relay/harness.ts';

/**
 * DESIGN.md §5: `odoo.lastSuccessAt` in GET /api/status (and the MQTT status) is when the gateway
 * last reached Odoo. Its sibling `lastMessageAt` survives a restart (status/README.md); this one
 * did not: a gateway restarted during an Odoo outage (an update, a power cut) showed "Last success:
 * never" on the page and the tray, though Odoo had taken its events an hour before. IT read it as
 * a gateway that had never been connected (wrong URL, wrong key) rather than an Odoo that is down.
 */

const KEY_ENV = 'LGW_LAST_SUCCESS_KEY';
process.env[KEY_ENV] = BOT.key;

type Status = { odoo: { state: string; lastSuccessAt: string | null } };

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
});

async function startGateway(dir: string, url: string): Promise<Gateway> {
  const gateway = new Gateway({
    config: testGatewayConfig('last-success', dir, {
      odoo: { url, database: 'lab', login: BOT.login, apiKeyEnv: KEY_ENV, timeoutMs: 2000 },
      relay: { enabled: true },
    }),
    log: silentLogger,
  });
  closers.push(() => gateway.stop(5_000));
  await gateway.start();
  return gateway;
}

describe('Odoo last success across a restart', () => {
  it('a gateway restarted while Odoo is down shows when it last reached Odoo, not "never"', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lgw-last-success-'));
    closers.push(() => rm(dir, { recursive: true, force: true }));
    // Odoo's port stays dead once it is down: not one a listen(0) of another test may be handed
    // meanwhile (the gateway would reach that listener, not see Odoo down).
    const { emu, url } = await startEmulator(17, {}, await freePort());
    let emuOpen = true;
    closers.push(async () => {
      if (emuOpen) await emu.close();
    });

    const startedAt = Date.now();
    const first = await startGateway(dir, url);
    const statusUrl = `${first.addresses().status.url}api/status`;
    const before = await until('Odoo reached', async () => {
      const s = await getJson<Status>(statusUrl);
      return s.odoo.state === 'connected' && s.odoo.lastSuccessAt ? s.odoo.lastSuccessAt : undefined;
    });
    await first.stop(5_000);
    const stoppedAt = Date.now();

    // Odoo goes down (maintenance); the gateway box is restarted meanwhile.
    await emu.close();
    emuOpen = false;
    const second = await startGateway(dir, url);
    const after = await until('Odoo seen down', async () => {
      const s = await getJson<Status>(`${second.addresses().status.url}api/status`);
      return s.odoo.state === 'unreachable' ? s : undefined;
    });
    // The first run's last success (kept at most a minute apart, and at stop): not "never".
    expect(after.odoo.lastSuccessAt).not.toBeNull();
    expect(Date.parse(after.odoo.lastSuccessAt!)).toBeGreaterThanOrEqual(startedAt);
    expect(Date.parse(after.odoo.lastSuccessAt!)).toBeLessThanOrEqual(stoppedAt);
    expect(Date.parse(before)).toBeLessThanOrEqual(stoppedAt);
  });
});
