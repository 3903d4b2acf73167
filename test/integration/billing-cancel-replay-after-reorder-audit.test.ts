import { describe, expect, it } from 'vitest';
import type { InvoiceEligibleData } from '../../gateway/src/events/types.ts';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import { useLisLab } from '../fixtures/lis-rig.ts';
import { billed, billingRig, deadReasons, openLines, oru, ormTimed, saleLines, saleOrders } from '../fixtures/relay/billing-rig.ts';

/**
 * The mirror of a resent order (billing-resend-after-cancel-audit.test.ts): the LIS ordered GLU and
 * TSH at 09:20, cancelled TSH at 10:00, ordered TSH again at 10:30; then its interface engine
 * replayed the 10:00 cancellation (its ACK lost in an outage) under a new MSH-10, ORC-9 still
 * 10:00. Intake keeps it as a new message. Before, it closed the re-ordered TSH again: taken off
 * the sale order, its result "nothing to deliver", never billed although the lab ran it. A
 * cancellation timed strictly before the order that (last) opened the test leaves it open. Real
 * HL7 through the LIS normalizer, the invoice-eligibility derivation in a LevelDB store, the relay
 * and the Odoo emulator over HTTP (relay/README.md "A cancellation replayed after a re-order").
 *
 * And a result validated while its test was cancelled (after the CA, before the re-order) is not
 * the re-ordered test's result: before, the re-order made the order billable at once.
 */

const ORDERED = '20260301092000';
const CANCELLED = '20260301100000';
const AGAIN = '20260301103000';
const REPLAYED = '20260301113000';
/** A result validated after the cancellation, before the re-order (OBR-22). */
const WHILE_CANCELLED = '20260301101000';

const noteOf = (evs: StoredEvent[], type: string): string => evs.filter((e) => e.event.type === type).at(-1)?.note ?? '';
const eligibilities = (evs: StoredEvent[]): string[][] =>
  evs.filter((e) => e.event.type === 'invoice.eligible').map((e) => (e.event.data as InvoiceEligibleData).tests.map((t) => t.code));

const { lab } = useLisLab();

describe('a cancellation replayed after the LIS ordered the test again', () => {
  /** What finance saw (a whole gateway, the LIS over MLLP): TSH taken off the order by the replayed 10:00 cancellation, never billed. */
  it('the replayed cancellation, timed before the re-order, leaves the test on the order, billed once', async () => {
    const l = await lab('cancel-replay-reorder');
    expect(await l.send('lis', ormTimed('CR-100', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED, controlId: 'LIS-1001' }))).toContain('MSA|AA|LIS-1001');
    expect(await l.send('lis', oru('CR-100', 'GLU'))).toContain('MSA|AA');
    const cancel = ormTimed('CR-100', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED, controlId: 'LIS-1002' });
    expect(await l.send('lis', cancel)).toContain('MSA|AA|LIS-1002');
    expect(await l.send('lis', ormTimed('CR-100', ['TSH'], { msh7: AGAIN, orc9: AGAIN, controlId: 'LIS-1003' }))).toContain('MSA|AA|LIS-1003');
    await l.settled();
    expect(billed(l.emu, 'CR-100')).toEqual(['GLU']);
    expect(openLines(l.emu, 'CR-100')).toEqual(['GLU', 'TSH']);

    // The 10:00 cancellation again: MSH-7 re-stamped, a new control id, ORC-9 still 10:00.
    const replay = cancel.replace(`|${CANCELLED}||ORM^O01^ORM_O01|LIS-1002|`, `|${REPLAYED}||ORM^O01^ORM_O01|LIS-2002|`);
    expect(replay).not.toEqual(cancel);
    expect(await l.send('lis', replay)).toContain('MSA|AA|LIS-2002');
    expect(await l.send('lis', oru('CR-100', 'TSH'))).toContain('MSA|AA');
    await l.settled();

    const evs = (await l.all()).filter((e) => e.event.correlationId === 'CR-100');
    expect(evs.filter((e) => e.event.type === 'order.cancelled'), 'intake stored the replay as a new message').toHaveLength(2);
    expect(deadReasons(evs)).toEqual([]);
    expect(openLines(l.emu, 'CR-100'), 'TSH stays on the order').toEqual(['GLU', 'TSH']);
    expect(billed(l.emu, 'CR-100'), 'TSH is billed, once').toEqual(['GLU', 'TSH']);
    expect(eligibilities(evs)).toEqual([['GLU'], ['GLU', 'TSH']]);
    expect(noteOf(evs, 'order.cancelled')).toMatch(/TSH left on the order \(ordered at 2026-03-01T10:30:00\.000Z, after this cancellation/);
  });

  /** The same with TSH already validated and billed when the replay comes: its draft invoice line stays. */
  it('a replay after the re-ordered test was billed leaves the invoice as it is', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('CR-110', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('CR-110', 'GLU'));
    await rig.receive(ormTimed('CR-110', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(ormTimed('CR-110', ['TSH'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.receive(oru('CR-110', 'TSH'));
    await rig.settle('CR-110');
    expect(billed(rig.emu, 'CR-110')).toEqual(['GLU', 'TSH']);

    await rig.receive(ormTimed('CR-110', ['TSH'], { control: 'CA', msh7: REPLAYED, orc9: CANCELLED }));
    await rig.settle('CR-110');

    expect(deadReasons(await rig.events('CR-110'))).toEqual([]);
    expect(openLines(rig.emu, 'CR-110')).toEqual(['GLU', 'TSH']);
    expect(billed(rig.emu, 'CR-110')).toEqual(['GLU', 'TSH']);
  });

  /** A confirmed order (relay.autoConfirm): the replay set the re-ordered line back to 0. */
  it('on a confirmed order the re-ordered line keeps its quantity and is billed', async () => {
    const rig = await billingRig({ autoConfirm: true });
    await rig.receive(ormTimed('CR-200', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('CR-200', 'GLU'));
    await rig.receive(ormTimed('CR-200', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.settle('CR-200');
    await rig.receive(ormTimed('CR-200', ['TSH'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.receive(ormTimed('CR-200', ['TSH'], { control: 'CA', msh7: REPLAYED, orc9: CANCELLED }));
    await rig.receive(oru('CR-200', 'TSH'));
    await rig.settle('CR-200');

    expect(deadReasons(await rig.events('CR-200'))).toEqual([]);
    expect(saleLines(rig.emu, 'CR-200').map((x) => [x.code, x.qty]).sort()).toEqual([['GLU', 1], ['TSH', 1]]);
    expect(billed(rig.emu, 'CR-200')).toEqual(['GLU', 'TSH']);
  });

  /** Odoo away all morning: the order, the cancellation, the re-order and the replay post together. */
  it('a replay queued with the re-order while Odoo was away leaves the test on the order', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('CR-210', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(ormTimed('CR-210', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(ormTimed('CR-210', ['TSH'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.receive(ormTimed('CR-210', ['TSH'], { control: 'CA', msh7: REPLAYED, orc9: CANCELLED }));
    await rig.receive(oru('CR-210', 'GLU'));
    await rig.receive(oru('CR-210', 'TSH'));
    await rig.settle('CR-210');

    expect(deadReasons(await rig.events('CR-210'))).toEqual([]);
    expect(openLines(rig.emu, 'CR-210')).toEqual(['GLU', 'TSH']);
    expect(billed(rig.emu, 'CR-210')).toEqual(['GLU', 'TSH']);
  });

  /** The whole order cancelled at 10:00 (an ORC CA alone), ordered again at 10:30, the 10:00 cancellation replayed: the quotation was cancelled again. */
  it('a replayed whole-order cancellation leaves the order ordered again as it is', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('CR-300', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(ormTimed('CR-300', [], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.settle('CR-300');
    expect(saleOrders(rig.emu, 'CR-300').map((o) => o['state'])).toEqual(['cancel']);
    await rig.receive(ormTimed('CR-300', ['GLU', 'TSH'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.settle('CR-300');

    await rig.receive(ormTimed('CR-300', [], { control: 'CA', msh7: REPLAYED, orc9: CANCELLED }));
    await rig.receive(oru('CR-300', 'GLU'));
    await rig.receive(oru('CR-300', 'TSH'));
    await rig.settle('CR-300');

    const evs = await rig.events('CR-300');
    expect(deadReasons(evs)).toEqual([]);
    expect(saleOrders(rig.emu, 'CR-300').map((o) => o['state'])).not.toContain('cancel');
    expect(openLines(rig.emu, 'CR-300')).toEqual(['GLU', 'TSH']);
    expect(billed(rig.emu, 'CR-300')).toEqual(['GLU', 'TSH']);
    expect(noteOf(evs, 'order.cancelled')).toMatch(/GLU, TSH left on the order \(ordered at 2026-03-01T10:30:00\.000Z/);
  });

  /**
   * A whole-order cancellation timed between the first order and TSH's re-order: it cancels GLU
   * (ordered at 09:20), not TSH (ordered again at 10:30): the order stays, with TSH alone.
   */
  it('a whole-order cancellation timed between the order and a re-order closes only what was ordered before it', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('CR-310', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(ormTimed('CR-310', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(ormTimed('CR-310', ['TSH'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.settle('CR-310');
    await rig.receive(ormTimed('CR-310', [], { control: 'CA', msh7: REPLAYED, orc9: '20260301101500' }));
    await rig.receive(oru('CR-310', 'GLU'));
    await rig.receive(oru('CR-310', 'TSH'));
    await rig.settle('CR-310');

    expect(deadReasons(await rig.events('CR-310'))).toEqual([]);
    expect(saleOrders(rig.emu, 'CR-310').map((o) => o['state'])).toEqual(['draft']);
    expect(openLines(rig.emu, 'CR-310')).toEqual(['TSH']);
    expect(billed(rig.emu, 'CR-310')).toEqual(['TSH']);
  });

  /** A cancellation of the re-order itself (ORC-9 10:45, after 10:30) closes it, as does one at the re-order's own time. */
  it('a cancellation at or after the re-order closes the test', async () => {
    for (const [acc, at] of [['CR-400', '20260301104500'], ['CR-410', AGAIN]] as const) {
      const rig = await billingRig();
      await rig.receive(ormTimed(acc, ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
      await rig.receive(ormTimed(acc, ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
      await rig.receive(ormTimed(acc, ['TSH'], { msh7: AGAIN, orc9: AGAIN }));
      await rig.receive(ormTimed(acc, ['TSH'], { control: 'CA', msh7: REPLAYED, orc9: at }));
      await rig.receive(oru(acc, 'GLU'));
      await rig.receive(oru(acc, 'TSH'));
      await rig.settle(acc);

      expect(deadReasons(await rig.events(acc))).toEqual([]);
      expect(openLines(rig.emu, acc), acc).toEqual(['GLU']);
      expect(billed(rig.emu, acc), acc).toEqual(['GLU']);
    }
  });
});

describe('a result validated while its test was cancelled', () => {
  /**
   * TSH cancelled at 10:00, its result validated at 10:10 (the tube was already on the analyzer),
   * TSH ordered again at 10:30: the re-order needs its own result. Before, the 10:10 result made
   * the re-ordered test billable at once.
   */
  it('does not count for the test ordered again: billed once its new result comes', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('CV-100', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('CV-100', 'GLU'));
    await rig.receive(ormTimed('CV-100', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(oru('CV-100', 'TSH', 'F', '5.4', WHILE_CANCELLED));
    await rig.settle('CV-100');
    expect(billed(rig.emu, 'CV-100')).toEqual(['GLU']);

    await rig.receive(ormTimed('CV-100', ['TSH'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.settle('CV-100');
    expect(eligibilities(await rig.events('CV-100')), 'the re-order is not billable on the old result').toEqual([['GLU']]);
    expect(billed(rig.emu, 'CV-100')).toEqual(['GLU']);
    expect(saleLines(rig.emu, 'CV-100').filter((x) => x.code === 'TSH').map((x) => x.delivered), 'TSH not delivered yet').toEqual([0]);
    // Finance is told why the re-order waits (the result's own event said "nothing to deliver" before the re-order came).
    expect(noteOf(await rig.events('CV-100'), 'order.created')).toMatch(/TSH ordered again: its result validated while it was cancelled is not counted; it waits for a result of its own/);

    await rig.receive(oru('CV-100', 'TSH'));
    await rig.settle('CV-100');
    expect(deadReasons(await rig.events('CV-100'))).toEqual([]);
    expect(eligibilities(await rig.events('CV-100'))).toEqual([['GLU'], ['GLU', 'TSH']]);
    expect(billed(rig.emu, 'CV-100')).toEqual(['GLU', 'TSH']);
  });

  /**
   * Odoo away while it all happened: the order, the cancellation, the 10:10 result and the 10:30
   * re-order post together. The old result's event said "the order message that adds this test
   * follows in the queue: it marks the test delivered", which finance read as TSH done, while the
   * re-order (rightly) left TSH undelivered, waiting for its own result. A cancellation that came
   * before its order, with the result between them, said the same of a test left off the order.
   */
  it('queued with the re-order while Odoo was away, the old result says it is not counted', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('CV-120', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('CV-120', 'GLU'));
    await rig.receive(ormTimed('CV-120', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(oru('CV-120', 'TSH', 'F', '5.4', WHILE_CANCELLED));
    await rig.receive(ormTimed('CV-120', ['TSH'], { msh7: AGAIN, orc9: AGAIN }));
    // The cancellation first, then the result, then the order it cancelled (a replayed queue).
    await rig.receive(ormTimed('CV-130', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(oru('CV-130', 'TSH', 'F', '5.4', WHILE_CANCELLED));
    await rig.receive(ormTimed('CV-130', ['GLU', 'TSH'], { msh7: REPLAYED, orc9: ORDERED }));
    await rig.settle('CV-120', 'CV-130');

    const tshResult = (evs: StoredEvent[]): StoredEvent => evs.find((e) => e.event.type === 'result.validated' && (e.event.data as { testCode: string }).testCode === 'TSH')!;
    const a = await rig.events('CV-120');
    expect(deadReasons(a)).toEqual([]);
    expect(saleLines(rig.emu, 'CV-120').filter((x) => x.code === 'TSH').map((x) => [x.qty, x.delivered])).toEqual([[1, 0]]);
    expect(tshResult(a).note).not.toMatch(/marks the test delivered/);
    expect(tshResult(a).note).toMatch(/cancelled by the LIS when this result was validated: not counted.*orders it again.*needs a result of its own/);
    const b = await rig.events('CV-130');
    expect(deadReasons(b)).toEqual([]);
    expect(openLines(rig.emu, 'CV-130')).toEqual(['GLU']);
    expect(tshResult(b).note).not.toMatch(/marks the test delivered/);
    expect(tshResult(b).note).toMatch(/test cancelled by the LIS: nothing to deliver/);
  });

  /**
   * Two LIS interfaces racing: the result of the re-ordered TSH (validated 11:00, after the 10:30
   * re-order) comes before the re-order's message. It is that order's result: billed without another.
   */
  it('a result timed after the re-order, come before its order message, counts for it', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('CV-150', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('CV-150', 'GLU'));
    await rig.receive(ormTimed('CV-150', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(oru('CV-150', 'TSH'));
    await rig.receive(ormTimed('CV-150', ['TSH'], { msh7: REPLAYED, orc9: AGAIN }));
    await rig.settle('CV-150');

    expect(deadReasons(await rig.events('CV-150'))).toEqual([]);
    expect(eligibilities(await rig.events('CV-150'))).toEqual([['GLU'], ['GLU', 'TSH']]);
    expect(billed(rig.emu, 'CV-150')).toEqual(['GLU', 'TSH']);
  });

  /** The same after the whole order was cancelled: the results validated meanwhile do not bill the order ordered again. */
  it('after a whole-order cancellation, the order ordered again waits for new results', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('CV-200', ['GLU'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(ormTimed('CV-200', [], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(oru('CV-200', 'GLU', 'F', '5.4', WHILE_CANCELLED));
    await rig.receive(ormTimed('CV-200', ['GLU'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.settle('CV-200');
    expect(eligibilities(await rig.events('CV-200'))).toEqual([]);
    expect(billed(rig.emu, 'CV-200')).toEqual([]);

    await rig.receive(oru('CV-200', 'GLU'));
    await rig.settle('CV-200');
    expect(deadReasons(await rig.events('CV-200'))).toEqual([]);
    expect(billed(rig.emu, 'CV-200')).toEqual(['GLU']);
  });
});
