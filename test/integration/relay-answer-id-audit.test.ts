import { describe, expect, it } from 'vitest';
import { failureOf } from '../../gateway/src/relay/odoo/odoo-error.ts';
import type { Interceptor } from '../fixtures/relay/front-proxy.ts';
import { answerCall, chatterNoteAnsweredByProxy, failed, proxyAudit, readAndWriteAnsweredByProxy } from '../fixtures/relay/proxy-audit.ts';

/**
 * Audit of a JSON-RPC answer that is Odoo's in form but another request's: a web proxy's cache
 * answering a POST to /jsonrpc from an earlier call, or a late answer read on a reused
 * connection. Odoo echoes the request's id in every answer (odoo-api.md A.1, D); an answer with
 * another id says nothing of this call: a write is ambiguous (looked up before any resend), a read
 * is the link down.
 */

/** The envelope of the request before `req` (its id − 1), carrying `result`. */
const stale = (result: unknown) => (req: { json: unknown }) => {
  const id = (req.json as { id?: unknown }).id;
  return { body: JSON.stringify({ jsonrpc: '2.0', id: typeof id === 'number' ? id - 1 : 0, result }) };
};

/** The proxy answers `method` on `model` `times` times with the envelope of the request before. */
const staleAnswer = (model: string, method: string, times: number, result: unknown): Interceptor => answerCall(model, method, times, stale(result));

const audit = proxyAudit();

describe("a JSON-RPC answer carrying another request's id", () => {
  it('is no answer to this call: a write is ambiguous, a read the link down', async () => {
    const { client, proxy } = await audit.clientBehindProxy(17);
    // A stale [] to a look-up (before: "nothing found"), a stale true to a write (before: done).
    const read = await readAndWriteAnsweredByProxy(client, proxy, (model, method) => staleAnswer(model, method, 1, method === 'write' ? true : []));
    expect(read.message).toMatch(/another request/);
  });

  it("an error Odoo met before reading the request (id null) is still Odoo's error", async () => {
    // JsonRPCDispatcher's request_id is None until it has read the body: a failure before (a
    // request over the server's size limit) is answered `"id": null`. Refused as "another
    // request's", it would read as the link down and be retried for ever.
    const { client, proxy } = await audit.clientBehindProxy(17);
    const error = { code: 200, message: 'Odoo Server Error', data: { name: 'odoo.exceptions.UserError', debug: '', message: 'Refused before reading', arguments: ['Refused before reading'], context: {} } };
    proxy.intercept(answerCall('sale.order', 'load', 1, () => ({ body: JSON.stringify({ jsonrpc: '2.0', id: null, error }) })));
    const err = await failed(client.call('sale.order', 'load', { fields: ['id'], data: [['lab_gateway.x']] }));
    expect(failureOf(err)).toBe('permanent');
    expect((err as Error).message).toMatch(/^odoo\.exceptions\.UserError: Refused before reading/);
  });

  it("a chatter note answered from the proxy's cache is posted once, not taken as posted", async () => {
    // The proxy's answer: a cached answer of an earlier call (a message id, HTTP 200, Odoo's envelope).
    await chatterNoteAnsweredByProxy(audit, 17, 'AID1', stale(77));
  });
});
