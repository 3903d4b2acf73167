/**
 * What a tube's order look-up reads before an analyzer's ACK. A tube labelled with its order's
 * accession (ACC-A, ALT), an add-on the LIS placed on it as a new order (ACC-B, glucose, SPM-2 =
 * ACC-A), and the analyzers' own traffic naming the tube: a Mindray BS (HL7 over MLLP) reporting
 * its results, a chemistry analyzer (ASTM over TCP) reporting its. Real gateway, real LevelDB in a
 * temp dir, real sockets.
 *
 * What the lab saw: since the look-up also reads the message index for add-ons, every result of
 * a tube labelled with its accession waited, before its ACK, for the store to read every event
 * of every HL7 message naming the tube one after the other — an HL7 analyzer's own results
 * included, which never hold an order: for a sample number the analyzer reuses, up to 5000
 * messages, a second on the bench machine, and the analyzer's next result waits behind it. The
 * promise broken: astm/README.md, the look-up before the ACK is a few store reads. Now only the
 * LIS links' messages are looked into, and only their order events are read, an accession's in
 * one read. Measured by counting the reads through the store, not by timing.
 */
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { orderEventsForSpecimen, type OrderLookupStore } from '../../gateway/src/astm/host-query.ts';
import type { EventType } from '../../gateway/src/events/types.ts';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import type { AnalyzerSim } from '../fixtures/astm-link/analyzer-sim.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { connectAnalyzer, omlOnTube } from '../fixtures/order-download.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } } };
const BS = { id: 'bs-1', profile: 'mindray-bs-series', tcp: { listen: { host: '127.0.0.1', port: 0 } } };

/** An OML^O21 of `accession` for `test` on tube `tube`. */
const oml = (controlId: string, accession: string, test: string, tube: string): Buffer => omlOnTube(controlId, accession, test, tube, 'MRN-RD');

/** Mindray BS test numbers of the mindray-bs-series profile. */
const BS_TEST = { ALT: '1', GLU: '3', CREA: '4' } as const;

/** A Mindray BS patient ORU^R01, one test, OBR-2 the tube's barcode. */
const bsOru = (controlId: string, tube: string, test: keyof typeof BS_TEST, value: string, at: string): Buffer =>
  Buffer.from(
    [
      `MSH|^~\\&|Mindray|BS-200|||${at}||ORU^R01|${controlId}|P|2.3.1||||0||ASCII|||`,
      'PID|1|854||31|Anon||19830719000000|F',
      `OBR|1|${tube}|31|Mindray^BS-200|N||${at}||||||||serum`,
      `OBX|1|NM|${BS_TEST[test]}|${test}|${value}|U/L|-||||F|||||`,
      '',
    ].join('\r'),
    'latin1',
  );

/** The store reads a look-up made: the events each read gave back, and how they were asked for. */
interface Reads {
  byId: string[];
  byCorrelation: Array<{ id: string; types: EventType[] | undefined; got: StoredEvent[] }>;
}

/** The gateway's store, its reads counted. */
function counted(store: OrderLookupStore): { store: OrderLookupStore; reads: Reads } {
  const reads: Reads = { byId: [], byCorrelation: [] };
  return {
    reads,
    store: {
      listMessages: (q) => store.listMessages(q),
      getEvent: async (id) => {
        reads.byId.push(id);
        return store.getEvent(id);
      },
      eventsByCorrelation: async (id, types) => {
        const got = await store.eventsByCorrelation(id, types);
        reads.byCorrelation.push({ id, types, got });
        return got;
      },
    },
  };
}

describe("a tube's order look-up reads only what can hold its orders", () => {
  let gateway: Gateway;
  let stop: () => Promise<void>;
  let lis: MllpClient;
  let bs: MllpClient;
  let chem: { sim: AnalyzerSim; socket: net.Socket };
  /** Event ids of the analyzers' messages naming the tube (none of them an order). */
  const analyzerEvents = new Set<string>();
  /** Event ids of the LIS's order messages. */
  const lisEvents = new Set<string>();

  beforeAll(async () => {
    ({ gateway, stop } = await startTestGateway('hq-reads', { analyzers: [CHEM, BS] }));
    lis = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().hl7.lis!.port });
    expect((await lis.send(oml('RD-1', 'ACC-A', 'ALT', 'ACC-A'))).toString('latin1')).toContain('MSA|AA|RD-1');
    expect((await lis.send(oml('RD-2', 'ACC-B', 'GLU', 'ACC-A'))).toString('latin1')).toContain('MSA|AA|RD-2');
    bs = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().analyzers[BS.id]!.port! });
    const plan: Array<[keyof typeof BS_TEST, string, string]> = [
      ['ALT', '31', '20261206090000'],
      ['GLU', '5.4', '20261206090100'],
      ['CREA', '71', '20261206090200'],
    ];
    for (const [i, [test, value, at]] of plan.entries()) expect((await bs.send(bsOru(`BS-${i + 1}`, 'ACC-A', test, value, at))).toString('latin1')).toContain(`MSA|AA|BS-${i + 1}`);
    chem = await connectAnalyzer(gateway, CHEM.id);
    const first = await chem.sim.sendMessage(['H|\\^&|||CHEM^1|||||LIS||P|1|20261206093000', 'P|1', 'O|1|ACC-A||^^^ALT|R', 'R|1|^^^ALT|30|U/L||N||F||||20261206092500', 'L|1|N']);
    expect(first.replies).toMatch(/^(<ACK>)+$/);
    const store = gateway.store!;
    await waitFor(async () => (await store.listMessages({ endpoint: CHEM.id, limit: 10 })).length === 1, 5_000);
    for (const m of await store.listMessages({ q: 'ACC-A', limit: 100 })) for (const id of m.eventIds) (m.endpoint === 'lis' ? lisEvents : analyzerEvents).add(id);
    expect(analyzerEvents.size).toBeGreaterThan(3);
    expect(lisEvents.size).toBeGreaterThan(1);
  });

  afterAll(async () => {
    chem?.socket.destroy();
    await bs?.close().catch(() => undefined);
    await lis?.close();
    await stop?.();
  });

  it("finds the tube's own order and its add-on without reading an analyzer's message or an event one by one", async () => {
    const { store, reads } = counted(gateway.store!);
    const found = await orderEventsForSpecimen(store, 'ACC-A', { lisEndpoints: ['lis'] });
    expect(found.map((e) => e.event.correlationId)).toEqual(['ACC-A', 'ACC-B']);
    // Before: every event of the Mindray's three results and of both LIS messages, one getEvent each.
    expect(reads.byId).toEqual([]);
    const read = reads.byCorrelation.flatMap((r) => r.got.map((e) => e.event.id));
    expect(read.filter((id) => analyzerEvents.has(id))).toEqual([]);
    // Only order events were asked for, and each accession once.
    expect(reads.byCorrelation.every((r) => r.types?.length === 1 && r.types[0] === 'order.created')).toBe(true);
    const asked = reads.byCorrelation.map((r) => r.id);
    expect(new Set(asked).size).toBe(asked.length);
  });

  /**
   * An LIS that numbers its requisitions in ORC-4 only (placer group number; hl7/normalize-lis.ts
   * takes it as the accession): the message index holds no order number of that message, only the
   * tube's barcode, so its events are read (side by side), and its order is still found.
   */
  it('an order numbered in ORC-4 only is still found by its tube', async () => {
    const orc4 = Buffer.from(
      [
        'MSH|^~\\&|LIS|LAB|GW|LAB|20261206080000||OML^O21^OML_O21|RD-3|P|2.5.1',
        'PID|1||MRN-RD^^^LAB^MR',
        'ORC|NW|||GRP-9|||||20261206075500|||||||||||CLINIC-A',
        'OBR|1|||CREA^CREA^L',
        'SPM|1|BC-9||SER^Serum^HL70487|||||||||||||20261206070000|20261206073000',
        '',
      ].join('\r'),
      'latin1',
    );
    expect((await lis.send(orc4)).toString('latin1')).toContain('MSA|AA|RD-3');
    const found = await orderEventsForSpecimen(gateway.store!, 'BC-9', { lisEndpoints: ['lis'] });
    expect(found.map((e) => e.event.correlationId)).toEqual(['GRP-9']);
  });

  it("the gateway's look-up before an analyzer's ACK reads no analyzer message, and the add-on's result still goes on the add-on", async () => {
    // The gateway's own store, its reads counted while the analyzer's next result is taken.
    const store = gateway.store!;
    const byId: string[] = [];
    const got: string[] = [];
    const getEvent = store.getEvent.bind(store);
    const eventsByCorrelation = store.eventsByCorrelation.bind(store);
    store.getEvent = async (id) => {
      byId.push(id);
      return getEvent(id);
    };
    store.eventsByCorrelation = async (id, types) => {
      const events = await eventsByCorrelation(id, types);
      got.push(...events.map((e) => e.event.id));
      return events;
    };
    try {
      const sent = await chem.sim.sendMessage([
        'H|\\^&|||CHEM^1|||||LIS||P|1|20261206100000',
        'P|1',
        'O|1|ACC-A||^^^ALT\\^^^GLU|R',
        'R|1|^^^ALT|31|U/L||N||F||||20261206095500',
        'R|2|^^^GLU|5.4|mmol/L||N||F||||20261206095600',
        'L|1|N',
      ]);
      expect(sent.replies).toMatch(/^(<ACK>)+$/);
    } finally {
      store.getEvent = getEvent;
      store.eventsByCorrelation = eventsByCorrelation;
    }
    // Before: the Mindray's results and the LIS messages' events were read one getEvent each.
    expect(byId.filter((id) => analyzerEvents.has(id) || lisEvents.has(id))).toEqual([]);
    expect(got.filter((id) => analyzerEvents.has(id))).toEqual([]);
    // The behaviour is kept: the glucose of the add-on goes on ACC-B, the rest on ACC-A.
    let placed = new Map<string, string | undefined>();
    await waitFor(async () => {
      // The analyzer's newest message: this result.
      const [m] = await store.listMessages({ endpoint: CHEM.id, limit: 1 });
      const events = m ? await Promise.all(m.eventIds.map((id) => store.getEvent(id))) : [];
      placed = new Map(events.flatMap((e) => (e?.event.type === 'test.completed' ? [[e.event.data.testCode, e.event.data.accession] as [string, string | undefined]] : [])));
      return placed.size === 2;
    }, 5_000);
    expect(Object.fromEntries(placed)).toEqual({ ALT: 'ACC-A', GLU: 'ACC-B' });
  });
});
