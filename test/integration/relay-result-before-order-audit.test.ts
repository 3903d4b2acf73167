import { describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import { billed, billingRig, deadReasons, normalize, orm, oru, saleLines, saleOrders, type BillingRig } from '../fixtures/relay/billing-rig.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';

/**
 * A result the LIS validated long before the order that asks for its test reached the gateway
 * (the LIS's order interface down for an hour while its results flowed, or an add-on test whose
 * order message comes later). Real HL7 through the LIS normalizer, the invoice-eligibility
 * derivation in a LevelDB store, the relay, and the Odoo emulator over HTTP, as finance staff see
 * Odoo. The promise (DESIGN.md §3, relay/README.md "Billing: each test exactly once"): a done test
 * is billed once its order comes, however late; nothing is held back behind a dead letter the
 * gateway made itself while waiting.
 */

// Three attempts stand for the budget the real back-off (relay.maxAttempts) spends in about 25 minutes.
const MAX_ATTEMPTS = 3;

const result = (evs: StoredEvent[], test: string): StoredEvent | undefined =>
  evs.find((e) => e.event.type === 'result.validated' && (e.event.data as { testCode: string }).testCode === test);

/**
 * Wait until the result of `test` is dead-lettered or has been tried more often than
 * relay.maxAttempts allows (each retry sets a new due time).
 */
async function retriesUsedUp(rig: BillingRig, accession: string, test: string): Promise<StoredEvent> {
  const dues = new Set<number>();
  let last: StoredEvent | undefined;
  await waitFor(async () => {
    last = result(await rig.events(accession), test);
    if (last?.state === 'retrying') dues.add(last.dueAt);
    return last?.state === 'dead' || dues.size >= MAX_ATTEMPTS + 2;
  }, 20_000, 5);
  return last!;
}

describe('a result validated long before its order', () => {
  /**
   * What the lab saw: the LIS's order interface was down for an hour while its results flowed;
   * R-100's GLU result was retried "no Odoo sale order" until relay.maxAttempts (about 25
   * minutes) and dead-lettered. The order came after: held behind the dead result in its
   * partition, it never reached Odoo, nor did TSH's result or the invoice, until an operator found
   * and discarded the dead letter (and then GLU was never marked delivered, nor billed).
   * Promise broken: a done test is billed once its order comes; the order is not held back.
   */
  it('waits for its order without being dead-lettered, and the order that comes after its retries bills it once', async () => {
    const rig = await billingRig({ maxAttempts: MAX_ATTEMPTS });
    await rig.settle();
    await rig.receive(oru('R-100', 'GLU'));
    const waiting = await retriesUsedUp(rig, 'R-100', 'GLU');
    expect(deadReasons(await rig.events('R-100')), 'the result waits for its order').toEqual([]);
    // The lab still sees it: waiting, and saying what for.
    expect(waiting.state).toBe('retrying');
    expect(waiting.lastError).toMatch(/waiting for its order from the LIS/);
    expect(rig.store.stats()).toMatchObject({ deadLettered: 0, blockedPartitions: 0 });

    await rig.receive(orm('R-100', ['GLU', 'TSH']));
    await rig.receive(oru('R-100', 'TSH'));
    await rig.settle('R-100');

    expect(deadReasons(await rig.events('R-100'))).toEqual([]);
    expect(saleOrders(rig.emu, 'R-100')).toHaveLength(1);
    // Each test once on the order, delivered once, billed once.
    expect(saleLines(rig.emu, 'R-100').map((l) => `${l.code} ${l.qty}/${l.delivered}`).sort()).toEqual(['GLU 1/1', 'TSH 1/1']);
    expect(billed(rig.emu, 'R-100')).toEqual(['GLU', 'TSH']);
  });

  /**
   * What the lab saw: TSH was added to R-300 after its order had posted; the LIS sent TSH's result
   * before the add-on's order message, which came an hour later. The result found no TSH line,
   * was dead-lettered after relay.maxAttempts, and the add-on order waited behind it: TSH was
   * never put on the sale order nor billed until an operator discarded the dead result.
   * Promise broken: a done test is billed once its order comes.
   */
  it('an add-on result before its order message waits for it and is billed once it comes', async () => {
    const rig = await billingRig({ maxAttempts: MAX_ATTEMPTS });
    await rig.receive(orm('R-300', ['GLU']));
    await rig.receive(oru('R-300', 'GLU'));
    await rig.settle('R-300');
    await rig.receive(oru('R-300', 'TSH'));
    const waiting = await retriesUsedUp(rig, 'R-300', 'TSH');
    expect(deadReasons(await rig.events('R-300'))).toEqual([]);
    expect(waiting.lastError).toMatch(/waiting for its order from the LIS/);

    await rig.receive(orm('R-300', ['TSH']));
    await rig.settle('R-300');

    expect(deadReasons(await rig.events('R-300'))).toEqual([]);
    expect(saleLines(rig.emu, 'R-300').map((l) => `${l.code} ${l.qty}/${l.delivered}`).sort()).toEqual(['GLU 1/1', 'TSH 1/1']);
    expect(billed(rig.emu, 'R-300')).toEqual(['GLU', 'TSH']);
  });

  /**
   * Unchanged: a result whose order the gateway did store, but which never reached Odoo (dead,
   * then discarded by an operator), is retried and dead-lettered after relay.maxAttempts as
   * before: no order message will come to apply it, an operator must see it.
   */
  it('a result whose stored order never reached Odoo is still dead-lettered after its retries', async () => {
    const rig = await billingRig({ maxAttempts: MAX_ATTEMPTS });
    await rig.receive(orm('R-200', ['NOPROD']));
    await rig.settle('R-200');
    const order = (await rig.events('R-200')).find((e) => e.event.type === 'order.created')!;
    expect(order.state, 'an order of a test with no Odoo product is a dead letter').toBe('dead');
    await rig.store.discard(order.event.id, 'it-staff', 'entered in Odoo by hand');

    await rig.receive(oru('R-200', 'NOPROD'));
    const last = await retriesUsedUp(rig, 'R-200', 'NOPROD');
    expect(last.state).toBe('dead');
    expect(deadReasons([last])).toEqual([expect.stringMatching(/^result\.validated: gave up after 3 attempts: .*no Odoo sale order/)]);
  });
});

/** The sale order's chatter as finance read it: every message body. */
const chatter = (rig: BillingRig, accession: string): string =>
  rig.emu.records('mail.message', [['model', '=', 'sale.order'], ['res_id', 'in', saleOrders(rig.emu, accession).map((o) => o.id)]]).map((m) => String(m['body'] ?? '')).join('\n');

const milestoneOf = (evs: StoredEvent[], test: string): StoredEvent | undefined =>
  evs.find((e) => e.event.type === 'test.completed' && (e.event.data as { testCode: string }).testCode === test);

describe('a preliminary result sent long before its order', () => {
  /**
   * What the lab saw: the LIS's order interface was down for an hour while the analyzers ran; the
   * preliminary GLU result of R-400 (OBX-11 P, "test completed" on the order's chatter) found no
   * sale order, was retried "no Odoo sale order" until relay.maxAttempts (about 25 minutes) and
   * dead-lettered. The order came after: held behind the dead milestone in its partition, it never
   * reached Odoo, nor did the final result or the invoice, until an operator found and discarded
   * the dead letter. Promise broken (DESIGN.md §3): a milestone is noted on its order's chatter and
   * the order is not held back by a dead letter the gateway made itself while waiting.
   */
  it('waits for its order without being dead-lettered; the order that comes after posts it and its note', async () => {
    const rig = await billingRig({ maxAttempts: MAX_ATTEMPTS });
    await rig.settle();
    await rig.receive(oru('R-400', 'GLU', 'P'));
    const dues = new Set<number>();
    let waiting: StoredEvent | undefined;
    await waitFor(async () => {
      waiting = milestoneOf(await rig.events('R-400'), 'GLU');
      if (waiting?.state === 'retrying') dues.add(waiting.dueAt);
      return waiting?.state === 'dead' || dues.size >= MAX_ATTEMPTS + 2;
    }, 20_000, 5);
    expect(deadReasons(await rig.events('R-400')), 'the milestone waits for its order').toEqual([]);
    expect(waiting!.state).toBe('retrying');
    expect(waiting!.lastError).toMatch(/waiting for its order from the LIS/);

    await rig.receive(orm('R-400', ['GLU']));
    await rig.receive(oru('R-400', 'GLU'));
    await rig.settle('R-400');

    expect(deadReasons(await rig.events('R-400'))).toEqual([]);
    expect(saleOrders(rig.emu, 'R-400')).toHaveLength(1);
    expect(chatter(rig, 'R-400')).toMatch(/test GLU completed/);
    expect(saleLines(rig.emu, 'R-400').map((l) => `${l.code} ${l.qty}/${l.delivered}`)).toEqual(['GLU 1/1']);
    expect(billed(rig.emu, 'R-400')).toEqual(['GLU']);
  });
});

describe('a result or milestone whose order never comes', () => {
  /**
   * What the lab saw: a result came for a test nobody ordered (R-900 was never sent by the LIS's
   * order interface). It waited for its order for ever, shown only among the retrying events: the
   * queue's oldest-waiting age skips a retry not yet due, so no stale-queue alarm fired, where its
   * dead letter used to tell IT staff after about 25 minutes. Promise broken (DESIGN.md: nothing
   * is lost silently; an event that cannot be delivered is a dead letter with a readable reason).
   * The relay's clock is moved a day on, no real wait.
   */
  it('a result waiting more than 24 h for its order is dead-lettered, saying so', async () => {
    let ahead = 0;
    const rig = await billingRig({ maxAttempts: MAX_ATTEMPTS }, { clock: () => Date.now() + ahead });
    await rig.settle();
    await rig.receive(oru('R-900', 'GLU'));
    const waiting = await retriesUsedUp(rig, 'R-900', 'GLU');
    expect(waiting.state, 'still waiting within the day').toBe('retrying');
    expect(waiting.lastError).toMatch(/waiting for its order from the LIS/);

    ahead = 24 * 3600_000 + 60_000;
    rig.relay.notify();
    await waitFor(async () => result(await rig.events('R-900'), 'GLU')?.state === 'dead', 20_000, 5);
    expect(deadReasons(await rig.events('R-900'))).toEqual([expect.stringMatching(/^result\.validated: .*no order from the LIS for this test within 24 h: .*accession R-900 has no Odoo sale order/)]);
    expect(rig.store.stats()).toMatchObject({ deadLettered: 1 });
  });

  /** The same for a preliminary result's milestone: dead after a day without its order, saying so. */
  it('a milestone waiting more than 24 h for its order is dead-lettered, saying so', async () => {
    let ahead = 0;
    const rig = await billingRig({ maxAttempts: MAX_ATTEMPTS }, { clock: () => Date.now() + ahead });
    await rig.settle();
    await rig.receive(oru('R-901', 'GLU', 'P'));
    await waitFor(async () => /waiting for its order from the LIS/.test(milestoneOf(await rig.events('R-901'), 'GLU')?.lastError ?? ''), 20_000, 5);

    ahead = 24 * 3600_000 + 60_000;
    rig.relay.notify();
    await waitFor(async () => milestoneOf(await rig.events('R-901'), 'GLU')?.state === 'dead', 20_000, 5);
    expect(deadReasons(await rig.events('R-901'))).toEqual([expect.stringMatching(/^test\.completed: .*no order from the LIS for this test within 24 h: .*accession R-901 has no Odoo sale order/)]);
  });

  /**
   * A result that reached the gateway more than a day before its order (received yesterday, the
   * order interface down all night) is dead-lettered on its first try, saying so. IT staff call
   * the LIS, which sends the order; the operator replays the dead result: it waits for the order
   * another day from the replay (not dead again at once on its old stamp), and once the order has
   * come the test is billed once.
   */
  it("a result dead after a day without its order, replayed by an operator, waits again and is billed once its order comes", async () => {
    const rig = await billingRig({ maxAttempts: MAX_ATTEMPTS });
    await rig.settle();
    const { controlId, drafts } = normalize(oru('R-902', 'GLU'));
    const yesterday = new Date(Date.now() - 25 * 3600_000).toISOString();
    const { ack: _ack, ...message } = inboundMessage(controlId);
    await rig.store.commit(message, drafts.map((d) => ({ ...d, receivedAt: yesterday })));
    rig.relay.notify();
    await waitFor(async () => result(await rig.events('R-902'), 'GLU')?.state === 'dead', 20_000, 5);
    const dead = result(await rig.events('R-902'), 'GLU')!;
    expect(dead.deadReason).toMatch(/^no order from the LIS for this test within 24 h: accession R-902/);

    await rig.store.replay(dead.event.id, 'it-staff', 'the LIS resends its order');
    rig.relay.notify();
    // Waiting again: retrying with that reason in one read (read apart, the relay may have leased it
    // again in between, which says nothing against waiting).
    await waitFor(async () => {
      const again = result(await rig.events('R-902'), 'GLU');
      expect(again?.state, 'not dead again at once').not.toBe('dead');
      return again?.state === 'retrying' && /waiting for its order from the LIS/.test(again.lastError ?? '');
    }, 20_000, 5);

    await rig.receive(orm('R-902', ['GLU']));
    await rig.settle('R-902');
    expect(deadReasons(await rig.events('R-902'))).toEqual([]);
    expect(saleLines(rig.emu, 'R-902').map((l) => `${l.code} ${l.qty}/${l.delivered}`)).toEqual(['GLU 1/1']);
    expect(billed(rig.emu, 'R-902')).toEqual(['GLU']);
  });
});
