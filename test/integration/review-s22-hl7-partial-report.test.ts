/**
 * A panel the LIS reports part by part, as finance sees it in Odoo: a real gateway (MLLP listener,
 * LevelDB in a temp dir, the relay) posting to the Odoo emulator over HTTP, the LIS as a real MLLP
 * client.
 */
import { describe, expect, it } from 'vitest';
import { lisOrm as orm, lisOru as oru, useLisLab } from '../fixtures/lis-rig.ts';
import { invoices, saleLines } from '../fixtures/relay/billing-rig.ts';

const { lab } = useLisLab();

/** The LIS's ORU^R01 of a CBC with OBR-25 `obr25` and the analytes verified so far, each OBX-11 F. */
function partialCbc(id: string, accession: string, obr25: string): string {
  return [
    `MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||ORU^R01^ORU_R01|${id}|P|2.5.1`,
    'PID|1||MRN-77^^^LAB^MR',
    `ORC|RE|${accession}|F-${accession}`,
    `OBR|1|${accession}|F-${accession}|CBC^CBC test|||20260301100000|||||||||||||||20260301104500|||${obr25}`,
    'OBX|1|NM|WBC^Leukocytes||7.1|10*9/L|||||F',
    'OBX|2|NM|RBC^Erythrocytes||4.52|10*12/L|||||F',
  ].join('\r');
}

describe('a panel reported part by part', () => {
  /**
   * What finance saw: CBC ordered on 90001; the LIS sent the analytes verified so far (WBC, RBC,
   * each OBX-11 F) under OBR-25 A ("some, but not all, results available", HL7 table 0123) while
   * the differential was still on the bench. The CBC line was marked delivered and the order's
   * draft invoice made at once, before the report was complete (and whatever came of the rest).
   * Cause: hl7/normalize-lis.ts validated the ordered test whenever every OBX was F, whatever OBR-25.
   * Fix: under OBR-25 O/S/I/A/P/R each OBX is a test.completed; the final report (OBR-25 F) validates.
   */
  it('is billing-ready at its final report, not at its first part', async () => {
    const l = await lab('review-s22-partial');
    expect(await l.send('lis', orm('O-1', '90001', ['CBC']))).toContain('MSA|AA|O-1');
    expect(await l.send('lis', partialCbc('R-1', '90001', 'A'))).toContain('MSA|AA|R-1');
    await l.settled();
    expect(saleLines(l.emu, '90001').map((x) => [x.code, x.qty, x.delivered])).toEqual([['CBC', 1, 0]]);
    expect(invoices(l.emu, '90001')).toHaveLength(0);

    expect(await l.send('lis', oru('R-2', '90001', 'CBC'))).toContain('MSA|AA|R-2');
    await l.settled();
    expect(saleLines(l.emu, '90001').map((x) => [x.code, x.qty, x.delivered])).toEqual([['CBC', 1, 1]]);
    expect(invoices(l.emu, '90001')).toHaveLength(1);
    expect((await l.all()).filter((e) => e.state === 'dead')).toEqual([]);
  });
});
