import type { DraftEvent, EventDataMap, EventType, OrderedTest, RunType } from '../events/types.ts';
import { partitionKeys } from '../events/keys.ts';
import { hl7Offset, hl7TimeToIso, inHl7Zone, sameHl7Time } from './hl7-time.ts';
import type { Hl7Message, Hl7Segment } from './message.ts';
import { hl7EventKey, type Hl7NormalizeContext, type Hl7Normalizer } from './normalizer.ts';
import { historicalModeKind, isQcProcessingId, processingIdTerm, processingModeTerm } from './processing-id.ts';
import { trimmed, upper } from './text.ts';

/**
 * The default normalizer: HL7 v2 from a LIS → canonical events (DESIGN.md §3). Decisions (also in
 * README.md):
 *
 * Orders (ORM^O01, OML^O21/O33/O35) — one "order line" per OBR with the ORC before it:
 * - accession = ORC-2 placer order number, else OBR-2, else the filler number ORC-3 / OBR-3,
 *   else ORC-4 placer group number; a line with none that states a fact (NW, XO/XX/XR, RO,
 *   CA/OC/CR, DC/OD/DR, RP/RU/RQ, SC with ORC-5 CA/DC, IP, a receipt) makes the message a reject (ctx.problems: AR 101 at ORC^n^2);
 * - ORC-1 NW, a changed order XO / XX / XR (the order as it now stands: a test the change
 *   adds is ordered) and a replacement order RO → `order.created` with one test per OBR-4 (code =
 *   OBR-4.1); CA / OC / CR, a discontinuation DC / OD / DR, the order replaced RP / RU / RQ, and a
 *   status change SC whose ORC-5 is CA or DC →
 *   `order.cancelled` (tests of the lines; none = the whole order); one event per run of an
 *   accession's consecutive lines making the same fact at the same ORC-9 (a line naming a test
 *   whose ORC-9 is not the run's starts another run, with the run's client, filler number and
 *   priority where its own ORC/OBR name none; a line without ORC-9 stays in the run), keyed on the
 *   run's first line, in the order of the lines (CA GLU then NW GLU: cancelled, then ordered again);
 * - priority OBR-27.6, else ORC-7.6, else TQ1-9: a TQ1 after the ORC (its standard place) is the
 *   timing of that ORC's lines, one after an OBR that line's;
 * - specimenId = the first SPM-2; `specimens` = every tube with its tests when there are several;
 * - a withdrawing line whose OBR-4 names a test without a code (OBR-4.1 empty, a text or an
 *   alternate code given) is refused (AR 101 at OBR^n^4), never a cancellation of the whole order;
 * - ORC-5 IP → `test.in_progress` per line;
 * - a line whose specimen shows it arrived (SPM-18 received time, or OBR-14) → `specimen.received`
 *   once per specimen of each order. SPM follows its OBR in O21 and precedes its ORC/OBR in O33/O35;
 * - order.created / order.cancelled (in the order of their lines) come before the milestones
 *   (received, in progress): the relay posts a partition in order and a milestone needs the sale order;
 * - orderingClientRef = ORC-21 ordering facility (XON.10 organization id, else XON.3 id number,
 *   else XON.1 name), else ORC-17 entering organization, else the id of the ordering provider
 *   (OBR-16.1, ORC-12.1); '' when the LIS sends none (the relay reports the missing mapping).
 *
 * Results (ORU^R01, OUL^R22/R23/R24) — one group per OBR with its OBX:
 * - ORU: the ORC precedes its OBR (OBX under an ORC without OBR: a group of that ORC), and an OBR
 *   without ORC and without numbers of its own takes the patient's last ORC; OUL: the ORC
 *   follows its OBR and belongs to it only;
 *   OUL^R24: the SPM belongs to the OBR before it, OBX after its SAC/INV are results;
 * - results tied to no order and no specimen make the message a reject (AE 101 at OBR^n^2);
 * - every OBX final (OBX-11 F, or empty OBX-11 with OBR-25 F; under OBR-25 F, D/W/X/N do not
 *   count, one F needed) → one `result.validated` for the ordered test (OBR-4.1), the unit
 *   billing works with; not under an OBR-25 that says the report is incomplete (O/S/I/A/P/R):
 *   then each OBX is a `test.completed`, and when they are all final the message gets the search
 *   term `not-final:<test>` and a warning (billing waits for the final report);
 * - a corrected report (OBX-11 C counted as F, and D/W/X/N not counting under OBR-25 C as under F;
 *   an OBR without OBX under OBR-25 C) → that same `result.validated`, beside the `test.completed`
 *   of each OBX it always made: a correction replaces a final result, so the test was validated
 *   even when the gateway never had its final report; billing counts a second validation once;
 * - otherwise one event per OBX: I → `test.in_progress`; P, R, C, S, F, A, U or empty →
 *   `test.completed` with the analyte (OBX-3.1), value (SN: components joined), units, flags;
 *   D, W, X, N → no event;
 * - an OBR without OBX follows OBR-25 (F → validated, I → in progress, P/C/R/A → completed);
 * - OBR-25 X (no results available, order cancelled) with no OBX holding a result, or OBR-25 F
 *   whose OBX hold no result and at least one is X (cannot be obtained) → `order.cancelled` of the
 *   ordered test (OBR-4.1): it will not be done, and the order is billed for the rest;
 * - OBX after an SPM are specimen observations, not results: skipped;
 * - a QC run (MSH-11 Q, `runType: qc`) is not the patient's: no `result.validated`, no
 *   `test.in_progress`; every OBX with a result (and an OBR without OBX under OBR-25 F/P/C/R/A)
 *   → `test.completed` with the run type, without accession, partition `specimen:<id>`.
 *
 * ADT and other types: no events (the message is stored and acknowledged).
 * A message of the LIS's history (MSH-11.2 processing mode A archive, R restore, I initial load):
 * no events either, whatever its type; it is stored, acknowledged and found as `processingMode:<m>`.
 * No names, birth dates or addresses: the only patient datum is PID-3.1 (first repetition).
 */

interface OrderLine {
  orc?: Hl7Segment;
  obr?: Hl7Segment;
  /** The line's timing: a TQ1 after its OBR, else the TQ1 of its ORC. */
  tq1?: Hl7Segment | undefined;
  /** The line's specimen: the first SPM after its OBR (O21), or the SPM before it (O33/O35). */
  spm?: Hl7Segment;
  /** O21: every SPM after the OBR (a line may name several tubes); absent when there is none. */
  specimens?: Hl7Segment[];
  position: number;
}

interface ResultGroup {
  orc?: Hl7Segment;
  obr?: Hl7Segment;
  spm?: Hl7Segment;
  obx: Hl7Segment[];
  position: number;
}

/**
 * ORC-1 that withdraw the lines' tests (table 0119): CA cancel request, OC cancelled, CR cancelled
 * as requested; and DC discontinue request, OD discontinued, DR discontinued as requested. For a
 * lab test a discontinuation is a test that will not be done, like a cancellation: its line goes
 * and the order is billed for the tests that were. (A LIS does not discontinue a test it has
 * resulted: the filler answers such a request UD, unable to discontinue.) Before, DC/OD/DR were a
 * debug note: the line stayed open and the order was never eligible for its invoice.
 */
const CANCEL_CONTROLS = new Set(['CA', 'OC', 'CR', 'DC', 'OD', 'DR']);
/**
 * ORC-5 order statuses (table 0038) that, with ORC-1 SC (status changed), say the order was
 * withdrawn: CA cancelled, DC discontinued. Other statuses (IP, A, CM, SC, HD…) make no order fact.
 */
const WITHDRAWN_STATUSES = new Set(['CA', 'DC']);
/**
 * A replacement (HL7 v2.5 §4.5.1, table 0119): the ORC of the order replaced — RP the placer's
 * replace request, RU replaced unsolicited, RQ replaced as requested — then an ORC RO for the
 * replacement order. The replaced line is withdrawn (`order.cancelled`), the RO line ordered
 * (`order.created`), in the order of their lines, as `ORC CA` then `ORC NW`. Before, both were a
 * debug note: the replaced test stayed open, the replacement never reached the sale order (its
 * result dead-lettered) and the order was never billed.
 */
const REPLACED_CONTROLS = new Set(['RP', 'RU', 'RQ']);
const REPLACEMENT_CONTROL = 'RO';
/**
 * ORC-1 of a changed order (table 0119): XO the placer's change request, XX the filler's
 * unsolicited change, XR the filler's "changed as requested". Each line is the order as it now
 * stands: `order.created` with its tests, so a test the change adds reaches the sale order (the
 * relay adds what the order lacks; a test already there is left as it is).
 */
const CHANGE_CONTROLS = new Set(['XO', 'XX', 'XR']);

/**
 * The one place that decides the order fact of an order line from its ORC (ORC-1, and ORC-5 for
 * SC; a line without ORC is NW): `order.created` for NW, a changed order and a replacement order,
 * `order.cancelled` for a cancellation, a discontinuation, the order replaced and SC with ORC-5
 * CA/DC; undefined for a line that states no order fact (SC otherwise, SN, RF …).
 */
function orderFactOf(orc: Hl7Segment | undefined): OrderFactKind | undefined {
  const control = upper(orc?.get(1) || 'NW');
  if (control === 'NW' || CHANGE_CONTROLS.has(control) || control === REPLACEMENT_CONTROL) return 'order.created';
  if (CANCEL_CONTROLS.has(control) || REPLACED_CONTROLS.has(control)) return 'order.cancelled';
  if (control === 'SC' && WITHDRAWN_STATUSES.has(upper(orc?.get(5) ?? ''))) return 'order.cancelled';
  return undefined;
}
const COMPLETED_STATUSES = new Set(['P', 'R', 'C', 'S', 'F', 'A', 'U', '']);
const SKIPPED_STATUSES = new Set(['D', 'W', 'X', 'N']);
/** OBX-11 of a final result; with C, a corrected one (it replaces a final result: table 0085). */
const FINAL_STATUSES: ReadonlySet<string> = new Set(['F']);
const CORRECTED_OR_FINAL_STATUSES: ReadonlySet<string> = new Set(['F', 'C']);
/** OBR-25 of an OBR without OBX that means results are there but not final. */
const OBR_COMPLETED_STATUSES = new Set(['P', 'C', 'R', 'A']);
/**
 * OBR-25 (table 0123) that says the report of the ordered test is not complete, whatever its OBX
 * say: O order received, S scheduled, I in the lab, A some but not all results available, P
 * preliminary, R results stored and not yet verified. Under these, OBX that are all final (the
 * analytes of a panel verified so far) are each a `test.completed`, not the test's
 * `result.validated`: the report that completes it (OBR-25 F) is. Before, a panel sent part by part
 * was billing-ready at its first part.
 */
const REPORT_INCOMPLETE_STATUSES = new Set(['O', 'S', 'I', 'A', 'P', 'R']);

/**
 * The accession: ORC-2 placer order number, else OBR-2, else the filler number ORC-3 / OBR-3,
 * else ORC-4 placer group number (a LIS that numbers its requisitions only there).
 */
function accessionOf(orc: Hl7Segment | undefined, obr: Hl7Segment | undefined): string {
  return orc?.get(2) || obr?.get(2) || orc?.get(3) || obr?.get(3) || orc?.get(4) || '';
}

/** Whether an order line states a milestone (ORC-5 IP, or its specimen's receipt). */
function lineHasMilestone(line: OrderLine): boolean {
  return (upper(line.orc?.get(5) ?? '') === 'IP' && line.obr !== undefined) || !!(line.spm?.get(18, 1) || line.obr?.get(14, 1));
}

function specimenIdOf(spm: Hl7Segment | undefined): string {
  // SPM-2 is EIP: placer-assigned EI ^ filler-assigned EI (each EI as subcomponents).
  return spm ? spm.get(2, 1, 1) || spm.get(2, 2, 1) : '';
}

/** Whether OBR-4 says anything of a test (a code, a text, an alternate code), read or not. */
function namesTest(obr: Hl7Segment): boolean {
  for (const c of [1, 2, 4, 5]) if (trimmed(obr.get(4, c)) !== '') return true;
  return false;
}

function testOf(obr: Hl7Segment): OrderedTest | undefined {
  const code = obr.get(4, 1);
  if (!code) return undefined;
  const test: OrderedTest = { code };
  const name = obr.get(4, 2);
  const system = obr.get(4, 3);
  const lineId = obr.get(1);
  if (name) test.name = name;
  if (system) test.codingSystem = system;
  if (lineId) test.lineId = lineId;
  return test;
}

/**
 * OBX-5 as an event value. SN (structured numeric: comparator ^ number ^ separator/suffix ^ number,
 * e.g. `>^300`, `^7.2`, `^1^:^128`) is its components joined (`>300`, `7.2`, `1:128`); other types
 * their first component, as always (the code of a CE/CWE).
 */
function obxValue(obx: Hl7Segment): string {
  if (!obx.rawEquals(2, 'SN')) return obx.get(5);
  return obx.get(5, 1) + obx.get(5, 2) + obx.get(5, 3) + obx.get(5, 4);
}

function orderingClientRefOf(line: OrderLine): string {
  const { orc, obr } = line;
  return orc?.get(21, 10) || orc?.get(21, 3) || orc?.get(21, 1) || orc?.get(17, 1) || obr?.get(16, 1) || orc?.get(12, 1) || '';
}

/**
 * Required string members an event keeps when they are '' (the optional ones are dropped):
 * `orderingClientRef` is '' when the LIS names no ordering client, and the relay reports that
 * missing mapping by name (dropped, the order reached the relay without the field at all).
 */
const KEEP_EMPTY: ReadonlySet<string> = new Set(['orderingClientRef']);

/** A copy of `o` without its undefined and '' members, but for KEEP_EMPTY (same key order). */
function definedOnly<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const k in o) {
    const v = o[k] as unknown;
    if (v !== undefined && (v !== '' || KEEP_EMPTY.has(k))) out[k] = v;
  }
  return out as T;
}

/**
 * The time fields the LIS writes (HL7 DTM) that can say its zone: MSH-7 first, then these in the
 * message's order (field numbers; component 1).
 */
const ZONE_FIELDS: Readonly<Record<string, readonly number[]>> = { ORC: [9], OBR: [6, 7, 8, 14, 22], OBX: [14, 19], SPM: [17, 18], TQ1: [7, 8] };

/**
 * The offset the LIS writes its times in, as the message says: that of MSH-7, else of the first of
 * its other times (ZONE_FIELDS) written with one; undefined when none is. A time written without an
 * offset is the LIS's local time, read in that offset (hl7-time.ts inHl7Zone), not in the gateway's
 * own zone: a LIS that writes its offset on ORC-9 and none on MSH-7 (or the other way) talking to a
 * gateway in a UTC container had its two kinds of times hours apart, and billing, which orders a
 * cancellation and a re-order by them, kept a cancelled test on the sale order or never billed a
 * re-ordered one (test/integration/billing-lis-time-zone-audit.test.ts).
 */
function messageZone(message: Hl7Message): MessageZone {
  const found = (value: string): MessageZone | undefined => {
    const offset = hl7Offset(value);
    if (offset === undefined) return undefined;
    // The gateway runs in the LIS's zone when its zone gives that instant the offset written on it.
    const iso = hl7TimeToIso(value);
    return { offset, local: iso !== undefined && localOffset(Date.parse(iso)) === offset };
  };
  const own = found(message.header.dateTime ?? '');
  if (own) return own;
  for (const seg of message.segments) {
    for (const field of ZONE_FIELDS[seg.name] ?? []) {
      const zone = found(seg.get(field, 1));
      if (zone) return zone;
    }
  }
  return { offset: undefined, local: false };
}

/**
 * The offset a message's times without one are read in (`offset`), and whether the gateway runs in
 * that zone (`local`): then such a time takes the offset the gateway's zone had at that time, which
 * follows a daylight-saving change between it and the message (an order written on summer time,
 * sent on winter time); otherwise `offset` as it is.
 */
interface MessageZone {
  offset: string | undefined;
  local: boolean;
}

/** The gateway's UTC offset at `ms`, as HL7 writes one (+HHMM / -HHMM). */
function localOffset(ms: number): string {
  const minutes = -new Date(ms).getTimezoneOffset();
  const a = Math.abs(minutes);
  return `${minutes < 0 ? '-' : '+'}${String(Math.floor(a / 60)).padStart(2, '0')}${String(a % 60).padStart(2, '0')}`;
}

/**
 * An event's time: ISO 8601 (occurredAt), the HL7 DTM it was read from as the LIS wrote it, and the
 * message's offset (messageZone) it was read in when it has none of its own.
 */
interface EventTime {
  iso: string;
  written: string;
  zone?: string;
}

/**
 * The event types billing orders by their times (events/invoice-eligibility.ts): they carry the
 * time as the LIS wrote it (`timeWritten`, EventTime.written) beside occurredAt, and the offset of
 * the message it was read in when it has none (`timeZone`), so that billing compares two times of
 * two messages at the coarser of their precisions and reads a time without offset in the message's
 * or else the other's offset (hl7-time.ts compareHl7Time), and compares one with an event stored by
 * the release before (no timeWritten) as that release read it (the LIS's digits in the gateway's zone).
 */
const TIME_WRITTEN_TYPES: ReadonlySet<EventType> = new Set<EventType>(['order.created', 'order.cancelled', 'result.validated']);

class EventSink {
  readonly events: DraftEvent[] = [];
  /** Segment position of the first event not made because nothing (accession, specimen id) tied it to an order. */
  firstSkipped: number | undefined;
  readonly #ctx: Hl7NormalizeContext;
  #messageTime: EventTime | { iso: string; written?: undefined; zone?: undefined } | undefined;
  #zone: MessageZone | undefined;

  constructor(ctx: Hl7NormalizeContext) {
    this.#ctx = ctx;
  }

  /** A DTM field read in the message's zone (messageZone); undefined when it is not a date. */
  time(value: string | undefined): EventTime | undefined {
    if (!value || !trimmed(value)) return undefined;
    this.#zone ??= messageZone(this.#ctx.message);
    const written = trimmed(value);
    let offset = this.#zone.offset;
    if (this.#zone.local && hl7Offset(written) === undefined) {
      const local = hl7TimeToIso(written);
      if (local !== undefined) offset = localOffset(Date.parse(local));
    }
    const zoned = inHl7Zone(written, offset);
    const iso = hl7TimeToIso(zoned);
    if (iso === undefined) return undefined;
    return zoned === written ? { iso, written } : { iso, written, zone: offset };
  }

  /** `time(value)` as ISO 8601, for an event's data. */
  iso(value: string | undefined): string | undefined {
    return this.time(value)?.iso;
  }

  /** MSH-7, else the arrival time: when the source gives no better time for a fact. */
  get #fallbackTime(): EventTime | { iso: string; written?: undefined; zone?: undefined } {
    this.#messageTime ??= this.time(this.#ctx.message.header.dateTime) ?? { iso: this.#ctx.receivedAt };
    return this.#messageTime;
  }

  #source(): DraftEvent['source'] {
    const { endpoint, analyzer, message } = this.#ctx;
    const controlId = message.header.controlId;
    return analyzer ? { kind: 'hl7', endpoint, analyzer, controlId } : { kind: 'hl7', endpoint, controlId };
  }

  add<T extends EventType>(type: T, position: number, ids: { accession?: string; specimenId?: string }, data: EventDataMap[T], occurredAt?: EventTime): void {
    const correlationId = ids.accession || ids.specimenId || '';
    if (!correlationId) {
      this.#ctx.notes.push(`${type} at segment ${position + 1} skipped: no accession or specimen id`);
      this.firstSkipped ??= position;
      return;
    }
    const at = occurredAt ?? this.#fallbackTime;
    const event = {
      type,
      occurredAt: at.iso,
      receivedAt: this.#ctx.receivedAt,
      idempotencyKey: hl7EventKey(this.#ctx, position, type),
      correlationId,
      partitionKey: ids.accession ? partitionKeys.order(ids.accession) : partitionKeys.specimen(correlationId),
      source: this.#source(),
      data: definedOnly(TIME_WRITTEN_TYPES.has(type) ? { ...data, timeWritten: at.written, timeZone: at.zone } : data),
    };
    this.events.push(event as DraftEvent);
  }
}

function patientIdOf(message: Hl7Message): string | undefined {
  return message.first('PID')?.get(3, 1) || undefined;
}

/** The order facts of one message: order.created or order.cancelled. */
type OrderFactKind = 'order.created' | 'order.cancelled';

/**
 * One order fact: a run of lines of one accession making the same fact (orderFactOf) at the same
 * ORC-9 (sameOrderTime), consecutive among that accession's order lines. Keyed on its first line.
 */
interface OrderFact {
  type: OrderFactKind;
  accession: string;
  line: OrderLine;
  tests: OrderedTest[];
  /** The run's specimens (SPM-2) with the test codes of the lines naming each. */
  specimens: Array<{ specimenId: string; tests: string[] }>;
  /**
   * The first line of the run this fact was split from at another ORC-9 (sameOrderTime), whose
   * client, filler number and priority it takes when its own ORC and OBR do not name them, as it
   * did when it was part of that run. Undefined for a fact that starts a run.
   */
  runStart?: OrderLine;
  /**
   * The run's first line naming a test, whose ORC-9 a later line naming a test is compared with
   * (sameOrderTime). Not `line`: a run led by an ORC without OBR (the requisition's ORC, its own
   * ORC-9) is not split between tests that share one ORC-9.
   */
  timeLine?: OrderLine;
}

/**
 * Line `b` was placed (or cancelled) at the time of the run whose first line naming a test is `a`,
 * as far as the message says: the same ORC, or one ORC-9 (as a time, hl7-time.ts sameHl7Time:
 * 202603010920 and 20260301092015 are one, so are 20260301092000+0100 and 20260301092000 whatever
 * the gateway's zone), or no ORC-9 on either side (an ORC that carries only the order numbers is
 * part of the run before it, as it always was). A run of lines is one event only while this
 * holds: the event is timed by its first line (occurredAt ORC-9, orderedAt ORC-9 else OBR-6), and billing judges a resend or a
 * re-order by that time (events/invoice-eligibility.ts). Before, an order message naming GLU on an
 * ORC of 09:20 and then TSH on an ORC of 10:30 (ordered again after its cancellation at 10:00) was
 * one event timed 09:20: TSH was taken for a resend of the cancelled order and never billed
 * (test/integration/billing-multi-orc-order-time-audit.test.ts).
 */
function sameOrderTime(a: OrderLine, b: OrderLine): boolean {
  if (a.orc === b.orc) return true;
  const at = a.orc?.get(9) ?? '';
  const bt = b.orc?.get(9) ?? '';
  // The same text (a LIS repeating its ORC-9, or none on either): no time to read.
  return at === bt || sameHl7Time(at, bt) !== false;
}

/** 1-based occurrence of `seg` among the message's segments of its name (ERR-2 segment sequence). */
function occurrenceOf(message: Hl7Message, seg: Hl7Segment): number {
  let n = 0;
  for (const s of message.segments) {
    if (s.name === seg.name) n++;
    if (s === seg) break;
  }
  return n;
}

function normalizeOrders(ctx: Hl7NormalizeContext, sink: EventSink): void {
  const { message } = ctx;
  const h = message.header;
  const specimenFirst = h.triggerEvent === 'O33' || h.triggerEvent === 'O35' || h.messageStructure === 'OML_O33' || h.messageStructure === 'OML_O35';
  const lines: OrderLine[] = [];
  let pendingOrc: Hl7Segment | undefined;
  let lastOrc: Hl7Segment | undefined;
  let leadingSpecimen: Hl7Segment | undefined;
  let current: OrderLine | undefined;
  /**
   * The timing (TQ1) of each ORC: in its standard place, right after the ORC and before its OBR
   * (v2.5 ORM_O01 / OML_O21/O33/O35: ORC [{TQ1 [{TQ2}]}] [OBR …]). It is the timing of every line
   * that ORC stands for, the ORC-only line included.
   */
  const orcTiming = new Map<Hl7Segment, Hl7Segment>();
  for (const seg of message.segments) {
    switch (seg.name) {
      case 'ORC':
        if (pendingOrc) lines.push({ orc: pendingOrc, position: pendingOrc.index }); // ORC without OBR
        pendingOrc = seg;
        lastOrc = seg;
        current = undefined;
        break;
      case 'TQ1':
        // After an OBR (as some senders write it): that line's; after an ORC: the ORC's.
        if (current) current.tq1 ??= seg;
        else if (lastOrc && !orcTiming.has(lastOrc)) orcTiming.set(lastOrc, seg);
        break;
      case 'OBR':
        current = { obr: seg, position: seg.index };
        if (pendingOrc ?? lastOrc) current.orc = (pendingOrc ?? lastOrc) as Hl7Segment;
        if (leadingSpecimen) current.spm = leadingSpecimen;
        pendingOrc = undefined;
        lines.push(current);
        break;
      case 'SPM':
        if (!specimenFirst && current) {
          // O21: every SPM after the OBR is a tube of that line; the first is its specimen.
          current.spm ??= seg;
          (current.specimens ??= []).push(seg);
        } else if (specimenFirst) leadingSpecimen = seg;
        break;
      default:
        break;
    }
  }
  if (pendingOrc) lines.push({ orc: pendingOrc, position: pendingOrc.index });
  for (const line of lines) if (!line.tq1 && line.orc) line.tq1 = orcTiming.get(line.orc);

  const patientId = patientIdOf(message);
  const facts: OrderFact[] = [];
  /** The latest fact of each accession: a line making the same fact joins it, another starts a new one. */
  const latest = new Map<string, OrderFact>();

  // The order facts in the order of their lines (an ORC CA GLU before an ORC NW GLU is a test
  // cancelled, then ordered again), then the milestones (receipt, in process): the relay posts a
  // partition's events in order, and a milestone needs the sale order that order.created makes.
  for (const line of lines) {
    const accession = accessionOf(line.orc, line.obr);
    const type = orderFactOf(line.orc);
    if (!accession) {
      const seg = (line.orc ?? line.obr) as Hl7Segment;
      const text = `order at segment ${seg.index + 1} (${seg.name}) has no placer or filler number (ORC-2, OBR-2, ORC-3, OBR-3 and ORC-4 are empty)`;
      ctx.notes.push(text);
      // An order, a cancellation or a milestone that no order number ties to anything: the
      // message is refused (AR 101) and kept for the operator, never acknowledged and forgotten.
      if (type || lineHasMilestone(line)) ctx.problems?.push({ severity: 'reject', error: { code: 101, text, location: `${seg.name}^${occurrenceOf(message, seg)}^2` } });
      continue;
    }
    if (!type) {
      const control = upper(line.orc?.get(1) ?? '');
      if (control !== 'SC' && control !== 'SN') ctx.notes.push(`ORC-1 ${control} at segment ${(line.orc?.index ?? 0) + 1}: no event`);
      continue;
    }
    const test = line.obr ? testOf(line.obr) : undefined;
    if (type === 'order.cancelled' && line.obr && !test && namesTest(line.obr)) {
      // A withdrawal of one test the gateway cannot name (OBR-4 with a text or an alternate code but
      // no identifier, as a LIS writes OBR-4 `^KNEE-RIGHT AP LAT^L`): a line without a test is the
      // whole order, and taking it so would withdraw every other test of the order. Refused (AR)
      // and kept for the operator instead.
      const text = `cancellation at segment ${line.obr.index + 1} (OBR) names a test without a code (OBR-4.1 is empty: "${line.obr.get(4, 2) || line.obr.get(4, 5) || line.obr.get(4, 4)}"): not applied as a cancellation of the whole order`;
      ctx.notes.push(text);
      ctx.problems?.push({ severity: 'reject', error: { code: 101, text, location: `OBR^${occurrenceOf(message, line.obr)}^4` } });
      continue;
    }
    let fact = latest.get(accession);
    // Another ORC-9 splits the run only between lines naming tests: an ORC without OBR names none,
    // and an event of no test would be the whole order (a cancellation of everything).
    const split = fact?.type === type && test !== undefined && fact.timeLine !== undefined && !sameOrderTime(fact.timeLine, line);
    if (fact?.type !== type || split) {
      const runStart = split ? (fact!.runStart ?? fact!.line) : undefined;
      fact = { type, accession, line, tests: [], specimens: [], ...(runStart ? { runStart } : {}) };
      facts.push(fact);
      latest.set(accession, fact);
    }
    if (test) {
      fact.tests.push(test);
      fact.timeLine ??= line;
    }
    for (const spm of line.specimens ?? (line.spm ? [line.spm] : [])) {
      const specimenId = specimenIdOf(spm);
      if (!specimenId) continue;
      let specimen = fact.specimens.find((s) => s.specimenId === specimenId);
      if (!specimen) fact.specimens.push((specimen = { specimenId, tests: [] }));
      if (test && !specimen.tests.includes(test.code)) specimen.tests.push(test.code);
    }
  }

  const fillerOf = (l: OrderLine): string => l.orc?.get(3) || l.obr?.get(3) || '';
  const priorityOf = (l: OrderLine): string => l.obr?.get(27, 6) || l.orc?.get(7, 6) || l.tq1?.get(9, 1) || '';
  for (const { type, accession, line, tests, specimens, runStart } of facts) {
    if (type === 'order.created') {
      sink.add(
        'order.created',
        line.position,
        { accession },
        {
          accession,
          fillerOrderNumber: fillerOf(line) || (runStart && fillerOf(runStart)) || undefined,
          orderingClientRef: orderingClientRefOf(line) || (runStart ? orderingClientRefOf(runStart) : ''),
          patientId,
          specimenId: specimens[0]?.specimenId,
          // Every tube only when there is more than one: a one-tube order reads as it always did.
          specimens: specimens.length > 1 ? specimens : undefined,
          priority: priorityOf(line) || (runStart && priorityOf(runStart)) || undefined,
          tests,
          orderedAt: sink.iso(line.orc?.get(9) || line.obr?.get(6)),
        } as EventDataMap['order.created'],
        sink.time(line.orc?.get(9)),
      );
    } else {
      sink.add(
        'order.cancelled',
        line.position,
        { accession },
        { accession, tests, reason: line.orc?.get(16, 2) || line.orc?.get(16, 1) || undefined } as EventDataMap['order.cancelled'],
        sink.time(line.orc?.get(9)),
      );
    }
  }

  const specimensSeen = new Set<string>();
  /** SPM segments that already keyed a specimen.received (an O33/O35 SPM may serve several orders). */
  let keyedSpecimens: Set<Hl7Segment> | undefined;
  for (const line of lines) {
    const accession = accessionOf(line.orc, line.obr);
    if (!accession) continue;
    const specimenId = specimenIdOf(line.spm);
    if (upper(line.orc?.get(5) ?? '') === 'IP' && line.obr) {
      const test = testOf(line.obr);
      if (test) sink.add('test.in_progress', line.position, { accession, specimenId }, { accession, specimenId, testCode: test.code }, sink.time(line.orc?.get(9)));
    }
    const receivedTime = line.spm?.get(18, 1) || line.obr?.get(14, 1) || '';
    if (!receivedTime) continue;
    const sid = specimenId || line.obr?.get(3) || accession;
    // Once per specimen of each order: one tube serving several orders (an O33 SPM before them, or
    // each order's own SPM naming it) is a receipt on each order's chatter. Before, only the
    // first order of the tube had it.
    const seen = `${accession}\u0000${sid}`;
    if (specimensSeen.has(seen)) continue;
    specimensSeen.add(seen);
    // Keyed on the SPM's position, as always; when that SPM already keyed the receipt of another
    // order's specimen (one O33 SPM shared by orders: one tube, or no SPM-2 and their own filler numbers), on
    // this line's own position instead, so that the second fact does not reuse the first one's key.
    let position = (line.spm ?? line.obr ?? line.orc)?.index ?? line.position;
    if (line.spm) {
      keyedSpecimens ??= new Set();
      if (keyedSpecimens.has(line.spm)) position = line.position;
      else keyedSpecimens.add(line.spm);
    }
    const received = sink.time(receivedTime);
    const receivedAt = received?.iso;
    sink.add(
      'specimen.received',
      position,
      { accession, specimenId: sid },
      {
        accession,
        specimenId: sid,
        specimenType: line.spm?.get(4, 1) || line.obr?.get(15, 1) || undefined,
        collectedAt: sink.iso(line.spm?.get(17, 1) || line.obr?.get(7, 1)),
        receivedAt,
      } as EventDataMap['specimen.received'],
      received,
    );
  }
}

function runTypeOf(message: Hl7Message): RunType {
  // Mindray BC-5380 marks QC results with processing id Q (MSH-11), read as T/D are (processing-id.ts).
  return isQcProcessingId(message.header) ? 'qc' : 'patient';
}

function normalizeResults(ctx: Hl7NormalizeContext, sink: EventSink): void {
  const { message } = ctx;
  const h = message.header;
  const isOru = h.messageCode === 'ORU';
  // OUL^R24 is order-centric: OBR [ORC] … {SPM {OBX} {SAC [INV]}} … {OBX}: the SPM belongs to the
  // OBR before it, and OBX after its SAC/INV are the order's results.
  const orderCentric = !isOru && (h.triggerEvent === 'R24' || h.messageStructure === 'OUL_R24');
  const groups: ResultGroup[] = [];
  let pendingOrc: Hl7Segment | undefined;
  /** ORU: the last ORC of the patient's results, for an OBR that has neither an ORC nor numbers of its own. */
  let lastOrc: Hl7Segment | undefined;
  let leadingSpecimen: Hl7Segment | undefined;
  let current: ResultGroup | undefined;
  let lastWasSpecimen = false;
  for (const seg of message.segments) {
    switch (seg.name) {
      case 'PID':
        lastOrc = undefined; // another patient's results: an earlier ORC is not theirs
        break;
      case 'ORC':
        if (isOru) {
          pendingOrc = seg; // ORU: the ORC comes before its OBR
          lastOrc = seg;
        } else if (current && !current.orc) {
          current.orc = seg; // OUL: the ORC follows its OBR; it is that order's, not the next one's
        } else {
          pendingOrc = seg; // OUL from senders that put the ORC first
        }
        break;
      case 'OBR':
        current = { obr: seg, obx: [], position: seg.index };
        if (pendingOrc) current.orc = pendingOrc;
        // ORU, one ORC for the report and then one OBR per test (as the same LIS writes its ORM,
        // where the ORC stands for every OBR after it): an OBR without an ORC and without order
        // numbers of its own (OBR-2, OBR-3) is an order of that ORC. OUL keeps its rule (the ORC
        // follows its OBR and is that OBR's only), and an OBR with its own numbers keeps them.
        else if (isOru && lastOrc && !seg.get(2) && !seg.get(3)) current.orc = lastOrc;
        if (leadingSpecimen) current.spm = leadingSpecimen;
        pendingOrc = undefined;
        groups.push(current);
        lastWasSpecimen = false;
        break;
      case 'SPM':
        if ((isOru || orderCentric) && current) {
          current.spm ??= seg;
        } else {
          // OUL^R22/R23: a new specimen group; what follows belongs to its orders, not the last one.
          leadingSpecimen = seg;
          if (!isOru) current = undefined;
        }
        lastWasSpecimen = true;
        break;
      case 'SAC':
      case 'INV':
        if (orderCentric) lastWasSpecimen = false;
        break;
      case 'OBX':
        if (lastWasSpecimen) {
          ctx.notes.push(`OBX at segment ${seg.index + 1} is a specimen observation: no event`);
        } else {
          if (!current) {
            current = pendingOrc ? { orc: pendingOrc, obx: [], position: seg.index } : { obx: [], position: seg.index };
            groups.push(current);
          }
          current.obx.push(seg);
        }
        break;
      default:
        break;
    }
  }

  const runType = runTypeOf(message);
  const patientRun = runType === 'patient'; // runTypeOf gives 'patient' or 'qc'
  for (const g of groups) {
    const accession = accessionOf(g.orc, g.obr);
    const specimenId = specimenIdOf(g.spm) || g.obr?.get(3) || accession;
    const obrStatus = upper(g.obr?.get(25) ?? '');
    const orderedCode = g.obr?.get(4, 1) ?? '';
    const ids = { accession, specimenId };
    const statusOf = (obx: Hl7Segment): string => upper(obx.get(11) || obrStatus);
    const reportTime = sink.time(g.obr?.get(22, 1));
    const groupTime = reportTime ?? sink.time(g.obr?.get(7, 1));
    // Which field a result's time came from (ResultValidatedData.timeFrom): billing trusts only a report time (OBR-22) to say a result came before a re-order.
    const groupTimeFrom = reportTime ? 'OBR-22' : groupTime ? 'OBR-7' : undefined;
    const completedAtOf = (obx: Hl7Segment): EventTime | undefined => sink.time(obx.get(19, 1)) ?? sink.time(obx.get(14, 1)) ?? groupTime;
    /** One OBX as `test.completed` data; `orderAccession` undefined for a QC run. */
    const resultOf = (obx: Hl7Segment, status: string, orderAccession: string | undefined): EventDataMap['test.completed'] => {
      const analyteCode = obx.get(3, 1);
      return {
        accession: orderAccession,
        specimenId,
        testCode: analyteCode || orderedCode,
        loinc: obx.get(3, 3) === 'LN' ? analyteCode : undefined,
        value: obxValue(obx),
        units: obx.get(6, 1),
        abnormalFlags: obx.get(8),
        resultStatus: status,
        runType,
        completedAt: completedAtOf(obx)?.iso,
      } as EventDataMap['test.completed'];
    };

    if (!patientRun) {
      // A QC run (MSH-11 Q) measures control material, not the patient: its
      // results are never billing readiness (no result.validated, events/invoice-eligibility.ts)
      // nor a note on an order, even when the control's sample id is also a patient's accession.
      // Kept as `test.completed` of the sample with the run type, in partition specimen:<id> and
      // without accession, as the HL7 analyzer normalizer keeps a run it does not attach to an
      // order. Before, a final QC result delivered (and invoiced) the patient's test of that
      // accession, or was dead-lettered every day as a result without a sale order.
      const sample = { specimenId };
      if (g.obx.length === 0) {
        if (g.obr && orderedCode && (obrStatus === 'F' || OBR_COMPLETED_STATUSES.has(obrStatus))) {
          sink.add('test.completed', g.position, sample, { specimenId, testCode: orderedCode, resultStatus: obrStatus, runType, completedAt: groupTime?.iso } as EventDataMap['test.completed'], groupTime);
        }
        continue;
      }
      for (const obx of g.obx) {
        const status = statusOf(obx);
        if (COMPLETED_STATUSES.has(status)) sink.add('test.completed', obx.index, sample, resultOf(obx, status, undefined), completedAtOf(obx));
        else ctx.notes.push(`OBX at segment ${obx.index + 1} of a ${runType} run has status ${status}: no event`);
      }
      continue;
    }

    // OBR-25 X (table 0123: no results available; order cancelled) — the specimen was unusable and
    // no redraw is asked, the test was withdrawn after it reached the bench: the ordered test will
    // not be done. It is withdrawn as by an ORC-1 CA, so the order is billed for its other tests.
    // Before, it made no event: the line stayed open and the order never became eligible for its
    // invoice. An OBX that holds a result (any status but D/W/X/N) keeps the result path: a test
    // with a value is not withdrawn on a contradicting OBR-25.
    // The same for a final report (OBR-25 F) without any result whose observations could not be
    // obtained (OBX-11 X, table 0085; D/W/N beside them): nothing more will come for the test.
    // Under any other OBR-25 an X may be a draw still to come (corpus oul_r22_hapi-lab-example-03).
    const noResult = g.obx.every((obx) => SKIPPED_STATUSES.has(statusOf(obx)));
    const notObtained = obrStatus === 'F' && g.obx.some((obx) => statusOf(obx) === 'X');
    if (noResult && (obrStatus === 'X' || notObtained) && g.obr && orderedCode) {
      const withdrawnAt = sink.time(g.obr.get(22, 1));
      const reason = obrStatus === 'X' ? 'no results available (OBR-25 X)' : 'results cannot be obtained (OBX-11 X)';
      sink.add('order.cancelled', g.position, ids, { accession: accession || specimenId, tests: [testOf(g.obr) as OrderedTest], reason } as EventDataMap['order.cancelled'], withdrawnAt);
      continue;
    }

    if (g.obx.length === 0) {
      if (!g.obr || !orderedCode) continue;
      // OBR-25 C without OBX: a corrected report validates as the final one (below), beside the
      // test.completed it always made.
      if (obrStatus === 'F' || obrStatus === 'C') {
        sink.add('result.validated', g.position, ids, { accession: accession || specimenId, specimenId, testCode: orderedCode, validatedAt: groupTime?.iso, timeFrom: groupTimeFrom } as EventDataMap['result.validated'], groupTime);
      }
      if (obrStatus === 'I') {
        sink.add('test.in_progress', g.position, ids, { accession: accession || specimenId, specimenId, testCode: orderedCode }, groupTime);
      } else if (OBR_COMPLETED_STATUSES.has(obrStatus)) {
        sink.add('test.completed', g.position, ids, { accession, specimenId, testCode: orderedCode, resultStatus: obrStatus, runType, completedAt: groupTime?.iso } as EventDataMap['test.completed'], groupTime);
      }
      continue;
    }

    // Validated when every OBX is final (OBX-11 F, or empty under OBR-25 F). Under OBR-25 F (the
    // order itself is final) D, W, X and N (deleted, wrong, cannot be obtained, not asked) make no
    // event of their own and do not hold the ordered test back, as long as one OBX is F. Under any
    // other OBR-25 they do: an X under OBR-25 I may be a draw still to come. Never under an OBR-25
    // that says the report is incomplete (O/S/I/A/P/R).
    const incomplete = REPORT_INCOMPLETE_STATUSES.has(obrStatus);
    const validates = (finalStatuses: ReadonlySet<string>, reportFinal: boolean): boolean => {
      if (incomplete) return false;
      let one = false;
      for (const obx of g.obx) {
        const status = statusOf(obx);
        if (finalStatuses.has(status)) one = true;
        else if (!reportFinal || !SKIPPED_STATUSES.has(status)) return false;
      }
      return one;
    };
    const validatedAsFinal = validates(FINAL_STATUSES, obrStatus === 'F');
    // A corrected report (OBX-11 C "replaces a final result", OBR-25 C "correction to results"):
    // the test was done and verified, so it validates the test as its final report does, whether
    // or not the gateway had that final report (refused, or sent before the gateway was
    // installed). Its OBX still make the events they always made (a note of each corrected
    // value); the result.validated comes beside them, keyed at the OBR. A test validated twice
    // (F then C, C then F) is billed once: the relay's line is already delivered and billing's
    // walk counts it billed (events/invoice-eligibility.ts).
    const corrected = !validatedAsFinal && validates(CORRECTED_OR_FINAL_STATUSES, obrStatus === 'F' || obrStatus === 'C');
    // Every OBX final (F, or C) under an OBR-25 that says the report is incomplete: the test is not
    // validated (above), and billing waits for its final report. Said, so that a LIS that writes its
    // finals so and never sends OBR-25 F is found: the message gets `not-final:<test>` and a warning.
    // Before, such an order stayed unbilled with nothing above a debug note (a note not even made).
    if (incomplete && g.obx.length > 0 && g.obx.every((obx) => CORRECTED_OR_FINAL_STATUSES.has(statusOf(obx)))) {
      const testCode = orderedCode || g.obx[0]!.get(3, 1);
      ctx.searchTerms?.push(`not-final:${testCode}`);
      (ctx.warnings ?? ctx.notes).push(
        `OBR at segment ${(g.obr?.index ?? g.obx[0]!.index) + 1}: test ${testCode} of ${accession || specimenId} has every result final under OBR-25 ${obrStatus} (report not complete): noted, not validated; it is billed when the LIS sends its report under OBR-25 F (or C)`,
      );
    }
    if (validatedAsFinal || corrected) {
      const counting = corrected ? CORRECTED_OR_FINAL_STATUSES : FINAL_STATUSES;
      const counted = g.obx.filter((obx) => counting.has(statusOf(obx)));
      const firstFinal = counted[0] as Hl7Segment;
      const only = g.obx.length === 1 ? firstFinal : undefined;
      const testCode = orderedCode || firstFinal.get(3, 1);
      let validatedAt = groupTime;
      if (validatedAt === undefined || counted.length !== g.obx.length) {
        for (const obx of g.obx) {
          if (!counting.has(statusOf(obx))) {
            if (!corrected) ctx.notes.push(`OBX at segment ${obx.index + 1} has status ${statusOf(obx)}: no event`);
          } else if (groupTime === undefined) {
            // The latest observation time of the final OBX (ISO strings of one form sort as text).
            const t = sink.time(obx.get(19, 1)) ?? sink.time(obx.get(14, 1));
            if (t !== undefined && (validatedAt === undefined || t.iso > validatedAt.iso)) validatedAt = t;
          }
        }
      }
      sink.add(
        'result.validated',
        g.position,
        ids,
        { accession: accession || specimenId, specimenId, testCode, value: only && obxValue(only), units: only?.get(6, 1), validatedAt: validatedAt?.iso, timeFrom: validatedAt === undefined ? undefined : validatedAt === groupTime ? groupTimeFrom : 'OBX' } as EventDataMap['result.validated'],
        validatedAt,
      );
      if (!corrected) continue;
    }
    for (const obx of g.obx) {
      const status = statusOf(obx);
      const completedAt = completedAtOf(obx);
      if (status === 'I') {
        sink.add('test.in_progress', obx.index, ids, { accession: accession || specimenId, specimenId, testCode: orderedCode || obx.get(3, 1) }, completedAt);
      } else if (COMPLETED_STATUSES.has(status)) {
        sink.add('test.completed', obx.index, ids, resultOf(obx, status, accession), completedAt);
      } else if (SKIPPED_STATUSES.has(status)) {
        ctx.notes.push(`OBX at segment ${obx.index + 1} has status ${status}: no event`);
      } else {
        ctx.notes.push(`OBX at segment ${obx.index + 1} has unknown status ${status}: no event`);
      }
    }
  }

  // Results that cannot be tied to any order are not acknowledged as taken: the message is
  // refused (AE, ERR naming the OBR) and kept, raw, for the operator; a corrected resend with the
  // same MSH-10 is processed (a refused message carries no duplicate key).
  const skippedAt = sink.firstSkipped;
  const untied = skippedAt === undefined ? undefined : groups.find((g) => g.position === skippedAt || g.obx.some((o) => o.index === skippedAt));
  if (untied) {
    const seg = untied.obr ?? (untied.obx[0] as Hl7Segment);
    const what = untied.obr ? `the results of the OBR at segment ${seg.index + 1}` : `the OBX at segment ${seg.index + 1}`;
    ctx.problems?.push({
      severity: 'error',
      error: {
        code: 101,
        text: `${what} cannot be tied to an order: no order number (ORC-2, OBR-2, ORC-3, OBR-3, ORC-4) and no specimen id (SPM-2)`,
        location: untied.obr ? `OBR^${occurrenceOf(message, seg)}^2` : `OBX^${occurrenceOf(message, seg)}`,
      },
    });
  }
}

export const normalizeLis: Hl7Normalizer = (ctx) => {
  const sink = new EventSink(ctx);
  // A training or debugging message taken (on the sandbox: hl7/processing-id.ts) is found as such.
  const processingTerm = processingIdTerm(ctx.message.header);
  if (processingTerm) ctx.searchTerms?.push(processingTerm);
  // The LIS's history (MSH-11.2 A archive, R restore from archive, I initial load): orders and
  // results that happened before, most of them billed already (by hand before the gateway, or by
  // the gateway the first time). Stored, acknowledged and found as such, and no event: nothing of
  // it reaches Odoo. Before, an initial load after commissioning made every old order a new draft
  // sale order and every old result an invoice.
  const historical = historicalModeKind(ctx.message.header);
  if (historical !== undefined) {
    ctx.searchTerms?.push(processingModeTerm(ctx.message.header) as string);
    ctx.notes.push(`processing mode ${historical} (MSH-11.2): the LIS's history, stored without events`);
    return [];
  }
  switch (ctx.message.header.messageCode) {
    case 'ORM':
    case 'OML':
      normalizeOrders(ctx, sink);
      break;
    case 'ORU':
    case 'OUL':
      normalizeResults(ctx, sink);
      break;
    default:
      break;
  }
  return sink.events;
};

/**
 * Terms for the store's message browser: control id, accessions (placer/filler), specimen ids,
 * and `runType:<t>` for every run type other than `patient` among the message's `events`
 * (test.completed, consumable.used), as ASTM messages have: the technician finds the morning's QC
 * with `runType:qc`, whichever normalizer (LIS, HL7 analyzer profile) made the events.
 */
export function hl7SearchTerms(message: Hl7Message, events: readonly DraftEvent[] = []): string[] {
  // A handful of terms per message: a list with a linear check is cheaper than a Set here.
  const terms: string[] = [];
  const add = (v: string): void => {
    if (v && !terms.includes(v)) terms.push(v);
  };
  add(message.header.controlId);
  for (const seg of message.segments) {
    if (seg.name === 'ORC' || seg.name === 'OBR') {
      add(seg.get(2));
      add(seg.get(3));
    } else if (seg.name === 'SPM') {
      add(seg.get(2, 1, 1));
      add(seg.get(2, 2, 1));
    }
  }
  for (const e of events) {
    const runType = e.type === 'test.completed' || e.type === 'consumable.used' ? e.data.runType : undefined;
    if (runType && runType !== 'patient') add(`runType:${runType}`);
  }
  return terms;
}
