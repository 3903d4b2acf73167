/**
 * Tests a lab's LIS withdraws or never does, as finance staff see them in Odoo: a real gateway (MLLP listener, LevelDB in a temp dir, the relay) posting to the Odoo
 * emulator over HTTP, the LIS as a real MLLP client. Each test failed before the fix its comment
 * names.
 */
import { describe, expect, it } from 'vitest';
import type { LabDay } from '../fixtures/relay/lab-day.ts';
import { lisOrm as orm, lisOru as oru, useLisLab } from '../fixtures/lis-rig.ts';
import { invoices, saleLines } from '../fixtures/relay/billing-rig.ts';

const { lab } = useLisLab();

/** The tests of every `invoice.eligible` of `accession`, in the order they were stored. */
async function eligibilities(l: LabDay, accession: string): Promise<string[][]> {
  return (await l.all())
    .filter((e) => e.event.type === 'invoice.eligible' && e.event.correlationId === accession)
    .map((e) => (e.event.data as { tests: Array<{ code: string }> }).tests.map((t) => t.code));
}

async function deadLetters(l: LabDay): Promise<string[]> {
  return (await l.all()).filter((e) => e.state === 'dead').map((e) => `${e.event.type}: ${e.lastError ?? ''}`);
}

describe('tests the LIS withdraws or never does', () => {
  /**
   * What finance saw: order 80001 was placed for GLU and TSH; GLU was validated, then the
   * clinician stopped TSH before it was run and the LIS sent ORC-1 DC ("discontinue order
   * request", HL7 table 0119; OD "order discontinued" and DR "discontinued as requested" from a
   * filler). The TSH line stayed on the draft sale order, never delivered, and the order was never
   * eligible for its invoice: GLU, done and validated, was never billed — for good, since no
   * result for TSH would ever come.
   * Promise broken: DESIGN.md §3 (`invoice.eligible` when all billable tests of an order are
   * validated; a withdrawn test is not billable) — a discontinued lab test that has no result is a
   * test that will not be done.
   * Cause: hl7/normalize-lis.ts made events of NW, XO/XX/XR and CA/OC/CR only; DC/OD/DR were a
   * debug note.
   * Fix: DC, OD and DR withdraw their lines' tests like a cancellation (`order.cancelled`).
   */
  it('a test discontinued (ORC-1 DC, OD, DR) leaves the order billable for the tests that were done', async () => {
    const l = await lab('lis-discontinue');
    const controls = ['DC', 'OD', 'DR'];
    for (const [i, control] of controls.entries()) {
      const accession = `8000${i + 1}`;
      expect(await l.send('lis', orm(`O-${i}`, accession, ['GLU', 'TSH']))).toContain(`MSA|AA|O-${i}`);
      expect(await l.send('lis', oru(`R-${i}`, accession, 'GLU'))).toContain(`MSA|AA|R-${i}`);
      expect(await l.send('lis', orm(`D-${i}`, accession, ['TSH'], { control }))).toContain(`MSA|AA|D-${i}`);
    }
    await l.settled();
    expect(await deadLetters(l)).toEqual([]);
    for (const [i, control] of controls.entries()) {
      const accession = `8000${i + 1}`;
      expect({ control, eligible: await eligibilities(l, accession) }).toEqual({ control, eligible: [['GLU']] });
      expect({ control, lines: saleLines(l.emu, accession).map((x) => [x.code, x.qty, x.delivered]) }).toEqual({ control, lines: [['GLU', 1, 1]] });
      expect({ control, invoices: invoices(l.emu, accession).length }).toEqual({ control, invoices: 1 });
    }
  });

  /**
   * What finance saw: the LIS reported order 80011's TSH as "no results available; order
   * cancelled" (an ORU with OBR-25 X, HL7 table 0123 — the specimen was haemolysed and the clinic
   * did not ask for a redraw), or sent the order's status change (ORC-1 SC with ORC-5 CA "order
   * was cancelled" or DC "order was discontinued", table 0038). The TSH line stayed open and GLU,
   * validated the same morning, was never billed.
   * Promise broken: DESIGN.md §3, as above.
   * Cause: hl7/normalize-lis.ts made no event of OBR-25 X (an OBR without OBX, or with OBX-11 X)
   * nor of ORC-1 SC, whatever ORC-5 said.
   * Fix: OBR-25 X withdraws the ordered test (OBR-4), and ORC-1 SC with ORC-5 CA or DC the tests of
   * its lines, as `order.cancelled`.
   */
  it('a test the LIS reports cannot be done (OBR-25 X, ORC-5 CA/DC) leaves the order billable for the rest', async () => {
    const l = await lab('lis-cannot-be-done');
    const cases: Array<[string, string]> = [
      ['80011', 'OBR-25 X without OBX'],
      ['80012', 'OBR-25 X with OBX-11 X'],
      ['80013', 'ORC-1 SC, ORC-5 CA'],
      ['80014', 'ORC-1 SC, ORC-5 DC'],
    ];
    for (const [accession] of cases) {
      expect(await l.send('lis', orm(`O-${accession}`, accession, ['GLU', 'TSH']))).toContain('MSA|AA');
      expect(await l.send('lis', oru(`R-${accession}`, accession, 'GLU'))).toContain('MSA|AA');
    }
    expect(await l.send('lis', oru('X-1', '80011', 'TSH', { status: 'X', withObx: false }))).toContain('MSA|AA|X-1');
    expect(await l.send('lis', oru('X-2', '80012', 'TSH', { status: 'X' }))).toContain('MSA|AA|X-2');
    expect(await l.send('lis', orm('X-3', '80013', ['TSH'], { control: 'SC', status: 'CA' }))).toContain('MSA|AA|X-3');
    expect(await l.send('lis', orm('X-4', '80014', ['TSH'], { control: 'SC', status: 'DC' }))).toContain('MSA|AA|X-4');
    await l.settled();
    expect(await deadLetters(l)).toEqual([]);
    for (const [accession, what] of cases) {
      expect({ what, eligible: await eligibilities(l, accession) }).toEqual({ what, eligible: [['GLU']] });
      expect({ what, lines: saleLines(l.emu, accession).map((x) => [x.code, x.qty, x.delivered]) }).toEqual({ what, lines: [['GLU', 1, 1]] });
      expect({ what, invoices: invoices(l.emu, accession).length }).toEqual({ what, invoices: 1 });
    }
  });

  /**
   * What finance saw: order 80021's TSH came back as a final report whose only observation could
   * not be obtained (OBR-25 F, OBX-11 X "results cannot be obtained for this observation", HL7
   * table 0085 — too little serum, no redraw). The report was final, nothing more would come, yet
   * the TSH line stayed open and GLU, validated the same morning, was never billed.
   * Promise broken: DESIGN.md §3, as above.
   * Cause: hl7/normalize-lis.ts needs one OBX F for a final OBR to be validated, and makes no
   * event of X: the test ended neither validated nor withdrawn.
   * Fix: a final report (OBR-25 F) whose observations are all without a result and at least one
   * of them X withdraws the ordered test (`order.cancelled`), as OBR-25 X does.
   */
  it('a final report whose observation could not be obtained (OBR-25 F, OBX-11 X) leaves the order billable for the rest', async () => {
    const l = await lab('lis-not-obtained');
    expect(await l.send('lis', orm('O-1', '80021', ['GLU', 'TSH']))).toContain('MSA|AA|O-1');
    expect(await l.send('lis', oru('R-1', '80021', 'GLU'))).toContain('MSA|AA|R-1');
    const noResult = oru('R-2', '80021', 'TSH').replace('OBX|1|NM|TSH^TSH test||5.4|mmol/L|||||F', 'OBX|1|NM|TSH^TSH test||||||||X');
    expect(noResult).toContain('OBX|1|NM|TSH^TSH test||||||||X');
    expect(await l.send('lis', noResult)).toContain('MSA|AA|R-2');
    await l.settled();
    expect(await deadLetters(l)).toEqual([]);
    expect(await eligibilities(l, '80021')).toEqual([['GLU']]);
    expect(saleLines(l.emu, '80021').map((x) => [x.code, x.qty, x.delivered])).toEqual([['GLU', 1, 1]]);
    expect(invoices(l.emu, '80021')).toHaveLength(1);
  });

  /**
   * What finance saw: order 80031 was placed for GLU and TSH; the clinician replaced TSH by CRP and
   * the LIS sent the replacement (HL7 §4.5.1, table 0119: an ORC RP "order replace request" — RU
   * "replaced unsolicited", RQ "replaced as requested" from a filler — for the order replaced, then
   * an ORC RO "replacement order" for the new one). TSH stayed open on the sale order, CRP never
   * reached it: CRP's validated result was dead-lettered ("no line for test"), and neither GLU nor
   * CRP was ever billed.
   * Promise broken: DESIGN.md §3 (a test ordered → a sale order line; billable once validated; a
   * withdrawn test is not billable).
   * Cause: hl7/normalize-lis.ts made no event of RP/RU/RQ nor of RO (a debug note each).
   * Fix: the replaced line is withdrawn (`order.cancelled`) and the replacement ordered
   * (`order.created`), in the order of their lines, as `ORC CA` then `ORC NW` are.
   */
  it('a test replaced (ORC-1 RP/RU/RQ, then RO) leaves the sale order with the replacement, billed with the rest', async () => {
    const l = await lab('lis-replace');
    const controls = ['RP', 'RU', 'RQ'];
    for (const [i, control] of controls.entries()) {
      const accession = `8003${i + 1}`;
      expect(await l.send('lis', orm(`O-${i}`, accession, ['GLU', 'TSH']))).toContain(`MSA|AA|O-${i}`);
      expect(await l.send('lis', oru(`R-${i}`, accession, 'GLU'))).toContain(`MSA|AA|R-${i}`);
      const replaced = orm(`P-${i}`, accession, ['TSH'], { control }).split('\r');
      const replacement = orm(`P-${i}`, accession, ['CRP'], { control: 'RO' }).split('\r').slice(2);
      expect(await l.send('lis', [...replaced, ...replacement].join('\r'))).toContain(`MSA|AA|P-${i}`);
      expect(await l.send('lis', oru(`C-${i}`, accession, 'CRP'))).toContain(`MSA|AA|C-${i}`);
    }
    await l.settled();
    expect(await deadLetters(l)).toEqual([]);
    for (const [i, control] of controls.entries()) {
      const accession = `8003${i + 1}`;
      expect({ control, eligible: await eligibilities(l, accession) }).toEqual({ control, eligible: [['GLU', 'CRP']] });
      expect({ control, lines: saleLines(l.emu, accession).map((x) => [x.code, x.qty, x.delivered]) }).toEqual({
        control,
        lines: [
          ['GLU', 1, 1],
          ['CRP', 1, 1],
        ],
      });
      expect({ control, invoices: invoices(l.emu, accession).length }).toEqual({ control, invoices: 1 });
    }
  });
});
