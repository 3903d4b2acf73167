/**
 * A barcode the analyzer reports in lower case: the LIS ordered ALT under accession ACC-LC-1
 * (printed upper case); the tube's label would not scan and the technician typed the number at
 * the analyzer's keyboard, caps lock off: `acc-lc-1`. Real gateway (real LevelDB in a temp dir),
 * the LIS over real MLLP, the analyzer simulated over a real TCP socket.
 *
 * The look-up compared byte for byte: the query was answered "no order" (L|1|I) and the ALT was
 * never run; a result keyed in for the tube went on no order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { msa, nextSession, orderRecords, orm, startHostQueryRig, type HostQueryRig } from '../fixtures/order-download.ts';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } } };

describe('a host query for a barcode in another case than its order', () => {
  let rig: HostQueryRig;

  beforeAll(async () => {
    rig = await startHostQueryRig('s22-hq-case', [CHEM]);
    expect(msa(await rig.lis.send(orm('LC-1', 'ACC-LC-1', ['ALT'])))).toBe('MSA|AA|LC-1');
  });

  afterAll(() => rig?.close());

  it("is answered with the order's tests, under the barcode as the analyzer sent it", async () => {
    await rig.analyzer.sim.sendMessage(['H|\\^&|||CHEM^1|||||LIS||P|1|20261207101000', 'Q|1|^acc-lc-1||ALL||||||||O', 'L|1|N']);
    const answer = await nextSession(rig.analyzer.sim, 5_000);
    // Before: H, L|1|I — "no information available".
    expect(orderRecords(answer).map((o) => [o[2], o[4]])).toEqual([['acc-lc-1', '^^^ALT']]);
  });

  it('its result goes on the order', async () => {
    await rig.analyzer.sim.sendMessage(['H|\\^&|||CHEM^1|||||LIS||P|1|20261207103000', 'P|1', 'O|1|acc-lc-1||^^^ALT|R||||||N', 'R|1|^^^ALT|31|U/L||N||F||||20261207102500', 'L|1|N']);
    const store = rig.gateway.store!;
    await expect
      .poll(async () => (await store.eventsByCorrelation('ACC-LC-1', ['test.completed'])).length, { timeout: 5_000 })
      .toBe(1);
  });
});
