/**
 * A tube labelled with its order's accession (ACC-A, ALT for patient MRN-1) that another order
 * names as its tube too: ACC-C, glucose for ANOTHER patient, SPM-2 = ACC-A (a mislabelled
 * request, a barcode reprinted for the wrong patient). Real gateway (real LevelDB in a temp dir),
 * the LIS orders over real MLLP, the analyzer simulated over a real TCP socket.
 *
 * What the technician saw: once the look-up also read the orders naming the tube (for add-ons
 * placed as new orders), the barcode's own order was taken for one side of a collision: the host
 * query for ACC-A answered "no order", and ACC-A's alanine aminotransferase result went on no
 * order at all (no note on the sale order, nothing delivered), although the barcode carries
 * ACC-A's number and ACC-A ordered that test. Before that change both went to ACC-A. The promise
 * broken: a result goes on the order that asked for it (astm/README.md, accession resolution);
 * only what the other patient's order asked for is left for a human to sort out, and the lab is
 * told (ACCESSION_COLLISION).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../gateway/src/events/types.ts';
import { msa, nextSession, omlOnTube as oml, orderRecords, startHostQueryRig, type HostQueryRig } from '../fixtures/order-download.ts';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } } };

describe("a tube carrying its order's number that another patient's order names too", () => {
  let gateway: HostQueryRig['gateway'];
  let lis: HostQueryRig['lis'];
  let analyzer: HostQueryRig['analyzer'];
  let close: HostQueryRig['close'];
  const alerts: Array<{ code: string; message: string }> = [];

  beforeAll(async () => {
    ({ gateway, lis, analyzer, close } = await startHostQueryRig('hq-own-order', [CHEM]));
    gateway.telemetry.on('alert', (a: { code: string; message: string }) => alerts.push(a));
    expect(msa(await lis.send(oml('OW-1', 'ACC-A', 'ALT', 'ACC-A', 'MRN-1')))).toBe('MSA|AA|OW-1');
    expect(msa(await lis.send(oml('OW-2', 'ACC-C', 'GLU', 'ACC-A', 'MRN-2')))).toBe('MSA|AA|OW-2');
  });

  afterAll(() => close?.());

  it("the host query for the tube answers its own order's tests, not the other patient's", async () => {
    await analyzer.sim.sendMessage(['H|\\^&|||CHEM^1|||||LIS||P|1|20261206090000', 'Q|1|^ACC-A||ALL||||||||O', 'L|1|N']);
    const orders = orderRecords(await nextSession(analyzer.sim, 5_000));
    // Before: no O record with a test ("no order"): the tube was not run for ALT.
    expect(orders.map((o) => [o[2], o[4]])).toEqual([['ACC-A', '^^^ALT']]);
    const told = alerts.filter((a) => a.code === 'ACCESSION_COLLISION');
    expect(told.length).toBeGreaterThan(0);
    expect(told[0]!.message).toContain('ACC-C');
    expect(told[0]!.message).toContain('ACC-A keeps the tube');
  });

  it("the tube's own tests and receipt go on its order; only the other order's test is attached to none", async () => {
    const sent = await analyzer.sim.sendMessage([
      'H|\\^&|||CHEM^1|||||LIS||P|1|20261206093000',
      'P|1',
      'O|1|ACC-A||^^^ALT\\^^^GLU|R||||||N||||SER',
      'R|1|^^^ALT|31|U/L||N||F||||20261206092500',
      'R|2|^^^GLU|5.4|mmol/L||N||F||||20261206092600',
      'L|1|N',
    ]);
    expect(sent.replies).toMatch(/^(<ACK>)+$/);
    const store = gateway.store!;
    let events: CanonicalEvent[] = [];
    await expect
      .poll(
        async () => {
          const messages = (await store.listMessages({ endpoint: CHEM.id, limit: 10 })).filter((m) => m.messageType === 'ASTM^RESULT');
          events = (await Promise.all(messages.flatMap((m) => m.eventIds.map((id) => store.getEvent(id))))).flatMap((e) => (e ? [e.event] : []));
          return events.filter((e) => e.type === 'test.completed').length;
        },
        { timeout: 5_000 },
      )
      .toBe(2);
    const placed = (test: string): [string, string | undefined] | undefined => {
      const e = events.find((x) => x.type === 'test.completed' && x.data.testCode === test);
      return e?.type === 'test.completed' ? [e.partitionKey, e.data.accession] : undefined;
    };
    // Before: ['specimen:ACC-A', undefined]: ACC-A's own test went on no order.
    expect(placed('ALT')).toEqual(['order:ACC-A', 'ACC-A']);
    // The other patient's test: on neither order, for a human to sort out.
    expect(placed('GLU')).toEqual(['specimen:ACC-A', undefined]);
    const received = events.filter((e) => e.type === 'specimen.received').map((e) => (e.type === 'specimen.received' ? e.data.accession : undefined));
    expect(received).toEqual(['ACC-A']);
  });
});
