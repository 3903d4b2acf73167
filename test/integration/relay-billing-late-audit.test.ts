import { describe, expect, it } from 'vitest';
import type { OdooEmulator } from '../odoo-emulator/index.ts';
import { billed, billingRig, deadReasons, invoices, openLines, orm, oru, productCode, saleLines, saleOrders, waitingCancellation } from '../fixtures/relay/billing-rig.ts';

/**
 * Billing when the LIS's messages come late: real HL7 through the LIS normalizer, the gateway's
 * invoice-eligibility derivation in a LevelDB store, the relay, and the Odoo emulator over HTTP,
 * as finance staff see Odoo. The promise (DESIGN.md §2–3, relay/README.md "Billing: each test
 * exactly once, never a cancelled one"): a cancelled test is never billed, a done test is never
 * left unbilled, however late a message comes.
 */

describe('a cancellation that comes long before its order', () => {
  /**
   * What the lab saw: the LIS's order interface was down for an hour while its cancellation
   * interface was not; TSH's cancellation of C-1000 came, was retried until relay.maxAttempts
   * (about 25 minutes with the default back-off) and was dead-lettered. The order came after:
   * held behind the dead cancellation in the order's partition, it never reached Odoo, nor did its
   * results or its invoice, until an operator found and discarded the dead letter; GLU, done and
   * validated, was not billed meanwhile.
   * Promise broken: relay/README.md "A cancellation before its order ... waits for that order"
   * (before, "the cancellation was retried until dead-lettered, holding its order back"), and a
   * done test is never left unbilled.
   */
  it('is not dead-lettered, and the order that comes after its retries bills the other tests', async () => {
    // Two attempts stand for the budget the real back-off spends in about 25 minutes.
    const rig = await billingRig({ maxAttempts: 2 });
    await rig.settle();
    await rig.receive(orm('C-1000', ['TSH'], 'CA'));
    const waiting = await waitingCancellation(rig, 'C-1000', 2);
    expect(deadReasons(await rig.events('C-1000')), 'the cancellation waits for its order').toEqual([]);
    expect(waiting.state).toBe('retrying');
    expect(waiting.lastError).toMatch(/waiting for its order from the LIS/);

    await rig.receive(orm('C-1000', ['GLU', 'TSH']));
    await rig.receive(oru('C-1000', 'GLU'));
    await rig.settle('C-1000');

    expect(deadReasons(await rig.events('C-1000'))).toEqual([]);
    expect(saleOrders(rig.emu, 'C-1000')).toHaveLength(1);
    expect(openLines(rig.emu, 'C-1000'), 'TSH is not on the order').toEqual(['GLU']);
    expect(billed(rig.emu, 'C-1000')).toEqual(['GLU']);
  });

  /** The same with the whole order cancelled (an ORC CA alone) long before it came: never billed. */
  it('a whole-order cancellation long before its order is not dead-lettered, and nothing is billed', async () => {
    const rig = await billingRig({ maxAttempts: 2 });
    await rig.settle();
    await rig.receive(orm('C-1100', [], 'CA'));
    const waiting = await waitingCancellation(rig, 'C-1100', 2);
    expect(deadReasons(await rig.events('C-1100'))).toEqual([]);
    expect(waiting.state).toBe('retrying');

    await rig.receive(orm('C-1100', ['GLU', 'TSH']));
    await rig.receive(oru('C-1100', 'GLU'));
    await rig.receive(oru('C-1100', 'TSH'));
    await rig.settle('C-1100');

    expect(deadReasons(await rig.events('C-1100'))).toEqual([]);
    expect(saleOrders(rig.emu, 'C-1100').map((o) => o['state']).filter((s) => s !== 'cancel'), 'no live quotation').toEqual([]);
    expect(billed(rig.emu, 'C-1100')).toEqual([]);
  });
});

/** Finance credits `codes` of a posted invoice: the credit-note wizard, the other lines removed, posted. */
function creditNote(emu: OdooEmulator, invoiceId: number, codes: string[]): number {
  const wizard = emu.call('account.move.reversal', 'create', [{ move_ids: [[6, 0, [invoiceId]]], reason: 'test cancelled' }]) as number;
  const action = emu.call('account.move.reversal', emu.version >= 17 ? 'refund_moves' : 'reverse_moves', [[wizard]]) as { res_id: number };
  const credit = action.res_id;
  const drop = emu.records('account.move.line', [['move_id', '=', credit]], { fields: ['id', 'product_id', 'display_type'] }).filter((l) => (!l['display_type'] || l['display_type'] === 'product') && !codes.includes(productCode(emu, l['product_id'])));
  if (drop.length > 0) emu.call('account.move', 'write', [[credit], { invoice_line_ids: drop.map((l) => [2, l['id']]) }]);
  emu.call('account.move', 'action_post', [[credit]]);
  return credit;
}

describe('a cancellation of a test billed on an invoice drafted before its lines were linked', () => {
  /**
   * What finance saw: accession L-100's invoice was drafted by a gateway from before invoice lines
   * carried their order lines (`sale_line_ids` empty) and posted. The LIS then cancelled CRP: the
   * dead letter asked for a credit note, then a replay. Finance credited CRP, posted the credit
   * note and replayed the event: dead again, with the same request for a credit note. The credit
   * note (its lines copied from the unlinked invoice, unlinked too) was never seen, and the CRP
   * line kept its delivered quantity, which Odoo counts "to invoice": finance either credited the
   * patient a second time or discarded the event and left the cancelled test billable from the
   * order.
   * Promise broken: relay/README.md order.cancelled, "once credited, the replay ... sets the
   * line's quantity and delivered quantity to 0"; a cancelled test is never billed.
   */
  it('the replay after finance credited it takes it off the order instead of asking for a credit note again', async () => {
    const rig = await billingRig();
    await rig.receive(orm('L-100', ['GLU', 'CRP']));
    await rig.receive(oru('L-100', 'GLU'));
    await rig.receive(oru('L-100', 'CRP'));
    await rig.settle('L-100');
    const [inv] = invoices(rig.emu, 'L-100');
    // As an older gateway drafted it: lines not linked to the order lines.
    const lineIds = rig.emu.records('account.move.line', [['move_id', '=', inv!.id]], { fields: ['id', 'display_type'] }).filter((l) => !l['display_type'] || l['display_type'] === 'product').map((l) => l['id'] as number);
    rig.emu.call('account.move', 'write', [[inv!.id], { invoice_line_ids: lineIds.map((id) => [1, id, { sale_line_ids: [[5, 0, 0]] }]) }]);
    expect(rig.emu.records('account.move.line', [['sale_line_ids', '!=', false]])).toEqual([]);
    rig.emu.call('sale.order', 'action_confirm', [[saleOrders(rig.emu, 'L-100')[0]!.id]]);
    rig.emu.call('account.move', 'action_post', [[inv!.id]]);

    await rig.receive(orm('L-100', ['CRP'], 'CA'));
    await rig.settle('L-100');
    const dead = (await rig.events('L-100')).filter((e) => e.state === 'dead');
    expect(dead.map((e) => e.event.type), 'a cancelled test on a posted invoice asks for a credit note').toEqual(['order.cancelled']);
    expect(dead[0]!.deadReason ?? '').toMatch(/credit note/);

    creditNote(rig.emu, inv!.id, ['CRP']);
    await rig.store.replay(dead[0]!.event.id, 'finance', 'CRP credited');
    await rig.settle('L-100');

    expect(deadReasons(await rig.events('L-100')), 'the credit note is seen: no second request').toEqual([]);
    const crp = saleLines(rig.emu, 'L-100').find((l) => l.code === 'CRP')!;
    expect({ qty: crp.qty, delivered: crp.delivered }, 'nothing of CRP left to invoice from the order').toEqual({ qty: 0, delivered: 0 });
  });
});
