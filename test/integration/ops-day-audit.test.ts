/**
 * Operations day: what IT staff do with a gateway that runs as a service for years, played with
 * the real CLI (`lab-gateway start|check|send|events`, separate processes from the sources), real
 * TLS (certificates made here with the openssl CLI, as mllp-tls.test.ts does) and real HTTP.
 *
 * Each test below fails on the current code because of the bug its comment describes.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliSource, runCli } from '../fixtures/cli.ts';
import { getJson, startGatewayProcess, until, type GatewayProcess } from '../fixtures/gateway-process.ts';

let dir: string;
let pki: string;
let n = 0;
async function file(body: string, name = `f${++n}`): Promise<string> {
  const f = path.join(dir, name);
  await writeFile(f, body);
  return f;
}

/**
 * A site CA; a server certificate for 127.0.0.1 valid now; the same key's certificate that expired
 * in 2020 (what the gateway serves once nobody renewed it); and another key (the renewal's new key,
 * or a key from the wrong folder).
 */
function makePki(at: string): void {
  const run = (...args: string[]): void => void execFileSync('openssl', args, { cwd: at, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=Ops Day Lab CA');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other.key', '-out', 'other.csr', '-subj', '/CN=localhost');
  execFileSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1,DNS:localhost\\n" > san.ext; : > index.txt; echo 01 > serial'], { cwd: at });
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'san.ext');
  // `openssl ca` takes explicit start and end dates (OpenSSL 3.0's x509 has no -not_after).
  execFileSync(
    'sh',
    [
      '-c',
      [
        'cat > ca.cnf <<EOF',
        '[ ca ]',
        'default_ca = site',
        '[ site ]',
        'dir = .',
        'database = index.txt',
        'serial = serial',
        'new_certs_dir = .',
        'certificate = ca.crt',
        'private_key = ca.key',
        'default_md = sha256',
        'policy = any',
        'x509_extensions = ext',
        '[ any ]',
        'commonName = supplied',
        '[ ext ]',
        'subjectAltName = IP:127.0.0.1,DNS:localhost',
        'EOF',
      ].join('\n'),
    ],
    { cwd: at },
  );
  run('ca', '-config', 'ca.cnf', '-batch', '-notext', '-startdate', '20200101000000Z', '-enddate', '20200201000000Z', '-in', 'server.csr', '-out', 'expired.crt');
}
const cert = (name: string): string => path.join(pki, name);

const running: GatewayProcess[] = [];
async function start(configFile: string): Promise<{ gw: GatewayProcess; ready: NonNullable<Awaited<GatewayProcess['ready']>>; base: string }> {
  const gw = startGatewayProcess(configFile);
  running.push(gw);
  const ready = await gw.ready;
  expect(ready, gw.err()).toBeDefined();
  return { gw, ready: ready!, base: ready!.status.url.replace(/\/$/, '') };
}

const lines = (...l: string[]): string => [...l, ''].join('\n');
const mqttAndStatus = ['mqtt: { listen: { host: 127.0.0.1, port: 0 } }'];
const adt = (id: string): string => `MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ADT^A01^ADT_A01|${id}|P|2.5\rPID|1||MRN-${id}\r`;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-ops-day-audit-'));
  pki = path.join(dir, 'pki');
  await mkdir(pki);
  makePki(pki);
});
afterAll(async () => {
  for (const r of running) await r.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('the admin token', () => {
  /**
   * User sees: IT rotates the admin token (a technician who knew it left; the token was pasted in a
   * ticket) the way the README describes it — the token lives in the file `status.adminTokenFile`
   * names — by writing a new one into that file. From then on the new token is refused everywhere
   * (page sign-in "That token is not accepted.", `lab-gateway events replay --config …`, which reads
   * that very file, exits with GW_UNAUTHORIZED), while the OLD token, the one being retired, keeps
   * working for replay, discard, pause and revealing patient names until somebody restarts the
   * service. Nothing says a restart is needed.
   * Promise: README "Admin actions … need the bearer token from `status.adminTokenFile`", "Admin
   * commands read the token from … the config's `status.adminTokenFile`"; status/README.md "Admin
   * token: the file named by `status.adminTokenFile`". (The Odoo key in `odoo.apiKeyFile` is
   * re-read for exactly this reason: relay/README.md "A new API key needs no restart".)
   * Cause: gateway/src/status/http-server.ts:211 reads the file once in start()
   * (`AdminAuth.fromFile`), and `#requireAdmin` (http-server.ts:504-530) only ever compares against that
   * digest (admin-audit.ts:33-37, 54-61).
   * Fix: re-read `status.adminTokenFile` when its mtime/size changes (stat per admin request, or
   * fs.watch), keep the previous digest if the file is momentarily empty/unreadable, and accept
   * only the token currently in the file; log "admin token changed" with the new token id.
   */
  it('a new token written to status.adminTokenFile is accepted and the retired one refused, without a restart', async () => {
    const tokenFile = await file('retired-token-0123456789abcdef\n', 'admin.token');
    const cfg = await file(
      lines(`gateway: { id: ops-token, dataDir: ${path.join(dir, 'data-token')} }`, 'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]', ...mqttAndStatus, `status: { listen: { host: 127.0.0.1, port: 0 }, adminTokenFile: ${tokenFile} }`),
      'token.yaml',
    );
    const { base } = await start(cfg);
    const check = async (token: string): Promise<number> => (await fetch(`${base}/api/admin/check`, { headers: { authorization: `Bearer ${token}` } })).status;
    expect(await check('retired-token-0123456789abcdef')).toBe(200);

    // The rotation.
    await writeFile(tokenFile, 'fresh-token-fedcba9876543210\n');

    // The CLI reads the token from the config's file, as documented: an unknown event id must be
    // answered "not found", not "unauthorized".
    const cli = await runCli(cliSource, ['events', 'replay', 'no-such-event', '--config', cfg, '--url', base]);
    expect(cli.out + cli.err).not.toContain('GW_UNAUTHORIZED');
    expect(cli.out + cli.err).toContain('GW_STORE_NOT_FOUND');
    expect(await check('fresh-token-fedcba9876543210')).toBe(200);
    // The token IT meant to retire no longer opens anything.
    expect(await check('retired-token-0123456789abcdef')).toBe(401);

    // A file caught empty (an editor between truncating and writing) keeps the token in force.
    await writeFile(tokenFile, '');
    expect(await check('fresh-token-fedcba9876543210')).toBe(200);
  });
});

describe('TLS certificates (hl7[].tls)', () => {
  /**
   * User sees: IT renews the LIS link's certificate and, as the README tells them before any
   * restart, runs `lab-gateway check --config …`: "0 error(s), 0 warning(s)". They restart the
   * service: it does not come back (`start` exits 1: "hl7[lis].tls: … key values mismatch") — the
   * new certificate was written next to the old key. Under systemd the unit's own
   * `ExecStartPre=lab-gateway check` passes every time and `start` fails every time (Restart=always,
   * StartLimitBurst=20 in 300 s: the unit then gives up), with every LIS and analyzer link down.
   * Promise: DESIGN.md §5 `lab-gateway check` "validate config … print every issue, exit 1 on any
   * error"; README Upgrading "Run `lab-gateway check --config FILE` … before restarting the service:
   * it names every key"; build/lab-gateway.service "ExecStartPre … Refuse to start on a configuration
   * with errors (prints every issue to the journal)".
   * Cause: gateway/src/config/validate.ts:326-335 only checks that `hl7[].tls.cert`/`.key`/`.ca`
   * exist (`c.file`, validate.ts:135-141); the files are first parsed by tls.createServer in
   * ingress/mllp/mllp-endpoint.ts:112-122 at start. (Same for `mqtt.tls.*`, validate.ts:525-540,
   * read by status/mqtt-broker.ts:154-158.)
   * Fix: in validation (or in `check`), load each TLS pair the way start will:
   * `tls.createSecureContext({ cert, key, ca })` and report its failure as an error at
   * `hl7[i].tls.key` ("does not match hl7[i].tls.cert" for ERR_OSSL_X509_KEY_VALUES_MISMATCH, "is not
   * a PEM certificate" …); same for `mqtt.tls`.
   */
  it('check refuses a certificate and key that do not belong together, as start does', async () => {
    const cfg = await file(
      lines(
        `gateway: { id: ops-tls, dataDir: ${path.join(dir, 'data-mismatch')} }`,
        `hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 }, tls: { cert: ${cert('server.crt')}, key: ${cert('other.key')} } } ]`,
        ...mqttAndStatus,
        'status: { listen: { host: 127.0.0.1, port: 0 } }',
      ),
      'mismatch.yaml',
    );
    // What start says of it (the control): it refuses to run, naming the pair (since the fix, at
    // the same config check as `check`; before it, when the listener loaded the files).
    const gw = startGatewayProcess(cfg);
    running.push(gw);
    expect(await gw.ready).toBeUndefined();
    expect((await gw.exited).code).toBe(1);
    expect(gw.err()).toMatch(/hl7\[(?:lis|0)\]\.tls.*key values mismatch/);

    const checked = await runCli(cliSource, ['check', '--config', cfg]);
    expect(checked.out, 'check must refuse what start refuses').toMatch(/hl7\[0\]\.tls\.key: does not match hl7\[0\]\.tls\.cert: .*key values mismatch/);
    expect(checked.code).toBe(1);
  });

  // mqtt.tls files are read only by the embedded broker and for mqtts:// or wss://: with a plain
  // mqtt:// broker they are never loaded, so the same mismatched pair there is a warning ("is not
  // used"), not an error that would make check (and ExecStartPre) refuse what start runs.
  it('check does not refuse mqtt.tls files a plain mqtt:// broker never reads', async () => {
    const cfg = await file(
      lines(
        `gateway: { id: ops-tls-plain, dataDir: ${path.join(dir, 'data-plain-mqtt')} }`,
        'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
        `mqtt: { broker: "mqtt://127.0.0.1:1883", tls: { cert: ${cert('server.crt')}, key: ${cert('other.key')} } }`,
        'status: { listen: { host: 127.0.0.1, port: 0 } }',
      ),
      'plain-mqtt.yaml',
    );
    const checked = await runCli(cliSource, ['check', '--config', cfg]);
    expect(checked.out).toMatch(/mqtt\.tls: is not used/);
    expect(checked.out).not.toMatch(/mqtt\.tls\.key: does not match/);
    expect(checked.code).toBe(0);
  });

  /**
   * User sees: the LIS link's certificate expired (nobody renewed it: there was no warning). From
   * that moment every LIS connection fails its TLS handshake ("certificate has expired" on the LIS
   * side), no order reaches the gateway — and the status page, the tray, `lab-gateway status` and
   * /metrics all say health OK, the LIS endpoint "listening". The gateway's own log has only
   * "TLS handshake refused … ECONNRESET: socket hang up" per attempt. The Odoo API key, by contrast,
   * is watched: API_KEY_EXPIRY warns `keyExpiryWarnDays` ahead and says "has expired".
   * Promise: DESIGN.md §1 "Status observes all of this … and publishes it"; status/README.md Health:
   * "`healthReasons` says why" the gateway is not OK, ENDPOINT_DOWN "an analyzer or LIS link is
   * disconnected or in error"; README `hl7[].tls.cert` is the certificate the LIS must accept.
   * Cause: the certificate files are read once, in ingress/mllp/mllp-endpoint.ts:112-122
   * (`pem(tlsConfig.cert)`), and their validity is never looked at: status/status-model.ts has no
   * reason about certificates and validate.ts:326-335 does not read them either.
   * Fix: at start (and daily) read each served certificate's `validTo` (`new
   * crypto.X509Certificate(pem).validTo`) for `hl7[].tls.cert`, `mqtt.tls.cert` (and the CA files):
   * a health reason `TLS_CERT_EXPIRY` (degraded; "hl7[lis].tls.cert expires in 10 days" /
   * "… has expired since 2020-02-01": down for that endpoint, state `error`) with its MQTT alert,
   * the same window as `odoo.keyExpiryWarnDays`; `check` warns within the window and errors once
   * expired.
   */
  it('an expired LIS certificate that every LIS refuses shows in the status, not health OK', async () => {
    const cfg = await file(
      lines(
        `gateway: { id: ops-expired, dataDir: ${path.join(dir, 'data-expired')} }`,
        `hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 }, tls: { cert: ${cert('expired.crt')}, key: ${cert('server.key')} } } ]`,
        ...mqttAndStatus,
        'status: { listen: { host: 127.0.0.1, port: 0 } }',
      ),
      'expired.yaml',
    );
    const { gw, ready, base } = await start(cfg);
    // The LIS, trusting the site CA, cannot get a message through.
    const sent = await runCli(cliSource, ['send', '--port', String(ready.hl7.lis!.port), '--tls', '--ca', cert('ca.crt'), await file(adt('EXP1'), 'exp1.hl7')]);
    expect(sent.code).toBe(1);
    expect(sent.out + sent.err).toContain('CERT_HAS_EXPIRED');
    await until('the refused handshake in the log', () => gw.err().includes('TLS handshake refused'));

    const status = await getJson<{ health: string; healthReasons: Array<{ code: string; message: string }>; endpoints: Array<{ id: string; state: string }> }>(`${base}/api/status`);
    expect(status.health, 'health while the LIS certificate has expired').not.toBe('ok');
    expect(status.healthReasons.map((r) => r.message).join(' | ')).toMatch(/certificate/i);
    expect(status.healthReasons.find((r) => r.code === 'TLS_CERT_EXPIRY')?.message).toMatch(/hl7\[lis\]\.tls\.cert has expired \(since 2020-02-01\)/);
    expect(status.endpoints.find((e) => e.id === 'lis')?.state, 'the LIS link, refused by every LIS').toBe('error');
  });

  /**
   * User sees: the journal line IT gets for each failed LIS handshake reads
   * `"msg":"TLS handshake refused", "remote":"undefined:undefined"` whenever the LIS is the side
   * that gave up (it refused the gateway's certificate: expired, wrong name, unknown CA) — which LIS
   * box, of several, is failing cannot be told. A refusal on the gateway's side (mutual TLS without
   * a client certificate) does name the address, so the log is right only half the time.
   * Promise: README "JSON logs on stderr"; the log line's own `remote` field; status/README.md
   * attributes every connection-level event to its remote address.
   * Cause: ingress/mllp/mllp-endpoint.ts:126-131 (the log at :127) reads `socket.remoteAddress` / `remotePort` inside
   * the `tlsClientError` handler, after the peer reset the connection: Node has cleared them on a
   * closed socket.
   * Fix: remember the address when the TCP connection arrives (`#handshakeStarted` already keys
   * `#handshaking` by it, mllp-endpoint.ts:170-179) — e.g. store `remote` on the raw socket there, or
   * look the raw socket up in `#handshaking` — and log that.
   */
  it('a handshake the LIS gave up on is logged with the LIS address', async () => {
    const cfg = await file(
      lines(
        `gateway: { id: ops-hslog, dataDir: ${path.join(dir, 'data-hslog')} }`,
        `hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 }, tls: { cert: ${cert('expired.crt')}, key: ${cert('server.key')} } } ]`,
        ...mqttAndStatus,
        'status: { listen: { host: 127.0.0.1, port: 0 } }',
      ),
      'hslog.yaml',
    );
    const { gw, ready } = await start(cfg);
    await runCli(cliSource, ['send', '--port', String(ready.hl7.lis!.port), '--tls', '--ca', cert('ca.crt'), await file(adt('HS1'), 'hs1.hl7')]);
    const line = await until('the refused handshake in the log', () => gw.err().split('\n').find((l) => l.includes('TLS handshake refused')));
    const entry = JSON.parse(line) as { remote: string };
    expect(entry.remote).not.toContain('undefined');
    expect(entry.remote).toMatch(/^127\.0\.0\.1:\d+$/);
  });
});
