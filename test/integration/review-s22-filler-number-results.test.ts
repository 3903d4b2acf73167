/**
 * A LIS whose orders carry its placer and filler numbers and whose results carry only one of them
 * (OBR-2 is optional in results), as finance sees it in Odoo: a real gateway (MLLP listener,
 * LevelDB in a temp dir, the relay) posting to the Odoo emulator over HTTP, the LIS as a real MLLP
 * client. The accession is ORC-2, else OBR-2, else the filler number ORC-3 / OBR-3
 * (hl7/normalize-lis.ts): such a result had another accession than its order.
 */
import { describe, expect, it } from 'vitest';
import { useLisLab } from '../fixtures/lis-rig.ts';
import { invoices, saleLines } from '../fixtures/relay/billing-rig.ts';
import { startLabDay } from '../fixtures/relay/lab-day.ts';

const { lab, closers } = useLisLab();

/** Two LIS links: `lis`, and `out` with `accessionPrefix: OUT` (README.md "Two LIS systems"). */
const twoLis = (id: string): ReturnType<typeof startLabDay> =>
  startLabDay(
    id,
    closers,
    {
      hl7: [
        { id: 'lis', listen: { host: '127.0.0.1', port: 0 } },
        { id: 'out', listen: { host: '127.0.0.1', port: 0 }, accessionPrefix: 'OUT' },
      ],
    },
    { relay: { syncModes: { 'invoice.eligible': 'realtime' } } },
  );

const MSH = (type: string, id: string): string => `MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||${type}|${id}|P|2.5.1`;

/** An ORM^O01 NW of GLU with placer number `placer` (may be empty) and filler number `filler`. */
function order(id: string, placer: string, filler: string, mrn = 'MRN-77'): string {
  return [
    MSH('ORM^O01^ORM_O01', id),
    `PID|1||${mrn}^^^LAB^MR`,
    `ORC|NW|${placer}|${filler}||||||20260301092500||||||||||||CLINIC-A`,
    `OBR|1|${placer}|${filler}|GLU^GLU test`,
  ].join('\r');
}

/** The final ORU^R01 of GLU with placer number `placer` (may be empty) and filler number `filler`. */
function result(id: string, placer: string, filler: string, mrn = 'MRN-77'): string {
  return [
    MSH('ORU^R01^ORU_R01', id),
    `PID|1||${mrn}^^^LAB^MR`,
    `ORC|RE|${placer}|${filler}`,
    `OBR|1|${placer}|${filler}|GLU^GLU test|||20260301100000|||||||||||||||20260301110000|||F`,
    'OBX|1|NM|GLU^GLU test||5.4|mmol/L|||||F',
  ].join('\r');
}

const lines = (l: Awaited<ReturnType<typeof lab>>, accession: string): Array<[string, number, number]> => saleLines(l.emu, accession).map((x) => [x.code, x.qty, x.delivered]);

describe('a result naming its order only by the other number', () => {
  /**
   * What finance saw: GLU ordered as 70001 (ORC-2) with the LIS's filler number LF-9001 (ORC-3);
   * the LIS's result carried only LF-9001. It was keyed LF-9001, waited for an order of that
   * accession and was dead-lettered: the GLU line was never delivered nor invoiced.
   */
  it('a result carrying only the filler number is billed on the order of that filler number', async () => {
    const l = await lab('review-s22-filler-only');
    expect(await l.send('lis', order('O-1', '70001', 'LF-9001'))).toContain('MSA|AA|O-1');
    expect(await l.send('lis', result('R-1', '', 'LF-9001'))).toContain('MSA|AA|R-1');
    await l.settled();
    expect(lines(l, '70001')).toEqual([['GLU', 1, 1]]);
    expect(invoices(l.emu, '70001')).toHaveLength(1);
    const all = await l.all();
    expect(all.filter((e) => e.state === 'dead')).toEqual([]);
    const validated = all.filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => [e.event.correlationId, e.event.partitionKey])).toEqual([['70001', 'order:70001']]);
    // A resend of the same message is the duplicate it is: the same keys, billed once.
    expect(await l.send('lis', result('R-1', '', 'LF-9001'))).toContain('MSA|AA|R-1');
    await l.settled();
    expect((await l.all()).filter((e) => e.event.type === 'result.validated')).toHaveLength(1);
    expect(invoices(l.emu, '70001')).toHaveLength(1);
  });

  /** The other way round: the order carried only the filler number, the result both. */
  it('a result carrying both numbers is billed on the order stored under its filler number', async () => {
    const l = await lab('review-s22-filler-order');
    expect(await l.send('lis', order('O-2', '', 'LF-9002'))).toContain('MSA|AA|O-2');
    expect(await l.send('lis', result('R-2', '70002', 'LF-9002'))).toContain('MSA|AA|R-2');
    await l.settled();
    expect(lines(l, 'LF-9002')).toEqual([['GLU', 1, 1]]);
    expect((await l.all()).filter((e) => e.state === 'dead')).toEqual([]);
  });

  it('is not attached to the order of another patient', async () => {
    const l = await lab('review-s22-filler-patient');
    expect(await l.send('lis', order('O-3', '70003', 'LF-9003', 'MRN-77'))).toContain('MSA|AA|O-3');
    await l.settled();
    // The result of another patient waits for an order of its own number (never settles): its
    // stored event is what the gateway decided.
    expect(await l.send('lis', result('R-3', '', 'LF-9003', 'MRN-88'))).toContain('MSA|AA|R-3');
    expect(lines(l, '70003')).toEqual([['GLU', 1, 0]]);
    const validated = (await l.all()).filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => e.event.correlationId)).toEqual(['LF-9003']);
  });

  it('two orders of one filler number: attached to neither', async () => {
    const l = await lab('review-s22-filler-ambiguous');
    expect(await l.send('lis', order('O-4', '70004', 'LF-9004'))).toContain('MSA|AA|O-4');
    expect(await l.send('lis', order('O-5', '70005', 'LF-9004'))).toContain('MSA|AA|O-5');
    await l.settled();
    expect(await l.send('lis', result('R-4', '', 'LF-9004'))).toContain('MSA|AA|R-4');
    expect(lines(l, '70004')).toEqual([['GLU', 1, 0]]);
    expect(lines(l, '70005')).toEqual([['GLU', 1, 0]]);
    const validated = (await l.all()).filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => e.event.correlationId)).toEqual(['LF-9004']);
  });

  it('a result naming its order by its own number is not changed', async () => {
    const l = await lab('review-s22-filler-usual');
    expect(await l.send('lis', order('O-6', '70006', 'LF-9006'))).toContain('MSA|AA|O-6');
    expect(await l.send('lis', result('R-6', '70006', 'LF-9006'))).toContain('MSA|AA|R-6');
    await l.settled();
    expect(lines(l, '70006')).toEqual([['GLU', 1, 1]]);
  });

  it('on a prefixed LIS link: attached to an order of that link, never of the other link', async () => {
    const l = await twoLis('review-s22-filler-two-lis');
    expect(await l.send('lis', order('O-7', '70007', 'LF-9007'))).toContain('MSA|AA|O-7');
    expect(await l.send('out', order('O-8', '80007', 'LF-9007'))).toContain('MSA|AA|O-8');
    expect(await l.send('lis', order('O-9', '70009', 'LF-9009'))).toContain('MSA|AA|O-9');
    await l.settled();
    expect(await l.send('out', result('R-7', '', 'LF-9007'))).toContain('MSA|AA|R-7');
    await l.settled();
    expect(lines(l, 'OUT-80007')).toEqual([['GLU', 1, 1]]);
    expect(lines(l, '70007')).toEqual([['GLU', 1, 0]]);
    // A filler number only the other link's order carries: attached to none.
    expect(await l.send('out', result('R-9', '', 'LF-9009'))).toContain('MSA|AA|R-9');
    const validated = (await l.all()).filter((e) => e.event.type === 'result.validated');
    expect(validated.map((e) => e.event.correlationId).sort()).toEqual(['OUT-80007', 'OUT-LF-9009']);
    expect(lines(l, '70009')).toEqual([['GLU', 1, 0]]);
  });
});
