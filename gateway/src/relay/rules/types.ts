import type { OdooConfig, RelayConfig } from '../../config/types.ts';
import type { EventType } from '../../events/types.ts';
import type { Logger } from '../../log.ts';
import type { OdooRef, StoredEvent } from '../../store/types.ts';
import type { OdooApi } from '../odoo/odoo-client.ts';
import type { ReferenceData } from '../reference-data.ts';

export interface RuleContext {
  odoo: OdooApi;
  ref: ReferenceData;
  config: RelayConfig;
  odooConfig: OdooConfig;
  log: Logger;
  now(): number;
  /**
   * The store's events of one correlation id (accession), in stored order, optionally of some
   * types (the store's `eventsByCorrelation`). Absent when a rule runs without a store; rules
   * that use it then skip what it is for.
   */
  events?(correlationId: string, types?: EventType[]): Promise<StoredEvent[]>;
  /**
   * A local document of the store (`getDoc`): the billing rules read billing's memory of an
   * accession through it (events/billing-memory.ts billingHistory). Absent without a store.
   */
  doc?<T>(namespace: string, key: string): Promise<T | undefined>;
}

/** Per-event result of one posting attempt. */
export type RuleResult = { ok: true; odoo?: OdooRef[]; note?: string } | { ok: false; error: unknown };

/**
 * One posting rule per event type (or a family, e.g. chatter milestones). `post` receives the
 * events of one batch (same type, FIFO within each partition) and returns a result per event id;
 * a thrown error applies to every event of the batch. Every rule is find-or-create and advances by
 * `state`, so a second run after a crash or an ambiguous failure never duplicates a document.
 */
export interface PostingRule {
  readonly name: string;
  readonly types: readonly EventType[];
  /** Largest batch handed to `post` (events). */
  readonly maxBatch: number;
  /** May events of several partitions share one call (true) or one partition per batch (false). */
  readonly crossPartition: boolean;
  post(ctx: RuleContext, events: StoredEvent[]): Promise<Map<string, RuleResult>>;
}

export function ok(odoo?: OdooRef[], note?: string): RuleResult {
  return { ok: true, ...(odoo ? { odoo } : {}), ...(note ? { note } : {}) };
}
export function fail(error: unknown): RuleResult {
  return { ok: false, error };
}
