/**
 * LIS history on the gateway's LIS link — an initial load after commissioning, an archive replayed
 * or restored (MSH-11.2 processing mode, HL7 table 0207) — as finance staff see it in Odoo: a real
 * gateway (MLLP listener, LevelDB in a temp dir, the relay) posting to the Odoo emulator over HTTP,
 * the LIS as a real MLLP client. The test failed before the fix its comment names.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startLabDay, type LabDay } from '../fixtures/relay/lab-day.ts';
import { invoices, saleLines, saleOrders } from '../fixtures/relay/billing-rig.ts';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

/** A gateway with the LIS link `lis`, relaying to the emulator, invoicing at once. */
function lab(id: string): Promise<LabDay> {
  return startLabDay(id, closers, {}, { relay: { syncModes: { 'invoice.eligible': 'realtime' } } });
}

const MSH = (type: string, id: string, processing: string): string => `MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||${type}|${id}|${processing}|2.5.1`;
const PID = 'PID|1||MRN-77^^^LAB^MR';

/** An ORM^O01 (new order, MSH-11 `processing`) with one ORC/OBR pair per test, for the clinic CLINIC-A. */
function orm(id: string, accession: string, tests: string[], processing: string): string {
  const lines = tests.flatMap((code, i) => [`ORC|NW|${accession}|F-${accession}||||||20260301092500||||||||||||CLINIC-A`, `OBR|${i + 1}|${accession}|F-${accession}|${code}^${code} test`]);
  return [MSH('ORM^O01^ORM_O01', id, processing), PID, ...lines].join('\r');
}

/** An ORU^R01 (MSH-11 `processing`) with the final result of `test`. */
function oru(id: string, accession: string, test: string, processing: string): string {
  return [
    MSH('ORU^R01^ORU_R01', id, processing),
    PID,
    `ORC|RE|${accession}|F-${accession}`,
    `OBR|1|${accession}|F-${accession}|${test}^${test} test|||20260301100000|||||||||||||||20260301110000|||F`,
    `OBX|1|NM|${test}^${test} test||5.4|mmol/L|||||F`,
  ].join('\r');
}

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
      expect(await l.send('lis', orm(`AO-${mode}`, accession, ['GLU'], `P^${mode}`))).toContain(`MSA|AA|AO-${mode}`);
      expect(await l.send('lis', oru(`AR-${mode}`, accession, 'GLU', `P^${mode}`))).toContain(`MSA|AA|AR-${mode}`);
    }
    // Current processing on the same link (T, the table's default) goes on as ever.
    expect(await l.send('lis', orm('CO-1', 'NEW-1', ['GLU'], 'P^T'))).toContain('MSA|AA|CO-1');
    expect(await l.send('lis', oru('CR-1', 'NEW-1', 'GLU', 'P^T'))).toContain('MSA|AA|CR-1');
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
