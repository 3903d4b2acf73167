import { describe, expect, it } from 'vitest';
import type { DraftEvent, InvoiceEligibleData, OrderCancelledData, OrderCreatedData } from '../../gateway/src/events/types.ts';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import type { Hl7Message } from '../../gateway/src/hl7/message.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';
import { hl7EventKey } from '../../gateway/src/hl7/normalizer.ts';
import { useLisLab } from '../fixtures/lis-rig.ts';
import { billed, billingRig, deadReasons, openLines, ormLines, ormTimed, oru } from '../fixtures/relay/billing-rig.ts';

/**
 * An order message holding several ORC groups, each with its own transaction time (ORC-9): GLU
 * placed at 09:20, TSH placed at 10:30, after the LIS had cancelled TSH at 10:00. The normalizer
 * made one order.created of the run of order lines, timed by the FIRST ORC (09:20), so billing
 * took TSH for a resend of the cancelled order and never billed it, though the LIS ordered it
 * again at 10:30. Now the run is split where ORC-9 differs: each order.created carries its own
 * lines' ORC-9, and billing decides per test (hl7/README.md "Order lines with their own ORC-9",
 * relay/README.md "A resend of a cancelled order"). Real HL7 through the LIS normalizer, the
 * invoice-eligibility derivation in a LevelDB store, the relay and the Odoo emulator over HTTP.
 */

const ORDERED = '20260301092000';
const CANCELLED = '20260301100000';
const AGAIN = '20260301103000';
const REPLAYED = '20260301113000';

const { lab } = useLisLab();

/** The message and its events as the LIS intake makes them (endpoint `lis`). */
function read(text: string): { message: Hl7Message; drafts: DraftEvent[]; key: (position: number, type: string) => string } {
  const raw = Buffer.from(text, 'latin1');
  const r = readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii');
  if (!r.message) throw new Error(r.problem?.text ?? 'unreadable HL7');
  const message = r.message;
  const ctx = { message, endpoint: 'lis', receivedAt: '2026-03-01T12:00:00.000Z', notes: [] as string[] };
  return { message, drafts: normalizeLis(ctx), key: (position, type) => hl7EventKey(ctx, position, type) };
}

/**
 * An offset other than the gateway's own on 2026-03-01, so that a bare ORC-9 read in the gateway's
 * zone is another instant than the same digits with this offset.
 */
const offset = ((): string => {
  const minutes = -new Date(2026, 2, 1, 9, 20).getTimezoneOffset() + 60;
  const abs = Math.abs(minutes);
  return `${minutes < 0 ? '-' : '+'}${String(Math.floor(abs / 60)).padStart(2, '0')}${String(abs % 60).padStart(2, '0')}`;
})();
/** A bare ORC-9 as the gateway reads it: the sender's local time, which is the gateway's own zone. */
const iso = (hl7: string): string => new Date(+hl7.slice(0, 4), +hl7.slice(4, 6) - 1, +hl7.slice(6, 8), +hl7.slice(8, 10), +hl7.slice(10, 12)).toISOString();

describe('an order message whose lines carry their own ORC-9', () => {
  /**
   * What finance saw (a whole gateway, the LIS over MLLP): GLU and TSH ordered at 09:20, TSH
   * cancelled at 10:00, GLU billed. At 10:30 the clinician ordered TSH again and the LIS sent the
   * order as it now stood: ORC GLU (ORC-9 09:20), ORC TSH (ORC-9 10:30). TSH was validated, never
   * put back on the sale order, never billed: the order message was read as placed at 09:20.
   */
  it('a test ordered again on its own ORC after its cancellation is billed, though the message begins with an earlier line', async () => {
    const l = await lab('multi-orc-reorder');
    expect(await l.send('lis', ormTimed('MO-100', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED, controlId: 'LIS-3001' }))).toContain('MSA|AA|LIS-3001');
    expect(await l.send('lis', oru('MO-100', 'GLU'))).toContain('MSA|AA');
    expect(await l.send('lis', ormTimed('MO-100', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED, controlId: 'LIS-3002' }))).toContain('MSA|AA|LIS-3002');
    await l.settled();
    expect(billed(l.emu, 'MO-100')).toEqual(['GLU']);

    const asItStands = ormLines('MO-100', [{ test: 'GLU', orc9: ORDERED }, { test: 'TSH', orc9: AGAIN }], { msh7: AGAIN, controlId: 'LIS-3003' });
    expect(await l.send('lis', asItStands)).toContain('MSA|AA|LIS-3003');
    expect(await l.send('lis', oru('MO-100', 'TSH'))).toContain('MSA|AA');
    await l.settled();

    const evs = (await l.all()).filter((e) => e.event.correlationId === 'MO-100');
    expect(deadReasons(evs)).toEqual([]);
    expect(openLines(l.emu, 'MO-100'), 'TSH is back on the order').toEqual(['GLU', 'TSH']);
    expect(billed(l.emu, 'MO-100'), 'TSH is billed once, GLU once').toEqual(['GLU', 'TSH']);
    expect(evs.filter((e) => e.event.type === 'invoice.eligible').map((e) => (e.event.data as InvoiceEligibleData).tests.map((t) => t.code)), 'eligible again once TSH is validated').toEqual([['GLU'], ['GLU', 'TSH']]);
  });

  /**
   * The other way round: the message begins with an add-on placed at 10:30 (CRP) and then names
   * TSH on its own ORC with the 09:20 ORC-9 it was placed at, the order cancelled at 10:00 (a LIS
   * resending the order as it stands). Read as placed at 10:30, TSH was taken for ordered again:
   * back on the sale order and billed.
   */
  it('a cancelled test resent on its own earlier ORC stays cancelled, though the message begins with a later line', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('MO-200', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('MO-200', 'GLU'));
    await rig.receive(ormTimed('MO-200', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.settle('MO-200');
    await rig.receive(ormLines('MO-200', [{ test: 'CRP', orc9: AGAIN }, { test: 'TSH', orc9: ORDERED }], { msh7: REPLAYED }));
    await rig.receive(oru('MO-200', 'CRP'));
    await rig.receive(oru('MO-200', 'TSH'));
    await rig.settle('MO-200');

    const evs = await rig.events('MO-200');
    expect(deadReasons(evs)).toEqual([]);
    expect(openLines(rig.emu, 'MO-200')).toEqual(['CRP', 'GLU']);
    expect(billed(rig.emu, 'MO-200')).toEqual(['CRP', 'GLU']);
    expect(evs.filter((e) => e.event.type === 'order.created').map((e) => e.note ?? '').join(' ')).toMatch(/TSH left off the order \(a resend of the order the LIS cancelled/);
  });

  /** Each order.created carries its own lines' ORC-9, keyed on its first line (as a one-ORC message always was). */
  it('the run of order lines is split where ORC-9 differs, each part keyed on its first line', () => {
    const { drafts, key } = read(ormLines('MO-300', [{ test: 'GLU', orc9: ORDERED }, { test: 'ALT', orc9: ORDERED }, { test: 'TSH', orc9: AGAIN }], { msh7: AGAIN }));
    const orders = drafts.filter((d) => d.type === 'order.created');
    // MSH 0, PID 1, ORC 2, OBR 3 (GLU), ORC 4, OBR 5 (ALT), ORC 6, OBR 7 (TSH).
    expect(orders.map((d) => [(d.data as OrderCreatedData).tests.map((t) => t.code), d.occurredAt, (d.data as OrderCreatedData).orderedAt, d.idempotencyKey])).toEqual([
      [['GLU', 'ALT'], iso(ORDERED), iso(ORDERED), key(3, 'order.created')],
      [['TSH'], iso(AGAIN), iso(AGAIN), key(7, 'order.created')],
    ]);
  });

  /**
   * A later ORC that carries its ORC-9 but not the ordering facility (ORC-21), nor a priority:
   * its event keeps the client, filler number and priority of the run it was part of (an order
   * without a client is a dead letter for a missing mapping).
   */
  it('a part split off keeps the client, filler number and priority its own ORC does not name', () => {
    const text = ormLines('MO-305', [{ test: 'GLU', orc9: ORDERED }, { test: 'TSH', orc9: AGAIN }], { msh7: AGAIN })
      .replace(`ORC|NW|MO-305|F-MO-305||||||${ORDERED}|`, `ORC|NW|MO-305|F-MO-305||||^^^^^S||${ORDERED}|`)
      .replace(`ORC|NW|MO-305|F-MO-305||||||${AGAIN}||||||||||||CLINIC-A`, `ORC|NW|MO-305|||||||${AGAIN}`);
    const orders = read(text).drafts.filter((d) => d.type === 'order.created').map((d) => d.data as OrderCreatedData);
    expect(orders.map((o) => [o.tests.map((t) => t.code), o.orderingClientRef, o.fillerOrderNumber, o.priority])).toEqual([
      [['GLU'], 'CLINIC-A', 'F-MO-305', 'S'],
      [['TSH'], 'CLINIC-A', 'F-MO-305', 'S'],
    ]);
  });

  /** A cancellation message the same way: each order.cancelled timed by its own ORC-9. */
  it('a cancellation of lines with different ORC-9 is timed line by line', () => {
    const { drafts } = read(ormLines('MO-310', [{ test: 'GLU', orc9: CANCELLED }, { test: 'TSH', orc9: AGAIN }], { control: 'CA', msh7: AGAIN }));
    expect(drafts.filter((d) => d.type === 'order.cancelled').map((d) => [(d.data as OrderCancelledData).tests.map((t) => t.code), d.occurredAt])).toEqual([
      [['GLU'], iso(CANCELLED)],
      [['TSH'], iso(AGAIN)],
    ]);
  });
});

describe('order messages that keep their one event (and its key)', () => {
  /**
   * A message stored before this change and resent after it (retention took its duplicate key,
   * the events' keys kept) must be the same events under the same keys: one ORC, or several ORC
   * sharing one ORC-9 (written the same at another precision too), make one event as before.
   */
  it('one ORC, or several with one ORC-9, make one order.created keyed on the first line', () => {
    const one = read(ormTimed('MO-400', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    expect(one.drafts.filter((d) => d.type === 'order.created').map((d) => [(d.data as OrderCreatedData).tests.map((t) => t.code), d.idempotencyKey])).toEqual([[['GLU', 'TSH'], one.key(3, 'order.created')]]);

    const shared = read(ormLines('MO-410', [{ test: 'GLU', orc9: ORDERED }, { test: 'TSH', orc9: ORDERED.slice(0, 12) }], { msh7: ORDERED }));
    expect(shared.drafts.filter((d) => d.type === 'order.created').map((d) => [(d.data as OrderCreatedData).tests.map((t) => t.code), d.idempotencyKey])).toEqual([[['GLU', 'TSH'], shared.key(3, 'order.created')]]);

    const none = read(ormLines('MO-420', [{ test: 'GLU' }, { test: 'TSH' }], { msh7: ORDERED }));
    expect(none.drafts.filter((d) => d.type === 'order.created').map((d) => (d.data as OrderCreatedData).tests.map((t) => t.code))).toEqual([['GLU', 'TSH']]);

    // A second ORC carrying only the order numbers (no ORC-9) is part of the first one's order, timed by it.
    const numbersOnly = read(ormLines('MO-430', [{ test: 'GLU', orc9: ORDERED }, { test: 'TSH' }], { msh7: AGAIN }));
    expect(numbersOnly.drafts.filter((d) => d.type === 'order.created').map((d) => [(d.data as OrderCreatedData).tests.map((t) => t.code), d.occurredAt])).toEqual([[['GLU', 'TSH'], iso(ORDERED)]]);
  });

  /**
   * A LIS that writes one ORC-9 on every ORC but not in one format: with its offset on one and
   * without on the next, to the second on one and to the minute (or with a fraction) on the next.
   * Each was split into two events, the later keyed anew (a resend across the upgrade, after
   * retention, came back as new events), and a bare ORC-9 read in the gateway's own zone timed
   * its test otherwise than the run.
   */
  it('a second ORC repeating ORC-9 in another format is one event with one key', () => {
    const cases: Array<[string, string]> = [
      [`20260301092000${offset}`, '20260301092000'],
      ['20260301092000', `20260301092000${offset}`],
      ['20260301092015', '202603010920'],
      ['20260301092000.1234', '20260301092000'],
      [`20260301092000${offset}`, `20260301092000.0${offset}`],
    ];
    for (const [first, second] of cases) {
      const r = read(ormLines('MO-450', [{ test: 'GLU', orc9: first }, { test: 'TSH', orc9: second }], { msh7: AGAIN }));
      expect(r.drafts.filter((d) => d.type === 'order.created').map((d) => [(d.data as OrderCreatedData).tests.map((t) => t.code), d.idempotencyKey]), `${first} then ${second}`).toEqual([[['GLU', 'TSH'], r.key(3, 'order.created')]]);
    }
    // Another time in another format is still another time.
    const other = read(ormLines('MO-451', [{ test: 'GLU', orc9: `20260301092000${offset}` }, { test: 'TSH', orc9: '20260301103000' }], { msh7: AGAIN }));
    expect(other.drafts.filter((d) => d.type === 'order.created').map((d) => (d.data as OrderCreatedData).tests.map((t) => t.code))).toEqual([['GLU'], ['TSH']]);
  });

  /**
   * What finance would see: GLU and TSH ordered at 09:20 (the LIS writes its offset), TSH
   * cancelled at 10:00, and the order resent as it stands with TSH's ORC-9 written without the
   * offset. Split off and read in the gateway's zone, TSH looked ordered after its cancellation:
   * back on the sale order and billed.
   */
  it('a cancelled test resent with its ORC-9 written without the offset stays cancelled', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('MO-460', ['GLU', 'TSH'], { msh7: `${ORDERED}${offset}`, orc9: `${ORDERED}${offset}` }));
    await rig.receive(oru('MO-460', 'GLU'));
    await rig.receive(ormTimed('MO-460', ['TSH'], { control: 'CA', msh7: `${CANCELLED}${offset}`, orc9: `${CANCELLED}${offset}` }));
    await rig.settle('MO-460');
    await rig.receive(ormLines('MO-460', [{ test: 'GLU', orc9: `${ORDERED}${offset}` }, { test: 'TSH', orc9: ORDERED }], { msh7: `${REPLAYED}${offset}` }));
    await rig.receive(oru('MO-460', 'TSH'));
    await rig.settle('MO-460');

    const evs = await rig.events('MO-460');
    expect(deadReasons(evs)).toEqual([]);
    expect(openLines(rig.emu, 'MO-460')).toEqual(['GLU']);
    expect(billed(rig.emu, 'MO-460')).toEqual(['GLU']);
  });

  /**
   * An order led by an ORC without OBR (the requisition, ORC-9 09:00) and then one ORC per test
   * sharing 09:20: the tests were compared with the leading ORC, not with each other, and split.
   */
  it('tests sharing one ORC-9 after a leading ORC without OBR are one event', () => {
    const r = read(ormLines('MO-470', [{ orc9: '20260301090000' }, { test: 'GLU', orc9: ORDERED }, { test: 'TSH', orc9: ORDERED }, { test: 'CRP', orc9: AGAIN }], { msh7: AGAIN }));
    // MSH 0, PID 1, ORC 2 (no OBR), ORC 3, OBR 4 (GLU), ORC 5, OBR 6 (TSH), ORC 7, OBR 8 (CRP).
    expect(r.drafts.filter((d) => d.type === 'order.created').map((d) => [(d.data as OrderCreatedData).tests.map((t) => t.code), d.idempotencyKey])).toEqual([
      [['GLU', 'TSH'], r.key(2, 'order.created')],
      [['CRP'], r.key(8, 'order.created')],
    ]);
  });

  /**
   * An ORC without OBR inside a run names no test: it never starts an event of its own, whatever
   * its ORC-9 (an order.cancelled without tests would cancel the whole order).
   */
  it('an ORC without OBR and its own ORC-9 inside a cancellation does not cancel the whole order', () => {
    const { drafts } = read(ormLines('MO-440', [{ test: 'TSH', orc9: CANCELLED }, { orc9: AGAIN }], { control: 'CA', msh7: AGAIN }));
    expect(drafts.filter((d) => d.type === 'order.cancelled').map((d) => (d.data as OrderCancelledData).tests.map((t) => t.code))).toEqual([['TSH']]);
  });
});
