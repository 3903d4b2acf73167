/**
 * A LIS's order changes on the gateway's LIS link, as finance staff see them in Odoo: a real
 * gateway (MLLP listener, LevelDB in a temp dir, the relay) posting to the Odoo emulator over
 * HTTP, the LIS as a real MLLP client. The test failed before the fix its comment names.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startLabDay, type LabDay } from '../fixtures/relay/lab-day.ts';
import { invoices, saleLines } from '../fixtures/relay/billing-rig.ts';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

/** A gateway with the LIS link `lis`, relaying to the emulator. */
function lab(id: string): Promise<LabDay> {
  return startLabDay(id, closers, {}, { relay: { syncModes: { 'invoice.eligible': 'realtime' } } });
}

const MSH = (type: string, id: string): string => `MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||${type}|${id}|P|2.5.1`;
const PID = 'PID|1||MRN-77^^^LAB^MR';

/** An ORM^O01 with ORC-1 `control` and one ORC/OBR pair per test, for the clinic CLINIC-A. */
function orm(id: string, accession: string, tests: string[], control = 'NW'): string {
  const lines = tests.flatMap((code, i) => [`ORC|${control}|${accession}|F-${accession}||||||20260301092500||||||||||||CLINIC-A`, `OBR|${i + 1}|${accession}|F-${accession}|${code}^${code} test`]);
  return [MSH('ORM^O01^ORM_O01', id), PID, ...lines].join('\r');
}

/** An ORU^R01 with the final result of `test`. */
function oru(id: string, accession: string, test: string): string {
  return [
    MSH('ORU^R01^ORU_R01', id),
    PID,
    `ORC|RE|${accession}|F-${accession}`,
    `OBR|1|${accession}|F-${accession}|${test}^${test} test|||20260301100000|||||||||||||||20260301110000|||F`,
    `OBX|1|NM|${test}^${test} test||5.4|mmol/L|||||F`,
  ].join('\r');
}

describe('LIS order changes (ORC-1 XO)', () => {
  /**
   * What finance saw: order 70001 was placed for GLU; the clinician then added TSH and the LIS sent
   * the changed order (ORC-1 XO, HL7 table 0119 "change order request") with GLU and TSH. The sale
   * order kept GLU alone; TSH's validated result was retried and dead-lettered ("order … has no
   * line for test TSH"), and the draft invoice billed GLU only: the added test was never billed.
   * Promise broken: DESIGN.md §3 (an order from the LIS → a sale order line per billable test;
   * a validated test → billing readiness); hl7/README.md listed XO among the controls that make
   * no event, without a note.
   * Cause: hl7/normalize-lis.ts made events of NW and CA/OC/CR only.
   * Fix: a changed order (XO, and the filler's XX/XR) is the order as it now stands:
   * `order.created` with its tests; the relay adds the tests the sale order lacks (an add-on).
   */
  it('a test added by a change order (XO) is on the sale order and billed with the rest', async () => {
    const l = await lab('lis-change-order');
    expect(await l.send('lis', orm('O-1', '70001', ['GLU']))).toContain('MSA|AA|O-1');
    await l.settled();
    expect(await l.send('lis', orm('O-2', '70001', ['GLU', 'TSH'], 'XO'))).toContain('MSA|AA|O-2');
    await l.settled();
    expect(saleLines(l.emu, '70001').map((x) => [x.code, x.qty])).toEqual([
      ['GLU', 1],
      ['TSH', 1],
    ]);
    expect(await l.send('lis', oru('R-1', '70001', 'GLU'))).toContain('MSA|AA|R-1');
    expect(await l.send('lis', oru('R-2', '70001', 'TSH'))).toContain('MSA|AA|R-2');
    await l.settled();
    const events = await l.all();
    expect(events.filter((e) => e.state === 'dead').map((e) => `${e.event.type}: ${e.lastError ?? ''}`)).toEqual([]);
    expect(saleLines(l.emu, '70001').map((x) => [x.code, x.delivered])).toEqual([
      ['GLU', 1],
      ['TSH', 1],
    ]);
    const eligible = events.filter((e) => e.event.type === 'invoice.eligible').map((e) => (e.event.data as { tests: Array<{ code: string }> }).tests.map((t) => t.code));
    expect(eligible).toEqual([['GLU', 'TSH']]);
    expect(invoices(l.emu, '70001')).toHaveLength(1);
  });
});
