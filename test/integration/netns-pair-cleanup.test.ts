import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { readdir, readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../fixtures/gateway-process.ts';
import { repoRoot } from '../fixtures/hl7/helpers.ts';
import { GATEWAY_ADDRESS, netnsPair } from '../fixtures/net/netns-pair.ts';

/**
 * The network-namespace fixture of the vanished-peer tests (test/fixtures/net/netns-pair.ts)
 * leaves nothing behind: no process in its namespaces, so the namespaces and their veth pair go
 * with them. Before, `close()` returned while its children were still dying (the test then
 * removed the data dir of a gateway child still running), and a test run killed hard (a crash,
 * a `timeout` wrapper, kill -9) left its namespaces' holders sleeping for 27 hours and the MLLP
 * gateway child listening for ever: the children now end when their stdin does (the test process
 * is gone), as the other fixture children do (hl7/disk-full-mllp-child.ts).
 */
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

/** The pids of the processes whose network namespace is one of `namespaces` (`net:[…]`). */
async function processesIn(namespaces: string[]): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const ns = await readlink(`/proc/${name}/ns/net`).catch(() => '');
    if (namespaces.includes(ns)) found.push(Number(name));
  }
  return found;
}

function tempDataDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'lgw-netns-cleanup-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('the netns pair leaves nothing behind', () => {
  it('close() resolves once no process is left in its namespaces', async () => {
    const pair = await netnsPair();
    cleanups.push(() => void pair.close());
    const gw = pair.gateway(path.join(repoRoot, 'test/fixtures/net/gateway-child.ts'), ['mllp', tempDataDir(), GATEWAY_ADDRESS, '60000']);
    const ready = await gw.waitFor('the MLLP listener', (e) => e.event === 'ready');
    const lis = pair.peer(path.join(repoRoot, 'test/fixtures/net/tcp-peer-child.ts'), ['connect', GATEWAY_ADDRESS, String(ready.port)]);
    await lis.waitFor('the LIS connected', (e) => e.event === 'connected');
    const namespaces = await Promise.all([gw, lis].map((c) => readlink(`/proc/${c.process.pid}/ns/net`)));
    expect(new Set(namespaces).size).toBe(2);
    expect((await processesIn(namespaces)).length).toBeGreaterThanOrEqual(4);
    await pair.close();
    expect(await processesIn(namespaces)).toEqual([]);
  }, 60_000);

  it('a test process killed hard (kill -9) leaves no process in its namespaces', async () => {
    const owner = spawn(process.execPath, [path.join(repoRoot, 'test/fixtures/net/netns-pair-owner-child.ts'), tempDataDir()], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let namespaces: string[] = [];
    cleanups.push(() => {
      if (owner.exitCode === null) owner.kill('SIGKILL');
      // Whatever the fixture left (the failure this test is about) is not left running.
      void processesIn(namespaces).then((pids) => pids.forEach((p) => process.kill(p, 'SIGKILL')));
    });
    let err = '';
    owner.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const ready = await new Promise<{ namespaces: string[] }>((resolve, reject) => {
      createInterface({ input: owner.stdout }).on('line', (line) => {
        const e = JSON.parse(line) as { event: string; namespaces: string[] };
        if (e.event === 'ready') resolve(e);
      });
      owner.once('exit', (code) => reject(new Error(`the owner exited with ${code}: ${err}`)));
    });
    namespaces = ready.namespaces;
    expect((await processesIn(namespaces)).length).toBeGreaterThanOrEqual(4);
    owner.kill('SIGKILL');
    const left = await until('no process left in the namespaces', async () => {
      const pids = await processesIn(namespaces);
      return pids.length === 0 ? pids : undefined;
    }, 15_000).catch(async () => processesIn(namespaces));
    expect(left).toEqual([]);
  }, 60_000);
});
