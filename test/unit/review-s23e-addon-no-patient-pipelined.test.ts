/**
 * An add-on naming no patient (no PID: the PATIENT group is optional in ORM^O01) read right behind
 * its order, before that order's commit is in the store (the LIS pipelining the two on its
 * connection: the intake issues a commit and runs the next message's look-up without waiting for
 * the commit to land). hl7/order-numbers.ts, README "An add-on naming no patient". A real store
 * (LevelDB in a temp dir).
 *
 * 516b699 compared such an add-on with the patient of the latest order stored under its accession.
 * Pipelined, the order just read is not stored yet: the add-on was compared with no patient (as
 * before 516b699: MRN-88's CRP attached to MRN-77's order 70521, billed there, and MRN-88's order
 * got none), or, when the LIS had given the placer number 70521 to MRN-88 earlier that week, with
 * MRN-88 (the older order): MRN-88's CRP went to MRN-77's order again. Now the patient of the order
 * read last under that accession (memory, in arrival order) is taken before the store's.
 */
import { describe, expect, it } from 'vitest';
import { ResultOrderNumbers } from '../../gateway/src/hl7/order-numbers.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { intake, lisOrder, lisResult } from '../fixtures/hl7/order-numbers-intake.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const tmp = useTempStore('lgw-s23e-addon-pipelined-', { pruneIntervalMs: 0, minFreeBytes: 0 });

/** An add-on ORM^O01 naming its order by `placer` alone (ORC-3 empty) and no patient (no PID). */
const addOn = (id: string, placer: string, test: string): string =>
  [`MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||ORM^O01|${id}|P|2.5.1`, `ORC|NW|${placer}|||||||20260301092500||||||||||||CLINIC-A`, `OBR|1|${placer}||${test}^${test} test`].join('\r');

const results = (events: Awaited<ReturnType<typeof intake>>['events']): string[] =>
  events.filter((e) => e.type === 'result.validated').map((e) => `${e.correlationId}:${e.type === 'result.validated' ? e.data.testCode : ''}`);

/** The order `t` looked up now; its commit, as the intake issues it, lands only when the returned function is called. */
async function readNotCommitted(store: EventStore, numbers: ResultOrderNumbers, t: string, id: string): Promise<{ results: string[]; commit: () => Promise<void> }> {
  const taken = await intake(store, numbers, t, id, false);
  return {
    results: results(taken.events),
    commit: async () => {
      await store.commit(inboundMessage(id, { raw: Buffer.from(t, 'latin1') }), taken.events);
      numbers.noteCommitted(taken.events);
    },
  };
}

describe('an add-on naming no patient read right behind its order (pipelined)', () => {
  it("does not get another patient's result while its order's commit has not landed", async () => {
    const store = await tmp.open();
    const numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    await intake(store, numbers, lisOrder('O-0', '70520', 'LF-0041', ['GLU'], 'MRN-77'), 'O-0');
    await intake(store, numbers, lisResult('R-1', 'LF-0042', 'GLU', 'MRN-77'), 'R-1');
    // The daily number came round: MRN-88's CRP under LF-0042 too, before MRN-88's order.
    await intake(store, numbers, lisResult('R-2', 'LF-0042', 'CRP', 'MRN-88'), 'R-2');
    const o1 = await readNotCommitted(store, numbers, lisOrder('O-1', '70521', 'LF-0042', ['GLU'], 'MRN-77'), 'O-1');
    expect(o1.results).toEqual(['70521:GLU']);
    const o2 = await readNotCommitted(store, numbers, addOn('O-2', '70521', 'CRP'), 'O-2');
    expect(o2.results, "MRN-77's add-on (no PID) read before 70521's commit landed").toEqual([]);
    await o1.commit();
    await o2.commit();
    expect(results((await intake(store, numbers, lisOrder('O-3', '70522', 'LF-0042', ['CRP'], 'MRN-88'), 'O-3')).events)).toEqual(['70522:CRP']);
  });

  it('is not compared with the older order of another patient under the same placer number', async () => {
    const store = await tmp.open();
    const numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    // Monday: 70531 was MRN-88's order.
    await intake(store, numbers, lisOrder('O-0', '70531', 'LF-0050', ['GLU'], 'MRN-88'), 'O-0');
    await intake(store, numbers, lisResult('R-1', 'LF-0052', 'GLU', 'MRN-77'), 'R-1');
    await intake(store, numbers, lisResult('R-2', 'LF-0052', 'CRP', 'MRN-88'), 'R-2');
    await intake(store, numbers, lisResult('R-3', 'LF-0052', 'ALT', 'MRN-77'), 'R-3');
    // Wednesday: the LIS gave 70531 to MRN-77's order, and its add-on came right behind it.
    const o1 = await readNotCommitted(store, numbers, lisOrder('O-1', '70531', 'LF-0052', ['GLU'], 'MRN-77'), 'O-1');
    expect(o1.results).toEqual(['70531:GLU']);
    const o2 = await readNotCommitted(store, numbers, addOn('O-2', '70531', 'CRP'), 'O-2');
    expect(o2.results, "MRN-88's CRP on MRN-77's order").toEqual([]);
    const o3 = await readNotCommitted(store, numbers, addOn('O-3', '70531', 'ALT'), 'O-3');
    expect(o3.results, "MRN-77's own ALT").toEqual(['70531:ALT']);
    await o1.commit();
    await o2.commit();
    await o3.commit();
  });
});
