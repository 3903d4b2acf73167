/**
 * Where the tray finds its gateway. Pure: the main process passes argv, env and the text of the
 * config files it found; this decides. First match wins, key by key:
 *
 *   1. command line:  --gateway-url=http://10.0.0.5:8484  --mqtt-url=mqtt://10.0.0.5:1883
 *                     --admin-token-file=/path  --mqtt-username-file=/path --mqtt-password-file=/path
 *   2. environment:   LAB_GATEWAY_URL, LAB_GATEWAY_MQTT_URL, LAB_GATEWAY_ADMIN_TOKEN_FILE,
 *                     LAB_GATEWAY_MQTT_USERNAME_FILE, LAB_GATEWAY_MQTT_PASSWORD_FILE
 *   3. the user's file      <userData>/tray-config.json
 *   4. the installer's file  Windows: <install dir>/resources/tray-config.json (written by the NSIS
 *                            installer from /GATEWAY_URL=…); Linux: /etc/lab-gateway/tray.json
 *                            (written by the .deb post-install from LAB_GATEWAY_URL)
 *   5. defaults: http://127.0.0.1:8484 and mqtt://<gateway host>:1883
 *
 * File shape: { "gatewayUrl": "http://…", "mqttUrl": "mqtt://…", "adminTokenFile": "…",
 *               "mqttUsernameFile": "…", "mqttPasswordFile": "…" }
 */
export interface TrayConfig {
  gatewayUrl: string;
  mqttUrl: string;
  adminTokenFile?: string;
  mqttUsernameFile?: string;
  mqttPasswordFile?: string;
  /** Where each value came from, for the diagnostics. */
  sources: Record<string, string>;
  /** Problems found (a bad value is skipped and the next source used). */
  issues: string[];
}

export const DEFAULT_GATEWAY_URL = 'http://127.0.0.1:8484';
export const DEFAULT_MQTT_PORT = 1883;

type Key = 'gatewayUrl' | 'mqttUrl' | 'adminTokenFile' | 'mqttUsernameFile' | 'mqttPasswordFile';

const FLAGS: Record<Key, string> = {
  gatewayUrl: '--gateway-url',
  mqttUrl: '--mqtt-url',
  adminTokenFile: '--admin-token-file',
  mqttUsernameFile: '--mqtt-username-file',
  mqttPasswordFile: '--mqtt-password-file',
};

const ENV: Record<Key, string> = {
  gatewayUrl: 'LAB_GATEWAY_URL',
  mqttUrl: 'LAB_GATEWAY_MQTT_URL',
  adminTokenFile: 'LAB_GATEWAY_ADMIN_TOKEN_FILE',
  mqttUsernameFile: 'LAB_GATEWAY_MQTT_USERNAME_FILE',
  mqttPasswordFile: 'LAB_GATEWAY_MQTT_PASSWORD_FILE',
};

function validUrl(key: Key, value: string): string | undefined {
  if (key !== 'gatewayUrl' && key !== 'mqttUrl') return value.trim() ? undefined : 'empty path';
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return `not a URL: "${value}"`;
  }
  const ok = key === 'gatewayUrl' ? ['http:', 'https:'] : ['mqtt:', 'mqtts:', 'ws:', 'wss:'];
  return ok.includes(u.protocol) ? undefined : `${key} must use ${ok.join(' or ')}, got ${u.protocol}`;
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
      if (v && typeof v === 'object' && !Array.isArray(v)) return { path: f.path, data: v as Record<string, unknown> };
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
  for (const key of ['adminTokenFile', 'mqttUsernameFile', 'mqttPasswordFile'] as const) {
    const v = pick(key);
    if (v) config[key] = v;
  }
  return config;
}

/** The gateway id is learned from the first status; until then the tray subscribes to every gateway's topics. */
export function statusTopics(gatewayId: string | undefined): { status: string; availability: string; alerts: string } {
  const id = gatewayId ?? '+';
  return { status: `lab-gateway/${id}/status`, availability: `lab-gateway/${id}/availability`, alerts: `lab-gateway/${id}/alerts` };
}
