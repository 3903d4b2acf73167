import { hash } from 'node:crypto';

/**
 * Partition and idempotency keys. Partition keys scope FIFO delivery; idempotency keys are
 * deterministic from the source so that the same inbound fact always yields the same key.
 */
export const partitionKeys = {
  order: (accession: string): string => `order:${accession}`,
  specimen: (specimenId: string): string => `specimen:${specimenId}`,
  /**
   * Consumption: one partition per analyzer and product (a reagent), so that one dead-lettered
   * reagent (no Odoo product, unknown lot) blocks only itself, never the analyzer's other reagents.
   * The relay batches these partitions together: one analyzer's window is still one picking.
   */
  reagent: (analyzer: string, productCode: string): string => `reagent:${analyzer}:${productCode}`,
  product: (productCode: string): string => `product:${productCode}`,
  /**
   * `invoice.eligible` of an order: a partition of its own, so that an invoice waiting for its
   * scheduled slot never holds back the order's near-real-time events (a cancellation, a
   * milestone). The invoice rule bills the sale order's lines as they are when it posts, and
   * waits for the order's earlier `order.created` / `order.cancelled` events (rules/invoice-eligible.ts).
   */
  invoice: (accession: string): string => `invoice:${accession}`,
} as const;

/** Join the parts of a source identity into a key; long keys are hashed to keep LevelDB keys short. */
export function idempotencyKey(...parts: Array<string | number | undefined>): string {
  let joined = '';
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (i > 0) joined += '|';
    if (p !== undefined) joined += String(p);
  }
  if (joined.length <= 160) return joined;
  return `${joined.slice(0, 80)}#${hash('sha256', joined, 'hex').slice(0, 32)}`;
}

/**
 * The version part of a `test.completed` key, from the result's status (ASTM R.9, LIS2-A2 §9.9;
 * HL7 OBX-11, which uses the same letters for these), or undefined for a report keyed as before:
 * final (F, or empty), previously transmitted (R), operator verified (V) and response to a query
 * (Q) are the same fact when resent, and any other code keeps the key it always had. A
 * preliminary (P) or partial (S) result is keyed apart from the final of the same run, a
 * correction (C) by its content, so that each correction of a result is a fact of its own.
 */
export function resultVersion(status: string, value: string, units: string, flags: string): string | undefined {
  switch (status) {
    case 'P':
    case 'S':
      return status;
    case 'C':
      return `C:${hash('sha256', `${value}\u0000${units}\u0000${flags}`, 'hex').slice(0, 16)}`;
    default:
      return undefined;
  }
}
