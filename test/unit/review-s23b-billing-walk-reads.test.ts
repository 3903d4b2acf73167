/**
 * What billing's derivation reads in a commit (events/invoice-eligibility.ts): since results can
 * be copied onto the order that came after them (hl7/order-numbers.ts), its walk leaves out a
 * result whose copy is on another order (countedHere), looking at the copy's document only for a
 * result stored before any order of its link under the accession. The usual order, then its
 * results, reads no such document: one read of billing's memory per accession, as before. A real
 * LevelDB store; its reads counted.
 */
import { describe, expect, it } from 'vitest';
import { invoiceEligibility, type DeriverStore } from '../../gateway/src/events/invoice-eligibility.ts';
import { ATTACHED_NAMESPACE } from '../../gateway/src/hl7/order-numbers.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { inbound, orderCreated, resultValidated, tempDir } from '../fixtures/relay/helpers.ts';

function counting(store: EventStore): { view: DeriverStore; docs: string[] } {
  const docs: string[] = [];
  return {
    docs,
    view: {
      eventsByCorrelation: (c, t) => store.eventsByCorrelation(c, t),
      idempotencyKeyUsed: (k) => store.idempotencyKeyUsed(k),
      getDoc: <T>(ns: string, k: string) => {
        docs.push(ns);
        return store.getDoc<T>(ns, k);
      },
    },
  };
}

describe("billing's walk in a commit: the documents it reads", () => {
  it('the usual order then its results: no document of a copied result', async () => {
    const tmp = tempDir('review-s23b-walk-');
    const store = await EventStore.open({ dataDir: tmp.dir, pruneIntervalMs: 0 });
    try {
      await store.commit(inbound(), [orderCreated('W-1', 'CLINIC-A', ['GLU', 'CRP'])]);
      await store.commit(inbound(), [resultValidated('W-1', 'GLU')]);
      const { view, docs } = counting(store);
      const derived = await invoiceEligibility.derive([resultValidated('W-1', 'CRP')], view);
      expect(derived.map((d) => d.type)).toEqual(['invoice.eligible']);
      expect(docs.filter((ns) => ns === ATTACHED_NAMESPACE)).toEqual([]);
    } finally {
      await store.close();
      tmp.cleanup();
    }
  });

  it('a result stored before its order: one document read for it', async () => {
    const tmp = tempDir('review-s23b-walk-');
    const store = await EventStore.open({ dataDir: tmp.dir, pruneIntervalMs: 0 });
    try {
      await store.commit(inbound(), [resultValidated('W-2', 'GLU')]);
      const { view, docs } = counting(store);
      // A result alone: nothing is billable before an order, nothing more is read.
      expect(await invoiceEligibility.derive([resultValidated('W-2', 'CRP')], view)).toEqual([]);
      expect(docs.filter((ns) => ns === ATTACHED_NAMESPACE)).toEqual([]);
      const derived = await invoiceEligibility.derive([orderCreated('W-2', 'CLINIC-A', ['GLU'])], view);
      expect(derived.map((d) => d.type)).toEqual(['invoice.eligible']);
      expect(docs.filter((ns) => ns === ATTACHED_NAMESPACE)).toHaveLength(1);
    } finally {
      await store.close();
      tmp.cleanup();
    }
  });
});
