import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../gateway/src/log.ts';
import { OdooClient } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { lookupExternalId } from '../../gateway/src/relay/odoo/odoo-calls.ts';
import { failureOf } from '../../gateway/src/relay/odoo/odoo-error.ts';
import { BOT, startEmulator } from '../fixtures/relay/harness.ts';

/**
 * Audit of the external-id look-up before a load when the record exists but the gateway's user
 * does not see it (archived, or of a company the user is not in): Odoo's
 * `check_object_reference` answers `[model, false]` (raise_on_access_error=False), not "External
 * ID not found". That is no miss: loading the external id again writes the record again (its
 * one2many lines twice, odoo-api.md D) or is refused with a message naming neither.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('an external id whose record the gateway cannot see', () => {
  it.each([17, 19] as const)('Odoo %i: is an operator matter naming the record, not a miss', async (version) => {
    const { emu, url } = await startEmulator(version);
    cleanups.push(() => emu.close());
    // A record the gateway wrote under its external id, archived since by a user.
    const loaded = emu.call('product.product', 'load', [['id', 'name'], [['lab_gateway.hidden_kit', 'Hidden kit']]]) as { ids: number[] };
    emu.call('product.product', 'write', [loaded.ids, { active: false }]);
    const client = new OdooClient({ url, database: 'lab', login: BOT.login, apiKey: BOT.key, timeoutMs: 5000, log: silentLogger, models: [] });
    cleanups.push(async () => client.close());
    await client.connect();
    // Before: undefined, a miss: the rule loaded the external id again.
    const err = await lookupExternalId(client, 'lab_gateway', 'hidden_kit').then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(failureOf(err)).toBe('permanent');
    expect((err as Error).message).toMatch(/Odoo has the gateway's record lab_gateway\.hidden_kit \(product\.product\) but the gateway's Odoo user cannot see it/);
    // A real miss is still a miss, a visible record still found.
    expect(await lookupExternalId(client, 'lab_gateway', 'never_loaded')).toBeUndefined();
    emu.call('product.product', 'write', [loaded.ids, { active: true }]);
    expect(await lookupExternalId(client, 'lab_gateway', 'hidden_kit')).toBe(loaded.ids[0]);
  });
});
