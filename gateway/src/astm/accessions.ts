import { describeError } from '../errors.ts';
import { partitionKeys } from '../events/keys.ts';
import type { DraftEvent, OrderCreatedData } from '../events/types.ts';
import { keyFinalsApartFromEarlierReports } from '../events/earlier-reports.ts';
import type { GatewayStore, StoredEvent } from '../store/types.ts';
import { type ConsumptionKeyStore, keepConsumptionKeysOfEarlierReleases } from '../profiles/consumption-keys.ts';
import { type CalibrationKeyStore, keepCalibrationKeysOfEarlierReleases } from './calibration-keys.ts';
import { accessionCaseMarks } from '../hl7/accession-case.ts';
import { barcodeOrders, tubeOrders, type OrderLookupOptions, type OrderLookupStore } from './host-query.ts';
import type { NormalizeResult } from './types.ts';

/**
 * How long the look-ups of one message may take (ms) before its commit, and so before its
 * acknowledgement. A look-up is a few store reads (milliseconds, bench/results/astm.json
 * `diagnostics.accessionResolution`), but the message index it reads (host-query.ts
 * `orderEventsForSpecimen`) may hold up to 5000 messages naming the barcode: a tube id the
 * analyzer reuses (a sample number) on a slow disk, or a store busy writing. An ASTM sender gives
 * the receiver 15 s to answer the frame that ends a message (LIS1-A §6.5.2), after which the link
 * NAKs, the analyzer retransmits and the same look-up starts again; an HL7 analyzer waits its own
 * ACK timeout. 3 s leaves the commit (fsync) most of that time. Past it the look-up is stopped and
 * its specimen keeps its id as the accession, with a warning: the result is taken, as for a tube
 * whose order is not known yet, rather than refused or acknowledged late.
 */
export const ACCESSION_LOOKUP_BUDGET_MS = 3_000;

export interface ResolveOptions extends OrderLookupOptions {
  /** Time allowed for the look-ups of one message (ms); default ACCESSION_LOOKUP_BUDGET_MS. */
  budgetMs?: number;
}

/**
 * The accession behind an analyzer's specimen id, resolved before the message's events are
 * committed. normalizeAstmMessage takes the specimen id as the accession of a patient run (the lab
 * labels its tubes with the accession). An analyzer that reads the tube's barcode — the LIS's
 * specimen id (SPM-2, `order.created.specimenId`, or any tube of `order.created.specimens` for an
 * order of several tubes), the id the order was downloaded under — names
 * a specimen no sale order is known by: its chatter notes were retried against that id and
 * dead-lettered ("accession BC-555 has no Odoo sale order").
 *
 * The same look-up as the host query (`orderEventsForSpecimen`): when the store knows orders whose
 * specimen id it is, besides (or instead of) the order of that accession, the run's events take
 * an order's accession as `correlationId` (and `data.accession`, partition `order:<accession>`
 * for `test.completed` and `specimen.received`, so they follow the order's events in its
 * partition); `consumable.used` takes it as `correlationId`. Idempotency keys stay on the specimen id: a resend after the order
 * arrived yields the same keys. Of several orders on one tube, a test goes to the newest that
 * ordered it, anything else (the tube's receipt, a test none ordered) to the order whose accession
 * the barcode is, else to the newest. That includes an add-on the LIS placed as a new order on a
 * tube labelled with the first order's accession (ACC-B on tube ACC-A): before, every result of
 * such a tube went on ACC-A, the add-on's too (test/integration/host-query-add-on-audit.test.ts).
 * Only patient and rerun runs: QC and calibration belong to no order. A specimen no order is known for (yet) is left as it is, and so is every event when
 * the look-up fails (a warning; the commit decides whether the message is taken). A specimen
 * whose orders come from two LIS links or name two patients (host-query.ts `orderCollision`: a
 * barcode two LIS systems both printed) is attached to none of them: its milestones lose their
 * accession, a warning, and `options.onCollision` is told. Unless an order carries the barcode's
 * number and only orders naming the tube collide with it (host-query.ts `tubeOrders`): that order
 * keeps the run, and only a test the other orders alone asked for is attached to none
 * (test/integration/host-query-own-order-audit.test.ts). `options.namespaces` (the LIS links' accession prefixes) lets the barcode `12345` find
 * the order `OUT-12345`.
 *
 * The look-ups of the message's specimens run side by side, all within one budget
 * (`options.budgetMs`, ACCESSION_LOOKUP_BUDGET_MS): a specimen whose look-up has not finished by
 * then is left as it is (a warning), and its look-up stops at its next store read instead of
 * reading on unobserved.
 */
export async function resolveAccessions<R extends Pick<NormalizeResult, 'events' | 'searchTerms' | 'warnings'>>(result: R, store: OrderLookupStore, options: ResolveOptions = {}): Promise<R> {
  const specimens = new Set<string>();
  for (const e of result.events) {
    const specimen = billableSpecimen(e);
    if (specimen !== undefined) specimens.add(specimen);
  }
  if (specimens.size === 0) return result;
  const orders = new Map<string, Array<{ accession: string; tests: Set<string> }>>();
  /** Barcodes whose orders collide (two LIS links or patients): their runs are attached to no order. */
  const collided = new Set<string>();
  /**
   * Per barcode that kept its own order through a collision, the tests only the orders set apart
   * asked for: those results are attached to no order.
   */
  const setApartTests = new Map<string, Set<string>>();
  const warnings: string[] = [];
  /** Per barcode resolved, the barcode its orders were found under: as sent, or its upper case. */
  const foundUnder = new Map<string, string>();
  const budgetMs = options.budgetMs ?? ACCESSION_LOOKUP_BUDGET_MS;
  const budget = lookupBudget(store, budgetMs);
  // The LIS links numbering by case: those of the store itself (the budget's reads go through a
  // wrapper of it, which keeps no marks).
  const marks = accessionCaseMarks(store);
  try {
    await Promise.all(
      [...specimens].map(async (specimenId) => {
        const stopped = `specimen ${specimenId}: its order look-up was stopped after ${budgetMs} ms (a slow store, or many messages naming it); the specimen id is taken as the accession`;
        try {
          const looked = await budget.within(barcodeOrders(budget.store, specimenId, options, marks));
          if (looked === OVER_BUDGET) {
            warnings.push(stopped);
            return;
          }
          const { barcode, found, caseCollision } = looked;
          // Orders under the barcode's upper case and under its lower case, neither as sent (Ab12:
          // AB12 and ab12): attached to none, as a collision (host-query.ts barcodeOrders).
          if (caseCollision) {
            options.onCollision?.(caseCollision);
            collided.add(specimenId);
            warnings.push(`specimen ${specimenId}: orders ${caseCollision.accessions.join(', ')} from ${caseCollision.endpoints.join(', ')} differ from this barcode only by case, and none is it as sent; the run is attached to none of them (no accession, partition specimen:${specimenId})`);
            return;
          }
          // Orders of two LIS links (or two patients) under one barcode: the run is attached to
          // none of them (the specimen id stays its accession), and the lab is told; unless an
          // order carries the barcode's number, which keeps its own tests (tubeOrders).
          const { orders: mine, setApart, collision } = tubeOrders(specimenId, found, options, barcode);
          if (collision) {
            options.onCollision?.(collision);
            if (mine.length === 0) {
              collided.add(specimenId);
              warnings.push(`specimen ${specimenId}: orders ${collision.accessions.join(', ')} from ${collision.endpoints.join(', ')} share this barcode; the run is attached to none of them (no accession, partition specimen:${specimenId})`);
              return;
            }
            const kept = ordersOf(mine, barcode);
            const own = new Set(kept.flatMap((o) => [...o.tests]));
            const apart = new Set(ordersOf(setApart, barcode).flatMap((o) => [...o.tests].filter((t) => !own.has(t))));
            setApartTests.set(specimenId, apart);
            warnings.push(`specimen ${specimenId}: orders ${collision.accessions.join(', ')} from ${collision.endpoints.join(', ')} share this barcode; ${(collision.kept ?? []).join(', ')} keeps the run${apart.size > 0 ? `, but ${[...apart].join(', ')}, ordered only by the others, is attached to none of them` : ''}`);
            orders.set(specimenId, kept);
            foundUnder.set(specimenId, barcode);
            return;
          }
          // The specimen id is an accession itself (the usual labelling), and no other order names
          // the tube: nothing to resolve.
          if (mine.every((e) => e.event.correlationId === specimenId)) return;
          orders.set(specimenId, ordersOf(mine, barcode));
          foundUnder.set(specimenId, barcode);
        } catch (err) {
          warnings.push(err instanceof LookupStopped ? stopped : `specimen ${specimenId}: its order could not be looked up (${describeError(err)}); the specimen id is taken as the accession`);
        }
      }),
    );
  } finally {
    budget.end();
  }
  if (orders.size === 0 && warnings.length === 0) return result;
  const terms = new Set(result.searchTerms);
  const events = result.events.map((e) => {
    const specimen = billableSpecimen(e);
    if (specimen !== undefined && collided.has(specimen)) return detached(e);
    const test = e.type === 'test.completed' || e.type === 'consumable.used' ? e.data.testCode : undefined;
    if (specimen !== undefined && test !== undefined && setApartTests.get(specimen)?.has(test)) return detached(e);
    const candidates = specimen === undefined ? undefined : orders.get(specimen);
    if (specimen === undefined || !candidates) return e;
    // The tube's own order (its barcode, or the upper case it was found under, is that accession)
    // takes what no order asked for by test.
    const barcode = foundUnder.get(specimen) ?? specimen;
    const fallback = candidates.find((o) => o.accession === barcode) ?? candidates[candidates.length - 1]!;
    const accession = (candidates.findLast((o) => test !== undefined && o.tests.has(test)) ?? fallback).accession;
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

/**
 * A run on a tube whose orders collide, attached to none of them: its milestones lose the
 * accession (the relay notes nothing on either sale order) and take the specimen's partition;
 * consumption keeps the tube as its correlation (stock, not the order).
 */
function detached(e: DraftEvent): DraftEvent {
  switch (e.type) {
    case 'test.completed': {
      const { accession: _accession, ...data } = e.data;
      return { ...e, partitionKey: partitionKeys.specimen(e.correlationId), data };
    }
    case 'specimen.received': {
      const { accession: _accession, ...data } = e.data;
      return { ...e, partitionKey: partitionKeys.specimen(e.correlationId), data };
    }
    default:
      return e;
  }
}

/**
 * The accessions of the found order.created events, oldest first, with the tests each ordered on
 * the tube `specimenId`: for an order of several tubes (`data.specimens`) the tests of that tube
 * and those on no named tube, else every test of the order. `specimenId` is the barcode the orders
 * were found under (host-query.ts barcodeOrders: as sent, or its upper case), compared byte for
 * byte: before, tubes `tb9` and `TB9` of one order were one tube, each taking both tubes' results
 * (test/integration/review-s23-astm-query-case-distinct.test.ts).
 */
function ordersOf(found: StoredEvent[], specimenId: string): Array<{ accession: string; tests: Set<string> }> {
  const out: Array<{ accession: string; tests: Set<string> }> = [];
  for (const e of found) {
    if (e.event.type !== 'order.created') continue;
    const data: OrderCreatedData = e.event.data;
    const accession = e.event.correlationId;
    const held = out.find((o) => o.accession === accession);
    const at = held ?? { accession, tests: new Set<string>() };
    const tube = data.specimens?.find((s) => s.specimenId === specimenId);
    const onSomeTube = new Set(data.specimens?.flatMap((s) => s.tests));
    for (const t of data.tests) if (!tube || tube.tests.includes(t.code) || !onSomeTube.has(t.code)) at.tests.add(t.code);
    // Kept in the order of its newest order message.
    if (held) out.splice(out.indexOf(held), 1);
    out.push(at);
  }
  return out;
}

/** What `within` gives when the budget ran out first. */
const OVER_BUDGET = Symbol('over budget');

/** A store read asked for after the budget ran out: ends the look-up (caught in resolveAccessions, never thrown further). */
class LookupStopped extends Error {}

/**
 * The budget of one message's look-ups: `store` reads through to the real store until the budget
 * runs out, then refuses (LookupStopped), so that a look-up given up stops at its next read;
 * `within(p)` is `p`, or OVER_BUDGET once the budget ran out first (a read already under way is
 * not waited for). `end()` clears the timer.
 */
function lookupBudget(store: OrderLookupStore, budgetMs: number): { store: OrderLookupStore; within<T>(p: Promise<T>): Promise<T | typeof OVER_BUDGET>; end(): void } {
  let over = false;
  let timer: NodeJS.Timeout | undefined;
  const ranOut = new Promise<typeof OVER_BUDGET>((resolve) => {
    timer = setTimeout(() => {
      over = true;
      resolve(OVER_BUDGET);
    }, budgetMs);
    timer.unref();
  });
  /** `read`, unless the budget ran out. */
  const open = <T>(read: () => Promise<T>): Promise<T> => (over ? Promise.reject(new LookupStopped('over budget')) : read());
  return {
    store: {
      eventsByCorrelation: (id, types) => open(() => store.eventsByCorrelation(id, types)),
      listMessages: (query) => open(() => store.listMessages(query)),
      getEvent: (id) => open(() => store.getEvent(id)),
    },
    within: <T>(p: Promise<T>) => {
      // The look-up left behind settles on its own (its next read refuses); nobody awaits it then.
      p.catch(() => undefined);
      return Promise.race([p, ranOut]);
    },
    end: () => clearTimeout(timer),
  };
}

/**
 * What an analyzer endpoint (ASTM or HL7) does to a normalized message before its commit, and so
 * before its acknowledgement: the tube's barcode resolved to its order's accession, then a final
 * result keyed apart from a preliminary an earlier release stored under its key
 * (events/earlier-reports.ts), an undated calibration an earlier release stored at another
 * place keeps the keys it was stored under (calibration-keys.ts), and so does a draw an earlier
 * release keyed by its row's index in the consumption table, while the store may hold such keys
 * (profiles/consumption-keys.ts). The LIS endpoint does none.
 */
export async function resolveAnalyzerResult<R extends Pick<NormalizeResult, 'events' | 'searchTerms' | 'warnings' | 'earlierCalibrationKeys'>>(
  result: R,
  store: OrderLookupStore & CalibrationKeyStore & ConsumptionKeyStore,
  options: ResolveOptions = {},
): Promise<R> {
  return keepConsumptionKeysOfEarlierReleases(await keepCalibrationKeysOfEarlierReleases(await keyFinalsApartFromEarlierReports(await resolveAccessions(result, store, options), store), store), store);
}
