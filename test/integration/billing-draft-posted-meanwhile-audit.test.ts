import { describe, expect, it } from 'vitest';
import { billed, billingRig, deadReasons, invoices, openLines, orm, oru, type BillingRig } from '../fixtures/relay/billing-rig.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';

/**
 * Finance posts the gateway's draft invoice while the gateway is changing it: the relay read the
 * invoice as a draft, and its write (an add-on's line added, a cancelled test's line taken off)
 * reaches Odoo after finance pressed Confirm. Odoo refuses the write on a posted entry (UserError).
 * Before, that refusal was the event's dead letter, "Odoo rejected the request (account.move.write):
 * … You cannot modify a posted entry …": an operator who discarded it left the add-on, run and
 * delivered, never billed (a discarded eligibility counts as handed to billing), or the cancelled
 * test billed on the posted invoice without the reason that asks for a credit note. Now a change
 * to a draft refused because the invoice is no longer a draft the gateway may change is retried,
 * and the next attempt takes the way for a posted invoice (rules/invoices.ts `changedSinceRead`).
 * Real HL7 through the LIS normalizer, the invoice derivation in a LevelDB store, the relay and
 * the Odoo emulator over HTTP (its state machine refuses a write on a posted invoice); the write
 * is held in the emulator (latency) until finance has posted.
 */

/** Hold the relay's next account.move write in Odoo until finance has posted the accession's invoice. */
async function postWhileTheWriteIsOnItsWay(rig: BillingRig, accession: string, trigger: () => Promise<void>): Promise<void> {
  const inv = invoices(rig.emu, accession)[0]!;
  const seen = rig.emu.faults.log.length;
  rig.emu.faults.next(1, 'account.move', 'write').latency(1500);
  await trigger();
  await waitFor(async () => rig.emu.faults.log.slice(seen).some((f) => f.action === 'latency' && f.request.model === 'account.move' && f.request.method === 'write'), 20_000, 5);
  // Finance confirms the draft while the gateway's write is on its way.
  rig.emu.call('account.move', 'action_post', [[inv.id]]);
  expect(invoices(rig.emu, accession).map((m) => m['state'])).toEqual(['posted']);
}

describe('a draft invoice posted by finance between the gateway\'s read and its write', () => {
  it('an add-on\'s line: billed on an invoice of its own, no dead letter', async () => {
    const rig = await billingRig();
    await rig.receive(orm('DP-100', ['GLU']));
    await rig.receive(oru('DP-100', 'GLU'));
    await rig.settle('DP-100');
    expect(billed(rig.emu, 'DP-100')).toEqual(['GLU']);

    await postWhileTheWriteIsOnItsWay(rig, 'DP-100', async () => {
      await rig.receive(orm('DP-100', ['CRP']));
      await rig.receive(oru('DP-100', 'CRP'));
    });
    await rig.settle('DP-100');

    expect(deadReasons(await rig.events('DP-100'))).toEqual([]);
    expect(billed(rig.emu, 'DP-100'), 'CRP billed once, GLU once').toEqual(['CRP', 'GLU']);
    expect(invoices(rig.emu, 'DP-100').map((m) => m['state']).sort()).toEqual(['draft', 'posted']);
  });

  it('a cancelled test\'s line: the dead letter asks for a credit note', async () => {
    const rig = await billingRig();
    await rig.receive(orm('DP-200', ['GLU', 'TSH']));
    await rig.receive(oru('DP-200', 'GLU'));
    await rig.receive(oru('DP-200', 'TSH'));
    await rig.settle('DP-200');
    expect(billed(rig.emu, 'DP-200')).toEqual(['GLU', 'TSH']);

    await postWhileTheWriteIsOnItsWay(rig, 'DP-200', async () => {
      await rig.receive(orm('DP-200', ['TSH'], 'CA'));
    });
    await rig.settle('DP-200');

    const dead = deadReasons(await rig.events('DP-200'));
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatch(/^order\.cancelled: cancelled test\(s\) TSH .*still billed on posted invoice .*issue a credit note in Odoo and post it, then replay this event/);
    expect(billed(rig.emu, 'DP-200'), 'the posted invoice is left as finance posted it').toEqual(['GLU', 'TSH']);
    expect(openLines(rig.emu, 'DP-200'), 'TSH off the order (quantity 0, its delivered quantity kept for the credit note)').toEqual(['GLU']);
  });
});
