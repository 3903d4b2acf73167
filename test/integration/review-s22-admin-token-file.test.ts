/**
 * status.adminTokenFile edited while the gateway runs, into a file that holds no token in force
 * (every line with a problem: a token pasted short, an editor's half-written save; or comments
 * only): the real status server over HTTP.
 */
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { makeConfig, makeDeadLetter, requestJson, useStatusServer } from '../fixtures/status/harness.ts';

const ALICE = 'alice-token-4f9c2e71d0b8a356';

describe('a token file that holds no token in force', () => {
  let tokenFile = '';
  const rig = useStatusServer('review-s22-admin-token-file-', {
    config: (dir) => {
      tokenFile = path.join(dir, 'admin.tokens');
      writeFileSync(tokenFile, `alice ${ALICE}\n`);
      return makeConfig(path.join(dir, 'data'), { status: { adminTokenFile: tokenFile } });
    },
  });

  /**
   * User sees (was): "admin actions are disabled: set status.adminTokenFile" — while it is set. IT
   * looked at the config (right) instead of the file (its one line cut short). Now the answer
   * names the file as the place to look, and the gateway's log names the line (never a token; the
   * answer names no line, since it goes to anyone who asks).
   */
  it('is said to be the token file, not a missing setting; a token written back works at once', async () => {
    const { eventId } = await makeDeadLetter(rig.store, 'S22-TOKFILE-1');
    writeFileSync(tokenFile, `alice ${ALICE.slice(0, 10)}\n`);
    const refused = await requestJson(`${rig.url}/api/events/${eventId}/replay`, { method: 'POST', headers: { authorization: `Bearer ${ALICE}` }, body: '{}' });
    expect(refused.status).toBe(403);
    expect(refused.json.error).not.toMatch(/set status\.adminTokenFile/);
    expect(refused.json.error).toMatch(/status\.adminTokenFile holds no admin token in force/);
    expect(refused.text).not.toContain('alice');
    expect((await rig.store.getEvent(eventId))?.state).toBe('dead');
    writeFileSync(tokenFile, `alice ${ALICE}\n`);
    const ok = await requestJson(`${rig.url}/api/events/${eventId}/replay`, { method: 'POST', headers: { authorization: `Bearer ${ALICE}` }, body: '{}' });
    expect(ok.status, ok.text).toBe(200);
  }, 30_000);
});
