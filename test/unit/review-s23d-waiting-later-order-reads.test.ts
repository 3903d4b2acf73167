/**
 * A number whose results were attached stays kept for its 7 days (an add-on naming the order by its
 * accession alone may still come: hl7/order-numbers.ts, README "An add-on naming the order by its
 * accession alone"), so every later order message of that order (the LIS sending it again, a
 * status, the add-on) is looked up. Before, each such message read and parsed the stored message
 * of every waiting result of a test it named (its patient) before finding the result on the order
 * already: 2 + 2k store reads and k parses per message, for 7 days. Now a result whose copy is on
 * this order already is passed over first: its message is not read. A real store (LevelDB in a
 * temp dir); the store's calls counted as the look-ups hand them over (a pass-through).
 */
import { describe, expect, it } from 'vitest';
import { ResultOrderNumbers } from '../../gateway/src/hl7/order-numbers.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';
import { lisEvents, lisOrder, lisResult, readHl7 } from '../fixtures/hl7/order-numbers-intake.ts';

const tmp = useTempStore('lgw-s23d-later-order-', { pruneIntervalMs: 0, minFreeBytes: 0 });

/** The real store, the calls of each of its methods counted as they are handed over. */
function counting(store: EventStore): { store: EventStore; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const wrapped = new Proxy(store, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        calls.set(String(prop), (calls.get(String(prop)) ?? 0) + 1);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: wrapped, calls };
}

/** A message through the link's look-ups and into the store, as the intake takes it: its results as `<accession>:<test>`, its warnings. */
async function take(store: EventStore, numbers: ResultOrderNumbers, t: string, id: string): Promise<{ results: string[]; warnings: string[] }> {
  const m = readHl7(t);
  let draft = { events: lisEvents(m), searchTerms: [] as string[], warnings: [] as string[] };
  if (numbers.needsLookup(m, draft.events)) draft = await numbers.attach(draft, m);
  await store.commit(inboundMessage(id, { raw: Buffer.from(t, 'latin1') }), draft.events);
  numbers.noteCommitted(draft.events);
  return { results: draft.events.filter((e) => e.type === 'result.validated').map((e) => `${e.correlationId}:${e.type === 'result.validated' ? e.data.testCode : ''}`), warnings: draft.warnings };
}

describe('later order messages of an order whose waiting results were attached', () => {
  it('read no stored message of a result on the order already; the add-on and another order as before', async () => {
    const real = await tmp.open();
    const { store, calls } = counting(real);
    const numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    await take(real, numbers, lisOrder('O-0', '70400', 'LF-9400', ['GLU']), 'O-0');
    await take(real, numbers, lisResult('R-1', 'LF-9401', 'GLU'), 'R-1');
    await take(real, numbers, lisResult('R-2', 'LF-9401', 'ALT'), 'R-2');
    await take(real, numbers, lisResult('R-3', 'LF-9401', 'CRP'), 'R-3');
    expect((await take(real, numbers, lisOrder('O-1', '70401', 'LF-9401', ['GLU', 'ALT']), 'O-1')).results).toEqual(['70401:GLU', '70401:ALT']);

    // The LIS sends the order again, twice, then with its ORC-3 empty: nothing more, no stored message read.
    for (const [id, filler] of [['O-2', 'LF-9401'], ['O-3', 'LF-9401'], ['O-4', '']] as const) {
      calls.clear();
      expect((await take(real, numbers, lisOrder(id, '70401', filler, ['GLU', 'ALT']), id)).results, id).toEqual([]);
      expect(calls.get('getMessage') ?? 0, `${id}: stored messages read`).toBe(0);
    }
    // The add-on CRP (ORC-3 empty) gets the CRP result still.
    expect((await take(real, numbers, lisOrder('O-5', '70401', '', ['GLU', 'ALT', 'CRP']), 'O-5')).results).toEqual(['70401:CRP']);
    // Another order carrying the number: the results are 70401's, live; nothing attached.
    const other = await take(real, numbers, lisOrder('O-6', '70409', 'LF-9401', ['GLU']), 'O-6');
    expect(other.results).toEqual([]);
  });
});
