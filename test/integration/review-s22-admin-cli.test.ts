/**
 * `lab-gateway events replay|discard` (the real CLI, a separate process from the sources) seen from
 * IT's side: against the real status server over HTTP, a gateway that stops while it answers, and
 * none at all.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { cliSource, runCli } from '../fixtures/cli.ts';
import { makeConfig, makeDeadLetter, refusedPort, useStatusServer } from '../fixtures/status/harness.ts';

const ALICE = 'alice-token-4f9c2e71d0b8a356';
const BOB = 'bob-token-91d3e0c47a2f6b58';

describe('events replay|discard from the command line', () => {
  let tokenFile = '';
  const rig = useStatusServer('review-s22-admin-cli-', {
    config: (dir) => {
      tokenFile = path.join(dir, 'admin.tokens');
      writeFileSync(tokenFile, `# admins\nalice ${ALICE}\nbob ${BOB}\n`);
      return makeConfig(path.join(dir, 'data'), { status: { adminTokenFile: tokenFile } });
    },
  });

  /**
   * User sees (was): alice exported her line of the token file, as `--token-file` reads it
   * (`LAB_GATEWAY_ADMIN_TOKEN="alice 4f9c…"`): the gateway answered "the token sent is not one of
   * the admin tokens (removed or rotated since?)" for a token in force, and counted a wrong token
   * against 127.0.0.1 (ten of those lock the tray and the page out for a minute).
   */
  it('LAB_GATEWAY_ADMIN_TOKEN holding a "<name> <token>" line is read as --token-file reads it', async () => {
    const { eventId } = await makeDeadLetter(rig.store, 'S22-CLI-ENV');
    const r = await runCli(cliSource, ['events', 'replay', eventId, '--url', rig.url], { LAB_GATEWAY_ADMIN_TOKEN: `alice ${ALICE}` });
    expect(r.code, r.out + r.err).toBe(0);
    expect((await rig.store.getEvent(eventId))?.state).toBe('pending');
    const trail = await rig.server.auditLog.read();
    expect(trail.filter((e) => e.target === eventId).map((e) => [e.actor, e.action, e.outcome])).toEqual([['alice@127.0.0.1', 'replay', 'ok']]);
  }, 30_000);

  /**
   * User sees (was): an id pasted with the space or line break that came with it
   * (`events replay "01a2…abcd "`, a triple-click in a terminal or a web page) read "404: no event
   * 01a2…abcd " — the id shown, seemingly right, and the event in the list: IT took it for an event
   * of another gateway. An event id holds no white space: it is trimmed.
   */
  it('an id pasted with white space around it is the event', async () => {
    const { eventId } = await makeDeadLetter(rig.store, 'S22-CLI-PASTE');
    const r = await runCli(cliSource, ['events', 'replay', ` ${eventId}\n`, '--url', rig.url], { LAB_GATEWAY_ADMIN_TOKEN: ALICE });
    expect(r.code, r.out + r.err).toBe(0);
    expect((await rig.store.getEvent(eventId))?.state).toBe('pending');
  }, 30_000);

  /**
   * User sees (was): `--reason "   "` passed the command's own check and went to the gateway: with
   * the gateway up a 400, with it down "cannot reach the gateway" and exit 1 (a failure a script
   * retries) instead of the usage error an empty --reason gets.
   */
  it('a discard whose --reason is only spaces is a usage error before the gateway is asked', async () => {
    const url = `http://127.0.0.1:${await refusedPort()}`;
    const r = await runCli(cliSource, ['events', 'discard', '01a25226000000000000abcd', '--reason', '   ', '--url', url], { LAB_GATEWAY_ADMIN_TOKEN: ALICE });
    expect(r.code, r.out + r.err).toBe(2);
    expect(r.err).toMatch(/events discard needs --reason/);
    expect(r.err).not.toMatch(/cannot reach/);
  }, 30_000);
});

describe('a gateway that stops while it answers a replay', () => {
  // The gateway is stopped (systemctl restart, a crash) after it read the request: it may have
  // replayed the event. A real HTTP server that reads the request and closes the connection.
  let got = 0;
  const server = http.createServer((req) => {
    req.resume();
    req.on('end', () => {
      got++;
      req.socket.destroy();
    });
  });
  const listening = new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /**
   * User sees (was): "cannot reach the gateway … (is it running? see --url / --config)" — for a
   * request the gateway had received. IT took the event as not replayed (or the gateway as
   * stopped: a restart) and ran the command again, not knowing whether the first one was done.
   */
  it('says the request was sent and may have been carried out, and how to find out', async () => {
    await listening;
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const r = await runCli(cliSource, ['events', 'replay', '01a25226000000000000abcd', '--url', url], { LAB_GATEWAY_ADMIN_TOKEN: ALICE });
    const out = r.out + r.err;
    expect(got).toBe(1);
    expect(r.code, out).toBe(1);
    expect(out).toMatch(/^GW_UNREACHABLE: /);
    expect(out).not.toMatch(/is it running/);
    expect(out).toMatch(/may have been replayed/);
    expect(out).toMatch(/events list --state pending|\/api\/events\/01a25226000000000000abcd/);
  }, 30_000);
});
