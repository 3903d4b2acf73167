/**
 * The sandbox as the gateway wires it (gateway/src/sandbox.ts: an emulator with an integration
 * user, and its client) and the Odoo connection check behind `lab-gateway check --odoo`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkOdooConnection, dueDelayFor, Relay } from '../../gateway/src/relay/index.ts';
import { Sandbox } from '../../gateway/src/sandbox.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { inbound, odooConfig, orderCreated, relayConfig, tempDir, waitFor } from '../fixtures/relay/helpers.ts';

const config = odooConfig({ url: undefined, sandboxVersion: 19 });
let sandbox: Sandbox;
let store: EventStore;
const tmp = tempDir('relay-check-');

beforeAll(async () => {
  sandbox = new Sandbox(tmp.dir, config);
  await sandbox.start();
  store = await EventStore.open({ dataDir: tmp.dir, pruneIntervalMs: 0 });
});
afterAll(async () => {
  await store.close();
  await sandbox.close();
  tmp.cleanup();
});

describe('sandbox client and connection check', () => {
  it('without odoo.url the client talks to the sandbox emulator and reports the sandbox state', async () => {
    const telemetry = new Telemetry();
    const states: string[] = [];
    telemetry.on('odoo.state', (s) => states.push(s.state));
    const client = sandbox.client(config, { telemetry });
    await client.connect();
    expect(client.state).toBe('sandbox');
    expect(client.protocol).toBe('json-2');
    expect(states.at(-1)).toBe('sandbox');
    client.close();
  });

  it('check passes on a good mapping and names the key of a bad one', async () => {
    const good = sandbox.client(config);
    const ok = await checkOdooConnection(good, config, store);
    good.close();
    expect(ok).toMatchObject({ ok: true, serverVersion: expect.stringMatching(/^19/), protocol: 'json-2' });
    const conf = odooConfig({ url: undefined, sandboxVersion: 19, mapping: { labLocation: 'WH/Stock/Lab', consumptionLocation: 'Nowhere', consumptionPickingType: 'No Such Type', defaultVendorRef: 'VEND-NONE' } });
    const bad = sandbox.client(conf);
    const report = await checkOdooConnection(bad, conf, store);
    bad.close();
    expect(report.ok).toBe(false);
    expect(report.issues.map((i) => i.path).sort()).toEqual(['odoo.mapping.consumptionLocation', 'odoo.mapping.consumptionPickingType', 'odoo.mapping.defaultVendorRef']);
  });

  it('check names a profile whose consumption unit Odoo does not know or cannot convert (every run would be dead-lettered)', async () => {
    const client = sandbox.client(config);
    const report = await checkOdooConnection(client, config, store, [
      { profile: 'good', rows: [{ productCode: 'DIL-CBC', uom: 'mL' }] },
      { profile: 'bad-unit', rows: [{ productCode: 'DIL-CBC', uom: 'furlong' }] },
      { profile: 'bad-category', rows: [{ productCode: 'DIL-CBC', uom: 'kg' }] },
    ]);
    client.close();
    expect(report.ok).toBe(false);
    const paths = report.issues.filter((i) => i.severity === 'error').map((i) => i.path);
    expect(paths).toContain('profiles.bad-unit.consumption');
    expect(paths).toContain('profiles.bad-category.consumption');
    expect(paths).not.toContain('profiles.good.consumption');
    expect(report.issues.find((i) => i.path === 'profiles.bad-unit.consumption')?.message).toMatch(/furlong/);
  });

  it('the relay over the sandbox client delivers events into the sandbox, as the gateway wires it', async () => {
    const dir = tempDir('relay-create-');
    const relayCfg = relayConfig();
    const own = await EventStore.open({ dataDir: dir.dir, dueDelayMs: dueDelayFor(relayCfg), backoff: relayCfg.backoff, pruneIntervalMs: 0 });
    const client = sandbox.client(config);
    const relay = new Relay({ store: own, odoo: client, config: relayCfg, odooConfig: config, telemetry: new Telemetry(), log: silentLogger });
    try {
      await relay.start();
      await own.commit(inbound(), [orderCreated('CR1', 'CLINIC-A', ['GLU'])]);
      relay.notify();
      await waitFor(() => sandbox.emulator.count('sale.order', [['client_order_ref', '=', 'CR1']]) === 1);
      expect(client.state).toBe('sandbox');
    } finally {
      await relay.stop();
      await own.close();
      dir.cleanup();
    }
  });
});
