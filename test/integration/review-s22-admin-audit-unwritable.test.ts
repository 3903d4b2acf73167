/**
 * A replay done while the audit log cannot be written (a full data disk, a file made unwritable):
 * the real status server and store, `<dataDir>/audit.log` a link to a folder that does not exist.
 */
import path from 'node:path';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cliSource, runCli } from '../fixtures/cli.ts';
import { makeConfig, makeDeadLetter, useStatusServer } from '../fixtures/status/harness.ts';

const ALICE = 'alice-token-4f9c2e71d0b8a356';

describe('an action done when its audit entry cannot be written', () => {
  const rig = useStatusServer('review-s22-admin-audit-unwritable-', {
    config: (dir) => {
      const tokenFile = path.join(dir, 'admin.tokens');
      writeFileSync(tokenFile, `alice ${ALICE}\n`);
      const dataDir = path.join(dir, 'data');
      mkdirSync(dataDir, { recursive: true });
      symlinkSync(path.join(dir, 'no-such-folder', 'audit.log'), path.join(dataDir, 'audit.log'));
      return makeConfig(dataDir, { status: { adminTokenFile: tokenFile } });
    },
  });

  /**
   * User sees (was): "GW_STORE_UNAVAILABLE: 500: internal error" — for a replay that was done. IT
   * took it as not done and replayed again ("409: is pending; only dead letters can be replayed"),
   * not knowing the trail missed the first. Now the answer says the event was replayed and that
   * its audit entry is missing (the event's own trail has it), with why.
   */
  it('says the event was replayed and its audit entry could not be written', async () => {
    const { eventId } = await makeDeadLetter(rig.store, 'S22-AUDIT-UNWRITABLE');
    const r = await runCli(cliSource, ['events', 'replay', eventId, '--url', rig.url], { LAB_GATEWAY_ADMIN_TOKEN: ALICE });
    const out = r.out + r.err;
    expect((await rig.store.getEvent(eventId))?.state).toBe('pending');
    expect(r.code, out).toBe(1);
    expect(out).not.toMatch(/internal error/);
    expect(out).toMatch(new RegExp(`event ${eventId} was replayed, but the audit log could not be written`));
    expect(out).toMatch(/ENOENT/);
  }, 30_000);
});
