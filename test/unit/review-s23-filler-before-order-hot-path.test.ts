/**
 * The usual LIS order reads nothing before its commit (hl7/order-numbers.ts): only an order naming
 * a number under which a result of the link came before its order (looked up, no order found) is
 * looked up, to attach that result. The link's waiting results are kept in the store (read once at
 * start).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import type { Hl7Message } from '../../gateway/src/hl7/message.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';
import { ResultOrderNumbers, WAITING_NAMESPACE } from '../../gateway/src/hl7/order-numbers.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';

function read(text: string): Hl7Message {
  const raw = Buffer.from(text.replace(/\n/g, '\r'), 'latin1');
  return readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii').message!;
}

const events = (m: Hl7Message) => normalizeLis({ message: m, endpoint: 'lis', receivedAt: '2026-03-01T10:00:00.000Z', notes: [] });

const order = (placer: string, filler: string): Hl7Message =>
  read(['MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||ORM^O01|O-1|P|2.5.1', 'PID|1||MRN-77', `ORC|NW|${placer}|${filler}||||||20260301092500||||||||||||CLINIC-A`, `OBR|1|${placer}|${filler}|GLU^GLU test`].join('\n'));
const result = (placer: string, filler: string): Hl7Message =>
  read(['MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||ORU^R01|R-1|P|2.5.1', 'PID|1||MRN-77', `ORC|RE|${placer}|${filler}`, `OBR|1|${placer}|${filler}|GLU^GLU test|||||||||||||||||||||F`, 'OBX|1|NM|GLU^GLU test||5.4|mmol/L|||||F'].join('\n'));

describe('orders of a LIS link: which are looked up for results that came before them', () => {
  it('only an order naming the number of a result that found no order', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lgw-filler-before-hot-'));
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, healthCheckIntervalMs: 1000, minFreeBytes: 0 });
    try {
      const numbers = new ResultOrderNumbers(store, 'lis');
      await numbers.ready();
      // No result waits: no order is looked up, whatever it carries (it marks the link).
      expect(numbers.needsLookup(order('70001', 'LF-9001'), events(order('70001', 'LF-9001')))).toBe(false);
      expect(numbers.needsLookup(order('70002', 'LF-9002'), events(order('70002', 'LF-9002')))).toBe(false);
      // A result carrying only LF-9003, looked up: no order of it is stored.
      const r = result('', 'LF-9003');
      expect(numbers.needsLookup(r, events(r))).toBe(true);
      const draft = await numbers.attach({ events: events(r), searchTerms: [], warnings: [] }, r);
      expect(draft.events.map((e) => e.correlationId)).toEqual(['LF-9003']);
      // The order carrying LF-9003 is looked up; another order is not.
      expect(numbers.needsLookup(order('70003', 'LF-9003'), events(order('70003', 'LF-9003')))).toBe(true);
      expect(numbers.needsLookup(order('70004', 'LF-9004'), events(order('70004', 'LF-9004')))).toBe(false);
      // Kept in the store: after a restart the order carrying LF-9003 is still looked up.
      for (let i = 0; i < 200 && (await store.getDoc<{ entries?: unknown[] }>(WAITING_NAMESPACE, 'lis'))?.entries?.length === undefined; i++) await new Promise((res) => setTimeout(res, 10));
      const again = new ResultOrderNumbers(store, 'lis');
      await again.ready();
      expect(again.needsLookup(order('70003', 'LF-9003'), events(order('70003', 'LF-9003')))).toBe(true);
      expect(again.needsLookup(order('70004', 'LF-9004'), events(order('70004', 'LF-9004')))).toBe(false);
      // Another link of the same store has no waiting result.
      const other = new ResultOrderNumbers(store, 'outreach');
      await other.ready();
      expect(other.needsLookup(order('70003', 'LF-9003'), events(order('70003', 'LF-9003')))).toBe(false);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
