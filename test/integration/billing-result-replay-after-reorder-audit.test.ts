import { describe, expect, it } from 'vitest';
import type { StoredEvent } from '../../gateway/src/store/types.ts';
import { billed, billingRig, deadReasons, oru, ormTimed, saleLines } from '../fixtures/relay/billing-rig.ts';

/**
 * A result of a cancelled test that the LIS replays after ordering the test again. GLU and TSH
 * ordered at 09:20, both resulted and validated (OBR-22 09:50), TSH cancelled at 10:00 (ORC CA) and
 * ordered again at 10:30 (ORC NW, ORC-9 10:30): the lab redraws. The LIS then replays the 09:50
 * TSH result under a new MSH-10 (its ACK lost in an outage). Before, it counted for the re-order:
 * TSH billed before the redraw was run, and billed wrongly if it never was. A result the gateway
 * already stored for the test before the re-order (same OBR-22, same value) is a replay, and a
 * result reported (OBR-22) strictly before the re-order's ORC-9 is the cancelled test's: kept,
 * counted for nothing, said on the event. A result without OBR-22 (timed by OBR-7, the tube's
 * collection time, before the re-order) still counts: the re-ordered test run on the tube already
 * drawn. Real HL7 through the LIS normalizer, the invoice-eligibility derivation in a LevelDB
 * store, the relay and the Odoo emulator over HTTP (relay/README.md "A result of a cancelled test").
 */

const ORDERED = '20260301092000';
const RESULTED = '20260301095000';
const CANCELLED = '20260301100000';
const AGAIN = '20260301103000';
const REPLAYED = '20260301113000';

const tshLine = (rig: Awaited<ReturnType<typeof billingRig>>, accession: string): Array<[number, number]> =>
  saleLines(rig.emu, accession).filter((l) => l.code === 'TSH').map((l) => [l.qty, l.delivered]);

/** The note of the accession's last result.validated event of `test`. */
const lastResultNote = (evs: StoredEvent[]): string =>
  String(evs.filter((e) => e.event.type === 'result.validated').at(-1)?.note ?? '');

/** GLU and TSH ordered, validated at 09:50, TSH cancelled at 10:00 and ordered again (ORC-9 `againOrc9`). */
async function cancelledAndOrderedAgain(accession: string, o: { tshReportedAt?: string; againOrc9?: string } = {}): Promise<Awaited<ReturnType<typeof billingRig>>> {
  const rig = await billingRig();
  await rig.receive(ormTimed(accession, ['GLU', 'TSH'], { msh7: ORDERED, orc9: ORDERED }));
  await rig.receive(oru(accession, 'GLU', 'F', '5.4', RESULTED));
  await rig.receive(oru(accession, 'TSH', 'F', '2.1', o.tshReportedAt ?? RESULTED));
  await rig.settle(accession);
  expect(billed(rig.emu, accession)).toEqual(['GLU', 'TSH']);
  await rig.receive(ormTimed(accession, ['TSH'], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
  await rig.receive(ormTimed(accession, ['TSH'], { msh7: AGAIN, ...(o.againOrc9 === undefined ? { orc9: AGAIN } : o.againOrc9 ? { orc9: o.againOrc9 } : {}) }));
  await rig.settle(accession);
  expect(billed(rig.emu, accession), 'TSH taken off the draft invoice').toEqual(['GLU']);
  expect(tshLine(rig, accession)).toEqual([[1, 0]]);
  return rig;
}

describe('a result of the cancelled test replayed after the LIS ordered it again', () => {
  it('the replayed 09:50 result counts for nothing: the re-order waits for the redraw', async () => {
    const rig = await cancelledAndOrderedAgain('RR-100');
    await rig.receive(oru('RR-100', 'TSH', 'F', '2.1', RESULTED));
    await rig.settle('RR-100');

    const evs = await rig.events('RR-100');
    expect(deadReasons(evs)).toEqual([]);
    expect(tshLine(rig, 'RR-100'), 'not delivered').toEqual([[1, 0]]);
    expect(billed(rig.emu, 'RR-100'), 'TSH not billed before the redraw is run').toEqual(['GLU']);
    expect(lastResultNote(evs)).toMatch(/TSH.*replay.*not counted/);

    // The redraw's result (reported 11:45) counts: TSH billed, once.
    await rig.receive(oru('RR-100', 'TSH', 'F', '2.3', '20260301114500'));
    await rig.settle('RR-100');
    expect(tshLine(rig, 'RR-100')).toEqual([[1, 1]]);
    expect(billed(rig.emu, 'RR-100')).toEqual(['GLU', 'TSH']);
  });

  it('a re-order without ORC-9: the replay is still known by its OBR-22 and value', async () => {
    const rig = await cancelledAndOrderedAgain('RR-110', { againOrc9: '' });
    await rig.receive(oru('RR-110', 'TSH', 'F', '2.1', RESULTED));
    await rig.settle('RR-110');

    const evs = await rig.events('RR-110');
    expect(deadReasons(evs)).toEqual([]);
    expect(tshLine(rig, 'RR-110')).toEqual([[1, 0]]);
    expect(billed(rig.emu, 'RR-110')).toEqual(['GLU']);
    expect(lastResultNote(evs)).toMatch(/replay/);
  });

  /** Another result of the cancelled test (reported 10:05, between the cancellation and the re-order), come after the re-order. */
  it('a result reported before the re-order\'s ORC-9 counts for nothing', async () => {
    const rig = await cancelledAndOrderedAgain('RR-120');
    await rig.receive(oru('RR-120', 'TSH', 'F', '2.4', '20260301100500'));
    await rig.settle('RR-120');

    const evs = await rig.events('RR-120');
    expect(deadReasons(evs)).toEqual([]);
    expect(tshLine(rig, 'RR-120')).toEqual([[1, 0]]);
    expect(billed(rig.emu, 'RR-120')).toEqual(['GLU']);
    expect(lastResultNote(evs)).toMatch(/TSH: reported at .*before the LIS ordered the test again.*not counted/);
  });

  it('a result reported at the re-order\'s own time counts (only strictly before does not)', async () => {
    const rig = await cancelledAndOrderedAgain('RR-130');
    await rig.receive(oru('RR-130', 'TSH', 'F', '2.4', AGAIN));
    await rig.settle('RR-130');

    expect(deadReasons(await rig.events('RR-130'))).toEqual([]);
    expect(tshLine(rig, 'RR-130')).toEqual([[1, 1]]);
    expect(billed(rig.emu, 'RR-130')).toEqual(['GLU', 'TSH']);
  });

  /**
   * The LIS sends no OBR-22: every result is timed by OBR-7 (10:00, the tube's collection time,
   * before the 10:30 re-order). The re-ordered TSH run on that tube, even with the same value as
   * the cancelled run, counts (the add-on case): only an OBR-22 says when a result was reported.
   */
  it('without OBR-22 a result after the re-order counts, even timed before it and with the same value', async () => {
    const rig = await cancelledAndOrderedAgain('RR-140', { tshReportedAt: '' });
    await rig.receive(oru('RR-140', 'TSH', 'F', '2.1', ''));
    await rig.settle('RR-140');

    expect(deadReasons(await rig.events('RR-140'))).toEqual([]);
    expect(tshLine(rig, 'RR-140')).toEqual([[1, 1]]);
    expect(billed(rig.emu, 'RR-140')).toEqual(['GLU', 'TSH']);
  });

  /** Stored when the quotation was cancelled as a whole, then ordered again: the same rule. */
  it('after a whole-order cancellation and re-order, the replayed result counts for nothing', async () => {
    const rig = await billingRig();
    await rig.receive(ormTimed('RR-200', ['TSH'], { msh7: ORDERED, orc9: ORDERED }));
    await rig.receive(oru('RR-200', 'TSH', 'F', '2.1', RESULTED));
    await rig.settle('RR-200');
    await rig.receive(ormTimed('RR-200', [], { control: 'CA', msh7: CANCELLED, orc9: CANCELLED }));
    await rig.receive(ormTimed('RR-200', ['TSH'], { msh7: AGAIN, orc9: AGAIN }));
    await rig.settle('RR-200');
    await rig.receive(oru('RR-200', 'TSH', 'F', '2.1', RESULTED));
    await rig.settle('RR-200');

    const evs = await rig.events('RR-200');
    expect(deadReasons(evs)).toEqual([]);
    expect(tshLine(rig, 'RR-200')).toEqual([[1, 0]]);
    expect(billed(rig.emu, 'RR-200')).toEqual([]);
    expect(lastResultNote(evs)).toMatch(/replay/);
  });
});
