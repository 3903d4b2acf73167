import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { writeIntakeOnlyConfig } from '../fixtures/gateway-process.ts';
import { repoRoot } from '../fixtures/hl7/helpers.ts';

/**
 * kill -9 loop: the real gateway (`lab-gateway start --config …`, run from the sources as a
 * separate process) takes load from 12 LIS-like clients (each waits for its ACK before the next
 * message, and resends an unanswered message after a reconnect, as a LIS does), and is killed
 * with SIGKILL at a random moment, 20 times. Afterwards every control id that was ever
 * acknowledged AA must be stored exactly once, with exactly one event.
 */
const CYCLES = 20;
const CLIENTS = 12;
const cli = path.join(repoRoot, 'gateway/src/cli/main.ts');
const dir = mkdtempSync(path.join(tmpdir(), 'lab-gw-crash-'));
const dataDir = path.join(dir, 'data');
const configFile = path.join(dir, 'gateway.yaml');
writeIntakeOnlyConfig(configFile, 'crash-test', dataDir);
let child: ChildProcess | undefined;

afterAll(() => {
  child?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const message = (id: string) =>
  Buffer.from(`MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ORU^R01^ORU_R01|${id}|P|2.5\rPID|1||MRN1\rORC|RE|ACC-${id}\rOBR|1|ACC-${id}||GLU^Glucose\rOBX|1|NM|GLU||5.4|mmol/L|||||F\r`);

function startGateway(): Promise<{ proc: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [cli, 'start', '--config', configFile], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'ignore'] });
    const lines = createInterface({ input: proc.stdout! });
    lines.on('line', (line) => {
      if (!line.includes('"event":"ready"')) return;
      const ready = JSON.parse(line) as { hl7: { lis: { port: number } } };
      resolve({ proc, port: ready.hl7.lis.port });
    });
    proc.once('exit', (code) => reject(new Error(`gateway exited early (${code})`)));
  });
}

// Twenty gateway processes start one after the other, about 1 s each on an idle 2-core machine and
// up to 3 s on a busy one: the test took 24 s idle and 56 s under load, too close to the suite's
// 60 s per test.
const TIMEOUT_MS = 180_000;

describe('kill -9 during intake', () => {
  it('keeps every acknowledged message exactly once across 20 crashes', async () => {
    const acked = new Set<string>();
    const sentCounter = Array.from({ length: CLIENTS }, () => 0);
    // The message each client is waiting on when the gateway dies: it resends that one first.
    const current: Array<string | undefined> = Array.from({ length: CLIENTS }, () => undefined);
    let resends = 0;

    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const { proc, port } = await startGateway();
      child = proc;
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      let alive = true;
      const clients = Array.from({ length: CLIENTS }, async (_, k) => {
        let c: MllpClient;
        try {
          c = await MllpClient.connect({ host: '127.0.0.1', port, timeoutMs: 10_000 });
        } catch {
          return;
        }
        while (alive) {
          if (current[k] !== undefined) resends++;
          const id = current[k] ?? `C${k}-${(sentCounter[k] = (sentCounter[k] ?? 0) + 1)}`;
          current[k] = id;
          try {
            const reply = (await c.send(message(id))).toString('latin1');
            const msa = reply.split('\r').find((s) => s.startsWith('MSA|'))?.split('|');
            if (msa?.[1] === 'AA' && msa[2] === id) {
              acked.add(id);
              current[k] = undefined;
            }
          } catch {
            return; // the gateway died: this message is in doubt and will be resent
          }
        }
      });
      // Kill at a random instant while the clients are busy.
      await new Promise((r) => setTimeout(r, 80 + Math.floor(Math.random() * 200)));
      proc.kill('SIGKILL');
      alive = false;
      await exited;
      await Promise.all(clients);
    }
    child = undefined;

    expect(acked.size).toBeGreaterThan(CYCLES * CLIENTS); // real load went through
    expect(resends).toBeGreaterThan(0);

    const store = await EventStore.open({ dataDir, pruneIntervalMs: 0 });
    try {
      const missing: string[] = [];
      const duplicated: string[] = [];
      for (const id of acked) {
        const stored = (await store.listMessages({ controlId: id, endpoint: 'lis' })).filter((m) => m.controlId === id && m.status === 'accepted');
        if (stored.length === 0) missing.push(id);
        if (stored.length > 1) duplicated.push(id);
        const events = await store.eventsByCorrelation(`ACC-${id}`);
        if (events.length !== 1) duplicated.push(`${id}: ${events.length} events`);
      }
      expect(missing).toEqual([]);
      expect(duplicated).toEqual([]);
      // Nothing at all is stored twice: also the messages in doubt when the last gateway died
      // (never answered, never resent) are stored at most once, with at most one event.
      const inDoubt = current.filter((id): id is string => id !== undefined);
      for (const id of inDoubt) expect((await store.eventsByCorrelation(`ACC-${id}`)).length, id).toBeLessThanOrEqual(1);
      const seen = new Map<string, number>();
      for (let before: string | null | undefined; before !== null; ) {
        const page = await store.listMessagePage({ endpoint: 'lis', limit: 1_000, ...(before ? { before } : {}) });
        for (const m of page.messages) if (m.status === 'accepted' && m.controlId) seen.set(m.controlId, (seen.get(m.controlId) ?? 0) + 1);
        before = page.next;
      }
      expect([...seen].filter(([, n]) => n > 1)).toEqual([]);
      expect(seen.size).toBeGreaterThanOrEqual(acked.size);
    } finally {
      await store.close();
    }
  }, TIMEOUT_MS);
});
