/**
 * An add-on naming its order by the accession alone and naming no patient (an ORM whose PATIENT
 * group is left out: it is optional in ORM^O01), while a result of another patient waits under the
 * number the order came carrying (a LIS whose filler numbers come round: a daily sample number).
 * hl7/order-numbers.ts, README "An add-on naming the order by its accession alone". A real store
 * (LevelDB in a temp dir).
 *
 * GLU of MRN-77 under LF-0042 came before order 70521 (MRN-77, GLU, LF-0042), which got it. The
 * number came round: CRP of MRN-88 under LF-0042 came before MRN-88's own order. The add-on CRP for
 * 70521 then came naming 70521 alone and no patient. Before, nothing told the two patients apart
 * (the message names none): MRN-88's CRP was attached to MRN-77's order 70521 and billed there,
 * and MRN-88's order, when it came, got none. Now an order message naming no patient is compared
 * with the patient of the order stored under its accession.
 */
import { describe, expect, it } from 'vitest';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import type { Hl7Message } from '../../gateway/src/hl7/message.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';
import { ResultOrderNumbers } from '../../gateway/src/hl7/order-numbers.ts';
import type { EventStore } from '../../gateway/src/store/event-store.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const tmp = useTempStore('lgw-s23d-addon-no-patient-', { pruneIntervalMs: 0, minFreeBytes: 0 });

const text = (lines: string[]): string => lines.join('\r');
/** An ORM^O01; `mrn` undefined: no PID segment. */
const order = (id: string, placer: string, filler: string, tests: string[], mrn: string | undefined): string =>
  text([
    `MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||ORM^O01|${id}|P|2.5.1`,
    ...(mrn ? [`PID|1||${mrn}`] : []),
    ...tests.flatMap((t, i) => [`ORC|NW|${placer}|${filler}||||||20260301092500||||||||||||CLINIC-A`, `OBR|${i + 1}|${placer}|${filler}|${t}^${t} test`]),
  ]);
const result = (id: string, filler: string, t: string, mrn: string): string =>
  text([`MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||ORU^R01|${id}|P|2.5.1`, `PID|1||${mrn}`, `ORC|RE||${filler}`, `OBR|1||${filler}|${t}^${t} test|||||||||||||||||||||F`, `OBX|1|NM|${t}^${t} test||5.4|mmol/L|||||F`]);

function read(t: string): Hl7Message {
  const raw = Buffer.from(t, 'latin1');
  return readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii').message!;
}

/** A message through the link's look-ups and into the store, as the intake takes it: its results as `<accession>:<test>`. */
async function take(store: EventStore, numbers: ResultOrderNumbers, t: string, id: string): Promise<string[]> {
  const m = read(t);
  let draft = { events: normalizeLis({ message: m, endpoint: 'lis', receivedAt: new Date().toISOString(), notes: [] }), searchTerms: [] as string[], warnings: [] as string[] };
  if (numbers.needsLookup(m, draft.events)) draft = await numbers.attach(draft, m);
  await store.commit(inboundMessage(id, { raw: Buffer.from(t, 'latin1') }), draft.events);
  numbers.noteCommitted(draft.events);
  return draft.events.filter((e) => e.type === 'result.validated').map((e) => `${e.correlationId}:${e.type === 'result.validated' ? e.data.testCode : ''}`);
}

describe('an add-on naming its order by the accession alone and no patient', () => {
  it("does not get another patient's result waiting under the number its order came carrying", async () => {
    const store = await tmp.open();
    const numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    await take(store, numbers, order('O-0', '70520', 'LF-0041', ['GLU'], 'MRN-77'), 'O-0');
    await take(store, numbers, result('R-1', 'LF-0042', 'GLU', 'MRN-77'), 'R-1');
    expect(await take(store, numbers, order('O-1', '70521', 'LF-0042', ['GLU'], 'MRN-77'), 'O-1')).toEqual(['70521:GLU']);
    // The number came round: MRN-88's CRP under LF-0042, before MRN-88's order.
    await take(store, numbers, result('R-2', 'LF-0042', 'CRP', 'MRN-88'), 'R-2');
    expect(await take(store, numbers, order('O-2', '70521', '', ['CRP'], undefined), 'O-2'), "MRN-77's add-on, no PID").toEqual([]);
    // MRN-88's own order gets it.
    expect(await take(store, numbers, order('O-3', '70522', 'LF-0042', ['CRP'], 'MRN-88'), 'O-3')).toEqual(['70522:CRP']);
  });

  it("the add-on naming no patient still gets its own patient's result", async () => {
    const store = await tmp.open();
    const numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    await take(store, numbers, order('O-0', '70530', 'LF-0051', ['GLU'], 'MRN-77'), 'O-0');
    await take(store, numbers, result('R-1', 'LF-0052', 'GLU', 'MRN-77'), 'R-1');
    await take(store, numbers, result('R-2', 'LF-0052', 'CRP', 'MRN-77'), 'R-2');
    expect(await take(store, numbers, order('O-1', '70531', 'LF-0052', ['GLU'], 'MRN-77'), 'O-1')).toEqual(['70531:GLU']);
    expect(await take(store, numbers, order('O-2', '70531', '', ['CRP'], undefined), 'O-2')).toEqual(['70531:CRP']);
  });
});
