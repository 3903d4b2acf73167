/**
 * `lab-gateway reconcile`: what the LIS sent against what Odoo holds, for a period.
 *
 * What finance lacked: billing "triggered twice or never" was found at month-end (the LIS/Odoo
 * workflow article: periodic reconciliation). A sale order deleted in Odoo, a test's line reset by
 * hand, a draft invoice deleted, a line added back for a test the LIS cancelled, a test invoiced
 * twice: nothing in the gateway said so. The report reads the running gateway's store over its
 * status API and the configured Odoo (reads only), and names the accessions that differ.
 *
 * A real gateway in this process relays to the Odoo emulator over HTTP; Odoo is then changed
 * behind its back through the emulator's own calls; the real CLI (a child process) reports.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../gateway/src/config/load.ts';
import { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { sandboxFile } from '../../gateway/src/sandbox.ts';
import { cliSource, runCli } from '../fixtures/cli.ts';
import { lisOrm, lisOru } from '../fixtures/lis-rig.ts';
import { freePort, refusedPort } from '../fixtures/ports.ts';
import { BOT, startEmulator } from '../fixtures/relay/harness.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';
import type { OdooEmulator } from '../odoo-emulator/index.ts';

const KEY_ENV = 'LGW_RECONCILE_KEY';
process.env[KEY_ENV] = BOT.key;
const TOKEN = 'reconcile-admin-token-0123456789abcdef';

interface Report {
  since: string;
  checked: number;
  agree: number;
  differ: number;
  orders: Array<{ accession: string; differences: Array<{ kind: string; test?: string; explanation: string; action: string }> }>;
}

let emu: OdooEmulator;
let gateway: Gateway | undefined;
let client: MllpClient | undefined;
let base = '';
let configFile = '';
let odooUrl = '';
const dir = mkdtempSync(path.join(tmpdir(), 'lgw-reconcile-'));

function configYaml(statusPort: number, url: string): string {
  return [
    'gateway: { id: reconcile, dataDir: ' + JSON.stringify(path.join(dir, 'data')) + ' }',
    'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
    'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
    `status: { listen: { host: 127.0.0.1, port: ${statusPort} }, adminTokenFile: ${JSON.stringify(path.join(dir, 'admin.token'))} }`,
    `odoo: { url: ${JSON.stringify(url)}, database: lab, login: ${BOT.login}, apiKeyEnv: ${KEY_ENV}, timeoutMs: 3000 }`,
    'relay: { enabled: true, invoicing: true, syncModes: { invoice.eligible: realtime }, backoff: { initialMs: 20, maxMs: 100, multiplier: 2, jitter: 0 } }',
    '',
  ].join('\n');
}

async function send(text: string): Promise<void> {
  client ??= await MllpClient.connect({ host: '127.0.0.1', port: gateway!.addresses().hl7['lis']!.port });
  expect((await client.send(Buffer.from(text, 'latin1'))).toString('latin1')).toContain('MSA|AA|');
}

async function queue(): Promise<Record<string, number>> {
  return ((await (await fetch(`${base}/api/status`)).json()) as { queue: Record<string, number> }).queue;
}

function one(model: string, domain: unknown[]): Record<string, unknown> & { id: number } {
  const rows = emu.records(model, domain);
  expect(rows, `${model} ${JSON.stringify(domain)}`).toHaveLength(1);
  return rows[0] as Record<string, unknown> & { id: number };
}

function reconcile(extra: string[] = [], file = configFile): ReturnType<typeof runCli> {
  return runCli(cliSource, ['reconcile', '--config', file, ...extra]);
}

beforeAll(async () => {
  ({ emu, url: odooUrl } = await startEmulator(17));
  writeFileSync(path.join(dir, 'admin.token'), TOKEN + '\n');
  configFile = path.join(dir, 'gateway.yaml');
  writeFileSync(configFile, configYaml(await freePort(), odooUrl));
  const loaded = loadConfig(configFile);
  if (!loaded.config) throw new Error(JSON.stringify(loaded.issues));
  gateway = new Gateway({ config: loaded.config, log: silentLogger });
  await gateway.start();
  base = gateway.addresses().status.url.replace(/\/$/, '');
}, 60_000);

afterAll(async () => {
  await client?.close().catch(() => undefined);
  await gateway?.stop(5_000);
  await emu?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('lab-gateway reconcile', () => {
  it('says every order agrees when Odoo holds what the gateway sent (exit 0)', async () => {
    await send(lisOrm('RC-1', 'RC-100', ['GLU', 'HBA1C']));
    await send(lisOru('RC-2', 'RC-100', 'GLU'));
    for (const acc of ['RC-200', 'RC-300', 'RC-400', 'RC-600']) {
      await send(lisOrm(`${acc}-o`, acc, ['GLU']));
      if (acc !== 'RC-200') await send(lisOru(`${acc}-r`, acc, 'GLU'));
    }
    await send(lisOrm('RC-5', 'RC-500', ['GLU', 'HBA1C']));
    await send(lisOrm('RC-6', 'RC-500', ['HBA1C'], { control: 'CA' }));
    await waitFor(async () => {
      const q = await queue();
      const invoiced = ['RC-300', 'RC-400', 'RC-600'].every((acc) => emu.count('account.move', [['ref', '=', `lab-gateway ${acc}`]]) === 1);
      return invoiced && q['pending']! + q['inFlight']! + q['retrying']! === 0;
    }, 30_000);
    expect((await queue())['deadLettered']).toBe(0);
    for (const acc of ['RC-300', 'RC-400', 'RC-600']) expect(emu.count('account.move', [['ref', '=', `lab-gateway ${acc}`]]), acc).toBe(1);

    const r = await reconcile();
    // Only the config's own warning (plain http to the emulator).
    expect(r.err.replace(/^.*warning odoo\.url.*$\n?/gm, '')).toBe('');
    expect(r.out).toMatch(/6 orders checked, 6 in agreement, 0 with differences/);
    expect(r.code).toBe(0);
  }, 60_000);

  it('names exactly the accessions Odoo no longer agrees with, with why and what to do (exit 1)', async () => {
    // RC-200: its sale order deleted in Odoo.
    emu.call('sale.order', 'unlink', [[one('sale.order', [['client_order_ref', '=', 'RC-200']]).id]]);
    // RC-300: a second invoice line for its one test.
    const so300 = one('sale.order', [['client_order_ref', '=', 'RC-300']]);
    const line300 = one('sale.order.line', [['order_id', '=', so300.id]]);
    const inv300 = one('account.move', [['ref', '=', 'lab-gateway RC-300']]);
    emu.call('account.move', 'write', [[inv300.id], { invoice_line_ids: [[0, 0, { product_id: (line300['product_id'] as [number, string])[0] ?? line300['product_id'], quantity: 1, price_unit: 8.5, name: 'Glucose', sale_line_ids: [[6, 0, [line300.id]]] }]] }]);
    // RC-400: its validated test's line set back to nothing delivered.
    const so400 = one('sale.order', [['client_order_ref', '=', 'RC-400']]);
    emu.call('sale.order.line', 'write', [[one('sale.order.line', [['order_id', '=', so400.id]]).id], { qty_delivered: 0 }]);
    // RC-500: a line added back for HBA1C, which the LIS cancelled.
    const so500 = one('sale.order', [['client_order_ref', '=', 'RC-500']]);
    const hba1c = one('product.product', [['default_code', '=', 'HBA1C']]);
    emu.call('sale.order', 'write', [[so500.id], { order_line: [[0, 0, { product_id: hba1c.id, product_uom_qty: 1 }]] }]);
    // RC-600: its draft invoice deleted.
    emu.call('account.move', 'unlink', [[one('account.move', [['ref', '=', 'lab-gateway RC-600']]).id]]);
    // RC-700: sent while the relay is paused: still queued.
    const paused = await fetch(`${base}/api/relay/pause`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ reason: 'reconcile test' }) });
    expect(paused.status).toBe(200);
    await send(lisOrm('RC-7', 'RC-700', ['GLU']));

    const r = await reconcile();
    expect(r.code, r.err).toBe(1);
    expect(r.out).toMatch(/7 orders checked, 1 in agreement, 6 with differences/);
    expect(r.out).not.toMatch(/RC-100/);
    expect(r.out).toMatch(/RC-200[^\n]*\n[^\n]*delivered[^\n]*not in Odoo/i);

    const j = await reconcile(['--json']);
    expect(j.code).toBe(1);
    const report = JSON.parse(j.out) as Report;
    expect(report).toMatchObject({ checked: 7, agree: 1, differ: 6 });
    const kinds = Object.fromEntries(report.orders.map((o) => [o.accession, o.differences.map((d) => `${d.kind}${d.test ? ':' + d.test : ''}`)]));
    expect(kinds).toEqual({
      'RC-200': ['order-missing'],
      'RC-300': ['billed-twice:GLU'],
      'RC-400': ['not-delivered:GLU'],
      'RC-500': ['cancelled-line:HBA1C'],
      'RC-600': ['not-invoiced:GLU'],
      'RC-700': ['order-missing'],
    });
    const said = (acc: string): string => report.orders.find((o) => o.accession === acc)!.differences.map((d) => `${d.explanation} ${d.action}`).join(' ');
    expect(said('RC-200')).toMatch(/deleted in Odoo/);
    expect(said('RC-700')).toMatch(/queued/);
    for (const o of report.orders) for (const d of o.differences) expect(d.action.length, `${o.accession} ${d.kind}`).toBeGreaterThan(10);

    // --since 0 is a usage error.
    expect((await reconcile(['--since', '0'])).code).toBe(2);
    const resumed = await fetch(`${base}/api/relay/resume`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ reason: 'reconcile test' }) });
    expect(resumed.status).toBe(200);
  }, 60_000);

  it('exits 2 saying why when Odoo or the store cannot be read', async () => {
    const noOdoo = path.join(dir, 'no-odoo.yaml');
    writeFileSync(noOdoo, configYaml(Number(new URL(base).port), `http://127.0.0.1:${await refusedPort()}`));
    const a = await reconcile([], noOdoo);
    expect(a.code).toBe(2);
    expect(a.err).toMatch(/cannot read Odoo/i);

    const noGateway = path.join(dir, 'no-gateway.yaml');
    writeFileSync(noGateway, configYaml(await refusedPort(), odooUrl));
    const b = await reconcile([], noGateway);
    expect(b.code).toBe(2);
    expect(b.err).toMatch(/cannot read the store/i);
  }, 60_000);
});

describe('lab-gateway reconcile on the sandbox (no odoo.url)', () => {
  it('reads a copy of the sandbox file and finds the order there', async () => {
    const data = path.join(dir, 'sandbox-data');
    const file = path.join(dir, 'sandbox.yaml');
    writeFileSync(file, [
      'gateway: { id: reconcile-sandbox, dataDir: ' + JSON.stringify(data) + ' }',
      'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
      'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
      `status: { listen: { host: 127.0.0.1, port: ${await freePort()} } }`,
      'relay: { enabled: true, invoicing: false }',
      '',
    ].join('\n'));
    const loaded = loadConfig(file);
    if (!loaded.config) throw new Error(JSON.stringify(loaded.issues));
    const sandboxed = new Gateway({ config: loaded.config, log: silentLogger });
    await sandboxed.start();
    const lis = await MllpClient.connect({ host: '127.0.0.1', port: sandboxed.addresses().hl7['lis']!.port });
    try {
      expect((await lis.send(Buffer.from(lisOrm('SB-1', 'SB-100', ['GLU']), 'latin1'))).toString('latin1')).toContain('MSA|AA|');
      // The sandbox writes its file a moment after the order lands.
      await waitFor(() => existsSync(sandboxFile(data)) && readFileSync(sandboxFile(data), 'utf8').includes('SB-100'), 20_000);
      const r = await reconcile([], file);
      expect(r.out).toMatch(/against sandbox/);
      expect(r.out).toMatch(/1 orders checked, 1 in agreement, 0 with differences/);
      expect(r.code, r.err).toBe(0);
    } finally {
      await lis.close().catch(() => undefined);
      await sandboxed.stop(5_000);
    }
  }, 60_000);
});
