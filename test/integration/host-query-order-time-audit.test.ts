/**
 * The order time (O.7, "requested/ordered date and time", LIS2-A2 §8.4.7) in the answer to a host
 * query. The analyzer's clock carries no zone: it reads O.7 as its own local time, the lab's. The
 * gateway keeps the LIS's order time as an instant (orderedAt, read in the LIS message's zone:
 * hl7/README.md "Times without an offset") and writes it back in its own zone, which is the lab's
 * (status/README.md: the box runs in the lab's time zone). So the analyzer reads the time the LIS
 * wrote, as the lab's clock shows it, whatever offset the LIS wrote it with, across a change of
 * daylight saving time between the order and its message.
 *
 * Real gateway in this process with its zone set to America/New_York (UTC-05:00 in winter,
 * UTC-04:00 from 8 March 2026), real LevelDB in a temp dir, the LIS over real MLLP, the analyzer
 * simulated over a real TCP socket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { msa, nextSession, orderRecords, startHostQueryRig, type HostQueryRig } from '../fixtures/order-download.ts';

const CHEM = { id: 'chem-1', profile: 'generic-astm', tcp: { listen: { host: '127.0.0.1', port: 0 } } };

/** An ORM^O01 of `accession` for GLU, its MSH-7 and ORC-9 as given. */
const ormAt = (controlId: string, accession: string, msh7: string, orc9: string): Buffer =>
  Buffer.from(
    [`MSH|^~\\&|LIS|LAB|GW|LAB|${msh7}||ORM^O01|${controlId}|P|2.5`, 'PID|1||MRN-OT^^^LAB^MR', `ORC|NW|${accession}||${accession}|SC||||${orc9}||||||||||||CLINIC-A`, `OBR|1|${accession}||GLU^GLU^L`, ''].join('\r'),
  );

const savedTz = process.env.TZ;

describe("a host query's answer gives the order time in the lab's clock", () => {
  let lis: HostQueryRig['lis'];
  let analyzer: HostQueryRig['analyzer'];
  let close: HostQueryRig['close'] | undefined;

  beforeAll(async () => {
    process.env.TZ = 'America/New_York';
    ({ lis, analyzer, close } = await startHostQueryRig('hq-order-time', [CHEM]));
  });

  afterAll(async () => {
    await close?.();
    if (savedTz === undefined) delete process.env.TZ;
    else process.env.TZ = savedTz;
  });

  /** O.7 of the answer to a host query for `tube`. */
  async function orderTimeAnswered(tube: string): Promise<string | undefined> {
    await analyzer.sim.sendMessage(['H|\\^&|||CHEM^1|||||LIS||P|1|20260314090000', `Q|1|^${tube}||ALL||||||||O`, 'L|1|N']);
    const orders = orderRecords(await nextSession(analyzer.sim, 5_000));
    expect(orders.map((o) => o[2])).toEqual([tube]);
    return orders[0]![6];
  }

  it('an order time written without offset comes back as the LIS wrote it', async () => {
    expect(msa(await lis.send(ormAt('OT-1', 'ACC-OT-1', '20260114093500', '20260114093000')))).toBe('MSA|AA|OT-1');
    expect(await orderTimeAnswered('ACC-OT-1')).toBe('20260114093000');
  });

  it('an order time a LIS writes in UTC comes back in the local time of the lab', async () => {
    expect(msa(await lis.send(ormAt('OT-2', 'ACC-OT-2', '20260114143500+0000', '20260114143000+0000')))).toBe('MSA|AA|OT-2');
    expect(await orderTimeAnswered('ACC-OT-2')).toBe('20260114093000');
  });

  it('an order written on winter time, sent after the change to summer time, keeps its clock time', async () => {
    // Ordered Saturday 7 March 23:30 (EST, -0500), its message sent Monday 9 March (EDT, -0400).
    expect(msa(await lis.send(ormAt('OT-3', 'ACC-OT-3', '20260309080000-0400', '20260307233000')))).toBe('MSA|AA|OT-3');
    expect(await orderTimeAnswered('ACC-OT-3')).toBe('20260307233000');
  });

  it('an order time with its own offset, in summer time, comes back as the lab clock showed it', async () => {
    expect(msa(await lis.send(ormAt('OT-4', 'ACC-OT-4', '20260610081500-0400', '20260610081000-0400')))).toBe('MSA|AA|OT-4');
    expect(await orderTimeAnswered('ACC-OT-4')).toBe('20260610081000');
  });
});
