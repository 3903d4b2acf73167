import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusServer } from '../../gateway/src/status/http-server.ts';
import { StatusModel, type StatusAlert } from '../../gateway/src/status/status-model.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { cliSource, runCli } from '../fixtures/cli.ts';
import { makeConfig, openStore } from '../fixtures/status/harness.ts';
import { makeRig, startEmulator, type Rig } from '../fixtures/relay/harness.ts';
import { orderCreated } from '../fixtures/relay/helpers.ts';

/**
 * Review of 0eaf7d7 (sale orders searched by client_order_ref OR origin; the external-id look-up
 * skipped for an accession with no earlier delivered order.created), 1643e89 (status and alerts)
 * and aaa8036 (remote CLI). Each test here failed when written.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('sale order found again by its external id when the store holds no earlier order.created', () => {
  it('an order created by a previous installation (another data dir), Customer Reference and Source Document edited, is not created again on a resend', async () => {
    const shared = await startEmulator(17);
    cleanups.push(() => shared.emu.close());
    // The first installation delivers the order.
    const first: Rig = await makeRig(17, { emu: shared });
    await first.commit([orderCreated('R3-100', 'CLINIC-A', ['GLU', 'TSH'])]);
    await first.waitDrained();
    await first.close();
    const [so] = shared.emu.records('sale.order', [['client_order_ref', '=', 'R3-100']]) as Array<{ id: number }>;
    expect(so).toBeDefined();
    // Sales staff type the clinic's PO and its own source document (both plain editable fields).
    shared.emu.call('sale.order', 'write', [[so!.id], { client_order_ref: 'PO-4712', origin: 'Phone order, Dr. Weber' }]);
    // The gateway is reinstalled with a new data dir (or retention pruned the history); the LIS
    // resends the order.
    const second: Rig = await makeRig(17, { emu: shared });
    cleanups.push(() => second.close());
    await second.commit([orderCreated('R3-100', 'CLINIC-A', ['GLU', 'TSH'])]);
    await second.waitDrained();
    const orders = shared.emu.count('sale.order', []);
    const lines = shared.emu.records('sale.order.line', [['order_id', '=', so!.id]], { fields: ['product_id'] });
    // Before 0eaf7d7 the miss was looked up by lab_gateway.so_R3-100 and nothing was loaded.
    expect(lines, 'one line per ordered test on the existing order').toHaveLength(2);
    expect(orders, 'no second sale order').toBe(1);
  });
});

describe('remote CLI (aaa8036)', () => {
  it('status --config works when the config takes the Odoo key from an environment variable the operator shell does not have', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'sr3-cli-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const dataDir = path.join(root, 'data');
    mkdirSync(dataDir, { recursive: true });
    // The gateway's status API, on the port the config names: one listen(0) gave, not 8484 (the
    // default), which a gateway running on the machine holds; any port shows the CLI refusing the config.
    const store = await openStore(dataDir);
    cleanups.push(() => store.close());
    const server = new StatusServer({ config: makeConfig(dataDir), store, telemetry: new Telemetry(), log: silentLogger, version: '0.0.0-test', startedAt: new Date().toISOString(), processMetrics: false });
    await server.start();
    cleanups.push(() => server.stop());
    const port = Number(new URL(server.url()).port);
    // The gateway runs under systemd with Environment=ODOO_API_KEY=…; the config names the variable.
    const cfg = path.join(root, 'gateway.yaml');
    writeFileSync(
      cfg,
      [
        'gateway: { id: lab-test, dataDir: ' + JSON.stringify(dataDir) + ' }',
        'odoo: { url: "http://127.0.0.1:9", database: lab, login: gateway, apiKeyEnv: SR3_ODOO_API_KEY }',
        `status: { listen: { host: 127.0.0.1, port: ${port} } }`,
        '',
      ].join('\n'),
    );
    const env = { SR3_ODOO_API_KEY: '' };
    const r = await runCli(cliSource, ['status', '--config', cfg], env);
    // Found: exit 1, "configuration … is invalid: odoo.apiKeyEnv: environment variable … is not set"
    // — the CLI needs status.listen only, and asked that gateway before aaa8036.
    expect(r.err).not.toMatch(/invalid/);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/lab-test/);
  });
});

describe('ENDPOINT_DOWN for a TCP listener (1643e89)', () => {
  it('a LIS that opens one MLLP connection per message is not reported down after a quiet hour', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'sr3-ep-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const store = await openStore(root);
    cleanups.push(() => store.close());
    const telemetry = new Telemetry();
    let now = Date.now();
    const model = new StatusModel({
      config: makeConfig(root),
      store,
      telemetry,
      version: '0.0.0-test',
      startedAt: new Date(now).toISOString(),
      now: () => now,
      readDisk: async () => ({ freeBytes: 50 * 2 ** 30, totalBytes: 100 * 2 ** 30 }),
      pollIntervalMs: 3_600_000,
      diskIntervalMs: 3_600_000,
    });
    const alerts: StatusAlert[] = [];
    model.onAlert((a) => alerts.push(a));
    await model.start();
    cleanups.push(() => model.stop());
    // The LIS link as the MLLP listener reports it: listening; a connection per order message,
    // closed once the ACK is read (a common LIS client); the evening's last order at 19:00.
    telemetry.emit('endpoint.state', { endpoint: 'lis', kind: 'hl7', state: 'listening', connections: 0 });
    telemetry.emit('endpoint.state', { endpoint: 'lis', kind: 'hl7', state: 'listening', connections: 1 });
    telemetry.emit('endpoint.state', { endpoint: 'lis', kind: 'hl7', state: 'listening', connections: 0 });
    // No order for an hour (evening, night, weekend): the link is fine, it has nothing to send.
    now += 61 * 60_000;
    model.poll();
    // Found: health degraded "LIS link lis disconnected for 61 min" and an ENDPOINT_DOWN alert —
    // every quiet hour, then ENDPOINT_DOWN_CLEARED at the next order.
    expect(model.health().reasons.filter((r) => r.code === 'ENDPOINT_DOWN')).toEqual([]);
    expect(alerts.filter((a) => a.code === 'ENDPOINT_DOWN')).toEqual([]);
  });
});
