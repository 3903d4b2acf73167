import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../gateway/src/errors.ts';
import type { OdooApi } from '../../gateway/src/relay/odoo/odoo-client.ts';
import { ReferenceData } from '../../gateway/src/relay/reference-data.ts';
import type { GatewayStore } from '../../gateway/src/store/types.ts';
import { OdooEmulator } from '../odoo-emulator/index.ts';

/**
 * An order whose LIS sent no ordering client (ORC-21, ORC-17 and OBR-16 empty) must never be billed
 * to whichever partner an empty-string search happens to match.
 */
describe('ReferenceData.partner with an empty ref', () => {
  function refData(): { ref: ReferenceData; calls: string[] } {
    const calls: string[] = [];
    const odoo: OdooApi = {
      serverVersion: 17,
      // partner('') must refuse before it needs the field map or any call.
      fields: undefined as never,
      async call<T>(model: string, method: string): Promise<T> {
        calls.push(`${model}.${method}`);
        return [] as T;
      },
    };
    // ReferenceData only touches the store in loadCached/refresh, which this test does not call.
    const store = {} as GatewayStore;
    return { ref: new ReferenceData({ store, odoo, mapping: { labLocation: 'WH/Stock/Lab', consumptionLocation: 'Virtual Locations/Lab Consumption' } }), calls };
  }

  it.each(['', '   '])('refuses %j with the mapping-missing error and the given reason, without asking Odoo', async (empty) => {
    const { ref, calls } = refData();
    const err = await ref.partner(empty, 'ordering client', 'order ACC-1 names no ordering client (ORC-21, ORC-17 and OBR-16 are empty)').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe('GW_MAPPING_MISSING');
    expect((err as GatewayError).message).toBe('order ACC-1 names no ordering client (ORC-21, ORC-17 and OBR-16 are empty)');
    expect(calls).toEqual([]);
  });

  it('without a reason it still names what is empty', async () => {
    const { ref, calls } = refData();
    await expect(ref.partner('', 'default vendor')).rejects.toThrow('the default vendor is empty');
    expect(calls).toEqual([]);
  });
});

describe("emulator: `= ''` is not IS NULL (only False/None are)", () => {
  const odoo = new OdooEmulator({ version: 17 });
  const search = (domain: unknown[]): number[] => odoo.call('res.partner', 'search', [domain], { order: 'id', context: { active_test: false } }) as number[];
  const unset = odoo.records('res.partner').filter((r) => r['ref'] === false || r['ref'] === undefined || r['ref'] === null).map((r) => r.id);
  const all = odoo.records('res.partner').map((r) => r.id);

  it('the seed has partners without ref', () => {
    expect(unset.length).toBeGreaterThan(0);
  });

  it("`ref = ''` matches no unset ref, through the index and through a full scan", () => {
    expect(search([['ref', '=', '']])).toEqual([]);
    // An OR domain is not a plain conjunction: evaluated row by row, not through the index.
    expect(search(['|', ['ref', '=', ''], ['id', '=', -1]])).toEqual([]);
    expect(search([['ref', 'in', ['']]])).toEqual([]);
  });

  it("`ref != ''` matches unset refs (the ORM adds OR ref IS NULL)", () => {
    expect(search([['ref', '!=', '']])).toEqual(all);
    expect(search([['ref', 'not in', ['']]])).toEqual(all);
  });

  it('`= False` still means IS NULL', () => {
    expect(search([['ref', '=', false]])).toEqual(unset);
    expect(search(['|', ['ref', '=', false], ['id', '=', -1]])).toEqual(unset);
    expect(search([['ref', '!=', false]])).toEqual(all.filter((id) => !unset.includes(id)));
  });
});
