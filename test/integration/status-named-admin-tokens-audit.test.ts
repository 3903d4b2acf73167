import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AuditEntry } from '../../gateway/src/status/admin-audit.ts';
import { createLogger } from '../../gateway/src/log.ts';
import { makeConfig, makeDeadLetter, relayStandIn, requestJson, useStatusServer } from '../fixtures/status/harness.ts';

/**
 * Named admin tokens (status/README.md "Admin token"): `status.adminTokenFile` holds one
 * `<name> <token>` line per person. The real status server over HTTP, a real LevelDB store in a
 * temp dir, the real audit log and token file, the server's own log lines.
 */
const ALICE = 'alice-token-4f9c2e71d0b8a356';
const BOB = 'bob-token-91d3e0c47a2f6b58';
const AL = 'al-token-0c5e8b17f3a94d62';
const CAROL = 'carol-token-7a1d9e4c2b6f8035';
const FILE = ['# lab-gateway admin tokens: one line per person, <name> <token>', '', `alice ${ALICE}`, `bob ${BOB}`, `al ${AL}`, ''].join('\n');

describe('named admin tokens: who did what', () => {
  let tokenFile = '';
  const logLines: string[] = [];
  const relay = relayStandIn();
  const rig = useStatusServer('status-named-tokens-', {
    config: (dir) => {
      tokenFile = path.join(dir, 'admin.tokens');
      writeFileSync(tokenFile, FILE);
      return makeConfig(path.join(dir, 'data'), { status: { adminTokenFile: tokenFile } });
    },
    server: () => ({ relayControl: relay, log: createLogger({ level: 'debug', write: (l) => logLines.push(l) }) }),
  });
  const as = (token: string) => ({ Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' });
  const check = async (token: string) => requestJson(`${rig.url}/api/admin/check`, { headers: as(token) });

  /**
   * User sees (was): the finance manager asks who discarded last month's invoice event and who
   * paused billing at month-end. The trail reads `token:3f0a…@10.0.0.5` for both: everyone who
   * may act shares one token, so it cannot say which person it was.
   * Promise: status/README.md "Admin token": each line of the file names a person, and the
   * trail, the log, the pause and the check name them.
   */
  it('each action is attributed to the name of the token used: trail, check, relay pause', async () => {
    const a = await check(ALICE);
    expect(a.status).toBe(200);
    expect(a.json).toMatchObject({ ok: true, name: 'alice', actor: 'alice@127.0.0.1' });
    expect(a.json.tokenId).toMatch(/^[0-9a-f]{12}$/);
    expect((await check(BOB)).json.tokenId).not.toBe(a.json.tokenId);

    const { eventId } = await makeDeadLetter(rig.store, 'NAMED-1');
    const discard = await requestJson(`${rig.url}/api/events/${eventId}/discard`, { method: 'POST', headers: as(ALICE), body: JSON.stringify({ reason: 'invoice already raised by hand' }) });
    expect(discard.status, discard.text).toBe(200);

    const pause = await requestJson(`${rig.url}/api/relay/pause`, { method: 'POST', headers: as(BOB), body: JSON.stringify({ reason: 'month-end close' }) });
    expect(pause.status, pause.text).toBe(200);
    const status = await requestJson(`${rig.url}/api/status`);
    expect(status.json.relayPause).toMatchObject({ by: 'bob@127.0.0.1', reason: 'month-end close' });

    const trail = await rig.server.auditLog.read();
    expect(trail.map((e) => [e.actor, e.action])).toEqual([
      ['alice@127.0.0.1', 'discard'],
      ['bob@127.0.0.1', 'relay-pause'],
    ]);

    // `actor=<name>` is that person's actions: alice's, not al's (a name is matched whole).
    const second = await makeDeadLetter(rig.store, 'NAMED-2');
    const alDiscard = await requestJson(`${rig.url}/api/events/${second.eventId}/discard`, { method: 'POST', headers: as(AL), body: JSON.stringify({ reason: 'duplicate' }) });
    expect(alDiscard.status, alDiscard.text).toBe(200);
    const alice = await requestJson(`${rig.url}/api/audit?actor=alice`, { headers: as(BOB) });
    expect(alice.status).toBe(200);
    expect(alice.json.entries.map((e: AuditEntry) => [e.actor, e.action, e.target])).toEqual([['alice@127.0.0.1', 'discard', eventId]]);
    const al = await requestJson(`${rig.url}/api/audit?actor=al`, { headers: as(BOB) });
    expect(al.json.entries.map((e: AuditEntry) => [e.actor, e.action, e.target])).toEqual([['al@127.0.0.1', 'discard', second.eventId]]);
    // The event's own trail names her too.
    const ev = await requestJson(`${rig.url}/api/events/${encodeURIComponent(eventId)}`);
    expect(JSON.stringify(ev.json)).toContain('alice@127.0.0.1');

    await requestJson(`${rig.url}/api/relay/resume`, { method: 'POST', headers: as(BOB), body: '{}' });
  });

  /**
   * User sees (was): a technician leaves the lab. Taking her access away meant a new shared token
   * for everyone, handed out again to every admin, every script and the tray.
   * Promise: status/README.md "Admin token": removing a person's line refuses their token at the
   * next request, without a restart, and the others' tokens stay good; the log names who was
   * added and removed, never a token.
   */
  it("removing a person's line refuses their token at once; the others keep working; the log names the change", async () => {
    expect((await check(BOB)).status).toBe(200);
    writeFileSync(tokenFile, ['# bob left on 30 Nov', `alice ${ALICE}`, `al ${AL}`, `carol ${CAROL}`, ''].join('\n'));

    const refused = await check(BOB);
    expect(refused.status).toBe(401);
    expect((await check(ALICE)).json.actor).toBe('alice@127.0.0.1');
    expect((await check(CAROL)).json.actor).toBe('carol@127.0.0.1');
    expect((await check(AL)).status).toBe(200);

    const changed = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => String(l.msg).startsWith('admin tokens changed'));
    expect(changed).toHaveLength(1);
    expect(changed[0]).toMatchObject({ added: ['carol'], removed: ['bob'] });
    for (const secret of [ALICE, BOB, AL, CAROL]) expect(logLines.join('\n')).not.toContain(secret);
  });

  /**
   * A line broken while editing the file (a name with a space, a token pasted twice) must not
   * keep a removed person in or lock everyone out: that line alone is not in force, and the log
   * says which line, without the token.
   */
  it('a broken line written while the gateway runs: that line is refused, the others are kept, the log names its line', async () => {
    writeFileSync(tokenFile, [`alice ${ALICE}`, `al ${AL} extra`, `carol ${CAROL}`, ''].join('\n'));
    expect((await check(AL)).status).toBe(401);
    expect((await check(ALICE)).status).toBe(200);
    expect((await check(CAROL)).status).toBe(200);
    const problem = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => String(l.msg).includes('line 2'));
    expect(problem, logLines.join('\n')).toBeDefined();
    expect(logLines.join('\n')).not.toContain(AL);
  });
});

describe('a file holding one bare token (the format of before) works as before', () => {
  const TOKEN = 'shared-token-of-before-0123';
  const rig = useStatusServer('status-bare-token-', {
    config: (dir) => {
      const file = path.join(dir, 'admin.token');
      writeFileSync(file, TOKEN + '\n');
      return makeConfig(path.join(dir, 'data'), { status: { adminTokenFile: file } });
    },
  });

  it('the actor is token:<id>@<address>, as before', async () => {
    const r = await requestJson(`${rig.url}/api/admin/check`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(r.status).toBe(200);
    expect(r.json.actor).toBe(`token:${r.json.tokenId}@127.0.0.1`);
    expect(r.json.name ?? null).toBeNull();
  });
});
