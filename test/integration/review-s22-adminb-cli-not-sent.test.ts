/**
 * `lab-gateway events replay` (the real CLI, a separate process from the sources) when its request
 * never left the machine: a gateway host that does not take the connection (its accept queue full:
 * a real listener whose process hangs, as a host switched off behind a router or a firewall that
 * drops is seen), and a token the HTTP header cannot carry, against the real status server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { cliSource, runCli } from '../fixtures/cli.ts';
import { makeConfig, makeDeadLetter, useStatusServer } from '../fixtures/status/harness.ts';

const ALICE = 'alice-token-4f9c2e71d0b8a356';

/** A listener that never accepts (its process blocked), its accept queue filled: a connect to it hangs. */
async function unansweringHost(): Promise<{ port: number; stop: () => void }> {
  const proc: ChildProcess = spawn(
    process.execPath,
    ['-e', "const s=require('net').createServer();s.listen({host:'127.0.0.1',port:0,backlog:1},()=>{process.stdout.write(s.address().port+'\\n');setTimeout(()=>Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0),100)})"],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve) => proc.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  // Give the child the moment it asked for before it blocks, then fill the kernel's accept queue.
  await new Promise((r) => setTimeout(r, 300));
  const fillers: net.Socket[] = [];
  let connected = 0;
  for (let i = 0; i < 4; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.once('connect', () => connected++);
    fillers.push(s);
  }
  while (connected < 2) await new Promise((r) => setTimeout(r, 50));
  return {
    port,
    stop: () => {
      for (const s of fillers) s.destroy();
      proc.kill('SIGKILL');
    },
  };
}

describe('events replay whose request was never sent', () => {
  let tokenFile = '';
  const rig = useStatusServer('review-s22-adminb-cli-not-sent-', {
    config: (dir) => {
      tokenFile = path.join(dir, 'admin.tokens');
      writeFileSync(tokenFile, `alice ${ALICE}\n`);
      return makeConfig(path.join(dir, 'data'), { status: { adminTokenFile: tokenFile } });
    },
  });
  const stops: Array<() => void> = [];
  afterAll(() => stops.forEach((s) => s()));

  /**
   * User sees (was): "no answer from the gateway …: The operation was aborted due to timeout. The
   * request was sent: the event may have been replayed. Look at it … before running the command
   * again" — for a gateway whose host never took the connection (switched off behind a router, a
   * firewall dropping): nothing was sent, and IT went looking for a replay that could not be.
   */
  it('a connection never taken says the gateway cannot be reached, not that the event may have been replayed', async () => {
    const host = await unansweringHost();
    stops.push(host.stop);
    const r = await runCli(cliSource, ['events', 'replay', '01a25226000000000000abcd', '--url', `http://127.0.0.1:${host.port}`], { LAB_GATEWAY_ADMIN_TOKEN: ALICE });
    const out = r.out + r.err;
    expect(r.code, out).toBe(1);
    expect(out).not.toMatch(/may have been|was sent/);
    expect(out).toMatch(/cannot reach the gateway/);
  }, 60_000);

  /**
   * User sees (was): a token copied through a word processor (a typographic quote or dash in it)
   * read "no answer from the gateway … The request was sent: the event may have been replayed";
   * fetch refused the header before any connection.
   */
  it('a token the header cannot carry is not said to have been sent', async () => {
    const { eventId } = await makeDeadLetter(rig.store, 'S22B-CLI-NOT-SENT');
    const r = await runCli(cliSource, ['events', 'replay', eventId, '--url', rig.url], { LAB_GATEWAY_ADMIN_TOKEN: `alice ${ALICE.slice(0, 8)}\u2019${ALICE.slice(8)}` });
    const out = r.out + r.err;
    expect(r.code, out).toBe(1);
    expect(out).not.toMatch(/may have been|was sent/);
    expect((await rig.store.getEvent(eventId))?.state).toBe('dead');
    expect((await rig.server.auditLog.read()).filter((e) => e.target === eventId)).toEqual([]);
  }, 30_000);
});
