/**
 * A corrected report (OBR-25 C, OBX-11 C) as finance sees it in Odoo: a real gateway (MLLP
 * listener, LevelDB in a temp dir, the relay) posting to the Odoo emulator over HTTP, the LIS as a
 * real MLLP client.
 */
import { describe, expect, it } from 'vitest';
import { lisOrm as orm, lisOru as oru, useLisLab } from '../fixtures/lis-rig.ts';
import { billed, invoices, saleLines } from '../fixtures/relay/billing-rig.ts';
import type { LabDay } from '../fixtures/relay/lab-day.ts';

const { lab } = useLisLab();

/** The CBC line as finance reads it, the tests billed, and the dead letters. */
async function books(l: LabDay, accession: string): Promise<{ lines: Array<[string, number, number]>; invoices: number; billed: string[]; dead: string[] }> {
  await l.settled();
  return {
    lines: saleLines(l.emu, accession).map((x) => [x.code, x.qty, x.delivered]),
    invoices: invoices(l.emu, accession).length,
    billed: billed(l.emu, accession),
    dead: (await l.all()).filter((e) => e.state === 'dead').map((e) => `${e.event.type}: ${e.deadReason ?? ''}`),
  };
}

const once = { lines: [['GLU', 1, 1]], invoices: 1, billed: ['GLU'], dead: [] };

describe('a corrected report validates its test, billed once', () => {
  /**
   * What finance saw: GLU ordered on 91001; the gateway never had its final report (refused, or
   * sent before the gateway was installed); the LIS then sent the corrected report (OBR-25 C,
   * OBX-11 C). The line stayed undelivered, the order was never invoiced, and no dead letter said
   * so: a correction made only a test.completed (a chatter note).
   * Cause: hl7/normalize-lis.ts validated a test only when its OBX were F.
   * Fix: a corrected report (OBX C, under an OBR-25 that does not say the report is incomplete)
   * also makes the test's result.validated; billing counts a test validated twice once.
   */
  it('C alone: the line is delivered and the order invoiced once', async () => {
    const l = await lab('review-s22-hl7b-c-alone');
    expect(await l.send('lis', orm('O-1', '91001', ['GLU']))).toContain('MSA|AA|O-1');
    expect(await l.send('lis', oru('R-1', '91001', 'GLU', { status: 'C' }))).toContain('MSA|AA|R-1');
    expect(await books(l, '91001')).toEqual(once);
  });

  it('F then C: billed once at the final report, the correction adds nothing', async () => {
    const l = await lab('review-s22-hl7b-f-then-c');
    expect(await l.send('lis', orm('O-1', '91002', ['GLU']))).toContain('MSA|AA|O-1');
    expect(await l.send('lis', oru('R-1', '91002', 'GLU'))).toContain('MSA|AA|R-1');
    expect(await books(l, '91002')).toEqual(once);
    expect(await l.send('lis', oru('R-2', '91002', 'GLU', { status: 'C' }))).toContain('MSA|AA|R-2');
    expect(await books(l, '91002')).toEqual(once);
    // The correction's value is still noted on the order (its test.completed, as before).
    expect((await l.all()).filter((e) => e.event.type === 'test.completed').map((e) => e.state)).toEqual(['delivered']);
  });

  it('C then F: billed once at the correction, the late final adds nothing', async () => {
    const l = await lab('review-s22-hl7b-c-then-f');
    expect(await l.send('lis', orm('O-1', '91003', ['GLU']))).toContain('MSA|AA|O-1');
    expect(await l.send('lis', oru('R-1', '91003', 'GLU', { status: 'C' }))).toContain('MSA|AA|R-1');
    expect(await books(l, '91003')).toEqual(once);
    expect(await l.send('lis', oru('R-2', '91003', 'GLU'))).toContain('MSA|AA|R-2');
    expect(await books(l, '91003')).toEqual(once);
  });

  it('a corrected report of one test of two: the order is invoiced once, when the other is final', async () => {
    const l = await lab('review-s22-hl7b-c-two-tests');
    expect(await l.send('lis', orm('O-1', '91004', ['GLU', 'TSH']))).toContain('MSA|AA|O-1');
    expect(await l.send('lis', oru('R-1', '91004', 'GLU', { status: 'C' }))).toContain('MSA|AA|R-1');
    let b = await books(l, '91004');
    expect([b.lines, b.invoices]).toEqual([[['GLU', 1, 1], ['TSH', 1, 0]], 0]);
    expect(await l.send('lis', oru('R-2', '91004', 'TSH'))).toContain('MSA|AA|R-2');
    expect(await l.send('lis', oru('R-3', '91004', 'GLU', { status: 'C' }))).toContain('MSA|AA|R-3');
    b = await books(l, '91004');
    expect(b).toEqual({ lines: [['GLU', 1, 1], ['TSH', 1, 1]], invoices: 1, billed: ['GLU', 'TSH'], dead: [] });
  });
});
