import { idempotencyKey, partitionKeys } from '../events/keys.ts';
import type { DraftEvent, EventDataMap, RunType } from '../events/types.ts';
import { GatewayError } from '../errors.ts';
import { hl7TimeToIso } from '../hl7/hl7-time.ts';
import { type Hl7Message, type Hl7Segment, parseMessage } from '../hl7/message.ts';
import { readMsh } from '../hl7/msh.ts';
import type { Hl7NormalizeContext, Hl7Normalizer } from '../hl7/normalizer.ts';
import { consumptionDrafts } from './consumption.ts';
import type { Profile, TestMapping } from './types.ts';

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
}

function runTypeOf(message: Hl7Message, profile: Profile): RunType {
  const s = profile.hl7;
  if (!s) return 'patient';
  const h = message.header;
  const raw = s.runTypeField === 'MSH-16' ? h.appAckType : (h.processingId.split(h.encodingCharacters[0] ?? '^')[0] ?? '');
  return s.runTypeValues[raw.trim().toUpperCase()] ?? s.runTypeValues[raw.trim()] ?? 'patient';
}

function lookup(profile: Profile, code: string): TestMapping | undefined {
  const direct = profile.tests[code];
  if (direct) return direct;
  const lower = code.toLowerCase();
  for (const [key, m] of Object.entries(profile.tests)) if (key.toLowerCase() === lower) return m;
  return undefined;
}

/** Normalize one parsed message (the Hl7Message of gateway/src/hl7/message.ts). */
export function normalizeAnalyzerHl7Message(message: Hl7Message, ctx: AnalyzerHl7Context): Outcome {
  const { profile, analyzerId } = ctx;
  const notes: string[] = [];
  const events: DraftEvent[] = [];
  const h = message.header;
  if (h.messageCode !== 'ORU') {
    notes.push(`${h.messageCode}^${h.triggerEvent}: not a result message, no events`);
    return { events, notes };
  }
  const settings = profile.hl7;
  const runType = runTypeOf(message, profile);
  const billable = runType === 'patient' || runType === 'rerun';
  const source: DraftEvent['source'] = { kind: 'hl7', endpoint: ctx.endpoint, analyzer: analyzerId };
  if (h.controlId) source.controlId = h.controlId;
  const seen = new Set<string>();

  // Group OBX under the OBR before them (one OBR per sample in both Mindray dialects).
  const groups: Array<{ obr: Hl7Segment; obx: Hl7Segment[] }> = [];
  for (const seg of message.segments) {
    if (seg.name === 'OBR') groups.push({ obr: seg, obx: [] });
    else if (seg.name === 'OBX' && groups.length > 0) groups.at(-1)!.obx.push(seg);
  }
  const pid = message.first('PID');

  for (const { obr, obx } of groups) {
    const primary = settings?.specimenIdField === 'OBR-3' ? 3 : 2;
    let specimenId = obr.get(primary) || obr.get(primary === 2 ? 3 : 2);
    const results: Array<{ code: string; value: string; units: string; flags: string; status: string; time: string; loinc?: string }> = [];
    if (obx.length === 0 && (runType === 'qc' || runType === 'calibration')) {
      // Mindray BS QC/calibration: OBR-13 control, OBR-14 lot, OBR-20 result, OBR-21 unit.
      const control = obr.get(13);
      const lot = obr.get(14);
      if (control || lot) specimenId = [control, lot].filter(Boolean).join('/');
      results.push({ code: obr.get(3) || obr.get(4), value: obr.get(20), units: obr.get(21), flags: obr.get(17) ? `level ${obr.get(17)}` : '', status: 'F', time: obr.get(7) || obr.get(6) || h.dateTime });
    }
    for (const seg of obx) {
      const valueType = seg.get(2).toUpperCase();
      if (settings?.valueTypes && !settings.valueTypes.includes(valueType)) continue;
      const code = seg.get(3, settings?.codeComponent ?? 1);
      const r = { code, value: seg.get(5), units: seg.get(6), flags: seg.get(8), status: seg.get(11), time: seg.get(14) || obr.get(7) || h.dateTime } as (typeof results)[number];
      if (seg.get(3, 3).toUpperCase() === 'LN') r.loinc = seg.get(3, 1);
      results.push(r);
    }
    if (specimenId === '') {
      specimenId = pid?.get(3) ?? '';
      if (specimenId === '') {
        notes.push(`OBR ${obr.get(1)}: no specimen id in OBR-2/OBR-3/PID-3: no events`);
        continue;
      }
    }
    const kept: Array<{ canonical: string; time: string }> = [];
    for (const r of results) {
      if (r.code === '') continue;
      const mapping = lookup(profile, r.code);
      if (mapping?.ignore) continue;
      if (!mapping && profile.unmappedTests === 'report') notes.push(`analyzer code "${r.code}" has no mapping in profile "${profile.name}"; passed on unmapped`);
      const canonical = mapping?.code ?? r.code;
      const iso = hl7TimeToIso(r.time);
      const data: EventDataMap['test.completed'] = { specimenId, testCode: canonical, analyzerTestCode: r.code, runType };
      if (billable) data.accession = specimenId;
      const loinc = mapping?.loinc ?? r.loinc;
      if (loinc) data.loinc = loinc;
      if (r.value !== '') data.value = r.value;
      const units = r.units || mapping?.units || '';
      if (units) data.units = units;
      if (r.flags) data.abnormalFlags = r.flags;
      if (r.status) data.resultStatus = r.status;
      if (iso) data.completedAt = iso;
      events.push({
        type: 'test.completed',
        occurredAt: iso ?? ctx.receivedAt,
        receivedAt: ctx.receivedAt,
        idempotencyKey: idempotencyKey('hl7-analyzer', analyzerId, 'result', specimenId, r.code, r.time || `msg:${h.controlId}`),
        correlationId: specimenId,
        partitionKey: billable ? partitionKeys.order(specimenId) : partitionKeys.specimen(specimenId),
        source,
        data,
      });
      kept.push({ canonical, time: r.time || `msg:${h.controlId}` });
    }
    if (kept.length === 0) continue;
    const runKey = kept[0]!.time;
    const runAt = hl7TimeToIso(kept[0]!.time) ?? ctx.receivedAt;
    if (billable && !seen.has(specimenId)) {
      seen.add(specimenId);
      const data: EventDataMap['specimen.received'] = { accession: specimenId, specimenId, receivedAt: runAt };
      const specimenType = obr.get(15);
      if (specimenType) data.specimenType = specimenType;
      events.push({
        type: 'specimen.received',
        occurredAt: runAt,
        receivedAt: ctx.receivedAt,
        idempotencyKey: idempotencyKey('hl7-analyzer', analyzerId, 'specimen', specimenId, runKey.slice(0, 8)),
        correlationId: specimenId,
        partitionKey: partitionKeys.order(specimenId),
        source,
        data,
      });
    }
    const tests = [...new Set(kept.map((k) => k.canonical))];
    events.push(...consumptionDrafts({ profile, analyzerId, specimenId, runType, tests, runKey, runAt, receivedAt: ctx.receivedAt, source, keyPrefix: 'hl7-analyzer' }));
  }
  return { events, notes };
}

/**
 * The `Hl7Normalizer` (gateway/src/hl7/normalizer.ts) for an HL7 analyzer endpoint: pass it as
 * `normalize` to the MLLP endpoint of an analyzer whose profile has protocol hl7-mllp.
 */
export function createAnalyzerHl7Normalizer(options: { analyzerId: string; profile: Profile }): Hl7Normalizer {
  return (ctx: Hl7NormalizeContext) => {
    const out = normalizeAnalyzerHl7Message(ctx.message, { analyzerId: ctx.analyzer ?? options.analyzerId, endpoint: ctx.endpoint, profile: options.profile, receivedAt: ctx.receivedAt });
    ctx.notes.push(...out.notes);
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
