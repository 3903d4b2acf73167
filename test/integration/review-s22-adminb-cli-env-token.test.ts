/**
 * `lab-gateway events replay` (the real CLI, a separate process from the sources) with its token in
 * LAB_GATEWAY_ADMIN_TOKEN, against the real status server and store over HTTP.
 */
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli } from '../fixtures/cli.ts';
import { makeConfig, makeDeadLetter, useStatusServer } from '../fixtures/status/harness.ts';

// A token from a password generator with symbols: its first character is '#'.
const ALICE = '#q7T!d9Lw2xZ@r4Kp8Vb';

describe('LAB_GATEWAY_ADMIN_TOKEN holding a bare token', () => {
  const rig = useStatusServer('review-s22-adminb-cli-env-token-', {
    config: (dir) => {
      const tokenFile = path.join(dir, 'admin.tokens');
      writeFileSync(tokenFile, `alice ${ALICE}\n`);
      return makeConfig(path.join(dir, 'data'), { status: { adminTokenFile: tokenFile } });
    },
  });

  /**
   * User sees (was): "an admin token is needed: --token-file FILE, LAB_GATEWAY_ADMIN_TOKEN, or
   * status.adminTokenFile in the config" (exit 2) with LAB_GATEWAY_ADMIN_TOKEN set to her token,
   * one the gateway accepts: since c45b9cf the variable was read as a file's text, where a line
   * starting with '#' is a comment. Before c45b9cf it was sent as it is.
   */
  it('a token starting with # is the token, not a comment', async () => {
    const { eventId } = await makeDeadLetter(rig.store, 'S22B-CLI-ENV-HASH');
    const r = await runCli(cliSource, ['events', 'replay', eventId, '--url', rig.url], { LAB_GATEWAY_ADMIN_TOKEN: ALICE });
    expect(r.code, r.out + r.err).toBe(0);
    expect((await rig.store.getEvent(eventId))?.state).toBe('pending');
    const trail = await rig.server.auditLog.read();
    expect(trail.filter((e) => e.target === eventId).map((e) => [e.actor, e.action, e.outcome])).toEqual([['alice@127.0.0.1', 'replay', 'ok']]);
  }, 30_000);
});
