/**
 * Configuration validation: all-or-nothing. Every issue is collected (`{severity, path, message}`)
 * before anything is applied; an unknown key is named, a renamed key names its replacement, and a
 * secret written inline is refused with the file/env key to use instead.
 */
import { accessSync, constants as fsConstants, existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { userInfo } from 'node:os';
import path from 'node:path';
import { EventTypes, SyncModes } from '../events/types.ts';
import { defaultProfilesDir } from '../profiles/check.ts';
import { loadProfile } from '../profiles/load.ts';
import { defaultConfig, EMBEDDED_BROKER_DEFAULTS, HL7_ENDPOINT_DEFAULTS } from './defaults.ts';
import { readAdminTokens } from './admin-tokens.ts';
import { caFileIssues, tlsFileIssues } from './certificates.ts';
import { displayUrl } from './display-url.ts';
import { resolveTimeZone } from './time-zone.ts';
import { longestOpenMinutes, parseBetween, parseDays, QUIET_AFTER_MINUTES_MAX } from './quiet-alert.ts';
import type { AnalyzerConfig, ConfigIssue, GatewayConfig, Hl7EndpointConfig, ListenConfig, QuietAlertConfig } from './types.ts';

type Obj = Record<string, unknown>;

/** Keys that were renamed: old path suffix → new name. */
const RENAMED: Record<string, string> = {
  'gateway.data_dir': 'gateway.dataDir',
  'gateway.datadir': 'gateway.dataDir',
  'odoo.db': 'odoo.database',
  'odoo.user': 'odoo.login',
  'odoo.username': 'odoo.login',
  'mqtt.port': 'mqtt.listen.port',
  'status.port': 'status.listen.port',
  'hl7[].port': 'hl7[].listen.port',
  'hl7[].host': 'hl7[].listen.host',
  'hl7[].ackMode': 'hl7[].ack',
  'analyzers[].firmwareProfile': 'analyzers[].profile',
};

/** Inline secrets are refused: the key to use instead. */
const INLINE_SECRETS: Record<string, string> = {
  'odoo.apiKey': 'odoo.apiKeyFile or odoo.apiKeyEnv',
  'odoo.password': 'odoo.apiKeyFile or odoo.apiKeyEnv',
  'mqtt.username': 'mqtt.usernameFile',
  'mqtt.password': 'mqtt.passwordFile',
  'status.adminToken': 'status.adminTokenFile',
};

class Checker {
  readonly issues: ConfigIssue[] = [];
  readonly baseDir: string;

  constructor(baseDir: string) {
    this.baseDir = baseDir;
  }

  error(p: string, message: string): void {
    this.issues.push({ severity: 'error', path: p, message });
  }

  warn(p: string, message: string): void {
    this.issues.push({ severity: 'warning', path: p, message });
  }

  /** Check that `value` is an object with only `allowed` keys; returns it (or {} after an error). */
  object(p: string, value: unknown, allowed: readonly string[], genericPath = p): Obj {
    if (value === undefined || value === null) return {};
    if (typeof value !== 'object' || Array.isArray(value)) {
      this.error(p, `must be a mapping (found ${Array.isArray(value) ? 'a list' : typeof value})`);
      return {};
    }
    const obj = value as Obj;
    for (const key of Object.keys(obj)) {
      if (allowed.includes(key)) continue;
      const full = `${genericPath}.${key}`;
      const secret = INLINE_SECRETS[full];
      const renamed = RENAMED[full] ?? RENAMED[`${genericPath}.${key.toLowerCase()}`];
      if (secret) this.error(`${p}.${key}`, `secrets are never written inline; put it in a file or the environment and use ${secret}`);
      else if (renamed) this.error(`${p}.${key}`, `unknown key; it was renamed to ${renamed.replace(/^.*\./, '')} (${renamed})`);
      else this.error(`${p}.${key}`, `unknown key (allowed: ${allowed.join(', ')})`);
    }
    return obj;
  }

  string(p: string, value: unknown, fallback: string, options: { nonEmpty?: boolean; pattern?: RegExp; patternHint?: string } = {}): string {
    if (value === undefined) return fallback;
    // `id:` with nothing after it is null in YAML: "found object" named nothing in the file
    // (test/integration/review-s22-config-no-value.test.ts).
    if (value === null) {
      this.error(p, 'has no value: write one after the colon, or leave the key out');
      return fallback;
    }
    if (typeof value !== 'string') {
      this.error(p, `must be a string (found ${typeof value})`);
      return fallback;
    }
    if (options.nonEmpty !== false && value.trim() === '') this.error(p, 'must not be empty');
    if (options.pattern && !options.pattern.test(value)) this.error(p, `"${value}" is not valid: ${options.patternHint ?? options.pattern.source}`);
    return value;
  }

  optionalString(p: string, value: unknown): string | undefined {
    if (value === undefined || value === null) return undefined;
    return this.string(p, value, '');
  }

  number(p: string, value: unknown, fallback: number, min: number, max: number, integer = true): number {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || Number.isNaN(value) || (integer && !Number.isInteger(value))) {
      this.error(p, `must be ${integer ? 'an integer' : 'a number'} (found ${JSON.stringify(value)})`);
      return fallback;
    }
    if (value < min || value > max) {
      this.error(p, `must be between ${min} and ${max} (found ${value})`);
      return fallback;
    }
    return value;
  }

  boolean(p: string, value: unknown, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') {
      this.error(p, `must be true or false (found ${JSON.stringify(value)})`);
      return fallback;
    }
    return value;
  }

  oneOf<T extends string>(p: string, value: unknown, allowed: readonly T[], fallback: T): T {
    if (value === undefined) return fallback;
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.error(p, `must be one of ${allowed.join(', ')} (found ${JSON.stringify(value)})`);
      return fallback;
    }
    return value as T;
  }

  list(p: string, value: unknown): unknown[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      // One entry written without its `- ` reads as a mapping: say so, and how to write it
      // (test/integration/review-s22-config-list-entry.test.ts).
      if (typeof value === 'object') {
        const [first, firstValue] = Object.entries(value as Obj)[0] ?? [];
        const example = first === undefined ? '' : ` (- ${first}: ${typeof firstValue === 'object' ? '…' : String(firstValue)})`;
        this.error(p, `must be a list (found one mapping): write each entry with "- " before its first key${example}`);
      } else this.error(p, `must be a list (found ${typeof value})`);
      return [];
    }
    return value;
  }

  /**
   * True (after an error at `p`) when the path `s` begins with `~`: no shell reads the file, so
   * `~/lgw-data` was a folder named "~" beside it, made by start (test/integration/review-s22-config-tilde-path.test.ts).
   */
  tilde(p: string, s: string): boolean {
    if (!s.startsWith('~')) return false;
    this.error(p, `"${s}" begins with ~, which is not read as the home folder here (the configuration is not read by a shell): write the full path (e.g. /var/lib/lab-gateway, /etc/lab-gateway/odoo.key)`);
    return true;
  }

  /** A path to a file that must exist; relative paths are resolved against the config file's folder. */
  file(p: string, value: unknown): string | undefined {
    const s = this.optionalString(p, value);
    if (s === undefined || s === '' || this.tilde(p, s)) return undefined;
    const resolved = path.resolve(this.baseDir, s);
    if (!existsSync(resolved)) this.error(p, `file not found: ${resolved}`);
    else if (isDirectory(resolved)) this.error(p, `${resolved} is a directory: name the file in it (start cannot read a directory)`);
    else {
      const denied = unreadableFile(resolved, resolved);
      if (denied) this.error(p, denied);
    }
    return resolved;
  }

  /**
   * A file holding a secret (`odoo.apiKeyFile`, `mqtt.passwordFile`, …): like file(), but a value
   * that is not a path (no folder in it) is never repeated in a message, since it may be the
   * secret itself written where its file's name belongs. `shown` is what messages may name.
   */
  secretFile(p: string, value: unknown): { resolved: string; shown: string } | undefined {
    const s = this.optionalString(p, value);
    if (s === undefined || s === '') return undefined;
    // Only `~/…` or `~user/…` (a path): anything else may be the secret itself, never repeated.
    if (/^~[^/\s]*\//.test(s) && this.tilde(p, s)) return { resolved: path.resolve(this.baseDir, s), shown: s };
    const resolved = path.resolve(this.baseDir, s);
    const shown = /[\\/]/.test(s) ? resolved : `the file named in ${p}`;
    if (!existsSync(resolved)) {
      this.error(p, /[\\/]/.test(s) ? `file not found: ${resolved}` : `file not found in ${this.baseDir} (its name is not repeated: a value without a folder may be the secret itself; ${p} names the file that holds it)`);
    } else if (isDirectory(resolved)) {
      this.error(p, `${shown} is a directory: name the file in it that holds the secret (start cannot read a directory)`);
    } else {
      const denied = unreadableFile(resolved, shown);
      if (denied) this.error(p, denied);
    }
    return { resolved, shown };
  }

  listen(p: string, value: unknown, fallback: ListenConfig): ListenConfig {
    const o = this.object(p, value, ['host', 'port']);
    const host = this.string(`${p}.host`, o.host, fallback.host);
    const hostWrong = typeof o.host === 'string' ? hostProblem(o.host) : undefined;
    if (hostWrong) this.error(`${p}.host`, hostWrong);
    const port = this.number(`${p}.port`, o.port, fallback.port, 0, 65535);
    if (host === '0.0.0.0' || host === '::') this.warn(`${p}.host`, `${host} listens on every interface; bind to the lab LAN interface's address instead`);
    return { host, port };
  }
}

/**
 * `<entry>.quietAlert` (config/quiet-alert.ts): `afterMinutes` required, `between` and `days` as
 * the lab writes its hours, and a bound the window can reach (quiet time counts within one opening).
 */
function quietAlert(c: Checker, p: string, value: unknown, generic: string): QuietAlertConfig | undefined {
  if (value === undefined || value === null) return undefined;
  const errors = c.issues.filter((i) => i.severity === 'error').length;
  const o = c.object(p, value, ['afterMinutes', 'between', 'days'], generic);
  if (o.afterMinutes === undefined && typeof value === 'object' && !Array.isArray(value)) c.error(`${p}.afterMinutes`, 'is required: minutes without a message, within the window, before the status says the endpoint is quiet (e.g. 90)');
  const afterMinutes = c.number(`${p}.afterMinutes`, o.afterMinutes, 0, 1, QUIET_AFTER_MINUTES_MAX);
  const q: QuietAlertConfig = { afterMinutes };
  let window = { open: 0, close: 24 * 60 };
  let days = [true, true, true, true, true, true, true];
  const between = c.optionalString(`${p}.between`, o.between);
  if (between !== undefined && between !== '') {
    const b = parseBetween(between);
    if ('problem' in b) c.error(`${p}.between`, b.problem);
    else {
      window = b;
      q.between = between.trim();
    }
  }
  const daysWritten = c.optionalString(`${p}.days`, o.days);
  if (daysWritten !== undefined && daysWritten !== '') {
    const d = parseDays(daysWritten);
    if (!Array.isArray(d)) c.error(`${p}.days`, d.problem);
    else {
      days = d;
      q.days = daysWritten.trim();
    }
  }
  const open = longestOpenMinutes(window.open, window.close, days);
  if (afterMinutes > open) c.error(`${p}.afterMinutes`, `${afterMinutes} min is longer than the window stays open (${open} min at most): quiet time counts within one opening of the window, so the alert would never come; give fewer minutes or a wider window`);
  return c.issues.filter((i) => i.severity === 'error').length === errors ? q : undefined;
}

/** True when `file` exists and is a directory (a file key that names the folder, not the file). */
function isDirectory(file: string): boolean {
  try {
    return statSync(file).isDirectory();
  } catch {
    return false;
  }
}

/**
 * What `file` is, after its links: `character device` (a serial port, a pty), another kind in
 * words for a message, undefined when it does not exist, null when it cannot be looked at (a
 * folder on the way the user may not enter: start, as its own user, says what it finds).
 */
function fileKind(file: string): string | undefined | null {
  try {
    const st = statSync(file);
    if (st.isCharacterDevice()) return 'character device';
    if (st.isFile()) return 'a regular file';
    if (st.isDirectory()) return 'a directory';
    if (st.isBlockDevice()) return 'a block device (a disk)';
    if (st.isFIFO()) return 'a named pipe';
    if (st.isSocket()) return 'a socket';
    return 'neither a file nor a device';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? undefined : null;
  }
}

/**
 * Why the user running this process may not read `file` (permission denied), or undefined. `start`
 * runs as the same user as a `check` run before it (systemd's ExecStartPre), and refused such a
 * file one key at a time while `check` said nothing (test/integration/review-s22-config-unreadable-files.test.ts).
 */
function unreadableFile(file: string, shown: string): string | undefined {
  try {
    accessSync(file, fsConstants.R_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') return undefined;
    let user: string;
    try {
      user = userInfo().username;
    } catch {
      user = `with uid ${process.getuid?.() ?? '?'}`;
    }
    return `${shown} cannot be read by the user ${user} ${UNREADABLE_WORDS} (give that user or its group read access, e.g. chgrp and chmod g+r)`;
  }
}

const UNREADABLE_WORDS = "(permission denied): the gateway's user must be able to read it";

/**
 * True for the issue of a file the user running this process may not read (unreadableFile). The
 * commands that ask the running gateway read `--config` for `status.listen` alone, and an operator
 * may not read the admin token file (test/integration/review-s22-configb-operator-token-file.test.ts).
 */
export function isUnreadableFileIssue(issue: ConfigIssue): boolean {
  return issue.message.includes(UNREADABLE_WORDS);
}

/**
 * Why `host` (a `listen.host` or `tcp.connect.host`) is not a host name or an address, or
 * undefined: written with its port (`10.0.0.5:4000`), a scheme (`tcp://10.0.0.6`) or brackets
 * (`[::1]`), as an analyzer's menu or a browser shows an address. Before, check passed it and the
 * gateway looked up a host of that name for ever (ENOTFOUND)
 * (test/integration/review-s22-config-host-port.test.ts).
 */
function hostProblem(host: string): string | undefined {
  // White space kept by quotes (`host: "10.0.0.6 "`, pasted from a list of addresses): looked up
  // as written, for ever, as a host with its port was; check passed it
  // (test/integration/review-s22-configb-host-space.test.ts).
  const h = host.trim();
  return hostFormProblem(host) ?? (h !== '' && h !== host ? `"${host}" has white space around it: write host: ${h}` : undefined);
}

function hostFormProblem(host: string): string | undefined {
  const h = host.trim();
  if (h === '' || isIP(h) !== 0) return undefined;
  const is = `"${host}" is not a host name or address`;
  const write = (name: string, port?: string): string => `${is}: write host: ${name}${port ? ` and port: ${port}` : ''}`;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(h)) {
    try {
      const u = new URL(h);
      if (u.hostname) return write(u.hostname.replace(/^\[(.*)\]$/, '$1'), u.port || undefined);
    } catch {
      /* said below */
    }
    return `${is}: write the machine's name or address alone, without a scheme`;
  }
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(h);
  if (bracketed && isIP(bracketed[1]!) === 6) return write(bracketed[1]!, bracketed[2]);
  const withPort = /^([^:\s/]+):(\d+)$/.exec(h);
  if (withPort) return write(withPort[1]!, withPort[2]);
  if (/[\s/]/.test(h) || h.includes(':')) return `${is}: write the machine's name or address alone (e.g. 10.0.0.5 or analyzer-1.lab.local), its port in port`;
  return undefined;
}

/** True when `file` is a regular file holding nothing but white space. */
function emptyFile(file: string): boolean {
  try {
    return statSync(file).isFile() && readFileSync(file, 'utf8').trim() === '';
  } catch {
    return false;
  }
}

/**
 * The lines of an admin token file that cannot be in force (config/admin-tokens.ts), each an
 * error naming its line and never the token; a file of comments only is a warning, as an empty one.
 */
function adminTokenFileIssues(c: Checker, file: string, shown: string): void {
  let text: string;
  try {
    if (!statSync(file).isFile()) return;
    text = readFileSync(file, 'utf8');
  } catch {
    return;
  }
  const { tokens, problems } = readAdminTokens(text);
  for (const p of problems) c.error('status.adminTokenFile', p);
  if (tokens.length === 0 && problems.length === 0) c.warn('status.adminTokenFile', `${shown} holds no token (comments only): admin actions (replay, discard, pause) stay disabled until it holds one`);
}

/**
 * Why `broker` is not a broker the gateway can publish to, or undefined: `embedded`, or the URL of
 * an external broker over MQTT (mqtt://, mqtts://) or MQTT over WebSockets (ws://, wss://), which
 * mqtt.js speaks alike. `check` and MqttStatus (start) apply this one rule.
 */
export function mqttBrokerProblem(broker: string): string | undefined {
  if (broker === 'embedded') return undefined;
  const hint = 'must be "embedded" or the URL of an external broker: mqtt://, mqtts://, ws:// or wss://host:port';
  let url: URL;
  try {
    url = new URL(broker);
  } catch {
    return `${hint} (got "${displayUrl(broker)}")`;
  }
  if (!['mqtt:', 'mqtts:', 'ws:', 'wss:'].includes(url.protocol) || url.hostname === '') return `${hint} (got "${displayUrl(broker)}")`;
  if (url.username !== '' || url.password !== '') return 'secrets are never written inline: take the credentials out of the URL and use mqtt.usernameFile and mqtt.passwordFile';
  return undefined;
}

/**
 * Why `proxy` is not a usable `odoo.proxy`, or undefined. The gateway opens a CONNECT tunnel to an
 * HTTP proxy (relay/odoo/tunnel-agent.ts): an http:// URL with a host. Credentials are secrets and
 * never inline: they come from odoo.proxyAuthFile.
 */
function proxyUrlProblem(proxy: string): string | undefined {
  let url: URL;
  try {
    url = new URL(proxy);
  } catch {
    return `"${displayUrl(proxy)}" is not a URL: write the proxy as http://host:port`;
  }
  if (url.username !== '' || url.password !== '') {
    return 'secrets are never written inline: take the user and password out of the URL, write `user:password` into a file and name it in odoo.proxyAuthFile';
  }
  if (url.protocol !== 'http:') return `must be an http:// URL (got ${url.protocol}): the gateway opens a CONNECT tunnel to the proxy and speaks TLS with Odoo inside it`;
  if (url.hostname === '') return `"${displayUrl(proxy)}" has no host: write the proxy as http://host:port`;
  return undefined;
}

/**
 * Why the proxy credentials file cannot be used, or undefined: it must hold `user:password`.
 * `shown` names the file in the message (Checker.secretFile).
 */
function proxyAuthProblem(file: string, shown: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    return `cannot read ${shown} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
  if (text === '') return `${shown} is empty: it must hold the proxy's user:password`;
  if (!text.includes(':') || text.startsWith(':')) return `${shown} must hold the proxy's credentials as user:password on one line`;
  return undefined;
}

/**
 * True when `name` can be repeated in a message as an environment variable's name: upper-case
 * letters, digits and underscores, as variable names are written. Anything else (an Odoo key is
 * 40 lower-case hex digits) may be the key itself, put where its variable's name belongs.
 */
function showableEnvName(name: string): boolean {
  return /^[A-Z_][A-Z0-9_]{0,63}$/.test(name);
}

/**
 * Whether `url` is the address of a page in a browser rather than of the Odoo server. The gateway
 * posts to odoo.url followed by `/jsonrpc` (or `/json/2/…`): an address copied from the browser
 * while logged in (`/web#action=12`, Odoo 17.2+'s `/odoo/action-12`, `/web/login`, `/?db=lab`)
 * sent every request to a page that is not Odoo's API. Odoo may be served by a proxy under a path
 * of any length (`/erp`, `/odoo/prod` beside `/odoo/test`), so the web client is looked for after
 * any such path and the address to write keeps it. `error`: what no proxy's path can be (a query or
 * `#…`, `/web/login`, `/odoo/action-12`, a record, `/jsonrpc`); `warning`: a path that may be either
 * (`/web`, `/odoo/inventory`), said but not refused: a working site upgrading must still pass.
 * Neither the query nor the part after `#` is repeated (either may hold anything).
 */
function odooWebClientPage(url: URL): { severity: 'error' | 'warning'; why: string; write: string } | undefined {
  const segments = url.pathname.split('/').filter(Boolean);
  const write = (upTo: number): string => url.origin + segments.slice(0, upTo).map((s) => `/${s}`).join('');
  // The last `web` or `odoo` (not the path's end: `/odoo` alone is a proxy's path): Odoo 17.2+
  // served under /odoo is browsed at /odoo/odoo/action-12.
  const client = segments.findLastIndex((s, i) => s === 'web' || (s === 'odoo' && i < segments.length - 1));
  const base = client === -1 ? segments.length : client;
  // A bare ? or # is no query or fragment to URL, but is still sent before /jsonrpc.
  const cut = url.href.slice(url.origin.length).search(/[?#]/);
  if (cut !== -1) {
    const what = url.href.slice(url.origin.length)[cut] === '?' ? 'a query (?…)' : 'a fragment (#…)';
    return { severity: 'error', why: `holds ${what}, as an address copied from the browser does: everything after ? or # breaks each request`, write: write(base) };
  }
  if (segments.at(-1) === 'jsonrpc') return { severity: 'error', why: `${url.pathname} names the API's own path, which the gateway adds itself`, write: write(segments.length - 1) };
  if (client === -1) return undefined;
  const rest = segments.slice(client + 1);
  const page = `${url.pathname} is a page of Odoo's web client, not the server's address`;
  const certain = segments[client] === 'web' ? ['login', 'database', 'signup', 'reset_password'].includes(rest[0] ?? '') : rest.some((s) => /^action-/.test(s) || s.includes('.') || /^\d+$/.test(s));
  if (certain) return { severity: 'error', why: page, write: write(base) };
  // /web/<word> other than those pages is no address a browser shows while logged in: a proxy's path.
  if (rest.length > 0 && segments[client] === 'web') return undefined;
  return { severity: 'warning', why: `${url.pathname} may be a page of Odoo's web client copied from the browser, or the path a proxy serves Odoo under; if no proxy serves it there`, write: write(base) };
}

/** Loopback hosts, as URL.hostname writes them. */
function loopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** gateway.id, endpoint ids: also the MQTT topic level `lab-gateway/<gatewayId>/…` (no `/`, `+`, `#`). */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const ID_HINT = 'letters, digits, dot, dash and underscore, at most 64 characters';
/** hl7[].accessionPrefix: short, and without the `-` that joins it to the accession. */
const ACCESSION_PREFIX_PATTERN = /^[A-Za-z0-9]{1,16}$/;

export interface ValidationResult {
  config: GatewayConfig | undefined;
  issues: ConfigIssue[];
  /**
   * The analyzers as parsed, even when the configuration has errors elsewhere, so that `check`
   * reports their profile problems in the same run.
   */
  analyzers: AnalyzerConfig[];
  /** The resolved profiles directory (undefined: the package's), when it is a readable directory. */
  profilesDir: string | undefined;
  /** True when `profilesDir` is set but is not a readable directory (already reported). */
  profilesDirInvalid: boolean;
  /**
   * The addresses the gateway would listen on, each with its key (`hl7[0].listen`), for `check` to
   * try, even when the configuration has errors elsewhere. Left out: port 0 (any free port), and a
   * listener with an error of its own or of an entry it is in (its host or port, a port another
   * listener takes: that error says it already).
   */
  listeners: ListenerAt[];
  /** gateway.dataDir as resolved, unless it has an error. */
  dataDir: string | undefined;
}

/** A listening address and the key that sets it. */
export interface ListenerAt {
  path: string;
  host: string;
  port: number;
}

/** Why `dir` is not a readable directory, or undefined when it is one. */
function unreadableDir(dir: string): string | undefined {
  try {
    if (!statSync(dir).isDirectory()) return `${dir} is not a directory`;
    accessSync(dir, fsConstants.R_OK | fsConstants.X_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `${dir} does not exist` : `${dir} cannot be read (${code ?? (err as Error).message})`;
  }
}

/** The default TCP port a profile gives its analyzers (`transport.tcpPort`), if it can be read. */
function profileTcpPort(profile: string, dir: string): { port: number | undefined; loaded: boolean } {
  try {
    return { port: loadProfile(profile, dir).transport.tcpPort, loaded: true };
  } catch {
    return { port: undefined, loaded: false };
  }
}

/** Addresses that accept connections on every local address. */
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::']);

/** Validate a parsed YAML document; `baseDir` resolves relative file paths. */
export function validateConfig(raw: unknown, baseDir: string = process.cwd()): ValidationResult {
  const c = new Checker(baseDir);
  const d = defaultConfig();
  const root = c.object('', raw ?? {}, ['gateway', 'hl7', 'analyzers', 'odoo', 'relay', 'store', 'mqtt', 'status', 'profilesDir']);
  // The root has no name: strip the leading dot of its issues' paths.
  for (const i of c.issues) i.path = i.path.replace(/^\./, '');

  const g = c.object('gateway', root.gateway, ['id', 'dataDir', 'logLevel', 'timeZone']);
  const gateway: GatewayConfig['gateway'] = {
    id: c.string('gateway.id', g.id, d.gateway.id, { pattern: ID_PATTERN, patternHint: ID_HINT }),
    dataDir: path.resolve(baseDir, c.string('gateway.dataDir', g.dataDir, d.gateway.dataDir)),
    logLevel: c.oneOf('gateway.logLevel', g.logLevel, ['debug', 'info', 'warn', 'error'] as const, d.gateway.logLevel),
  };
  if (typeof g.dataDir === 'string') c.tilde('gateway.dataDir', g.dataDir);
  // The lab's zone for times written without one (config/time-zone.ts); left out: the process's.
  const timeZoneWritten = c.optionalString('gateway.timeZone', g.timeZone);
  if (timeZoneWritten) {
    const tz = resolveTimeZone(timeZoneWritten);
    if ('problem' in tz) c.error('gateway.timeZone', tz.problem);
    else gateway.timeZone = tz.zone;
  }

  const profilesDirRaw = c.optionalString('profilesDir', root.profilesDir);
  const profilesDirSet = profilesDirRaw ? path.resolve(baseDir, profilesDirRaw) : undefined;
  const profilesDirProblem = profilesDirSet && !c.tilde('profilesDir', profilesDirRaw!) ? unreadableDir(profilesDirSet) : undefined;
  if (profilesDirProblem) c.error('profilesDir', `${profilesDirProblem}: it must be a readable directory of firmware profiles (leave it out for the package's firmware-profiles/)`);

  const hl7: Hl7EndpointConfig[] = [];
  const hl7Raw = root.hl7 === undefined ? d.hl7 : c.list('hl7', root.hl7);
  // `hl7:` with nothing after it (its entries commented out) reads as null: no listener, while
  // left out is the default endpoint and `hl7: []` says none. Kept as none, but said.
  if (root.hl7 === null) c.warn('hl7', 'has no value: the gateway opens no HL7/MLLP listener, so no LIS can connect; write hl7: [] if that is meant, list the endpoints under it, or leave hl7 out for the default endpoint lis on 127.0.0.1:2575');
  hl7Raw.forEach((entry, i) => {
    const p = `hl7[${i}]`;
    const o = c.object(p, entry, ['id', 'listen', 'ack', 'tls', 'maxMessageBytes', 'idleTimeoutMs', 'frameTimeoutMs', 'maxConnections', 'unknownMessageTypes', 'defaultCharset', 'analyzer', 'accessionPrefix', 'quietAlert'], 'hl7[]');
    const ep: Hl7EndpointConfig = {
      id: c.string(`${p}.id`, o.id, '', { pattern: ID_PATTERN, patternHint: ID_HINT }),
      listen: c.listen(`${p}.listen`, o.listen, { host: '127.0.0.1', port: 2575 }),
      ack: c.oneOf(`${p}.ack`, o.ack, ['original', 'enhanced'] as const, HL7_ENDPOINT_DEFAULTS.ack),
      maxMessageBytes: c.number(`${p}.maxMessageBytes`, o.maxMessageBytes, HL7_ENDPOINT_DEFAULTS.maxMessageBytes, 1024, 256 * 1024 * 1024),
      idleTimeoutMs: c.number(`${p}.idleTimeoutMs`, o.idleTimeoutMs, HL7_ENDPOINT_DEFAULTS.idleTimeoutMs, 0, 7 * 86_400_000),
      frameTimeoutMs: c.number(`${p}.frameTimeoutMs`, o.frameTimeoutMs, HL7_ENDPOINT_DEFAULTS.frameTimeoutMs ?? 60_000, 0, 86_400_000),
      maxConnections: c.number(`${p}.maxConnections`, o.maxConnections, HL7_ENDPOINT_DEFAULTS.maxConnections, 1, 10_000),
      unknownMessageTypes: c.oneOf(`${p}.unknownMessageTypes`, o.unknownMessageTypes, ['accept', 'reject'] as const, HL7_ENDPOINT_DEFAULTS.unknownMessageTypes),
      defaultCharset: c.oneOf(`${p}.defaultCharset`, o.defaultCharset, ['ascii', 'latin1', 'utf8'] as const, HL7_ENDPOINT_DEFAULTS.defaultCharset),
    };
    if (o.id === undefined) c.error(`${p}.id`, 'is required');
    if (o.listen === undefined && root.hl7 !== undefined) c.error(`${p}.listen`, 'is required (host and port to listen on)');
    const analyzer = c.optionalString(`${p}.analyzer`, o.analyzer);
    if (analyzer) ep.analyzer = analyzer;
    const accessionPrefix = c.optionalString(`${p}.accessionPrefix`, o.accessionPrefix);
    if (accessionPrefix !== undefined) {
      if (!ACCESSION_PREFIX_PATTERN.test(accessionPrefix)) c.error(`${p}.accessionPrefix`, `"${accessionPrefix}" is not a valid prefix: letters and digits, 1 to 16 (orders become <prefix>-<accession>, e.g. OUT-12345)`);
      else if (analyzer) c.error(`${p}.accessionPrefix`, 'is for a LIS link: an analyzer endpoint (hl7[].analyzer) has no orders of its own');
      else ep.accessionPrefix = accessionPrefix;
    }
    const hl7Quiet = quietAlert(c, `${p}.quietAlert`, o.quietAlert, 'hl7[].quietAlert');
    if (hl7Quiet) ep.quietAlert = hl7Quiet;
    if (o.tls !== undefined) {
      const t = c.object(`${p}.tls`, o.tls, ['cert', 'key', 'ca', 'requireClientCert'], 'hl7[].tls');
      const cert = c.file(`${p}.tls.cert`, t.cert);
      const key = c.file(`${p}.tls.key`, t.key);
      const ca = c.file(`${p}.tls.ca`, t.ca);
      const requireClientCert = c.boolean(`${p}.tls.requireClientCert`, t.requireClientCert, false);
      if (t.cert === undefined) c.error(`${p}.tls.cert`, 'is required when tls is set');
      if (t.key === undefined) c.error(`${p}.tls.key`, 'is required when tls is set');
      if (requireClientCert && t.ca === undefined) c.error(`${p}.tls.ca`, 'is required when requireClientCert is true (the CA that signs client certificates)');
      ep.tls = { cert: cert ?? '', key: key ?? '', requireClientCert, ...(ca ? { ca } : {}) };
      // Loaded as start loads them: a key from another pair, an expired certificate.
      c.issues.push(...tlsFileIssues(`${p}.tls`, { cert, key, ca }));
    }
    hl7.push(ep);
  });

  const analyzers: AnalyzerConfig[] = [];
  c.list('analyzers', root.analyzers).forEach((entry, i) => {
    const p = `analyzers[${i}]`;
    const o = c.object(p, entry, ['id', 'profile', 'serial', 'tcp', 'overrides', 'pushOrders', 'quietAlert'], 'analyzers[]');
    const a: AnalyzerConfig = {
      id: c.string(`${p}.id`, o.id, '', { pattern: ID_PATTERN, patternHint: ID_HINT }),
      profile: c.string(`${p}.profile`, o.profile, 'generic-astm'),
    };
    if (o.id === undefined) c.error(`${p}.id`, 'is required');
    if (o.serial !== undefined) {
      const s = c.object(`${p}.serial`, o.serial, ['path', 'baudRate', 'dataBits', 'parity', 'stopBits', 'rtscts', 'xon', 'xoff'], 'analyzers[].serial');
      // Resolved against the config's folder, as every other path of the file: the port is opened
      // as resolved here, not from the folder the gateway happens to run in.
      const written = c.string(`${p}.serial.path`, s.path, '');
      a.serial = { path: written === '' ? written : path.resolve(baseDir, written) };
      if (s.path === undefined) c.error(`${p}.serial.path`, 'is required (e.g. /dev/ttyUSB0)');
      else if (written !== '') {
        const kind = fileKind(a.serial.path);
        if (kind === undefined && !path.isAbsolute(written)) {
          // `ttyUSB0` for /dev/ttyUSB0. A warning, not an error: start keeps trying a missing port.
          const dev = path.join('/dev', written);
          const hint = existsSync(dev) ? `; did you mean ${dev}?` : ' (a relative path is read from the config file\'s folder; ports are under /dev, e.g. /dev/ttyUSB0 or /dev/serial/by-id/…)';
          c.warn(`${p}.serial.path`, `${a.serial.path} does not exist${hint}: the gateway would keep trying to open it, the analyzer in error`);
        } else if (kind === undefined) {
          // A USB adapter not plugged in yet: start keeps trying, and opens it once it is there.
          c.warn(`${p}.serial.path`, `${a.serial.path} does not exist (a USB adapter not plugged in yet, or another adapter's name): the gateway would keep trying to open it, the analyzer in error until it appears`);
        } else if (kind !== null && kind !== 'character device') {
          // Never a line, whatever start does: a regular file, a folder, a socket.
          const instead = 'name the port\'s device: /dev/serial/by-id/<the adapter> (ls /dev/serial/by-id/ lists them), or /dev/ttyUSB0, /dev/ttyS0';
          c.error(`${p}.serial.path`, `${a.serial.path} is ${kind}, not a serial port (a character device): the gateway cannot open it as a line; ${instead}`);
        }
      }
      if (s.baudRate !== undefined) a.serial.baudRate = c.number(`${p}.serial.baudRate`, s.baudRate, 9600, 50, 4_000_000);
      if (s.dataBits !== undefined) a.serial.dataBits = Number(c.oneOf(`${p}.serial.dataBits`, String(s.dataBits), ['5', '6', '7', '8'] as const, '8')) as 5 | 6 | 7 | 8;
      if (s.parity !== undefined) a.serial.parity = c.oneOf(`${p}.serial.parity`, s.parity, ['none', 'even', 'odd', 'mark', 'space'] as const, 'none');
      if (s.stopBits !== undefined) a.serial.stopBits = Number(c.oneOf(`${p}.serial.stopBits`, String(s.stopBits), ['1', '1.5', '2'] as const, '1')) as 1 | 1.5 | 2;
      for (const k of ['rtscts', 'xon', 'xoff'] as const) if (s[k] !== undefined) a.serial[k] = c.boolean(`${p}.serial.${k}`, s[k], false);
    }
    if (o.tcp !== undefined) {
      const t = c.object(`${p}.tcp`, o.tcp, ['listen', 'connect'], 'analyzers[].tcp');
      a.tcp = {};
      if (t.listen !== undefined) {
        const listen = c.listen(`${p}.tcp.listen`, t.listen, { host: '127.0.0.1', port: 0 });
        const portGiven = typeof t.listen !== 'object' || t.listen === null || Array.isArray(t.listen) || (t.listen as Obj).port !== undefined;
        // The analyzer is set up to connect to a fixed port: without one here, the profile's
        // default port (transport.tcpPort) applies; an ephemeral port is never a default.
        if (!portGiven && !profilesDirProblem) {
          const { port, loaded } = profileTcpPort(a.profile, profilesDirSet ?? defaultProfilesDir());
          if (port !== undefined) listen.port = port;
          else if (loaded) c.error(`${p}.tcp.listen.port`, `is required: profile "${a.profile}" gives no default port (transport.tcpPort); use the port the analyzer is set to connect to`);
          else c.error(`${p}.tcp.listen.port`, `is required unless the profile gives a default port (transport.tcpPort), and profile "${a.profile}" cannot be loaded`);
        }
        a.tcp.listen = listen;
      }
      if (t.connect !== undefined) {
        const cn = c.object(`${p}.tcp.connect`, t.connect, ['host', 'port'], 'analyzers[].tcp.connect');
        a.tcp.connect = { host: c.string(`${p}.tcp.connect.host`, cn.host, ''), port: c.number(`${p}.tcp.connect.port`, cn.port, 0, 1, 65535) };
        if (cn.host === undefined) c.error(`${p}.tcp.connect.host`, 'is required');
        const hostWrong = typeof cn.host === 'string' ? hostProblem(cn.host) : undefined;
        if (hostWrong) c.error(`${p}.tcp.connect.host`, hostWrong);
        if (cn.port === undefined) c.error(`${p}.tcp.connect.port`, "is required (the analyzer's listening port)");
      }
      if ((t.listen === undefined) === (t.connect === undefined)) c.error(`${p}.tcp`, 'needs exactly one of listen (the analyzer connects) or connect (the gateway connects)');
    }
    if ((o.serial === undefined) === (o.tcp === undefined)) c.error(p, 'needs exactly one transport: serial or tcp');
    if (o.pushOrders !== undefined) a.pushOrders = c.boolean(`${p}.pushOrders`, o.pushOrders, false);
    const analyzerQuiet = quietAlert(c, `${p}.quietAlert`, o.quietAlert, 'analyzers[].quietAlert');
    if (analyzerQuiet) a.quietAlert = analyzerQuiet;
    if (o.overrides !== undefined) {
      const ov = c.object(`${p}.overrides`, o.overrides, Object.keys((o.overrides as Obj) ?? {}));
      a.overrides = ov;
    }
    analyzers.push(a);
  });

  const od = c.object('odoo', root.odoo, ['url', 'database', 'login', 'apiKeyFile', 'apiKeyEnv', 'apiKeyExpiresAt', 'keyExpiryWarnDays', 'caFile', 'pinnedCertSha256', 'proxy', 'proxyAuthFile', 'timeoutMs', 'sandboxVersion', 'mapping']);
  const odoo: GatewayConfig['odoo'] = {
    keyExpiryWarnDays: c.number('odoo.keyExpiryWarnDays', od.keyExpiryWarnDays, d.odoo.keyExpiryWarnDays, 0, 365),
    timeoutMs: c.number('odoo.timeoutMs', od.timeoutMs, d.odoo.timeoutMs, 100, 600_000),
    sandboxVersion: Number(c.oneOf('odoo.sandboxVersion', od.sandboxVersion === undefined ? undefined : String(od.sandboxVersion), ['16', '17', '18', '19'] as const, String(d.odoo.sandboxVersion) as '17')) as 16 | 17 | 18 | 19,
    mapping: { ...d.odoo.mapping },
  };
  const url = c.optionalString('odoo.url', od.url);
  if (url !== undefined) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      c.error('odoo.url', `"${displayUrl(url)}" is not a URL`);
    }
    if (parsed && (parsed.username !== '' || parsed.password !== '')) {
      // The key (or a password) written into the URL would be repeated wherever the URL is shown.
      c.error('odoo.url', 'secrets are never written inline: take the user name and key out of the URL (the key goes in a file named by odoo.apiKeyFile, or in the environment variable named by odoo.apiKeyEnv; the user in odoo.login)');
    }
    const browserPage = parsed ? odooWebClientPage(parsed) : undefined;
    if (browserPage) c[browserPage.severity === 'error' ? 'error' : 'warn']('odoo.url', `${browserPage.why}: write ${browserPage.write} (the gateway posts to odoo.url followed by /jsonrpc; the database goes in odoo.database)`);
    if (parsed && parsed.protocol !== 'https:') {
      if (parsed.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(parsed.hostname)) c.warn('odoo.url', 'plain http is only acceptable to a local test server');
      else c.error('odoo.url', 'must be https:// (the gateway never sends credentials in clear text)');
    }
    odoo.url = url;
    for (const k of ['database', 'login'] as const) {
      const v = c.optionalString(`odoo.${k}`, od[k]);
      if (v === undefined) c.error(`odoo.${k}`, `is required when odoo.url is set`);
      else odoo[k] = v;
    }
    const keyFileEntry = c.secretFile('odoo.apiKeyFile', od.apiKeyFile);
    const keyFile = keyFileEntry?.resolved;
    const keyEnv = c.optionalString('odoo.apiKeyEnv', od.apiKeyEnv);
    if (keyFile) odoo.apiKeyFile = keyFile;
    if (keyEnv) odoo.apiKeyEnv = keyEnv;
    if (!keyFile && !keyEnv) c.error('odoo.apiKeyFile', 'an API key is required when odoo.url is set: odoo.apiKeyFile (a file) or odoo.apiKeyEnv (an environment variable)');
    // The file wins over the variable, so an empty file is no key at all: every login would be
    // refused, after the gateway started and accepted messages it can never post.
    if (keyFileEntry && emptyFile(keyFileEntry.resolved)) c.error('odoo.apiKeyFile', `${keyFileEntry.shown} is empty: the gateway cannot start without the API key (write the key into it)`);
    // `$ODOO_KEY`, `${ODOO_KEY}`: the file is not run through a shell, so the gateway looked for a
    // variable of that name and said "not set" of one that was (test/integration/review-s22-config-env-name.test.ts).
    // Beside odoo.apiKeyFile the variable is never read (the file wins): a warning, as an unset
    // one is there; an error had stopped a gateway that ran the day before
    // (test/integration/review-s22-configb-api-key-env-unused.test.ts).
    const dollar = keyEnv ? /^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))$/.exec(keyEnv) : null;
    const dollarWords = dollar ? `names a variable as a shell writes it: write apiKeyEnv: ${dollar[1] ?? dollar[2]} (the variable's name alone; the configuration is not read by a shell)` : '';
    if (dollar && keyFile) c.warn('odoo.apiKeyEnv', `${dollarWords} (unused: odoo.apiKeyFile is read instead)`);
    else if (dollar) c.error('odoo.apiKeyEnv', dollarWords);
    else if (keyEnv && !process.env[keyEnv]?.trim()) {
      // `start` refuses to run without the key (the file wins when both are set); check says so.
      // A value that does not look like a variable's name may be the key itself: not repeated.
      const variable = showableEnvName(keyEnv) ? `environment variable ${keyEnv}` : 'the environment variable named in odoo.apiKeyEnv (its name is not repeated: it does not look like a variable name, and may be the key itself)';
      if (keyFile) c.warn('odoo.apiKeyEnv', `${variable} is not set (unused: odoo.apiKeyFile is read instead)`);
      else c.error('odoo.apiKeyEnv', `${variable} is not set or empty: the gateway cannot start without the API key (set it in the environment the gateway runs in, or use odoo.apiKeyFile)`);
    }
  }
  const exp = c.optionalString('odoo.apiKeyExpiresAt', od.apiKeyExpiresAt);
  if (exp !== undefined) {
    if (Number.isNaN(Date.parse(exp))) c.error('odoo.apiKeyExpiresAt', `"${exp}" is not a date (use YYYY-MM-DD)`);
    else odoo.apiKeyExpiresAt = exp;
  }
  const caFile = c.file('odoo.caFile', od.caFile);
  if (caFile) {
    odoo.caFile = caFile;
    c.issues.push(...caFileIssues('odoo.caFile', caFile));
  }
  const pin = c.optionalString('odoo.pinnedCertSha256', od.pinnedCertSha256);
  if (pin !== undefined) {
    const hex = pin.replace(/:/g, '').toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(hex)) c.error('odoo.pinnedCertSha256', 'must be a SHA-256 fingerprint: 64 hex digits, colons allowed');
    else odoo.pinnedCertSha256 = hex;
  }
  const proxy = c.optionalString('odoo.proxy', od.proxy);
  if (proxy !== undefined && proxy !== '') {
    const problem = proxyUrlProblem(proxy);
    if (problem) c.error('odoo.proxy', problem);
    odoo.proxy = proxy;
  }
  const proxyAuth = c.secretFile('odoo.proxyAuthFile', od.proxyAuthFile);
  if (proxyAuth) {
    odoo.proxyAuthFile = proxyAuth.resolved;
    if (!odoo.proxy) c.warn('odoo.proxyAuthFile', 'is set but odoo.proxy is not: the credentials are not used');
    const problem = proxyAuthProblem(proxyAuth.resolved, proxyAuth.shown);
    if (problem) c.error('odoo.proxyAuthFile', problem);
  }
  const m = c.object('odoo.mapping', od.mapping, ['labLocation', 'consumptionLocation', 'consumptionPickingType', 'defaultVendorRef']);
  odoo.mapping.labLocation = c.string('odoo.mapping.labLocation', m.labLocation, d.odoo.mapping.labLocation);
  odoo.mapping.consumptionLocation = c.string('odoo.mapping.consumptionLocation', m.consumptionLocation, d.odoo.mapping.consumptionLocation);
  const pt = c.optionalString('odoo.mapping.consumptionPickingType', m.consumptionPickingType);
  if (pt) odoo.mapping.consumptionPickingType = pt;
  const vendor = c.optionalString('odoo.mapping.defaultVendorRef', m.defaultVendorRef);
  if (vendor) odoo.mapping.defaultVendorRef = vendor;

  const r = c.object('relay', root.relay, ['enabled', 'concurrency', 'maxAttempts', 'backoff', 'rules', 'syncModes', 'microBatchWindowMs', 'scheduledEveryMinutes', 'invoicing', 'autoConfirm', 'referenceRefreshMs']);
  const b = c.object('relay.backoff', r.backoff, ['initialMs', 'maxMs', 'multiplier', 'jitter']);
  const relay: GatewayConfig['relay'] = {
    enabled: c.boolean('relay.enabled', r.enabled, d.relay.enabled),
    concurrency: c.number('relay.concurrency', r.concurrency, d.relay.concurrency, 1, 256),
    maxAttempts: c.number('relay.maxAttempts', r.maxAttempts, d.relay.maxAttempts, 1, 1000),
    backoff: {
      initialMs: c.number('relay.backoff.initialMs', b.initialMs, d.relay.backoff.initialMs, 10, 3_600_000),
      maxMs: c.number('relay.backoff.maxMs', b.maxMs, d.relay.backoff.maxMs, 10, 86_400_000),
      multiplier: c.number('relay.backoff.multiplier', b.multiplier, d.relay.backoff.multiplier, 1, 10, false),
      jitter: c.number('relay.backoff.jitter', b.jitter, d.relay.backoff.jitter, 0, 1, false),
    },
    rules: { ...d.relay.rules },
    syncModes: { ...d.relay.syncModes },
    microBatchWindowMs: c.number('relay.microBatchWindowMs', r.microBatchWindowMs, d.relay.microBatchWindowMs, 0, 86_400_000),
    scheduledEveryMinutes: c.number('relay.scheduledEveryMinutes', r.scheduledEveryMinutes, d.relay.scheduledEveryMinutes, 1, 1440),
    invoicing: c.boolean('relay.invoicing', r.invoicing, d.relay.invoicing),
    autoConfirm: c.boolean('relay.autoConfirm', r.autoConfirm, d.relay.autoConfirm),
    referenceRefreshMs: c.number('relay.referenceRefreshMs', r.referenceRefreshMs, d.relay.referenceRefreshMs, 1_000, 86_400_000),
  };
  if (relay.backoff.maxMs < relay.backoff.initialMs) c.error('relay.backoff.maxMs', 'must not be smaller than relay.backoff.initialMs');
  const rules = c.object('relay.rules', r.rules, EventTypes);
  for (const t of EventTypes) if (rules[t] !== undefined) relay.rules[t] = c.boolean(`relay.rules.${t}`, rules[t], true);
  const modes = c.object('relay.syncModes', r.syncModes, EventTypes);
  for (const t of EventTypes) if (modes[t] !== undefined) relay.syncModes[t] = c.oneOf(`relay.syncModes.${t}`, modes[t], SyncModes, 'realtime');
  if (relay.autoConfirm) c.warn('relay.autoConfirm', 'the gateway will confirm and post documents in Odoo itself; by default a person approves drafts');

  const s = c.object('store', root.store, ['retentionDays', 'maxDeliveredEvents', 'deadLetterRetentionDays', 'minFreeBytes']);
  const store: GatewayConfig['store'] = {
    retentionDays: c.number('store.retentionDays', s.retentionDays, d.store.retentionDays, 1, 3650),
    maxDeliveredEvents: c.number('store.maxDeliveredEvents', s.maxDeliveredEvents, d.store.maxDeliveredEvents, 1_000, 1e9),
    deadLetterRetentionDays: c.number('store.deadLetterRetentionDays', s.deadLetterRetentionDays, d.store.deadLetterRetentionDays, 1, 3650),
    minFreeBytes: c.number('store.minFreeBytes', s.minFreeBytes, d.store.minFreeBytes, 0, Number.MAX_SAFE_INTEGER),
  };
  if (store.deadLetterRetentionDays < store.retentionDays) c.warn('store.deadLetterRetentionDays', 'is shorter than store.retentionDays; dead letters and rejected messages are kept at least as long as delivered ones');

  const mq = c.object('mqtt', root.mqtt, ['broker', 'listen', 'usernameFile', 'passwordFile', 'tls', 'publishIntervalMs', 'maxConnections']);
  const mqtt: GatewayConfig['mqtt'] = {
    broker: c.string('mqtt.broker', mq.broker, d.mqtt.broker),
    listen: c.listen('mqtt.listen', mq.listen, d.mqtt.listen),
    publishIntervalMs: c.number('mqtt.publishIntervalMs', mq.publishIntervalMs, d.mqtt.publishIntervalMs, 100, 3_600_000),
    maxConnections: c.number('mqtt.maxConnections', mq.maxConnections, EMBEDDED_BROKER_DEFAULTS.maxConnections, 1, 10_000),
  };
  // The one rule of what MqttStatus starts with (mqtt-status.ts uses the same function).
  const brokerProblem = mqttBrokerProblem(mqtt.broker);
  if (brokerProblem) c.error('mqtt.broker', brokerProblem);
  const uf = c.secretFile('mqtt.usernameFile', mq.usernameFile)?.resolved;
  const pf = c.secretFile('mqtt.passwordFile', mq.passwordFile)?.resolved;
  if (uf) mqtt.usernameFile = uf;
  if (pf) mqtt.passwordFile = pf;
  // Credentials are a pair, for the embedded broker and an external one alike: start refuses one
  // without the other (readMqttCredentials), so check names the missing one.
  if (mq.usernameFile !== undefined && mq.passwordFile === undefined) c.error('mqtt.passwordFile', 'is required when mqtt.usernameFile is set (the credentials are a pair)');
  if (mq.passwordFile !== undefined && mq.usernameFile === undefined) c.error('mqtt.usernameFile', 'is required when mqtt.passwordFile is set (the credentials are a pair)');
  if (mq.tls !== undefined) {
    const t = c.object('mqtt.tls', mq.tls, ['cert', 'key', 'ca']);
    const ca = c.file('mqtt.tls.ca', t.ca);
    const cert = c.file('mqtt.tls.cert', t.cert);
    const key = c.file('mqtt.tls.key', t.key);
    if (mqtt.broker === 'embedded') {
      // The embedded broker serves MQTTS with this certificate and key: without them it cannot
      // listen at all (it would open the file '').
      if (t.cert === undefined) c.error('mqtt.tls.cert', 'is required when tls is set (the certificate the embedded broker serves)');
      if (t.key === undefined) c.error('mqtt.tls.key', 'is required when tls is set (the key of mqtt.tls.cert)');
    } else {
      // To an external broker they are an optional client certificate, which needs both halves.
      if (t.cert !== undefined && t.key === undefined) c.error('mqtt.tls.key', 'is required with mqtt.tls.cert (the client certificate\'s key)');
      if (t.key !== undefined && t.cert === undefined) c.error('mqtt.tls.cert', 'is required with mqtt.tls.key (the client certificate)');
    }
    mqtt.tls = { cert: cert ?? '', key: key ?? '', ...(ca ? { ca } : {}) };
    // Loaded only by the embedded broker and for mqtts:// or wss:// (the warning below says so for
    // plain mqtt:// and ws://): files that are never read must not make check refuse what start runs.
    if (mqtt.broker === 'embedded' || /^(mqtts|wss):/i.test(mqtt.broker)) c.issues.push(...tlsFileIssues('mqtt.tls', { cert, key, ca }));
  }
  if (mqtt.broker !== 'embedded' && !brokerProblem) {
    // mqtt.js speaks TLS only for mqtts:// and wss://: with mqtt:// or ws:// the tls files are
    // not used, and the credentials go to the broker as they are.
    const broker = new URL(mqtt.broker);
    const plain = broker.protocol === 'mqtt:' || broker.protocol === 'ws:';
    // A warning, not an error: a LAN broker over plain MQTT with a password is what many sites ran
    // (the embedded broker beyond loopback takes the trays' passwords the same way), and refusing
    // it stopped the whole gateway (intake and relay) over the status channel.
    if (plain && (uf || pf) && !loopbackHost(broker.hostname)) {
      c.warn('mqtt.broker', `${broker.protocol}// sends the credentials of mqtt.usernameFile and mqtt.passwordFile in clear text to ${broker.hostname}, beyond loopback: use ${broker.protocol === 'ws:' ? 'wss' : 'mqtts'}:// if the broker offers it (with mqtt.tls.ca when its certificate is signed by a private CA)`);
    }
    if (mq.maxConnections !== undefined) {
      c.warn('mqtt.maxConnections', `is not used: it limits the embedded broker, and mqtt.broker is an external one (set its own limit there, e.g. Mosquitto's max_connections)`);
    }
    if (plain && mq.tls !== undefined) {
      c.warn('mqtt.tls', `is not used: mqtt.broker is ${broker.protocol}//, which is not TLS (use ${broker.protocol === 'ws:' ? 'wss' : 'mqtts'}:// for the broker to be reached with these settings)`);
    }
  }
  const loopback = ['127.0.0.1', 'localhost', '::1'].includes(mqtt.listen.host);
  if (mqtt.broker === 'embedded' && !loopback && (!uf || !pf)) {
    c.error('mqtt.usernameFile', `the embedded broker listens on ${mqtt.listen.host}, beyond loopback: anonymous access is off there, so mqtt.usernameFile and mqtt.passwordFile are required`);
  }

  const st = c.object('status', root.status, ['listen', 'adminTokenFile', 'allowedHosts']);
  const status: GatewayConfig['status'] = { listen: c.listen('status.listen', st.listen, d.status.listen) };
  if (st.allowedHosts !== undefined) {
    const hosts: string[] = [];
    c.list('status.allowedHosts', st.allowedHosts).forEach((h, i) => {
      const p = `status.allowedHosts[${i}]`;
      const name = c.string(p, h, '');
      if (name.trim() === '') return;
      // An IP address (IPv6 with or without brackets) is accepted anyway: listing one is harmless.
      const literal = /^\[(.*)\]$/.exec(name.trim())?.[1] ?? name.trim();
      if (isIP(literal) !== 0) {
        hosts.push(literal.toLowerCase());
        return;
      }
      // A name as a Host header carries it, without the port: not a URL, not host:port. Labels may
      // hold underscores (Windows and some internal DNS zones use them; browsers send them).
      if (!/^(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/.test(name)) {
        c.error(p, `"${name}" is not a host name: write the name alone (lab-gateway.lab.example.org), without scheme, port or path (IP addresses are always accepted)`);
        return;
      }
      hosts.push(name.toLowerCase().replace(/\.$/, ''));
    });
    status.allowedHosts = hosts;
  }
  const token = c.secretFile('status.adminTokenFile', st.adminTokenFile);
  if (token) status.adminTokenFile = token.resolved;
  if (token && emptyFile(token.resolved)) c.warn('status.adminTokenFile', `${token.shown} is empty: admin actions (replay, discard, pause) stay disabled until it holds a token`);
  else if (token) adminTokenFileIssues(c, token.resolved, token.shown);

  const config: GatewayConfig = { gateway, hl7, analyzers, odoo, relay, store, mqtt, status };
  if (profilesDirSet) config.profilesDir = profilesDirSet;

  // Cross-checks: unique ids and listener ports.
  const ids = new Map<string, string>();
  [...hl7.map((h, i) => [h.id, `hl7[${i}].id`] as const), ...analyzers.map((a, i) => [a.id, `analyzers[${i}].id`] as const)].forEach(([id, p]) => {
    if (!id) return;
    const prev = ids.get(id);
    if (prev) c.error(p, `id "${id}" is already used by ${prev}`);
    else ids.set(id, p);
  });
  // Two listeners clash on one port when their addresses are equal or either is a wildcard
  // (0.0.0.0 or ::), which takes the port on every local address.
  const claimed: Array<{ host: string; port: number; path: string }> = [];
  const claim = (l: ListenConfig | undefined, p: string): void => {
    if (!l || l.port === 0) return;
    const clash = claimed.find((x) => x.port === l.port && (x.host === l.host || WILDCARD_HOSTS.has(x.host) || WILDCARD_HOSTS.has(l.host)));
    const key = `${l.host}:${l.port}`;
    if (clash) {
      const other = `${clash.host}:${clash.port}`;
      c.error(`${p}.port`, other === key ? `${key} is already used by ${clash.path}` : `${key} overlaps ${other} of ${clash.path} (${WILDCARD_HOSTS.has(clash.host) ? clash.host : l.host} takes port ${l.port} on every local address)`);
    } else claimed.push({ host: l.host, port: l.port, path: p });
  };
  hl7.forEach((h, i) => claim(h.listen, `hl7[${i}].listen`));
  analyzers.forEach((a, i) => claim(a.tcp?.listen, `analyzers[${i}].tcp.listen`));
  if (mqtt.broker === 'embedded') claim(mqtt.listen, 'mqtt.listen');
  claim(status.listen, 'status.listen');
  // One serial port, one analyzer: a second one on the same port would never open it ("Cannot
  // lock port"), while check said nothing and start was ready. A path that exists is compared by
  // where it leads, so a /dev/serial/by-id link and its /dev/ttyUSBn are one port.
  const ports = new Map<string, { path: string; i: number; id: string }>();
  analyzers.forEach((a, i) => {
    if (!a.serial?.path) return;
    let real = a.serial.path;
    try {
      real = realpathSync(real);
    } catch {
      /* not there (yet): compared as written */
    }
    const prev = ports.get(real);
    if (prev) {
      const same = prev.path === a.serial.path ? a.serial.path : `${a.serial.path} (${real})`;
      c.error(`analyzers[${i}].serial.path`, `${same} is already used by analyzers[${prev.i}]${prev.id ? ` (${prev.id})` : ''}: one serial port serves one analyzer`);
    } else ports.set(real, { path: a.serial.path, i, id: a.id });
  });
  // One address the gateway connects to, one analyzer: a block copied with its tcp.connect left
  // unchanged ran two links to one analyzer, which takes one LIS connection and refuses or starves
  // the other (or sends its results on either, filed under either id). Host names are case-blind.
  const remotes = new Map<string, { i: number; id: string }>();
  analyzers.forEach((a, i) => {
    const cn = a.tcp?.connect;
    if (!cn?.host || !cn.port) return;
    const key = `${cn.host.toLowerCase()}:${cn.port}`;
    const prev = remotes.get(key);
    if (prev) c.error(`analyzers[${i}].tcp.connect`, `${cn.host}:${cn.port} is already used by analyzers[${prev.i}]${prev.id ? ` (${prev.id})` : ''}: one analyzer takes one LIS connection; give each analyzer its own address`);
    else remotes.set(key, { i, id: a.id });
  });
  hl7.forEach((h, i) => {
    if (!h.analyzer) return;
    if (!ID_PATTERN.test(h.analyzer)) c.error(`hl7[${i}].analyzer`, `"${h.analyzer}" is not a valid analyzer id: ${ID_HINT}`);
    else if (!analyzers.some((a) => a.id === h.analyzer)) {
      c.warn(`hl7[${i}].analyzer`, `"${h.analyzer}" is not an id in analyzers[]: messages on this endpoint are tagged with it and read with the LIS normalizer (an analyzer with a firmware profile goes in analyzers[] with tcp.listen)`);
    }
  });

  // Two LIS systems number their orders alike ("12345" from both): without a namespace their
  // orders collide (the relay refuses the second client's order, analyzers get "no order").
  const lis = hl7.map((h, i) => ({ h, i })).filter(({ h }) => !h.analyzer);
  const unprefixed = lis.filter(({ h }) => !h.accessionPrefix);
  if (lis.length >= 2 && unprefixed.length > 1) {
    const [, ...rest] = unprefixed;
    c.warn(
      `hl7[${rest[0]!.i}].accessionPrefix`,
      `${lis.length} LIS links (${lis.map(({ h }) => h.id).join(', ')}) and ${unprefixed.length} of them without accessionPrefix: if they are different LIS systems, an accession both use ("12345") is two patients' orders, which the gateway cannot tell apart — the second client's order is refused (a dead letter) and analyzers get "no order" for that tube. Give every LIS link but one an accessionPrefix (README.md "Two LIS systems"); links of one LIS (orders on one, results on another) need none`,
    );
  }

  const errorAt = (key: string): boolean =>
    c.issues.some((i) => i.severity === 'error' && i.path !== '' && (i.path === key || i.path.startsWith(`${key}.`) || key.startsWith(`${i.path}.`) || key.startsWith(`${i.path}[`)));
  const listeners: ListenerAt[] = [];
  const listener = (l: ListenConfig | undefined, p: string): void => {
    if (l && l.port !== 0 && !errorAt(p)) listeners.push({ path: p, host: l.host, port: l.port });
  };
  hl7.forEach((h, i) => listener(h.listen, `hl7[${i}].listen`));
  analyzers.forEach((a, i) => listener(a.tcp?.listen, `analyzers[${i}].tcp.listen`));
  if (mqtt.broker === 'embedded') listener(mqtt.listen, 'mqtt.listen');
  listener(status.listen, 'status.listen');

  const hasError = c.issues.some((i) => i.severity === 'error');
  return {
    config: hasError ? undefined : config,
    issues: c.issues,
    analyzers,
    profilesDir: profilesDirProblem ? undefined : profilesDirSet,
    profilesDirInvalid: profilesDirProblem !== undefined,
    listeners,
    dataDir: errorAt('gateway.dataDir') ? undefined : gateway.dataDir,
  };
}
