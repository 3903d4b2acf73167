import { describe, expect, it } from 'vitest';
import { makeDeadLetter, requestJson, useStatusServer } from '../fixtures/status/harness.ts';

/**
 * Finance's scripts filtering the HTTP API after an outage: the events of one accession, and a
 * filter the API does not know. Real LevelDB in a temp dir, the real status server over HTTP.
 */
describe('GET /api/events and /api/messages filters', () => {
  const rig = useStatusServer('status-events-filter-');

  it('events of one order are listed with correlationId=, and an unknown filter is refused, not ignored', async () => {
    // What finance saw: a script asked /api/events?correlationId=ACC-FIN-2&state=dead for the dead
    // letters of one accession to discard them, and got 200 with the dead letters of every order:
    // correlationId is not a filter the API knew, so it was dropped without a word (as a
    // misspelt `stat=dead` was). The script discarded results of other patients' orders.
    const a = await makeDeadLetter(rig.store, 'FIN-1');
    const b = await makeDeadLetter(rig.store, 'FIN-2');
    const c = await makeDeadLetter(rig.store, 'FIN-3');
    const mine = await requestJson(`${rig.url}/api/events?correlationId=ACC-FIN-2&state=dead`);
    expect(mine.status).toBe(200);
    expect((mine.json.events as Array<{ event: { id: string } }>).map((e) => e.event.id)).toEqual([b.eventId]);
    expect(mine.json.next).toBeNull();
    const none = await requestJson(`${rig.url}/api/events?correlationId=ACC-FIN-2&state=pending`);
    expect(none.json.events).toEqual([]);

    const all = await requestJson(`${rig.url}/api/events?state=dead&limit=500`);
    const ids = (all.json.events as Array<{ event: { id: string } }>).map((e) => e.event.id);
    expect(ids).toEqual(expect.arrayContaining([a.eventId, b.eventId, c.eventId]));

    for (const [route, param] of [['/api/events', 'stat=dead'], ['/api/events', 'accession=ACC-FIN-2'], ['/api/messages', 'accession=ACC-FIN-2'], ['/api/messages', 'controlID=FIN-2']] as const) {
      const r = await requestJson(`${rig.url}${route}?${param}`);
      expect(r.status, `${route}?${param}`).toBe(400);
      expect(r.json.error).toContain(param.split('=')[0]);
    }
  });
});
