/**
 * Results that came before their order under one number, of two patients (hl7/order-numbers.ts,
 * README "A result that came before its order"): a LIS whose filler numbers come round again (a
 * daily sample number) sent LF-9401's result of patient MRN-77, then LF-9401's result of MRN-88,
 * both before their orders. A real gateway (MLLP listener, LevelDB in a temp dir, the relay) and
 * the Odoo emulator; the LIS a real MLLP client.
 */
import { describe, expect, it } from 'vitest';
import { useLisLab } from '../fixtures/lis-rig.ts';

const { lab } = useLisLab();

const MSH = (type: string, id: string): string => `MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||${type}|${id}|P|2.5.1`;

/** An ORM^O01 NW of GLU with placer number `placer` and filler number `filler`. */
function order(id: string, placer: string, filler: string, mrn: string): string {
  return [MSH('ORM^O01^ORM_O01', id), `PID|1||${mrn}^^^LAB^MR`, `ORC|NW|${placer}|${filler}||||||20260301092500||||||||||||CLINIC-A`, `OBR|1|${placer}|${filler}|GLU^GLU test`].join('\r');
}

/** The final ORU^R01 of GLU carrying only the filler number `filler`, of value `value`. */
function result(id: string, filler: string, mrn: string, value: string): string {
  return [
    MSH('ORU^R01^ORU_R01', id),
    `PID|1||${mrn}^^^LAB^MR`,
    `ORC|RE||${filler}`,
    `OBR|1||${filler}|GLU^GLU test|||20260301100000|||||||||||||||20260301110000|||F`,
    `OBX|1|NM|GLU^GLU test||${value}|mmol/L|||||F`,
  ].join('\r');
}

describe('results of two patients that came before their orders under one number', () => {
  /**
   * Before: the waiting number kept the patient of its first result only. The order of MRN-88
   * carrying LF-9401 got nothing (a warning: the results name MRN-77), and the order of MRN-77
   * got both results, MRN-88's glucose (9.9) beside its own (5.4): another patient's value
   * delivered on its sale order, and MRN-88's result dead-lettered after a day, never billed.
   * Now each stored result goes to the order of its own patient.
   */
  it('each result is attached to the order of its own patient only', async () => {
    const l = await lab('review-s23b-filler-waiting-patients');
    // The link has sent an order carrying a filler number before: its results are looked up.
    expect(await l.send('lis', order('O-0', '70400', 'LF-9400', 'MRN-77'))).toContain('MSA|AA|O-0');
    expect(await l.send('lis', result('R-A', 'LF-9401', 'MRN-77', '5.4'))).toContain('MSA|AA|R-A');
    expect(await l.send('lis', result('R-B', 'LF-9401', 'MRN-88', '9.9'))).toContain('MSA|AA|R-B');
    expect(await l.send('lis', order('O-B', '70402', 'LF-9401', 'MRN-88'))).toContain('MSA|AA|O-B');
    expect(await l.send('lis', order('O-A', '70401', 'LF-9401', 'MRN-77'))).toContain('MSA|AA|O-A');
    await l.settled();
    const all = await l.all();
    const onOrders = all
      .filter((e) => e.event.type === 'result.validated' && e.event.correlationId !== 'LF-9401')
      .map((e) => [e.event.correlationId, e.event.type === 'result.validated' ? e.event.data.value : undefined]);
    expect(onOrders.sort()).toEqual([
      ['70401', '5.4'],
      ['70402', '9.9'],
    ]);
    expect(all.filter((e) => e.state === 'dead')).toEqual([]);
  });

  /** One patient's result waiting, another patient's order carrying its number: attached to none (as before). */
  it('a result is not attached to the order of another patient, whichever came first', async () => {
    const l = await lab('review-s23b-filler-waiting-patients-other');
    expect(await l.send('lis', order('O-0', '70410', 'LF-9410', 'MRN-77'))).toContain('MSA|AA|O-0');
    expect(await l.send('lis', result('R-C', 'LF-9411', 'MRN-88', '9.9'))).toContain('MSA|AA|R-C');
    expect(await l.send('lis', order('O-C', '70411', 'LF-9411', 'MRN-77'))).toContain('MSA|AA|O-C');
    const all = await l.all();
    expect(all.filter((e) => e.event.type === 'result.validated').map((e) => e.event.correlationId)).toEqual(['LF-9411']);
  });
});
