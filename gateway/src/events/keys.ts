import { createHash } from 'node:crypto';

/**
 * Partition and idempotency keys. Partition keys scope FIFO delivery; idempotency keys are
 * deterministic from the source so that the same inbound fact always yields the same key.
 */
export const partitionKeys = {
  order: (accession: string): string => `order:${accession}`,
  specimen: (specimenId: string): string => `specimen:${specimenId}`,
  /** Consumption is posted per analyzer so that one window becomes one picking. */
  consumption: (analyzer: string): string => `consumption:${analyzer}`,
  product: (productCode: string): string => `product:${productCode}`,
} as const;

/** Join the parts of a source identity into a key; long keys are hashed to keep LevelDB keys short. */
export function idempotencyKey(...parts: Array<string | number | undefined>): string {
  const joined = parts.map((p) => (p === undefined ? '' : String(p))).join('|');
  if (joined.length <= 160) return joined;
  return `${joined.slice(0, 80)}#${createHash('sha256').update(joined).digest('hex').slice(0, 32)}`;
}
