/**
 * Ids across a restart (store README "The life of an event", "Ids across such a restart"): the
 * id generator starts after the newest stored id, so key order stays arrival order when the
 * clock at start-up is behind the stored data (a box booted with its build date) or a restart
 * falls in the millisecond of the last commit. Retention's look for a damaged message's events
 * (the `e` entries right after its id) and the message browser's order rely on it.
 *
 * Before, the generator took the counter of the newest message id and then that of the newest
 * event id even when the latter was lower in the same millisecond (the last messages before the
 * stop made no event: refused ones): the next message took a counter already used, and sorted
 * before messages stored before the restart.
 *
 * Real LevelDB and message log in a temp dir; only Date is faked (every commit before the stop in
 * one millisecond, as under load).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { inboundMessage, resultValidated } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const DAY = 86_400_000;
const tmp = useTempStore('lgw-ids-restart-', { pruneIntervalMs: 0, minFreeBytes: 0 });

afterEach(() => {
  vi.useRealTimers();
});

describe('ids across a restart', () => {
  it('a message taken after a restart with the clock behind sorts after every stored message, also when the newest of them made no event', async () => {
    const T = Date.now();
    vi.useFakeTimers({ toFake: ['Date'], now: T });
    let store = await tmp.open();
    const first = await store.commit(inboundMessage('IDS1'), [resultValidated('IDS-A', 'k-ids-1')]);
    const refused: string[] = [];
    for (const id of ['IDS2', 'IDS3', 'IDS4']) refused.push((await store.commit(inboundMessage(id, { status: 'rejected', rejectReason: 'unknown test code', dedupKey: undefined }), [])).messageId);
    await store.close();

    vi.setSystemTime(T - 200 * DAY); // the build date, until the time server answers
    store = await tmp.open();
    const after = await store.commit(inboundMessage('IDS5'), [resultValidated('IDS-B', 'k-ids-5')]);
    for (const id of [first.messageId, ...refused, ...first.eventIds]) expect(after.messageId > id, `${after.messageId} after ${id}`).toBe(true);
    expect(after.eventIds[0]! > after.messageId).toBe(true);
    // The message browser lists the newest first.
    expect((await store.listMessages({})).map((m) => m.controlId)).toEqual(['IDS5', 'IDS4', 'IDS3', 'IDS2', 'IDS1']);
  });
});
