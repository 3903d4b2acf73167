import { describeError } from '../errors.ts';
import { partitionKeys } from '../events/keys.ts';
import type { DraftEvent, OrderCreatedData } from '../events/types.ts';
import type { StoredEvent } from '../store/types.ts';
import { orderEventsForSpecimen, type OrderLookupStore } from './host-query.ts';
import type { NormalizeResult } from './types.ts';

/**
 * The accession behind an analyzer's specimen id, resolved before the message's events are
 * committed. normalizeAstmMessage takes the specimen id as the accession of a patient run (the lab
 * labels its tubes with the accession). An analyzer that reads the tube's barcode — the LIS's
 * specimen id (SPM-2, `order.created.specimenId`), the id the order was downloaded under — names
 * a specimen no sale order is known by: its chatter notes were retried against that id and
 * dead-lettered ("accession BC-555 has no Odoo sale order").
 *
 * The same look-up as the host query (`orderEventsForSpecimen`): when the store knows no order of
 * that accession but orders whose specimen id it is, the run's events take the order's accession
 * as `correlationId` (and `data.accession`, partition `order:<accession>` for `test.completed` and
 * `specimen.received`, so they follow the order's events in its partition); `consumable.used`
 * takes it as `correlationId`. Idempotency keys stay on the specimen id: a resend after the order
 * arrived yields the same keys. Of several orders on one tube, a test goes to the newest that
 * ordered it, anything else to the newest. Only patient and rerun runs: QC and calibration belong
 * to no order. A specimen no order is known for (yet) is left as it is, and so is every event when
 * the look-up fails (a warning; the commit decides whether the message is taken).
 */
export async function resolveAccessions<R extends Pick<NormalizeResult, 'events' | 'searchTerms' | 'warnings'>>(result: R, store: OrderLookupStore): Promise<R> {
  const specimens = new Set<string>();
  for (const e of result.events) {
    const specimen = billableSpecimen(e);
    if (specimen !== undefined) specimens.add(specimen);
  }
  if (specimens.size === 0) return result;
  const orders = new Map<string, Array<{ accession: string; tests: Set<string> }>>();
  const warnings: string[] = [];
  await Promise.all(
    [...specimens].map(async (specimenId) => {
      try {
        const found = await orderEventsForSpecimen(store, specimenId);
        // The specimen id is an accession itself (the usual labelling): nothing to resolve.
        if (found.length === 0 || found.some((e) => e.event.correlationId === specimenId)) return;
        orders.set(specimenId, ordersOf(found));
      } catch (err) {
        warnings.push(`specimen ${specimenId}: its order could not be looked up (${describeError(err)}); the specimen id is taken as the accession`);
      }
    }),
  );
  if (orders.size === 0 && warnings.length === 0) return result;
  const terms = new Set(result.searchTerms);
  const events = result.events.map((e) => {
    const specimen = billableSpecimen(e);
    const candidates = specimen === undefined ? undefined : orders.get(specimen);
    if (!candidates) return e;
    const test = e.type === 'test.completed' || e.type === 'consumable.used' ? e.data.testCode : undefined;
    const accession = (candidates.findLast((o) => test !== undefined && o.tests.has(test)) ?? candidates[candidates.length - 1]!).accession;
    terms.add(accession);
    return withAccession(e, accession);
  });
  return { ...result, events, searchTerms: [...terms], warnings: [...result.warnings, ...warnings] };
}

/** The specimen id a patient/rerun run's event is correlated by, when it is its accession too. */
function billableSpecimen(e: DraftEvent): string | undefined {
  switch (e.type) {
    case 'test.completed':
    case 'specimen.received':
      return e.data.accession !== undefined && e.data.accession === e.correlationId ? e.correlationId : undefined;
    case 'consumable.used':
      return (e.data.runType === 'patient' || e.data.runType === 'rerun') && e.data.specimenId === e.correlationId ? e.correlationId : undefined;
    default:
      return undefined;
  }
}

function withAccession(e: DraftEvent, accession: string): DraftEvent {
  switch (e.type) {
    case 'test.completed':
      return { ...e, correlationId: accession, partitionKey: partitionKeys.order(accession), data: { ...e.data, accession } };
    case 'specimen.received':
      return { ...e, correlationId: accession, partitionKey: partitionKeys.order(accession), data: { ...e.data, accession } };
    case 'consumable.used':
      return { ...e, correlationId: accession };
    default:
      return e;
  }
}

/** The accessions of the found order.created events, oldest first, with the tests each ordered. */
function ordersOf(found: StoredEvent[]): Array<{ accession: string; tests: Set<string> }> {
  const out: Array<{ accession: string; tests: Set<string> }> = [];
  for (const e of found) {
    if (e.event.type !== 'order.created') continue;
    const data: OrderCreatedData = e.event.data;
    const accession = e.event.correlationId;
    const held = out.find((o) => o.accession === accession);
    const at = held ?? { accession, tests: new Set<string>() };
    for (const t of data.tests) at.tests.add(t.code);
    // Kept in the order of its newest order message.
    if (held) out.splice(out.indexOf(held), 1);
    out.push(at);
  }
  return out;
}
