/**
 * Commissioning day, played the way IT staff do it: the real CLI (`lab-gateway start|send`, as
 * separate processes from the sources) and the real gateway, first on its sandbox, then on the
 * site's Odoo (the Odoo emulator) with the same data dir. The analyzer-line tests of that day are
 * in commissioning-link-audit.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OdooEmulator } from '../odoo-emulator/emulator.ts';
import { cliSource, runCli } from '../fixtures/cli.ts';
import { getJson, startGatewayProcess as startGateway, until, type GatewayProcess, fileWriter, TEST_LISTENERS } from '../fixtures/gateway-process.ts';

let dir: string;
const file = fileWriter(() => dir);
const listeners = TEST_LISTENERS;

/** A site's Odoo 17 (the emulator, seeded with the lab's master data) and the config line for it. */
async function realOdoo(): Promise<{ odoo: OdooEmulator; odooLine: string }> {
  const key = randomBytes(20).toString('hex');
  const odoo = new OdooEmulator({ version: 17, seed: 'lab-demo', users: [{ login: 'admin', password: 'admin' }, { login: 'gateway', password: '', apiKeys: [{ key }], rights: 'bot' }] });
  emulators.push(odoo);
  const { url } = await odoo.listen(0, '127.0.0.1');
  const keyFile = await file(key, `odoo-${randomBytes(4).toString('hex')}.key`);
  return { odoo, odooLine: `odoo: { url: "${url}", database: ${odoo.database}, login: gateway, apiKeyFile: ${keyFile} }` };
}

const running: GatewayProcess[] = [];
const emulators: OdooEmulator[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-commissioning-audit-'));
});
afterAll(async () => {
  for (const r of running) await r.stop();
  for (const e of emulators) await e.close();
  await rm(dir, { recursive: true, force: true });
});

describe('switching from the sandbox to the site\'s real Odoo', () => {
  /**
   * User sees: after commissioning on the sandbox and switching `odoo.url` to the site's Odoo, a
   * reagent below its reorder point there gets the gateway's draft RFQ, as a gateway with a fresh
   * data dir drafts it at once (the control below).
   * Promise: DESIGN.md §3 stock.threshold_breached → draft RFQ; §5 the sandbox is for commissioning
   * "before touching its real Odoo", so nothing of it may steer what happens in the real one.
   * Regression: the sandbox's stock watch marked the breach episode under the sandbox's reorder
   * point id (`relay-stock` / `op:<id>`), the mark survived the switch, and the real Odoo's reorder
   * point with the same id counted as "already raised": no RFQ, no alert, health OK. The store now
   * records the Odoo target and a start with another one resets that state (relay/odoo-target.ts).
   */
  it('a reagent below its reorder point in the real Odoo gets its draft RFQ there, even though the sandbox had one for the same reorder point id', async () => {
    // Control: a gateway that never ran on the sandbox drafts that RFQ in such an Odoo at once.
    const control = await realOdoo();
    const controlGw = startGateway(await file([`gateway: { id: site-0, dataDir: ${path.join(dir, 'control-data')} }`, listeners, control.odooLine, ''].join('\n')));
    running.push(controlGw);
    expect(await controlGw.ready, controlGw.err()).toBeDefined();
    await until('the control gateway\'s draft RFQ', () => (control.odoo.count('purchase.order', [['origin', 'like', 'lab-gateway']]) > 0 ? true : undefined));
    await controlGw.stop();

    const dataDir = path.join(dir, 'site-data');
    // Day 1: commissioning against the sandbox (no odoo.url), as DESIGN.md §5 prescribes.
    const sandboxCfg = await file([`gateway: { id: site-1, dataDir: ${dataDir} }`, listeners, ''].join('\n'));
    const first = startGateway(sandboxCfg);
    running.push(first);
    const ready1 = await first.ready;
    expect(ready1, first.err()).toBeDefined();
    // The sandbox's stock watch drafts an RFQ in the sandbox (its CRP reagent is below minimum).
    await until('a draft RFQ in the sandbox', async () => {
      const s = await getJson<{ records: { models: Record<string, { count: number }> } }>(`${ready1!.status.url.replace(/\/$/, '')}/api/sandbox`);
      return (s.records.models['purchase.order']?.count ?? 0) > 0 ? true : undefined;
    });
    await first.stop();

    // Day 2: the site's real Odoo. Its lab stock of the CRP reagent is below the reorder point too.
    const { odoo, odooLine } = await realOdoo();
    const realCfg = await file([`gateway: { id: site-1, dataDir: ${dataDir} }`, listeners, odooLine, ''].join('\n'));
    const second = startGateway(realCfg);
    running.push(second);
    const ready2 = await second.ready;
    expect(ready2, second.err()).toBeDefined();
    await until('the reference pull from the real Odoo', () => (second.err().includes('reference data pulled') ? true : undefined));
    // What the buyer should find in the real Odoo: the gateway's draft RFQ for the reagent.
    const rfq = await until(
      'a draft RFQ in the real Odoo',
      () => (odoo.count('purchase.order', [['origin', 'like', 'lab-gateway']]) > 0 ? true : undefined),
      20_000,
    ).catch(() => false);
    expect(rfq, 'no draft RFQ reached the real Odoo for a reagent below its reorder point').toBe(true);
    // What IT reads in the log (and the tray, as an info alert): the target changed, state reset.
    const alert = second
      .err()
      .split('\n')
      .find((l) => l.includes('"code":"ODOO_TARGET_CHANGED"'));
    expect(alert, second.err()).toMatch(/Odoo changed from the sandbox to http:\/\/127\.0\.0\.1:\d+ \(database [^)]+\): the reference data and stock reorder marks/);
  }, 120_000);
});

describe('the message browser after the switch to the real Odoo', () => {
  /**
   * User sees: after the switch, the message browser (status page "Odoo documents", GET
   * /api/messages/:id) lists the test order's document as the sandbox's (`sandbox: true`, "(sandbox)"
   * on the page: test/e2e/page-sandbox-refs.test.ts), not as a record of the Odoo the gateway now
   * posts to, where the same id is another clinic's order.
   * Promise: DESIGN.md §5 sandbox for commissioning before the real Odoo; README "GET
   * /api/messages/:id raw message, its events and Odoo documents".
   * Regression: OdooRef did not record which Odoo held the document; finance and IT looking up
   * `sale.order #1` in the real Odoo found the wrong order. The relay now stamps the documents it
   * posts to the sandbox (OdooRef.sandbox).
   */
  it('an order sent while commissioning shows its Odoo document as the sandbox\'s, not as a record of the real Odoo', async () => {
    const dataDir = path.join(dir, 'site-data-6');
    const first = startGateway(await file([`gateway: { id: site-6, dataDir: ${dataDir} }`, listeners, ''].join('\n')));
    running.push(first);
    const ready1 = await first.ready;
    expect(ready1, first.err()).toBeDefined();
    // The IT person sends a test order with the CLI, as the LIS would.
    const hl7 = path.join(dir, 'test-order.hl7');
    await writeFile(
      hl7,
      [
        'MSH|^~\\&|LIS|LAB|GW|LAB|20261125101500||ORM^O01|COMM-0001|P|2.5.1',
        'PID|1||MRN-1^^^LAB^MR||Test^Patient',
        'ORC|NW|COMM-ACC-1||COMM-ACC-1|SC||||20261125101500||||||||||||CLINIC-A^^^^^^^^^CLINIC-A',
        'OBR|1|COMM-ACC-1||GLU^GLU^L|||20261125101500||||||||CLINIC-A',
        '',
      ].join('\r'),
    );
    const sent = await runCli(cliSource, ['send', '--port', String(ready1!.hl7.lis!.port), hl7]);
    expect(sent.code, sent.out + sent.err).toBe(0);
    const base1 = ready1!.status.url.replace(/\/$/, '');
    const messageId = await until('the test order stored', async () => {
      const r = await getJson<{ messages: Array<{ id: string }> }>(`${base1}/api/messages?controlId=COMM-0001`);
      return r.messages[0]?.id;
    });
    const inSandbox = await until('the test order in the sandbox', async () => {
      const d = await getJson<{ odoo: Array<{ model: string; id: number; name?: string }> }>(`${base1}/api/messages/${encodeURIComponent(messageId)}`);
      return d.odoo.find((r) => r.model === 'sale.order');
    });
    await first.stop();

    // The real Odoo already has its own orders: its S00001 is another clinic's.
    const { odoo, odooLine } = await realOdoo();
    const clinicB = odoo.records('res.partner', [['ref', '=', 'CLINIC-B']])[0]!;
    odoo.call('sale.order', 'create', [{ partner_id: clinicB.id }]);
    const realSame = odoo.records('sale.order', [['id', '=', inSandbox.id]])[0];
    expect(realSame, 'the real Odoo has a sale.order under the sandbox record\'s id').toBeDefined();

    const second = startGateway(await file([`gateway: { id: site-6, dataDir: ${dataDir} }`, listeners, odooLine, ''].join('\n')));
    running.push(second);
    const ready2 = await second.ready;
    expect(ready2, second.err()).toBeDefined();
    const d = await getJson<{ odoo: Array<Record<string, unknown>> }>(`${ready2!.status.url.replace(/\/$/, '')}/api/messages/${encodeURIComponent(messageId)}`);
    // What the page lists under "Odoo documents" for the test order, now that Odoo is the real one.
    const shownAsReal = d.odoo.filter((r) => !/sandbox/i.test(JSON.stringify(r)));
    expect(shownAsReal, `the real Odoo's sale.order #${String(realSame?.id)} is ${String(realSame?.name)} of ${String(clinicB.name)}`).toEqual([]);
    expect(d.odoo).toContainEqual(expect.objectContaining({ model: 'sale.order', id: inSandbox.id, sandbox: true }));
  }, 120_000);
});
