import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2020Module from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { parseDelimiterString } from '../astm/delimiters.ts';
import { profileFingerprint } from './fingerprint.ts';
import { type ProfileIssue, type ProfileProtocol, protocolLowLevel, QUIRK_DEFAULTS } from './types.ts';

// ajv ships CommonJS; under Node's ESM loader the default import is `module.exports` (the class),
// under TypeScript's view it is the namespace with a `default`: accept both.
type Ajv2020Class = typeof Ajv2020Module.default;
const Ajv2020: Ajv2020Class = (Ajv2020Module as unknown as { default?: Ajv2020Class }).default ?? (Ajv2020Module as unknown as Ajv2020Class);

let compiled: { profile: ValidateFunction; quirks: ValidateFunction; schemaPath: string } | undefined;

/** The schema shipped with the package (firmware-profiles/schema.json beside the profiles). */
export function schemaValidators(schemaPath: string): { profile: ValidateFunction; quirks: ValidateFunction } {
  if (compiled && compiled.schemaPath === schemaPath) return compiled;
  const schema = JSON.parse(readFileSync(schemaPath, 'utf8')) as Record<string, unknown>;
  const ajv = new Ajv2020({ allErrors: true, strict: true, verbose: true });
  const profile = ajv.compile(schema);
  const quirks = ajv.getSchema(`${String(schema.$id)}#/$defs/quirks`);
  if (!quirks) throw new Error(`${schemaPath}: $defs/quirks missing`);
  compiled = { profile, quirks, schemaPath };
  return compiled;
}

/** Edit distance, for "did you mean" hints on unknown keys. */
function distance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

export function suggest(word: string, candidates: readonly string[]): string {
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const d = distance(word, c);
    if (d < bestScore) {
      best = c;
      bestScore = d;
    }
  }
  return best !== undefined && bestScore <= Math.max(2, Math.floor(word.length / 3)) ? ` (did you mean "${best}"?)` : '';
}

/** `/tests/WBC/code` → `tests.WBC.code`, `/consumption/2/quantity` → `consumption[2].quantity`. */
export function jsonPointerToPath(pointer: string, prefix = ''): string {
  let out = prefix;
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(part)) out += `[${part}]`;
    else out += out === '' ? part : `.${part}`;
  }
  return out;
}

function allowedKeys(schemaNode: unknown): string[] {
  const props = (schemaNode as { properties?: Record<string, unknown> } | undefined)?.properties;
  return props ? Object.keys(props) : [];
}

/** Turn ajv errors into issues that name the key precisely. */
export function ajvIssues(errors: ErrorObject[] | null | undefined, prefix = ''): ProfileIssue[] {
  const issues: ProfileIssue[] = [];
  const seen = new Set<string>();
  for (const e of errors ?? []) {
    let p = jsonPointerToPath(e.instancePath, prefix);
    let message: string;
    if (e.keyword === 'additionalProperties') {
      const key = String((e.params as { additionalProperty: string }).additionalProperty);
      p = p === '' ? key : `${p}.${key}`;
      message = `unknown field "${key}"${suggest(key, allowedKeys(e.parentSchema))}`;
    } else if (e.keyword === 'enum') {
      message = `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    } else if (e.keyword === 'required') {
      const key = String((e.params as { missingProperty: string }).missingProperty);
      p = p === '' ? key : `${p}.${key}`;
      message = 'required field is missing';
    } else {
      message = e.message ?? e.keyword;
    }
    const id = `${p}|${message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    issues.push({ severity: 'error', path: p || '(root)', message });
  }
  return issues;
}

export interface CheckOptions {
  /** The file name without .json, to compare with `name`. */
  fileName?: string;
  /** Path of schema.json (default: the package's firmware-profiles/schema.json). */
  schemaPath?: string;
}

function compiles(pattern: string): string | undefined {
  try {
    new RegExp(pattern, 'i');
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** LIS2-A2 record types by the letter of a field reference (`C.4` → comment). */
const RECORD_NAMES: Readonly<Record<string, string>> = {
  H: 'header',
  P: 'patient',
  O: 'order',
  R: 'result',
  C: 'comment',
  Q: 'request',
  M: 'manufacturer',
  S: 'scientific',
  L: 'terminator',
};

/**
 * The records gateway/src/astm/normalize.ts reads each kind of field reference in (its scopes:
 * `#specimenId` the run's H, P and O records; `#runType` the same plus the run's first R;
 * `resultFilter`, `#time` (run time, key time) and `#placed` (abnormal flags, result status) each
 * R with its H, P, O; `reagentLots.when` and `calibrationRecords` each M with the H). A reference to any other record
 * reads as empty there: a condition on it is decided on '' (a QC rule never matches, its runs are
 * patient runs), a specimen id, run or key time, flag or status is never found. Keep in step with
 * normalize.ts.
 */
const READ_IN = {
  specimenId: { records: 'HPO', where: 'the specimen id is read from the H, P and O records of the run' },
  runTime: { records: 'HPOR', where: 'the run time is read from each result with its H, P and O records' },
  keyTime: { records: 'HPOR', where: 'the key time is read from each result with its H, P and O records' },
  abnormalFlags: { records: 'HPOR', where: 'the abnormal flags are read from each result with its H, P and O records' },
  resultStatus: { records: 'HPOR', where: 'the result status is read from each result with its H, P and O records' },
  resultFilter: { records: 'HPOR', where: 'the filter is applied to each R record with its H, P and O records' },
  runTypeRules: { records: 'HPOR', where: 'run types are decided on the H, P, O and first R records of the run' },
  reagentLots: { records: 'HM', where: 'lot reports are read from M records with the H record' },
  calibrationRecords: { records: 'HM', where: 'calibration records are read from M records with the H record' },
} as const;

function refProblem(ref: unknown, place: keyof typeof READ_IN): string | undefined {
  if (typeof ref !== 'string') return undefined;
  const record = /^([A-Z])\./.exec(ref)?.[1];
  if (record === undefined || READ_IN[place].records.includes(record)) return undefined;
  return `"${ref}" is in the ${RECORD_NAMES[record] ?? record} record (${record}), which the normalizer never reads here (${READ_IN[place].where}): it always reads as empty`;
}

/**
 * Field references on records the normalizer does not read in that place (a QC rule on the
 * comment record, a specimen id in an R field …): errors naming the rule or list entry.
 */
function unreadReferenceIssues(p: Record<string, unknown>): ProfileIssue[] {
  const issues: ProfileIssue[] = [];
  const fields = (p.fields ?? {}) as Record<string, unknown>;
  for (const key of ['specimenId', 'runTime', 'keyTime', 'abnormalFlags', 'resultStatus'] as const) {
    const refs = fields[key];
    if (!Array.isArray(refs)) continue;
    refs.forEach((ref, i) => {
      const problem = refProblem(ref, key);
      if (problem) issues.push({ severity: 'error', path: `fields.${key}[${i}]`, message: problem });
    });
  }
  const conditions = (list: unknown, at: string, place: keyof typeof READ_IN, what: string, consequence = ''): void => {
    if (!Array.isArray(list)) return;
    (list as Array<{ field?: unknown } | null>).forEach((c, j) => {
      const problem = refProblem(c?.field, place);
      if (problem) issues.push({ severity: 'error', path: `${at}[${j}].field`, message: `${what}: ${problem}${consequence}` });
    });
  };
  conditions(p.resultFilter, 'resultFilter', 'resultFilter', 'result filter');
  conditions((p.reagentLots as { when?: unknown } | undefined)?.when, 'reagentLots.when', 'reagentLots', 'reagent lot source');
  const calibrations = p.calibrationRecords as { when?: unknown; testCode?: unknown; time?: unknown; specimenId?: unknown } | undefined;
  if (calibrations) {
    conditions(calibrations.when, 'calibrationRecords.when', 'calibrationRecords', 'calibration record source', '; no M record is taken for a calibration, and its reagent never leaves stock');
    const ref = (value: unknown, at: string): void => {
      const problem = refProblem(value, 'calibrationRecords');
      if (problem) issues.push({ severity: 'error', path: at, message: problem });
    };
    ref(calibrations.testCode, 'calibrationRecords.testCode');
    for (const key of ['time', 'specimenId'] as const) {
      const refs = calibrations[key];
      if (Array.isArray(refs)) refs.forEach((r, i) => ref(r, `calibrationRecords.${key}[${i}]`));
    }
  }
  if (Array.isArray(p.runTypeRules)) {
    (p.runTypeRules as Array<{ runType?: unknown; note?: unknown; when?: unknown } | null>).forEach((r, i) => {
      const runType = String(r?.runType);
      const label = `run-type rule runTypeRules[${i}] (${runType}${typeof r?.note === 'string' ? `: ${r.note}` : ''})`;
      conditions(r?.when, `runTypeRules[${i}].when`, 'runTypeRules', label, `; the rule is decided on that empty value, so its ${runType} runs may be taken for patient runs (billable, patient consumption)`);
    });
  }
  return issues;
}

/** The contradiction between `protocol` and `quirks.lowLevel`, if any (HL7 profiles do not read lowLevel). */
function lowLevelProblem(protocol: unknown, lowLevel: unknown): string | undefined {
  if ((protocol !== 'astm-e1381' && protocol !== 'astm-records-over-tcp') || typeof lowLevel !== 'string') return undefined;
  const meant = protocolLowLevel(protocol as ProfileProtocol);
  if (lowLevel === meant) return undefined;
  const effect =
    meant === 'records-only'
      ? 'the link layer would run E1381 and wait for an ENQ the analyzer never sends: its bare records would be dropped as line noise'
      : 'the link layer would take the ENQ/STX frames for bare records and never acknowledge them';
  return `"${lowLevel}" contradicts protocol "${String(protocol)}" (which means "${meant}"): ${effect}; remove quirks.lowLevel or correct the protocol`;
}

/**
 * Check one profile object: the JSON schema (unknown fields named, with a suggestion), then the
 * rules a schema cannot express: consumption rows that name no mapped test, mappings that make
 * the host-query reverse map ambiguous, patterns that do not compile, field references on records
 * the normalizer does not read there, a lowLevel contradicting the protocol, a stale revision.
 */
export function checkProfile(obj: unknown, options: CheckOptions = {}): ProfileIssue[] {
  const schemaPath = options.schemaPath ?? defaultSchemaPath();
  const { profile: validate } = schemaValidators(schemaPath);
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return [{ severity: 'error', path: '(root)', message: 'a profile must be a JSON object' }];
  const issues: ProfileIssue[] = [];
  if (!validate(obj)) issues.push(...ajvIssues(validate.errors));
  const p = obj as Record<string, unknown>;

  if (options.fileName !== undefined && typeof p.name === 'string' && p.name !== options.fileName) {
    issues.push({ severity: 'error', path: 'name', message: `"${p.name}" differs from the file name "${options.fileName}.json"` });
  }

  const tests = (p.tests && typeof p.tests === 'object' ? p.tests : {}) as Record<string, { code?: unknown; orderable?: unknown; ignore?: unknown }>;
  const canonical = new Set<string>();
  const orderableBy = new Map<string, string[]>();
  for (const [code, m] of Object.entries(tests)) {
    if (code.trim() === '') issues.push({ severity: 'error', path: `tests[""]`, message: 'an empty analyzer code cannot be matched' });
    if (typeof m?.code === 'string') {
      canonical.add(m.code);
      if (m.orderable !== false && m.ignore !== true) orderableBy.set(m.code, [...(orderableBy.get(m.code) ?? []), code]);
    }
  }
  for (const [canon, codes] of orderableBy) {
    if (codes.length > 1) {
      issues.push({ severity: 'warning', path: `tests.${codes[1]}`, message: `canonical test "${canon}" is orderable under several analyzer codes (${codes.join(', ')}); host query answers use "${codes[0]}" — set "orderable": false on the others` });
    }
  }
  // Codes are matched ignoring case when only one key fits (test-mapping.ts): keys that differ
  // only in case are two tests, and a code sent in a third spelling matches neither.
  const byLowerCase = new Map<string, string[]>();
  for (const code of Object.keys(tests)) byLowerCase.set(code.toLowerCase(), [...(byLowerCase.get(code.toLowerCase()) ?? []), code]);
  for (const codes of byLowerCase.values()) {
    if (codes.length > 1) {
      issues.push({
        severity: 'warning',
        path: `tests.${codes[1]}`,
        message: `analyzer codes ${codes.map((c) => `"${c}"`).join(', ')} differ only in case: each matches only as spelled, and a code sent in another case (${codes[0]!.toLowerCase()}) is reported unmapped`,
      });
    }
  }
  if (p.unmappedTests === 'report' && Object.keys(tests).length === 0) {
    issues.push({ severity: 'warning', path: 'tests', message: 'unmappedTests is "report" but no test is mapped: every result will be reported as unmapped' });
  }

  const consumption = Array.isArray(p.consumption) ? (p.consumption as Array<Record<string, unknown>>) : [];
  const deadVolume = new Map<string, number>();
  consumption.forEach((row, i) => {
    const at = `consumption[${i}]`;
    if (row.per === 'test' && (row.test === undefined || row.test === '')) {
      issues.push({ severity: 'error', path: `${at}.test`, message: 'a per-test row must name the canonical test (or "*")' });
    }
    if (typeof row.test === 'string' && row.test !== '*' && !canonical.has(row.test)) {
      issues.push({
        severity: p.unmappedTests === 'pass-through' ? 'warning' : 'error',
        path: `${at}.test`,
        message: `test "${row.test}" is not the canonical code of any mapping in "tests"${suggest(row.test, [...canonical])}`,
      });
    }
    if (row.deadVolume === true && row.per !== 'run') issues.push({ severity: 'error', path: `${at}.deadVolume`, message: 'dead volume is consumed once per run: set "per": "run"' });
    if (row.deadVolume === true) {
      for (const rt of (row.runTypes as string[] | undefined) ?? ['patient', 'qc', 'calibration', 'rerun', 'training']) {
        deadVolume.set(`${rt}|${String(row.productCode)}`, (deadVolume.get(`${rt}|${String(row.productCode)}`) ?? 0) + 1);
      }
    }
    if (typeof row.quantity === 'number' && row.quantity > 10_000) {
      issues.push({ severity: 'warning', path: `${at}.quantity`, message: `quantity ${row.quantity} per ${String(row.per)} looks wrong (unit "${String(row.uom)}")` });
    }
  });
  for (const [key, n] of deadVolume) {
    if (n > 1) issues.push({ severity: 'warning', path: 'consumption', message: `${n} dead-volume rows for run type/product ${key.replace('|', ' / ')}: each run will consume all of them` });
  }

  if (consumption.some((row) => row.reagent !== undefined) && p.reagentLots === undefined) {
    issues.push({ severity: 'warning', path: 'reagentLots', message: 'consumption rows name reagents but the profile does not say where lots are reported: no lot will be set' });
  }
  const conditionLists: Array<[string, unknown]> = [
    ['resultFilter', p.resultFilter],
    ['reagentLots.when', (p.reagentLots as { when?: unknown } | undefined)?.when],
    ['calibrationRecords.when', (p.calibrationRecords as { when?: unknown } | undefined)?.when],
  ];
  if (Array.isArray(p.runTypeRules)) (p.runTypeRules as Array<{ when?: unknown }>).forEach((r, i) => conditionLists.push([`runTypeRules[${i}].when`, r?.when]));
  for (const [at, list] of conditionLists) {
    if (!Array.isArray(list)) continue;
    (list as Array<{ pattern?: unknown }>).forEach((c, j) => {
      if (typeof c?.pattern === 'string') {
        const problem = compiles(c.pattern);
        if (problem) issues.push({ severity: 'error', path: `${at}[${j}].pattern`, message: `not a valid regular expression: ${problem}` });
      }
    });
  }

  issues.push(...unreadReferenceIssues(p));

  const quirks = (p.quirks ?? {}) as Record<string, unknown>;
  const linkMode = lowLevelProblem(p.protocol, quirks.lowLevel);
  if (linkMode) issues.push({ severity: 'error', path: 'quirks.lowLevel', message: linkMode });
  if (typeof quirks.delimiters === 'string') {
    const d = parseDelimiterString(quirks.delimiters);
    if (!d.ok) issues.push({ severity: 'error', path: 'quirks.delimiters', message: d.reason });
  }
  const maxFrameText = (quirks.maxFrameText as number | undefined) ?? QUIRK_DEFAULTS.maxFrameText;
  const maxIncoming = (quirks.maxIncomingFrame as number | undefined) ?? QUIRK_DEFAULTS.maxIncomingFrame;
  if (maxFrameText + 7 > maxIncoming) issues.push({ severity: 'warning', path: 'quirks.maxFrameText', message: `outgoing frames (${maxFrameText}+7) exceed maxIncomingFrame (${maxIncoming})` });

  const transport = (p.transport ?? {}) as { supported?: unknown; default?: unknown; serial?: unknown };
  if (Array.isArray(transport.supported) && typeof transport.default === 'string' && !transport.supported.includes(transport.default)) {
    issues.push({ severity: 'error', path: 'transport.default', message: `"${transport.default}" is not in transport.supported` });
  }
  if (Array.isArray(transport.supported) && transport.supported.includes('serial') && transport.serial === undefined) {
    issues.push({ severity: 'warning', path: 'transport.serial', message: 'serial is supported but no serial defaults are given (LIS1-A §5.2: 9600 8N1 will be assumed)' });
  }
  if (p.protocol === 'hl7-mllp' && p.hl7 === undefined) issues.push({ severity: 'error', path: 'hl7', message: 'an hl7-mllp profile needs the "hl7" section (run type field, code component, specimen field)' });
  if (p.protocol !== 'hl7-mllp' && p.hl7 !== undefined) issues.push({ severity: 'warning', path: 'hl7', message: `"hl7" is only read for protocol hl7-mllp (this profile is ${String(p.protocol)})` });
  if (p.protocol === 'hl7-mllp' && Array.isArray(transport.supported) && transport.supported.includes('serial')) {
    issues.push({ severity: 'error', path: 'transport.supported', message: 'HL7/MLLP analyzers are TCP only' });
  }

  if (typeof p.revision === 'string' && /^sha256:[0-9a-f]{64}$/.test(p.revision)) {
    const actual = profileFingerprint(obj);
    if (actual !== p.revision) {
      issues.push({ severity: 'error', path: 'revision', message: `the profile changed since its revision was recorded: expected ${actual} (re-verify the profile, then store this value)` });
    }
  }
  return issues;
}

/** Check analyzer-level overrides against the quirks schema. Paths are relative to `prefix`. */
export function checkQuirkOverrides(overrides: unknown, prefix: string, schemaPath = defaultSchemaPath()): ProfileIssue[] {
  const { quirks } = schemaValidators(schemaPath);
  if (overrides === undefined) return [];
  if (overrides === null || typeof overrides !== 'object' || Array.isArray(overrides)) return [{ severity: 'error', path: prefix, message: 'overrides must be a mapping of quirk keys' }];
  const issues: ProfileIssue[] = [];
  if (!quirks(overrides)) {
    for (const i of ajvIssues(quirks.errors, prefix)) {
      issues.push(i.message.startsWith('unknown field') ? { ...i, message: `${i.message.replace('unknown field', 'unknown override key')}; valid keys: ${allowedKeys(quirks.schema).join(', ')}` } : i);
    }
  }
  const d = (overrides as Record<string, unknown>).delimiters;
  if (typeof d === 'string') {
    const parsed = parseDelimiterString(d);
    if (!parsed.ok) issues.push({ severity: 'error', path: `${prefix}.delimiters`, message: parsed.reason });
  }
  return issues;
}

let defaultDir: string | undefined;

/**
 * The repository's firmware-profiles/ directory, resolved relative to this file so that it works
 * from the sources (gateway/src/profiles → ../../../firmware-profiles) and from the build
 * (dist/gateway/src/profiles → ../../../../firmware-profiles).
 */
export function defaultProfilesDir(): string {
  if (defaultDir) return defaultDir;
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.resolve(here, '../../../firmware-profiles'), path.resolve(here, '../../../../firmware-profiles')];
  for (const c of candidates) {
    try {
      readFileSync(path.join(c, 'schema.json'));
      defaultDir = c;
      return c;
    } catch {
      /* try the next candidate */
    }
  }
  defaultDir = candidates[0]!;
  return defaultDir;
}

export function defaultSchemaPath(): string {
  return path.join(defaultProfilesDir(), 'schema.json');
}
