/**
 * The usual LIS result reads nothing before its commit (hl7/order-numbers.ts): only a result that
 * carries a filler number, of a link that has sent an order carrying one, and whose accession is no
 * order the link committed since the start is looked up in the store (its order by the other number).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import type { Hl7Message } from '../../gateway/src/hl7/message.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';
import { LINK_MARK_NAMESPACE, ResultOrderNumbers } from '../../gateway/src/hl7/order-numbers.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';

function read(text: string): Hl7Message {
  const raw = Buffer.from(text.replace(/\n/g, '\r'), 'latin1');
  return readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii').message!;
}

const events = (m: Hl7Message) => normalizeLis({ message: m, endpoint: 'lis', receivedAt: '2026-03-01T10:00:00.000Z', notes: [] });

const order = read(['MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||ORM^O01|O-1|P|2.5.1', 'PID|1||MRN-77', 'ORC|NW|70001|LF-9001||||||20260301092500||||||||||||CLINIC-A', 'OBR|1|70001|LF-9001|GLU^GLU test'].join('\n'));
const result = (placer: string, filler: string): Hl7Message =>
  read(['MSH|^~\\&|LIS|LAB|GW|LAB|20260301093000||ORU^R01|R-1|P|2.5.1', 'PID|1||MRN-77', `ORC|RE|${placer}|${filler}`, `OBR|1|${placer}|${filler}|GLU^GLU test|||||||||||||||||||||F`, 'OBX|1|NM|GLU^GLU test||5.4|mmol/L|||||F'].join('\n'));

describe('results of a LIS link: which are looked up by their other number', () => {
  it('a result of an order the link committed, or carrying no filler number, needs no look-up', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lgw-filler-hot-'));
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, healthCheckIntervalMs: 1000, minFreeBytes: 0 });
    try {
      const numbers = new ResultOrderNumbers(store, 'lis');
      await numbers.ready();
      // A link that has sent no order carrying a filler number (a LIS sending results only): no
      // result of it can name its order by another number, and none is looked up. Before, each of
      // its results (no order known, a filler number in ORC-3) read the message index after every
      // batch in flight reached LevelDB: the intake bench fell from ~3,900 to ~450 messages/s.
      expect(numbers.needsLookup(result('70001', 'LF-9001'), events(result('70001', 'LF-9001')))).toBe(false);
      expect(numbers.needsLookup(result('', 'LF-9001'), events(result('', 'LF-9001')))).toBe(false);
      // An order message is never looked up; one carrying a filler number marks the link (before
      // its commit: a result right behind it is looked up too).
      expect(numbers.needsLookup(order, events(order))).toBe(false);
      // No filler number in the result: nothing to look up by, whatever its accession.
      expect(numbers.needsLookup(result('70001', ''), events(result('70001', '')))).toBe(false);
      // An accession the link has not committed since the start: looked up (once; then held).
      expect(numbers.needsLookup(result('70001', 'LF-9001'), events(result('70001', 'LF-9001')))).toBe(true);
      numbers.noteCommitted(events(order));
      expect(numbers.needsLookup(result('70001', 'LF-9001'), events(result('70001', 'LF-9001')))).toBe(false);
      // Only the filler number: another accession, looked up.
      expect(numbers.needsLookup(result('', 'LF-9001'), events(result('', 'LF-9001')))).toBe(true);
      // The mark is kept in the store: after a restart the link's results are looked up at once.
      for (let i = 0; i < 200 && (await store.getDoc<{ ordersCarryFiller?: boolean }>(LINK_MARK_NAMESPACE, 'lis'))?.ordersCarryFiller !== true; i++) await new Promise((r) => setTimeout(r, 10));
      const again = new ResultOrderNumbers(store, 'lis');
      await again.ready();
      expect(again.needsLookup(result('', 'LF-9001'), events(result('', 'LF-9001')))).toBe(true);
      // Another link of the same store is not marked by it.
      const other = new ResultOrderNumbers(store, 'outreach');
      await other.ready();
      expect(other.needsLookup(result('', 'LF-9001'), events(result('', 'LF-9001')))).toBe(false);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
