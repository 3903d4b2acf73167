/**
 * A tube with two accession numbers: the LIS ordered ALT under accession ACC-A (the tube's
 * barcode is ACC-A), then the physician added glucose and the LIS placed the add-on as a new
 * order, accession ACC-B, on the same tube (SPM-2 = ACC-A). Real gateway (real LevelDB in a temp
 * dir), the LIS orders over real MLLP, the analyzer simulated over a real TCP socket.
 *
 * What the technician saw: the analyzer scanned ACC-A, asked the host, and was answered ALT only;
 * the add-on glucose was never run. The look-up stopped at the order whose accession is the
 * barcode and never looked for the other orders naming the tube, although a tube whose barcode is
 * no accession had both its orders found (and orderCollision keeps "add-ons, several orders on one
 * tube" together on purpose). And the glucose result, when the tech keyed it in at the analyzer,
 * went on ACC-A's order, not on the order that asked for it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CanonicalEvent } from '../../gateway/src/events/types.ts';
import { msa, nextSession, omlOnTube, orderRecords, startHostQueryRig, type HostQueryRig } from '../fixtures/order-download.ts';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } } };

/** An OML^O21 of `accession` for `test` on tube `tube`. */
const oml = (controlId: string, accession: string, test: string, tube: string): Buffer => omlOnTube(controlId, accession, test, tube, 'MRN-AO');

describe('a tube with two accession numbers (an add-on placed as a new order on the same tube)', () => {
  let gateway: HostQueryRig['gateway'];
  let lis: HostQueryRig['lis'];
  let analyzer: HostQueryRig['analyzer'];
  let close: HostQueryRig['close'];

  beforeAll(async () => {
    ({ gateway, lis, analyzer, close } = await startHostQueryRig('hq-add-on', [CHEM]));
    expect(msa(await lis.send(oml('AO-1', 'ACC-A', 'ALT', 'ACC-A')))).toBe('MSA|AA|AO-1');
    expect(msa(await lis.send(oml('AO-2', 'ACC-B', 'GLU', 'ACC-A')))).toBe('MSA|AA|AO-2');
  });

  afterAll(() => close?.());

  it('the host query for the tube answers the add-on test too', async () => {
    await analyzer.sim.sendMessage(['H|\\^&|||CHEM^1|||||LIS||P|1|20261206090000', 'Q|1|^ACC-A||ALL||||||||O', 'L|1|N']);
    const orders = orderRecords(await nextSession(analyzer.sim, 5_000));
    // Before: [['ACC-A', '^^^ALT']]: the glucose of ACC-B never reached the analyzer.
    expect(orders.map((o) => [o[2], o[4]])).toEqual([['ACC-A', '^^^ALT\\^^^GLU']]);
  });

  it("each result goes on the order that asked for it; the tube's receipt on the order whose number it carries", async () => {
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
          const [message] = await store.listMessages({ endpoint: CHEM.id, q: '20261206093000', limit: 1 });
          const messages = message ? [message] : (await store.listMessages({ endpoint: CHEM.id, limit: 10 })).filter((m) => m.messageType === 'ASTM^RESULT');
          events = (await Promise.all(messages.flatMap((m) => m.eventIds.map((id) => store.getEvent(id))))).flatMap((e) => (e ? [e.event] : []));
          return events.filter((e) => e.type === 'test.completed').length;
        },
        { timeout: 5_000 },
      )
      .toBe(2);
    const accessionOf = (test: string): string | undefined => {
      const e = events.find((x) => x.type === 'test.completed' && x.data.testCode === test);
      return e?.type === 'test.completed' ? e.data.accession : undefined;
    };
    expect(accessionOf('ALT')).toBe('ACC-A');
    // Before: ACC-A: the glucose note landed on the order that never asked for it.
    expect(accessionOf('GLU')).toBe('ACC-B');
    const received = events.filter((e) => e.type === 'specimen.received').map((e) => e.correlationId);
    expect(received).toEqual(['ACC-A']);
  });
});
