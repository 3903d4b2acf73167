/**
 * The mark of a LIS link numbering by case (hl7/accession-case.ts), on the HL7 intake path: read
 * once when the store's marks are first asked for (the intakes, at start), written once, when the
 * link's first number that upper case changes is read, and nothing read or awaited per message.
 * Real store (LevelDB in a temp dir); its reads and writes of documents are counted.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ACCESSION_CASE_NAMESPACE, AccessionCaseMarks } from '../../gateway/src/hl7/accession-case.ts';
import { analyseBlock } from '../../gateway/src/hl7/block.ts';
import { readInbound } from '../../gateway/src/hl7/inbound.ts';
import { normalizeLis } from '../../gateway/src/hl7/normalize-lis.ts';
import { EventStore } from '../../gateway/src/store/event-store.ts';

/** The events the LIS link `lis` makes of an HL7 message. */
function events(...segments: string[]) {
  const raw = Buffer.from(segments.join('\r') + '\r', 'latin1');
  const message = readInbound(raw, analyseBlock(raw).messages[0]!, 'ascii').message!;
  return normalizeLis({ message, endpoint: 'lis', receivedAt: '2026-12-07T10:00:00.000Z', notes: [] });
}

const orm = (accession: string) =>
  events('MSH|^~\\&|LIS|LAB|GW|LAB|20261207093000||ORM^O01|O-1|P|2.5', 'PID|1||MRN-1', `ORC|NW|${accession}||||||||20261207092500`, `OBR|1|${accession}||GLU^GLU`);
const omlOnTube = (accession: string, tube: string) =>
  events('MSH|^~\\&|LIS|LAB|GW|LAB|20261207093000||OML^O21^OML_O21|O-2|P|2.5.1', 'PID|1||MRN-2', `ORC|NW|${accession}||||||||20261207092500`, `OBR|1|${accession}||GLU^GLU`, `SPM|1|${tube}||SER^Serum^HL70487`);
const oru = (accession: string) =>
  events('MSH|^~\\&|LIS|LAB|GW|LAB|20261207093000||ORU^R01|R-1|P|2.5.1', 'PID|1||MRN-1', `ORC|RE|${accession}`, `OBR|1|${accession}||GLU^GLU|||||||||||||||||||||F`, 'OBX|1|NM|GLU^GLU||5.4|mmol/L|||||F');

/** The real store, with its document reads and writes counted. */
function counted(store: EventStore) {
  const calls = { listDocs: 0, putDoc: 0, getDoc: 0 };
  const view = {
    listDocs: <T>(namespace: string, options?: { prefix?: string; limit?: number; after?: string }) => (calls.listDocs++, store.listDocs<T>(namespace, options)),
    putDoc: (namespace: string, key: string, value: unknown) => (calls.putDoc++, store.putDoc(namespace, key, value)),
    getDoc: <T>(namespace: string, key: string) => (calls.getDoc++, store.getDoc<T>(namespace, key)),
  };
  return { view, calls };
}

describe('the mark of a LIS link numbering by case', () => {
  it('is read once, written once at its first lower-case number, and costs no read per message', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lgw-s23-case-mark-'));
    const store = await EventStore.open({ dataDir: dir, pruneIntervalMs: 0, healthCheckIntervalMs: 1000, minFreeBytes: 0 });
    try {
      const { view, calls } = counted(store);
      const marks = new AccessionCaseMarks(view);
      expect(calls.listDocs).toBe(1);
      // Upper-case numbers (orders, tubes, results): the link keeps the fallback; nothing written.
      for (let i = 0; i < 50; i++) {
        expect(marks.note('lis', orm(`ACC-${i}`))).toBeUndefined();
        marks.note('lis', omlOnTube(`ACC-${i}`, `T-${i}`));
        marks.note('lis', oru(`ACC-${i}`));
      }
      expect(await marks.caseDistinct(['lis'])).toBe(false);
      expect(calls).toEqual({ listDocs: 1, putDoc: 0, getDoc: 0 });
      // A tube id with a lower-case letter marks it, in memory at once, and written once.
      marks.note('lis', omlOnTube('ACC-99', 'tb9'));
      expect(await marks.caseDistinct(['lis'])).toBe(true);
      for (let i = 0; i < 50; i++) marks.note('lis', orm(`acc-${i}`));
      expect(calls).toEqual({ listDocs: 1, putDoc: 1, getDoc: 0 });
      // Another link is not marked by it; asked for every link, one mark is enough.
      expect(await marks.caseDistinct(['outreach'])).toBe(false);
      expect(await marks.caseDistinct()).toBe(true);
      await store.flush();
      expect(await store.getDoc(ACCESSION_CASE_NAMESPACE, 'lis')).toMatchObject({ caseDistinct: true, first: 'tb9' });

      // After a restart: read from the store, and not written again.
      const after = counted(store);
      const again = new AccessionCaseMarks(after.view);
      expect(await again.caseDistinct(['lis'])).toBe(true);
      again.note('lis', orm('ab12'));
      expect(after.calls).toEqual({ listDocs: 1, putDoc: 0, getDoc: 0 });
      // A link marked by an accession of its results (a LIS sending results only) too.
      again.note('outreach', oru('r-1'));
      expect(await again.caseDistinct(['outreach'])).toBe(true);
      expect(after.calls.putDoc).toBe(1);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
