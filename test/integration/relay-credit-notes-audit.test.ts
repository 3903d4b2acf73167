import { describe, expect, it } from 'vitest';
import type { OdooEmulator, OdooVersion } from '../odoo-emulator/index.ts';
import { billingRig, orm, oru, productCode, saleLines, saleOrders, type BillingRig } from '../fixtures/relay/billing-rig.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';

/**
 * Finance's week with the gateway's invoices: a patient billed wrongly, a credit note for the
 * invoice or one of its lines, a draft invoice cancelled, deleted or trimmed by hand, an invoice
 * reset to draft; then another test of the same order is validated and the gateway invoices again.
 * The promise (DESIGN.md §2, relay README "Billing: each test exactly once"): the gateway bills each
 * test once; a test finance took off an invoice is not billed again by the gateway unless the LIS
 * orders it again.
 */

/** The gateway's customer invoices of an accession (any state), oldest first. */
function gatewayInvoices(emu: OdooEmulator, accession: string): Array<Record<string, unknown> & { id: number }> {
  return emu.records('account.move', [['move_type', '=', 'out_invoice'], ['ref', '=', `lab-gateway ${accession}`]]) as Array<Record<string, unknown> & { id: number }>;
}

/** Product codes billed on an invoice (product lines only). */
function billedOn(emu: OdooEmulator, moveId: number): string[] {
  return emu
    .records('account.move.line', [['move_id', '=', moveId]], { fields: ['product_id', 'display_type'] })
    .filter((l) => !l['display_type'] || l['display_type'] === 'product')
    .map((l) => productCode(emu, l['product_id']))
    .sort();
}

/** Net quantity per test over every not-cancelled customer invoice and credit note of the order. */
function netBilled(emu: OdooEmulator, accession: string): Record<string, number> {
  const lineIds = new Set(saleLines(emu, accession).map((l) => l.id));
  const out: Record<string, number> = {};
  for (const l of emu.records('account.move.line', [], { fields: ['move_id', 'product_id', 'quantity', 'sale_line_ids', 'display_type'] })) {
    if (!((l['sale_line_ids'] as number[] | undefined) ?? []).some((s) => lineIds.has(s))) continue;
    const move = emu.records('account.move', [['id', '=', l['move_id'] as number]])[0]!;
    if (move['state'] === 'cancel') continue;
    const sign = move['move_type'] === 'out_refund' ? -1 : 1;
    const code = productCode(emu, l['product_id']);
    out[code] = (out[code] ?? 0) + sign * Number(l['quantity']);
  }
  return out;
}

/** Finance credits `codes` of a posted invoice: the credit-note wizard, lines not credited removed, posted. */
function creditNote(emu: OdooEmulator, invoiceId: number, codes?: string[]): number {
  const wizard = emu.call('account.move.reversal', 'create', [{ move_ids: [[6, 0, [invoiceId]]], reason: 'billed wrongly' }]) as number;
  // 17+ "Reverse" (refund_moves); 16 reverse_moves with the default refund_method 'refund'.
  const method = emu.version >= 17 ? 'refund_moves' : 'reverse_moves';
  const action = emu.call('account.move.reversal', method, [[wizard]]) as { res_id: number };
  const credit = action.res_id;
  if (codes) {
    const drop = emu.records('account.move.line', [['move_id', '=', credit]], { fields: ['id', 'product_id'] }).filter((l) => !codes.includes(productCode(emu, l['product_id'])));
    emu.call('account.move', 'write', [[credit], { invoice_line_ids: drop.map((l) => [2, l['id']]) }]);
  }
  emu.call('account.move', 'action_post', [[credit]]);
  return credit;
}

/**
 * GLU and CRP of `accession` ordered and validated: the gateway's first invoice, returned. Then
 * `addOn()`: TSH ordered on the same accession and validated, the gateway's next eligibility.
 */
async function invoicedGluCrp(rig: BillingRig, accession: string): Promise<{ first: Record<string, unknown> & { id: number }; addOn: () => Promise<void> }> {
  await rig.receive(orm(accession, ['GLU', 'CRP']));
  await rig.receive(oru(accession, 'GLU'));
  await rig.receive(oru(accession, 'CRP'));
  await rig.settle(accession);
  const [first] = gatewayInvoices(rig.emu, accession);
  return {
    first: first!,
    async addOn() {
      await rig.receive(orm(accession, ['TSH']));
      await rig.receive(oru(accession, 'TSH'));
      await rig.settle(accession);
    },
  };
}

describe.each([17, 16, 19] as OdooVersion[])('credit notes and hand edits on Odoo %i: a later eligibility bills only what the LIS asked for since', (version) => {
  it('Odoo counts a posted credit note against the order line: the credited test is "to invoice" again', async () => {
    const rig = await billingRig({}, { version });
    await rig.receive(orm('CN-000', ['GLU']));
    await rig.receive(oru('CN-000', 'GLU'));
    await rig.settle('CN-000');
    const [inv] = gatewayInvoices(rig.emu, 'CN-000');
    rig.emu.call('sale.order', 'action_confirm', [[saleOrders(rig.emu, 'CN-000')[0]!.id]]);
    rig.emu.call('account.move', 'action_post', [[inv!.id]]);
    expect(saleLines(rig.emu, 'CN-000')[0]).toMatchObject({ invoiced: 1, toInvoice: 0 });

    creditNote(rig.emu, inv!.id);
    // sale.order.line _compute_qty_invoiced: out_invoice adds, out_refund subtracts (16–19).
    expect(saleLines(rig.emu, 'CN-000')[0]).toMatchObject({ invoiced: 0, toInvoice: 1 });
    expect(saleOrders(rig.emu, 'CN-000')[0]!['invoice_status']).toBe('to invoice');
  });

  it('a test finance credited is not billed again when an add-on test of the order is invoiced', async () => {
    // Finance saw CRP on the patient's invoice again after crediting it: the add-on's invoice
    // billed every order line Odoo counted as not invoiced, and a credit note makes it so.
    const rig = await billingRig({}, { version });
    const { first, addOn } = await invoicedGluCrp(rig, 'CN-100');
    rig.emu.call('account.move', 'action_post', [[first.id]]);
    creditNote(rig.emu, first.id, ['CRP']); // CRP was not to be charged to this patient

    await addOn(); // add-on

    const all = gatewayInvoices(rig.emu, 'CN-100');
    expect(all).toHaveLength(2);
    expect(billedOn(rig.emu, all[1]!.id)).toEqual(['TSH']);
    expect(netBilled(rig.emu, 'CN-100')).toEqual({ GLU: 1, CRP: 0, TSH: 1 });
    // The operator sees on the add-on's eligibility which tests it left to finance.
    const eligible = (await rig.events('CN-100')).filter((e) => e.event.type === 'invoice.eligible');
    expect(eligible.at(-1)?.note).toMatch(/not billed again \(handed to billing by an earlier eligibility: CRP, GLU\)/);
  });

  it('an invoice credited in full is not billed again by the next eligibility', async () => {
    const rig = await billingRig({}, { version });
    const { first, addOn } = await invoicedGluCrp(rig, 'CN-200');
    rig.emu.call('account.move', 'action_post', [[first.id]]);
    creditNote(rig.emu, first.id); // wrong patient: the whole invoice is credited

    await addOn();

    expect(netBilled(rig.emu, 'CN-200')).toEqual({ GLU: 0, CRP: 0, TSH: 1 });
  });

  it('a credited test the LIS orders again is billed again, once', async () => {
    const rig = await billingRig({}, { version });
    const { first } = await invoicedGluCrp(rig, 'CN-300');
    rig.emu.call('account.move', 'action_post', [[first.id]]);
    // The LIS withdraws CRP; its line is on a posted invoice: the gateway asks for a credit note.
    await rig.receive(orm('CN-300', ['CRP'], 'CA'));
    await rig.settle('CN-300');
    const dead = (await rig.events('CN-300')).filter((e) => e.state === 'dead');
    expect(dead.map((e) => e.event.type)).toEqual(['order.cancelled']);
    creditNote(rig.emu, first.id, ['CRP']);
    await rig.store.discard(dead[0]!.event.id, 'finance', 'credit note issued in Odoo');

    await rig.receive(orm('CN-300', ['CRP'])); // ordered again, run again
    // Its own result, reported after the first (the same report time and value would be a replay
    // of the credited test's result, counted for nothing: billing-result-replay-after-reorder-audit).
    await rig.receive(oru('CN-300', 'CRP', 'F', '5.4', '20260301140000'));
    // (the rig's settle counts a discarded event as unresolved)
    await waitFor(async () => (await rig.events('CN-300')).every((e) => ['delivered', 'dead', 'discarded'].includes(e.state)) && rig.store.stats().inFlight === 0);
    expect((await rig.events('CN-300')).filter((e) => e.state === 'dead')).toEqual([]);

    expect(netBilled(rig.emu, 'CN-300')).toEqual({ GLU: 1, CRP: 1 });
  });

  it('a draft invoice finance cancelled is not billed again by the add-on\'s invoice', async () => {
    const rig = await billingRig({}, { version });
    const { first, addOn } = await invoicedGluCrp(rig, 'CN-400');
    rig.emu.call('account.move', 'button_cancel', [[first.id]]); // insurer billed directly

    await addOn();

    expect(netBilled(rig.emu, 'CN-400')).toEqual({ TSH: 1 });
  });

  it('a draft invoice finance deleted is not made again by the add-on\'s invoice', async () => {
    const rig = await billingRig({}, { version });
    const { first, addOn } = await invoicedGluCrp(rig, 'CN-500');
    rig.emu.call('account.move', 'unlink', [[first.id]]);

    await addOn();

    expect(netBilled(rig.emu, 'CN-500')).toEqual({ TSH: 1 });
  });

  it('a line finance removed from the draft invoice does not come back with the add-on', async () => {
    const rig = await billingRig({}, { version });
    const { first, addOn } = await invoicedGluCrp(rig, 'CN-600');
    const crp = rig.emu.records('account.move.line', [['move_id', '=', first.id]], { fields: ['id', 'product_id'] }).find((l) => productCode(rig.emu, l['product_id']) === 'CRP')!;
    rig.emu.call('account.move', 'write', [[first.id], { invoice_line_ids: [[2, crp['id']]] }]);

    await addOn();

    expect(gatewayInvoices(rig.emu, 'CN-600')).toHaveLength(1);
    expect(billedOn(rig.emu, first.id)).toEqual(['GLU', 'TSH']);
  });

  it('an invoice finance reset to draft to correct it keeps its lines: the add-on gets an invoice of its own', async () => {
    // Finance reset INV/…/00001 (sent to the patient) to draft to fix an address; the add-on's
    // TSH went onto it, and the invoice re-posted under the same number billed a test the
    // patient's copy never showed.
    const rig = await billingRig({}, { version });
    const { first, addOn } = await invoicedGluCrp(rig, 'CN-700');
    rig.emu.call('account.move', 'action_post', [[first.id]]);
    rig.emu.call('account.move', 'button_draft', [[first.id]]);

    await addOn();

    const all = gatewayInvoices(rig.emu, 'CN-700');
    expect(billedOn(rig.emu, first.id)).toEqual(['CRP', 'GLU']);
    expect(all).toHaveLength(2);
    expect(all[1]!['state']).toBe('draft');
    expect(billedOn(rig.emu, all[1]!.id)).toEqual(['TSH']);
  });
});
