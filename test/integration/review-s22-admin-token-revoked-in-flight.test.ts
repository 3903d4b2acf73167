/**
 * An admin token removed from status.adminTokenFile while a request made with it is in flight: the
 * real status server, a real TCP socket sending the request's body slowly.
 */
import net from 'node:net';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { makeConfig, makeDeadLetter, useStatusServer } from '../fixtures/status/harness.ts';

const ALICE = 'alice-token-4f9c2e71d0b8a356';
const BOB = 'bob-token-91d3e0c47a2f6b58';

describe('a token removed while its request is in flight', () => {
  let tokenFile = '';
  const rig = useStatusServer('review-s22-admin-revoked-', {
    config: (dir) => {
      tokenFile = path.join(dir, 'admin.tokens');
      writeFileSync(tokenFile, `alice ${ALICE}\nbob ${BOB}\n`);
      return makeConfig(path.join(dir, 'data'), { status: { adminTokenFile: tokenFile } });
    },
  });

  /**
   * User sees (was): the token was looked at when the request's headers came, the action done when
   * its body had come (up to Node's 5-minute request timeout later). A person whose line IT removed
   * (a leaver, a leaked token) could open requests beforehand and have them discard events after
   * the removal, in their name. Now the token is looked at again once the body is in.
   */
  it('a discard whose body comes after the removal is refused, and the event stays', async () => {
    const { eventId } = await makeDeadLetter(rig.store, 'S22-REVOKED-1');
    const body = JSON.stringify({ reason: 'duplicate order' });
    const sock = net.connect(rig.port, '127.0.0.1');
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    let answer = '';
    sock.on('data', (d: Buffer) => (answer += d.toString()));
    const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    sock.write(
      [`POST /api/events/${eventId}/discard HTTP/1.1`, `Host: 127.0.0.1:${rig.port}`, `Authorization: Bearer ${ALICE}`, 'Content-Type: application/json', `Content-Length: ${body.length}`, 'Connection: close', '', body.slice(0, 5)].join('\r\n'),
    );
    // The gateway has the headers (and looked at the token: bob's request after it is answered).
    const bobCheck = await fetch(`${rig.url}/api/admin/check`, { headers: { authorization: `Bearer ${BOB}` } });
    expect(bobCheck.status).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    // IT removes alice's line.
    writeFileSync(tokenFile, `bob ${BOB}\n`);
    sock.write(body.slice(5));
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect((await rig.store.getEvent(eventId))?.state).toBe('dead');
    const trail = await rig.server.auditLog.read();
    expect(trail.filter((e) => e.target === eventId && e.outcome === 'ok')).toEqual([]);
  }, 30_000);
});
