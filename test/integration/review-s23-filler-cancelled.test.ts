/**
 * A LIS that cancels an order and places a new one carrying the same filler number (ORC-3), whose
 * result then names the order only by that filler number (hl7/order-numbers.ts), as finance sees
 * it in Odoo: a real gateway (MLLP listener, LevelDB in a temp dir, the relay) posting to the Odoo
 * emulator over HTTP, the LIS a real MLLP client.
 */
import { describe, expect, it } from 'vitest';
import { useLisLab } from '../fixtures/lis-rig.ts';
import { billed, invoices, saleLines } from '../fixtures/relay/billing-rig.ts';

const { lab } = useLisLab();

const MSH = (type: string, id: string): string => `MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||${type}|${id}|P|2.5.1`;

/** An ORM^O01 NW of `tests` with placer number `placer` and filler number `filler`, placed at `placedAt` (ORC-9). */
function order(id: string, placer: string, filler: string, tests: string[], placedAt = '20260301092500'): string {
  return [
    MSH('ORM^O01^ORM_O01', id),
    'PID|1||MRN-77^^^LAB^MR',
    ...tests.flatMap((code, i) => [`ORC|NW|${placer}|${filler}||||||${placedAt}||||||||||||CLINIC-A`, `OBR|${i + 1}|${placer}|${filler}|${code}^${code} test`]),
  ].join('\r');
}

/** An ORM^O01 CA of `tests` (none: the whole order, an ORC without OBR), at `at` (ORC-9). */
function cancel(id: string, placer: string, filler: string, tests: string[] = [], at = '20260301094000'): string {
  const orc = `ORC|CA|${placer}|${filler}||||||${at}||||||||||||CLINIC-A`;
  return [MSH('ORM^O01^ORM_O01', id), 'PID|1||MRN-77^^^LAB^MR', ...(tests.length === 0 ? [orc] : tests.flatMap((code, i) => [orc, `OBR|${i + 1}|${placer}|${filler}|${code}^${code} test`]))].join('\r');
}

/** The final ORU^R01 of `test` naming its order only by the filler number. */
function result(id: string, filler: string, test = 'GLU'): string {
  return [
    MSH('ORU^R01^ORU_R01', id),
    'PID|1||MRN-77^^^LAB^MR',
    `ORC|RE||${filler}`,
    `OBR|1||${filler}|${test}^${test} test|||20260301100000|||||||||||||||20260301110000|||F`,
    `OBX|1|NM|${test}^${test} test||5.4|mmol/L|||||F`,
  ].join('\r');
}

const lines = (l: Awaited<ReturnType<typeof lab>>, accession: string): Array<[string, number, number]> => saleLines(l.emu, accession).map((x) => [x.code, x.qty, x.delivered]);

describe('a result naming by its filler number an order cancelled and the new order that took the number', () => {
  /**
   * What finance saw: GLU ordered as 70011 (filler LF-9011), the whole order cancelled, GLU ordered
   * again as 70012 with the same filler number; the result naming LF-9011 found two orders and was
   * attached to neither: it waited under LF-9011, was dead-lettered, and 70012 was never billed.
   */
  it('an order cancelled as a whole is no candidate: the result is billed on the live order', async () => {
    const l = await lab('review-s23-filler-cancelled-whole');
    expect(await l.send('lis', order('O-1', '70011', 'LF-9011', ['GLU']))).toContain('MSA|AA|O-1');
    expect(await l.send('lis', cancel('C-1', '70011', 'LF-9011'))).toContain('MSA|AA|C-1');
    expect(await l.send('lis', order('O-2', '70012', 'LF-9011', ['GLU'], '20260301095000'))).toContain('MSA|AA|O-2');
    await l.settled();
    expect(await l.send('lis', result('R-1', 'LF-9011'))).toContain('MSA|AA|R-1');
    const validated = (await l.all()).filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => [e.event.correlationId, e.event.partitionKey])).toEqual([['70012', 'order:70012']]);
    await l.settled();
    expect((await l.all()).filter((e) => e.state === 'dead')).toEqual([]);
    expect(lines(l, '70012')).toEqual([['GLU', 1, 1]]);
    expect(billed(l.emu, '70012')).toEqual(['GLU']);
    expect(invoices(l.emu, '70011')).toEqual([]);
    // A resend is the duplicate it is: billed once.
    expect(await l.send('lis', result('R-1', 'LF-9011'))).toContain('MSA|AA|R-1');
    await l.settled();
    expect((await l.all()).filter((e) => e.event.type === 'result.validated')).toHaveLength(1);
    expect(invoices(l.emu, '70012')).toHaveLength(1);
  });

  /** The cancellation named every test the order had (ORC CA with its OBR): cancelled as a whole too. */
  it('an order whose every test was cancelled is no candidate', async () => {
    const l = await lab('review-s23-filler-cancelled-tests');
    expect(await l.send('lis', order('O-1', '70021', 'LF-9021', ['GLU', 'TSH']))).toContain('MSA|AA|O-1');
    expect(await l.send('lis', cancel('C-1', '70021', 'LF-9021', ['GLU', 'TSH']))).toContain('MSA|AA|C-1');
    expect(await l.send('lis', order('O-2', '70022', 'LF-9021', ['GLU'], '20260301095000'))).toContain('MSA|AA|O-2');
    await l.settled();
    expect(await l.send('lis', result('R-1', 'LF-9021'))).toContain('MSA|AA|R-1');
    const validated = (await l.all()).filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => e.event.correlationId)).toEqual(['70022']);
    await l.settled();
    expect(billed(l.emu, '70022')).toEqual(['GLU']);
  });

  /**
   * An order of which only a test was cancelled is still an order the result may be of: with the
   * new order it makes two, and the result is attached to neither (a warning), as before.
   */
  it('an order partly cancelled stays a candidate: attached to neither', async () => {
    const l = await lab('review-s23-filler-cancelled-part');
    expect(await l.send('lis', order('O-1', '70031', 'LF-9031', ['GLU', 'TSH']))).toContain('MSA|AA|O-1');
    expect(await l.send('lis', cancel('C-1', '70031', 'LF-9031', ['TSH']))).toContain('MSA|AA|C-1');
    expect(await l.send('lis', order('O-2', '70032', 'LF-9031', ['GLU'], '20260301095000'))).toContain('MSA|AA|O-2');
    await l.settled();
    // The result waits for an order of its own number (never settles): its stored event is what
    // the gateway decided.
    expect(await l.send('lis', result('R-1', 'LF-9031'))).toContain('MSA|AA|R-1');
    const validated = (await l.all()).filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => e.event.correlationId)).toEqual(['LF-9031']);
    expect(lines(l, '70031')).toEqual([['GLU', 1, 0]]);
    expect(lines(l, '70032')).toEqual([['GLU', 1, 0]]);
  });

  /** Both orders cancelled as a whole: neither is live, the result is attached to neither (as before). */
  it('two orders both cancelled: attached to neither', async () => {
    const l = await lab('review-s23-filler-cancelled-both');
    expect(await l.send('lis', order('O-1', '70041', 'LF-9041', ['GLU']))).toContain('MSA|AA|O-1');
    expect(await l.send('lis', cancel('C-1', '70041', 'LF-9041'))).toContain('MSA|AA|C-1');
    expect(await l.send('lis', order('O-2', '70042', 'LF-9041', ['GLU'], '20260301095000'))).toContain('MSA|AA|O-2');
    expect(await l.send('lis', cancel('C-2', '70042', 'LF-9041', [], '20260301095500'))).toContain('MSA|AA|C-2');
    await l.settled();
    expect(await l.send('lis', result('R-1', 'LF-9041'))).toContain('MSA|AA|R-1');
    const validated = (await l.all()).filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => e.event.correlationId)).toEqual(['LF-9041']);
  });
});
