/**
 * The waits between a result's look-up by its order's other number and the orders around it
 * (hl7/order-numbers.ts, README "A result pipelined behind its order", "A result that came before
 * its order"): an order, a result and an order pipelined on one connection; a result sent again
 * while its look-up is in flight; two connections of one link at once. A real gateway (MLLP
 * listener, LevelDB in a temp dir, the relay), the Odoo emulator, the LIS writing raw frames.
 */
import { describe, expect, it } from 'vitest';
import { fillerOrder, fillerResult, pipelined, useLisLab } from '../fixtures/lis-rig.ts';
import { billed, saleLines } from '../fixtures/relay/billing-rig.ts';

const { lab } = useLisLab();

const order = (id: string, placer: string, filler: string): string => fillerOrder(id, placer, filler);
const result = (id: string, filler: string): string => fillerResult(id, '', filler);

type Lab = Awaited<ReturnType<typeof lab>>;
const lines = (l: Lab, accession: string): Array<[string, number, number]> => saleLines(l.emu, accession).map((x) => [x.code, x.qty, x.delivered]);

describe('a result looked up by its other number, with orders around it', () => {
  it('an order, a result that comes before its own order, and that order, pipelined: all answered, the result billed', async () => {
    const l = await lab('review-s23b-filler-pipelined-oro');
    const port = l.gateway.addresses().hl7.lis!.port;
    const acks = await pipelined(port, [order('O-1', '70321', 'LF-9321'), result('R-2', 'LF-9322'), order('O-2', '70322', 'LF-9322')]);
    for (const id of ['O-1', 'R-2', 'O-2']) expect(acks).toContain(`MSA|AA|${id}`);
    await l.settled();
    expect(lines(l, '70322')).toEqual([['GLU', 1, 1]]);
    expect(billed(l.emu, '70322')).toEqual(['GLU']);
  });

  it('a result, its resend and its order pipelined: attached once', async () => {
    const l = await lab('review-s23b-filler-pipelined-resend');
    const port = l.gateway.addresses().hl7.lis!.port;
    expect(await l.send('lis', order('O-0', '70330', 'LF-9330'))).toContain('MSA|AA|O-0');
    const acks = await pipelined(port, [result('R-3', 'LF-9331'), result('R-3', 'LF-9331'), order('O-3', '70331', 'LF-9331')]);
    expect(acks.match(/MSA\|AA\|R-3/g)).toHaveLength(2);
    expect(acks).toContain('MSA|AA|O-3');
    await l.settled();
    const validated = (await l.all()).filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => [e.event.correlationId, e.state]).sort()).toEqual([
      ['70331', 'delivered'],
      ['LF-9331', 'delivered'],
    ]);
    expect(billed(l.emu, '70331')).toEqual(['GLU']);
  });

  it('two connections of one link, each pipelining results and orders of the other: all answered, each result billed', async () => {
    const l = await lab('review-s23b-filler-pipelined-two');
    const port = l.gateway.addresses().hl7.lis!.port;
    expect(await l.send('lis', order('O-0', '70340', 'LF-9340'))).toContain('MSA|AA|O-0');
    const [a, b] = await Promise.all([
      pipelined(port, [result('RA-1', 'LF-9341'), order('OA-2', '70342', 'LF-9342'), result('RA-3', 'LF-9343')]),
      pipelined(port, [order('OB-1', '70343', 'LF-9343'), result('RB-2', 'LF-9342'), order('OB-3', '70341', 'LF-9341')]),
    ]);
    for (const id of ['RA-1', 'OA-2', 'RA-3']) expect(a).toContain(`MSA|AA|${id}`);
    for (const id of ['OB-1', 'RB-2', 'OB-3']) expect(b).toContain(`MSA|AA|${id}`);
    await l.settled();
    for (const acc of ['70341', '70342', '70343']) expect([acc, billed(l.emu, acc)]).toEqual([acc, ['GLU']]);
    expect((await l.all()).filter((e) => e.state === 'dead')).toEqual([]);
  });
});
