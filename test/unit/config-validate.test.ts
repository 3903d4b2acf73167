import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../gateway/src/config/load.ts';
import { validateConfig } from '../../gateway/src/config/validate.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-config-'));
  await writeFile(path.join(dir, 'odoo.key'), 'secret-key\n');
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const paths = (raw: unknown): string[] => validateConfig(raw, dir).issues.filter((i) => i.severity === 'error').map((i) => i.path);

describe('configuration', () => {
  it('runs on embedded defaults without a file: loopback listeners, data under ./var', () => {
    const { config, issues } = loadConfig(undefined);
    expect(issues.filter((i) => i.severity === 'error')).toEqual([]);
    expect(config?.hl7[0]?.listen).toEqual({ host: '127.0.0.1', port: 2575 });
    expect(config?.status.listen.host).toBe('127.0.0.1');
    expect(config?.mqtt.broker).toBe('embedded');
    expect(config?.gateway.dataDir).toBe(path.resolve('var'));
  });

  it('accepts the DESIGN.md example shape', () => {
    const { config, issues } = validateConfig(
      {
        gateway: { id: 'lab-1', dataDir: '/var/lib/lab-gateway' },
        hl7: [{ id: 'lis', listen: { host: '127.0.0.1', port: 2575 }, ack: 'original' }],
        analyzers: [{ id: 'xn-1', profile: 'sysmex-xn', serial: { path: '/dev/ttyUSB0' } }],
        odoo: { url: 'https://lab.example.com', database: 'lab', login: 'gateway', apiKeyFile: 'odoo.key' },
        mqtt: { broker: 'embedded', listen: { host: '127.0.0.1', port: 1883 } },
        status: { listen: { host: '127.0.0.1', port: 8484 } },
      },
      dir,
    );
    expect(issues.filter((i) => i.severity === 'error')).toEqual([]);
    expect(config?.odoo.apiKeyFile).toBe(path.join(dir, 'odoo.key'));
    expect(config?.hl7[0]?.maxMessageBytes).toBeGreaterThan(0);
  });

  it('collects every issue at once and applies nothing', () => {
    const { config, issues } = validateConfig(
      {
        gateway: { id: 'lab 1', dataDir: 7 },
        hl7: [{ id: 'lis', listen: { host: '127.0.0.1', port: 99999 }, ack: 'fast' }],
        status: { listen: { port: 'x' } },
      },
      dir,
    );
    expect(config).toBeUndefined();
    expect(issues.map((i) => i.path)).toEqual(expect.arrayContaining(['gateway.id', 'gateway.dataDir', 'hl7[0].listen.port', 'hl7[0].ack', 'status.listen.port']));
  });

  it('names unknown keys and the replacement of a renamed key', () => {
    const { issues } = validateConfig({ gateway: { data_dir: '/x' }, hl7: [{ id: 'lis', port: 2575, listen: { host: '127.0.0.1', port: 2575 } }], colour: 'blue' }, dir);
    const byPath = Object.fromEntries(issues.map((i) => [i.path, i.message]));
    expect(byPath['gateway.data_dir']).toMatch(/renamed to dataDir/);
    expect(byPath['hl7[0].port']).toMatch(/renamed to port \(hl7\[\]\.listen\.port\)/);
    expect(byPath['colour']).toMatch(/unknown key/);
  });

  it('refuses inline secrets and says which key to use', () => {
    const { issues } = validateConfig({ odoo: { url: 'https://x.example', database: 'd', login: 'l', apiKey: 'abc' } }, dir);
    expect(issues.find((i) => i.path === 'odoo.apiKey')?.message).toMatch(/apiKeyFile or odoo\.apiKeyEnv/);
  });

  it('requires https for a remote Odoo and an API key source', () => {
    expect(paths({ odoo: { url: 'http://odoo.example.com', database: 'd', login: 'l', apiKeyFile: 'odoo.key' } })).toContain('odoo.url');
    expect(paths({ odoo: { url: 'https://odoo.example.com', database: 'd', login: 'l' } })).toContain('odoo.apiKeyFile');
    expect(paths({ odoo: { url: 'https://odoo.example.com', database: 'd', login: 'l', apiKeyFile: 'missing.key' } })).toContain('odoo.apiKeyFile');
  });

  it('rejects duplicate ids and two listeners on one port', () => {
    const errs = paths({
      hl7: [
        { id: 'lis', listen: { host: '127.0.0.1', port: 2575 } },
        { id: 'lis', listen: { host: '127.0.0.1', port: 2575 } },
      ],
    });
    expect(errs).toEqual(expect.arrayContaining(['hl7[1].id', 'hl7[1].listen.port']));
  });

  it('needs exactly one transport per analyzer', () => {
    expect(paths({ analyzers: [{ id: 'a', profile: 'generic-astm' }] })).toContain('analyzers[0]');
    expect(paths({ analyzers: [{ id: 'a', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 5000 }, connect: { host: 'x', port: 1 } } }] })).toContain('analyzers[0].tcp');
  });

  it('checks the order download switch of an analyzer', () => {
    expect(paths({ analyzers: [{ id: 'a', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 5000 } }, pushOrders: 'yes' }] })).toContain('analyzers[0].pushOrders');
    const { config } = validateConfig({ analyzers: [{ id: 'a', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 5000 } }, pushOrders: true }] }, dir);
    expect(config?.analyzers[0]?.pushOrders).toBe(true);
  });

  it('keeps anonymous MQTT on loopback only', () => {
    expect(paths({ mqtt: { listen: { host: '192.168.1.5', port: 1883 } } })).toContain('mqtt.usernameFile');
  });

  it('status.allowedHosts: names with underscores and IP literals (IPv6 with or without brackets) are accepted; URLs and host:port are not', () => {
    const { config, issues } = validateConfig({ status: { allowedHosts: ['lab_gw.lab.example.org', 'LAB-GW.local.', 'fe80::1', '[2001:db8::7]', '10.0.0.5'] } }, dir);
    expect(issues.filter((i) => i.path.startsWith('status'))).toEqual([]);
    expect(config?.status.allowedHosts).toEqual(['lab_gw.lab.example.org', 'lab-gw.local', 'fe80::1', '2001:db8::7', '10.0.0.5']);
    expect(paths({ status: { allowedHosts: ['http://lab-gw.lab.example.org', 'lab-gw.lab.example.org:8484', '[fe80::1]:8484'] } })).toEqual(['status.allowedHosts[0]', 'status.allowedHosts[1]', 'status.allowedHosts[2]']);
  });

  it('requires a client CA when mutual TLS is on', () => {
    expect(paths({ hl7: [{ id: 'lis', listen: { host: '127.0.0.1', port: 2575 }, tls: { cert: 'odoo.key', key: 'odoo.key', requireClientCert: true } }] })).toContain('hl7[0].tls.ca');
  });

  it('reports YAML syntax errors with a line number', async () => {
    const file = path.join(dir, 'bad.yaml');
    await writeFile(file, 'gateway:\n  id: lab-1\n   dataDir: x\n');
    const { config, issues } = loadConfig(file);
    expect(config).toBeUndefined();
    expect(issues[0]?.path).toMatch(/^line \d+/);
  });
});

describe('the design document example', () => {
  it('passes lab-gateway check literally, profile alias sysmex-xn included', async () => {
    const { checkSiteAnalyzers, loadProfile } = await import('../../gateway/src/profiles/load.ts');
    const { config } = validateConfig({ analyzers: [{ id: 'xn-1', profile: 'sysmex-xn', serial: { path: '/dev/ttyUSB0' } }] }, dir);
    expect(checkSiteAnalyzers(config!.analyzers).filter((i) => i.severity === 'error')).toEqual([]);
    expect(loadProfile('sysmex-xn').name).toBe('sysmex-xn-l');
  });
});
