/**
 * Upgrade day: the lab's gateway is upgraded in place. The previous release (built here from git,
 * PREVIOUS below, in a worktree removed at the end) runs as its own process on a data dir with the
 * lab's traffic (LIS orders and results over MLLP, a Mindray BS analyzer over HL7/MLLP) and the
 * Odoo emulator over HTTP as the site's Odoo; it is stopped (SIGTERM, or kill -9), and the current
 * tree's gateway (`lab-gateway start` from the sources, test/fixtures/gateway-process.ts) starts on
 * the same data dir and config. What the lab is promised (DESIGN.md §2): nothing acknowledged is
 * lost, nothing delivered is delivered again, each business fact lands in Odoo once.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { repo } from '../fixtures/cli.ts';
import { getJson, startGatewayProcess, until, type GatewayProcess, type GatewayReady } from '../fixtures/gateway-process.ts';
import { OdooEmulator, type OdooVersion } from '../odoo-emulator/index.ts';

const run = promisify(execFile);

/** The release before today's changes (git log 5b078f1..HEAD). */
const PREVIOUS = '5b078f1ca440cdea36e54664f539274fdb8e453f';

let work: string;
let prevTree: string;

/** Build the previous release from git: a detached worktree, the repo's node_modules, its own tsc. */
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'lgw-upgrade-day-'));
  prevTree = path.join(work, 'prev');
  await run('git', ['-C', repo, 'worktree', 'add', '-f', '--detach', prevTree, PREVIOUS]);
  await symlink(path.join(repo, 'node_modules'), path.join(prevTree, 'node_modules'));
  await run(process.execPath, [path.join(repo, 'node_modules/typescript/bin/tsc'), '-p', path.join(prevTree, 'tsconfig.json')], { cwd: prevTree });
}, 120_000);

afterAll(async () => {
  if (prevTree && existsSync(prevTree)) await run('git', ['-C', repo, 'worktree', 'remove', '--force', prevTree]).catch(() => undefined);
  await run('git', ['-C', repo, 'worktree', 'prune']).catch(() => undefined);
  if (work) await rm(work, { recursive: true, force: true });
});

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

/** The previous release's `lab-gateway start --config FILE` (its dist/, this Node), as systemd runs it. */
function startPrevious(configFile: string): GatewayProcess {
  return startGatewayProcess(configFile, {}, { script: path.join(prevTree, 'dist/gateway/src/cli/main.js'), cwd: prevTree });
}

const BOT = { login: 'gateway-bot', key: randomBytes(20).toString('hex') };

/** The site's Odoo: the emulator over HTTP with the lab's master data and the gateway's bot user. */
async function siteOdoo(version: OdooVersion): Promise<OdooEmulator> {
  const odoo = new OdooEmulator({ version, seed: 'lab-demo', users: [{ login: 'admin', password: 'admin', rights: 'admin' }, { login: BOT.login, password: '', apiKeys: [{ key: BOT.key }], rights: 'bot' }] });
  await odoo.listen(0, '127.0.0.1');
  cleanups.push(() => odoo.close());
  return odoo;
}

/** One config file for both releases: LIS link, a Mindray BS on HL7/MLLP, the site's Odoo. */
async function siteConfig(name: string, odoo: OdooEmulator): Promise<{ file: string; dataDir: string }> {
  const dir = path.join(work, name);
  const keyFile = path.join(work, `${name}.key`);
  await writeFile(keyFile, BOT.key, { mode: 0o600 });
  const dataDir = path.join(dir, 'data');
  const file = path.join(work, `${name}.yaml`);
  await writeFile(
    file,
    [
      `gateway: { id: ${name}, dataDir: ${dataDir} }`,
      'hl7: [ { id: lis, listen: { host: 127.0.0.1, port: 0 } } ]',
      'analyzers: [ { id: bs-200, profile: mindray-bs-series, tcp: { listen: { host: 127.0.0.1, port: 0 } } } ]',
      `odoo: { url: "${odoo.url}", database: ${odoo.database}, login: ${BOT.login}, apiKeyFile: ${keyFile}, timeoutMs: 5000 }`,
      'relay: { backoff: { initialMs: 200, maxMs: 1000, multiplier: 2, jitter: 0 }, microBatchWindowMs: 500 }',
      'mqtt: { listen: { host: 127.0.0.1, port: 0 } }',
      'status: { listen: { host: 127.0.0.1, port: 0 } }',
      '',
    ].join('\n'),
  );
  return { file, dataDir };
}

async function up(gw: GatewayProcess): Promise<GatewayReady> {
  cleanups.push(() => gw.stop());
  const ready = await gw.ready;
  expect(ready, gw.err()).toBeDefined();
  return ready!;
}

/** Send one HL7 message on a new connection; the ACK's MSA-1. */
async function send(port: number, text: string): Promise<string> {
  const c = await MllpClient.connect({ host: '127.0.0.1', port });
  try {
    const ack = (await c.send(Buffer.from(text, 'latin1'))).toString('latin1');
    return /MSA\|([A-Z]{2})\|/.exec(ack)?.[1] ?? ack;
  } finally {
    await c.close();
  }
}

/** The LIS's new order (ORM^O01 NW) for the lab's client CLINIC-A. */
function orm(controlId: string, accession: string, tests: string[]): string {
  return [
    `MSH|^~\\&|LIS|LAB|GW|LAB|20261207080000||ORM^O01|${controlId}|P|2.5`,
    'PID|1||MRN-42^^^LAB^MR',
    ...tests.flatMap((t, i) => [`ORC|NW|${accession}|F-${accession}||SC||||20261207080000||||||||||||CLINIC-A`, `OBR|${i + 1}|${accession}|F-${accession}|${t}^${t}^L`]),
  ].join('\r');
}

/**
 * A Mindray BS-200 result (vendor layout, test no. 1 = ALT) for the tube `accession` (OBR-2, the
 * barcode the LIS printed), measured at 10:29:30: OBX-11 `status` P (preliminary) or F (final).
 */
function mindray(controlId: string, accession: string, status: 'P' | 'F', value: string): string {
  return [
    `MSH|^~\\&|Mindray|BS-200|||20261207103000||ORU^R01|${controlId}|P|2.3.1||||0||ASCII|||`,
    'PID|1|MRN-42||12|||19830719000000|F',
    `OBR|1|${accession}|12|Mindray^BS-200|N||20261207102500||||||||serum`,
    `OBX|1|NM|1|ALT|${value}|U/L|-||||${status}|||20261207102930||`,
  ].join('\r');
}

/** The chatter lines the gateway posted on the accession's sale order. */
function chatter(odoo: OdooEmulator, accession: string): string[] {
  const so = odoo.records('sale.order', [['client_order_ref', '=', accession]])[0];
  if (!so) return [];
  return odoo
    .records('mail.message', [['model', '=', 'sale.order'], ['res_id', '=', so['id'] as number]])
    .flatMap((m) => String(m['body'] ?? '').split(/<br>|\n/))
    .filter((l) => l.includes('lgw:'));
}

interface MessageList {
  messages: Array<{ id: string; controlId?: string; eventIds?: string[]; status?: string; duplicate?: boolean }>;
}

describe.each([17, 19] as const)('upgrade day, Odoo %i: a Mindray BS preliminary before the upgrade, its final after', (version) => {
  /**
   * What the user sees: a Mindray BS (HL7 over MLLP) sends the preliminary ALT of tube ACC-UP-1
   * (OBX-11 P) while the previous release runs; the chatter of the order in Odoo says "test ALT
   * completed … (status P)". The gateway is upgraded that morning. The analyzer then sends the
   * final result of the same run (OBX-11 F, a new message, new MSH-10): AA, but no event comes of
   * it, and the order's chatter in Odoo never shows the final; the lab's staff (and anything
   * reading the chatter) keep the preliminary value as the last word. This is exactly the fault
   * today's commit 731954d fixed ("the final was skipped as a resend and Odoo kept the
   * preliminary value"), and it stays for every run whose preliminary the earlier version stored:
   * the runs under way during the upgrade.
   *
   * Promise broken: DESIGN.md §2 "No acknowledged message is ever lost" (the final is acknowledged
   * and its fact goes nowhere); §3 test.completed → "note on the order's chatter";
   * gateway/src/hl7/README.md "a version part … for a preliminary (P) … Before, a preliminary and
   * its final shared one key: the final was skipped as a resend" (the README speaks only of a
   * preliminary RESENT after the upgrade, not of its final).
   *
   * Cause: the previous release stored the preliminary's test.completed under the key without a
   * version part; the current one keys a final exactly so ("Finals keep the key they always had",
   * gateway/src/profiles/hl7-analyzer-normalize.ts:173, `version === undefined ? idempotencyKey(
   * 'hl7-analyzer', analyzerId, 'result', specimenId, r.code, r.keyTime)`), so the store takes the
   * final for a resend of the stored preliminary and skips it (store README invariant 3, "Events
   * whose idempotency key exists are skipped, also across messages",
   * gateway/src/store/event-store.ts:1001 #lookup). Even with a new event, its chatter marker (hash of
   * the same key, rules/milestone-notes.ts:148 noteMarker) is the preliminary's, so the note rule
   * would find it "already posted".
   *
   * Fix: at start-up (once, recorded in the store), re-key the stored test.completed events of HL7
   * analyzers whose resultStatus is P/S/C to the versioned key (the `k` index entry moved, the
   * same batch), or have the key look-up of an unversioned HL7-analyzer result compare the stored
   * event's resultStatus and take a P/S/C match as another fact; and give such a final a chatter
   * marker of its own (e.g. the key plus ':F' when the stored event under its key is a P/S/C), so
   * the note goes on the order.
   */
  it(`the final result after the upgrade reaches the order's chatter (Odoo ${version})`, async () => {
    const odoo = await siteOdoo(version);
    const { file } = await siteConfig(`bs-final-${version}`, odoo);

    // Yesterday's release: the LIS orders ALT for tube ACC-UP-1, the analyzer reports its preliminary.
    const before = startPrevious(file);
    const old = await up(before);
    expect(await send(old.hl7['lis']!.port, orm('ORM-UP-1', 'ACC-UP-1', ['ALT']))).toBe('AA');
    await until('the sale order in Odoo', () => odoo.count('sale.order', [['client_order_ref', '=', 'ACC-UP-1']]) === 1, 30_000);
    expect(await send(old.analyzers['bs-200']!.port, mindray('UP-71', 'ACC-UP-1', 'P', '34.000000'))).toBe('AA');
    await until('the preliminary on the chatter', () => chatter(odoo, 'ACC-UP-1').some((l) => /ALT completed.*status P/.test(l)), 30_000);
    await before.stop();

    // The upgrade: the current release on the same data dir and config.
    const after = startGatewayProcess(file);
    const now = await up(after);
    // The analyzer finishes the run: the final result, in a message of its own.
    expect(await send(now.analyzers['bs-200']!.port, mindray('UP-72', 'ACC-UP-1', 'F', '35.000000'))).toBe('AA');
    const base = now.status.url.replace(/\/$/, '');
    const stored = await until('the final message in the message browser', async () => (await getJson<MessageList>(`${base}/api/messages?controlId=UP-72`)).messages[0], 10_000);
    const detail = await getJson<{ events?: Array<{ event: { type: string } }> }>(`${base}/api/messages/${stored.id}`);
    expect(
      (detail.events ?? []).map((e) => e.event.type),
      'the final ALT (OBX-11 F) was acknowledged but made no test.completed: taken for a resend of the preliminary the previous release stored',
    ).toContain('test.completed');
    await until('the final on the chatter', () => chatter(odoo, 'ACC-UP-1').some((l) => /ALT completed.*status F/.test(l)), 30_000);
  }, 120_000);
});
