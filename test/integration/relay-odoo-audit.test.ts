import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../../gateway/src/log.ts';
import { OdooClient } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { failureOf } from '../../gateway/src/relay/odoo/odoo-error.ts';
import { OdooEmulator } from '../odoo-emulator/index.ts';
import { executeKw, json2, jsonRpc } from '../odoo-emulator/http-client.ts';
import { freePort } from '../fixtures/ports.ts';
import { BOT, makeRig, startEmulator, type Rig } from '../fixtures/relay/harness.ts';
import { orderCreated, resultValidated, waitFor } from '../fixtures/relay/helpers.ts';

/**
 * Audit of the Odoo client and relay core against answers a lab really meets: a front proxy's
 * page where JSON was expected, a body cut short, the bot's user gone from Odoo; and of the
 * emulator's fidelity where it accepts what a real Odoo refuses.
 */

const cleanups: Array<() => Promise<void> | void> = [];
let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
  while (cleanups.length) await cleanups.pop()!();
});
afterAll(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const MAINTENANCE_PAGE = '<!DOCTYPE html><html><head><title>Maintenance</title></head><body><h1>We will be back soon</h1></body></html>';
/** A JSON answer cut short, with HTTP framing that is complete (a proxy's buffer limit). */
const TRUNCATED_JSON = '[{"id": 7, "name": "Northside Fam';

type Bad = 'truncated' | 'html';

function badReply(res: http.ServerResponse, kind: Bad): void {
  const body = kind === 'truncated' ? TRUNCATED_JSON : MAINTENANCE_PAGE;
  res.writeHead(200, { 'content-type': kind === 'truncated' ? 'application/json' : 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * A tiny Odoo stand-in (17 over JSON-RPC, 19 over JSON-2) that connects normally and answers the
 * one call under test with `bad` (HTTP 200, body not a complete JSON answer).
 */
async function oddOdoo(version: 17 | 19, target: { model: string; method: string }, bad: Bad): Promise<string> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      const json = (value: unknown): void => {
        const body = JSON.stringify(value);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      };
      if (version === 19 && path === '/web/version') return json({ version_info: [19, 0, 0, 'final', 0, ''], version: '19.0' });
      if (version === 19 && path.startsWith('/json/2/')) {
        const [, , , model, method] = path.split('/');
        if (model === target.model && method === target.method) return badReply(res, bad);
        if (method === 'context_get') return json({ lang: 'en_US', tz: 'Europe/Brussels', uid: 2 });
        if (method === 'fields_get') return json({});
        return json(true);
      }
      if (version === 17 && path === '/jsonrpc') {
        const rpc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: number; params: { service: string; method: string; args: unknown[] } };
        const ok = (result: unknown): void => json({ jsonrpc: '2.0', id: rpc.id, result });
        const { service, method, args } = rpc.params;
        if (service === 'common' && method === 'version') return ok({ server_version: '17.0-20240709', server_version_info: [17, 0, 0, 'final', 0, ''], server_serie: '17.0', protocol_version: 1 });
        if (service === 'common' && method === 'authenticate') return ok(2);
        if (args[3] === target.model && args[4] === target.method) return badReply(res, bad);
        if (args[4] === 'fields_get') return ok({});
        return ok(true);
      }
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end('<h1>Not Found</h1>');
    });
  });
  return listen(server);
}

async function connectedClient(url: string): Promise<OdooClient> {
  const client = new OdooClient({ url, database: 'lab', login: BOT.login, apiKey: BOT.key, timeoutMs: 3000, log: silentLogger, models: ['res.partner'] });
  cleanups.push(() => client.close());
  await client.connect();
  return client;
}

describe('HTTP 200 whose body is not a complete JSON answer', () => {
  it.each([
    [17, 'truncated'],
    [17, 'html'],
    [19, 'truncated'],
    [19, 'html'],
  ] as const)('Odoo %i, %s body to a read: rejected as transient, never an empty result', async (version, bad) => {
    const url = await oddOdoo(version, { model: 'res.partner', method: 'search_read' }, bad);
    const client = await connectedClient(url);
    const outcome = await client.call('res.partner', 'search_read', { domain: [['ref', '=', 'CLINIC-A']], fields: ['name'] }).then(
      (value) => ({ resolved: value }),
      (err: unknown) => ({ failure: failureOf(err) }),
    );
    // An empty look-up makes the rules create the document again (find, then create).
    expect(outcome).toEqual({ failure: 'transient' });
  });

  it.each([
    [17, 'truncated'],
    [17, 'html'],
    [19, 'truncated'],
    [19, 'html'],
  ] as const)('Odoo %i, %s body to a write: rejected as ambiguous, never a success', async (version, bad) => {
    const url = await oddOdoo(version, { model: 'sale.order.line', method: 'write' }, bad);
    const client = await connectedClient(url);
    const outcome = await client.call('sale.order.line', 'write', { vals: { qty_delivered: 1 } }, { ids: [42] }).then(
      (value) => ({ resolved: value }),
      (err: unknown) => ({ failure: failureOf(err) }),
    );
    expect(outcome).toEqual({ failure: 'ambiguous' });
  });

  it('Odoo 19: a proxy page instead of the answer to a write does not mark the result delivered while Odoo has nothing', async () => {
    const started = await startEmulator(19);
    cleanups.push(() => started.emu.close());
    // A front proxy that, once armed, answers the next line write itself with a 200 maintenance page.
    const target = new URL(started.url);
    const agent = new http.Agent({ keepAlive: true });
    cleanups.push(() => agent.destroy());
    let armed = false;
    let intercepted = 0;
    const proxy = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (armed && req.url === '/json/2/sale.order.line/write') {
          armed = false;
          intercepted++;
          badReply(res, 'html');
          return;
        }
        const up = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers, agent }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        });
        up.on('error', () => res.destroy());
        up.end(Buffer.concat(chunks));
      });
    });
    const proxyUrl = await listen(proxy);
    rig = await makeRig(19, { emu: { emu: started.emu, url: proxyUrl } });
    await rig.commit([orderCreated('HTML1', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();
    armed = true;
    const [id] = await rig.commit([resultValidated('HTML1', 'GLU')]);
    await rig.waitDrained();
    expect(intercepted).toBe(1);
    const ev = await rig.store.getEvent(id!);
    expect(ev?.state).toBe('delivered');
    const [so] = started.emu.records('sale.order', [['client_order_ref', '=', 'HTML1']]);
    const [line] = started.emu.records('sale.order.line', [['order_id', '=', so!.id]]);
    // Delivered must mean written: the line is billable only once qty_delivered is set.
    expect(line?.['qty_delivered']).toBe(1);
  });
});

describe("the bot's uid is gone from Odoo (user deleted and recreated, database restored)", () => {
  it('Odoo 17: MissingError on the credential check re-authenticates instead of dead-lettering the queue', async () => {
    const port = await freePort(); // Odoo comes back on this port: not one listen(0) may hand out meanwhile
    const first = await startEmulator(17, {}, port);
    let current: OdooEmulator = first.emu;
    cleanups.push(() => current.close());
    rig = await makeRig(17, { emu: first });
    await rig.commit([orderCreated('UID1', 'CLINIC-A', ['GLU'])]);
    await rig.waitDrained();
    expect(rig.client.uid).toBe(3); // admin is uid 2, the bot uid 3
    // The same server comes back with the bot as the only configured user: it is uid 2 now, and
    // uid 3 does not exist (odoo-api.md D: nonexistent uid → odoo.exceptions.MissingError).
    await first.emu.close();
    current = new OdooEmulator({ version: 17, seed: 'lab-demo', users: [{ login: BOT.login, password: BOT.password, apiKeys: [{ key: BOT.key }], rights: 'bot' }] });
    await current.listen(port);
    const [id] = await rig.commit([orderCreated('UID2', 'CLINIC-A', ['GLU'])]);
    await waitFor(async () => ['delivered', 'dead'].includes(String((await rig!.store.getEvent(id!))?.state)));
    const ev = await rig.store.getEvent(id!);
    expect(ev?.deadReason).toBeUndefined();
    expect(ev?.state).toBe('delivered');
    expect(current.count('sale.order', [['client_order_ref', '=', 'UID2']])).toBe(1);
  });
});

describe('refused credentials: the back-off before the next login', () => {
  it('Odoo 17, wrong key: messages arriving meanwhile do not trigger new login attempts (login cooldown, A.3)', async () => {
    const started = await startEmulator(17, {
      users: [
        { login: 'admin', password: 'admin', rights: 'admin' },
        { login: BOT.login, password: 'x', apiKeys: [{ key: 'another-key' }], rights: 'bot' },
      ],
    });
    cleanups.push(() => started.emu.close());
    // Ten minutes before the next login: within this test there must be exactly one.
    rig = await makeRig(17, { emu: started, relayOptions: { authBackoff: { initialMs: 600_000, maxMs: 600_000 } } });
    // One login attempt = common.version + common.authenticate.
    const logins = (): number => started.emu.calls.filter((c) => c.service === 'common').length / 2;
    await waitFor(() => rig!.client.state === 'auth-failed');
    expect(logins()).toBe(1);
    // The lab keeps working: every accepted message nudges the relay (gateway.ts wires
    // intake.message → relay.notify()).
    for (let i = 0; i < 5; i++) {
      const before = logins();
      await rig.commit([orderCreated(`WAKE${i}`, 'CLINIC-A', ['GLU'])]);
      await waitFor(() => logins() > before, 400).catch(() => undefined);
    }
    // Each extra attempt is a wrong key counted by Odoo: five lock the lab's IP out for 60 s.
    expect(logins()).toBe(1);
  });
});

describe('the API key is never written out', () => {
  it.each([17, 19] as const)('Odoo %i refusing the key: logs, alerts, link state and status hold no key', async (version) => {
    const started = await startEmulator(version, {
      users: [
        { login: 'admin', password: 'admin', rights: 'admin' },
        { login: BOT.login, password: 'x', apiKeys: [{ key: 'another-key' }], rights: 'bot' },
      ],
    });
    cleanups.push(() => started.emu.close());
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', write: (l) => lines.push(l) });
    rig = await makeRig(version, { emu: started, log, start: false, relayOptions: { authBackoff: { initialMs: 600_000, maxMs: 600_000 } } });
    const seen: string[] = [];
    rig.telemetry.on('alert', (a) => seen.push(JSON.stringify(a)));
    rig.telemetry.on('odoo.state', (s) => seen.push(JSON.stringify(s)));
    await rig.relay.start();
    await rig.commit([orderCreated('KEY1', 'CLINIC-A', ['GLU'])]);
    await waitFor(() => rig!.client.state === 'auth-failed');
    const everything = [...lines, ...seen, JSON.stringify(rig.relay.snapshot()), String(rig.client.lastError)].join('\n');
    expect(seen.some((s) => s.includes('ODOO_AUTH_FAILED'))).toBe(true);
    expect(everything).not.toContain(BOT.key);
    expect(everything).not.toContain(BOT.key.slice(0, 8)); // not even the key's index
  });
});

describe('emulator fidelity: a bot user an administrator archived or deleted', () => {
  const KEY = BOT.key;
  async function emulator(version: 17 | 19): Promise<{ emu: OdooEmulator; url: string; uid: number }> {
    const started = await startEmulator(version);
    cleanups.push(() => started.emu.close());
    const uid = started.emu.records('res.users', [['login', '=', BOT.login]])[0]!.id as number;
    return { ...started, uid };
  }

  it('Odoo 17: an archived user cannot authenticate nor call execute_kw (res.users.check: `if not self.env.user.active: raise AccessDenied()`)', async () => {
    const { emu, url, uid } = await emulator(17);
    emu.call('res.users', 'write', [[uid], { active: false }]);
    const auth = (await jsonRpc(url, 'common', 'authenticate', ['lab', BOT.login, KEY, {}])).body as { result?: unknown };
    expect(auth.result).toBe(false);
    const call = (await executeKw(url, { db: 'lab', uid, secret: KEY }, 'res.partner', 'search_count', [[]])).body as { error?: { data: { name: string } } };
    expect(call.error?.data.name).toBe('odoo.exceptions.AccessDenied');
  });

  it('Odoo 19: the API key of an archived user is refused over JSON-2 (apikeys._check_credentials joins `u.active`)', async () => {
    const { emu, url, uid } = await emulator(19);
    emu.call('res.users', 'write', [[uid], { active: false }]);
    const r = await json2(url, KEY, 'res.partner', 'search_count', { domain: [] });
    expect(r.status).toBe(401);
    expect((r.body as { name?: string }).name).toBe('werkzeug.exceptions.Unauthorized');
  });

  it('Odoo 17: a deleted user’s uid is a MissingError in execute_kw (odoo-api.md D)', async () => {
    const { emu, url, uid } = await emulator(17);
    emu.call('res.users', 'unlink', [[uid]]);
    expect(emu.count('res.users', [['id', '=', uid]])).toBe(0);
    const call = (await executeKw(url, { db: 'lab', uid, secret: KEY }, 'res.partner', 'search_count', [[]])).body as { error?: { data: { name: string } } };
    expect(call.error?.data.name).toBe('odoo.exceptions.MissingError');
  });
});
