/**
 * Two LIS links audit. A real gateway (MLLP listeners, LevelDB in a temp dir, the
 * invoice-eligibility derivation, the relay) posting to the Odoo emulator over HTTP ('lab-demo'
 * seed: clinics CLINIC-A "Northside Family Clinic" and CLINIC-B "Harbour Medical Centre", test
 * products GLU, TSH, CBC …), LIS systems and analyzers as real MLLP / TCP clients.
 *
 * 1. Two LIS links (DESIGN.md §5 `hl7: [ … ]` is a list): the hospital's LIS (`lis`) and an
 *    outreach/clinic LIS (`outreach`), each numbering its own accessions, so "12345" can come from
 *    both for two different patients.
 * (The QC day part of this audit is test/integration/hl7-qc-audit.test.ts.)
 */
import { startLabDay, type LabDay } from '../fixtures/relay/lab-day.ts';
import { afterEach, describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import type { OdooEmulator } from '../odoo-emulator/index.ts';
import { productCode } from '../fixtures/relay/billing-rig.ts';
import { partnerId, waitFor } from '../fixtures/relay/helpers.ts';
import { connectAnalyzer, nextSession, orderRecords } from '../fixtures/order-download.ts';


// ------------------------------------------------------------------------------------------ rig

type Lab = LabDay;

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

/** The hospital LIS (`lis`) and the outreach LIS (`outreach`), relaying to the emulator. */
function lab(id: string, sections: Record<string, unknown> = {}): Promise<Lab> {
  return startLabDay(id, closers, {
    hl7: [
      { id: 'lis', listen: { host: '127.0.0.1', port: 0 } },
      { id: 'outreach', listen: { host: '127.0.0.1', port: 0 } },
    ],
    ...sections,
  });
}

// ------------------------------------------------------------------------------------- messages

let seq = 0;
const MSH = (app: string, type: string, id: string, processing = 'P'): string => `MSH|^~\\&|${app}|${app}-FAC|GW|LAB|20260302093000||${type}|${id}|${processing}|2.5.1`;

/** ORM^O01 NW (or CA) from `app` for one patient, one ORC/OBR per test (none: the whole order). */
function orm(app: string, accession: string, tests: string[], opts: { mrn: string; clinic: string; control?: 'NW' | 'CA'; id?: string }): string {
  const id = opts.id ?? `${app}-ORM-${++seq}`;
  const orc = `ORC|${opts.control ?? 'NW'}|${accession}|||||||20260302092500||||||||||||${opts.clinic}`;
  const lines = tests.length === 0 ? [orc] : tests.flatMap((code, i) => [orc, `OBR|${i + 1}|${accession}||${code}^${code} test`]);
  return [MSH(app, 'ORM^O01^ORM_O01', id), `PID|1||${opts.mrn}^^^${app}^MR`, ...lines].join('\r');
}

/** ORU^R01 with one final result for `test` of `accession`. */
function oru(app: string, accession: string, test: string, opts: { mrn: string; id?: string; processing?: string }): string {
  const id = opts.id ?? `${app}-ORU-${++seq}`;
  return [
    MSH(app, 'ORU^R01^ORU_R01', id, opts.processing ?? 'P'),
    `PID|1||${opts.mrn}^^^${app}^MR`,
    `ORC|RE|${accession}`,
    `OBR|1|${accession}||${test}^${test} test|||20260302100000|||||||||||||||20260302110000|||F`,
    `OBX|1|NM|${test}^${test} test||5.4|mmol/L|||||F`,
  ].join('\r');
}

// ---------------------------------------------------------------------------- what Odoo shows

function ordersOf(emu: OdooEmulator, clinic: string): Array<Record<string, unknown> & { id: number }> {
  return emu.records('sale.order', [['partner_id', '=', partnerId(emu, clinic)]]) as Array<Record<string, unknown> & { id: number }>;
}

function linesOf(emu: OdooEmulator, orderIds: number[]): Array<{ code: string; qty: number; delivered: number }> {
  return emu
    .records('sale.order.line', [['order_id', 'in', orderIds]], { fields: ['product_id', 'product_uom_qty', 'qty_delivered'] })
    .map((l) => ({ code: productCode(emu, l['product_id']), qty: Number(l['product_uom_qty']), delivered: Number(l['qty_delivered']) }));
}

function invoicesOf(emu: OdooEmulator, clinic: string): Array<Record<string, unknown> & { id: number }> {
  return emu.records('account.move', [['move_type', '=', 'out_invoice'], ['partner_id', '=', partnerId(emu, clinic)]]) as Array<Record<string, unknown> & { id: number }>;
}

// ---------------------------------------------------------------------------------------- tests

/*
 * Part 1 — two LIS links. One cause behind every test of this part: an order's identity in the
 * gateway is its accession alone. gateway/src/hl7/normalize-lis.ts:81 (`accessionOf`) and :164-176
 * make `correlationId` = the accession and `partitionKey` = `order:<accession>`, without the
 * endpoint; the sale order is found by `client_order_ref` / `origin` / external id
 * `lab_gateway.so_<accession>` (relay/rules/sale-orders.ts:36, order-created.ts:67-69, which adds the
 * lines to whatever sale order holds that accession, whoever its customer), billing walks
 * `eventsByCorrelation(<accession>)` (events/invoice-eligibility.ts:107) and host queries merge
 * every `order.created` of the correlation id (astm/host-query.ts:256-262). Two LIS systems each
 * number their own accessions, and DESIGN.md §5 makes `hl7` a list; nothing in README.md,
 * gateway/src/hl7/README.md or DESIGN.md says that accessions must be unique across endpoints, and
 * `lab-gateway check` says nothing about two LIS endpoints (config/validate.ts warns only about
 * `hl7[].analyzer`). The promises broken: DESIGN.md §3 (`correlationId` "the order/accession that
 * ties LIS, analyzer and Odoo records together"; `order.created` → a draft sale order "for the
 * ordering client"), §2 "each business fact lands once" and relay/README.md "Billing: each test
 * exactly once, never a cancelled one".
 *
 * Suggested fix (for the part as a whole): give every LIS endpoint an accession namespace — the
 * correlation id, partitions, `client_order_ref`/origin/external id of a second endpoint's orders
 * qualified by its id (or a configured `hl7[].accessionPrefix`, the first/only endpoint keeping the
 * bare accession so existing sites keep their keys) — and, at the least, detect the collision: an
 * `order.created` whose accession is already held by an order of another endpoint (or another
 * PID-3 / ordering client) must not be merged into it but refused or dead-lettered with a reason
 * naming both systems; `check` should warn when more than one `hl7[]` endpoint without `analyzer`
 * is configured and no namespace is set.
 *
 * What the gateway does now (README.md "Two LIS systems"): with `hl7[].accessionPrefix` on the
 * second LIS link its orders are `<prefix>-<accession>` everywhere (sale order, billing, queue),
 * while the tube barcode stays as printed; without one, a collision is never merged silently — the
 * second client's order is a dead letter naming the accession and both clients, a result, cancel
 * or invoice of one client never touches the other client's sale order, and an analyzer asking
 * for a barcode both systems used gets "no order" and an alert. `check` warns about two LIS links
 * without prefixes. Tests 1-3 as the audit wrote them let the outreach order be taken and expected
 * Harbour's own sale order; without a prefix the gateway cannot make one (an accession is one sale
 * order), so they now assert the dead letter, and the prefix test below asserts Harbour's orders.
 */
describe('two LIS links whose accession numbers collide ("12345" from both systems)', () => {
  const dead = async (l: Lab): Promise<StoredEvent[]> => (await l.all()).filter((e) => e.state === 'dead');
  /** What an operator does with the collision's dead letter: discard it (the queue of 12345 moves on). */
  const discardDead = async (l: Lab): Promise<void> => {
    for (const e of await dead(l)) await l.gateway.store!.discard(e.event.id, 'operator', 'outreach 12345 is another patient: entered by hand');
  };
  const namesBothClinics = (reason: string | undefined): void => {
    expect(reason).toMatch(/12345/);
    expect(reason).toMatch(/Northside Family Clinic/);
    expect(reason).toMatch(/Harbour Medical Centre/);
  };

  /**
   * What finance sees: the hospital LIS orders GLU for its patient (accession 12345, Northside
   * Family Clinic, CLINIC-A); the outreach LIS orders TSH for another patient under its own 12345
   * (Harbour Medical Centre, CLINIC-B). Odoo holds ONE sale order S00001 for Northside with GLU and
   * TSH: the outreach patient's TSH is billed to the wrong customer, and Harbour gets no order.
   * Cause: order-created.ts:67-69 (`existing.get(accession)` → completeOrder adds the missing
   * products to the other system's sale order), keyed by the bare accession (normalize-lis.ts:164-176).
   * Fixed: without a prefix the outreach order is a dead letter naming both clinics (before: its
   * TSH was added to Northside's order).
   */
  it("a second LIS's order under the same accession is not added to the first LIS's sale order of another clinic", async () => {
    const l = await lab('two-lis-merge');
    expect(await l.send('lis', orm('HIS', '12345', ['GLU'], { mrn: 'H-1', clinic: 'CLINIC-A' }))).toContain('MSA|AA|');
    const outreachAck = await l.send('outreach', orm('OUT', '12345', ['TSH'], { mrn: 'O-9', clinic: 'CLINIC-B' }));
    await l.settled();
    // The hospital's order as its LIS sent it: Northside, GLU only.
    const northside = ordersOf(l.emu, 'CLINIC-A');
    expect(northside).toHaveLength(1);
    expect(linesOf(l.emu, northside.map((o) => o.id))).toEqual([{ code: 'GLU', qty: 1, delivered: 0 }]);
    // The outreach order is taken (kept for the operator) and dead-lettered: nothing billed to anyone.
    expect(outreachAck).toContain('MSA|AA|');
    const letters = await dead(l);
    expect(letters.map((e) => [e.event.source.endpoint, e.event.type])).toEqual([['outreach', 'order.created']]);
    namesBothClinics(letters[0]!.lastError);
    expect(ordersOf(l.emu, 'CLINIC-B')).toEqual([]);
  });

  /**
   * What finance and the hospital see: both systems order GLU under 12345 for two patients. Odoo
   * has one sale order (Northside) with one GLU line — the outreach patient is never billed. Then
   * the outreach LIS validates ITS patient's glucose: the gateway marks the hospital's GLU line
   * delivered and drafts an invoice to Northside (`lab-gateway 12345`), though the hospital's
   * patient has no result yet.
   * Cause: result.validated of the outreach (correlation 12345) validates the merged billing state
   * (events/invoice-eligibility.ts:107-113) and result-validated.ts writes `qty_delivered` on the
   * one sale order of the accession (sale-orders.ts:36).
   * Fixed: the result (and the invoice it made eligible) of the outreach, whose order is
   * Harbour's, is a dead letter instead of a write on Northside's order.
   */
  it("the outreach LIS's result for its own 12345 does not deliver nor invoice the hospital's patient's test", async () => {
    const l = await lab('two-lis-result');
    expect(await l.send('lis', orm('HIS', '12345', ['GLU'], { mrn: 'H-1', clinic: 'CLINIC-A' }))).toContain('MSA|AA|');
    expect(await l.send('outreach', orm('OUT', '12345', ['GLU'], { mrn: 'O-9', clinic: 'CLINIC-B' }))).toContain('MSA|AA|');
    await l.settled();
    // The collision's dead letter holds the queue of 12345 until an operator discards it.
    await discardDead(l);
    expect(await l.send('outreach', oru('OUT', '12345', 'GLU', { mrn: 'O-9' }))).toContain('MSA|AA|');
    await l.settled();
    const northside = ordersOf(l.emu, 'CLINIC-A');
    expect(linesOf(l.emu, northside.map((o) => o.id))).toEqual([{ code: 'GLU', qty: 1, delivered: 0 }]);
    expect(invoicesOf(l.emu, 'CLINIC-A')).toEqual([]);
    const result = (await dead(l)).find((e) => e.event.type === 'result.validated');
    namesBothClinics(result?.lastError);
  });

  /**
   * What the hospital sees: the outreach LIS cancels its own order 12345 (ORC-1 CA, the whole
   * order). The hospital's quotation S00001 for Northside goes to state `cancel`: its patient's
   * glucose will never be billed, and nobody at the hospital cancelled anything.
   * Cause: order.cancelled of the outreach has correlation/partition 12345 and order-cancelled.ts
   * cancels the sale order found by that accession (sale-orders.ts:36).
   * Fixed: the outreach's cancel is a dead letter naming both clinics.
   */
  it("the outreach LIS cancelling its order 12345 leaves the hospital's sale order 12345 alone", async () => {
    const l = await lab('two-lis-cancel');
    expect(await l.send('lis', orm('HIS', '12345', ['GLU'], { mrn: 'H-1', clinic: 'CLINIC-A' }))).toContain('MSA|AA|');
    expect(await l.send('outreach', orm('OUT', '12345', ['TSH'], { mrn: 'O-9', clinic: 'CLINIC-B' }))).toContain('MSA|AA|');
    await l.settled();
    await discardDead(l);
    expect(await l.send('outreach', orm('OUT', '12345', [], { mrn: 'O-9', clinic: 'CLINIC-B', control: 'CA' }))).toContain('MSA|AA|');
    await l.settled();
    const northside = ordersOf(l.emu, 'CLINIC-A');
    expect(northside.map((o) => o['state'])).toEqual(['draft']);
    expect(linesOf(l.emu, northside.map((o) => o.id)).filter((x) => x.code === 'GLU')).toEqual([{ code: 'GLU', qty: 1, delivered: 0 }]);
    const cancel = (await dead(l)).find((e) => e.event.type === 'order.cancelled');
    namesBothClinics(cancel?.lastError);
  });

  /**
   * What the technician sees: a chemistry analyzer asks the host for tube 12345 (a barcode both
   * systems printed). The answer is one patient, `P|1||O-9` (the outreach patient), with one order
   * `O|1|12345||^^^GLU\^^^TSH`: the hospital's glucose tube is run for TSH too, and its results come
   * back under the other system's patient; nothing warns that two orders collided.
   * Cause: astm/host-query.ts:256-262 merges every `order.created` of the correlation id 12345
   * (`{ ...current, ...data, tests: mergeTests(…) }`: tests united, the later patient id wins).
   * Fixed: "no order" for the tube, and a warning alert naming the accession and both links.
   */
  it("a host query for a barcode both LIS systems use is not answered with both patients' tests in one order", async () => {
    const l = await lab('two-lis-hq', { analyzers: [{ id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } } }] });
    const alerts: Array<{ severity: string; message: string }> = [];
    l.gateway.telemetry.on('alert', (a) => alerts.push(a));
    expect(await l.send('lis', orm('HIS', '12345', ['GLU'], { mrn: 'H-1', clinic: 'CLINIC-A' }))).toContain('MSA|AA|');
    expect(await l.send('outreach', orm('OUT', '12345', ['TSH'], { mrn: 'O-9', clinic: 'CLINIC-B' }))).toContain('MSA|AA|');
    const a = await connectAnalyzer(l.gateway, 'chem-1');
    closers.push(async () => {
      a.socket.destroy();
    });
    await a.sim.sendMessage(['H|\\^&|||CHEM^1|||||LIS||P|1|20260302100000', 'Q|1|^12345||ALL||||||||O', 'L|1|N']);
    const answer = await nextSession(a.sim, 5_000);
    expect(answer).toMatch(/^\d?H\|/);
    for (const o of orderRecords(answer)) {
      const tests = (o[4] ?? '').split('\\').map((t) => t.split('^')[3]);
      expect(tests, `O record ${o.join('|')}`).not.toEqual(expect.arrayContaining(['GLU', 'TSH']));
    }
    // "No order" for the tube (generic-astm: L|1|I), and the technician is told why.
    expect(orderRecords(answer).filter((o) => (o[4] ?? '') !== '')).toEqual([]);
    const collision = alerts.find((x) => x.message.includes('12345'));
    expect(collision?.severity).toBe('warning');
    expect(collision?.message).toMatch(/\blis\b/);
    expect(collision?.message).toMatch(/\boutreach\b/);
    // The tube's result is attached to neither order: no accession, so no note on Northside's order.
    await a.sim.sendMessage(['H|\\^&|||CHEM^1', 'P|1', 'O|1|12345||^^^GLU|R', 'R|1|^^^GLU|5.0|mmol/L||||F||op||20260302110000', 'L|1|N']);
    await waitFor(async () => (await l.all()).some((e) => e.event.type === 'test.completed'), 10_000, 50);
    const run = (await l.all()).filter((e) => e.event.type === 'test.completed');
    expect(run.map((e) => [e.event.partitionKey, (e.event.data as { accession?: string }).accession])).toEqual([['specimen:12345', undefined]]);
  });

  /**
   * One LIS over two links (a primary and a backup port): an add-on for the same patient and
   * clinic comes in on the second link. That is one lab order, not a collision: the tube is
   * answered with both tests and no alert is raised.
   */
  it('one LIS over two links: the same patient and clinic on both links is one order for the analyzer', async () => {
    const l = await lab('two-links-one-lis', { analyzers: [{ id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } } }] });
    const alerts: Array<{ code: string }> = [];
    l.gateway.telemetry.on('alert', (a) => alerts.push(a));
    expect(await l.send('lis', orm('HIS', '54321', ['GLU'], { mrn: 'H-5', clinic: 'CLINIC-A' }))).toContain('MSA|AA|');
    expect(await l.send('outreach', orm('HIS', '54321', ['TSH'], { mrn: 'H-5', clinic: 'CLINIC-A', id: 'backup-1' }))).toContain('MSA|AA|');
    const a = await connectAnalyzer(l.gateway, 'chem-1');
    closers.push(async () => {
      a.socket.destroy();
    });
    await a.sim.sendMessage(['H|\\^&|||CHEM^1|||||LIS||P|1|20260302100000', 'Q|1|^54321||ALL||||||||O', 'L|1|N']);
    const answer = await nextSession(a.sim, 5_000);
    const tests = orderRecords(answer).flatMap((o) => (o[4] ?? '').split('\\').map((t) => t.split('^')[3]));
    expect(tests.sort()).toEqual(['GLU', 'TSH']);
    expect(alerts.map((x) => x.code)).not.toContain('ACCESSION_COLLISION');
  });

  /**
   * The fix a site makes when `check` warns: `accessionPrefix: OUT` on the outreach link. Each
   * clinic has its own sale order (Northside `12345`, Harbour `OUT-12345`), the outreach's result
   * delivers and invoices Harbour's test, its cancel cancels Harbour's order, nothing is a dead
   * letter; an analyzer gets the outreach's tests for a barcode only the outreach printed (777),
   * and "no order" with an alert for the barcode both printed (12345).
   */
  it('with hl7[].accessionPrefix on the outreach link, each clinic has its own orders, results, cancels and invoices', async () => {
    const l = await lab('two-lis-prefix', {
      hl7: [
        { id: 'lis', listen: { host: '127.0.0.1', port: 0 } },
        { id: 'outreach', listen: { host: '127.0.0.1', port: 0 }, accessionPrefix: 'OUT' },
      ],
      analyzers: [{ id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } } }],
    });
    const alerts: Array<{ severity: string; message: string }> = [];
    l.gateway.telemetry.on('alert', (a) => alerts.push(a));
    expect(await l.send('lis', orm('HIS', '12345', ['GLU'], { mrn: 'H-1', clinic: 'CLINIC-A' }))).toContain('MSA|AA|');
    expect(await l.send('outreach', orm('OUT', '12345', ['GLU'], { mrn: 'O-9', clinic: 'CLINIC-B' }))).toContain('MSA|AA|');
    expect(await l.send('outreach', orm('OUT', '777', ['TSH'], { mrn: 'O-7', clinic: 'CLINIC-B' }))).toContain('MSA|AA|');
    await l.settled();
    const refs = (clinic: string): unknown[] => ordersOf(l.emu, clinic).map((o) => o['client_order_ref']);
    expect(refs('CLINIC-A')).toEqual(['12345']);
    expect(refs('CLINIC-B')).toEqual(['OUT-12345', 'OUT-777']);

    // The analyzer reads the barcodes as printed.
    const a = await connectAnalyzer(l.gateway, 'chem-1');
    closers.push(async () => {
      a.socket.destroy();
    });
    await a.sim.sendMessage(['H|\\^&|||CHEM^1|||||LIS||P|1|20260302100000', 'Q|1|^777||ALL||||||||O', 'L|1|N']);
    const only = orderRecords(await nextSession(a.sim, 5_000));
    expect(only.map((o) => [o[2], (o[4] ?? '').split('^')[3]])).toEqual([['777', 'TSH']]);
    await a.sim.sendMessage(['H|\\^&|||CHEM^1|||||LIS||P|1|20260302100100', 'Q|1|^12345||ALL||||||||O', 'L|1|N']);
    expect(orderRecords(await nextSession(a.sim, 5_000)).filter((o) => (o[4] ?? '') !== '')).toEqual([]);
    expect(alerts.find((x) => x.message.includes('OUT-12345'))?.severity).toBe('warning');

    expect(await l.send('outreach', oru('OUT', '12345', 'GLU', { mrn: 'O-9' }))).toContain('MSA|AA|');
    expect(await l.send('outreach', orm('OUT', '777', [], { mrn: 'O-7', clinic: 'CLINIC-B', control: 'CA' }))).toContain('MSA|AA|');
    await l.settled();
    expect(await dead(l)).toEqual([]);
    const northside = ordersOf(l.emu, 'CLINIC-A');
    expect(northside.map((o) => o['state'])).toEqual(['draft']);
    expect(linesOf(l.emu, northside.map((o) => o.id))).toEqual([{ code: 'GLU', qty: 1, delivered: 0 }]);
    expect(invoicesOf(l.emu, 'CLINIC-A')).toEqual([]);
    const harbour = ordersOf(l.emu, 'CLINIC-B');
    expect(harbour.map((o) => [o['client_order_ref'], o['state']])).toEqual([
      ['OUT-12345', 'draft'],
      ['OUT-777', 'cancel'],
    ]);
    expect(linesOf(l.emu, [harbour[0]!.id])).toEqual([{ code: 'GLU', qty: 1, delivered: 1 }]);
    expect(invoicesOf(l.emu, 'CLINIC-B')).toHaveLength(1);
  });
});
