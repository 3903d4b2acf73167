/**
 * Audit of the fixed contracts of DESIGN.md §5 as a site meets them: the HTTP status API of a real
 * gateway process answering requests it did not expect, the remote CLI commands' errors and exit
 * codes against that gateway, and `lab-gateway check` against `lab-gateway start` on configuration
 * keys the README documents (MQTT broker, MQTT credentials and TLS, the Odoo proxy). Every command
 * runs as a real separate process from the sources (`gateway/src/cli/main.ts`, Node 24).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliSource, repo, runCli } from '../fixtures/cli.ts';

const TOKEN = 'contracts-audit-token-7d1e';

let dir: string;
let n = 0;
async function configFile(body: string): Promise<string> {
  const file = path.join(dir, `c${++n}.yaml`);
  await writeFile(file, body);
  return file;
}

const run = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(cliSource, args, { LAB_GATEWAY_ADMIN_TOKEN: '', ...env });

interface Started {
  child: ChildProcess;
  /** The ready line, or undefined when the process exited before it was ready. */
  ready: Promise<{ status: { port: number } } | undefined>;
  exited: Promise<number | null>;
  err: () => string;
}

function start(configPath: string): Started {
  const child = spawn(process.execPath, [cliSource, 'start', '--config', configPath], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const ready = new Promise<{ status: { port: number } } | undefined>((resolve) => {
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"event":"ready"'));
      if (line) resolve(JSON.parse(line) as { status: { port: number } });
    });
    void exited.then(() => resolve(undefined));
  });
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  return { child, ready, exited, err: () => err };
}

async function stopGateway(g: Started): Promise<void> {
  if (g.child.exitCode !== null || g.child.signalCode !== null) return;
  g.child.kill('SIGTERM');
  const t = setTimeout(() => g.child.kill('SIGKILL'), 20_000);
  await g.exited;
  clearTimeout(t);
}

/**
 * `lab-gateway start` on `configPath`: 'refused' when it exits before its ready line, 'ran' when it
 * got ready (it is then stopped with SIGTERM).
 */
async function startVerdict(configPath: string): Promise<{ verdict: 'refused' | 'ran'; err: string }> {
  const g = start(configPath);
  const ready = await g.ready;
  if (!ready) return { verdict: 'refused', err: g.err() };
  await stopGateway(g);
  return { verdict: 'ran', err: g.err() };
}

/**
 * One raw HTTP request; resolves with the status line, or 'no answer' when nothing arrived before
 * the socket closed or `patienceMs` passed (a liveness bound, not a latency figure).
 */
function rawRequest(port: number, request: string, patienceMs = 10_000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(request));
    let data = '';
    const finish = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(data === '' ? 'no answer' : (data.split('\r\n')[0] ?? data));
    };
    const timer = setTimeout(finish, patienceMs);
    s.on('data', (d: Buffer) => {
      data += d.toString('latin1');
      if (data.includes('\r\n\r\n')) finish();
    });
    s.on('close', finish);
    s.on('error', finish);
  });
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-contracts-audit-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('a running gateway: the HTTP status API and the remote commands', () => {
  let gw: Started;
  let port = 0;
  let url = '';

  beforeAll(async () => {
    await writeFile(path.join(dir, 'admin.token'), TOKEN + '\n');
    const cfg = await configFile(
      [
        `gateway: { id: contracts, dataDir: ${path.join(dir, 'data')} }`,
        'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
        'relay: { enabled: false }',
        'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
        `status: { listen: { host: 127.0.0.1, port: 0 }, adminTokenFile: ${path.join(dir, 'admin.token')} }`,
      ].join('\n'),
    );
    gw = start(cfg);
    const ready = await gw.ready;
    if (!ready) throw new Error(`the gateway did not start:\n${gw.err()}`);
    port = ready.status.port;
    url = `http://127.0.0.1:${port}`;
  }, 60_000);

  afterAll(async () => {
    if (gw) await stopGateway(gw);
  }, 30_000);

  // What the user sees: a monitoring probe, a vulnerability scanner or a misconfigured reverse
  // proxy sends a request whose target is not a valid URL (`GET //[ HTTP/1.1`): the status API
  // never answers it — the connection hangs open — and the gateway logs "unhandled rejection".
  // Promise broken: DESIGN.md §5 HTTP status API; the brief of this API: a bad request gets a
  // clear 4xx JSON answer, never a 500 or a hang.
  // Cause: gateway/src/status/http-server.ts:208 — `new URL(req.url, …)` runs before the try
  // block of #handle, so its TypeError (ERR_INVALID_URL) rejects the promise that the request
  // listener discards (`void this.#handle(...)`, line 163); no response is ever written.
  // Fix: parse the URL inside the try (or catch ERR_INVALID_URL) and answer 400
  // `{ "error": "malformed request target" }`.
  it('answers a request whose target is not a valid URL with a 400, instead of leaving it hanging', async () => {
    for (const target of ['//[', '//a:b@[::1/api/status']) {
      const line = await rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: gw\r\n\r\n`);
      expect(line, target).toMatch(/^HTTP\/1\.1 400 /);
    }
    // The gateway still answers ordinary requests afterwards.
    expect((await fetch(`${url}/api/status`)).status).toBe(200);
  });

  // What the user sees: an uptime checker that probes every route with HEAD (a common default)
  // waits for ever on HEAD /api/stream: not even the status line comes back.
  // Promise broken: the HTTP API answers (HEAD is routed with GET, http-server.ts:232); a probe
  // is never left hanging.
  // Cause: gateway/src/status/http-server.ts:432-434 — #openStream does writeHead + write and
  // keeps the response open; a HEAD response has no body, so Node ignores write() and sends the
  // headers only at end(), which never comes.
  // Fix: for HEAD answer the headers and end (`res.writeHead(200, …); res.end()`), or
  // `res.flushHeaders()` before the first write; do not register HEAD responses as streams.
  it('HEAD /api/stream answers with its headers instead of hanging', async () => {
    // The Host names the gateway: the status API answers only its own names (DNS rebinding).
    const line = await rawRequest(port, `HEAD /api/stream HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    expect(line).toMatch(/^HTTP\/1\.1 200 /);
  });

  // What the user sees: `lab-gateway events discard <id> --reason …` with a mistyped id prints
  // `GW_STORE_STATE: 404: no event …`: the code says "action not allowed in the record's
  // state" though the record does not exist (the gateway itself answered code GW_STORE_NOT_FOUND).
  // A 503 (store down) is reported as GW_STORE_STATE too.
  // Promise broken: README "Error codes": "Every error carries a stable code … retry decisions
  // branch on the code"; GW_STORE_NOT_FOUND = no such record, GW_STORE_STATE = not allowed in
  // the record's state.
  // Cause: gateway/src/cli/remote.ts:72 — call() maps every non-401/403 answer to
  // GW_STORE_STATE and ignores the `code` field of the JSON error body.
  // Fix: use the body's `code` when it is a GW_* code; else map by status (404 →
  // GW_STORE_NOT_FOUND, 409 → GW_STORE_STATE, 503 → GW_STORE_UNAVAILABLE, 400 → a usage error).
  it('events discard of an unknown id reports GW_STORE_NOT_FOUND, the code the gateway answered', async () => {
    const r = await run(['events', 'discard', 'NO-SUCH-EVENT-1', '--reason', 'typo check', '--url', url], { LAB_GATEWAY_ADMIN_TOKEN: TOKEN });
    expect(r.code).toBe(1);
    expect(r.err).toContain('NO-SUCH-EVENT');
    expect(r.err).toContain('GW_STORE_NOT_FOUND');
    expect(r.err).not.toContain('GW_STORE_STATE');
  });

  // What the user sees: `lab-gateway events list --state dead-lettered` (the README calls them
  // "dead-lettered") exits 1 with `GW_STORE_STATE: 400: state must be one of …`, as if a stored
  // record were in a wrong state; a script cannot tell a typo from a failed gateway.
  // Promise broken: README "Command line": "Exit codes: 0 ok, 1 failed check or error, 2 usage
  // error"; the command's own usage lists the values (`--state
  // pending|inflight|retrying|dead|delivered|discarded`).
  // Cause: gateway/src/cli/remote.ts:128-131 — `events list` passes --state (and --limit) to the
  // API unchecked, and the API's 400 becomes a GW_STORE_STATE error with exit 1 (line 72).
  // Fix: check --state against EventStates and --limit as a positive integer before calling the
  // API, throwing UsageError (exit 2, usage printed); map an API 400 to a usage error too.
  it('events list with a --state outside the documented values is a usage error (exit 2)', async () => {
    const r = await run(['events', 'list', '--state', 'dead-lettered', '--url', url]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/state/);
    expect(r.err).not.toContain('GW_STORE_STATE');
  });
});

describe('lab-gateway check agrees with lab-gateway start', () => {
  const listeners = (id: string): string =>
    [`gateway: { id: ${id}, dataDir: ${path.join(dir, `data-${id}`)} }`, 'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]', 'status: { listen: { host: 127.0.0.1, port: 0 } }'].join('\n');

  // What the user sees: IT staff point the gateway at the site's MQTT broker over WebSockets
  // (`mqtt.broker: ws://broker:9001`); `lab-gateway check` says "0 error(s)", then the service
  // refuses to start: "mqtt.broker must be "embedded" or an mqtt:// / mqtts:// URL".
  // Promise broken: DESIGN.md §5 CLI: `check` validates the config and prints every issue, exit 1
  // on any error; Config "validated all-or-nothing"; README: broker is `embedded` or
  // `mqtt(s)://host:port`.
  // Cause: gateway/src/config/validate.ts:406 accepts ws:// and wss://, while
  // gateway/src/status/mqtt-status.ts:36 refuses everything but mqtt:// and mqtts://.
  // Fix: make them one rule: either refuse ws(s):// in validate.ts (naming mqtt.broker) or let
  // MqttStatus pass ws(s):// URLs to mqtt.js, which supports them.
  it('mqtt.broker: ws://… — check and start give the same verdict', async () => {
    const cfg = await configFile(`${listeners('ws')}\nmqtt: { broker: "ws://127.0.0.1:9" }\n`);
    const check = await run(['check', '--config', cfg]);
    const started = await startVerdict(cfg);
    // Either both accept it (start ran) or both refuse it.
    expect(check.code === 0 ? 'check accepts' : 'check refuses', `check:\n${check.out}\nstart:\n${started.err.slice(-800)}`).toBe(started.verdict === 'ran' ? 'check accepts' : 'check refuses');
    if (check.code !== 0) expect(check.out).toContain('mqtt.broker');
  }, 60_000);

  // What the user sees: `mqtt.usernameFile` set and `mqtt.passwordFile` forgotten: check says
  // "0 error(s)"; start refuses: "mqtt.passwordFile is required when the other credential file
  // is set".
  // Promise broken: as above (check prints every issue start would refuse).
  // Cause: gateway/src/config/validate.ts:407-410 reads both keys independently and requires them
  // only beyond loopback; gateway/src/status/mqtt-broker.ts:44 (readMqttCredentials) requires
  // both as soon as one is set, for the embedded and the external broker alike.
  // Fix: in validate.ts, when exactly one of mqtt.usernameFile / mqtt.passwordFile is set, report
  // an error naming the missing one.
  it('mqtt.usernameFile without mqtt.passwordFile — check names the missing key, as start refuses it', async () => {
    await writeFile(path.join(dir, 'mqtt.user'), 'labgw\n');
    const cfg = await configFile(`${listeners('cred')}\nmqtt: { broker: embedded, listen: { host: 127.0.0.1, port: 0 }, usernameFile: mqtt.user }\n`);
    const started = await startVerdict(cfg);
    expect(started.verdict).toBe('refused');
    const check = await run(['check', '--config', cfg]);
    expect(check.code, check.out).toBe(1);
    expect(check.out).toContain('mqtt.passwordFile');
  }, 60_000);

  // What the user sees: the embedded broker set to require client certificates with
  // `mqtt.tls: { ca: clients-ca.pem }` (cert and key forgotten): check says "0 error(s)"; start
  // fails with "ENOENT: no such file or directory, open ''", naming no key at all.
  // Promise broken: DESIGN.md §5 (check prints every issue; exit 1 on any error); README `start`
  // "Refuses (exit 1) what check refuses, naming the key"; gateway/src/status/README.md
  // "`mqtt.tls.{cert,key[,ca]}` makes it MQTTS" (cert and key required).
  // Cause: gateway/src/config/validate.ts:414 turns a missing mqtt.tls.cert / .key into '' with
  // no issue; gateway/src/status/mqtt-broker.ts:147-148 then reads the file ''.
  // Fix: in validate.ts, when mqtt.tls is set for the embedded broker, require mqtt.tls.cert and
  // mqtt.tls.key ("is required when tls is set"), as hl7[].tls does (validate.ts:240-241).
  it('embedded broker with mqtt.tls but no cert and key — check names mqtt.tls.cert, as start refuses it', async () => {
    await writeFile(path.join(dir, 'clients-ca.pem'), '-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n');
    const cfg = await configFile(`${listeners('tls')}\nmqtt: { broker: embedded, listen: { host: 127.0.0.1, port: 0 }, tls: { ca: clients-ca.pem } }\n`);
    const started = await startVerdict(cfg);
    expect(started.verdict).toBe('refused');
    const check = await run(['check', '--config', cfg]);
    expect(check.code, check.out).toBe(1);
    expect(check.out).toContain('mqtt.tls.cert');
  }, 60_000);

  // What the user sees: the site's outbound proxy written as `odoo.proxy: https://proxy.lan:3128`
  // (or `proxy.lan:3128`): check says "0 error(s)"; start refuses: "odoo.proxy must be an
  // http:// URL (got https:)".
  // Promise broken: DESIGN.md §5 (check prints every issue; config validated all-or-nothing).
  // Cause: gateway/src/config/validate.ts:354 takes odoo.proxy as any string; the rule lives only
  // in gateway/src/relay/odoo/tunnel-agent.ts:17, reached when start builds the Odoo client.
  // Fix: validate odoo.proxy in validate.ts: a URL whose protocol is http: with a host and port,
  // else an error naming odoo.proxy.
  it('odoo.proxy that is not an http:// URL — check names odoo.proxy, as start refuses it', async () => {
    await writeFile(path.join(dir, 'odoo.key'), 'k3y\n');
    const cfg = await configFile(
      `${listeners('proxy')}\nmqtt: { listen: { host: 127.0.0.1, port: 0 } }\nodoo: { url: "https://odoo.invalid", database: lab, login: gateway, apiKeyFile: odoo.key, proxy: "https://proxy.invalid:3128" }\n`,
    );
    const started = await startVerdict(cfg);
    expect(started.verdict).toBe('refused');
    const check = await run(['check', '--config', cfg]);
    expect(check.code, check.out).toBe(1);
    expect(check.out).toContain('odoo.proxy');
  }, 60_000);

  // What the user sees: IT staff write the proxy's password into gateway.yaml
  // (`odoo.proxy: http://labgw:S3cret@proxy.lan:3128`, the form tunnel-agent.ts documents):
  // check accepts it, and the password sits in clear text in a file that is copied into tickets
  // and backups, while `odoo.apiKey` or `mqtt.password` written inline are refused.
  // Promise broken: DESIGN.md §5 Config: "secrets come from files or environment, never inline";
  // README "Configuration reference": "secrets are never inline (`*File` keys name files, `*Env`
  // keys name environment variables)".
  // Cause: gateway/src/config/validate.ts:354 accepts user:password in odoo.proxy;
  // gateway/src/relay/odoo/tunnel-agent.ts:18 reads the credentials from the URL.
  // Fix: refuse a password in odoo.proxy (error naming the key) and read proxy credentials from
  // a file or the environment (e.g. odoo.proxyCredentialsFile / odoo.proxyCredentialsEnv holding
  // `user:password`).
  it('odoo.proxy with a password written inline is refused, like every other inline secret', async () => {
    await writeFile(path.join(dir, 'odoo.key'), 'k3y\n');
    const cfg = await configFile(
      `${listeners('proxypw')}\nmqtt: { listen: { host: 127.0.0.1, port: 0 } }\nodoo: { url: "https://odoo.invalid", database: lab, login: gateway, apiKeyFile: odoo.key, proxy: "http://labgw:S3cret@proxy.invalid:3128" }\n`,
    );
    const check = await run(['check', '--config', cfg]);
    expect(check.code, check.out).toBe(1);
    expect(check.out).toMatch(/odoo\.proxy.*(secret|password|inline)/i);
  }, 60_000);

  // What the user sees: the Odoo key file exists but is empty (the key was never pasted into it,
  // or an editor truncated it): check says "0 error(s)", start runs, and every login to Odoo is
  // refused while the gateway accepts messages it cannot post.
  // Promise broken: README `odoo.apiKeyFile`: "`start` cannot run without the key"; check prints
  // every issue start would meet.
  // Cause: gateway/src/config/validate.ts checks only that odoo.apiKeyFile exists;
  // gateway/src/relay/odoo/odoo-client.ts readApiKey returned the empty string as the key.
  it('an empty odoo.apiKeyFile — check names odoo.apiKeyFile and start refuses to run', async () => {
    await writeFile(path.join(dir, 'empty.key'), '\n');
    const cfg = await configFile(
      `${listeners('emptykey')}\nmqtt: { listen: { host: 127.0.0.1, port: 0 } }\nodoo: { url: "https://odoo.invalid", database: lab, login: gateway, apiKeyFile: empty.key }\n`,
    );
    const check = await run(['check', '--config', cfg]);
    expect(check.code, check.out).toBe(1);
    expect(check.out).toMatch(/odoo\.apiKeyFile.*empty/);
    const started = await startVerdict(cfg);
    expect(started.verdict).toBe('refused');
    expect(started.err).toContain('odoo.apiKeyFile');
  }, 60_000);

  // The proxy's credentials, now that they may not be inline: `odoo.proxyAuthFile` holds
  // `user:password`; check accepts it, and the running gateway's tunnel to Odoo presents them to
  // the proxy (Proxy-Authorization: Basic) on its CONNECT.
  it('odoo.proxyAuthFile — check accepts it and the gateway authenticates its CONNECT to the proxy with it', async () => {
    await writeFile(path.join(dir, 'odoo.key'), 'k3y\n');
    await writeFile(path.join(dir, 'proxy.auth'), 'labgw:S3cret:with-colon\n');
    const seen: Array<{ target: string; auth: string | undefined }> = [];
    const proxy = http.createServer((_req, res) => res.writeHead(405).end());
    proxy.on('connect', (req: http.IncomingMessage, socket: net.Socket) => {
      seen.push({ target: req.url ?? '', auth: req.headers['proxy-authorization'] });
      socket.end('HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n');
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const proxyPort = (proxy.address() as AddressInfo).port;
    try {
      const cfg = await configFile(
        `${listeners('proxyauth')}\nmqtt: { listen: { host: 127.0.0.1, port: 0 } }\nodoo: { url: "https://odoo.invalid", database: lab, login: gateway, apiKeyFile: odoo.key, proxy: "http://127.0.0.1:${proxyPort}", proxyAuthFile: proxy.auth }\n`,
      );
      const check = await run(['check', '--config', cfg]);
      expect(check.code, check.out).toBe(0);
      const g = start(cfg);
      try {
        expect(await g.ready, g.err()).toBeDefined();
        const deadline = Date.now() + 20_000;
        while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      } finally {
        await stopGateway(g);
      }
      expect(seen[0]?.target).toBe('odoo.invalid:443');
      expect(seen[0]?.auth).toBe(`Basic ${Buffer.from('labgw:S3cret:with-colon').toString('base64')}`);
      // A file without user:password is refused by check, naming the key.
      await writeFile(path.join(dir, 'proxy-bad.auth'), 'only-a-user\n');
      const bad = await run(['check', '--config', await configFile(`${listeners('proxyauth2')}\nodoo: { url: "https://odoo.invalid", database: lab, login: gateway, apiKeyFile: odoo.key, proxy: "http://127.0.0.1:${proxyPort}", proxyAuthFile: proxy-bad.auth }\n`)]);
      expect(bad.code, bad.out).toBe(1);
      expect(bad.out).toMatch(/odoo\.proxyAuthFile.*user:password/);
    } finally {
      proxy.closeAllConnections();
      await new Promise((r) => proxy.close(r));
    }
  }, 60_000);

  // mqtt.broker: ws://… is accepted by check and start alike (the choice for finding 5): the
  // running gateway really publishes its retained status to a broker reached over WebSockets.
  it('mqtt.broker: ws://… — the running gateway publishes its status to a broker over WebSockets', async () => {
    const broker = new Aedes();
    await broker.listen();
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    wss.on('connection', (ws) => broker.handle(createWebSocketStream(ws)));
    await new Promise<void>((r) => wss.once('listening', r));
    const brokerUrl = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
    const cfg = await configFile(`${listeners('wspub')}\nmqtt: { broker: "${brokerUrl}" }\n`);
    const check = await run(['check', '--config', cfg]);
    expect(check.code, check.out).toBe(0);
    const sub = await mqtt.connectAsync(brokerUrl, { reconnectPeriod: 0 });
    const received = new Promise<{ gatewayId?: string }>((resolve) => sub.on('message', (_topic, payload) => resolve(JSON.parse(payload.toString()) as { gatewayId?: string })));
    await sub.subscribeAsync('lab-gateway/wspub/status');
    const g = start(cfg);
    try {
      expect(await g.ready, g.err()).toBeDefined();
      const status = await Promise.race([received, new Promise<undefined>((r) => setTimeout(r, 20_000))]);
      expect(status?.gatewayId, g.err().slice(-800)).toBe('wspub');
    } finally {
      await sub.endAsync();
      await stopGateway(g);
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => wss.close(r));
      await new Promise<void>((r) => broker.close(() => r()));
    }
  }, 60_000);
});

describe('demo: numbers on the command line', () => {
  // What the user sees: `lab-gateway demo --interval abc` starts, prints "orders … every NaNs",
  // and the simulated LIS sends an order at every timer tick (setInterval takes NaN as 1 ms);
  // `--hl7-port abc` fails as a configuration error (exit 1) instead of a mistyped argument.
  // Promise broken: README "Command line": exit 2 on a usage error, as `send --port abc` does.
  // Cause: gateway/src/cli/demo.ts took Number() of each option unchecked.
  for (const [option, value] of [
    ['--interval', 'abc'],
    ['--hl7-port', 'abc'],
  ] as const) {
    it(`demo ${option} ${value} is a usage error (exit 2) naming the option`, async () => {
      const r = await run(['demo', '--data-dir', path.join(dir, 'demo-data'), '--hl7-port', '0', '--status-port', '0', '--mqtt-port', '0', '--duration', '1', option, value]);
      expect(r.code, r.err.slice(-800)).toBe(2);
      expect(r.err).toContain(option);
    }, 60_000);
  }
});
