import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { AnalyzerConfig, ConfigIssue } from '../config/types.ts';
import { GatewayError } from '../errors.ts';
import { checkProfile, checkQuirkOverrides, defaultProfilesDir, suggest } from './check.ts';
import { HOST_QUERY_DEFAULTS, type Profile, type ProfileIssue, type ProfileQuirks, type ProfileSummary, protocolLowLevel, QUIRK_DEFAULTS } from './types.ts';

const DEFAULT_FIELDS = {
  specimenId: ['O.3.1', 'O.4.1'],
  patientId: ['P.3.1', 'P.4.1'],
  // No H.14: the message time changes when a result is resent in a new session, and a key built
  // on it would count the resend as a new result.
  runTime: ['R.13', 'R.12', 'O.7'],
  // LIS2-A2 §9.7 and §9.9; a model with extra fields in the R record says where it keeps them.
  abnormalFlags: ['R.7'],
  resultStatus: ['R.9'],
} as const;

/** Names of the profiles in a directory (file names without .json, schema.json excluded). */
export function profileNames(dir: string = defaultProfilesDir()): string[] {
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch (err) {
    throw new GatewayError('GW_PROFILE_UNKNOWN', `profiles directory ${dir} cannot be read`, { cause: err });
  }
  return files.filter((f) => f.endsWith('.json') && f !== 'schema.json' && f !== ALIASES_FILE).map((f) => f.slice(0, -5)).sort();
}

/**
 * A profile file's text without the byte-order mark an editor may put before it (Windows Notepad
 * saves "UTF-8" so): JSON.parse refused it as an invisible "Unexpected token", and aliases.json
 * was then ignored (test/integration/review-s22-config-profile-json.test.ts).
 */
export function readJsonText(file: string): string {
  return readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
}

/** `aliases.json`: other names a profile is known by (e.g. `sysmex-xn` → `sysmex-xn-l`). */
const ALIASES_FILE = 'aliases.json';

export function profileAliases(dir: string = defaultProfilesDir()): Record<string, string> {
  try {
    const parsed = JSON.parse(readJsonText(path.join(dir, ALIASES_FILE))) as Record<string, unknown>;
    return Object.fromEntries(Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === 'string' && !e[0].startsWith('$')));
  } catch {
    return {};
  }
}

/**
 * Why `dir`'s aliases.json cannot be used, or undefined (none, or a good one). profileAliases()
 * reads a broken one as no aliases; before, nothing said so: `profile: sysmex-xn` became "unknown
 * profile (did you mean "sysmex-xp"?)", another analyzer's, and `profiles check` said 0 errors
 * (test/integration/review-s22-config-aliases-file.test.ts).
 */
export function aliasesFileProblem(dir: string = defaultProfilesDir()): string | undefined {
  const file = path.join(dir, ALIASES_FILE);
  let text: string;
  try {
    text = readJsonText(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? undefined : `${file} cannot be read (${code ?? (err as Error).message})`;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return `${file} is not valid JSON (${(err as Error).message})`;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return `${file} must hold one JSON object, each alias → the name of a profile file`;
  const bad = Object.entries(parsed).filter(([k, v]) => !k.startsWith('$') && typeof v !== 'string').map(([k]) => k);
  return bad.length > 0 ? `${file}: ${bad.map((k) => `"${k}"`).join(', ')} must name a profile file (a string)` : undefined;
}

/** The file name of a profile given its name or one of its aliases. */
export function canonicalProfileName(name: string, dir: string = defaultProfilesDir()): string {
  return profileAliases(dir)[name] ?? name;
}

/**
 * `profile: sysmex-xp.json`, `profile: /etc/lab-gateway/profiles/my-analyzer.json`: a file name or
 * path where the profile's name goes. Said so, with the name to write (and, for a profile that is
 * not one of `dir`'s, that its folder goes in profilesDir); undefined for anything else. Before,
 * check answered "unknown profile" and start "not a profile name", and neither said why
 * (test/integration/commissioning-profile-file-audit.test.ts).
 */
export function profileFileHint(requested: string, dir: string = defaultProfilesDir()): string | undefined {
  if (!/\.json$/i.test(requested) && !/[\\/]/.test(requested)) return undefined;
  const name = path.basename(requested.replace(/\\/g, '/')).replace(/\.json$/i, '');
  let known: string[] = [];
  try {
    known = profileNames(dir);
  } catch {
    /* the directory's own problem is reported elsewhere */
  }
  const shipped = known.includes(canonicalProfileName(name, dir));
  const where = shipped ? '' : `; a profile of the site's own is read from the folder named by profilesDir (which then holds every profile the site uses), so copy it there`;
  return `"${requested}" names a file: write the profile's name alone, without folder or ".json" (profile: ${name})${where}`;
}

/** Read and parse a profile file without validating it. */
export function readProfileFile(requested: string, dir: string = defaultProfilesDir()): unknown {
  const name = canonicalProfileName(requested, dir);
  const fileHint = profileFileHint(requested, dir);
  if (fileHint) throw new GatewayError('GW_PROFILE_UNKNOWN', fileHint);
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) {
    // `Sysmex-XN`, `generic_astm` as a manual writes them: the nearest name, as check gives it for
    // analyzers[].profile (before, profiles show/check said only that this is not a name:
    // test/integration/review-s22-config-profile-name.test.ts).
    let near = '';
    try {
      near = suggest(name, [...profileNames(dir), ...Object.keys(profileAliases(dir))]);
    } catch {
      /* the directory's own problem is reported when a valid name is looked up */
    }
    throw new GatewayError('GW_PROFILE_UNKNOWN', `"${name}" is not a profile name (lower-case letters, digits and dashes)${near}`);
  }
  const file = path.join(dir, `${name}.json`);
  let text: string;
  try {
    text = readJsonText(file);
  } catch (err) {
    let known: string[];
    try {
      known = profileNames(dir);
    } catch (dirErr) {
      // Not an unknown profile: the directory itself is missing or unreadable.
      throw new GatewayError('GW_PROFILE_UNKNOWN', `profiles directory ${dir} cannot be read (${fsReason(dirErr)}); profile "${name}" cannot be loaded`, { cause: err, details: { dir } });
    }
    throw new GatewayError('GW_PROFILE_UNKNOWN', `unknown profile "${name}"${suggest(name, [...known, ...Object.keys(profileAliases(dir))])}; known profiles: ${known.join(', ') || '(none)'}`, { cause: err, details: { dir } });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new GatewayError('GW_PROFILE_INVALID', `${file}: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** The file-system reason behind a profileNames() failure (its cause's message). */
function fsReason(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  return cause instanceof Error ? cause.message : String(cause);
}

/** Fill defaults into a schema-valid profile object. */
export function resolveProfile(obj: unknown): Profile {
  const p = obj as Profile & { quirks?: Partial<ProfileQuirks>; hostQuery?: Partial<Profile['hostQuery']>; fields?: Partial<Profile['fields']> };
  const fields = p.fields ?? ({} as Partial<Profile['fields']>);
  const quirks: Partial<ProfileQuirks> = p.quirks ?? {};
  return {
    ...p,
    // The link mode follows the protocol unless the profile names it (check refuses a contradiction).
    quirks: { ...QUIRK_DEFAULTS, lowLevel: protocolLowLevel(p.protocol), ...quirks },
    hostQuery: { ...HOST_QUERY_DEFAULTS, ...(p.hostQuery ?? {}) },
    fields: {
      specimenId: fields.specimenId ?? [...DEFAULT_FIELDS.specimenId],
      patientId: fields.patientId ?? [...DEFAULT_FIELDS.patientId],
      runTime: fields.runTime ?? [...DEFAULT_FIELDS.runTime],
      // The keys' time source follows the run time unless the profile keeps an older one.
      keyTime: fields.keyTime ?? fields.runTime ?? [...DEFAULT_FIELDS.runTime],
      abnormalFlags: fields.abnormalFlags ?? [...DEFAULT_FIELDS.abnormalFlags],
      resultStatus: fields.resultStatus ?? [...DEFAULT_FIELDS.resultStatus],
      testId: fields.testId ?? { codeComponent: 4 },
    },
    tests: p.tests ?? {},
    runTypeRules: p.runTypeRules ?? [],
    consumption: p.consumption ?? [],
    corpusPatterns: p.corpusPatterns ?? [],
  };
}

function formatIssues(issues: ProfileIssue[]): string {
  return issues.map((i) => `${i.severity} ${i.path}: ${i.message}`).join('; ');
}

/**
 * Load, validate and resolve one profile. Throws GW_PROFILE_UNKNOWN (no such file) or
 * GW_PROFILE_INVALID (schema or rule errors; `details.issues` lists them all).
 */
export function loadProfile(name: string, dir: string = defaultProfilesDir()): Profile {
  const obj = readProfileFile(name, dir);
  const issues = checkProfile(obj, { fileName: canonicalProfileName(name, dir) });
  const errors = issues.filter((i) => i.severity === 'error');
  if (errors.length > 0) {
    throw new GatewayError('GW_PROFILE_INVALID', `profile "${name}" is invalid: ${formatIssues(errors)}`, { details: { issues } });
  }
  return resolveProfile(obj);
}

/** The profile with an analyzer's per-site quirk overrides applied (validated). */
export function applyOverrides(profile: Profile, overrides: Record<string, unknown> | undefined): Profile {
  if (!overrides || Object.keys(overrides).length === 0) return profile;
  const issues = checkQuirkOverrides(overrides, 'overrides').filter((i) => i.severity === 'error');
  if (issues.length > 0) throw new GatewayError('GW_CONFIG_INVALID', `overrides for profile "${profile.name}" are invalid: ${formatIssues(issues)}`, { details: { issues } });
  return { ...profile, quirks: { ...profile.quirks, ...(overrides as Partial<ProfileQuirks>) } };
}

/** The effective profile of a configured analyzer: its profile file plus `overrides`. */
export function resolveAnalyzerProfile(analyzer: AnalyzerConfig, dir: string = defaultProfilesDir()): Profile {
  return applyOverrides(loadProfile(analyzer.profile, dir), analyzer.overrides);
}

export interface ListedProfile extends ProfileSummary {
  /** Number of error issues (0 = loadable). */
  errors: number;
  warnings: number;
}

/** Summaries of every profile in a directory, including invalid ones (with their error count). */
export function listProfiles(dir: string = defaultProfilesDir()): ListedProfile[] {
  return profileNames(dir).map((name) => {
    const file = path.join(dir, `${name}.json`);
    let obj: unknown;
    try {
      obj = readProfileFile(name, dir);
    } catch {
      return { name, vendor: '?', model: '?', protocol: 'astm-e1381', transports: [], hostQuery: false, tests: 0, consumptionRows: 0, revision: '', file, errors: 1, warnings: 0 };
    }
    const issues = checkProfile(obj, { fileName: name });
    const p = resolveProfile(obj);
    const summary: ListedProfile = {
      name,
      vendor: String(p.vendor ?? '?'),
      model: String(p.model ?? '?'),
      protocol: p.protocol,
      transports: Array.isArray(p.transport?.supported) ? p.transport.supported : [],
      hostQuery: p.hostQuery.supported === true,
      tests: Object.keys(p.tests).length,
      consumptionRows: p.consumption.length,
      revision: typeof p.revision === 'string' ? p.revision : '',
      file,
      errors: issues.filter((i) => i.severity === 'error').length,
      warnings: issues.filter((i) => i.severity === 'warning').length,
    };
    if (p.firmware !== undefined) summary.firmware = p.firmware;
    return summary;
  });
}

/** Check every profile of a directory: `profiles check` without a name. */
export function checkAllProfiles(dir: string = defaultProfilesDir()): Array<{ name: string; file: string; issues: ProfileIssue[] }> {
  return profileNames(dir).map((name) => {
    const file = path.join(dir, `${name}.json`);
    try {
      return { name, file, issues: checkProfile(readProfileFile(name, dir), { fileName: name }) };
    } catch (err) {
      return { name, file, issues: [{ severity: 'error' as const, path: '(file)', message: (err as Error).message }] };
    }
  });
}

/**
 * `lab-gateway check` for the analyzers section: unknown profile names (with a suggestion),
 * invalid profiles, override keys that are not quirks, transports the profile does not support,
 * order push to an analyzer that cannot take it.
 */
export function checkSiteAnalyzers(analyzers: AnalyzerConfig[], dir: string = defaultProfilesDir()): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (analyzers.length === 0) return issues;
  let known: string[];
  try {
    known = profileNames(dir);
  } catch (err) {
    return [{ severity: 'error', path: 'profilesDir', message: `${dir} cannot be read (${fsReason(err)}): it must be a readable directory of firmware profiles` }];
  }
  const aliasesBroken = aliasesFileProblem(dir);
  // An error only when an analyzer's profile is then unknown: a site whose analyzers' profiles are
  // all found (their files named, or aliases still read: an entry that is not a string is left out
  // while the file's other aliases are read) starts as it did. Before, check (ExecStartPre) stopped such a
  // gateway after the upgrade (test/integration/review-s22-configb-aliases-unused.test.ts).
  let unknownProfile = false;
  const aliasesAt = issues.length;
  analyzers.forEach((a, i) => {
    const at = `analyzers[${i}]`;
    if (typeof a.profile !== 'string' || a.profile === '') {
      issues.push({ severity: 'error', path: `${at}.profile`, message: `a profile name is required; known profiles: ${known.join(', ')}` });
      return;
    }
    const fileHint = profileFileHint(a.profile, dir);
    if (fileHint) {
      issues.push({ severity: 'error', path: `${at}.profile`, message: fileHint });
      return;
    }
    if (!known.includes(canonicalProfileName(a.profile, dir))) {
      // Aliases are candidates too: `Sysmex-XN` is the alias sysmex-xn, not the file sysmex-xp.
      // With aliases.json broken the nearest file may be another analyzer's (sysmex-xn → sysmex-xp).
      const near = aliasesBroken ? ' (it may be an alias: aliases.json cannot be read, see profilesDir)' : suggest(a.profile, [...known, ...Object.keys(profileAliases(dir))]);
      issues.push({ severity: 'error', path: `${at}.profile`, message: `unknown profile "${a.profile}"${near}; known profiles: ${known.join(', ')}` });
      unknownProfile = true;
      return;
    }
    let profile: Profile;
    try {
      profile = loadProfile(a.profile, dir);
    } catch (err) {
      issues.push({ severity: 'error', path: `${at}.profile`, message: (err as Error).message });
      return;
    }
    for (const issue of checkQuirkOverrides(a.overrides, `${at}.overrides`)) issues.push(issue);
    const supported = profile.transport.supported;
    if (a.serial && !supported.includes('serial') && profile.protocol !== 'hl7-mllp') {
      issues.push({ severity: 'warning', path: `${at}.serial`, message: `profile "${profile.name}" (${profile.model}) is not known to support serial; supported: ${supported.join(', ')}` });
    }
    if (a.tcp?.listen && !supported.includes('tcp-server')) {
      issues.push({ severity: 'warning', path: `${at}.tcp.listen`, message: `profile "${profile.name}" does not list tcp-server (the analyzer connecting to the gateway); supported: ${supported.join(', ')}` });
    }
    if (profile.protocol === 'hl7-mllp' && !a.tcp?.listen) {
      // The gateway takes HL7 analyzers as an MLLP listener only (start refuses anything else).
      const key = a.tcp?.connect ? `${at}.tcp.connect` : `${at}.serial`;
      issues.push({ severity: 'error', path: key, message: `profile "${profile.name}" (${profile.model}) speaks HL7 over MLLP: the gateway takes it on tcp.listen only (the analyzer connects to the gateway)` });
    } else if (a.tcp?.connect && !supported.includes('tcp-client')) {
      issues.push({ severity: 'warning', path: `${at}.tcp.connect`, message: `profile "${profile.name}" does not list tcp-client (the gateway connecting to the analyzer); supported: ${supported.join(', ')}` });
    }
    if (a.pushOrders && profile.protocol === 'hl7-mllp') {
      issues.push({ severity: 'error', path: `${at}.pushOrders`, message: `profile "${profile.name}" (${profile.model}) speaks HL7: its analyzers ask for a sample's orders (host query${profile.hostQuery.supported ? ', answered by the gateway' : ''}) and take no pushed orders; remove pushOrders` });
    } else if (a.pushOrders && !profile.hostQuery.supported) {
      issues.push({ severity: 'error', path: `${at}.pushOrders`, message: `profile "${profile.name}" (${profile.model}) does not describe order download (hostQuery.supported is false); remove pushOrders` });
    }
    if (profile.transport.serial && a.serial?.baudRate !== undefined && a.serial.baudRate !== profile.transport.serial.baudRate) {
      issues.push({ severity: 'warning', path: `${at}.serial.baudRate`, message: `${a.serial.baudRate} differs from the profile default ${profile.transport.serial.baudRate}: the analyzer must be set to the same rate` });
    }
  });
  if (aliasesBroken) {
    const someRead = Object.keys(profileAliases(dir)).length > 0;
    issues.splice(
      aliasesAt,
      0,
      unknownProfile
        ? { severity: 'error', path: 'profilesDir', message: `${aliasesBroken}: its aliases are not known until it is fixed (an analyzers[].profile naming one is "unknown")` }
        : {
            severity: 'warning',
            path: 'profilesDir',
            message: `${aliasesBroken}: ${someRead ? "an entry that is not a string is left out, the file's other aliases are used" : 'no alias in it is known until it is fixed'}; every analyzers[].profile is found, so start is not affected`,
          },
    );
  }
  return issues;
}
