/**
 * A result that came before its order, the order it was attached to then cancelled by the LIS and
 * the test placed again under a new order carrying the same filler number (hl7/order-numbers.ts,
 * README "A result that came before its order", "An order cancelled and a new order carrying its
 * filler number"). A real gateway (MLLP listener, LevelDB in a temp dir, the relay) posting to the
 * Odoo emulator, invoicing at once; the LIS a real MLLP client.
 */
import { describe, expect, it } from 'vitest';
import { fillerOrder, fillerResult, useLisLab } from '../fixtures/lis-rig.ts';
import { billed, saleLines } from '../fixtures/relay/billing-rig.ts';

const { lab } = useLisLab();

const MSH = (type: string, id: string): string => `MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||${type}|${id}|P|2.5.1`;
const order = (id: string, placer: string, filler: string, placedAt = '20260301092500', mrn = 'MRN-77'): string => fillerOrder(id, placer, filler, { placedAt, mrn });
const result = (id: string, filler: string): string => fillerResult(id, '', filler);
/** The whole order cancelled (an ORC CA without OBR). */
const cancel = (id: string, placer: string, filler: string): string => [MSH('ORM^O01^ORM_O01', id), 'PID|1||MRN-77^^^LAB^MR', `ORC|CA|${placer}|${filler}||||||20260301094000||||||||||||CLINIC-A`].join('\r');

type Lab = Awaited<ReturnType<typeof lab>>;
const lines = (l: Lab, accession: string): Array<[string, number, number]> => saleLines(l.emu, accession).map((x) => [x.code, x.qty, x.delivered]);

describe('a result attached to the order that came after it, that order then cancelled and placed again', () => {
  /**
   * Before: the result (LF-9011) was copied onto 70011 when it came; the LIS cancelled 70011 as a
   * whole and placed GLU again as 70012 carrying LF-9011. The stored result, delivered once
   * attached, was no longer looked at: 70012's GLU line stayed undelivered, never billed (70011's
   * invoice was taken back with its cancellation). Now, as a result coming after both orders is
   * (29f1932), an order the LIS cancelled as a whole holds it no longer: 70012 gets its copy.
   */
  it('the live order gets the result and is billed', async () => {
    const l = await lab('review-s23b-filler-waiting-reorder');
    expect(await l.send('lis', order('O-0', '70010', 'LF-9010'))).toContain('MSA|AA|O-0');
    expect(await l.send('lis', result('R-1', 'LF-9011'))).toContain('MSA|AA|R-1');
    expect(await l.send('lis', order('O-1', '70011', 'LF-9011'))).toContain('MSA|AA|O-1');
    await l.settled();
    expect(lines(l, '70011')).toEqual([['GLU', 1, 1]]);
    expect(await l.send('lis', cancel('C-1', '70011', 'LF-9011'))).toContain('MSA|AA|C-1');
    expect(await l.send('lis', order('O-2', '70012', 'LF-9011', '20260301095000'))).toContain('MSA|AA|O-2');
    await l.settled();
    expect(lines(l, '70012')).toEqual([['GLU', 1, 1]]);
    expect(billed(l.emu, '70012')).toEqual(['GLU']);
    expect(billed(l.emu, '70011')).toEqual([]);
    // The order 70012 sent again adds nothing.
    expect(await l.send('lis', order('O-2b', '70012', 'LF-9011', '20260301095000'))).toContain('MSA|AA|O-2b');
    await l.settled();
    expect((await l.all()).filter((e) => e.event.type === 'result.validated' && e.event.correlationId === '70012')).toHaveLength(1);
    expect(billed(l.emu, '70012')).toEqual(['GLU']);
  });

  /** 70011 still live (not cancelled): a second order carrying the number gets nothing (as before). */
  it('a live order keeps it', async () => {
    const l = await lab('review-s23b-filler-waiting-reorder-live');
    expect(await l.send('lis', order('O-0', '70020', 'LF-9020'))).toContain('MSA|AA|O-0');
    expect(await l.send('lis', result('R-1', 'LF-9021'))).toContain('MSA|AA|R-1');
    expect(await l.send('lis', order('O-1', '70021', 'LF-9021'))).toContain('MSA|AA|O-1');
    await l.settled();
    expect(await l.send('lis', order('O-2', '70022', 'LF-9021', '20260301095000'))).toContain('MSA|AA|O-2');
    await l.settled();
    expect(lines(l, '70021')).toEqual([['GLU', 1, 1]]);
    expect(lines(l, '70022')).toEqual([['GLU', 1, 0]]);
  });
});
