/**
 * `lab-gateway events discard` (the real CLI, a separate process from the sources) against the
 * real status server over HTTP, when status.adminTokenFile holds named tokens.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli } from '../fixtures/cli.ts';
import { makeConfig, makeDeadLetter, useStatusServer } from '../fixtures/status/harness.ts';

const ALICE = 'alice-token-4f9c2e71d0b8a356';
const BOB = 'bob-token-91d3e0c47a2f6b58';

describe('the CLI with named admin tokens', () => {
  let tokenFile = '';
  const rig = useStatusServer('cli-named-token-', {
    config: (dir) => {
      tokenFile = path.join(dir, 'admin.tokens');
      writeFileSync(tokenFile, `# admins\nalice ${ALICE}\nbob ${BOB}\n`);
      return makeConfig(path.join(dir, 'data'), { status: { adminTokenFile: tokenFile } });
    },
  });
  const configFile = (): string => {
    const file = path.join(rig.dir, 'gateway.yaml');
    writeFileSync(file, [`gateway: { id: cli-named, dataDir: ${path.join(rig.dir, 'data')} }`, 'hl7: []', 'mqtt: { listen: { host: 127.0.0.1, port: 0 } }', `status: { listen: { host: 127.0.0.1, port: 0 }, adminTokenFile: ${tokenFile} }`, ''].join('\n'));
    return file;
  };

  /**
   * User sees (was): the CLI sent the whole file of everyone's tokens as one token (a header with
   * line breaks in it): the command failed with no word of why.
   * Promise: status/README.md "Admin token": the CLI cannot guess who you are; it says to name
   * your own token, and never prints any.
   */
  it("the config's file of several people: the command says to name your own token, without printing any", async () => {
    const { eventId } = await makeDeadLetter(rig.store, 'CLI-NAMED-1');
    const r = await runCli(cliSource, ['events', 'discard', eventId, '--reason', 'duplicate', '--config', configFile(), '--url', rig.url]);
    const out = r.out + r.err;
    expect(r.code, out).not.toBe(0);
    expect(out).toMatch(/several people \(alice, bob\).*--token-file/);
    expect(out).not.toContain(ALICE);
    expect(out).not.toContain(BOB);
    expect((await rig.store.getEvent(eventId))?.state).toBe('dead');
  }, 30_000);

  it('--token-file with your own "<name> <token>" line: the action is yours in the trail', async () => {
    const { eventId } = await makeDeadLetter(rig.store, 'CLI-NAMED-2');
    const own = path.join(rig.dir, 'alice.token');
    writeFileSync(own, `alice ${ALICE}\n`);
    const r = await runCli(cliSource, ['events', 'discard', eventId, '--reason', 'duplicate', '--token-file', own, '--url', rig.url]);
    expect(r.code, r.out + r.err).toBe(0);
    const trail = await rig.server.auditLog.read();
    expect(trail.filter((e) => e.target === eventId).map((e) => [e.actor, e.action, e.outcome])).toEqual([['alice@127.0.0.1', 'discard', 'ok']]);
  }, 30_000);
});
