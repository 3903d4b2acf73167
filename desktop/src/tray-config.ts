/**
 * Where the tray finds its gateway. Pure: the main process passes argv, env and the text of the
 * config files it found; this decides. First match wins, key by key:
 *
 *   1. command line:  --gateway-url=http://10.0.0.5:8484  --mqtt-url=mqtt://10.0.0.5:1883
 *                     --admin-token-file=/path  --mqtt-username-file=/path --mqtt-password-file=/path
 *                     --mqtt-ca-file=/path  --mqtt-cert-file=/path  --mqtt-key-file=/path
 *   2. environment:   LAB_GATEWAY_URL, LAB_GATEWAY_MQTT_URL, LAB_GATEWAY_ADMIN_TOKEN_FILE,
 *                     LAB_GATEWAY_MQTT_USERNAME_FILE, LAB_GATEWAY_MQTT_PASSWORD_FILE,
 *                     LAB_GATEWAY_MQTT_CA_FILE, LAB_GATEWAY_MQTT_CERT_FILE, LAB_GATEWAY_MQTT_KEY_FILE
 *   3. the user's file      <userData>/tray-config.json
 *   4. the installer's file  Windows: <install dir>/resources/tray-config.json (written by the NSIS
 *                            installer from /GATEWAY_URL=…); Linux: /etc/lab-gateway/tray.json
 *                            (written by the .deb post-install from LAB_GATEWAY_URL)
 *   5. defaults: http://127.0.0.1:8484 and mqtt://<gateway host>:1883
 *
 * File shape: { "gatewayUrl": "http://…", "mqttUrl": "mqtt://…", "adminTokenFile": "…",
 *               "mqttUsernameFile": "…", "mqttPasswordFile": "…",
 *               "mqttCaFile": "…", "mqttCertFile": "…", "mqttKeyFile": "…" }
 *
 * A file key the tray does not know is reported (with the closest known key), and so are
 * credentials given by halves (a username file without a password file, a certificate without
 * its key). Issues never stop the tray: it shows them (notification, tooltip, diagnostics).
 *
 * A user name or password written into gatewayUrl or mqttUrl (`mqtt://tray:pw@10.0.0.5:1883`) is
 * a secret written inline: the value is skipped like any invalid one, and the problem, which
 * never repeats the secret, points to mqttUsernameFile / mqttPasswordFile.
 */
export interface TrayConfig {
  gatewayUrl: string;
  mqttUrl: string;
  adminTokenFile?: string;
  mqttUsernameFile?: string;
  mqttPasswordFile?: string;
  /** PEM file of the CA(s) to trust for an MQTTS (or WSS) broker, e.g. the gateway's `mqtt.tls.ca`. */
  mqttCaFile?: string;
  /** PEM client certificate and its key, for a broker that requires client certificates. */
  mqttCertFile?: string;
  mqttKeyFile?: string;
  /** Where each value came from, for the diagnostics. */
  sources: Record<string, string>;
  /** Problems found (a bad value is skipped and the next source used). */
  issues: string[];
}

export const DEFAULT_GATEWAY_URL = 'http://127.0.0.1:8484';
export const DEFAULT_MQTT_PORT = 1883;

const FILE_KEYS = ['adminTokenFile', 'mqttUsernameFile', 'mqttPasswordFile', 'mqttCaFile', 'mqttCertFile', 'mqttKeyFile'] as const;
type FileKey = (typeof FILE_KEYS)[number];
type Key = 'gatewayUrl' | 'mqttUrl' | FileKey;
/** Every key a config file may hold. */
const TRAY_CONFIG_KEYS: readonly Key[] = ['gatewayUrl', 'mqttUrl', ...FILE_KEYS];

const FLAGS: Record<Key, string> = {
  gatewayUrl: '--gateway-url',
  mqttUrl: '--mqtt-url',
  adminTokenFile: '--admin-token-file',
  mqttUsernameFile: '--mqtt-username-file',
  mqttPasswordFile: '--mqtt-password-file',
  mqttCaFile: '--mqtt-ca-file',
  mqttCertFile: '--mqtt-cert-file',
  mqttKeyFile: '--mqtt-key-file',
};

const ENV: Record<Key, string> = {
  gatewayUrl: 'LAB_GATEWAY_URL',
  mqttUrl: 'LAB_GATEWAY_MQTT_URL',
  adminTokenFile: 'LAB_GATEWAY_ADMIN_TOKEN_FILE',
  mqttUsernameFile: 'LAB_GATEWAY_MQTT_USERNAME_FILE',
  mqttPasswordFile: 'LAB_GATEWAY_MQTT_PASSWORD_FILE',
  mqttCaFile: 'LAB_GATEWAY_MQTT_CA_FILE',
  mqttCertFile: 'LAB_GATEWAY_MQTT_CERT_FILE',
  mqttKeyFile: 'LAB_GATEWAY_MQTT_KEY_FILE',
};

/** Edit distance (insert, delete, substitute), for "did you mean" suggestions. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** The known key closest to `key` (case-insensitive edit distance; ties: the first). */
export function closestKey(key: string): Key {
  let best: Key = TRAY_CONFIG_KEYS[0]!;
  let bestDistance = Infinity;
  for (const known of TRAY_CONFIG_KEYS) {
    const d = editDistance(key.toLowerCase(), known.toLowerCase());
    if (d < bestDistance) {
      best = known;
      bestDistance = d;
    }
  }
  return best;
}

/**
 * A URL as the tray shows it (settings problems, diagnostics, tooltip): without a user name or
 * password, so that credentials written into a URL never reach a support ticket. A string that
 * is not a URL keeps nothing before its last `@` either. (The gateway's own rule is
 * gateway/src/config/display-url.ts; the tray is packaged without the gateway's sources.)
 */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.host !== '') {
      if (u.username === '' && u.password === '') return url;
      u.username = '';
      u.password = '';
      return u.href;
    }
  } catch {
    // not a URL: fall through to the textual rule
  }
  const at = url.lastIndexOf('@');
  if (at < 0) return url;
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(url)?.[0] ?? '';
  return `${scheme}***${url.slice(at)}`;
}

function validUrl(key: Key, value: string): string | undefined {
  if (key !== 'gatewayUrl' && key !== 'mqttUrl') return value.trim() ? undefined : 'empty path';
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return `not a URL: "${displayUrl(value)}"`;
  }
  const ok = key === 'gatewayUrl' ? ['http:', 'https:'] : ['mqtt:', 'mqtts:', 'ws:', 'wss:'];
  if (!ok.includes(u.protocol)) return `${key} must use ${ok.join(' or ')}, got ${u.protocol}`;
  if (u.username !== '' || u.password !== '') {
    // The value is skipped: never used, and never repeated with its secret.
    return `${displayUrl(value)} has a user name or password in it (ignored): secrets are never written inline; put the broker's user name and password in files and name them with mqttUsernameFile and mqttPasswordFile (${FLAGS.mqttUsernameFile}, ${FLAGS.mqttPasswordFile})`;
  }
  return undefined;
}

function flagValue(argv: readonly string[], flag: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith(flag + '=')) return a.slice(flag.length + 1);
    if (a === flag && i + 1 < argv.length) return argv[i + 1];
  }
  return undefined;
}

export function resolveTrayConfig(input: {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  /** Config files in precedence order (user's first, then the installer's). */
  files: ReadonlyArray<{ path: string; text: string | undefined }>;
}): TrayConfig {
  const issues: string[] = [];
  const sources: Record<string, string> = {};
  const parsed = input.files.map((f) => {
    if (f.text === undefined) return { path: f.path, data: {} as Record<string, unknown> };
    try {
      const v: unknown = JSON.parse(f.text);
      if (v && typeof v === 'object' && !Array.isArray(v)) {
        const data = v as Record<string, unknown>;
        for (const key of Object.keys(data)) {
          // "$schema", "_comment"… are annotations, not settings.
          if ((TRAY_CONFIG_KEYS as readonly string[]).includes(key) || key.startsWith('$') || key.startsWith('_')) continue;
          issues.push(`${f.path}: unknown key "${key}" (ignored) — did you mean "${closestKey(key)}"?`);
        }
        return { path: f.path, data };
      }
      issues.push(`${f.path}: not a JSON object`);
    } catch (err) {
      issues.push(`${f.path}: ${(err as Error).message}`);
    }
    return { path: f.path, data: {} as Record<string, unknown> };
  });
  const pick = (key: Key): string | undefined => {
    const candidates: Array<[string, unknown]> = [
      [`command line ${FLAGS[key]}`, flagValue(input.argv, FLAGS[key])],
      [`environment ${ENV[key]}`, input.env[ENV[key]]],
      ...parsed.map((p): [string, unknown] => [`${p.path} ${key}`, p.data[key]]),
    ];
    for (const [source, value] of candidates) {
      if (value === undefined || value === '') continue;
      if (typeof value !== 'string') {
        issues.push(`${source}: must be a string`);
        continue;
      }
      const problem = validUrl(key, value);
      if (problem) {
        issues.push(`${source}: ${problem}`);
        continue;
      }
      sources[key] = source;
      return value.replace(/\/+$/, '');
    }
    return undefined;
  };
  const gatewayUrl = pick('gatewayUrl') ?? DEFAULT_GATEWAY_URL;
  sources.gatewayUrl ??= 'default';
  let mqttUrl = pick('mqttUrl');
  if (!mqttUrl) {
    mqttUrl = `mqtt://${new URL(gatewayUrl).hostname}:${DEFAULT_MQTT_PORT}`;
    sources.mqttUrl = 'default (gateway host)';
  }
  const config: TrayConfig = { gatewayUrl, mqttUrl, sources, issues };
  for (const key of FILE_KEYS) {
    const v = pick(key);
    if (v) config[key] = v;
  }
  // Halves: the broker would get a username without a password (or the reverse), or a client
  // certificate without its key; say which one is missing instead of failing later without a word.
  const pairs: Array<[FileKey, FileKey]> = [
    ['mqttUsernameFile', 'mqttPasswordFile'],
    ['mqttCertFile', 'mqttKeyFile'],
  ];
  for (const [a, b] of pairs) {
    for (const [given, missing] of [[a, b], [b, a]] as const) {
      if (config[given] && !config[missing]) {
        issues.push(`${given} is set (${sources[given]}) but ${missing} is not: set both (${FLAGS[missing]}, ${ENV[missing]} or "${missing}" in a config file)`);
      }
    }
  }
  const tlsKeys = (['mqttCaFile', 'mqttCertFile', 'mqttKeyFile'] as const).filter((k) => config[k]);
  const protocol = new URL(mqttUrl).protocol;
  if (tlsKeys.length && protocol !== 'mqtts:' && protocol !== 'wss:') {
    issues.push(`${tlsKeys.join(', ')} set but mqttUrl ${mqttUrl} does not use TLS (mqtts: or wss:): the files are not used`);
  }
  return config;
}

/** The gateway id is learned from the first status; until then the tray subscribes to every gateway's topics. */
export function statusTopics(gatewayId: string | undefined): { status: string; availability: string; alerts: string } {
  const id = gatewayId ?? '+';
  return { status: `lab-gateway/${id}/status`, availability: `lab-gateway/${id}/availability`, alerts: `lab-gateway/${id}/alerts` };
}

/**
 * The admin token in the text of the tray's `adminTokenFile`, read as the gateway reads
 * `status.adminTokenFile` (gateway/src/config/admin-tokens.ts): the whole file when it is one bare
 * token, or the token of the one `<name> <token>` line it holds (`#` comments and blank lines
 * aside), so that IT can give each PC the line of the person who uses it. Undefined when the file
 * holds no token, or the lines of several people (the tray cannot say whose it is): the pause and
 * resume entries then stay hidden, as without a file. Before, a named line was sent whole as the
 * token and every pause or resume was refused 401.
 */
export function adminTokenOf(text: string): string | undefined {
  const whole = text.trim();
  if (whole === '') return undefined;
  if (!/\s/.test(whole) && !whole.startsWith('#')) return whole;
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length !== 1) return undefined;
  const fields = (lines[0] as string).split(/\s+/);
  return fields.length === 2 ? fields[1] : undefined;
}
