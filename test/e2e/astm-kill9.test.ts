import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SerialPort } from 'serialport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { type PtyPair, startPtyPair } from '../fixtures/astm-link/pty-pair.ts';

/**
 * kill -9 during ASTM sessions: a child process runs the store and an AstmEndpoint on one end of
 * a pty pair; the simulated analyzer on the other end sends messages back to back. The child is
 * killed at random moments (often mid-message or mid-commit) and restarted. Every message whose
 * completing frame the analyzer saw ACKed must be in the store afterwards.
 */
const child = path.resolve(import.meta.dirname, '../fixtures/astm-link/endpoint-child.ts');
let dir: string;
let pair: PtyPair;
let port: SerialPort;
let sim: AnalyzerSim;
const procs = new Set<ChildProcess>();

function run(args: string[]): { proc: ChildProcess; output: Promise<string>; ready: Promise<void>; exited: Promise<void> } {
  const proc = spawn(process.execPath, [child, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(proc);
  proc.once('exit', () => procs.delete(proc));
  let out = '';
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve();
    });
    proc.once('exit', (code) => reject(new Error(`child exited ${code}: ${err}`)));
  });
  ready.catch(() => undefined);
  const output = new Promise<string>((resolve) => proc.once('exit', () => resolve(out)));
  const exited = output.then(() => undefined);
  return { proc, output, ready, exited };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'astm-kill9-'));
  pair = await startPtyPair(dir);
  port = new SerialPort({ path: pair.a, baudRate: 9600, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((e) => (e ? reject(e) : resolve())));
  sim = new AnalyzerSim((b) => port.write(b));
  port.on('data', (b: Buffer) => sim.feed(b));
});

afterAll(async () => {
  for (const p of procs) p.kill('SIGKILL');
  await new Promise<void>((r) => (port?.isOpen ? port.close(() => r()) : r()));
  await pair?.kill();
  await rm(dir, { recursive: true, force: true });
});

describe('kill -9 during an ASTM session', () => {
  it('every message the analyzer saw ACKed is in the store after restart', async () => {
    const dataDir = path.join(dir, 'data');
    const acked: string[] = [];
    let seq = 0;
    for (let round = 0; round < 3; round++) {
      const gw = run(['serve', dataDir, pair.b]);
      await gw.ready;
      sim.reset(); // a new gateway process on the line
      const killAt = Date.now() + 300 + Math.floor(Math.random() * 400);
      const killer = new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          gw.proc.kill('SIGKILL');
          resolve();
        }, killAt - Date.now());
        t.unref();
      });
      let alive = true;
      void killer.then(() => (alive = false));
      while (alive) {
        const id = `SPEC-${++seq}`;
        const records = ['H|\\^&|||sim', 'P|1', `O|1|${id}||^^^GLU|R`, `R|1|^^^GLU|${seq}|mmol/L||N||F`, 'L|1|N'];
        try {
          const { replies } = await sim.sendMessage(records, { replyTimeoutMs: 1_000 });
          if (replies === '<ACK>'.repeat(records.length + 1)) acked.push(id);
        } catch {
          break; // no reply: the gateway is dead
        }
      }
      await killer;
      await gw.exited;
      sim.write([0x04]); // the analyzer gives up its session (LIS1-A §6.5.2)
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(acked.length).toBeGreaterThan(3);
    const dump = run(['dump', dataDir]);
    const stored = JSON.parse((await dump.output).trim()) as Array<{ status: string; raw: string }>;
    const accepted = stored.filter((m) => m.status === 'accepted').map((m) => m.raw);
    const missing = acked.filter((id) => !accepted.some((raw) => raw.includes(`|${id}|`)));
    expect(missing).toEqual([]);
  });
});
