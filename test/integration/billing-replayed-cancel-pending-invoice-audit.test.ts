import { describe, expect, it } from 'vitest';
import type { InvoiceEligibleData } from '../../gateway/src/events/types.ts';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import { billed, billingRig, deadReasons, openLines, oru, ormTimed, saleOrders } from '../fixtures/relay/billing-rig.ts';

/**
 * A cancellation the LIS replays (or sends late) after it ordered the test again, stored while the
 * order's invoice eligibility is still queued (its scheduled slot not come yet, Odoo away, the
 * relay paused for a period close). Billing leaves the re-ordered test open and counts it handed to
 * billing by that eligibility (events/invoice-eligibility.ts `leftOpen`), and the order.cancelled
 * rule leaves its line on the sale order; but the invoice rule read every cancellation stored after
 * the eligibility as taking its tests away. Before, the re-ordered TSH, run and validated, was left
 * off the invoice ("nothing else to invoice"), and no later eligibility came for it: never billed.
 * A whole-order cancellation replayed so emptied the invoice ("order cancelled, nothing to
 * invoice"). Real HL7 through the LIS normalizer, the invoice-eligibility derivation in a LevelDB
 * store, the relay and the Odoo emulator over HTTP (relay/README.md "A cancellation replayed after
 * a re-order").
 */

const ORDERED = '20260301092000';
const CANCELLED = '20260301100000';
const AGAIN = '20260301103000';
const REPLAYED = '20260301113000';

const eligibilities = (evs: StoredEvent[]): string[][] =>
  evs.filter((e) => e.event.type === 'invoice.eligible').map((e) => (e.event.data as InvoiceEligibleData).tests.map((t) => t.code));

describe('a cancellation replayed after a re-order while the invoice waits', () => {
  /** The relay paused (a period close) between TSH's result and the replayed 10:00 cancellation. */
  it('the re-ordered test is billed, once', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('CP-100', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('CP-100', 'GLU'));
    await rig.receive(ormTimed('CP-100', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(ormTimed('CP-100', ['TSH'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.settle('CP-100');
    expect(billed(rig.emu, 'CP-100')).toEqual(['GLU']);

    await rig.relay.pause();
    await rig.receive(oru('CP-100', 'TSH'));
    await rig.receive(ormTimed('CP-100', ['TSH'], { control: 'CA', msh7: REPLAYED, orc9: CANCELLED }));
    await rig.relay.resume();
    await rig.settle('CP-100');

    const evs = await rig.events('CP-100');
    expect(deadReasons(evs)).toEqual([]);
    expect(eligibilities(evs)).toEqual([['GLU'], ['GLU', 'TSH']]);
    expect(openLines(rig.emu, 'CP-100'), 'TSH stays on the order').toEqual(['GLU', 'TSH']);
    expect(billed(rig.emu, 'CP-100'), 'TSH is billed, once').toEqual(['GLU', 'TSH']);
  });

  /** Odoo away all morning: every message queued, the replay stored after TSH's result and its eligibility. */
  it('queued while Odoo was away, the re-ordered test is billed, once', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('CP-110', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('CP-110', 'GLU'));
    await rig.receive(ormTimed('CP-110', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(ormTimed('CP-110', ['TSH'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.receive(oru('CP-110', 'TSH'));
    await rig.receive(ormTimed('CP-110', ['TSH'], { control: 'CA', msh7: REPLAYED, orc9: CANCELLED }));
    await rig.settle('CP-110');

    const evs = await rig.events('CP-110');
    expect(deadReasons(evs)).toEqual([]);
    expect(openLines(rig.emu, 'CP-110')).toEqual(['GLU', 'TSH']);
    expect(billed(rig.emu, 'CP-110')).toEqual(['GLU', 'TSH']);
  });

  /** The whole order cancelled at 10:00, ordered again at 10:30, validated; the 10:00 cancellation replayed before the invoice posts. */
  it('a replayed whole-order cancellation leaves the order ordered again billed', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('CP-200', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(ormTimed('CP-200', [], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(ormTimed('CP-200', ['GLU', 'TSH'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.receive(oru('CP-200', 'GLU'));
    await rig.settle('CP-200');

    await rig.relay.pause();
    await rig.receive(oru('CP-200', 'TSH'));
    await rig.receive(ormTimed('CP-200', [], { control: 'CA', msh7: REPLAYED, orc9: CANCELLED }));
    await rig.relay.resume();
    await rig.settle('CP-200');

    const evs = await rig.events('CP-200');
    expect(deadReasons(evs)).toEqual([]);
    expect(saleOrders(rig.emu, 'CP-200').map((o) => o['state'])).not.toContain('cancel');
    expect(openLines(rig.emu, 'CP-200')).toEqual(['GLU', 'TSH']);
    expect(billed(rig.emu, 'CP-200')).toEqual(['GLU', 'TSH']);
  });

  /** A cancellation at or after the re-order still takes the test off the waiting invoice (as before). */
  it('a cancellation of the re-order itself still takes the test off the waiting invoice', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('CP-300', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('CP-300', 'GLU'));
    await rig.receive(ormTimed('CP-300', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(ormTimed('CP-300', ['TSH'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.settle('CP-300');

    await rig.relay.pause();
    await rig.receive(oru('CP-300', 'TSH'));
    await rig.receive(ormTimed('CP-300', ['TSH'], { control: 'CA', msh7: REPLAYED, orc9: '20260301104500' }));
    await rig.relay.resume();
    await rig.settle('CP-300');

    const evs = await rig.events('CP-300');
    expect(deadReasons(evs)).toEqual([]);
    expect(openLines(rig.emu, 'CP-300')).toEqual(['GLU']);
    expect(billed(rig.emu, 'CP-300')).toEqual(['GLU']);
  });

  /** One ORC-9 stamped on the re-order and on a cancellation of it: equal times still cancel. */
  it('a cancellation at the re-order\'s own time still takes the test off the waiting invoice', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('CP-310', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('CP-310', 'GLU'));
    await rig.receive(ormTimed('CP-310', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(ormTimed('CP-310', ['TSH'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.settle('CP-310');

    await rig.relay.pause();
    await rig.receive(oru('CP-310', 'TSH'));
    await rig.receive(ormTimed('CP-310', ['TSH'], { control: 'CA', msh7: REPLAYED, orc9: AGAIN }));
    await rig.relay.resume();
    await rig.settle('CP-310');

    const evs = await rig.events('CP-310');
    expect(deadReasons(evs)).toEqual([]);
    expect(openLines(rig.emu, 'CP-310')).toEqual(['GLU']);
    expect(billed(rig.emu, 'CP-310')).toEqual(['GLU']);
  });

  /** A re-order without ORC-9 has no time to be after the cancellation's: the replay still cancels (unknown times cancel). */
  it('a re-order without ORC-9: the replayed cancellation still takes the test off the waiting invoice', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('CP-320', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('CP-320', 'GLU'));
    await rig.receive(ormTimed('CP-320', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(ormTimed('CP-320', ['TSH'], { msh7: AGAIN }));
    await rig.settle('CP-320');

    await rig.relay.pause();
    await rig.receive(oru('CP-320', 'TSH'));
    await rig.receive(ormTimed('CP-320', ['TSH'], { control: 'CA', msh7: REPLAYED, orc9: CANCELLED }));
    await rig.relay.resume();
    await rig.settle('CP-320');

    const evs = await rig.events('CP-320');
    expect(deadReasons(evs)).toEqual([]);
    expect(openLines(rig.emu, 'CP-320')).toEqual(['GLU']);
    expect(billed(rig.emu, 'CP-320')).toEqual(['GLU']);
  });

  /**
   * A whole-order cancellation timed between GLU's order (09:20) and TSH's re-order (10:30), stored
   * while TSH's invoice waits: it takes GLU off (the order and the draft invoice), TSH is billed.
   */
  it('a late whole-order cancellation takes off only the tests ordered before it; the re-ordered one is billed', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('CP-330', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('CP-330', 'GLU'));
    await rig.receive(ormTimed('CP-330', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(ormTimed('CP-330', ['TSH'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.settle('CP-330');
    expect(billed(rig.emu, 'CP-330')).toEqual(['GLU']);

    await rig.relay.pause();
    await rig.receive(oru('CP-330', 'TSH'));
    await rig.receive(ormTimed('CP-330', [], { control: 'CA', msh7: REPLAYED, orc9: '20260301101500' }));
    await rig.relay.resume();
    await rig.settle('CP-330');

    const evs = await rig.events('CP-330');
    expect(deadReasons(evs)).toEqual([]);
    expect(saleOrders(rig.emu, 'CP-330').map((o) => o['state'])).not.toContain('cancel');
    expect(openLines(rig.emu, 'CP-330')).toEqual(['TSH']);
    expect(billed(rig.emu, 'CP-330')).toEqual(['TSH']);
  });
});
