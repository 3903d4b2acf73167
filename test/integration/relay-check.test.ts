import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkOdooConnection, createOdooClient, createRelay, dueDelayFor, SANDBOX_USERS } from '../../gateway/src/relay/index.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { startEmulator } from '../fixtures/relay/harness.ts';
import { inbound, odooConfig, orderCreated, relayConfig, tempDir, waitFor } from '../fixtures/relay/helpers.ts';
import type { OdooEmulator } from '../odoo-emulator/index.ts';

let emu: OdooEmulator;
let url: string;
let store: EventStore;
const tmp = tempDir('relay-check-');

beforeAll(async () => {
  ({ emu, url } = await startEmulator(19, { users: SANDBOX_USERS }));
  store = await EventStore.open({ dataDir: tmp.dir, pruneIntervalMs: 0 });
});
afterAll(async () => {
  await store.close();
  await emu.close();
  tmp.cleanup();
});

describe('sandbox client and connection check', () => {
  it('without odoo.url the client talks to the sandbox emulator and reports the sandbox state', async () => {
    const telemetry = new Telemetry();
    const states: string[] = [];
    telemetry.on('odoo.state', (s) => states.push(s.state));
    const client = createOdooClient(odooConfig({ url: undefined }), { telemetry, sandboxUrl: url });
    await client.connect();
    expect(client.state).toBe('sandbox');
    expect(client.protocol).toBe('json-2');
    expect(states.at(-1)).toBe('sandbox');
    client.close();
  });

  it('check passes on a good mapping and names the key of a bad one', async () => {
    const good = createOdooClient(odooConfig({ url: undefined }), { sandboxUrl: url });
    const ok = await checkOdooConnection(good, odooConfig(), store);
    good.close();
    expect(ok).toMatchObject({ ok: true, serverVersion: expect.stringMatching(/^19/), protocol: 'json-2' });
    const conf = odooConfig({ mapping: { labLocation: 'WH/Stock/Lab', consumptionLocation: 'Nowhere', consumptionPickingType: 'No Such Type', defaultVendorRef: 'VEND-NONE' } });
    const bad = createOdooClient(odooConfig({ url: undefined }), { sandboxUrl: url });
    const report = await checkOdooConnection(bad, conf, store);
    bad.close();
    expect(report.ok).toBe(false);
    expect(report.issues.map((i) => i.path).sort()).toEqual(['odoo.mapping.consumptionLocation', 'odoo.mapping.consumptionPickingType', 'odoo.mapping.defaultVendorRef']);
  });
});

describe('createRelay (composition-root helper)', () => {
  it('wires the sandbox client and the relay over a store; events reach the sandbox', async () => {
    const dir = tempDir('relay-create-');
    const config = relayConfig();
    const own = await EventStore.open({ dataDir: dir.dir, dueDelayMs: dueDelayFor(config), backoff: config.backoff, pruneIntervalMs: 0 });
    const telemetry = new Telemetry();
    const { relay, client } = createRelay({ odoo: odooConfig({ url: undefined }), relay: config, store: own, telemetry, log: silentLogger, sandboxUrl: url });
    try {
      await relay.start();
      await own.commit(inbound(), [orderCreated('CR1', 'CLINIC-A', ['GLU'])]);
      relay.notify();
      await waitFor(() => emu.count('sale.order', [['client_order_ref', '=', 'CR1']]) === 1);
      expect(client.state).toBe('sandbox');
    } finally {
      await relay.stop();
      await own.close();
      dir.cleanup();
    }
  });
});
