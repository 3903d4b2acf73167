import { describe, expect, it } from 'vitest';
import { DEFAULT_GATEWAY_URL, closestKey, resolveTrayConfig, statusTopics } from '../../desktop/src/tray-config.ts';

describe('tray configuration (gateway address at install time)', () => {
  it('defaults to the local gateway and its MQTT port', () => {
    const c = resolveTrayConfig({ argv: [], env: {}, files: [] });
    expect(c.gatewayUrl).toBe(DEFAULT_GATEWAY_URL);
    expect(c.mqttUrl).toBe('mqtt://127.0.0.1:1883');
    expect(c.sources).toMatchObject({ gatewayUrl: 'default', mqttUrl: 'default (gateway host)' });
  });

  it('takes the installer file, then the user file, then env, then the command line', () => {
    const installer = { path: '/etc/lab-gateway/tray.json', text: '{"gatewayUrl":"http://10.0.0.5:8484"}' };
    const user = { path: '/home/u/.config/tray-config.json', text: '{"gatewayUrl":"http://10.0.0.6:8484","mqttUrl":"mqtts://10.0.0.6:8883"}' };
    expect(resolveTrayConfig({ argv: [], env: {}, files: [{ path: 'u', text: undefined }, installer] })).toMatchObject({ gatewayUrl: 'http://10.0.0.5:8484', mqttUrl: 'mqtt://10.0.0.5:1883' });
    expect(resolveTrayConfig({ argv: [], env: {}, files: [user, installer] })).toMatchObject({ gatewayUrl: 'http://10.0.0.6:8484', mqttUrl: 'mqtts://10.0.0.6:8883' });
    const env = { LAB_GATEWAY_URL: 'http://gw.lab:8484/' };
    expect(resolveTrayConfig({ argv: [], env, files: [user, installer] }).gatewayUrl).toBe('http://gw.lab:8484');
    const c = resolveTrayConfig({ argv: ['electron', '.', '--gateway-url=http://cli:1', '--mqtt-url', 'mqtt://cli:2'], env, files: [user, installer] });
    expect(c).toMatchObject({ gatewayUrl: 'http://cli:1', mqttUrl: 'mqtt://cli:2' });
    expect(c.sources.gatewayUrl).toBe('command line --gateway-url');
  });

  it('skips bad values with an issue and falls back to the next source', () => {
    const c = resolveTrayConfig({
      argv: ['--gateway-url=ftp://x'],
      env: { LAB_GATEWAY_MQTT_URL: 'http://not-mqtt' },
      files: [{ path: 'bad.json', text: '{oops' }, { path: 'ok.json', text: '{"gatewayUrl":"https://gw:8484","adminTokenFile":"/etc/lab-gateway/admin.token"}' }],
    });
    expect(c.gatewayUrl).toBe('https://gw:8484');
    expect(c.mqttUrl).toBe('mqtt://gw:1883');
    expect(c.adminTokenFile).toBe('/etc/lab-gateway/admin.token');
    expect(c.issues).toHaveLength(3);
    expect(c.issues.join('\n')).toMatch(/--gateway-url: gatewayUrl must use http: or https:, got ftp:/);
    expect(c.issues.join('\n')).toMatch(/bad\.json/);
  });

  it('builds the topics to subscribe, with a wildcard until the gateway id is known', () => {
    expect(statusTopics(undefined).status).toBe('lab-gateway/+/status');
    expect(statusTopics('lab-1')).toEqual({ status: 'lab-gateway/lab-1/status', availability: 'lab-gateway/lab-1/availability', alerts: 'lab-gateway/lab-1/alerts' });
  });

  it('takes the MQTT TLS files from flags, environment and files, and reports halves and a plain mqtt: URL', () => {
    const files = [{ path: 'tray.json', text: '{"mqttUrl":"mqtts://gw:8883","mqttCaFile":"/etc/ca.pem"}' }];
    const c = resolveTrayConfig({ argv: ['--mqtt-cert-file=/etc/tray.crt'], env: { LAB_GATEWAY_MQTT_KEY_FILE: '/etc/tray.key' }, files });
    expect(c).toMatchObject({ mqttCaFile: '/etc/ca.pem', mqttCertFile: '/etc/tray.crt', mqttKeyFile: '/etc/tray.key' });
    expect(c.sources.mqttKeyFile).toBe('environment LAB_GATEWAY_MQTT_KEY_FILE');
    expect(c.issues).toEqual([]);
    const half = resolveTrayConfig({ argv: ['--mqtt-cert-file=/etc/tray.crt'], env: {}, files });
    expect(half.issues.join('\n')).toMatch(/mqttCertFile is set .* but mqttKeyFile is not/);
    const plain = resolveTrayConfig({ argv: ['--mqtt-ca-file=/etc/ca.pem'], env: {}, files: [] });
    expect(plain.issues.join('\n')).toMatch(/does not use TLS/);
  });

  it('names the closest known key for an unknown one, and lets annotations through', () => {
    expect(closestKey('gatewayURL')).toBe('gatewayUrl');
    expect(closestKey('mqtt_password_file')).toBe('mqttPasswordFile');
    expect(closestKey('caFile')).toBe('mqttCaFile');
    const c = resolveTrayConfig({ argv: [], env: {}, files: [{ path: 'tray.json', text: '{"$schema":"x","_comment":"y","mqttUrl":"mqtt://gw:1883","mqttPasswordFil":"/p"}' }] });
    expect(c.issues).toEqual(['tray.json: unknown key "mqttPasswordFil" (ignored) — did you mean "mqttPasswordFile"?']);
  });
});
