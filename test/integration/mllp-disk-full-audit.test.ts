/**
 * Issue 2, "Tests that must exist": "disk-full simulation (a store that fails) → negative ACK and
 * recovery", as the LIS meets it on its MLLP link. store-disk-full.test.ts fills a real disk under
 * the store alone (no MLLP); mllp-endpoint.test.ts checks the negative ACK with a fault the store
 * injects into itself (simulateWriteFailure). Here the whole intake meets a real full disk: a real
 * tmpfs in a mount namespace of its own, the real store and MLLP listener on it in a child process
 * (test/fixtures/hl7/disk-full-mllp-child.ts), and the LIS on a real TCP connection from this
 * process. Another program fills the partition; later IT deletes its file.
 *
 * What the LIS must see: AA while there is room; then AE with ERR 207 "store unavailable" (never
 * an AA for what cannot be kept, never a silent connection), on the same connection; AA again by
 * itself once there is room, the refused message included when the LIS resends it. After a
 * restart, every message that got AA is there, and nothing that got AE.
 *
 * Two ways a disk fills: below the store's free-space floor (store.minFreeBytes, the usual case:
 * the store refuses before the file system does), and to the last byte with no floor (the floor
 * set to 0: the file system itself says ENOSPC under LevelDB and the message log).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import { repoRoot } from '../fixtures/hl7/helpers.ts';

const childScript = path.join(repoRoot, 'test/fixtures/hl7/disk-full-mllp-child.ts');
const dir = mkdtempSync(path.join(tmpdir(), 'lgw-mllp-disk-full-'));
const children: ChildProcessWithoutNullStreams[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface Child {
  send: (command: string) => void;
  next: () => Promise<Record<string, unknown>>;
  err: () => string;
}

/** The child on a real tmpfs of `size` in a mount namespace of its own (as in store-disk-full.test.ts). */
async function startChild(mode: 'reserve' | 'enospc', size: string, userNamespace: boolean): Promise<Child> {
  const mountPoint = mkdtempSync(path.join(dir, 'tmpfs-'));
  const shell = `mount -t tmpfs -o size=${size} tmpfs "$0" && exec "$@" "$0" ${mode}`;
  const argv = [...(userNamespace ? ['--map-root-user'] : []), '--mount', 'sh', '-c', shell, mountPoint, process.execPath, childScript];
  const proc = spawn('unshare', argv, { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(proc);
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const lines: string[] = [];
  const waiters: Array<(line: string | undefined) => void> = [];
  let ended = false;
  createInterface({ input: proc.stdout }).on('line', (line) => {
    const w = waiters.shift();
    if (w) w(line);
    else lines.push(line);
  });
  proc.once('exit', () => {
    ended = true;
    for (const w of waiters.splice(0)) w(undefined);
  });
  const next = async (): Promise<Record<string, unknown>> => {
    const line = lines.shift() ?? (ended ? undefined : await new Promise<string | undefined>((r) => waiters.push(r)));
    if (line === undefined) throw new Error(`the child exited: ${err.slice(-2000)}`);
    return JSON.parse(line) as Record<string, unknown>;
  };
  return { send: (c) => void proc.stdin.write(c + '\n'), next, err: () => err };
}

async function child(mode: 'reserve' | 'enospc', size: string): Promise<{ c: Child; port: number }> {
  // As root a plain mount namespace; where root lacks CAP_SYS_ADMIN (a container), or as another
  // user, one inside a user namespace mapped to root.
  const asRoot = process.getuid?.() === 0;
  let c = await startChild(mode, size, !asRoot);
  try {
    const ready = await c.next();
    return { c, port: ready.port as number };
  } catch (e) {
    if (!asRoot || !/Operation not permitted|unshare failed/.test(String(e))) throw e;
    c = await startChild(mode, size, true);
    const ready = await c.next();
    return { c, port: ready.port as number };
  }
}

// Results with an embedded report: 4 KiB each, so that a few hundred fill a log segment.
const oru = (id: string): Buffer =>
  Buffer.from(
    `MSH|^~\\&|LIS|LAB|GW|LAB|20240101120000||ORU^R01^ORU_R01|${id}|P|2.5\rPID|1||MRN-${id}\rORC|RE|ACC-${id}\rOBR|1|ACC-${id}||GLU^Glucose\rOBX|1|NM|GLU^Glucose||5.4|mmol/L|||||F\rNTE|1||${'R'.repeat(4096)}\r`,
    'latin1',
  );
const msa = (reply: Buffer): string[] => reply.toString('latin1').split('\r').find((s) => s.startsWith('MSA|'))?.split('|') ?? [];
const err = (reply: Buffer): string[] => reply.toString('latin1').split('\r').find((s) => s.startsWith('ERR|'))?.split('|') ?? [];

async function night(mode: 'reserve' | 'enospc', size: string): Promise<void> {
  const { c, port } = await child(mode, size);
  const lis = await MllpClient.connect({ host: '127.0.0.1', port, timeoutMs: 30_000 });
  const acked: string[] = [];
  const refused: string[] = [];
  let n = 0;
  const send = async (id: string): Promise<string[]> => {
    const reply = await lis.send(oru(id));
    const m = msa(reply);
    expect(m[2], `MSA-2 of ${id}`).toBe(id);
    if (m[1] === 'AA') acked.push(id);
    else {
      expect(m[1], `${id}: ${reply.toString('latin1').slice(0, 300)}`).toBe('AE');
      expect(err(reply)[3]).toBe('207^Application internal error^HL70357');
      expect(err(reply)[8]).toBe('store unavailable');
      refused.push(id);
    }
    return m;
  };

  for (let i = 0; i < 20; i++) expect((await send(`A${++n}`))[1]).toBe('AA');

  c.send('fill');
  const filled = await c.next();
  expect(filled.event).toBe('filled');
  // The partition really is full: under the floor, or to the last block.
  expect(filled.free as number).toBeLessThan(mode === 'reserve' ? 8 * 1024 * 1024 : 64 * 1024);
  // The LIS keeps sending; the first refusal may take a few messages (the store notices a floor
  // on its next check; the file system refuses once the space written ahead is used).
  let firstRefused: string | undefined;
  for (let i = 0; i < 800 && firstRefused === undefined; i++) {
    const id = `B${++n}`;
    if ((await send(id))[1] === 'AE') firstRefused = id;
  }
  expect(firstRefused, 'a negative ACK while the disk is full').toBeDefined();
  // Still refused, on the same connection: nothing is taken that cannot be kept.
  for (let i = 0; i < 5; i++) expect((await send(`C${++n}`))[1]).toBe('AE');

  c.send('free');
  expect((await c.next()).event).toBe('freed');
  // Intake resumes by itself: the LIS resends the refused message until it is taken (the store
  // checks every 100 ms; 30 s leaves room for a loaded machine).
  let resumed = false;
  for (const end = Date.now() + 30_000; Date.now() < end && !resumed; ) {
    const reply = await lis.send(oru(firstRefused!));
    if (msa(reply)[1] === 'AA') {
      resumed = true;
      acked.push(firstRefused!);
      refused.splice(refused.indexOf(firstRefused!), 1);
    } else await new Promise((r) => setTimeout(r, 50));
  }
  expect(resumed, 'AA again once the disk has room').toBe(true);
  for (let i = 0; i < 5; i++) expect((await send(`D${++n}`))[1]).toBe('AA');
  await lis.close();

  c.send('stop');
  const stopped = await c.next();
  expect(stopped.event).toBe('stopped');
  const accepted = stopped.accepted as string[];
  const counts = new Map<string, number>();
  for (const id of accepted) counts.set(id, (counts.get(id) ?? 0) + 1);
  expect(acked.filter((id) => counts.get(id) !== 1), 'acknowledged AA, not stored exactly once').toEqual([]);
  expect(refused.filter((id) => counts.has(id)), 'answered AE, yet stored').toEqual([]);
}

describe('an MLLP link on a disk that fills up, then has room again', () => {
  it('below the free-space floor: AE 207 "store unavailable", then AA by itself once room is made', async () => {
    await night('reserve', '48m');
  }, 120_000);

  it('to the last byte (no floor): AE 207 on ENOSPC, then AA by itself once room is made', async () => {
    await night('enospc', '48m');
  }, 120_000);
});
