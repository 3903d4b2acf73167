/**
 * What a batch's results tell the relay of the link (gateway/src/relay/relay.ts batchTrouble). A
 * pause lands while a note batch is being posted: the calls still waiting for a slot fail as "not
 * sent" (CallLimit.halt), and one already sent may meet Odoo's 429. The status must then name the
 * 429, not "paused by an operator": the IT reading `odoo.lastError` otherwise saw the pause given
 * as the reason Odoo was unreachable. A halted call alone says nothing of the link.
 */
import { describe, expect, it } from 'vitest';
import { CallLimit, isHalted } from '../../gateway/src/relay/call-limit.ts';
import { FieldMap } from '../../gateway/src/relay/odoo/field-map.ts';
import type { OdooApi } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { odooError } from '../../gateway/src/relay/odoo/odoo-error.ts';
import { batchTrouble } from '../../gateway/src/relay/relay.ts';
import type { RuleResult } from '../../gateway/src/relay/rules/index.ts';

/** The failure of a call a pause kept from being sent, made by the real call limit. */
async function haltedFailure(): Promise<unknown> {
  const api: OdooApi = { serverVersion: 17, fields: new FieldMap(), call: async <T>() => true as T };
  const limit = new CallLimit(api, 1, () => 0);
  limit.halt('paused');
  const err = await limit.call('sale.order', 'message_post').catch((e: unknown) => e);
  expect(isHalted(err)).toBe(true);
  return err;
}

const rateLimited = () => odooError('transient', 'Odoo or its proxy answered HTTP 429 (Retry-After: 60 s)', { httpStatus: 429, linkDown: true, retryAfterMs: 60_000 });

describe('batchTrouble', () => {
  it('names the 429 a sent call met, not the halted call before it', async () => {
    const results: RuleResult[] = [{ ok: false, error: await haltedFailure() }, { ok: false, error: rateLimited() }, { ok: true }];
    const t = batchTrouble(results);
    expect(t.trouble).toBe('link');
    expect(t.retryAfterMs).toBe(60_000);
    expect(String((t.error as Error).message)).toMatch(/429/);
  });

  it('halted calls alone are no news of the link', async () => {
    const t = batchTrouble([{ ok: false, error: await haltedFailure() }, { ok: true }]);
    expect(t).toEqual({ trouble: 'ok', retryAfterMs: 0 });
  });

  it('refused credentials outrank an unreachable Odoo; the first failure that counted is named', () => {
    const auth = odooError('auth', 'Odoo refused the API key', {});
    const t = batchTrouble([{ ok: false, error: rateLimited() }, { ok: false, error: auth }]);
    expect(t.trouble).toBe('auth');
    expect(String((t.error as Error).message)).toMatch(/429/);
  });
});
