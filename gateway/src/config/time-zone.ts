/**
 * The lab's time zone (`gateway.timeZone`). Analyzers write times without a zone (ASTM E1394
 * YYYYMMDDHHMMSS) and many LIS leave the offset off HL7 DTM: both are the lab's wall clock. The
 * gateway reads them, and writes the times it sends to analyzers, in the process's local zone
 * (astm/records.ts, hl7/hl7-time.ts, hl7/normalize-lis.ts). An appliance left at UTC (a container,
 * a fresh install) in a lab elsewhere put every such time hours off, silently. The key names the
 * lab's zone; `applyTimeZone` makes it the process's (`process.env.TZ`, which Node re-reads on
 * assignment) before anything reads a time, so every reader follows without a zone of its own.
 */
import type { ConfigIssue, GatewayConfig } from './types.ts';

/** Names the system may report for UTC. */
const UTC_NAMES: ReadonlySet<string> = new Set(['UTC', 'Etc/UTC', 'Etc/UCT', 'UCT', 'Etc/GMT', 'GMT', 'Etc/Universal', 'Universal', 'Etc/Zulu', 'Zulu', 'Etc/GMT+0', 'Etc/GMT-0', 'Etc/GMT0', 'GMT0']);

const FORM = 'write an IANA name such as Europe/Berlin or America/New_York (timedatectl list-timezones lists them)';

/**
 * `written` as the zone the gateway runs in: its canonical name (`europe/berlin` → `Europe/Berlin`,
 * `US/Eastern` → `America/New_York`, as Intl resolves it; TZ takes that spelling only), or the
 * problem to report at the key.
 */
export function resolveTimeZone(written: string): { zone: string } | { problem: string } {
  const w = written.trim();
  // An offset (+01:00, -0500, UTC+1) has no summer time: half the year an hour off.
  if (/^(?:UTC|GMT)?\s*[+-]\d{1,2}(?::?\d{2})?$/i.test(w)) {
    return { problem: `"${written}" is an offset, not a time zone: it has no summer time, so the lab's clock would be an hour off half the year; ${FORM}` };
  }
  let zone: string | undefined;
  try {
    zone = new Intl.DateTimeFormat('en-US', { timeZone: w }).resolvedOptions().timeZone;
  } catch {
    zone = undefined;
  }
  if (zone === undefined || zone === '' || /^[+-]/.test(zone)) {
    const city = w.toLowerCase().replace(/ /g, '_');
    const meant = Intl.supportedValuesOf('timeZone').find((z) => z.toLowerCase().endsWith(`/${city}`));
    return { problem: `"${written}" is not a time zone: ${FORM}${meant ? `; did you mean ${meant}?` : ''}` };
  }
  return { zone };
}

/** The zone a process reads local times in now, and what set it. */
export interface TimeZoneInUse {
  timeZone: string;
  from: 'gateway.timeZone' | 'TZ' | 'system';
}

function currentZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC';
}

/** TZ as the environment sets it; empty counts as not set. */
function tzVariable(env: NodeJS.ProcessEnv): string | undefined {
  const tz = env.TZ;
  return tz === undefined || tz === '' ? undefined : tz;
}

/**
 * The zones applied by the gateways running in this process, in the order they started, and TZ as
 * it was before the first: TZ is the process's, so a gateway that stops puts back the zone of the
 * one started last among those still running, and the last to stop puts back TZ as it was. Before,
 * each put back what it had found: of two gateways started A then B and stopped A then B, A's stop
 * set the process's zone back to the one before A while B still ran, and B's stop left A's zone.
 */
const applied: Array<{ zone: string }> = [];
let tzBeforeApplied: string | undefined;

function setTz(tz: string | undefined): void {
  if (process.env.TZ === tz) return;
  if (tz === undefined) delete process.env.TZ;
  else process.env.TZ = tz;
}

/**
 * Make `config.gateway.timeZone` the process's zone (`process.env.TZ`), before anything reads a
 * time; without the key the process keeps its own (TZ, else the system's). Throws when the zone
 * did not take (Node's ICU without it). `restore` puts TZ back as it was (a gateway run inside
 * another program, the tests): the zone of another gateway of the process still running, else TZ
 * as it was before any (`applied`).
 */
export function applyTimeZone(config: GatewayConfig): TimeZoneInUse & { restore: () => void } {
  const wanted = config.gateway.timeZone;
  if (wanted === undefined) return { timeZone: currentZone(), from: tzVariable(process.env) ? 'TZ' : 'system', restore: () => undefined };
  if (applied.length === 0) tzBeforeApplied = process.env.TZ;
  const holder = { zone: wanted };
  applied.push(holder);
  let restored = false;
  const restore = (): void => {
    if (restored) return;
    restored = true;
    applied.splice(applied.indexOf(holder), 1);
    setTz(applied.at(-1)?.zone ?? tzBeforeApplied);
  };
  process.env.TZ = wanted;
  const now = currentZone();
  if (now !== wanted) {
    restore();
    throw new Error(`gateway.timeZone: ${wanted} could not be made the process's time zone (it reads ${now})`);
  }
  return { timeZone: wanted, from: 'gateway.timeZone', restore };
}

/**
 * `check`'s warning for a box that says no zone: no `gateway.timeZone`, no TZ, and the system at
 * UTC (a container, a fresh install). Times without an offset are then read as UTC, right only
 * for a lab at UTC. `systemZone`: the zone the process runs in (the system's when TZ is not set).
 */
export function timeZoneIssues(config: GatewayConfig, env: NodeJS.ProcessEnv = process.env, systemZone: string = currentZone()): ConfigIssue[] {
  if (config.gateway.timeZone !== undefined) return [];
  const tz = tzVariable(env);
  if (tz !== undefined) {
    // A TZ that names no zone (a typo in the unit file, a POSIX rule Node does not read) is read
    // as UTC, silently: said here, at check and at start (glibc's ':' before a name is allowed).
    const read = resolveTimeZone(tz.replace(/^:/, ''));
    if (!('problem' in read)) return [];
    return [
      {
        severity: 'warning',
        path: 'gateway.timeZone',
        message: `not set, and TZ=${tz} names no time zone, so analyzer and LIS times without an offset are read as UTC; set the lab's zone here or fix TZ (TZ ${read.problem})`,
      },
    ];
  }
  if (!UTC_NAMES.has(systemZone)) return [];
  return [
    {
      severity: 'warning',
      path: 'gateway.timeZone',
      message:
        "not set and TZ not set: the system's time zone is UTC, so analyzer and LIS times without an offset are read as UTC (and times written to analyzers are UTC): " +
        'right only for a lab at UTC; set the lab\'s zone, e.g. gateway.timeZone: Europe/Berlin',
    },
  ];
}
