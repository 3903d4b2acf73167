/**
 * The link's results that came before their order, kept one store document per waiting number
 * (hl7/order-numbers.ts, README "A result that came before its order": "One document per waiting
 * number"), and the add-on naming the order by its accession alone after a restart or pipelined
 * behind its order ("An add-on naming the order by its accession alone"). A real store
 * (LevelDB in a temp dir); the bytes of the documents written are counted as the look-ups hand
 * them to the store (a pass-through of the real store's putDoc).
 */
import { describe, expect, it } from 'vitest';
import { LINK_MARK_NAMESPACE, ResultOrderNumbers, WAITING_NAMESPACE, waitingKey } from '../../gateway/src/hl7/order-numbers.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { intake, lisEvents as events, lisOrder as order, lisResult as result, readHl7 as read } from '../fixtures/hl7/order-numbers-intake.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const tmp = useTempStore('lgw-waiting-per-number-', { pruneIntervalMs: 0, minFreeBytes: 0 });

/** A message through the link's look-ups and into the store, as the intake takes it: the accessions of its results. */
async function take(store: EventStore, numbers: ResultOrderNumbers, t: string, id: string): Promise<string[]> {
  const { events: taken } = await intake(store, numbers, t, id);
  return taken.filter((e) => e.type === 'result.validated').map((e) => `${e.correlationId}:${e.type === 'result.validated' ? e.data.testCode : ''}`);
}

/** The real store, its waiting documents' bytes counted as they are handed to putDoc. */
function counting(store: EventStore): { store: EventStore; bytes: () => number } {
  let bytes = 0;
  const putDoc: EventStore['putDoc'] = (namespace, key, value) => {
    if (namespace === WAITING_NAMESPACE) bytes += Buffer.byteLength(key) + Buffer.byteLength(JSON.stringify(value));
    return store.putDoc(namespace, key, value);
  };
  const wrapped = new Proxy(store, {
    get(target, prop) {
      if (prop === 'putDoc') return putDoc;
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { store: wrapped, bytes: () => bytes };
}

describe('results that came before their order: one document per waiting number', () => {
  /**
   * Before: the link's one document was written whole for every new waiting number (every entry:
   * after 300 results without their order, ~25 KB per result, up to ~700 KB at 10,000). Now each
   * new number writes its own small document: the bytes per result do not grow with the entries.
   */
  it('bytes written per new waiting number stay bounded; a restart reads them all', async () => {
    const real = await tmp.open();
    const { store, bytes } = counting(real);
    const numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    // The link has sent an order carrying a filler number: its results are looked up.
    await take(real, numbers, order('O-0', '70000', 'LF-0000', ['GLU']), 'O-0');
    const per: number[] = [];
    for (let i = 1; i <= 300; i++) {
      const before = bytes();
      expect(await take(real, numbers, result(`R-${i}`, `LF-${10_000 + i}`), `R-${i}`)).toEqual([`LF-${10_000 + i}:GLU`]);
      per.push(bytes() - before);
    }
    // The first also writes the link's document once (the mark that its numbers are kept).
    expect(per.slice(1).every((b) => b > 0 && b < 400), `bytes per result: ${per.slice(-3).join(', ')}`).toBe(true);
    expect(Math.max(...per.slice(-50))).toBeLessThanOrEqual(Math.max(...per.slice(1, 51)));
    await real.flush();
    expect(await real.listDocs(WAITING_NAMESPACE, { prefix: waitingKey('lis', '') })).toHaveLength(300);

    // A restart reads every number: the order carrying the first one gets its result.
    const restarted = new ResultOrderNumbers(real, 'lis');
    await restarted.ready();
    expect(await take(real, restarted, order('O-1', '70001', 'LF-10001', ['GLU']), 'O-1')).toEqual(['70001:GLU']);
  });

  /**
   * GLU and CRP results under LF-9301 came before order 70301 (GLU, filler LF-9301); the add-on CRP
   * names 70301 alone (ORC-3 empty), after a restart. Before, nothing looked the waiting CRP result
   * up: dead-lettered after a day, never billed. Now the number's document keeps the order that
   * came carrying it.
   */
  it('an add-on naming the order by its accession alone, after a restart, gets the result waiting under the filler number', async () => {
    const store = await tmp.open();
    const numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    await take(store, numbers, order('O-0', '70300', 'LF-9300', ['GLU']), 'O-0');
    await take(store, numbers, result('R-1', 'LF-9301', 'GLU'), 'R-1');
    await take(store, numbers, result('R-2', 'LF-9301', 'CRP'), 'R-2');
    expect(await take(store, numbers, order('O-1', '70301', 'LF-9301', ['GLU']), 'O-1')).toEqual(['70301:GLU']);
    await store.flush();

    const restarted = new ResultOrderNumbers(store, 'lis');
    await restarted.ready();
    const addOn = read(order('O-2', '70301', '', ['CRP']));
    expect(restarted.needsLookup(addOn, events(addOn))).toBe(true);
    expect(await take(store, restarted, order('O-2', '70301', '', ['CRP']), 'O-2')).toEqual(['70301:CRP']);
    // Another order without a filler number reads nothing.
    const other = read(order('O-3', '70302', '', ['CRP']));
    expect(restarted.needsLookup(other, events(other))).toBe(false);
  });

  /** A store this code's first form wrote (every entry in the link's document): read once, split into per-number documents. */
  it("reads the link's whole document once", async () => {
    let store = await tmp.open();
    await take(store, new ResultOrderNumbers(store, 'lis'), order('O-0', '70600', 'LF-9600', ['GLU']), 'O-0');
    const r1 = result('R-1', 'LF-9601');
    await store.commit(inboundMessage('R-1', { raw: Buffer.from(r1, 'latin1') }), events(read(r1)));
    await store.putDoc(LINK_MARK_NAMESPACE, 'lis', { ordersCarryFiller: true, since: new Date().toISOString() });
    await store.putDoc(WAITING_NAMESPACE, 'lis', { v: 1, entries: [{ n: 'LF-9601', accession: 'LF-9601', patient: 'MRN-77', at: Date.now() }] });
    await store.close();

    store = await tmp.open();
    const numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    expect(await store.getDoc(WAITING_NAMESPACE, 'lis')).toEqual({ v: 1, entries: [] });
    expect(await store.getDoc(WAITING_NAMESPACE, waitingKey('lis', 'LF-9601'))).toMatchObject({ v: 2, entries: [{ n: 'LF-9601', accession: 'LF-9601' }] });
    const restarted = new ResultOrderNumbers(store, 'lis');
    await restarted.ready();
    expect(await take(store, restarted, order('O-1', '70601', 'LF-9601', ['GLU']), 'O-1')).toEqual(['70601:GLU']);
  });
});

describe('an add-on naming the order by its accession alone, pipelined behind the order', () => {
  /**
   * The intake reads each message (needsLookup) when it arrives, and runs the look-ups and commits
   * after, in arrival order: a LIS pipelining the order 70301 carrying LF-9301 and the add-on CRP
   * naming 70301 alone had the add-on read before the order's look-up ran. Before, the add-on was
   * not looked up (the order's number not yet remembered): the CRP result waited, dead-lettered.
   */
  it('the results stored, the order and its add-on read before either is looked up', async () => {
    const store = await tmp.open();
    const numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    await take(store, numbers, order('O-0', '70300', 'LF-9300', ['GLU']), 'O-0');
    await take(store, numbers, result('R-1', 'LF-9301', 'GLU'), 'R-1');
    await take(store, numbers, result('R-2', 'LF-9301', 'CRP'), 'R-2');
    const o1 = read(order('O-1', '70301', 'LF-9301', ['GLU']));
    const o2 = read(order('O-2', '70301', '', ['CRP']));
    const d1 = { events: events(o1), searchTerms: [] as string[], warnings: [] as string[] };
    const d2 = { events: events(o2), searchTerms: [] as string[], warnings: [] as string[] };
    expect(numbers.needsLookup(o1, d1.events)).toBe(true);
    expect(numbers.needsLookup(o2, d2.events), 'the add-on').toBe(true);
    const a1 = await numbers.attach(d1, o1);
    await store.commit(inboundMessage('O-1', { raw: Buffer.from('O-1') }), a1.events);
    const a2 = await numbers.attach(d2, o2);
    await store.commit(inboundMessage('O-2', { raw: Buffer.from('O-2') }), a2.events);
    expect(a1.events.filter((e) => e.type === 'result.validated').map((e) => e.correlationId)).toEqual(['70301']);
    expect(a2.events.filter((e) => e.type === 'result.validated').map((e) => [e.correlationId, e.type === 'result.validated' ? e.data.testCode : ''])).toEqual([['70301', 'CRP']]);
  });

  it('the CRP result still being committed when the order and its add-on are read', async () => {
    const store = await tmp.open();
    const numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    await take(store, numbers, order('O-0', '70300', 'LF-9300', ['GLU']), 'O-0');
    await take(store, numbers, result('R-1', 'LF-9301', 'GLU'), 'R-1');
    // As the intake reads them: the result, its commit handed over, then the order and the add-on.
    const r2 = read(result('R-2', 'LF-9301', 'CRP'));
    const o1 = read(order('O-1', '70301', 'LF-9301', ['GLU']));
    const o2 = read(order('O-2', '70301', '', ['CRP']));
    const dr = { events: events(r2), searchTerms: [] as string[], warnings: [] as string[] };
    const d1 = { events: events(o1), searchTerms: [] as string[], warnings: [] as string[] };
    const d2 = { events: events(o2), searchTerms: [] as string[], warnings: [] as string[] };
    expect(numbers.needsLookup(r2, dr.events)).toBe(true);
    const attachedR = numbers.attach(dr, r2);
    const committedR = attachedR.then((d) => store.commit(inboundMessage('R-2', { raw: Buffer.from('R-2') }), d.events));
    numbers.noteOrderCommit(r2, dr.events, committedR);
    expect(numbers.needsLookup(o1, d1.events)).toBe(true);
    expect(numbers.needsLookup(o2, d2.events), 'the add-on').toBe(true);
    await committedR;
    const a1 = await numbers.attach(d1, o1);
    await store.commit(inboundMessage('O-1', { raw: Buffer.from('O-1') }), a1.events);
    const a2 = await numbers.attach(d2, o2);
    await store.commit(inboundMessage('O-2', { raw: Buffer.from('O-2') }), a2.events);
    expect(a2.events.filter((e) => e.type === 'result.validated').map((e) => [e.correlationId, e.type === 'result.validated' ? e.data.testCode : ''])).toEqual([['70301', 'CRP']]);
  });
});
