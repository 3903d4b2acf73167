import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DraftEvent } from '../../gateway/src/events/types.ts';
import { noteMarker } from '../../gateway/src/relay/rules/milestone-notes.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import type { OdooEmulator } from '../odoo-emulator/index.ts';
import { BOT, startEmulator } from '../fixtures/relay/harness.ts';
import { consumableUsed, inbound, milestone, orderCreated, postedConsumption, resultValidated, tempDir } from '../fixtures/relay/helpers.ts';

/**
 * kill -9 loop: a child process runs store + relay against the emulator in this process; it is
 * killed with SIGKILL again and again at random moments (mid-lease, mid-workflow), then allowed to
 * drain. Every event must reach Odoo exactly once.
 */
const CHILD = path.resolve(import.meta.dirname, '../fixtures/relay/relay-child.ts');
const CYCLES = 12;

let emu: OdooEmulator;
let url: string;
const tmp = tempDir('relay-kill9-');
const all: DraftEvent[] = [];
let kills = 0;
let finalStats: Record<string, number> = {};

function spawnChild(): { child: ChildProcess; stats: () => Record<string, number> | undefined; started: Promise<void> } {
  const child = spawn(process.execPath, [CHILD, tmp.dir, url, 'lab', BOT.login, BOT.key], { stdio: ['ignore', 'pipe', 'pipe'] });
  let last: Record<string, number> | undefined;
  let buf = '';
  let resolveStarted: () => void;
  const started = new Promise<void>((r) => (resolveStarted = r));
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) {
      try {
        last = JSON.parse(l);
        resolveStarted();
      } catch {
        /* partial line */
      }
    }
  });
  child.stderr!.on('data', () => {});
  return { child, stats: () => last, started };
}

const exited = (c: ChildProcess): Promise<void> => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((r) => c.once('exit', () => r())));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function commitMore(batch: number): Promise<void> {
  // Opened between kills, it reopens the leases the killed child left: with the child's settle time.
  const store = await EventStore.open({ dataDir: tmp.dir, pruneIntervalMs: 0, ambiguousSettleMs: 3_000 });
  for (let i = 0; i < 10; i++) {
    const acc = `K${batch}-${i}`;
    const events: DraftEvent[] = [orderCreated(acc, 'CLINIC-A', ['GLU', 'TSH']), milestone('specimen.received', acc, i), resultValidated(acc, 'GLU')];
    for (let n = 0; n < 4; n++) events.push(consumableUsed(`an-${n % 2}`, n % 2 ? 'TIP-200' : 'RGT-CRP', 1, batch * 100 + i * 4 + n));
    all.push(...events);
    await store.commit(inbound(), events);
  }
  await store.close();
}

beforeAll(async () => {
  ({ emu, url } = await startEmulator(17));
  // Some answers are lost after commit too, so ambiguity comes from both sides.
  for (const method of ['load', 'create', 'message_post', 'button_validate', 'write']) {
    emu.faults.inject({ match: { method }, times: Infinity, probability: 0.05, action: { kind: 'timeout-after-commit', afterMs: 1500 } });
  }
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    if (cycle % 3 === 0) await commitMore(cycle);
    const { child, started } = spawnChild();
    await Promise.race([started, sleep(8000)]);
    await sleep(60 + Math.floor(Math.random() * 400));
    child.kill('SIGKILL');
    await exited(child);
    kills++;
  }
  emu.faults.clear();
  const { child, stats } = spawnChild();
  const until = Date.now() + 40_000;
  while (Date.now() < until) {
    const s = stats();
    if (s && s['pending'] === 0 && s['inFlight'] === 0 && s['retrying'] === 0) break;
    await sleep(100);
  }
  child.kill('SIGTERM');
  await exited(child);
  const store = await EventStore.open({ dataDir: tmp.dir, pruneIntervalMs: 0 });
  finalStats = { ...store.stats() };
  await store.close();
}, 120_000);

afterAll(async () => {
  await emu?.close();
  tmp.cleanup();
});

describe('relay killed with SIGKILL repeatedly', () => {
  it(`was killed ${CYCLES} times and then drained every event`, () => {
    expect(kills).toBe(CYCLES);
    expect(finalStats).toMatchObject({ delivered: all.length, deadLettered: 0, pending: 0, retrying: 0, inFlight: 0 });
  });

  it('one sale order per accession (by ref and by external id), each line once', () => {
    const accessions = [...new Set(all.filter((e) => e.type === 'order.created').map((e) => e.correlationId))];
    expect(emu.count('sale.order', [['client_order_ref', '=like', 'K%']])).toBe(accessions.length);
    expect(emu.externalIds().filter((x) => x.xmlid.startsWith('lab_gateway.so_K'))).toHaveLength(accessions.length);
    expect(emu.count('sale.order.line', [['order_id.client_order_ref', '=like', 'K%']])).toBe(accessions.length * 2);
  });

  it('each note line once, each consumption once', () => {
    const bodies = emu.records('mail.message', [['model', '=', 'sale.order'], ['body', 'ilike', 'lgw:']]).map((m) => String(m['body'])).join('\n');
    for (const e of all.filter((x) => x.type === 'specimen.received')) expect(bodies.split(`lgw:${noteMarker(e.idempotencyKey)}`).length - 1).toBe(1);
    const posted = postedConsumption(emu);
    expect(posted.pickings.every((p) => p['state'] === 'done')).toBe(true);
    const consumption = all.filter((e) => e.type === 'consumable.used').length;
    expect(posted.covered).toBe(consumption);
    expect(posted.duplicateHeads).toEqual([]);
    expect(posted.unmarkedMoves).toBe(0);
    expect(posted.quantity).toBe(consumption);
  });
});
