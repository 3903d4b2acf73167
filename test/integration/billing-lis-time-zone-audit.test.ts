import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import { billingState } from '../../gateway/src/events/invoice-eligibility.ts';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { billed, billingRig, deadReasons, normalize, openLines, oru, ormTimed } from '../fixtures/relay/billing-rig.ts';

/**
 * Billing judges a re-order, a resend and a replayed or late cancellation by the times the LIS
 * wrote (ORC-9, else MSH-7; a result by OBR-22). A TS without an offset is the LIS's local time,
 * not the gateway's: here the gateway runs in a UTC container and the LIS at -0500, writing its
 * offset on some fields only. And a time written to the minute is not before one written to the
 * second within that minute. Real HL7 through the LIS normalizer, the invoice-eligibility
 * derivation in a LevelDB store, the relay and the Odoo emulator over HTTP
 * (relay/README.md "Times the LIS wrote").
 */

const savedTz = process.env.TZ;
beforeAll(() => {
  process.env.TZ = 'UTC';
});
afterAll(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

const noteOf = (evs: StoredEvent[], type: string): string => evs.filter((e) => e.event.type === type).at(-1)?.note ?? '';

describe('LIS times without an offset, the gateway in another zone', () => {
  it('the gateway reads local times in UTC here (the container the LIS at -0500 talks to)', () => {
    expect(new Date(2026, 2, 1, 11, 0, 0).toISOString()).toBe('2026-03-01T11:00:00.000Z');
  });

  /**
   * The LIS writes its offset on ORC-9, none on MSH-7. TSH cancelled, ordered again at 10:30-0500,
   * then cancelled for good at 11:00 by a message without ORC-9 (timed by its MSH-7, 11:00 local).
   * Before, that MSH-7 read as 11:00 UTC, hours before the re-order (15:30 UTC): the cancellation
   * was taken for a replay of an older one, TSH stayed on the sale order and was billed.
   */
  it('a cancellation timed by an MSH-7 without offset, after a re-order with ORC-9 -0500, cancels it', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('TZ-100', ['GLU', 'TSH'], { msh7: '20260301092000', orc9: '20260301092000-0500' }));
    await rig.receive(oru('TZ-100', 'GLU', 'F', '5.4', '20260301100000-0500'));
    await rig.receive(ormTimed('TZ-100', ['TSH'], { control: 'CA', msh7: '20260301100000', orc9: '20260301100000-0500' }));
    await rig.receive(ormTimed('TZ-100', ['TSH'], { msh7: '20260301103000', orc9: '20260301103000-0500' }));
    await rig.receive(ormTimed('TZ-100', ['TSH'], { control: 'CA', msh7: '20260301110000' }));
    await rig.receive(oru('TZ-100', 'TSH', 'F', '2.1', '20260301113000-0500'));
    await rig.settle('TZ-100');

    const evs = await rig.events('TZ-100');
    expect(deadReasons(evs)).toEqual([]);
    expect(noteOf(evs, 'order.cancelled')).not.toMatch(/left on the order/);
    expect(openLines(rig.emu, 'TZ-100'), 'TSH taken off the order').toEqual(['GLU']);
    expect(billed(rig.emu, 'TZ-100'), 'TSH is not billed').toEqual(['GLU']);
  });

  /**
   * The other way: the LIS writes its offset on MSH-7, none on ORC-9. GLU and TSH ordered at 09:20,
   * TSH cancelled at 10:00 and ordered again at 10:30; the cancellation (no ORC-9, MSH-7
   * 10:00-0500) came over a second interface after the re-order. Before, the re-order's ORC-9 read
   * as 10:30 UTC, before the cancellation's 15:00 UTC: TSH was taken off the order and never billed
   * although the lab ran it.
   */
  it('a late cancellation timed by MSH-7 -0500 leaves a re-order with a later ORC-9 without offset', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('TZ-200', ['GLU', 'TSH'], { msh7: '20260301092000-0500', orc9: '20260301092000' }));
    await rig.receive(ormTimed('TZ-200', ['TSH'], { msh7: '20260301103000-0500', orc9: '20260301103000' }));
    await rig.receive(ormTimed('TZ-200', ['TSH'], { control: 'CA', msh7: '20260301100000-0500' }));
    await rig.receive(oru('TZ-200', 'GLU'));
    await rig.receive(oru('TZ-200', 'TSH'));
    await rig.settle('TZ-200');

    const evs = await rig.events('TZ-200');
    expect(deadReasons(evs)).toEqual([]);
    expect(noteOf(evs, 'order.cancelled')).toMatch(/TSH left on the order \(ordered at 2026-03-01T15:30:00\.000Z/);
    expect(openLines(rig.emu, 'TZ-200')).toEqual(['GLU', 'TSH']);
    expect(billed(rig.emu, 'TZ-200'), 'TSH is billed').toEqual(['GLU', 'TSH']);
  });

  it('a time without offset is read in the zone of the same message’s other times', () => {
    const { drafts } = normalize(ormTimed('TZ-300', ['TSH'], { msh7: '20260301103000-0500', orc9: '20260301103000' }));
    const order = drafts.find((d) => d.type === 'order.created')!;
    expect(order.occurredAt).toBe('2026-03-01T15:30:00.000Z');
    expect((order.data as { orderedAt?: string }).orderedAt).toBe('2026-03-01T15:30:00.000Z');
    // Kept as the LIS wrote it, with the offset it was read in beside it.
    expect(order.data).toMatchObject({ timeWritten: '20260301103000', timeZone: '-0500' });
    // A result whose OBR-22 has no offset, in a message whose MSH-7 has one.
    const result = [
      'MSH|^~\\&|LIS|LAB|GW|LAB|20260301113000-0500||ORU^R01^ORU_R01|TZ-301|P|2.5.1',
      'PID|1||MRN-77^^^LAB^MR',
      'ORC|RE|TZ-300|F-TZ-300',
      'OBR|1|TZ-300|F-TZ-300|TSH^TSH test|||20260301100000|||||||||||||||20260301112500|||F',
      'OBX|1|NM|TSH^TSH test||2.1|mIU/L|||||F',
    ].join('\r');
    const validated = normalize(result).drafts.find((d) => d.type === 'result.validated')!;
    expect(validated.occurredAt).toBe('2026-03-01T16:25:00.000Z');
  });
});

describe('times written at different precisions', () => {
  /**
   * TSH ordered again at 10:30:15 (seconds), cancelled again by a message written to the minute
   * (ORC-9 202603011030) after it. Before, 10:30 read as 10:30:00, before the re-order: the
   * cancellation was taken for a replay, TSH stayed on the order and was billed. Within one minute
   * neither is known to come first: the cancellation, which came after, stands.
   */
  it('a cancellation written to the minute of the re-order cancels it', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('PR-100', ['GLU', 'TSH'], { msh7: '20260301092000', orc9: '20260301092000' }));
    await rig.receive(oru('PR-100', 'GLU'));
    await rig.receive(ormTimed('PR-100', ['TSH'], { control: 'CA', msh7: '20260301100000', orc9: '20260301100000' }));
    await rig.receive(ormTimed('PR-100', ['TSH'], { msh7: '20260301103015', orc9: '20260301103015' }));
    await rig.receive(ormTimed('PR-100', ['TSH'], { control: 'CA', msh7: '20260301103040', orc9: '202603011030' }));
    await rig.receive(oru('PR-100', 'TSH', 'F', '2.1', '20260301110000'));
    await rig.settle('PR-100');

    const evs = await rig.events('PR-100');
    expect(deadReasons(evs)).toEqual([]);
    expect(noteOf(evs, 'order.cancelled')).not.toMatch(/left on the order/);
    expect(openLines(rig.emu, 'PR-100'), 'TSH taken off the order').toEqual(['GLU']);
    expect(billed(rig.emu, 'PR-100'), 'TSH is not billed').toEqual(['GLU']);
  });

  /**
   * A cancellation written to the minute (10:30) that came before its order (ORC-9 10:30:15, two
   * interfaces racing). Before, the order read as placed after the cancellation: TSH ordered again,
   * put on the sale order and billed. Within one minute it is the order the cancellation cancelled.
   */
  it('a cancellation before its order, written to the order’s minute, cancels it', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('PR-150', ['TSH'], { control: 'CA', msh7: '20260301103040', orc9: '202603011030' }));
    await rig.receive(ormTimed('PR-150', ['GLU', 'TSH'], { msh7: '20260301103015', orc9: '20260301103015' }));
    await rig.receive(oru('PR-150', 'GLU'));
    await rig.receive(oru('PR-150', 'TSH'));
    await rig.settle('PR-150');

    const evs = await rig.events('PR-150');
    expect(deadReasons(evs)).toEqual([]);
    expect(openLines(rig.emu, 'PR-150'), 'TSH left off the order').toEqual(['GLU']);
    expect(billed(rig.emu, 'PR-150'), 'TSH is not billed').toEqual(['GLU']);
  });

  /**
   * The mirror: TSH cancelled at 10:00:30, then an order of TSH written to the minute (10:00).
   * Before, 10:00 read as 10:00:00, before the cancellation: the order was taken for a resend of
   * the cancelled one and TSH never went back on the sale order. Within one minute it counts as
   * ordered again, as equal times always did.
   */
  it('an order written to the minute of a cancellation is an order again, not a resend', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('PR-200', ['GLU', 'TSH'], { msh7: '20260301092000', orc9: '20260301092000' }));
    await rig.receive(ormTimed('PR-200', ['TSH'], { control: 'CA', msh7: '20260301100030', orc9: '20260301100030' }));
    await rig.receive(ormTimed('PR-200', ['TSH'], { msh7: '20260301100045', orc9: '202603011000' }));
    await rig.receive(oru('PR-200', 'GLU'));
    await rig.receive(oru('PR-200', 'TSH'));
    await rig.settle('PR-200');

    const evs = await rig.events('PR-200');
    expect(deadReasons(evs)).toEqual([]);
    expect(noteOf(evs, 'order.created')).not.toMatch(/resend/);
    expect(openLines(rig.emu, 'PR-200')).toEqual(['GLU', 'TSH']);
    expect(billed(rig.emu, 'PR-200'), 'TSH is billed').toEqual(['GLU', 'TSH']);
  });
});

/**
 * An accession whose first events were stored by the release before (no `timeWritten`, a time
 * without offset read in the gateway's zone) and whose next come after the upgrade. Such a pair is
 * compared as the release before compared it, whatever this one now reads the new event's time as:
 * here the LIS writes its offset on MSH-7 only, the gateway runs in UTC.
 */
describe('events of the release before mixed with new ones', () => {
  /** The events of one message, as stored (a message id of their own, as billing tells messages apart). */
  const stored = (text: string, earlierRelease: boolean): DraftEvent[] => {
    // The release before read ORC-9 without offset in the gateway's zone whatever MSH-7 said, and kept no timeWritten.
    const { controlId, drafts } = normalize(earlierRelease ? text.replace(/^(MSH(?:\|[^|]*){6})[+-]\d{4}/, '$1') : text);
    return drafts.map((d) => {
      const data = { ...(d.data as unknown as Record<string, unknown>) };
      if (earlierRelease) {
        delete data.timeWritten;
        delete data.timeZone;
      }
      return { ...d, data, source: { ...d.source, messageId: controlId } } as unknown as DraftEvent;
    });
  };

  it('a resend, after the upgrade, of an order cancelled before it stays cancelled (not billed)', () => {
    const events = [
      ...stored(ormTimed('UP-100', ['GLU', 'TSH'], { msh7: '20260301092000-0500', orc9: '20260301092000' }), true),
      ...stored(ormTimed('UP-100', ['TSH'], { control: 'CA', msh7: '20260301100000-0500', orc9: '20260301100000' }), true),
      // The LIS replays the 09:20 order under a new MSH-10 (its ACK lost as the gateway restarted).
      ...stored(ormTimed('UP-100', ['GLU', 'TSH'], { msh7: '20260301103000-0500', orc9: '20260301092000' }), false),
    ];
    const state = billingState(events);
    expect([...state.open.keys()], 'TSH not ordered again').toEqual(['GLU']);
    expect([...state.resends.keys()]).toEqual(['TSH']);
  });

  it('a late cancellation, after the upgrade, leaves a re-order stored before it open (billed)', () => {
    const events = [
      ...stored(ormTimed('UP-200', ['GLU', 'TSH'], { msh7: '20260301092000-0500', orc9: '20260301092000' }), true),
      ...stored(ormTimed('UP-200', ['TSH'], { control: 'CA', msh7: '20260301100000-0500', orc9: '20260301100000' }), true),
      ...stored(ormTimed('UP-200', ['TSH'], { msh7: '20260301103000-0500', orc9: '20260301103000' }), true),
      // The 10:00 cancellation replayed by the LIS after the upgrade.
      ...stored(ormTimed('UP-200', ['TSH'], { control: 'CA', msh7: '20260301111500-0500', orc9: '20260301100000' }), false),
    ];
    const state = billingState(events);
    expect([...state.open.keys()].sort(), 'TSH still ordered').toEqual(['GLU', 'TSH']);
    expect([...state.leftOpen.keys()]).toEqual(['TSH']);
  });
});
