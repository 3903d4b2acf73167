import { describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/src/gateway.ts';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import { framesForText } from '../fixtures/astm-link/analyzer-sim.ts';
import { useSerialGateway } from '../fixtures/astm-link/serial-gateway.ts';
import { waitFor } from '../fixtures/relay/helpers.ts';

/**
 * A Roche cobas c 111 on its serial line (a socat pty pair, `serialport` on the analyzer's end),
 * the whole gateway with a real LevelDB store. A c 111 reports a calibration as a manufacturer
 * record of its own, the photometric calibration result M.CR (host interface manual v2.1,
 * 5.2.2.10): `M|1|CR^BM^c111^1|<ACN>^<name>|<reagent lot>|<units>|BS^<name>||…|<replicates>|
 * <calibration time>|<state>^<operator>||<curve>|SD^^^<calibrator lot>|<levels>`, between H and
 * L, with no P, O or R record. Framed as the c 111 frames everything: ETB after every record, ETX
 * only on the last.
 */

const HEADER = (h14: string) => `H|\\^&|||c111^Roche^c111^4.2.2.1730^1^13147|||||host|RSUPL^REAL|P|1|${h14}`;

/** An accepted two-level albumin (ACN 413) calibration in duplicate, as the c 111 sends it. */
function albuminCalibration(h14: string, calibratedAt: string): string {
  return [
    HEADER(h14),
    `M|1|CR^BM^c111^1|413^ALB|64521301|g/L|BS^ALB||N^R|2|${calibratedAt}|A^$SYS$||1.212000E+01^5.310000E-01|SD^^^65432101|0^0.0012^0.0011^0.0013^0^0\\45.3^0.4210^0.4205^0.4215^0^0`,
    'L|1|N',
  ].join('\r');
}

const line = useSerialGateway('c111-cal-');

async function started(): Promise<{ gateway: Gateway; send: (text: string) => Promise<string> }> {
  const { gateway, sim } = await line.start('c111-cal', { id: 'c111-1', profile: 'roche-cobas-c111' });
  const send = async (text: string): Promise<string> => (await sim.sendMessage(framesForText(text, { etbAfterEveryRecord: true }))).replies;
  return { gateway, send };
}

const consumption = async (gateway: Gateway): Promise<StoredEvent[]> => (await gateway.store!.listEvents({ limit: 100 })).filter((e) => e.event.type === 'consumable.used');
const stored = async (gateway: Gateway): Promise<number> => (await gateway.store!.listMessages({ endpoint: 'c111-1', limit: 10 })).length;

describe('cobas c 111 calibration (M.CR record) over its serial line', () => {
  /**
   * What the stock keeper saw: every albumin calibration on the c 111 used reagent and cuvettes
   * from the lot on board, but the stock in Odoo never moved for it — only patient and QC runs
   * left stock, so the on-hand figure drifted above what was on the shelf and the reorder point
   * fired late. The gateway stored the M.CR message and made no run of it. The promise broken:
   * DESIGN.md §3, `consumable.used` for each analyzer run, calibration included, per the
   * profile's consumption table. The fix: a calibration consumes what a run of its test consumes
   * (the albumin reagent, one cuvette, the per-run cleaner), as run type `calibration`; the same
   * calibration sent again (the c 111 resends when it missed the ACK) consumes nothing more; a
   * recalibration at another time is a new calibration.
   */
  it('consumes the calibrated test\'s reagent once, and again only for a new calibration', async () => {
    const { gateway, send } = await started();
    expect(await send(albuminCalibration('20260114071502', '20260114071455'))).toBe('<ACK>'.repeat(4));
    await waitFor(async () => (await stored(gateway)) === 1, 10_000);

    const first = await consumption(gateway);
    expect(
      first.map((e) => (e.event.type === 'consumable.used' ? [e.event.data.productCode, e.event.data.quantity, e.event.data.runType, e.event.data.testCode ?? null] : [])).sort(),
    ).toEqual([
      ['ROC-C111-ALB', 1, 'calibration', 'ALB'],
      ['ROC-C111-CLEANER', 0.1, 'calibration', null],
      ['ROC-C111-CUVETTE', 1, 'calibration', 'ALB'],
    ]);
    // Dated by the calibration, not by the session that carried it.
    expect(first.every((e) => e.event.type === 'consumable.used' && e.event.data.runAt === new Date(2026, 0, 14, 7, 14, 55).toISOString())).toBe(true);

    // The same calibration in a new session (new H.14): kept raw, nothing consumed again.
    expect(await send(albuminCalibration('20260114072010', '20260114071455'))).toBe('<ACK>'.repeat(4));
    await waitFor(async () => (await stored(gateway)) === 2, 10_000);
    expect((await consumption(gateway)).map((e) => e.event.idempotencyKey).sort()).toEqual(first.map((e) => e.event.idempotencyKey).sort());

    // The next morning's recalibration of albumin is another calibration: it consumes again.
    expect(await send(albuminCalibration('20260115070102', '20260115070040'))).toBe('<ACK>'.repeat(4));
    await waitFor(async () => (await consumption(gateway)).length === 6, 10_000);
    const albumin = (await consumption(gateway)).filter((e) => e.event.type === 'consumable.used' && e.event.data.productCode === 'ROC-C111-ALB');
    expect(albumin).toHaveLength(2);
  });

  /**
   * What the stock keeper saw: an albumin calibration whose record carries no calibration time
   * (M.11 empty) left stock twice when the c 111 sent it again behind a glucose calibration in
   * one message: its sequence number (M.2, the record's place in the message, LIS2-A2) went from 1
   * to 2, and the run identity of an undated calibration was a hash of the whole record. The
   * promise broken: DESIGN.md §2, each business fact lands once (the analyzer resending). The
   * identity of an undated calibration is what the c 111 reports of the calibration itself
   * (5.2.2.10: the test, the reagent and calibrator lots, the curve and each level's readings),
   * not where the record sits.
   */
  it('an undated calibration sent again at another place in a message consumes nothing more', async () => {
    const { gateway, send } = await started();
    const albumin = (seq: number) =>
      `M|${seq}|CR^BM^c111^1|413^ALB|64521301|g/L|BS^ALB||N^R|2||A^$SYS$||1.212000E+01^5.310000E-01|SD^^^65432101|0^0.0012^0.0011^0.0013^0^0\\45.3^0.4210^0.4205^0.4215^0^0`;
    const glucose = (seq: number) =>
      `M|${seq}|CR^BM^c111^1|767^GLU|71830402|mmol/L|BS^GLU||N^R|2||A^$SYS$||2.301000E+01^1.120000E-01|SD^^^65432101|0^0.0009^0.0008^0.0010^0^0\\12.9^0.6120^0.6117^0.6123^0^0`;
    expect(await send([HEADER('20260114071502'), albumin(1), 'L|1|N'].join('\r'))).toBe('<ACK>'.repeat(4));
    await waitFor(async () => (await consumption(gateway)).length === 3, 10_000);

    expect(await send([HEADER('20260114072010'), glucose(1), albumin(2), 'L|1|N'].join('\r'))).toBe('<ACK>'.repeat(5));
    await waitFor(async () => (await stored(gateway)) === 2, 10_000);
    await waitFor(async () => (await consumption(gateway)).some((e) => e.event.type === 'consumable.used' && e.event.data.productCode === 'ROC-C111-GLU'), 10_000);
    const albuminDraws = (await consumption(gateway)).filter((e) => e.event.type === 'consumable.used' && e.event.data.productCode === 'ROC-C111-ALB');
    expect(albuminDraws).toHaveLength(1);
  });
});
