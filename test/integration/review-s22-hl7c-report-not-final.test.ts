/**
 * A LIS whose every OBX is final under an OBR-25 that says the report is not complete (R, A, P…),
 * as the lab sees it: a real gateway (MLLP listener, LevelDB in a temp dir, the relay) posting to
 * the Odoo emulator over HTTP, the LIS as a real MLLP client, the message browser over HTTP.
 */
import { describe, expect, it } from 'vitest';
import { lisOrm as orm, lisOru as oru, useLisLab } from '../fixtures/lis-rig.ts';
import { invoices, saleLines } from '../fixtures/relay/billing-rig.ts';

const { lab } = useLisLab();

/** The LIS's ORU^R01 of GLU on `accession`: OBR-25 `obr25`, its one OBX final (OBX-11 F). */
function finalUnder(id: string, accession: string, obr25: string): string {
  return [
    `MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||ORU^R01^ORU_R01|${id}|P|2.5.1`,
    'PID|1||MRN-77^^^LAB^MR',
    `ORC|RE|${accession}|F-${accession}`,
    `OBR|1|${accession}|F-${accession}|GLU^GLU test|||20260301100000|||||||||||||||20260301110000|||${obr25}`,
    'OBX|1|NM|GLU^GLU test||5.4|mmol/L|||||F',
  ].join('\r');
}

describe('final results under a report that is not complete', () => {
  /**
   * What the lab saw: its LIS writes OBR-25 R over results it has verified (OBX-11 F) and never
   * sends another report for them. Since d528961 such a report no longer validates the test (R:
   * "results stored, not yet verified", HL7 table 0123), which is right for a panel sent part by
   * part; but nothing said so: the message was "accepted" with no warning, the line stayed
   * undelivered and the order never invoiced, and no dead letter, no search, no log line above
   * debug led anyone to it.
   * Cause: hl7/normalize-lis.ts made each OBX a test.completed under the incomplete OBR-25 and
   * said nothing (not even a note).
   * Fix: such a message gets the search term `not-final:<test>` and a warning naming the test and
   * what billing waits for; the events are as before.
   */
  it('the message is found by not-final:<test> and the test is not billed until its final report', async () => {
    const l = await lab('review-s22-hl7c-not-final');
    expect(await l.send('lis', orm('O-1', '93001', ['GLU']))).toContain('MSA|AA|O-1');
    expect(await l.send('lis', finalUnder('R-1', '93001', 'R'))).toContain('MSA|AA|R-1');
    await l.settled();
    expect(saleLines(l.emu, '93001').map((x) => [x.code, x.qty, x.delivered])).toEqual([['GLU', 1, 0]]);
    expect(invoices(l.emu, '93001')).toHaveLength(0);
    expect(await l.search('not-final:GLU')).toEqual([['lis', 'R-1']]);

    // The final report validates, as before; it is no such message.
    expect(await l.send('lis', oru('R-2', '93001', 'GLU'))).toContain('MSA|AA|R-2');
    await l.settled();
    expect(saleLines(l.emu, '93001').map((x) => [x.code, x.qty, x.delivered])).toEqual([['GLU', 1, 1]]);
    expect(invoices(l.emu, '93001')).toHaveLength(1);
    expect(await l.search('not-final:GLU')).toEqual([['lis', 'R-1']]);
  });

  it('a preliminary report (OBX-11 P under OBR-25 P) is no such message', async () => {
    const l = await lab('review-s22-hl7c-preliminary');
    expect(await l.send('lis', orm('O-1', '93002', ['GLU']))).toContain('MSA|AA|O-1');
    expect(await l.send('lis', oru('R-1', '93002', 'GLU', { status: 'P' }))).toContain('MSA|AA|R-1');
    await l.settled();
    expect(await l.search('not-final:GLU')).toEqual([]);
  });
});
