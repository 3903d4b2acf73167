import { describe, expect, it } from 'vitest';
import type { OdooEmulator } from '../odoo-emulator/index.ts';
import { billingRig, invoices, orm, oru, productCode, saleLines, saleOrders } from '../fixtures/relay/billing-rig.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';

/**
 * A test the LIS cancels after its invoice was posted: the gateway never changes a posted invoice
 * and dead-letters the cancellation, asking finance for a credit note. Real HL7 through the LIS
 * normalizer, the store, the relay and the Odoo emulator over HTTP (Odoo 17, orders confirmed and
 * invoices posted by the gateway: relay.autoConfirm).
 */

/** Finance credits `code` of a posted invoice: the credit-note wizard, the other lines removed, posted (unless `post` is false). Returns the credit note's id. */
function creditNote(emu: OdooEmulator, invoiceId: number, code: string, post = true): number {
  const wizard = emu.call('account.move.reversal', 'create', [{ move_ids: [[6, 0, [invoiceId]]], reason: 'test cancelled by the clinician' }]) as number;
  const credit = (emu.call('account.move.reversal', 'refund_moves', [[wizard]]) as { res_id: number }).res_id;
  const drop = emu.records('account.move.line', [['move_id', '=', credit]], { fields: ['id', 'product_id'] }).filter((l) => productCode(emu, l['product_id']) !== code);
  emu.call('account.move', 'write', [[credit], { invoice_line_ids: drop.map((l) => [2, l['id']]) }]);
  if (post) emu.call('account.move', 'action_post', [[credit]]);
  return credit;
}

describe('a test cancelled after its invoice was posted', () => {
  /**
   * What finance saw: CRP of accession K-100 was invoiced and posted, then the LIS cancelled it.
   * The gateway's dead letter asked for a credit note; finance issued it, then replayed the
   * event. The replay was dead again ("still billed on posted invoice", the credit note itself
   * named as a posted invoice), and the confirmed order's CRP line kept its delivered quantity:
   * with the credit note, Odoo counted CRP "to invoice" again and the order's "Create Invoice"
   * billed the cancelled test a second time.
   * Promise broken: a cancelled test is never billed (relay/README.md, billing).
   */
  it('once finance credited it, the replayed cancellation takes it off the order: nothing left to invoice', async () => {
    const rig = await billingRig({ autoConfirm: true });
    await rig.receive(orm('K-100', ['GLU', 'CRP']));
    await rig.receive(oru('K-100', 'GLU'));
    await rig.receive(oru('K-100', 'CRP'));
    await rig.settle('K-100');
    const [invoice] = invoices(rig.emu, 'K-100');
    expect(invoice?.['state']).toBe('posted');

    await rig.receive(orm('K-100', ['CRP'], 'CA'));
    await rig.settle('K-100');
    const dead = (await rig.events('K-100')).filter((e) => e.state === 'dead');
    expect(dead.map((e) => e.event.type)).toEqual(['order.cancelled']);
    expect(dead[0]!.deadReason).toMatch(/credit note/);

    creditNote(rig.emu, invoice!.id, 'CRP');
    await rig.store.replay(dead[0]!.event.id, 'finance', 'credit note issued in Odoo');
    rig.relay.notify();
    await waitFor(async () => (await rig.events('K-100')).every((e) => e.state === 'delivered' || e.state === 'dead') && rig.store.stats().inFlight === 0, 20_000, 20);

    expect((await rig.events('K-100')).filter((e) => e.state === 'dead').map((e) => e.deadReason)).toEqual([]);
    const crp = saleLines(rig.emu, 'K-100').find((l) => l.code === 'CRP');
    expect(crp, 'the credited CRP line').toMatchObject({ qty: 0, delivered: 0, invoiced: 0, toInvoice: 0 });
    expect(saleOrders(rig.emu, 'K-100')[0]?.['invoice_status'], 'the order has nothing to invoice').not.toBe('to invoice');
  });

  /** The same on a quotation (the default: drafts only) whose invoice finance posted by hand. */
  it('on a quotation, the credited test keeps nothing to invoice once the order is confirmed', async () => {
    const rig = await billingRig();
    await rig.receive(orm('K-200', ['GLU', 'CRP']));
    await rig.receive(oru('K-200', 'GLU'));
    await rig.receive(oru('K-200', 'CRP'));
    await rig.settle('K-200');
    const [invoice] = invoices(rig.emu, 'K-200');
    rig.emu.call('account.move', 'action_post', [[invoice!.id]]);

    await rig.receive(orm('K-200', ['CRP'], 'CA'));
    await rig.settle('K-200');
    const dead = (await rig.events('K-200')).filter((e) => e.state === 'dead');
    expect(dead.map((e) => e.event.type)).toEqual(['order.cancelled']);
    creditNote(rig.emu, invoice!.id, 'CRP');
    await rig.store.replay(dead[0]!.event.id, 'finance', 'credit note issued in Odoo');
    rig.relay.notify();
    await waitFor(async () => (await rig.events('K-200')).every((e) => e.state === 'delivered' || e.state === 'dead') && rig.store.stats().inFlight === 0, 20_000, 20);
    expect((await rig.events('K-200')).filter((e) => e.state === 'dead').map((e) => e.deadReason)).toEqual([]);

    // A salesperson confirms the quotation: "Create Invoice" must find nothing for CRP.
    rig.emu.call('sale.order', 'action_confirm', [[saleOrders(rig.emu, 'K-200')[0]!.id]]);
    expect(saleLines(rig.emu, 'K-200').map((l) => [l.code, l.toInvoice])).toEqual([['GLU', 0], ['CRP', 0]]);
  });

  /**
   * What finance saw: the dead letter asked for a credit note; finance drafted it (to check it
   * before posting) and the event was replayed meanwhile. The gateway took the draft credit note
   * for a draft invoice of the cancelled test: it removed the CRP line from it (here, its only
   * line: it cancelled the credit note), and the event was dead again. Finance's own document was
   * changed by the gateway.
   * Promise broken: the gateway never changes finance's documents; a posted invoice is credited by
   * finance (relay/README.md, billing).
   */
  it('leaves a credit note finance has not posted yet as it is, and waits for it', async () => {
    const rig = await billingRig({ autoConfirm: true });
    await rig.receive(orm('K-300', ['GLU', 'CRP']));
    await rig.receive(oru('K-300', 'GLU'));
    await rig.receive(oru('K-300', 'CRP'));
    await rig.settle('K-300');
    const [invoice] = invoices(rig.emu, 'K-300');
    await rig.receive(orm('K-300', ['CRP'], 'CA'));
    await rig.settle('K-300');
    const dead = (await rig.events('K-300')).filter((e) => e.state === 'dead');
    expect(dead.map((e) => e.event.type)).toEqual(['order.cancelled']);

    const credit = creditNote(rig.emu, invoice!.id, 'CRP', false);
    const linesBefore = rig.emu.records('account.move.line', [['move_id', '=', credit]], { fields: ['id', 'product_id', 'quantity'] });
    await rig.store.replay(dead[0]!.event.id, 'finance', 'credit note drafted in Odoo');
    rig.relay.notify();
    await waitFor(async () => (await rig.events('K-300')).every((e) => e.state === 'delivered' || e.state === 'dead') && rig.store.stats().inFlight === 0, 20_000, 20);

    const [note] = rig.emu.records('account.move', [['id', '=', credit]], { fields: ['state', 'move_type'] });
    expect(note, "finance's draft credit note").toMatchObject({ state: 'draft', move_type: 'out_refund' });
    expect(rig.emu.records('account.move.line', [['move_id', '=', credit]], { fields: ['id', 'product_id', 'quantity'] })).toEqual(linesBefore);
    // Still billed on the posted invoice until the credit note is posted: the event waits for finance.
    const again = (await rig.events('K-300')).filter((e) => e.state === 'dead');
    expect(again.map((e) => e.event.type)).toEqual(['order.cancelled']);
    expect(again[0]!.deadReason).toMatch(/credit note/);
  });
});
