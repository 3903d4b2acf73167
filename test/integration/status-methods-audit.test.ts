import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { makeConfig, makeDeadLetter, relayStandIn, requestJson, useStatusServer, writeAdminToken } from '../fixtures/status/harness.ts';

/**
 * An operator's script or curl line sending an action with the wrong method: the answer names the
 * method the route takes, not "no such resource". Real LevelDB in a temp dir, the real status
 * server over HTTP.
 */
const TOKEN = 'methods-token-2c7a';

describe('the wrong method on a route that exists is 405 naming the one it takes', () => {
  const rig = useStatusServer('status-methods-', {
    config: (dir) => makeConfig(path.join(dir, 'data'), { status: { adminTokenFile: writeAdminToken(dir, TOKEN) } }),
    server: () => ({ relayControl: relayStandIn() }),
  });

  it('GET on replay/discard/pause and POST on a read route: 405 with Allow, the event untouched', async () => {
    // What IT saw: `curl http://gateway:8484/api/events/<id>/replay -H 'Authorization: …'` (no -X
    // POST) answered 404 "no such resource": IT took the event id for wrong and went looking for
    // it in the store, while the dead letter waited. HTTP has 405 for a route that exists but not
    // with that method (RFC 9110 §15.5.6), with an Allow header naming the one it takes.
    const { eventId } = await makeDeadLetter(rig.store, 'METHOD-1');
    for (const p of [`/api/events/${eventId}/replay`, `/api/events/${eventId}/discard`, '/api/relay/pause']) {
      const r = await fetch(rig.url + p, { headers: { Authorization: `Bearer ${TOKEN}` } });
      const body = (await r.json()) as { error: string };
      expect(r.status, p).toBe(405);
      expect(r.headers.get('allow'), p).toBe('POST');
      expect(body.error, p).toMatch(/POST/);
    }
    expect((await rig.store.getEvent(eventId))?.state).toBe('dead');
    for (const p of ['/api/status', `/api/events/${eventId}`, '/api/events', '/metrics']) {
      const r = await requestJson(rig.url + p, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' }, body: '{}' });
      expect(r.status, p).toBe(405);
      expect(r.json.error, p).toMatch(/GET/);
    }
    // A path that is no route at all stays 404.
    expect((await requestJson(`${rig.url}/api/event/${eventId}/replay`)).status).toBe(404);
    expect((await requestJson(`${rig.url}/api/nothing`, { method: 'POST', body: '{}' })).status).toBe(404);
  });
});
