import { describe, expect, it } from 'vitest';
import { billingRig, deadReasons, invoices, openLines, orm, oru } from '../fixtures/relay/billing-rig.ts';

/**
 * A whole-order cancellation whose tests are billed on two invoices finance issued: INV/2026/00001
 * posted (GLU), and the add-on's INV/2026/00002 (CRP) posted and reset to draft to correct it.
 * The dead letter (c10a088) named both but asked only for what the reset one needs ("take the
 * test off it as you correct it … then replay"): finance did so, replayed, and was dead again,
 * now asked for the credit note of INV/2026/00001 it could have been asked for at once. Now the
 * reason says what each invoice needs. Real HL7 through the LIS normalizer, the invoice
 * derivation in a LevelDB store, the relay and the Odoo emulator over HTTP.
 */
describe.each([16, 17, 19] as const)('a cancellation reaching a posted invoice and one reset to draft (Odoo %s)', (version) => {
  it('the dead letter asks for a credit note of the posted one and the correction of the reset one', async () => {
    const rig = await billingRig({}, { version });
    await rig.receive(orm('RP-1', ['GLU']));
    await rig.receive(oru('RP-1', 'GLU'));
    await rig.settle('RP-1');
    const [first] = invoices(rig.emu, 'RP-1');
    rig.emu.call('account.move', 'action_post', [[first!.id]]);
    // An add-on, invoiced on an invoice of its own; finance issues it, then resets it to correct it.
    await rig.receive(orm('RP-1', ['CRP']));
    await rig.receive(oru('RP-1', 'CRP'));
    await rig.settle('RP-1');
    const second = invoices(rig.emu, 'RP-1').find((m) => m.id !== first!.id)!;
    rig.emu.call('account.move', 'action_post', [[second.id]]);
    rig.emu.call('account.move', 'button_draft', [[second.id]]);

    await rig.receive(orm('RP-1', [], 'CA'));
    await rig.settle('RP-1');

    const dead = deadReasons(await rig.events('RP-1'));
    expect(dead).toHaveLength(1);
    expect(dead[0]).toContain('posted invoice INV/2026/00001');
    expect(dead[0]).toContain('invoice INV/2026/00002, issued and reset to draft');
    expect(dead[0], 'the posted one: a credit note').toMatch(/issue a credit note in Odoo for INV\/2026\/00001 and post it/);
    expect(dead[0], 'the reset one: corrected').toMatch(/take the test\(s\) off INV\/2026\/00002 as you correct it/);

    // Finance does both, as asked, and replays once: the replay finishes.
    const wizard = rig.emu.call('account.move.reversal', 'create', [{ move_ids: [[6, 0, [first!.id]]], reason: 'order cancelled' }]) as number;
    // Odoo 16's wizard has reverse_moves only (refund_method 'refund' by default); 17+ refund_moves.
    const credit = (rig.emu.call('account.move.reversal', version === 16 ? 'reverse_moves' : 'refund_moves', [[wizard]]) as { res_id: number }).res_id;
    rig.emu.call('account.move', 'action_post', [[credit]]);
    const crp = rig.emu.records('account.move.line', [['move_id', '=', second.id], ['display_type', '=', 'product']], { fields: ['id'] });
    rig.emu.call('account.move', 'write', [[second.id], { invoice_line_ids: crp.map((l) => [2, l['id']]) }]);
    rig.emu.call('account.move', 'button_cancel', [[second.id]]);
    const event = (await rig.events('RP-1')).find((e) => e.state === 'dead')!;
    await rig.store.replay(event.event.id, 'finance', 'INV/2026/00001 credited, INV/2026/00002 corrected');
    await rig.settle('RP-1');
    expect(deadReasons(await rig.events('RP-1'))).toEqual([]);
    expect(openLines(rig.emu, 'RP-1')).toEqual([]);
  });
});
