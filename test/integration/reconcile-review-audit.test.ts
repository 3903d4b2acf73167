/**
 * `lab-gateway reconcile` reviewed as finance reads it: every exit 0 must mean the LIS and Odoo
 * agree, and every difference must be one, said in plain words with what to do.
 *
 * A real gateway in this process (two LIS links, the second with `accessionPrefix: OUT`) relays to
 * the Odoo emulator over HTTP; Odoo is changed behind its back as people change it (a sale order
 * confirmed, an invoice posted, a credit note, a quantity raised); the real CLI (a child process)
 * reports. The cases that held are here as well as those that did not.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../gateway/src/config/load.ts';
import { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { cliSource, runCli } from '../fixtures/cli.ts';
import { lisOrm, lisOru } from '../fixtures/lis-rig.ts';
import { freePort } from '../fixtures/ports.ts';
import { BOT, startEmulator } from '../fixtures/relay/harness.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';
import type { OdooEmulator } from '../odoo-emulator/index.ts';

const KEY_ENV = 'LGW_RECONCILE_REVIEW_KEY';
process.env[KEY_ENV] = BOT.key;
const TOKEN = 'reconcile-review-token-0123456789abcdef';

interface Report {
  since: string;
  checked: number;
  agree: number;
  differ: number;
  orders: Array<{ accession: string; saleOrder?: string; differences: Array<{ kind: string; test?: string; explanation: string; action: string }> }>;
  credited: Array<{ accession: string; saleOrder: string; test: string; creditNotes: string[] }>;
}

interface Lab {
  emu: OdooEmulator;
  gateway: Gateway;
  base: string;
  configFile: string;
  clients: Map<string, MllpClient>;
}

const dirs: string[] = [];

function configYaml(dir: string, statusHost: string, statusPort: number, url: string, extra: string[] = []): string {
  return [
    'gateway: { id: reconcile-review, dataDir: ' + JSON.stringify(path.join(dir, 'data')) + ' }',
    'hl7:',
    '  - { id: lis, listen: { host: 127.0.0.1, port: 0 } }',
    '  - { id: out, listen: { host: 127.0.0.1, port: 0 }, accessionPrefix: OUT }',
    'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
    `status: { listen: { host: ${statusHost}, port: ${statusPort} }, adminTokenFile: ${JSON.stringify(path.join(dir, 'admin.token'))} }`,
    `odoo: { url: ${JSON.stringify(url)}, database: lab, login: ${BOT.login}, apiKeyEnv: ${KEY_ENV}, timeoutMs: 5000 }`,
    'relay: { enabled: true, invoicing: true, maxAttempts: 2, syncModes: { invoice.eligible: realtime }, backoff: { initialMs: 20, maxMs: 100, multiplier: 2, jitter: 0 } }',
    ...extra,
    '',
  ].join('\n');
}

async function startLab(version: 17 | 19, statusHost = '127.0.0.1', extra: string[] = []): Promise<Lab> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lgw-reconcile-review-'));
  dirs.push(dir);
  const { emu, url } = await startEmulator(version);
  writeFileSync(path.join(dir, 'admin.token'), TOKEN + '\n');
  const configFile = path.join(dir, 'gateway.yaml');
  writeFileSync(configFile, configYaml(dir, statusHost, await freePort(), url, extra));
  const loaded = loadConfig(configFile);
  if (!loaded.config) throw new Error(JSON.stringify(loaded.issues));
  const gateway = new Gateway({ config: loaded.config, log: silentLogger });
  await gateway.start();
  return { emu, gateway, base: gateway.addresses().status.url.replace(/\/$/, ''), configFile, clients: new Map() };
}

async function stopLab(lab: Lab | undefined): Promise<void> {
  if (!lab) return;
  for (const c of lab.clients.values()) await c.close().catch(() => undefined);
  await lab.gateway.stop(5_000);
  await lab.emu.close();
}

async function send(lab: Lab, text: string, endpoint = 'lis'): Promise<void> {
  let client = lab.clients.get(endpoint);
  if (!client) {
    client = await MllpClient.connect({ host: '127.0.0.1', port: lab.gateway.addresses().hl7[endpoint]!.port });
    lab.clients.set(endpoint, client);
  }
  expect((await client.send(Buffer.from(text, 'latin1'))).toString('latin1')).toContain('MSA|AA|');
}

async function queue(lab: Lab): Promise<Record<string, number>> {
  return ((await (await fetch(`${lab.base}/api/status`)).json()) as { queue: Record<string, number> }).queue;
}

async function settled(lab: Lab, invoiced: string[] = []): Promise<void> {
  await waitFor(async () => {
    const q = await queue(lab);
    return invoiced.every((acc) => lab.emu.count('account.move', [['ref', '=', `lab-gateway ${acc}`]]) === 1) && q['pending']! + q['inFlight']! + q['retrying']! === 0;
  }, 60_000);
}

function one(emu: OdooEmulator, model: string, domain: unknown[]): Record<string, unknown> & { id: number } {
  const rows = emu.records(model, domain);
  expect(rows, `${model} ${JSON.stringify(domain)}`).toHaveLength(1);
  return rows[0] as Record<string, unknown> & { id: number };
}

function saleOrder(emu: OdooEmulator, accession: string): Record<string, unknown> & { id: number } {
  return one(emu, 'sale.order', [['origin', '=', `lab-gateway ${accession}`]]);
}

async function reconcile(lab: Lab, extra: string[] = []): Promise<{ code: number; out: string; err: string; report?: Report }> {
  const r = await runCli(cliSource, ['reconcile', '--config', lab.configFile, ...extra]);
  let report: Report | undefined;
  if (extra.includes('--json') && r.out.trim().startsWith('{')) report = JSON.parse(r.out) as Report;
  return { ...r, ...(report ? { report } : {}) };
}

function kinds(report: Report): Record<string, string[]> {
  return Object.fromEntries(report.orders.map((o) => [o.accession, o.differences.map((d) => `${d.kind}${d.test ? ':' + d.test : ''}`)]));
}

/** A credit note for the whole of `invoiceId`, through Odoo's wizard, posted. */
function creditNote(emu: OdooEmulator, invoiceId: number): number {
  const wizard = emu.call('account.move.reversal', 'create', [{ move_ids: [[6, 0, [invoiceId]]], reason: 'waived for the clinic' }]) as number;
  const credit = (emu.call('account.move.reversal', 'refund_moves', [[wizard]]) as { res_id: number }).res_id;
  emu.call('account.move', 'action_post', [[credit]]);
  return credit;
}

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('reconcile on Odoo 17 with two LIS systems', () => {
  let lab: Lab | undefined;
  beforeAll(async () => {
    lab = await startLab(17);
  }, 60_000);
  afterAll(async () => stopLab(lab));

  it('agrees (exit 0) over what finance does in Odoo and what LIS systems resend', async () => {
    const l = lab!;
    // One number, two LIS systems: 12345 from the hospital LIS, OUT-12345 from the outreach LIS.
    await send(l, lisOrm('H-1', '12345', ['GLU']));
    await send(l, lisOru('H-2', '12345', 'GLU'));
    await send(l, lisOrm('O-1', '12345', ['CRP']), 'out');
    await send(l, lisOru('O-2', '12345', 'CRP'), 'out');
    // Cancelled in full: both tests cancelled.
    await send(l, lisOrm('CAN-1', 'RV-CAN', ['GLU', 'CRP']));
    await send(l, lisOrm('CAN-2', 'RV-CAN', ['GLU', 'CRP'], { control: 'CA' }));
    // Resent by the LIS under a new control id.
    await send(l, lisOrm('DUP-1', 'RV-DUP', ['GLU']));
    await send(l, lisOrm('DUP-2', 'RV-DUP', ['GLU']));
    await send(l, lisOru('DUP-3', 'RV-DUP', 'GLU'));
    // A result validated twice (the LIS's corrected result).
    await send(l, lisOrm('COR-1', 'RV-COR', ['GLU']));
    await send(l, lisOru('COR-2', 'RV-COR', 'GLU'));
    await send(l, lisOru('COR-3', 'RV-COR', 'GLU', { status: 'C' }));
    // A test not validated yet: nothing to deliver or invoice.
    await send(l, lisOrm('PART-1', 'RV-PART', ['GLU', 'TSH']));
    await send(l, lisOru('PART-2', 'RV-PART', 'GLU'));
    // Ordered now, confirmed by a person in Odoo before the result.
    await send(l, lisOrm('CONF-1', 'RV-CONF', ['GLU']));
    // An invoice finance posts.
    await send(l, lisOrm('POST-1', 'RV-POST', ['HBA1C']));
    await send(l, lisOru('POST-2', 'RV-POST', 'HBA1C'));
    await settled(l, ['12345', 'OUT-12345', 'RV-DUP', 'RV-COR', 'RV-POST']);
    l.emu.call('sale.order', 'action_confirm', [[saleOrder(l.emu, 'RV-CONF').id]]);
    expect(saleOrder(l.emu, 'RV-CONF')['state']).toBe('sale');
    await send(l, lisOru('CONF-2', 'RV-CONF', 'GLU'));
    l.emu.call('account.move', 'action_post', [[one(l.emu, 'account.move', [['ref', '=', 'lab-gateway RV-POST']]).id]]);
    await settled(l, ['RV-CONF']);
    expect((await queue(l))['deadLettered']).toBe(0);
    // The two orders of number 12345 are two sale orders, one per LIS.
    expect(saleOrder(l.emu, '12345').id).not.toBe(saleOrder(l.emu, 'OUT-12345').id);

    const r = await reconcile(l, ['--json']);
    expect(r.err.replace(/^.*warning odoo\.url.*$\n?/gm, '')).toBe('');
    expect(r.report, r.out).toBeDefined();
    expect(kinds(r.report!)).toEqual({});
    expect(r.report).toMatchObject({ checked: 8, agree: 8, differ: 0 });
    expect(r.code).toBe(0);
  }, 120_000);

  it('names the outreach order, not the hospital one, when only OUT-12345 lost its sale order', async () => {
    const l = lab!;
    const so = saleOrder(l.emu, 'OUT-12345');
    for (const inv of l.emu.records('account.move', [['ref', '=', 'lab-gateway OUT-12345']])) l.emu.call('account.move', 'unlink', [[(inv as { id: number }).id]]);
    l.emu.call('sale.order', 'unlink', [[so.id]]);
    const r = await reconcile(l, ['--json']);
    expect(r.code, r.err).toBe(1);
    expect(kinds(r.report!)).toEqual({ 'OUT-12345': ['order-missing'] });
  }, 60_000);

  it('says a test invoiced twice when its line was raised to 2 and both invoiced, though the LIS ordered it once', async () => {
    const l = lab!;
    // RV-COR: finance (or a slip) raised its GLU line to 2 and billed the second on another invoice.
    const so = saleOrder(l.emu, 'RV-COR');
    const line = one(l.emu, 'sale.order.line', [['order_id', '=', so.id]]);
    l.emu.call('sale.order.line', 'write', [[line.id], { product_uom_qty: 2, qty_delivered: 2 }]);
    const inv = one(l.emu, 'account.move', [['ref', '=', 'lab-gateway RV-COR']]);
    l.emu.call('account.move', 'write', [[inv.id], { invoice_line_ids: [[0, 0, { product_id: (line['product_id'] as [number, string])[0], quantity: 1, price_unit: 8.5, name: 'Glucose', sale_line_ids: [[6, 0, [line.id]]] }]] }]);
    expect(one(l.emu, 'sale.order.line', [['order_id', '=', so.id]])['qty_invoiced']).toBe(2);
    const r = await reconcile(l, ['--json']);
    expect(r.code, r.err).toBe(1);
    expect(kinds(r.report!)['RV-COR']).toEqual(['billed-twice:GLU']);
  }, 60_000);

  it('lists a test finance credited apart, not as an invoice to make again', async () => {
    const l = lab!;
    // RV-POST: finance waived HBA1C with a credit note of the whole posted invoice.
    creditNote(l.emu, one(l.emu, 'account.move', [['ref', '=', 'lab-gateway RV-POST']]).id);
    expect(one(l.emu, 'sale.order.line', [['order_id', '=', saleOrder(l.emu, 'RV-POST').id]])['qty_invoiced']).toBe(0);
    const j = await reconcile(l, ['--json']);
    expect(kinds(j.report!)['RV-POST']).toBeUndefined();
    expect(j.report!.credited).toEqual([{ accession: 'RV-POST', saleOrder: String(saleOrder(l.emu, 'RV-POST')['name']), test: 'HBA1C', creditNotes: [expect.stringMatching(/^RINV\//)] }]);
    const r = await reconcile(l);
    expect(r.out).toMatch(/credited by finance[^\n]*\n\s+RV-POST \([^)]+\) HBA1C: RINV\//);
    expect(r.out).not.toMatch(/RV-POST[^\n]*:\n/);
  }, 60_000);

  it('names an order Odoo refused (a test with no product) with the reason, and prints no patient name', async () => {
    const l = lab!;
    const named = lisOrm('NP-1', 'RV-NOPROD', ['GLU', 'XYZ']).replace('PID|1||MRN-77^^^LAB^MR', 'PID|1||MRN-88^^^LAB^MR||ZABRISKIE^HORTENSE||19610203|F');
    await send(l, named);
    await waitFor(async () => (await queue(l))['deadLettered']! >= 1, 60_000);
    const r = await reconcile(l);
    const j = await reconcile(l, ['--json']);
    expect(r.code, r.err).toBe(1);
    expect(kinds(j.report!)['RV-NOPROD']).toEqual(['order-missing']);
    const said = j.report!.orders.find((o) => o.accession === 'RV-NOPROD')!.differences[0]!;
    expect(said.explanation).toMatch(/dead letter/);
    expect(said.explanation).toMatch(/XYZ/);
    expect(said.action).toMatch(/replay/);
    for (const text of [r.out, r.err, j.out, j.err]) {
      expect(text).not.toMatch(/ZABRISKIE|HORTENSE|19610203/i);
    }
  }, 90_000);
});

describe('reconcile on Odoo 19 (JSON-2), the status API at "localhost", many orders', () => {
  let lab: Lab | undefined;
  beforeAll(async () => {
    lab = await startLab(19, 'localhost', ['store: { retentionDays: 1 }']);
  }, 60_000);
  afterAll(async () => stopLab(lab));

  it('reads every order of the period, more than an API page holds (exit 0), and a difference among them (exit 1)', async () => {
    const l = lab!;
    const n = 1_050;
    for (let i = 0; i < n; i++) await send(l, lisOrm(`M-${i}`, `RV-M${String(i).padStart(4, '0')}`, ['GLU']));
    await waitFor(async () => l.emu.count('sale.order', [['origin', '=like', 'lab-gateway RV-M%']]) === n, 120_000);
    await settled(l);
    const r = await reconcile(l, ['--json']);
    expect(r.code, r.err).toBe(0);
    expect(r.report).toMatchObject({ checked: n, agree: n, differ: 0 });
    // The last order received, beyond two pages, is read too.
    l.emu.call('sale.order', 'unlink', [[saleOrder(l.emu, `RV-M${n - 1}`).id]]);
    const d = await reconcile(l, ['--json']);
    expect(d.code, d.err).toBe(1);
    expect(kinds(d.report!)).toEqual({ [`RV-M${n - 1}`]: ['order-missing'] });
  }, 300_000);

  it('reads invoice lines and credit notes over JSON-2 as over JSON-RPC', async () => {
    const l = lab!;
    await send(l, lisOrm('C19-1', 'RV-C19', ['TSH']));
    await send(l, lisOru('C19-2', 'RV-C19', 'TSH'));
    await settled(l, ['RV-C19']);
    const inv = one(l.emu, 'account.move', [['ref', '=', 'lab-gateway RV-C19']]);
    l.emu.call('account.move', 'action_post', [[inv.id]]);
    creditNote(l.emu, inv.id);
    const r = await reconcile(l, ['--json', '--since', '1']);
    expect(r.code, r.err).toBe(1);
    expect(kinds(r.report!)['RV-C19']).toBeUndefined();
    expect(r.report!.credited.map((c) => `${c.accession}:${c.test}`)).toEqual(['RV-C19:TSH']);
  }, 120_000);

  it('says in the report which part of the period the store no longer holds (--since beyond store.retentionDays)', async () => {
    const l = lab!;
    await send(l, lisOrm('OLD-1', 'RV-OLD', ['GLU']));
    await send(l, lisOru('OLD-2', 'RV-OLD', 'GLU'));
    await settled(l, ['RV-OLD']);
    const before = await reconcile(l, ['--json', '--since', '7']);
    expect(before.report!.checked).toBe(1_052);
    // Two days on (retentionDays 1): RV-OLD and RV-C19, billed in full, leave the store; the open orders stay (billing's hold).
    while ((await l.gateway.store!.prune(Date.now() + 2 * 86_400_000)) > 0);
    const r = await reconcile(l, ['--since', '7']);
    const j = await reconcile(l, ['--json', '--since', '7']);
    expect(j.report!.checked).toBe(1_050);
    expect(j.code, j.err).toBe(1);
    // Finance reads that orders of the period may not have been checked, and why.
    const summary = r.out.trim().split('\n').at(-1)!;
    expect(summary).toMatch(/not checked/);
    expect(summary).toMatch(/store\.retentionDays/);
    expect((j.report as unknown as { notCheckedBefore?: string }).notCheckedBefore).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    // A period the store holds whole says nothing of the kind.
    const inside = await reconcile(l, ['--since', '1']);
    expect(inside.out).not.toMatch(/not checked|retentionDays/);
    const insideJson = await reconcile(l, ['--json', '--since', '1']);
    expect((insideJson.report as unknown as { notCheckedBefore?: string }).notCheckedBefore).toBeUndefined();
  }, 120_000);
});

describe('reconcile of a period in which an older order was validated and billed', () => {
  let lab: Lab | undefined;
  beforeAll(async () => {
    lab = await startLab(17);
  }, 60_000);
  afterAll(async () => stopLab(lab));

  it('checks an order placed before the period whose result and invoice came in it', async () => {
    const l = lab!;
    // A culture ordered three days ago (only the clock the gateway reads is set back while it is received).
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() - 3 * 86_400_000 });
    try {
      await send(l, lisOrm('LATE-1', 'RV-LATE', ['GLU']));
    } finally {
      vi.useRealTimers();
    }
    await waitFor(() => l.emu.count('sale.order', [['origin', '=', 'lab-gateway RV-LATE']]) === 1, 60_000);
    await settled(l);
    // The period's boundary: the order is three days old.
    expect((await reconcile(l, ['--json', '--since', '1'])).report).toMatchObject({ checked: 0 });
    expect((await reconcile(l, ['--json', '--since', '4'])).report).toMatchObject({ checked: 1, agree: 1 });
    // Validated today, invoiced today; then the draft invoice is deleted in Odoo.
    await send(l, lisOru('LATE-2', 'RV-LATE', 'GLU'));
    await settled(l, ['RV-LATE']);
    const agree = await reconcile(l, ['--json', '--since', '1']);
    expect(agree.code, agree.err).toBe(0);
    expect(agree.report).toMatchObject({ checked: 1, agree: 1 });
    l.emu.call('account.move', 'unlink', [[one(l.emu, 'account.move', [['ref', '=', 'lab-gateway RV-LATE']]).id]]);
    const r = await reconcile(l, ['--json', '--since', '1']);
    expect(r.code, r.err).toBe(1);
    expect(kinds(r.report!)).toEqual({ 'RV-LATE': ['not-invoiced:GLU'] });
  }, 120_000);

  it('names a test the LIS cancelled that a posted invoice still bills, its line at 0, while its cancellation is a dead letter and once discarded', async () => {
    const l = lab!;
    await send(l, lisOrm('CI-1', 'RV-CI', ['GLU', 'CRP']));
    await send(l, lisOru('CI-2', 'RV-CI', 'GLU'));
    await send(l, lisOru('CI-3', 'RV-CI', 'CRP'));
    await settled(l, ['RV-CI']);
    l.emu.call('account.move', 'action_post', [[one(l.emu, 'account.move', [['ref', '=', 'lab-gateway RV-CI']]).id]]);
    // The LIS cancels CRP after the invoice was posted: the gateway's dead letter asks for a credit note.
    await send(l, lisOrm('CI-4', 'RV-CI', ['CRP'], { control: 'CA' }));
    await waitFor(async () => (await queue(l))['deadLettered']! >= 1, 60_000);
    const dead = await reconcile(l, ['--json', '--since', '1']);
    expect(kinds(dead.report!)['RV-CI']).toEqual(['cancelled-line:CRP']);
    expect(dead.report!.orders.find((o) => o.accession === 'RV-CI')!.differences[0]!.explanation).toMatch(/dead letter/);
    // The gateway took the line to 0 already; what Odoo still bills is the posted invoice.
    const so = saleOrder(l.emu, 'RV-CI');
    const crp = one(l.emu, 'product.product', [['default_code', '=', 'CRP']]);
    expect(one(l.emu, 'sale.order.line', [['order_id', '=', so.id], ['product_id', '=', crp.id]])).toMatchObject({ product_uom_qty: 0, qty_invoiced: 1 });
    // An operator discards the dead letter instead of having finance credit the test.
    const deadId = ((await (await fetch(`${l.base}/api/events?state=dead`)).json()) as { events: Array<{ event: { id: string; correlationId: string } }> }).events.find((e) => e.event.correlationId === 'RV-CI')!.event.id;
    const discarded = await fetch(`${l.base}/api/events/${deadId}/discard`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ reason: 'line set to 0 by hand' }) });
    expect(discarded.status).toBe(200);
    const r = await reconcile(l, ['--json', '--since', '1']);
    expect(r.code, r.err).toBe(1);
    expect(kinds(r.report!)['RV-CI']).toEqual(['cancelled-line:CRP']);
    const said = r.report!.orders.find((o) => o.accession === 'RV-CI')!.differences[0]!;
    expect(said.explanation).toMatch(/invoiced/);
    expect(said.action).toMatch(/credit note/);
  }, 120_000);

  it('names an order whose sale order a person cancelled in Odoo while the LIS order stands', async () => {
    const l = lab!;
    await send(l, lisOrm('SC-1', 'RV-SOCAN', ['GLU', 'TSH']));
    await send(l, lisOru('SC-2', 'RV-SOCAN', 'GLU'));
    await waitFor(() => l.emu.count('sale.order', [['origin', '=', 'lab-gateway RV-SOCAN']]) === 1, 60_000);
    await settled(l);
    const before = await reconcile(l, ['--json', '--since', '1']);
    expect(kinds(before.report!)['RV-SOCAN']).toBeUndefined();
    l.emu.call('sale.order', 'action_cancel', [[saleOrder(l.emu, 'RV-SOCAN').id]]);
    expect(saleOrder(l.emu, 'RV-SOCAN')['state']).toBe('cancel');
    const r = await reconcile(l, ['--json', '--since', '1']);
    expect(r.code, r.err).toBe(1);
    const said = r.report!.orders.find((o) => o.accession === 'RV-SOCAN');
    expect(said, 'RV-SOCAN').toBeDefined();
    expect(said!.differences.map((d) => d.kind)).toEqual(['order-cancelled']);
    expect(said!.differences[0]!.explanation).toMatch(/cancelled in Odoo/);
    expect(said!.differences[0]!.action).toMatch(/Set to Quotation|restore|cancel/i);
  }, 120_000);

  it('asks for the invoice in Odoo, not a resend by the LIS, when an operator discarded the eligibility', async () => {
    const l = lab!;
    const admin = (action: string): Promise<Response> => fetch(`${l.base}/api/relay/${action}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ reason: 'review' }) });
    expect((await admin('pause')).status).toBe(200);
    try {
      await send(l, lisOrm('DE-1', 'RV-DISC', ['GLU']));
      await send(l, lisOru('DE-2', 'RV-DISC', 'GLU'));
      const listed = (await (await fetch(`${l.base}/api/events?correlationId=RV-DISC&type=invoice.eligible`)).json()) as { events: Array<{ event: { id: string } }> };
      expect(listed.events).toHaveLength(1);
      const discarded = await fetch(`${l.base}/api/events/${listed.events[0]!.event.id}/discard`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ reason: 'billed by hand' }) });
      expect(discarded.status).toBe(200);
    } finally {
      expect((await admin('resume')).status).toBe(200);
    }
    await waitFor(() => l.emu.count('sale.order', [['origin', '=', 'lab-gateway RV-DISC']]) === 1, 60_000);
    await settled(l);
    const r = await reconcile(l, ['--json', '--since', '1']);
    expect(kinds(r.report!)['RV-DISC']).toEqual(['not-invoiced:GLU']);
    const said = r.report!.orders.find((o) => o.accession === 'RV-DISC')!.differences[0]!;
    expect(said.explanation).toMatch(/discarded by an operator \(billed by hand\)/);
    expect(said.action).not.toMatch(/LIS/);
    expect(said.action).toMatch(/invoice/);
  }, 120_000);
});
