import { createHash } from 'node:crypto';
import { idempotencyKey, partitionKeys } from '../events/keys.ts';
import type { DraftEvent, EventDataMap, EventType, RunType } from '../events/types.ts';
import { isGatewayError } from '../errors.ts';
import { consumptionDrafts } from '../profiles/consumption.ts';
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
  readRef,
} from './records.ts';
import type { AstmDelimiters } from './delimiters.ts';
import type { HostQuery, NormalizeContext, NormalizeResult, QueriedSpecimen, RunSummary } from './types.ts';

export type { HostQuery, NormalizeContext, NormalizeResult } from './types.ts';

/**
 * Turn one LIS2-A2 message (records joined by CR, link-layer framing already removed) into
 * canonical events, using the analyzer's firmware profile:
 *
 * - every R record (that passes the profile's `resultFilter` and is not an ignored code) →
 *   `test.completed`, the analyzer code mapped through `profile.tests`;
 * - the first sight of a specimen of a patient run in the message → `specimen.received`;
 * - every run (O record with results: patient, QC, calibration, rerun) → `consumable.used` per the
 *   profile's consumption table (per test, per run, dead volume per run);
 * - a Q record → `hostQuery` (no events; the endpoint answers it with `answerHostQuery`).
 *
 * QC and calibration runs are recognised by the profile's `runTypeRules` and carry that runType;
 * they never yield `result.validated` or invoice events (this module only produces the types
 * above). Keys are deterministic (analyzer + specimen + test + run time), so a result resent in a
 * new session yields the same idempotency key and the store skips it.
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

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
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
export function analyzerTestCode(components: string[], profile: Profile): { code: string; loinc?: string } {
  const layout = profile.fields.testId;
  const at = (n: number): string => (components[n - 1] ?? '').trim();
  let code = at(layout.codeComponent);
  // A code sent without the `^^^` prefix (mini VIDAS mock `HBCT`, Fig. 7 `LIVER`) is in component 1.
  if (code === '' && components.length === 1) code = at(1);
  if (layout.cutAt && code.includes(layout.cutAt)) code = code.slice(0, code.indexOf(layout.cutAt));
  const qualifiers = (layout.qualifierComponents ?? []).map(at).filter((q) => q !== '');
  if (code !== '' && qualifiers.length > 0) code = [code, ...qualifiers].join('^');
  const loinc = layout.loincComponent ? at(layout.loincComponent) : '';
  return loinc ? { code, loinc } : { code };
}

class MessageNormalizer {
  readonly #msg: AstmMessage;
  readonly #ctx: NormalizeContext;
  readonly #d: AstmDelimiters;
  readonly #events: DraftEvent[] = [];
  readonly #warnings: string[] = [];
  readonly #terms = new Set<string>();
  readonly #runs: RunSummary[] = [];
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
    let hostQuery: HostQuery | undefined;
    if (this.#msg.queries.length > 0) {
      // LIS2-A2 §11: "Only one request record may be outstanding at a time".
      hostQuery = this.#hostQuery(this.#msg.queries[0]!);
      if (this.#msg.queries.length > 1) this.#warnings.push(`${this.#msg.queries.length} Q records: only the first is answered (LIS2-A2 §11)`);
      for (const s of hostQuery.specimens) this.#terms.add(s.specimenId);
    }
    const messageType = hostQuery ? 'ASTM^QUERY' : results > 0 ? 'ASTM^RESULT' : orders > 0 ? 'ASTM^ORDER' : 'ASTM^OTHER';
    if (this.#controlId) this.#terms.add(this.#controlId);
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

  #specimenId(scope: Scope): string {
    for (const ref of this.#ctx.profile.fields.specimenId) {
      const v = readScoped(scope, ref, this.#d);
      if (v !== '') return v;
    }
    return '';
  }

  #runType(scope: Scope): RunType {
    for (const rule of this.#ctx.profile.runTypeRules) {
      if (allHold(rule.when, scope, this.#d)) return rule.runType;
    }
    return 'patient';
  }

  /** The raw run time (LIS2-A2 YYYYMMDDHHMMSS) from the profile's candidates, first valid wins. */
  #runTime(scope: Scope): string | undefined {
    for (const ref of this.#ctx.profile.fields.runTime) {
      const v = readScoped(scope, ref, this.#d);
      if (v !== '' && astmDateToIso(v)) return v;
    }
    return undefined;
  }

  /**
   * The run's identity for consumption keys: the start time (R.12) when the profile lists it among
   * its run-time fields and the record has it, else the run time. A result reported pending (R.9 I,
   * no completion time R.13 yet) and then final shares its start time, not its R.13: keyed on R.13
   * the two reports consumed the reagent twice. A rerun has another start time. (A pending report
   * with no start time either still gets a key of its own: nothing in it ties it to its final.)
   */
  #runIdentity(scope: Scope, timeKey: string): string {
    if (!this.#ctx.profile.fields.runTime.includes('R.12')) return timeKey;
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

    const kept: Array<{ canonical: string; timeKey: string; iso: string | undefined; runId: string }> = [];
    const unmapped: string[] = [];
    for (const result of results) {
      const rscope: Scope = { ...scope, result };
      if (!allHold(profile.resultFilter, rscope, d)) continue;
      const { code: analyzerCode, loinc: sentLoinc } = analyzerTestCode(fieldRepeats(result, 3, d)[0] ?? [], profile);
      if (analyzerCode === '') {
        this.#warnings.push(`R record ${result.index + 1}: no test code in R.3 (component ${profile.fields.testId.codeComponent})`);
        continue;
      }
      const mapping: TestMapping | undefined = profile.tests[analyzerCode];
      if (mapping?.ignore) continue;
      if (!mapping && profile.unmappedTests === 'report') {
        unmapped.push(analyzerCode);
        this.#terms.add(`unmapped:${analyzerCode}`);
        this.#warnings.push(`R record ${result.index + 1}: analyzer code "${analyzerCode}" has no mapping in profile "${profile.name}"; passed on unmapped`);
      }
      const canonical = mapping?.code ?? analyzerCode;
      const rawTime = this.#runTime(rscope);
      const timeKey = rawTime ?? `rec:${shortHash(result.raw)}`;
      const iso = rawTime ? astmDateToIso(rawTime) : undefined;
      const status = this.#value(component(result, 9, 1, d));
      if (status === 'X' || status === 'I') {
        // LIS2-A2 §9.9: X = the order cannot be done, I = in instrument, pending. Neither is a
        // completed test; the run still used reagent, so the test counts for consumption.
        this.#warnings.push(`R record ${result.index + 1}: "${analyzerCode}" has status ${status} (${status === 'X' ? 'cannot be done' : 'pending'}): no test.completed`);
        kept.push({ canonical, timeKey, iso, runId: this.#runIdentity(rscope, timeKey) });
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
      // Multi-component values (cobas `-1^0.325` interpretation^index, DxH `146!H`) are passed on
      // with `^` between components, whatever the analyzer's component delimiter.
      const value = (fieldRepeats(result, 4, d)[0] ?? []).map((c) => this.#value(c)).join('^').replace(/\^+$/, '');
      if (value !== '') data.value = value;
      const units = this.#value(fieldText(result, 5, d)) || mapping?.units || '';
      if (units !== '') data.units = units;
      const flags = this.#value(fieldText(result, 7, d));
      if (flags !== '') data.abnormalFlags = flags;
      if (status !== '') data.resultStatus = status;
      if (iso) data.completedAt = iso;
      this.#push('test.completed', {
        occurredAt: iso ?? this.#headerTime() ?? this.#ctx.receivedAt,
        idempotencyKey: idempotencyKey('astm', analyzerId, 'result', specimenId, analyzerCode, timeKey),
        correlationId: specimenId,
        partitionKey: billableRun ? partitionKeys.order(specimenId) : partitionKeys.specimen(specimenId),
        data,
      });
      kept.push({ canonical, timeKey, iso, runId: this.#runIdentity(rscope, timeKey) });
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
    this.#events.push(
      ...consumptionDrafts({ profile, analyzerId, specimenId, runType, tests, runKey: kept[0]!.runId, runAt: runIso, receivedAt: this.#ctx.receivedAt, source: this.#source(), keyPrefix: 'astm', reagentLots: this.#lots }),
    );
  }

  #headerTime(): string | undefined {
    return astmDateToIso(fieldText(this.#msg.header, 14, this.#d));
  }

  #source(): DraftEvent['source'] {
    const source: DraftEvent['source'] = { kind: 'astm', endpoint: this.#ctx.endpoint, analyzer: this.#ctx.analyzerId };
    if (this.#controlId) source.controlId = this.#controlId;
    return source;
  }

  #push<T extends EventType>(type: T, e: { occurredAt: string; idempotencyKey: string; correlationId: string; partitionKey: string; data: EventDataMap[T] }): void {
    this.#events.push({ type, receivedAt: this.#ctx.receivedAt, source: this.#source(), ...e } as DraftEvent);
  }

  #hostQuery(q: AstmRecord): HostQuery {
    const d = this.#d;
    const h = this.#msg.header;
    const wanted = this.#ctx.profile.hostQuery.specimenIdComponent;
    const specimens: QueriedSpecimen[] = [];
    let all = false;
    for (const fieldNo of [3, 4]) {
      for (const rep of fieldRepeats(q, fieldNo, d)) {
        const comps = rep.map((c) => c.trim());
        if (comps.length === 1 && comps[0]!.toUpperCase() === 'ALL') {
          all = true;
          continue;
        }
        const specimenId = comps[wanted - 1] || comps[1] || comps[2] || (comps.length === 1 ? comps[0]! : '');
        if (specimenId === '' || specimens.some((s) => s.specimenId === specimenId)) continue;
        const s: QueriedSpecimen = { specimenId, components: comps };
        if (comps[0]) s.patientId = comps[0];
        specimens.push(s);
      }
    }
    const testReps = fieldRepeats(q, 5, d);
    const tests: string[] | 'ALL' =
      testReps.length === 0 || (testReps.length === 1 && (testReps[0]![0] ?? '').trim().toUpperCase() === 'ALL')
        ? 'ALL'
        : testReps.map((rep) => analyzerTestCode(rep, this.#ctx.profile).code).filter((c) => c !== '');
    const statusCode = component(q, 13, 1, d).trim();
    const header: HostQuery['header'] = {
      sender: fieldRepeats(h, 5, d)[0]?.map((c) => c.trim()) ?? [],
      receiver: fieldRepeats(h, 10, d)[0]?.map((c) => c.trim()) ?? [],
      comment: fieldRepeats(h, 11, d)[0]?.map((c) => c.trim()) ?? [],
      processingId: component(h, 12, 1, d).trim(),
      version: component(h, 13, 1, d).trim(),
    };
    if (this.#controlId) header.controlId = this.#controlId;
    return {
      sequence: fieldText(q, 2, d).trim() || '1',
      specimens,
      all,
      tests,
      statusCode,
      cancel: statusCode === 'A',
      header,
      delimiters: d,
    };
  }
}
