import { afterEach, describe, expect, it } from 'vitest';
import { HttpTransport } from '../../gateway/src/relay/odoo/http-transport.ts';
import { failureOf, isLinkDown } from '../../gateway/src/relay/odoo/odoo-error.ts';
import { answerAfterRequest, BROKEN_ANSWERS } from '../fixtures/relay/broken-answers.ts';

/**
 * Audit of the words a request sent whole and never answered in full gets. IT reads them in the
 * event's reason and the link's last error ("Odoo: …" on the status page). Before, every case said
 * "no answer from Odoo after the request was sent", also when Odoo had answered (status line and
 * headers read) and the answer was cut on its way: IT looked for an Odoo that did not answer,
 * when Odoo had run the call and its answer was lost between it and the lab (a proxy restarted, the
 * Wi-Fi cut). Each case now says what happened; the classes are unchanged (ambiguous for a write,
 * the link down for a read: test/integration/relay-answer-cut-audit.test.ts).
 */

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

describe('a request sent whole whose answer never came whole', () => {
  for (const { what, behave, words } of BROKEN_ANSWERS) {
    it(`${what}: says so`, async () => {
      const server = await answerAfterRequest(behave);
      closers.push(server.close);
      const transport = new HttpTransport({ url: server.url, timeoutMs: 800 });
      closers.unshift(() => transport.close());
      const write = await transport.post('/jsonrpc', { params: { method: 'execute_kw' } }, {}, false).then(() => undefined, (e: unknown) => e);
      expect(failureOf(write)).toBe('ambiguous');
      expect((write as Error).message).toMatch(words);
      expect((write as Error).message).toMatch(/: it may have been applied$/);
      const read = await transport.post('/jsonrpc', { params: { method: 'execute_kw' } }, {}, true).then(() => undefined, (e: unknown) => e);
      expect(failureOf(read)).toBe('transient');
      expect(isLinkDown(read)).toBe(true);
      expect((read as Error).message).toMatch(words);
    });
  }
});
