import { partitionKeys } from '../events/keys.ts';
import type { DraftEvent } from '../events/types.ts';

/**
 * Accession namespaces for a lab with more than one LIS (`hl7[].accessionPrefix`, README.md "Two
 * LIS systems"): a hospital LIS and an outreach LIS each number their own orders, so both send
 * "12345" for two patients. The gateway ties everything of an order together by its accession
 * (correlation id, queue partition `order:<accession>`, the sale order's `client_order_ref`,
 * origin and external id `so_<accession>`, billing), so two orders of one number were one order:
 * merged, billed to one clinic, cancelled by the other system.
 *
 * A LIS link with `accessionPrefix: OUT` has its orders and results keyed `OUT-12345` instead,
 * applied to the normalized events before the commit (a pure function: the same message always
 * yields the same events, so a resend is still a resend). A link without a prefix keeps the bare
 * accession, so the first (or only) LIS of an existing site keeps its keys. The tube barcode
 * (`specimenId`) stays as printed: an order without SPM takes the bare accession as its tube, the
 * label the LIS printed, and an analyzer that reads `12345` finds `OUT-12345` through the barcode
 * look-up (astm/host-query.ts `orderEventsForSpecimen` tries every configured prefix). A barcode
 * both LIS systems printed is ambiguous: the analyzer gets "no order" and the lab an alert.
 */

/** `OUT` + `12345` → `OUT-12345`: the accession of a prefixed LIS link's order everywhere in the gateway and in Odoo. */
export function namespacedAccession(prefix: string, accession: string): string {
  return `${prefix}-${accession}`;
}

/** What a LIS link's normalized message is before its commit (hl7-intake's ResolvableEvents). */
export interface NamespacedEvents {
  events: DraftEvent[];
  searchTerms: string[];
  warnings: string[];
}

/**
 * The message's events with `prefix` on every accession they carry: `data.accession`, and the
 * `correlationId` and partition (`order:` / `specimen:`) keyed by it. Events correlated by a tube
 * alone (no accession) keep their keys; `specimenId` is never changed, and an `order.created`
 * without a tube gets the bare accession as its tube (the label as printed). The message's
 * search terms gain each prefixed accession, so the message browser finds `OUT-12345` too.
 * Idempotency keys are untouched (they are made of the endpoint and control id already).
 */
export function applyAccessionPrefix<R extends NamespacedEvents>(result: R, prefix: string): R {
  if (!prefix) return result;
  const terms = new Set(result.searchTerms);
  const events = result.events.map((e) => {
    const data = e.data as { accession?: string; specimenId?: string };
    const bare = data.accession;
    if (!bare) return e;
    const accession = namespacedAccession(prefix, bare);
    terms.add(accession);
    const keyed = e.correlationId === bare;
    const partitionKey = !keyed ? e.partitionKey : e.partitionKey === partitionKeys.order(bare) ? partitionKeys.order(accession) : e.partitionKey === partitionKeys.specimen(bare) ? partitionKeys.specimen(accession) : e.partitionKey;
    const tube = e.type === 'order.created' && data.specimenId === undefined ? { specimenId: bare } : {};
    return { ...e, ...(keyed ? { correlationId: accession, partitionKey } : {}), data: { ...e.data, accession, ...tube } } as DraftEvent;
  });
  return { ...result, events, searchTerms: [...terms] };
}
