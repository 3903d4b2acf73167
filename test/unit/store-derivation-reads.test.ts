import { describe, expect, it } from 'vitest';
import { billingRetention, invoiceEligibility } from '../../gateway/src/events/invoice-eligibility.ts';
import { normalize, orm, oru } from '../fixtures/relay/billing-rig.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

// The derivation of a billing message (invoice eligibility) reads its accession's stored events
// and billing memory. Those change only in commits of that accession, serialised by the store's
// key lock and marked until LevelDB has them: the derivation waits for LevelDB only when its
// accession has such a commit in flight (store README "Commit point", EventStore #deriverView).
// Before, every billing message's derivation waited until LevelDB had applied every batch in
// flight: the gateway's durable intake ran at about half the rate of a store without derivation.
//
// Real LevelDB and message log in a temp dir; LevelDB's writes are held by interceptLevelWrites
// (commits are answered at their commit point, the synced message-log write, meanwhile). No timing.

const tmp = useTempStore('lgw-derivation-reads-', { pruneIntervalMs: 0, minFreeBytes: 0, messageLogMinBatch: 1, deriver: invoiceEligibility, retentionHold: billingRetention });

/** Hold every LevelDB write until released. */
function holdLevel() {
  let held = 0;
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  return {
    hook: async (): Promise<void> => {
      held++;
      await gate;
    },
    held: () => held,
    release: () => open(),
  };
}

const message = (text: string) => {
  const { controlId, drafts } = normalize(text);
  return { msg: inboundMessage(controlId, { raw: Buffer.from(text, 'latin1') }), drafts };
};

describe('a billing message derives without waiting for LevelDB, with its accession\'s events still in flight', () => {
  it('another accession derives at once; the same accession sees its order committed just before, still in flight', async () => {
    const store = await tmp.open();
    const gate = holdLevel();
    store.interceptLevelWrites(gate.hook);

    // The order of DR-1, answered at its commit point while LevelDB's write is held.
    const order = message(orm('DR-1', ['GLU']));
    const ordered = await store.commit(order.msg, order.drafts);
    expect(ordered.eventIds).toHaveLength(1);
    expect(gate.held()).toBeGreaterThan(0);

    // A result of another accession (no order stored): derived and answered while LevelDB's
    // writes are still held. Before, its derivation waited for them: this await never ended.
    const other = message(oru('DR-2', 'GLU'));
    const otherResult = await store.commit(other.msg, other.drafts);
    expect(otherResult.duplicate).toBe(false);
    expect(otherResult.eventIds).toHaveLength(1); // nothing to bill: DR-2 has no order

    // DR-1's result: its derivation must see DR-1's order, still only in the held batch (not in
    // LevelDB): taken from the events in flight, without waiting for LevelDB (the LIS sends the
    // result once the order is acknowledged). Before, it waited for the order's LevelDB write.
    const result = message(oru('DR-1', 'GLU'));
    const validated = await store.commit(result.msg, result.drafts);
    expect(gate.held()).toBeGreaterThan(0);
    gate.release();
    store.interceptLevelWrites(undefined);
    expect(validated.eventIds).toHaveLength(2);
    const types = await Promise.all(validated.eventIds.map(async (id) => (await store.getEvent(id))?.event.type));
    expect(types).toEqual(['result.validated', 'invoice.eligible']);
    await store.close();
  });

  it("after a restart, an accession's events are found once the key filter has every correlation id, and one never stored reads nothing", async () => {
    let store = await tmp.open();
    const order = message(orm('DR-3', ['GLU', 'TSH']));
    await store.commit(order.msg, order.drafts);
    const result = message(oru('DR-3', 'GLU'));
    await store.commit(result.msg, result.drafts);
    await store.close();

    store = await tmp.open();
    await expect.poll(() => store.keyFilterReady, { timeout: 5_000 }).toBe(true);
    // Answered without reading LevelDB for DR-4 (not in the filter); DR-3 from the filter's fill.
    expect((await store.eventsByCorrelation('DR-4')).length).toBe(0);
    expect((await store.eventsByCorrelation('DR-3')).map((e) => e.event.type)).toEqual(['order.created', 'result.validated']);
    // The next result of DR-3 still derives from its stored order: TSH validated, both billed.
    const tsh = message(oru('DR-3', 'TSH'));
    const validated = await store.commit(tsh.msg, tsh.drafts);
    expect(validated.eventIds).toHaveLength(2);
    // A new accession's events are found at once after their commit (added as they are queued).
    const fresh = message(orm('DR-5', ['GLU']));
    await store.commit(fresh.msg, fresh.drafts);
    expect((await store.eventsByCorrelation('DR-5')).map((e) => e.event.type)).toEqual(['order.created']);
    await store.close();
  });

  it("an order whose batch LevelDB refused is not seen by its result's derivation", async () => {
    // Inline commits (not logged): the held batch is refused at its LevelDB write, not answered.
    const store = await tmp.open({ messageLogMinBatch: 100 });
    // The key filter filled: a new accession's events are then kept in memory for its derivations.
    await expect.poll(() => store.keyFilterReady, { timeout: 5_000 }).toBe(true);
    let fail: ((err: Error) => void) | undefined;
    store.interceptLevelWrites(
      () =>
        new Promise<void>((_, reject) => {
          fail = reject;
        }),
    );
    const order = message(orm('DR-6', ['GLU']));
    const refused = store.commit(order.msg, order.drafts).then(
      () => 'stored',
      () => 'refused',
    );
    await expect.poll(() => fail !== undefined, { timeout: 5_000 }).toBe(true);
    fail!(Object.assign(new Error('EIO: injected LevelDB write failure'), { code: 'EIO' }));
    expect(await refused).toBe('refused');
    store.interceptLevelWrites(undefined);
    await expect.poll(() => store.health, { timeout: 5_000 }).toBe('ok');

    // The LIS resends nothing yet; a result of DR-6 arrives: no order is stored, nothing billable.
    const result = message(oru('DR-6', 'GLU'));
    const validated = await store.commit(result.msg, result.drafts);
    expect(validated.eventIds).toHaveLength(1);
    expect((await store.eventsByCorrelation('DR-6')).map((e) => e.event.type)).toEqual(['result.validated']);
    await store.close();
  });

  it('local documents are found at once after their write and after a restart; one never written is answered without a read', async () => {
    let store = await tmp.open();
    await store.putDoc('ref', 'a', { n: 1 });
    await store.commitLocal([], [{ namespace: 'ref', key: 'b', value: { n: 2 } }]);
    expect(await store.getDoc('ref', 'a')).toEqual({ n: 1 });
    expect(await store.getDoc('ref', 'b')).toEqual({ n: 2 });
    await store.close();

    store = await tmp.open();
    await expect.poll(() => store.keyFilterReady, { timeout: 5_000 }).toBe(true);
    // From the key filter's fill: the documents the store held when it opened.
    expect(await store.getDoc('ref', 'a')).toEqual({ n: 1 });
    expect(await store.getDoc('ref', 'b')).toEqual({ n: 2 });
    expect(await store.getDoc('ref', 'c')).toBeUndefined();
    await store.deleteDoc('ref', 'a');
    expect(await store.getDoc('ref', 'a')).toBeUndefined();
    await store.close();
  });
});
