import { describe, expect, it } from 'vitest';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { billed, billingRig, deadReasons, openLines, oru, ormTimed, saleLines } from '../fixtures/relay/billing-rig.ts';

/**
 * Billing's memory of an accession outlives retention (events/billing-memory.ts): the billing
 * events of an order billed in full go after store.retentionDays, and billing rebuilt its state
 * from the events still stored only. A test billed once, then named again by an order message
 * after its events were pruned, read as open with no result (the add-on was delivered in Odoo and
 * never invoiced); a test cancelled, then its order replayed by the LIS after the pruning, went
 * back on the order and was invoiced. Real HL7 through the LIS normalizer, a LevelDB store pruned
 * with its clock moved forward, the relay and the Odoo emulator over HTTP.
 */

const DAY_MS = 86_400_000;
const ORDERED = '20260301092000';
const LATER = '20260405100000';

async function pruneAll(store: EventStore, now: number): Promise<void> {
  for (let pass = 0; pass < 100 && (await store.prune(now)) > 0; pass++);
}

describe('billing remembers what retention pruned', () => {
  it('an order "as it now stands" after the billed test was pruned: the add-on is invoiced (R3)', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('RM-3', ['GLU'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('RM-3', 'GLU'));
    await rig.settle('RM-3');
    expect(billed(rig.emu, 'RM-3')).toEqual(['GLU']);
    await pruneAll(rig.store, Date.now() + 35 * DAY_MS);
    expect(await rig.events('RM-3'), 'billed in full: retention kept nothing').toEqual([]);

    await rig.receive(ormTimed('RM-3', ['GLU', 'CRP'], { msh7: LATER, orc9: LATER }));
    await rig.receive(oru('RM-3', 'CRP'));
    await rig.settle('RM-3');

    expect(deadReasons(await rig.events('RM-3'))).toEqual([]);
    expect(billed(rig.emu, 'RM-3')).toEqual(['CRP', 'GLU']);
    const crp = saleLines(rig.emu, 'RM-3').find((l) => l.code === 'CRP');
    expect(crp).toMatchObject({ delivered: 1, invoiced: 1, toInvoice: 0 });
  });

  it('an order message for the billed test outlives its older events: a later add-on is invoiced (R3, pruned event by event)', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('RM-5', ['GLU'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('RM-5', 'GLU'));
    await rig.settle('RM-5');
    expect(billed(rig.emu, 'RM-5')).toEqual(['GLU']);
    // Everything delivered before `mid` reaches the age; the repeated order, delivered after it, does not.
    await new Promise((r) => setTimeout(r, 20));
    const mid = Date.now();
    await new Promise((r) => setTimeout(r, 20));
    await rig.receive(ormTimed('RM-5', ['GLU'], { msh7: '20260310080000', orc9: '20260310080000' }));
    await rig.settle('RM-5');
    await pruneAll(rig.store, mid + 30 * DAY_MS);
    const left = await rig.events('RM-5');
    expect(left.map((e) => e.event.type), 'only the repeated order is left').toEqual(['order.created']);

    await rig.receive(ormTimed('RM-5', ['CRP'], { msh7: LATER, orc9: LATER }));
    await rig.receive(oru('RM-5', 'CRP'));
    await rig.settle('RM-5');

    expect(deadReasons(await rig.events('RM-5'))).toEqual([]);
    expect(billed(rig.emu, 'RM-5')).toEqual(['CRP', 'GLU']);
  });

  it('a cancelled test stays off when the LIS replays its order and results after the pruning (R4)', async () => {
    const rig = await billingRig();
    const acc = 'RM-4';
    await rig.receive(ormTimed(acc, ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru(acc, 'TSH', 'F', '2.1', '20260301095000'));
    await rig.receive(ormTimed(acc, ['TSH'], { control: 'CA', msh7: '20260301100000', orc9: '20260301100000' }));
    await rig.receive(oru(acc, 'GLU'));
    await rig.settle(acc);
    expect(billed(rig.emu, acc)).toEqual(['GLU']);
    await pruneAll(rig.store, Date.now() + 35 * DAY_MS);
    expect(await rig.events(acc), 'billed in full: retention kept nothing').toEqual([]);

    // The LIS replays the original order (ORC-9 09:20) and the old results under new MSH-10s.
    await rig.receive(ormTimed(acc, ['GLU', 'TSH'], { msh7: '20260405113000', orc9: ORDERED }));
    await rig.receive(oru(acc, 'GLU'));
    await rig.receive(oru(acc, 'TSH', 'F', '2.1', '20260301095000'));
    await rig.settle(acc);

    expect(deadReasons(await rig.events(acc))).toEqual([]);
    expect(billed(rig.emu, acc)).toEqual(['GLU']);
    expect(openLines(rig.emu, acc)).toEqual(['GLU']);
    const notes = (await rig.events(acc)).map((e) => `${e.event.type}: ${e.note ?? ''}`);
    expect(notes.find((n) => n.startsWith('order.created'))).toMatch(/TSH left off the order \(a resend of the order the LIS cancelled/);
    const tsh = (await rig.events(acc)).find((e) => e.event.type === 'result.validated' && (e.event.data as { testCode: string }).testCode === 'TSH');
    expect(tsh?.note).toMatch(/test cancelled by the LIS/);
  });

  it('a resend adds nothing; nothing is written at intake: the pruned events are remembered by the pass that prunes them', async () => {
    const rig = await billingRig();
    const order = ormTimed('RM-7', ['GLU', 'CRP'], { msh7: ORDERED, orc9: ORDERED });
    await rig.receive(order);
    await rig.receive(order); // the same MSH-10: a duplicate
    await rig.receive(oru('RM-7', 'GLU'));
    await rig.receive(oru('RM-7', 'CRP'));
    await rig.settle('RM-7');
    expect(billed(rig.emu, 'RM-7')).toEqual(['CRP', 'GLU']);
    // The billing messages wrote no memory: it matters only once retention prunes.
    expect(await rig.store.getDoc('billing', 'RM-7')).toBeUndefined();
    expect(await rig.store.listDocs('billing-age')).toEqual([]);
    await pruneAll(rig.store, Date.now() + 35 * DAY_MS);
    expect(await rig.events('RM-7')).toEqual([]);
    const after = await rig.store.getDoc<{ events: Array<{ type: string }> }>('billing', 'RM-7');
    expect(after?.events.map((e) => e.type)).toEqual(['order.created', 'result.validated', 'result.validated', 'invoice.eligible']);
    expect(await rig.store.listDocs('billing-age')).toHaveLength(1);
  });

  it('is written with the billing events only, when they are pruned, and goes at the dead-letter floor', async () => {
    const rig = await billingRig();
    // A preliminary result makes no billing event: no memory is written for it.
    await rig.receive(oru('RM-6', 'GLU', 'P'));
    expect(await rig.store.getDoc('billing', 'RM-6')).toBeUndefined();
    await rig.receive(ormTimed('RM-6', ['GLU'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('RM-6', 'GLU'));
    await rig.settle('RM-6');
    expect(await rig.store.getDoc('billing', 'RM-6'), 'not written at intake').toBeUndefined();

    await pruneAll(rig.store, Date.now() + 35 * DAY_MS);
    const memory = await rig.store.getDoc<{ events: Array<{ type: string }> }>('billing', 'RM-6');
    expect(memory?.events.map((e) => e.type), 'kept past the events').toEqual(['order.created', 'result.validated', 'invoice.eligible']);
    await pruneAll(rig.store, Date.now() + 181 * DAY_MS);
    expect(await rig.store.getDoc('billing', 'RM-6'), 'gone past store.deadLetterRetentionDays').toBeUndefined();
    expect(await rig.store.listDocs('billing-age')).toEqual([]);
  });
});
