/**
 * Operator actions and the message browser as IT and the quality manager use them, over real HTTP
 * against a real StatusServer on a real EventStore (gateway/src/status/README.md, DESIGN.md §5).
 */
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runEvents } from '../../gateway/src/cli/remote.ts';
import { encodeText } from '../../gateway/src/hl7/charset.ts';
import { hl7Message, makeConfig, makeDeadLetter, refusedPort, relayStandIn, requestJson, useStatusServer, validatedEvent, writeAdminToken } from '../fixtures/status/harness.ts';

const TOKEN = 'operator-audit-token-7f3a';
const auth = { Authorization: `Bearer ${TOKEN}` };

describe('the message browser shows a message in the character set it came in', () => {
  const rig = useStatusServer('status-operator-charset-', {
    config: (dir) => makeConfig(path.join(dir, 'data'), { status: { adminTokenFile: writeAdminToken(dir, TOKEN) } }),
    server: () => ({ relayControl: relayStandIn() }),
  });

  it('an ISO 8859-2 message (MSH-18 8859/2) reads in Polish, not as Latin-1 mojibake, masked and revealed, and its ACK too', async () => {
    // What IT saw: a Polish LIS's message (MSH-18 "8859/2", stored by intake with encoding
    // iso-8859-2) in the message browser read "£UKASZ^¯ANETA" and "¬le pobrana" — every Polish
    // letter outside Latin-1 replaced — because the API decoded every non-UTF-8 message as Latin-1.
    // The README promises the raw text of the message; the bytes were read with the wrong table.
    const text =
      'MSH|^~\\&|LIS|LAB|GW|LAB|20260101120000||ORU^R01|PL-1|P|2.5.1|||||POL|8859/2\r' +
      'PID|1||MRN-PL||ŁUKASZ^ŻANETA||19800101|F\r' +
      'OBR|1|ACC-PL-1|SPEC-PL-1|GLU^Glukoza\r' +
      'OBX|1|NM|GLU^Glukoza||5.4|mmol/L|||||F\r' +
      'NTE|1||Źle pobrana próbka, powtórzyć\r';
    // The bytes the LIS sent (ISO 8859-2: Ł A3, Ż AF, Ź AC, ć E6), by the gateway's own encoder.
    const iso88592 = encodeText(text, 'iso-8859-2');
    expect(iso88592.subarray(iso88592.indexOf('NTE'))[7]).toBe(0xac);
    const ackText = 'MSH|^~\\&|GW|LAB|LIS|LAB|20260101120000||ACK|A-PL-1|P|2.5.1|||||POL|8859/2\rMSA|AA|PL-1\rNTE|1||Źle\r';
    const ack = encodeText(ackText, 'iso-8859-2');
    const message = { ...hl7Message(undefined, 'PL-1'), encoding: 'iso-8859-2', raw: iso88592, ack };
    const { messageId } = await rig.store.commit(message, [validatedEvent('ACC-PL-1')]);

    const masked = await requestJson(`${rig.url}/api/messages/${messageId}`);
    expect(masked.status).toBe(200);
    expect(masked.json.raw).toContain('NTE|1||Źle pobrana próbka, powtórzyć\r');
    expect(masked.json.raw).not.toContain('ŁUKASZ');
    expect(masked.json.ack).toContain('NTE|1||Źle\r');

    const revealed = await requestJson(`${rig.url}/api/messages/${messageId}?reveal=1&reason=${encodeURIComponent('patient identity check, ticket 4411')}`, { headers: auth });
    expect(revealed.status).toBe(200);
    expect(revealed.json.raw).toBe(text);
  });
});

describe('two operators on one dead letter: a discard never undoes a replay it did not see', () => {
  const rig = useStatusServer('status-operator-race-', {
    config: (dir) => makeConfig(path.join(dir, 'data'), { status: { adminTokenFile: writeAdminToken(dir, TOKEN) } }),
    server: () => ({ relayControl: relayStandIn() }),
  });
  const post = (id: string, action: 'replay' | 'discard', body: Record<string, unknown>) =>
    requestJson(`${rig.url}/api/events/${id}/${action}`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

  it('a discard sent from a dead-letter list shown before a colleague replayed the event is refused (409), and the event stays queued for Odoo', async () => {
    // What the lab saw: IT fixed the product mapping and replayed the dead letter ("mapping
    // fixed"); a colleague whose page still listed it as dead discarded it a moment later. Both
    // answers were 200 and both lines "ok" in the audit log: the result never reached Odoo, the
    // order was never billed, and the replay's author believed it sent. A replay and a discard of
    // the same event contradict each other; the second must be refused, as a replay after a
    // discard already is (409), unless the operator says the state they act on.
    const { eventId } = await makeDeadLetter(rig.store, 'RACE-STALE');
    expect((await post(eventId, 'replay', { reason: 'mapping fixed' })).status).toBe(200);
    const stale = await post(eventId, 'discard', { reason: 'no Odoo product, drop it' });
    expect(stale.status).toBe(409);
    expect(stale.json.code).toBe('GW_STORE_STATE');
    expect(stale.json.error).toMatch(/replayed/);
    expect((await rig.store.getEvent(eventId))?.state).toBe('pending');
    const audit = await requestJson(`${rig.url}/api/audit`, { headers: auth });
    const lines = (audit.json.entries as Array<{ action: string; target?: string; outcome: string }>).filter((e) => e.target === eventId);
    expect(lines.map((e) => `${e.action}:${e.outcome}`)).toEqual(['replay:ok', 'discard:failed']);

    // Said on purpose (the state the operator sees now), the discard is done.
    const meant = await post(eventId, 'discard', { reason: 'order cancelled at the desk', expectedState: 'pending' });
    expect(meant.status).toBe(200);
    expect(meant.json.state).toBe('discarded');
  });

  it('a replay and a discard of one dead letter sent at the same instant: exactly one of them is done', async () => {
    for (let i = 0; i < 5; i++) {
      const { eventId } = await makeDeadLetter(rig.store, `RACE-NOW-${i}`);
      const [replay, discard] = await Promise.all([post(eventId, 'replay', { reason: 'mapping fixed' }), post(eventId, 'discard', { reason: 'drop it' })]);
      expect([replay.status, discard.status].sort()).toEqual([200, 409]);
      const state = (await rig.store.getEvent(eventId))?.state;
      expect(state).toBe(replay.status === 200 ? 'pending' : 'discarded');
    }
  });

  it('lab-gateway events discard says who replayed the event and how to discard it on purpose (--state)', async () => {
    const { eventId } = await makeDeadLetter(rig.store, 'RACE-CLI');
    expect((await post(eventId, 'replay', { reason: 'mapping fixed' })).status).toBe(200);
    const out: string[] = [];
    const ctx = { out: (l: string) => out.push(l), err: (l: string) => out.push(l) };
    const tokenFile = path.join(rig.dir, 'admin.token');
    const refused = runEvents(['discard', eventId, '--reason', 'drop it', '--url', rig.url, '--token-file', tokenFile], ctx);
    await expect(refused).rejects.toMatchObject({ code: 'GW_STORE_STATE', message: expect.stringMatching(/replayed by token:[0-9a-f]{12}@.* \("mapping fixed"\).*--state pending/) });
    expect((await rig.store.getEvent(eventId))?.state).toBe('pending');
    expect(await runEvents(['discard', eventId, '--reason', 'order cancelled at the desk', '--state', 'pending', '--url', rig.url, '--token-file', tokenFile], ctx)).toBe(0);
    expect(out.at(-1)).toBe(`${eventId}: discarded (now discarded)`);
  });

  it('expectedState that is not the event\'s state is refused (409) and names both', async () => {
    const { eventId } = await makeDeadLetter(rig.store, 'RACE-EXPECT');
    const r = await post(eventId, 'discard', { reason: 'drop', expectedState: 'retrying' });
    expect(r.status).toBe(409);
    expect(r.json.error).toMatch(/dead.*retrying|retrying.*dead/);
    expect((await post(eventId, 'discard', { reason: 'drop', expectedState: 'nonsense' })).status).toBe(400);
    expect((await rig.store.getEvent(eventId))?.state).toBe('dead');
  });
});

describe('lab-gateway events replay/discard: what IT reads when it cannot be done', () => {
  const rig = useStatusServer('status-operator-cli-', {
    config: (dir) => makeConfig(path.join(dir, 'data'), { status: { adminTokenFile: writeAdminToken(dir, TOKEN) } }),
  });
  const ctx = { out: () => {}, err: () => {} };

  it('a wrong token is called wrong (and where the command took it from), not "admin token required"', async () => {
    // What IT saw: `lab-gateway events replay ID --token-file old.token` after the token was
    // rotated answered "401: admin token required (Authorization: Bearer <token>)" — as if none
    // had been sent — and they looked for a flag they had already given.
    const { eventId } = await makeDeadLetter(rig.store, 'CLI-WRONG');
    const old = path.join(rig.dir, 'old.token');
    writeFileSync(old, 'the-token-before-rotation\n');
    const r = runEvents(['replay', eventId, '--url', rig.url, '--token-file', old], ctx);
    await expect(r).rejects.toMatchObject({ code: 'GW_UNAUTHORIZED' });
    const message = await r.catch((e: Error) => e.message);
    expect(message).toMatch(/not the admin token/);
    expect(message).not.toMatch(/admin token required/);
    expect(message).toContain(`--token-file ${old}`);
    // Without a token at all the answer still says one is required.
    const none = await requestJson(`${rig.url}/api/events/${eventId}/replay`, { method: 'POST' });
    expect(none.status).toBe(401);
    expect(none.json.error).toMatch(/admin token required/);
    expect((await rig.store.getEvent(eventId))?.state).toBe('dead');
  });

  it('a gateway that is not running is named with the reason the connection failed (ECONNREFUSED), not only "fetch failed"', async () => {
    const url = `http://127.0.0.1:${await refusedPort()}`;
    const r = runEvents(['discard', 'ANY-ID', '--reason', 'drop', '--url', url, '--token-file', path.join(rig.dir, 'admin.token')], ctx);
    await expect(r).rejects.toMatchObject({ code: 'GW_UNREACHABLE', message: expect.stringMatching(/ECONNREFUSED/) });
  });
});
