/**
 * Issue 2, "Operator surface": "SIGTERM stops gracefully: no new frames accepted, in-flight commits
 * finish, the store closes." What IT does: `systemctl restart lab-gateway` (SIGTERM) in the middle
 * of the morning run, with every LIS link busy. What the lab must not see: a message the LIS was
 * told AA missing after the restart, a message refused (AE "store unavailable") because the store
 * closed under a commit still in flight, or a message taken into the store that was never answered
 * (the LIS resends it, and an order that is only in the store twice by luck is not a promise).
 *
 * Real parts: `lab-gateway start --config …` from the sources as its own process, 10 LIS-like
 * clients on persistent TCP connections (half of them wait for each ACK, as a LIS does; half keep
 * 16 frames in flight, so that commits are under way when the signal comes), SIGTERM while they
 * send, then the real LevelDB store opened again from the data directory.
 *
 * cli-gateway.test.ts stops an idle gateway after one message; this one stops it under load.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { startGatewayProcess, writeIntakeOnlyConfig, type GatewayProcess } from '../fixtures/gateway-process.ts';

const CLIENTS = 10;
const PIPELINE = 16;
const dir = mkdtempSync(path.join(tmpdir(), 'lgw-sigterm-'));
const dataDir = path.join(dir, 'data');
const configFile = path.join(dir, 'gateway.yaml');
writeIntakeOnlyConfig(configFile, 'sigterm-test', dataDir);

let gw: GatewayProcess | undefined;
afterAll(async () => {
  await gw?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const message = (id: string): Buffer =>
  Buffer.from(`MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ORU^R01^ORU_R01|${id}|P|2.5\rPID|1||MRN1\rORC|RE|ACC-${id}\rOBR|1|ACC-${id}||GLU^Glucose\rOBX|1|NM|GLU||5.4|mmol/L|||||F\r`);

const msaOf = (reply: Buffer): string[] => reply.toString('latin1').split('\r').find((s) => s.startsWith('MSA|'))?.split('|') ?? [];

describe('SIGTERM while every LIS link is busy', () => {
  it('answers AA what it read, stores exactly that, takes nothing more, and exits 0', async () => {
    gw = startGatewayProcess(configFile);
    const ready = await gw.ready;
    expect(ready, gw.err()).toBeDefined();
    const port = ready!.hl7.lis!.port;

    const acked = new Set<string>();
    const negative: string[] = [];
    const sent = new Set<string>();
    let signalled = false;
    let sentAfterSignal = 0;

    const clients = Array.from({ length: CLIENTS }, async (_, k) => {
      // A reply slow on a loaded machine is not the gateway's fault here: a client giving up on it
      // would close its connection with frames the gateway stores and answers (a LIS that gave up),
      // read below as 'stored, never answered'. The test's own time limit bounds a gateway that hangs.
      const c = await MllpClient.connect({ host: '127.0.0.1', port, timeoutMs: 60_000 });
      const one = async (id: string): Promise<void> => {
        sent.add(id);
        if (signalled) sentAfterSignal++;
        const msa = msaOf(await c.send(message(id)));
        if (msa[1] === 'AA' && msa[2] === id) acked.add(id);
        else negative.push(`${id}: ${msa.join('|')}`);
      };
      let n = 0;
      try {
        for (;;) {
          if (k % 2 === 0) await one(`W${k}-${++n}`);
          else await Promise.all(Array.from({ length: PIPELINE }, () => one(`P${k}-${++n}`)));
        }
      } catch {
        // The gateway ended the connection: what was not answered is the LIS's to resend.
      } finally {
        await c.close().catch(() => undefined);
      }
    });

    // The signal comes while every client is in the middle of its traffic.
    await expect.poll(() => acked.size, { timeout: 30_000, interval: 5 }).toBeGreaterThan(CLIENTS * PIPELINE * 4);
    signalled = true;
    gw.child.kill('SIGTERM');
    const exit = await gw.exited;
    await Promise.all(clients);

    expect(exit.code, gw.err().slice(-3000)).toBe(0);
    expect(sentAfterSignal, 'the clients were still sending when the signal came').toBeGreaterThan(0);
    // In-flight commits finished: nothing read was refused because the store closed under it.
    expect(negative).toEqual([]);
    expect(gw.err()).not.toMatch(/stop deadline reached|stop failed|intake failed unexpectedly/);

    const store = await EventStore.open({ dataDir, pruneIntervalMs: 0, minFreeBytes: 0 });
    try {
      const missing: string[] = [];
      const twice: string[] = [];
      for (const id of acked) {
        const stored = (await store.listMessages({ controlId: id, endpoint: 'lis' })).filter((m) => m.controlId === id && m.status === 'accepted');
        if (stored.length === 0) missing.push(id);
        if (stored.length > 1) twice.push(id);
        const events = await store.eventsByCorrelation(`ACC-${id}`);
        if (events.length !== 1) twice.push(`${id}: ${events.length} events`);
      }
      expect(missing, 'acknowledged AA, missing after the stop').toEqual([]);
      expect(twice).toEqual([]);
      // No frame was taken into the store without its answer going out.
      const unanswered: string[] = [];
      for (const id of sent) {
        if (acked.has(id)) continue;
        const stored = (await store.listMessages({ controlId: id, endpoint: 'lis' })).filter((m) => m.controlId === id && m.status === 'accepted');
        if (stored.length > 0) unanswered.push(id);
      }
      expect(unanswered, 'stored as accepted, never answered').toEqual([]);
    } finally {
      await store.close();
    }
  }, 120_000);
});
