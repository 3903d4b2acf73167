import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isGatewayError } from '../../gateway/src/errors.ts';
import { HttpTransport } from '../../gateway/src/relay/odoo/http-transport.ts';
import { failureOf, isLinkDown } from '../../gateway/src/relay/odoo/odoo-error.ts';
import { refusedPort } from '../fixtures/ports.ts';

const FIX = path.resolve(import.meta.dirname, '../fixtures/relay');
const CERT = path.join(FIX, 'odoo-test.crt');
const KEY = path.join(FIX, 'odoo-test.key');
const FINGERPRINT = '32:E5:10:93:CA:57:43:A2:39:37:D3:CD:46:01:C0:74:28:9F:DE:4B:2C:56:74:AA:E5:66:4D:0D:04:4E:0B:B2';

let server: https.Server;
let url: string;
let requests = 0;
const sockets = new Set<import('node:stream').Duplex>();
let proxy: http.Server;
let proxyUrl: string;
const connects: string[] = [];

beforeAll(async () => {
  server = https.createServer({ cert: readFileSync(CERT), key: readFileSync(KEY) }, (req, res) => {
    requests++;
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (req.url === '/drop') {
        // The request arrived (and, for Odoo, may have committed): the answer is lost.
        req.socket.destroy();
        return;
      }
      res.setHeader('content-type', 'application/json');
      // Odoo echoes the request's id (odoo-api.md A.1).
      let id: unknown = null;
      try {
        id = (JSON.parse(body) as { id?: unknown }).id ?? null;
      } catch {
        id = null;
      }
      res.end(JSON.stringify({ jsonrpc: '2.0', id, result: { echo: body.length } }));
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `https://localhost:${(server.address() as AddressInfo).port}`;

  // A minimal forward proxy that only speaks CONNECT (RFC 9110 §9.3.6).
  proxy = http.createServer((_req, res) => {
    res.statusCode = 405;
    res.end();
  });
  proxy.on('connect', (req, client, head) => {
    connects.push(req.url ?? '');
    const [host, port] = (req.url ?? '').split(':');
    const upstream = net.connect(Number(port), host === 'localhost' ? '127.0.0.1' : host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
  proxy.closeAllConnections();
  await new Promise((r) => proxy.close(r));
});

describe('HTTPS transport to Odoo', () => {
  it('refuses a certificate it cannot verify (verification is always on)', async () => {
    const t = new HttpTransport({ url, timeoutMs: 5000 });
    const err = await t.post('/jsonrpc', {}, {}, true).catch((e: unknown) => e);
    t.close();
    expect(isGatewayError(err, 'GW_ODOO_TRANSIENT')).toBe(true);
    expect(isLinkDown(err)).toBe(true);
    expect(String((err as Error).message)).toMatch(/TLS verification/);
  });

  it('trusts a custom CA file and reuses one keep-alive connection', async () => {
    const t = new HttpTransport({ url, timeoutMs: 5000, caFile: CERT });
    const before = requests;
    for (let i = 0; i < 5; i++) {
      const reply = await t.post('/jsonrpc', { i }, {}, false);
      expect(reply.status).toBe(200);
      expect(JSON.parse(reply.body).result.echo).toBeGreaterThan(0);
    }
    expect(requests - before).toBe(5);
    expect(sockets.size).toBe(1);
    t.close();
  });

  it('accepts the pinned certificate fingerprint and rejects another one', async () => {
    const good = new HttpTransport({ url, timeoutMs: 5000, caFile: CERT, pinnedCertSha256: FINGERPRINT.toLowerCase() });
    expect((await good.post('/jsonrpc', {}, {}, true)).status).toBe(200);
    good.close();
    const bad = new HttpTransport({ url, timeoutMs: 5000, caFile: CERT, pinnedCertSha256: 'AA'.repeat(32) });
    const err = await bad.post('/jsonrpc', {}, {}, true).catch((e: unknown) => e);
    bad.close();
    expect(String((err as Error).message)).toMatch(/fingerprint|PIN/i);
    expect(failureOf(err)).toBe('transient');
  });

  it('tunnels through an HTTP proxy with CONNECT and still verifies the Odoo certificate', async () => {
    const t = new HttpTransport({ url, timeoutMs: 5000, caFile: CERT, pinnedCertSha256: FINGERPRINT, proxy: proxyUrl });
    const reply = await t.post('/jsonrpc', { via: 'proxy' }, {}, false);
    expect(reply.status).toBe(200);
    expect(connects.at(-1)).toMatch(/^localhost:\d+$/);
    t.close();
    const unverified = new HttpTransport({ url, timeoutMs: 5000, proxy: proxyUrl });
    const err = await unverified.post('/jsonrpc', {}, {}, true).catch((e: unknown) => e);
    unverified.close();
    expect(String((err as Error).message)).toMatch(/TLS verification/);
  });

  it('never resends a POST whose answer was lost, and calls it ambiguous', async () => {
    const t = new HttpTransport({ url, timeoutMs: 5000, caFile: CERT });
    const before = requests;
    const err = await t.post('/drop', { write: true }, {}, false).catch((e: unknown) => e);
    t.close();
    expect(requests - before).toBe(1);
    expect(failureOf(err)).toBe('ambiguous');
  });

  it('a read whose answer was lost is transient (nothing can have changed)', async () => {
    const t = new HttpTransport({ url, timeoutMs: 5000, caFile: CERT });
    const err = await t.post('/drop', {}, {}, true).catch((e: unknown) => e);
    t.close();
    expect(failureOf(err)).toBe('transient');
  });

  it('a refused connection is transient and marks the link down', async () => {
    const t = new HttpTransport({ url: `https://127.0.0.1:${await refusedPort()}`, timeoutMs: 2000 });
    const err = await t.post('/jsonrpc', {}, {}, false).catch((e: unknown) => e);
    t.close();
    expect(failureOf(err)).toBe('transient');
    expect(isLinkDown(err)).toBe(true);
  });
});
