/**
 * What a new user and IT staff meet first, run as real processes from the built CLI (dist/):
 * `lab-gateway demo` (what `npm start` runs) started, stopped with Ctrl-C, started again on the
 * same data, refused when a port is taken; the sandbox Odoo's records through GET /api/sandbox and
 * across restarts; the demo's data dir refused to a gateway with a real odoo.url; and the remote
 * commands (`status`, `events list|replay|discard`) against a running gateway, a stopped one and
 * answers they must not misread.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { sandboxFile } from '../../gateway/src/sandbox.ts';
import { OdooEmulator } from '../../test/odoo-emulator/emulator.ts';
import { cliBuilt, repo, runCli } from '../fixtures/cli.ts';
import { refusedPort } from '../fixtures/ports.ts';

const cli = cliBuilt;
const STACK = /\n\s+at .+[:(]\d+:\d+/;

const run = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(cli, args, env);

interface Proc {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number>;
  waitOut: (re: RegExp, ms?: number) => Promise<RegExpMatchArray>;
}

function launch(args: string[]): Proc {
  const child = spawn(process.execPath, [cli, ...args], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number>((r) => child.on('exit', (code) => r(code ?? -1)));
  const waitOut = async (re: RegExp, ms = 30_000): Promise<RegExpMatchArray> => {
    const until = Date.now() + ms;
    for (;;) {
      const m = out.match(re);
      if (m) return m;
      if (child.exitCode !== null || Date.now() > until) throw new Error(`no ${re} on stdout (exit ${child.exitCode}); stdout: ${out.slice(-1500)}\nstderr: ${err.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return { child, out: () => out, err: () => err, exited, waitOut };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 40_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const demoArgs = (dir: string, statusPort = 0): string[] => ['demo', '--data-dir', dir, '--interval', '1', '--hl7-port', '0', '--status-port', String(statusPort), '--mqtt-port', '0'];

interface SandboxBody {
  sandbox: boolean;
  records: { models: Record<string, { count: number; recent: Array<Record<string, unknown>> }> };
}

/** The sandbox file read back in an emulator that never listens. */
function readSandbox(dir: string): OdooEmulator {
  return new OdooEmulator({ version: 17, persistFile: sandboxFile(dir), seed: 'lab-demo', persistDebounceMs: 3_600_000 });
}

let dir = '';
const tmp: string[] = [];
afterAll(async () => {
  for (const d of tmp) await rm(d, { recursive: true, force: true });
});

describe('lab-gateway demo: first run, Ctrl-C, a taken port, a second run, then a real Odoo', () => {
  let firstSaleOrders = 0;
  let sandboxRefs: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lgw-demo-audit-'));
    tmp.push(dir);
  });

  it('prints where it listens, shows sandbox documents on GET /api/sandbox, keeps its data in the data dir and stops on SIGINT with exit 0', async () => {
    const demo = launch(demoArgs(dir));
    try {
      const m = await demo.waitOut(/status page\s+(http:\/\/127\.0\.0\.1:\d+\/)/);
      const statusUrl = m[1]!;
      expect(demo.out()).toMatch(/HL7\/MLLP \(LIS\)\s+127\.0\.0\.1:\d+/);
      expect(demo.out()).toMatch(/MQTT\s+mqtt:\/\/127\.0\.0\.1:\d+/);
      expect(demo.out()).toContain(`data             ${dir}`);
      const body = await until('a sale order in the sandbox', async () => {
        const res = await fetch(new URL('/api/sandbox', statusUrl));
        const b = (await res.json()) as SandboxBody;
        return (b.records.models['sale.order']?.count ?? 0) >= 2 ? b : undefined;
      });
      expect(body.sandbox).toBe(true);
      expect(body.records.models['sale.order']!.recent.every((so) => String(so.client_order_ref).startsWith('DEMO'))).toBe(true);
    } finally {
      demo.child.kill('SIGINT');
    }
    expect(await demo.exited).toBe(0);
    expect(demo.err()).toContain('lab-gateway stopped');
    expect(demo.err()).not.toContain('resources still open');
    expect(existsSync(path.join(dir, 'store'))).toBe(true);
    expect(existsSync(sandboxFile(dir))).toBe(true);
    const sandbox = readSandbox(dir);
    firstSaleOrders = sandbox.count('sale.order', []);
    expect(firstSaleOrders).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('a demo whose status port is taken exits 1 naming the port, without a stack trace, and leaves the data dir unlocked', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const r = await run(demoArgs(dir, port));
      expect(r.code).toBe(1);
      expect(r.err).toContain(String(port));
      expect(r.err).not.toMatch(STACK);
      expect(r.err).not.toContain('resources still open');
    } finally {
      blocker.close();
    }
    // The LevelDB lock is free again: the store opens.
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
    await store.close();
  }, 30_000);

  it('starts again on the same data without errors, without commissioning the reagents twice, and keeps the first run\'s sandbox records', async () => {
    const demo = launch(demoArgs(dir));
    let statusUrl = '';
    try {
      statusUrl = (await demo.waitOut(/status page\s+(http:\/\/127\.0\.0\.1:\d+\/)/))[1]!;
      await until('a new sale order', async () => {
        const b = (await (await fetch(new URL('/api/sandbox', statusUrl))).json()) as SandboxBody;
        return (b.records.models['sale.order']?.count ?? 0) > firstSaleOrders ? b : undefined;
      });
    } finally {
      demo.child.kill('SIGTERM');
    }
    expect(await demo.exited).toBe(0);
    expect(demo.err()).not.toContain('added the roche-cobas-c111 reagents');
    const errors = demo.err().split('\n').filter((l) => l.includes('"level":"error"'));
    expect(errors).toEqual([]);
    const sandbox = readSandbox(dir);
    for (const code of ['ROC-C111-GLU', 'ROC-C111-CREA', 'ROC-C111-ALT']) {
      const n = sandbox.count('product.product', [['default_code', '=', code]]);
      if (n > 0) expect(n, code).toBe(1);
    }
    expect(sandbox.count('stock.warehouse.orderpoint', [['product_id.default_code', '=', 'ROC-C111-GLU']])).toBeLessThanOrEqual(1);
    // No accession ordered twice.
    const refs = sandbox.records('sale.order').map((so) => String(so.client_order_ref));
    expect(new Set(refs).size).toBe(refs.length);
    expect(refs.length).toBeGreaterThan(firstSaleOrders);
    sandboxRefs = refs;
  }, 60_000);

  it('pointed at a real odoo.url, the gateway refuses the demo\'s data dir, posts nothing, and loses no event', async () => {
    const before = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
    const deliveredBefore = new Map<string, string | undefined>();
    let total = 0;
    try {
      for (const state of ['pending', 'inflight', 'retrying', 'dead', 'delivered', 'discarded'] as const) {
        let after: string | undefined;
        for (;;) {
          const page = await before.listEvents({ state, limit: 500, ...(after ? { after } : {}) });
          for (const e of page) {
            total++;
            if (state === 'delivered') deliveredBefore.set(e.event.id, (e as { deliveredAt?: string }).deliveredAt);
          }
          if (page.length < 500) break;
          after = page[page.length - 1]!.event.id;
        }
      }
    } finally {
      await before.close();
    }
    expect(deliveredBefore.size).toBeGreaterThan(0);

    const odoo = new OdooEmulator({ version: 17, seed: 'lab-demo', users: [{ login: 'admin', password: 'admin', rights: 'admin' }, { login: 'gw', password: 'pw', apiKeys: [{ key: 'real-key-123' }], rights: 'bot' }] });
    const { url } = await odoo.listen(0, '127.0.0.1');
    const cfgDir = await mkdtemp(path.join(tmpdir(), 'lgw-demo-real-'));
    tmp.push(cfgDir);
    await writeFile(path.join(cfgDir, 'odoo.key'), 'real-key-123\n');
    await writeFile(
      path.join(cfgDir, 'gateway.yaml'),
      [
        `gateway: { id: lab-demo, dataDir: ${dir} }`,
        'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
        `odoo: { url: ${url}, database: lab, login: gw, apiKeyFile: odoo.key }`,
        'mqtt: { broker: embedded, listen: { host: 127.0.0.1, port: 0 } }',
        'status: { listen: { host: 127.0.0.1, port: 0 } }',
        '',
      ].join('\n'),
    );
    // The demo's store is not a gateway's: `start` with the real Odoo refuses it (exit 1, as a
    // config error), naming gateway.dataDir, before anything is posted (demo-store-shared-audit).
    try {
      const gw = await run(['start', '--config', path.join(cfgDir, 'gateway.yaml')]);
      expect(gw.code, gw.err).toBe(1);
      expect(gw.out).not.toContain('"event":"ready"');
      expect(gw.err).toContain(`gateway.dataDir ${dir} holds the demo's data`);
      expect(gw.err).not.toMatch(STACK);
      const sandboxAccessions = new Set(sandboxRefs);
      const replayed = odoo.records('sale.order').filter((so) => sandboxAccessions.has(String(so.client_order_ref)));
      expect(replayed.map((so) => so.client_order_ref)).toEqual([]);
    } finally {
      await odoo.close();
    }
    const after = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
    try {
      let count = 0;
      for (const state of ['pending', 'inflight', 'retrying', 'dead', 'delivered', 'discarded'] as const) {
        let cursor: string | undefined;
        for (;;) {
          const page = await after.listEvents({ state, limit: 500, ...(cursor ? { after: cursor } : {}) });
          count += page.length;
          if (page.length < 500) break;
          cursor = page[page.length - 1]!.event.id;
        }
      }
      expect(count).toBeGreaterThanOrEqual(total);
      for (const id of deliveredBefore.keys()) expect((await after.getEvent(id))?.state, id).toBe('delivered');
    } finally {
      await after.close();
    }
  }, 90_000);
});

// ------------------------------------------------------------------------------------------------
// Remote commands against a server whose answers the test chooses.

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
let stub: http.Server;
let stubUrl = '';
let handler: Handler = (_req, res) => res.end();

const STATUS = {
  gatewayId: 'stub-gw',
  version: '0.1.0',
  startedAt: '2026-01-01T00:00:00.000Z',
  health: 'ok',
  healthReasons: [],
  intake: { received: 0, accepted: 0, rejected: 0, duplicates: 0 },
  queue: { pending: 0, inFlight: 0, retrying: 0, deadLettered: 0, delivered: 0, oldestPendingAgeSeconds: 0 },
  odoo: { state: 'sandbox', lastError: null, lastSuccessAt: null },
  endpoints: [],
};

function json(res: http.ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

describe('remote commands: exit codes and errors', () => {
  beforeAll(async () => {
    stub = http.createServer((req, res) => handler(req, res));
    await new Promise<void>((r) => stub.listen(0, '127.0.0.1', () => r()));
    stubUrl = `http://127.0.0.1:${(stub.address() as net.AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => stub.close(() => r()));
  });

  it('status against a stopped gateway exits 1 with a readable GW_UNREACHABLE line, no stack trace', async () => {
    const port = await refusedPort(); // nothing listens: the gateway is stopped
    for (const args of [['status'], ['status', '--json'], ['events', 'list'], ['events', 'list', '--json']]) {
      const r = await run([...args, '--url', `http://127.0.0.1:${port}`]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.err).toContain('GW_UNREACHABLE');
      expect(r.err).not.toMatch(STACK);
      expect(r.out).toBe('');
    }
  });

  it('status --json exits 1 when health is down, like status without --json', async () => {
    handler = (_req, res) => json(res, 200, { ...STATUS, health: 'down', healthReasons: [{ level: 'down', code: 'STORE_DOWN', message: 'the store cannot commit' }] });
    const plain = await run(['status', '--url', stubUrl]);
    expect(plain.code).toBe(1);
    const asJson = await run(['status', '--json', '--url', stubUrl]);
    expect((JSON.parse(asJson.out) as { health: string }).health).toBe('down');
    expect(asJson.code).toBe(1);
  });

  it('status --config naming a file that does not exist is an error about that file, not a query of the default port', async () => {
    handler = (_req, res) => json(res, 200, STATUS);
    const missing = path.join(tmpdir(), 'lgw-no-such-config-dir', 'gateway.yaml');
    const r = await run(['status', '--config', missing]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(missing);
    expect(r.err).not.toContain('cannot reach the gateway at http://127.0.0.1:8484');
  });

  it('status --config with an invalid config names the invalid key instead of silently using 127.0.0.1:8484', async () => {
    const d = await mkdtemp(path.join(tmpdir(), 'lgw-bad-cfg-'));
    tmp.push(d);
    // A typo in the status section: the gateway itself refuses this config.
    await writeFile(path.join(d, 'gateway.yaml'), 'status: { listen: { host: 127.0.0.1, port: 18484 }, adminTokenFiel: x }\n');
    const r = await run(['status', '--config', path.join(d, 'gateway.yaml')]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('status.adminTokenFiel');
  });

  it('status pointed at something that is not a gateway says so, instead of a JavaScript TypeError', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html><body>router admin</body></html>');
    };
    const r = await run(['status', '--url', stubUrl]);
    expect(r.code).toBe(1);
    expect(r.err).not.toMatch(/Cannot read properties|is not a function|undefined/);
  });

  it('events replay with a wrong token exits 1 with GW_UNAUTHORIZED; an unknown id exits 1 naming it; --json list is an array', async () => {
    handler = (req, res) => {
      const auth = req.headers.authorization;
      if (req.method === 'POST' && auth !== 'Bearer right-token') return json(res, 401, { error: 'a valid admin token is required' });
      if (req.method === 'POST') return json(res, 404, { error: 'no such event', code: 'GW_STORE_NOT_FOUND' });
      if (req.url?.startsWith('/api/events')) return json(res, 200, { events: [], count: 0 });
      return json(res, 404, { error: 'no' });
    };
    const wrong = await run(['events', 'replay', 'EV1', '--url', stubUrl], { LAB_GATEWAY_ADMIN_TOKEN: 'wrong-token' });
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain('GW_UNAUTHORIZED');
    expect(wrong.err).not.toMatch(STACK);
    const unknown = await run(['events', 'discard', 'NOPE-1', '--reason', 'x', '--url', stubUrl], { LAB_GATEWAY_ADMIN_TOKEN: 'right-token' });
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('no such event');
    expect(unknown.out).toBe('');
    const list = await run(['events', 'list', '--json', '--url', stubUrl]);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.out)).toEqual([]);
  });
});
