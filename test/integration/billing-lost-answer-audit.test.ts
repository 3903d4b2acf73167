import { describe, expect, it } from 'vitest';
import { waitFor } from '../fixtures/relay/helpers.ts';
import { billed, billingRig, deadReasons, invoices, openLines, oru, ormTimed, saleLines, saleOrders } from '../fixtures/relay/billing-rig.ts';

/**
 * Billing writes whose answer is lost after Odoo committed them (the connection reset, the answer
 * cut on its way, or no answer within odoo.timeoutMs): each is looked up again before anything is
 * sent again, so finance sees every test once on the sale order and once on the invoice, and a
 * cancelled test nowhere. The cases the other billing tests leave out: the add-on's lines written
 * into the gateway's draft invoice, a cancelled test's line taken off that draft, the add-on's
 * line added to the sale order, the quotation set back to draft when the LIS orders a cancelled
 * order again, and the invoice posted under relay.autoConfirm. Real HL7 through the LIS
 * normalizer, the invoice-eligibility derivation in a LevelDB store, the relay and the Odoo
 * emulator over HTTP with its after-commit faults (relay/README.md "Billing", "Failure classes").
 */

const ORDERED = '20260301092000';
const ADD_ON = '20260301101500';
const CANCELLED = '20260301100000';
const AGAIN = '20260301103000';

describe('billing writes whose answer was lost after Odoo committed them', () => {
  it("the add-on's line written into the draft invoice: on it once", async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('LA-100', ['GLU'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('LA-100', 'GLU'));
    await rig.settle('LA-100');
    expect(billed(rig.emu, 'LA-100')).toEqual(['GLU']);

    rig.emu.faults.next(1, 'account.move', 'write').resetAfterCommit();
    await rig.receive(ormTimed('LA-100', ['CRP'], { msh7: ADD_ON, orc9: ADD_ON }));
    await rig.receive(oru('LA-100', 'CRP'));
    await rig.settle('LA-100');

    expect(rig.emu.faults.log.map((f) => f.action)).toContain('reset-after-commit');
    expect(deadReasons(await rig.events('LA-100'))).toEqual([]);
    expect(invoices(rig.emu, 'LA-100')).toHaveLength(1);
    expect(billed(rig.emu, 'LA-100')).toEqual(['CRP', 'GLU']);
  });

  it("a cancelled test's line taken off the draft invoice: gone, the rest billed once", async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('LA-200', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('LA-200', 'GLU'));
    await rig.receive(oru('LA-200', 'TSH'));
    await rig.settle('LA-200');
    expect(billed(rig.emu, 'LA-200')).toEqual(['GLU', 'TSH']);

    rig.emu.faults.next(1, 'account.move', 'write').cutAfterCommit();
    await rig.receive(ormTimed('LA-200', ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.settle('LA-200');

    expect(rig.emu.faults.log.map((f) => f.action)).toContain('cut-after-commit');
    expect(deadReasons(await rig.events('LA-200'))).toEqual([]);
    expect(openLines(rig.emu, 'LA-200')).toEqual(['GLU']);
    expect(billed(rig.emu, 'LA-200')).toEqual(['GLU']);
  });

  it("the add-on's line added to the sale order (no answer in time): one line, billed once", async () => {
    const rig = await billingRig({}, { timeoutMs: 400 });
    await rig.receive(ormTimed('LA-300', ['GLU'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.settle('LA-300');

    rig.emu.faults.next(1, 'sale.order.line', 'create').timeoutAfterCommit(1200);
    await rig.receive(ormTimed('LA-300', ['CRP'], { msh7: ADD_ON, orc9: ADD_ON }));
    await rig.receive(oru('LA-300', 'GLU'));
    await rig.receive(oru('LA-300', 'CRP'));
    await rig.settle('LA-300');

    expect(rig.emu.faults.log.map((f) => f.action)).toContain('timeout-after-commit');
    expect(deadReasons(await rig.events('LA-300'))).toEqual([]);
    expect(saleLines(rig.emu, 'LA-300').map((l) => l.code).sort()).toEqual(['CRP', 'GLU']);
    expect(billed(rig.emu, 'LA-300')).toEqual(['CRP', 'GLU']);
  });

  it('the cancelled quotation set back to draft for an order placed again: its lines once, billed once', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('LA-400', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(ormTimed('LA-400', [], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.settle('LA-400');
    expect(saleOrders(rig.emu, 'LA-400').map((o) => o['state'])).toEqual(['cancel']);

    rig.emu.faults.next(1, 'sale.order', 'action_draft').resetAfterCommit();
    await rig.receive(ormTimed('LA-400', ['GLU'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.receive(oru('LA-400', 'GLU'));
    await rig.settle('LA-400');

    expect(rig.emu.faults.log.map((f) => f.action)).toContain('reset-after-commit');
    expect(deadReasons(await rig.events('LA-400'))).toEqual([]);
    expect(saleOrders(rig.emu, 'LA-400').map((o) => o['state'])).toEqual(['draft']);
    expect(saleLines(rig.emu, 'LA-400').map((l) => l.code)).toEqual(['GLU']);
    expect(billed(rig.emu, 'LA-400')).toEqual(['GLU']);
  });

  it('the invoice posted under relay.autoConfirm: one invoice, posted, billed once', async () => {
    const rig = await billingRig({ autoConfirm: true });
    rig.emu.faults.next(1, 'account.move', 'action_post').resetAfterCommit();
    await rig.receive(ormTimed('LA-500', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('LA-500', 'GLU'));
    await rig.receive(oru('LA-500', 'TSH'));
    await rig.settle('LA-500');

    expect(rig.emu.faults.log.map((f) => f.action)).toContain('reset-after-commit');
    expect(deadReasons(await rig.events('LA-500'))).toEqual([]);
    expect(invoices(rig.emu, 'LA-500').map((m) => m['state'])).toEqual(['posted']);
    expect(billed(rig.emu, 'LA-500')).toEqual(['GLU', 'TSH']);
  });
});

describe('a lost answer to the invoice in a retry storm', () => {
  // The invoice's load() commits and its answer is lost; then Odoo is overloaded: its proxy answers
  // 503 at random and the look-ups meet row locks (charged attempts) until the event is
  // dead-lettered and replayed. Each look-up after the lost answer must find the invoice.
  it('one invoice, each test billed once, through 503s, locks, a dead letter and its replay', async () => {
    // The lost write is held for the settle time; the storm starts meanwhile.
    const rig = await billingRig({ maxAttempts: 3 }, { ambiguousSettleMs: 1500 });
    rig.emu.faults.next(1, 'account.move', 'load').resetAfterCommit();
    await rig.receive(ormTimed('LA-600', ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('LA-600', 'GLU'));
    await rig.receive(oru('LA-600', 'TSH'));
    const settled = rig.settle('LA-600');
    settled.catch(() => undefined);
    await waitFor(() => rig.emu.faults.log.some((f) => f.action === 'reset-after-commit'), 20_000, 5);
    expect(invoices(rig.emu, 'LA-600')).toHaveLength(1);
    rig.emu.faults.script({ model: 'account.move', method: 'search_read' }, [{ kind: 'status', status: 503 }, { kind: 'lock' }, { kind: 'status', status: 503 }, { kind: 'lock' }, { kind: 'lock' }]);
    rig.emu.faults.random({ probability: 0.3, statuses: [503], match: { model: 'sale.order' }, seed: 7 });
    await settled;
    // The look-ups after the lost answer met the storm.
    const after = rig.emu.faults.log.map((f) => f.action);
    expect(after.slice(after.indexOf('reset-after-commit'))).toEqual(expect.arrayContaining(['status', 'lock']));

    const evs = await rig.events('LA-600');
    const dead = evs.filter((e) => e.state === 'dead');
    for (const d of dead) {
      expect(d.event.type).toBe('invoice.eligible');
      rig.emu.faults.clear();
      await rig.store.replay(d.event.id, 'tester');
      rig.relay.notify();
    }
    await rig.settle('LA-600');
    expect(deadReasons(await rig.events('LA-600'))).toEqual([]);
    expect(invoices(rig.emu, 'LA-600')).toHaveLength(1);
    expect(billed(rig.emu, 'LA-600')).toEqual(['GLU', 'TSH']);
  });
});
