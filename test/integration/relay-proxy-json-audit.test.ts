import { describe, it } from 'vitest';
import type { Interceptor } from '../fixtures/relay/front-proxy.ts';
import { answerCall, chatterNoteAnsweredByProxy, PROXY_JSON, proxyAudit, readAndWriteAnsweredByProxy } from '../fixtures/relay/proxy-audit.ts';

/**
 * Audit of a JSON-RPC answer that is JSON but not Odoo's: a front proxy or WAF answering HTTP 200
 * with its own JSON object (no `jsonrpc`, no `result`, no `error`). Odoo answers /jsonrpc with
 * `{"jsonrpc": "2.0", "id": <the request's>, …}` always, even for a method that returned None
 * (no `result` key, odoo-api.md A.1 and D). Such an answer says nothing of whether the call ran:
 * a write is ambiguous (looked up before any resend), a read is the link down.
 */

/** The proxy answers `method` on `model` with its own JSON `times` times (never sent on to Odoo). */
const ownJson = (model: string, method: string, times: number): Interceptor => answerCall(model, method, times, () => ({ body: PROXY_JSON }));

const audit = proxyAudit();

describe('a JSON-RPC answer without "jsonrpc", "result" or "error"', () => {
  it('is no success: a write is ambiguous, a read the link down', async () => {
    const { client, proxy } = await audit.clientBehindProxy(17);
    // Before: null to a look-up ("nothing found") and to a write (done though Odoo never saw it).
    await readAndWriteAnsweredByProxy(client, proxy, (model, method) => ownJson(model, method, 1));
  });

  it('a chatter note the proxy answered for Odoo is posted once, not taken as posted', async () => {
    // The proxy's answer: the site's WAF's own JSON, HTTP 200.
    await chatterNoteAnsweredByProxy(audit, 17, 'PJS1', () => ({ body: PROXY_JSON }));
  });
});
