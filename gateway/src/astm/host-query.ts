import type { OrderCreatedData, OrderedTest } from '../events/types.ts';
import { accessionCaseMarks, type AccessionCaseMarks } from '../hl7/accession-case.ts';
import { namespacedAccession } from '../hl7/accession-namespace.ts';
import { isStat, type HostQueryAnswer } from '../hl7/host-query.ts';
import type { Profile } from '../profiles/types.ts';
import type { GatewayStore, StoredEvent, StoredMessage } from '../store/types.ts';
import { type AstmDelimiters, DEFAULT_DELIMITERS, parseDelimiterString } from './delimiters.ts';
import { type FieldValue, astmTimestamp, buildHeader, buildRecord } from './records.ts';
import type { HostQuery, HostQueryRequest, QueriedSpecimen } from './types.ts';

/**
 * Host query (download on demand), LIS2-A2 §11 and protocols.md §2.4: the analyzer scans a
 * barcode and sends `H … Q|1|^<specimen>||ALL||||||||O  L`; the gateway answers in a separate
 * session (the link layer's own ENQ … EOT) with H, P, O…, L built here.
 *
 * Several Q records in one message (an analyzer that scans a rack asks for every tube at once:
 * `Q|1|…`, `Q|2|…`, …) are answered together, in one reply: H, then the P/O groups of every
 * queried specimen in the order of the Q records, then one L (the standard's Fig. 6 answers a
 * range with several P/O groups in one reply the same way). Before, only the first Q was answered
 * and the rest of the rack waited for its timeout and ran without orders.
 *
 * Where orders come from: `order.created` events committed from the LIS. Their correlationId is
 * the accession, so the first look-up is `store.eventsByCorrelation(specimenId, ['order.created'])`
 * (the analyzer's barcode is the accession in most labs). When that finds nothing, the message
 * index is searched (`store.listMessages({ q: specimenId })`, page by page: the HL7 intake
 * indexes specimen ids as search terms) and order.created events naming the barcode as a tube
 * (`data.specimenId`, or any of `data.specimens`) are used; a tube of an order of several tubes is
 * answered with the tests ordered on it (ordersForSpecimen). A range query (Q.3 to Q.4) also
 * answers the accessions between its ends (`store.correlationsInRange`). Tests cancelled by a later `order.cancelled` of the same accession are left out; a
 * cancellation without tests cancels the whole order.
 *
 * Unknown specimen: per profile `hostQuery.noOrderReply` — the LIS2-A2 answer `L|1|I` ("no
 * information available from last query", §12) by default, or an O record without tests and
 * O.26 = Y (no order for the specimen) / Z (no record of the patient; cobas e411 "Elecsys").
 * A cancel (Q.13 = A) gets no answer, and withdraws the request right before it in the same
 * message when it names the same tube ("cancel last request"); when nothing is left to answer the result is an empty array
 * and the endpoint sends nothing.
 *
 * A barcode whose orders come from two LIS links or name two patients (two LIS systems numbering
 * alike, `orderCollision`) is answered as an unknown specimen, and `lookup.onCollision` is told:
 * before, the orders were merged into one O record, and one patient's tube ran the other's tests.
 * Unless an order carries the barcode's number and only orders naming the tube collide with it
 * (`tubeOrders`): that order, with its add-ons of the same patient, is answered.
 */
export async function answerHostQuery(query: HostQuery, store: GatewayStore, profile: Profile, lookup: OrderLookupOptions = {}): Promise<string[]> {
  const requests = openRequests(query.requests ?? [query]);
  if (requests.length === 0) return [];
  const d = query.delimiters;
  const settings = profile.hostQuery;
  const header = replyHeader(query, profile, d);
  // Bulk requests (Q.3 = ALL) are not served: the gateway downloads worklists per specimen.
  const served = requests.filter((r) => !r.all && r.specimens.length > 0);
  if (served.length === 0) return [header, buildRecord('L', ['1', 'I'], d)];
  const records: string[] = [header];
  let patientSeq = 0;
  let found = 0;
  for (const { specimen, named, tests: requested } of await specimensToAnswer(served, store)) {
    const orders = await ordersForSpecimen(store, specimen.specimenId, lookup);
    const tests = analyzerTests(orders.flatMap((o) => o.tests), profile, requested);
    if (tests.length > 0) {
      for (const o of orders) {
        const answered = o.tests.filter((t) => analyzerTests([t], profile).some((code) => tests.includes(code)));
        if (answered.length > 0) lookup.onAnswered?.({ specimenId: specimen.specimenId, accession: o.accession, tests: answered });
      }
      found++;
      patientSeq++;
      const first = orders[0]!;
      records.push(buildRecord('P', [String(patientSeq), '', first.patientId ?? ''], d, profile.quirks.charset));
      records.push(
        orderRecord(profile, d, {
          specimen,
          tests,
          priority: orders.some((o) => isStat(o.priority)) ? 'S' : 'R',
          reportTypes: settings.reportTypes,
          requestedAt: first.orderedAt,
        }),
      );
    } else if (named && settings.noOrderReply !== 'terminator-I') {
      patientSeq++;
      records.push(buildRecord('P', [String(patientSeq)], d));
      records.push(orderRecord(profile, d, { specimen, tests: [], priority: 'R', reportTypes: [settings.noOrderReply === 'order-Y' ? 'Y' : 'Z'] }));
    }
  }
  // One L for the whole reply: the profile's code when any specimen of any Q got its orders; when
  // none did, "no information available" (I) — the reply is H, L|1|I for a `terminator-I` profile.
  if (found === 0 && settings.noOrderReply === 'terminator-I') return [header, buildRecord('L', ['1', 'I'], d)];
  records.push(buildRecord('L', ['1', found > 0 ? settings.terminationCode : settings.terminationCode === 'F' ? 'I' : settings.terminationCode], d));
  return records;
}

/**
 * The requests of a message still to answer: a cancel (Q.13 = A, "abort/cancel last request",
 * LIS2-A2 §11) is no request, and it withdraws the request right before it in the message when
 * that one names a tube the cancel names (cobas e411 cancels by sending the same Q again with A).
 * A cancel naming other tubes, or coming first, refers to a request of an earlier message: it
 * withdraws nothing here, so a rack's other tubes are never left unanswered by it.
 */
function openRequests(requests: HostQueryRequest[]): HostQueryRequest[] {
  const sameTube = (a: HostQueryRequest, b: HostQueryRequest): boolean => a.specimens.some((s) => b.specimens.some((t) => t.specimenId === s.specimenId));
  return requests.filter((r, i) => {
    if (r.cancel) return false;
    const next = requests[i + 1];
    return !(next?.cancel === true && sameTube(r, next));
  });
}

/**
 * At most this many specimens are answered in one reply, all Q records of the message together
 * (before several Q records were answered, the cap was 200 accessions between the ends of one
 * range). The specimens the Q records name come first: a range fills what is left of the cap, so a
 * wide range in Q 1 never crowds out the tubes Q 2… name. Specimens past the cap are left out of
 * the reply (no P/O, not "no order"): the analyzer may ask for them again.
 */
const MAX_REPLY_SPECIMENS = 200;

/** A specimen to answer: from which Q's specimen (echoed fields), named or found in a range, and the tests asked for. */
interface AskedSpecimen {
  specimen: QueriedSpecimen;
  /** Named in a Q.3/Q.4 (answered "no order" when it has none), not only found in a range. */
  named: boolean;
  tests: string[] | 'ALL';
}

/**
 * The specimens the requests ask for, each once, in the order of the requests: per request the
 * specimens named in Q.3/Q.4 and, for a range (Q.3 to Q.4, LIS2-A2 §11.1.3–4, Fig. 5/6), every
 * accession between the ends that has a stored order, in key order after the first end. Ends made
 * of digits of one width (tube barcodes) bound accessions of that width only (`0329893255` is not
 * between `032989325` and `032989327`). Without a store that reads ranges, only the named ends are
 * answered. A specimen asked for by several requests keeps the place of the first and the tests of
 * all (ALL when any asks for every test); the echoed instrument fields (cobas sequence, carrier,
 * position) are those of the first Q naming it. At most MAX_REPLY_SPECIMENS in all.
 */
async function specimensToAnswer(requests: HostQueryRequest[], store: GatewayStore): Promise<AskedSpecimen[]> {
  const namedIds = new Set(requests.flatMap((r) => r.specimens.map((s) => s.specimenId)));
  // Places left for accessions found only in a range.
  let rangeRoom = Math.max(0, MAX_REPLY_SPECIMENS - namedIds.size);
  const asked = new Map<string, AskedSpecimen>();
  const add = (specimen: QueriedSpecimen, named: boolean, tests: string[] | 'ALL'): void => {
    const seen = asked.get(specimen.specimenId);
    if (!seen) asked.set(specimen.specimenId, { specimen, named, tests: tests === 'ALL' ? 'ALL' : [...tests] });
    else {
      seen.named ||= named;
      seen.tests = seen.tests === 'ALL' || tests === 'ALL' ? 'ALL' : [...new Set([...seen.tests, ...tests])];
    }
  };
  for (const request of requests) {
    const named = request.specimens;
    const between: QueriedSpecimen[] = [];
    const range = request.range;
    if (range && store.correlationsInRange && rangeRoom > 0) {
      let lo = range.from.specimenId;
      let hi = range.to.specimenId;
      if (lo > hi) [lo, hi] = [hi, lo];
      const digits = /^[0-9]+$/;
      const fixedWidth = digits.test(lo) && digits.test(hi) && lo.length === hi.length;
      const ids = (await store.correlationsInRange(lo, hi, { types: ['order.created'], limit: rangeRoom + namedIds.size }))
        .filter((id) => !fixedWidth || (id.length === lo.length && digits.test(id)))
        .filter((id) => !named.some((n) => n.specimenId === id));
      for (const id of ids) {
        // A specimen named by a Q, or already answered, takes no place of the range's own.
        const free = namedIds.has(id) || asked.has(id);
        if (!free && rangeRoom === 0) continue;
        if (!free) rangeRoom--;
        between.push({ specimenId: id, components: [id] });
      }
    }
    const [first, ...rest] = named;
    if (first) add(first, true, request.tests);
    for (const s of between) add(s, false, request.tests);
    for (const s of rest) add(s, true, request.tests);
  }
  return [...asked.values()].slice(0, MAX_REPLY_SPECIMENS);
}

function replyHeader(query: HostQuery, profile: Profile, d: AstmDelimiters): string {
  const s = profile.hostQuery;
  // Reply as whom the analyzer addressed (its H.10), to the analyzer (its H.5).
  const sender = query.header.receiver.length > 0 && query.header.receiver.some((c) => c !== '') ? query.header.receiver : ['LIS'];
  const receiver = query.header.sender.filter((c, i) => i === 0 || c !== '');
  const comment: FieldValue = s.replyHeaderComment ? s.replyHeaderComment.split('^') : undefined;
  return buildHeader(['', '', sender, '', '', '', '', receiver.slice(0, 1), comment, query.header.processingId || 'P', s.replyVersion ?? query.header.version, astmTimestamp()], d, profile.quirks.charset);
}

interface OrderSpec {
  specimen: QueriedSpecimen;
  tests: string[];
  priority: string;
  reportTypes: string[];
  requestedAt?: string | undefined;
  /** O.2 sequence number (default 1). */
  seq?: number;
  /** O.12 action code (default the profile's `hostQuery.actionCode`). */
  actionCode?: string;
}

function universalTestId(code: string, profile: Profile): string[] {
  const layout = profile.fields.testId;
  const at = layout.orderCodeComponent ?? layout.codeComponent;
  const comps = new Array<string>(at).fill('');
  comps[at - 1] = code;
  return comps;
}

function isoToAstm(iso: string | undefined): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? '' : astmTimestamp(new Date(t));
}

function orderRecord(profile: Profile, d: AstmDelimiters, o: OrderSpec): string {
  const s = profile.hostQuery;
  const comps = o.specimen.components;
  const idAt = comps.indexOf(o.specimen.specimenId);
  // cobas e411: SequenceNo, CarrierNo, Position… must come back unchanged (Host manual p.50).
  const instrumentId: FieldValue = s.echoInstrumentSpecimenId && idAt >= 0 ? comps.slice(idAt + 1) : undefined;
  const fields: FieldValue[] = new Array<FieldValue>(25).fill(undefined);
  fields[0] = String(o.seq ?? 1); // O.2
  fields[1] = o.specimen.specimenId; // O.3
  fields[2] = instrumentId; // O.4
  fields[3] = o.tests.length > 0 ? o.tests.map((t) => universalTestId(t, profile)) : undefined; // O.5
  fields[4] = o.tests.length > 0 ? o.priority : undefined; // O.6
  fields[5] = o.tests.length > 0 ? isoToAstm(o.requestedAt) : undefined; // O.7
  fields[10] = o.tests.length > 0 ? (o.actionCode ?? s.actionCode) : undefined; // O.12
  fields[14] = o.tests.length > 0 ? s.specimenDescriptor : undefined; // O.16
  fields[24] = o.reportTypes.map((r) => [r]); // O.26
  return buildRecord('O', fields, d, profile.quirks.charset);
}

/** Canonical test codes → the analyzer's order codes (profile reverse map), restricted to Q.5. */
export function analyzerTests(tests: OrderedTest[], profile: Profile, requested: string[] | 'ALL' = 'ALL'): string[] {
  const reverse = new Map<string, string>();
  for (const [analyzerCode, m] of Object.entries(profile.tests)) {
    if (m.ignore || m.orderable === false) continue;
    if (!reverse.has(m.code)) reverse.set(m.code, analyzerCode.split('^')[0]!);
  }
  const out: string[] = [];
  for (const t of tests) {
    const code = reverse.get(t.code) ?? (profile.unmappedTests === 'pass-through' ? t.code : undefined);
    if (code === undefined || out.includes(code)) continue;
    if (requested !== 'ALL' && !requested.includes(code)) continue;
    out.push(code);
  }
  return out;
}

function live(e: StoredEvent): boolean {
  return e.state !== 'discarded';
}

/** Messages read per page, and at most in all, when a barcode is looked up in the message index. */
const ORDER_SEARCH_PAGE = 200;
const ORDER_SEARCH_MAX_MESSAGES = 5000;

/** The store's reads a specimen's orders are looked up with. */
export type OrderLookupStore = Pick<GatewayStore, 'eventsByCorrelation' | 'listMessages' | 'getEvent'>;

/** How a barcode is looked up across the LIS links' accession namespaces, and who hears of a collision. */
export interface OrderLookupOptions {
  /**
   * The `hl7[].accessionPrefix` of every LIS link that has one: the barcode `12345` is also the
   * order `OUT-12345` of the link with prefix OUT (hl7/accession-namespace.ts).
   */
  namespaces?: readonly string[];
  /**
   * Told when a barcode's orders cannot be told apart (orderCollision); the tube gets no order,
   * or only the one whose number it carries (tubeOrders, `collision.kept`).
   */
  onCollision?: (collision: OrderCollision) => void;
  /**
   * The ids of the LIS links (`hl7[]` entries without `analyzer`): only their messages are looked
   * into for orders naming a tube (orderEventsForSpecimen). Not given: every HL7 message.
   */
  lisEndpoints?: readonly string[];
  /**
   * Told, per order, the tests (canonical codes) a host query answer asks the analyzer to run on
   * the tube `specimenId`, once the answer is built (not sent yet: the gateway hands them to the
   * order download, `answeredByQuery`, only once the analyzer took the answer).
   */
  onAnswered?: (answered: { specimenId: string; accession: string; tests: OrderedTest[] }) => void;
}

/** Orders of one barcode that are not one lab order: from several LIS links, or for several patients. */
export interface OrderCollision {
  specimenId: string;
  /** The accessions (correlation ids) of the colliding orders, oldest first. */
  accessions: string[];
  /** The LIS links (hl7[] ids) they came from. */
  endpoints: string[];
  /** Whether they name different patients (PID-3); the ids themselves stay out of alerts. */
  differentPatients: boolean;
  /**
   * The orders that keep the tube (tubeOrders): those whose number the barcode carries, when only
   * orders naming it as their tube collide with them. Absent: no order keeps it.
   */
  kept?: string[];
  /**
   * Set when the orders are under the barcode's upper and lower case, none under it as sent
   * (barcodeOrders: `Ab12`, orders AB12 and ab12): they differ from the barcode by case, they do
   * not share it, and no accession prefix would tell them apart.
   */
  byCase?: true;
}

/**
 * Whether the `order.created` events found for a barcode are orders of different patients, or of
 * different LIS links for different ordering clients (two LIS systems numbering alike, both
 * printing "12345"; an accession reused for another patient). Their tests must not be merged into
 * one answer, nor a result attached to one of them: the tube is for a human to sort out. Orders of
 * one patient and one client are one lab order as before, whichever link brought them: add-ons,
 * several orders on one tube, and one LIS sending over two links (a primary and a backup, or a
 * second port) must not lose their tube's orders.
 */
function orderCollision(specimenId: string, created: readonly StoredEvent[]): OrderCollision | undefined {
  const endpoints = new Set(created.map((e) => e.event.source.endpoint));
  const patients = new Set(created.map((e) => (e.event.type === 'order.created' ? e.event.data.patientId : undefined)).filter((p): p is string => !!p));
  const clients = new Set(created.map((e) => (e.event.type === 'order.created' ? e.event.data.orderingClientRef : undefined)).filter((c): c is string => !!c));
  if (patients.size < 2 && (endpoints.size < 2 || clients.size < 2)) return undefined;
  return { specimenId, accessions: [...new Set(created.map((e) => e.event.correlationId))], endpoints: [...endpoints], differentPatients: patients.size > 1 };
}

/** The order numbers a barcode carries: the bare accession and, for each prefixed LIS link, its `<prefix>-<barcode>`. */
function barcodeNumbers(specimenId: string, lookup: Pick<OrderLookupOptions, 'namespaces'>): string[] {
  return [specimenId, ...(lookup.namespaces ?? []).map((p) => namespacedAccession(p, specimenId))];
}

/** The orders of one barcode the analyzer's tube goes with, and those set apart from it. */
export interface TubeOrders {
  /** The orders the tube goes with, oldest first (all of them when nothing collides). */
  orders: StoredEvent[];
  /** The orders left out, oldest first: the other side of a collision. */
  setApart: StoredEvent[];
  /** Set when the orders collided; the lab is told. */
  collision?: OrderCollision;
}

/**
 * The orders found for a barcode (orderEventsForSpecimen), split when they collide
 * (orderCollision). An order whose number the barcode carries (its accession, or
 * `<prefix>-<barcode>` of a prefixed LIS link) keeps the tube, with the orders naming the tube that
 * do not collide with it (an add-on of the same patient); those that do (another patient's order
 * naming ACC-A as its tube) are set apart. When no order carries the barcode's number, or those
 * that do collide among themselves (two LIS systems both numbering 12345), the tube goes with none.
 * Before, an order of another patient naming the tube took the tube from the order whose number
 * it carries: the host query answered "no order" and that order's results went on none
 * (test/integration/host-query-own-order-audit.test.ts). `barcode`: the barcode the orders were
 * found under (barcodeOrders `barcode`), the specimen id as sent when not given.
 */
export function tubeOrders(specimenId: string, created: readonly StoredEvent[], lookup: Pick<OrderLookupOptions, 'namespaces'> = {}, barcode = specimenId): TubeOrders {
  const collision = orderCollision(specimenId, created);
  if (!collision) return { orders: [...created], setApart: [] };
  // The numbers of the barcode the orders were found under (barcodeOrders): as the analyzer sent
  // it, or its upper case. Before, both, always: on a LIS numbering by case, AB12 (another
  // patient's) counted as the number of the tube ab12.
  const numbers = new Set(barcodeNumbers(barcode, lookup));
  const own = created.filter((e) => numbers.has(e.event.correlationId));
  if (own.length === 0 || orderCollision(specimenId, own)) return { orders: [], setApart: [...created], collision };
  const kept = [...own];
  const setApart: StoredEvent[] = [];
  for (const e of created) {
    if (numbers.has(e.event.correlationId)) continue;
    if (orderCollision(specimenId, [...kept, e])) setApart.push(e);
    else kept.push(e);
  }
  const keeps = new Set(kept);
  return { orders: created.filter((e) => keeps.has(e)), setApart, collision: { ...collision, kept: [...new Set(own.map((e) => e.event.correlationId))] } };
}

/**
 * Orders known for a specimen id: by accession first, then by the specimen id the LIS sent. For a
 * tube of an order of several tubes (`order.created.specimens`), the tests that tube is for: the
 * tests the LIS ordered on it, and those it named no tube for; a barcode that is the accession
 * itself gets every test. Of orders that collide (orderCollision) only those that keep the tube
 * count (tubeOrders: the order whose number the barcode carries, with its add-ons), often none,
 * and `lookup.onCollision` is told.
 */
export async function ordersForSpecimen(store: GatewayStore, specimenId: string, lookup: OrderLookupOptions = {}): Promise<OrderCreatedData[]> {
  return (await specimenOrders(store, specimenId, lookup)).orders;
}

/**
 * ordersForSpecimen, with the barcode the orders were found under (barcodeOrders: as sent, or its
 * upper case), which the tube's own facts (its sample type, hl7HostQueryAnswer) are compared with.
 */
async function specimenOrders(store: GatewayStore, specimenId: string, lookup: OrderLookupOptions): Promise<{ barcode: string; orders: OrderCreatedData[] }> {
  const { barcode, found, caseCollision } = await barcodeOrders(store, specimenId, lookup);
  if (caseCollision) lookup.onCollision?.(caseCollision);
  const { orders: created, collision } = tubeOrders(specimenId, found, lookup, barcode);
  if (collision) lookup.onCollision?.(collision);
  if (created.length === 0) return { barcode, orders: [] };
  const orders: OrderCreatedData[] = [];
  for (const accession of new Set(created.map((e) => e.event.correlationId))) {
    const events = (await store.eventsByCorrelation(accession, ['order.created', 'order.cancelled'])).filter(live);
    let current: OrderCreatedData | undefined;
    /** Test codes the LIS ordered on this tube, and on any tube of the order. */
    const onTube = new Set<string>();
    const onSomeTube = new Set<string>();
    for (const e of events) {
      if (e.event.type === 'order.created') {
        const data = e.event.data;
        current = current ? { ...current, ...data, tests: mergeTests(current.tests, data.tests) } : { ...data, tests: [...data.tests] };
        for (const s of data.specimens ?? []) {
          for (const code of s.tests) {
            onSomeTube.add(code);
            if (s.specimenId === barcode) onTube.add(code);
          }
        }
      } else if (e.event.type === 'order.cancelled' && current) {
        const cancelled = e.event.data.tests.map((t) => t.code);
        current = { ...current, tests: cancelled.length === 0 ? [] : current.tests.filter((t) => !cancelled.includes(t.code)) };
      }
    }
    if (current && accession !== barcode && onTube.size > 0) {
      current = { ...current, tests: current.tests.filter((t) => onTube.has(t.code) || !onSomeTube.has(t.code)) };
    }
    if (current && current.tests.length > 0) orders.push(current);
  }
  return { barcode, orders };
}

/** Whether an order names `specimenId` as one of its tubes (its first, or any of several). */
function orderNamesSpecimen(order: OrderCreatedData, specimenId: string): boolean {
  return order.specimenId === specimenId || (order.specimens?.some((s) => s.specimenId === specimenId) ?? false);
}

/** Whether a stored HL7 message may hold orders: an ORM or OML (an LIS's order message), or one whose type is unknown. */
function holdsOrders(m: StoredMessage): boolean {
  return m.messageType === undefined || /^(ORM|OML)(\^|$)/.test(m.messageType);
}

/**
 * The live `order.created` events of a specimen id, oldest first: those of the accession of that
 * name (and of `<prefix>-<name>` for every prefixed LIS link, `lookup.namespaces`), and those
 * naming it as a tube (SPM-2, the tube's barcode: `data.specimenId`, or any of `data.specimens`
 * for an order of several tubes), found through the message index (the HL7 intake indexes every
 * SPM-2 as a search term).
 *
 * When no accession is the barcode, the index is read until a page holds an order naming it (as
 * it always was). When one is, the index is read through too (a tube has a handful of messages;
 * at most ORDER_SEARCH_MAX_MESSAGES): an add-on the LIS placed as a new order on the same tube
 * (accession ACC-B, SPM-2 = ACC-A) is an order of that tube. Before, the look-up stopped at the
 * order whose accession is the barcode: the analyzer was never asked to run the add-on, and its
 * result went on the other order (test/integration/host-query-add-on-audit.test.ts).
 *
 * This runs before every analyzer ACK, so of the messages naming the tube only those that can
 * hold an order are looked into: HL7 messages of the LIS links (`lookup.lisEndpoints`; every HL7
 * message when not given), not an analyzer's own results, queries or cancels (ASTM or HL7), which
 * make up most of a reused sample number's messages. And of those, only the `order.created`
 * events are read, through the accessions the message names (its search terms: ORC-2/3, OBR-2/3,
 * prefixed as the link prefixes them), each accession's orders in one read; a message that names
 * none but the tube (an LIS numbering its orders in ORC-4 only, a message stored without its
 * terms) has its events read side by side when it is an order message (ORM, OML) none of whose
 * events was found already. Before, every event of every HL7 message naming the tube was read one
 * after the other, an analyzer's results too (test/integration/host-query-reads-audit.test.ts).
 */
export async function orderEventsForSpecimen(
  store: OrderLookupStore,
  specimenId: string,
  lookup: Pick<OrderLookupOptions, 'namespaces' | 'lisEndpoints' | 'onCollision'> = {},
  marks: AccessionCaseMarks = accessionCaseMarks(store),
): Promise<StoredEvent[]> {
  const { found, caseCollision } = await barcodeOrders(store, specimenId, lookup, marks);
  if (caseCollision) lookup.onCollision?.(caseCollision);
  return found;
}

/** The orders of a barcode (orderEventsForSpecimen), with the barcode they were found under. */
export interface BarcodeOrders {
  /** The barcode as the analyzer sent it, or its upper case when only that found orders. */
  barcode: string;
  /** The live `order.created` events, oldest first. */
  found: StoredEvent[];
  /**
   * Set when the barcode's case variants were ambiguous (no order found then): orders under its
   * upper case and under its lower case, neither of them the barcode as sent.
   */
  caseCollision?: OrderCollision;
}

/**
 * orderEventsForSpecimen, telling under which barcode the orders were found, and whether its case
 * variants collided (the caller tells `lookup.onCollision`). `marks`: the LIS links numbering by
 * case (hl7/accession-case.ts); the store's by default, which a caller reading through a wrapper
 * of the store (accessions.ts, its budget) gives itself.
 *
 * A barcode typed at the analyzer in lower case (`acc-lc-1` for ACC-LC-1): when nothing is known
 * under it as sent, its upper case (e56fcd0, test/integration/review-s22-astm-query-case.test.ts).
 * Only when no LIS link (`lookup.lisEndpoints`; every link marked when not given) has ever sent an
 * accession or tube id that upper case changes: such a LIS may number two patients' orders `ab12`
 * and `AB12`. Before, the fallback applied to every LIS: a query for `ab12` that came before
 * ab12's own order was answered with AB12's tests, the tube of one patient ran another's, and its
 * result went on AB12 (test/integration/review-s23-astm-query-case-distinct.test.ts). Any marked
 * link turns the fallback off for every barcode, not only for that link's orders: the barcode
 * `ab12` may be a pending order of the marked link while AB12 is an order of another link.
 *
 * And when orders are found under the upper case while orders are stored under the lower case
 * too, neither being the barcode as sent (`Ab12`: AB12 and ab12, orders an earlier release took
 * before the mark existed), none is chosen: no order, and `caseCollision` says so.
 */
export async function barcodeOrders(
  store: OrderLookupStore,
  specimenId: string,
  lookup: Pick<OrderLookupOptions, 'namespaces' | 'lisEndpoints'> = {},
  marks: AccessionCaseMarks = accessionCaseMarks(store),
): Promise<BarcodeOrders> {
  const found = await ordersNamingBarcode(store, specimenId, lookup);
  const upper = specimenId.toUpperCase();
  if (found.length > 0 || upper === specimenId) {
    // Orders under a barcode that upper case changes, found as sent: their LIS links number by
    // case (an order an earlier release took, before the marks existed, marks its link here).
    if (found.length > 0 && upper !== specimenId) marks.noteFound(specimenId, lisLinksOf(found, lookup));
    return { barcode: specimenId, found };
  }
  if (await marks.caseDistinct(lookup.lisEndpoints)) return { barcode: specimenId, found: [] };
  const underUpper = await ordersNamingBarcode(store, upper, lookup);
  if (underUpper.length === 0) return { barcode: specimenId, found: [] };
  const lower = specimenId.toLowerCase();
  const underLower = lower === specimenId ? [] : await ordersNamingBarcode(store, lower, lookup);
  if (underLower.length === 0) return { barcode: upper, found: underUpper };
  // Orders under the barcode's lower case (`ab12` for `Ab12`): their LIS links number by case, as
  // surely as when the barcode was sent so. Before, this look-up marked nothing, and a tube `cd34`
  // whose order had not come yet was answered with CD34's tests, another patient's
  // (test/integration/review-s23c-case-collision-mark.test.ts).
  marks.noteFound(lower, lisLinksOf(underLower, lookup));
  const both = [...underUpper, ...underLower].sort((a, b) => (a.event.id < b.event.id ? -1 : 1));
  const patients = new Set(both.map((e) => (e.event.type === 'order.created' ? e.event.data.patientId : undefined)).filter((p): p is string => !!p));
  return {
    barcode: specimenId,
    found: [],
    caseCollision: {
      specimenId,
      accessions: [...new Set(both.map((e) => e.event.correlationId))],
      endpoints: [...new Set(both.map((e) => e.event.source.endpoint))],
      differentPatients: patients.size > 1,
      byCase: true,
    },
  };
}

/** The LIS links (of `lookup.lisEndpoints`, when given) whose orders `found` holds. */
function lisLinksOf(found: readonly StoredEvent[], lookup: Pick<OrderLookupOptions, 'lisEndpoints'>): string[] {
  const links = new Set(found.map((e) => e.event.source.endpoint));
  return [...links].filter((l) => lookup.lisEndpoints === undefined || lookup.lisEndpoints.includes(l));
}

async function ordersNamingBarcode(store: OrderLookupStore, specimenId: string, lookup: Pick<OrderLookupOptions, 'namespaces' | 'lisEndpoints'>): Promise<StoredEvent[]> {
  const ids = barcodeNumbers(specimenId, lookup);
  const byAccession = (await Promise.all(ids.map((id) => store.eventsByCorrelation(id, ['order.created'])))).flat().filter(live);
  const created = [...byAccession];
  const seen = new Set(byAccession.map((e) => e.event.id));
  const take = (e: StoredEvent | undefined): void => {
    if (!e || seen.has(e.event.id)) return;
    seen.add(e.event.id);
    if (live(e) && e.event.type === 'order.created' && (orderNamesSpecimen(e.event.data, specimenId) || e.event.data.accession === specimenId)) created.push(e);
  };
  /** Correlation ids whose orders were read already. */
  const looked = new Set(ids);
  const lis = lookup.lisEndpoints === undefined ? undefined : new Set(lookup.lisEndpoints);
  // The message index, newest first, page by page: the analyzer's own traffic naming the
  // barcode (queries, cancels, results) is newer than the LIS order and may fill many pages.
  let before: string | undefined;
  for (let scanned = 0; scanned < ORDER_SEARCH_MAX_MESSAGES && (byAccession.length > 0 || created.length === 0); ) {
    const page = await store.listMessages(before === undefined ? { q: specimenId, limit: ORDER_SEARCH_PAGE } : { q: specimenId, limit: ORDER_SEARCH_PAGE, before });
    for (const m of page) {
      // Only an LIS link's HL7 message holds orders (the ASTM normalizer and an HL7 analyzer's
      // profile yield no order.created).
      if (m.kind !== 'hl7' || m.status !== 'accepted' || m.eventIds.length === 0 || (lis !== undefined && !lis.has(m.endpoint))) continue;
      const numbers = (m.searchTerms ?? []).filter((t) => t !== m.controlId && !t.startsWith('runType:'));
      if (numbers.every((t) => ids.includes(t))) {
        // It names no order number but the tube's: the tube's own order (found above), its
        // results or cancels, or an order numbered where the index does not look (ORC-4 only).
        // An order message none of whose events were found: its events, side by side.
        if (holdsOrders(m) && !m.eventIds.some((id) => seen.has(id))) (await Promise.all(m.eventIds.map((id) => store.getEvent(id)))).forEach(take);
        continue;
      }
      const fresh = numbers.filter((t) => !looked.has(t));
      for (const t of fresh) looked.add(t);
      for (const e of (await Promise.all(fresh.map((t) => store.eventsByCorrelation(t, ['order.created'])))).flat()) take(e);
    }
    scanned += page.length;
    if (page.length < ORDER_SEARCH_PAGE) break;
    before = page[page.length - 1]!.id;
  }
  if (created.length > 1) created.sort((a, b) => (a.event.id < b.event.id ? -1 : 1));
  return created;
}

/**
 * What an HL7 analyzer's host query (QRY^Q02 or a BC-5380 worklist inquiry, hl7/host-query.ts) is
 * answered with: the analyzer's test codes for the specimen's open orders (the same look-up and
 * mapping as the ASTM answer), the first order for its patient id, priority and time, the sample
 * type when the LIS sent one with the specimen (specimen.received), and the profile's worklist
 * run settings. Colliding orders (orderCollision) answer "no order", as for an unknown tube, unless
 * an order whose number the barcode carries keeps the tube (tubeOrders).
 */
export async function hl7HostQueryAnswer(specimenId: string, store: GatewayStore, profile: Profile, lookup: OrderLookupOptions = {}): Promise<HostQueryAnswer> {
  const { barcode, orders } = await specimenOrders(store, specimenId, lookup);
  const tests = analyzerTests(orders.flatMap((o) => o.tests), profile);
  if (tests.length === 0) return { tests: [] };
  const first = orders[0] as OrderCreatedData;
  const answer: HostQueryAnswer = { tests, order: { ...first, priority: orders.some((o) => isStat(o.priority)) ? 'S' : (first.priority ?? 'R') } };
  if (profile.hl7?.worklist) answer.worklist = profile.hl7.worklist;
  // The sample type of this tube when the LIS sent its receipt, else the order's last one. The tube
  // is the barcode its orders were found under: a tube typed `tu1` for the label TU1 (urine) had
  // the order's last receipt's type (serum), and the analyzer ran the urine as serum
  // (test/integration/review-s23b-case-fallback.test.ts).
  let ofTube: string | undefined;
  for (const e of (await store.eventsByCorrelation(first.accession, ['specimen.received'])).filter(live)) {
    if (e.event.type !== 'specimen.received' || !e.event.data.specimenType) continue;
    answer.specimenType = e.event.data.specimenType;
    if (e.event.data.specimenId === barcode) ofTube = e.event.data.specimenType;
  }
  if (ofTube) answer.specimenType = ofTube;
  return answer;
}

function mergeTests(a: OrderedTest[], b: OrderedTest[]): OrderedTest[] {
  const out = [...a];
  for (const t of b) if (!out.some((x) => x.code === t.code)) out.push(t);
  return out;
}

type DownloadOptions = { sender?: string; receiver?: string; now?: Date };

/** The profile's delimiters for a download the gateway starts (the defaults when they do not parse). */
function downloadDelimiters(profile: Profile): AstmDelimiters {
  const parsed = parseDelimiterString(profile.quirks.delimiters);
  return parsed.ok ? parsed.delimiters : DEFAULT_DELIMITERS;
}

/** The H record of a download the gateway starts (worklist, order download). */
function downloadHeader(profile: Profile, d: AstmDelimiters, options: DownloadOptions): string {
  return buildHeader(['', '', options.sender ?? 'LIS', '', '', '', '', options.receiver ?? '', '', 'P', profile.hostQuery.replyVersion ?? 'LIS2-A2', astmTimestamp(options.now)], d, profile.quirks.charset);
}

/**
 * An order download pushed without a query (worklist): H, then per order P and O, then L|1|N.
 * Orders whose tests the analyzer cannot run (no mapping in a mapped profile) are left out.
 */
export function buildWorklist(orders: OrderCreatedData[], profile: Profile, options: DownloadOptions = {}): string[] {
  const d = downloadDelimiters(profile);
  const records = [downloadHeader(profile, d, options)];
  let seq = 0;
  for (const order of orders) {
    const tests = analyzerTests(order.tests, profile);
    if (tests.length === 0) continue;
    seq++;
    records.push(buildRecord('P', [String(seq), '', order.patientId ?? ''], d, profile.quirks.charset));
    const specimenId = order.specimenId ?? order.accession;
    records.push(
      orderRecord(profile, d, {
        specimen: { specimenId, components: [specimenId] },
        tests,
        priority: isStat(order.priority) ? 'S' : 'R',
        reportTypes: ['O'],
        requestedAt: order.orderedAt,
      }),
    );
  }
  records.push(buildRecord('L', ['1', 'N'], d));
  return records;
}

/**
 * One order download message for one accession (order-download.ts): H, P, then O records with
 * the tests to run (`add`, O.12 = the profile's action code) and/or O records with the tests to
 * cancel (`cancel`, O.12 = C), then L|1|N. Tests are canonical codes, mapped like a worklist;
 * returns [] when neither list maps to a test the analyzer runs.
 *
 * Each test goes under its tube: `order.tubes` (canonical code → the barcode the LIS ordered it
 * on), else the order's specimen id, else the accession; one O record per tube, in the order the
 * tubes first come, adds before cancels. An order on one tube is one O record, as it always was.
 * Before, an order on several tubes (serum ALT, fluoride glucose) was downloaded under its first
 * tube: the analyzer ran glucose on the serum tube and knew no order for the fluoride tube
 * (test/integration/order-download-tubes-audit.test.ts).
 */
export function buildOrderDownload(
  order: Pick<OrderCreatedData, 'accession' | 'specimenId' | 'patientId' | 'priority' | 'orderedAt'> & {
    tubes?: Readonly<Record<string, string>> | undefined;
    /**
     * Tubes the analyzer holds tests of this order for already (downloaded before): tests added
     * to them go as O.12 = A, "add the requested tests to the existing specimen" (LIS2-A2 §8.4.12),
     * not as the profile's `N`, "new requests accompanying a new specimen".
     */
    onAnalyzer?: ReadonlySet<string> | undefined;
    /**
     * Other barcodes the analyzer holds a test under (order-download.ts `alsoUnder`): a cancel of
     * the test goes under each of them too.
     */
    alsoUnder?: Readonly<Record<string, readonly string[]>> | undefined;
  },
  tests: { add: OrderedTest[]; cancel: OrderedTest[] },
  profile: Profile,
  options: DownloadOptions = {},
): string[] {
  const orderTube = order.specimenId ?? order.accession;
  /** The tests of `list` by tube, each group mapped to the analyzer's codes; groups it cannot run are left out. */
  const byTube = (list: OrderedTest[], also: Readonly<Record<string, readonly string[]>> = {}): Array<{ specimenId: string; codes: string[] }> => {
    const groups = new Map<string, OrderedTest[]>();
    for (const t of list) {
      for (const tube of new Set([order.tubes?.[t.code] ?? orderTube, ...(also[t.code] ?? [])])) {
        const group = groups.get(tube);
        if (group) group.push(t);
        else groups.set(tube, [t]);
      }
    }
    return [...groups].map(([specimenId, group]) => ({ specimenId, codes: analyzerTests(group, profile) })).filter((g) => g.codes.length > 0);
  };
  const add = byTube(tests.add);
  const cancel = byTube(tests.cancel, order.alsoUnder);
  if (add.length === 0 && cancel.length === 0) return [];
  const d = downloadDelimiters(profile);
  const records = [downloadHeader(profile, d, options)];
  records.push(buildRecord('P', ['1', '', order.patientId ?? ''], d, profile.quirks.charset));
  const base = { priority: isStat(order.priority) ? 'S' : 'R', reportTypes: ['O'], requestedAt: order.orderedAt };
  const specimen = (specimenId: string): QueriedSpecimen => ({ specimenId, components: [specimenId] });
  let seq = 0;
  // An add-on to a specimen the analyzer has is no new specimen. Before, it went out as `N` like
  // the first download: an analyzer keeping one order per specimen replaced the first (its tests
  // never run) or refused a duplicate specimen (the add-on never run)
  // (test/integration/review-s22-astm-download-add-on.test.ts).
  const actionOf = (tube: string): string | undefined => (profile.hostQuery.actionCode === 'N' && order.onAnalyzer?.has(tube) ? 'A' : undefined);
  for (const g of add) records.push(orderRecord(profile, d, { ...base, specimen: specimen(g.specimenId), tests: g.codes, seq: ++seq, ...(actionOf(g.specimenId) ? { actionCode: actionOf(g.specimenId) } : {}) }));
  for (const g of cancel) records.push(orderRecord(profile, d, { ...base, specimen: specimen(g.specimenId), tests: g.codes, seq: ++seq, actionCode: 'C' }));
  records.push(buildRecord('L', ['1', 'N'], d));
  return records;
}
