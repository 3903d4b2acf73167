/**
 * The call limit's gate (gateway/src/relay/call-limit.ts): after the first call that meets the
 * link down, nothing more is sent before the server's Retry-After (the night's 429, in
 * test/e2e/outage-night-audit.test.ts, was followed by eleven more notes at once). Odoo is remote:
 * a stand-in client counts what would have been sent.
 */
import { describe, expect, it } from 'vitest';
import { CallLimit, isHalted } from '../../gateway/src/relay/call-limit.ts';
import { FieldMap } from '../../gateway/src/relay/odoo/field-map.ts';
import type { OdooApi } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { isLinkDown, mayHaveLanded, odooError, retryAfterOf } from '../../gateway/src/relay/odoo/odoo-error.ts';

/** A client whose answers are queued by the test; `sent` lists what reached "Odoo". */
function standIn() {
  const answers: Array<() => unknown> = [];
  const sent: string[] = [];
  const api: OdooApi = {
    serverVersion: 17,
    fields: new FieldMap(),
    async call<T>(model: string, method: string): Promise<T> {
      sent.push(`${model}.${method}`);
      const next = answers.shift();
      return (next ? next() : true) as T;
    },
  };
  return { api, sent, answer: (a: () => unknown) => answers.push(a) };
}

const rateLimited = () => odooError('transient', 'Odoo or its proxy answered HTTP 429 (Retry-After: 60 s)', { httpStatus: 429, linkDown: true, retryAfterMs: 60_000 });

describe('CallLimit gate', () => {
  it('after a 429 with Retry-After, later calls fail at once with that failure and are not sent', async () => {
    let mono = 0;
    const { api, sent, answer } = standIn();
    const limit = new CallLimit(api, 4, () => mono);
    limit.holdUntilReopened(true);
    answer(() => {
      throw rateLimited();
    });
    await expect(limit.call('sale.order', 'message_post')).rejects.toThrow(/429/);
    mono += 1000;
    const held = await limit.call('sale.order', 'message_post').catch((e: unknown) => e);
    expect(sent).toEqual(['sale.order.message_post']);
    expect(isLinkDown(held), 'released like a link failure: not charged').toBe(true);
    expect(retryAfterOf(held), 'what is left of the Retry-After').toBe(59_000);
    // The relay's back-off cannot end before the server's time.
    expect(limit.reopen()).toBe(59_000);
    mono += 59_000;
    expect(limit.reopen()).toBe(0);
    await limit.call('sale.order', 'message_post');
    expect(sent).toHaveLength(2);
  });

  it('a call held back after a 504 to a write is not "may have landed" (it was never sent)', async () => {
    const { api, answer } = standIn();
    const limit = new CallLimit(api, 1, () => 0);
    limit.holdUntilReopened(true);
    answer(() => {
      throw odooError('transient', "Odoo's proxy answered HTTP 504 to a write", { httpStatus: 504, linkDown: true, mayHaveLanded: true });
    });
    const first = await limit.call('sale.order', 'load').catch((e: unknown) => e);
    const second = await limit.call('sale.order', 'load').catch((e: unknown) => e);
    expect([mayHaveLanded(first), mayHaveLanded(second)]).toEqual([true, false]);
  });

  it('calls waiting for a permit when the link fails are not sent either', async () => {
    const { api, sent, answer } = standIn();
    const limit = new CallLimit(api, 1, () => 0);
    limit.holdUntilReopened(true);
    answer(() => {
      throw rateLimited();
    });
    const calls = ['a', 'b', 'c'].map((m) => limit.call('sale.order', m).catch((e: unknown) => e));
    const outcomes = await Promise.all(calls);
    expect(sent).toEqual(['sale.order.a']);
    expect(outcomes.every((e) => isLinkDown(e))).toBe(true);
  });

  it('without the relay loop to reopen it, a failure without Retry-After holds nothing back', async () => {
    const { api, sent, answer } = standIn();
    const limit = new CallLimit(api, 1, () => 0);
    answer(() => {
      throw odooError('transient', 'Odoo or its proxy answered HTTP 502', { httpStatus: 502, linkDown: true });
    });
    await limit.call('stock.move', 'search_read').catch(() => undefined);
    await limit.call('stock.move', 'search_read');
    expect(sent).toEqual(['stock.move.search_read', 'stock.move.search_read']);
  });

  it('a halt (pause or stop) fails the calls not sent yet as not sent, while the one already sent is answered as Odoo answered it, and does not close the gate', async () => {
    const { api, sent } = standIn();
    let answerFirst: (v: unknown) => void = () => undefined;
    const inFlight: OdooApi = { ...api, call: <T>(model: string, method: string) => (sent.push(`${model}.${method}`), new Promise<T>((r) => (answerFirst = r as (v: unknown) => void))) };
    const limit = new CallLimit(inFlight, 1, () => 0);
    limit.holdUntilReopened(true);
    const first = limit.call('sale.order', 'message_post');
    // Waits for the one permit: not sent yet when the halt comes.
    const waiting = limit.call('sale.order', 'message_post').catch((e: unknown) => e);
    limit.halt('paused');
    answerFirst(42);
    expect(await first, 'the call already sent keeps its answer').toBe(42);
    const held = await waiting;
    expect(isHalted(held)).toBe(true);
    expect(mayHaveLanded(held)).toBe(false);
    expect(await limit.call('sale.order', 'message_post').catch((e: unknown) => isHalted(e))).toBe(true);
    expect(sent).toEqual(['sale.order.message_post']);
    limit.unhalt();
    // The halt said nothing of the link: the gate never closed, so no reopen() is needed.
    const next = limit.call('sale.order', 'message_post');
    answerFirst(7);
    expect(await next).toBe(7);
    expect(sent).toHaveLength(2);
  });
});
