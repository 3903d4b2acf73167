/**
 * Review of the refusal of a cancellation whose OBR-4 names a test without a code (hl7/README.md
 * "A cancellation naming a test without a code"), over MLLP into a real store and the Odoo
 * emulator: what the LIS is answered, what the operator finds, and what the LIS's corrected resend does.
 */
import { describe, expect, it } from 'vitest';
import { lisOrm as orm, useLisLab } from '../fixtures/lis-rig.ts';
import { saleLines } from '../fixtures/relay/billing-rig.ts';

const { lab } = useLisLab();

const cancel = (id: string, accession: string, obr4: string): string =>
  [
    `MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||ORM^O01^ORM_O01|${id}|P|2.5.1`,
    'PID|1||MRN-77^^^LAB^MR',
    `ORC|CA|${accession}|F-${accession}||||||20260301094500||||||||||||CLINIC-A`,
    `OBR|1|${accession}|F-${accession}|${obr4}`,
  ].join('\r');

describe('a cancellation naming a test without a code, over MLLP', () => {
  it('is refused AR 101 at OBR^1^4, kept raw with its reason, takes nothing off the order; the corrected resend of the same MSH-10 cancels the one test', async () => {
    const l = await lab('review-s22-hl7b-cancel-nocode');
    expect(await l.send('lis', orm('O-1', '93001', ['GLU', 'TSH']))).toContain('MSA|AA|O-1');
    const ack = await l.send('lis', cancel('X-1', '93001', '^Glucose test'));
    expect(ack).toContain('MSA|AR|X-1');
    expect(ack.split('\r').find((s) => s.startsWith('ERR'))).toMatch(/^ERR\|\|OBR\^1\^4\|101\^Required field missing\^HL70357\|E\|.*names a test without a code/);
    await l.settled();
    expect(saleLines(l.emu, '93001').map((x) => [x.code, x.qty])).toEqual([['GLU', 1], ['TSH', 1]]);
    const kept = await l.gateway.store!.listMessages({ controlId: 'X-1' });
    expect(kept.map((m) => [m.status, m.rejectReason])).toEqual([['rejected', expect.stringContaining('names a test without a code')]]);
    const stored = await l.gateway.store!.getMessage(kept[0]!.id);
    expect(stored?.raw.toString('latin1')).toContain('OBR|1|93001|F-93001|^Glucose test');
    // The LIS's interface analyst fixes the mapping and resends under the same control id.
    expect(await l.send('lis', cancel('X-1', '93001', 'GLU^Glucose test'))).toContain('MSA|AA|X-1');
    await l.settled();
    expect(saleLines(l.emu, '93001').filter((x) => x.qty > 0).map((x) => x.code)).toEqual(['TSH']);
    expect((await l.all()).filter((e) => e.state === 'dead')).toEqual([]);
  });
});
