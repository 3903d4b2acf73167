import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { StatusModel } from '../../gateway/src/status/status-model.ts';
import { MqttStatus } from '../../gateway/src/status/mqtt-status.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { makeConfig, openStore, tempDir } from '../fixtures/status/harness.ts';

/** A throw-away CA, a server certificate for 127.0.0.1 and a client certificate (openssl). */
function makePki(dir: string): Record<'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey', string> {
  const f = (n: string) => path.join(dir, n);
  const ssl = (...a: string[]) => execFileSync('openssl', a, { stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=status-test-ca');
  writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
  ssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('san.ext'));
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('client.key'), '-out', f('client.csr'), '-subj', '/CN=tray');
  ssl('x509', '-req', '-in', f('client.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('client.pem'), '-days', '2');
  return { ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') };
}

/** Connect, subscribe, resolve with the first retained status; reject on error or after 5 s. */
async function firstStatus(url: string, opts: mqtt.IClientOptions): Promise<{ gatewayId: string }> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no CONNACK within 5 s')), 5000);
      client.once('connect', () => {
        clearTimeout(t);
        resolve();
      });
      client.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
      client.once('close', () => {
        clearTimeout(t);
        reject(new Error('connection closed before CONNACK'));
      });
    });
  } catch (err) {
    client.end(true);
    throw err;
  }
  try {
    const got = new Promise<{ gatewayId: string }>((resolve) => client.once('message', (_t, p) => resolve(JSON.parse(p.toString()))));
    await client.subscribeAsync('lab-gateway/+/status');
    return await got;
  } finally {
    await client.endAsync();
  }
}

describe('embedded MQTT broker over TLS (mqtt.tls)', () => {
  const tmp = tempDir('status-mqtt-tls-');
  let pki: ReturnType<typeof makePki>;
  let store: EventStore;
  const telemetry = new Telemetry();
  const started: Array<{ stop(): Promise<void> }> = [];

  beforeAll(async () => {
    pki = makePki(tmp.dir);
    store = await openStore(path.join(tmp.dir, 'data'));
  });

  afterAll(async () => {
    for (const s of started.reverse()) await s.stop();
    await store.close();
    tmp.cleanup();
  });

  async function start(id: string, tls: { cert: string; key: string; ca?: string }) {
    const config = makeConfig(path.join(tmp.dir, 'data'), { id, mqtt: { tls } });
    const model = new StatusModel({ config, store, telemetry, version: 't', startedAt: new Date().toISOString() });
    const mq = new MqttStatus({ config, model, log: silentLogger });
    await mq.start();
    started.push(model, mq);
    return { mq, port: mq.broker!.address().port };
  }

  it('serves MQTTS: a client trusting the CA reads the retained status; plain MQTT gets nothing', async () => {
    const { mq, port } = await start('lab-tls', { cert: pki.serverCert, key: pki.serverKey });
    expect(mq.publisher!.connected).toBe(true);
    const status = await firstStatus(`mqtts://127.0.0.1:${port}`, { ca: readFileSync(pki.ca) });
    expect(status.gatewayId).toBe('lab-tls');
    const untrusted = await firstStatus(`mqtts://127.0.0.1:${port}`, {}).then(
      () => 'connected',
      (e: Error) => e.message,
    );
    expect(untrusted).toMatch(/certificate/i);
    const plain = await firstStatus(`mqtt://127.0.0.1:${port}`, { connectTimeout: 2000 }).then(
      () => 'connected',
      (e: Error) => e.message,
    );
    expect(plain).not.toBe('connected');
  });

  it('with mqtt.tls.ca, clients must present a certificate signed by that CA', async () => {
    const { port } = await start('lab-mtls', { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca });
    const withCert = await firstStatus(`mqtts://127.0.0.1:${port}`, { ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) });
    expect(withCert.gatewayId).toBe('lab-mtls');
    const without = await firstStatus(`mqtts://127.0.0.1:${port}`, { ca: readFileSync(pki.ca), connectTimeout: 3000 }).then(
      () => 'connected',
      (e: Error) => e.message,
    );
    expect(without).not.toBe('connected');
  });
});
