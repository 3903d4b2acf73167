/**
 * `invoice.eligible` (DESIGN.md §3): an order becomes billable when every billable test it
 * ordered has a validated result. The gateway derives the event itself, at the moment the message
 * that completes the order (the last `result.validated`, or a late `order.created`) is committed,
 * in the same atomic batch. Its idempotency key is `invoice-eligible|<accession>`, so an order is
 * eligible once, whatever is resent.
 *
 * QC and calibration runs never produce `result.validated` (the analyzer normalizers mark them
 * `runType: qc|calibration` and only LIS validation bills), so they can never make an order
 * eligible. Cancelled tests are not required.
 */
import type { DraftEvent, InvoiceEligibleData, OrderCancelledData, OrderCreatedData, OrderedTest, ResultValidatedData } from './types.ts';
import { idempotencyKey, partitionKeys } from './keys.ts';
import type { GatewayStore } from '../store/types.ts';

export interface EventDeriver {
  /** Correlation ids whose derivation must be serialised with this commit. */
  keys(drafts: readonly DraftEvent[]): string[];
  /** Events to add to the commit (read what is stored; the store holds the keys' locks). */
  derive(drafts: readonly DraftEvent[], store: Pick<GatewayStore, 'eventsByCorrelation'>): Promise<DraftEvent[]>;
}

export const invoiceEligibility: EventDeriver = {
  keys(drafts) {
    const out = new Set<string>();
    for (const d of drafts) if (d.type === 'result.validated' || d.type === 'order.created') out.add(d.correlationId);
    return [...out];
  },

  async derive(drafts, store) {
    const derived: DraftEvent[] = [];
    for (const accession of this.keys(drafts)) {
      const stored = await store.eventsByCorrelation(accession, ['order.created', 'order.cancelled', 'result.validated', 'invoice.eligible']);
      if (stored.some((s) => s.event.type === 'invoice.eligible')) continue;
      const all = [...stored.map((s) => s.event as DraftEvent), ...drafts.filter((d) => d.correlationId === accession)];
      const orders = all.filter((e): e is Extract<DraftEvent, { type: 'order.created' }> => e.type === 'order.created');
      if (orders.length === 0) continue;
      const cancelled = new Set<string>();
      let wholeOrderCancelled = false;
      for (const e of all) {
        if (e.type !== 'order.cancelled') continue;
        const data = e.data as OrderCancelledData;
        if (data.tests.length === 0) wholeOrderCancelled = true;
        for (const t of data.tests) cancelled.add(t.code);
      }
      if (wholeOrderCancelled) continue;
      const tests = new Map<string, OrderedTest>();
      for (const o of orders) for (const t of (o.data as OrderCreatedData).tests) if (!cancelled.has(t.code)) tests.set(t.code, t);
      if (tests.size === 0) continue;
      const validated = new Set(all.filter((e) => e.type === 'result.validated').map((e) => (e.data as ResultValidatedData).testCode));
      if (![...tests.keys()].every((code) => validated.has(code))) continue;
      const trigger = drafts.find((d) => d.correlationId === accession && (d.type === 'result.validated' || d.type === 'order.created'))!;
      const order = orders[0]!.data as OrderCreatedData;
      const data: InvoiceEligibleData = { accession, tests: [...tests.values()], ...(order.orderingClientRef ? { orderingClientRef: order.orderingClientRef } : {}) };
      derived.push({
        type: 'invoice.eligible',
        occurredAt: trigger.occurredAt,
        receivedAt: trigger.receivedAt,
        idempotencyKey: idempotencyKey('invoice-eligible', accession),
        correlationId: accession,
        partitionKey: partitionKeys.order(accession),
        source: trigger.source,
        data,
      });
    }
    return derived;
  },
};
