import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/src/gateway.ts';
import { MllpClient } from '../../gateway/src/ingress/mllp/mllp-client.ts';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import { startTestGateway } from '../fixtures/gateway.ts';
import { connectAnalyzer } from '../fixtures/order-download.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';

/**
 * One measurement reported twice in one message, in two units, with one code and one time: the
 * Abbott Afinion 2 set to dual units over ASTM (HbA1c 5.1 % and 32 mmol/mol), a Mindray BS over
 * HL7 reporting glucose in mmol/L and mg/dL (two OBX of one test number, one OBX-14). A real
 * gateway over TCP (ASTM) and MLLP (HL7), a real LevelDB store in a temp dir.
 *
 * The rule both normalizers follow (profiles/result-alt-key.ts): of the results of one specimen,
 * code and time in a message, the one in the units the profile maps for the test keeps the bare
 * key and every other gets `alt:<hash of value, units, flags>`, whatever the order they come in.
 */

const AFINION = { id: 'afinion-1', profile: 'abbott-afinion-2', tcp: { listen: { host: '127.0.0.1', port: 0 } } };
const BS = { id: 'bs-1', profile: 'mindray-bs-series', tcp: { listen: { host: '127.0.0.1', port: 0 } } };

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
});

const events = async (gateway: Gateway): Promise<StoredEvent[]> => gateway.store!.listEvents({ limit: 200 });
const completed = (all: StoredEvent[]) =>
  all.flatMap((e) => (e.event.type === 'test.completed' ? [[e.event.data.analyzerTestCode, e.event.data.value, e.event.data.units]] : []));

/** The patient's HbA1c run as the Afinion 2 sends it, its two HbA1c results in `order`; `header` is H.14. */
function afinionRun(header: string, order: 'percent-first' | 'mmol-first'): string[] {
  const percent = '^^^HbA1c|5.1|%||||F||op7||20260114091503';
  const mmol = '^^^HbA1c|32|mmol/mol||||F||op7||20260114091503';
  const [first, second] = order === 'percent-first' ? [percent, mmol] : [mmol, percent];
  return [
    `H|\\^&|||Afinion 2 Analyzer^^AF20095065|||||||P|1|${header}`,
    'P|1||A2601147|||||U',
    'O|1||7|^^^HbA1c|||||||N||||^O||||||||^10233356||F',
    `R|1|${first}`,
    `R|2|${second}`,
    'L|1|N',
  ];
}

/** A Mindray BS ORU^R01 with glucose (test no. 3) in the two units, in `order`. */
function bsGlucose(controlId: string, order: 'mmol-first' | 'mg-first'): Buffer {
  const mmol = 'OBX|1|NM|3|GLU|5.4|mmol/L|-||||F|||20261125102930||';
  const mg = 'OBX|2|NM|3|GLU|97|mg/dL|-||||F|||20261125102930||';
  return Buffer.from(
    [
      `MSH|^~\\&|Mindray|BS-200|||20261125103000||ORU^R01|${controlId}|P|2.3.1||||0||ASCII|||`,
      'PID|1|854||31|Anon||19830719000000|F',
      'OBR|1|BC-7731|31|Mindray^BS-200|N||20261125102500||||||||serum',
      ...(order === 'mmol-first' ? [mmol, mg] : [mg, mmol]),
      '',
    ].join('\r'),
    'latin1',
  );
}

describe('a result reported in two units, resent with the units the other way round', () => {
  /**
   * What the lab saw: the Afinion resent a run it had sent before (it missed the ACK) listing the
   * mmol/mol result first. The first copy had given the % result the bare key and the mmol/mol one
   * `alt:`; the resend gave the bare key to the mmol/mol result (skipped: the key of the stored %
   * result) and `alt:` to the % result, which was stored a second time: Odoo's order got a third
   * HbA1c note, and the message browser showed the resend as new results. The promise: DESIGN.md
   * §2, a resend adds nothing (each business fact lands once), whatever order the analyzer lists
   * its records in.
   */
  it('ASTM (Afinion 2): the resend listing mmol/mol first adds no result', async () => {
    const { gateway, stop } = await startTestGateway('alt-key-astm', { analyzers: [AFINION] });
    closers.push(stop);
    const { sim, socket } = await connectAnalyzer(gateway, AFINION.id);
    closers.push(async () => void socket.destroy());

    expect((await sim.sendMessage(afinionRun('20260114091612', 'percent-first'))).replies).not.toContain('NAK');
    await waitFor(async () => (await events(gateway)).some((e) => e.event.type === 'consumable.used'), 10_000);
    const stored = await events(gateway);
    expect(completed(stored)).toEqual([
      ['HbA1c', '5.1', '%'],
      ['HbA1c', '32', 'mmol/mol'],
    ]);

    expect((await sim.sendMessage(afinionRun('20260114092001', 'mmol-first'))).replies).not.toContain('NAK');
    await waitFor(async () => (await gateway.store!.listMessages({ q: 'A2601147', limit: 5 })).length === 2, 10_000);
    expect(completed(await events(gateway)), 'results after the resend').toEqual(completed(stored));
    expect((await events(gateway)).map((e) => e.event.idempotencyKey)).toEqual(stored.map((e) => e.event.idempotencyKey));
  });

  /**
   * What the lab saw: a Mindray BS reporting glucose in mmol/L and mg/dL (two OBX of test no. 3,
   * one OBX-14) got its ACK, and the gateway kept only the first: both OBX had one key (analyzer,
   * barcode, test, OBX-14) and the store skipped the second as a resend — the collision the ASTM
   * path had closed for the Afinion. The promise: DESIGN.md §2, no acknowledged message is lost
   * (two results are two facts), and a resend of the message, in either order, adds nothing.
   */
  it('HL7 (Mindray BS): both OBX of one test and time are kept, and the resend the other way round adds nothing', async () => {
    const { gateway, stop } = await startTestGateway('alt-key-hl7', { analyzers: [BS] });
    closers.push(stop);
    const bs = await MllpClient.connect({ host: '127.0.0.1', port: gateway.addresses().analyzers[BS.id]!.port! });
    closers.push(() => bs.close().catch(() => undefined));

    expect((await bs.send(bsGlucose('R-1', 'mmol-first'))).toString('latin1')).toContain('MSA|AA|R-1');
    await waitFor(async () => (await events(gateway)).some((e) => e.event.type === 'consumable.used'), 10_000);
    const stored = await events(gateway);
    expect(completed(stored), 'both glucose results').toEqual([
      ['3', '5.4', 'mmol/L'],
      ['3', '97', 'mg/dL'],
    ]);

    expect((await bs.send(bsGlucose('R-2', 'mg-first'))).toString('latin1')).toContain('MSA|AA|R-2');
    await waitFor(async () => (await gateway.store!.listMessages({ q: 'BC-7731', limit: 5 })).length === 2, 10_000);
    expect((await events(gateway)).map((e) => e.event.idempotencyKey), 'keys after the resend').toEqual(stored.map((e) => e.event.idempotencyKey));
  });
});
