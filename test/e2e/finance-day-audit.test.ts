/**
 * Finance day audit: whole days of a lab, driven through the real gateway (MLLP listener, LevelDB
 * store, invoice-eligibility derivation, relay) against the Odoo emulator over HTTP, then Odoo's
 * final state (sale orders, lines, quantities, invoices, invoice lines) compared with what is
 * billable. The promises: no duplicate sale-order or invoice line, billing triggered exactly once
 * (never twice, never not at all), and a cancelled test never billed (DESIGN.md §2, §3;
 * gateway/src/relay/README.md "Billing: each test exactly once, never a cancelled one").
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/src/gateway.ts';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import type { OdooEmulator, OdooVersion } from '../odoo-emulator/index.ts';
import { invoices, productCode, saleLines, saleOrders } from '../fixtures/relay/billing-rig.ts';
import { startLabDay } from '../fixtures/relay/lab-day.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';

/**
 * The invoicing slot (micro-batch window) of the tests that must act inside one: long enough for a
 * few messages, a sale order and its cancellation to go through on a loaded CI machine.
 */
const SLOT_MS = 20_000;

// ------------------------------------------------------------------------------------------ rig


interface Day {
  gateway: Gateway;
  emu: OdooEmulator;
  /** Send one HL7 message on the LIS link; asserts its AA. */
  send(text: string): Promise<void>;
  events(accession: string): Promise<StoredEvent[]>;
}

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

async function labDay(id: string, relay: Record<string, unknown> = {}, version: OdooVersion = 17): Promise<Day> {
  const day = await startLabDay(id, closers, {}, { version, relay: { maxAttempts: 5, backoff: { initialMs: 20, maxMs: 200, multiplier: 2, jitter: 0 }, ...relay } });
  return {
    gateway: day.gateway,
    emu: day.emu,
    async send(text) {
      const controlId = text.split('\r')[0]!.split('|')[9]!;
      expect(await day.send('lis', text), `ACK of ${controlId}`).toContain(`MSA|AA|${controlId}`);
    },
    events: (acc) => day.gateway.store!.eventsByCorrelation(acc),
  };
}

/** Every event of the accessions resolved: delivered or dead, or pending behind a dead one of its partition. */
async function settled(day: Day, ...accessions: string[]): Promise<void> {
  await waitFor(
    async () => {
      for (const acc of accessions) {
        const evs = [...(await day.events(acc))].sort((a, b) => (a.event.id < b.event.id ? -1 : 1));
        if (evs.length === 0) return false;
        const deadIn = new Set<string>();
        for (const e of evs) {
          if (e.state === 'dead') deadIn.add(e.event.partitionKey);
          else if (e.state !== 'delivered' && !(e.state === 'pending' && deadIn.has(e.event.partitionKey))) return false;
        }
      }
      return true;
    },
    30_000,
    50,
  );
}

// ------------------------------------------------------------------------------------- messages

let seq = 0;
const MSH = (type: string, id: string, at = '20260302093000'): string => `MSH|^~\\&|LIS|LAB|GW|LAB|${at}||${type}|${id}|P|2.5.1`;
const PID = (mrn: string): string => `PID|1||${mrn}^^^LAB^MR`;

/** ORM^O01 from the LIS: one ORC/OBR per test (none: the ORC alone, the whole order). */
function orm(accession: string, tests: string[], control: 'NW' | 'CA' | 'XO' = 'NW', opts: { clinic?: string; mrn?: string; orc9?: string } = {}): string {
  const id = `FD-ORM-${++seq}`;
  const orc = `ORC|${control}|${accession}|F-${accession}||||||${opts.orc9 ?? '20260302092500'}||||||||||||${opts.clinic ?? 'CLINIC-A'}`;
  if (tests.length === 0) return [MSH('ORM^O01^ORM_O01', id), PID(opts.mrn ?? 'MRN-1'), orc].join('\r');
  const lines = tests.flatMap((code, i) => [orc, `OBR|${i + 1}|${accession}|F-${accession}|${code}^${code} test`]);
  return [MSH('ORM^O01^ORM_O01', id), PID(opts.mrn ?? 'MRN-1'), ...lines].join('\r');
}

/** ORU^R01: one OBR/OBX for `test` with OBX-11 `status` (F final, P preliminary, C corrected). */
function oru(accession: string, test: string, status: 'F' | 'P' | 'C' = 'F', value = '5.4'): string {
  const id = `FD-ORU-${++seq}`;
  return [
    MSH('ORU^R01^ORU_R01', id),
    PID('MRN-1'),
    `ORC|RE|${accession}|F-${accession}`,
    `OBR|1|${accession}|F-${accession}|${test}^${test} test|||20260302100000|||||||||||||||20260302110000|||${status}`,
    `OBX|1|NM|${test}^${test} test||${value}|mmol/L|||||${status}`,
  ].join('\r');
}

// ---------------------------------------------------------------------------- what finance sees

/** Every product line of the accession's customer invoices that are not cancelled. */
function billed(emu: OdooEmulator, accession: string): Array<{ code: string; quantity: number }> {
  const ids = invoices(emu, accession).filter((m) => m['state'] !== 'cancel').map((m) => m.id);
  return emu
    .records('account.move.line', [['move_id', 'in', ids]], { fields: ['product_id', 'quantity', 'display_type'] })
    .filter((l) => !l['display_type'] || l['display_type'] === 'product')
    .map((l) => ({ code: productCode(emu, l['product_id']), quantity: Number(l['quantity']) }));
}

const deadReasons = (evs: StoredEvent[]): string[] => evs.filter((e) => e.state === 'dead').map((e) => `${e.event.type}: ${e.deadReason ?? ''}`);

// ------------------------------------------------------------------------------------------ tests

describe('finance day: what finance sees in Odoo after a day of LIS traffic', () => {
  /**
   * What finance sees: the physician withdraws a whole order (ORC-1 CA, no OBR) after both results
   * were validated but before the scheduled invoicing slot. The sale order is cancelled in Odoo at
   * once, and then, at the slot, the gateway drafts a customer invoice billing GLU and TSH of that
   * cancelled order (linked to its lines): the clinic is billed for tests that were withdrawn.
   * Broken promise: relay README "Billing: each test exactly once, never a cancelled one"; DESIGN.md
   * §3 (order.cancelled cancels the order's lines; invoice.eligible defaults to a scheduled slot, so
   * a cancellation between readiness and the slot is an ordinary day).
   * Cause: rules/invoice-eligible.ts:55-89 bills the sale order "as it is now" but never looks at its
   * state, and invoiceLines (:156) takes every line with ordered − invoiced > 0; a whole-order cancel
   * of a quotation is applied with sale.order.action_cancel (rules/order-cancelled.ts:67), which
   * leaves the lines at quantity 1. earlierOrderEventsDelivered only waits for order events stored
   * BEFORE the invoice.eligible, and nothing revisits the eligibility afterwards.
   * Fix: in the invoice rule, resolve an invoice.eligible whose sale order is cancelled (state
   * 'cancel') as delivered with "order cancelled: nothing to invoice" (and skip lines of cancelled
   * orders in invoiceLines); better still, re-walk billingState at post time and bill only tests
   * still open (an order.cancelled stored after the eligibility voids it).
   */
  it('an order the LIS cancels as a whole after its results were validated gets no draft invoice when its invoicing slot comes', async () => {
    const day = await labDay('fd-cancel-after-ready', { syncModes: { 'invoice.eligible': 'micro-batch' }, microBatchWindowMs: SLOT_MS });
    // Start right after a window boundary so the invoice waits for most of a window.
    await waitFor(() => Date.now() % SLOT_MS < 300, SLOT_MS + 5_000, 5);
    await day.send(orm('FD-100', ['GLU', 'TSH']));
    await day.send(oru('FD-100', 'GLU'));
    await day.send(oru('FD-100', 'TSH')); // every test validated: invoice.eligible, due at the window's end
    await day.send(orm('FD-100', [], 'CA')); // the physician withdraws the whole order
    await waitFor(() => saleOrders(day.emu, 'FD-100')[0]?.['state'] === 'cancel', 10_000, 20);
    const inv = (await day.events('FD-100')).find((e) => e.event.type === 'invoice.eligible');
    expect(inv?.state, 'precondition: the invoice is still waiting for its slot when the order is cancelled').toBe('pending');
    await settled(day, 'FD-100');

    expect(deadReasons(await day.events('FD-100'))).toEqual([]);
    expect(saleOrders(day.emu, 'FD-100').map((o) => o['state'])).toEqual(['cancel']);
    expect(billed(day.emu, 'FD-100'), 'a cancelled order must not be on a customer invoice').toEqual([]);
  }, 90_000);

  /**
   * What finance sees: a STAT sample is run and its preliminary then final result reach the
   * gateway before the ward's order (the LIS transmits the ORM after the ORU: results before their
   * order). The order never reaches Odoo: no sale order, no invoice, ever. The preliminary result
   * (OBX-11 P → test.completed, a chatter note) heads the partition order:FD-200, cannot be noted
   * without a sale order, is retried and dead-lettered after relay.maxAttempts (12 by default,
   * ~20 min), and a dead head blocks its partition: the order.created behind it, which would have
   * created the sale order the note is waiting for, is never posted. The invoice.eligible waits
   * for that order for ever (uncharged).
   * Broken promise: relay README "result.validated whose order or line is not in Odoo yet ... Before,
   * a result that came before its order was dead at once and the order stayed blocked behind it"
   * (fixed for result.validated only); DESIGN.md §2 (billing exactly once, never not at all).
   * Cause: rules/milestone-notes.ts:40-41 fails every milestone with noSaleOrder, with no look at the
   * queue, while the order that creates the sale order follows in the same partition (relay.ts
   * #failureOutcome charges it; relay.ts:617 frees only waitsForQueued errors).
   * Fix: as result-validated.ts `orderFollows`: when a later, not delivered order.created of the
   * accession is in the store, resolve the milestone without a write (or post its note once the
   * order is in: e.g. fail with `waitsForQueued` only after the order was posted, or let
   * order-created.ts post the earlier milestones' notes), so the order is never stuck behind it.
   */
  it('a preliminary result that reaches the gateway before its order does not keep the order out of Odoo for good', async () => {
    const day = await labDay('fd-prelim-first');
    await day.send(oru('FD-200', 'GLU', 'P', '5.1'));
    await day.send(oru('FD-200', 'GLU', 'F', '5.2'));
    await day.send(orm('FD-200', ['GLU']));
    // Until everything is in Odoo, or something is given up on (a dead letter).
    await waitFor(async () => {
      const evs = await day.events('FD-200');
      return evs.some((e) => e.state === 'dead') || (evs.length > 0 && evs.every((e) => e.state === 'delivered'));
    }, 30_000, 50);

    expect(deadReasons(await day.events('FD-200'))).toEqual([]);
    expect(saleOrders(day.emu, 'FD-200')).toHaveLength(1);
    expect(saleLines(day.emu, 'FD-200').map((l) => ({ code: l.code, qty: l.qty, delivered: l.delivered }))).toEqual([{ code: 'GLU', qty: 1, delivered: 1 }]);
    expect(billed(day.emu, 'FD-200')).toEqual([{ code: 'GLU', quantity: 1 }]);
    // The preliminary result still shows on the order's chatter, once: the order posted its note.
    const notes = day.emu.records('mail.message', [['model', '=', 'sale.order'], ['res_id', '=', saleOrders(day.emu, 'FD-200')[0]!.id], ['body', 'ilike', 'lgw:']]);
    const lines = notes.flatMap((m) => String(m['body']).split('<br>')).filter((l) => l.includes('test GLU completed'));
    expect(lines.filter((l) => l.includes('(status P)')), 'the preliminary milestone on the chatter').toHaveLength(1);
  }, 60_000);

  /**
   * What finance sees (relay.autoConfirm): the LIS cancels a whole order by mistake and sends it
   * again (ORC-1 NW, new MSH-10); the test is run and validated. In Odoo the confirmed order has
   * its GLU line back at quantity 1, delivered 1, "to invoice" 1 — the gateway put it back and
   * marked it delivered — but no invoice ever comes, and every event is "delivered": nobody is
   * told. (With the default draft orders the same day ends silently too: the re-sent order is
   * "already in Odoo" on the cancelled quotation, its result is written on it, nothing is billed.)
   * Broken promise: "billing must be triggered exactly once, never twice or never"; relay README:
   * order.created on an existing order restores "a line a cancellation set to 0 on a confirmed
   * order", and "a cancelled sale order is not reopened: a new test for it is a dead letter for an
   * operator" — here the test is billable in Odoo and yet never billed nor reported.
   * Cause: events/invoice-eligibility.ts:62 sets wholeOrderCancelled for good and :100 never derives
   * invoice.eligible again, while rules/order-created.ts:203-214 reopens the order's lines (and, on
   * a cancelled quotation, answers "already in Odoo" before its cancel check).
   * Fix: both sides agree that an order.created after a whole-order cancel re-opens the order (the
   * LIS ordered it again): billingState opens its tests again, as for a test cancelled and ordered
   * again, and the relay brings the sale order back (next tests: a cancelled quotation).
   */
  it('an order cancelled as a whole and sent again by the LIS is billed once when validated, never silently dropped', async () => {
    const day = await labDay('fd-reorder-after-cancel', { autoConfirm: true });
    await day.send(orm('FD-310', ['GLU']));
    await settled(day, 'FD-310');
    await day.send(orm('FD-310', [], 'CA'));
    await settled(day, 'FD-310');
    await day.send(orm('FD-310', ['GLU'], 'NW', { orc9: '20260302101500' })); // sent again
    await day.send(oru('FD-310', 'GLU'));
    await settled(day, 'FD-310');

    const lines = saleLines(day.emu, 'FD-310');
    expect(lines.map((l) => ({ code: l.code, qty: l.qty, delivered: l.delivered }))).toEqual([{ code: 'GLU', qty: 1, delivered: 1 }]);
    // The re-order opens the order again (events/invoice-eligibility.ts): billed once, nothing dead.
    expect(deadReasons(await day.events('FD-310'))).toEqual([]);
    expect(billed(day.emu, 'FD-310'), 'GLU is ordered, delivered and "to invoice" in Odoo: billed once').toEqual([{ code: 'GLU', quantity: 1 }]);
  }, 60_000);

  /**
   * The same day with draft orders (the default): the whole-order cancel cancels the quotation
   * (action_cancel keeps its lines), and the LIS then orders GLU again, without TSH. Before, the
   * re-order was "already in Odoo" on the cancelled quotation, its result was written on it, and
   * nothing was billed, with every event delivered. Now the quotation is set back to quotation
   * (action_draft, every version), keeps only GLU, and GLU is billed once. Odoo 16 (JSON-RPC, no
   * body_is_html) and 19 (JSON-2) span the versions.
   */
  for (const version of [16, 19] as const) {
    it(`a quotation cancelled as a whole and ordered again comes back with only the tests ordered again, billed once (Odoo ${version})`, async () => {
      const day = await labDay(`fd-requote-${version}`, {}, version);
      const acc = `FD-32${version}`;
      await day.send(orm(acc, ['GLU', 'TSH']));
      await settled(day, acc);
      await day.send(orm(acc, [], 'CA'));
      await settled(day, acc);
      expect(saleOrders(day.emu, acc).map((o) => o['state']), 'precondition: the quotation is cancelled').toEqual(['cancel']);
      await day.send(orm(acc, ['GLU'], 'NW', { orc9: '20260302101500' }));
      await day.send(oru(acc, 'GLU'));
      await settled(day, acc);

      expect(deadReasons(await day.events(acc))).toEqual([]);
      expect(saleOrders(day.emu, acc).map((o) => o['state'])).toEqual(['draft']);
      expect(saleLines(day.emu, acc).map((l) => ({ code: l.code, qty: l.qty, delivered: l.delivered }))).toEqual([{ code: 'GLU', qty: 1, delivered: 1 }]);
      expect(billed(day.emu, acc)).toEqual([{ code: 'GLU', quantity: 1 }]);
    }, 60_000);
  }

  /**
   * Billed once across two eligibilities: GLU is validated (invoice.eligible, waiting for its
   * slot), the LIS cancels the whole order, orders GLU again and validates it again (a second
   * invoice.eligible). Both post at the slot: the first must not bill what the cancellation took
   * away, the second bills the re-ordered GLU, and finance sees one GLU line.
   */
  it('an order cancelled and ordered again before its invoicing slot is billed once, not twice', async () => {
    const day = await labDay('fd-reorder-before-slot', { syncModes: { 'invoice.eligible': 'micro-batch' }, microBatchWindowMs: SLOT_MS });
    await waitFor(() => Date.now() % SLOT_MS < 300, SLOT_MS + 5_000, 5);
    await day.send(orm('FD-330', ['GLU']));
    await day.send(oru('FD-330', 'GLU'));
    await day.send(orm('FD-330', [], 'CA'));
    await day.send(orm('FD-330', ['GLU'], 'NW', { orc9: '20260302101500' }));
    await day.send(oru('FD-330', 'GLU', 'F', '5.6'));
    const eligible = (await day.events('FD-330')).filter((e) => e.event.type === 'invoice.eligible');
    expect(eligible.map((e) => e.state), 'precondition: both eligibilities wait for the slot').toEqual(['pending', 'pending']);
    await settled(day, 'FD-330');

    expect(deadReasons(await day.events('FD-330'))).toEqual([]);
    expect(saleLines(day.emu, 'FD-330').map((l) => ({ code: l.code, qty: l.qty, delivered: l.delivered }))).toEqual([{ code: 'GLU', qty: 1, delivered: 1 }]);
    expect(billed(day.emu, 'FD-330')).toEqual([{ code: 'GLU', quantity: 1 }]);
  }, 90_000);
});
