import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_WORKLIST_MODES } from '../hl7/host-query.ts';
import { profileFingerprint } from './fingerprint.ts';
import { aliasesFileProblem, canonicalProfileName, checkAllProfiles, listProfiles, profileNames, readJsonText, readProfileFile } from './load.ts';
import { checkProfile, defaultProfilesDir } from './check.ts';
import type { FieldCondition, Profile, ProfileIssue } from './types.ts';

/**
 * Text renderers for `lab-gateway profiles list|show|check|fingerprint`. Each returns the text
 * to print and, where it matters, the exit code (1 when any error was found).
 */

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n');
}

/** `profiles list`: one line per profile. */
export function renderProfileList(dir: string = defaultProfilesDir()): string {
  const rows = [['NAME', 'VENDOR', 'MODEL', 'PROTOCOL', 'TRANSPORTS', 'HOST QUERY', 'TESTS', 'CONSUMPTION', 'STATUS']];
  for (const p of listProfiles(dir)) {
    rows.push([
      p.name,
      p.vendor,
      p.model,
      p.protocol,
      p.transports.join(','),
      p.hostQuery ? 'yes' : 'no',
      String(p.tests),
      String(p.consumptionRows),
      p.errors > 0 ? `${p.errors} error(s)` : p.warnings > 0 ? `ok, ${p.warnings} warning(s)` : 'ok',
    ]);
  }
  return `${table(rows)}\n\n${rows.length - 1} profile(s) in ${dir}`;
}

/** `profiles show NAME`: the profile as a readable sheet (for commissioning). */
export function renderProfile(profile: Profile): string {
  const lines: string[] = [];
  lines.push(`${profile.name}: ${profile.vendor} ${profile.model}${profile.firmware ? ` (firmware ${profile.firmware})` : ''}`);
  if (profile.description) lines.push(`  ${profile.description}`);
  lines.push(`  protocol      ${profile.protocol}`);
  const t = profile.transport;
  lines.push(`  transport     ${t.supported.join(', ')} (default ${t.default})${t.tcpPort ? `, port ${t.tcpPort}` : ''}`);
  if (t.serial) lines.push(`  serial        ${t.serial.baudRate} ${t.serial.dataBits}${t.serial.parity[0]!.toUpperCase()}${t.serial.stopBits}${t.serial.rtscts ? ' RTS/CTS' : ''}`);
  if (t.note) lines.push(`  note          ${t.note}`);
  const q = profile.quirks;
  if (profile.protocol !== 'hl7-mllp') {
    lines.push(`  link          ${q.lowLevel}, frames ≤ ${q.maxFrameText} text chars, delimiters ${q.delimiters}`);
    lines.push(`  timers        ENQ ${q.establishmentTimeoutMs / 1000} s, frame ${q.frameTimeoutMs / 1000} s, reply ${q.replyTimeoutMs / 1000} s, NAK retry ${q.nakRetryDelayMs / 1000} s, interrupt ${q.interruptHoldoffMs / 1000} s, contention ${q.contentionTimeoutMs / 1000} s, ${q.maxRetries} retries`);
    const flags = (['etbAfterEveryRecord', 'ignoresReceiverInterrupt', 'closesAfterEot', 'sendsEmptySessions'] as const).filter((k) => q[k]);
    if (flags.length) lines.push(`  quirks        ${flags.join(', ')}`);
    lines.push(`  specimen id   ${profile.fields.specimenId.join(' → ')}   run time ${profile.fields.runTime.join(' → ')}   test code R.3 component ${profile.fields.testId.codeComponent}`);
    lines.push(`  key time      ${profile.fields.keyTime.join(' → ')}   (idempotency keys, consumption run identity)`);
    lines.push(`  result        flags ${profile.fields.abnormalFlags.join(' → ')}   status ${profile.fields.resultStatus.join(' → ')}`);
  } else if (profile.hl7) {
    // What the HL7 analyzer must be set to send: its `fields` and `quirks` are not read.
    const h = profile.hl7;
    const kinds = Object.entries(h.runTypeValues).map(([value, runType]) => `${value} ${runType}`).join(', ');
    lines.push(`  specimen id   ${h.specimenIdField}   run type ${h.runTypeField}: ${kinds}   test code OBX-3 component ${h.codeComponent}`);
    if (h.valueTypes) lines.push(`  results       OBX-2 ${h.valueTypes.join(', ')} only (other OBX rows are modes and remarks)`);
  }
  lines.push(`  unmapped      ${profile.unmappedTests}`);
  const testRows = [['ANALYZER CODE', 'CANONICAL', 'LOINC', 'UNITS', '']];
  for (const [code, m] of Object.entries(profile.tests)) {
    testRows.push([code, m.ignore ? '(ignored)' : m.code, m.loinc ?? '', m.units ?? '', m.orderable === false ? 'result only' : '']);
  }
  if (testRows.length > 1) lines.push('', table(testRows).replace(/^/gm, '  '));
  const cal = profile.calibrationRecords;
  if (profile.runTypeRules.length || cal) {
    lines.push('', '  run types (first match wins; otherwise patient):');
    for (const r of profile.runTypeRules) {
      lines.push(`    ${r.runType.padEnd(12)} when ${conditionsText(r.when)}`);
    }
  }
  if (cal) {
    // IT staff see where calibrations come from when they are no O/R run (cobas c 111 M.CR).
    lines.push(`    ${'calibration'.padEnd(12)} each M record when ${conditionsText(cal.when)}: test ${cal.testCode}, time ${cal.time.join(' → ')}${cal.specimenId ? `, id ${cal.specimenId.join(' → ')}` : ''}`);
  }
  if (profile.consumption.length) {
    const rows = [['PER', 'TEST', 'RUN TYPES', 'PRODUCT', 'QTY', 'UOM', '']];
    for (const c of profile.consumption) rows.push([c.per, c.test ?? '*', (c.runTypes ?? ['all']).join(','), c.productCode, String(c.quantity), c.uom, c.deadVolume ? 'dead volume' : '']);
    lines.push('', table(rows).replace(/^/gm, '  '));
  }
  const h = profile.hostQuery;
  lines.push('', `  host query    ${h.supported ? `yes: ${profile.protocol === 'hl7-mllp' ? hl7HostQueryText(profile) : `specimen in Q.3 component ${h.specimenIdComponent}, O.26 ${h.reportTypes.join('\\')}, unknown specimen → ${h.noOrderReply}`}` : 'no'}`);
  lines.push(`  revision      ${profile.revision}`);
  return lines.join('\n');
}

/**
 * How an HL7 analyzer's query is answered (hl7/host-query.ts): the gateway answers either Mindray
 * dialect, whichever the analyzer sends; the ASTM record settings of `hostQuery` are not read.
 */
function hl7HostQueryText(profile: Profile): string {
  const w = profile.hl7?.worklist ?? DEFAULT_WORKLIST_MODES;
  return [
    'QRY^Q02 → QCK^Q02 + DSR^Q03 (QAK NF when no order is known)',
    `ORM^O01 (ORC-1 RF) → ORR^O02 with take mode ${w.takeMode}, blood mode ${w.bloodMode}, test mode ${w.testMode} (MSA AR when no order is known)`,
  ].join('; ');
}

function conditionsText(when: FieldCondition[]): string {
  return when.map((c) => `${c.field}${c.equals !== undefined ? ` = "${c.equals}"` : ''}${c.in ? ` in [${c.in.join(', ')}]` : ''}${c.pattern ? ` ~ /${c.pattern}/i` : ''}${c.present !== undefined ? (c.present ? ' present' : ' empty') : ''}`).join(' and ');
}

function renderIssues(name: string, issues: ProfileIssue[]): string {
  if (issues.length === 0) return `${name}: ok`;
  return [`${name}:`, ...issues.map((i) => `  ${i.severity.padEnd(7)} ${i.path}: ${i.message}`)].join('\n');
}

/** `profiles check [NAME | FILE]`: every issue of one or all profiles; exit code 1 on any error. */
export function renderProfileCheck(targets?: string | string[], dir: string = defaultProfilesDir()): { text: string; exitCode: 0 | 1 } {
  // Several names are one report with one summary: before, each printed its own, and the last line
  // counted the last name alone ("1 profile(s), 0 error(s)" after another's JSON error); a profile
  // that could not be read was a bare line instead of an issue at (file)
  // (test/integration/review-s22-config-profile-json.test.ts).
  const list = targets === undefined ? [] : Array.isArray(targets) ? targets : [targets];
  const unreadable = (name: string, err: unknown) => ({ name, issues: [{ severity: 'error' as const, path: '(file)', message: (err as Error).message }] });
  // Every profile: aliases.json too, which a broken one made none, silently (load.ts aliasesFileProblem).
  const aliasesBroken = list.length === 0 ? aliasesFileProblem(dir) : undefined;
  const results: Array<{ name: string; issues: ProfileIssue[] }> =
    list.length === 0
      ? [...checkAllProfiles(dir), ...(aliasesBroken ? [unreadable('aliases.json', new Error(aliasesBroken))] : [])]
      : list.map((target) => {
          try {
            // A file being written for commissioning, anywhere on disk.
            if (target.endsWith('.json')) return { name: target, issues: checkProfile(JSON.parse(readJsonText(target)) as unknown, { fileName: path.basename(target, '.json') }) };
            return { name: target, issues: checkProfile(readProfileFile(target, dir), { fileName: canonicalProfileName(target, dir) }) };
          } catch (err) {
            return unreadable(target, err);
          }
        });
  const errors = results.reduce((n, r) => n + r.issues.filter((i) => i.severity === 'error').length, 0);
  const warnings = results.reduce((n, r) => n + r.issues.filter((i) => i.severity === 'warning').length, 0);
  const text = `${results.map((r) => renderIssues(r.name, r.issues)).join('\n')}\n\n${results.length - (aliasesBroken ? 1 : 0)} profile(s), ${errors} error(s), ${warnings} warning(s)`;
  return { text, exitCode: errors > 0 ? 1 : 0 };
}

/**
 * `profiles fingerprint [NAME…] [--write]`: compute each profile's revision; with `write`, store it
 * in the file (after the profile was re-verified against the analyzer).
 */
export function fingerprintProfiles(names: string[] | undefined, options: { dir?: string; write?: boolean } = {}): { text: string; changed: string[]; refused: string[] } {
  const dir = options.dir ?? defaultProfilesDir();
  const changed: string[] = [];
  const refused: string[] = [];
  const lines: string[] = [];
  for (const requested of names && names.length > 0 ? names : profileNames(dir)) {
    // An alias (aliases.json) names another file: read, write and print that one.
    const name = canonicalProfileName(requested, dir);
    const obj = readProfileFile(name, dir) as Record<string, unknown>;
    const revision = profileFingerprint(obj);
    const same = obj.revision === revision;
    if (!same) changed.push(name);
    if (!same && options.write) {
      // The revision records a verified profile: one that `profiles check` refuses (for anything
      // but its stale revision) is not written, or it would pass for verified.
      const errors = checkProfile(obj, { fileName: name }).filter((i) => i.severity === 'error' && i.path !== 'revision');
      if (errors.length > 0) {
        refused.push(name);
        lines.push(`${name.padEnd(28)} ${revision}  (not written: ${errors.length} error(s) — fix them first)\n${renderIssues(name, errors)}`);
        continue;
      }
      obj.revision = revision;
      writeFileSync(path.join(dir, `${name}.json`), `${JSON.stringify(obj, null, 2)}\n`);
    }
    lines.push(`${name.padEnd(28)} ${revision}${same ? '' : options.write ? '  (written)' : '  (differs from the stored revision)'}`);
  }
  return { text: lines.join('\n'), changed, refused };
}
