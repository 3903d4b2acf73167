/**
 * LIS history on the gateway's LIS link — an initial load after commissioning, an archive replayed
 * or restored (MSH-11.2 processing mode, HL7 table 0207) — as finance staff see it in Odoo: a real
 * gateway (MLLP listener, LevelDB in a temp dir, the relay) posting to the Odoo emulator over HTTP,
 * the LIS as a real MLLP client. The test failed before the fix its comment names.
 */
import { describe, expect, it } from 'vitest';
import { lisOrm as orm, lisOru as oru, useLisLab } from '../fixtures/lis-rig.ts';
import { invoices, saleLines, saleOrders } from '../fixtures/relay/billing-rig.ts';

const { lab } = useLisLab();

describe('LIS archive replay and initial load (MSH-11.2 A / R / I)', () => {
  /**
   * What finance saw: after the gateway was commissioned, the LIS's administrator loaded the
   * month's orders and results into it (MSH-11 `P^I`, HL7 table 0207 "initial load"), and later
   * replayed its archive (`P^A` archive, `P^R` restore from archive). Every old order became a new
   * draft sale order of the clinic and every validated result a draft invoice: orders billed
   * by hand before the gateway existed were billed a second time.
   * Promise broken: DESIGN.md §2 (each business fact lands in Odoo once) and §3 (order.created is a
   * new order of the LIS); MSH-11.2 says these messages are not current processing.
   * Cause: hl7/processing-id.ts read MSH-11.1 only ("MSH-11.2 is the processing mode" — and nothing
   * read it).
   * Fix: a message whose processing mode is A, R or I is stored and acknowledged AA with its raw
   * bytes, found in the message browser as `processingMode:I` (`:A`, `:R`), and makes no event:
   * nothing of it reaches Odoo. Current processing (`T` or empty) is unchanged.
   */
  it('orders and results of an initial load or archive replay are kept and acknowledged, and reach no Odoo', async () => {
    const l = await lab('lis-archive');
    for (const mode of ['I', 'A', 'R']) {
      const accession = `OLD-${mode}`;
      expect(await l.send('lis', orm(`AO-${mode}`, accession, ['GLU'], { processing: `P^${mode}` }))).toContain(`MSA|AA|AO-${mode}`);
      expect(await l.send('lis', oru(`AR-${mode}`, accession, 'GLU', { processing: `P^${mode}` }))).toContain(`MSA|AA|AR-${mode}`);
    }
    // Current processing on the same link (T, the table's default) goes on as ever.
    expect(await l.send('lis', orm('CO-1', 'NEW-1', ['GLU'], { processing: 'P^T' }))).toContain('MSA|AA|CO-1');
    expect(await l.send('lis', oru('CR-1', 'NEW-1', 'GLU', { processing: 'P^T' }))).toContain('MSA|AA|CR-1');
    await l.settled();

    for (const mode of ['I', 'A', 'R']) {
      expect({ mode, orders: saleOrders(l.emu, `OLD-${mode}`).length, invoices: invoices(l.emu, `OLD-${mode}`).length }).toEqual({ mode, orders: 0, invoices: 0 });
    }
    const events = await l.all();
    expect(events.filter((e) => e.event.correlationId.startsWith('OLD-')).map((e) => e.event.type)).toEqual([]);
    expect(saleLines(l.emu, 'NEW-1').map((x) => [x.code, x.delivered])).toEqual([['GLU', 1]]);
    expect(invoices(l.emu, 'NEW-1')).toHaveLength(1);

    // Kept for IT, accepted, found as the load they were.
    expect((await l.search('processingMode:I')).sort()).toEqual([
      ['lis', 'AO-I'],
      ['lis', 'AR-I'],
    ]);
    expect(await l.search('OLD-A')).toContainEqual(['lis', 'AO-A']);
    const [stored] = await l.gateway.store!.listMessages({ controlId: 'AR-R' });
    expect(stored?.status).toBe('accepted');
  });
});
