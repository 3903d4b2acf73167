import { hash } from 'node:crypto';
import { idempotencyKey, partitionKeys, resultVersion } from '../events/keys.ts';
import type { DraftEvent, EventDataMap, EventType, RunType } from '../events/types.ts';
import { isGatewayError } from '../errors.ts';
import { processingIdSearchTerm } from '../hl7/processing-id.ts';
import { consumptionDrafts, splitConsumption } from '../profiles/consumption.ts';
import { noteUndatedRun, rowIndexKeyOf } from '../profiles/consumption-keys.ts';
import { altKeyParts, type SameTimeResult } from '../profiles/result-alt-key.ts';
import { findTestMapping } from '../profiles/test-mapping.ts';
import { withProcessingId } from '../profiles/training-run.ts';
import type { FieldCondition, Profile, TestMapping } from '../profiles/types.ts';
import {
  type AstmMessage,
  type AstmRecord,
  type FieldRef,
  astmDateToIso,
  component,
  fieldRepeats,
  fieldText,
  parseAstmMessage,
  parseFieldRef,
  rawField,
  readRef,
} from './records.ts';
import type { AstmDelimiters } from './delimiters.ts';
import type { EarlierCalibrationKeys, HostQuery, HostQueryRequest, NormalizeContext, NormalizeResult, QueriedSpecimen, RunSummary } from './types.ts';

export type { HostQuery, HostQueryRequest, NormalizeContext, NormalizeResult } from './types.ts';

/**
 * Turn one LIS2-A2 message (records joined by CR, link-layer framing already removed) into
 * canonical events, using the analyzer's firmware profile:
 *
 * - every R record (that passes the profile's `resultFilter` and is not an ignored code) →
 *   `test.completed`, the analyzer code mapped through `profile.tests`;
 * - the first sight of a specimen of a patient run in the message → `specimen.received`;
 * - every run (O record with results: patient, QC, calibration, rerun) → `consumable.used` per the
 *   profile's consumption table (per test, per run, dead volume per run); so does every calibration
 *   an analyzer reports in an M record of its own (`profile.calibrationRecords`, cobas c 111 M.CR);
 * - Q records → `hostQuery` (no events; the endpoint answers every Q with `answerHostQuery`).
 *
 * QC and calibration runs are recognised by the profile's `runTypeRules` and carry that runType;
 * they never yield `result.validated` or invoice events (this module only produces the types
 * above). Keys are deterministic (analyzer + specimen + test + time key, and a version part for
 * preliminary and corrected results; see README.md), so a result resent in a new session yields
 * the same idempotency key and the store skips it.
 */
export function normalizeAstmMessage(text: string, ctx: NormalizeContext): NormalizeResult {
  let msg: AstmMessage;
  try {
    msg = parseAstmMessage(text);
  } catch (err) {
    const reason = isGatewayError(err) ? err.message : `unparseable ASTM text: ${(err as Error).message}`;
    return { events: [], messageType: 'ASTM', searchTerms: [], reject: reason, warnings: [], runs: [] };
  }
  return new MessageNormalizer(msg, ctx).run();
}

/**
 * A record's text as if it were the first of its type (sequence number, field 2 LIS2-A2, `1`):
 * what it says, not where it sits. `1`, not empty: a record sent at `M|1` hashes as the whole
 * record did in the releases before (the stored keys of a shipped profile stay what they were).
 */
function atFirstPlace(raw: string, fieldDelimiter: string): string {
  return atPlace(raw, fieldDelimiter, '1');
}

/** A record's text with its sequence number (field 2, LIS2-A2) set to `place`. */
function atPlace(raw: string, fieldDelimiter: string, place: string): string {
  const fields = raw.split(fieldDelimiter);
  if (fields.length > 1) fields[1] = place;
  return fields.join(fieldDelimiter);
}

/**
 * The places (M.2 sequence numbers) an earlier release may have stored an undated calibration at,
 * besides `1` (whose run identity is the one now: only its row-index form is earlier, looked up
 * by consumption-keys.ts, noteUndatedRun): releases before a82316d hashed the whole record, so one
 * stored at `M|2` has the key of that text. The place it is sent at now first (the c 111 resending
 * a message it missed the ACK of), then 2 to EARLIER_CALIBRATION_PLACES (the same calibration
 * resent at another place: alone, or behind other ones).
 */
const EARLIER_CALIBRATION_PLACES = 32;

function earlierPlaces(raw: string, fieldDelimiter: string): string[] {
  const sentAt = raw.split(fieldDelimiter)[1] ?? '1';
  const places = new Set<string>([sentAt]);
  for (let n = 2; n <= EARLIER_CALIBRATION_PLACES; n++) places.add(String(n));
  places.delete('1');
  return [...places];
}

function shortHash(text: string): string {
  return hash('sha256', text, 'hex').slice(0, 16);
}

/** A run time as read from the profile's candidates, and whether an R field gave it. */
interface RunTime {
  raw: string;
  fromResult: boolean;
}

/** One result kept for the run: its canonical test, key time and consumption identity. */
interface KeptResult {
  canonical: string;
  timeKey: string;
  iso: string | undefined;
  runId: string;
  /** Whether the result counts for consumption (see `drawsWithoutOwnTime`). */
  draws: boolean;
  /**
   * The test it counts as for consumption: the canonical code of a mapped test; for a code the
   * profile does not map, the analyzer's test without its qualifier components (Centaur `FT3`
   * for `FT3^RLU` and `FT3^DOSE`), so that the aspects of one measurement draw once.
   */
  consumes: string;
  /** The analyzer's test without qualifiers, for an unmapped aspect of a mapped test. */
  baseCode: string;
  mapped: boolean;
}

/**
 * R.9 codes of a report that is not the measurement's final word (LIS2-A2 §9.9): I pending, P
 * preliminary, S partial, C correction of a result already transmitted.
 */
const NOT_FINAL_REPORT = new Set(['I', 'P', 'S', 'C']);

/**
 * Whether a result timed only by an O or H field (O.7 order time…) counts for consumption. Such a
 * result's identity carries a hash of its value — the only thing that tells a rerun from the first
 * run (both have the order time) — and a pending, preliminary, partial or corrected report shares
 * nothing else with the final it precedes or corrects: keyed on its own value it drew the reagent a
 * second time. So only the report that closes the measurement (F, R, V, empty, X, …) draws; the
 * others are the same measurement, counted by it. A result with an R time (R.13, R.12) is unchanged:
 * its versions share the time and the consumption keys carry no version.
 */
function drawsWithoutOwnTime(status: string): boolean {
  return !NOT_FINAL_REPORT.has(status);
}

type Scope = { header: AstmRecord; patient?: AstmRecord; order?: AstmRecord; result?: AstmRecord; manufacturer?: AstmRecord };

function pick(scope: Scope, ref: FieldRef): AstmRecord | undefined {
  switch (ref.record) {
    case 'H':
      return scope.header;
    case 'P':
      return scope.patient;
    case 'O':
      return scope.order;
    case 'R':
      return scope.result;
    case 'M':
      return scope.manufacturer;
    default:
      return undefined;
  }
}

function readScoped(scope: Scope, refText: string, d: AstmDelimiters): string {
  const ref = parseFieldRef(refText);
  if (!ref) return '';
  return readRef(pick(scope, ref), ref, d);
}

export function conditionHolds(c: FieldCondition, value: string): boolean {
  if (c.equals !== undefined && value !== c.equals) return false;
  if (c.in !== undefined && !c.in.includes(value)) return false;
  if (c.pattern !== undefined && !new RegExp(c.pattern, 'i').test(value)) return false;
  if (c.present !== undefined && (value !== '') !== c.present) return false;
  return true;
}

function allHold(conditions: FieldCondition[] | undefined, scope: Scope, d: AstmDelimiters): boolean {
  return (conditions ?? []).every((c) => conditionHolds(c, readScoped(scope, c.field, d)));
}

/** The analyzer's code from a universal test ID field (R.3 or one O.5 repeat) per the profile layout. */
export function analyzerTestCode(components: string[], profile: Profile): { code: string; loinc?: string; baseCode?: string } {
  const layout = profile.fields.testId;
  const at = (n: number): string => (components[n - 1] ?? '').trim();
  let code = at(layout.codeComponent);
  // A code sent without the `^^^` prefix (mini VIDAS mock `HBCT`, Fig. 7 `LIVER`) is in component 1.
  if (code === '' && components.length === 1) code = at(1);
  if (layout.cutAt && code.includes(layout.cutAt)) code = code.slice(0, code.indexOf(layout.cutAt));
  const qualifiers = (layout.qualifierComponents ?? []).map(at).filter((q) => q !== '');
  // The code without its qualifiers (one measurement's several aspects share it), only when they differ.
  let baseCode: string | undefined;
  if (code !== '' && qualifiers.length > 0) {
    baseCode = code;
    code = [code, ...qualifiers].join('^');
  }
  const loinc = layout.loincComponent ? at(layout.loincComponent) : '';
  const out: { code: string; loinc?: string; baseCode?: string } = loinc ? { code, loinc } : { code };
  if (baseCode !== undefined) out.baseCode = baseCode;
  return out;
}

/**
 * The analyzer's code from a universal test ID in the order layout (O.5, Q.5): the profile's
 * `orderCodeComponent` when it has one (GeneXpert `^^^MTB-RIF`: 4), else the result layout's.
 */
export function analyzerOrderCode(components: string[], profile: Profile): string {
  const at = profile.fields.testId.orderCodeComponent;
  const code = at !== undefined ? (components[at - 1] ?? '').trim() : '';
  return code !== '' ? code : analyzerTestCode(components, profile).code;
}

class MessageNormalizer {
  readonly #msg: AstmMessage;
  readonly #ctx: NormalizeContext;
  readonly #d: AstmDelimiters;
  readonly #events: DraftEvent[] = [];
  readonly #warnings: string[] = [];
  readonly #terms = new Set<string>();
  readonly #runs: RunSummary[] = [];
  readonly #earlierCalibrationKeys: EarlierCalibrationKeys[] = [];
  /**
   * The test.completed events of this message, with what their key is made of: the key is set
   * once every result is known, its `alt:` part chosen by content (profiles/result-alt-key.ts).
   */
  readonly #resultKeys: Array<{ result: SameTimeResult; event: DraftEvent; key: (alt: string | undefined) => string }> = [];
  readonly #controlId: string | undefined;
  #lots: ReadonlyMap<string, string> = new Map();

  constructor(msg: AstmMessage, ctx: NormalizeContext) {
    this.#msg = msg;
    this.#ctx = ctx;
    this.#d = msg.delimiters;
    const controlId = fieldText(msg.header, 3, this.#d).trim();
    this.#controlId = controlId === '' ? undefined : controlId;
  }

  /** Reagent name → lot from the M records the profile's `reagentLots` describes. */
  #reagentLots(): Map<string, string> {
    const lots = new Map<string, string>();
    const source = this.#ctx.profile.reagentLots;
    if (!source) return lots;
    const d = this.#d;
    const mRecords = this.#msg.records.filter((r) => r.type === 'M');
    for (const m of mRecords) {
      if (!allHold(source.when, { header: this.#msg.header, manufacturer: m }, d)) continue;
      const names = fieldRepeats(m, source.namesField, d).map((rep) => (rep[0] ?? '').trim().toUpperCase());
      const lotReps = fieldRepeats(m, source.lotsField, d);
      names.forEach((name, i) => {
        const lot = (lotReps[i]?.[source.lotComponent - 1] ?? '').trim().replace(/\*$/, '');
        if (name !== '' && lot !== '') lots.set(name, lot);
      });
    }
    return lots;
  }

  run(): NormalizeResult {
    this.#lots = this.#reagentLots();
    const seenSpecimens = new Set<string>();
    let results = 0;
    let orders = 0;
    for (const patient of this.#msg.patients) {
      for (const order of patient.orders) {
        orders++;
        results += order.results.length;
        this.#order(patient.record, order.record, order.results.map((r) => r.record), seenSpecimens);
      }
    }
    const calibrations = this.#calibrations();
    let hostQuery: HostQuery | undefined;
    if (this.#msg.queries.length > 0) {
      // Every Q record is a request (LIS2-A2 §11; an analyzer scanning a rack asks for each tube
      // in one message): all are answered in one reply (answerHostQuery).
      hostQuery = this.#hostQuery(this.#msg.queries);
      for (const r of hostQuery.requests ?? [hostQuery]) for (const s of r.specimens) this.#terms.add(s.specimenId);
    }
    const messageType = hostQuery ? 'ASTM^QUERY' : results > 0 ? 'ASTM^RESULT' : calibrations > 0 ? 'ASTM^CALIBRATION' : orders > 0 ? 'ASTM^ORDER' : 'ASTM^OTHER';
    if (this.#controlId) this.#terms.add(this.#controlId);
    this.#keyResults();
    const trainingTerm = processingIdSearchTerm(this.#processingId());
    if (trainingTerm) this.#terms.add(trainingTerm);
    const sender = this.#sender();
    const out: NormalizeResult = {
      events: this.#events,
      messageType,
      searchTerms: [...this.#terms],
      warnings: [...this.#msg.warnings, ...this.#warnings],
      runs: this.#runs,
    };
    if (this.#controlId) out.controlId = this.#controlId;
    if (sender) out.sender = sender;
    if (hostQuery) out.hostQuery = hostQuery;
    if (this.#earlierCalibrationKeys.length > 0) out.earlierCalibrationKeys = this.#earlierCalibrationKeys;
    return out;
  }

  #sender(): string | undefined {
    const reps = fieldRepeats(this.#msg.header, 5, this.#d)[0] ?? [];
    const joined = reps.map((c) => c.trim()).join('^').replace(/\^+$/, '');
    return joined === '' ? undefined : joined;
  }

  #value(text: string): string {
    return this.#ctx.profile.quirks.trimValues ? text.trim() : text;
  }

  /** The first non-empty of `refs` (the profile's `fields.specimenId`, or a calibration record's `specimenId`). */
  #specimenId(scope: Scope, refs: readonly string[] = this.#ctx.profile.fields.specimenId): string {
    for (const ref of refs) {
      const v = readScoped(scope, ref, this.#d);
      if (v !== '') return v;
    }
    return '';
  }

  /** The profile's rules, first match wins, else patient; a sample run under H.12 T/D is a training run (training-run.ts). */
  #runType(scope: Scope): RunType {
    const byRules = this.#ctx.profile.runTypeRules.find((rule) => allHold(rule.when, scope, this.#d))?.runType ?? 'patient';
    return withProcessingId(byRules, this.#processingId());
  }

  /** H.12 processing id, first component (LIS2-A2 §7.1.12: P production, T training, D debugging, Q QC). */
  #processingId(): string {
    return component(this.#msg.header, 12, 1, this.#d);
  }

  /**
   * A raw time (LIS2-A2 YYYYMMDDHHMMSS) from one of the profile's candidate lists, first valid
   * wins: `fields.runTime` (completedAt, occurredAt) or `fields.keyTime` (idempotency keys and the
   * consumption run identity; the run time unless the profile keeps the list its keys were built on).
   */
  #time(scope: Scope, refs: readonly string[]): RunTime | undefined {
    for (const refText of refs) {
      const ref = parseFieldRef(refText);
      if (!ref) continue;
      const v = readRef(pick(scope, ref), ref, this.#d);
      if (v !== '' && astmDateToIso(v)) return { raw: v, fromResult: ref.record === 'R' };
    }
    return undefined;
  }

  /**
   * A result field the profile places (`fields.abnormalFlags`, `fields.resultStatus`): the first
   * non-empty of its references, read from the result with its H, P and O records like the run
   * time. A reference without a component reads `whole` of the field (the flags as sent, the
   * status code); the DxH keeps both one field later than LIS2-A2 (R.8, R.10).
   */
  #placed(scope: Scope, refs: readonly string[], whole: (rec: AstmRecord, field: number) => string): string {
    for (const refText of refs) {
      const ref = parseFieldRef(refText);
      const rec = ref ? pick(scope, ref) : undefined;
      if (!ref || !rec) continue;
      const v = this.#value(ref.component === undefined ? whole(rec, ref.field) : component(rec, ref.field, ref.component, this.#d));
      if (v !== '') return v;
    }
    return '';
  }

  /**
   * The run's identity for consumption keys: the start time (R.12) when the profile lists it among
   * its key-time fields and the record has it, else the time key. A result reported pending (R.9 I,
   * no completion time R.13 yet) and then final shares its start time, not its R.13: keyed on R.13
   * the two reports consumed the reagent twice. A rerun has another start time. (A pending report
   * with no start time either still gets a key of its own: nothing in it ties it to its final.)
   * Read from `fields.keyTime`, like the time key, so that a profile moving its run time to a
   * better field keeps its consumption keys.
   */
  #runIdentity(scope: Scope, timeKey: string): string {
    if (!this.#ctx.profile.fields.keyTime.includes('R.12')) return timeKey;
    const started = readScoped(scope, 'R.12', this.#d);
    return started !== '' && astmDateToIso(started) ? started : timeKey;
  }

  #order(patient: AstmRecord | undefined, order: AstmRecord, results: AstmRecord[], seenSpecimens: Set<string>): void {
    const { profile, analyzerId } = this.#ctx;
    const d = this.#d;
    const scope: Scope = { header: this.#msg.header, order };
    if (patient) scope.patient = patient;
    let specimenId = this.#specimenId(scope);
    if (specimenId === '') {
      specimenId = `unidentified-${shortHash(order.raw)}`;
      this.#warnings.push(`O record ${order.index + 1}: no specimen id in ${profile.fields.specimenId.join(', ')}; using ${specimenId}`);
    }
    const firstResult = results[0];
    const runType = this.#runType(firstResult ? { ...scope, result: firstResult } : scope);
    const billableRun = runType === 'patient' || runType === 'rerun';
    this.#terms.add(specimenId);
    if (runType !== 'patient') this.#terms.add(`runType:${runType}`);

    const kept: KeptResult[] = [];
    const unmapped: string[] = [];
    // Consumption identity of results without a time of their own (see #sharedRunId).
    const groups = new Map<string, { runId: string; codes: Set<string> }>();
    for (const result of results) {
      const rscope: Scope = { ...scope, result };
      if (!allHold(profile.resultFilter, rscope, d)) continue;
      const { code: analyzerCode, loinc: sentLoinc, baseCode = analyzerCode } = analyzerTestCode(fieldRepeats(result, 3, d)[0] ?? [], profile);
      if (analyzerCode === '') {
        this.#warnings.push(`R record ${result.index + 1}: no test code in R.3 (component ${profile.fields.testId.codeComponent})`);
        continue;
      }
      const mapping: TestMapping | undefined = findTestMapping(profile, analyzerCode);
      if (mapping?.ignore) continue;
      if (!mapping && profile.unmappedTests === 'report') {
        unmapped.push(analyzerCode);
        this.#terms.add(`unmapped:${analyzerCode}`);
        this.#warnings.push(`R record ${result.index + 1}: analyzer code "${analyzerCode}" has no mapping in profile "${profile.name}"; passed on unmapped`);
      }
      const canonical = mapping?.code ?? analyzerCode;
      // An unmapped code counts for consumption as its test without qualifiers: see KeptResult.
      const consumes = mapping ? canonical : baseCode;
      const mapped = mapping !== undefined;
      // Multi-component values (cobas `-1^0.325` interpretation^index, DxH `146!H`) are passed on
      // with `^` between components, whatever the analyzer's component delimiter.
      const value = (fieldRepeats(result, 4, d)[0] ?? []).map((c) => this.#value(c)).join('^').replace(/\^+$/, '');
      // The keys (and the consumption run identity) have their own time source, `fields.keyTime`
      // (default: the run time), so that keys of a shipped profile stay what they were when its
      // run time moves to a better field (DxH: R.14): a result stored before and resent after
      // keeps its key. The run time gives completedAt and occurredAt only.
      const time = this.#time(rscope, profile.fields.runTime);
      const keyed = this.#time(rscope, profile.fields.keyTime);
      // A time from the O or H record is the same for a first run and its rerun (O.7 is the order
      // time): the result's own content (full R.3, dilution included, and value) tells them apart.
      const timeKey = !keyed ? `rec:${shortHash(result.raw)}` : keyed.fromResult ? keyed.raw : `${keyed.raw}~${shortHash(`${rawField(result, 3)}\u0000${value}`)}`;
      const iso = time ? astmDateToIso(time.raw) : undefined;
      const status = this.#placed(rscope, profile.fields.resultStatus, (rec, n) => component(rec, n, 1, d));
      // Keyed on an O/H field: a pending, preliminary or corrected report does not draw (nor open
      // a group of #sharedRunId); its final does.
      const draws = !keyed || keyed.fromResult || drawsWithoutOwnTime(status.trim());
      const runId = !draws ? '' : !keyed || !keyed.fromResult ? this.#sharedRunId(groups, keyed ? `${consumes}\u0000${keyed.raw}` : '', analyzerCode, timeKey) : this.#runIdentity(rscope, timeKey);
      if (status === 'X' || status === 'I') {
        // LIS2-A2 §9.9: X = the order cannot be done, I = in instrument, pending. Neither is a
        // completed test; the run still used reagent, so the test counts for consumption.
        this.#warnings.push(`R record ${result.index + 1}: "${analyzerCode}" has status ${status} (${status === 'X' ? 'cannot be done' : 'pending'}): no test.completed`);
        kept.push({ canonical, timeKey, iso, runId, draws, consumes, baseCode, mapped });
        continue;
      }
      const data: EventDataMap['test.completed'] = {
        specimenId,
        testCode: canonical,
        analyzerTestCode: analyzerCode,
        runType,
      };
      if (billableRun) data.accession = specimenId;
      const loinc = mapping?.loinc ?? sentLoinc;
      if (loinc) data.loinc = loinc;
      if (value !== '') data.value = value;
      const units = this.#value(fieldText(result, 5, d)) || mapping?.units || '';
      if (units !== '') data.units = units;
      const flags = this.#placed(rscope, profile.fields.abnormalFlags, (rec, n) => fieldText(rec, n, d));
      if (flags !== '') data.abnormalFlags = flags;
      if (status !== '') data.resultStatus = status;
      if (iso) data.completedAt = iso;
      const version = resultVersion(status.trim(), value, units, flags);
      const event = this.#push('test.completed', {
        occurredAt: iso ?? this.#headerTime() ?? this.#ctx.receivedAt,
        idempotencyKey: '', // set by #keyResults
        correlationId: specimenId,
        partitionKey: billableRun ? partitionKeys.order(specimenId) : partitionKeys.specimen(specimenId),
        data,
      });
      this.#resultKeys.push({
        result: { slot: [specimenId, analyzerCode, timeKey].join('\u0000'), value, units, flags, mappedUnits: mapping?.units },
        event,
        // The key of a final result (and of its resends: R, V) has no version part: unchanged.
        // A second result of the same code and time in the message (HbA1c in % and mmol/mol)
        // gets an `alt:` part: keyed alike, the store skipped it as a resend of the first.
        key: (alt) => idempotencyKey('astm', analyzerId, 'result', specimenId, analyzerCode, timeKey, ...(alt ? [alt] : []), ...(version ? [version] : [])),
      });
      kept.push({ canonical, timeKey, iso, runId, draws, consumes, baseCode, mapped });
    }

    if (kept.length === 0) return;
    const runKey = kept[0]!.timeKey;
    const runIso = kept[0]!.iso ?? this.#headerTime() ?? this.#ctx.receivedAt;
    const tests = [...new Set(kept.map((k) => k.canonical))];
    this.#runs.push({ specimenId, runType, tests, unmapped });

    if (billableRun && !seenSpecimens.has(specimenId)) {
      seenSpecimens.add(specimenId);
      const data: EventDataMap['specimen.received'] = { accession: specimenId, specimenId, receivedAt: runIso };
      const specimenType = this.#value(component(order, 16, 1, d));
      if (specimenType !== '') data.specimenType = specimenType;
      const collected = astmDateToIso(component(order, 8, 1, d));
      if (collected) data.collectedAt = collected;
      this.#push('specimen.received', {
        occurredAt: runIso,
        // Once per analyzer, specimen and day: a rerun the same day is not a new receipt.
        idempotencyKey: idempotencyKey('astm', analyzerId, 'specimen', specimenId, runKey.startsWith('rec:') ? 'undated' : runKey.slice(0, 8)),
        correlationId: specimenId,
        partitionKey: partitionKeys.order(specimenId),
        data,
      });
    }
    // An unmapped aspect of a test whose mapped aspect is in the same run (a new `INDX` beside
    // a mapped `DOSE`) is that test's measurement: it draws nothing of its own.
    const drawing = kept.filter(
      (k) => k.draws && (k.mapped || !kept.some((m) => m.mapped && m.draws && m.baseCode === k.baseCode && m.runId === k.runId)),
    );
    if (drawing.length > 0) {
      const drawnTests = [...new Set(drawing.map((k) => k.consumes))];
      // A report of the run that is not its final word for every result (a parameter preliminary,
      // partial, pending or corrected, keyed on an O/H time) leaves the per-run rows to the final
      // report: their identity is the earliest of the drawing results, and the result that does not
      // draw here may hold the final report's earliest (see #consumption).
      const perRun = kept.every((k) => k.draws);
      this.#consumption(specimenId, runType, drawing, drawnTests, drawing[0]!.iso ?? this.#headerTime() ?? this.#ctx.receivedAt, perRun);
    }
  }

  /**
   * Calibrations reported in M records of their own (`profile.calibrationRecords`; cobas c 111
   * M.CR, which comes between H and L with no P, O or R record): each is one run of type
   * `calibration` of the test it names, and consumes what a run of that test consumes (its
   * per-test rows, the `test: "*"` rows, the per-run rows), as a QC run of the test does. Before,
   * such a message made no run: the reagent and cuvettes of every calibration never left stock.
   * No `test.completed`: a calibration is no result of a specimen. The run identity is the
   * calibration time with the analyzer's code, so the same calibration sent again (another
   * session, another H.14) draws nothing more and a recalibration at another time draws again.
   * A calibration without a time is known by what the record reports of it (c 111 5.2.2.10: the
   * test, the reagent and calibrator lots, the curve, each level's readings), not by its sequence
   * number (field 2, its place in the message, LIS2-A2), hashed as if at `M|1`: before, the whole
   * record was hashed, and the same calibration resent behind another one (M|2 instead of M|1)
   * drew its reagent twice. A record at `M|1` keeps the key the whole-record hash gave it (the
   * keys stored by earlier releases); one that an earlier release stored at `M|2` or later and
   * that is resent after the upgrade is keyed anew (test/unit/astm-c111-calibration-key.test.ts).
   * Returns how many calibrations the message holds.
   */
  #calibrations(): number {
    const { profile, analyzerId } = this.#ctx;
    const source = profile.calibrationRecords;
    if (!source) return 0;
    const d = this.#d;
    let count = 0;
    for (const m of this.#msg.records) {
      if (m.type !== 'M') continue;
      const scope: Scope = { header: this.#msg.header, manufacturer: m };
      if (!allHold(source.when, scope, d)) continue;
      const analyzerCode = readScoped(scope, source.testCode, d);
      if (analyzerCode === '') {
        this.#warnings.push(`M record ${m.index + 1}: a calibration without a test code in ${source.testCode}; nothing consumed`);
        continue;
      }
      const mapping = findTestMapping(profile, analyzerCode);
      if (mapping?.ignore) continue;
      const unmapped: string[] = [];
      if (!mapping && profile.unmappedTests === 'report') {
        unmapped.push(analyzerCode);
        this.#terms.add(`unmapped:${analyzerCode}`);
        this.#warnings.push(`M record ${m.index + 1}: calibrated test "${analyzerCode}" has no mapping in profile "${profile.name}"; consumed unmapped`);
      }
      const testCode = mapping?.code ?? analyzerCode;
      const specimenId = this.#specimenId(scope, source.specimenId ?? []) || `CAL-${analyzerCode}`;
      const time = this.#time(scope, source.time);
      const runType = withProcessingId('calibration', this.#processingId());
      count++;
      this.#terms.add(specimenId);
      this.#terms.add(`runType:${runType}`);
      this.#runs.push({ specimenId, runType, tests: [testCode], unmapped });
      if (profile.consumption.length === 0) continue;
      const runKey = `${time ? time.raw : `rec:${shortHash(atFirstPlace(m.raw, d.field))}`}~${analyzerCode}`;
      const runAt = (time && astmDateToIso(time.raw)) ?? this.#headerTime() ?? this.#ctx.receivedAt;
      const run = { profile, analyzerId, specimenId, runType, tests: [testCode], runKey, runAt, receivedAt: this.#ctx.receivedAt, source: this.#source(), keyPrefix: 'astm', reagentLots: this.#lots };
      const drafts = consumptionDrafts(run);
      this.#events.push(...drafts);
      if (!time && drafts.length > 0) {
        // The keys an earlier release may hold for it (a whole-record hash at another place):
        // looked up in the store before the commit (calibration-keys.ts).
        // Those releases keyed a draw by its row's index in the table (consumption-keys.ts). The
        // place `1` (the run identity of now) is looked up in that form by consumption-keys.ts,
        // draw by draw and at the indices an edited table can have had, and for good: the
        // calibration is dated by its message, so a re-send past the consumption window is not
        // known by its date as one taken before. Before, this look-up tried `1` too, at the
        // indices of now and by position: with a table edited since, the calibration's first
        // draw was found and the rows the edit moved were drawn again
        // (test/integration/review-s23c-calibration-edited-table.test.ts).
        for (const draft of drafts) noteUndatedRun(draft);
        const keysAt = (place: string): string[] => consumptionDrafts({ ...run, runKey: `rec:${shortHash(atPlace(m.raw, d.field, place))}~${analyzerCode}` }).map((e) => rowIndexKeyOf(e) ?? e.idempotencyKey);
        this.#earlierCalibrationKeys.push({ keys: drafts.map((e) => e.idempotencyKey), earlier: earlierPlaces(m.raw, d.field).map(keysAt) });
      }
    }
    return count;
  }

  /**
   * The keys of this message's results, once all are known: a result sharing its specimen, code
   * and time key with another of the message but not its content (one measurement in two units:
   * Afinion 2 HbA1c 5.1 % and 32 mmol/mol, one completion time) gets an `alt:` part, unless it is
   * the one in the units the profile maps for the test (profiles/result-alt-key.ts). Chosen by
   * content, so a resend listing them the other way round gives each the key it had.
   */
  #keyResults(): void {
    const alts = altKeyParts(this.#resultKeys.map((r) => r.result));
    this.#resultKeys.forEach((r, i) => (r.event.idempotencyKey = r.key(alts[i])));
  }

  /**
   * Consumption identity of a result whose time is not its own (O/H field) or missing: the
   * identity of the first result of the same group (test and time; all undated results of the
   * order form one group), so that the parameters of one test (a CBC's WBC, RBC, …) are one
   * measurement. The same analyzer code again in the group is a rerun: it starts a new group.
   */
  #sharedRunId(groups: Map<string, { runId: string; codes: Set<string> }>, group: string, analyzerCode: string, timeKey: string): string {
    const g = groups.get(group);
    if (g && !g.codes.has(analyzerCode)) {
      g.codes.add(analyzerCode);
      return g.runId;
    }
    groups.set(group, { runId: timeKey, codes: new Set([analyzerCode]) });
    return timeKey;
  }

  /**
   * `consumable.used` for one order's results: per-test rows once per distinct (test, run
   * identity) pair, keyed on that identity (a test measured twice, e.g. an automatic rerun at
   * dilution, draws reagent twice); per-run rows (dead volume) once, keyed on the earliest
   * identity among the results, so that a later message about the same run listing another test
   * first yields the same keys. When every result shares one identity (the usual case) this is
   * one pass over the table, with the keys it always had.
   *
   * `perRun` false: the per-test rows only. A message in which some result of the run does not
   * draw (a preliminary, partial, pending or corrected report keyed on an O/H time: each identity
   * carries a hash of its value) cannot know the identity the final report keys the per-run rows
   * on — the earliest of all its results, which may be the one not drawing here. Before, such a
   * message keyed them on another result, and the final report drew them again: a DxH CBC with one
   * parameter preliminary, then final, or corrected after its final, drew its diluent, lyse, diff
   * pack and cleaner twice (test/unit/astm-per-run-report-audit.test.ts). The final report draws
   * them, as it draws the per-test rows of the results reported preliminary.
   */
  #consumption(specimenId: string, runType: RunType, kept: KeptResult[], tests: string[], runIso: string, perRun: boolean): void {
    const { profile, analyzerId } = this.#ctx;
    if (profile.consumption.length === 0) return;
    const base = { analyzerId, specimenId, runType, receivedAt: this.#ctx.receivedAt, source: this.#source(), keyPrefix: 'astm', reagentLots: this.#lots };
    const first = kept[0]!;
    if (kept.every((k) => k.runId === first.runId)) {
      this.#events.push(...consumptionDrafts({ ...base, profile: perRun ? profile : splitConsumption(profile).perTest, tests, runKey: first.runId, runAt: runIso }));
      return;
    }
    const { perTest, perRun: perRunRows } = splitConsumption(profile);
    const byRun = new Map<string, { tests: Set<string>; iso: string | undefined }>();
    let earliest = first;
    for (const k of kept) {
      const run = byRun.get(k.runId);
      if (run) run.tests.add(k.consumes);
      else byRun.set(k.runId, { tests: new Set([k.consumes]), iso: k.iso });
      if (k.runId < earliest.runId) earliest = k;
    }
    const fallbackIso = this.#headerTime() ?? this.#ctx.receivedAt;
    for (const [runId, run] of byRun) {
      this.#events.push(...consumptionDrafts({ ...base, profile: perTest, tests: [...run.tests], runKey: runId, runAt: run.iso ?? fallbackIso }));
    }
    if (perRun) this.#events.push(...consumptionDrafts({ ...base, profile: perRunRows, tests, runKey: earliest.runId, runAt: earliest.iso ?? fallbackIso }));
  }

  #headerTime(): string | undefined {
    return astmDateToIso(fieldText(this.#msg.header, 14, this.#d));
  }

  #source(): DraftEvent['source'] {
    const source: DraftEvent['source'] = { kind: 'astm', endpoint: this.#ctx.endpoint, analyzer: this.#ctx.analyzerId };
    if (this.#controlId) source.controlId = this.#controlId;
    return source;
  }

  #push<T extends EventType>(type: T, e: { occurredAt: string; idempotencyKey: string; correlationId: string; partitionKey: string; data: EventDataMap[T] }): DraftEvent {
    const event = { type, receivedAt: this.#ctx.receivedAt, source: this.#source(), ...e } as DraftEvent;
    this.#events.push(event);
    return event;
  }

  /**
   * The host query of a message's Q records: the first one's request with the header to address
   * the reply, as always, and, when there are several, every request in `requests`.
   */
  #hostQuery(queries: AstmRecord[]): HostQuery {
    const d = this.#d;
    const h = this.#msg.header;
    const requests = queries.map((q) => this.#request(q));
    const header: HostQuery['header'] = {
      sender: fieldRepeats(h, 5, d)[0]?.map((c) => c.trim()) ?? [],
      receiver: fieldRepeats(h, 10, d)[0]?.map((c) => c.trim()) ?? [],
      comment: fieldRepeats(h, 11, d)[0]?.map((c) => c.trim()) ?? [],
      processingId: component(h, 12, 1, d).trim(),
      version: component(h, 13, 1, d).trim(),
    };
    if (this.#controlId) header.controlId = this.#controlId;
    // The first request's fields, in the order a one-Q message always had them.
    const { range, ...first } = requests[0]!;
    const query: HostQuery = { ...first, header, delimiters: d };
    if (range) query.range = range;
    if (requests.length > 1) query.requests = requests;
    return query;
  }

  /** One Q record: the specimens of Q.3/Q.4 (a range when they differ), Q.5 tests, Q.13 status. */
  #request(q: AstmRecord): HostQueryRequest {
    const d = this.#d;
    const wanted = this.#ctx.profile.hostQuery.specimenIdComponent;
    const specimens: QueriedSpecimen[] = [];
    let all = false;
    // The first specimen of Q.3 (starting range) and of Q.4 (ending range).
    const ends: Array<QueriedSpecimen | undefined> = [undefined, undefined];
    for (const fieldNo of [3, 4]) {
      for (const rep of fieldRepeats(q, fieldNo, d)) {
        const comps = rep.map((c) => c.trim());
        if (comps.length === 1 && comps[0]!.toUpperCase() === 'ALL') {
          all = true;
          continue;
        }
        const specimenId = comps[wanted - 1] || comps[1] || comps[2] || (comps.length === 1 ? comps[0]! : '');
        if (specimenId === '') continue;
        const s: QueriedSpecimen = { specimenId, components: comps };
        if (comps[0]) s.patientId = comps[0];
        ends[fieldNo - 3] ??= s;
        if (specimens.some((x) => x.specimenId === specimenId)) continue;
        specimens.push(s);
      }
    }
    // Q.5 is a universal test ID in the order layout (as O.5: GeneXpert ^^^MTB-RIF, code in
    // component 4), not the result layout of R.3: read with the profile's orderCodeComponent.
    const testReps = fieldRepeats(q, 5, d);
    const isAll = (rep: string[]): boolean => rep.some((c) => c.trim().toUpperCase() === 'ALL');
    const requested = testReps.some(isAll) ? [] : testReps.map((rep) => analyzerOrderCode(rep, this.#ctx.profile)).filter((c) => c !== '');
    // No test named (absent, ALL in any component, or repeats that give no code): every test
    // ordered. An empty list would match nothing and answer "no order" for an ordered tube.
    if (testReps.length > 0 && !testReps.some(isAll) && requested.length === 0) {
      this.#warnings.push(`Q.5 names no test code the profile can read (${fieldText(q, 5, d).trim()}); answered with every ordered test`);
    }
    const tests: string[] | 'ALL' = requested.length === 0 ? 'ALL' : requested;
    const statusCode = component(q, 13, 1, d).trim();
    const request: HostQueryRequest = {
      sequence: fieldText(q, 2, d).trim() || '1',
      specimens,
      all,
      tests,
      statusCode,
      cancel: statusCode === 'A',
    };
    const [from, to] = ends;
    if (from && to && from.specimenId !== to.specimenId) request.range = { from, to };
    return request;
  }
}
