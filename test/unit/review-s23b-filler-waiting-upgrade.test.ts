/**
 * A result that came before its order under the previous release (1c29f8b), its order coming after
 * the upgrade (hl7/order-numbers.ts, README "A result that came before its order"). The previous
 * release stored the result under its filler number, marked the link (hl7-link-numbers) and kept
 * no waiting document. A real store (LevelDB in a temp dir), written as that release wrote it,
 * then opened by this one.
 */
import { describe, expect, it } from 'vitest';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import type { Hl7Message } from '../../gateway/src/hl7/message.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';
import { LINK_MARK_NAMESPACE, ResultOrderNumbers, WAITING_NAMESPACE } from '../../gateway/src/hl7/order-numbers.ts';
import { inboundMessage } from '../fixtures/store/inbound.ts';
import { useTempStore } from '../fixtures/store/temp-store.ts';

const tmp = useTempStore('lgw-filler-waiting-upgrade-', { pruneIntervalMs: 0, minFreeBytes: 0 });

const text = (lines: string[]): string => lines.join('\r');
const order = (id: string, placer: string, filler: string, mrn = 'MRN-77'): string =>
  text([`MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||ORM^O01|${id}|P|2.5.1`, `PID|1||${mrn}`, `ORC|NW|${placer}|${filler}||||||20260301092500||||||||||||CLINIC-A`, `OBR|1|${placer}|${filler}|GLU^GLU test`]);
const result = (id: string, filler: string, mrn = 'MRN-77'): string =>
  text([`MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||ORU^R01|${id}|P|2.5.1`, `PID|1||${mrn}`, `ORC|RE||${filler}`, `OBR|1||${filler}|GLU^GLU test|||||||||||||||||||||F`, 'OBX|1|NM|GLU^GLU test||5.4|mmol/L|||||F']);

function read(t: string): Hl7Message {
  const raw = Buffer.from(t, 'latin1');
  return readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii').message!;
}
const events = (m: Hl7Message) => normalizeLis({ message: m, endpoint: 'lis', receivedAt: new Date().toISOString(), notes: [] });

describe('a result stored before its order by the release before, the order after the upgrade', () => {
  /**
   * Before: this release kept the numbers of results that came before their order only from its
   * own look-ups; a result the release before stored under LF-9701 (waiting for an order of that
   * number) was never looked for, and 70701 carrying LF-9701, coming after the upgrade, got nothing:
   * the result was dead-lettered, 70701's test never delivered nor billed. Now the first start on a
   * link without the document reads the link's results not delivered (once), and keeps those whose
   * accession names no order of the link.
   */
  it('the order after the upgrade gets the result', async () => {
    let store = await tmp.open();
    // As 1c29f8b wrote it: the link's order carrying a filler number, its mark, and the result
    // under its own number (no order of it), with no waiting document.
    const o0 = order('O-0', '70700', 'LF-9700');
    await store.commit(inboundMessage('O-0', { raw: Buffer.from(o0, 'latin1') }), events(read(o0)));
    await store.putDoc(LINK_MARK_NAMESPACE, 'lis', { ordersCarryFiller: true, since: new Date().toISOString() });
    const r1 = result('R-1', 'LF-9701');
    await store.commit(inboundMessage('R-1', { raw: Buffer.from(r1, 'latin1') }), events(read(r1)));
    // Another patient's result under LF-9702: not for MRN-77's order 70702.
    const r2 = result('R-2', 'LF-9702', 'MRN-88');
    await store.commit(inboundMessage('R-2', { raw: Buffer.from(r2, 'latin1') }), events(read(r2)));
    expect(await store.getDoc(WAITING_NAMESPACE, 'lis')).toBeUndefined();
    await store.close();

    store = await tmp.open();
    const numbers = new ResultOrderNumbers(store, 'lis');
    await numbers.ready();
    const o1 = read(order('O-1', '70701', 'LF-9701'));
    expect(numbers.needsLookup(o1, events(o1))).toBe(true);
    const draft = await numbers.attach({ events: events(o1), searchTerms: [], warnings: [] }, o1);
    expect(draft.events.filter((e) => e.type === 'result.validated').map((e) => e.correlationId)).toEqual(['70701']);
    // MRN-88's result is not 70702's of MRN-77.
    const o2 = read(order('O-2', '70702', 'LF-9702'));
    const other = await numbers.attach({ events: events(o2), searchTerms: [], warnings: [] }, o2);
    expect(other.events.filter((e) => e.type === 'result.validated')).toEqual([]);
    // Read once: the document is written (a later start reads it, not the results).
    for (let i = 0; i < 200 && (await store.getDoc(WAITING_NAMESPACE, 'lis')) === undefined; i++) await new Promise((res) => setTimeout(res, 10));
    expect(await store.getDoc(WAITING_NAMESPACE, 'lis')).toMatchObject({ v: 1 });
  });
});
