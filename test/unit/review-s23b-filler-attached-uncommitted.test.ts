/**
 * The order's copy of a result that came before it and the document telling the relay of it
 * (hl7/order-numbers.ts attachWaiting, README "A result that came before its order"): the document
 * is written before the order's commit. A gateway killed (kill -9, a power cut) between the two,
 * or an order whose commit failed (disk full), left the document naming an order that never got
 * the copy. A real store (LevelDB in a temp dir), reopened as after the restart.
 */
import { describe, expect, it } from 'vitest';
import { ATTACHED_NAMESPACE, ResultOrderNumbers, WAITING_NAMESPACE } from '../../gateway/src/hl7/order-numbers.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { intake, lisOrder as order, lisResult as result } from '../fixtures/hl7/order-numbers-intake.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const tmp = useTempStore('lgw-filler-attached-uncommitted-', { pruneIntervalMs: 0, minFreeBytes: 0 });

/** A message through the link's look-ups; committed unless `commit` is false (the gateway died first). */
async function take(store: EventStore, numbers: ResultOrderNumbers, t: string, id: string, commit = true): Promise<{ onOrders: string[]; warnings: string[] }> {
  const { events, warnings } = await intake(store, numbers, t, id, commit);
  return { onOrders: events.filter((e) => e.type === 'result.validated').map((e) => e.correlationId), warnings };
}

describe('a result that came before its order, the order never committed', () => {
  /**
   * Before: the document written for 70301 before its commit (which never came) made the result
   * "attached to order 70301 already" for good: the LIS, never answered, placed the test again as
   * 70302 carrying LF-9301, whose commit got no copy (a warning); the result waited under LF-9301,
   * was dead-lettered after a day, and 70302's test was never delivered nor billed. Now a document
   * whose copy is not stored on its order (as the relay reads it) holds nothing: 70302 gets it.
   */
  it('the next order carrying the number gets the result', async () => {
    let store = await tmp.open();
    let numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    await take(store, numbers, order('O-0', '70300', 'LF-9300'), 'O-0');
    expect((await take(store, numbers, result('R-1', 'LF-9301'), 'R-1')).onOrders).toEqual(['LF-9301']);
    // 70301 gets the copy; its document is written; the gateway dies before the commit.
    expect((await take(store, numbers, order('O-1', '70301', 'LF-9301'), 'O-1', false)).onOrders).toEqual(['70301']);
    const [stored] = (await store.listEvents({ limit: 10 })).filter((e) => e.event.type === 'result.validated');
    expect(await store.getDoc(ATTACHED_NAMESPACE, stored!.event.id)).toMatchObject({ accession: '70301' });
    for (let i = 0; i < 200 && (await store.getDoc<{ entries?: unknown[] }>(WAITING_NAMESPACE, 'lis'))?.entries?.length === undefined; i++) await new Promise((res) => setTimeout(res, 10));
    await store.close();

    store = await tmp.open();
    numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    const next = await take(store, numbers, order('O-2', '70302', 'LF-9301'), 'O-2');
    expect(next.warnings.filter((w) => w.includes('already'))).toEqual([]);
    expect(next.onOrders).toEqual(['70302']);
    expect(await store.getDoc(ATTACHED_NAMESPACE, stored!.event.id)).toMatchObject({ accession: '70302' });
    // 70301 sent again now: the result is 70302's (its copy is stored), not attached twice.
    const again = await take(store, numbers, order('O-1', '70301', 'LF-9301'), 'O-1');
    expect(again.onOrders).toEqual([]);
  });
});
