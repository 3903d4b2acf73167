import { describe, expect, it } from 'vitest';
import type { InvoiceEligibleData } from '../../gateway/src/events/types.ts';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import { useLisLab } from '../fixtures/lis-rig.ts';
import { billed, billingRig, deadReasons, openLines, oru, ormTimed, saleLines, saleOrders } from '../fixtures/relay/billing-rig.ts';

/**
 * A LIS resends an order after the gateway has already seen it cancelled: its ACK was lost in an
 * outage, and its engine issued a new control id (MSH-10) when it replayed its queue, so intake
 * takes it for a new message (the duplicate key and the content fingerprint both hold MSH-10).
 * The resend keeps the order's own transaction time (ORC-9 09:20), earlier than the cancellation
 * (10:00). Before, it re-opened the cancelled test: back on the sale order and billed. Real HL7
 * through the LIS normalizer, the invoice-eligibility derivation in a LevelDB store, the relay and
 * the Odoo emulator over HTTP, as finance sees Odoo (relay/README.md "A resend of a cancelled order").
 */

const ORDERED = '20260301092000';
const CANCELLED = '20260301100000';
const AGAIN = '20260301103000';
const REPLAYED = '20260301113000';

/** The note of the accession's last order.created (what the message browser shows for it). */
const lastOrderNote = (evs: StoredEvent[]): string =>
  evs.filter((e) => e.event.type === 'order.created').at(-1)?.note ?? '';

const { lab } = useLisLab();

describe('an order resent after the gateway saw it cancelled', () => {
  /**
   * What finance saw (a whole gateway, the LIS over MLLP): GLU and TSH ordered at 09:20, GLU
   * validated, TSH cancelled at 10:00 and taken off the quotation; GLU billed. At 11:30 the LIS
   * replayed the order under a new MSH-10 (ORC-9 still 09:20), and the analyzer's TSH result came:
   * TSH went back on the sale order and was invoiced on a second invoice.
   */
  it('a replay with a new MSH-10 and its ORC-9 before the cancellation leaves the test cancelled and unbilled', async () => {
    const l = await lab('resend-after-cancel');
    const first = ormTimed('RS-100', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED, controlId: 'LIS-1001' });
    expect(await l.send('lis', first)).toContain('MSA|AA|LIS-1001');
    expect(await l.send('lis', oru('RS-100', 'GLU'))).toContain('MSA|AA');
    expect(await l.send('lis', ormTimed('RS-100', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED, controlId: 'LIS-1002' }))).toContain('MSA|AA|LIS-1002');
    await l.settled();
    expect(billed(l.emu, 'RS-100')).toEqual(['GLU']);

    // The same order, MSH-7 re-stamped and a new control id: accepted as a new message, not a duplicate.
    const replay = first.replace(`|${ORDERED}||ORM^O01^ORM_O01|LIS-1001|`, `|${REPLAYED}||ORM^O01^ORM_O01|LIS-2001|`);
    expect(replay).not.toEqual(first);
    expect(await l.send('lis', replay)).toContain('MSA|AA|LIS-2001');
    expect(await l.send('lis', oru('RS-100', 'TSH'))).toContain('MSA|AA');
    await l.settled();

    const evs = (await l.all()).filter((e) => e.event.correlationId === 'RS-100');
    expect(evs.filter((e) => e.event.type === 'order.created'), 'intake stored the replay as a new message').toHaveLength(2);
    expect(deadReasons(evs)).toEqual([]);
    expect(openLines(l.emu, 'RS-100'), 'TSH is not put back on the order').toEqual(['GLU']);
    expect(billed(l.emu, 'RS-100'), 'TSH is not billed').toEqual(['GLU']);
    expect(evs.filter((e) => e.event.type === 'invoice.eligible').map((e) => (e.event.data as InvoiceEligibleData).tests.map((t) => t.code))).toEqual([['GLU']]);
    expect(lastOrderNote(evs)).toMatch(/TSH left off the order \(a resend of the order the LIS cancelled/);
  });

  /** A confirmed order (relay.autoConfirm): the cancellation set TSH's line to 0; the replay gave it its quantity back. */
  it('on a confirmed order the cancelled line keeps quantity 0', async () => {
    const rig = await billingRig({ autoConfirm: true });
    await rig.receive(ormTimed('RS-200', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('RS-200', 'GLU'));
    await rig.receive(ormTimed('RS-200', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.settle('RS-200');
    expect(saleOrders(rig.emu, 'RS-200').map((o) => o['state'])).toEqual(['sale']);

    await rig.receive(ormTimed('RS-200', ['GLU', 'TSH'], { msh7: REPLAYED, orc9: ORDERED }));
    await rig.receive(oru('RS-200', 'TSH'));
    await rig.settle('RS-200');

    expect(deadReasons(await rig.events('RS-200'))).toEqual([]);
    expect(saleLines(rig.emu, 'RS-200').map((x) => [x.code, x.qty]).sort()).toEqual([['GLU', 1], ['TSH', 0]]);
    expect(billed(rig.emu, 'RS-200')).toEqual(['GLU']);
  });

  /** The whole order cancelled (an ORC CA alone) at 10:00: the replay of the 09:20 order brought the quotation back and billed both tests. */
  it('a replay of an order cancelled as a whole leaves it cancelled', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('RS-300', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(ormTimed('RS-300', [], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.settle('RS-300');
    expect(saleOrders(rig.emu, 'RS-300').map((o) => o['state'])).toEqual(['cancel']);

    await rig.receive(ormTimed('RS-300', ['GLU', 'TSH'], { msh7: REPLAYED, orc9: ORDERED }));
    await rig.receive(oru('RS-300', 'GLU'));
    await rig.receive(oru('RS-300', 'TSH'));
    await rig.settle('RS-300');

    const evs = await rig.events('RS-300');
    expect(deadReasons(evs)).toEqual([]);
    expect(evs.some((e) => e.event.type === 'invoice.eligible')).toBe(false);
    expect(saleOrders(rig.emu, 'RS-300').map((o) => o['state']), 'no live quotation').toEqual(['cancel']);
    expect(billed(rig.emu, 'RS-300')).toEqual([]);
    expect(lastOrderNote(evs)).toMatch(/GLU, TSH left off the order \(a resend of the order the LIS cancelled/);
  });

  /** A confirmed order (relay.autoConfirm) cancelled as a whole keeps its state with its lines at 0: the replay gave them their quantity back. */
  it('a replay of a confirmed order cancelled as a whole gives no line its quantity back', async () => {
    const rig = await billingRig({ autoConfirm: true });
    await rig.receive(ormTimed('RS-310', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(ormTimed('RS-310', [], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.settle('RS-310');
    await rig.receive(ormTimed('RS-310', ['GLU', 'TSH'], { msh7: REPLAYED, orc9: ORDERED }));
    await rig.receive(oru('RS-310', 'GLU'));
    await rig.receive(oru('RS-310', 'TSH'));
    await rig.settle('RS-310');

    expect(deadReasons(await rig.events('RS-310'))).toEqual([]);
    expect(openLines(rig.emu, 'RS-310')).toEqual([]);
    expect(billed(rig.emu, 'RS-310')).toEqual([]);
  });

  /** Odoo unreachable all morning: the order, its cancellation and the replay all wait in the queue and post together. */
  it('a replay queued behind the cancellation while Odoo was away leaves the test cancelled', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('RS-320', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(ormTimed('RS-320', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(ormTimed('RS-320', ['GLU', 'TSH'], { msh7: REPLAYED, orc9: ORDERED }));
    await rig.receive(oru('RS-320', 'GLU'));
    await rig.receive(oru('RS-320', 'TSH'));
    await rig.settle('RS-320');

    expect(deadReasons(await rig.events('RS-320'))).toEqual([]);
    expect(openLines(rig.emu, 'RS-320')).toEqual(['GLU']);
    expect(billed(rig.emu, 'RS-320')).toEqual(['GLU']);
  });

  /**
   * The cancellation came first (the order interface down), the 09:20 order arrived and was taken
   * for the order cancelled; then the LIS replayed it once more under another control id. Before,
   * that second copy ordered TSH again.
   */
  it('a second replay of an order that arrived after its cancellation leaves the test cancelled', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('RS-400', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(ormTimed('RS-400', ['GLU', 'TSH'], { msh7: '20260301110000', orc9: ORDERED }));
    await rig.settle('RS-400');
    await rig.receive(ormTimed('RS-400', ['GLU', 'TSH'], { msh7: REPLAYED, orc9: ORDERED }));
    await rig.receive(oru('RS-400', 'GLU'));
    await rig.receive(oru('RS-400', 'TSH'));
    await rig.settle('RS-400');

    expect(deadReasons(await rig.events('RS-400'))).toEqual([]);
    expect(openLines(rig.emu, 'RS-400')).toEqual(['GLU']);
    expect(billed(rig.emu, 'RS-400')).toEqual(['GLU']);
  });
});

describe('the LIS ordering a cancelled test again', () => {
  /** The clinician ordered TSH again at 10:30, after cancelling it at 10:00: ORC-9 10:30, billed once validated. */
  it('an order whose ORC-9 is after the cancellation orders the test again and is billed', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('RS-900', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(ormTimed('RS-900', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.settle('RS-900');
    await rig.receive(ormTimed('RS-900', ['TSH'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.receive(oru('RS-900', 'GLU'));
    await rig.receive(oru('RS-900', 'TSH'));
    await rig.settle('RS-900');

    expect(deadReasons(await rig.events('RS-900'))).toEqual([]);
    expect(openLines(rig.emu, 'RS-900')).toEqual(['GLU', 'TSH']);
    expect(billed(rig.emu, 'RS-900')).toEqual(['GLU', 'TSH']);
  });

  /** The whole order cancelled at 10:00 and ordered again at 10:30 (ORC-9): the quotation comes back, billed once. */
  it('an order cancelled as a whole and ordered again after it is billed', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('RS-910', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(ormTimed('RS-910', [], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.settle('RS-910');
    await rig.receive(ormTimed('RS-910', ['GLU'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.receive(oru('RS-910', 'GLU'));
    await rig.settle('RS-910');

    expect(deadReasons(await rig.events('RS-910'))).toEqual([]);
    expect(openLines(rig.emu, 'RS-910')).toEqual(['GLU']);
    expect(billed(rig.emu, 'RS-910')).toEqual(['GLU']);
  });

  /**
   * A re-order at the cancellation's own time (ORC-9 10:00, one minute's precision): not placed
   * before it, so not a resend. TSH back on the order and billed once, on a second invoice.
   */
  it('an order whose ORC-9 equals the cancellation orders the test again and is billed once', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('RS-920', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('RS-920', 'GLU'));
    await rig.receive(ormTimed('RS-920', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(ormTimed('RS-920', ['TSH'], { msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(oru('RS-920', 'TSH'));
    await rig.settle('RS-920');

    expect(deadReasons(await rig.events('RS-920'))).toEqual([]);
    expect(openLines(rig.emu, 'RS-920')).toEqual(['GLU', 'TSH']);
    expect(billed(rig.emu, 'RS-920')).toEqual(['GLU', 'TSH']);
  });

  /** The same on a confirmed order (relay.autoConfirm): the line the cancellation set to 0 gets its quantity back. */
  it('on a confirmed order, a test ordered again at the cancellation time gets its quantity back and is billed once', async () => {
    const rig = await billingRig({ autoConfirm: true });
    await rig.receive(ormTimed('RS-925', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('RS-925', 'GLU'));
    await rig.receive(ormTimed('RS-925', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.settle('RS-925');
    await rig.receive(ormTimed('RS-925', ['TSH'], { msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(oru('RS-925', 'TSH'));
    await rig.settle('RS-925');

    expect(deadReasons(await rig.events('RS-925'))).toEqual([]);
    expect(saleLines(rig.emu, 'RS-925').map((x) => [x.code, x.qty]).sort()).toEqual([['GLU', 1], ['TSH', 1]]);
    expect(billed(rig.emu, 'RS-925')).toEqual(['GLU', 'TSH']);
  });

  /** A LIS that sends no ORC-9 (nor an OBR-6): an order message after the cancellation orders the test again. */
  it('without ORC-9, an order after the cancellation orders the test again and is billed once', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('RS-930', ['GLU', 'TSH'], { msh7: ORDERED }));
    await rig.receive(oru('RS-930', 'GLU'));
    await rig.receive(ormTimed('RS-930', ['TSH'], { control: 'CA', msh7: CANCELLED }));
    await rig.receive(ormTimed('RS-930', ['TSH'], { msh7: AGAIN }));
    await rig.receive(oru('RS-930', 'TSH'));
    await rig.settle('RS-930');

    expect(deadReasons(await rig.events('RS-930'))).toEqual([]);
    expect(openLines(rig.emu, 'RS-930')).toEqual(['GLU', 'TSH']);
    expect(billed(rig.emu, 'RS-930')).toEqual(['GLU', 'TSH']);
  });

  /** One message cancelling TSH and ordering it again (ORC CA, then ORC NW), the NW keeping the order's first ORC-9 (09:20). */
  it('a cancellation and an order of the test in one message orders it again, whatever the ORC-9', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('RS-940', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('RS-940', 'GLU'));
    const [msh, pid, ...cancel] = ormTimed('RS-940', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }).split('\r');
    const order = ormTimed('RS-940', ['TSH'], { msh7: CANCELLED, orc9: ORDERED }).split('\r').slice(2);
    await rig.receive([msh, pid, ...cancel, ...order].join('\r'));
    await rig.receive(oru('RS-940', 'TSH'));
    await rig.settle('RS-940');

    expect(deadReasons(await rig.events('RS-940'))).toEqual([]);
    expect(openLines(rig.emu, 'RS-940')).toEqual(['GLU', 'TSH']);
    expect(billed(rig.emu, 'RS-940')).toEqual(['GLU', 'TSH']);
  });

  /** TSH ordered again at 10:30 and billed; then the 09:20 order is replayed: TSH stays on the order, billed once. */
  it('a resend after the test was ordered again leaves it on the order, billed once', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('RS-950', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('RS-950', 'GLU'));
    await rig.receive(ormTimed('RS-950', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(ormTimed('RS-950', ['TSH'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.receive(oru('RS-950', 'TSH'));
    await rig.settle('RS-950');
    expect(billed(rig.emu, 'RS-950')).toEqual(['GLU', 'TSH']);

    await rig.receive(ormTimed('RS-950', ['GLU', 'TSH'], { msh7: REPLAYED, orc9: ORDERED }));
    await rig.receive(oru('RS-950', 'TSH'));
    await rig.settle('RS-950');

    expect(deadReasons(await rig.events('RS-950'))).toEqual([]);
    expect(openLines(rig.emu, 'RS-950')).toEqual(['GLU', 'TSH']);
    expect(billed(rig.emu, 'RS-950')).toEqual(['GLU', 'TSH']);
  });

  /** An add-on placed after the resend (ORC-9 12:00) is billed; the cancelled TSH is not. */
  it('an add-on after a resend is billed, the cancelled test is not', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('RS-960', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('RS-960', 'GLU'));
    await rig.receive(ormTimed('RS-960', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(ormTimed('RS-960', ['GLU', 'TSH'], { msh7: REPLAYED, orc9: ORDERED }));
    await rig.receive(ormTimed('RS-960', ['CRP'], { msh7: '20260301120000', orc9: '20260301120000' }));
    await rig.receive(oru('RS-960', 'TSH'));
    await rig.receive(oru('RS-960', 'CRP'));
    await rig.settle('RS-960');

    expect(deadReasons(await rig.events('RS-960'))).toEqual([]);
    expect(openLines(rig.emu, 'RS-960')).toEqual(['CRP', 'GLU']);
    expect(billed(rig.emu, 'RS-960')).toEqual(['CRP', 'GLU']);
  });

  /** relay.invoicing off: the resend leaves TSH off the sale order, and TSH ordered again at 12:00 puts it back; nothing invoiced. */
  it('with relay.invoicing off the sale order follows the same rule', async () => {
    const rig = await billingRig({ invoicing: false });
    await rig.receive(ormTimed('RS-970', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(ormTimed('RS-970', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(ormTimed('RS-970', ['GLU', 'TSH'], { msh7: REPLAYED, orc9: ORDERED }));
    await rig.receive(oru('RS-970', 'GLU'));
    await rig.receive(oru('RS-970', 'TSH'));
    await rig.settle('RS-970');
    expect(openLines(rig.emu, 'RS-970')).toEqual(['GLU']);

    await rig.receive(ormTimed('RS-970', ['TSH'], { msh7: '20260301120000', orc9: '20260301120000' }));
    await rig.receive(oru('RS-970', 'TSH'));
    await rig.settle('RS-970');

    expect(deadReasons(await rig.events('RS-970'))).toEqual([]);
    expect(openLines(rig.emu, 'RS-970')).toEqual(['GLU', 'TSH']);
    expect(billed(rig.emu, 'RS-970')).toEqual([]);
  });
});
