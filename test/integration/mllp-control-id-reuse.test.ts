/**
 * Regression: a sender that reuses MSH-10 for different messages (Mindray BS analyzers number
 * every message 1) must not have its second message taken for a resend of the first — that
 * replayed the old ACK and silently dropped the QC run. A real resend (same bytes, or only MSH-7
 * refreshed) is still a duplicate.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { MllpEndpoint } from '../../gateway/src/ingress/mllp/mllp-endpoint.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { unwrapFrame } from '../../gateway/src/ingress/mllp/mllp-encoder.ts';
import { Telemetry } from '../../gateway/src/telemetry.ts';
import { silentLogger } from '../../gateway/src/log.ts';
import { corpusDir, endpointConfig } from '../fixtures/hl7/helpers.ts';

let dir: string;
let store: EventStore;
let endpoint: MllpEndpoint;
let client: MllpClient;

const patient = unwrapFrame(readFileSync(path.join(corpusDir, 'oru_r01_mindray-bs200_patient-result_vendor-manual.mllp')));
const qc = unwrapFrame(readFileSync(path.join(corpusDir, 'oru_r01_mindray-bs200_qc-result_vendor-manual.mllp')));
const msa = (reply: Buffer): string => reply.toString('latin1').split(/\r/).find((s) => s.startsWith('MSA')) ?? '';

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-reuse-'));
  store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, minFreeBytes: 0 });
  endpoint = new MllpEndpoint({ config: endpointConfig({ id: 'bs-200' }), store, telemetry: new Telemetry(), log: silentLogger });
  await endpoint.start();
  client = await MllpClient.connect({ host: '127.0.0.1', port: endpoint.address()!.port });
});

afterAll(async () => {
  await client.close().catch(() => undefined);
  await endpoint.stop();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('a control id reused for a different message', () => {
  it('the two corpus messages share sender and MSH-10', () => {
    const msh = (b: Buffer): string[] => b.toString('latin1').split(/\r/)[0]!.split('|');
    expect(msh(patient)[9]).toBe(msh(qc)[9]);
    expect(msh(patient).slice(2, 4)).toEqual(msh(qc).slice(2, 4));
  });

  it('both are stored byte-exact, each with its own ACK', async () => {
    const first = await client.send(patient);
    const second = await client.send(qc);
    expect(msa(first)).toMatch(/^MSA\|AA\|/);
    expect(msa(second)).toMatch(/^MSA\|AA\|/);
    expect(store.intake()).toMatchObject({ accepted: 2, duplicates: 0 });
    const raws = await Promise.all((await store.listMessages({ endpoint: 'bs-200' })).map(async (m) => (await store.getMessage(m.id))!.raw));
    expect(raws.some((r) => r.equals(patient))).toBe(true);
    expect(raws.some((r) => r.equals(qc))).toBe(true);
  });

  it('a resend of the same message, also with MSH-7 refreshed, is a duplicate', async () => {
    await client.send(qc);
    const fields = qc.toString('latin1').split('\r');
    const msh = fields[0]!.split('|');
    msh[6] = '20991231235959';
    fields[0] = msh.join('|');
    await client.send(Buffer.from(fields.join('\r'), 'latin1'));
    expect(store.intake()).toMatchObject({ accepted: 2, duplicates: 2 });
  });
});
