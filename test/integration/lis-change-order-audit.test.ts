/**
 * A LIS's order changes on the gateway's LIS link, as finance staff see them in Odoo: a real
 * gateway (MLLP listener, LevelDB in a temp dir, the relay) posting to the Odoo emulator over
 * HTTP, the LIS as a real MLLP client. The test failed before the fix its comment names.
 */
import { describe, expect, it } from 'vitest';
import { lisOrm as orm, lisOru as oru, useLisLab } from '../fixtures/lis-rig.ts';
import { invoices, saleLines } from '../fixtures/relay/billing-rig.ts';

const { lab } = useLisLab();

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
    expect(await l.send('lis', orm('O-2', '70001', ['GLU', 'TSH'], { control: 'XO' }))).toContain('MSA|AA|O-2');
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
