import { hash } from 'node:crypto';
import { idempotencyKey, partitionKeys, resultVersion } from '../events/keys.ts';
import type { DraftEvent, EventDataMap, RunType } from '../events/types.ts';
import { GatewayError } from '../errors.ts';
import { hl7TimeToIso } from '../hl7/hl7-time.ts';
import { type Hl7Message, type Hl7Segment, parseMessage } from '../hl7/message.ts';
import { readMsh } from '../hl7/msh.ts';
import type { Hl7NormalizeContext, Hl7Normalizer } from '../hl7/normalizer.ts';
import { processingIdTerm } from '../hl7/processing-id.ts';
import { consumptionDrafts, splitConsumption } from './consumption.ts';
import { altKeyParts, type SameTimeResult } from './result-alt-key.ts';
import { findTestMapping } from './test-mapping.ts';
import { withProcessingId } from './training-run.ts';
import type { Profile } from './types.ts';

/**
 * Results from analyzers that speak HL7 v2 over MLLP (Mindray BS chemistry, BC-5380 hematology)
 * → `test.completed`, `specimen.received` and `consumable.used`, with the same rules as the ASTM
 * normalizer: codes mapped through the profile, run type from the profile's `hl7` section
 * (BS: MSH-16 0 patient / 1 calibration / 2 QC; BC-5380: MSH-11 = Q for QC), QC and calibration
 * never billable, keys from analyzer + specimen + test + run time.
 *
 * Mindray BS sends one test per ORU^R01; a QC ORU has no PID/OBX and carries everything in OBR
 * (13 control name, 14 lot, 17 level, 20 result, 21 unit). Other message types (QRY^Q02 host
 * queries, ORM^O01 worklist inquiries) yield no events.
 *
 * Specimen: the profile's `hl7.specimenIdField` (BS: OBR-2 barcode; BC-5380: OBR-3) is the
 * specimen id and, for patient runs, the accession. Without it the other OBR field (BS: OBR-3,
 * the daily sample number), else PID-3, names the sample as `<analyzer>:<id>`: no accession,
 * partition `specimen:<analyzer>:<id>`, no `specimen.received` — never someone else's order.
 *
 * Keys (`hl7-analyzer`, analyzer, …):
 * - test.completed: `result`, specimen, analyzer code, key time = OBX-14, else OBR-7 (BS QC in
 *   OBR: OBR-7, else OBR-6), else `rec:` and a hash of OBX-3/5/6/8 (BS QC: code, value, units,
 *   level) — never MSH-7, which a resend renews; for a sample number or a control lot (not a
 *   tube barcode) `rec:<message day>~<hash>`; `alt:<hash>` for a result sharing specimen, code
 *   and key time with another of the message that is not its verbatim repeat, but for the one in
 *   the profile's units (result-alt-key.ts); the version part (P, S, C:<hash>) last.
 * - specimen.received: `specimen`, specimen, day of the first result's time (MSH-7 as last resort).
 * - consumable.used: `consumption`, specimen, run key, per, test, product, row. Per-test rows: the
 *   result's key time (one group per distinct key time). Per-run rows (dead volume): the sample's
 *   time OBR-7 (BS QC: OBR-7/OBR-6), else `day:<YYYYMMDD>`, so one sample whose tests arrive one
 *   per ORU draws them once. When every result's key time is the sample time (BC-5380: OBR-7, no
 *   OBX-14) it is one pass over the table, keys as before.
 */
export interface AnalyzerHl7Context {
  analyzerId: string;
  endpoint: string;
  profile: Profile;
  receivedAt: string;
}

interface Outcome {
  events: DraftEvent[];
  notes: string[];
  /** Things the operator must act on: an analyzer code the profile does not map. */
  warnings: string[];
  /** `unmapped:<code>` of each such code, for the message browser. */
  searchTerms: string[];
}

function runTypeOf(message: Hl7Message, profile: Profile): RunType {
  const s = profile.hl7;
  if (!s) return 'patient';
  const h = message.header;
  const processingId = h.processingId.split(h.encodingCharacters[0] ?? '^')[0] ?? '';
  const raw = s.runTypeField === 'MSH-16' ? h.appAckType : processingId;
  // A sample run while the analyzer says training or debugging (MSH-11 T/D) is a training run,
  // as for ASTM analyzers (training-run.ts).
  return withProcessingId(s.runTypeValues[raw.trim().toUpperCase()] ?? s.runTypeValues[raw.trim()] ?? 'patient', processingId);
}

function shortHash(text: string): string {
  return hash('sha256', text, 'hex').slice(0, 16);
}

/** Normalize one parsed message (the Hl7Message of gateway/src/hl7/message.ts). */
export function normalizeAnalyzerHl7Message(message: Hl7Message, ctx: AnalyzerHl7Context): Outcome {
  const { profile, analyzerId } = ctx;
  const notes: string[] = [];
  const warnings: string[] = [];
  const searchTerms = new Set<string>();
  const events: DraftEvent[] = [];
  const h = message.header;
  if (h.messageCode !== 'ORU') {
    notes.push(`${h.messageCode}^${h.triggerEvent}: not a result message, no events`);
    return { events, notes, warnings, searchTerms: [] };
  }
  const settings = profile.hl7;
  const runType = runTypeOf(message, profile);
  const trainingTerm = processingIdTerm(h);
  if (trainingTerm) searchTerms.add(trainingTerm);
  const billable = runType === 'patient' || runType === 'rerun';
  const source: DraftEvent['source'] = { kind: 'hl7', endpoint: ctx.endpoint, analyzer: analyzerId };
  if (h.controlId) source.controlId = h.controlId;
  const seen = new Set<string>();
  /** The test.completed events, keyed once every result of the message is known (the `alt:` part). */
  const resultKeys: Array<{ result: SameTimeResult; event: DraftEvent; key: (alt: string | undefined) => string }> = [];

  // Group OBX under the OBR before them (one OBR per sample in both Mindray dialects).
  const groups: Array<{ obr: Hl7Segment; obx: Hl7Segment[] }> = [];
  for (const seg of message.segments) {
    if (seg.name === 'OBR') groups.push({ obr: seg, obx: [] });
    else if (seg.name === 'OBX' && groups.length > 0) groups.at(-1)!.obx.push(seg);
  }
  const pid = message.first('PID');

  for (const { obr, obx } of groups) {
    // Only the profile's specimen field is the tube's barcode, the LIS accession (BS: OBR-2). The
    // other OBR field (BS: OBR-3, the sample number, reassigned every day) or PID-3 only name the
    // sample on this analyzer: no accession, partition `specimen:<analyzer>:<id>`.
    const primary = settings?.specimenIdField === 'OBR-3' ? 3 : 2;
    let specimenId = obr.get(primary);
    const accessionable = specimenId !== '';
    const sampleName = obr.get(primary === 2 ? 3 : 2) || (pid?.get(3) ?? '');
    // OBR-7, the sample's time (BS: when it was sampled; a BS QC/calibration OBR may carry only
    // OBR-6): the per-run rows are keyed on it.
    const qcInObr = obx.length === 0 && (runType === 'qc' || runType === 'calibration');
    let sampleTime = obr.get(7);
    // `time` dates the result (and keeps MSH-7 as the last resort for that); `keyTime` keys it:
    // OBX-14 or OBR-7, else a hash of the result, never MSH-7 (a resend gets a new MSH-7). A tube
    // barcode names one tube; a sample number (reassigned every day) or a control lot (measured
    // every day) does not, so their hash key also carries the message's day.
    const recPrefix = qcInObr || !accessionable ? `rec:${(h.dateTime || ctx.receivedAt.replace(/[^0-9]/g, '')).slice(0, 8)}~` : 'rec:';
    const results: Array<{ code: string; value: string; units: string; flags: string; status: string; time: string; keyTime: string; loinc?: string }> = [];
    if (qcInObr) {
      // Mindray BS QC/calibration: OBR-13 control, OBR-14 lot, OBR-20 result, OBR-21 unit.
      const control = obr.get(13);
      const lot = obr.get(14);
      if (control || lot) specimenId = [control, lot].filter(Boolean).join('/');
      const own = obr.get(7) || obr.get(6);
      sampleTime = own;
      const code = obr.get(3) || obr.get(4);
      const value = obr.get(20);
      const units = obr.get(21);
      const flags = obr.get(17) ? `level ${obr.get(17)}` : '';
      results.push({ code, value, units, flags, status: 'F', time: own || h.dateTime, keyTime: own || `${recPrefix}${shortHash([code, value, units, flags].join('\u0000'))}` });
    }
    for (const seg of obx) {
      const valueType = seg.get(2).toUpperCase();
      if (settings?.valueTypes && !settings.valueTypes.includes(valueType)) continue;
      const code = seg.get(3, settings?.codeComponent ?? 1);
      const own = seg.get(14) || obr.get(7);
      const keyTime = own || `${recPrefix}${shortHash([seg.raw(3), seg.raw(5), seg.raw(6), seg.raw(8)].join('\u0000'))}`;
      const r = { code, value: seg.get(5), units: seg.get(6), flags: seg.get(8), status: seg.get(11), time: own || h.dateTime, keyTime } as (typeof results)[number];
      if (seg.get(3, 3).toUpperCase() === 'LN') r.loinc = seg.get(3, 1);
      results.push(r);
    }
    if (specimenId === '') {
      if (sampleName === '') {
        notes.push(`OBR ${obr.get(1)}: no specimen id in OBR-2/OBR-3/PID-3: no events`);
        continue;
      }
      specimenId = `${analyzerId}:${sampleName}`;
      if (billable) notes.push(`OBR ${obr.get(1)}: no sample barcode in ${settings?.specimenIdField ?? 'OBR-2'}: results kept as ${specimenId}, not attached to an order`);
    }
    const attached = billable && accessionable;
    const kept: Array<{ canonical: string; time: string; keyTime: string }> = [];
    for (const r of results) {
      if (r.code === '') continue;
      const mapping = findTestMapping(profile, r.code);
      if (mapping?.ignore) continue;
      // `unmappedTests: report`: the operator finds the message as `unmapped:<code>` to fix the mapping.
      if (!mapping && profile.unmappedTests === 'report') {
        searchTerms.add(`unmapped:${r.code}`);
        warnings.push(`analyzer code "${r.code}" has no mapping in profile "${profile.name}"; passed on unmapped`);
      }
      const canonical = mapping?.code ?? r.code;
      if (r.status.trim().toUpperCase() === 'X') {
        // OBX-11 X: results cannot be obtained for this observation. Not a completed test (as an
        // ASTM R.9 X is not); the run still used reagent, so the test counts for consumption.
        notes.push(`OBR ${obr.get(1)}: "${r.code}" has status X (cannot be obtained): no test.completed`);
        kept.push({ canonical, time: r.time, keyTime: r.keyTime });
        continue;
      }
      const iso = hl7TimeToIso(r.time);
      const data: EventDataMap['test.completed'] = { specimenId, testCode: canonical, analyzerTestCode: r.code, runType };
      if (attached) data.accession = specimenId;
      const loinc = mapping?.loinc ?? r.loinc;
      if (loinc) data.loinc = loinc;
      if (r.value !== '') data.value = r.value;
      const units = r.units || mapping?.units || '';
      if (units) data.units = units;
      if (r.flags) data.abnormalFlags = r.flags;
      if (r.status) data.resultStatus = r.status;
      if (iso) data.completedAt = iso;
      const version = resultVersion(r.status.trim(), r.value, units, r.flags);
      const event: DraftEvent = {
        type: 'test.completed',
        occurredAt: iso ?? ctx.receivedAt,
        receivedAt: ctx.receivedAt,
        idempotencyKey: '', // set below, once every result of the message is known
        correlationId: specimenId,
        partitionKey: attached ? partitionKeys.order(specimenId) : partitionKeys.specimen(specimenId),
        source,
        data,
      };
      events.push(event);
      const sample = specimenId;
      resultKeys.push({
        result: { slot: [specimenId, r.code, r.keyTime].join('\u0000'), value: r.value, units, flags: r.flags, mappedUnits: mapping?.units },
        event,
        // A preliminary and its final (OBX-11 P, then F), or a correction (C), are facts of their
        // own: keyed alike, the final was skipped as a resend of the preliminary and never reached
        // Odoo. A final's key has no version part (unchanged; consumption keys never have one).
        // Two OBX of one code and time (one test in two units) get an `alt:` part but for the one
        // in the profile's units: keyed alike, the second was skipped as a resend of the first.
        key: (alt) => idempotencyKey('hl7-analyzer', analyzerId, 'result', sample, r.code, r.keyTime, ...(alt ? [alt] : []), ...(version ? [version] : [])),
      });
      kept.push({ canonical, time: r.time, keyTime: r.keyTime });
    }
    if (kept.length === 0) continue;
    const day = (kept[0]!.time || ctx.receivedAt.replace(/[^0-9]/g, '')).slice(0, 8);
    const runAt = hl7TimeToIso(kept[0]!.time) ?? ctx.receivedAt;
    if (attached && !seen.has(specimenId)) {
      seen.add(specimenId);
      const data: EventDataMap['specimen.received'] = { accession: specimenId, specimenId, receivedAt: runAt };
      const specimenType = obr.get(15);
      if (specimenType) data.specimenType = specimenType;
      events.push({
        type: 'specimen.received',
        occurredAt: runAt,
        receivedAt: ctx.receivedAt,
        idempotencyKey: idempotencyKey('hl7-analyzer', analyzerId, 'specimen', specimenId, day),
        correlationId: specimenId,
        partitionKey: partitionKeys.order(specimenId),
        source,
        data,
      });
    }
    const tests = [...new Set(kept.map((k) => k.canonical))];
    const base = { analyzerId, specimenId, runType, receivedAt: ctx.receivedAt, source, keyPrefix: 'hl7-analyzer' };
    // Per-test rows: each test on its own result's key time (a rerun of a test draws again).
    // Per-run rows (dead volume): on the sample — OBR-7, else the day — so that a sample whose
    // tests arrive one per ORU (Mindray BS) draws them once, whatever test came first.
    const runKey = sampleTime || `day:${day}`;
    const runAtSample = hl7TimeToIso(sampleTime) ?? runAt;
    const first = kept[0]!;
    if (kept.every((k) => k.keyTime === first.keyTime) && first.keyTime === runKey) {
      events.push(...consumptionDrafts({ ...base, profile, tests, runKey, runAt }));
      continue;
    }
    const { perTest, perRun } = splitConsumption(profile);
    const byTime = new Map<string, { tests: Set<string>; time: string }>();
    for (const k of kept) {
      const group = byTime.get(k.keyTime);
      if (group) group.tests.add(k.canonical);
      else byTime.set(k.keyTime, { tests: new Set([k.canonical]), time: k.time });
    }
    for (const [keyTime, group] of byTime) {
      events.push(...consumptionDrafts({ ...base, profile: perTest, tests: [...group.tests], runKey: keyTime, runAt: hl7TimeToIso(group.time) ?? ctx.receivedAt }));
    }
    events.push(...consumptionDrafts({ ...base, profile: perRun, tests, runKey, runAt: runAtSample }));
  }
  const alts = altKeyParts(resultKeys.map((k) => k.result));
  resultKeys.forEach((k, i) => (k.event.idempotencyKey = k.key(alts[i])));
  return { events, notes, warnings, searchTerms: [...searchTerms] };
}

/**
 * The `Hl7Normalizer` (gateway/src/hl7/normalizer.ts) for an HL7 analyzer endpoint: pass it as
 * `normalize` to the MLLP endpoint of an analyzer whose profile has protocol hl7-mllp.
 */
export function createAnalyzerHl7Normalizer(options: { analyzerId: string; profile: Profile }): Hl7Normalizer {
  return (ctx: Hl7NormalizeContext) => {
    const out = normalizeAnalyzerHl7Message(ctx.message, { analyzerId: ctx.analyzer ?? options.analyzerId, endpoint: ctx.endpoint, profile: options.profile, receivedAt: ctx.receivedAt });
    ctx.notes.push(...out.notes);
    (ctx.warnings ?? ctx.notes).push(...out.warnings);
    ctx.searchTerms?.push(...out.searchTerms);
    return out.events;
  };
}

/**
 * Normalize one HL7 message given as text (MLLP framing removed; CR, LF or CRLF segment ends).
 * Parsing goes through gateway/src/hl7/message.ts (node-hl7-client). Throws GW_HL7_PARSE when
 * the text is not an HL7 message.
 */
export function normalizeAnalyzerHl7(raw: string, ctx: AnalyzerHl7Context): DraftEvent[] {
  const segments = raw
    .replace(/^[\x0b\s]+/, '')
    .replace(/[\x1c\s]+$/, '')
    .split(/\r\n|\r|\n/)
    .filter((s) => s.trim() !== '');
  const first = segments[0] ?? '';
  const msh = readMsh(first);
  if (msh.problem) throw new GatewayError('GW_HL7_PARSE', msh.problem.text, { details: { hl7ErrorCode: msh.problem.code } });
  return normalizeAnalyzerHl7Message(parseMessage(msh.header, segments), ctx).events;
}
