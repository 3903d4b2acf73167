/**
 * The demo (`npm start` = `lab-gateway demo`) and a real gateway on one data directory. Both
 * default to `./var`: an IT person who runs `npm start` in the install folder while the site's
 * gateway is stopped, "to see it work", gives the demo the site's store, and the site's gateway
 * the demo's when it starts again. Real processes from the sources, the Odoo emulator over HTTP as
 * the site's Odoo, real LevelDB in temp dirs.
 */
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventStore } from '../../gateway/src/store/event-store.ts';
import { ODOO_TARGET_NAMESPACE } from '../../gateway/src/relay/odoo-target.ts';
import { commissionDemoReagents } from '../../gateway/src/cli/demo.ts';
import { OdooEmulator } from '../odoo-emulator/emulator.ts';
import { cliSource, repo, runCli } from '../fixtures/cli.ts';
import { fileWriter, getJson, startGatewayProcess, TEST_LISTENERS, until, type GatewayProcess } from '../fixtures/gateway-process.ts';

let dir = '';
const file = fileWriter(() => dir);
const running: GatewayProcess[] = [];
const emulators: OdooEmulator[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'lgw-demo-store-'));
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const r of running) await r.stop();
  for (const e of emulators) await e.close();
  await rm(dir, { recursive: true, force: true });
});

/**
 * The site's Odoo 17 (the emulator with the lab's master data: the demo's clinics and tests are
 * there too, and the site runs a cobas c 111: its reagents are products with stock) and the
 * config line for it.
 */
async function siteOdoo(): Promise<{ odoo: OdooEmulator; odooLine: string }> {
  const key = randomBytes(20).toString('hex');
  const odoo = new OdooEmulator({ version: 17, seed: 'lab-demo', users: [{ login: 'admin', password: 'admin' }, { login: 'gateway', password: '', apiKeys: [{ key }], rights: 'bot' }] });
  emulators.push(odoo);
  commissionDemoReagents(odoo);
  const { url } = await odoo.listen(0, '127.0.0.1');
  const keyFile = await file(key, `odoo-${randomBytes(4).toString('hex')}.key`);
  return { odoo, odooLine: `odoo: { url: "${url}", database: ${odoo.database}, login: gateway, apiKeyFile: ${keyFile} }` };
}

interface Status {
  intake: { accepted: number };
  queue: { pending: number; inFlight: number; retrying: number; delivered: number };
}

/**
 * `lab-gateway demo --data-dir DIR` until the simulated LIS's first order is in and its events
 * still wait (the demo's relay gathers events for 5 s before it posts them), then Ctrl-C.
 */
async function demoLeavingQueuedEvents(dataDir: string): Promise<void> {
  const child = spawn(process.execPath, [cliSource, 'demo', '--data-dir', dataDir, '--interval', '1', '--hl7-port', '0', '--status-port', '0', '--mqtt-port', '0'], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const statusUrl = await until('the demo\'s status page', () => out.match(/status page\s+(http:\/\/127\.0\.0\.1:\d+\/)/)?.[1] ?? (child.exitCode !== null ? Promise.reject(new Error(err)) : undefined));
  await until('results in and events waiting', async () => {
    const s = await getJson<Status>(new URL('/api/status', statusUrl).href);
    return s.intake.accepted >= 1 && s.queue.pending + s.queue.retrying > 0 ? s : undefined;
  });
  child.kill('SIGINT');
  expect(await exited, err).toBe(0);
}

async function withStore<T>(dataDir: string, fn: (store: EventStore) => Promise<T>): Promise<T> {
  const store = await EventStore.open({ dataDir, pruneIntervalMs: 0, minFreeBytes: 0 });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** What a gateway posted in the site's Odoo: sale orders, stock moves, invoices, chatter. */
function posted(odoo: OdooEmulator): Record<string, number> {
  return {
    'sale.order': odoo.count('sale.order', [['client_order_ref', 'like', 'DEMO']]),
    'stock.move': odoo.count('stock.move', [['product_id.default_code', 'like', 'ROC-C111']]),
    'account.move': odoo.count('account.move', []),
    'mail.message': odoo.count('mail.message', [['body', 'like', 'DEMO']]),
  };
}

describe('the site\'s gateway started on a data dir the demo used', () => {
  /**
   * User sees: the IT person stops the site's gateway, runs `npm start` in the install folder to
   * see the demo, stops it, starts the site's gateway again: the demo's fake sale orders, stock
   * moves and invoices appear in the lab's real Odoo, for finance to bill.
   * Promise: DESIGN.md §5, the sandbox is for commissioning "before touching its real Odoo";
   * relay/odoo-target.ts, events still waiting at a switch go to the new Odoo — a real gateway's,
   * not the demo's.
   * Regression: the demo's store (./var, the default gateway.dataDir too) carried no mark; a
   * `start` with odoo.url adopted it as a sandbox → real switch and posted the demo's queued events.
   * Now the demo marks its store, and `start` with a real Odoo on it refuses (exit 1, as a config
   * error), naming gateway.dataDir and what to do, and posts nothing.
   */
  it('refuses with a real odoo.url, naming gateway.dataDir, and nothing of the demo reaches the site\'s Odoo', async () => {
    const dataDir = path.join(dir, 'var');
    await demoLeavingQueuedEvents(dataDir);
    const waiting = await withStore(dataDir, async (store) => {
      const s = store.stats();
      return s.pending + s.retrying + s.inFlight;
    });
    expect(waiting, 'the demo left events waiting').toBeGreaterThan(0);

    const { odoo, odooLine } = await siteOdoo();
    const gw = startGatewayProcess(await file([`gateway: { id: lab-1, dataDir: ${dataDir} }`, TEST_LISTENERS, odooLine, ''].join('\n')));
    running.push(gw);
    const ready = await gw.ready;
    if (ready) {
      // What the site's gateway did with the demo's store: let its relay post what it took over.
      await until('the demo\'s events posted', () => (Object.values(posted(odoo)).some((n) => n > 0) ? true : undefined), 30_000).catch(() => undefined);
    }
    expect(ready, `the site's gateway started on the demo's store and posted in the site's Odoo: ${JSON.stringify(posted(odoo))}`).toBeUndefined();
    const { code } = await gw.exited;
    expect(code).toBe(1);
    const err = gw.err();
    expect(err).toContain('gateway.dataDir');
    expect(err).toContain(dataDir);
    expect(err).toMatch(/demo/);
    expect(err).not.toMatch(/\n\s+at .+[:(]\d+:\d+/);
    expect(posted(odoo)).toEqual({ 'sale.order': 0, 'stock.move': 0, 'account.move': 0, 'mail.message': 0 });
    // The demo's events are where they were, and the store still says it is the demo's.
    await withStore(dataDir, async (store) => {
      const s = store.stats();
      expect(s.pending + s.retrying + s.inFlight).toBe(waiting);
      expect(await store.getDoc(ODOO_TARGET_NAMESPACE, 'current')).toMatchObject({ target: { sandbox: true } });
    });

    // The demo itself starts again on its own store.
    const again = await runCli(cliSource, ['demo', '--data-dir', dataDir, '--duration', '2', '--interval', '1', '--hl7-port', '0', '--status-port', '0', '--mqtt-port', '0']);
    expect(again.code, again.err).toBe(0);
  }, 120_000);
});

/** What the store holds: its counters (not the queue's age, which grows as the test runs) and its Odoo record. */
async function snapshot(store: EventStore): Promise<unknown> {
  const { oldestPendingAgeSeconds: _age, ...queue } = store.stats();
  return { intake: store.intake(), queue, target: await store.getDoc(ODOO_TARGET_NAMESPACE, 'current') };
}

describe('the demo run on a data dir the site\'s gateway used', () => {
  /**
   * User sees: `npm start` in the install folder (the demo, --data-dir ./var) while the site's
   * gateway is stopped shows the site's real messages and patients' orders in the demo's sandbox,
   * replays them there, and leaves the demo's simulated orders, results and consumption in the
   * site's queue, for the site's gateway to post to the lab's Odoo when it starts again.
   * Promise: the demo is a sandbox (README "lab-gateway demo"); DESIGN.md §5 the sandbox comes
   * "before touching its real Odoo".
   * Regression: the demo opened any store. Now it refuses one a gateway recorded (exit 1), naming
   * --data-dir, and writes nothing to it.
   */
  it('refuses, naming --data-dir, and adds nothing to the site\'s store', async () => {
    const dataDir = path.join(dir, 'site-var');
    const { odooLine } = await siteOdoo();
    const gw = startGatewayProcess(await file([`gateway: { id: lab-1, dataDir: ${dataDir} }`, TEST_LISTENERS, odooLine, ''].join('\n')));
    running.push(gw);
    const ready = await gw.ready;
    expect(ready, gw.err()).toBeDefined();
    // The LIS sends the site's first order.
    const hl7 = await file(['MSH|^~\\&|LIS|LAB|GW|LAB|20261207090000||ORM^O01|SITE-0001|P|2.5.1', 'PID|1||MRN-7^^^LAB^MR||Real^Patient', 'ORC|NW|SITE-ACC-1||SITE-ACC-1|SC||||20261207090000||||||||||||CLINIC-A^^^^^^^^^CLINIC-A', 'OBR|1|SITE-ACC-1||GLU^GLU^L|||20261207090000||||||||CLINIC-A', ''].join('\r'), 'site-order.hl7');
    const sent = await runCli(cliSource, ['send', '--port', String(ready!.hl7.lis!.port), hl7]);
    expect(sent.code, sent.out + sent.err).toBe(0);
    await gw.stop();
    const before = await withStore(dataDir, snapshot);

    const demo = await runCli(cliSource, ['demo', '--data-dir', dataDir, '--duration', '3', '--interval', '1', '--hl7-port', '0', '--status-port', '0', '--mqtt-port', '0']);
    expect(demo.code, demo.out + demo.err).toBe(1);
    expect(demo.err).toContain(`--data-dir ${dataDir} holds a gateway's data (gateway.id lab-1`);
    expect(demo.err).toContain('Run the demo with --data-dir on another folder');
    expect(demo.err).not.toMatch(/\n\s+at .+[:(]\d+:\d+/);
    expect(demo.out).not.toContain('lab-gateway demo is running');
    const after = await withStore(dataDir, snapshot);
    expect(after).toEqual(before);
  }, 90_000);
});
