/**
 * Canonical events (DESIGN.md §3): one discriminated union, versioned, JSON-serialisable.
 * Ingress parsers produce them; the store keeps them; the relay posts them to Odoo.
 */

export const EVENT_SCHEMA_VERSION = 1 as const;

export const EventTypes = [
  'order.created',
  'order.cancelled',
  'specimen.received',
  'test.in_progress',
  'test.completed',
  'result.validated',
  'consumable.used',
  'stock.threshold_breached',
  'invoice.eligible',
] as const;

export type EventType = (typeof EventTypes)[number];

export const SyncModes = ['realtime', 'micro-batch', 'scheduled'] as const;
export type SyncMode = (typeof SyncModes)[number];

/** DESIGN.md §3 default sync mode per event type. */
export const DEFAULT_SYNC_MODE = {
  'order.created': 'realtime',
  'order.cancelled': 'realtime',
  'specimen.received': 'realtime',
  'test.in_progress': 'realtime',
  'test.completed': 'realtime',
  'result.validated': 'realtime',
  'consumable.used': 'micro-batch',
  'stock.threshold_breached': 'realtime',
  'invoice.eligible': 'scheduled',
} as const satisfies Record<EventType, SyncMode>;

export type SourceKind = 'hl7' | 'astm' | 'local';

export interface EventSource {
  kind: SourceKind;
  /** The configured endpoint id (an `hl7[].id` or `analyzers[].id`). */
  endpoint: string;
  /** Analyzer id when the event came from an analyzer (or an HL7 analyzer such as Mindray BS). */
  analyzer?: string;
  /** The store's id of the inbound message this event was derived from ('' for local events). */
  messageId: string;
  /** HL7 MSH-10 or ASTM H-record message control id, when the sender gave one. */
  controlId?: string;
}

/**
 * What a run on an analyzer was. QC and calibration runs are never billable; nor is a `training`
 * run: a sample run while the analyzer said training or debugging (ASTM H.12 / HL7 MSH-11 `T`
 * or `D`), whose reagent was used all the same (profiles/training-run.ts).
 */
export type RunType = 'patient' | 'qc' | 'calibration' | 'rerun' | 'training';

export interface OrderedTest {
  /** Canonical (LIS) test code; matched against Odoo product `default_code`. */
  code: string;
  name?: string;
  codingSystem?: string;
  /** Placer/filler line id when the LIS sends one (OBR-1 set id, ORC-2 suffix). */
  lineId?: string;
}

export interface OrderCreatedData {
  /** Placer order number / accession: the correlation key across LIS, analyzer and Odoo. */
  accession: string;
  fillerOrderNumber?: string;
  /** The ordering client (clinic, physician practice) as an Odoo partner `ref`. */
  orderingClientRef: string;
  orderingClientName?: string;
  /** Patient identifier only (MRN); no names or birth dates leave the gateway. */
  patientId?: string;
  /** The order's (first) specimen id: the tube's barcode (HL7 SPM-2). */
  specimenId?: string;
  /**
   * Every specimen (tube) of the order with the tests it is for, in the order the LIS named them,
   * when the order names more than one (serum for ALT, fluoride for glucose). Absent for an order
   * of one tube: `specimenId` says it all. The first entry is `specimenId`. Added in schema 1
   * without a version change: readers that do not know it see the first tube as before.
   */
  specimens?: OrderSpecimen[];
  priority?: string;
  tests: OrderedTest[];
  orderedAt?: string;
  /**
   * The event's occurredAt as the LIS wrote it (HL7 DTM, trimmed: hl7/normalize-lis.ts), for billing
   * to compare two messages' times as written (hl7-time.ts compareHl7Time). Added in schema 1
   * without a version change; absent on events of earlier releases and other sources.
   */
  timeWritten?: string;
  /**
   * With a timeWritten without offset: the offset of the message's other times it was read in
   * (+/-ZZZZ, normalize-lis.ts messageZone); absent when it has its own or the message names none.
   */
  timeZone?: string;
}

/** One tube of an order (OrderCreatedData.specimens). */
export interface OrderSpecimen {
  /** The tube's barcode: HL7 SPM-2 (placer id, else filler id). */
  specimenId: string;
  /** Canonical codes of the tests the LIS ordered on this tube (OBR-4.1 of the lines naming it). */
  tests: string[];
}

export interface OrderCancelledData {
  accession: string;
  /** The tests cancelled; empty means the whole order. */
  tests: OrderedTest[];
  reason?: string;
  /**
   * The event's occurredAt as the LIS wrote it (HL7 DTM, trimmed: hl7/normalize-lis.ts), for billing
   * to compare two messages' times as written (hl7-time.ts compareHl7Time). Added in schema 1
   * without a version change; absent on events of earlier releases and other sources.
   */
  timeWritten?: string;
  /**
   * With a timeWritten without offset: the offset of the message's other times it was read in
   * (+/-ZZZZ, normalize-lis.ts messageZone); absent when it has its own or the message names none.
   */
  timeZone?: string;
}

export interface SpecimenReceivedData {
  accession?: string;
  specimenId: string;
  specimenType?: string;
  collectedAt?: string;
  receivedAt?: string;
}

export interface TestInProgressData {
  accession: string;
  specimenId?: string;
  testCode: string;
}

export interface TestCompletedData {
  accession?: string;
  specimenId: string;
  testCode: string;
  /** The analyzer's own code before profile mapping. */
  analyzerTestCode?: string;
  loinc?: string;
  value?: string;
  units?: string;
  abnormalFlags?: string;
  /** Result status as sent: ASTM R.9 / HL7 OBX-11 (P, R, C, F…). */
  resultStatus?: string;
  runType: RunType;
  completedAt?: string;
}

export interface ResultValidatedData {
  accession: string;
  specimenId?: string;
  testCode: string;
  value?: string;
  units?: string;
  validatedAt?: string;
  /**
   * The event's occurredAt as the LIS wrote it (HL7 DTM, trimmed: hl7/normalize-lis.ts), for billing
   * to compare two messages' times as written (hl7-time.ts compareHl7Time). Added in schema 1
   * without a version change; absent on events of earlier releases and other sources.
   */
  timeWritten?: string;
  /**
   * With a timeWritten without offset: the offset of the message's other times it was read in
   * (+/-ZZZZ, normalize-lis.ts messageZone); absent when it has its own or the message names none.
   */
  timeZone?: string;
  /**
   * The field the LIS normalizer took occurredAt from: OBR-22 (the report time), OBR-7 (the
   * specimen's collection time, when OBR-22 is empty) or OBX (the latest OBX-19 / OBX-14 of the
   * final observations). Billing tells a result reported before a re-order by it
   * (events/invoice-eligibility.ts `resultNotCounted`). Added in schema 1 without a version change;
   * absent on events of earlier releases, of other sources and timed by MSH-7.
   */
  timeFrom?: 'OBR-22' | 'OBR-7' | 'OBX';
}

export interface ConsumableUsedData {
  analyzer: string;
  /** Odoo product `default_code` of the reagent or consumable. */
  productCode: string;
  quantity: number;
  uom: string;
  /** The lot when the analyzer reported it; otherwise the relay picks one FEFO. */
  reagentLot?: string;
  runType: RunType;
  testCode?: string;
  specimenId?: string;
  runAt: string;
}

export interface StockThresholdBreachedData {
  productCode: string;
  /** Estimated on-hand quantity (Odoo's figure minus consumption not yet posted). */
  estimatedOnHand: number;
  reorderPoint: number;
  /** Quantity to order (reorder max minus the forecast, estimate + incoming; at least the minimum). */
  suggestedQuantity: number;
  uom?: string;
  /** Goods on their way counted in the forecast (confirmed purchase orders not received yet); absent when none. */
  incoming?: number;
}

export interface InvoiceEligibleData {
  accession: string;
  orderingClientRef?: string;
  tests: OrderedTest[];
}

export interface EventDataMap {
  'order.created': OrderCreatedData;
  'order.cancelled': OrderCancelledData;
  'specimen.received': SpecimenReceivedData;
  'test.in_progress': TestInProgressData;
  'test.completed': TestCompletedData;
  'result.validated': ResultValidatedData;
  'consumable.used': ConsumableUsedData;
  'stock.threshold_breached': StockThresholdBreachedData;
  'invoice.eligible': InvoiceEligibleData;
}

interface EventBase<T extends EventType> {
  /** Time-ordered id (see ids.ts). */
  id: string;
  schemaVersion: typeof EVENT_SCHEMA_VERSION;
  type: T;
  /** When the fact happened at the source (ISO 8601). */
  occurredAt: string;
  /** When the gateway received the message (ISO 8601). */
  receivedAt: string;
  /** Deterministic from the source; the same message yields the same keys. */
  idempotencyKey: string;
  /** The order/accession tying LIS, analyzer and Odoo records together. */
  correlationId: string;
  /** FIFO scope for delivery (an order, a specimen, a reagent product). */
  partitionKey: string;
  source: EventSource;
  data: EventDataMap[T];
}

export type CanonicalEvent = { [T in EventType]: EventBase<T> }[EventType];
export type EventOf<T extends EventType> = Extract<CanonicalEvent, { type: T }>;

/** An event before the store assigns `id` and `source.messageId`. */
export type DraftEvent = { [T in EventType]: Omit<EventBase<T>, 'id' | 'schemaVersion' | 'source'> & { source: Omit<EventSource, 'messageId'> } }[EventType];

export function isEventType(value: string): value is EventType {
  return (EventTypes as readonly string[]).includes(value);
}
