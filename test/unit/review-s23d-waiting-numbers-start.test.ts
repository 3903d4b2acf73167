/**
 * The link's waiting numbers (hl7/order-numbers.ts, README "A result that came before its order",
 * "One document per waiting number", "An add-on naming the order by its accession alone"), as a
 * later owner of dcfd2e2 / f8bbbde checks them: the start reads every number over several listDocs
 * pages; a restart in the middle of splitting the first form's whole document; two links keeping
 * the same number; an order naming only a placer number the LIS gave again to another patient.
 * A real store (LevelDB in a temp dir).
 */
import { describe, expect, it } from 'vitest';
import { LINK_MARK_NAMESPACE, ResultOrderNumbers, WAITING_NAMESPACE, waitingKey } from '../../gateway/src/hl7/order-numbers.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { lisEvents, lisOrder, lisResult, readHl7 } from '../fixtures/hl7/order-numbers-intake.ts';

const tmp = useTempStore('lgw-s23d-waiting-', { pruneIntervalMs: 0, minFreeBytes: 0 });

/** A message through the link's look-ups and into the store, as the intake takes it: its results as `<accession>:<test>`. */
async function take(store: EventStore, numbers: ResultOrderNumbers, t: string, id: string, endpoint = 'lis'): Promise<string[]> {
  const m = readHl7(t);
  let draft = { events: lisEvents(m, endpoint), searchTerms: [] as string[], warnings: [] as string[] };
  if (numbers.needsLookup(m, draft.events)) draft = await numbers.attach(draft, m);
  await store.commit(inboundMessage(id, { endpoint, raw: Buffer.from(t, 'latin1') }), draft.events);
  numbers.noteCommitted(draft.events);
  return draft.events.filter((e) => e.type === 'result.validated').map((e) => `${e.correlationId}:${e.type === 'result.validated' ? e.data.testCode : ''}`);
}

describe('waiting numbers at start', () => {
  /** 2,500 numbers, three listDocs pages of 1,000: the oldest and the newest are both read. */
  it('reads every number over several pages', async () => {
    let store = await tmp.open();
    await store.putDoc(LINK_MARK_NAMESPACE, 'lis', { ordersCarryFiller: true });
    await store.putDoc(WAITING_NAMESPACE, 'lis', { v: 1, entries: [] });
    const now = Date.now();
    for (let i = 0; i < 2_500; i++) {
      const n = `LF-${100_000 + i}`;
      void store.putDoc(WAITING_NAMESPACE, waitingKey('lis', n), { v: 2, entries: [{ n, accession: n, patient: 'MRN-77', at: now - i * 1_000 }] });
    }
    await store.flush();
    await store.close();
    store = await tmp.open();
    const numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    for (const n of ['LF-100000', 'LF-101000', 'LF-102499']) {
      const m = readHl7(lisOrder('O-x', `7${n}`, n, ['GLU']));
      expect(numbers.needsLookup(m, lisEvents(m)), n).toBe(true);
    }
  });

  /**
   * The first form's whole document split, the gateway killed after one number's document was
   * written (the add-on order it names kept there) and before the whole document was written back
   * empty: the next start reads both, the order kept, every number kept, the document emptied.
   */
  it('a restart in the middle of splitting the whole document', async () => {
    let store = await tmp.open();
    await take(store, new ResultOrderNumbers(store, 'lis'), lisOrder('O-0', '70700', 'LF-9700', ['GLU']), 'O-0');
    for (const [id, n, t] of [['R-1', 'LF-9701', 'GLU'], ['R-2', 'LF-9701', 'CRP'], ['R-3', 'LF-9702', 'GLU']] as const) {
      const r = lisResult(id, n, t);
      await store.commit(inboundMessage(id, { raw: Buffer.from(r, 'latin1') }), lisEvents(readHl7(r)));
    }
    const at = Date.now();
    await store.putDoc(WAITING_NAMESPACE, 'lis', {
      v: 1,
      entries: [
        { n: 'LF-9701', accession: 'LF-9701', patient: 'MRN-77', at },
        { n: 'LF-9702', accession: 'LF-9702', patient: 'MRN-77', at },
      ],
    });
    // Split so far: LF-9701's document (its order 70701 came carrying it, GLU attached).
    await store.putDoc(WAITING_NAMESPACE, waitingKey('lis', 'LF-9701'), { v: 2, entries: [{ n: 'LF-9701', accession: 'LF-9701', patient: 'MRN-77', at }], orders: ['70701'] });
    await store.close();

    store = await tmp.open();
    const numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    expect(await store.getDoc(WAITING_NAMESPACE, 'lis')).toEqual({ v: 1, entries: [] });
    expect(await store.getDoc(WAITING_NAMESPACE, waitingKey('lis', 'LF-9701'))).toMatchObject({ orders: ['70701'] });
    // The add-on naming 70701 alone gets CRP; the order carrying LF-9702 gets its GLU.
    expect(await take(store, numbers, lisOrder('O-2', '70701', '', ['CRP']), 'O-2')).toEqual(['70701:CRP']);
    expect(await take(store, numbers, lisOrder('O-3', '70702', 'LF-9702', ['GLU']), 'O-3')).toEqual(['70702:GLU']);
  });
});

describe('numbers of two links, and a placer number given again', () => {
  /** Two LIS links keep the same number: each order gets its own link's result, after a restart too. */
  it('two links with the same waiting number', async () => {
    let store = await tmp.open();
    for (const link of ['lis', 'lis2']) await take(store, new ResultOrderNumbers(store, link), lisOrder(`O-0-${link}`, `70800-${link}`, `LF-9800-${link}`, ['GLU']), `O-0-${link}`, link);
    const a = new ResultOrderNumbers(store, 'lis');
    const b = new ResultOrderNumbers(store, 'lis2');
    await Promise.all([a.ready(), b.ready()]);
    expect(await take(store, a, lisResult('R-a', 'LF-9801', 'GLU'), 'R-a')).toEqual(['LF-9801:GLU']);
    expect(await take(store, b, lisResult('R-b', 'LF-9801', 'CRP', 'MRN-88'), 'R-b', 'lis2')).toEqual(['LF-9801:CRP']);
    await store.flush();
    await store.close();
    store = await tmp.open();
    const a2 = new ResultOrderNumbers(store, 'lis');
    const b2 = new ResultOrderNumbers(store, 'lis2');
    await Promise.all([a2.ready(), b2.ready()]);
    expect(await take(store, b2, lisOrder('O-b', '70801', 'LF-9801', ['GLU', 'CRP'], 'MRN-88'), 'O-b', 'lis2')).toEqual(['70801:CRP']);
    expect(await take(store, a2, lisOrder('O-a', '70802', 'LF-9801', ['GLU', 'CRP']), 'O-a')).toEqual(['70802:GLU']);
  });

  /**
   * GLU and CRP of MRN-77 under LF-9901 come before their order 70901 (GLU, LF-9901), which gets GLU.
   * The LIS then gives the placer number 70901 to MRN-88's order for CRP (ORC-3 empty): MRN-77's
   * CRP is not that order's. MRN-77's own add-on, after, gets it.
   */
  it("an order naming only a placer number given again to another patient gets none of the first patient's results", async () => {
    const store = await tmp.open();
    const numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    await take(store, numbers, lisOrder('O-0', '70900', 'LF-9900', ['GLU']), 'O-0');
    await take(store, numbers, lisResult('R-1', 'LF-9901', 'GLU'), 'R-1');
    await take(store, numbers, lisResult('R-2', 'LF-9901', 'CRP'), 'R-2');
    expect(await take(store, numbers, lisOrder('O-1', '70901', 'LF-9901', ['GLU']), 'O-1')).toEqual(['70901:GLU']);
    expect(await take(store, numbers, lisOrder('O-2', '70901', '', ['CRP'], 'MRN-88'), 'O-2')).toEqual([]);
    // Pipelined too: read before the order's look-up ran (memory only).
    const o3 = readHl7(lisOrder('O-3', '70903', 'LF-9903', ['GLU']));
    const o4 = readHl7(lisOrder('O-4', '70903', '', ['CRP'], 'MRN-88'));
    await take(store, numbers, lisResult('R-3', 'LF-9903', 'CRP'), 'R-3');
    const d3 = { events: lisEvents(o3), searchTerms: [] as string[], warnings: [] as string[] };
    const d4 = { events: lisEvents(o4), searchTerms: [] as string[], warnings: [] as string[] };
    numbers.needsLookup(o3, d3.events);
    expect(numbers.needsLookup(o4, d4.events)).toBe(true);
    await store.commit(inboundMessage('O-3', { raw: Buffer.from('O-3') }), (await numbers.attach(d3, o3)).events);
    const a4 = await numbers.attach(d4, o4);
    expect(a4.events.filter((e) => e.type === 'result.validated')).toEqual([]);
    expect(a4.warnings.join('\n')).toMatch(/names patient MRN-77, order 70903 carrying its number names MRN-88; not attached/);
  });
});
