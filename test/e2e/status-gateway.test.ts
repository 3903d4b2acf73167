/**
 * Status surfaces of the whole gateway, run as a real process (`lab-gateway start` from the
 * sources): an HL7 message over MLLP shows up in the retained MQTT status and endpoint topics, in
 * /api/status and /metrics; a graceful stop tells MQTT subscribers "offline" before the embedded
 * broker goes away.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { tempDir, waitFor } from '../fixtures/status/harness.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(repo, 'gateway/src/cli/main.ts');

interface Ready {
  hl7: Record<string, { host: string; port: number }>;
  status: { url: string };
  mqtt: { url: string };
}

describe('status of a running gateway process', () => {
  const tmp = tempDir('status-gw-');
  let gateway: ChildProcess;
  let ready: Ready;
  let api: string;
  let sub: MqttClient;
  const retained = new Map<string, any>(); // latest JSON payload per topic (shapes asserted below)
  const availability: Array<{ state: string; reason?: string }> = [];

  beforeAll(async () => {
    writeFileSync(
      path.join(tmp.dir, 'gateway.yaml'),
      [
        `gateway: { id: lab-e2e, dataDir: ${path.join(tmp.dir, 'data')} }`,
        'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 }, ack: original } ]',
        'mqtt: { broker: embedded, listen: { host: 127.0.0.1, port: 0 }, publishIntervalMs: 60000 }',
        'status: { listen: { host: 127.0.0.1, port: 0 } }',
        '',
      ].join('\n'),
    );
    gateway = spawn(process.execPath, [cli, 'start', '--config', path.join(tmp.dir, 'gateway.yaml')], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    gateway.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    ready = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ready line; stderr: ${err.slice(-2000)}`)), 30_000);
      gateway.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n').find((l) => l.includes('"event":"ready"'));
        if (line) {
          clearTimeout(t);
          resolve(JSON.parse(line) as Ready);
        }
      });
    });
    api = ready.status.url.replace(/\/$/, '');
    sub = await mqtt.connectAsync(ready.mqtt.url, { reconnectPeriod: 0 });
    sub.on('message', (topic, payload) => {
      const v = JSON.parse(payload.toString());
      retained.set(topic, v);
      if (topic.endsWith('/availability')) availability.push(v);
    });
    await sub.subscribeAsync('lab-gateway/lab-e2e/#', { qos: 1 });
  });

  afterAll(async () => {
    sub?.end(true);
    if (gateway?.exitCode === null) gateway.kill('SIGKILL');
    tmp.cleanup();
  });

  it('publishes the retained status and the LIS endpoint as listening', async () => {
    const status = await waitFor(() => retained.get('lab-gateway/lab-e2e/status'), 'retained status');
    expect(status).toMatchObject({ gatewayId: 'lab-e2e', online: true });
    const lis = await waitFor(() => retained.get('lab-gateway/lab-e2e/endpoints/lis'), 'endpoint topic');
    expect(lis).toMatchObject({ id: 'lis', kind: 'hl7', role: 'lis' });
    expect(availability.at(-1)).toMatchObject({ state: 'online' });
  });

  it('an HL7 message over MLLP shows in MQTT, /api/status and /metrics', async () => {
    const client = await MllpClient.connect({ host: '127.0.0.1', port: ready.hl7.lis!.port });
    const msg = 'MSH|^~\\&|LIS|LAB|GW|LAB|20260301101500||ORU^R01|E2E-STATUS-1|P|2.5.1\rPID|1||MRN-1^^^LAB^MR||Doe^Jane\rOBR|1|ACC-E2E-1|SPEC-E2E-1|GLU^Glucose\rOBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F\r';
    const [ack] = await client.request(Buffer.from(msg, 'latin1'));
    await client.close();
    expect(ack!.toString('latin1')).toMatch(/MSA\|AA\|E2E-STATUS-1/);
    const status = await waitFor(() => {
      const s = retained.get('lab-gateway/lab-e2e/status');
      return s?.intake.accepted >= 1 ? s : undefined;
    }, 'status with the accepted message');
    expect(status.intake.received).toBeGreaterThanOrEqual(1);
    const lis = await waitFor(() => {
      const e = retained.get('lab-gateway/lab-e2e/endpoints/lis');
      return e?.lastMessageAt ? e : undefined;
    }, 'endpoint lastMessageAt');
    expect(lis.accepted).toBe(1);
    const api1 = (await (await fetch(`${api}/api/status`)).json()) as { endpoints: Array<{ id: string; lastMessageAt: string | null }> };
    expect(api1.endpoints.find((e) => e.id === 'lis')?.lastMessageAt).toBe(lis.lastMessageAt);
    const found = (await (await fetch(`${api}/api/messages?controlId=E2E-STATUS-1`)).json()) as { messages: Array<{ controlId: string }> };
    expect(found.messages[0]?.controlId).toBe('E2E-STATUS-1');
    const metrics = await (await fetch(`${api}/metrics`)).text();
    expect(metrics).toMatch(/lab_gateway_intake_messages_total\{[^}]*outcome="accepted"[^}]*\} 1/);
  });

  it('a graceful stop publishes "offline" before the embedded broker closes', async () => {
    const closed = new Promise<void>((r) => sub.once('close', () => r()));
    gateway.kill('SIGTERM');
    await closed;
    expect(availability.at(-1)).toMatchObject({ state: 'offline', reason: 'gateway stopped' });
    expect(retained.get('lab-gateway/lab-e2e/status')).toMatchObject({ online: false });
    const code = await new Promise((r) => (gateway.exitCode !== null ? r(gateway.exitCode) : gateway.once('exit', r)));
    expect(code).toBe(0);
  });
});
