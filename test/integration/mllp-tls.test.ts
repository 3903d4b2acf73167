import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Client, { Message, type InboundResponse } from 'node-hl7-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { wrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { GatewayHarness } from '../fixtures/hl7/gateway-harness.ts';
import { field, framesOf } from '../fixtures/hl7/helpers.ts';

/** Certificates made for this test with the openssl CLI: a CA, a server cert for 127.0.0.1, a client cert. */
let dir: string;
const pem = (name: string) => readFileSync(path.join(dir, name));

function makeCerts(): void {
  dir = mkdtempSync(path.join(tmpdir(), 'lab-gw-tls-'));
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=Test Lab CA');
  writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=lis-client');
  run('x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.crt', '-days', '2');
}

const msg = (id: string) => `MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ADT^A01^ADT_A01|${id}|P|2.5\rPID|1||MRN-${id}\r`;

beforeAll(() => makeCerts());
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('MLLP over TLS', () => {
  it('accepts a TLS client that trusts the server certificate (node-hl7-client as the peer)', async () => {
    const h = await GatewayHarness.start({ tls: { cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key'), requireClientCert: false } });
    try {
      const client = new Client({ host: '127.0.0.1', version: '2.5', tls: { ca: pem('ca.crt'), rejectUnauthorized: true } } as ConstructorParameters<typeof Client>[0]);
      let resolve!: (s: string) => void;
      const got = new Promise<string>((r) => (resolve = r));
      const conn = client.createConnection({ port: h.port, waitAck: true } as Parameters<typeof client.createConnection>[0], async (res: InboundResponse) => {
        resolve(res.getMessage().toString());
      });
      const sent = new Message({ text: msg('T1') });
      await conn.sendMessage(sent);
      const ack = framesOf(wrapFrame(Buffer.from(await got)))[0];
      expect(field(ack, 'MSA', 1)).toBe('AA');
      expect(field(ack, 'MSA', 2)).toBe('T1');
      await conn.close();
      client.closeAll();
      // Stored exactly as the peer serialised it (node-hl7-client drops the last CR).
      expect((await h.rawOf('T1'))?.toString('latin1')).toBe(sent.toString());
    } finally {
      await h.stop();
    }
  });

  it('mutual TLS: a client with a certificate from the CA is served, one without is refused', async () => {
    const h = await GatewayHarness.start({
      tls: { cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key'), ca: path.join(dir, 'ca.crt'), requireClientCert: true },
    });
    try {
      const withCert = await MllpClient.connect({ host: '127.0.0.1', port: h.port, tls: { ca: pem('ca.crt'), cert: pem('client.crt'), key: pem('client.key') }, timeoutMs: 5_000 });
      const ack = framesOf(wrapFrame(await withCert.send(Buffer.from(msg('M1')))))[0];
      expect(field(ack, 'MSA', 1)).toBe('AA');
      await withCert.close();

      // TLS 1.3: the handshake may complete on the client side before the server's alert arrives,
      // so the refusal shows either at connect or on the first exchange. Nothing is stored.
      const refused = (async () => {
        const noCert = await MllpClient.connect({ host: '127.0.0.1', port: h.port, tls: { ca: pem('ca.crt') }, timeoutMs: 5_000 });
        await noCert.send(Buffer.from(msg('M2')));
      })();
      await expect(refused).rejects.toThrow();
      expect(await h.rawOf('M2')).toBeUndefined();
      expect(h.store.intake().received).toBe(1);
    } finally {
      await h.stop();
    }
  });
});
