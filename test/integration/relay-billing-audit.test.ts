import { describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import type { OdooEmulator } from '../odoo-emulator/index.ts';
import { billingRig, invoices, orm, oru, productCode, saleLines, saleOrders } from '../fixtures/relay/billing-rig.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';

/**
 * Billing as finance staff see it in Odoo: LIS messages (real HL7 through the LIS normalizer), the
 * gateway's own invoice-eligibility derivation in the store, the relay, and the Odoo emulator over
 * HTTP. The promises: no duplicate sale-order or invoice line, billing triggered exactly once (never
 * twice, never not at all), and a cancelled test never billed.
 */

/** Every customer-invoice line billed for the accession, across all its invoices (not cancelled). */
function invoiceLines(emu: OdooEmulator, accession: string): Array<{ code: string; quantity: number; price: number }> {
  const ids = invoices(emu, accession).filter((m) => m['state'] !== 'cancel').map((m) => m.id);
  return emu
    .records('account.move.line', [['move_id', 'in', ids]], { fields: ['product_id', 'quantity', 'price_unit', 'display_type'] })
    .filter((l) => !l['display_type'] || l['display_type'] === 'product')
    .map((l) => ({ code: productCode(emu, l['product_id']), quantity: Number(l['quantity']), price: Number(l['price_unit']) }));
}

const codes = (rows: Array<{ code: string }>): string[] => rows.map((r) => r.code).sort();
const deadReasons = (evs: StoredEvent[]): string[] => evs.filter((e) => e.state === 'dead').map((e) => `${e.event.type}: ${e.deadReason ?? ''}`);

// ------------------------------------------------------------------------------------------ tests

describe('billing audit: what finance sees in Odoo', () => {
  it('resends and corrections (same order twice, a new control id, OBX-11 C then F again) bill each test exactly once', async () => {
    const rig = await billingRig();
    await rig.receive(orm('B-100', ['GLU', 'TSH']));
    await rig.receive(orm('B-100', ['GLU', 'TSH'])); // the LIS resends the order with a new MSH-10
    await rig.receive(oru('B-100', 'GLU', 'F', '5.4'));
    await rig.receive(oru('B-100', 'TSH', 'F', '2.1'));
    await rig.receive(oru('B-100', 'GLU', 'C', '5.6')); // corrected after validation
    await rig.receive(oru('B-100', 'GLU', 'F', '5.6')); // validated again
    await rig.receive(oru('B-100', 'TSH', 'F', '2.1')); // resent, new control id
    await rig.settle('B-100');

    expect(deadReasons(await rig.events('B-100'))).toEqual([]);
    expect((await rig.events('B-100')).filter((e) => e.event.type === 'invoice.eligible')).toHaveLength(1);
    expect(saleOrders(rig.emu, 'B-100')).toHaveLength(1);
    const lines = saleLines(rig.emu, 'B-100');
    expect(codes(lines)).toEqual(['GLU', 'TSH']);
    expect(lines.every((l) => l.qty === 1 && l.delivered === 1)).toBe(true);
    expect(invoices(rig.emu, 'B-100')).toHaveLength(1);
    expect(invoiceLines(rig.emu, 'B-100')).toEqual(expect.arrayContaining([
      { code: 'GLU', quantity: 1, price: 8.5 },
      { code: 'TSH', quantity: 1, price: 18 },
    ]));
    expect(invoiceLines(rig.emu, 'B-100')).toHaveLength(2);
  });

  it('an order whose only open test is cancelled after the others were validated is still billed (once)', async () => {
    const rig = await billingRig();
    await rig.receive(orm('B-200', ['GLU', 'TSH']));
    await rig.receive(oru('B-200', 'GLU'));
    await rig.receive(orm('B-200', ['TSH'], 'CA')); // TSH cancelled: every remaining test is validated
    await rig.settle('B-200');

    const eligible = (await rig.events('B-200')).filter((e) => e.event.type === 'invoice.eligible');
    expect(eligible, 'invoice.eligible derived when the cancellation completes the order').toHaveLength(1);
    expect(codes(invoiceLines(rig.emu, 'B-200'))).toEqual(['GLU']);
  });

  it('a test cancelled after the order became billable is not on the draft invoice', async () => {
    const rig = await billingRig();
    await rig.receive(orm('B-300', ['GLU', 'TSH']));
    await rig.receive(oru('B-300', 'GLU'));
    await rig.receive(oru('B-300', 'TSH'));
    await rig.receive(orm('B-300', ['TSH'], 'CA')); // the LIS cancels TSH (e.g. result retracted)
    await rig.settle('B-300');

    expect(codes(saleLines(rig.emu, 'B-300'))).toEqual(['GLU']);
    expect(codes(invoiceLines(rig.emu, 'B-300'))).toEqual(['GLU']);
  });

  it('a test cancelled after its draft invoice exists in Odoo is taken off that draft invoice', async () => {
    const rig = await billingRig();
    await rig.receive(orm('B-310', ['GLU', 'TSH']));
    await rig.receive(oru('B-310', 'GLU'));
    await rig.receive(oru('B-310', 'TSH'));
    await rig.settle('B-310');
    expect(codes(invoiceLines(rig.emu, 'B-310'))).toEqual(['GLU', 'TSH']);
    expect(invoices(rig.emu, 'B-310')[0]?.['state']).toBe('draft');

    await rig.receive(orm('B-310', ['TSH'], 'CA'));
    await rig.settle('B-310');
    expect(codes(saleLines(rig.emu, 'B-310'))).toEqual(['GLU']);
    expect(codes(invoiceLines(rig.emu, 'B-310'))).toEqual(['GLU']);
  });

  it('a test cancelled after validation on a confirmed order is no longer invoiceable from the sale order', async () => {
    const rig = await billingRig({ autoConfirm: true });
    await rig.receive(orm('B-400', ['GLU', 'TSH']));
    await rig.receive(oru('B-400', 'TSH'));
    await rig.receive(orm('B-400', ['TSH'], 'CA'));
    await rig.settle('B-400');

    expect(saleOrders(rig.emu, 'B-400')[0]?.['state']).toBe('sale');
    const tsh = saleLines(rig.emu, 'B-400').find((l) => l.code === 'TSH');
    expect(tsh?.qty).toBe(0);
    // Odoo's "Create Invoice" bills qty_delivered − qty_invoiced on delivery-policy products.
    expect(tsh?.toInvoice, 'cancelled TSH must not be to invoice').toBe(0);
  });

  it('an add-on test ordered in a later message for the same accession gets its own sale-order line and is billed', async () => {
    const rig = await billingRig();
    await rig.receive(orm('B-500', ['GLU']));
    await rig.receive(orm('B-500', ['TSH'])); // add-on: a second ORM NW for the same placer number
    await rig.receive(oru('B-500', 'GLU'));
    await rig.receive(oru('B-500', 'TSH'));
    await rig.settle('B-500');

    expect(deadReasons(await rig.events('B-500'))).toEqual([]);
    const lines = saleLines(rig.emu, 'B-500');
    expect(codes(lines)).toEqual(['GLU', 'TSH']);
    expect(lines.every((l) => l.delivered === 1)).toBe(true);
    expect(invoiceLines(rig.emu, 'B-500')).toEqual(expect.arrayContaining([
      { code: 'GLU', quantity: 1, price: 8.5 },
      { code: 'TSH', quantity: 1, price: 18 },
    ]));
  });

  it('a test cancelled and then ordered again is billed when validated', async () => {
    const rig = await billingRig();
    await rig.receive(orm('B-550', ['GLU', 'TSH']));
    await rig.receive(orm('B-550', ['TSH'], 'CA'));
    await rig.receive(orm('B-550', ['TSH'])); // re-ordered
    await rig.receive(oru('B-550', 'GLU'));
    await rig.receive(oru('B-550', 'TSH'));
    await rig.settle('B-550');

    const eligible = (await rig.events('B-550')).find((e) => e.event.type === 'invoice.eligible');
    expect(eligible?.event.data).toMatchObject({ tests: expect.arrayContaining([expect.objectContaining({ code: 'TSH' })]) });
    expect(codes(invoiceLines(rig.emu, 'B-550'))).toEqual(['GLU', 'TSH']);
  });

  it('results that reach the gateway before their order are still billed once the order arrives', async () => {
    const rig = await billingRig();
    await rig.receive(oru('B-600', 'GLU'));
    await rig.receive(orm('B-600', ['GLU']));
    await rig.settle('B-600');

    expect(deadReasons(await rig.events('B-600'))).toEqual([]);
    expect(saleLines(rig.emu, 'B-600')).toMatchObject([{ code: 'GLU', qty: 1, delivered: 1 }]);
    expect(codes(invoiceLines(rig.emu, 'B-600'))).toEqual(['GLU']);
  });

  it('after the gateway drafted the invoice, confirming the quotation does not offer the same tests for invoicing again', async () => {
    const rig = await billingRig();
    await rig.receive(orm('B-700', ['GLU', 'CRP']));
    await rig.receive(oru('B-700', 'GLU'));
    await rig.receive(oru('B-700', 'CRP'));
    await rig.settle('B-700');
    expect(invoices(rig.emu, 'B-700')).toHaveLength(1);

    // A salesperson confirms the quotation (the drafts-only default leaves this to a human).
    const so = saleOrders(rig.emu, 'B-700')[0]!;
    rig.emu.call('sale.order', 'action_confirm', [[so.id]]);
    const lines = saleLines(rig.emu, 'B-700');
    expect(lines.map((l) => l.toInvoice), 'qty_to_invoice per line').toEqual([0, 0]);
    expect(lines.map((l) => l.invoiced), 'qty_invoiced per line').toEqual([1, 1]);
    // "Create Invoice" on the order must find nothing left to invoice.
    const wizard = rig.emu.call('sale.advance.payment.inv', 'create', [{ advance_payment_method: 'delivered', sale_order_ids: [[6, 0, [so.id]]] }]);
    expect(() => rig.emu.call('sale.advance.payment.inv', 'create_invoices', [[wizard as number]])).toThrow(/no invoiceable line/);
  });

  it('the draft invoice totals what the quotation says (discount and taxes agreed on the order)', async () => {
    const rig = await billingRig();
    await rig.receive(orm('B-800', ['GLU', 'TSH']));
    await rig.settle('B-800');
    // Finance agrees a 10 % discount and the 15 % sales tax on the quotation before results come in.
    const tax = rig.emu.records('account.tax', [['name', '=', '15%'], ['type_tax_use', '=', 'sale']])[0]!['id'] as number;
    const soLineIds = saleLines(rig.emu, 'B-800').map((l) => l.id);
    rig.emu.call('sale.order.line', 'write', [soLineIds, { discount: 10, tax_id: [[6, 0, [tax]]] }]);
    const so = saleOrders(rig.emu, 'B-800')[0]!;
    const soTotal = Number(rig.emu.records('sale.order', [['id', '=', so.id]], { fields: ['amount_total'] })[0]!['amount_total']);

    await rig.receive(oru('B-800', 'GLU'));
    await rig.receive(oru('B-800', 'TSH'));
    await rig.settle('B-800');
    const inv = invoices(rig.emu, 'B-800');
    expect(inv).toHaveLength(1);
    const invTotal = Number(rig.emu.records('account.move', [['id', '=', inv[0]!.id]], { fields: ['amount_total'] })[0]!['amount_total']);
    expect(soTotal).toBe(Math.round((8.5 + 18) * 0.9 * 1.15 * 100) / 100);
    expect(invTotal).toBe(soTotal);
  });

  it('the draft invoice is in the currency of its sale order', async () => {
    const rig = await billingRig();
    await rig.receive(orm('B-900', ['GLU']));
    await rig.settle('B-900');
    // The clinic is billed in USD (its pricelist's currency on the quotation).
    const usd = rig.emu.records('res.currency', [['name', '=', 'USD']])[0]!['id'] as number;
    const so = saleOrders(rig.emu, 'B-900')[0]!;
    rig.emu.call('sale.order', 'write', [[so.id], { currency_id: usd }]);

    await rig.receive(oru('B-900', 'GLU'));
    await rig.settle('B-900');
    const inv = invoices(rig.emu, 'B-900');
    expect(inv).toHaveLength(1);
    expect(inv[0]!['currency_id']).toBe(usd);
  });

  it('a customer reference typed on the quotation neither duplicates its lines on an order resend nor stops billing', async () => {
    const rig = await billingRig();
    await rig.receive(orm('B-1000', ['GLU', 'TSH']));
    await rig.settle('B-1000');
    // Sales staff put the clinic's purchase-order number in "Customer Reference".
    const so = saleOrders(rig.emu, 'B-1000')[0]!;
    rig.emu.call('sale.order', 'write', [[so.id], { client_order_ref: 'PO-4711' }]);

    await rig.receive(orm('B-1000', ['GLU', 'TSH'])); // the LIS resends the order (new MSH-10)
    await rig.receive(oru('B-1000', 'GLU'));
    await rig.receive(oru('B-1000', 'TSH'));
    await rig.settle('B-1000');

    expect(deadReasons(await rig.events('B-1000'))).toEqual([]);
    expect(rig.emu.count('sale.order', [['partner_id', '!=', false], ['origin', '=', 'lab-gateway B-1000']])).toBe(1);
    const lines = rig.emu.records('sale.order.line', [['order_id', '=', so.id]], { fields: ['product_id', 'qty_delivered'] });
    expect(lines.map((l) => productCode(rig.emu, l['product_id'])).sort(), 'one line per ordered test').toEqual(['GLU', 'TSH']);
    expect(lines.every((l) => Number(l['qty_delivered']) === 1)).toBe(true);
  });

  it('a resend of an order whose history retention has pruned, its Customer Reference edited, still finds the order (by its source document): no duplicate lines', async () => {
    const rig = await billingRig();
    await rig.receive(orm('B-1050', ['GLU', 'TSH']));
    await rig.settle('B-1050');
    const so = saleOrders(rig.emu, 'B-1050')[0]!;
    rig.emu.call('sale.order', 'write', [[so.id], { client_order_ref: 'PO-4712' }]);
    // A year later the gateway no longer holds the delivered order message.
    await rig.store.prune(Date.now() + 400 * 86_400_000);
    expect((await rig.events('B-1050')).filter((e) => e.event.type === 'order.created')).toEqual([]);
    await rig.receive(orm('B-1050', ['GLU', 'TSH']));
    await rig.settle('B-1050');
    const lines = rig.emu.records('sale.order.line', [['order_id', '=', so.id]], { fields: ['product_id'] });
    expect(lines.map((l) => productCode(rig.emu, l['product_id'])).sort(), 'one line per ordered test').toEqual(['GLU', 'TSH']);
    expect(rig.emu.count('sale.order', [['origin', '=', 'lab-gateway B-1050']])).toBe(1);
  });

  it('an invoice whose creation answer was lost is not created again after finance edited its reference', async () => {
    let skew = 0;
    const rig = await billingRig({}, { timeoutMs: 300, ambiguousSettleMs: 600_000, clock: () => Date.now() + skew });
    await rig.receive(orm('B-1100', ['GLU', 'TSH']));
    await rig.settle('B-1100');
    // Odoo commits the invoice but its answer never reaches the gateway.
    rig.emu.faults.next(1, 'account.move', 'load').timeoutAfterCommit(1500);
    await rig.receive(oru('B-1100', 'GLU'));
    await rig.receive(oru('B-1100', 'TSH'));
    const invoiceEvent = async (): Promise<StoredEvent | undefined> => (await rig.events('B-1100')).find((e) => e.event.type === 'invoice.eligible');
    await waitFor(async () => (await invoiceEvent())?.state === 'retrying', 20_000, 20);
    expect((await invoiceEvent())?.ambiguous).toBe(true);
    const drafts = rig.emu.records('account.move', [['move_type', '=', 'out_invoice'], ['ref', '=', 'lab-gateway B-1100']]);
    expect(drafts).toHaveLength(1);
    // Finance opens the fresh draft and types the clinic's PO number as its reference.
    rig.emu.call('account.move', 'write', [[drafts[0]!['id']], { ref: 'PO-4711' }]);

    skew = 700_000; // the settle time has passed: the relay looks the invoice up and resolves the event
    rig.relay.notify();
    await waitFor(async () => (await invoiceEvent())?.state === 'delivered' || (await invoiceEvent())?.state === 'dead', 20_000, 20);

    const all = rig.emu.records('account.move', [['move_type', '=', 'out_invoice']]);
    expect(all, 'one customer invoice').toHaveLength(1);
    const lines = rig.emu.records('account.move.line', [['move_id', 'in', all.map((m) => m['id'] as number)]], { fields: ['product_id'] });
    expect(lines.map((l) => productCode(rig.emu, l['product_id'])).sort(), 'one invoice line per test').toEqual(['GLU', 'TSH']);
  });

  it('a wholly cancelled order is never invoiced, even when a result is validated afterwards', async () => {
    const rig = await billingRig();
    await rig.receive(orm('B-1200', ['GLU', 'TSH']));
    await rig.receive(oru('B-1200', 'GLU'));
    await rig.receive(orm('B-1200', [], 'CA'));
    await rig.receive(oru('B-1200', 'TSH'));
    await rig.settle('B-1200');

    expect(deadReasons(await rig.events('B-1200'))).toEqual([]);
    expect((await rig.events('B-1200')).some((e) => e.event.type === 'invoice.eligible')).toBe(false);
    expect(saleOrders(rig.emu, 'B-1200').map((o) => o['state'])).toEqual(['cancel']);
    expect(invoices(rig.emu, 'B-1200')).toHaveLength(0);
  });

  it('with autoConfirm, lost answers and a lock error in the middle of order → confirm → invoice → post leave one order and one posted invoice, lines once', async () => {
    const rig = await billingRig({ autoConfirm: true }, { timeoutMs: 300 });
    const f = rig.emu.faults;
    f.next(1, 'sale.order', 'load').timeoutAfterCommit(800);
    f.next(1, 'sale.order', 'action_confirm').lockError();
    f.next(1, 'account.move', 'load').resetAfterCommit();
    f.next(1, 'account.move', 'action_post').timeoutAfterCommit(800);
    await rig.receive(orm('B-1300', ['GLU', 'CRP']));
    await rig.receive(oru('B-1300', 'GLU'));
    await rig.receive(oru('B-1300', 'CRP'));
    await rig.settle('B-1300');

    expect(f.log.map((e) => e.action).sort()).toEqual(['lock', 'reset-after-commit', 'timeout-after-commit', 'timeout-after-commit']);
    expect(deadReasons(await rig.events('B-1300'))).toEqual([]);
    const orders = saleOrders(rig.emu, 'B-1300');
    expect(orders.map((o) => o['state'])).toEqual(['sale']);
    expect(saleLines(rig.emu, 'B-1300')).toMatchObject([
      { code: 'GLU', qty: 1, delivered: 1, price: 8.5 },
      { code: 'CRP', qty: 1, delivered: 1, price: 12 },
    ]);
    const inv = invoices(rig.emu, 'B-1300');
    expect(inv.map((m) => m['state'])).toEqual(['posted']);
    expect(invoiceLines(rig.emu, 'B-1300')).toEqual([
      { code: 'GLU', quantity: 1, price: 8.5 },
      { code: 'CRP', quantity: 1, price: 12 },
    ]);
  });
});
