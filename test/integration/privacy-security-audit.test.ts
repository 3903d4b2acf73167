/**
 * Audit of privacy and security across the gateway: patient-identifying data (names, birth dates,
 * addresses) must not leave the gateway through its logs, its status API answers, MQTT, alerts or
 * the tray; secrets (Odoo API key, MQTT password, admin token) must not appear in logs, status
 * answers, diagnostics or command output. Real parts only: a whole gateway in this process with a
 * real LevelDB store, real TCP sockets, real MQTT clients and its real HTTP status API; the CLI as a
 * separate process; the tray's own settings and diagnostics logic (no Electron binary here).
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { createLogger } from '../../gateway/src/log.ts';
import { validateConfig } from '../../gateway/src/config/validate.ts';
import { testGatewayConfig } from '../fixtures/gateway.ts';
import { cliSource, repo, runCli } from '../fixtures/cli.ts';
import { diagnostics } from '../../desktop/src/tray-state.ts';
import { resolveTrayConfig } from '../../desktop/src/tray-config.ts';

let dir: string;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'privacy-audit-'));
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('patient data from an analyzer message the gateway refuses', () => {
  // What the user sees: a serial-to-TCP adapter (records-only ASTM, protocols.md §1.7) reconnects
  // in the middle of an analyzer's transmission, so the gateway receives a message that starts at
  // the P record. The gateway refuses it and keeps it (right), and on the status page the raw text
  // shows the patient's name as *** — but the refusal reason next to it reads
  // `… got "P|1||||SMITHSON^JOANNA||"`: the patient's name in clear text, in the message list
  // (GET /api/messages, "no raw text"), in the detail, and in the gateway's JSON log at warn level
  // (seen at the default `info` level). A LF inside a record (records.ts:131) quotes it the same way.
  // Promise broken: README `gateway.logLevel`: "JSON lines on stderr; no patient data at info";
  // status/README.md: GET /api/messages "message list (no raw text)", GET /api/messages/:id "raw
  // text with person names masked" (names shown only when an admin reveals them, audited);
  // log.ts: "never names or result values"; the article's governance clause: "Integration logs
  // should be structured to support auditability without exposing unnecessary sensitive content".
  // Cause: gateway/src/astm/records.ts:119 and :131 quote the first 24 characters of the record
  // (`JSON.stringify(first.slice(0, 24))`, `JSON.stringify(line.slice(0, 24))`) in the GW_ASTM_PARSE
  // message; normalize.ts:48 makes it the reject reason, which astm-endpoint.ts:277 stores as
  // `rejectReason` (served unmasked by status/http-server.ts #listMessages and #messageDetail) and
  // astm-endpoint.ts:312 logs at warn.
  // Fix: name the record by number and type only (`record 1 is a P record; a message starts with
  // H`), never its content; or mask the quoted text with maskAstmNames/cut it before field 3.
  it('keeps the patient name out of the refusal reason in the log and the status API', async () => {
    const lines: string[] = [];
    const data = path.join(dir, 'astm-refused');
    const config = testGatewayConfig('privacy-astm', data, {
      analyzers: [{ id: 'an1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } }, overrides: { lowLevel: 'records-only' } }],
    });
    const gateway = new Gateway({ config, log: createLogger({ level: 'info', write: (l) => lines.push(l) }) });
    const addresses = await gateway.start();
    cleanups.push(() => gateway.stop(5_000));
    const port = addresses.analyzers['an1']!.port!;
    const base = addresses.status.url.replace(/\/$/, '');

    // The rest of a message whose H record went before the adapter reconnected.
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    cleanups.push(() => void socket.destroy());
    socket.write('P|1||||SMITHSON^JOANNA||19800412|F\rO|1|S-4411||^^^GLU\rR|1|^^^GLU|5.4|mmol/L||N||F\rL|1|N\r');

    const list = await until(async () => {
      const r = (await (await fetch(`${base}/api/messages?endpoint=an1`)).json()) as { messages: Array<{ id: string; status: string; rejectReason?: string }> };
      return r.messages.length > 0 ? r.messages : undefined;
    });
    expect(list[0]!.status).toBe('rejected');
    const detail = (await (await fetch(`${base}/api/messages/${encodeURIComponent(list[0]!.id)}`)).json()) as { raw: string; namesMasked: boolean; message: { rejectReason?: string } };
    expect(detail.namesMasked).toBe(true);
    expect(detail.raw).not.toContain('SMITHSON'); // the raw text is masked …

    // … and so must be everything else the gateway shows or logs about the message.
    expect.soft(JSON.stringify(list), 'GET /api/messages').not.toMatch(/SMITHSON|JOANNA/);
    expect.soft(JSON.stringify(detail.message), 'GET /api/messages/:id').not.toMatch(/SMITHSON|JOANNA/);
    expect.soft(lines.filter((l) => /SMITHSON|JOANNA/.test(l)), 'log lines').toEqual([]);
  }, 30_000);
});

describe('secrets written into a URL', () => {
  // What the user sees: IT writes the Odoo URL as many tools accept it,
  // `odoo.url: https://gateway:<API key>@lab.example.com`. `lab-gateway check` answers
  // "0 error(s), 0 warning(s)", and `lab-gateway start` prints the key on its ready line
  // (`"odoo":{"url":"https://gateway:<key>@…"}`), which systemd keeps in the journal and which
  // anyone reading the start-up output (support, screen shares, tickets) now has.
  // Promise broken: DESIGN.md §5 Config "secrets come from files or environment, never inline";
  // README "Configuration reference": "secrets are never inline (`*File` keys name files, `*Env`
  // keys name environment variables)". `check` refuses exactly this in `mqtt.broker`
  // (validate.ts mqttBrokerProblem) and `odoo.proxy` (proxyUrlProblem), not in `odoo.url`.
  // Cause: gateway/src/config/validate.ts:365-376 checks only the scheme of odoo.url;
  // gateway/src/gateway.ts:348 puts config.odoo.url as it is into the addresses that
  // cli/start.ts:15 prints (and relay/odoo/odoo-client.ts:264 quotes `this.#http.baseUrl`
  // in an error that becomes odoo.lastError on /api/status and MQTT).
  // Fix: in validate.ts, refuse a user name or password in odoo.url with an error naming odoo.url
  // ("secrets are never written inline: use odoo.apiKeyFile"), as mqttBrokerProblem does; and
  // print/quote URLs without their userinfo.
  it('odoo.url with the key written inline: check refuses it and start never prints the key', async () => {
    const secret = 'S3cretOdooKey9f2c';
    await writeFile(path.join(dir, 'odoo.key'), 'k3y\n');
    const cfg = path.join(dir, 'inline-odoo-url.yaml');
    await writeFile(
      cfg,
      [
        `gateway: { id: privacy-url, dataDir: ${JSON.stringify(path.join(dir, 'inline-url-data'))} }`,
        'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
        'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
        'status: { listen: { host: 127.0.0.1, port: 0 } }',
        `odoo: { url: "https://gateway:${secret}@odoo.invalid", database: lab, login: gateway, apiKeyFile: odoo.key }`,
        '',
      ].join('\n'),
    );
    const check = await runCli(cliSource, ['check', '--config', cfg]);
    expect.soft(check.code, check.out + check.err).toBe(1);
    expect.soft(check.out + check.err).toMatch(/odoo\.url/);
    expect.soft(check.out + check.err).not.toContain(secret);

    // start: whatever it prints (ready line, logs, refusal) must not carry the key.
    const child = spawn(process.execPath, [cliSource, 'start', '--config', cfg], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    await Promise.race([exited, until(async () => (output.includes('"event":"ready"') ? true : undefined), 30_000)]);
    if (child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 1_000)); // the relay's first connection attempt and its log
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    }
    expect.soft(output).not.toContain(secret);
  }, 60_000);

  // What the user sees: on a technician's PC the tray is set up with
  // `--mqtt-url=mqtt://tray:<password>@10.0.0.5:1883` (the form every MQTT tool accepts). The tray
  // raises no settings problem and connects; when the technician uses "Copy diagnostics" for a
  // support ticket, the broker password is pasted into the ticket: `MQTT: mqtt://tray:<password>@…`.
  // Promise broken: desktop/README.md: broker credentials come from `mqttUsernameFile` /
  // `mqttPasswordFile`, and "Settings problems are shown, never ignored"; diagnostics are "for a
  // support ticket" (tray-state.ts:163); DESIGN.md §5 "secrets … never inline" (the gateway itself
  // refuses credentials in mqtt.broker: validate.ts mqttBrokerProblem).
  // Cause: desktop/src/tray-config.ts:100-110 (validUrl) accepts a URL with user:password;
  // desktop/src/tray-state.ts:181 prints extra.mqttUrl (and gatewayUrl) as they are.
  // Fix: report credentials in gatewayUrl/mqttUrl as a settings problem (use mqttUsernameFile /
  // mqttPasswordFile), and print URLs in diagnostics without their userinfo.
  it('tray: a broker password written into --mqtt-url never ends up in the copied diagnostics', () => {
    const password = 'Tr4yBr0kerPw77';
    const config = resolveTrayConfig({ argv: ['electron', 'desktop/main.cjs', `--mqtt-url=mqtt://tray:${password}@10.0.0.5:1883`], env: {}, files: [] });
    const text = diagnostics(
      { connection: 'connected', now: Date.now(), configIssues: config.issues },
      { gatewayUrl: config.gatewayUrl, mqttUrl: config.mqttUrl, appVersion: '0.1.0', sources: config.sources, issues: config.issues },
    );
    expect(text).not.toContain(password);
  });
});

describe('the embedded MQTT broker: subscribers are read-only', () => {
  // What the user sees: any read-only MQTT client (a dashboard, a second tray, a script with the
  // trays' read-only credentials) that connects with the client id `lab-gateway-<gatewayId>` —
  // predictable: it is the gateway's id — takes over the gateway's own publisher session (MQTT
  // 3.1.1 §3.1.4: the server disconnects the existing client with that id). The broker then
  // publishes the gateway's Last Will: every tray turns grey "Gateway offline" although the
  // gateway runs, and while the intruder stays connected the two keep kicking each other off.
  // Promise broken: status/README.md "Only the gateway's own publisher may publish (it authenticates
  // with a per-process secret); subscribers are read-only" — here a subscriber makes the broker
  // publish a retained `offline` on the gateway's availability topic; desktop/README.md "What
  // offline means".
  // Cause: gateway/src/status/mqtt-broker.ts:209-229 (#authenticate) accepts any client id from a
  // subscriber, including the publisher's; gateway/src/status/mqtt-publisher.ts:88 uses the fixed
  // client id `lab-gateway-${gatewayId}`.
  // Fix: in #authenticate refuse (CONNACK return code 2, identifier rejected) a client that is not
  // the internal publisher but uses the publisher's client id, and/or give the publisher a client
  // id with a per-process random part.
  it("a subscriber using the gateway publisher's client id neither kicks it off nor makes the gateway look offline", async () => {
    const data = path.join(dir, 'mqtt-takeover');
    const gateway = new Gateway({ config: testGatewayConfig('privacy-mq', data, {}), log: createLogger({ level: 'error', write: () => {} }) });
    const addresses = await gateway.start();
    cleanups.push(() => gateway.stop(5_000));
    const url = addresses.mqtt.url;

    const seen: Array<{ state?: string }> = [];
    const watcher = await mqtt.connectAsync(url, { clientId: 'privacy-watcher', reconnectPeriod: 0 });
    cleanups.push(() => watcher.endAsync(true));
    watcher.on('message', (_t, payload) => seen.push(JSON.parse(payload.toString()) as { state?: string }));
    await watcher.subscribeAsync('lab-gateway/privacy-mq/availability', { qos: 1 });
    await until(async () => (seen.some((p) => p.state === 'online') ? true : undefined));

    const intruder = mqtt.connect(url, { clientId: 'lab-gateway-privacy-mq', reconnectPeriod: 0, connectTimeout: 5_000 });
    intruder.on('error', () => {});
    cleanups.push(() => void intruder.end(true));
    await new Promise((r) => setTimeout(r, 3_000));

    expect(seen.filter((p) => p.state === 'offline')).toEqual([]);
  }, 30_000);
});

describe('names on the status page', () => {
  // What the user sees: the LIS sends the patient's name in PID-5 in capitals, as HL7 senders do
  // (`SMITHSON^JOANNA`), and a note in the order names her the way people write
  // (`NTE|1||Mrs Smithson asked for a copy to Dr Reyes`). On the status page, opened by anyone on
  // the LAN without signing in, PID-5 shows *** but the note still reads "Mrs Smithson asked …".
  // Promise broken: status/README.md: GET /api/messages/:id "raw text with person names masked"
  // (names shown only when an administrator reveals them, an audited action);
  // status/mask-names.ts:59-60: "The same names copied elsewhere (a site's Z segment repeating
  // PID, a note naming the patient) are masked too".
  // Cause: gateway/src/status/mask-names.ts:65 builds the pattern with flags 'gu' only: the
  // copies are matched case-sensitively, so any other capitalisation of the name stays in clear.
  // Fix: match the collected name components case-insensitively (flags 'giu').
  it('a note naming the patient is masked whatever the capitalisation of the name', async () => {
    const data = path.join(dir, 'mask-case');
    const gateway = new Gateway({ config: testGatewayConfig('privacy-mask', data, {}), log: createLogger({ level: 'error', write: () => {} }) });
    const addresses = await gateway.start();
    cleanups.push(() => gateway.stop(5_000));
    const base = addresses.status.url.replace(/\/$/, '');
    const message = [
      'MSH|^~\\&|LIS|LAB|GW|LAB|20250101120000||ORM^O01|PRIV-CASE-1|P|2.5.1',
      'PID|1||MRN-5531^^^LAB^MR||SMITHSON^JOANNA||19800412|F',
      'ORC|NW|ACC-9001|||||||20250101120000|||||||||||CLINIC-1',
      'OBR|1|ACC-9001||GLU^Glucose',
      'NTE|1||Mrs Smithson asked for a copy of the report',
      '',
    ].join('\r');
    const client = await MllpClient.connect({ host: addresses.hl7['lis']!.host, port: addresses.hl7['lis']!.port });
    cleanups.push(() => client.close());
    const ack = (await client.send(Buffer.from(message, 'latin1'))).toString('latin1');
    expect(ack).toContain('MSA|AA');
    const { messages } = (await (await fetch(`${base}/api/messages?controlId=PRIV-CASE-1`)).json()) as { messages: Array<{ id: string }> };
    const detail = (await (await fetch(`${base}/api/messages/${encodeURIComponent(messages[0]!.id)}`)).json()) as { raw: string; namesMasked: boolean };
    expect(detail.namesMasked).toBe(true);
    expect(detail.raw).not.toContain('SMITHSON'); // PID-5 itself is masked
    expect(detail.raw).not.toMatch(/smithson/i); // … and so is the note naming her
  }, 30_000);
});

describe('the embedded MQTT broker: the publisher id is its own', () => {
  // What the user sees: the embedded broker announces every client id to its subscribers (aedes
  // publishes `$SYS/<broker>/new/clients`), so even a random id would not be secret: a read-only
  // subscriber can learn the publisher's id and connect with it, taking the publisher's
  // session over: the Last Will `offline` goes out and every tray shows the gateway offline.
  // Fix: the broker refuses that id to every client but the gateway's own publisher (CONNACK 2).
  it("refuses the publisher's actual client id to a subscriber (identifier rejected); the publisher stays connected", async () => {
    const data = path.join(dir, 'mqtt-takeover-id');
    const gateway = new Gateway({ config: testGatewayConfig('privacy-mq2', data, {}), log: createLogger({ level: 'error', write: () => {} }) });
    const addresses = await gateway.start();
    cleanups.push(() => gateway.stop(5_000));
    const broker = gateway.mqtt?.broker;
    expect(broker).toBeDefined();
    const publisherId = broker!.publisherClientId;
    // The stable id again (session-review-5: a per-process random id let an external broker's
    // late Last Will mark a restarted gateway offline); the refusal below is the protection.
    expect(publisherId).toBe('lab-gateway-privacy-mq2');

    const seen: Array<{ state?: string }> = [];
    const watcher = await mqtt.connectAsync(addresses.mqtt.url, { clientId: 'privacy-watcher-2', reconnectPeriod: 0 });
    cleanups.push(() => watcher.endAsync(true));
    watcher.on('message', (_t, payload) => seen.push(JSON.parse(payload.toString()) as { state?: string }));
    await watcher.subscribeAsync('lab-gateway/privacy-mq2/availability', { qos: 1 });
    await until(async () => (seen.some((p) => p.state === 'online') ? true : undefined));

    const refused = await mqtt.connectAsync(addresses.mqtt.url, { clientId: publisherId, reconnectPeriod: 0, connectTimeout: 5_000 }).then(
      async (c) => {
        await c.endAsync(true);
        return undefined;
      },
      (err: Error) => err,
    );
    expect(refused?.message).toMatch(/identifier rejected/i);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(seen.filter((p) => p.state === 'offline')).toEqual([]);
    expect(gateway.mqtt?.publisher?.connected).toBe(true);
  }, 30_000);
});

describe('the status API answers only for the names of the gateway (DNS rebinding)', () => {
  // What the user sees: a technician's browser on the lab LAN opens a web page from the Internet
  // (an ad, a phishing mail). Its script re-points its own DNS name at the gateway's address
  // (DNS rebinding) and then reads `http://<its name>:8484/api/messages/:id` as same-origin: the
  // MRN, birth date and address in the raw text (only names are masked) leave the lab.
  // Promise broken: the status API is for the tray, the CLI and the status page served from the
  // gateway itself (README "HTTP status API"); README gateway.logLevel / status/README.md keep
  // patient data inside the gateway.
  // Cause: status/http-server.ts answered whatever the Host header named.
  // Fix: refuse (421, JSON) a request whose Host is not an IP address, the listener's host,
  // localhost, the machine's host name or a name in `status.allowedHosts`; /healthz stays open.
  it('refuses a request naming another host, and answers the names of the gateway', async () => {
    const data = path.join(dir, 'rebinding');
    const config = testGatewayConfig('privacy-host', data, { status: { listen: { host: '127.0.0.1', port: 0 }, allowedHosts: ['lab-gateway.lab.example.org'] } });
    const gateway = new Gateway({ config, log: createLogger({ level: 'error', write: () => {} }) });
    const addresses = await gateway.start();
    cleanups.push(() => gateway.stop(5_000));
    const port = addresses.status.port;
    const message = [
      'MSH|^~\\&|LIS|LAB|GW|LAB|20250101120000||ORM^O01|PRIV-HOST-1|P|2.5.1',
      'PID|1||MRN-7781^^^LAB^MR||SMITHSON^JOANNA||19800412|F|||12 Harbour Road^^Leith',
      'ORC|NW|ACC-9101|||||||20250101120000',
      'OBR|1|ACC-9101||GLU^Glucose',
      '',
    ].join('\r');
    const client = await MllpClient.connect({ host: addresses.hl7['lis']!.host, port: addresses.hl7['lis']!.port });
    cleanups.push(() => client.close());
    expect((await client.send(Buffer.from(message, 'latin1'))).toString('latin1')).toContain('MSA|AA');

    const get = (target: string, host: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: target, headers: { Host: host } }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (body += d));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          })
          .on('error', reject);
      });
    const list = await get('/api/messages?controlId=PRIV-HOST-1', `127.0.0.1:${port}`);
    expect(list.status).toBe(200);
    const id = (JSON.parse(list.body) as { messages: Array<{ id: string }> }).messages[0]!.id;
    const detail = `/api/messages/${encodeURIComponent(id)}`;

    for (const target of [detail, '/api/status', '/api/messages', '/api/events', '/metrics', '/']) {
      const evil = await get(target, `rebind.attacker.example:${port}`);
      expect.soft(evil.status, target).toBe(421);
      expect.soft(evil.body, target).not.toMatch(/MRN-7781|19800412|Harbour/);
      expect.soft((JSON.parse(evil.body) as { error: string }).error, target).toMatch(/status\.allowedHosts/);
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `${hostname()}:${port}`, `lab-gateway.lab.example.org:${port}`, `LAB-Gateway.lab.example.org.:${port}`, `[::1]:${port}`, `10.0.0.5:${port}`]) {
      const ok = await get(detail, host);
      expect.soft(ok.status, host).toBe(200);
      expect.soft(ok.body, host).toContain('MRN-7781');
    }
    // A monitor may probe /healthz by any name: it says 200 or 503, nothing more.
    expect((await get('/healthz', `rebind.attacker.example:${port}`)).status).toBe(200);

    // The key is checked like every other: a name, without scheme or port.
    const bad = validateConfig({ status: { allowedHosts: ['http://lab-gateway.lab.example.org:8484'] } });
    expect(bad.issues.filter((i) => i.severity === 'error').map((i) => i.path)).toEqual(['status.allowedHosts[0]']);
  }, 30_000);
});

describe('check: MQTT credentials in clear text', () => {
  // What the user sees: IT points the gateway at the site's Mosquitto with
  // `mqtt.broker: mqtt://10.0.0.5:1883`, the credentials files and `mqtt.tls.ca` (they meant
  // TLS). `check` says nothing; the gateway sends the broker password in clear text across the
  // LAN, and the CA file is silently ignored (mqtt.js speaks TLS only for mqtts:// and wss://).
  // Promise broken: README `mqtt.tls`: "External broker (`mqtts://`, `wss://`): `ca` to trust it";
  // odoo.url: "the gateway never sends credentials in clear text".
  // Fix: a warning naming mqtt.broker when credentials would go in clear text beyond loopback (an
  // error at first; a warning since, so that a configuration that ran keeps running); a warning
  // naming mqtt.tls when it is set with mqtt:// or ws://.
  it('warns about credentials over mqtt:// or ws:// beyond loopback, and when mqtt.tls is not used', async () => {
    const user = path.join(dir, 'mq.user');
    const pass = path.join(dir, 'mq.pass');
    const ca = path.join(dir, 'mq-ca.pem');
    await writeFile(user, 'gateway\n');
    await writeFile(pass, 'Mq77Secret\n');
    // A real certificate: check reads every certificate of a CA file (an empty PEM block is an error).
    await copyFile(path.join(repo, 'test/fixtures/relay/odoo-test.crt'), ca);
    const issues = (mq: Record<string, unknown>): Array<{ severity: string; path: string; message: string }> => validateConfig({ mqtt: mq }).issues.filter((i) => i.path.startsWith('mqtt'));
    const creds = { usernameFile: user, passwordFile: pass };

    // A warning, not an error (session-review-5): a site's LAN Mosquitto over mqtt:// with a
    // password ran before, and refusing it stopped the whole gateway for the status channel.
    for (const broker of ['mqtt://10.0.0.5:1883', 'ws://mqtt.lab.example.org:8080/mqtt']) {
      const found = issues({ broker, ...creds });
      expect.soft(found.map((i) => [i.severity, i.path]), broker).toEqual([['warning', 'mqtt.broker']]);
      expect.soft(found.find((i) => i.path === 'mqtt.broker')?.message, broker).toMatch(/clear text/);
    }
    // TLS, or a broker on this machine: nothing to say.
    for (const broker of ['mqtts://10.0.0.5:8883', 'wss://mqtt.lab.example.org/mqtt', 'mqtt://127.0.0.1:1883', 'mqtt://localhost:1883', 'mqtt://[::1]:1883']) {
      expect.soft(issues({ broker, ...creds }), broker).toEqual([]);
    }
    // TLS settings with a plain URL are not used: said, not silently ignored.
    const ignored = issues({ broker: 'mqtt://10.0.0.5:1883', tls: { ca } });
    expect(ignored.map((i) => [i.severity, i.path])).toEqual([['warning', 'mqtt.tls']]);
    expect(issues({ broker: 'mqtts://10.0.0.5:8883', tls: { ca } })).toEqual([]);
  });
});

describe('check never repeats a key written where its file or variable name belongs', () => {
  // What the user sees: IT pastes the API key itself into `odoo.apiKeyEnv` (or `odoo.apiKeyFile`)
  // instead of a variable's (file's) name. `lab-gateway check` answers "environment variable
  // 3f9c…e1 is not set" / "file not found: /etc/lab-gateway/3f9c…e1": the key is printed, and
  // lands wherever check's output goes (a ticket, a CI log, a screen share).
  // Promise broken: README "secrets are never inline"; the key must not appear in command output.
  // Cause: config/validate.ts quoted both values as they were.
  // Fix: a variable name is repeated only when it looks like one (upper case, digits, _), a file
  // name only when it is a path (has a folder in it).
  it('names the key, not the value, when the value may be the key', async () => {
    const key = '3f9c0d5b7a1e4c28b6d0f9a2c4e8b1d7a5c3e9f1';
    const cfg = path.join(dir, 'key-as-name.yaml');
    const common = `gateway: { id: privacy-key, dataDir: ${JSON.stringify(path.join(dir, 'key-as-name-data'))} }\n`;
    await writeFile(cfg, common + `odoo: { url: "https://odoo.invalid", database: lab, login: gateway, apiKeyEnv: "${key}" }\n`);
    const env = await runCli(cliSource, ['check', '--config', cfg]);
    expect.soft(env.code).toBe(1);
    expect.soft(env.out + env.err).toMatch(/odoo\.apiKeyEnv/);
    expect.soft(env.out + env.err).not.toContain(key);

    await writeFile(cfg, common + `odoo: { url: "https://odoo.invalid", database: lab, login: gateway, apiKeyFile: "${key}" }\n`);
    const file = await runCli(cliSource, ['check', '--config', cfg]);
    expect.soft(file.code).toBe(1);
    expect.soft(file.out + file.err).toMatch(/odoo\.apiKeyFile/);
    expect.soft(file.out + file.err).not.toContain(key);

    // A real variable name and a real path are still named: that is what the operator must fix.
    const named = validateConfig({ odoo: { url: 'https://odoo.invalid', database: 'lab', login: 'gateway', apiKeyEnv: 'LAB_GATEWAY_TEST_UNSET_KEY_9' } }).issues;
    expect(named.find((i) => i.path === 'odoo.apiKeyEnv')?.message).toContain('LAB_GATEWAY_TEST_UNSET_KEY_9');
    const missing = path.join(dir, 'nowhere', 'odoo.key');
    const pathNamed = validateConfig({ odoo: { url: 'https://odoo.invalid', database: 'lab', login: 'gateway', apiKeyFile: missing } }).issues;
    expect(pathNamed.find((i) => i.path === 'odoo.apiKeyFile')?.message).toContain(missing);
  }, 30_000);
});
