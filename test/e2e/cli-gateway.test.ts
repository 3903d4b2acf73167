/**
 * The lab-gateway command, run as a real separate process from the sources: start with a config,
 * send HL7 with `lab-gateway send`, read status and events back through the CLI, replay a dead
 * letter with the admin token, stop with SIGTERM. Also `check` on good and bad configs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { OdooEmulator } from '../../test/odoo-emulator/emulator.ts';
import { cliSource, repo, runCli } from '../fixtures/cli.ts';

const cli = cliSource;

const run = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(cli, args, env);

let dir: string;
let gateway: ChildProcess;
let ready: { hl7: Record<string, { port: number }>; status: { url: string; port: number }; dataDir: string };
let exited: Promise<number>;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-cli-'));
  await writeFile(path.join(dir, 'admin.token'), 'test-admin-token-1234567890\n');
  await writeFile(
    path.join(dir, 'gateway.yaml'),
    [
      `gateway: { id: cli-test, dataDir: ${path.join(dir, 'data')} }`,
      'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 }, ack: original } ]',
      'mqtt: { broker: embedded, listen: { host: 127.0.0.1, port: 0 } }',
      'status: { listen: { host: 127.0.0.1, port: 0 }, adminTokenFile: admin.token }',
      'relay: { backoff: { initialMs: 100, maxMs: 1000 } }',
      '',
    ].join('\n'),
  );
  // An order for a client the sandbox does not know: it ends as a readable dead letter.
  await writeFile(
    path.join(dir, 'order.hl7'),
    [
      'MSH|^~\\&|LIS|LAB|GW|LAB|20261125101500||ORM^O01|CLI-0001|P|2.5',
      'PID|1||MRN-1^^^LAB^MR||Doe^Jane',
      'ORC|NW|ACC-CLI-1||ACC-CLI-1|SC||||20261125101500||||||||||||NO-SUCH-CLINIC',
      'OBR|1|ACC-CLI-1||GLU^Glucose^L',
      '',
    ].join('\r'),
  );
  gateway = spawn(process.execPath, [cli, 'start', '--config', path.join(dir, 'gateway.yaml')], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  exited = new Promise((r) => gateway.on('exit', (code) => r(code ?? -1)));
  let out = '';
  let err = '';
  gateway.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  ready = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ready line; stderr: ${err.slice(-2000)}`)), 30_000);
    gateway.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"event":"ready"'));
      if (line) {
        clearTimeout(t);
        resolve(JSON.parse(line));
      }
    });
  });
});

afterAll(async () => {
  if (gateway.exitCode === null) gateway.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

describe('lab-gateway CLI against a running gateway', () => {
  it('prints every listening address on a ready line', () => {
    expect(ready.hl7.lis?.port).toBeGreaterThan(0);
    expect(ready.status.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
  });

  it('send prints the AA acknowledgement that echoes the control id', async () => {
    const r = await run(['send', '--port', String(ready.hl7.lis!.port), path.join(dir, 'order.hl7')]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('MSH-10 CLI-0001 → AA (MSA-2 CLI-0001)');
  });

  it('status --json returns the status body with the message counted', async () => {
    // The status model polls the store's counters once a second.
    let r = await run(['status', '--json', '--url', ready.status.url]);
    for (let i = 0; i < 10 && (JSON.parse(r.out) as { intake: { accepted: number } }).intake.accepted < 1; i++) {
      await new Promise((res) => setTimeout(res, 300));
      r = await run(['status', '--json', '--url', ready.status.url]);
    }
    expect(r.code).toBe(0);
    const body = JSON.parse(r.out) as { gatewayId: string; intake: { accepted: number } };
    expect(body.gatewayId).toBe('cli-test');
    expect(body.intake.accepted).toBe(1);
  });

  it('an unknown ordering client becomes a dead letter with a readable reason, replayable with the admin token', async () => {
    let listed = '';
    for (let i = 0; i < 60 && !listed.includes('NO-SUCH-CLINIC'); i++) {
      listed = (await run(['events', 'list', '--state', 'dead', '--url', ready.status.url])).out;
      if (!listed.includes('NO-SUCH-CLINIC')) await new Promise((r) => setTimeout(r, 500));
    }
    expect(listed).toMatch(/order\.created.*NO-SUCH-CLINIC/);
    const id = listed.split(/\s+/)[0]!;
    const denied = await run(['events', 'replay', id, '--url', ready.status.url, '--token-file', path.join(dir, 'order.hl7')]);
    expect(denied.code).toBe(1);
    const replayed = await run(['events', 'replay', id, '--reason', 'client created', '--url', ready.status.url, '--token-file', path.join(dir, 'admin.token')]);
    expect(replayed.code).toBe(0);
    expect(replayed.out).toContain(`${id}: replayed`);
  });

  it('a dead letter that cannot be fixed is discarded with an audited reason; no reason, no discard', async () => {
    let listed = '';
    for (let i = 0; i < 60 && !/order\.created.*NO-SUCH-CLINIC/.test(listed); i++) {
      listed = (await run(['events', 'list', '--state', 'dead', '--url', ready.status.url])).out;
      if (!/order\.created.*NO-SUCH-CLINIC/.test(listed)) await new Promise((r) => setTimeout(r, 500));
    }
    const id = listed.split(/\s+/)[0]!;
    const token = ['--url', ready.status.url, '--token-file', path.join(dir, 'admin.token')];
    const noReason = await run(['events', 'discard', id, ...token]);
    expect(noReason.code).toBe(2);
    const discarded = await run(['events', 'discard', id, '--reason', 'order entered by hand in Odoo', ...token]);
    expect(discarded.code).toBe(0);
    expect(discarded.out).toContain(`${id}: discarded`);
    const after = await run(['events', 'list', '--state', 'discarded', '--json', '--url', ready.status.url]);
    const rows = JSON.parse(after.out) as Array<{ event: { id: string }; audit?: Array<{ action: string; reason?: string }> }>;
    expect(rows.find((r) => r.event.id === id)?.audit?.map((a) => a.action)).toEqual(['replay', 'discard']);
  });

  it('the sandbox records are served to the status page', async () => {
    const res = await fetch(new URL('/api/sandbox', ready.status.url));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { sandbox: boolean; records: { models: Record<string, { count: number }> } };
    expect(body.sandbox).toBe(true);
    expect(body.records.models['sale.order']).toBeDefined();
  });

  it('SIGTERM stops gracefully and everything acknowledged is in the store', async () => {
    gateway.kill('SIGTERM');
    expect(await exited).toBe(0);
    const store = await EventStore.open({ dataDir: ready.dataDir, pruneIntervalMs: 0, minFreeBytes: 0 });
    try {
      const found = await store.listMessages({ controlId: 'CLI-0001' });
      expect(found).toHaveLength(1);
      const stored = await store.getMessage(found[0]!.id);
      expect(stored?.raw.toString('latin1')).toContain('ORC|NW|ACC-CLI-1');
    } finally {
      await store.close();
    }
  });
});

describe('lab-gateway check', () => {
  it('passes a valid config and exits 0', async () => {
    const r = await run(['check', '--config', path.join(dir, 'gateway.yaml')]);
    expect(r.out).toContain('0 error(s)');
    expect(r.code).toBe(0);
  });

  it('prints every issue of a broken config and exits 1', async () => {
    const bad = path.join(dir, 'bad.yaml');
    await writeFile(bad, 'gateway: { id: "bad id" }\nhl7: [ { id: lis, listen: { host: 127.0.0.1, port: 70000 } } ]\nanalyzers: [ { id: a1, profile: sysmex-xn-nope, serial: { path: /dev/ttyUSB9 } } ]\nodoo: { apiKey: inline }\n');
    const r = await run(['check', '--config', bad]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('gateway.id');
    expect(r.out).toContain('hl7[0].listen.port');
    expect(r.out).toContain('odoo.apiKey');
  });

  it('names an unknown firmware profile', async () => {
    const cfg = path.join(dir, 'profile.yaml');
    await writeFile(cfg, 'analyzers: [ { id: a1, profile: sysmex-xn-nope, serial: { path: /dev/ttyUSB9 } } ]\n');
    const r = await run(['check', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/analyzers\[0\]\.profile: unknown profile "sysmex-xn-nope"/);
  });

  it('answers an unknown command with usage and exit 2', async () => {
    const r = await run(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('Usage:');
  });

  it('--odoo connects to the configured Odoo and names the mapping key that does not resolve', async () => {
    const odoo = new OdooEmulator({ version: 17, seed: 'lab-demo', users: [{ login: 'admin', password: 'admin', rights: 'admin' }, { login: 'gw', password: 'pw', apiKeys: [{ key: 'good-key-123' }], rights: 'bot' }] });
    const { url } = await odoo.listen(0);
    try {
      await writeFile(path.join(dir, 'good.key'), 'good-key-123\n');
      await writeFile(path.join(dir, 'bad.key'), 'wrong-key\n');
      const cfg = (key: string, lab: string): string => `odoo: { url: ${url}, database: lab, login: gw, apiKeyFile: ${key}, mapping: { labLocation: ${lab} } }\n`;
      await writeFile(path.join(dir, 'odoo-ok.yaml'), cfg('good.key', 'WH/Stock/Lab'));
      const ok = await run(['check', '--odoo', '--config', path.join(dir, 'odoo-ok.yaml')]);
      expect(ok.out).toContain('0 error(s)');
      expect(ok.code).toBe(0);
      await writeFile(path.join(dir, 'odoo-map.yaml'), cfg('good.key', 'WH/Stock/Nowhere'));
      const map = await run(['check', '--odoo', '--config', path.join(dir, 'odoo-map.yaml')]);
      expect(map.code).toBe(1);
      expect(map.out).toContain('odoo.mapping.labLocation');
      await writeFile(path.join(dir, 'odoo-bad.yaml'), cfg('bad.key', 'WH/Stock/Lab'));
      const bad = await run(['check', '--odoo', '--config', path.join(dir, 'odoo-bad.yaml')]);
      expect(bad.code).toBe(1);
      expect(bad.out).toMatch(/odoo: .*(Access Denied|credentials|auth)/i);
    } finally {
      await odoo.close();
    }
  });
});

