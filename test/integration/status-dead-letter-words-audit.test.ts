import { describe, expect, it } from 'vitest';
import { makeDeadLetter, requestJson, useStatusServer, waitFor } from '../fixtures/status/harness.ts';

/**
 * What a dead letter's health reason tells the technician who gets it as a tray notification and
 * the IT person who reads it on the page or in /api/status: the real status server on a real
 * store, read over HTTP.
 */
describe('the words of DEAD_LETTERS', () => {
  const rig = useStatusServer('status-dead-words-');

  interface Reason { code: string; message: string }
  const deadReason = async (): Promise<Reason | undefined> => {
    const r = await requestJson(`${rig.url}/api/status`);
    return (r.json.healthReasons as Reason[]).find((x) => x.code === 'DEAD_LETTERS');
  };

  /**
   * User sees: a billing event (a validated result of accession ACC-DL-1) was dead-lettered: its
   * product has no Odoo counterpart. The tray pops up "1 dead letter waiting for a decision
   * (replay or discard)". The technician does not know what a dead letter is, which sample it is
   * about, nor who decides; the invoice line waits until somebody happens to open the status
   * page's Dead letters tab.
   * Promise: DESIGN.md §2 "answered … with a clear reason and kept, raw, for an operator"; the
   * article's "business exceptions such as unmatched orders" visible to the operational team.
   */
  it('names what waits, why, and where it is decided', async () => {
    const { eventId } = await makeDeadLetter(rig.store, 'DL-1', 'product GLU has no Odoo counterpart (product.product default_code GLU)');
    const reason = await waitFor(() => deadReason().then((r) => (r && /ACC-DL-1/.test(r.message) ? r : undefined)), "the dead letter named in the reason", 3_000).catch(async () => deadReason());
    expect(reason?.message).toBe(
      "1 dead letter (result.validated of ACC-DL-1: product GLU has no Odoo counterpart (product.product default_code GLU)) waiting for an administrator's decision (replay or discard, on the status page's Dead letters tab)",
    );
    // Decided: the reason is gone.
    await rig.store.discard(eventId, 'test', 'mapped by hand in Odoo');
    await waitFor(async () => ((await deadReason()) === undefined ? true : undefined), 'the reason cleared');
  });
});
