import { describe, expect, it } from 'vitest';
import { billed, billingRig, deadReasons, invoices, openLines, orm, oru, type BillingRig } from '../fixtures/relay/billing-rig.ts';

/**
 * A cancellation that reaches an invoice finance issued and then reset to draft (Odoo's "Reset to
 * Draft", `button_draft`: the invoice keeps its number and `posted_before`, and went to the
 * patient as it was). The invoice rule already counts such a draft as posted (an add-on never goes
 * onto it). The cancellation rule took it for an ordinary draft: it took the cancelled test's line
 * off the invoice finance was correcting, or cancelled the numbered invoice when that was its only
 * test, without a word: finance re-posted INV/2026/00001 for another amount than the patient's
 * copy, or found it cancelled. Now the invoice is left as finance has it and the event is a dead
 * letter that says what to do; the replay, once finance took the line off (or credited it), takes
 * the test off the order. Real HL7 through the LIS normalizer, the invoice-eligibility derivation
 * in a LevelDB store, the relay and the Odoo emulator over HTTP.
 */

async function issuedThenResetToDraft(rig: BillingRig, accession: string): Promise<number> {
  const inv = invoices(rig.emu, accession)[0]!;
  rig.emu.call('account.move', 'action_post', [[inv.id]]);
  rig.emu.call('account.move', 'button_draft', [[inv.id]]);
  return inv.id;
}

describe.each([16, 17, 19] as const)('a cancellation reaching an invoice finance issued and reset to draft (Odoo %s)', (version) => {
  it('a cancelled test: the reset invoice is left as finance has it, the dead letter says so, the replay finishes', async () => {
    const rig = await billingRig({}, { version });
    await rig.receive(orm('RD-100', ['GLU', 'TSH']));
    await rig.receive(oru('RD-100', 'GLU'));
    await rig.receive(oru('RD-100', 'TSH'));
    await rig.settle('RD-100');
    expect(billed(rig.emu, 'RD-100')).toEqual(['GLU', 'TSH']);
    const id = await issuedThenResetToDraft(rig, 'RD-100');

    await rig.receive(orm('RD-100', ['TSH'], 'CA'));
    await rig.settle('RD-100');

    const inv = invoices(rig.emu, 'RD-100');
    expect(inv.map((m) => [m['name'], m['state']]), 'the numbered invoice finance is correcting').toEqual([['INV/2026/00001', 'draft']]);
    expect(billed(rig.emu, 'RD-100'), 'its lines as the patient\'s copy shows them').toEqual(['GLU', 'TSH']);
    const dead = deadReasons(await rig.events('RD-100'));
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatch(/^order\.cancelled: cancelled test\(s\) TSH of accession RD-100 .*invoice INV\/2026\/00001, issued and reset to draft/);

    // Finance takes TSH off as it corrects the invoice, posts it again, and replays the event.
    const tsh = rig.emu.records('account.move.line', [['move_id', '=', id]], { fields: ['id', 'product_id', 'display_type'] }).find((l) => rig.emu.records('product.product', [['id', '=', l['product_id'] as number]], { fields: ['default_code'] })[0]?.['default_code'] === 'TSH')!;
    rig.emu.call('account.move', 'write', [[id], { invoice_line_ids: [[2, tsh['id']]] }]);
    rig.emu.call('account.move', 'action_post', [[id]]);
    const event = (await rig.events('RD-100')).find((e) => e.state === 'dead')!;
    await rig.store.replay(event.event.id, 'finance', 'TSH taken off INV/2026/00001');
    await rig.settle('RD-100');

    expect(deadReasons(await rig.events('RD-100'))).toEqual([]);
    expect(openLines(rig.emu, 'RD-100')).toEqual(['GLU']);
    expect(billed(rig.emu, 'RD-100')).toEqual(['GLU']);
  });

  it('the whole order cancelled, its only invoice reset to draft: the numbered invoice is not cancelled behind finance', async () => {
    const rig = await billingRig({}, { version });
    await rig.receive(orm('RD-200', ['GLU']));
    await rig.receive(oru('RD-200', 'GLU'));
    await rig.settle('RD-200');
    await issuedThenResetToDraft(rig, 'RD-200');

    await rig.receive(orm('RD-200', [], 'CA'));
    await rig.settle('RD-200');

    expect(invoices(rig.emu, 'RD-200').map((m) => [m['name'], m['state']])).toEqual([['INV/2026/00001', 'draft']]);
    const dead = deadReasons(await rig.events('RD-200'));
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatch(/^order\.cancelled: the cancelled order of accession RD-200 .*invoice INV\/2026\/00001, issued and reset to draft/);
  });
});
