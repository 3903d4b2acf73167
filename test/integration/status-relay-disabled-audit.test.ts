/**
 * The status of a gateway whose sending to Odoo is turned off in its configuration
 * (`relay.enabled: false`, e.g. while IT checks the analyzers' mappings against the site's Odoo
 * before letting anything be posted). A whole gateway in this process, the Odoo emulator as the
 * site's Odoo, the status read over real HTTP.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Gateway } from '../../gateway/src/gateway.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';
import { getJson } from '../fixtures/gateway-process.ts';
import { BOT, startEmulator } from '../fixtures/relay/harness.ts';

const KEY_ENV = 'LGW_RELAY_DISABLED_KEY';
process.env[KEY_ENV] = BOT.key;

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
});

describe('Odoo link state with sending turned off', () => {
  // What IT saw: sending to Odoo turned off in the configuration, the status page (and
  // /api/status, the MQTT status, `lab-gateway status`) said the Odoo link was "connecting", for
  // days, as if the gateway kept trying and failing to reach Odoo; IT went looking for a network
  // or firewall problem. The gateway never tries: the relay is not started.
  // Promise broken: status/README.md (the model shows the Odoo link's state; `disabled` is one of
  // them, telemetry.ts OdooLinkState, and ends any Odoo problem); DESIGN.md §5 `odoo.state`.
  // Cause: gateway.ts started the relay only when enabled (the relay says `disabled` at its start)
  // and before the status model subscribed to telemetry, so the model kept its initial
  // `connecting`.
  it('the status says the Odoo link is disabled, not connecting', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lgw-relay-disabled-'));
    closers.push(() => rm(dir, { recursive: true, force: true }));
    const { emu, url } = await startEmulator(17);
    closers.push(() => emu.close());
    const gateway = new Gateway({
      config: testGatewayConfig('relay-off', dir, {
        odoo: { url, database: emu.database, login: BOT.login, apiKeyEnv: KEY_ENV },
        relay: { enabled: false },
      }),
      log: silentLogger,
    });
    closers.push(() => gateway.stop(5_000));
    const addresses = await gateway.start();

    const status = await getJson<{ odoo: { state: string }; health: string }>(`${addresses.status.url}api/status`);
    expect(status.odoo.state).toBe('disabled');
    expect(status.health).toBe('ok');
    expect(emu.calls.length, 'nothing was sent to Odoo').toBe(0);
  });
});
