import { describe, expect, it } from 'vitest';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { billed, billingRig, deadReasons, invoices, openLines, oru, ormTimed } from '../fixtures/relay/billing-rig.ts';

/**
 * A late cancellation of an accession billed in full, whose events and messages retention pruned
 * (store/README.md "Retention": an order billed in full keeps nothing past store.retentionDays).
 * The LIS withdraws TSH five weeks later: the gateway holds no order of it any more, only Odoo's
 * sale order and draft invoice. The cancellation still takes TSH off the draft invoice and the
 * order; with the invoice posted, it is a dead letter asking for a credit note. No code change:
 * the order.cancelled rule works from Odoo's documents (relay/README.md "A cancellation before its
 * order"). Real HL7 through the LIS normalizer, a LevelDB store pruned with its clock moved
 * forward, the relay and the Odoo emulator over HTTP.
 */

const DAY_MS = 86_400_000;
const ORDERED = '20260301092000';
const LATE = '20260405100000';

async function pruneAll(store: EventStore, now: number): Promise<void> {
  for (let pass = 0; pass < 100 && (await store.prune(now)) > 0; pass++);
}

async function billedThenPruned(accession: string, post: boolean): Promise<Awaited<ReturnType<typeof billingRig>>> {
  const rig = await billingRig();
  await rig.receive(ormTimed(accession, ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
  await rig.receive(oru(accession, 'GLU'));
  await rig.receive(oru(accession, 'TSH'));
  await rig.settle(accession);
  expect(billed(rig.emu, accession)).toEqual(['GLU', 'TSH']);
  if (post) rig.emu.call('account.move', 'action_post', [[invoices(rig.emu, accession)[0]!.id]]);
  await pruneAll(rig.store, Date.now() + 35 * DAY_MS);
  expect(await rig.events(accession), 'billed in full: retention kept nothing').toEqual([]);
  return rig;
}

describe('a late cancellation of an order whose history retention pruned', () => {
  it('takes the test off the draft invoice and the order', async () => {
    const rig = await billedThenPruned('RT-100', false);
    await rig.receive(ormTimed('RT-100', ['TSH'], { control: 'CA', msh7: LATE, orc9: LATE }));
    await rig.settle('RT-100');

    expect(deadReasons(await rig.events('RT-100'))).toEqual([]);
    expect(billed(rig.emu, 'RT-100')).toEqual(['GLU']);
    expect(openLines(rig.emu, 'RT-100')).toEqual(['GLU']);
  });

  it('with the invoice posted, asks for a credit note and leaves the invoice as it is', async () => {
    const rig = await billedThenPruned('RT-200', true);
    await rig.receive(ormTimed('RT-200', ['TSH'], { control: 'CA', msh7: LATE, orc9: LATE }));
    await rig.settle('RT-200');

    const dead = deadReasons(await rig.events('RT-200'));
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatch(/^order\.cancelled: .*TSH .*still billed on posted invoice .*issue a credit note/);
    expect(billed(rig.emu, 'RT-200')).toEqual(['GLU', 'TSH']);
  });
});
